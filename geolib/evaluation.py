"""The evaluation's tables: per-image correctness, the main and ablation tables, paired differences,
accuracy by locatability bin, reasoning faithfulness, error by country (notebook 06_evaluation;
notebook 08_read_the_signs scores the sign reader with them).

The scores themselves are :mod:`geolib.metrics`' (GeoReasoner's accuracy / recall / F1, distance
shares, median error, GeoScore); this module computes them for every model and adds what
notebook 06 needs around them:

* :func:`baseline_table`: every model's prediction frame (a baseline's, :mod:`geolib.baselines`,
  or the vision-language model's parsed answers) scored with percentile-bootstrap intervals;
* :func:`evaluation_table`: ``baseline_table`` plus the unanswered (unparsable) share, with
  bootstrap intervals, for every model;
* :func:`interval_table`: the tidy table as ``value [low, high]`` strings, one row per model;
* :func:`correct_and_answered` and :func:`f1_difference`: per-image correctness and the paired
  bootstrap interval of a difference in F1 (or accuracy) between two models on the same images;
* :func:`accuracy_by_bins`: accuracy and answered share by locatability decile ("does the model
  know when it cannot know?");
* :func:`faithfulness`: of the clues a model's reasons cite, the share that is visible in the image
  (precision), and of the visible clues the share cited (recall), with intervals;
* :func:`within_km_curve` and :func:`errors_by_country` for the curves and the map;
* :func:`faithfulness_with_references`: that table for every model with reasons, beside the demo
  world's own reasoning texts and each model's reasons given to another image;
* the record: :func:`summary_keys` (headline keys for ``summary.json``), :func:`gain_summary` (the
  headline in words) and :func:`check_table` (what any table must satisfy, for the notebook's checks);
* the published numbers of GeoReasoner's Tables 1 and 3 and its data-quality experiment
  (:func:`paper_table`), printed beside this study's as a reference (they are on another test set).

GRE Suite's scores (notebook 07) are :mod:`geolib.gre_scores`'.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from geolib import metrics

#: GeoReasoner Table 1 (its own Street View test set): accuracy, recall, F1 per model and level.
PAPER_TABLE1 = {
    "StreetCLIP": {"country": (0.7943, 1.00, 0.8854), "city": (0.7457, 1.00, 0.8543)},
    "LLaVA": {"country": (0.4029, 1.00, 0.5744)},
    "Qwen-VL": {"country": (0.5829, 0.95, 0.7225), "city": (0.3743, 0.89, 0.5270)},
    "GPT-4V": {"country": (0.8917, 0.34, 0.4923)},
    "GeoReasoner": {"country": (0.8237, 1.00, 0.9033), "city": (0.7521, 1.00, 0.8585)},
}

#: GeoReasoner Table 3 (ablation): F1 at country and city level.
PAPER_ABLATION_F1 = {
    "without location tuning": {"country": 0.8215, "city": 0.5813},
    "without reasoning tuning": {"country": 0.8766, "city": 0.8255},
    "full": {"country": 0.9033, "city": 0.8584},
}

#: GeoReasoner's data-quality experiment: country accuracy with 0% and 100% highly locatable
#: street views in the location-tuning data.
PAPER_DATA_QUALITY = {"uncurated": 0.63, "curated": 0.72}

#: Metric columns of :func:`evaluation_table`, in order.
EVAL_METRICS = (
    "country_accuracy", "country_recall", "country_f1",
    "city_accuracy", "city_recall", "city_f1",
    "within_1km", "within_25km", "within_200km", "within_750km", "within_2500km",
    "median_km", "mean_geoscore", "unanswered",
)

#: Metrics that are shares in [0, 1].
SHARE_METRICS = tuple(m for m in EVAL_METRICS if m not in ("median_km", "mean_geoscore"))


def paper_table() -> pd.DataFrame:
    """GeoReasoner's Table 1 as a frame: one row per model, columns ``country_accuracy`` …
    ``city_f1`` (NaN where the paper reports nothing)."""
    rows = {}
    for model, levels in PAPER_TABLE1.items():
        row = {}
        for level in ("country", "city"):
            acc, rec, f1 = levels.get(level, (np.nan, np.nan, np.nan))
            row.update({f"{level}_accuracy": acc, f"{level}_recall": rec, f"{level}_f1": f1})
        rows[model] = row
    return pd.DataFrame(rows).T


# ---------------------------------------------------------------------------------------------
# Per-image correctness


def correct_and_answered(predicted: Sequence[Any], truth: Sequence[Any], level: str = "country",
                         as_text: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per image: was a label answered, and was it right (GeoReasoner's definitions).

    Each row is scored by :func:`geolib.metrics.answer_metrics` (a country after
    ``normalize_country``, a city case- and diacritic-insensitively), so the sums reproduce its
    accuracy (``correct.sum() / answered.sum()``) and recall (``answered.mean()``).

    Args:
        predicted: labels, None/NaN/"" = not answered.
        truth: true labels, aligned.
        level: ``"country"`` or ``"city"``.
        as_text: score a label's text (``str(label)``); False: the label itself, exactly as
            :func:`baseline_table`'s point values (``answer_metrics`` on the raw labels) see it.

    Returns:
        ``(correct, answered)``: two bool arrays ``(n,)``; ``correct`` implies ``answered``.
    """
    predicted, truth = list(predicted), list(truth)
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions for {len(truth)} true labels")
    correct = np.zeros(len(truth), bool)
    answered = np.zeros(len(truth), bool)
    cache: dict = {}
    for i, (p, t) in enumerate(zip(predicted, truth)):
        key = (None if metrics.is_missing(p) else str(p) if as_text else p, t)
        if key not in cache:
            m = metrics.answer_metrics([key[0]], [t], level)
            cache[key] = (m["n_correct"] == 1, m["n_answered"] == 1)
        correct[i], answered[i] = cache[key]
    return correct, answered


def answered_rows(pred: pd.DataFrame) -> np.ndarray:
    """Which prediction rows hold an answer: the ``answered`` column of parsed model answers, else
    a country, a city or coordinates (a baseline)."""
    if "answered" in pred.columns:
        return pred["answered"].fillna(False).to_numpy(dtype=bool)
    has = ~pred["pred_country"].map(metrics.is_missing).to_numpy(bool) | ~pred["pred_city"].map(metrics.is_missing).to_numpy(bool)
    coords = np.isfinite(pd.to_numeric(pred["pred_lat"], errors="coerce").to_numpy(float))
    return has | coords


def reasons_or_raw(pred: pd.DataFrame) -> list:
    """The reasons of each answer: the parsed ``reasons`` field, else the whole raw answer.

    Small models often garble the JSON around otherwise readable reasons; the clue matcher of
    :func:`faithfulness` reads free text, so the raw answer stands in where no field was read.
    """
    reasons = pred["reasons"].tolist() if "reasons" in pred.columns else [None] * len(pred)
    raw = pred["raw"].tolist() if "raw" in pred.columns else [None] * len(pred)
    return [r if isinstance(r, str) and r.strip() else (t if isinstance(t, str) else None) for r, t in zip(reasons, raw)]


def aligned(pred: pd.DataFrame, test_df: pd.DataFrame) -> pd.DataFrame:
    """Predictions in the test split's row order (``image_id``), truth columns beside them.

    Returns:
        ``test_df``'s rows with ``pred_country``, ``pred_city``, ``pred_lat``, ``pred_lon`` and
        ``answered`` added (a test image without a prediction row is unanswered).
    """
    ids = pred["image_id"].astype(str)
    if ids.duplicated().any():
        raise ValueError(f"predictions repeat image ids, e.g. {ids[ids.duplicated()].iloc[0]!r}")
    p = pred.assign(image_id=ids, answered=answered_rows(pred)).set_index("image_id")
    out = test_df.reset_index(drop=True).copy()
    keys = out["image_id"].astype(str)
    for col in ("pred_country", "pred_city", "pred_lat", "pred_lon", "answered"):
        out[col] = keys.map(p[col]).to_numpy()
    out["answered"] = out["answered"].fillna(False).astype(bool)
    out["pred_lat"] = pd.to_numeric(out["pred_lat"], errors="coerce")
    out["pred_lon"] = pd.to_numeric(out["pred_lon"], errors="coerce")
    return out


def error_km(pred: pd.DataFrame, test_df: pd.DataFrame) -> np.ndarray:
    """Great-circle error (km) of each test image, NaN where the model gave no coordinates."""
    a = aligned(pred, test_df)
    return metrics.distance_errors_km(a["pred_lat"], a["pred_lon"], a["lat"], a["lon"])


# =============================================================================================
# The baseline table: any model's prediction frame scored with the study's metrics and intervals
# (:func:`baseline_table`, its :data:`TABLE_METRICS` and helpers; formerly in geolib.baselines)
# =============================================================================================

#: Metric names of :func:`baseline_table`, in order.
TABLE_METRICS = (
    "country_accuracy", "country_recall", "country_f1",
    "city_accuracy", "city_recall", "city_f1",
    "within_1km", "within_25km", "within_200km", "within_750km", "within_2500km",
    "median_km", "mean_geoscore",
)


def _align(pred: pd.DataFrame, test_df: pd.DataFrame, name: str) -> pd.DataFrame:
    need = ("image_id", "pred_country", "pred_city", "pred_lat", "pred_lon")
    missing = [c for c in need if c not in pred.columns]
    if missing:
        raise ValueError(f"predictions {name!r} lack columns {missing} (has {list(pred.columns)}; needs {list(need)})")
    ids = pred["image_id"].astype(str)
    if ids.duplicated().any():
        raise ValueError(f"predictions {name!r} repeat image ids, e.g. {ids[ids.duplicated()].iloc[0]!r}")
    truth_ids = set(test_df["image_id"].astype(str))
    extra = ids[~ids.isin(truth_ids)]
    if len(extra):
        raise ValueError(f"predictions {name!r} hold {len(extra)} image ids not in test_df (e.g. {extra.iloc[0]!r}): "
                         f"another split?")
    p = pred.assign(image_id=ids).set_index("image_id")
    t = test_df.assign(image_id=test_df["image_id"].astype(str)).set_index("image_id")
    merged = t[["country", "city", "lat", "lon"]].join(p[["pred_country", "pred_city", "pred_lat", "pred_lon"]], how="left")
    if len(p) < len(t):
        warnings.warn(f"predictions {name!r} cover {len(p)} of {len(t)} test images; the rest count as unanswered",
                      stacklevel=3)
    return merged.reset_index()


def _nanmedian(d):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(d, axis=-1)


def baseline_table(
    predictions: Mapping[str, pd.DataFrame],
    test_df: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    thresholds: Sequence[float] = (1, 25, 200, 750, 2500),
) -> pd.DataFrame:
    """Score predictions with the study's metrics and percentile-bootstrap 95% intervals.

    GeoReasoner's accuracy / recall / F1 at country and city level
    (:func:`geolib.metrics.answer_metrics`: a country is compared after
    :func:`geolib.gazetteer.normalize_country`, so codes and names both work; a city by name, case and
    diacritics ignored; None = not answered); the distance metrics of
    :func:`geolib.metrics.distance_summary` (share within each threshold, where a row without
    coordinates is a miss; median km over rows with coordinates; mean GeoScore, 0 for no
    coordinates). Intervals resample test images (paired across the metrics of one model;
    :func:`geolib.metrics.bootstrap_ci`).

    Args:
        predictions: ``{model name: predictions}`` with ``image_id``, ``pred_country``,
            ``pred_city``, ``pred_lat``, ``pred_lon`` (the baselines' frames, or the VLM's parsed
            answers in the same columns; cities are not geocoded here: fill ``pred_lat``/
            ``pred_lon`` first, e.g. with :func:`geolib.metrics.predicted_coordinates`). A test
            image without a prediction row counts as unanswered.
        test_df: the test split (``image_id``, ``country``, ``city``, ``lat``, ``lon``). City
            metrics use the rows with a true city.
        n_boot: bootstrap replicates.
        seed: bootstrap seed.
        thresholds: km thresholds of the ``within_*`` metrics.

    Returns:
        A tidy DataFrame, one row per (model, metric): ``model``, ``metric`` (:data:`TABLE_METRICS`
        order), ``value``, ``ci_low``, ``ci_high``, ``n`` (images the metric is computed over).
        Shares are in [0, 1], ``median_km`` in km, ``mean_geoscore`` in [0, 5000]. Pivot with
        ``table.pivot(index="model", columns="metric", values="value")``.
    """
    from geolib.baselines import check_split
    from geolib.geo import geoscore

    check_split(test_df, "test_df")
    if not isinstance(predictions, Mapping) or not predictions:
        raise ValueError("predictions must be a non-empty mapping {model name: predictions DataFrame}")
    if test_df["image_id"].astype(str).duplicated().any():
        raise ValueError("test_df repeats image ids")
    rows = []
    for name, pred in predictions.items():
        df = _align(pred, test_df, name)
        n = len(df)
        for level in ("country", "city"):
            has_truth = ~df[level].map(metrics.is_missing).to_numpy()
            sub = df[has_truth]
            if sub.empty:
                for m in ("accuracy", "recall", "f1"):
                    rows.append((name, f"{level}_{m}", np.nan, np.nan, np.nan, 0))
                continue
            preds = sub[f"pred_{level}"].tolist()
            truth = sub[level].tolist()
            point = metrics.answer_metrics([None if metrics.is_missing(p) else p for p in preds], truth, level)
            c, a = correct_and_answered(preds, truth, level, as_text=False)
            for m, fn in (("accuracy", metrics.accuracy_answered), ("recall", lambda c_, a_: a_.mean(-1)),
                          ("f1", metrics.f1_answered)):
                lo, hi = metrics.bootstrap_ci(fn, c, a, n_boot=n_boot, seed=seed, vectorized=True)
                rows.append((name, f"{level}_{m}", float(point[m]), lo, hi, len(sub)))
        plat = pd.to_numeric(df["pred_lat"], errors="coerce").to_numpy(float)
        plon = pd.to_numeric(df["pred_lon"], errors="coerce").to_numpy(float)
        tlat, tlon = df["lat"].to_numpy(float), df["lon"].to_numpy(float)
        summary = metrics.distance_summary(plat, plon, tlat, tlon, thresholds=tuple(thresholds))
        d = metrics.distance_errors_km(plat, plon, tlat, tlon)
        score = np.where(np.isnan(d), 0.0, geoscore(np.nan_to_num(d)))
        for t in thresholds:
            lo, hi = metrics.bootstrap_ci(lambda x, t=t: (x <= t).mean(-1), d, n_boot=n_boot, seed=seed, vectorized=True)
            rows.append((name, f"within_{t:g}km", summary[f"within_{t:g}km"], lo, hi, n))
        lo, hi = metrics.bootstrap_ci(_nanmedian, d, n_boot=n_boot, seed=seed, vectorized=True)
        rows.append((name, "median_km", summary["median_km"], lo, hi, int(np.isfinite(d).sum())))
        lo, hi = metrics.bootstrap_ci(lambda s: s.mean(-1), score, n_boot=n_boot, seed=seed, vectorized=True)
        rows.append((name, "mean_geoscore", summary["mean_geoscore"], lo, hi, n))
    return pd.DataFrame(rows, columns=["model", "metric", "value", "ci_low", "ci_high", "n"])


# ---------------------------------------------------------------------------------------------
# Tables


def evaluation_table(predictions: Mapping[str, pd.DataFrame], test_df: pd.DataFrame, n_boot: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """Every metric of every model with a percentile-bootstrap 95% interval (tidy).

    :func:`baseline_table` (accuracy / recall / F1 at both levels, share within
    1 / 25 / 200 / 750 / 2500 km, median km, GeoScore) plus ``unanswered``: the share of test
    images without a usable answer (unparsable, refused, or missing).

    Returns:
        Columns ``model``, ``metric`` (:data:`EVAL_METRICS`), ``value``, ``ci_low``, ``ci_high``, ``n``.
    """
    table = baseline_table(predictions, test_df, n_boot=n_boot, seed=seed)
    extra = []
    for name, pred in predictions.items():
        missing = ~aligned(pred, test_df)["answered"].to_numpy(bool)
        lo, hi = metrics.bootstrap_ci(lambda x: x.mean(-1), missing.astype(float), n_boot=n_boot, seed=seed, vectorized=True)
        extra.append((name, "unanswered", float(missing.mean()), lo, hi, len(missing)))
    table = pd.concat([table, pd.DataFrame(extra, columns=table.columns)], ignore_index=True)
    order = {m: i for i, m in enumerate(EVAL_METRICS)}
    models = {m: i for i, m in enumerate(predictions)}
    table = table.assign(_m=table["model"].map(models), _k=table["metric"].map(order)).sort_values(["_m", "_k"])
    return table.drop(columns=["_m", "_k"]).reset_index(drop=True)


def _format(value: float, low: float, high: float, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric in ("median_km", "mean_geoscore"):
        fmt = "{:,.0f}"
    else:
        fmt = "{:.3f}"
    text = fmt.format(value)
    if not (math.isnan(low) or math.isnan(high)):
        text += f" [{fmt.format(low)}, {fmt.format(high)}]"
    return text


def interval_table(table: pd.DataFrame, metrics_: Sequence[str] | None = None) -> pd.DataFrame:
    """The tidy table as ``value [low, high]`` strings: one row per model, one column per metric.

    Args:
        table: from :func:`evaluation_table` (or ``baseline_table``).
        metrics_: the columns to show, in order (default: every metric present).
    """
    metrics_ = list(metrics_) if metrics_ is not None else [m for m in EVAL_METRICS if m in set(table["metric"])]
    cells = table.assign(text=[_format(v, lo, hi, m) for v, lo, hi, m in
                               zip(table["value"], table["ci_low"], table["ci_high"], table["metric"])])
    wide = cells.pivot(index="model", columns="metric", values="text")
    return wide.reindex(index=list(dict.fromkeys(table["model"])), columns=metrics_)


def values(table: pd.DataFrame) -> pd.DataFrame:
    """The point values of the tidy table: one row per model, one column per metric."""
    wide = table.pivot(index="model", columns="metric", values="value")
    return wide.reindex(index=list(dict.fromkeys(table["model"])),
                        columns=[m for m in EVAL_METRICS if m in wide.columns])


def table_records(table: pd.DataFrame) -> dict:
    """``{model: {metric: {value, ci_low, ci_high, n}}}`` for the results JSON."""
    out: dict = {}
    for row in table.itertuples(index=False):
        out.setdefault(row.model, {})[row.metric] = {"value": row.value, "ci_low": row.ci_low,
                                                     "ci_high": row.ci_high, "n": int(row.n)}
    return out


# ---------------------------------------------------------------------------------------------
# Paired differences




_STATS = {"f1": metrics.f1_answered, "accuracy": metrics.accuracy_answered, "recall": lambda c, a: a.mean(-1)}


def f1_difference(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray], statistic: str = "f1",
                  n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """``statistic(first) − statistic(second)`` on the same images, with a paired bootstrap interval.

    Args:
        first, second: ``(correct, answered)`` bool arrays of two models on the same test images
            (:func:`correct_and_answered`).
        statistic: ``"f1"``, ``"accuracy"`` (correct among answered) or ``"recall"``.
        n_boot, seed: bootstrap replicates and seed (images are resampled, both models together).

    Returns:
        ``first``, ``second``, ``difference``, ``ci_low``, ``ci_high``, and ``relative`` =
        difference / second (NaN when ``second`` is 0: a relative gain over nothing is undefined).
    """
    if statistic not in _STATS:
        raise ValueError(f"statistic must be one of {sorted(_STATS)}, got {statistic!r}")
    fn = _STATS[statistic]
    c1, a1 = (np.asarray(x, bool) for x in first)
    c2, a2 = (np.asarray(x, bool) for x in second)
    if not (c1.shape == a1.shape == c2.shape == a2.shape) or c1.ndim != 1 or not len(c1):
        raise ValueError("both models need (correct, answered) arrays over the same non-empty set of images")
    if (c1 & ~a1).any() or (c2 & ~a2).any():
        raise ValueError("a row is correct but not answered")
    v1, v2 = float(fn(c1, a1)), float(fn(c2, a2))
    lo, hi = metrics.bootstrap_ci(lambda w, x, y, z: fn(w, x) - fn(y, z), c1, a1, c2, a2, n_boot=n_boot, seed=seed,
                                  vectorized=True)
    return {"first": v1, "second": v2, "difference": v1 - v2, "ci_low": lo, "ci_high": hi,
            "relative": (v1 - v2) / v2 if v2 > 0 else float("nan")}


def quality_curve(hits: Mapping[int, tuple[np.ndarray, np.ndarray]], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """GeoReasoner's data-quality curve: country accuracy per share of highly locatable training images.

    Args:
        hits: ``{share in %: (correct, answered)}`` of the data-quality arms on the same test
            images (:func:`correct_and_answered`).
        n_boot, seed: bootstrap replicates and seed.

    Returns:
        One row per share (ascending): ``share``, ``country_accuracy`` (correct among answered)
        with its percentile-bootstrap ``ci_low`` / ``ci_high``, ``answered``, and the paired
        difference from the lowest share (``minus_lowest``, ``minus_lowest_ci_low``,
        ``minus_lowest_ci_high``; 0 for the lowest itself).
    """
    if not hits:
        raise ValueError("quality_curve needs at least one arm")
    shares = sorted(hits)
    lowest = hits[shares[0]]
    rows = []
    for share in shares:
        c, a = (np.asarray(x, bool) for x in hits[share])
        lo, hi = metrics.bootstrap_ci(metrics.accuracy_answered, c, a, n_boot=n_boot, seed=seed, vectorized=True)
        diff = f1_difference(hits[share], lowest, "accuracy", n_boot=n_boot, seed=seed)
        rows.append({"share": share, "country_accuracy": float(metrics.accuracy_answered(c, a)), "ci_low": lo, "ci_high": hi,
                     "answered": float(a.mean()), "minus_lowest": diff["difference"],
                     "minus_lowest_ci_low": diff["ci_low"], "minus_lowest_ci_high": diff["ci_high"]})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Accuracy by locatability


def accuracy_by_bins(score: Sequence[float], correct: np.ndarray, answered: np.ndarray, n_bins: int = 10,
                     n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Accuracy and answered share in quantile bins of a score (e.g. locatability deciles).

    A model that "knows when it cannot know" answers less often where the score is low and stays
    accurate where it answers; one that does not answers everything and is simply wrong there.

    Args:
        score: one number per image (e.g. its locatability).
        correct, answered: per-image bools (:func:`correct_and_answered`).
        n_bins: quantile bins (10: deciles); ties can merge bins.
        n_boot, seed: bootstrap of the accuracy within each bin.

    Returns:
        One row per bin: ``bin`` (1 = lowest score), ``score_low``, ``score_high``, ``score_mean``,
        ``n``, ``answered`` (share), ``accuracy`` (correct among answered, GeoReasoner's),
        ``ci_low``, ``ci_high`` (of the accuracy), ``correct`` (share of all images).
    """
    s = np.asarray(score, dtype=float)
    c, a = np.asarray(correct, bool), np.asarray(answered, bool)
    if not (s.shape == c.shape == a.shape) or s.ndim != 1:
        raise ValueError(f"score, correct and answered must be aligned 1-d arrays, got {s.shape}, {c.shape}, {a.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if not len(s):
        raise ValueError("accuracy_by_bins needs at least one image")
    bins = pd.qcut(pd.Series(s).rank(method="first"), q=min(n_bins, len(s)), labels=False)
    rows = []
    for b in sorted(pd.unique(bins)):
        m = (bins == b).to_numpy()
        cb, ab = c[m], a[m]
        lo, hi = (metrics.bootstrap_ci(metrics.accuracy_answered, cb, ab, n_boot=n_boot, seed=seed, vectorized=True)
                  if ab.any() else (float("nan"), float("nan")))
        rows.append({"bin": int(b) + 1, "score_low": float(s[m].min()), "score_high": float(s[m].max()),
                     "score_mean": float(s[m].mean()), "n": int(m.sum()), "answered": float(ab.mean()),
                     "accuracy": float(metrics.accuracy_answered(cb, ab)), "ci_low": lo, "ci_high": hi, "correct": float(cb.mean())})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Reasoning faithfulness


def cited_clues(reasons: Sequence[Any], visible: Sequence[Any]) -> pd.DataFrame:
    """Per image, the clues its reasons cite and how many of them are visible.

    Args:
        reasons: the model's reasons per image (None / NaN: no reasons, cites nothing).
        visible: the clue ids visible in each image (the pool's ``clues`` column).

    Returns:
        Columns ``cited`` (sorted clue ids), ``n_cited``, ``n_visible``, ``n_cited_visible``.
    """
    from geolib import facts

    reasons, visible = list(reasons), list(visible)
    if len(reasons) != len(visible):
        raise ValueError(f"{len(reasons)} reasons for {len(visible)} clue lists")
    rows = []
    for text, vis in zip(reasons, visible):
        vis = set() if vis is None or (isinstance(vis, float) and math.isnan(vis)) else {str(v) for v in vis}
        cited = facts.clues_mentioned(text) if isinstance(text, str) else set()
        rows.append({"cited": sorted(cited), "n_cited": len(cited), "n_visible": len(vis),
                     "n_cited_visible": len(cited & vis)})
    return pd.DataFrame(rows, columns=["cited", "n_cited", "n_visible", "n_cited_visible"])


def _ratio(num, den):
    num, den = np.asarray(num, float).sum(-1), np.asarray(den, float).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def faithfulness(reasons: Sequence[Any], visible: Sequence[Any], n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """How faithful reasons are to the image: cited clues that are visible, visible clues cited.

    Clues are read from the text with :func:`geolib.facts.clues_mentioned` (the demo world's clue
    vocabulary: script, language, driving side, road lines, plates, signs, vegetation), as in
    :func:`geolib.gre_scores.chain_quality`, whose numbers these are (micro: pooled over images).

    Args:
        reasons: the reasons per image (None: no reasons given).
        visible: visible clue ids per image.
        n_boot, seed: bootstrap over images.

    Returns:
        ``precision`` (cited clues that are visible; 1 − precision is the hallucinated share),
        ``recall`` (visible clues that are cited), each with ``*_low`` / ``*_high``;
        ``hallucination_rate`` (images whose reasons cite a clue not visible), ``with_reasons``
        (share of images with reasons), ``clues_per_answer`` (mean cited), ``n``, ``n_cited``,
        ``n_visible``, ``n_cited_visible``, and ``by_type`` (per clue type, from ``chain_quality``).
    """
    from geolib.gre_scores import chain_quality

    table = cited_clues(reasons, visible)
    if table.empty:
        raise ValueError("faithfulness needs at least one image")
    texts = [r if isinstance(r, str) else "" for r in reasons]
    quality = chain_quality(texts, [list(v) if v is not None else [] for v in visible])
    tp, cited, vis = (table[c].to_numpy(float) for c in ("n_cited_visible", "n_cited", "n_visible"))
    out: dict[str, Any] = {}
    for name, den in (("precision", cited), ("recall", vis)):
        value = float(_ratio(tp, den))
        lo, hi = metrics.bootstrap_ci(_ratio, tp, den, n_boot=n_boot, seed=seed, vectorized=True)
        out.update({name: value, f"{name}_low": lo, f"{name}_high": hi})
    out.update({
        "hallucination_rate": quality["hallucination_rate"],
        "with_reasons": float(np.mean([isinstance(r, str) and bool(r.strip()) for r in reasons])),
        "clues_per_answer": float(cited.mean()),
        "n": len(table), "n_cited": int(cited.sum()), "n_visible": int(vis.sum()), "n_cited_visible": int(tp.sum()),
        "by_type": quality["by_type"],
    })
    return out


#: The columns of the faithfulness table notebook 06 shows (:func:`faithfulness_with_references`).
FAITHFULNESS_COLUMNS = ("precision", "precision_low", "precision_high", "recall", "recall_low", "recall_high",
                        "hallucination_rate", "reasons_field_read", "clues_per_answer", "n")


def faithfulness_with_references(reasons: Mapping[str, pd.DataFrame], test_df: pd.DataFrame, n_boot: int = 1000) -> dict[str, dict]:
    """:func:`faithfulness` of each model's reasons on the test images, framed by two references.

    Rows: ``"<model> (reasoning question)"`` (its reasons, :func:`reasons_or_raw`, with
    ``reasons_field_read``, the share of answers whose reasons field was read); ``"reference: the
    demo world's reasoning texts"`` (written from the visible clues: the ceiling); and
    ``"reference: <model>, reasons of another image"`` (each image gets the reasons written for
    the next one: what reasons unrelated to the image score).

    Args:
        reasons: model name -> its answers with reasons, in the test split's order.
        test_df: the test split with ``clues`` (visible clue ids per image) and ``reasoning``.
        n_boot: bootstrap replicates.

    Returns:
        ``{row: faithfulness}``; ``{}`` when no model gave reasons or the split has no visible-clue
        annotation (real data).
    """
    has_clues = "clues" in test_df and test_df["clues"].map(lambda c: c is not None and len(c) > 0).any()
    if not (has_clues and reasons):
        return {}
    clues = test_df["clues"].tolist()
    out = {}
    for name, p in reasons.items():
        if not (p["image_id"].to_numpy() == test_df["image_id"].to_numpy()).all():
            raise ValueError(f"the answers of {name!r} are not in the test split's order")
        out[f"{name} (reasoning question)"] = {**faithfulness(reasons_or_raw(p), clues, n_boot=n_boot),
                                               "reasons_field_read": float(p["reasons"].notna().mean())}
    out["reference: the demo world's reasoning texts"] = faithfulness(test_df["reasoning"].tolist(), clues, n_boot=n_boot)
    for name, p in reasons.items():
        shuffled = np.roll(np.array(reasons_or_raw(p), dtype=object), 1).tolist()
        out[f"reference: {name}, reasons of another image"] = faithfulness(shuffled, clues, n_boot=n_boot)
    return out


# ---------------------------------------------------------------------------------------------
# Curves and maps


def within_km_curve(errors_km: Any, km: Sequence[float]) -> np.ndarray:
    """Share of all images whose error is within each distance (``<=``; NaN = no answer = miss)."""
    d = np.asarray(errors_km, dtype=float).reshape(-1)
    if d.size == 0:
        raise ValueError("within_km_curve needs at least one error")
    grid = np.asarray(km, dtype=float).reshape(-1)
    with np.errstate(invalid="ignore"):
        return (d[None, :] <= grid[:, None]).mean(axis=1)


def errors_by_country(pred: pd.DataFrame, test_df: pd.DataFrame) -> pd.DataFrame:
    """Per true country: images, answered share, country accuracy (correct among all images) and
    median error in km (over answered images; NaN when none).

    Returns:
        Columns ``country`` (alpha-2), ``n``, ``answered``, ``country_correct``, ``median_km``,
        sorted by country.
    """
    a = aligned(pred, test_df)
    correct, _ = correct_and_answered(a["pred_country"], a["country"], "country")
    d = metrics.distance_errors_km(a["pred_lat"], a["pred_lon"], a["lat"], a["lon"])
    frame = pd.DataFrame({"country": a["country"].to_numpy(), "answered": a["answered"].to_numpy(bool),
                          "correct": correct, "d": d})
    rows = []
    for country, g in frame.groupby("country", sort=True):
        dd = g["d"].to_numpy()
        rows.append({"country": country, "n": len(g), "answered": float(g["answered"].mean()),
                     "country_correct": float(g["correct"].mean()),
                     "median_km": float(np.nanmedian(dd)) if np.isfinite(dd).any() else float("nan")})
    return pd.DataFrame(rows, columns=["country", "n", "answered", "country_correct", "median_km"])


# ---------------------------------------------------------------------------------------------
# The record: headline keys and checks


def summary_keys(tables: Sequence[pd.DataFrame], arm_keys: Mapping[str, str],
                 closed: Mapping[str, Mapping[str, float]] | None = None, quality: pd.DataFrame | None = None,
                 prefix: str = "06", differences: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, float]:
    """The headline keys of notebook 06 for ``summary.json`` (``docs/results.md``).

    Args:
        tables: tidy tables (:func:`evaluation_table`); every model named in ``arm_keys`` gets
            ``<prefix>.<key>.country_f1`` (+ ``.ci_low``, ``.ci_high``) and ``<prefix>.<key>.answered``.
        arm_keys: model name -> its key (``full``, ``base``, ...); other models are left out.
        closed: model name -> closed-set accuracy (``top1``, ``top5``): ``.closed_set_top1`` / ``_top5``.
        quality: :func:`quality_curve`'s frame: ``<prefix>.quality.share_<p>.country_acc`` (+ ``.ci_low``,
            ``.ci_high``) and ``.minus_lowest.ci_low`` per share.
        differences: key -> :func:`f1_difference` of two models' country F1 (``full_minus_base``, ...):
            ``<prefix>.<key>.country_f1`` (the difference) with ``.ci_low`` and ``.ci_high``.
    """
    keys: dict[str, float] = {}
    for table in tables:
        for model_name, metrics_of in table_records(table).items():
            if model_name in arm_keys:
                key, f1 = f"{prefix}.{arm_keys[model_name]}", metrics_of["country_f1"]
                keys |= {f"{key}.country_f1": f1["value"], f"{key}.country_f1.ci_low": f1["ci_low"],
                         f"{key}.country_f1.ci_high": f1["ci_high"], f"{key}.answered": metrics_of["country_recall"]["value"]}
    for model_name, acc in (closed or {}).items():
        if model_name in arm_keys:
            key = f"{prefix}.{arm_keys[model_name]}"
            keys |= {f"{key}.closed_set_top1": acc["top1"], f"{key}.closed_set_top5": acc["top5"]}
    for row in ([] if quality is None else quality.to_dict(orient="records")):
        key = f"{prefix}.quality.share_{int(row['share'])}"
        keys |= {f"{key}.country_acc": row["country_accuracy"], f"{key}.country_acc.ci_low": row["ci_low"],
                 f"{key}.country_acc.ci_high": row["ci_high"], f"{key}.minus_lowest.ci_low": row["minus_lowest_ci_low"]}
    for name, d in (differences or {}).items():
        keys |= {f"{prefix}.{name}.country_f1": d["difference"], f"{prefix}.{name}.country_f1.ci_low": d["ci_low"],
                 f"{prefix}.{name}.country_f1.ci_high": d["ci_high"]}
    return keys


def gain_summary(gains: Mapping[str, Mapping[str, float]], base: str, table: pd.DataFrame, baselines: Sequence[str]) -> str:
    """The headline in words: the full model's country F1 against the untuned ``base`` (relative gain;
    GeoReasoner's aim is +25%) and its paired difference from the best of ``baselines`` in ``table``.

    Args:
        gains: model name -> :func:`f1_difference` of the full model minus that model.
        base: the untuned base's name; table: the tidy main table; baselines: the baselines' names.
    """
    vs_base = gains.get(base, {})
    nan = float("nan")
    relative = vs_base.get("relative", nan)
    lines = [f"country F1: full {vs_base.get('first', nan):.3f} vs untuned base {vs_base.get('second', nan):.3f}"
             f" (relative gain {'undefined: the base scores 0' if np.isnan(relative) else f'{relative:+.0%}'}; the paper's aim: ≥ +25%)"]
    best = max(baselines, key=lambda n: values(table).loc[n, "country_f1"])
    if best in gains:
        g = gains[best]
        lines.append(f"full − best baseline ({best}): {g['difference']:+.3f} country F1 [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}]")
    return "\n".join(lines)


def check_table(table: pd.DataFrame, name: str = "table") -> None:
    """Check a tidy table (:func:`evaluation_table`) on what holds for any model.

    Shares and their intervals lie in [0, 1]; every finite interval is ordered; GeoScore is in
    [0, 5000] and the median error ≥ 0; F1 is the harmonic mean of accuracy and recall at country
    and at city level.

    Raises:
        AssertionError: naming the table, the check and the models that fail it.
    """
    def fail(what: str, rows: pd.DataFrame) -> None:
        if len(rows):
            raise AssertionError(f"{name}: {what}: {sorted(set(rows['model']))}")

    shares = table[table["metric"].isin(SHARE_METRICS)]
    fail("a share outside [0, 1]", shares[~shares["value"].between(0, 1)])
    ci_ok = [shares[c].between(0, 1) | shares[c].isna() for c in ("ci_low", "ci_high")]  # an undefined interval is no error
    fail("a share's interval outside [0, 1]", shares[~(ci_ok[0] & ci_ok[1])])
    finite = table.dropna(subset=["value", "ci_low", "ci_high"])
    fail("an interval with ci_low > ci_high", finite[finite["ci_low"] > finite["ci_high"] + 1e-12])
    geoscore = table[table["metric"] == "mean_geoscore"]
    fail("a mean GeoScore outside [0, 5000]", geoscore[~geoscore["value"].between(0, 5000)])
    median = table[(table["metric"] == "median_km") & table["value"].notna()]
    fail("a negative median error", median[median["value"] < 0])
    v = values(table)
    for level in ("country", "city"):
        f1 = np.array([metrics.f1_from(a, r) for a, r in zip(v[f"{level}_accuracy"], v[f"{level}_recall"])])
        bad = ~np.isclose(f1, v[f"{level}_f1"].to_numpy(float))
        fail(f"{level} F1 is not the harmonic mean of accuracy and recall", pd.DataFrame({"model": v.index[bad]}))


__all__ = [
    "PAPER_TABLE1", "PAPER_ABLATION_F1", "PAPER_DATA_QUALITY", "EVAL_METRICS", "SHARE_METRICS", "paper_table",
    "TABLE_METRICS", "baseline_table",
    "correct_and_answered", "answered_rows", "reasons_or_raw", "aligned", "error_km", "evaluation_table", "interval_table", "values",
    "table_records", "f1_difference", "quality_curve", "accuracy_by_bins", "cited_clues", "faithfulness", "within_km_curve",
    "errors_by_country", "FAITHFULNESS_COLUMNS", "faithfulness_with_references", "summary_keys", "gain_summary", "check_table",
]
