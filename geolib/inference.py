"""Inference on a test split: batched generation, parsed answers, predictions (notebooks 06, 07).

GeoReasoner's inference asks for a country, a city and the reasons in JSON; the model's raw text
is kept next to what :func:`geolib.answers.parse_answer` reads from it, and the predicted
coordinates come from the answer's coordinates when it gives them, else from the predicted city
geocoded with GeoNames (``coord_source`` says which). The result has the prediction columns of
:mod:`geolib.baselines`, so :func:`geolib.evaluation.baseline_table` scores a model and its
baselines alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from geolib import answers, metrics


def predictions_from_texts(image_ids: Sequence[str], texts: Sequence[str], geocode: bool = True) -> pd.DataFrame:
    """Parse raw model answers into the prediction table (never raises on a bad answer).

    Args:
        image_ids: One id per answer.
        texts: The model's raw answers.
        geocode: Geocode a predicted city when the answer has no coordinates.

    Returns:
        DataFrame: ``image_id, pred_country, pred_city, pred_lat, pred_lon, score, answered,
        coord_source, reasons, parse_error, raw`` (``score`` is NaN: generation gives no confidence).
        ``pred_country`` is what GeoReasoner scores (``ParsedAnswer.country_label``): alpha-2, or
        the text of an unrecognised country (an answer, and a wrong one), or None (not answered).
    """
    if len(image_ids) != len(texts):
        raise ValueError(f"{len(image_ids)} image ids for {len(texts)} answers")
    parsed = [answers.parse_answer(t) for t in texts]
    lat, lon, source = metrics.predicted_coordinates(parsed, geocode=geocode)
    return pd.DataFrame({
        "image_id": list(image_ids),
        "pred_country": pd.Series([p.country_label for p in parsed], dtype=object),
        "pred_city": pd.Series([p.city for p in parsed], dtype=object),
        "pred_lat": np.asarray(lat, dtype=float),
        "pred_lon": np.asarray(lon, dtype=float),
        "score": np.nan,
        "answered": [p.answered for p in parsed],
        "coord_source": list(source),
        "reasons": pd.Series([p.reasons for p in parsed], dtype=object),
        "parse_error": pd.Series([p.error for p in parsed], dtype=object),
        "raw": list(texts),
    })


def answer_images(model, processor, images_or_features, image_ids: Sequence[str], prompt: str | None = None,
                  max_new_tokens: int = 128, batch_size: int = 16, progress: bool = True) -> pd.DataFrame:
    """Greedy answers of a vision-language model for many images, parsed into predictions.

    Args:
        model, processor: From :mod:`geolib.vlm` (any profile).
        images_or_features: Cached tower features (N, tokens, dim) for the demo model, or image
            paths / PIL images.
        image_ids: One id per image.
        prompt: The question (default: the paper's evaluation prompt, ``vlm.PROMPTS["evaluation"]``).
        max_new_tokens: Fixed generation limit.
        batch_size: Images per batch (left-padded batched greedy decoding).

    Returns:
        :func:`predictions_from_texts`'s table.
    """
    from geolib import vlm

    texts = vlm.generate(model, processor, images_or_features, prompt or vlm.PROMPTS["evaluation"],
                         max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    return predictions_from_texts(image_ids, texts)


def answer_study_model(profile: str, spec, stages: Sequence[str], images_or_features, image_ids: Sequence[str], prompt: str,
                       max_new_tokens: int = 128, batch_size: int = 16, candidates: Sequence[str] | None = None,
                       reasons_prompt: str | None = None, reasons_max_new_tokens: int = 160) -> dict:
    """One model of notebook 06's tables answering the test images: the study's model with ``stages``
    stacked (:func:`geolib.vlm.study_model`), greedy answers to ``prompt`` (:func:`answer_images`),
    optionally the closed-set scores of ``candidates`` in the answer slot and a second generation
    with ``reasons_prompt``. Self-contained (it loads the model itself), so notebook 06 can run
    its models side by side in worker processes (:func:`geolib.runtime.in_processes`).

    Returns:
        ``{"answers": predictions, "slot_scores": (images, candidates) log-likelihoods or None,
        "reasons": predictions of the reasons prompt or None, "seconds": float}``.
    """
    import time

    from geolib import vlm

    start = time.perf_counter()
    model, processor = vlm.study_model(profile, spec, stages)
    out = {"answers": answer_images(model, processor, images_or_features, image_ids, prompt=prompt,
                                    max_new_tokens=max_new_tokens, batch_size=batch_size, progress=False),
           "slot_scores": None, "reasons": None}
    if candidates is not None:
        out["slot_scores"] = vlm.closed_set_scores(model, processor, images_or_features, list(candidates), prompt=prompt,
                                                   batch_size=batch_size)
    if reasons_prompt is not None:
        out["reasons"] = answer_images(model, processor, images_or_features, image_ids, prompt=reasons_prompt,
                                       max_new_tokens=reasons_max_new_tokens, batch_size=batch_size, progress=False)
    out["seconds"] = time.perf_counter() - start
    return out
