"""Answers/s of ``inference.generate`` batched vs one at a time on the demo model, in the same run.

Figure: answers/s of :func:`geolib.inference.generate` at batch 16 (left-padded batched greedy decoding
with the KV cache: the generation step of notebook 06's ``inference.answer_images``, without its
answer parsing and geocoding), beside the baseline measured in the same run: the same call at
batch 1 on the same images, prompts and ``max_new_tokens``. Target: >= 4x at batch 16. It also
checks that both give the same texts (greedy decoding; padding is masked), and prints whether they
match.

Model: the demo model (``vlm.DEMO_MODEL``: EfficientNet-Lite0 features → projector → 4-layer,
128-wide Qwen2 decoder) with random weights, and a byte-level BPE trained on the demo world's
scene texts (``geolib.world`` specs, no image rendered; notebook 04's target of 3000 tokens, about
2000 reached). Images are random float16 features (N, 49, 1280), pooled to the demo's grid, in place of the tower's cached
features. A randomly initialised model rarely emits a stop token, so in practice every answer runs
to ``max_new_tokens`` (64) in both runs: a fair same-length comparison of decoding work, which the
benchmark verifies by counting each answer's generated tokens up to its first stop token
(``<|im_end|>`` / ``<|endoftext|>``). A trained model stops early; a batch then runs until its
longest answer ends, so batching gains somewhat less on real answers of mixed lengths.

Prompts cycle through the study's four prompts (describe, reasoning, location, evaluation) so a
batch holds prompts of different lengths: left padding is exercised by the equality check and paid
for by the batched figure. Both runs use the same torch intra-op thread count (``--threads``,
default all cores this process may use). One untimed warm-up call at each batch size precedes the
timed runs; with ``--repeats`` > 1 the runs alternate and the best of each is kept.

    python benchmarks/inference.py            # 64 images, 64 new tokens, best of 2
    python benchmarks/inference.py --quick    # 32 images, one run each
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd

from geolib import conversations, features, inference, vlm  # first: vlm patches torchvision before torch and transformers load

import torch

TOKENIZER_VOCAB = 3000  # notebook 04's tokenizer_vocab_size


def scene_pool(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` rows in the demo world's manifest schema from ``geolib.world``'s scene specs (40 countries
    x 3 cities, as the demo); no image is rendered."""
    from geolib import world

    places = world.sample_places(40, 3, seed=seed)
    rows = []
    for i in range(n):
        spec = world.world_spec(places, seed, i)
        rows.append({"country": spec.country, "city": spec.city, **world.describe_scene(spec)})
    return pd.DataFrame(rows)


class GeneratedLengths:
    """Wraps ``model.generate`` (on the instance) and records each answer's generated tokens up to
    its first stop token."""

    def __init__(self, model, stop_ids: list[int]):
        self.model, self.stop_ids, self.lengths = model, torch.tensor(stop_ids), []
        self.original = model.generate

    def __enter__(self):
        def generate(*args, **kwargs):
            out = self.original(*args, **kwargs)
            new = out[:, kwargs["input_ids"].shape[1]:]
            stops = torch.isin(new, self.stop_ids.to(new.device))
            first = torch.where(stops.any(1), stops.int().argmax(1), torch.full_like(stops[:, 0], new.shape[1], dtype=torch.long))
            self.lengths.extend(first.tolist())
            return out

        self.model.generate = generate
        return self

    def __exit__(self, *exc):
        del self.model.generate  # back to the class's method


def timed_generate(model, tok, feats, prompts, max_new_tokens: int, batch_size: int) -> tuple[float, list[str], list[int]]:
    """Seconds, answers and generated lengths of one ``inference.generate`` call."""
    stops = [tok.convert_tokens_to_ids(vlm.IM_END), tok.convert_tokens_to_ids(vlm.PAD_TOKEN)]
    with GeneratedLengths(model, stops) as counter:
        start = time.perf_counter()
        texts = inference.generate(model, tok, feats, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
        seconds = time.perf_counter() - start
    return seconds, texts, counter.lengths


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 images, one run each")
    parser.add_argument("--n-images", type=int, default=None, help="images to answer (default 64, quick 32)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=None, help="alternating timed runs, best kept (default 2, quick 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: all cores)")
    args = parser.parse_args(argv)
    n = args.n_images or (32 if args.quick else 64)
    repeats = args.repeats or (1 if args.quick else 2)
    threads = args.threads or features.default_num_threads()
    torch.set_num_threads(threads)

    pool = scene_pool(400)
    convs = (conversations.base_training_conversations(pool) + conversations.make_conversations(pool, "reasoning")
             + conversations.make_conversations(pool, "location"))
    tok = vlm.train_tokenizer(conversations.conversation_texts(convs) + list(conversations.PROMPTS.values()), TOKENIZER_VOCAB)
    model, _ = vlm.build_model(vlm.DEMO_MODEL, processor=tok)
    feats = np.random.default_rng(0).random((n, 49, 1280), dtype=np.float32).astype(np.float16)
    feats = vlm.pool_tokens(feats, vlm.ModelSpec.coerce(vlm.DEMO_MODEL).image_grid)  # as study_images pools them
    cycle = [conversations.PROMPTS[k] for k in ("describe", "reasoning", "location", "evaluation")]
    prompts = [cycle[i % len(cycle)] for i in range(n)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    warm = min(n, args.batch_size)
    inference.generate(model, tok, feats[:warm], prompts[:warm], max_new_tokens=4, batch_size=args.batch_size)
    inference.generate(model, tok, feats[:2], prompts[:2], max_new_tokens=4, batch_size=1)
    batched, single = [], []
    for _ in range(repeats):
        batched.append(timed_generate(model, tok, feats, prompts, args.max_new_tokens, args.batch_size))
        single.append(timed_generate(model, tok, feats, prompts, args.max_new_tokens, 1))
    t_batched, texts_batched, len_batched = min(batched, key=lambda r: r[0])
    t_single, texts_single, len_single = min(single, key=lambda r: r[0])
    same = [a == b for a, b in zip(texts_batched, texts_single)]
    result = {"images": n, "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens, "threads": threads,
              "batched_answers_s": n / t_batched, "single_answers_s": n / t_single, "same_texts": sum(same)}
    result["speed_up"] = result["batched_answers_s"] / result["single_answers_s"]

    spec = vlm.ModelSpec.coerce(vlm.DEMO_MODEL)
    print(f"vlm inference benchmark: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"torch {torch.__version__}, transformers {__import__('transformers').__version__}, "
          f"{'cuda' if next(model.parameters()).is_cuda else 'CPU'}, torch threads {threads}, load average {load:.2f}")
    if load > features.default_num_threads() and threads > 1:
        print(f"note: load average {load:.1f} exceeds the {features.default_num_threads()} cores: other processes "
              f"compete, and with several torch threads each parallel op waits for the slowest thread: figures drop and swing; try --threads 1")
    print(f"demo model ({spec.num_layers} layers x {spec.hidden_size} wide, random weights), vocabulary {len(tok)}; "
          f"{n} images (random features), 4 prompts in turn, max_new_tokens {args.max_new_tokens}, "
          f"{'best of ' + str(repeats) if repeats > 1 else 'one run each'}")
    for name, seconds, lengths in (("batch " + str(args.batch_size), t_batched, len_batched), ("batch 1", t_single, len_single)):
        full = sum(x == args.max_new_tokens for x in lengths)
        print(f"{name:<9} {n / seconds:8.2f} answers/s  {sum(lengths) / seconds:8.0f} tokens/s  "
              f"(mean {np.mean(lengths):.1f} new tokens per answer; {full} of {n} ran to the limit)")
    print(f"speed-up batched / one at a time: {result['speed_up']:.1f}x (target >= 4x at batch 16)")
    print(f"same texts batched and one at a time: {sum(same)} of {n}"
          + ("" if all(same) else f" (first differing image {same.index(False)}: "
             f"{texts_batched[same.index(False)][:60]!r} vs {texts_single[same.index(False)][:60]!r})"))
    return result


if __name__ == "__main__":
    main()
