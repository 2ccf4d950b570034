# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-all
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (geolib)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Locatability: how much does a street view tell about where it is?
#
# GeoReasoner (§3.1, Fig. 2) measures the *locatability* of a street view from what it contains:
#
# $$\text{locatability}(I) = \sum_{c=1}^{150} \text{fraction}_c(I)\,\cdot\,w_c$$
#
# where $\text{fraction}_c$ is the share of pixels of ADE20K class $c$ (semantic segmentation)
# and $w_c$ is how strongly the clue texts of geo-guessing games mention class $c$ (Sentence-BERT
# similarity between clues and class names, min-max normalised). This notebook derives the
# weights, scores the pool, and reproduces the paper's Fig. 4 (most/least locatable images) and
# Fig. 5 (building proportion vs locatability). Because the demo world knows which clues are
# legible in each image, it also checks something the paper could not: does the score find them?

# %% tags=["parameters"]
profile: str = "demo"  # parameter profile; artifacts go to runs/<profile>/
weights_source: str = "clues"  # clues: derive the weights here (MiniLM); paper: GeoReasoner's published weights
weight_reduction: str = "mention_rate"  # clues x classes similarity to one weight per class: mention_rate (the paper's description) | mean | mean_topk
weight_topk: int = 10  # k of mean_topk: mean of each class's k most similar clue sentences
class_text_template: str = "{}"  # how a class name is written before embedding ('{}' is the class name itself, as the paper embeds names)
segmenter: str = "exact"  # exact: the demo world's masks; else a transformers ADE20K model id
segmenter_revision: str = ""  # pinned revision of the segmenter (paper profile)
segment_batch_size: int = 4  # images per segmentation batch
n_bins: int = 10  # bins of building proportion in Fig. 5
n_boot: int = 1000  # bootstrap replicates for intervals

# %%
# Setup (not the method): imports and inputs.
import numpy as np
import pandas as pd

from geolib import datasets, io, locatability, paths, plots, segmentation

pool = datasets.study_pool(profile)  # the manifest with its split by city (notebook 00)
data, results = paths.data_dir(profile), paths.results_dir(profile)
print(f"{len(pool)} images from {pool['source'].iloc[0]}")

# %% [markdown]
# ## 1. Class fractions from semantic segmentation
#
# The paper segments each image with MaskFormer (Swin, ADE20K-150). The demo world draws its
# exact segmentation alongside each image, so the demo uses it directly; on real photos
# (`segmenter` = a model id, e.g. `facebook/maskformer-swin-large-ade`) the same class order
# comes from the model.

# %%
if segmenter == "exact":
    fractions = segmentation.fractions_from_mask_files(pool["mask_path"].tolist())
else:
    seg = segmentation.load_segmenter(segmenter, revision=segmenter_revision or None)
    masks = segmentation.segment(pool["image_path"].tolist(), seg, batch_size=segment_batch_size)
    fractions = segmentation.class_fractions_batch(masks)
np.save(data / "class_fractions.npy", fractions)  # (N, 150), rows in pool order
print(fractions.shape, "top classes:",
      [segmentation.ADE20K_CLASSES[i].split(",")[0] for i in np.argsort(fractions.mean(0))[::-1][:8]])

# %% [markdown]
# ## 2. Class weights from geo-game clues
#
# GeoReasoner embeds clue texts from geo-guessing games and the 150 class names with
# Sentence-BERT and turns the clues × classes similarity into one weight per class, "how often
# the clues mention a class"; the exact reduction is not published. The study fixes its choices
# *before* looking at the paper's weights, from that description: the offline all-MiniLM-L6-v2
# model, one clue per sentence, the class names themselves, and `mention_rate` — the share of
# clue sentences whose closest class is c — min-max normalised. The demo's clue corpus is the
# reasoning texts of the training cities (notebook 00's split), written only from visible clues, in the style of the GeoGuessr/Tuxun
# write-ups the paper used.

# %%
train_rows = (pool["split"] == "train").to_numpy()  # the clue corpus comes from the training cities only
clues = locatability.clue_sentences(pool.loc[train_rows, "reasoning"]) if "reasoning" in pool else []
if weights_source == "clues":
    similarity = locatability.clue_class_similarity(clues, class_template=class_text_template)  # (clues, 150)
    raw = locatability.reduce_similarity(similarity, reduction=weight_reduction, k=weight_topk)   # (150,)
    weights = locatability.minmax_normalize(raw)
else:
    weights = locatability.paper_weights()
comparison = locatability.compare_weights(weights)
print(f"{len(clues)} clue sentences; Spearman with the paper's weights {comparison.spearman:.3f}, "
      f"Kendall {comparison.kendall:.3f}")
comparison.top(10, by="ours")

# %% [markdown]
# **Sensitivity.** The other reductions (`mean`: mean similarity over all clues; `mean_topk`:
# mean of the k most similar) and another way of writing class names ("a photo of a …") give
# other weights. The table shows how far each lands from the paper's weights and how well its
# locatability separates images with a legible clue from those without (ROC AUC, section 5).
# It is a sensitivity check, not a search: the choice above stays fixed whatever the table says.

# %%
sensitivity = None
if weights_source == "clues" and "clues" in pool:
    has_legible = pool["clues"].map(lambda c: c is not None and len(c) > 0).to_numpy(bool)
    similarities = {class_text_template: similarity}
    for other in ("{}", "a photo of a {}"):
        if other not in similarities:
            similarities[other] = locatability.clue_class_similarity(clues, class_template=other)
    sensitivity = locatability.reduction_sensitivity(similarities, fractions, has_legible, k=weight_topk)
    io.write_parquet(data / "weights_sensitivity.parquet", sensitivity)
sensitivity

# %%
io.write_parquet(data / "class_weights.parquet", comparison.table)
fig = plots.plot_class_weights(comparison.table, top=15, spearman=comparison.spearman)
plots.save_figure(fig, profile, "01_class_weights")

# %% [markdown]
# ## 3. Locatability of every image

# %%
scores = locatability.locatability_score(fractions, weights)
table = pd.DataFrame({
    "image_id": pool["image_id"],
    "locatability": scores,
    "building": segmentation.building_proportion(fractions),
    "building_merged": segmentation.building_proportion(fractions, merge=True),
    "has_clue": pool["clues"].map(lambda c: c is not None and len(c) > 0) if "clues" in pool else np.nan,
})
io.write_parquet(data / "locatability.parquet", table)
table.describe()

# %%
fig = plots.plot_locatability_examples(pool, scores, n=5)
plots.save_figure(fig, profile, "01_examples_high_low")

# %% [markdown]
# ## 4. Building proportion vs locatability (paper Fig. 5)
#
# The paper finds locatability highest at a moderate building proportion (its Fig. 5 peaks near
# 0.2): a street with some buildings shows signs, shops and architecture, while a close-up facade
# hides everything else. "Building" is ADE20K's `building` class; the second curve also merges
# `house` and `skyscraper`. The demo world's peak need not sit where the paper's does (its
# streets are drawn, not photographed); the cell below the figure prints where it is.

# %%
curves = {
    "building": locatability.binned_mean(table["building"], scores, n_bins=n_bins),
    "building + house + skyscraper": locatability.binned_mean(table["building_merged"], scores, n_bins=n_bins),
}
fig = plots.plot_building_vs_locatability(curves, table["building"], scores)
plots.save_figure(fig, profile, "01_building_vs_locatability")
fig5 = curves["building"].dropna(subset=["mean"])
peak = fig5.sort_values("mean").iloc[-1]
print(f"demo: locatability peaks at building proportion {peak['bin_lo']:.1f}–{peak['bin_hi']:.1f} "
      f"(mean {peak['mean']:.2f}); the paper's Fig. 5 peaks near 0.2")
curves["building"]

# %% [markdown]
# ## 5. Does the score find legible clues? (beyond the paper)
#
# The demo world lists the clues that are legible in each image (a sign's script, the driving
# side, road-line colours, plates, …). A good locatability score ranks images with a legible
# clue above images without one.

# %%
separation = paper_separation = None
if table["has_clue"].notna().all() and 0 < table["has_clue"].mean() < 1:
    has_clue = table["has_clue"].to_numpy(bool)
    separation = locatability.clue_separation(scores, has_clue, n_boot=n_boot)
    # the same check with the paper's published weights, for comparison
    paper_scores = locatability.locatability_score(fractions, locatability.paper_weights())
    paper_separation = locatability.clue_separation(paper_scores, has_clue, n_boot=n_boot)
    fig = plots.plot_clue_roc(separation, paper_separation)
    plots.save_figure(fig, profile, "01_clue_roc")
    for name, sep in [(weights_source, separation), ("paper", paper_separation)]:
        print(f"{name} weights: ROC AUC {sep['auc']:.3f} (95% CI {sep['auc_ci'][0]:.3f}–{sep['auc_ci'][1]:.3f})")
    better = "the paper's" if paper_separation["auc"] > separation["auc"] else "the derived"
    print(f"{better} weights separate images with legible clues better")

# %%
summary = {
    "weights_source": weights_source,
    "weight_reduction": weight_reduction,
    "n_clue_sentences": len(clues),
    "spearman_with_paper_weights": comparison.spearman,
    "kendall_with_paper_weights": comparison.kendall,
    "top_classes": comparison.top(10, by="ours")["class"].tolist(),
    "locatability": {"mean": float(np.mean(scores)), "min": float(np.min(scores)), "max": float(np.max(scores))},
    "fig5_peak_building_bin": [float(peak["bin_lo"]), float(peak["bin_hi"])],
    "fig5_bins": curves["building"].to_dict(orient="records"),
    "clue_auc": None if separation is None else {"auc": separation["auc"], "ci": list(separation["auc_ci"])},
    "clue_auc_paper_weights": None if paper_separation is None else {"auc": paper_separation["auc"], "ci": list(paper_separation["auc_ci"])},
}
io.write_json(results / "01_locatability.json", summary)
io.merge_summary(profile, {
    "01.weights.spearman_with_paper": comparison.spearman,
    "01.fig5.peak_bin_lo": float(peak["bin_lo"]), "01.fig5.peak_bin_hi": float(peak["bin_hi"]),
    "01.clue_auc": None if separation is None else separation["auc"],
    "01.clue_auc_paper_weights": None if paper_separation is None else paper_separation["auc"],
})
{k: v for k, v in summary.items() if k != "fig5_bins"}

# %% [markdown]
# ## Checks

# %%
assert fractions.shape == (len(pool), 150)
assert np.allclose(fractions.sum(1), 1, atol=1e-3)
assert weights.min() == 0 and weights.max() == 1 and len(weights) == 150
assert np.all((scores >= 0) & (scores <= 1))
assert curves["building"]["count"].sum() == len(pool)
assert -1 <= comparison.spearman <= 1
if separation is not None and segmenter == "exact":
    assert separation["auc"] > 0.5, separation["auc"]  # the score ranks images with legible clues above chance
