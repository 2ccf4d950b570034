"""The simple baselines of the evaluation table (GeoReasoner Tab. 1 style) and the prediction frame
every baseline returns: majority, training centroids, the linear probe.

Used by notebook ``06_evaluation`` (its GeoCLIP and StreetCLIP baselines, :mod:`geolib.geoclip` and
:mod:`geolib.zero_shot`, return the same frame).

Every baseline returns its per-image predictions in one shape (:data:`PREDICTION_COLUMNS`), a
DataFrame with ``image_id``, ``pred_country`` (ISO 3166-1 alpha-2 or None), ``pred_city`` (or
None), ``pred_lat`` / ``pred_lon`` (degrees, NaN = no coordinates) and ``score`` (the baseline's
confidence, NaN where it has none). :func:`geolib.evaluation.baseline_table` scores any such
frame, the parsed answers of the vision-language model included, with the study's metrics and
bootstrap intervals.

The baselines:

1. :func:`majority_baseline`: the training split's most common country and most common city
   (each the mode at its own level), at that city's training centroid.
2. :func:`linear_probe_baseline` (= :func:`fit_linear_probe` + :func:`predict_linear_probe`):
   multinomial logistic regression on frozen image features (demo: EfficientNet-Lite0; paper:
   CLIP), predicting a country or a city; coordinates are the predicted class's training centroid;
   its L2 strength chosen on validation images by :func:`select_probe_c`.
3. GeoCLIP-style retrieval (Vivanco et al., NeurIPS 2023): :mod:`geolib.geoclip`.
4. StreetCLIP zero-shot: :mod:`geolib.zero_shot`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from geolib import metrics

#: Columns of every baseline's predictions, in order.
PREDICTION_COLUMNS = ("image_id", "pred_country", "pred_city", "pred_lat", "pred_lon", "score")

#: Columns :func:`geolib.evaluation.baseline_table` and the baselines read from a split (the manifest's names).
TRUTH_COLUMNS = ("image_id", "country", "city", "lat", "lon")

TARGETS = ("country", "city")


# ---------------------------------------------------------------------------------------------
# The prediction frame and small helpers


def _object_column(values: Any, n: int, name: str) -> np.ndarray:
    out = np.full(n, None, dtype=object)
    if values is None:
        return out
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} values but there are {n} image ids")
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)) or type(v).__name__ == "NAType":
            continue
        out[i] = str(v)
    return out


def _float_column(values: Any, n: int, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.shape != (n,):
        raise ValueError(f"{name} has {arr.size} values but there are {n} image ids")
    return arr


def predictions_frame(
    image_id: Sequence[Any],
    pred_country: Sequence[Any] | None = None,
    pred_city: Sequence[Any] | None = None,
    pred_lat: Any = None,
    pred_lon: Any = None,
    score: Any = None,
) -> pd.DataFrame:
    """Per-image predictions in the shape every baseline returns (:data:`PREDICTION_COLUMNS`).

    Args:
        image_id: one id per image (the manifest's ``image_id``).
        pred_country: alpha-2 codes (or labels the metrics normalise); None/NaN = not answered.
        pred_city: city names; None/NaN = not answered.
        pred_lat, pred_lon: degrees; NaN = no coordinates.
        score: confidence in the answer (NaN where the baseline has none).

    Returns:
        A DataFrame with the columns of :data:`PREDICTION_COLUMNS` (object columns hold None for
        missing labels, float columns NaN).
    """
    ids = [str(i) for i in image_id]
    n = len(ids)
    return pd.DataFrame({  # object columns keep None (pandas 3 would infer str with NaN)
        "image_id": pd.Series(ids, dtype=object),
        "pred_country": pd.Series(_object_column(pred_country, n, "pred_country"), dtype=object),
        "pred_city": pd.Series(_object_column(pred_city, n, "pred_city"), dtype=object),
        "pred_lat": _float_column(pred_lat, n, "pred_lat"),
        "pred_lon": _float_column(pred_lon, n, "pred_lon"),
        "score": _float_column(score, n, "score"),
    })


def check_split(df: pd.DataFrame, name: str, need: Sequence[str] = TRUTH_COLUMNS) -> None:
    """Raise unless ``df`` (called ``name`` in the message) is a DataFrame with rows and the columns ``need``."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing} (has {list(df.columns)}; needs {list(need)})")
    if len(df) == 0:
        raise ValueError(f"{name} has no rows")


def spherical_mean(lat: Any, lon: Any, weights: Any = None, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Mean position of points on the sphere (the mean unit vector, projected back), in degrees.

    Unlike the mean of latitudes and longitudes it is right across the antimeridian (Fiji,
    Alaska's Aleutians) and near the poles.

    Args:
        lat, lon: degrees, same shape.
        weights: non-negative weights of the same shape (default equal).
        axis: the axis to average over.

    Returns:
        ``(lat, lon)`` in degrees, the shape of the input without ``axis``.
    """
    la, lo = np.radians(np.asarray(lat, dtype=float)), np.radians(np.asarray(lon, dtype=float))
    w = np.ones_like(la) if weights is None else np.asarray(weights, dtype=float)
    x = (w * np.cos(la) * np.cos(lo)).sum(axis=axis)
    y = (w * np.cos(la) * np.sin(lo)).sum(axis=axis)
    z = (w * np.sin(la)).sum(axis=axis)
    return np.degrees(np.arctan2(z, np.hypot(x, y))), np.degrees(np.arctan2(y, x))


def training_centroids(train_df: pd.DataFrame, target: str = "country") -> pd.DataFrame:
    """One row per country (or city) of a split: its image count and the spherical mean position.

    Args:
        train_df: a split with ``country``, ``city``, ``lat``, ``lon``.
        target: ``"country"`` (key: country) or ``"city"`` (key: country and city; rows without a
            city are left out).

    Returns:
        Columns ``country``, ``city`` (None for countries), ``n``, ``lat``, ``lon``, sorted by
        ``n`` descending, then by name (so the first row is the mode, ties broken by name).
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    check_split(train_df, "train_df", ("country", "city", "lat", "lon"))
    df = train_df[["country", "city", "lat", "lon"]].copy()
    df = df[~df["country"].map(metrics.is_missing)]
    if target == "city":
        df = df[~df["city"].map(metrics.is_missing)]
    else:
        df["city"] = ""
    if df.empty:
        raise ValueError(f"train_df has no rows with a {target} label")
    rows = []
    for (country, city), g in df.groupby(["country", "city"], sort=True):
        lat, lon = spherical_mean(g["lat"].to_numpy(), g["lon"].to_numpy())
        rows.append({"country": country, "city": city or None, "n": len(g), "lat": float(lat), "lon": float(lon)})
    out = pd.DataFrame(rows)
    order = np.lexsort((out["city"].fillna("").to_numpy(), out["country"].to_numpy(), -out["n"].to_numpy()))
    return out.iloc[order].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# 1. Majority


def majority_baseline(train_df: pd.DataFrame, test_df: pd.DataFrame) -> pd.DataFrame:
    """The training split's most common country and city for every test image.

    Each level takes its own mode (ties broken alphabetically), so when the most common city lies
    outside the most common country the two answers disagree, as a per-level majority classifier
    does. Coordinates: the spherical mean of that city's training images (the country's, when the
    training split has no cities).

    Args:
        train_df: training split (``country``, ``city``, ``lat``, ``lon``).
        test_df: test split (``image_id``).

    Returns:
        Predictions (:data:`PREDICTION_COLUMNS`); ``score`` is the training share of the country.
    """
    check_split(test_df, "test_df", ("image_id",))
    countries = training_centroids(train_df, "country")
    top_country = countries.iloc[0]
    try:
        top_city = training_centroids(train_df, "city").iloc[0]
        city, lat, lon = top_city["city"], top_city["lat"], top_city["lon"]
    except ValueError:  # no cities in the training split
        city, lat, lon = None, top_country["lat"], top_country["lon"]
    n = len(test_df)
    return predictions_frame(
        test_df["image_id"],
        [top_country["country"]] * n,
        [city] * n,
        np.full(n, lat),
        np.full(n, lon),
        np.full(n, top_country["n"] / countries["n"].sum()),
    )


# ---------------------------------------------------------------------------------------------
# 2. Linear probe


def features_2d(features: Any, name: str, n_rows: int) -> np.ndarray:
    """(N, D) float32 features; (N, tokens, D) token maps are mean-pooled."""
    x = np.asarray(features, dtype=np.float32)
    if x.ndim == 3:
        x = x.mean(axis=1)
    if x.ndim != 2:
        raise ValueError(f"{name} must be (N, D) features or (N, tokens, D) token maps, got shape {x.shape}")
    if x.shape[0] != n_rows:
        raise ValueError(f"{name} has {x.shape[0]} rows but its split has {n_rows}")
    return x


@dataclass
class LinearProbe:
    """A fitted linear probe.

    Attributes:
        target: ``"country"`` or ``"city"``.
        classifier: the fitted scikit-learn pipeline (standardisation + logistic regression) whose
            classes are row indices of ``classes``.
        classes: one row per class: ``country``, ``city`` (None for the country probe), ``n``
            (training images), ``lat``, ``lon`` (training centroid).
    """

    target: str
    classifier: Any
    classes: pd.DataFrame


def fit_linear_probe(
    train_features: Any,
    train_df: pd.DataFrame,
    target: str = "country",
    C: float = 1.0,
    seed: int = 0,
    max_iter: int = 2000,
) -> LinearProbe:
    """Fit multinomial logistic regression on frozen image features.

    The key lines (what the notebook shows)::

        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))
        clf.fit(train_features, class_index_of_each_training_image)

    Args:
        train_features: (N, D) pooled features (or (N, tokens, D), mean-pooled here), row i for
            ``train_df.iloc[i]``. Rows with NaN (unreadable images) are left out, with a warning.
        train_df: training split (``country``, ``city``, ``lat``, ``lon``).
        target: ``"country"`` or ``"city"`` (a city is the pair (country, city); rows without a
            city are left out).
        C: inverse L2 regularisation strength of the logistic regression.
        seed: ``random_state`` of the solver.
        max_iter: solver iterations (lbfgs).

    Returns:
        A :class:`LinearProbe`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if not (isinstance(C, (int, float)) and C > 0):
        raise ValueError(f"C must be a positive number, got {C!r}")
    check_split(train_df, "train_df", ("country", "city", "lat", "lon"))
    x = features_2d(train_features, "train_features", len(train_df))
    classes = training_centroids(train_df, target)
    key_cols = ["country", "city"] if target == "city" else ["country"]
    lookup = {tuple(r): i for i, r in enumerate(classes[key_cols].itertuples(index=False, name=None))}
    keys = train_df[key_cols].itertuples(index=False, name=None)
    y = np.array([lookup.get(tuple(k), -1) for k in keys], dtype=np.int64)
    ok = (y >= 0) & np.isfinite(x).all(axis=1)
    if (~np.isfinite(x).all(axis=1)).any():
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        warnings.warn(f"linear probe: left out {len(bad)} training rows with NaN features (first: {bad[:5].tolist()})",
                      stacklevel=2)
    if len(np.unique(y[ok])) < 2:
        raise ValueError(f"a {target} probe needs at least 2 {target} classes in the training split, got "
                         f"{len(np.unique(y[ok]))}")
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*did not converge.*")  # reported below instead
        clf.fit(x[ok], y[ok])
    n_iter = int(np.max(clf[-1].n_iter_))
    if n_iter >= max_iter:
        warnings.warn(f"linear probe: lbfgs stopped at max_iter={max_iter} before converging; raise max_iter "
                      f"or lower C", stacklevel=2)
    return LinearProbe(target=target, classifier=clf, classes=classes)


def predict_linear_probe(probe: LinearProbe, test_features: Any, test_df: pd.DataFrame) -> pd.DataFrame:
    """Predict with a fitted probe: the most probable class, its country, city and centroid.

    Args:
        probe: from :func:`fit_linear_probe`.
        test_features: (N, D) (or (N, tokens, D)) features, row i for ``test_df.iloc[i]``; a NaN
            row (unreadable image) gets no answer.
        test_df: test split (``image_id``).

    Returns:
        Predictions (:data:`PREDICTION_COLUMNS`); ``score`` is the predicted class's probability.
        A country probe answers no city.
    """
    check_split(test_df, "test_df", ("image_id",))
    x = features_2d(test_features, "test_features", len(test_df))
    n = len(test_df)
    ok = np.isfinite(x).all(axis=1)
    idx = np.full(n, -1, dtype=np.int64)
    score = np.full(n, np.nan)
    if ok.any():
        proba = probe.classifier.predict_proba(x[ok])
        best = proba.argmax(axis=1)
        idx[ok] = probe.classifier.classes_[best]
        score[ok] = proba[np.arange(len(best)), best]
    has = idx >= 0
    j = np.where(has, idx, 0)
    cls = probe.classes
    country = np.where(has, cls["country"].to_numpy(dtype=object)[j], None)
    city = np.where(has, cls["city"].to_numpy(dtype=object)[j], None) if probe.target == "city" else None
    lat = np.where(has, cls["lat"].to_numpy()[j], np.nan)
    lon = np.where(has, cls["lon"].to_numpy()[j], np.nan)
    return predictions_frame(test_df["image_id"], country, city, lat, lon, score)


def linear_probe_baseline(
    train_features: Any,
    train_df: pd.DataFrame,
    test_features: Any,
    test_df: pd.DataFrame,
    target: str = "country",
    C: float = 1.0,
    seed: int = 0,
    max_iter: int = 2000,
) -> pd.DataFrame:
    """Fit a linear probe on the training split and predict the test split (see :func:`fit_linear_probe`)."""
    probe = fit_linear_probe(train_features, train_df, target=target, C=C, seed=seed, max_iter=max_iter)
    return predict_linear_probe(probe, test_features, test_df)


def select_probe_c(train_features: Any, train_df: pd.DataFrame, val_features: Any, val_df: pd.DataFrame,
                   c_grid: Sequence[float]) -> tuple[float, dict[float, float]]:
    """The linear probe's inverse L2 strength, chosen on the validation cities.

    Each ``C`` of ``c_grid`` fits a country probe on the training split; its country accuracy on
    the validation split (correct among all validation images) is its score.

    Returns:
        ``(best C, {C: validation accuracy})``; the first of equally good ``C`` wins.
    """
    from geolib.evaluation import correct_and_answered

    if not len(c_grid):
        raise ValueError("c_grid is empty: give at least one C")
    scores = {}
    for c in c_grid:
        pred = linear_probe_baseline(train_features, train_df, val_features, val_df, "country", C=c)
        scores[c] = float(correct_and_answered(pred["pred_country"], val_df["country"])[0].mean())
    return max(scores, key=scores.get), scores
