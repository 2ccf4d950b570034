"""Curation by locatability and splits by city (notebooks 02 and 03; the splits feed 04–07).

GeoReasoner keeps only highly locatable street views (locatability ≥ 0.4) for location tuning.
This module sweeps that threshold, keeps the images above it, and splits the pool **by city**:
no city has images in two splits, so a model cannot pass the test by recognising a city it has
seen in training. Each country keeps at least one training city, so its test cities are unseen
places in a seen country (country prediction is learnable, city prediction needs reasoning about
clues that name the place).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


def split_by_city(pool: pd.DataFrame, shares: Sequence[float] = (0.6, 0.1, 0.3), seed: int = 0) -> pd.Series:
    """Assign every image to train / val / test so that no city is in two splits.

    Within each country the cities are shuffled (seeded); the first always goes to train (so every
    country is learnable), each further city goes to the split furthest below its target share of
    images. Countries with a single city are train only.

    Args:
        pool: Manifest with ``country`` and ``city`` columns (rows without a city are grouped by
            their image id, i.e. each is its own place).
        shares: Target shares of images for (train, val, test); they must sum to 1.
        seed: Seed of the shuffles.

    Returns:
        A Series of split names aligned with ``pool.index``.
    """
    shares = np.asarray(shares, dtype=float)
    if shares.shape != (3,) or np.any(shares < 0) or not np.isclose(shares.sum(), 1.0):
        raise ValueError(f"shares must be three non-negative numbers summing to 1, got {list(shares)}")
    missing = {"country", "city"} - set(pool.columns)
    if missing:
        raise ValueError(f"pool lacks column(s) {sorted(missing)}")
    city = pool["city"].where(pool["city"].notna(), "id:" + pool.get("image_id", pd.Series(pool.index, index=pool.index)).astype(str))
    sizes = pd.DataFrame({"country": pool["country"], "city": city}).groupby(["country", "city"]).size()
    rng = np.random.default_rng(seed)
    total = float(len(pool))
    counts = np.zeros(3)
    assignment: dict[tuple[str, str], str] = {}
    countries = sorted(sizes.index.get_level_values(0).unique())
    extra: list[tuple[str, str]] = []
    for country in countries:
        cities = sorted(sizes.loc[country].index)
        order = [cities[i] for i in rng.permutation(len(cities))]
        assignment[(country, order[0])] = "train"
        counts[0] += sizes[(country, order[0])]
        extra += [(country, c) for c in order[1:]]
    for i in rng.permutation(len(extra)):
        key = extra[i]
        deficit = shares * total - counts
        k = int(np.argmax(deficit))
        assignment[key] = SPLITS[k]
        counts[k] += sizes[key]
    keys = list(zip(pool["country"], city))
    return pd.Series([assignment[k] for k in keys], index=pool.index, name="split")


def check_disjoint_cities(splits: pd.Series, pool: pd.DataFrame) -> None:
    """Raise if any (country, city) has images in two splits."""
    per_city = pd.DataFrame({"key": pool["country"].astype(str) + "/" + pool["city"].astype(str), "split": splits})
    n = per_city.groupby("key")["split"].nunique()
    leaked = n[n > 1]
    if len(leaked):
        raise AssertionError(f"{len(leaked)} cities are in more than one split, e.g. {list(leaked.index[:5])}")


def shared_cities(first: pd.DataFrame, second: pd.DataFrame) -> set[tuple[str, str]]:
    """The (country, city) pairs that have images in both frames (empty when the cities are apart)."""
    return set(zip(first["country"], first["city"])) & set(zip(second["country"], second["city"]))


def threshold_sweep(scores: Sequence[float], countries: Sequence[str], thresholds: Sequence[float]) -> pd.DataFrame:
    """Keep/drop statistics for each locatability threshold (keep an image when score ≥ threshold).

    Returns:
        DataFrame: ``threshold, n_kept, kept_share, countries_covered, countries_total, mean_score_kept``.
    """
    s = np.asarray(scores, dtype=float)
    c = np.asarray(countries, dtype=object)
    if s.shape != c.shape:
        raise ValueError(f"scores and countries differ in length: {s.shape} vs {c.shape}")
    rows = []
    for t in thresholds:
        keep = s >= t
        rows.append({"threshold": float(t), "n_kept": int(keep.sum()), "kept_share": float(keep.mean()) if len(s) else np.nan,
                     "countries_covered": int(len(set(c[keep]))), "countries_total": int(len(set(c))),
                     "mean_score_kept": float(s[keep].mean()) if keep.any() else np.nan})
    return pd.DataFrame(rows)


def curate_by_locatability(scores: Sequence[float], threshold: float = 0.4) -> np.ndarray:
    """GeoReasoner's curation rule: keep the images whose locatability is ≥ ``threshold`` (paper: 0.4).

    Returns:
        Boolean array, True = keep. NaN scores (unscored images) are dropped.
    """
    s = np.asarray(scores, dtype=float)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold}")
    return np.where(np.isnan(s), False, s >= threshold)


def uncurated_sample(train: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """A random training subset of ``n`` images regardless of locatability (data-quality ablation).

    Same size as the curated training split, drawn from the same training cities, so the
    ablation changes only the selection rule.
    """
    if n > len(train):
        raise ValueError(f"cannot draw {n} images from a training split of {len(train)}")
    return train.sample(n=n, random_state=seed).sort_index()


def quality_mixes(train: pd.DataFrame, keep: Sequence[bool], shares: Sequence[float], n: int | None = None,
                  seed: int = 0) -> dict[int, pd.DataFrame]:
    """Training sets of one size with a growing share of highly locatable images (GeoReasoner's data-quality experiment).

    The paper fine-tunes on the same number of images while the share that passes the
    locatability threshold grows (0% → 100%) and reports country accuracy rising (.63 → .72).
    Here the highly locatable (``keep``) and the other training images are each shuffled once
    (seeded), and the set for share ``s`` takes the first ``round(s·n)`` of the first and the
    first ``n − round(s·n)`` of the second, so sets of neighbouring shares overlap as much as
    they can and differ only in the quality mix.

    Args:
        train: the training images (one row each).
        keep: per row of ``train``, whether it passes the curation threshold.
        shares: shares of highly locatable images, each in [0, 1].
        n: images per set; default (and at most) the smaller of the two groups, so that both
            0% and 100% can be drawn.
        seed: seed of the shuffles.

    Returns:
        ``{round(100·share): DataFrame}`` (rows of ``train``, in ``train``'s order).

    Raises:
        ValueError: a share outside [0, 1], an empty group, or ``n`` larger than a group needs.
    """
    keep = np.asarray(keep, dtype=bool)
    if len(keep) != len(train):
        raise ValueError(f"keep has {len(keep)} values for {len(train)} training images")
    bad = [s for s in shares if not 0 <= float(s) <= 1]
    if bad or not len(shares):
        raise ValueError(f"shares must be numbers in [0, 1], got {list(shares)}")
    high, low = np.flatnonzero(keep), np.flatnonzero(~keep)
    rng = np.random.default_rng(seed)
    high, low = rng.permutation(high), rng.permutation(low)
    largest = min(len(high), len(low))
    n = largest if n is None else int(n)
    if n < 1 or n > largest:
        raise ValueError(f"n must be between 1 and {largest} (highly locatable: {len(high)}, others: {len(low)}), got {n}")
    mixes = {}
    for share in shares:
        k = int(round(float(share) * n))
        rows = np.sort(np.concatenate([high[:k], low[:n - k]]))
        mixes[int(round(100 * float(share)))] = train.iloc[rows]
    return mixes


def matched_threshold(scores: Sequence[float], reference_scores: Sequence[float], reference_threshold: float = 0.4) -> float:
    """Translate a threshold from one score scale to another by keeping the same share of images.

    The paper's 0.4 is a threshold on scores made with the paper's weights. Weights derived
    another way spread the scores differently (the same images, another scale), so the same
    number would keep a different share. This returns the threshold on ``scores`` that keeps the
    share of images that ``reference_threshold`` keeps on ``reference_scores`` (same images).

    Returns:
        The threshold (a quantile of ``scores``).
    """
    s = np.asarray(scores, dtype=float)
    r = np.asarray(reference_scores, dtype=float)
    if s.shape != r.shape or s.ndim != 1 or len(s) == 0:
        raise ValueError(f"scores and reference_scores must be 1-D, non-empty and aligned, got {s.shape} and {r.shape}")
    keep_share = float(np.mean(r >= reference_threshold))
    if keep_share == 0.0:
        return float(np.nanmax(s)) + 1e-9
    return float(np.nanquantile(s, 1.0 - keep_share, method="lower"))
