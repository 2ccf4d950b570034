"""GRE Suite's scores: GREval-style shares within each distance, the paired SFT vs SFT + GRPO
ablation, and the quality of the reasoning chains (notebook 07_gre_reasoning_rl; 06_evaluation
reads chain quality through :func:`geolib.evaluation.faithfulness`).

* :func:`evaluate_gre`: share within 1/25/200/750/2500 km overall and per scene type with
  bootstrap intervals, format compliance, unparsable share, median error (:func:`evaluate_models`:
  for several models' answers at once); :func:`score_table` shows them as ``value [low, high]``
  text, :func:`headline_table` and :func:`scene_table` as notebook 07's tables;
* :func:`answer_errors_km` and :func:`paired_within_difference`: each answer's error in km, and
  GRE's ablation (SFT + GRPO minus SFT only) as a paired comparison over images and seeds
  (:func:`paired_table` shows it); :func:`distances_km` is also the error :mod:`geolib.grpo` logs
  for each scored GRPO batch;
* :func:`chain_quality`: recall and precision of the visible clues a chain mentions. A chain's
  reasoning is its ``<think>`` text (:func:`chain_text`); its clues are read with the demo world's
  clue vocabulary (:func:`geolib.facts.clues_mentioned`, no renderer); :func:`quality_tables`
  shows it;
* :func:`check_scores`: the consistency checks notebook 07 ends with (shares in [0, 1] and growing
  with distance, every value inside its interval, one answer per image and seed).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from geolib.chains import clue_list
from geolib.metrics import THRESHOLDS_KM
from geolib.rewards import completion_text, format_reward

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

    Each chain's mentioned clues come from :func:`geolib.facts.clues_mentioned` on its think text
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
    from geolib import facts

    texts = [chain_text(c) for c in completions] if not isinstance(completions, str) else None
    if texts is None:
        raise TypeError("completions must be a sequence of answers, not a single string")
    truths = [set(clue_list(t)) for t in truth_clues]
    if len(texts) != len(truths):
        raise ValueError(f"{len(texts)} completions for {len(truths)} clue lists")
    if not texts:
        raise ValueError("chain_quality needs at least one completion")
    mentioned = [facts.clues_mentioned(t) for t in texts]
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


# ---------------------------------------------------------------------------------------------
# Distances, GREval-style scores and the paired ablation


def distances_km(texts: Sequence[str], true_lat: Sequence[Any], true_lon: Sequence[Any]) -> np.ndarray:
    """Great-circle error (km) of each answer text's coordinates against the true ones (NaN when it gives none).

    Also the error that :mod:`geolib.grpo` logs for each scored GRPO batch.
    """
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
    return distances_km(texts, truth_df["lat"].to_numpy(), truth_df["lon"].to_numpy())


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
    dist = distances_km(texts, truth_df["lat"].to_numpy(), truth_df["lon"].to_numpy())
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
        from geolib.chains import SCENE_WORDS  # the scene types in the chains' order

        values = pd.Series(scenes).astype(object)
        values = values.where(values.notna(), None).to_numpy()
        present = [s for s in dict.fromkeys(values) if s is not None]
        order = [s for s in SCENE_WORDS if s in present] + sorted(str(s) for s in present if s not in SCENE_WORDS)
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



# ---------------------------------------------------------------------------------------------
# Notebook 07's tables and checks


def evaluate_models(answers: Mapping[str, Sequence[Any]], truth_df: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
    """:func:`evaluate_gre` for several models' answers to the same rows, in one frame with a ``model`` column.

    Args:
        answers: model name → its answers, each aligned with ``truth_df``.
        truth_df: the truth rows (:func:`evaluate_gre`).
        **kwargs: :func:`evaluate_gre`'s other arguments (``n_boot``, ``thresholds``, ...).
    """
    return pd.concat([evaluate_gre(a, truth_df, **kwargs).assign(model=name) for name, a in answers.items()],
                     ignore_index=True)


def _within_columns(thresholds: Sequence[float] = THRESHOLDS_KM) -> list[str]:
    return [f"within_{float(t):g}km" for t in thresholds]


def headline_table(scores: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The overall row of each model as text with intervals (:func:`score_table`), and its median error.

    Args:
        scores: :func:`evaluate_models`'s rows.
        columns: the scores shown; default: within each of :data:`geolib.metrics.THRESHOLDS_KM`,
            ``format_ok`` and ``unparsable``.

    Returns:
        One row per model (the index), one text column per score, and ``median km`` (rounded).
    """
    columns = list(columns) if columns is not None else _within_columns() + ["format_ok", "unparsable"]
    overall = scores[scores["group"] == "all"]
    table = score_table(overall, columns).set_index("model")
    table["median km"] = overall.set_index("model")["median_km"].round(0)
    return table.drop(columns=["group"])


def scene_table(scores: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The scores per scene type (groups other than ``all``), one row per scene, a column block per model.

    Args:
        scores: :func:`evaluate_models`'s rows.
        columns: the scores shown, as text with intervals (:func:`score_table`).
    """
    table = score_table(scores[scores["group"] != "all"], columns)
    return table.pivot(index=["group", "n"], columns="model").swaplevel(axis=1).sort_index(axis=1, level=0)


def paired_table(paired: pd.DataFrame, km: Sequence[float] | None = (25, 750, 2500)) -> pd.DataFrame:
    """:func:`paired_within_difference`'s rows for reading: shares and difference in points, the interval, each seed's difference.

    Args:
        paired: :func:`paired_within_difference`'s rows.
        km: the distances shown (None: all).

    Returns:
        Indexed by ``group`` and ``km``: ``n images``, ``<before> %``, ``<after> %`` (SFT only and
        SFT + GRPO), ``difference (points)``, ``95% interval`` and ``difference by seed`` (text),
        rounded to 0.1.
    """
    table = pd.DataFrame({
        "group": paired["group"], "km": paired["km"].astype(int), "n images": paired["n_images"],
        "SFT only %": 100 * paired["before"], "SFT + GRPO %": 100 * paired["after"],
        "difference (points)": 100 * paired["difference"],
        "95% interval": [f"[{100 * lo:+.1f}, {100 * hi:+.1f}]" for lo, hi in zip(paired["ci_low"], paired["ci_high"])],
        "difference by seed": [" ".join(f"{100 * (a - b):+.1f}" for a, b in zip(aa, bb))
                               for aa, bb in zip(paired["after_by_seed"], paired["before_by_seed"])],
    })
    if km is not None:
        table = table[table["km"].isin(list(km))]
    return table.set_index(["group", "km"]).round(1)


def quality_tables(quality: Mapping[str, Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`chain_quality` of several models as two tables.

    Args:
        quality: model name → :func:`chain_quality` with intervals (``n_boot > 0``).

    Returns:
        Recall, precision, F1 and hallucination rate in % with their intervals as text, one row
        per model; and per clue type (rows) each model's recall, precision and counts (columns).
        Both empty when ``quality`` is.
    """
    if not quality:
        return pd.DataFrame(), pd.DataFrame()
    keys = ["recall", "precision", "f1", "hallucination_rate"]
    table = pd.DataFrame({name: {k: f"{100 * q[k]:.1f} [{100 * q[k + '_low']:.1f}, {100 * q[k + '_high']:.1f}]"
                                 for k in keys} for name, q in quality.items()}).T
    by_type = pd.concat({name: pd.DataFrame(q["by_type"]).T[["recall", "precision", "n_visible", "n_mentioned"]]
                         for name, q in quality.items()}, axis=1)
    return table, by_type.round(3)


def _check(ok: Any, message: str) -> None:
    if not bool(ok):
        raise AssertionError(message)


def check_scores(scores: pd.DataFrame, n_answers: int, paired: pd.DataFrame | None = None,
                 quality: Mapping[str, Mapping[str, Any]] | None = None,
                 thresholds: Sequence[float] = THRESHOLDS_KM, tol: float = 1e-9) -> None:
    """Notebook 07's checks of its scores: raise ``AssertionError`` naming the first that fails.

    * every model's shares within the distances lie in [0, 1] and grow with the distance;
    * every share within a distance and ``format_ok`` lies inside its interval;
    * each model's ``all`` row counts ``n_answers`` answers;
    * each paired difference lies inside its interval;
    * each model's chain quality counts ``n_answers`` chains, recall in [0, 1], precision in
      [0, 1] (NaN when no chain mentions a clue).

    Args:
        scores: :func:`evaluate_models`'s rows.
        n_answers: answers per model (test images × seeds).
        paired: :func:`paired_within_difference`'s rows (optional).
        quality: model name → :func:`chain_quality` (optional).
        thresholds: the distances scored.
        tol: slack of the interval comparisons.
    """
    within = _within_columns(thresholds)
    for name, part in scores.groupby("model", sort=False):
        shares = part[within].to_numpy()
        _check(((shares >= 0) & (shares <= 1)).all(), f"{name}: a share within a distance outside [0, 1]")
        _check((np.diff(shares, axis=1) >= 0).all(), f"{name}: the shares within a distance do not grow with the distance")
        for col in within + ["format_ok"]:
            inside = (part[f"{col}_low"] <= part[col] + tol) & (part[col] <= part[f"{col}_high"] + tol)
            _check(inside.all(), f"{name}: {col} outside its interval in groups {list(part.loc[~inside, 'group'])}")
        n = part.loc[part["group"] == "all", "n"]
        _check(len(n) == 1 and n.item() == n_answers, f"{name}: {list(n)} answers in its 'all' row, expected {n_answers}")
    if paired is not None:
        inside = (paired["ci_low"] <= paired["difference"] + tol) & (paired["difference"] <= paired["ci_high"] + tol)
        _check(inside.all(), f"a paired difference outside its interval: {paired.loc[~inside, ['group', 'km']].values.tolist()}")
    for name, q in (quality or {}).items():
        _check(q["n"] == n_answers, f"{name}: chain quality of {q['n']} chains, expected {n_answers}")
        _check(0 <= q["recall"] <= 1, f"{name}: chain recall {q['recall']} outside [0, 1]")
        ok = np.isnan(q["precision"]) if q["n_mentioned"] == 0 else 0 <= q["precision"] <= 1
        _check(ok, f"{name}: chain precision {q['precision']} with {q['n_mentioned']} clues mentioned")


__all__ = ["chain_text", "chain_quality", "distances_km", "answer_errors_km", "evaluate_gre", "paired_within_difference",
           "score_table", "evaluate_models", "headline_table", "scene_table", "paired_table", "quality_tables",
           "check_scores"]
