"""GRE Suite's method: reasoning chains, cold-start conversations, GRPO, GREval-style scores (07_gre_reasoning_rl).

GRE (Wang et al., NeurIPS 2025) teaches a vision-language model to answer in a structured chain,
``<think>…</think><answer>latitude, longitude</answer>``, in three stages: cold-start SFT on
reasoning chains (GRE30K-CoT), then GRPO reinforcement learning on a format reward and a
distance-shaped reward (:mod:`geolib.rewards`). GREval-Bench scores the answers per scene type and
distance granularity, and the chains for the clues they use.

What this module holds (the notebook keeps the prompt, the rewards and the settings visible):

* **Chains** (:func:`build_chain`): GRE's multi-stage reasoning written only from what the image
  shows, in four ordered steps, (1) scene and architecture, (2) text and language, (3) vegetation
  and terrain, (4) transport and road markings, then a conclusion and the coordinates
  (latitude first, 4 decimals). A step with nothing visible says so. On the demo world the
  visible clues are the pool's ``clues`` column (:mod:`geolib.world`); on the paper profile the
  chains are GRE30K-CoT's own (:func:`gre30k_conversations`).
* **Cold-start SFT** is :func:`geolib.tuning.train_stage` on :func:`chain_conversations` with a LoRA
  named :data:`SFT_STAGE` (no wrapper: nothing to add).
* **GRPO** (:func:`train_grpo`) is TRL's ``GRPOTrainer`` on the format and distance rewards, θ
  annealed by a :class:`geolib.rewards.ThetaSchedule` that the distance reward updates after each
  scored batch and that is saved with every checkpoint. The policy is a fresh LoRA (TRL's
  ``peft_config``) on the cold-start model with its SFT adapter merged in, so TRL's reference
  policy for the KL term (the model with adapters disabled) is exactly the SFT model, as in GRE.
  The reward and KL curves are written to ``log_history.json``/``.csv`` (atomically) at every log.
* **The demo model's images** (:class:`FeatureProcessor`): TRL drives a vision-language model
  through its processor (chat template → tokens + ``pixel_values``; ``processor(images=…,
  text=…)`` for the scoring pass). The demo model's tokenizer is not a processor and its images
  are cached EfficientNet-Lite0 features (4 × 1280 on the 2 × 2 grid), so a small processor wraps
  the tokenizer and a feature array: dataset rows carry an integer image key, the processor looks
  the features up and expands ``<|image_pad|>`` to one token per feature (:func:`geolib.conversations.encode_texts`). The
  LLaVA-style model takes the features as ``pixel_values`` unchanged; nothing in TRL is
  overridden. The paper profile's Qwen2.5-VL uses its own processor and PIL images.
* **Scores** (:func:`evaluate_gre`, :func:`chain_quality`): share within 1/25/200/750/2500 km
  overall and per scene type with bootstrap intervals, format compliance, unparsable share, median
  error; recall and precision of the visible clues that a chain mentions.

Deviations from GRE's released code, on purpose: its reward swaps latitude and longitude and
leaves θ blank (see :mod:`geolib.rewards`); its RL scripts fine-tune all weights with DeepSpeed
ZeRO-3 on 8 GPUs, here GRPO trains a LoRA (one GPU for the paper profile, a CPU for the demo);
its prompt is not released, :data:`GRE_PROMPT` is this study's.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geolib import io as gio
from geolib import facts, runtime
from geolib.metrics import THRESHOLDS_KM
from geolib.rewards import DistanceReward, FormatReward, ThetaSchedule, completion_text, format_reward

runtime.patch_torchvision()

import torch  # noqa: E402  (after the torchvision patch)
from transformers import TrainerCallback  # noqa: E402
from transformers.processing_utils import ProcessorMixin  # noqa: E402

from geolib import conversations, inference, tuning, vlm  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Prompt and chains

#: The question of every GRE conversation (cold start, GRPO, evaluation). GRE's own prompt is not
#: released; this one names the chain's steps and the answer format that the rewards check.
GRE_PROMPT = (
    "Where was this street view taken? Think step by step inside <think> </think>: "
    "1. scene and architecture, 2. text and language, 3. vegetation and terrain, "
    "4. transport and road markings, then a conclusion. "
    "Then give the location inside <answer> </answer> as latitude, longitude in decimal degrees."
)

#: The chain's steps in order: ``(key, title, clue types reported in the step)``. Clue types of
#: :data:`geolib.world.CLUE_TYPES` not listed here are reported in the first step.
CHAIN_STEPS = (
    ("scene", "Scene and architecture", ()),
    ("text", "Text and language", ("script", "language")),
    ("vegetation", "Vegetation and terrain", ("vegetation",)),
    ("transport", "Transport and road markings", (
        "driving_side", "centre_line", "edge_line", "plate", "direction_sign", "warning_sign", "speed_sign", "bollard",
    )),
)

#: What a step says when nothing of its kind is visible.
NOTHING_VISIBLE = {
    "scene": "nothing distinctive",
    "text": "no legible text",
    "vegetation": "nothing distinctive",
    "transport": "no cars or road markings to read",
}

_SCENE_WORDS = {"urban": "urban", "suburban": "suburban", "rural": "rural", "natural": "natural", "landmark": "landmark"}
_STEP_OF_TYPE = {t: key for key, _, types in CHAIN_STEPS for t in types}
_TYPE_ORDER = {t: i for i, t in enumerate(t for _, _, types in CHAIN_STEPS for t in types)}


def _value(row: Mapping[str, Any], key: str) -> Any:
    v = row.get(key) if hasattr(row, "get") else None
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


def _clue_list(value: Any) -> list[str]:
    """A ``clues`` cell (list, tuple, numpy array from Parquet, None) as a list of clue ids."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        raise TypeError(f"clues must be a list of clue ids, got the string {value!r}")
    return [str(c) for c in list(value) if str(c).strip()]


def check_coordinates(lat: Any, lon: Any, where: str = "") -> tuple[float, float]:
    """``(lat, lon)`` as floats; ValueError naming ``where`` when missing, not numbers or out of range."""
    try:
        lat_f, lon_f = float(lat), float(lon)
    except (TypeError, ValueError):
        raise ValueError(f"{where}coordinates must be numbers, got ({lat!r}, {lon!r})") from None
    if not (math.isfinite(lat_f) and math.isfinite(lon_f) and abs(lat_f) <= 90 and abs(lon_f) <= 180):
        raise ValueError(f"{where}coordinates out of range or missing: ({lat!r}, {lon!r}); need |lat| <= 90, |lon| <= 180")
    return lat_f, lon_f


def format_coordinates(lat: float, lon: float) -> str:
    """GRE's answer body: ``"latitude, longitude"`` in decimal degrees, 4 decimals (about 11 m)."""
    return f"{lat:.4f}, {lon:.4f}"


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


def _scene_text(row: Mapping[str, Any], visible: set[str]) -> str:
    """Step 1: the scene type, and the scene's main clause from the row's reasoning when it has one."""
    from geolib import facts as world  # facts and clue vocabulary, no renderer

    scene = _value(row, "scene")
    parts = [f"{_SCENE_WORDS.get(str(scene), str(scene))} scene"] if scene else []
    reasoning = _value(row, "reasoning")
    if isinstance(reasoning, str) and reasoning.strip():
        first = _sentences(reasoning)[0]
        clause = re.split(r",\s+with\b", first, maxsplit=1)[0].rstrip(".").strip()
        if clause and not (world.clues_mentioned(clause) - visible):
            parts.append(clause[0].lower() + clause[1:])
        if re.search(r"\bfog\b", reasoning, re.IGNORECASE):
            parts.append("fog hides the distance")
    return "; ".join(parts)


def _place_phrase(row: Mapping[str, Any], visible: set[str]) -> str | None:
    """``"Country, near City"`` for the conclusion; parts that would mention an invisible clue are dropped."""
    from geolib import facts as world  # facts and clue vocabulary, no renderer

    country = _value(row, "country")
    city = _value(row, "city")
    name = None
    if isinstance(country, str) and country.strip():
        try:
            name = conversations.country_name(country)
        except ValueError:
            name = country.strip()
    candidates = []
    if name and isinstance(city, str) and city.strip():
        candidates.append(f"{name}, near {city.strip()}")
    if name:
        candidates.append(name)
    for text in candidates:
        if not (world.clues_mentioned(text) - visible):
            return text
    return None


def build_chain(row: Mapping[str, Any]) -> str:
    """GRE's reasoning chain for one image, written only from its visible clues.

    The chain is ``<think>`` with four numbered steps in GRE's order, (1) scene and architecture,
    (2) text and language, (3) vegetation and terrain, (4) transport and road markings, each
    listing the row's visible clues of that kind in words (:func:`geolib.world.clue_phrase`) or
    saying briefly that nothing is visible, then a conclusion naming the country (and city), then
    ``<answer>latitude, longitude</answer>`` with the row's coordinates (decimal degrees, latitude
    first, 4 decimals, south and west negative). It passes :func:`geolib.rewards.format_reward`,
    and :func:`geolib.world.clues_mentioned` finds exactly the row's clues in it.

    Args:
        row: a pool row (mapping or pandas Series) with ``lat``, ``lon`` and optionally
            ``clues`` (clue ids), ``scene``, ``reasoning`` (its first sentence describes the scene),
            ``country`` (alpha-2) and ``city``.

    Returns:
        The chain text (the SFT target).

    Raises:
        ValueError: missing or out-of-range coordinates.
    """
    where = f"row {_value(row, 'image_id')}: " if _value(row, "image_id") is not None else ""
    lat, lon = check_coordinates(_value(row, "lat"), _value(row, "lon"), where)
    clues = sorted(set(_clue_list(_value(row, "clues"))), key=lambda c: (_TYPE_ORDER.get(c.partition(":")[0], -1), c))
    visible = set(clues)
    by_step: dict[str, list[str]] = {key: [] for key, _, _ in CHAIN_STEPS}
    for clue in clues:
        by_step[_STEP_OF_TYPE.get(clue.partition(":")[0], "scene")].append(facts.clue_words(clue))
    lines = []
    for i, (key, title, _) in enumerate(CHAIN_STEPS, start=1):
        items = ([_scene_text(row, visible)] if key == "scene" else []) + by_step[key]
        body = "; ".join(x for x in items if x) or NOTHING_VISIBLE[key]
        lines.append(f"{i}. {title}: {body}.")
    place = _place_phrase(row, visible)
    if clues:
        conclusion = f"these clues point to {place}." if place else "these clues narrow the region down."
    else:
        conclusion = (f"no distinctive clue is visible, so this is a weak guess: {place}." if place
                      else "no distinctive clue is visible, so this is a weak guess.")
    lines.append(f"Conclusion: {conclusion}")
    think = "\n".join(lines)
    return f"<think>\n{think}\n</think>\n<answer>{format_coordinates(lat, lon)}</answer>"


def _row_images(frame: pd.DataFrame, image_column: str | None) -> list:
    if image_column is None:
        return list(range(len(frame)))
    if image_column not in frame.columns:
        raise ValueError(f"image column {image_column!r} not in the frame; columns: {list(frame.columns)}")
    return [v.item() if isinstance(v, np.generic) else v for v in frame[image_column].tolist()]


def _warn_skipped(what: str, skipped: list[tuple[int, str]], total: int) -> None:
    if skipped:
        examples = "; ".join(f"row {i}: {why}" for i, why in skipped[:3])
        warnings.warn(f"{what}: skipped {len(skipped)} of {total} rows ({examples})", stacklevel=3)


def chain_conversations(pool_df: pd.DataFrame, prompt: str = GRE_PROMPT, image_column: str | None = None) -> list[dict]:
    """Cold-start SFT conversations: user (image + ``prompt``) → assistant (:func:`build_chain`).

    Same shape as :func:`geolib.conversations.make_conversations`, so :func:`geolib.tuning.train_stage` trains
    on them unchanged.

    Args:
        pool_df: pool rows (see :func:`build_chain` for the columns used).
        prompt: the user's question.
        image_column: the image-key column (an int row of the feature array, or a path); None: the
            row's position in ``pool_df``.

    Returns:
        ``[{"image": key, "messages": [user, assistant]}, ...]``; rows with unusable coordinates
        are skipped with a warning (count and first examples).
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    images = _row_images(pool_df, image_column)
    out, skipped = [], []
    for i, (image, row) in enumerate(zip(images, pool_df.to_dict("records"))):
        try:
            chain = build_chain(row)
        except ValueError as exc:
            skipped.append((i, str(exc)))
            continue
        out.append({"image": image, "messages": [conversations.user_message(prompt), conversations.assistant_message(chain)]})
    _warn_skipped("chain_conversations", skipped, len(pool_df))
    return out


def chain_token_ids(processor, conversations: Sequence[dict]) -> list[int]:
    """Ids of the tokens that the conversations' assistant turns (the chains) are written in, sorted.

    For the demo's cold start: its base model was trained on captions that never name a place,
    so it has never written digits, the chain's tags or place names, and their tied embedding
    rows were pushed down throughout base training. Training these rows along with the LoRA
    (peft's ``LoraConfig(trainable_token_indices=…)``) lets the cold start reach a low loss in one
    epoch; a pretrained base (paper profile) writes all of them already.

    Args:
        processor: the tokenizer (or a processor holding one).
        conversations: from :func:`chain_conversations` / :func:`gre30k_conversations`.
    """
    tok = vlm.tokenizer_of(processor)
    ids: set[int] = set()
    for conv in conversations:
        for message in conv["messages"]:
            if message.get("role") != "assistant":
                continue
            content = message["content"]
            parts = [content] if isinstance(content, str) else [p.get("text", "") for p in content if isinstance(p, dict)]
            for text in parts:
                ids.update(tok(text, add_special_tokens=False)["input_ids"])
    ids.add(tok.convert_tokens_to_ids(vlm.IM_END))  # the end of every assistant turn
    return sorted(ids)


def gre30k_conversations(cot_df: pd.DataFrame, prompt: str | None = None) -> list[dict]:
    """Cold-start conversations from GRE30K-CoT (:func:`geolib.datasets.load_gre30k_cot`), same shape.

    The assistant turn is GRE's chain verbatim (``answer_text``); the user turn is the record's own
    question (``question``) unless ``prompt`` replaces it. The image key is ``image_path``.

    Returns:
        ``[{"image": path, "messages": [user, assistant]}, ...]``; rows with an empty chain or
        question are skipped with a warning, and the share of chains that fail GRE's format
        (:func:`geolib.rewards.format_reward`) is reported when it is not zero.
    """
    needed = ["image_path", "answer_text"] + ([] if prompt is not None else ["question"])
    missing = [c for c in needed if c not in cot_df.columns]
    if missing:
        raise ValueError(f"GRE30K-CoT table lacks columns {missing}; columns: {list(cot_df.columns)}")
    out, skipped, bad_format = [], [], 0
    for i, row in enumerate(cot_df.to_dict("records")):
        answer = _value(row, "answer_text")
        question = prompt if prompt is not None else _value(row, "question")
        if not (isinstance(answer, str) and answer.strip()) or not (isinstance(question, str) and question.strip()):
            skipped.append((i, "empty question or chain"))
            continue
        bad_format += format_reward(answer) == 0.0
        out.append({"image": str(row["image_path"]),
                    "messages": [conversations.user_message(question.strip()), conversations.assistant_message(answer.strip())]})
    _warn_skipped("gre30k_conversations", skipped, len(cot_df))
    if out and bad_format:
        warnings.warn(f"gre30k_conversations: {bad_format} of {len(out)} chains are not in GRE's "
                      "<think>…</think><answer>…</answer> format (kept as released)", stacklevel=2)
    return out


# ---------------------------------------------------------------------------------------------
# Cold-start SFT settings (trained with geolib.tuning.train_stage)

#: Adapter name of the cold-start stage.
SFT_STAGE = "gre_sft"

#: Paper profile cold start. GRE's stage-1 script is not in its public repository, so the study
#: keeps GeoReasoner's LoRA settings (:data:`geolib.tuning.PAPER_STAGE1`) with room for long chains.
PAPER_SFT = dict(tuning.PAPER_STAGE1, max_length=4096)

#: Demo cold start: the demo LoRA stage settings (:data:`geolib.tuning.DEMO_STAGE1`) for two epochs at
#: a 6× higher learning rate (3e-3), so that the cold start takes minutes on 2 CPU cores (about 220
#: steps of 16 chains; the notebook also trains the embedding rows of the chains' tokens, see
#: :func:`chain_token_ids`); a chain is 82-120 tokens after the image tokens (4; 49 at ``image_grid: 7``) and the prompt's
#: 83, well inside ``max_length``.
DEMO_SFT = dict(tuning.DEMO_STAGE1, max_length=320, learning_rate=3e-3, num_train_epochs=2)


# ---------------------------------------------------------------------------------------------
# GRPO settings

#: GRE's RL settings (``scripts/train/stage2.sh``/``stage3.sh`` of Thorin215/GRE: Qwen2.5-VL-7B,
#: 8 generations per prompt, KL β 0.04, completions up to 2048 tokens, 8 completions per device
#: × 2 accumulation steps, one epoch, bf16, gradient checkpointing, a log every step, a checkpoint
#: every 800 steps, data seed 42). Not in the scripts, so the study's choice: the learning rate
#: (TRL's default 1e-6), sampling temperature 1, the GRPO loss with group-normalised advantages
#: (VLM-R1, on which GRE builds), and LoRA (GeoReasoner's r = 64, α = 16) instead of GRE's full
#: fine-tune with ZeRO-3 on 8 GPUs.
PAPER_GRPO = {
    "model_id": "Qwen/Qwen2.5-VL-7B-Instruct",
    "num_generations": 8,
    "beta": 0.04,
    "max_completion_length": 2048,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 2,
    "num_train_epochs": 1,
    "learning_rate": 1e-6,
    "temperature": 1.0,
    "loss_type": "grpo",
    "scale_rewards": "group",
    "gradient_checkpointing": True,
    "logging_steps": 1,
    "save_steps": 800,
    "data_seed": 42,
    "lora_r": 64,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
}

#: Demo GRPO on 2 CPU cores, scaled down from :data:`PAPER_GRPO`: 8 generations for each of 2
#: images a step (GRE: 8 for each of 8 per device), completions up to 128 tokens (a demo chain
#: is 82-120 tokens with the demo tokenizer), β and the loss as in GRE, a LoRA of rank 16 (the
#: demo stage rank) with a learning rate for a small model and few steps, a log every step and a
#: checkpoint every 25. Measured here (one torch thread, 2 cores): 100 steps in 347 s.
DEMO_GRPO = {
    "model_id": "demo",
    "num_generations": 8,
    "beta": 0.04,
    "max_completion_length": 128,
    "per_device_train_batch_size": 16,
    "gradient_accumulation_steps": 1,
    "max_steps": 100,
    "learning_rate": 2e-4,
    "lr_scheduler_type": "constant",
    "temperature": 1.0,
    "loss_type": "grpo",
    "scale_rewards": "group",
    "gradient_checkpointing": False,
    "logging_steps": 1,
    "save_steps": 25,
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
}

#: Keys of the GRPO dicts that are not ``GRPOConfig`` fields.
_NON_CONFIG_KEYS = ("model_id", "lora_r", "lora_alpha", "lora_dropout")

#: Cold-start and GRPO settings by preset (the ``tuning_preset`` parameter of notebook 07).
SFT_PRESETS = {"demo": DEMO_SFT, "paper": PAPER_SFT}
GRPO_PRESETS = {"demo": DEMO_GRPO, "paper": PAPER_GRPO}


def _unknown_keys_error(what: str, unknown: list[str], allowed: set[str], base: Mapping[str, Any], extra: str) -> ValueError:
    import difflib

    hints = {k: difflib.get_close_matches(k, sorted(allowed), n=1) for k in unknown}
    said = ", ".join(f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for k, h in hints.items())
    return ValueError(f"unknown {what} setting {said}; preset keys: {sorted(base)}; {extra}")


def sft_settings(preset: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The cold-start SFT settings: the preset's (:data:`DEMO_SFT`, :data:`PAPER_SFT`), then ``overrides``.

    Raises:
        ValueError: an unknown preset, or an override that is neither a ``TrainingArguments``
            field nor a stage key (``lora_r``, ``effective_batch_size``, ``max_length``, ...).
    """
    from dataclasses import fields as dc_fields

    from transformers import TrainingArguments

    if preset not in SFT_PRESETS:
        raise ValueError(f"unknown tuning preset {preset!r}; known: {sorted(SFT_PRESETS)}")
    base, overrides = SFT_PRESETS[preset], dict(overrides or {})
    allowed = {f.name for f in dc_fields(TrainingArguments)} | set(tuning.NON_TRAINER_KEYS) | {"gradient_checkpointing"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise _unknown_keys_error("cold-start", unknown, allowed, base, "any transformers TrainingArguments field is allowed too")
    return {**base, **overrides}


def grpo_settings(preset: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The GRPO settings: the preset's (:data:`DEMO_GRPO`, :data:`PAPER_GRPO`), then ``overrides``.

    Raises:
        ValueError: an unknown preset, or an override that is neither a TRL ``GRPOConfig`` field
            nor a key of the GRPO dicts (``lora_r``, ``lora_alpha``, ``lora_dropout``).
    """
    from trl import GRPOConfig

    if preset not in GRPO_PRESETS:
        raise ValueError(f"unknown tuning preset {preset!r}; known: {sorted(GRPO_PRESETS)}")
    base, overrides = GRPO_PRESETS[preset], dict(overrides or {})
    allowed = set(GRPOConfig.__dataclass_fields__) | set(_NON_CONFIG_KEYS) | {"gradient_checkpointing"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise _unknown_keys_error("GRPO", unknown, allowed, base, "any TRL GRPOConfig field is allowed too")
    return {**base, **overrides}


def grpo_config(output_dir: str | os.PathLike, hparams: Mapping[str, Any], **overrides):
    """TRL's ``GRPOConfig`` from a GRPO dict (:data:`PAPER_GRPO`, :data:`DEMO_GRPO`).

    The LoRA keys and ``model_id`` are left out; ``gradient_checkpointing`` becomes transformers
    5's ``activation_checkpointing``. Defaults: CPU and float32 without CUDA, bf16 on a GPU that
    has it; no reporting to online services; dataset columns kept (the rewards read ``lat``,
    ``lon``); checkpoints every ``save_steps`` keeping the last two; seed 0.

    Args:
        output_dir: where checkpoints go.
        hparams: the GRPO dict.
        overrides: any ``GRPOConfig`` field (e.g. ``max_steps=1`` in tests).
    """
    from trl import GRPOConfig

    kwargs = {k: v for k, v in dict(hparams).items() if k not in _NON_CONFIG_KEYS}
    if "gradient_checkpointing" in kwargs:
        kwargs["activation_checkpointing"] = bool(kwargs.pop("gradient_checkpointing"))
    cuda = torch.cuda.is_available()
    defaults = {
        "use_cpu": not cuda,
        "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
        "report_to": "none",
        "remove_unused_columns": False,
        "save_strategy": "steps",
        "save_total_limit": 2,
        "dataloader_pin_memory": cuda,
        "disable_tqdm": False,
        "seed": 0,
        "activation_checkpointing": False,
    }
    if kwargs.get("activation_checkpointing") or overrides.get("activation_checkpointing"):
        defaults["activation_checkpointing_kwargs"] = {"use_reentrant": False}
    merged = {**defaults, **kwargs, **overrides}
    unknown = sorted(k for k in merged if k not in GRPOConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown GRPO settings {unknown} (not GRPOConfig fields nor {list(_NON_CONFIG_KEYS)})")
    return GRPOConfig(output_dir=str(output_dir), **merged)


# ---------------------------------------------------------------------------------------------
# The demo model's images in TRL


class FeatureProcessor(ProcessorMixin):
    """The demo tokenizer plus a feature array, as the processor TRL's GRPO expects for a VLM.

    TRL treats a ``ProcessorMixin`` as a vision-language processor and calls it three ways; each
    is served by :func:`geolib.conversations.encode_texts`, which expands ``<|image_pad|>`` to one token per
    feature row (49) and stacks the features as ``pixel_values`` (B, 49, 1280):

    * ``apply_chat_template(conversations, tokenize=True, return_dict=True, add_generation_prompt=True)``
      for generation: unpadded ``input_ids`` per prompt and ``pixel_values``;
    * ``apply_chat_template(messages, tokenize=False, …)``: the prompt text;
    * ``processor(images=…, text=…, padding=True, return_tensors="pt")`` for the scoring pass.

    An image is an int key into ``features`` (what :func:`grpo_dataset` puts in its ``image``
    column), a feature row (T, C), or a path / PIL image (run through the tower by the model).

    Args:
        tokenizer: the demo tokenizer (:func:`geolib.vlm.train_tokenizer`).
        features: the cached features (N, tokens, 1280) that int keys index, or None.
    """

    def __init__(self, tokenizer, features=None):
        super().__init__(tokenizer)
        self.features = features

    def _resolve(self, images) -> list:
        flat: list = []
        for item in images if images is not None else []:
            if isinstance(item, (list, tuple)):
                flat.extend(item)
            else:
                flat.append(item)
        out = []
        for x in flat:
            if isinstance(x, (int, np.integer)):
                if self.features is None:
                    raise ValueError("image keys are ints but the processor holds no features: "
                                     "pass images=<feature array> to train_grpo / FeatureProcessor")
                if not 0 <= int(x) < len(self.features):
                    raise IndexError(f"image key {int(x)} out of range for {len(self.features)} feature rows")
                out.append(self.features[int(x)])
            else:
                out.append(x)
        return out

    def apply_chat_template(self, conversation, chat_template=None, tokenize: bool = False, return_dict: bool = False,
                            add_generation_prompt: bool = False, continue_final_message: bool = False, tools=None,
                            **kwargs):
        """Chat template of one conversation or a batch; with ``tokenize=True`` tokens and features too."""
        if tools:
            raise ValueError("the demo processor does not support tools")
        batched = bool(conversation) and isinstance(conversation[0], (list, tuple))
        convs = list(conversation) if batched else [conversation]
        texts = [self.tokenizer.apply_chat_template(list(c), tokenize=False, add_generation_prompt=add_generation_prompt,
                                                    continue_final_message=continue_final_message, chat_template=chat_template)
                 for c in convs]
        if not tokenize:
            return texts if batched else texts[0]
        images = [[part.get("image") for m in c if isinstance(m.get("content"), list) for part in m["content"]
                   if isinstance(part, dict) and part.get("type") == "image"] for c in convs]
        if any(len(x) != 1 for x in images):
            raise ValueError(f"each conversation needs exactly one image, got {[len(x) for x in images]}")
        enc = conversations.encode_texts(self.tokenizer, texts, self._resolve(images))
        ids = [row[mask.bool()].tolist() for row, mask in zip(enc["input_ids"], enc["attention_mask"])]
        out = {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids], "pixel_values": enc["pixel_values"]}
        if not return_dict:
            return out["input_ids"] if batched else out["input_ids"][0]
        return out

    def __call__(self, images=None, text=None, padding=True, return_tensors="pt", padding_side: str = "left", **kwargs):
        """Left-padded tokens of ``text`` (one image each) and the images' features."""
        if text is None:
            raise ValueError("FeatureProcessor needs text")
        texts = [text] if isinstance(text, str) else list(text)
        return conversations.encode_texts(self.tokenizer, texts, self._resolve(images), padding_side=padding_side)

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    def save_pretrained(self, save_directory, **kwargs):
        """Saves the tokenizer only (reload with :func:`geolib.vlm.load_processor`); the features are data."""
        return self.tokenizer.save_pretrained(str(save_directory))


# ---------------------------------------------------------------------------------------------
# GRPO


def grpo_dataset(frame: pd.DataFrame, prompt: str = GRE_PROMPT, image_column: str | None = None):
    """The GRPO prompts: one row per image with its true coordinates for the distance reward.

    Args:
        frame: pool rows with ``lat`` and ``lon``.
        prompt: the user's question (the image is put in front of it by TRL).
        image_column: the image-key column; None: the row position. Int keys index the demo
            features (pass them to :func:`train_grpo` as ``images``); str keys are image paths,
            decoded to PIL images by ``datasets`` for a hub processor (paper profile).

    Returns:
        A ``datasets.Dataset`` with ``prompt`` (a one-message conversation), ``image``, ``lat``,
        ``lon``; rows with unusable coordinates are skipped with a warning.
    """
    import datasets

    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    for c in ("lat", "lon"):
        if c not in frame.columns:
            raise ValueError(f"grpo_dataset needs columns 'lat' and 'lon'; columns: {list(frame.columns)}")
    keys = _row_images(frame, image_column)
    rows, skipped = {"image": [], "lat": [], "lon": []}, []
    for i, (key, lat, lon) in enumerate(zip(keys, frame["lat"].tolist(), frame["lon"].tolist())):
        try:
            lat, lon = check_coordinates(lat, lon)
        except ValueError as exc:
            skipped.append((i, str(exc)))
            continue
        rows["image"].append(key)
        rows["lat"].append(lat)
        rows["lon"].append(lon)
    _warn_skipped("grpo_dataset", skipped, len(frame))
    if not rows["image"]:
        raise ValueError("grpo_dataset: no usable rows")
    kinds = {type(k).__name__ for k in rows["image"]}
    if not (kinds <= {"int"} or kinds <= {"str"}):
        raise TypeError(f"image keys must be all ints (feature rows) or all str (paths), got {sorted(kinds)}")
    ds = datasets.Dataset.from_dict({"prompt": [[{"role": "user", "content": prompt}]] * len(rows["image"]), **rows})
    if kinds == {"str"}:
        ds = ds.cast_column("image", datasets.Image())
    return ds


class _DistanceRewardLogged(DistanceReward):
    """:class:`geolib.rewards.DistanceReward` that also logs the batch's median error and answered share.

    The reward's scale changes with θ, so the error in km is the curve that compares across stages.
    """

    def __call__(self, completions, **kwargs):
        rewards = super().__call__(completions, **kwargs)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            d = _distances_km([completion_text(c) for c in completions], kwargs["lat"], kwargs["lon"])
            log_metric("distance/answered", float(np.isfinite(d).mean()) if d.size else 0.0)
            if np.isfinite(d).any():
                log_metric("distance/median_km", float(np.nanmedian(d)))
        return rewards


def make_grpo_rewards(theta_schedule: ThetaSchedule) -> list:
    """``[format_reward, distance_reward]`` for ``GRPOTrainer``, the distance one updating ``theta_schedule``."""
    return [FormatReward(), _DistanceRewardLogged(theta_schedule)]


class _GRPOWriter(TrainerCallback):
    """Writes the log history (JSON + CSV) and the θ schedule at every log; the schedule into each checkpoint."""

    def __init__(self, output_dir: Path, schedule: ThetaSchedule):
        self.output_dir = output_dir
        self.schedule = schedule

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero:
            tuning.write_log_history(self.output_dir, state.log_history)
            gio.write_json(self.output_dir / "theta_schedule.json", self.schedule.state_dict())

    def on_save(self, args, state, control, **kwargs):
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        ckpt = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if state.is_world_process_zero and ckpt.is_dir():
            gio.write_json(ckpt / "theta_schedule.json", self.schedule.state_dict())


@dataclass
class GRPOResult:
    """What :func:`train_grpo` returns.

    Attributes:
        model: the policy (a ``PeftModel``: the cold-start model with its SFT merged, plus the GRPO
            LoRA ``"default"``), in eval mode.
        output_dir: the run folder (``grpo.json``, ``log_history.json``/``.csv``,
            ``theta_schedule.json``, ``adapter/``, ``checkpoint-*``).
        log_history: the trainer's log, one dict per step: ``reward``, ``reward_std``,
            ``rewards/format_reward/mean``, ``rewards/distance_reward/mean``, ``kl``, ``theta_km``,
            ``distance/median_km``, ``distance/answered``, ``completions/mean_length``, ``loss``, …
        theta_schedule: the schedule's final state (:meth:`ThetaSchedule.state_dict`).
        trained: False when a finished run with the same fingerprint was loaded instead.
        resumed_from: the checkpoint the run resumed from, if any.
    """

    model: Any
    output_dir: Path
    log_history: list[dict] = field(default_factory=list)
    theta_schedule: dict = field(default_factory=dict)
    trained: bool = True
    resumed_from: str | None = None

    def curves(self) -> pd.DataFrame:
        """One row per logged step: step, reward, format and distance rewards, KL, θ, median error, length."""
        columns = {"step": "step", "reward": "reward", "rewards/format_reward/mean": "format_reward",
                   "rewards/distance_reward/mean": "distance_reward", "kl": "kl", "theta_km": "theta_km",
                   "distance/median_km": "median_km", "completions/mean_length": "completion_length"}
        rows = [{new: h.get(old, np.nan) for old, new in columns.items()} for h in self.log_history if "reward" in h]
        return pd.DataFrame(rows, columns=list(columns.values()))

    @property
    def metrics(self) -> dict:
        """The final train metrics (runtime, steps/s)."""
        final = [h for h in self.log_history if "train_runtime" in h]
        return dict(final[-1]) if final else {}


def merge_adapters(model):
    """The model with its active LoRA adapters merged into the weights (a plain model), for GRPO's start.

    TRL's reference policy is the model with adapters disabled; merging the cold-start adapter
    first makes that reference the SFT model. On float32 (demo) the merge is exact to rounding;
    on bf16 weights (paper profile) a small LoRA update partly rounds away, so load the
    cold-start model in float32 to merge when memory allows.
    """
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        return model
    active = list(model.active_adapters)
    unused = [n for n in model.peft_config if n not in active]
    if unused:
        warnings.warn(f"merge_adapters: adapters {unused} are not active and are dropped", stacklevel=2)
    merged = model.merge_and_unload(adapter_names=active)
    return merged


def _has_lora_layers(model) -> bool:
    return any("lora_" in name for name, _ in model.named_parameters())


def load_grpo_model(model, output_dir: str | os.PathLike):
    """Put a finished GRPO run's adapter on its starting model (the cold-start model, adapters merged first).

    Args:
        model: the same starting model as the run had (e.g. from :func:`geolib.tuning.load_staged_model`).
        output_dir: the run folder written by :func:`train_grpo`.

    Returns:
        A ``PeftModel`` in eval mode.
    """
    from peft import PeftModel

    path = Path(output_dir) / "adapter"
    if not (path / "adapter_config.json").exists():
        raise FileNotFoundError(f"{output_dir} holds no finished GRPO adapter ({path}/adapter_config.json missing)")
    policy = PeftModel.from_pretrained(merge_adapters(model), str(path), is_trainable=False)
    policy.eval()
    return policy


def _hash_value(h, value) -> None:
    if isinstance(value, Mapping):
        for k in sorted(value, key=str):
            h.update(f"<{k}>".encode())
            _hash_value(h, value[k])
    elif isinstance(value, (list, tuple)):
        h.update(f"[{len(value)}".encode())
        for v in value:
            _hash_value(h, v)
    elif isinstance(value, (bytes, bytearray)):
        h.update(hashlib.sha256(value).digest())
    elif isinstance(value, float):
        h.update(repr(float(value)).encode())
    else:
        h.update(repr(value).encode())


def _dataset_digest(ds) -> str:
    import datasets

    if isinstance(ds.features.get("image"), datasets.Image):
        ds = ds.cast_column("image", datasets.Image(decode=False))
    h = hashlib.sha256()
    h.update(json.dumps(sorted(ds.column_names)).encode())
    for row in ds.with_format(None):
        _hash_value(h, row)
    return h.hexdigest()


def _features_digest(images) -> str:
    if images is None:
        return "none"
    if isinstance(images, np.ndarray) or isinstance(images, torch.Tensor):
        arr = np.asarray(images)
        step = max(1, len(arr) // 64)
        return hashlib.sha256(f"{arr.shape}:{arr.dtype}".encode() + np.ascontiguousarray(arr[::step]).tobytes()).hexdigest()
    return hashlib.sha256(json.dumps([str(x) for x in images]).encode()).hexdigest()


def _config_dict(config) -> dict:
    d = config.to_dict()
    for k in ("output_dir", "logging_dir", "run_name", "hub_token", "push_to_hub_token", "disable_tqdm"):
        d.pop(k, None)
    return json.loads(json.dumps(d, default=str))


def _clear_run_dir(output_dir: Path) -> None:
    for child in output_dir.iterdir():
        if child.name.startswith("checkpoint-") and child.is_dir():
            shutil.rmtree(child)
    if (output_dir / "adapter").is_dir():
        shutil.rmtree(output_dir / "adapter")
    for name in ("grpo.json", "log_history.json", "log_history.csv", "theta_schedule.json"):
        (output_dir / name).unlink(missing_ok=True)


def train_grpo(
    model,
    processor,
    dataset,
    theta_schedule: ThetaSchedule,
    args,
    output_dir: str | os.PathLike,
    resume: bool = True,
    images=None,
    lora_config=None,
) -> GRPOResult:
    """GRE's RL stage: GRPO with TRL on the format + distance rewards, θ annealed by the schedule.

    Each step TRL samples ``num_generations`` completions per image, scores them with
    :func:`geolib.rewards.format_reward` and the distance reward ``2 / (1 + exp(d / θ))`` at the
    schedule's current θ, normalises the summed reward within each image's group (the advantage)
    and takes a clipped policy-gradient step with a KL penalty ``beta`` towards the cold-start
    model. After scoring a batch the distance reward records its mean in ``theta_schedule``, which
    moves to a finer θ when the recent mean holds (:class:`geolib.rewards.ThetaSchedule`); θ is
    logged every step as ``theta_km``.

    The cold-start model's adapters are merged first (:func:`merge_adapters`) and a new LoRA
    trains on top, so the KL reference is the SFT model. The run is skipped (its result loaded)
    when ``output_dir/grpo.json`` records a finished run with the same fingerprint (data,
    settings, LoRA, θ schedule, starting weights, features). With ``resume=True`` an interrupted
    run restarts from its last checkpoint, θ schedule included; checkpoints of a different
    fingerprint are deleted first. ``log_history.json``/``.csv`` and ``theta_schedule.json`` are
    rewritten (atomically) at every log.

    Args:
        model: the cold-start model (a ``PeftModel`` from :func:`geolib.tuning.train_stage` /
            :func:`geolib.tuning.load_staged_model`, or a plain model). It is consumed: its adapters
            are merged and LoRA layers are added in place; reload it to train again.
        processor: the hub processor (paper profile) or the demo tokenizer (wrapped in a
            :class:`FeatureProcessor` with ``images``).
        dataset: from :func:`grpo_dataset` (or any ``datasets.Dataset`` with ``prompt``, ``image``,
            ``lat``, ``lon``).
        theta_schedule: the θ schedule, updated in place (and restored on resume).
        args: a ``GRPOConfig`` or a GRPO dict (:data:`DEMO_GRPO`, :data:`PAPER_GRPO`).
        output_dir: the run folder.
        resume: resume from the last checkpoint of an interrupted run.
        images: the demo's cached features (N, tokens, 1280) that int image keys index.
        lora_config: the GRPO LoRA; None: from ``args`` (``lora_r``, ``lora_alpha``,
            ``lora_dropout``) when it is a dict that has them, else :func:`geolib.tuning.lora_config`.

    Returns:
        A :class:`GRPOResult`.
    """
    import datasets
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOConfig, GRPOTrainer

    if not isinstance(theta_schedule, ThetaSchedule):
        raise TypeError(f"theta_schedule must be a ThetaSchedule, got {type(theta_schedule).__name__}")
    if isinstance(dataset, (list, tuple)):
        dataset = datasets.Dataset.from_list(list(dataset))
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"dataset must be a datasets.Dataset (grpo_dataset), got {type(dataset).__name__}")
    missing = [c for c in ("prompt", "image", "lat", "lon") if c not in dataset.column_names]
    if missing:
        raise ValueError(f"the GRPO dataset lacks columns {missing}; it has {dataset.column_names} (use grpo_dataset)")
    if len(dataset) == 0:
        raise ValueError("the GRPO dataset is empty")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(args, GRPOConfig):
        config = args
        if Path(config.output_dir).resolve() != output_dir.resolve():
            raise ValueError(f"GRPOConfig.output_dir {config.output_dir!r} differs from output_dir {str(output_dir)!r}")
    elif isinstance(args, Mapping):
        config = grpo_config(output_dir, args)
    else:
        raise TypeError(f"args must be a GRPOConfig or a GRPO dict, got {type(args).__name__}")
    if lora_config is None:
        has_lora_keys = isinstance(args, Mapping) and all(k in args for k in ("lora_r", "lora_alpha", "lora_dropout"))
        lora_config = tuning.lora_config_from(args) if has_lora_keys else tuning.lora_config()
    if isinstance(processor, ProcessorMixin):
        processing_class = processor
        if images is not None and not isinstance(processor, FeatureProcessor):
            raise ValueError("images= is for the demo model's cached features; a hub processor reads the images itself")
        if isinstance(processor, FeatureProcessor) and images is not None:
            processor.features = images
    else:
        if images is None and dataset.features["image"].dtype.startswith("int"):
            raise ValueError("the dataset's image keys are feature rows: pass the demo features as images=")
        processing_class = FeatureProcessor(processor, images)

    from peft import PeftModel

    if not isinstance(model, PeftModel) and _has_lora_layers(model):
        raise ValueError(
            "the model already carries LoRA layers from an earlier (perhaps interrupted) call; reload the cold-start "
            f"model and call again: training resumes from the last checkpoint in {output_dir}"
        )
    model = merge_adapters(model)

    settings = {
        "config": _config_dict(config),
        "lora": json.loads(json.dumps(lora_config.to_dict(), default=str)),
        "schedule": theta_schedule.state_dict(),
        "dataset": _dataset_digest(dataset),
        "features": _features_digest(images),
    }
    fingerprint = hashlib.sha256(
        (json.dumps(settings, sort_keys=True) + vlm.model_digest(model)).encode()
    ).hexdigest()

    done = output_dir / "grpo.json"
    if done.exists() and gio.read_json(done).get("fingerprint") == fingerprint:
        policy = load_grpo_model(model, output_dir)
        state = gio.read_json(output_dir / "theta_schedule.json")
        theta_schedule.load_state_dict(state)
        history = gio.read_json(output_dir / "log_history.json") if (output_dir / "log_history.json").exists() else []
        return GRPOResult(policy, output_dir, history, state, trained=False)
    started = output_dir / "fingerprint.json"
    if started.exists() and gio.read_json(started).get("fingerprint") != fingerprint:
        warnings.warn(f"{output_dir}: settings, data or starting weights changed; discarding old checkpoints", stacklevel=2)
        _clear_run_dir(output_dir)
    gio.write_json(started, {"fingerprint": fingerprint})

    resume_from = get_last_checkpoint(str(output_dir)) if resume else None
    if resume_from is not None:
        saved = Path(resume_from) / "theta_schedule.json"
        if not saved.exists():
            raise FileNotFoundError(f"checkpoint {resume_from} has no theta_schedule.json; cannot resume θ")
        theta_schedule.load_state_dict(gio.read_json(saved))

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=make_grpo_rewards(theta_schedule),
        args=config,
        train_dataset=dataset,
        processing_class=processing_class,
        peft_config=lora_config,
        callbacks=[_GRPOWriter(output_dir, theta_schedule)],
    )
    with warnings.catch_warnings():
        # TRL 1.16 asks transformers 5 for the deprecated name at every step; nothing to act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        trainer.train(resume_from_checkpoint=resume_from)
    policy = trainer.model
    policy.eval()
    history = list(trainer.state.log_history)
    tuning.write_log_history(output_dir, history)
    state = theta_schedule.state_dict()
    gio.write_json(output_dir / "theta_schedule.json", state)
    policy.save_pretrained(str(output_dir / "adapter"))
    gio.write_json(done, {"fingerprint": fingerprint, "steps": trainer.state.global_step, "n_prompts": len(dataset),
                          "theta_km": theta_schedule.theta, "theta_stage": theta_schedule.stage})
    return GRPOResult(policy, output_dir, history, state, trained=True, resumed_from=resume_from)


@dataclass
class SeedRun:
    """What :func:`train_seed` returns: the cold start, the GRPO run on it, the cold start's trained
    parameter names, and the processor both use."""

    sft: Any
    grpo: Any
    trainable: list[str]
    processor: Any


def train_seed(profile: str, spec, seed: int, cold_start: Sequence[dict], sft_settings: Mapping[str, Any], sft_lora,
               prompts, theta_schedule: ThetaSchedule, grpo_settings: Mapping[str, Any], sft_images=None, images=None,
               train_chain_tokens: bool = False):
    """One training seed of notebook 07: the cold-start SFT on the chains, then GRPO on top of it.

    The cold start is :func:`geolib.tuning.train_stage` (the LoRA stage of GeoReasoner's notebooks)
    in ``gre_sft/seed_<seed>``, GRPO is :func:`train_grpo` in ``gre_grpo/seed_<seed>``; both start
    from the study's untuned base and load instead of training when a finished run with the same
    fingerprint is there, so calling this again (the notebook after :func:`geolib.runtime.in_processes`
    trained the seeds side by side) only loads.

    Args:
        profile: the run profile.
        spec: the model (:class:`geolib.vlm.ModelSpec` fields).
        seed: the training seed (LoRA's initial weights, the order of examples, GRPO's samples).
        cold_start: the chains (:func:`cold_start_conversations`).
        sft_settings: :func:`sft_settings`; ``seed`` is set here.
        sft_lora: the cold start's ``LoraConfig``.
        prompts: :func:`grpo_dataset`.
        theta_schedule: a fresh :class:`ThetaSchedule`, updated in place.
        grpo_settings: :func:`grpo_settings`; ``seed`` is set here.
        sft_images, images: the demo's cached features for the cold start and for GRPO.
        train_chain_tokens: also train the embedding rows of the chains' tokens (the demo's base
            never wrote them, :func:`chain_token_ids`).

    Returns:
        A :class:`SeedRun`: the cold start's :class:`geolib.tuning.StageResult` (its model is
        consumed by GRPO), the :class:`GRPOResult`, the cold start's trained parameter names and
        the processor.
    """
    import copy

    from geolib import stages  # the study's layout (its base model and checkpoint folders)

    base_model, processor = stages.study_model(profile, spec)
    if train_chain_tokens:
        sft_lora = copy.deepcopy(sft_lora)
        sft_lora.trainable_token_indices = chain_token_ids(processor, cold_start)
    sft = tuning.train_stage(base_model, processor, cold_start, SFT_STAGE, {**sft_settings, "seed": seed}, sft_lora,
                             stages.checkpoint_dir(profile, f"gre_sft/seed_{seed}"), images=sft_images)
    trainable = [n for n, p in sft.model.named_parameters() if p.requires_grad]
    grpo = train_grpo(sft.model, processor, prompts, theta_schedule, {**grpo_settings, "seed": seed},
                      stages.checkpoint_dir(profile, f"gre_grpo/seed_{seed}"), images=images)
    return SeedRun(sft, grpo, trainable, processor)


def answer_both(model, processor, images, max_new_tokens: int = 160, batch_size: int = 64) -> dict[str, list[str]]:
    """GRE's ablation pair answering the same images greedily with :data:`GRE_PROMPT`: the GRPO
    policy with its adapter disabled, which is exactly the cold-start model and TRL's KL
    reference ("SFT only"), and the policy itself ("SFT + GRPO").

    Args:
        model: a :class:`GRPOResult`'s ``model``.
        processor: the study's processor (:class:`SeedRun`'s).
        images: the demo's cached features or image paths.
    """
    with model.disable_adapter():
        sft = inference.generate(model, processor, images, GRE_PROMPT, max_new_tokens=max_new_tokens, batch_size=batch_size)
    grpo = inference.generate(model, processor, images, GRE_PROMPT, max_new_tokens=max_new_tokens, batch_size=batch_size)
    return {"SFT only": sft, "SFT + GRPO": grpo}


def seed_answers(job: Mapping[str, Any], images, max_new_tokens: int = 160, batch_size: int = 64) -> dict[str, list[str]]:
    """:func:`answer_both` for one finished seed, loaded by :func:`train_seed` from ``job`` (its
    arguments): self-contained, so the seeds answer side by side in worker processes.

    The θ schedule is taken afresh from ``job``'s configuration (a schedule that a finished run
    has already updated is not the one the run started from, and would not find the run).

    Raises:
        RuntimeError: the seed's cold start or GRPO run was not finished (it was trained here).
    """
    s = job["theta_schedule"]
    job = {**job, "theta_schedule": ThetaSchedule(stages=tuple(s.stages), window=s.window, advance_at=s.advance_at)}
    run = train_seed(**job)
    if run.sft.trained or run.grpo.trained:
        raise RuntimeError(f"seed {job['seed']}: no finished cold start and GRPO run with these settings in "
                           f"{run.grpo.output_dir.parent}; train the seeds (train_seed) before answering")
    return answer_both(run.grpo.model, run.processor, images, max_new_tokens, batch_size)


# ---------------------------------------------------------------------------------------------
# Evaluation


def _distances_km(texts: Sequence[str], true_lat: Sequence[Any], true_lon: Sequence[Any]) -> np.ndarray:
    """Great-circle error of each answer's coordinates (NaN when it gives none)."""
    from geolib.answers import parse_answer
    from geolib.metrics import distance_errors_km

    plat = np.full(len(texts), np.nan)
    plon = np.full(len(texts), np.nan)
    for i, t in enumerate(texts):
        p = parse_answer(t)
        if p.lat is not None and p.lon is not None:
            plat[i], plon[i] = p.lat, p.lon
    return distance_errors_km(plat, plon, np.asarray(true_lat, dtype=float), np.asarray(true_lon, dtype=float))


def answer_errors_km(completions: Sequence[Any], truth_df: pd.DataFrame) -> np.ndarray:
    """Great-circle error (km) of each answer's coordinates against ``truth_df``'s ``lat``/``lon``; NaN: none given.

    The coordinates are read as in :func:`evaluate_gre` (:func:`geolib.answers.parse_answer`).
    """
    texts = _texts(completions)
    if len(texts) != len(truth_df):
        raise ValueError(f"{len(texts)} completions for {len(truth_df)} truth rows")
    return _distances_km(texts, truth_df["lat"].to_numpy(), truth_df["lon"].to_numpy())


def _texts(completions: Sequence[Any]) -> list[str]:
    if isinstance(completions, str):
        raise TypeError("completions must be a sequence of answers, not a single string")
    return [completion_text(c) for c in completions]


def evaluate_gre(
    completions: Sequence[Any],
    truth_df: pd.DataFrame,
    thresholds: Sequence[float] = THRESHOLDS_KM,
    scene_column: str = "scene",
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """GREval-Bench style scores: accuracy within each distance overall and per scene type.

    An answer's coordinates are read by :func:`geolib.answers.parse_answer` (``<answer>`` first);
    an answer without valid coordinates is *unparsable* and counts as a miss at every distance.
    Intervals are percentile bootstraps over images (:func:`geolib.metrics.bootstrap_ci`).

    Args:
        completions: the model's answers (strings or TRL chat completions), aligned with ``truth_df``.
        truth_df: ``lat``, ``lon`` (degrees) and ``scene_column`` (optional) per answer.
        thresholds: distances in km (GRE / Im2GPS3k: 1, 25, 200, 750, 2500), ``<=``.
        scene_column: the scene-type column; missing: only the overall row.
        n_boot, seed, alpha: bootstrap replicates, seed and 1 − coverage.

    Returns:
        One row per group, ``"all"`` first, then scene types (urban, suburban, rural, natural,
        landmark, then any other, in that order), with ``group``, ``n``, ``n_answered``, and for
        each score its ``_low``/``_high`` interval: ``within_<t>km`` (share in [0, 1]),
        ``format_ok`` (share passing GRE's format), ``unparsable`` (share without coordinates),
        ``median_km`` (over answered rows; NaN when none).
    """
    from geolib.metrics import bootstrap_ci

    texts = _texts(completions)
    if len(texts) != len(truth_df):
        raise ValueError(f"{len(texts)} completions for {len(truth_df)} truth rows")
    if len(texts) == 0:
        raise ValueError("evaluate_gre needs at least one completion")
    for c in ("lat", "lon"):
        if c not in truth_df.columns:
            raise ValueError(f"truth_df needs columns 'lat' and 'lon'; columns: {list(truth_df.columns)}")
    thresholds = tuple(float(t) for t in thresholds)
    dist = _distances_km(texts, truth_df["lat"].to_numpy(), truth_df["lon"].to_numpy())
    fmt = np.array([format_reward(t) for t in texts], dtype=float)
    groups = _scene_groups(truth_df[scene_column] if scene_column in truth_df.columns else None, len(texts))

    def median(d):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(d, axis=-1)

    rows = []
    for name, mask in groups:
        d, f = dist[mask], fmt[mask]
        answered = np.isfinite(d)
        row: dict[str, Any] = {"group": name, "n": int(mask.sum()), "n_answered": int(answered.sum())}
        stats = {"format_ok": (lambda f_, d_: f_.mean(axis=-1)),
                 "unparsable": (lambda f_, d_: (~np.isfinite(d_)).mean(axis=-1))}
        for t in thresholds:
            stats[f"within_{t:g}km"] = (lambda f_, d_, t=t: (np.nan_to_num(d_, nan=np.inf) <= t).mean(axis=-1))
        stats["median_km"] = lambda f_, d_: median(d_)
        for key, fn in stats.items():
            value = fn(f, d)
            low, high = bootstrap_ci(fn, f, d, n_boot=n_boot, seed=seed, alpha=alpha, vectorized=True)
            row[key], row[f"{key}_low"], row[f"{key}_high"] = float(value), low, high
        rows.append(row)
    return pd.DataFrame(rows)


def _scene_groups(scenes: Any, n: int) -> list[tuple[str, np.ndarray]]:
    """``("all", every row)``, then one ``(scene, mask)`` per scene type present (urban, suburban,
    rural, natural, landmark, then any other, sorted); missing scenes belong to "all" only."""
    groups = [("all", np.ones(n, dtype=bool))]
    if scenes is not None:
        values = pd.Series(scenes).astype(object)
        values = values.where(values.notna(), None).to_numpy()
        present = [s for s in dict.fromkeys(values) if s is not None]
        order = [s for s in _SCENE_WORDS if s in present] + sorted(str(s) for s in present if s not in _SCENE_WORDS)
        groups += [(s, values == s) for s in order]
    return groups


def paired_within_difference(
    errors_after: Any,
    errors_before: Any,
    thresholds: Sequence[float] = THRESHOLDS_KM,
    scenes: Sequence[Any] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """GRE's ablation as a paired comparison: share within each distance after minus before, over seeds.

    Both arms answered the same test images once per training seed. Per image, each arm's hit
    rate is its mean over seeds (an unparsable answer, NaN, is a miss); the difference of the two
    arms' shares and its percentile bootstrap interval resample *images* (the seeds of an image
    stay together, both arms together), so the interval covers both the test sample and the
    training seeds that were run.

    Args:
        errors_after, errors_before: km errors, ``(n_seeds, n_images)`` (or ``(n_images,)`` for one
            seed), the same images in the same order; NaN where the answer had no coordinates.
        thresholds: distances in km, ``<=``.
        scenes: each image's scene type (optional): the same comparison per scene type too, in
            :func:`evaluate_gre`'s group order.
        n_boot, seed, alpha: bootstrap replicates, seed and 1 − coverage.

    Returns:
        One row per group (``"all"`` first, then scene types) and threshold: ``group``, ``km``,
        ``after``, ``before``, ``difference``, ``ci_low``, ``ci_high``, ``n_images``, ``n_seeds``,
        and ``after_by_seed`` / ``before_by_seed`` (lists).
    """
    from geolib.metrics import bootstrap_ci

    after, before = (np.atleast_2d(np.asarray(e, dtype=float)) for e in (errors_after, errors_before))
    if after.shape != before.shape or after.ndim != 2 or after.shape[1] == 0:
        raise ValueError(f"both arms need errors of one (seeds, images) shape, got {after.shape} and {before.shape}")
    if scenes is not None and len(scenes) != after.shape[1]:
        raise ValueError(f"{len(scenes)} scene labels for {after.shape[1]} images")
    rows = []
    for group, mask in _scene_groups(scenes, after.shape[1]):
        for t in (float(t) for t in thresholds):
            hit_a = (np.nan_to_num(after[:, mask], nan=np.inf) <= t).astype(float)
            hit_b = (np.nan_to_num(before[:, mask], nan=np.inf) <= t).astype(float)
            per_image = hit_a.mean(axis=0) - hit_b.mean(axis=0)
            low, high = bootstrap_ci(lambda d: d.mean(axis=-1), per_image, n_boot=n_boot, seed=seed, alpha=alpha,
                                     vectorized=True)
            rows.append({"group": group, "km": t, "after": float(hit_a.mean()), "before": float(hit_b.mean()),
                         "difference": float(per_image.mean()), "ci_low": low, "ci_high": high,
                         "n_images": int(mask.sum()), "n_seeds": int(after.shape[0]),
                         "after_by_seed": hit_a.mean(axis=1).tolist(), "before_by_seed": hit_b.mean(axis=1).tolist()})
    return pd.DataFrame(rows)


_THINK = re.compile(r"<think>(?P<body>.*?)(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_ANSWER = re.compile(r"<answer>.*?(?:</answer>|$)", re.DOTALL | re.IGNORECASE)


def chain_text(completion: Any) -> str:
    """The reasoning of a completion: its ``<think>`` text, else the text without the ``<answer>`` block."""
    text = completion_text(completion)
    m = _THINK.search(text)
    return m.group("body") if m else _ANSWER.sub(" ", text)


def chain_quality(completions: Sequence[Any], truth_clues: Sequence[Any], n_boot: int = 0, seed: int = 0,
                  alpha: float = 0.05) -> dict[str, Any]:
    """How faithful the chains are to the image: recall and precision of its visible clues.

    Each chain's mentioned clues come from :func:`geolib.world.clues_mentioned` on its think text
    (:func:`chain_text`). Recall = mentioned visible clues / visible clues; precision = mentioned
    visible clues / mentioned clues (a mentioned clue that is not visible is a hallucination).

    Args:
        completions: the model's answers, aligned with ``truth_clues``.
        truth_clues: the visible clue ids of each image (the pool's ``clues`` column).
        n_boot: bootstrap replicates over chains for the intervals (0: no intervals).
        seed, alpha: the bootstrap's seed and 1 − coverage (:func:`geolib.metrics.bootstrap_ci`).

    Returns:
        ``recall``, ``precision``, ``f1`` (micro: pooled over all chains; NaN when undefined),
        ``recall_macro`` (mean over chains with a visible clue), ``precision_macro`` (mean over
        chains that mention one), ``hallucination_rate`` (share of chains that mention a clue not
        visible), ``n``, ``n_visible``, ``n_mentioned``, ``n_correct``, and ``by_type``: per clue
        type (script, language, ...) its ``recall``, ``precision``, ``n_visible``, ``n_mentioned``.
        With ``n_boot > 0`` also ``<score>_low``/``<score>_high`` for ``recall``, ``precision``,
        ``f1`` and ``hallucination_rate``.
    """
    from geolib import facts as world  # facts and clue vocabulary, no renderer

    texts = [chain_text(c) for c in completions] if not isinstance(completions, str) else None
    if texts is None:
        raise TypeError("completions must be a sequence of answers, not a single string")
    truths = [set(_clue_list(t)) for t in truth_clues]
    if len(texts) != len(truths):
        raise ValueError(f"{len(texts)} completions for {len(truths)} clue lists")
    if not texts:
        raise ValueError("chain_quality needs at least one completion")
    mentioned = [world.clues_mentioned(t) for t in texts]
    tp = [len(m & v) for m, v in zip(mentioned, truths)]
    n_vis, n_men, n_tp = sum(len(v) for v in truths), sum(len(m) for m in mentioned), sum(tp)

    def ratio(a, b):
        return a / b if b else float("nan")

    recall, precision = ratio(n_tp, n_vis), ratio(n_tp, n_men)
    f1 = 2 * recall * precision / (recall + precision) if recall + precision > 0 else (
        0.0 if recall == 0 or precision == 0 else float("nan"))
    rec_rows = [t / len(v) for t, v in zip(tp, truths) if v]
    prec_rows = [t / len(m) for t, m in zip(tp, mentioned) if m]
    by_type: dict[str, dict[str, float | int]] = {}
    for kind in sorted({c.partition(":")[0] for s in truths + mentioned for c in s}):
        v = sum(1 for s in truths for c in s if c.startswith(kind + ":"))
        m = sum(1 for s in mentioned for c in s if c.startswith(kind + ":"))
        t = sum(1 for s, w in zip(mentioned, truths) for c in s & w if c.startswith(kind + ":"))
        by_type[kind] = {"recall": ratio(t, v), "precision": ratio(t, m), "n_visible": v, "n_mentioned": m}
    out = {
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "recall_macro": float(np.mean(rec_rows)) if rec_rows else float("nan"),
        "precision_macro": float(np.mean(prec_rows)) if prec_rows else float("nan"),
        "hallucination_rate": float(np.mean([bool(m - v) for m, v in zip(mentioned, truths)])),
        "n": len(texts),
        "n_visible": n_vis,
        "n_mentioned": n_men,
        "n_correct": n_tp,
        "by_type": by_type,
    }
    if n_boot:
        from geolib.metrics import bootstrap_ci

        counts = np.array([[t, len(v), len(m), bool(m - v)] for t, v, m in zip(tp, truths, mentioned)], dtype=float)

        def pooled(c, num, den):
            with np.errstate(invalid="ignore", divide="ignore"):
                return c[..., num].sum(axis=-1) / c[..., den].sum(axis=-1)

        def f1_of(c):
            r, p = pooled(c, 0, 1), pooled(c, 0, 2)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(r + p > 0, 2 * r * p / np.where(r + p > 0, r + p, 1.0), 0.0)

        stats = {"recall": lambda c: pooled(c, 0, 1), "precision": lambda c: pooled(c, 0, 2), "f1": f1_of,
                 "hallucination_rate": lambda c: c[..., 3].mean(axis=-1)}
        for key, fn in stats.items():
            out[f"{key}_low"], out[f"{key}_high"] = bootstrap_ci(fn, counts, n_boot=n_boot, seed=seed, alpha=alpha,
                                                                 vectorized=True)
    return out


def score_table(scores: pd.DataFrame, columns: Sequence[str], percent: bool = True, digits: int = 1) -> pd.DataFrame:
    """Scores with their intervals as text, ``"41.2 [37.9, 44.6]"``, for the notebook's tables.

    Args:
        scores: rows from :func:`evaluate_gre` (columns ``<score>``, ``<score>_low``, ``<score>_high``),
            with any label columns (``model``, ``group``) kept as they are.
        columns: the scores to show, e.g. ``["within_25km", "format_ok"]``.
        percent: shares as percentages.
        digits: decimals.

    Returns:
        The label columns (those not among the scores or their bounds) and one text column per score.
    """
    missing = [c for c in columns if not {c, f"{c}_low", f"{c}_high"} <= set(scores.columns)]
    if missing:
        raise ValueError(f"scores lack {missing} or their _low/_high bounds; columns: {list(scores.columns)}")
    scored = {c for c in scores.columns if f"{c}_low" in scores.columns and f"{c}_high" in scores.columns}
    bounds = {f"{c}_{end}" for c in scored for end in ("low", "high")}
    labels = [c for c in scores.columns if c not in scored and c not in bounds]
    scale = 100.0 if percent else 1.0
    out = scores[labels].copy()
    for c in columns:
        v, lo, hi = (scores[k].to_numpy(dtype=float) * scale for k in (c, f"{c}_low", f"{c}_high"))
        out[c] = [f"{a:.{digits}f} [{b:.{digits}f}, {d:.{digits}f}]" if np.isfinite(a) else "–" for a, b, d in zip(v, lo, hi)]
    return out


__all__ = [
    "GRE_PROMPT", "CHAIN_STEPS", "NOTHING_VISIBLE", "SFT_STAGE", "PAPER_SFT", "DEMO_SFT", "PAPER_GRPO", "DEMO_GRPO",
    "check_coordinates", "format_coordinates", "build_chain", "chain_conversations", "chain_token_ids", "gre30k_conversations",
    "grpo_config", "FeatureProcessor", "grpo_dataset", "make_grpo_rewards", "GRPOResult", "merge_adapters",
    "load_grpo_model", "train_grpo", "evaluate_gre", "paired_within_difference", "answer_errors_km", "chain_text", "chain_quality", "score_table", "SFT_PRESETS",
    "GRPO_PRESETS", "sft_settings", "grpo_settings",
]
