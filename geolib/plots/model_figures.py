"""Figures of the model notebooks (06-08): GRE rewards and curves, evaluation, signs read.

Notebooks ``07_gre_reasoning_rl`` (distance reward, GRPO curves, GREval accuracy),
``06_evaluation`` (country F1, accuracy within km, error map, locatability bins, answer
examples, data quality) and ``08_read_the_signs`` (photos with the text read and the candidate
countries). Call them as ``geolib.plots.plot_<slug>``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt  # the package imports .common first, which selects the Agg backend

from geolib.plots.common import COLORS, PALETTE, style, world_axes


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
            ``kl``, ``theta_km`` and ``median_km`` (:meth:`geolib.grpo.GRPOResult.curves`); with a
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
        scores: rows of :func:`geolib.gre_scores.evaluate_gre` with a ``model`` column (e.g. SFT only,
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
    world_axes(ax, countries)
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
