"""GRPO step time of the demo RL stage through ``geolib.grpo.train_grpo``, beside TRL's trainer alone in the same run.

Figure: seconds per GRPO step with notebook 07's demo settings (``gre_grpo`` and ``grpo_lora``: 8 sampled
chains for each of 2 images, completions up to 128 tokens, KL beta 0.04, LoRA r 16) through
:func:`geolib.grpo.train_grpo`, the path of notebook 07 (the format and distance rewards parsing
every completion, the θ schedule, the curve writer, the fingerprint), and the minutes that
the demo's ``max_steps`` take at that rate, against the budget of issue 7: GRPO within 15
minutes on 2 CPU cores.

Baseline, measured in the same run on the same starting weights, prompts, features, ``GRPOConfig``
and LoRA: TRL's ``GRPOTrainer`` called directly with a constant reward and no callbacks, i.e. what
TRL itself costs. ratio = baseline s/step / train_grpo s/step (1.0: geolib adds nothing; the
target is >= 0.9).

Timing: each arm trains ``--steps`` steps; the figure is TRL's own ``train_runtime`` over the steps
(set-up before ``train()`` is left out, the first step's warm-up is in both arms alike). The arms
alternate ``--repeats`` times (TRL, geolib, TRL, geolib, ...) from the same starting weights and
the best run of each is kept, so a burst of load on a shared machine does not decide the ratio. The model
is the demo architecture (:data:`geolib.vlm.DEMO_MODEL`) with random weights and random features
(N, 49, 1280), prompts and coordinates from ``geolib.world`` scene specs (no image is rendered),
a byte-level BPE trained on the scenes' texts (as ``benchmarks/tuning.py``). A random model
seldom writes the end-of-turn token, so nearly every completion runs to the 128-token limit
(TRL's ``completions/clipped_ratio``); the trained demo model's chains are 82-120 tokens, so the
figure is an upper bound for the notebook's steps. TRL's per-step log lines are kept off the
screen. No hub.

    python benchmarks/grpo.py                          # 6 steps per run, best of 2 per arm, one thread
    python benchmarks/grpo.py --steps 3 --repeats 1    # quicker
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

from geolib import chains, conversations, grpo, params, rewards, tuning, vlm  # first: vlm patches torchvision before torch and transformers load

import torch
from tuning import TOKENIZER_VOCAB, random_features, scene_pool

#: Issue 7's budget for the demo's GRPO stage on 2 CPU cores.
BUDGET_MINUTES = 15.0


def constant_reward(completions, **kwargs):
    """The baseline's reward: 0 for every completion (no parsing)."""
    return [0.0] * len(completions)


def run_geolib(model, tok, dataset, feats, settings: dict, lora, out: Path) -> float:
    """Seconds per step through :func:`geolib.grpo.train_grpo`."""
    result = grpo.train_grpo(model, tok, dataset, rewards.ThetaSchedule(), settings, out, images=feats, resume=False,
                             lora_config=lora)
    return result.metrics["train_runtime"] / settings["max_steps"]


def run_trl(model, tok, dataset, feats, settings: dict, lora, out: Path) -> float:
    """Seconds per step through TRL's ``GRPOTrainer`` alone (same config, LoRA and processor wrapper)."""
    from trl import GRPOTrainer

    trainer = GRPOTrainer(model=model, reward_funcs=[constant_reward], args=grpo.grpo_config(out, settings),
                          train_dataset=dataset, processing_class=grpo.FeatureProcessor(tok, feats),
                          peft_config=lora)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        output = trainer.train()
    return output.metrics["train_runtime"] / settings["max_steps"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="GRPO steps per arm (default 6)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1, as notebook 07)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per arm, best kept (default 2)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be >= 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    demo = params.notebook_values("07_gre_reasoning_rl")  # the notebook's own settings
    settings = dict(demo["gre_grpo"], max_steps=args.steps, save_steps=10_000, logging_steps=1)
    lora = tuning.lora_config(**demo["grpo_lora"])
    images_per_step = settings["per_device_train_batch_size"] // settings["num_generations"]
    pool = scene_pool(max(400, images_per_step * args.steps))
    tok = vlm.train_tokenizer(pool["reasoning"].dropna().tolist() + [chains.GRE_PROMPT] + list(conversations.PROMPTS.values()),
                              TOKENIZER_VOCAB)
    feats = random_features(len(pool))
    dataset = grpo.grpo_dataset(pool)
    start, _ = vlm.build_model(vlm.DEMO_MODEL, processor=tok)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        trl_runs, ours_runs = [], []
        with contextlib.redirect_stdout(io.StringIO()):  # TRL prints every step's log dict
            for r in range(args.repeats):
                trl_runs.append(run_trl(copy.deepcopy(start), tok, dataset, feats, settings, lora, Path(tmp) / f"trl{r}"))
                ours_runs.append(run_geolib(copy.deepcopy(start), tok, dataset, feats, settings, lora, Path(tmp) / f"geolib{r}"))
        trl_s, ours_s = min(trl_runs), min(ours_runs)
        wall = time.perf_counter() - t0
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    demo_steps = demo["gre_grpo"]["max_steps"]
    projected = ours_s * demo_steps / 60.0
    spec = vlm.ModelSpec.coerce(vlm.DEMO_MODEL)
    print(f"GRPO benchmark: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"torch {torch.__version__}, trl {__import__('trl').__version__}, {os.cpu_count()} cores, "
          f"torch threads {args.threads}; load average {load:.2f} before, {load_after:.2f} after; {wall:.0f} s in all")
    print(f"demo model {spec.num_layers} layers x {spec.hidden_size} wide (random weights), vocabulary {len(tok)}; "
          f"{settings['num_generations']} generations x {images_per_step} images a step, completions up to "
          f"{settings['max_completion_length']} tokens; {args.steps} steps per run, best of {args.repeats} alternating runs per arm")
    print(f"  TRL GRPOTrainer alone (constant reward):   {trl_s:6.2f} s/step")
    print(f"  geolib.grpo.train_grpo (notebook 07 path):  {ours_s:6.2f} s/step   ratio TRL / geolib = "
          f"{trl_s / ours_s:.2f} (target >= 0.90)")
    print(f"  the demo's {demo_steps} steps at this rate: {projected:.1f} min (budget {BUDGET_MINUTES:.0f} min on 2 cores: "
          f"{'met' if projected <= BUDGET_MINUTES else 'NOT met'})")
    return {"trl_s_per_step": trl_s, "geolib_s_per_step": ours_s, "ratio": trl_s / ours_s, "projected_min": projected}


if __name__ == "__main__":
    main()
