"""Figures of the study: one ``plot_<slug>()`` per figure, each taking data and returning a Figure.

Used by every notebook. A notebook cell calls ``plot_<slug>(...)`` and saves the result with
:func:`save_figure` as ``NN_slug.png`` (NN = the notebook that makes it): the demo profile's
figures go to ``figures/`` (committed), other profiles' to ``runs/<profile>/figures/``.
Seaborn for statistics, geopandas for maps, one palette, labelled axes with units.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

from geolib import io, paths  # noqa: E402

#: One qualitative palette for the whole study (colour-blind safe: seaborn "colorblind").
PALETTE = ["#0173B2", "#DE8F05", "#029E73", "#D55E00", "#CC78BC", "#CA9161", "#FBAFE4", "#949494", "#ECE133", "#56B4E9"]
#: Fixed roles so the same thing has the same colour in every figure.
COLORS = {"ours": PALETTE[0], "paper": PALETTE[1], "kept": PALETTE[2], "dropped": PALETTE[7], "baseline": PALETTE[5], "error": PALETTE[3]}

_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")


def style() -> None:
    """Apply the study's plotting style (called by every plot function; cheap and idempotent)."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, font="DejaVu Sans")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "axes.titleweight": "bold", "figure.autolayout": False})


def save_figure(fig, profile: str, name: str) -> Path:
    """Save ``fig`` as ``<figures_dir(profile)>/<name>.png`` atomically, with reproducible bytes.

    Args:
        fig: a matplotlib Figure.
        profile: the run's profile; ``demo`` writes to the committed ``figures/`` folder.
        name: ``NN_slug`` where NN is the number of the notebook that makes the figure.

    Returns:
        The path written.
    """
    if not _NAME.match(name):
        raise ValueError(f"figure name {name!r} must look like 'NN_slug' (two digits, underscore, lowercase slug)")
    target = paths.figures_dir(profile) / f"{name}.png"
    with io.atomic_path(target) as tmp:
        # no timestamp or software version in the PNG: the same figure gives the same bytes
        fig.savefig(tmp, format="png", bbox_inches="tight", metadata={"Software": None})
    return target


# ------------------------------------------------------------------------------------------
# helpers shared by several figures
# ------------------------------------------------------------------------------------------

#: GeoNames continent codes → names used in legends.
CONTINENT_NAMES = {"AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe", "NA": "North America",
                   "OC": "Oceania", "SA": "South America"}


def class_palette(n: int = 150, seed: int = 7):
    """A fixed RGB colour per ADE20K class for mask overlays: (n, 3) uint8."""
    import numpy as np

    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 235, size=(n + 1, 3)).astype("uint8")
    return colours


def overlay_mask(image, mask, alpha: float = 0.45):
    """Blend a class-index mask over an RGB image (both H×W): returns an (H, W, 3) uint8 array."""
    import numpy as np

    img = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.float32)
    pal = class_palette()
    m = np.clip(np.asarray(mask), 0, len(pal) - 1)
    return ((1 - alpha) * img + alpha * pal[m]).astype("uint8")


def _world_axes(ax, countries, land="#eeeeee", edge="#bbbbbb"):
    countries.plot(ax=ax, color=land, edgecolor=edge, linewidth=0.3)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-60, 85)
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.set_aspect("equal")


# ------------------------------------------------------------------------------------------
# 00_data
# ------------------------------------------------------------------------------------------


def plot_world_map(pool, countries, title: str | None = None):
    """Where the images of the pool are: one dot per image, coloured by continent (00_world_map)."""
    style()
    fig, ax = plt.subplots(figsize=(11, 5.2))
    _world_axes(ax, countries)
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
    _world_axes(ax, countries)
    sizes = 12 + 140 * cities["n"] / max(1, cities["n"].max())
    points = ax.scatter(cities["lon"], cities["lat"], s=sizes, c=cities["share"], cmap="viridis", vmin=0, vmax=1,
                        edgecolors="#333333", linewidths=0.4, zorder=3)
    fig.colorbar(points, ax=ax, shrink=0.6, label="share of the city's images kept")
    for n in sorted({int(cities["n"].min()), int(cities["n"].max())}):
        ax.scatter([], [], s=12 + 140 * n / max(1, cities["n"].max()), color="white", edgecolors="#333333", label=f"{n} images")
    ax.legend(loc="lower left", fontsize=8, title="disc area", title_fontsize=8)
    ax.set_title(f"Curation keeps {kept.mean():.0%} of the pool ({kept.sum()} of {len(kept)} images): kept share per city")
    return fig


# ------------------------------------------------------------------------------------------
# 07_gre_reasoning_rl
# ------------------------------------------------------------------------------------------


def plot_distance_reward(thetas, max_km: float = 20000.0, marks=(1, 25, 200, 750, 2500)):
    """GRE's distance reward r = 2 / (1 + exp(d/θ)) against the error d, one curve per θ (07_distance_reward).

    Args:
        thetas: the θ values of the schedule, km.
        max_km: right end of the distance axis (log scale from 1 km).
        marks: distances marked on the axis (the accuracy thresholds), km.
    """
    import numpy as np

    from geolib.rewards import distance_reward

    style()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    d = np.geomspace(1.0, max_km, 400)
    for i, theta in enumerate(thetas):
        ax.plot(d, distance_reward(d, theta), color=PALETTE[i % len(PALETTE)], label=f"θ = {theta:g} km")
        ax.plot([theta], [distance_reward(theta, theta)], "o", color=PALETTE[i % len(PALETTE)], ms=4)
    for m in marks:
        ax.axvline(m, color=PALETTE[7], lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("great-circle error d (km, log scale; dotted: 1/25/200/750/2500 km)")
    ax.set_ylabel("distance reward")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("GRE's distance reward 2 / (1 + exp(d/θ)) at each θ of the schedule\n(dots: 0.538 at d = θ)")
    ax.legend(fontsize=8)
    return fig


def plot_grpo_curves(curves, window: int = 10):
    """GRPO training curves (07_grpo_curves): rewards, KL to the cold-start model, θ and batch errors.

    Args:
        curves: one row per step with ``step``, ``reward``, ``format_reward``, ``distance_reward``,
            ``kl``, ``theta_km`` and ``median_km`` (:meth:`geolib.gre.GRPOResult.curves`); with a
            ``seed`` column, one row of panels per seed (same axes, so the runs compare).
        window: steps of the rolling mean drawn over each raw curve.
    """
    style()
    seeds = sorted(curves["seed"].unique()) if "seed" in curves.columns else [None]
    fig, grid = plt.subplots(len(seeds), 3, figsize=(14, 3.6 * len(seeds) + 0.3), squeeze=False,
                             sharex=True, sharey="col")
    for axes, seed in zip(grid, seeds):
        c = (curves if seed is None else curves[curves["seed"] == seed]).sort_values("step")
        w = max(1, min(window, len(c)))
        tag = "" if seed is None else f"seed {seed}: "

        def line(ax, col, color, label, c=c, w=w):
            part = c[["step", col]].dropna()
            if part.empty:
                return
            ax.plot(part["step"], part[col], color=color, alpha=0.25, lw=0.8)
            ax.plot(part["step"], part[col].rolling(w, min_periods=1).mean(), color=color,
                    label=f"{label} ({w}-step mean)")

        line(axes[0], "reward", PALETTE[0], "total reward")
        line(axes[0], "format_reward", PALETTE[2], "format reward")
        line(axes[0], "distance_reward", PALETTE[1], "distance reward")
        axes[0].set_ylabel("mean reward of the batch")
        axes[0].set_title(f"{tag}rewards (distance reward at the current θ)")
        line(axes[1], "kl", PALETTE[3], "KL")
        axes[1].set_ylabel("KL to the cold-start model (per token)")
        axes[1].set_title(f"{tag}KL penalty term")
        ax = axes[2]
        ax.step(c["step"], c["theta_km"], where="post", color=PALETTE[4], label="θ (km)")
        if "median_km" in c and c["median_km"].notna().any():
            part = c[["step", "median_km"]].dropna()
            ax.plot(part["step"], part["median_km"], color=PALETTE[5], alpha=0.3, lw=0.8)
            ax.plot(part["step"], part["median_km"].rolling(w, min_periods=1).mean(), color=PALETTE[5],
                    label=f"median error of the batch ({w}-step mean)")
        ax.set_yscale("log")
        ax.set_ylabel("km (log scale)")
        ax.set_title(f"{tag}θ schedule and training-batch errors")
        for a in axes:
            a.legend(fontsize=7.5)
    for a in grid[-1]:
        a.set_xlabel("GRPO step")
    fig.tight_layout()
    return fig


def plot_gre_accuracy(scores, thresholds=(1, 25, 200, 750, 2500), n_label: str = "n"):
    """Share within each distance, per model, overall and per scene type, with 95% intervals (07_accuracy_by_scene).

    Args:
        scores: rows of :func:`geolib.gre.evaluate_gre` with a ``model`` column (e.g. SFT only,
            SFT + GRPO); ``group`` is ``all`` or a scene type.
        thresholds: the distances, km.
        n_label: what a panel's ``n`` counts, said under the title (e.g. "answers: test images × 3 seeds").
    """
    import numpy as np

    style()
    groups = list(dict.fromkeys(scores["group"]))
    models = list(dict.fromkeys(scores["model"]))
    ncols = min(3, len(groups))
    nrows = -(-len(groups) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 0.6, 3.3 * nrows + 0.4), sharey=True, squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    x = np.arange(len(thresholds))
    width = 0.8 / max(1, len(models))
    top = 0.0
    for ax, group in zip(axes.flat, groups):
        for j, name in enumerate(models):
            row = scores[(scores["group"] == group) & (scores["model"] == name)]
            if row.empty:
                continue
            row = row.iloc[0]
            v = np.array([row[f"within_{t:g}km"] for t in thresholds]) * 100
            lo = np.array([row[f"within_{t:g}km_low"] for t in thresholds]) * 100
            hi = np.array([row[f"within_{t:g}km_high"] for t in thresholds]) * 100
            ax.bar(x + (j - (len(models) - 1) / 2) * width, v, width, color=PALETTE[j % len(PALETTE)], label=name,
                   yerr=[np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)], capsize=2, error_kw={"lw": 0.8})
            top = max(top, float(np.nanmax(hi)))
        n = int(scores.loc[scores["group"] == group, "n"].iloc[0])
        ax.set_title(f"{group} (n = {n})", fontsize=10)
        ax.set_xticks(x, [f"{t:g}" for t in thresholds])
        ax.set_xlabel("within (km)")
    for row in axes:
        row[0].set_ylabel("% of test images\n(95% bootstrap interval)")
    axes[0][0].set_ylim(0, min(100.0, max(10.0, 1.15 * top)))
    axes[0][0].legend(fontsize=8, loc="upper left")
    fig.suptitle("GREval-style accuracy by scene type: cold start (SFT) vs SFT + GRPO"
                 + (f"\n(n counts {n_label})" if n_label != "n" else ""), fontsize=11)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------
# 06_evaluation
# ------------------------------------------------------------------------------------------


def plot_country_f1(table, reference: dict | None = None, metric: str = "country_f1"):
    """Country F1 of every model with its 95% interval, published values as reference (06_country_f1).

    Args:
        table: tidy rows ``model``, ``metric``, ``value``, ``ci_low``, ``ci_high`` (geolib.evaluation).
        reference: ``{label: value}`` published numbers drawn as dotted lines (another test set).
        metric: the metric shown.
    """
    import numpy as np

    style()
    part = table[table["metric"] == metric].reset_index(drop=True)
    answered = table[table["metric"] == metric.replace("_f1", "_recall")].set_index("model")["value"]
    labels = [f"{m}\n(answered {answered[m]:.0%})" if m in answered.index and np.isfinite(answered[m]) else m
              for m in part["model"]]  # F1 hides how many images were answered: say it beside each bar
    fig, ax = plt.subplots(figsize=(7.5, 0.6 * len(part) + 1.6))
    y = np.arange(len(part))[::-1]
    err = np.vstack([(part["value"] - part["ci_low"]).clip(lower=0).fillna(0),
                     (part["ci_high"] - part["value"]).clip(lower=0).fillna(0)])
    ax.barh(y, part["value"], xerr=err, color=COLORS["ours"], alpha=0.85, capsize=3, label="this study (95% CI)")
    ends = part["ci_high"].where(part["ci_high"].notna(), part["value"]).fillna(0.0)
    for yi, value, end in zip(y, part["value"], ends):  # the value beside every bar (past its interval), so a zero reads as zero
        text = "no value" if not np.isfinite(value) else f"{value:.3f}"
        ax.text(max(0.0, float(value) if np.isfinite(value) else 0.0, float(end)) + 0.012, yi, text, va="center",
                fontsize=7, color="#333333", zorder=4)
    for i, (label, value) in enumerate((reference or {}).items()):
        ax.axvline(value, ls=":", color=PALETTE[(i + 1) % len(PALETTE)], label=f"{label}: {value:.3f} (published)")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(metric.replace("_", " ") + " (F1 = harmonic mean of accuracy and recall)")
    ax.set_title("Country-level F1 on the held-out test cities")
    ax.legend(fontsize=7.5, loc="lower right")
    return fig


def plot_accuracy_within_km(curves, thresholds=(1, 25, 200, 750, 2500)):
    """Share of test images located within d km against d, one line per model (06_accuracy_within_km).

    Args:
        curves: columns ``model``, ``km``, ``share`` (unanswered images count as misses).
        thresholds: the table's thresholds, marked (street, city, region, country, continent).
    """
    style()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, (model, part) in enumerate(curves.groupby("model", sort=False)):
        flat_zero = bool((part["share"].fillna(0) == 0).all())  # say so: a line on the axis looks like missing data
        ax.plot(part["km"], part["share"], color=PALETTE[i % len(PALETTE)], lw=2.2 if flat_zero else 1.5,
                ls="--" if flat_zero else "-", label=model + (" (0 at every d)" if flat_zero else ""), clip_on=False)
    names = ("street", "city", "region", "country", "continent")
    for t, name in zip(thresholds, names):
        ax.axvline(t, color=PALETTE[7], lw=0.8, ls=":")
        ax.text(t, 1.01, f"{name}\n{t:g} km", fontsize=7, ha="center", va="bottom", transform=ax.get_xaxis_transform())
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel("distance d (km, log scale)")
    ax.set_ylabel("share of test images within d")
    ax.set_title("Accuracy within d km", pad=28)
    ax.legend(fontsize=7.5, loc="upper left")
    return fig


def plot_error_map(per_country, countries, title: str):
    """World map of the median error per true country, log colour scale (06_error_map).

    Args:
        per_country: columns ``country`` (alpha-2), ``median_km`` (NaN: no answer gave coordinates), ``n``.
        countries: polygons with ``iso_a2`` (geolib.borders.country_polygons()).
        title: the figure's title (names the model).
    """
    import numpy as np
    from matplotlib.colors import LogNorm

    style()
    fig, ax = plt.subplots(figsize=(11, 5.4))
    _world_axes(ax, countries)
    shown = countries.merge(per_country, left_on="iso_a2", right_on="country", how="inner")
    known = shown[np.isfinite(shown["median_km"].astype(float))]
    unknown = shown[~np.isfinite(shown["median_km"].astype(float))]
    if len(unknown):
        unknown.plot(ax=ax, color="white", edgecolor=COLORS["error"], hatch="///", linewidth=0.5)
    if len(known):
        values = known["median_km"].astype(float).clip(lower=1.0)
        norm = LogNorm(vmin=max(1.0, float(values.min())), vmax=max(float(values.max()), float(values.min()) * 10, 10.0))
        known.assign(median_km=values).plot(ax=ax, column="median_km", cmap="magma_r", norm=norm, edgecolor="#666666",
                                            linewidth=0.4, legend=True,
                                            legend_kwds={"label": "median error (km, log scale)", "shrink": 0.6})
    ax.set_title(title + ("\nhatched: no answer with coordinates for this country's images" if len(unknown) else ""))
    return fig


def plot_locatability_bins(bins):
    """Country accuracy and answered share by locatability decile, one line per model (06_locatability_deciles).

    Args:
        bins: columns ``model``, ``bin``, ``score_mean``, ``accuracy``, ``ci_low``, ``ci_high``,
            ``answered`` (geolib.evaluation.accuracy_by_bins per model).
    """
    style()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for i, (model, part) in enumerate(bins.groupby("model", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        ax1.plot(part["bin"], part["accuracy"], marker="o", color=color, label=model)
        ax1.fill_between(part["bin"], part["ci_low"], part["ci_high"], color=color, alpha=0.12)
        ax2.plot(part["bin"], part["answered"], marker="o", color=color, label=model)
    for ax, label in ((ax1, "country accuracy (correct among answered)"), (ax2, "share answered (recall)")):
        ax.set_xticks(sorted(bins["bin"].unique()))
        ax.set_xlabel("locatability bin (1 = least locatable)")
        ax.set_ylabel(label)
        ax.set_ylim(-0.02, 1.02)
    ax1.set_title("Accuracy by locatability")
    ax2.set_title("Does the model abstain where it cannot know?")
    ax1.legend(fontsize=7.5)
    fig.tight_layout()
    return fig


def plot_answer_examples(examples, columns: int = 3):
    """Test images with the truth, the model's answer and its reasons (06_examples).

    Args:
        examples: rows with ``image_path``, ``truth``, ``answer``, ``reasons`` and ``correct`` (bool).
        columns: images per row.
    """
    import textwrap

    import numpy as np
    from geolib.features import load_rgb

    style()
    n = len(examples)
    rows = max(1, int(np.ceil(n / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 4.2, rows * 4.6))
    axes = np.atleast_1d(axes).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (_, r) in zip(axes, examples.iterrows()):
        ax.imshow(load_rgb(r["image_path"]))  # upright, as the models see it
        color = COLORS["kept"] if r["correct"] else COLORS["error"]
        ax.set_title(f"{'right' if r['correct'] else 'wrong'} · truth: {r['truth']}\nanswer: "
                     f"{textwrap.shorten(str(r['answer']), 44, placeholder=' …')}", fontsize=8, color=color, loc="left")
        reasons = "\n".join(textwrap.wrap(textwrap.shorten(str(r["reasons"] or "(no reasons)"), 260, placeholder=" …"), 52))
        ax.text(0, -0.03, reasons, transform=ax.transAxes, fontsize=7, va="top", ha="left")
    fig.suptitle("Answers of the full model on held-out test cities, with its reasons", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


# ------------------------------------------------------------------------------------------
# 08_read_the_signs
# ------------------------------------------------------------------------------------------


#: Fonts tried in order for text read off signs (matplotlib falls back glyph by glyph): DejaVu for
#: Latin, Greek and Cyrillic, then Debian's Noto fonts for the other scripts the reader knows.
SCRIPT_FONTS = ("DejaVu Sans", "Noto Sans CJK JP", "Noto Sans Arabic", "Noto Sans Hebrew", "Noto Sans Devanagari",
                "Noto Sans Bengali", "Noto Sans Thai", "Noto Sans Georgian", "Noto Sans Armenian", "Noto Sans Ethiopic",
                "Noto Sans Sinhala", "Noto Sans Tamil")


def script_fonts() -> list[str]:
    """The installed fonts of :data:`SCRIPT_FONTS`, for ``fontfamily=`` of text in any script."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return [name for name in SCRIPT_FONTS if name in installed] or ["DejaVu Sans"]



def plot_read_signs(readings, images, countries, truths=None, top: int = 4):
    """Each photo with the text boxes read on it, the candidate countries with their scores, the
    reasons, and a small map of the candidates (08_read_signs).

    Args:
        readings: :class:`geolib.sign_reader.Reading` objects, one per row of the figure.
        images: the photos as PIL images (what the reader saw, upright), same order.
        countries: polygons with ``iso_a2`` (geolib.borders.country_polygons()).
        truths: optional ground truth per photo, shown in the title (e.g. ``"Brazil, Salvador"``).
        top: candidates shown per photo.
    """
    import json
    import textwrap

    import numpy as np
    import pandas as pd
    from matplotlib.patches import Polygon

    from geolib import sign_reader

    style()
    n = max(1, len(readings))
    fonts = script_fonts()
    fig = plt.figure(figsize=(14, 3.9 * n))
    height = 3.9 * n  # inches: the first row starts 0.8 in below the top, under the title
    grid = fig.add_gridspec(n, 3, width_ratios=[1.25, 1.0, 1.25], hspace=0.85, wspace=0.28,
                            top=1 - 0.8 / height, bottom=1.0 / height)
    for i, (r, img) in enumerate(zip(readings, images)):
        ax_img, ax_bar, ax_map = (fig.add_subplot(grid[i, j]) for j in range(3))
        name = str(r.source).replace("\\", "/").rsplit("/", 1)[-1]
        if img is not None:
            ax_img.imshow(img)
            for b in r.boxes:
                quad = np.asarray(b.box)
                ax_img.add_patch(Polygon(quad, closed=True, fill=False, edgecolor=COLORS["paper"], linewidth=1.6))
                ax_img.text(quad[0, 0], quad[0, 1] - 2, b.text, fontsize=7, color="black", va="bottom", fontfamily=fonts,
                            bbox={"facecolor": "white", "alpha": 0.75, "pad": 1, "linewidth": 0})
        ax_img.axis("off")
        truth = f" · truth: {truths[i]}" if truths is not None and truths[i] else ""
        ax_img.set_title("\n".join(textwrap.wrap(textwrap.shorten(f"{name}{truth}", 80, placeholder=" …"), 42)), fontsize=8.5, loc="left")
        cands = r.candidates[:top]
        if cands:
            labels = [sign_reader.country_name(c.country) for c in cands][::-1]
            values = [c.score for c in cands][::-1]
            ax_bar.barh(labels, values, color=[COLORS["ours"]] * (len(cands) - 1) + [COLORS["kept"]])
            for y, v in enumerate(values):
                ax_bar.text(v + 0.01, y, f"{v:.2f}", va="center", fontsize=8)
            ax_bar.set_xlim(0, 1.15)
        else:
            empty = (r.error or sign_reader.NO_TEXT) if (r.error or not r.boxes) else "text read, but no place in it"
            ax_bar.text(0.5, 0.5, textwrap.fill(empty, 40),
                        ha="center", va="center", fontsize=9, transform=ax_bar.transAxes, wrap=True)
            ax_bar.set_yticks([])
        ax_bar.set_xlabel("share of the evidence")
        answer = json.loads(r.answer) if r.answer else {}
        read = "; ".join(b.text for b in r.boxes[:5]) or "(nothing)"
        ax_bar.set_title(textwrap.shorten(f"read: {read}", 70, placeholder=" …"), fontsize=8.5, loc="left", fontfamily=fonts)
        reasons = "\n".join(textwrap.wrap(textwrap.shorten(str(answer.get("reasons", "")), 330, placeholder=" …"), 95))
        ax_bar.text(-0.35, -0.3, f"answer: {answer.get('country', '')}, {answer.get('city', '')}\n{reasons}",
                    transform=ax_bar.transAxes, fontsize=7.2, va="top", ha="left", fontfamily=fonts)
        countries.plot(ax=ax_map, color="#eeeeee", edgecolor="#bbbbbb", linewidth=0.3)
        if cands:
            scored = countries.merge(
                pd.DataFrame({"iso_a2": [c.country for c in cands], "score": [c.score for c in cands]}),
                on="iso_a2")
            if len(scored):
                scored.plot(ax=ax_map, column="score", cmap="Blues", vmin=0, vmax=1, edgecolor="#555555", linewidth=0.4)
                x0, y0, x1, y1 = scored.total_bounds  # zoom on the candidates, at least 60° × 40°
                cx, cy, half_w, half_h = (x0 + x1) / 2, (y0 + y1) / 2, max(30, (x1 - x0) / 2 + 8), max(20, (y1 - y0) / 2 + 6)
                ax_map.set_xlim(max(-180, cx - half_w), min(180, cx + half_w))
                ax_map.set_ylim(max(-60, cy - half_h), min(85, cy + half_h))
        if not cands or not len(scored):
            ax_map.set_xlim(-180, 180)
            ax_map.set_ylim(-60, 85)
        ax_map.set_aspect("equal")
        ax_map.set_xlabel("longitude (°)", fontsize=8)
        ax_map.set_ylabel("latitude (°)", fontsize=8)
        ax_map.tick_params(labelsize=7)
        ax_map.set_title("candidates (darker: more evidence)", fontsize=8.5, loc="left")
    fig.suptitle("Reading the signs: text boxes, candidate countries, reasons", fontsize=12, y=1 - 0.25 / height)
    return fig


def plot_data_quality(curve, chance: float, paper: dict | None = None, n_train: int | None = None):
    """GeoReasoner's data-quality experiment (06_data_quality): country accuracy on test cities
    against the share of highly locatable training images, 95% intervals as bars.

    Args:
        curve: :func:`geolib.evaluation.quality_curve` (``share``, ``country_accuracy``, ``ci_low``, ``ci_high``).
        chance: accuracy of a uniform guess (a dotted line).
        paper: the paper's two ends ``{"uncurated": 0.63, "curated": 0.72}`` (real street views), drawn hollow.
        n_train: training images per arm (in the title).
    """
    import numpy as np

    style()
    fig, ax = plt.subplots(figsize=(6, 4))
    x = curve["share"].to_numpy(float)
    y = curve["country_accuracy"].to_numpy(float)
    err = np.vstack([y - curve["ci_low"].to_numpy(float), curve["ci_high"].to_numpy(float) - y])
    ax.errorbar(x, y, yerr=err, marker="o", capsize=4, color=COLORS["ours"], label="this run (test cities)")
    ax.axhline(chance, ls=":", color=COLORS["dropped"], label=f"chance ({chance:.1%})")
    top = max(float(np.nanmax(curve["ci_high"])) * 1.25, chance * 2)
    if paper:  # on the axis when it fits; else written out (a demo near chance would vanish under it)
        ends = [paper["uncurated"], paper["curated"]]
        if max(ends) <= 1.5 * top:
            ax.plot([0, 100], ends, ls="none", marker="o", mfc="white", ms=8, color=COLORS["paper"],
                    label="GeoReasoner paper (real street views)")
            top = max(top, max(ends) * 1.1)
        else:
            ax.text(0.98, 0.04, f"GeoReasoner paper (real street views): {ends[0]:.2f} at 0%, {ends[1]:.2f} at 100%",
                    transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color=COLORS["paper"])
    ax.set_xticks(x)
    ax.set_xticklabels([f"{int(v)}%" for v in x])
    ax.set_xlabel("share of highly locatable images in the training set")
    ax.set_ylabel("country accuracy (answered images)")
    ax.set_ylim(0, top)
    size = f", {n_train} images each" if n_train else ""
    ax.set_title(f"Data quality: stage 2 at one training size{size}")
    ax.legend(fontsize=8, loc="upper left")
    return fig
