"""Which stage-2 recipe lets the demo model locate held-out cities? A measurement on a finished run.

Notebook 05 trains GeoReasoner's location tuning with the notebooks' LoRA settings; this script
trains the same stage (same conversations: notebook 03's curated split, same base and stage 1 of
``runs/<profile>/``) with other adapters, ranks, epochs and starting points, and scores each with
notebook 06's closed-set diagnostic: the best-scoring training country in the answer slot, on 300
of the stage's own training images ("fit") and on every test image. The linear probe of notebook
06 on the same frozen features is printed beside it, trained on the same curated images and on
every training-city image.

Every recipe goes through the study's own :func:`geolib.tuning.train_stage`; its folder under
``--out`` is found and loaded when it is finished, so a rerun only scores. Nothing in
``runs/<profile>/checkpoints`` is written.

Usage (after ``make run PROFILE=demo ONLY="00 01 02 03 04"``)::

    python -m scripts.stage2_recipes --profile demo --workers 2

It prints a Markdown table and writes it, with the settings, to ``<out>/stage2_recipes.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

#: name → (stages under it, LoRA (r, alpha) or None for a full fine-tune, learning rate, epochs).
#: The first is notebook 05's own (``lora`` and ``location_tuning`` of notebooks 04-05).
RECIPES = {
    "demo settings: stage 1, LoRA r16, 3 epochs": (("reasoning",), (16, 32), 1e-3, 3),
    "stage 1, LoRA r16, 10 epochs": (("reasoning",), (16, 32), 1e-3, 10),
    "stage 1, LoRA r64, 10 epochs": (("reasoning",), (64, 128), 1e-3, 10),
    "base, LoRA r16, 10 epochs": ((), (16, 32), 1e-3, 10),
    "base, LoRA r64, 10 epochs": ((), (64, 128), 1e-3, 10),
    "base, LoRA r64, 16 epochs": ((), (64, 128), 1e-3, 16),
    "base, full fine-tune, 8 epochs": ((), None, 1e-3, 8),
}

#: notebook 05's ``location_tuning`` but for the learning rate and the epochs.
SETTINGS = {"lr_scheduler_type": "cosine", "warmup_ratio": 0.01, "weight_decay": 0.1, "adam_beta2": 0.95,
            "effective_batch_size": 16, "per_device_train_batch_size": 16, "max_length": 256,
            "gradient_checkpointing": False}
LORA_DROPOUT = 0.05  # notebooks 04-05's ``lora["lora_dropout"]``
FIT_IMAGES = 300


def _folder(out: Path, name: str) -> Path:
    return out / "".join(c if c.isalnum() else "_" for c in name).strip("_")


def model_spec(profile: str):
    """The run's model (notebook 04's ``model`` parameter); the demo's small model only."""
    from geolib import params, vlm

    spec = vlm.ModelSpec.coerce(params.notebook_values("04_reasoning_tuning", profile)["model"])
    if spec.model_id != "demo":
        raise ValueError(f"profile {profile!r} tunes {spec.model_id}: this comparison retrains stage 2 seven times "
                         "and is meant for the demo's small model (profiles demo and ci)")
    return spec


def run_recipe(profile: str, name: str, out: str) -> dict:
    """Train (or load) one recipe of :data:`RECIPES` and score it; returns one table row."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np

    from geolib import conversations, datasets, inference, stages, tuning

    from peft import LoraConfig  # after geolib (its torchvision patch), as in the notebooks

    start, lora, lr, epochs = RECIPES[name]
    spec = model_spec(profile)
    inputs = stages.stage_inputs(profile, "location", spec)
    model, processor = stages.study_model(profile, spec, start)
    config = None
    if lora is not None:
        config = LoraConfig(r=lora[0], lora_alpha=lora[1], lora_dropout=LORA_DROPOUT, bias="none", task_type="CAUSAL_LM",
                            target_modules=tuning.lora_targets(projector=True))
    began = time.perf_counter()
    result = tuning.train_stage(model, processor, inputs.conversations, inputs.adapter,
                                {**SETTINGS, "learning_rate": lr, "num_train_epochs": epochs}, config,
                                _folder(Path(out), name), images=inputs.images)
    seconds = time.perf_counter() - began
    pool = datasets.study_pool(profile)
    countries = sorted(set(inputs.frame["country"]))
    names = [conversations.country_name(c) for c in countries]
    row = {"recipe": name, "train_seconds": round(seconds, 1), "trained": result.trained}
    for split, frame in (("fit", inputs.frame.sample(min(FIT_IMAGES, len(inputs.frame)), random_state=0)),
                         ("test", pool[pool["split"] == "test"])):
        scores = inference.closed_set_scores(result.model, processor, np.asarray(inputs.images)[frame["row"].to_numpy()],
                                             names, prompt=conversations.PROMPTS["location"])
        best = np.asarray(countries)[scores.argmax(1)]
        row[f"{split}_top1"] = float((best == frame["country"].to_numpy()).mean())
        row[f"{split}_distinct"] = int(len(set(best)))
    return row


def probe_rows(profile: str) -> list[dict]:
    """Notebook 06's linear probe (pooled features, C = 1) on the curated and on all training images."""
    import numpy as np

    from geolib import baselines, datasets, features, paths

    pool = datasets.study_pool(profile)
    feats = features.image_features(pool["image_path"].tolist(), paths.cache_dir(profile) / "features_efficientnet_lite0.npy",
                                    pooled=True)
    curated = datasets.read_manifest(paths.data_dir(profile) / "split_train_curated.parquet")
    train = pool[pool["split"] == "train"]
    test = pool[pool["split"] == "test"]
    rows = []
    for name, frame in (("linear probe, curated images", train[train["image_id"].isin(curated["image_id"])]),
                        ("linear probe, every training-city image", train)):
        pred = baselines.linear_probe_baseline(feats[frame["row"].to_numpy()], frame, feats[test["row"].to_numpy()], test)
        rows.append({"recipe": name, "test_top1": float(np.mean(pred["pred_country"].to_numpy() == test["country"].to_numpy())),
                     "test_distinct": int(pred["pred_country"].nunique())})
    return rows


def main(argv=None) -> int:
    from geolib import io as gio
    from geolib import paths, runtime

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--workers", type=int, default=2, help="recipes trained side by side, one torch thread each")
    ap.add_argument("--out", default=None, help="folder of the recipes' stages (default runs/<profile>/stage2_recipes)")
    ap.add_argument("--only", nargs="*", default=None, help="recipe names to run (default: all)")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else paths.run_dir(args.profile) / "stage2_recipes"
    try:
        model_spec(args.profile)
    except ValueError as e:
        ap.error(str(e))
    names = args.only or list(RECIPES)
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        ap.error(f"unknown recipes {unknown}; known: {list(RECIPES)}")
    rows = runtime.in_processes(run_recipe, [dict(profile=args.profile, name=n, out=str(out)) for n in names],
                                workers=args.workers) + probe_rows(args.profile)
    print("| recipe | train s | fit top-1 | test top-1 | distinct countries (test) |\n|---|---|---|---|---|")
    for r in rows:
        fit = f"{r['fit_top1']:.1%}" if "fit_top1" in r else "–"
        seconds = r.get("train_seconds", "–") if r.get("trained", True) else "loaded"
        print(f"| {r['recipe']} | {seconds} | {fit} | {r['test_top1']:.1%} | {r['test_distinct']} |")
    gio.write_json(out / "stage2_recipes.json", {"profile": args.profile, "settings": SETTINGS,
                                                  "recipes": {n: RECIPES[n] for n in names}, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
