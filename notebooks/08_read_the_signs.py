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
# # 08 · Read the signs: locate your own photo, offline
#
# The demo model of notebooks 04-07 knows only the demo world, and the paper profile needs a GPU
# and a model hub. Yet the strongest clue a geo-game player uses is **text**: a shop sign, a
# street name, a phone number. GeoReasoner's reasons quote such text ("the signs are in
# Portuguese"), and models that must read scene text do better when they are given the OCR
# tokens (TextVQA/LoRRA, M4C, LLaVAR). This notebook reads the text of a photo with models that
# ship inside installed packages and says where the photo was taken, and why:
#
# 1. **text boxes**: `rapidocr`'s PP-OCR detector and recogniser (Latin, Chinese, Japanese), and
#    tesseract's script models for Cyrillic, Greek, Arabic, Hebrew, Indic, Thai, Georgian,
#    Armenian, Ethiopic and Korean where the Debian packages are installed (`make setup` installs
#    them);
# 2. **script and language**: the letters give the script; an exact CLDR word (a day, a month, a
#    country's name) or `lingua`, restricted to the languages of that script, gives the language;
# 3. **candidate countries**: place names read (a country's name in any CLDR language, a GeoNames
#    city), the language's territories weighted by their speakers (CLDR), phone prefixes,
#    country-code domains and currency signs, each adding to a score.
#
# The answer is GeoReasoner's (`{"country", "city", "reasons"}`), so `geolib.answers.parse_answer`
# and the metrics of notebook 06 score it unchanged; a photo without text answers "no text found"
# (not answered). **Point `photo_dir` at a folder of your own photos and rerun.**

# %% tags=["parameters"]
profile: str = "demo"  # parameter profile; artifacts go to runs/<profile>/
photo_dir: str = ""  # a folder of your own photos (jpg, png, webp, tif); empty: demo-world test images and the photos installed packages ship
n_demo_photos: int = 4  # demo-world test images with legible signs in the default sample
reader_test_images: int = 0  # test images read for the accuracy on the test split (0: all of them)
restrict_to_study_countries: bool = True  # on the test split, answer only countries of the study's pool (as the other baselines)
use_tesseract: bool = True  # read non-Latin scripts with tesseract where it is installed
evidence_weights: dict = {}  # overrides of geolib.sign_reader.EVIDENCE_WEIGHTS, e.g. language
check_scripts: bool = True  # render CLDR words of every script on signs and score the reading
signs_per_script: int = 4  # signs rendered per script for that check

# %%
# Setup (not the method): imports, the pool and its test split (notebooks 00 and 03).
import time
from pathlib import Path

import numpy as np
import pandas as pd

from geolib import borders, datasets, evaluation, io, ocr, paths, plots, sign_photos, sign_reader

pool = datasets.study_pool(profile)
test = datasets.read_manifest(paths.data_dir(profile) / "split_test.parquet").reset_index(drop=True)
results = paths.results_dir(profile)
timings = {}
print("readable scripts here:", ", ".join(ocr.readable_scripts()))
for script, why in ocr.unreadable_scripts().items():
    print(f"cannot read {script}: {why}")

# %% [markdown]
# ## 1. The evidence and its weights
#
# Each piece of evidence adds its weight to a country's score; the scores are then divided by
# their sum (a share of the evidence, not a calibrated probability). A place name counts most, a
# language least, because a language is spoken in many countries: Spanish text adds
# `1.5 × (share of Spanish speakers living in the country)` to each Spanish-speaking country.
# These are the lines to change to try another weighting (`evidence_weights`).

# %%
weights = {**sign_reader.EVIDENCE_WEIGHTS, **evidence_weights}
pd.Series(weights, name="weight").to_frame()

# %% [markdown]
# ## 2. Your photos (or the default sample)
#
# The default sample: demo-world test images whose signs are legible, and the real photos that
# installed packages ship under a licence that allows showing them (`geoclip`'s Kauai.png; a Madrid
# bus from `ultralytics`, AGPL, only where that package is already installed: it is read in place,
# never copied). Every photo is read at full resolution; a file the reader cannot use gets one
# line that says why.

# %%
start = time.perf_counter()
if photo_dir:
    folder = Path(photo_dir).expanduser()
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"})
    truths = [None] * len(photos)
    assert photos, f"no photos in {folder}"
else:
    legible = test[test["sign_text"].fillna("").str.len() > 0]
    sample = legible.sample(min(n_demo_photos, len(legible)), random_state=0)
    shipped = sign_photos.package_photos()
    photos = sample["image_path"].tolist() + [p["path"] for p in shipped]
    truths = [f"{sign_reader.country_name(c)}, {city}" for c, city in zip(sample["country"], sample["city"])] + [p["place"] for p in shipped]
    print("photos shipped by installed packages:", [f"{p['package']}: {Path(p['path']).name} ({p['licence']})" for p in shipped] or "none")
readings = sign_reader.read_photos(photos, use_tesseract=use_tesseract, weights=evidence_weights)
timings["your photos"] = time.perf_counter() - start
shown = sign_reader.readings_frame(readings)
shown.insert(1, "truth", truths)
with pd.option_context("display.max_colwidth", 160):
    display(shown[["image_id", "truth", "text", "scripts", "languages", "answer", "error", "notes", "seconds"]])  # noqa: F821 (IPython)

# %%
images = [sign_reader.load_photo(p)[0] if r.error is None else None for p, r in zip(photos, readings)]
fig = plots.plot_read_signs(readings, images, borders.country_polygons(), truths)
plots.save_figure(fig, profile, "08_read_signs")

# %% [markdown]
# *The figure:* each photo with the text lines the reader found (boxes; non-Latin text labelled
# by its script), the candidate countries with their share of the evidence, the answer and its
# reasons, and the candidates on a map.

# %% [markdown]
# ## 3. Which scripts can it read?
#
# CLDR words (a country's name, weekday and month names) of one language per script, each set on
# a sign in the script's Noto font (the demo world's fonts), read back. A script without a model
# on this machine is listed as not readable.

# %%
script_check = pd.DataFrame()
if check_scripts:
    start = time.perf_counter()
    script_check = sign_photos.script_reading_check(words_per_script=signs_per_script, use_tesseract=use_tesseract)
    timings["script check"] = time.perf_counter() - start
    per_script = script_check.groupby("script").agg(language=("language", "first"), read=("correct", "sum"),
                                                   signs=("correct", "size"), readable=("readable", "all"))
    display(per_script.T)  # noqa: F821
    print(f"read right: {int(script_check['correct'].sum())} of {len(script_check)} signs")

# %% [markdown]
# ## 4. On the demo world's test split
#
# The reader is a text-only, training-free baseline: it never saw a training image. Scored like
# every model of notebook 06 (accuracy over answered images, recall = answered share), with the
# answers restricted to the study's countries as the trained baselines are (`restrict_to_study_countries`).
# The demo world writes day, month, country and city names on its signs; images without legible
# text are not answered.

# %%
start = time.perf_counter()
countries = sorted(pool["country"].unique()) if restrict_to_study_countries else None
split = test if not reader_test_images or reader_test_images >= len(test) else test.sample(reader_test_images, random_state=0)
split = split.reset_index(drop=True)
split_readings = sign_reader.cached_readings(split["image_path"].tolist(), split["image_id"].tolist(),
                                             paths.cache_dir(profile) / "sign_readings.parquet", countries=countries,
                                             use_tesseract=use_tesseract, weights=evidence_weights)
timings["test split"] = time.perf_counter() - start
reader_pred = sign_reader.predictions_from_cache(split_readings)
table = evaluation.evaluation_table({"sign reader": reader_pred}, split, n_boot=200)
evaluation.interval_table(table, ["country_accuracy", "country_recall", "country_f1", "within_750km", "median_km"])

# %% [markdown]
# Where the signs were legible (the demo world knows their text), did the reader read them?

# %%
legible = split["sign_text"].fillna("").str.len() > 0
read_any = split_readings["n_boxes"].to_numpy() > 0
print(f"images with legible signs: {legible.mean():.0%}; the reader found text on {read_any[legible].mean():.0%} of them "
      f"and on {read_any[~legible].mean():.0%} of the others; "
      f"{np.median(split_readings['seconds']):.2f} s per photo (median)")
pd.crosstab(legible.map({True: "legible signs", False: "no legible signs"}), reader_pred["answered"].map({True: "answered", False: "not answered"}))

# %% [markdown]
# ## Results

# %%
values = evaluation.values(table).loc["sign reader"]
summary = {"n_photos": len(readings), "errors": int(sum(r.error is not None for r in readings)), "weights": weights,
           "scripts_read": script_check.groupby("script")["correct"].sum().to_dict() if len(script_check) else {},
           "script_signs_read": int(script_check["correct"].sum()) if len(script_check) else None,
           "script_signs": len(script_check), "test_images": len(split), "table": evaluation.table_records(table),
           "seconds_per_photo": float(np.median(split_readings["seconds"])), "seconds": timings}
io.write_json(results / "08_read_the_signs.json", summary)
io.merge_summary(profile, {"08.reader.country_acc": values["country_accuracy"], "08.reader.answered": values["country_recall"]})
pd.Series(timings).round(1).rename("seconds")

# %% [markdown]
# ## Checks

# %%
assert len(readings) == len(photos) and all(r.answer for r in readings), "every photo gets an answer"
assert all((r.error is None) == (r.size is not None) for r in readings)
for r in readings:
    scores = [c.score for c in r.candidates]
    assert all(0 < v <= 1 for v in scores) and scores == sorted(scores, reverse=True) and sum(scores) <= 1 + 1e-3
no_text = split_readings["n_boxes"].to_numpy() == 0
assert not reader_pred["answered"].to_numpy()[no_text].any(), "a photo without text is never answered"
assert 0 <= values["country_accuracy"] <= 1 or np.isnan(values["country_accuracy"])
assert 0 <= values["country_recall"] <= 1
if len(script_check):
    assert script_check.loc[script_check["script"].isin(["Latn", "Hans", "Jpan"]), "correct"].mean() >= 0.75, "rapidocr's scripts"
assert (results / "08_read_the_signs.json").exists()
