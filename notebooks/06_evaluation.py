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
# views, scores the answers as a classification (its Table 1), ablates its two tuning stages
# (Table 3) and tunes on highly locatable vs unselected street views (data quality). This notebook
# reproduces those tables on this profile's test split, adds distances, bootstrap intervals,
# accuracy by locatability and the faithfulness of the reasons, and runs every baseline as a real
# model on the same images (metrics: `docs/metrics.md`; headline keys: `docs/results.md`).
#
# * **The split is by city** (notebook 03): no model ever trained on a test city, so **city accuracy
#   is about 0 by construction**; only the distance metrics give credit for a near city.
# * **The prompt.** GeoReasoner's released inference asks `PROMPTS["evaluation"]`. The demo's
#   language model starts from random weights and only understands the questions it was trained on,
#   so every model of one table is asked `eval_prompt` (demo: stage 2's location question; paper
#   profile: the evaluation prompt), and the reasons come from a second greedy generation with
#   `reasons_prompt` (stage 1's reasoning question).

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
import numpy as np
import pandas as pd
import torch

from geolib import baselines, borders, conversations, curation, datasets, evaluation, features, geoclip, inference, io, paths, plots, runtime, sign_reader, stages, vlm, zero_shot

pool = datasets.study_pool(profile)  # with each image's row and its split by city (notebook 02)
data, results = paths.data_dir(profile), paths.results_dir(profile)
splits = {name: datasets.read_manifest(data / f"split_{name}.parquet") for name in ("train_curated", "train_uncurated", "val", "test")}
train_all, val = pool[pool["split"] == "train"], pool[pool["split"] == "val"]  # every training-city image
spec = vlm.ModelSpec.coerce(model)
runtime.limit_threads(num_threads)
device = "cuda" if torch.cuda.is_available() else "cpu"
images = stages.study_images(pool, spec, profile)  # demo: the tower's cached tokens; paper: image paths
test, test_images = stages.evaluation_sample(splits["test"].assign(row=stages.pool_rows(pool, splits["test"])), images,
                                             max_test_images)  # every test image, or a sample of max_test_images
test = test.reset_index(drop=True)
timings = {}
pd.DataFrame({"images": [len(f) for f in (train_all, val, test)], "cities": [f["city"].nunique() for f in (train_all, val, test)],
              "countries": [f["country"].nunique() for f in (train_all, val, test)]},
             index=["train (all training cities)", "validation", "test"])

# %% [markdown]
# ## 1. Inference: every model, the same question, greedy
#
# Each model is the base with its stages of notebooks 04 and 05 stacked; `inference_workers` of
# them answer at once, each in its own process (`geolib.stages.answer_study_model`), greedily in
# batches. `geolib.answers.parse_answer` reads each answer and keeps the raw text beside it. A city
# is scored at its GeoNames coordinates; an answer whose city is unknown, or that names none, has
# **no coordinates** and misses every distance (`coord_source` below). An unrecognised country is a
# wrong answer; a refusal, or an answer without country, city or coordinates, is not answered.

# %%
print(f"eval_prompt ({eval_prompt}): {conversations.PROMPTS[eval_prompt]}\nreasons_prompt ({reasons_prompt}): {conversations.PROMPTS[reasons_prompt]}")
full_name, base_name, random_name = "GeoReasoner (both stages)", "untuned base", "stage 2 on a random sample"
arms = {  # the stages stacked on the base · the paper's row
    base_name: (),  # demo: after its base training (notebook 04) · Qwen-VL in Tab. 1
    "without location tuning (stage 1 only)": stages.STUDY_STAGES["reasoning"],  # Tab. 3
    "without reasoning tuning (stage 2 only)": stages.STUDY_STAGES["location_only"],  # Tab. 3
    full_name: stages.STUDY_STAGES["full"],  # Tab. 1 and 3
    random_name: stages.STUDY_STAGES["uncurated"],  # stage 2 on a random sample of the curated split's size · data quality
    **{f"{pct}% highly locatable": stages.STUDY_STAGES[f"quality_{pct:03d}"] for pct in stages.QUALITY_SHARES},  # data quality
}
quality_names = {name: int(name.split("%")[0]) for name in arms if name.endswith("highly locatable")}
with_reasons = ("without location tuning (stage 1 only)", full_name)  # also asked reasons_prompt
missing = [name for name, s in arms.items() if any(not (stages.checkpoint_dir(profile, x) / "stage.json").exists() for x in s)]
print("not trained on this profile (skipped):", missing or "none")
candidates = sorted({conversations.country_name(c) for c in train_all["country"]})  # the closed set: the training countries
jobs = inference.answer_jobs(
    {n: s for n, s in arms.items() if n not in missing}, conversations.PROMPTS[eval_prompt],
    candidates=candidates if closed_set else None, closed_set_arms=[n for n in arms if n not in quality_names],
    reasons_prompt=conversations.PROMPTS[reasons_prompt] if reasons_prompt != eval_prompt else None, reasons_arms=with_reasons,
    profile=profile, spec=spec, images_or_features=test_images, image_ids=test["image_id"].tolist(), max_new_tokens=max_new_tokens,
    batch_size=generation_batch_size, reasons_max_new_tokens=reasons_max_new_tokens)
done = dict(zip(jobs, runtime.in_processes(stages.answer_study_model, list(jobs.values()), inference_workers, threads=num_threads)))
answers, reasons_answers, closed, seconds = inference.sort_answers(done, with_reasons, candidates,
                                                                   [conversations.country_name(c) for c in test["country"]])
timings |= seconds
print("\n".join(f"{n}: {timings[n]:.0f} s, {a['answered'].mean():.0%} of answers parsed" for n, a in answers.items()))

# %% [markdown]
# **Cannot read the image, or cannot write the answer?** Closed-set scoring scores every training
# country's name in the answer slot (`{'country': '<name>'`, the summed log-likelihood of its tokens
# after the same question) and takes the best. Near the generated answers: they say what the model
# knows; far above: the knowledge is there but the writing fails; both near chance: the model cannot
# read the country from the image. Then what the models wrote (raw), what was read from it, and
# where each answer's coordinates came from.

# %%
if closed:
    display(inference.closed_set_diagnosis(answers, closed, test, len(candidates)).round(3))  # noqa: F821 (IPython)
with pd.option_context("display.max_colwidth", 120):
    display(inference.shown_answers(answers, test, (base_name, full_name)).head(n_answers_shown))  # noqa: F821
pd.DataFrame({name: a["coord_source"].value_counts(normalize=True) for name, a in answers.items()}).fillna(0.0).T

# %% [markdown]
# ## 2. Baselines, each a real model on the same test images
#
# Fitted on every image of the training cities (what the tuning stages saw), never on a validation
# or test city: **majority** (the most common country and city); a **linear probe** on frozen image
# features (demo: EfficientNet-Lite0, the demo model's vision tower; paper: CLIP ViT-L/14) for the
# country or the city, its L2 strength chosen on the validation cities; **GeoCLIP** (Vivanco et al.
# 2023), retrieval over its 100K-point GPS gallery with its real location encoder (demo: a small
# head maps the frozen features into the encoder's space; paper: GeoCLIP itself); **StreetCLIP**
# zero-shot, `"A Street View photo in {country}."` (paper profile only: no weights offline); and the
# **sign reader** of notebook 08 (OCR, training-free; it does not answer an image whose signs it
# cannot read); and, from section 1, the untuned base model.

# %%
with runtime.timer(timings, "majority and linear probes"):
    tower = image_tower if image_tower == "efficientnet_lite0" else features.clip_image_tower(image_tower, pretrained=tower_pretrained or None)
    feats = features.image_features(pool["image_path"].tolist(), paths.cache_dir(profile) / f"features_{image_tower}.npy",
                                    pooled=True, tower=tower)
    f_train, f_val, f_test = feats[train_all["row"].to_numpy()], feats[val["row"].to_numpy()], feats[test["row"].to_numpy()]
    predictions = {"majority (training split)": baselines.majority_baseline(train_all, test)}
    best_c, c_scores = baselines.select_probe_c(f_train, train_all, f_val, val, probe_c_grid)
    print("validation country accuracy by C:", {c: round(v, 3) for c, v in c_scores.items()}, "→ C =", best_c)
    for target in ("country", "city"):
        predictions[f"linear probe, {target} ({image_tower})"] = baselines.linear_probe_baseline(f_train, train_all, f_test, test,
                                                                                                 target, C=best_c)
with runtime.timer(timings, "GeoCLIP and StreetCLIP"):
    geoclip_name = "GeoCLIP" if geoclip_backbone else f"GeoCLIP retrieval head ({image_tower})"  # paper: GeoCLIP itself
    predictions[geoclip_name], gallery = geoclip.geoclip_baseline(
        test, paths.cache_dir(profile), geoclip_gallery_size, backbone=geoclip_backbone, revision=geoclip_revision, device=device,
        train_features=f_train, train_df=train_all, test_features=f_test, head=geoclip_head,
        checkpoint_path=paths.checkpoints_dir(profile) / f"geoclip_head_{image_tower}.pt")
    if streetclip:
        predictions["StreetCLIP zero-shot"] = zero_shot.streetclip_baseline(streetclip, test, sorted(pool["country"].unique()),
                                                                            streetclip_revision, device)
    else:
        print("StreetCLIP: not run on this profile (no StreetCLIP weights offline; set `streetclip` on the paper profile)")
print(f"GeoCLIP gallery: {len(gallery):,} GPS points")
reader_name = "sign reader (text only, notebook 08)"
if sign_reader_baseline:  # readings are cached in runs/<profile>/cache/ and shared with notebook 08
    with runtime.timer(timings, "sign reader"):
        read = sign_reader.cached_readings(test["image_path"].tolist(), test["image_id"].tolist(),
                                           paths.cache_dir(profile) / "sign_readings.parquet", countries=sorted(pool["country"].unique()))
        predictions[reader_name] = sign_reader.predictions_from_cache(read)
    print(f"sign reader: text found on {(read['n_boxes'] > 0).mean():.0%} of the test images, "
          f"answered {predictions[reader_name]['answered'].mean():.0%}")

# %% [markdown]
# ## 3. The main table (GeoReasoner's Table 1, plus distances)
#
# Every number with its percentile-bootstrap 95% interval over test images. **Accuracy** is over
# answered images, **recall** is the answered share, **F1** their harmonic mean; "within d km" and
# GeoScore (5000·e^(−d/1492.7)) count an unanswered image as a miss, the median error is over
# images with coordinates. Then the paper's Table 1, **measured on another test set** (its own
# Street View images, a 7B model): what the method reached there, not what these numbers should be.

# %%
main_models = {**predictions, **{name: answers[name] for name in (base_name, full_name) if name in answers}}
main = evaluation.evaluation_table(main_models, test, n_boot=n_boot)
label_metrics = ["country_accuracy", "country_recall", "country_f1", "city_accuracy", "city_recall", "city_f1", "unanswered"]
distance_metrics = ["within_1km", "within_25km", "within_200km", "within_750km", "within_2500km", "median_km", "mean_geoscore"]
display(evaluation.interval_table(main, label_metrics), evaluation.interval_table(main, distance_metrics))  # noqa: F821
ours = evaluation.values(main)[label_metrics[:-1]].assign(source="this study (demo world, held-out cities)")
paper = evaluation.paper_table().assign(source="GeoReasoner Tab. 1 (its own test set)")
pd.concat([ours, paper]).set_index("source", append=True).swaplevel().round(3)

# %% [markdown]
# **Does tuning beat the untuned base by 25%?** (The paper: country F1 .7225 → .9033 over
# Qwen-VL.) The full model's country F1 minus every other row's, with a paired bootstrap interval
# (both models resampled on the same images), and the relative gain where the other F1 is above 0.
# The figure: each model's F1 with its interval and answered share; dotted, the paper's.

# %%
truth = test["country"].tolist()
hits = {name: evaluation.correct_and_answered(evaluation.aligned(p, test)["pred_country"], truth, "country")
        for name, p in {**main_models, **answers}.items()}
gains = {name: evaluation.f1_difference(hits[full_name], hits[name], "f1", n_boot=n_boot)
         for name in main_models if name != full_name} if full_name in hits else {}
display(pd.DataFrame(gains).T.rename(columns={"first": "F1 full model", "second": "F1 other"}).round(3))  # noqa: F821
fig = plots.plot_country_f1(main, {"GeoReasoner, paper": 0.9033, "Qwen-VL (untuned), paper": 0.7225})
plots.save_figure(fig, profile, "06_country_f1")

# %% [markdown]
# ## 4. Ablations (GeoReasoner's Table 3) and data quality
#
# The same question for every row, then the paper's order (full > without reasoning tuning >
# untuned) step by step as paired differences of country F1. The stage-1-only model was never
# asked the location question in training, so the last table also asks it (and the full model)
# the reasoning question.

# %%
ablation_names = [n for n in (base_name, "without location tuning (stage 1 only)", "without reasoning tuning (stage 2 only)",
                              full_name) if n in answers]
ablation = evaluation.evaluation_table({n: answers[n] for n in ablation_names}, test, n_boot=n_boot)
ablation_view = evaluation.interval_table(ablation, ["country_accuracy", "country_recall", "country_f1", "city_f1",
                                                     "within_750km", "median_km", "unanswered"])
paper_rows = {"without location tuning (stage 1 only)": "without location tuning", "without reasoning tuning (stage 2 only)":
              "without reasoning tuning", full_name: "full"}
ablation_view["country F1, paper Tab. 3"] = [evaluation.PAPER_ABLATION_F1.get(paper_rows.get(n, ""), {}).get("country", np.nan)
                                             for n in ablation_view.index]
display(ablation_view)  # noqa: F821
# The paper's order, full > without reasoning tuning > untuned base, step by step: each country F1
# difference with its paired bootstrap interval (both models resampled on the same test images);
# full minus base is section 3's.
ablation_steps = {key: evaluation.f1_difference(hits[a], hits[b], "f1", n_boot=n_boot)
                  for key, (a, b) in {"full_minus_no_reasoning": (full_name, "without reasoning tuning (stage 2 only)"),
                                      "no_reasoning_minus_base": ("without reasoning tuning (stage 2 only)", base_name)}.items()
                  if a in hits and b in hits} | ({"full_minus_base": gains[base_name]} if base_name in gains else {})
if ablation_steps:
    display(pd.DataFrame(ablation_steps).T[["first", "second", "difference", "ci_low", "ci_high"]].round(3))  # noqa: F821
own_prompt = {f"{n} · reasoning question": p for n, p in reasons_answers.items()}
own_prompt_table = evaluation.evaluation_table(own_prompt, test, n_boot=n_boot) if own_prompt else None
if own_prompt_table is not None:
    display(evaluation.interval_table(own_prompt_table, ["country_accuracy", "country_recall", "country_f1", "unanswered"]))  # noqa: F821

# %% [markdown]
# **Curated against a random sample**: stage 2 on the curated (highly locatable) split against
# stage 2 on a random sample of its size (most of which passes the threshold too), both on the same
# stage 1. Then **the experiment as the paper ran it**: training sets of one size whose share of
# highly locatable images grows from 0% to 100% (notebook 03); country accuracy with its 95%
# interval and each share's paired difference from 0% (the paper: .63 → .72).

# %%
data_quality = {}
if random_name in hits and full_name in hits:
    data_quality = {f"country_{s}": evaluation.f1_difference(hits[full_name], hits[random_name], s, n_boot=n_boot)
                    for s in ("accuracy", "f1")}
    display(pd.DataFrame(data_quality).T.rename(columns={"first": "curated", "second": "random sample"}).round(3))  # noqa: F821
    curated, sample = splits["train_curated"], splits["train_uncurated"]
    print(f"training images: curated {len(curated)} · random sample {len(sample)}, {sample['curated'].mean():.0%} of it highly "
          f"locatable · mean locatability {curated['locatability'].mean():.2f} vs {sample['locatability'].mean():.2f}")
quality = pd.DataFrame()
if quality_names:
    quality = evaluation.quality_curve({pct: hits[name] for name, pct in quality_names.items()}, n_boot=n_boot)
    n_quality = len(datasets.read_manifest(data / f"split_train_quality_{min(quality_names.values()):03d}.parquet"))
    fig = plots.plot_data_quality(quality, 1 / len(candidates), evaluation.PAPER_DATA_QUALITY, n_quality)
    plots.save_figure(fig, profile, "06_data_quality")
    display(quality.round(3))  # noqa: F821

# %% [markdown]
# ## 5. How far off: accuracy within d km and the error by country
#
# For every distance d, the share of test images placed within d km (an unanswered image misses at
# every d; dotted: the table's thresholds); then the full model's median error per true country
# (darker: larger; hatched: no answer with coordinates).

# %%
km = np.logspace(0, np.log10(20_000), 120)
curve_models = {**main_models, **{n: answers[n] for n in ablation_names if n not in main_models}}
curves = pd.concat([pd.DataFrame({"model": name, "km": km, "share": evaluation.within_km_curve(evaluation.error_km(p, test), km)})
                    for name, p in curve_models.items()])
plots.save_figure(plots.plot_accuracy_within_km(curves), profile, "06_accuracy_within_km")
map_model = full_name if full_name in answers else next(iter(main_models))
per_country = evaluation.errors_by_country(main_models[map_model], test)
fig = plots.plot_error_map(per_country, borders.country_polygons(), f"{map_model}: median error per true country (test cities)")
plots.save_figure(fig, profile, "06_error_map")
per_country.assign(country=per_country["country"].map(conversations.country_name)).sort_values("median_km").round(3)

# %% [markdown]
# ## 6. Beyond the paper: accuracy by locatability
#
# Test images binned by notebook 01's locatability score. Accuracy should rise with it. A model that
# *knows when it cannot know* would also answer less often in the lowest bins; GeoReasoner's prompt
# allows no abstention, so its answered share should stay flat.

# %%
bin_models = [n for n in (full_name, base_name) if n in hits] + [n for n in predictions if "probe, country" in n or "GeoCLIP" in n]
decile_table = pd.concat([evaluation.accuracy_by_bins(test["locatability"], *hits[n], n_bins=locatability_bins, n_boot=n_boot)
                          .assign(model=n) for n in bin_models])
plots.save_figure(plots.plot_locatability_bins(decile_table), profile, "06_locatability_deciles")
decile_table.pivot(index="bin", columns="model", values="accuracy").round(3)

# %% [markdown]
# ## 7. Beyond the paper: are the reasons faithful to the image?
#
# The demo world knows which clues each image shows (script and language of its signs, driving
# side, road lines, plates, vegetation); the clues a model's reasons cite are read with the same
# keyword patterns (`geolib.facts.clues_mentioned`). **Precision**: the share of cited clues that
# are visible (1 − precision is hallucinated); **recall**: the share of visible clues cited. The
# reasons are the `reasons` field, else the raw answer (`reasons_field_read`). References: the demo
# world's own reasoning texts (the ceiling), each model's reasons given to another image (chance).

# %%
faith = evaluation.faithfulness_with_references(reasons_answers, test, n_boot=n_boot)
if faith:
    display(pd.DataFrame(faith).T[list(evaluation.FAITHFULNESS_COLUMNS)].round(3))  # noqa: F821
    by_type = pd.DataFrame({name: {k: v["precision"] for k, v in f["by_type"].items()} for name, f in faith.items()})
    display(by_type.round(3).rename_axis("precision by clue type"))  # noqa: F821
else:
    print("no visible-clue annotation in this pool (real data): faithfulness is measured on the demo world only")

# %% [markdown]
# ## 8. Right and wrong answers, with their reasons
#
# The full model's answer to the evaluation question and the reasons it gives to the reasoning
# question (its raw answer where none could be read), for test images it got right and wrong.

# %%
if full_name in answers:
    picked = inference.answer_examples(answers[full_name], reasons_answers.get(full_name), test, hits[full_name][0],
                                       max(1, n_answers_shown // 2))
    plots.save_figure(plots.plot_answer_examples(picked, columns=min(3, len(picked))), profile, "06_examples")
    with pd.option_context("display.max_colwidth", 300):
        display(picked[["truth", "answer", "correct", "reasons"]])  # noqa: F821

# %% [markdown]
# ## Results

# %%
full_vs_base = gains.get(base_name, {})
summary = {
    "model": spec.model_id, "eval_prompt": conversations.PROMPTS[eval_prompt], "reasons_prompt": conversations.PROMPTS[reasons_prompt],
    "max_new_tokens": max_new_tokens, "reasons_max_new_tokens": reasons_max_new_tokens, "n_boot": n_boot,
    "n_test": len(test), "test_cities": int(test["city"].nunique()), "test_countries": int(test["country"].nunique()),
    "probe_c": best_c, "geoclip_gallery_points": len(gallery), "main_table": evaluation.table_records(main),
    "paper_table1": evaluation.paper_table().to_dict(orient="index"), "country_f1_gain_over": gains,
    "country_f1_relative_gain_over_base": full_vs_base.get("relative"), "ablation": evaluation.table_records(ablation),
    "ablation_reasoning_question": evaluation.table_records(own_prompt_table) if own_prompt_table is not None else {},
    "ablation_differences": ablation_steps, "paper_ablation_f1": evaluation.PAPER_ABLATION_F1, "data_quality": data_quality,
    "paper_data_quality": evaluation.PAPER_DATA_QUALITY, "data_quality_curve": quality.to_dict(orient="records"),
    "coord_source": {n: a["coord_source"].value_counts(normalize=True).to_dict() for n, a in answers.items()},
    "locatability_bins": decile_table.to_dict(orient="records"), "faithfulness": faith,
    "errors_by_country": per_country.to_dict(orient="records"), "seconds": timings,
}
io.write_json(results / "06_evaluation.json", summary)
arm_keys = {base_name: "base", full_name: "full", "without reasoning tuning (stage 2 only)": "no_reasoning",  # docs/results.md
            "without location tuning (stage 1 only)": "no_location", random_name: "uncurated",
            f"linear probe, country ({image_tower})": "probe", "majority (training split)": "majority", reader_name: "reader"}
io.merge_summary(profile, evaluation.summary_keys([main, ablation], arm_keys, closed, quality, differences=ablation_steps))
io.write_parquet(results / "06_predictions.parquet", inference.answers_frame(
    answers, eval_prompt, reasons_answers if reasons_prompt != eval_prompt else None, reasons_prompt, predictions))
print(evaluation.gain_summary(gains, base_name, main, list(predictions)))
pd.Series(timings).round(0).rename("seconds")

# %% [markdown]
# ## Checks

# %%
for name in ("train_curated", "train_uncurated", "val"):
    assert not curation.shared_cities(splits[name], test), f"a test city is in {name}"
assert not curation.shared_cities(train_all, test), "a test city is among the training cities"
assert set(test["image_id"]).isdisjoint(set(train_all["image_id"]) | set(val["image_id"]))
for table_name, table in {"main": main, "ablation": ablation, "reasoning question": own_prompt_table}.items():
    if table is not None:
        evaluation.check_table(table, table_name)
assert all(len(a) == len(test) and a["raw"].map(lambda t: isinstance(t, str)).all() for a in answers.values())
assert full_name in answers, "the full model (both stages) was not evaluated"
for f in faith.values():
    assert 0 <= f["recall"] <= 1 and (np.isnan(f["precision"]) or 0 <= f["precision"] <= 1)
assert (results / "06_evaluation.json").exists() and (results / "06_predictions.parquet").exists()
