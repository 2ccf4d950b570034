"""The study's scores: GeoReasoner's accuracy/recall/F1, distance accuracy, bootstrap intervals.

Used by 06_evaluation and 07_gre_reasoning_rl (and every table that reports an interval).

Definitions (docs/metrics.md):

* GeoReasoner: *accuracy* = correct answers among answered ones, *recall* = share of images
  answered (a refusal or an unparsable answer is not answered), *F1* = their harmonic mean
  (0 when both are 0). :func:`f1_from` recomputes the paper's F1 column from its other two.
* Distance: great-circle (haversine) error in km from :func:`geolib.geo.haversine_km`; share
  within 1 / 25 / 200 / 750 / 2500 km (street, city, region, country, continent; ``<=``), where
  an unanswered row counts as a miss; median error over answered rows; mean GeoGuessr-style
  score 5000·exp(−d/1492.7), an unanswered row scoring 0; and the unparsable share.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: GRE / Im2GPS3k distance thresholds, km: street, city, region, country, continent.
THRESHOLDS_KM = (1, 25, 200, 750, 2500)

LEVELS = ("country", "city")


# --------------------------------------------------------------------------------------------
# GeoReasoner's accuracy / recall / F1


def accuracy_answered(correct: np.ndarray, answered: np.ndarray) -> np.ndarray:
    """Correct among answered along the last axis (0 where nothing is answered).

    ``correct`` and ``answered`` are boolean (or 0/1) arrays, e.g. ``(n_boot, n_images)`` for a
    bootstrap; the result has the leading shape.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(answered.sum(-1) > 0, correct.sum(-1) / np.maximum(answered.sum(-1), 1), 0.0)


def f1_answered(correct: np.ndarray, answered: np.ndarray) -> np.ndarray:
    """GeoReasoner's F1 along the last axis: the harmonic mean of :func:`accuracy_answered` and
    the answered share (recall); 0 where both are 0."""
    acc, rec = accuracy_answered(correct, answered), answered.mean(-1)
    s = acc + rec
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s > 0, 2 * acc * rec / np.where(s > 0, s, 1), 0.0)


def f1_from(accuracy: float, recall: float) -> float:
    """Harmonic mean of accuracy and recall, as GeoReasoner's tables report it.

    Args:
        accuracy: correct among answered, in [0, 1].
        recall: answered share, in [0, 1].

    Returns:
        ``2·a·r / (a + r)``, and 0.0 when both are 0.
    """
    for name, value in (("accuracy", accuracy), ("recall", recall)):
        if not (isinstance(value, (int, float, np.floating, np.integer)) and 0.0 <= float(value) <= 1.0):
            raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    a, r = float(accuracy), float(recall)
    return 0.0 if a + r == 0 else 2 * a * r / (a + r)


def is_missing(label: Any) -> bool:
    """None, NaN (any float type), ``pd.NA``/``pd.NaT`` or a blank string: not an answer."""
    if label is None:
        return True
    if isinstance(label, str):
        return not label.strip()
    if isinstance(label, (float, np.floating)):
        return bool(math.isnan(label))
    try:
        import pandas as pd

        return label is pd.NA or label is pd.NaT
    except ImportError:  # pragma: no cover
        return False


def normalize_city_label(city: str) -> str:
    """Case- and diacritic-insensitive form of a city name for comparison.

    ``"São Paulo"``, ``"sao paulo"`` and ``"SAO-PAULO"`` compare equal; punctuation and repeated
    spaces are ignored; ``"New York City"`` and ``"New York"`` stay different (no alias table).
    """
    text = unicodedata.normalize("NFKD", str(city))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.casefold().replace("ß", "ss")
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


def _country_key(label: Any) -> str:
    from geolib.gazetteer import normalize_country

    text = str(label).strip()
    code = normalize_country(text)
    # an unrecognised label compares by its case-folded text (it is an answer, and a wrong one
    # unless the truth is spelled the same way)
    return code if code is not None else "?" + normalize_city_label(text)


def _label_of(item: Any, level: str) -> Any:
    """Accept ParsedAnswer objects as predictions: their country label or city."""
    from geolib.answers import ParsedAnswer

    if isinstance(item, ParsedAnswer):
        return item.country_label if level == "country" else item.city
    return item


def answer_metrics(predicted: Sequence[Any], truth: Sequence[Any], level: str = "country") -> dict[str, float | int]:
    """GeoReasoner's Accuracy / Recall / F1 of labels.

    Args:
        predicted: one label per image; None (or NaN, or an empty string) = not answered.
            :class:`geolib.answers.ParsedAnswer` items are accepted (their ``country_label`` or
            ``city``).
        truth: one label per image, aligned with ``predicted``; none may be missing.
        level: ``"country"``: both sides go through :func:`geolib.gazetteer.normalize_country`, so
            ``"France"``, ``"FR"`` and ``"fra"`` are the same label (an unrecognised name is an
            answer compared by its text, so normally wrong); ``"city"``: compared case- and
            diacritic-insensitively (:func:`normalize_city_label`).

    Returns:
        ``{"accuracy", "recall", "f1", "n", "n_answered", "n_correct"}``; accuracy is 0.0 when
        nothing was answered.

    Raises:
        ValueError: lengths differ, no rows, a missing truth label, or an unknown level.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    for name, given in (("predicted", predicted), ("truth", truth)):
        if isinstance(given, (str, bytes)) or not hasattr(given, "__iter__"):
            raise TypeError(f"{name} must be a sequence of labels, one per image, got {type(given).__name__} "
                            f"{given!r:.60} (wrap a single label in a list)")
    predicted, truth = list(predicted), list(truth)
    if len(predicted) != len(truth):
        raise ValueError(f"predicted has {len(predicted)} labels but truth has {len(truth)}")
    if not truth:
        raise ValueError("answer_metrics needs at least one row")
    key = _country_key if level == "country" else normalize_city_label
    n_answered = n_correct = 0
    for i, (p, t) in enumerate(zip(predicted, truth)):
        if is_missing(t):
            raise ValueError(f"truth label {i} is missing ({t!r}); every image needs a true {level}")
        p = _label_of(p, level)
        if is_missing(p):
            continue
        n_answered += 1
        n_correct += key(p) == key(t)
    n = len(truth)
    accuracy = n_correct / n_answered if n_answered else 0.0
    recall = n_answered / n
    return {
        "accuracy": accuracy,
        "recall": recall,
        "f1": f1_from(accuracy, recall),
        "n": n,
        "n_answered": n_answered,
        "n_correct": n_correct,
    }


# --------------------------------------------------------------------------------------------
# distances


def _coords(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def distance_errors_km(pred_lat: Any, pred_lon: Any, true_lat: Any, true_lon: Any) -> np.ndarray:
    """Great-circle error per row (haversine, km); NaN where the prediction is missing.

    Args:
        pred_lat, pred_lon: predicted degrees, ``(n,)``; NaN = not answered.
        true_lat, true_lon: true degrees, ``(n,)``; all finite and in range.

    Returns:
        ``(n,)`` distances in km, NaN for unanswered rows.

    Raises:
        ValueError: shapes differ, a true coordinate is missing or out of range, or a predicted
            coordinate is out of range.
    """
    from geolib.geo import haversine_km

    plat, plon = _coords("pred_lat", pred_lat), _coords("pred_lon", pred_lon)
    tlat, tlon = _coords("true_lat", true_lat), _coords("true_lon", true_lon)
    shapes = {a.shape for a in (plat, plon, tlat, tlon)}
    if len(shapes) != 1:
        raise ValueError(f"coordinate arrays must be aligned, got shapes {[a.shape for a in (plat, plon, tlat, tlon)]}")
    if not (np.isfinite(tlat).all() and np.isfinite(tlon).all()):
        bad = np.flatnonzero(~(np.isfinite(tlat) & np.isfinite(tlon)))
        raise ValueError(f"true coordinates must be finite; rows {bad[:5].tolist()} are not")
    if (np.abs(tlat) > 90).any() or (np.abs(tlon) > 180).any():
        raise ValueError("true coordinates out of range (|lat| <= 90, |lon| <= 180)")
    answered = np.isfinite(plat) & np.isfinite(plon)
    if (np.abs(plat[answered]) > 90).any() or (np.abs(plon[answered]) > 180).any():
        raise ValueError("predicted coordinates out of range (|lat| <= 90, |lon| <= 180); use NaN for no answer")
    dist = np.full(plat.shape, np.nan)
    if answered.any():
        dist[answered] = haversine_km(plat[answered], plon[answered], tlat[answered], tlon[answered])
    return dist


def distance_summary(
    pred_lat: Any,
    pred_lon: Any,
    true_lat: Any,
    true_lon: Any,
    thresholds: Sequence[float] = THRESHOLDS_KM,
) -> dict[str, float | int]:
    """Distance scores of predicted coordinates (GRE's Im2GPS3k table plus GeoScore).

    Args:
        pred_lat, pred_lon: predicted degrees, ``(n,)``; NaN = not answered (counts as a miss).
        true_lat, true_lon: true degrees, ``(n,)``.
        thresholds: km thresholds for the "within" shares (``<=``).

    Returns:
        A flat dict: ``within_{t}km`` (share of all rows, e.g. ``within_25km``) for each
        threshold; ``median_km`` (over answered rows; NaN when none); ``mean_geoscore`` (mean of
        5000·exp(−d/1492.7), an unanswered row scoring 0); ``unparsable`` (unanswered share);
        ``n``; ``n_answered``.
    """
    from geolib.geo import accuracy_within_km, geoscore

    dist = distance_errors_km(pred_lat, pred_lon, true_lat, true_lon)
    n = dist.size
    if n == 0:
        raise ValueError("distance_summary needs at least one row")
    answered = np.isfinite(dist)
    within = accuracy_within_km(dist, thresholds=tuple(thresholds))
    out: dict[str, float | int] = {f"within_{t:g}km": float(within[t]) for t in thresholds}
    scores = np.zeros(n)
    if answered.any():
        scores[answered] = geoscore(dist[answered])
    out["median_km"] = float(np.median(dist[answered])) if answered.any() else float("nan")
    out["mean_geoscore"] = float(scores.mean())
    out["unparsable"] = float(1.0 - answered.mean())
    out["n"] = int(n)
    out["n_answered"] = int(answered.sum())
    return out


def predicted_coordinates(parsed_answers: Sequence[Any], geocode: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates to score for each parsed answer: its own, else its geocoded city, else NaN.

    Args:
        parsed_answers: :class:`geolib.answers.ParsedAnswer` items (None = no answer).
        geocode: look cities up with :func:`geolib.gazetteer.geocode_city` (``(city, country)``; the
            country is the answer's alpha-2 or None). Each distinct pair is looked up once.

    Returns:
        ``(lat, lon, source)``: float arrays ``(n,)`` (NaN where nothing was usable) and a string
        array ``(n,)`` saying which was used: ``"coords"``, ``"city"`` or ``"none"``.
    """
    n = len(parsed_answers)
    lat = np.full(n, np.nan)
    lon = np.full(n, np.nan)
    source = np.full(n, "none", dtype=object)
    cache: dict[tuple[str, str | None], tuple[float, float] | None] = {}
    for i, ans in enumerate(parsed_answers):
        if ans is None:
            continue
        if getattr(ans, "lat", None) is not None and getattr(ans, "lon", None) is not None:
            lat[i], lon[i], source[i] = ans.lat, ans.lon, "coords"
        elif geocode and getattr(ans, "city", None):
            key = (ans.city, ans.country)
            if key not in cache:
                from geolib.gazetteer import geocode_city

                cache[key] = geocode_city(ans.city, ans.country)
            found = cache[key]
            if found is not None:
                lat[i], lon[i] = found
                source[i] = "city"
    return lat, lon, source.astype(str)


# --------------------------------------------------------------------------------------------
# bootstrap


def _chunk_rows(n: int) -> int:
    """Replicates drawn at a time: about 4 million indices, independent of ``vectorized``."""
    return max(1, 4_000_000 // max(n, 1))


def bootstrap_ci(
    fn: Callable[..., float],
    *arrays: Any,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    vectorized: bool = False,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a statistic over rows, resampled in pairs.

    Every array is resampled with the same row indices (paired resampling), so aligned
    predictions and truths stay together. Deterministic for a given ``seed``.

    Args:
        fn: the statistic. Called as ``fn(*resampled_arrays) -> float`` (each array ``(n, …)``);
            with ``vectorized=True`` called on ``(chunk, n, …)`` arrays and returning ``(chunk,)``
            values (cheap for means and shares: ``lambda d: (d <= 25).mean(axis=-1)``).
        *arrays: aligned arrays (anything ``np.asarray`` takes; lists of labels or
            ParsedAnswer objects become object arrays), same length ``n`` >= 1.
        n_boot: bootstrap replicates.
        seed: seed of the resampling (``numpy.random.default_rng``).
        alpha: 1 − coverage (0.05 → a 95% interval).
        vectorized: see ``fn``; both modes draw the same resamples and give the same interval.

    Returns:
        ``(low, high)``: the ``alpha/2`` and ``1 − alpha/2`` percentiles of the replicates; NaN
        replicates (a statistic undefined on a resample) are left out; ``(nan, nan)`` when all are.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array to resample")
    if not (isinstance(n_boot, (int, np.integer)) and n_boot >= 1):
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    arrs = []
    for a in arrays:
        if isinstance(a, (list, tuple)) and any(not isinstance(x, (int, float, str, bool, np.generic)) for x in a):
            arr = np.empty(len(a), dtype=object)
            arr[:] = list(a)
        else:
            arr = np.asarray(a)
        if arr.ndim == 0:
            raise ValueError("bootstrap_ci resamples rows: arrays must be at least one-dimensional")
        arrs.append(arr)
    n = len(arrs[0])
    if n == 0 or any(len(a) != n for a in arrs):
        raise ValueError(f"arrays must be non-empty and aligned, got lengths {[len(a) for a in arrs]}")
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot, dtype=float)
    chunk = _chunk_rows(n)
    done = 0
    while done < n_boot:
        k = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(k, n))
        if vectorized:
            values = np.asarray(fn(*(a[idx] for a in arrs)), dtype=float).reshape(-1)
            if values.shape != (k,):
                raise ValueError(f"vectorized fn must return one value per replicate ({k}), got shape {values.shape}")
            stats[done : done + k] = values
        else:
            for j in range(k):
                stats[done + j] = float(fn(*(a[idx[j]] for a in arrs)))
        done += k
    finite = stats[~np.isnan(stats)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)
