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
# # 03 · Curation: keep the highly locatable street views
#
# GeoReasoner scores its whole pool with the locatability network and keeps the images with
# locatability ≥ 0.4 for location tuning (§3.1): training on images that *can* be located makes
# a better model (its data-quality experiment: country accuracy .63 → .72 from 0% to 100% highly
# locatable training images). This notebook scores the pool with the network of notebook 02,
# sweeps the threshold, and writes the training, validation and test splits (by city), plus the
# training sets of GeoReasoner's data-quality experiment (one size, a growing share of highly
# locatable images) and a random sample of the curated split's size, for notebooks 05 and 06.

# %% tags=["parameters"]
profile: str = "demo"  # parameter profile; artifacts go to runs/<profile>/
image_tower: str = "efficientnet_lite0"  # the image tower the network was trained on (notebook 02)
curation_threshold: float = 0.4  # keep images with locatability at or above this (the paper's value)
match_paper_share: bool = True  # translate the threshold to this study's score scale by keeping the share it keeps with the paper's weights
uncurated_seed: int = 0  # seed of the random sample and of the data-quality sets
quality_shares: list[float] = [0.0, 0.25, 0.5, 0.75, 1.0]  # shares of highly locatable images in the data-quality sets ([]: none)

# %%
# Setup (not the method): imports and inputs from notebooks 00-02.
import numpy as np
import pandas as pd

from geolib import borders, curation, datasets, features, io, locatability, locnet, paths, plots

pool = datasets.study_pool(profile)  # the manifest with its split by city (notebook 00)
data, results = paths.data_dir(profile), paths.results_dir(profile)
split = pool["split"].to_numpy()
seg_scores = pd.read_parquet(data / "locatability.parquet")["locatability"].to_numpy()

# %% [markdown]
# ## Score the whole pool with the network
#
# The network needs only the image (its features are cached from notebook 02), no segmenter.

# %%
model, _ = locnet.load_locnet(paths.checkpoints_dir(profile) / "locnet.pt")
feats = features.image_features(pool["image_path"].tolist(), paths.cache_dir(profile) / f"features_{image_tower}.npy", pooled=True)
predicted = locnet.predict_locatability(model, feats)
pd.Series(predicted).describe()

# %% [markdown]
# ## The threshold
#
# The paper's 0.4 is on the scale of its published class weights. This study's weights
# (notebook 01) spread the same images differently, so the same number would keep a different
# share; with `match_paper_share`, the threshold is the one that keeps the share of images that
# 0.4 keeps with the paper's weights, both shares read on the **training cities only** (a choice
# fitted on test images would leak them into the study).

# %%
if match_paper_share:
    fractions = np.load(data / "class_fractions.npy")
    paper_scores = locatability.locatability_score(fractions, locatability.paper_weights())
    train_rows = split == "train"
    threshold = curation.matched_threshold(predicted[train_rows], paper_scores[train_rows], curation_threshold)
else:
    threshold = curation_threshold
keep = curation.curate_by_locatability(predicted, threshold)
print(f"threshold {threshold:.4f}: keeps {keep.mean():.1%} of the pool ({keep.sum()} images)")

# %%
sweep = curation.threshold_sweep(predicted, pool["country"], np.linspace(predicted.min(), predicted.max(), 41))
fig = plots.plot_threshold_sweep(sweep, threshold, curation_threshold if match_paper_share else None)
plots.save_figure(fig, profile, "03_threshold_sweep")

# %%
fig = plots.plot_curation_map(pool, keep, borders.country_polygons())
plots.save_figure(fig, profile, "03_curation_map")

# %% [markdown]
# ## Splits
#
# * `train_curated`: training cities, kept images — stage 2 (location tuning) trains on it;
# * `train_uncurated`: training cities, a random sample of the same size regardless of score (a
#   random sample, not a low-quality one: most of it passes the threshold too, as the table says);
# * `train_quality_<share>`: the data-quality experiment as the paper ran it: sets of one size
#   (the smaller of the kept and the not-kept training images) whose share of highly locatable
#   images grows from 0% to 100% (`geolib.curation.quality_mixes`);
# * `val`, `test`: all images of the validation and test cities (evaluation also reports
#   accuracy by locatability, so unlocatable test images are kept, not hidden).

# %%
annotated = pool.assign(split=split, locatability=seg_scores, predicted_locatability=predicted, curated=keep)
train = annotated[annotated["split"] == "train"]
train_curated = train[train["curated"]]
train_uncurated = curation.uncurated_sample(train, len(train_curated), seed=uncurated_seed)
tables = {"train_curated": train_curated, "train_uncurated": train_uncurated,
          "val": annotated[annotated["split"] == "val"], "test": annotated[annotated["split"] == "test"]}
if quality_shares:
    mixes = curation.quality_mixes(train, train["curated"].to_numpy(), quality_shares, seed=uncurated_seed)
    tables.update({f"train_quality_{pct:03d}": frame for pct, frame in mixes.items()})
for stale in set(data.glob("split_train_quality_*.parquet")) - {data / f"split_{n}.parquet" for n in tables}:
    stale.unlink()  # a set of an earlier run's quality_shares, which notebook 05 would otherwise train
for name, frame in tables.items():
    datasets.write_manifest(data / f"split_{name}.parquet", frame)
pd.DataFrame({name: {"images": len(f), "cities": f["city"].nunique(), "countries": f["country"].nunique(),
                     "mean locatability": f["locatability"].mean(), "highly locatable": f["curated"].mean()}
              for name, f in tables.items()}).T

# %%
summary = {
    "threshold": threshold, "paper_threshold": curation_threshold, "matched_to_paper_share": match_paper_share,
    "kept_share": float(keep.mean()), "n_kept": int(keep.sum()),
    "countries_kept": int(pool.loc[keep, "country"].nunique()), "countries_total": int(pool["country"].nunique()),
    "splits": {name: {"images": len(f), "cities": int(f["city"].nunique()), "countries": int(f["country"].nunique()),
                      "mean_locatability": float(f["locatability"].mean())} for name, f in tables.items()},
    "sweep": sweep.to_dict(orient="records"),
}
io.write_json(results / "03_curation.json", summary)
io.merge_summary(profile, {"03.threshold": threshold, "03.kept_share": float(keep.mean()), "03.n_kept": int(keep.sum())})
{k: v for k, v in summary.items() if k != "sweep"}

# %% [markdown]
# ## Checks

# %%
cities = {name: set(zip(f["country"], f["city"])) for name, f in tables.items()}
assert cities["train_curated"].isdisjoint(cities["test"]) and cities["train_curated"].isdisjoint(cities["val"])
assert cities["val"].isdisjoint(cities["test"])
assert (tables["train_curated"]["predicted_locatability"] >= threshold).all()
assert len(tables["train_uncurated"]) == len(tables["train_curated"]) > 0
assert 0 < keep.mean() < 1
assert tables["train_curated"]["locatability"].mean() >= tables["train_uncurated"]["locatability"].mean()
quality = {name: f for name, f in tables.items() if name.startswith("train_quality_")}
assert len({len(f) for f in quality.values()}) <= 1, "the data-quality sets differ in size"
for name, f in quality.items():
    assert abs(f["curated"].mean() - int(name[-3:]) / 100) <= 1 / len(f), name
    assert cities[name].isdisjoint(cities["test"]) and cities[name].isdisjoint(cities["val"])
