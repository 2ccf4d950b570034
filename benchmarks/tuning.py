"""Training throughput of each tuning stage through ``tuning.train_stage``, beside a bare loop in the same run.

Figure: samples/s of the three demo stages trained through :func:`geolib.tuning.train_stage` (the
notebooks' path: transformers' ``Trainer``, the stage's ``ConversationCollator``, the
length-grouped sampler, loss logging, gradient clipping, the LR schedule):

* ``base``: full fine-tune of the demo model's language model and projector (notebook 04's ``base_training``);
* ``reasoning``: stage 1, a LoRA adapter (04's ``lora`` and ``reasoning_tuning``);
* ``location``: stage 2, a second LoRA adapter on top of the frozen stage 1 (05's ``location_tuning``).

Baseline, measured in the same run on the same model right after its stage: a bare loop over the
same batches (the very conversation lists the trainer collated, in its order), collated by the same
``ConversationCollator`` inside the timed loop as the trainer does (no data-loader workers)::

    loss = model(**collator(conversations)).loss; loss.backward(); optimizer.step(); optimizer.zero_grad()

with a ``torch.optim.AdamW`` built like the trainer's (its parameter groups and settings, fused on
transformers' default ``adamw_torch_fused``). The ratio trainer / bare is the share of throughput
the trainer keeps (target >= 0.8). Beside it, the same ratio from the process's CPU time
(``time.process_time``) over the same windows: time spent waiting for a core does not count, so on
a shared machine it is the steadier figure with one thread (with several threads it also counts
their spinning; on a GPU it counts host work only).

Timing. Each stage runs ``warmup + steps`` optimiser steps (one batch each: gradient accumulation
is 1, as in the demo settings). A ``TrainerCallback`` takes the clock at every ``on_step_end``; the
figure is the samples of steps ``warmup+1 .. warmup+steps`` over the time from the end of step
``warmup`` to the end of the last step, so model set-up, the first steps and the final save are left
out, and every per-step cost of the trainer (fetching and collating the batch, forward, backward,
clipping, optimiser and scheduler, the callbacks, the loss logged every 10 steps: one logging step
lies inside the full run's window) is in. The bare loop skips its first ``warmup`` batches the same
way. ``train_stage`` has no hook for an extra callback, so the benchmark swaps
``tuning._StageTrainer`` for a subclass that adds the clock and records the collated batches, and
restores it afterwards; nothing else in the path changes. The progress bar is off.

Inputs: the demo world's scene texts (``geolib.world`` specs and their reasoning, clues and sign
text: the manifest schema; no image is rendered), random float16 features (N, 49, 1280), pooled as the demo model sees them, in place of
the image tower's cached features, a byte-level BPE trained on those texts (notebook 04's target
of 3000 tokens; this smaller corpus gives about 2000, printed), the demo model with random weights.
No hub. Both loops use the same torch intra-op thread count (``--threads``, default all cores this
process may use). The machine may be shared: its load average is printed beside the figures (on a
loaded machine, several threads per op slow everything down: use ``--threads 1`` there).

``--gpu`` (only when CUDA is available; else it says it skipped): the paper's Qwen2.5-VL-7B
architecture at reduced depth with random weights, bf16, activation checkpointing, LoRA r=64
alpha=16 on ``tuning.LORA_TARGET_MODULES``: text width 3584, MLP 18944, 28 heads / 4 KV heads, 152064
vocabulary rows (the 7B's; the BPE's ids use the first ~2000), ``--gpu-layers`` decoder layers (7B: 28);
vision width 1280, MLP 3420, 16 heads, ``--gpu-vision-depth`` blocks (7B: 32) with the last one
full attention, 112 px windows, 14 px patches merged 2x2 into 3584-wide tokens. Images are random
448x448 JPEGs on disk (256 visual tokens each), stage-1 conversations, batch 4 (the paper's per-device
batch, no accumulation). It prints samples/s of trainer and bare loop and the peak GPU memory
(``torch.cuda.max_memory_allocated``) of each. On a CUDA machine the demo stages run on the GPU as
well (``tuning.training_arguments`` picks it, with bf16 autocast; the bare loop autocasts alike).

    python benchmarks/tuning.py            # demo model, 2 warm-up + 10 timed steps per stage
    python benchmarks/tuning.py --quick    # a smaller demo model, 1 + 4 steps
    python benchmarks/tuning.py --gpu      # also the paper architecture on the GPU
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import io
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from geolib import conversations, features, params, tuning, vlm  # first: vlm patches torchvision before torch and transformers load

import torch
from transformers import TrainerCallback

#: The demo's settings of notebooks 04 and 05 (their parameters cells).
DEMO = params.notebook_values("04_reasoning_tuning") | {"location_tuning": params.notebook_values("05_location_tuning")["location_tuning"]}
#: The smaller demo model of ``--quick``.
QUICK_MODEL = {"model_id": "demo", "hidden_size": 128, "num_layers": 2, "num_heads": 4, "num_kv_heads": 4,
               "intermediate_size": 384}
#: Qwen2.5-VL-7B's widths (its config.json); depths come from the command line.
PAPER_TEXT = {"hidden_size": 3584, "intermediate_size": 18944, "num_attention_heads": 28, "num_key_value_heads": 4,
              "vocab_size": 152064, "max_position_embeddings": 32768, "rms_norm_eps": 1e-6,
              "rope_parameters": {"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1000000.0}}
PAPER_VISION = {"hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
                "window_size": 112, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
TOKENIZER_VOCAB = 3000  # notebook 04's tokenizer_vocab_size


def scene_pool(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` rows in the demo world's manifest schema (country, city, coordinates, scene, clues, sign
    text, reasoning) from ``geolib.world``'s scene specs on the demo's 40 countries x 3 cities; no image
    is rendered."""
    from geolib import world

    places = world.sample_places(40, 3, seed=seed)
    rows = []
    for i in range(n):
        spec = world.world_spec(places, seed, i)
        rows.append({"country": spec.country, "city": spec.city, "lat": spec.lat, "lon": spec.lon, **world.describe_scene(spec)})
    return pd.DataFrame(rows)


def random_features(n: int, seed: int = 0, grid: int | None = None) -> np.ndarray:
    """Random tower features (n, 49, 1280) float16, as the demo's feature cache holds them, pooled to
    the demo model's token grid (``grid``; default :class:`geolib.vlm.ModelSpec`'s, 2 × 2) as
    :func:`geolib.stages.study_images` pools them."""
    feats = np.random.default_rng(seed).random((n, 49, 1280), dtype=np.float32).astype(np.float16)
    return vlm.pool_tokens(feats, vlm.ModelSpec().image_grid if grid is None else grid)


def stage_conversations(pool: pd.DataFrame) -> dict[str, list[dict]]:
    """The conversations of the three demo stages (base captions, stage 1, stage 2)."""
    return {"base": conversations.base_training_conversations(pool),
            "reasoning": conversations.make_conversations(pool, "reasoning"),
            "location": conversations.make_conversations(pool, "location")}


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class _StepClock(TrainerCallback):
    """Clock at every optimiser step's end (CUDA synchronised at the steps in ``sync_at`` only, the
    window's ends, so the clock adds no stall inside it); keeps the trainer's optimiser and arguments."""

    def __init__(self, sync_at=()):
        self.sync_at = set(sync_at)
        self.ends: list[tuple[float, float]] = []  # (wall, process CPU) seconds
        self.optimizer = None
        self.args = None
        self.threads = None

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        self.args, self.optimizer, self.threads = args, optimizer, torch.get_num_threads()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.sync_at:
            _sync()
        self.ends.append((time.perf_counter(), time.process_time()))


class _RecordingCollator:
    """Wraps the stage's collator and records the conversation lists it is given, in order."""

    def __init__(self, collator):
        self.collator = collator
        self.batches: list[list[dict]] = []

    def __call__(self, conversations):
        self.batches.append(list(conversations))
        return self.collator(conversations)


@contextlib.contextmanager
def instrumented_stage_trainer(clock: _StepClock, recorders: list):
    """Inside the block, ``tuning.train_stage`` builds a trainer with ``clock`` among its callbacks and
    its collator wrapped in a :class:`_RecordingCollator` (appended to ``recorders``)."""
    original = tuning._StageTrainer

    class _TimedStageTrainer(original):
        def __init__(self, *args, **kwargs):
            recorder = _RecordingCollator(kwargs["data_collator"])
            recorders.append(recorder)
            kwargs["data_collator"] = recorder
            kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), clock]
            super().__init__(*args, **kwargs)

    tuning._StageTrainer = _TimedStageTrainer
    try:
        yield
    finally:
        tuning._StageTrainer = original


def _like_trainer_optimizer(optimizer, model) -> torch.optim.Optimizer:
    """A fresh ``torch.optim.AdamW`` with the trainer's parameter groups and settings."""
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps it
    if not isinstance(inner, torch.optim.AdamW):
        raise TypeError(f"the trainer's optimiser is {type(inner).__name__}, expected AdamW")
    accepted = set(inspect.signature(torch.optim.AdamW).parameters) - {"params"}
    settings = {k: v for k, v in inner.defaults.items() if k in accepted}
    groups = [{"params": list(g["params"]), "weight_decay": g["weight_decay"]} for g in inner.param_groups]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    if {id(p) for g in groups for p in g["params"]} != trainable:
        raise RuntimeError("the trainer's optimiser does not hold exactly the model's trainable parameters")
    return torch.optim.AdamW(groups, **settings)


def bare_loop(model, collator, batches: list[list[dict]], optimizer, warmup: int, bf16: bool) -> tuple[float, float]:
    """Wall and process CPU seconds for ``batches[warmup:]`` of collate → forward → backward → step → zero_grad."""
    device = next(model.parameters()).device
    use_cache = getattr(model.config, "use_cache", None)
    model.config.use_cache = False  # as train_stage does
    model.train()
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext())
    start = cpu_start = None
    try:
        for i, conversations in enumerate(batches):
            if i == warmup:
                _sync()
                start, cpu_start = time.perf_counter(), time.process_time()
            batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in collator(conversations).items()}
            with autocast:
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        _sync()
        return time.perf_counter() - start, time.process_time() - cpu_start
    finally:
        if use_cache is not None:
            model.config.use_cache = use_cache
        model.eval()


def time_stage(model, processor, conversations, name: str, hparams: dict, lora, images, out: Path,
               warmup: int, steps: int) -> dict:
    """Train ``warmup + steps`` steps through ``tuning.train_stage``, then the bare loop on the same
    batches; samples/s of each over the steps after the warm-up (and peak GPU memory on CUDA)."""
    batch = int(hparams["per_device_train_batch_size"])
    hp = dict(hparams, effective_batch_size=batch, max_steps=warmup + steps, disable_tqdm=True)
    need = (warmup + steps + 1) * batch  # +1: the data loader fetches one batch ahead
    if len(conversations) < need:
        raise ValueError(f"stage {name}: {len(conversations)} conversations, need {need}")
    conversations = conversations[:need]
    clock, recorders = _StepClock(sync_at=(warmup, warmup + steps)), []
    cuda = torch.cuda.is_available()
    if cuda:  # earlier stages' trainers may linger in reference cycles
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with instrumented_stage_trainer(clock, recorders), contextlib.redirect_stdout(io.StringIO()):  # the trainer's log lines
        result = tuning.train_stage(model, processor, conversations, name, hp, lora, out / name, images=images)
    trainer_peak = torch.cuda.max_memory_allocated() if cuda else None
    if len(clock.ends) != warmup + steps:
        raise RuntimeError(f"stage {name}: {len(clock.ends)} steps ran, expected {warmup + steps}")
    recorded = recorders[0].batches[: warmup + steps]
    samples = sum(len(b) for b in recorded[warmup:])
    trainer_s, trainer_cpu = (a - b for a, b in zip(clock.ends[-1], clock.ends[warmup - 1]))

    optimizer = _like_trainer_optimizer(clock.optimizer, result.model)
    clock.optimizer = None  # the trainer's optimiser state is freed before the bare loop
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    bare_s, bare_cpu = bare_loop(result.model, recorders[0].collator, recorded, optimizer, warmup, bool(clock.args.bf16))
    bare_peak = torch.cuda.max_memory_allocated() if cuda else None
    fused = optimizer.defaults.get("fused")
    return {"stage": name, "batch": batch, "samples": samples, "trainer": samples / trainer_s, "bare": samples / bare_s,
            "cpu_ratio": bare_cpu / trainer_cpu,
            "threads": clock.threads, "optimizer": f"AdamW{' (fused)' if fused else ''}", "model": result.model,
            "trainer_peak": trainer_peak, "bare_peak": bare_peak, "bf16": bool(clock.args.bf16)}


def print_table(title: str, rows: list[dict]) -> None:
    print(title)
    memory = any(r["trainer_peak"] is not None for r in rows)
    head = (f"{'stage':<10} {'batch':>5} {'timed':>6}  {'trainer samples/s':>17}  {'bare samples/s':>14}  {'ratio':>5}  "
            f"{'CPU-time ratio':>14}")
    print(head + ("  peak GPU memory trainer / bare" if memory else ""))
    for r in rows:
        line = (f"{r['stage']:<10} {r['batch']:>5} {r['samples']:>6}  {r['trainer']:>17.2f}  {r['bare']:>14.2f}  "
                f"{r['trainer'] / r['bare']:>5.2f}  {r['cpu_ratio']:>14.2f}")
        if memory:
            line += f"  {r['trainer_peak'] / 2**30:.1f} / {r['bare_peak'] / 2**30:.1f} GiB"
        print(line)


def demo_stages(args, pool, convs, tok, out: Path) -> list[dict]:
    """The demo's base training, stage 1 and stage 2 on the demo model (or ``--quick``'s smaller one)."""
    feats = random_features(len(pool))
    model, _ = vlm.build_model(QUICK_MODEL if args.quick else vlm.DEMO_MODEL, processor=tok)
    rows = []
    demo, lora = DEMO, tuning.lora_config(**DEMO["lora"])
    settings = (("base", demo["base_training"], None), ("reasoning", demo["reasoning_tuning"], lora),
                ("location", demo["location_tuning"], lora))
    for name, hparams, lora in settings:
        row = time_stage(model, tok, convs[name], name, hparams, lora, feats, out, args.warmup, args.steps)
        model = row.pop("model")  # base → stage 1 on it → stage 2 on top of stage 1
        rows.append(row)
    return rows


def paper_stage(args, pool, tok, out: Path, device_check: bool = True) -> dict | None:
    """Stage 1 on the paper's architecture at reduced depth (random weights, bf16, LoRA r=64) on the GPU."""
    if device_check and not torch.cuda.is_available():
        print("--gpu: skipped (torch.cuda.is_available() is False)")
        return None
    from PIL import Image

    text = dict(PAPER_TEXT, num_hidden_layers=args.gpu_layers, max_window_layers=args.gpu_layers)
    vision = dict(PAPER_VISION, depth=args.gpu_vision_depth, fullatt_block_indexes=[args.gpu_vision_depth - 1])
    config, processor = vlm.random_qwen25vl(tok, text=text, vision=vision, min_pixels=56 * 56, max_pixels=448 * 448)
    spec = dict(vlm.PAPER_MODEL, revision="0" * 40, dtype=args.gpu_dtype)  # revision: unused with a config
    model, processor = vlm.build_model(spec, processor=processor, config=config)
    paper = params.notebook_values("04_reasoning_tuning", "paper")
    hp = dict(paper["reasoning_tuning"], per_device_train_batch_size=args.gpu_batch)
    n = (args.warmup + args.steps + 1) * args.gpu_batch
    rng = np.random.default_rng(0)
    folder = out / "images"
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        path = folder / f"{i:04d}.jpg"
        Image.fromarray(rng.integers(0, 256, (448, 448, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(str(path))
    convs = conversations.make_conversations(pool.iloc[:n].assign(image_path=paths), "reasoning", image_column="image_path")
    row = time_stage(model, processor, convs, "reasoning", hp, tuning.lora_config(**paper["lora"]), None, out,
                     args.warmup, args.steps)
    row["parameters"] = vlm.trainable_parameter_report(row.pop("model"))
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller demo model, 1 warm-up + 4 timed steps")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps per stage (default 2, quick 1)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per stage (default 10, quick 4)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: all cores)")
    parser.add_argument("--gpu", action="store_true", help="also the paper architecture on the GPU (if any)")
    parser.add_argument("--gpu-layers", type=int, default=4, help="decoder layers of the paper model (7B: 28)")
    parser.add_argument("--gpu-vision-depth", type=int, default=4, help="vision blocks of the paper model (7B: 32)")
    parser.add_argument("--gpu-batch", type=int, default=4, help="per-device batch of the paper model")
    parser.add_argument("--gpu-dtype", default="bfloat16", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.steps = args.steps if args.steps is not None else (4 if args.quick else 10)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be >= 1")
    threads = args.threads or features.default_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)

    batch = max(DEMO["base_training"]["per_device_train_batch_size"], DEMO["reasoning_tuning"]["per_device_train_batch_size"],
                args.gpu_batch)
    pool = scene_pool(max(400, (args.warmup + args.steps + 1) * batch))  # >= 400 texts for the tokenizer
    convs = stage_conversations(pool)
    tok = vlm.train_tokenizer(conversations.conversation_texts([c for v in convs.values() for c in v])
                              + list(conversations.PROMPTS.values()), TOKENIZER_VOCAB)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    if load > features.default_num_threads() and threads > 1:
        print(f"note: load average {load:.1f} exceeds the {features.default_num_threads()} cores: other processes "
              f"compete, and with several torch threads each parallel op waits for the slowest thread: figures drop and swing; try --threads 1")
    with tempfile.TemporaryDirectory() as tmp:
        rows = demo_stages(args, pool, convs, tok, Path(tmp))
        gpu_row = paper_stage(args, pool, tok, Path(tmp) / "paper") if args.gpu else None
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    spec = vlm.ModelSpec.coerce(QUICK_MODEL if args.quick else vlm.DEMO_MODEL)
    device = "cuda " + torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"vlm tuning benchmark: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"torch {torch.__version__}, transformers {__import__('transformers').__version__}, {device}")
    print(f"torch threads {rows[0]['threads']} (trainer and bare loop); load average {load:.2f} before, "
          f"{load_after:.2f} after; optimiser {rows[0]['optimizer']}{', bf16 autocast' if rows[0]['bf16'] else ''}")
    print(f"demo model: {spec.num_layers} layers x {spec.hidden_size} wide, vocabulary {len(tok)}, {spec.image_grid ** 2} image tokens; "
          f"{args.warmup} warm-up + {args.steps} timed steps per stage, batches as notebook 04/05's base_training / reasoning_tuning / location_tuning")
    print_table("trainer = tuning.train_stage (Trainer); bare = collate + forward + backward + AdamW step, same batches; "
                "ratio = trainer / bare samples/s (target >= 0.80), also from CPU time", rows)
    if gpu_row is not None:
        p = gpu_row["parameters"]
        print(f"\npaper architecture (Qwen2.5-VL-7B widths, {args.gpu_layers} of 28 layers, vision depth "
              f"{args.gpu_vision_depth} of 32, random weights, {args.gpu_dtype}, activation checkpointing, LoRA r=64): "
              f"{p['total'] / 1e9:.2f}B parameters, {p['lora'] / 1e6:.1f}M LoRA; 448x448 images")
        print_table("stage 1 (the paper's reasoning_tuning, no gradient accumulation)", [gpu_row])
    return rows + ([gpu_row] if gpu_row else [])


if __name__ == "__main__":
    main()
