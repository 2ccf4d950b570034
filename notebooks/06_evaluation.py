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
# # 06 · Evaluation: GeoReasoner's tables, baselines, ablations and maps
#
# GeoReasoner (§4) asks the tuned model for a country, a city and its reasons on held-out street
# views and scores the answers as a retrieval-style classification:
#
# * **Accuracy** = correct answers among the answered ones, **Recall** = share of images
#   answered (a refusal or an unparsable answer is not an answer), **F1** = their harmonic mean;
#   at country and at city level (its Table 1, e.g. country .8237 / 1.00 / .9033);
# * **ablations** (its Table 3): without reasoning tuning, without location tuning, both stages;
#   and the **data-quality** experiment: location tuning on highly locatable vs unselected street
#   views (country accuracy .63 → .72).
#
# This notebook reproduces those tables on this profile's test split, adds what the paper does not
# report (distance metrics, bootstrap intervals for every number, accuracy by locatability,
# the faithfulness of the reasons) and runs every baseline as a real model on the same images.
#
# Two facts to keep in mind when reading the numbers:
#
# * **The split is by city** (notebook 03): no test city was ever trained on, by any model. A
#   model can only name a test city it has never seen by chance, so **city accuracy is about 0
#   by construction**, for the baselines as for GeoReasoner; only the distance metrics give
#   credit for a near city.
# * **The prompt.** GeoReasoner's released inference asks one prompt, used verbatim here as
#   `PROMPTS["evaluation"]` ("According to the content of the image, please think step by step and
#   deduce in which country and city the image is most likely located … Output in JSON format").
#   The demo's language model starts
#   from random weights and only understands the questions it was trained on: stage 2's
#   *location* question (answers `{'country', 'city'}`) and stage 1's *reasoning* question
#   (answers `{'country', 'reasons'}`). So every model of one table is asked the same question
#   (`eval_prompt`: the location question in the demo, the paper's evaluation prompt on the paper
#   profile), and the reasons come from a second, greedy generation with the reasoning question
#   (the full model carries both adapters, so it answers both).

# %% tags=["parameters"]
profile: str = "demo"  # parameter profile; artifacts go to runs/<profile>/
model: dict = {"model_id": "demo"}  # the vision-language model as geolib.vlm.ModelSpec fields; paper: a hub id at a pinned revision
image_tower: str = "efficientnet_lite0"  # frozen image features of the linear probe and the GeoCLIP head (notebook 02's cache)
tower_pretrained: str = ""  # open_clip pretrained tag of image_tower for the paper profile, e.g. openai
eval_prompt: str = "location"  # key of geolib.conversations.PROMPTS asked of every model in the tables (paper profile: evaluation)
reasons_prompt: str = "reasoning"  # key of geolib.conversations.PROMPTS whose answers give the reasons (faithfulness, examples)
max_new_tokens: int = 96  # generation limit of the answers (greedy decoding)
reasons_max_new_tokens: int = 160  # generation limit of the answers with reasons
generation_batch_size: int = 64  # images per batched generation
inference_workers: int = 2  # models answering at once, each in its own process with num_threads threads (1: one after another here)
num_threads: int = 1  # CPU threads of torch, BLAS and OpenMP (1 is fastest for the small demo models on a shared CPU; 0 keeps the defaults)
max_test_images: int = 0  # evaluate a random sample of this many test images (0: the whole test split)
n_boot: int = 1000  # bootstrap replicates for intervals
probe_c_grid: list[float] = [0.01, 0.1, 1.0]  # inverse L2 strengths tried for the linear probe; the best on the validation cities is used
geoclip_head: dict = {}  # demo: overrides of geolib.geoclip.GeoHeadConfig for the retrieval head, e.g. epochs
geoclip_gallery_size: int = 0  # GPS gallery points to retrieve from (0: GeoCLIP's full 100K; a random subset is faster)
geoclip_backbone: str = ""  # paper: GeoCLIP's CLIP backbone on the hub to run GeoCLIP itself; empty: the demo's retrieval head
geoclip_revision: str = ""  # hub commit of geoclip_backbone
streetclip: str = ""  # paper: StreetCLIP on the hub for the zero-shot baseline; empty: not run (no weights offline)
streetclip_revision: str = ""  # hub commit of streetclip
locatability_bins: int = 10  # quantile bins of locatability (10: deciles)
n_answers_shown: int = 6  # test images whose answers and reasons are shown
closed_set: bool = True  # also score every training country in the answer slot (closed-set top-1/top-5, a diagnostic)
sign_reader_baseline: bool = True  # add the offline sign reader of notebook 08 (OCR, text only, training-free) as a baseline row

# %%
# Setup (not the method): imports, the pool, the splits by city of notebook 03, the model's inputs.
import time

import numpy as np
import pandas as pd
import threadpoolctl
import torch

from geolib import baselines, borders, conversations, curation, datasets, evaluation, features, geoclip, inference, io, metrics, paths, plots, runtime, sign_reader, stages, vlm, zero_shot

pool = datasets.study_pool(profile)  # with each image's row and its split by city (notebook 02)
data, results = paths.data_dir(profile), paths.results_dir(profile)
splits = {name: datasets.read_manifest(data / f"split_{name}.parquet")
          for name in ("train_curated", "train_uncurated", "val", "test")}
train_all, val = pool[pool["split"] == "train"], pool[pool["split"] == "val"]  # every training-city image
test = splits["test"].assign(row=stages.pool_rows(pool, splits["test"]))
if max_test_images and len(test) > max_test_images:
    test = test.sample(max_test_images, random_state=0).sort_values("row")
test = test.reset_index(drop=True)
spec = vlm.ModelSpec.coerce(model)
demo = spec.model_id == "demo"
if num_threads:
    torch.set_num_threads(num_threads)
    threadpoolctl.threadpool_limits(num_threads)  # numpy's and scikit-learn's BLAS / OpenMP pools
device = "cuda" if torch.cuda.is_available() else "cpu"
images = stages.study_images(pool, spec, profile)
test_images = np.asarray(images[test["row"].to_numpy()]) if demo else [images[i] for i in test["row"]]
timings = {}
pd.DataFrame({"images": [len(train_all), len(val), len(test)],
              "cities": [f["city"].nunique() for f in (train_all, val, test)],
              "countries": [f["country"].nunique() for f in (train_all, val, test)]},
             index=["train (all training cities)", "validation", "test"])

# %% [markdown]
# ## 1. Inference: every model, the same question, greedy
#
# `geolib.stages.answer_study_model` loads each model (the base with its stages stacked) and
# `geolib.inference.answer_images` generates greedily in batches (left padding; batched and
# one-at-a-time give the same text) up to a fixed number of new tokens. The models are
# independent, so on a CPU `inference_workers` of them answer at once, each in its own process
# (the small demo model cannot keep two cores busy by itself); the answers are the same as one
# after another. Each answer is parsed with
# `geolib.answers.parse_answer` and keeps the raw text beside what was read from it. A city is
# scored at its GeoNames coordinates (`geolib.gazetteer.geocode_city`, the most populous city of that
# name in the answered country); an answer whose city is unknown to GeoNames, or that names no
# city, has **no coordinates** and counts as a miss in every distance metric (the table below
# says how often each happened: `coord_source`). A country name that is not recognised is an
# answer, and a wrong one; a refusal, or an answer without any country, city or coordinates, is
# not answered (`ParsedAnswer.country_label`).
#
# The models (checkpoints of notebooks 04 and 05):
#
# | row | adapters | paper |
# |---|---|---|
# | untuned base | none (demo: after its base training on captions, text-only world knowledge and guessed answers to the location question, notebook 04) | Qwen-VL in Tab. 1 |
# | without location tuning | stage 1 (`reasoning`) | Tab. 3 |
# | without reasoning tuning | stage 2 on the base (`location_only`) | Tab. 3 |
# | GeoReasoner | stage 1 + stage 2 (`reasoning`, `location`) | Tab. 1 and 3 |
# | stage 2 on a random sample | stage 1 + stage 2 trained on a random sample of the curated split's size | data quality |
# | 0% … 100% highly locatable | stage 1 + stage 2 trained on one-size sets of notebook 03 | data quality (answers only) |

# %%
print(f"eval_prompt ({eval_prompt}): {conversations.PROMPTS[eval_prompt]}\nreasons_prompt ({reasons_prompt}): {conversations.PROMPTS[reasons_prompt]}")
arms = {
    "untuned base": (),
    "without location tuning (stage 1 only)": stages.STUDY_STAGES["reasoning"],
    "without reasoning tuning (stage 2 only)": stages.STUDY_STAGES["location_only"],
    "GeoReasoner (both stages)": stages.STUDY_STAGES["full"],
    "stage 2 on a random sample": stages.STUDY_STAGES["uncurated"],
    **{f"{pct}% highly locatable": stages.STUDY_STAGES[f"quality_{pct:03d}"] for pct in stages.QUALITY_SHARES},
}
quality_names = {name: int(name.split("%")[0]) for name in arms if name.endswith("highly locatable")}
missing = {name: s for name, s in arms.items() if any(not (stages.checkpoint_dir(profile, x) / "stage.json").exists() for x in s)}
arms = {name: s for name, s in arms.items() if name not in missing}
print("not trained on this profile (skipped):", list(missing) or "none")
with_reasons = ("without location tuning (stage 1 only)", "GeoReasoner (both stages)")
candidates = sorted({conversations.country_name(c) for c in pool.loc[pool["split"] == "train", "country"]})  # the closed set
jobs = {name: dict(profile=profile, spec=spec, stages=stack, images_or_features=test_images, image_ids=test["image_id"].tolist(),
                   prompt=conversations.PROMPTS[eval_prompt], max_new_tokens=max_new_tokens, batch_size=generation_batch_size,
                   candidates=candidates if closed_set and name not in quality_names else None,
                   reasons_prompt=conversations.PROMPTS[reasons_prompt] if name in with_reasons and reasons_prompt != eval_prompt else None,
                   reasons_max_new_tokens=reasons_max_new_tokens)
        for name, stack in arms.items()}
# each model loads itself and answers; `inference_workers` of them at once, one process each
done = dict(zip(jobs, runtime.in_processes(stages.answer_study_model, list(jobs.values()), inference_workers,
                                           threads=num_threads)))
answers = {name: r["answers"] for name, r in done.items()}
reasons_answers = {name: r["reasons"] if r["reasons"] is not None else r["answers"] for name, r in done.items() if name in with_reasons}
closed = {name: inference.closed_set_accuracy(r["slot_scores"], candidates, [conversations.country_name(c) for c in test["country"]])
          for name, r in done.items() if r["slot_scores"] is not None}
for name, r in done.items():
    timings[name] = r["seconds"]
    print(f"{name}: {timings[name]:.0f} s, {answers[name]['answered'].mean():.0%} of answers parsed")

# %% [markdown]
# **Cannot read the image, or cannot write the answer?** Free generation fails in two ways: the
# model does not know the country, or it knows but does not write a parseable answer. Closed-set
# scoring separates them: for each test image it scores every training country's name in the
# answer slot (`{'country': '<name>'`, the summed log-likelihood of its tokens after the same
# question) and takes the best. Closed-set accuracy near the generated answers' accuracy: the
# answers say what the model knows. Closed set far above: the knowledge is there but the writing
# fails. Both near chance: the model cannot read the country from the image.

# %%
if closed:
    generated = {name: evaluation.correct_and_answered(evaluation.aligned(answers[name], test)["pred_country"],
                                                       test["country"].tolist(), "country") for name in closed}
    diagnosis = pd.DataFrame({name: {
        "generated: right (share of all images)": float(generated[name][0].mean()), "generated: answered": float(generated[name][1].mean()),
        "closed set: top-1": acc["top1"], "closed set: top-5": acc["top5"]} for name, acc in closed.items()}).T
    diagnosis["chance (top-1)"] = 1 / len(candidates)
    display(diagnosis.round(3))  # noqa: F821

# %% [markdown]
# What the models wrote (raw) and what was read from it, for the first test images:

# %%
full_name, base_name = "GeoReasoner (both stages)", "untuned base"
shown = pd.DataFrame({"truth": [f"{conversations.country_name(c)}, {city}" for c, city in zip(test["country"], test["city"])]})
for name in (base_name, full_name):
    if name in answers:
        shown[f"{name}: raw"] = answers[name]["raw"]
        shown[f"{name}: read"] = [f"{c}, {city}" if ok else "(unparsable)" for c, city, ok in
                                  zip(answers[name]["pred_country"], answers[name]["pred_city"], answers[name]["answered"])]
with pd.option_context("display.max_colwidth", 120):
    display(shown.head(n_answers_shown))  # noqa: F821 (IPython)
pd.DataFrame({name: a["coord_source"].value_counts(normalize=True) for name, a in answers.items()}).fillna(0.0).T

# %% [markdown]
# ## 2. Baselines, each a real model on the same test images
#
# All are fitted on every image of the training cities (the images the tuning stages saw) and
# never see a validation or test city.
#
# 1. **Majority**: the training split's most common country and most common city.
# 2. **Linear probe** on the frozen image features (demo: the ImageNet EfficientNet-Lite0 that is
#    also the demo model's vision tower; paper: CLIP ViT-L/14): multinomial logistic regression
#    on standardised pooled features, predicting the country (coordinates: the country's
#    training centroid) or the city (the city's centroid); the L2 strength is chosen on the
#    validation cities.
# 3. **GeoCLIP** (Vivanco et al. 2023): retrieval over GeoCLIP's 100K-point GPS gallery with its
#    real, packaged location encoder. Demo: GeoCLIP's image side is CLIP ViT-L/14 (a hub
#    download), so a small head is trained contrastively to map the frozen image features into
#    the location encoder's space; paper profile: GeoCLIP itself.
# 4. **StreetCLIP** zero-shot (paper profile): `"A Street View photo in {country}."` for each
#    candidate country; no weights can be had offline, so the demo skips it (the code is
#    tested on a tiny random CLIP).
# 5. **The untuned base model** with the same question (section 1).
# 6. **The sign reader** (notebook 08, `sign_reader_baseline`): OCR of the signs, then place names,
#    languages and conventions in the text; it never sees a training image, answers only the
#    study's countries, and does not answer an image whose signs it cannot read.

# %%
start = time.perf_counter()
if image_tower == "efficientnet_lite0":
    tower = image_tower
else:
    tower = features.clip_image_tower(image_tower, pretrained=tower_pretrained or None)
feats = features.image_features(pool["image_path"].tolist(), paths.cache_dir(profile) / f"features_{image_tower}.npy",
                                pooled=True, tower=tower)
f_train, f_val, f_test = feats[train_all["row"].to_numpy()], feats[val["row"].to_numpy()], feats[test["row"].to_numpy()]
predictions = {"majority (training split)": baselines.majority_baseline(train_all, test)}

c_scores = {}
for c in probe_c_grid:
    val_pred = baselines.linear_probe_baseline(f_train, train_all, f_val, val, "country", C=c)
    c_scores[c] = float(evaluation.correct_and_answered(val_pred["pred_country"], val["country"])[0].mean())
best_c = max(c_scores, key=c_scores.get)
print("validation country accuracy by C:", {c: round(v, 3) for c, v in c_scores.items()}, "→ C =", best_c)
predictions[f"linear probe, country ({image_tower})"] = baselines.linear_probe_baseline(f_train, train_all, f_test, test, "country", C=best_c)
predictions[f"linear probe, city ({image_tower})"] = baselines.linear_probe_baseline(f_train, train_all, f_test, test, "city", C=best_c)
timings["majority and linear probes"] = time.perf_counter() - start

# %%
start = time.perf_counter()
gallery = geoclip.load_gps_gallery()
if geoclip_gallery_size and geoclip_gallery_size < len(gallery):
    gallery = gallery[np.sort(np.random.default_rng(0).choice(len(gallery), geoclip_gallery_size, replace=False))]
if geoclip_backbone:  # paper: GeoCLIP itself
    geoclip_model = geoclip.load_geoclip(geoclip_backbone, geoclip_revision or None, device=device)
    gallery_emb = geoclip.gallery_embeddings(paths.cache_dir(profile) / f"geoclip_gallery_{len(gallery)}.npy", gallery,
                                             geoclip_model.location_encoder)
    predictions["GeoCLIP"] = geoclip.geoclip_image_baseline(geoclip_model, test["image_path"].tolist(), test["image_id"],
                                                            gallery_emb, gallery)
    del geoclip_model
else:  # demo: image features → a trained head → GeoCLIP's location space → the gallery
    gallery_emb = geoclip.gallery_embeddings(paths.cache_dir(profile) / f"geoclip_gallery_{len(gallery)}.npy", gallery)
    head_config = geoclip.GeoHeadConfig(**{"progress": False, **geoclip_head})
    predictions[f"GeoCLIP retrieval head ({image_tower})"] = geoclip.geoclip_head_baseline(
        f_train, train_all, f_test, test, gallery_emb, gallery, head_config,
        checkpoint_path=paths.checkpoints_dir(profile) / f"geoclip_head_{image_tower}.pt")
if streetclip:
    clip_model, clip_processor = zero_shot.load_streetclip(streetclip, streetclip_revision or None, device=device)
    predictions["StreetCLIP zero-shot"] = zero_shot.streetclip_zero_shot(
        test["image_path"].tolist(), sorted(pool["country"].unique()), clip_model, clip_processor, image_ids=test["image_id"])
    del clip_model
else:
    print("StreetCLIP: not run on this profile (no StreetCLIP weights offline; set `streetclip` on the paper profile)")
timings["GeoCLIP and StreetCLIP"] = time.perf_counter() - start
print(f"GeoCLIP gallery: {len(gallery):,} GPS points")

# %%
reader_name = "sign reader (text only, notebook 08)"
if sign_reader_baseline:  # readings are cached in runs/<profile>/cache/ and shared with notebook 08
    start = time.perf_counter()
    read = sign_reader.cached_readings(test["image_path"].tolist(), test["image_id"].tolist(),
                                       paths.cache_dir(profile) / "sign_readings.parquet", countries=sorted(pool["country"].unique()))
    predictions[reader_name] = sign_reader.predictions_from_cache(read)
    timings["sign reader"] = time.perf_counter() - start
    print(f"sign reader: text found on {(read['n_boxes'] > 0).mean():.0%} of the test images, "
          f"answered {predictions[reader_name]['answered'].mean():.0%}")

# %% [markdown]
# ## 3. The main table (GeoReasoner's Table 1, plus distances)
#
# Every number with its percentile-bootstrap 95% interval over test images
# (`geolib.evaluation.evaluation_table` = `geolib.evaluation.baseline_table` + the unanswered
# share). Accuracy is over answered images, recall is the answered share, F1 their harmonic mean;
# "within d km" and GeoScore (5000·e^(−d/1492.7)) count an unanswered image as a miss (0), the
# median error is over images with coordinates.

# %%
main_models = {**predictions, **{name: answers[name] for name in (base_name, full_name) if name in answers}}
main = evaluation.evaluation_table(main_models, test, n_boot=n_boot)
label_metrics = ["country_accuracy", "country_recall", "country_f1", "city_accuracy", "city_recall", "city_f1", "unanswered"]
distance_metrics = ["within_1km", "within_25km", "within_200km", "within_750km", "within_2500km", "median_km", "mean_geoscore"]
evaluation.interval_table(main, label_metrics)

# %%
evaluation.interval_table(main, distance_metrics)

# %% [markdown]
# The paper's published Table 1 as a reference. **It is measured on another test set** (its own
# Street View images, real photographs, a 7B model), so it says what
# the method reached there, not what these numbers should be:

# %%
ours = evaluation.values(main)[label_metrics[:-1]].assign(source="this study (demo world, held-out cities)")
paper = evaluation.paper_table().assign(source="GeoReasoner Tab. 1 (its own test set)")
pd.concat([ours, paper]).set_index("source", append=True).swaplevel().round(3)

# %% [markdown]
# ### Does tuning beat the untuned base by 25%?
#
# The paper's GeoReasoner improves country F1 over Qwen-VL by 25% (.7225 → .9033). Here: the
# difference in country F1 between the full model and every other row, with a paired bootstrap
# interval (both models resampled on the same images), and the relative gain where the other
# row's F1 is above 0 (a relative gain over an F1 of 0 is undefined).

# %%
truth = test["country"].tolist()
hits = {name: evaluation.correct_and_answered(evaluation.aligned(p, test)["pred_country"], truth, "country")
        for name, p in {**main_models, **answers}.items()}
gains = {}
if full_name in hits:
    gains = {name: evaluation.f1_difference(hits[full_name], hits[name], "f1", n_boot=n_boot)
             for name in main_models if name != full_name}
pd.DataFrame(gains).T.rename(columns={"first": "F1 full model", "second": "F1 other"}).round(3)

# %%
fig = plots.plot_country_f1(main, {"GeoReasoner, paper": 0.9033, "Qwen-VL (untuned), paper": 0.7225})
plots.save_figure(fig, profile, "06_country_f1")

# %% [markdown]
# *The figure:* each model's country F1 on the test cities with its 95% interval, its answered share
# under its name (F1 counts an unanswered image as a miss), and the paper's published F1 as dotted lines
# measured on another test set.

# %% [markdown]
# ## 4. Ablations (GeoReasoner's Table 3) and data quality
#
# The same question for every row. The stage-1-only model was never asked the location question
# in training; the next table also asks it (and the full model) the reasoning question it was
# tuned on, as a fairer view of what stage 1 alone knows about the country.

# %%
ablation_names = [n for n in (base_name, "without location tuning (stage 1 only)", "without reasoning tuning (stage 2 only)",
                              full_name) if n in answers]
ablation = evaluation.evaluation_table({n: answers[n] for n in ablation_names}, test, n_boot=n_boot)
ablation_view = evaluation.interval_table(ablation, ["country_accuracy", "country_recall", "country_f1", "city_f1",
                                                     "within_750km", "median_km", "unanswered"])
paper_f1 = {"without location tuning (stage 1 only)": "without location tuning", "without reasoning tuning (stage 2 only)":
            "without reasoning tuning", full_name: "full"}
ablation_view["country F1, paper Tab. 3"] = [evaluation.PAPER_ABLATION_F1.get(paper_f1.get(n, ""), {}).get("country", np.nan)
                                             for n in ablation_view.index]
ablation_view

# %%
own_prompt = {f"{n} · reasoning question": p for n, p in reasons_answers.items()}
own_prompt_table = evaluation.evaluation_table(own_prompt, test, n_boot=n_boot) if own_prompt else None
if own_prompt_table is not None:
    display(evaluation.interval_table(own_prompt_table, ["country_accuracy", "country_recall", "country_f1", "unanswered"]))  # noqa: F821

# %% [markdown]
# **Curated against a random sample.** Stage 2 on the curated (highly locatable) training split
# against stage 2 on a random sample of the same size (notebook 03; a random sample, not a
# low-quality one: most of it passes the threshold too), both on top of the same stage 1:
# country accuracy, and the paired difference. The paper's own experiment follows.

# %%
data_quality = {}
if "stage 2 on a random sample" in hits and full_name in hits:
    data_quality = {"country_accuracy": evaluation.f1_difference(hits[full_name], hits["stage 2 on a random sample"],
                                                                 "accuracy", n_boot=n_boot),
                    "country_f1": evaluation.f1_difference(hits[full_name], hits["stage 2 on a random sample"],
                                                           "f1", n_boot=n_boot)}
    dq = pd.DataFrame(data_quality).T.rename(columns={"first": "curated", "second": "random sample"})
    display(dq.round(3))  # noqa: F821
    sample = splits["train_uncurated"]
    print(f"training images: curated {len(splits['train_curated'])} · random sample {len(sample)}, "
          f"{sample['curated'].mean():.0%} of it highly locatable · mean locatability "
          f"{splits['train_curated']['locatability'].mean():.2f} vs {sample['locatability'].mean():.2f}")

# %% [markdown]
# **The data-quality experiment as the paper ran it.** Stage 2 on top of the same stage 1, on
# training sets of one size whose share of highly locatable images grows from 0% to 100%
# (notebook 03): country accuracy on the test cities with its 95% interval, and each share's
# paired difference from 0%. The paper: .63 at 0%, .72 at 100%.

# %%
quality = pd.DataFrame()
if quality_names:
    quality = evaluation.quality_curve({pct: hits[name] for name, pct in quality_names.items()}, n_boot=n_boot)
    n_quality = len(datasets.read_manifest(data / f"split_train_quality_{min(quality_names.values()):03d}.parquet"))
    fig = plots.plot_data_quality(quality, 1 / len(candidates), evaluation.PAPER_DATA_QUALITY, n_quality)
    plots.save_figure(fig, profile, "06_data_quality")
    display(quality.round(3))  # noqa: F821

# %% [markdown]
# ## 5. How far off: accuracy within d km and the error by country

# %%
km = np.logspace(0, np.log10(20_000), 120)
curve_models = {**main_models, **{n: answers[n] for n in ablation_names if n not in main_models}}
errors = {name: evaluation.error_km(p, test) for name, p in curve_models.items()}
curves = pd.concat([pd.DataFrame({"model": name, "km": km, "share": evaluation.within_km_curve(d, km)})
                    for name, d in errors.items()])
fig = plots.plot_accuracy_within_km(curves)
plots.save_figure(fig, profile, "06_accuracy_within_km")

# %% [markdown]
# *The figure:* for every distance d, the share of test images each model placed within d km of the
# truth (an unanswered image is a miss at every d); the dotted lines mark the table's thresholds.

# %%
map_model = full_name if full_name in answers else next(iter(main_models))
per_country = evaluation.errors_by_country(main_models[map_model], test)
fig = plots.plot_error_map(per_country, borders.country_polygons(), f"{map_model}: median error per true country (test cities)")
plots.save_figure(fig, profile, "06_error_map")
per_country.assign(country=per_country["country"].map(conversations.country_name)).sort_values("median_km").round(3)

# %% [markdown]
# *The figure:* the median error of the model's answers for the test images of each country, darker
# for larger errors; hatched countries are those whose images got no answer with coordinates.

# %% [markdown]
# ## 6. Beyond the paper: accuracy by locatability
#
# The test images are binned by their locatability (notebook 01's score, from the segmentation:
# how much of the image is of the kinds of things that give a place away). Accuracy should rise
# with it. A model that *knows when it cannot know* would also answer less often in the lowest
# bins; GeoReasoner's prompt allows no such abstention, and its training data never shows one,
# so its answered share should stay flat.

# %%
bin_models = [n for n in (full_name, base_name) if n in hits] + [n for n in predictions if "probe, country" in n or "GeoCLIP" in n]
decile_table = pd.concat([evaluation.accuracy_by_bins(test["locatability"], *hits[n], n_bins=locatability_bins, n_boot=n_boot)
                          .assign(model=n) for n in bin_models])
fig = plots.plot_locatability_bins(decile_table)
plots.save_figure(fig, profile, "06_locatability_deciles")
decile_table.pivot(index="bin", columns="model", values="accuracy").round(3)

# %% [markdown]
# *The figure:* country accuracy and answered share of each model by locatability decile of the test
# images, from the least to the most locatable tenth.

# %% [markdown]
# ## 7. Beyond the paper: are the reasons faithful to the image?
#
# The demo world knows which clues each image shows (the script and language of its signs, the
# driving side, road-line colours, plates, vegetation). The clues a model's reasons cite are read
# with the same keyword patterns (`geolib.world.clues_mentioned`, as in `geolib.gre_scores.chain_quality`):
#
# * **precision**: the share of cited clues that are really visible (1 − precision is what the
#   reasons hallucinate);
# * **recall**: the share of visible clues that the reasons cite.
#
# The reasons are the answer's `reasons` field, or its whole raw text where the small demo model
# garbled the JSON around them (`reasons_field_read` says how often a field was read). Two references
# frame the numbers: the demo world's own reasoning texts (written from the
# visible clues: the ceiling), and each model's reasons given to *another* test image (a
# shuffle: what reasons unrelated to the image would score).

# %%
has_clues = "clues" in test and test["clues"].map(lambda c: c is not None and len(c) > 0).any()
faith = {}
if has_clues and reasons_answers:
    clues = test["clues"].tolist()
    for name, p in reasons_answers.items():
        assert (p["image_id"].to_numpy() == test["image_id"].to_numpy()).all()  # answers are in test order
        faith[f"{name} (reasoning question)"] = {**evaluation.faithfulness(evaluation.reasons_or_raw(p), clues, n_boot=n_boot),
                                                 "reasons_field_read": float(p["reasons"].notna().mean())}
    faith["reference: the demo world's reasoning texts"] = evaluation.faithfulness(test["reasoning"].tolist(), clues, n_boot=n_boot)
    for name, p in reasons_answers.items():  # each image gets the reasons written for the next one
        shuffled = np.roll(np.array(evaluation.reasons_or_raw(p), dtype=object), 1).tolist()
        faith[f"reference: {name}, reasons of another image"] = evaluation.faithfulness(shuffled, clues, n_boot=n_boot)
    faith_view = pd.DataFrame(faith).T[["precision", "precision_low", "precision_high", "recall", "recall_low", "recall_high",
                                        "hallucination_rate", "reasons_field_read", "clues_per_answer", "n"]]
    display(faith_view.round(3))  # noqa: F821
else:
    print("no visible-clue annotation in this pool (real data): faithfulness is measured on the demo world only")

# %%
if faith:
    by_type = pd.DataFrame({name: {k: v["precision"] for k, v in f["by_type"].items()} for name, f in faith.items()})
    display(by_type.round(3).rename_axis("precision by clue type"))  # noqa: F821

# %% [markdown]
# ## 8. Right and wrong answers, with their reasons
#
# The full model's answer to the evaluation question, and the reasons it gives when asked the
# reasoning question (its raw answer where no reasons could be read from it), for test images it
# got right and wrong at country level.

# %%
if full_name in answers:
    full_a = evaluation.aligned(answers[full_name], test)
    said = reasons_answers.get(full_name, answers[full_name]).set_index("image_id")
    reasons_of = said["reasons"].where(said["reasons"].notna(), "(no reasons could be read) " + said["raw"])
    gallery_rows = full_a.assign(
        correct=hits[full_name][0],
        truth=[f"{conversations.country_name(c)}, {city}" for c, city in zip(full_a["country"], full_a["city"])],
        answer=[f"{conversations.country_name(c)}, {city}" if ok and isinstance(c, str) else raw for c, city, ok, raw in
                zip(full_a["pred_country"], full_a["pred_city"], full_a["answered"], answers[full_name]["raw"])],
        reasons=full_a["image_id"].map(reasons_of))
    k = max(1, n_answers_shown // 2)
    picked = pd.concat([gallery_rows[gallery_rows["correct"]].head(k), gallery_rows[~gallery_rows["correct"]].head(k)])
    fig = plots.plot_answer_examples(picked, columns=min(3, len(picked)))
    plots.save_figure(fig, profile, "06_examples")
    with pd.option_context("display.max_colwidth", 300):
        display(picked[["truth", "answer", "correct", "reasons"]])  # noqa: F821

# %% [markdown]
# *The figure:* test images with each model's answer and reasons beside the truth, picked to show
# right and wrong answers.

# %% [markdown]
# ## Results

# %%
full_vs_base = gains.get(base_name, {})
summary = {
    "model": spec.model_id, "eval_prompt": conversations.PROMPTS[eval_prompt], "reasons_prompt": conversations.PROMPTS[reasons_prompt],
    "max_new_tokens": max_new_tokens, "reasons_max_new_tokens": reasons_max_new_tokens, "n_boot": n_boot,
    "n_test": len(test), "test_cities": int(test["city"].nunique()), "test_countries": int(test["country"].nunique()),
    "probe_c": best_c, "geoclip_gallery_points": len(gallery),
    "main_table": evaluation.table_records(main),
    "paper_table1": evaluation.paper_table().to_dict(orient="index"),
    "country_f1_gain_over": gains,
    "country_f1_relative_gain_over_base": full_vs_base.get("relative"),
    "ablation": evaluation.table_records(ablation),
    "ablation_reasoning_question": evaluation.table_records(own_prompt_table) if own_prompt_table is not None else {},
    "paper_ablation_f1": evaluation.PAPER_ABLATION_F1,
    "data_quality": data_quality, "paper_data_quality": evaluation.PAPER_DATA_QUALITY,
    "data_quality_curve": quality.to_dict(orient="records"),
    "coord_source": {n: a["coord_source"].value_counts(normalize=True).to_dict() for n, a in answers.items()},
    "locatability_bins": decile_table.to_dict(orient="records"),
    "faithfulness": faith,
    "errors_by_country": per_country.to_dict(orient="records"),
    "seconds": timings,
}
io.write_json(results / "06_evaluation.json", summary)
# headline keys (docs/results.md): each arm's country F1 with its interval and its answered share
arm_keys = {base_name: "base", full_name: "full", "without reasoning tuning (stage 2 only)": "no_reasoning",
            "without location tuning (stage 1 only)": "no_location", "stage 2 on a random sample": "uncurated",
            f"linear probe, country ({image_tower})": "probe", "majority (training split)": "majority", reader_name: "reader"}
summary_keys = {}
for records in (evaluation.table_records(main), evaluation.table_records(ablation)):
    for model_name, metrics_of in records.items():
        if model_name in arm_keys:
            key = arm_keys[model_name]
            f1 = metrics_of["country_f1"]
            summary_keys |= {f"06.{key}.country_f1": f1["value"], f"06.{key}.country_f1.ci_low": f1["ci_low"],
                         f"06.{key}.country_f1.ci_high": f1["ci_high"], f"06.{key}.answered": metrics_of["country_recall"]["value"]}
for model_name, acc in closed.items():
    if model_name in arm_keys:
        summary_keys |= {f"06.{arm_keys[model_name]}.closed_set_top1": acc["top1"], f"06.{arm_keys[model_name]}.closed_set_top5": acc["top5"]}
for row in quality.to_dict(orient="records"):  # the data-quality curve
    key = f"06.quality.share_{int(row['share'])}"
    summary_keys |= {f"{key}.country_acc": row["country_accuracy"], f"{key}.country_acc.ci_low": row["ci_low"],
                     f"{key}.country_acc.ci_high": row["ci_high"], f"{key}.minus_lowest.ci_low": row["minus_lowest_ci_low"]}
io.merge_summary(profile, summary_keys)
raw = pd.concat([a.assign(model=n, prompt=eval_prompt) for n, a in answers.items()]
                + [a.assign(model=n, prompt=reasons_prompt) for n, a in reasons_answers.items() if reasons_prompt != eval_prompt]
                + [p.assign(model=n, prompt="", answered=evaluation.answered_rows(p)) for n, p in predictions.items()],
                ignore_index=True)
io.write_parquet(results / "06_predictions.parquet", raw.astype({"score": float}))
relative = full_vs_base.get("relative", float("nan"))
print(f"country F1: full {full_vs_base.get('first', float('nan')):.3f} vs untuned base {full_vs_base.get('second', float('nan')):.3f}"
      f" (relative gain {'undefined: the base scores 0' if np.isnan(relative) else f'{relative:+.0%}'}; the paper's aim: ≥ +25%)")
best_baseline = max(predictions, key=lambda n: evaluation.values(main).loc[n, "country_f1"])
if best_baseline in gains:
    g = gains[best_baseline]
    print(f"full − best baseline ({best_baseline}): {g['difference']:+.3f} country F1 [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}]")
pd.Series(timings).round(0).rename("seconds")

# %% [markdown]
# ## Checks

# %%
for name in ("train_curated", "train_uncurated", "val"):
    assert not curation.shared_cities(splits[name], test), f"a test city is in {name}"
assert not curation.shared_cities(train_all, test), "a test city is among the training cities"
assert set(test["image_id"]).isdisjoint(set(train_all["image_id"]) | set(val["image_id"]))
for table in [main, ablation] + ([own_prompt_table] if own_prompt_table is not None else []):
    shares = table[table["metric"].isin(evaluation.SHARE_METRICS)]
    assert shares["value"].between(0, 1).all(), "a share outside [0, 1]"
    assert (shares[["ci_low", "ci_high"]].stack().between(0, 1)).all()
    finite = table.dropna(subset=["value", "ci_low", "ci_high"])
    assert (finite["ci_low"] <= finite["ci_high"] + 1e-12).all()
    assert table.loc[table["metric"] == "mean_geoscore", "value"].between(0, 5000).all()
    assert (table.loc[table["metric"] == "median_km", "value"].dropna() >= 0).all()
    v = evaluation.values(table)
    for level in ("country", "city"):
        f1 = [metrics.f1_from(a, r) for a, r in zip(v[f"{level}_accuracy"], v[f"{level}_recall"])]
        assert np.allclose(f1, v[f"{level}_f1"]), f"{level} F1 is not the harmonic mean of accuracy and recall"
assert all(len(a) == len(test) and a["raw"].map(lambda t: isinstance(t, str)).all() for a in answers.values())
assert full_name in answers, "the full model (both stages) was not evaluated"
for f in faith.values():
    assert 0 <= f["recall"] <= 1 and (np.isnan(f["precision"]) or 0 <= f["precision"] <= 1)
assert (results / "06_evaluation.json").exists() and (results / "06_predictions.parquet").exists()
