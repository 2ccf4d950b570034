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
# # 02 · The locatability network: predicting locatability from the image alone
#
# Segmenting every image of a large pool is expensive, so GeoReasoner (Fig. 2) trains a
# CLIP-style *visual–text pairing network*: an image tower and a text tower encode the image and
# a handful of prompts that describe degrees of locatability; trained projections map both into
# one space, a softmax over the image–prompt similarities gives a distribution over the levels,
# and its expectation is the predicted score. The targets are the segmentation-based scores of
# notebook 01.
#
# * demo / ci: the real ImageNet **EfficientNet-Lite0** image tower and the real
#   **all-MiniLM-L6-v2** text tower (both frozen, both installed offline), trained projections;
# * paper: open_clip **ViT-L/14** for both towers.
#
# The network is evaluated on images of **held-out cities** (split by city, shared with every
# later notebook).

# %% tags=["parameters"]
profile: str = "demo"  # parameter profile; artifacts go to runs/<profile>/
image_tower: str = "efficientnet_lite0"  # efficientnet_lite0 (demo) or an open_clip model name such as ViT-L-14 (paper)
tower_pretrained: str = ""  # open_clip pretrained tag for the paper profile, e.g. openai
locnet_prompts: list[str] = [
    "a street view with no clues to where it is",
    "a street view with almost no clues to where it is: fog, bare walls or an empty road",
    "a street view with a few weak clues to where it is, such as vegetation and the style of buildings",
    "a street view with some clues to where it is, such as the driving side and road markings",
    "a street view with clear clues to where it is, such as shop signs and street names",
    "a street view full of clues to where it is: signs, road markings, licence plates",
]  # prompts from the least to the most locatable (levels evenly spaced in 0..1)
locnet_embed_dim: int = 128  # size of the shared image-text space
locnet_lr: float = 0.001  # Adam learning rate of the projections
locnet_max_epochs: int = 300  # upper bound on epochs (early stopping on the validation cities)
seed: int = 0  # seed of the pairing head's initialisation and batches
feature_batch_size: int = 32  # images per image-tower forward pass

# %%
# Setup (not the method): imports and inputs from notebooks 00 and 01 (the split by city is notebook 00's).
import numpy as np
import pandas as pd

from geolib import datasets, features, io, locnet, paths, plots

pool = datasets.study_pool(profile)  # the manifest with its split by city (notebook 00)
data, results = paths.data_dir(profile), paths.results_dir(profile)
split = pool["split"]
targets = pd.read_parquet(data / "locatability.parquet")
assert (targets["image_id"].to_numpy() == pool["image_id"].to_numpy()).all()
scores = targets["locatability"].to_numpy()

# %% [markdown]
# ## Image features, computed once
#
# The frozen image tower runs once per image; features are cached under `runs/<profile>/cache/`
# and reused by notebook 03 (scoring), 04–07 (the vision-language model) and the baselines.

# %%
if image_tower == "efficientnet_lite0":
    tower = image_tower
    text_encoder = locnet.load_sentence_encoder()
else:
    tower = features.clip_image_tower(image_tower, pretrained=tower_pretrained or None)
    text_encoder = features.clip_text_encoder(image_tower, pretrained=tower_pretrained or None)
feats = features.image_features(pool["image_path"].tolist(), paths.cache_dir(profile) / f"features_{image_tower}.npy",
                                batch_size=feature_batch_size, pooled=True, tower=tower)
prompts_emb = locnet.encode_prompts(locnet_prompts, text_encoder)
feats.shape, tuple(prompts_emb.shape)

# %% [markdown]
# ## Train the pairing head
#
# Loss: Huber on the expected score plus a soft-label cross-entropy that splits the target
# between its two neighbouring prompt levels (details in `geolib.locnet`). Early stopping on the
# validation cities; the checkpoint is reused when data and settings are unchanged.

# %%
config = locnet.LocNetConfig(embed_dim=locnet_embed_dim, lr=locnet_lr, max_epochs=locnet_max_epochs, seed=seed)
tr, va, te = (split == "train").to_numpy(), (split == "val").to_numpy(), (split == "test").to_numpy()
model, history = locnet.train_locnet(feats[tr], scores[tr], feats[va], scores[va], prompts_emb, config,
                                     checkpoint_path=paths.checkpoints_dir(profile) / "locnet.pt")
history.tail(3)

# %%
fig = plots.plot_training_curve(history, x="epoch", ys=["train_loss", "val_loss"], title="Locatability network training",
                                ylabel="loss (Huber + λ·soft CE)")
plots.save_figure(fig, profile, "02_training_curve")

# %% [markdown]
# ## Held-out cities

# %%
predicted = locnet.predict_locatability(model, feats)
evaluation = {name: locnet.evaluate(predicted[m], scores[m]) for name, m in [("train", tr), ("val", va), ("test", te)]}
pd.DataFrame(evaluation).T

# %%
fig = plots.plot_predicted_vs_target(scores[te], predicted[te], evaluation["test"])
plots.save_figure(fig, profile, "02_pred_vs_target")

# %%
io.write_parquet(data / "locatability_predicted.parquet", pd.DataFrame({"image_id": pool["image_id"], "predicted": predicted}))
summary = {"image_tower": image_tower, "n_prompts": len(locnet_prompts), "epochs_trained": int(history["epoch"].max()),
           "evaluation": evaluation, "config": config.key_dict()}
io.write_json(results / "02_locnet.json", summary)
io.merge_summary(profile, {"02.locnet.test_spearman": evaluation["test"]["spearman"], "02.locnet.test_mae": evaluation["test"]["mae"]})
evaluation["test"]

# %% [markdown]
# ## Checks

# %%
assert feats.shape[0] == len(pool) and np.isfinite(feats).all()
assert np.all((predicted >= 0) & (predicted <= 1))
assert set(pool.loc[te, "city"]).isdisjoint(set(pool.loc[tr, "city"]))
assert evaluation["test"]["spearman"] > 0.3, evaluation["test"]  # demo-profile target: ≥ 0.8
