"""Figures of the data and locatability notebooks (00-03), and the training curves.

Notebooks ``00_data`` (world map, examples, pool counts, building proportion),
``01_locatability_analysis`` (class weights, locatability examples and curves, clue ROC),
``02_locatability_network`` (training curve, predicted vs target) and ``03_curation``
(threshold sweep, curation map); :func:`plot_training_curve` and :func:`plot_stage_losses` also
draw the training logs of ``04_reasoning_tuning``, ``05_location_tuning`` and
``07_gre_reasoning_rl``. Call them as ``geolib.plots.plot_<slug>``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt  # the package imports .common first, which selects the Agg backend

from geolib.plots.common import COLORS, CONTINENT_NAMES, PALETTE, class_palette, overlay_mask, style, world_axes


# ------------------------------------------------------------------------------------------
# 00_data
# ------------------------------------------------------------------------------------------


def plot_world_map(pool, countries, title: str | None = None):
    """Where the images of the pool are: one dot per image, coloured by continent (00_world_map)."""
    style()
    fig, ax = plt.subplots(figsize=(11, 5.2))
    world_axes(ax, countries)
    present = countries[countries["iso_a2"].isin(set(pool["country"]))]
    present.plot(ax=ax, color="#d9e6f2", edgecolor="#9bb3c9", linewidth=0.4)
    for i, (code, part) in enumerate(pool.groupby("continent", dropna=False)):
        ax.scatter(part["lon"], part["lat"], s=6, alpha=0.7, color=PALETTE[i % len(PALETTE)],
                   label=f"{CONTINENT_NAMES.get(code, code)} ({len(part)})", edgecolors="none")
    ax.legend(loc="lower left", fontsize=8, title="continent (images)", title_fontsize=8, markerscale=2, frameon=True)
    ax.set_title(title or f"{len(pool):,} images in {pool['country'].nunique()} countries and {pool['city'].nunique()} cities")
    return fig


def plot_examples(pool, n: int = 12, seed: int = 0, columns: int = 3):
    """A grid of example images, each with its segmentation overlaid beside it and its clues (00_examples)."""
    from geolib.features import load_rgb

    import textwrap

    import numpy as np
    from PIL import Image

    style()
    rng = np.random.default_rng(seed)
    # one example per scene type first, then random ones, so the grid shows the variety
    picks: list[int] = []
    if "scene" in pool:
        for _, part in pool.groupby("scene"):
            picks.append(int(rng.choice(part.index)))
    rest = [i for i in rng.permutation(pool.index) if i not in picks]
    picks = (picks + rest)[:n]
    rows = int(np.ceil(len(picks) / columns))
    fig, axes = plt.subplots(rows, columns * 2, figsize=(columns * 5.0, rows * 3.3))  # room for 3-line titles
    axes = np.atleast_2d(axes)
    for ax in axes.ravel():
        ax.axis("off")
    for k, idx in enumerate(picks):
        r = pool.loc[idx]
        ax_img, ax_mask = axes[k // columns, 2 * (k % columns)], axes[k // columns, 2 * (k % columns) + 1]
        image = load_rgb(r["image_path"])  # upright, as the models see it
        ax_img.imshow(image)
        clues = list(r["clues"]) if "clues" in r and r["clues"] is not None else []
        clue_text = textwrap.shorten(", ".join(clues), 60, placeholder=" …") if clues else "no legible clue"
        clue_text = "\n".join(textwrap.wrap(clue_text, 34)[:2])
        ax_img.set_title(f"{r['city']}, {r['country']} · {r.get('scene', '')}\n{clue_text}", fontsize=7.5, loc="left")
        if isinstance(r.get("mask_path"), str):
            mask = np.asarray(Image.open(r["mask_path"]))
            ax_mask.imshow(overlay_mask(image, mask))
            if "building_fraction" in r:
                ax_mask.set_title(f"segmentation · building {r['building_fraction']:.2f}", fontsize=7.5, loc="left")
    fig.suptitle("Demo-world street views (left) and their exact ADE20K segmentation (right)", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    _class_legend(fig, [np.asarray(Image.open(pool.loc[i, "mask_path"])) for i in picks if isinstance(pool.loc[i].get("mask_path"), str)])
    return fig


def _class_legend(fig, masks, top: int = 12):
    """A legend below the figure naming the ADE20K classes that cover most pixels of ``masks``."""
    import numpy as np
    from matplotlib.patches import Patch

    from geolib import segmentation

    if not masks:
        return
    counts = sum(np.bincount(np.asarray(m).ravel(), minlength=151)[:151] for m in masks)
    pal = class_palette()
    shown = [int(c) for c in np.argsort(counts)[::-1][:top] if counts[c] > 0]
    handles = [Patch(facecolor=pal[c] / 255.0, edgecolor="#555555",
                     label=segmentation.ADE20K_CLASSES[c].split(",")[0] if c < len(segmentation.ADE20K_CLASSES) else str(c))
               for c in shown]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False,
               title="segmentation colours (the classes covering most pixels above)", title_fontsize=8)


def plot_pool_counts(pool):
    """Images per country (coloured by continent) and per scene type (00_pool_counts)."""
    import seaborn as sns

    style()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [4, 1]})
    counts = pool.groupby(["country", "continent"], dropna=False).size().reset_index(name="images")
    counts = counts.sort_values(["continent", "images"], ascending=[True, False])
    order = list(dict.fromkeys(counts["continent"]))
    colours = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(order)}
    ax1.bar(range(len(counts)), counts["images"], color=[colours[c] for c in counts["continent"]])
    ax1.set_xticks(range(len(counts)), counts["country"], rotation=90, fontsize=7)
    ax1.set_xlabel("country (ISO 3166-1 alpha-2)")
    ax1.set_ylabel("images")
    ax1.set_title("Images per country")
    from matplotlib.patches import Patch

    ax1.legend(handles=[Patch(color=colours[c], label=CONTINENT_NAMES.get(c, c)) for c in order], fontsize=7, ncols=2)
    if "scene" in pool:
        sns.countplot(data=pool, y="scene", ax=ax2, color=PALETTE[0], order=sorted(pool["scene"].dropna().unique()))
        ax2.set_xlabel("images")
        ax2.set_ylabel("scene type")
        ax2.set_title("Scene types")
    fig.tight_layout()
    return fig


def plot_building_proportion(pool):
    """Distribution of the building proportion (share of building pixels) by scene type (00_building_proportion)."""
    import seaborn as sns

    style()
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.histplot(data=pool, x="building_fraction", hue="scene" if "scene" in pool else None, bins=30,
                 multiple="stack", ax=ax, binrange=(0, 1))
    ax.set_xlabel("building proportion (share of image pixels labelled building)")
    ax.set_ylabel("images")
    ax.set_title("Building proportion in the pool")
    return fig


# ------------------------------------------------------------------------------------------
# 01_locatability_analysis
# ------------------------------------------------------------------------------------------


def plot_class_weights(table, top: int = 20, spearman: float | None = None):
    """Per-class locatability weights: this study's beside the paper's, top classes (01_class_weights).

    Args:
        table: ``compare_weights(...).table`` (class, ours, paper, rank_ours, rank_paper).
        top: Classes shown: the union of each side's top ``top``, ordered by the paper's weight.
        spearman: Rank correlation over all 150 classes, printed in the title.
    """
    import numpy as np

    style()
    t = table.copy()
    t["short"] = t["class"].str.split(",").str[0]
    keep = set(t.nlargest(top, "paper")["class"]) | set(t.nlargest(top, "ours")["class"])
    t = t[t["class"].isin(keep)].sort_values("paper", ascending=True)
    fig, ax = plt.subplots(figsize=(7.5, max(4, 0.26 * len(t))))
    y = np.arange(len(t))
    ax.barh(y + 0.2, t["paper"], height=0.4, color=COLORS["paper"], label="GeoReasoner (published)")
    ax.barh(y - 0.2, t["ours"], height=0.4, color=COLORS["ours"], label="this study (MiniLM over the clue corpus)")
    ax.set_yticks(y, t["short"], fontsize=8)
    ax.set_xlabel("class weight (min-max normalised, 0–1)")
    ax.set_xlim(0, 1.05)
    title = "Locatability weight per ADE20K class"
    if spearman is not None:
        title += f"\n(Spearman over all 150 classes: {spearman:.2f})"
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.45, -0.1), ncols=2, fontsize=8, frameon=False)
    return fig


def plot_locatability_examples(pool, scores, n: int = 5):
    """The most and the least locatable images with their scores and clues (paper Fig. 4) (01_examples_high_low)."""
    import textwrap

    import numpy as np
    from geolib.features import load_rgb

    style()
    order = np.argsort(np.asarray(scores))
    picks = [("most locatable", i) for i in order[::-1][:n]] + [("least locatable", i) for i in order[:n]]
    fig, axes = plt.subplots(2, n, figsize=(3.0 * n, 7.8), layout="constrained")
    for ax, (label, i) in zip(axes.ravel(), picks):
        r = pool.iloc[int(i)]
        ax.imshow(load_rgb(r["image_path"]))  # upright, as the models see it
        ax.axis("off")
        clues = list(r["clues"]) if "clues" in r and r["clues"] is not None else []
        clue_text = "\n".join(textwrap.wrap(", ".join(clues), 32)[:2]) if clues else "no legible clue"
        ax.set_title(f"{label}: {scores[int(i)]:.2f}\n{r['city']}, {r['country']}\n{clue_text}", fontsize=7.5)
    fig.suptitle("Locatability = Σ class fraction × class weight: highest (top) and lowest (bottom)", fontsize=11)
    return fig


def plot_building_vs_locatability(curves: dict, x=None, y=None):
    """Mean locatability by building proportion, 95% intervals and counts per bin (paper Fig. 5) (01_building_vs_locatability).

    Args:
        curves: name → ``locatability.binned_mean(...)`` table (e.g. "building" and
            "building + house + skyscraper").
        x, y: Optional raw points (building proportion, locatability) drawn faintly behind.
    """
    style()
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(7.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    if x is not None and y is not None:
        ax.scatter(x, y, s=4, alpha=0.15, color=PALETTE[7], edgecolors="none", label="images")
    width = None
    for i, (name, t) in enumerate(curves.items()):
        c = PALETTE[i % len(PALETTE)]
        ax.plot(t["bin_mid"], t["mean"], marker="o", color=c, label=name)
        ax.fill_between(t["bin_mid"], t["ci_low"], t["ci_high"], color=c, alpha=0.2)
        width = float((t["bin_hi"] - t["bin_lo"]).iloc[0])
        off = (i - (len(curves) - 1) / 2) * width / (len(curves) + 1)
        axc.bar(t["bin_mid"] + off, t["count"], width=width / (len(curves) + 1), color=c)
    ax.set_ylabel("locatability (mean, 95% CI)")
    ax.set_title("Building proportion vs locatability")
    ax.legend(fontsize=8)
    axc.set_xlabel("building proportion (share of image pixels)")
    axc.set_ylabel("images per bin")
    axc.set_xlim(0, 1)
    fig.tight_layout()
    return fig


def plot_clue_roc(separation: dict, paper_separation: dict | None = None):
    """ROC of the locatability score for telling images with a legible clue from those without (01_clue_roc).

    Args:
        separation: ``locatability.clue_separation`` with this study's weights.
        paper_separation: the same with the paper's published weights (optional, drawn beside).
    """
    style()
    fig, ax = plt.subplots(figsize=(5.2, 4.8))
    for sep, colour, name in [(separation, COLORS["ours"], "this study's weights"), (paper_separation, COLORS["paper"], "paper's weights")]:
        if sep is None:
            continue
        lo, hi = sep["auc_ci"]
        ax.plot(sep["fpr"], sep["tpr"], color=colour, label=f"{name}: AUC {sep['auc']:.2f} (95% CI {lo:.2f}–{hi:.2f})")
    ax.plot([0, 1], [0, 1], ls="--", color=PALETTE[7], label="chance")
    ax.set_xlabel("false positive rate (images without a clue)")
    ax.set_ylabel("true positive rate (images with a clue)")
    ax.set_title(f"Does the score find legible clues?\n({separation['n_with']} with, {separation['n_without']} without)")
    ax.legend(fontsize=7.5, loc="lower right")
    return fig


# ------------------------------------------------------------------------------------------
# 02_locatability_network (and other training curves)
# ------------------------------------------------------------------------------------------


def plot_training_curve(history, x: str, ys: list[str], title: str, ylabel: str = "loss", xlabel: str | None = None):
    """Curves of a training log (one line per column in ``ys``)."""
    style()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, col in enumerate(ys):
        part = history[[x, col]].dropna()
        ax.plot(part[x], part[col], color=PALETTE[i % len(PALETTE)], label=col.replace("_", " "))
    ax.set_xlabel(xlabel or x.replace("_", " "))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def plot_stage_losses(curves, title: str):
    """Training loss of several runs of one stage (columns ``step``, ``loss``, ``arm``), one line each."""
    style()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, (arm, part) in enumerate(curves.groupby("arm", sort=False)):
        ax.plot(part["step"], part["loss"], color=PALETTE[i % len(PALETTE)], label=arm)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (assistant tokens)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def plot_predicted_vs_target(target, predicted, metrics: dict | None = None):
    """Predicted vs segmentation-based locatability on held-out cities (02_pred_vs_target)."""
    style()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(target, predicted, s=8, alpha=0.5, color=COLORS["ours"], edgecolors="none")
    lo = min(float(min(target)), float(min(predicted)), 0.0)
    hi = max(float(max(target)), float(max(predicted)), 1.0)
    ax.plot([lo, hi], [lo, hi], ls="--", color=PALETTE[7], label="perfect prediction")
    ax.set_xlabel("locatability from segmentation (target)")
    ax.set_ylabel("locatability predicted from the image alone")
    title = "Locatability network on held-out cities"
    if metrics:
        title += f"\nSpearman {metrics['spearman']:.2f} · MAE {metrics['mae']:.3f} · n = {metrics['n']}"
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    return fig


# ------------------------------------------------------------------------------------------
# 03_curation
# ------------------------------------------------------------------------------------------


def plot_threshold_sweep(sweep, threshold: float, paper_threshold: float | None = None):
    """Kept share, countries covered and mean kept score against the curation threshold (03_threshold_sweep)."""
    style()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    specs = [("kept_share", "share of images kept"), ("countries_covered", "countries with ≥ 1 kept image"),
             ("mean_score_kept", "mean locatability of kept images")]
    for ax, (col, label) in zip(axes, specs):
        ax.plot(sweep["threshold"], sweep[col], color=COLORS["ours"], marker=".")
        ax.axvline(threshold, color=COLORS["kept"], ls="--", label=f"threshold used ({threshold:.3f})")
        ax.set_xlabel("curation threshold (predicted locatability)")
        ax.set_ylabel(label)
    if "countries_total" in sweep:
        axes[1].axhline(int(sweep["countries_total"].iloc[0]), color=PALETTE[7], ls=":", label="all countries")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    title = "Curating by locatability: what each threshold keeps"
    if paper_threshold is not None:
        title += f" (the paper's {paper_threshold} on its weights' scale ↔ {threshold:.3f} here)"
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_curation_map(pool, kept, countries):
    """Share of each city's images kept by curation, one disc per city sized by its images (03_curation_map).

    Kept and dropped images of one city share its coordinates, so a dot per image would hide one
    under the other; a city's disc shows its kept share (colour) and its number of images (area).

    Args:
        pool: the pool (``city``, ``country``, ``lat``, ``lon``), one row per image.
        kept: boolean per image, aligned with ``pool``.
        countries: polygons (geolib.borders.country_polygons()).
    """
    import numpy as np
    import pandas as pd

    style()
    kept = np.asarray(kept, dtype=bool)
    cities = (pd.DataFrame({"city": pool["city"].to_numpy(), "country": pool["country"].to_numpy(), "lat": pool["lat"].to_numpy(),
                            "lon": pool["lon"].to_numpy(), "kept": kept})
              .groupby(["country", "city"], sort=False).agg(lat=("lat", "mean"), lon=("lon", "mean"), n=("kept", "size"),
                                                            share=("kept", "mean")).reset_index())
    fig, ax = plt.subplots(figsize=(11, 5.4))
    world_axes(ax, countries)
    sizes = 12 + 140 * cities["n"] / max(1, cities["n"].max())
    points = ax.scatter(cities["lon"], cities["lat"], s=sizes, c=cities["share"], cmap="viridis", vmin=0, vmax=1,
                        edgecolors="#333333", linewidths=0.4, zorder=3)
    fig.colorbar(points, ax=ax, shrink=0.6, label="share of the city's images kept")
    for n in sorted({int(cities["n"].min()), int(cities["n"].max())}):
        ax.scatter([], [], s=12 + 140 * n / max(1, cities["n"].max()), color="white", edgecolors="#333333", label=f"{n} images")
    ax.legend(loc="lower left", fontsize=8, title="disc area", title_fontsize=8)
    ax.set_title(f"Curation keeps {kept.mean():.0%} of the pool ({kept.sum()} of {len(kept)} images): kept share per city")
    return fig
