"""Chain quality: recall and precision of the visible clues that GRE's reasoning chains mention (07_gre_reasoning_rl, 06_evaluation).

Notebook 07 scores the chains of the cold-start and GRPO models with :func:`chain_quality`;
notebook 06 reads the same numbers for any model's reasons through
:func:`geolib.evaluation.faithfulness`. A chain's reasoning is its ``<think>`` text
(:func:`chain_text`); its clues are read with the demo world's clue vocabulary
(:func:`geolib.facts.clues_mentioned`, no renderer).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from geolib.chains import clue_list
from geolib.rewards import completion_text

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
    truths = [set(clue_list(t)) for t in truth_clues]
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


__all__ = ["chain_text", "chain_quality"]
