"""GRE Suite's reasoning chains and their cold-start conversations (07_gre_reasoning_rl, 04_reasoning_tuning).

GRE (Wang et al., NeurIPS 2025) teaches a vision-language model to answer in a structured chain,
``<think>…</think><answer>latitude, longitude</answer>``, in three stages: cold-start SFT on
reasoning chains (GRE30K-CoT, this module), then GRPO reinforcement learning on a format reward
and a distance-shaped reward (:mod:`geolib.grpo`, :mod:`geolib.rewards`). Notebook 04 also adds
the demo chains to its tokenizer's corpus.

* **Chains** (:func:`build_chain`): GRE's multi-stage reasoning written only from what the image
  shows, in four ordered steps, (1) scene and architecture, (2) text and language, (3) vegetation
  and terrain, (4) transport and road markings, then a conclusion and the coordinates
  (latitude first, 4 decimals). A step with nothing visible says so. On the demo world the
  visible clues are the pool's ``clues`` column (:mod:`geolib.world`); on the paper profile the
  chains are GRE30K-CoT's own (:func:`gre30k_conversations`).
* **Cold-start SFT** is :func:`geolib.tuning.train_stage` on :func:`chain_conversations` with a LoRA
  named :data:`SFT_STAGE` (no wrapper: nothing to add); its settings are notebook 07's ``gre_sft``
  parameter (GeoReasoner's LoRA, ``lora``, on the paper profile too: GRE's stage-1 script is not public).

Deviation from GRE's released code, on purpose: its prompt is not released, :data:`GRE_PROMPT` is
this study's.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from geolib import conversations, facts, vlm
from geolib.rewards import format_reward


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
#: :data:`geolib.facts.CLUE_TYPES` not listed here are reported in the first step.
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

SCENE_WORDS = {"urban": "urban", "suburban": "suburban", "rural": "rural", "natural": "natural", "landmark": "landmark"}
_STEP_OF_TYPE = {t: key for key, _, types in CHAIN_STEPS for t in types}
_TYPE_ORDER = {t: i for i, t in enumerate(t for _, _, types in CHAIN_STEPS for t in types)}


def _value(row: Mapping[str, Any], key: str) -> Any:
    v = row.get(key) if hasattr(row, "get") else None
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


def clue_list(value: Any) -> list[str]:
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

    scene = _value(row, "scene")
    parts = [f"{SCENE_WORDS.get(str(scene), str(scene))} scene"] if scene else []
    reasoning = _value(row, "reasoning")
    if isinstance(reasoning, str) and reasoning.strip():
        first = _sentences(reasoning)[0]
        clause = re.split(r",\s+with\b", first, maxsplit=1)[0].rstrip(".").strip()
        if clause and not (facts.clues_mentioned(clause) - visible):
            parts.append(clause[0].lower() + clause[1:])
        if re.search(r"\bfog\b", reasoning, re.IGNORECASE):
            parts.append("fog hides the distance")
    return "; ".join(parts)


def _place_phrase(row: Mapping[str, Any], visible: set[str]) -> str | None:
    """``"Country, near City"`` for the conclusion; parts that would mention an invisible clue are dropped."""

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
        if not (facts.clues_mentioned(text) - visible):
            return text
    return None


def build_chain(row: Mapping[str, Any]) -> str:
    """GRE's reasoning chain for one image, written only from its visible clues.

    The chain is ``<think>`` with four numbered steps in GRE's order, (1) scene and architecture,
    (2) text and language, (3) vegetation and terrain, (4) transport and road markings, each
    listing the row's visible clues of that kind in words (:func:`geolib.facts.clue_phrase`) or
    saying briefly that nothing is visible, then a conclusion naming the country (and city), then
    ``<answer>latitude, longitude</answer>`` with the row's coordinates (decimal degrees, latitude
    first, 4 decimals, south and west negative). It passes :func:`geolib.rewards.format_reward`,
    and :func:`geolib.facts.clues_mentioned` finds exactly the row's clues in it.

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
    clues = sorted(set(clue_list(_value(row, "clues"))), key=lambda c: (_TYPE_ORDER.get(c.partition(":")[0], -1), c))
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


def row_images(frame: pd.DataFrame, image_column: str | None) -> list:
    """Each row's image key: ``frame[image_column]`` as Python values, or the row positions when None."""
    if image_column is None:
        return list(range(len(frame)))
    if image_column not in frame.columns:
        raise ValueError(f"image column {image_column!r} not in the frame; columns: {list(frame.columns)}")
    return [v.item() if isinstance(v, np.generic) else v for v in frame[image_column].tolist()]


def warn_skipped(what: str, skipped: list[tuple[int, str]], total: int) -> None:
    """Warn (for the caller of ``what``) how many of ``total`` rows were skipped, with the first three reasons."""
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
    images = row_images(pool_df, image_column)
    out, skipped = [], []
    for i, (image, row) in enumerate(zip(images, pool_df.to_dict("records"))):
        try:
            chain = build_chain(row)
        except ValueError as exc:
            skipped.append((i, str(exc)))
            continue
        out.append({"image": image, "messages": [conversations.user_message(prompt), conversations.assistant_message(chain)]})
    warn_skipped("chain_conversations", skipped, len(pool_df))
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
    """Cold-start conversations from GRE30K-CoT (:func:`geolib.corpora.load_gre30k_cot`), same shape.

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
    warn_skipped("gre30k_conversations", skipped, len(cot_df))
    if out and bad_format:
        warnings.warn(f"gre30k_conversations: {bad_format} of {len(out)} chains are not in GRE's "
                      "<think>…</think><answer>…</answer> format (kept as released)", stacklevel=2)
    return out


# ---------------------------------------------------------------------------------------------
# Cold-start SFT settings (trained with geolib.tuning.train_stage)

#: Adapter name of the cold-start stage.
SFT_STAGE = "gre_sft"


__all__ = [
    "GRE_PROMPT", "CHAIN_STEPS", "NOTHING_VISIBLE", "SCENE_WORDS", "SFT_STAGE",
    "clue_list", "check_coordinates", "format_coordinates", "build_chain", "row_images", "warn_skipped",
    "chain_conversations", "chain_token_ids", "gre30k_conversations",
]
