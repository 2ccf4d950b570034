"""The study's stages of the vision-language model: which stages, their settings, inputs and folders.

Used by notebooks 04_reasoning_tuning (the demo tokenizer, base training and stage 1),
05_location_tuning (stage 2 and its ablation and data-quality arms), 06_evaluation (the models
of its tables, :func:`answer_study_model`) and 07_gre_reasoning_rl (the untuned base, the
cold start's folders), and by ``python -m geolib.train`` (a LoRA stage under
``accelerate launch``). The study's layout by profile: checkpoint folders
(:func:`checkpoint_dir`), what the model sees of the
pool's images (:func:`study_images`), each LoRA stage's conversations (:func:`stage_inputs`),
and the study's model with finished stages stacked on it (:func:`study_model`). The model,
tuning and inference modules know nothing of this layout; only this module and the notebooks do.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geolib import io as gio
from geolib import conversations, inference, tuning, vlm


# ---------------------------------------------------------------------------------------------
# The study's layout: where notebooks 04-07 keep the model, and what they feed it

#: Checkpoint folders under ``runs/<profile>/checkpoints/vlm/``: the demo's tokenizer and base
#: model (notebook 04), stage 1 (04), stage 2 and its ablation arms (05), GRE (07).
STUDY_STAGES = {
    "reasoning": ("reasoning",),  # stage 1 only ("without location tuning")
    "location_only": ("location_only",),  # stage 2 on the base model ("without reasoning tuning")
    "full": ("reasoning", "location"),  # GeoReasoner: stage 2 on top of stage 1
    "uncurated": ("reasoning", "location_uncurated"),  # stage 2 on a random sample of the curated split's size
}

#: GeoReasoner's data-quality experiment (notebooks 03, 05, 06): stage 2 on top of stage 1 on sets
#: of one size whose share of highly locatable images is 0, 25, 50, 75 or 100%.
QUALITY_SHARES = (0, 25, 50, 75, 100)
STUDY_STAGES.update({f"quality_{pct:03d}": ("reasoning", f"location_quality_{pct:03d}") for pct in QUALITY_SHARES})


def study_tokenizer(profile: str, texts: Sequence[str], vocab_size: int):
    """The demo tokenizer, trained on ``texts`` once and kept in ``checkpoints/vlm/processor``.

    A rerun with the same corpus and size reloads it; a changed corpus trains a new one (and the
    stages trained with the old one then retrain, their fingerprints include the tokenizer).
    """
    folder = checkpoint_dir(profile, "processor")
    digest = hashlib.sha256(json.dumps([vocab_size, list(texts)]).encode()).hexdigest()
    stamp = folder / "corpus.json"
    if stamp.exists() and gio.read_json(stamp).get("sha256") == digest:
        return vlm.load_processor(folder)
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = vlm.train_tokenizer(texts, vocab_size, tmp)
    gio.write_json(tmp / "corpus.json", {"sha256": digest, "n_texts": len(texts), "vocab_size": vocab_size})
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return tokenizer


def checkpoint_dir(profile: str, name: str) -> Path:
    """``runs/<profile>/checkpoints/vlm/<name>`` (``processor``, ``base``, ``reasoning``, ``location``, ...)."""
    from geolib import paths

    return paths.checkpoints_dir(profile) / "vlm" / name


def study_images(pool, spec: vlm.ModelSpec | Mapping[str, Any], profile: str, batch_size: int = 32):
    """What the model sees of the pool's images, indexable by pool row.

    Demo: the frozen tower's token maps (N, 49, 1280), computed once and cached in the same file
    notebook 02 uses (``cache/features_<tower>.npy``), pooled to the model's ``image_grid``
    (:func:`geolib.vlm.pool_tokens`; in memory); hub models: the image paths.
    """
    spec = vlm.ModelSpec.coerce(spec)
    if spec.model_id != "demo":
        return [str(p) for p in pool["image_path"]]
    from geolib import features, paths

    cache = paths.cache_dir(profile) / f"features_{spec.image_tower}.npy"
    tokens = features.image_features(pool["image_path"].tolist(), cache, batch_size=batch_size, tower=spec.image_tower)
    return vlm.pool_tokens(tokens, spec.image_grid)


def pool_rows(pool, frame) -> np.ndarray:
    """Positions in ``pool`` of the images of ``frame`` (matched on ``image_id``)."""
    index = {k: i for i, k in enumerate(pool["image_id"])}
    missing = [k for k in frame["image_id"] if k not in index]
    if missing:
        raise KeyError(f"{len(missing)} images of the frame are not in the pool, e.g. {missing[:3]}")
    return np.array([index[k] for k in frame["image_id"]], dtype=np.int64)


@dataclass
class StageInputs:
    """What one LoRA stage of the study trains on (:func:`stage_inputs`).

    Attributes:
        conversations: the stage's conversations (image keys index ``images``).
        images: cached tower features (demo) or None (hub models read image paths).
        frame: the rows the conversations come from.
        adapter: the adapter's name (``reasoning`` or ``location``).
        start: finished stages stacked under it before training (``()``: the base model).
    """

    conversations: list
    images: Any
    frame: Any
    adapter: str
    start: tuple[str, ...]


#: The LoRA stages notebooks 04 and 05 train (and ``python -m geolib.train`` runs under
#: ``accelerate launch``): adapter name, the stages under it, the split it trains on.
LORA_STAGES = {
    "reasoning": ("reasoning", (), "train"),
    "location": ("location", ("reasoning",), "train_curated"),
    "location_only": ("location", (), "train_curated"),
    "location_uncurated": ("location", ("reasoning",), "train_uncurated"),
    **{f"location_quality_{pct:03d}": ("location", ("reasoning",), f"train_quality_{pct:03d}") for pct in QUALITY_SHARES},
}


def evaluation_sample(test_pool, images, max_images: int = 0, seed: int = 0):
    """The test images a notebook answers (06, 07): all, or a random sample of ``max_images`` in pool order.

    Args:
        test_pool: the test split's rows (with the pool's ``row``).
        images: :func:`study_images` (an array of the demo's features, or a list of paths).
        max_images: the sample's size (0: every test image).
        seed: the sample's random state.

    Returns:
        The rows answered and what the model sees of them, in the same order.
    """
    pool = test_pool
    if max_images and len(test_pool) > max_images:
        pool = test_pool.sample(max_images, random_state=seed).sort_values("row")
    rows = pool["row"].to_numpy()
    return pool, ([images[i] for i in rows] if isinstance(images, list) else np.asarray(images)[rows])


def stage_inputs(profile: str, stage: str, spec: vlm.ModelSpec | Mapping[str, Any], clue_corpus: str = "") -> StageInputs:
    """The conversations and images of one of the study's LoRA stages (:data:`LORA_STAGES`).

    Stage 1 (``reasoning``) trains on every image of the training cities with its reasoning
    text, or on GeoReasoner's reasoning data when ``clue_corpus`` names it (a file under
    ``$GEOLIB_DATA``); the stage-2 arms train on notebook 03's curated or uncurated split.
    Notebooks and the multi-GPU entry point call this one function, so a stage trained by
    either is the same stage (same fingerprint) for the other.
    """
    from geolib import corpora, datasets, paths

    if stage not in LORA_STAGES:
        raise ValueError(f"unknown stage {stage!r}; known: {sorted(LORA_STAGES)}")
    adapter, start, split_name = LORA_STAGES[stage]
    spec = vlm.ModelSpec.coerce(spec)
    if stage == "reasoning" and clue_corpus:
        corpus, report = corpora.load_georeasoner_sft(paths.real_data_root() / clue_corpus)
        print(report)
        convs = conversations.make_conversations(corpus, "reasoning", image_column="image_path",
                                                 reasons_column="reasons")
        return StageInputs(convs, None, corpus, adapter, start)
    pool = datasets.study_pool(profile)
    if split_name == "train":
        frame = pool[pool["split"] == "train"]
    else:
        frame = datasets.read_manifest(paths.data_dir(profile) / f"split_{split_name}.parquet")
        frame = frame.assign(row=pool_rows(pool, frame))
    images = study_images(pool, spec, profile) if spec.model_id == "demo" else None
    column = "row" if images is not None else "image_path"
    convs = conversations.make_conversations(frame, adapter, image_column=column)
    return StageInputs(convs, images, frame, adapter, start)


def run_lora_stage(profile: str, stage: str, spec: vlm.ModelSpec | Mapping[str, Any], settings: Mapping[str, Any],
                   lora, clue_corpus: str = "") -> tuning.StageResult:
    """Train (or load, when finished) one of the study's LoRA stages on its base and earlier stages.

    Args:
        profile, stage, spec: the run, the stage (:data:`LORA_STAGES`) and the model.
        settings: the stage's settings (notebook 04's ``reasoning_tuning``, 05's ``location_tuning``;
            :func:`geolib.tuning.training_arguments`).
        lora: the stage's peft ``LoraConfig``.
        clue_corpus: stage 1 on the paper profile: GeoReasoner's reasoning data (:func:`stage_inputs`).
    """
    inputs = stage_inputs(profile, stage, spec, clue_corpus)
    model, processor = study_model(profile, spec, inputs.start)
    return tuning.train_stage(model, processor, inputs.conversations, inputs.adapter, dict(settings), lora,
                              checkpoint_dir(profile, stage), images=inputs.images)


def study_model(profile: str, spec: vlm.ModelSpec | Mapping[str, Any], stages: Sequence[str] = ()):
    """The study's model with finished stages stacked on it: ``(model, processor)``.

    Args:
        profile: the run profile (checkpoints under ``runs/<profile>/``).
        spec: the model (``model`` parameter of notebooks 04-07).
        stages: checkpoint names in training order, e.g. ``("reasoning", "location")``, or a key
            of :data:`STUDY_STAGES`; ``()``: the untuned base (demo: after base training).
    """
    spec = vlm.ModelSpec.coerce(spec)
    if isinstance(stages, str):
        if stages not in STUDY_STAGES:
            raise ValueError(f"unknown model {stages!r}; known: {sorted(STUDY_STAGES)}")
        stages = STUDY_STAGES[stages]
    if spec.model_id == "demo":
        base_dir = checkpoint_dir(profile, "base")
        if not (base_dir / "stage.json").exists():
            raise FileNotFoundError(f"no demo base model in {base_dir}: run notebook 04_reasoning_tuning first")
        model, processor = vlm.load_model(base_dir, spec.dtype)
    else:
        model, processor = vlm.build_model(spec)
    if stages:
        model = tuning.load_staged_model(model, [checkpoint_dir(profile, s) for s in stages])
    model.eval()
    return model, processor


def answer_study_model(profile: str, spec, stages: Sequence[str], images_or_features, image_ids: Sequence[str], prompt: str,
                       max_new_tokens: int = 128, batch_size: int = 16, candidates: Sequence[str] | None = None,
                       reasons_prompt: str | None = None, reasons_max_new_tokens: int = 160) -> dict:
    """One model of notebook 06's tables answering the test images: the study's model with ``stages``
    stacked (:func:`study_model`), greedy answers to ``prompt`` (:func:`geolib.inference.answer_images`),
    optionally the closed-set scores of ``candidates`` in the answer slot and a second generation
    with ``reasons_prompt``. Self-contained (it loads the model itself), so notebook 06 can run
    its models side by side in worker processes (:func:`geolib.runtime.in_processes`).

    Returns:
        ``{"answers": predictions, "slot_scores": (images, candidates) log-likelihoods or None,
        "reasons": predictions of the reasons prompt or None, "seconds": float}``.
    """
    import time

    start = time.perf_counter()
    model, processor = study_model(profile, spec, stages)
    out = {"answers": inference.answer_images(model, processor, images_or_features, image_ids, prompt=prompt,
                                              max_new_tokens=max_new_tokens, batch_size=batch_size, progress=False),
           "slot_scores": None, "reasons": None}
    if candidates is not None:
        out["slot_scores"] = inference.closed_set_scores(model, processor, images_or_features, list(candidates),
                                                         prompt=prompt, batch_size=batch_size)
    if reasons_prompt is not None:
        out["reasons"] = inference.answer_images(model, processor, images_or_features, image_ids, prompt=reasons_prompt,
                                                 max_new_tokens=reasons_max_new_tokens, batch_size=batch_size,
                                                 progress=False)
    out["seconds"] = time.perf_counter() - start
    return out


__all__ = [
    "STUDY_STAGES", "QUALITY_SHARES", "checkpoint_dir", "study_images", "pool_rows", "study_model", "evaluation_sample",
    "study_tokenizer", "StageInputs", "LORA_STAGES", "stage_inputs", "run_lora_stage",
    "answer_study_model",
]
