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
# # 00 · The image pool
#
# GeoReasoner (§3.1) starts from a pool of street views with known places, scores how
# *locatable* each one is, and trains only on the highly locatable ones. This notebook builds
# that pool and shows it.
#
# * **demo / ci profiles**: no street-view data can be downloaded here, and a student's laptop
#   should not need 130,000 Google images, so the pool is an embedded *demo world*: rendered
#   street scenes at real GeoNames cities, whose signs, driving side, road markings, plates and
#   vegetation follow real, sourced per-country facts (`geolib/data/country_facts.yaml`). Every
#   pixel carries its ADE20K-150 class, and every image lists the clues that are visible in it.
# * **paper profile**: the same manifest from real data (OSV-5M, a folder of Street View images
#   with a CSV, Im2GPS3k, YFCC4k).
#
# Everything later reads one manifest, `runs/<profile>/data/pool.parquet`.

# %% tags=["parameters"]
profile: str = "demo"  # parameter profile; artifacts go to runs/<profile>/
source: str = "demo_world"  # demo_world | osv5m | streetview_folder | im2gps3k | yfcc4k
seed: int = 0  # seed of the demo world (places and scenes)
n_images: int = 3000  # images in the demo pool
n_countries: int = 40  # countries in the demo world
cities_per_country: int = 6  # cities per country in the demo world (more training cities per country: see below)
image_size: int = 224  # side of the rendered images (px); the image tower sees 224 px
workers: int = 0  # processes rendering the demo world (0 means all cores)
data_root: str = ""  # real data set folder (or CSV) under $GEOLIB_DATA, for the paper profile
data_split: str = "test"  # OSV-5M split to read
check_images: bool = False  # open every real image once to find corrupt files
n_examples: int = 12  # example images in the figure
split_shares: list[float] = [0.6, 0.1, 0.3]  # target image shares of train, val, test (split by city)
split_seed: int = 0  # seed of the split by city

# %%
# Setup (not the method): imports, where things go.
import pandas as pd
from IPython.display import display

from geolib import borders, curation, datasets, io, paths, plots, sources

results = paths.results_dir(profile)
print(f"profile {profile!r}: pool → {datasets.manifest_path(profile)}")

# %% [markdown]
# ## Build the pool
#
# The demo world renders in parallel and resumes: images already on disk are not drawn again,
# and the scene of image *i* is a pure function of `(seed, i)`, so the same seed gives the same
# bytes. Real data sets are read by loaders that report every row they leave out (missing or
# corrupt image, impossible coordinates, unknown country) instead of failing or silently fixing.

# %%
pool, report = sources.build_pool(
    profile, source, data_root=data_root, split=data_split, check_images=check_images, seed=seed,
    n_images=n_images, n_countries=n_countries, cities_per_country=cities_per_country,
    image_size=image_size, workers=workers or None,
)
print(report)
pool.head()

# %% [markdown]
# Each row: where the image is (`lat`, `lon`, `country`, `city`, `continent`), the exact
# segmentation (`mask_path`), the scene type, the clues visible in it, and a geo-game style
# reasoning text written only from those clues, like the human clue texts GeoReasoner learned from.

# %%
example = pool.iloc[0]
print(example["city"], example["country"], example["scene"], list(example["clues"]))
print(example["reasoning"])

# %% [markdown]
# ## Where the images are

# %%
fig = plots.plot_world_map(pool, borders.country_polygons())
plots.save_figure(fig, profile, "00_world_map")

# %% [markdown]
# ## What the images look like
#
# Left: the street view; right: its segmentation (one colour per ADE20K class). Titles list the
# clues that are legible in that image; fog, close-up walls, empty country roads and small or
# hidden signs give images with weak or no clues, on purpose.

# %%
fig = plots.plot_examples(pool, n=n_examples, seed=seed)
plots.save_figure(fig, profile, "00_examples")

# %%
fig = plots.plot_pool_counts(pool)
plots.save_figure(fig, profile, "00_pool_counts")

# %% [markdown]
# GeoReasoner's Fig. 5 relates locatability to the building proportion, so the pool has to
# spread over it: from open country (0) to close-up facades (about 0.8).

# %%
if "building_fraction" in pool:
    fig = plots.plot_building_proportion(pool)
    plots.save_figure(fig, profile, "00_building_proportion")

# %% [markdown]
# ## Split by city
#
# No city has images in two splits; every country keeps at least one training city. The split is
# made here, before any choice of the study is fitted: the clue corpus behind the class weights
# (notebook 01), the curation threshold (03) and every model see the training cities only.
# The demo draws six cities per country so that a country is learnt from several training cities
# (about three or four), not from one city's look: with three cities, 14 of the 40 countries kept a
# single training city, and the linear probe below named the country of a new city less often
# (7.7 % against 10.2 % with six, on this world).

# %%
split = curation.split_by_city(pool, split_shares, seed=split_seed)
curation.check_disjoint_cities(split, pool)
io.write_parquet(paths.data_dir(profile) / "splits.parquet", pd.DataFrame({"image_id": pool["image_id"], "split": split}))
pool.assign(split=split).groupby("split").agg(images=("image_id", "size"), cities=("city", "nunique"),
                                              countries=("country", "nunique"))

# %% [markdown]
# ## How locatable is the demo world?
#
# A street view is locatable in a geo-game because several conventions show at once: the shape
# and colours of warning signs, the speed-limit sign, road-line colours, bollards, plates, the
# script and language of signs, which side the cars keep to, vegetation. Each is common to many
# countries; their *joint* pattern identifies one. With K independent clue types of m equally
# likely values, about 39·m^−K of 40 countries share an image's clue set, so an image needs
# several visible conventions (or a readable place name) before its country is determined.
#
# **Why these countries.** The demo draws 40 countries from the facts file, one continent at a
# time (weights ∝ √population), so every inhabited continent is present and the big groups that
# stay alike in reality are in the pool together: the US and Canada, Australia and New Zealand,
# Kenya and Uganda, Spanish-speaking Latin America, Egypt and Saudi Arabia, Portugal, Spain,
# Turkey and Bulgaria. A world of countries chosen to be distinct would flatter every model; this
# one keeps the confusions a geo-gamer meets, and the study reports accuracy on those
# *confusable clusters* beside country accuracy.
#
# Two measurements on the **held-out cities** (the validation and test cities of the
# split above, so neither reader has seen the place):
#
# * a **Bayes oracle** that reads only the image's list of visible clues and the facts file
#   (uniform prior; P(clue | country) uniform over the values the facts allow): the ceiling for
#   any model that sees what the clue labels say and nothing else;
# * a **linear probe** (logistic regression) on the frozen EfficientNet-Lite0 features that the
#   demo's vision-language model uses as its image tower: what the tower's pooled features carry.

# %%
if source == "demo_world":
    from geolib import clue_oracle, features, world

    held_out = (split != "train").to_numpy()
    countries = sorted(pool["country"].unique())
    scores = clue_oracle.oracle_scores(pool.loc[held_out, "clues"].tolist(), pool.loc[held_out, "country"].tolist(), countries)
    oracle = clue_oracle.summarize(scores)
    by_count = clue_oracle.by_clue_count(scores)
    feats = features.image_features(pool["image_path"].tolist(), paths.cache_dir(profile) / "features_efficientnet_lite0.npy",
                                    pooled=True, progress=False)
    probe_pred, probe_acc, probe_cluster_acc = clue_oracle.linear_probe(feats, pool["country"].to_numpy(), ~held_out)
    probe_hit = pd.Series(probe_pred == pool.loc[held_out, "country"].to_numpy())
    probe_by_count = probe_hit.groupby(scores["n_clues"].clip(upper=by_count.index.max()).to_numpy()).mean()
    print(f"held-out images: {held_out.sum()} of {len(pool)}; {len(countries)} countries (chance {1 / len(countries):.1%})")
    print(f"oracle: {oracle['country_acc']:.1%} overall, {oracle['country_acc_4plus']:.1%} with >= 4 visible clues "
          f"({oracle['share_4plus']:.0%} of images), cluster {oracle['cluster_acc']:.1%}")
    print(f"linear probe on frozen features: {probe_acc:.1%} (cluster {probe_cluster_acc:.1%})")
    fig = clue_oracle.plot_locatability(by_count, probe_acc, 1 / len(countries), probe_by_count)
    plots.save_figure(fig, profile, "00_locatability_ceiling")
    display(by_count.round(3))

# %% [markdown]
# The same by confusable cluster (held-out images of the clusters' countries): `oracle` is country
# accuracy, `oracle_cluster` names the cluster right, `probe` is the probe's country accuracy.

# %%
if source == "demo_world":
    per_image = pd.DataFrame({
        "cluster": [clue_oracle.cluster_of(c) for c in pool.loc[held_out, "country"]],
        "oracle": scores["country_acc"].to_numpy(),
        "oracle_cluster": scores["cluster_acc"].to_numpy(),
        "probe": probe_hit.to_numpy(float),
    })
    per_cluster = per_image[per_image["cluster"].str.contains("/")].groupby("cluster").agg(
        images=("oracle", "size"), oracle=("oracle", "mean"), oracle_cluster=("oracle_cluster", "mean"),
        probe=("probe", "mean"))
    display(per_cluster.round(3))

# %% [markdown]
# Where the oracle fails with several clues in view, the countries share every visible
# convention (Australia and New Zealand; the US and Canada; Kenya, Uganda and the UK without
# yellow rear plates in view; much of Europe, Africa and the Middle East with a red-bordered
# triangle, a red-ring speed sign and white lines when no sign is legible). These are the
# confusions the clusters collect. The probe sees the same images without the labels: what it
# misses beyond the oracle is what the frozen 224-px tower does not resolve.
#
# ### The clue atlas
#
# One row per country: its conventions drawn by the world's own renderer (the road with its
# line colours and a car in the lane it keeps to, the warning and speed-limit signs, a bollard,
# the rear plate, the direction-sign colour, a sign word, the trees of its largest listed city's
# climate). A blank cell: the facts file has no sourced value, and the world never draws one.

# %%
if source == "demo_world":
    names = world.load_country_facts()["countries"]
    atlas_rows = [(f"{names[cc]['name']} ({cc})", world.clue_atlas_tiles(cc)) for cc in countries]
    fig = clue_oracle.plot_atlas(atlas_rows, world.ATLAS_COLUMNS)
    plots.save_figure(fig, profile, "00_clue_atlas")

# %%
summary = {
    "source": source,
    "n_images": len(pool),
    "n_countries": int(pool["country"].nunique()),
    "n_cities": int(pool["city"].nunique()),
    "n_continents": int(pool["continent"].nunique()),
    "scenes": pool["scene"].value_counts().to_dict() if "scene" in pool else {},
    "share_with_clues": float(pool["clues"].map(lambda c: c is not None and len(c) > 0).mean()) if "clues" in pool else None,
    "load_report": report.to_dict(),
}
io.write_json(results / "00_pool.json", summary)
if source == "demo_world":
    io.merge_summary(profile, {
        "world.n_countries": len(countries),
        "world.n_images": len(pool),
        "world.mean_visible_clues": float(pool["clues"].map(len).mean()),
        "world.oracle_country_acc": oracle["country_acc"],
        "world.oracle_country_acc_4plus": oracle["country_acc_4plus"],
        "world.oracle_cluster_acc": oracle["cluster_acc"],
        "world.probe_country_acc": probe_acc,
        "world.probe_cluster_acc": probe_cluster_acc,
    })
summary

# %% [markdown]
# ## Checks

# %%
from pathlib import Path  # noqa: E402  (checks only)

checked = datasets.read_manifest(datasets.manifest_path(profile))  # validates the schema on load
assert len(checked) == len(pool) > 0
assert checked["image_id"].is_unique
assert checked["lat"].between(-90, 90).all() and checked["lon"].between(-180, 180).all()
if source == "demo_world":
    assert len(pool) == n_images
    assert pool["country"].nunique() >= min(n_countries, 5)
    # labels agree with the Natural Earth polygons
    assert (borders.country_of(pool["lat"].to_numpy(), pool["lon"].to_numpy()) == pool["country"].to_numpy()).all()
    # variety: some images with clues, some without; building proportion spreads
    has_clues = pool["clues"].map(len) > 0
    assert 0.2 < has_clues.mean() < 0.98, has_clues.mean()
    assert pool["building_fraction"].max() > 0.4 and pool["building_fraction"].min() < 0.05
    assert all(Path(p).exists() for p in pool["mask_path"].head(50))
    # the world is locatable: the oracle beats chance by far, more clues identify better
    assert oracle["country_acc"] > 5 / len(countries), oracle
    assert by_count["country_acc"].iloc[-1] > by_count["country_acc"].iloc[0]
    assert 0 <= probe_acc <= 1 and len(atlas_rows) == len(countries)
