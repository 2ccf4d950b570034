"""Which stage-2 recipe lets the demo model locate held-out cities? A measurement on a finished run.

Notebook 05 trains GeoReasoner's location tuning with the notebooks' LoRA settings; this script
trains the same stage (same conversations: notebook 03's curated split, same base and stage 1 of
``runs/<profile>/``) with other adapters, ranks, epochs and starting points, and scores each with
notebook 06's closed-set diagnostic: the best-scoring training country in the answer slot, on 300
of the stage's own training images ("fit") and on every test image. The linear probe of notebook
06 on the same frozen features is printed beside it, trained on the same curated images and on
every training-city image.

Every recipe goes through the study's own :func:`geolib.tuning.train_stage`; its folder under
``--out`` is found and loaded when it is finished, so a rerun only scores (the training time shown
is the one the trainer logged when it trained). Nothing in
``runs/<profile>/checkpoints`` is written.

Usage (after ``make run PROFILE=demo ONLY="00 01 02 03 04"``)::

    python -m scripts.stage2_recipes --profile demo --workers 2

It prints a Markdown table and writes it, with the settings, to ``<out>/stage2_recipes.json``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

#: name → (stages under it, LoRA (r, alpha) or None for a full fine-tune, learning rate, epochs).
#: The first is notebook 05's own (``lora`` and ``location_tuning`` of notebooks 04-05).
RECIPES = {
    "demo settings: stage 1, LoRA r64, 10 epochs": (("reasoning",), (64, 128), 1e-3, 10),
    "stage 1, LoRA r16, 3 epochs (the first demo settings)": (("reasoning",), (16, 32), 1e-3, 3),
    "stage 1, LoRA r16, 10 epochs": (("reasoning",), (16, 32), 1e-3, 10),
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

    start, lora, lr, epochs = RECIPES[name]
    spec = model_spec(profile)
    inputs = stages.stage_inputs(profile, "location", spec)
    model, processor = stages.study_model(profile, spec, start)
    config = None if lora is None else tuning.lora_config(r=lora[0], lora_alpha=lora[1], lora_dropout=LORA_DROPOUT,
                                                          projector=True)
    result = tuning.train_stage(model, processor, inputs.conversations, inputs.adapter,
                                {**SETTINGS, "learning_rate": lr, "num_train_epochs": epochs}, config,
                                _folder(Path(out), name), images=inputs.images)
    pool = datasets.study_pool(profile)
    names = sorted({conversations.country_name(c) for c in inputs.frame["country"]})
    runtime = [e["train_runtime"] for e in result.log_history if "train_runtime" in e]  # logged when it trained
    row = {"recipe": name, "train_seconds": round(runtime[-1], 1) if runtime else None}
    for split, frame in (("fit", inputs.frame.sample(min(FIT_IMAGES, len(inputs.frame)), random_state=0)),
                         ("test", pool[pool["split"] == "test"])):
        scores = inference.closed_set_scores(result.model, processor, np.asarray(inputs.images)[frame["row"].to_numpy()],
                                             names, prompt=conversations.PROMPTS["location"])
        truth = [conversations.country_name(c) for c in frame["country"]]
        row[f"{split}_top1"] = inference.closed_set_accuracy(scores, names, truth, k=(1,))["top1"]
        row[f"{split}_distinct"] = int(len(set(scores.argmax(1))))
    return row


def probe_rows(profile: str) -> list[dict]:
    """Notebook 06's linear probe (pooled features, C chosen on the validation cities from its
    ``probe_c_grid``) trained on the curated images and on every training-city image."""
    from geolib import baselines, datasets, evaluation, features, params, paths

    pool = datasets.study_pool(profile)
    feats = features.image_features(pool["image_path"].tolist(), paths.cache_dir(profile) / "features_efficientnet_lite0.npy",
                                    pooled=True)
    curated = datasets.read_manifest(paths.data_dir(profile) / "split_train_curated.parquet")
    train, val, test = (pool[pool["split"] == s] for s in ("train", "val", "test"))
    c, _ = baselines.select_probe_c(feats[train["row"].to_numpy()], train, feats[val["row"].to_numpy()], val,
                                    params.notebook_values("06_evaluation", profile)["probe_c_grid"])
    rows = []
    for name, frame in (("linear probe, curated images", train[train["image_id"].isin(curated["image_id"])]),
                        ("linear probe, every training-city image", train)):
        pred = baselines.linear_probe_baseline(feats[frame["row"].to_numpy()], frame, feats[test["row"].to_numpy()], test, C=c)
        right, _ = evaluation.correct_and_answered(pred["pred_country"], test["country"])
        rows.append({"recipe": f"{name} (C = {c:g})", "test_top1": float(right.mean()),
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
        print(f"| {r['recipe']} | {r.get('train_seconds') or '–'} | {fit} | {r['test_top1']:.1%} | {r['test_distinct']} |")
    gio.write_json(out / "stage2_recipes.json", {"profile": args.profile, "settings": SETTINGS,
                                                  "recipes": {n: RECIPES[n] for n in names}, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
