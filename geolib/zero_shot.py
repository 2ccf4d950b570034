"""StreetCLIP zero-shot country classification, a baseline of the evaluation table (paper profile).

Used by notebook ``06_evaluation``; returns the prediction frame of :mod:`geolib.baselines`
(:data:`geolib.baselines.PREDICTION_COLUMNS`).

StreetCLIP zero-shot (:func:`load_streetclip`, :func:`streetclip_zero_shot`): CLIP similarity of
the image with one prompt per candidate country, ``"A Street View photo in {country}."``; the
most similar is the answer. :func:`streetclip_baseline` loads it and answers a test split (notebook 06).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from geolib import runtime
from geolib.baselines import predictions_frame
from geolib.geoclip import device_of

runtime.patch_torchvision()

import torch  # noqa: E402  (after the torchvision patch)
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

#: StreetCLIP's country prompt (its model card and the GeoReasoner comparison).
STREETCLIP_PROMPT = "A Street View photo in {country}."


def load_streetclip(model_id: str = "geolocal/StreetCLIP", revision: str | None = None, device: str = "cpu"):
    """StreetCLIP (Haas et al. 2023) through transformers (paper profile only: a hub download).

    Returns:
        ``(model, processor)``: an eval-mode ``CLIPModel`` and its ``CLIPProcessor``.
    """
    from transformers import CLIPModel, CLIPProcessor

    from geolib import runtime

    revision = runtime.pinned_revision(model_id, revision, "streetclip_revision")
    with runtime.hub_load(f"StreetCLIP {model_id} @ {revision}"):
        model = CLIPModel.from_pretrained(model_id, revision=revision).to(device).eval()
        processor = CLIPProcessor.from_pretrained(model_id, revision=revision)
    return model, processor


def country_prompts(countries: Sequence[str], template: str = STREETCLIP_PROMPT) -> tuple[list[str], list[str]]:
    """Alpha-2 codes and prompts for candidate countries given as codes or names.

    Args:
        countries: ``"FR"`` or ``"France"`` alike (read by :func:`geolib.gazetteer.normalize_country`).
        template: a prompt with ``{country}``, filled with the English name (CLDR).

    Returns:
        ``(codes, prompts)``, aligned with ``countries``.

    Raises:
        ValueError: an unknown or ambiguous country, a duplicate, or fewer than 2 countries.
    """
    import babel

    from geolib.gazetteer import normalize_country

    if isinstance(countries, str):
        raise TypeError("countries must be a sequence of country codes or names, not one string")
    if "{country}" not in template:
        raise ValueError(f"template must contain {{country}}, got {template!r}")
    names = babel.Locale("en").territories
    codes, prompts = [], []
    for c in countries:
        code = normalize_country(c) if isinstance(c, str) else None
        if code is None:
            raise ValueError(f"unknown or ambiguous country {c!r} (give an ISO alpha-2 code or an English name)")
        if code in codes:
            raise ValueError(f"country {c!r} ({code}) is listed twice")
        codes.append(code)
        name = c.strip() if not (c.strip().isupper() and len(c.strip()) <= 3) else names.get(code, c.strip())
        prompts.append(template.format(country=name))
    if len(codes) < 2:
        raise ValueError(f"zero-shot classification needs at least 2 countries, got {len(codes)}")
    return codes, prompts


def _pooled(output: Any) -> torch.Tensor:
    """Projected CLIP features from ``get_*_features`` (a Tensor in transformers 4, an output in 5)."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"unexpected CLIP feature output {type(output).__name__}")


def streetclip_country_probs(
    images: Sequence[Any],
    countries: Sequence[str],
    model: nn.Module,
    processor: Any,
    batch_size: int = 32,
    template: str = STREETCLIP_PROMPT,
    progress: bool = False,
) -> tuple[list[str], np.ndarray]:
    """Zero-shot country probabilities: ``softmax(logit_scale · cos(image, prompt_k))``.

    The prompts are encoded once; images go through the processor (CLIP's resize and centre
    crop) in batches, which changes nothing but speed.

    Args:
        images: paths or PIL images.
        countries: candidate countries (codes or names, :func:`country_prompts`).
        model: a transformers ``CLIPModel`` (StreetCLIP; tests: a tiny random one).
        processor: its ``CLIPProcessor``.
        batch_size: images per forward pass.
        template: the prompt (default StreetCLIP's).
        progress: tqdm bar.

    Returns:
        ``(codes, probs)``: the K alpha-2 codes and float32 (N, K) probabilities.
    """
    from tqdm.auto import tqdm

    from geolib.features import load_rgb

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    codes, prompts = country_prompts(countries, template)
    device = device_of(model)
    out = []
    with torch.inference_mode():
        text = processor(text=prompts, return_tensors="pt", padding=True)
        text = {k: v.to(device) for k, v in text.items() if k in ("input_ids", "attention_mask")}
        text_emb = F.normalize(_pooled(model.get_text_features(**text)).float(), dim=-1)
        scale = model.logit_scale.exp().float()
        with tqdm(total=len(images), desc="StreetCLIP", unit="img", disable=not progress) as bar:
            for s in range(0, len(images), batch_size):
                batch = [load_rgb(im) for im in images[s : s + batch_size]]  # upright (EXIF), RGB
                pixels = processor(images=batch, return_tensors="pt")["pixel_values"].to(device)
                img = F.normalize(_pooled(model.get_image_features(pixel_values=pixels)).float(), dim=-1)
                out.append((scale * img @ text_emb.T).softmax(dim=-1).cpu())
                bar.update(len(batch))
    probs = torch.cat(out).numpy() if out else np.zeros((0, len(codes)), np.float32)
    return codes, probs


def streetclip_zero_shot(
    images: Sequence[Any],
    countries: Sequence[str],
    model: nn.Module,
    processor: Any,
    batch_size: int = 32,
    image_ids: Sequence[Any] | None = None,
    template: str = STREETCLIP_PROMPT,
    progress: bool = False,
) -> pd.DataFrame:
    """StreetCLIP zero-shot country classification, in the baselines' prediction shape.

    Args:
        images, countries, model, processor, batch_size, template, progress: see
            :func:`streetclip_country_probs`.
        image_ids: ids for the rows (default ``"0"``, ``"1"``, ...).

    Returns:
        Predictions (:data:`PREDICTION_COLUMNS`): ``pred_country`` the argmax country (alpha-2),
        ``score`` its probability; no city and no coordinates (a country-level classifier).
    """
    codes, probs = streetclip_country_probs(images, countries, model, processor, batch_size, template, progress)
    ids = list(range(len(images))) if image_ids is None else list(image_ids)
    if len(ids) != len(images):
        raise ValueError(f"{len(images)} images but {len(ids)} image ids")
    best = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
    return predictions_frame(ids, [codes[i] for i in best], None, None, None, probs[np.arange(len(best)), best])


def streetclip_baseline(model_id: str, test_df: pd.DataFrame, countries: Sequence[str], revision: str | None = None,
                        device: str = "cpu") -> pd.DataFrame:
    """Notebook 06's StreetCLIP row: load StreetCLIP (:func:`load_streetclip`) and classify the test
    images (``image_path``) among ``countries`` (:func:`streetclip_zero_shot`); the model is freed after."""
    model, processor = load_streetclip(model_id, revision or None, device=device)
    return streetclip_zero_shot(test_df["image_path"].tolist(), countries, model, processor, image_ids=test_df["image_id"])
