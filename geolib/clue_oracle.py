"""How locatable is the demo world? A Bayes oracle on the visible clue sets.

The oracle reads only an image's list of visible clues (``script:Cyrl``, ``warning_sign:yellow_diamond``,
…) and the per-country facts, and names the most probable country under a uniform prior:

    P(country | clues) ∝ Π_clue P(clue | country, its type is visible)

where P(value | country, type) is uniform over the values the country's facts allow for that type
(languages by their population share), and 0 for a value they do not allow. Clue types that are not
visible say nothing (the oracle does not reason from absence). Ties share the credit: an image whose
clue set fits k countries equally well scores 1/k. This is the ceiling for any model that sees only
what the clue labels say; a model that reads nothing else cannot beat it on average.

It needs no renderer: only :mod:`geolib.facts` (facts file, Köppen → vegetation).

Confusable clusters: countries that stay alike without reading in reality (US–CA, AU–NZ, KE–UG,
Spanish-speaking Latin America, …; ``CONFUSABLE_CLUSTERS``); :func:`cluster_of` maps a country to its
cluster (its own code if it is in none), so accuracy can be reported at that level too.
"""

from __future__ import annotations

import functools
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

#: Groups of countries that share their visible conventions in reality (reported beside country
#: accuracy). Sources: the demo world's facts (same values) and GeoGuessr guess statistics.
CONFUSABLE_CLUSTERS: tuple[tuple[str, ...], ...] = (
    ("US", "CA"),
    ("AU", "NZ"),
    ("KE", "UG"),
    ("MX", "PE", "CL", "CO", "AR"),
    ("EG", "SA"),
    ("PT", "TR", "ES", "BG"),
    ("GH", "SN"),
    ("NG", "VN"),
)


def cluster_of(country: str) -> str:
    """The confusable cluster of a country ("US/CA"), or the country itself."""
    for cl in CONFUSABLE_CLUSTERS:
        if country in cl:
            return "/".join(cl)
    return country


@functools.cache
def country_clue_values(country: str) -> dict[str, dict[str, float]]:
    """``{clue type: {value: P(value | country, type visible)}}`` from the country's facts."""
    from geolib import facts

    f = facts.country_facts(country)
    out: dict[str, dict[str, float]] = {}

    def uniform(kind: str, values: Iterable[str]) -> None:
        vals = sorted(set(values))
        if vals:
            out[kind] = {v: 1.0 / len(vals) for v in vals}

    langs = f["languages"]
    share = {l: float(i["share"]) for l, i in langs.items()}
    tot = sum(share.values())
    lang_p: dict[str, float] = {}
    script_p: dict[str, float] = {}
    for l, i in langs.items():
        lang_p[facts.clue_language(l)] = lang_p.get(facts.clue_language(l), 0.0) + share[l] / tot
        script_p[i["script"]] = script_p.get(i["script"], 0.0) + share[l] / tot
    out["language"], out["script"] = lang_p, script_p
    uniform("driving_side", [f["driving_side"]])
    uniform("centre_line", f.get("centre_line") or [])
    uniform("edge_line", f.get("edge_line") or [])
    uniform("direction_sign", f.get("direction_signs") or [])
    plates = set()
    for st in f.get("plates") or []:
        plates |= {c for c in (st["front"], st["rear"]) if c != "white"}
        if st.get("band"):
            plates.add("blue_band" if st["band"] == "eu" else "mercosur")
    uniform("plate", plates)
    climates = list(f["koppen"]) + list(facts.city_koppen_table().get(country, {}).values())
    uniform("vegetation", [facts.koppen_vegetation(k) for k in climates])
    for kind in ("warning_sign", "speed_sign", "bollard"):
        if f.get(kind):
            uniform(kind, [f[kind]])
    return out


def posterior(clues: Sequence[str], countries: Sequence[str]) -> np.ndarray:
    """P(country | visible clues) over ``countries`` (uniform prior); uniform if nothing fits."""
    logp = np.zeros(len(countries))
    for j, cc in enumerate(countries):
        table = country_clue_values(cc)
        for clue in clues:
            kind, _, value = clue.partition(":")
            p = table.get(kind, {}).get(value, 0.0)
            if p <= 0:
                logp[j] = -np.inf
                break
            logp[j] += np.log(p)
    if not np.isfinite(logp).any():
        return np.full(len(countries), 1.0 / len(countries))
    w = np.exp(logp - logp[np.isfinite(logp)].max())
    return w / w.sum()


def oracle_scores(clue_sets: Sequence[Sequence[str]], truth: Sequence[str], countries: Sequence[str]) -> pd.DataFrame:
    """Per image: the oracle's expected accuracy (1/k when k countries tie at the top), its guess,
    the number of visible clues, and the same at the level of confusable clusters.

    Returns:
        DataFrame with ``n_clues``, ``country_acc``, ``cluster_acc``, ``guess`` (one of the tied best).
    """
    countries = list(countries)
    clusters = np.array([cluster_of(c) for c in countries])
    rows = []
    for clues, true in zip(clue_sets, truth):
        post = posterior(list(clues), countries)
        best = np.flatnonzero(post >= post.max() * (1 - 1e-9))
        acc = float(countries.index(true) in best) / len(best) if true in countries else 0.0
        cl_acc = float(np.mean(clusters[best] == cluster_of(true)))
        rows.append(
            {"n_clues": len(clues), "country_acc": acc, "cluster_acc": cl_acc, "guess": countries[int(best[0])]}
        )
    return pd.DataFrame(rows)


def summarize(scores: pd.DataFrame) -> Mapping[str, float]:
    """Overall, on images with >= 4 visible clues, and cluster accuracy."""
    rich = scores[scores["n_clues"] >= 4]
    return {
        "country_acc": float(scores["country_acc"].mean()),
        "country_acc_4plus": float(rich["country_acc"].mean()) if len(rich) else float("nan"),
        "cluster_acc": float(scores["cluster_acc"].mean()),
        "share_4plus": float(len(rich) / max(len(scores), 1)),
        "mean_clues": float(scores["n_clues"].mean()),
    }


def by_clue_count(scores: pd.DataFrame, cap: int = 6) -> pd.DataFrame:
    """Oracle accuracy by number of visible clues (the last bin is ``cap``+)."""
    n = scores["n_clues"].clip(upper=cap)
    return scores.assign(n=n).groupby("n").agg(images=("country_acc", "size"), country_acc=("country_acc", "mean"),
                                                 cluster_acc=("cluster_acc", "mean"))


def linear_probe(features: np.ndarray, countries: Sequence[str], train: np.ndarray, C: float = 0.1, seed: int = 0):
    """A logistic-regression probe on frozen pooled image features: trained on the ``train`` rows
    (standardised on them), evaluated on the others.

    Returns:
        ``(predictions for the held-out rows, country accuracy, cluster accuracy)``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X = np.asarray(features, dtype=np.float32)
    y = np.asarray(countries)
    train = np.asarray(train, dtype=bool)
    if X.ndim == 3:  # (N, tokens, dim) → pooled
        X = X.mean(axis=1)
    scaler = StandardScaler().fit(X[train])
    clf = LogisticRegression(C=C, max_iter=3000, random_state=seed).fit(scaler.transform(X[train]), y[train])
    pred = clf.predict(scaler.transform(X[~train]))
    truth = y[~train]
    acc = float(np.mean(pred == truth)) if len(truth) else float("nan")
    cl = float(np.mean([cluster_of(a) == cluster_of(b) for a, b in zip(pred, truth)])) if len(truth) else float("nan")
    return pred, acc, cl


def plot_locatability(by_count: pd.DataFrame, probe_acc: float, chance: float, probe_by_count: pd.Series | None = None):
    """Oracle accuracy (country and cluster) by number of visible clues, with the probe beside it."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(by_count))
    ax.bar(x - 0.2, by_count["country_acc"], 0.4, label="oracle: country", color="#4c72b0")
    ax.bar(x + 0.2, by_count["cluster_acc"], 0.4, label="oracle: confusable cluster", color="#9ecae1")
    if probe_by_count is not None:
        ax.plot(x, probe_by_count.reindex(by_count.index).to_numpy(), "o-", color="#dd8452", label="linear probe: country")
    ax.axhline(probe_acc, color="#dd8452", ls="--", lw=1, label=f"probe overall {probe_acc:.0%}")
    ax.axhline(chance, color="grey", ls=":", lw=1, label=f"chance {chance:.1%}")
    labels = [f"{n}{'+' if i == len(by_count) - 1 else ''}\n({k})" for i, (n, k) in enumerate(zip(by_count.index, by_count["images"]))]
    ax.set_xticks(x, labels)
    ax.set_xlabel("visible clues in the image (images)")
    ax.set_ylabel("accuracy on held-out cities")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_atlas(rows: Sequence[tuple[str, list]], columns: Sequence[str]):
    """The clue atlas: one row per country, one column per convention (tiles from
    :func:`geolib.world.clue_atlas_tiles`; blank where the facts say nothing)."""
    import matplotlib.pyplot as plt

    n, m = len(rows), len(columns)
    fig, axes = plt.subplots(n, m, figsize=(m * 1.1, n * 1.1 + 0.4), squeeze=False)
    for i, (label, tiles) in enumerate(rows):
        for j in range(m):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            ax.imshow(tiles[j] if tiles[j] is not None else np.full((8, 8, 3), 255, np.uint8))  # blank: no sourced fact
            if j == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
            if i == 0:
                ax.set_title(columns[j], fontsize=7)
    fig.subplots_adjust(left=0.12, right=0.99, top=1 - 0.3 / (n * 1.1 + 0.4), bottom=0.005, wspace=0.04, hspace=0.04)
    return fig
