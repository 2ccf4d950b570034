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
# # 05 · Location tuning: stage 2 of GeoReasoner, on top of stage 1
#
# **Stage 2** (GeoReasoner §3.2) teaches the reasoning-tuned model to name the place: the
# curated, highly locatable street views of notebook 03, asked
#
# > Which country and city is the image located?
#
# and answered `{'country': …, 'city': …}`. It is a *second* LoRA adapter trained on top of
# the first: stage 1's adapter stays active and frozen while stage 2's learns, and inference
# uses both. (GeoReasoner's released loader loads the second adapter under the first one's name
# and so silently replaces it: docs/known-traps.md. Here the adapters are named
# `reasoning` and `location`, and the checks below prove stage 1 survives.)
#
# For the ablations of notebook 06 this notebook also trains, with the same settings:
#
# * `location_only`: stage 2 on the base model, without reasoning tuning (paper Tab. 3);
# * `location_uncurated`: stage 2 on top of stage 1 on a *random sample* of the training images,
#   as many as the curated split (most of it passes the threshold too: notebook 03's table);
# * `location_quality_000` … `location_quality_100`: the paper's data-quality experiment as it ran
#   it: stage 2 on top of stage 1 on sets of one size whose share of highly locatable images is
#   0%, 25%, 50%, 75% or 100% (notebook 03; the paper: country accuracy .63 → .72).

# %% tags=["parameters"]
profile: str = "demo"  # parameter profile; artifacts go to runs/<profile>/
model: dict = {"model_id": "demo"}  # the vision-language model as geolib.vlm.ModelSpec fields; paper: a hub id at a pinned revision
lora: dict = {"r": 64, "lora_alpha": 128, "lora_dropout": 0.05, "projector": True}  # LoRA of both GeoReasoner stages (peft LoraConfig fields; projector: the projector's layers too)
location_tuning: dict = {"learning_rate": 1e-3, "lr_scheduler_type": "cosine", "warmup_ratio": 0.01, "weight_decay": 0.1, "adam_beta2": 0.95, "num_train_epochs": 10, "effective_batch_size": 16, "per_device_train_batch_size": 16, "max_length": 256, "gradient_checkpointing": False}  # stage 2 and its arms: TrainingArguments fields, the effective batch and the longest sequence in tokens
train_ablations: bool = True  # also train the ablation arms (stage 2 without stage 1; stage 2 on a random sample)
train_quality: bool = True  # also train the data-quality arms (one per train_quality_* set of notebook 03)
n_answers_shown: int = 4  # held-out images whose answers are shown before and after tuning
max_new_tokens: int = 96  # generation limit of the answers shown
arm_workers: int = 2  # arms trained at once, each in its own process with one torch thread (1: one after another here)

# %%
# Setup (not the method): imports, the pool and the curated splits of notebook 03.
import numpy as np
import pandas as pd
from safetensors.torch import load_file

from geolib import answers, conversations, datasets, inference, io, params, paths, plots, runtime, stages, tuning, vlm
from peft import LoraConfig  # after geolib, which readies torchvision for transformers first

pool = datasets.read_manifest(datasets.manifest_path(profile))
data, results = paths.data_dir(profile), paths.results_dir(profile)
splits = {name: datasets.read_manifest(data / f"split_{name}.parquet")
          for name in ("train_curated", "train_uncurated", "test")}
spec = vlm.ModelSpec.coerce(model)
demo = spec.model_id == "demo"
images = stages.study_images(pool, spec, profile)
pd.DataFrame({name: {"images": len(f), "cities": f["city"].nunique(), "countries": f["country"].nunique(),
                     "mean locatability": f["locatability"].mean()} for name, f in splits.items()}).T

# %% [markdown]
# ## The stage-2 data
#
# One conversation per curated training image; the answer is the country's English name and the
# city. The uncurated arm gets the same number of images drawn without regard to locatability.

# %%
arm_stages = {"full (stage 1 + stage 2, curated)": "location"}
if train_ablations:
    arm_stages.update({"without reasoning tuning": "location_only", "stage 2 on a random sample": "location_uncurated"})
quality_sets = sorted(p.stem.removeprefix("split_") for p in data.glob("split_train_quality_*.parquet"))
if train_quality:  # the data-quality experiment (notebook 03 wrote its sets)
    unknown = [q for q in quality_sets if f"location_{q.removeprefix('train_')}" not in stages.LORA_STAGES]
    assert not unknown, f"no stage for {unknown}: notebook 03's quality_shares must be among {stages.QUALITY_SHARES}"
    arm_stages.update({f"{int(q[-3:])}% highly locatable": f"location_{q.removeprefix('train_')}" for q in quality_sets})
arm_inputs = {arm: stages.stage_inputs(profile, stage, spec) for arm, stage in arm_stages.items()}  # as python -m geolib.train
curated = arm_inputs["full (stage 1 + stage 2, curated)"]
for message in curated.conversations[0]["messages"]:
    print(f"{message['role']}: {message['content'][-1]['text']}")
paper = params.read_params_file(params.params_file("paper"))  # GeoReasoner's settings; the demo's are notebook 04's
pd.DataFrame({"GeoReasoner (paper)": pd.Series({**paper["lora"], **paper["location_tuning"]}),
              "this run": pd.Series({**lora, **location_tuning})}).astype(str)

# %% [markdown]
# ## Stage 2 on top of stage 1
#
# The arms are independent, so on a CPU they train side by side (`arm_workers` processes with one
# torch thread each: the small demo model cannot keep two cores busy by itself); the training
# cells then load each finished stage, as a rerun of the notebook does.

# %%
model_, processor = stages.study_model(profile, spec, ["reasoning"])
test = splits["test"].assign(row=stages.pool_rows(pool, splits["test"])).sample(min(n_answers_shown, len(splits["test"])),
                                                                                 random_state=0)
shown = [images[i] for i in test["row"]]
shown = np.stack(shown) if demo else shown
before = inference.generate(model_, processor, shown, conversations.PROMPTS["location"], max_new_tokens=max_new_tokens)
reasoning_before = {k: v.detach().clone() for k, v in model_.named_parameters() if ".reasoning." in k}

# %%
lora_config = LoraConfig(r=lora["r"], lora_alpha=lora["lora_alpha"], lora_dropout=lora["lora_dropout"],
                         target_modules=tuning.lora_targets(projector=lora["projector"]), bias="none", task_type="CAUSAL_LM")
if arm_workers > 1:  # every arm trains side by side, one process each, as `python -m geolib.train --stage <arm>` does;
    # the cells below then find each finished stage (same data, settings and starting weights) and load it
    runtime.in_processes(stages.run_lora_stage, [dict(profile=profile, stage=s, spec=spec, settings=location_tuning,
                                                      lora=lora_config) for s in arm_stages.values()],
                         arm_workers, threads=1, results=False)
stage = tuning.train_stage(model_, processor, curated.conversations, curated.adapter, location_tuning, lora_config,
                           stages.checkpoint_dir(profile, "location"), images=curated.images)
tuning.activate_adapters(stage.model, ["reasoning", "location"], trainable=["location"])  # count what stage 2 trains
counts = vlm.trainable_parameter_report(stage.model)
pd.Series(counts, name="parameters").map("{:,}".format)

# %% [markdown]
# ## The ablation arms (same settings)

# %%
arms = {"full (stage 1 + stage 2, curated)": stage}
for arm, inputs in arm_inputs.items():
    if arm not in arms:
        start_model, _ = stages.study_model(profile, spec, inputs.start)
        arms[arm] = tuning.train_stage(start_model, processor, inputs.conversations, inputs.adapter, location_tuning,
                                       lora_config, stages.checkpoint_dir(profile, arm_stages[arm]), images=inputs.images)
curves = pd.concat([pd.DataFrame(arm.log_history).dropna(subset=["loss"])[["step", "loss"]].assign(arm=name)
                    for name, arm in arms.items() if "highly locatable" not in name])  # the quality arms: notebook 06
fig = plots.plot_stage_losses(curves, "Stage 2: location tuning")
plots.save_figure(fig, profile, "05_location_loss")

# %% [markdown]
# ## Answers on held-out images, before and after stage 2
#
# Test cities were never trained on, so the city can only be right by luck: the country is
# what the model can learn to see; notebook 06 scores the city by distance too.

# %%
after = inference.generate(stage.model, processor, shown, conversations.PROMPTS["location"], max_new_tokens=max_new_tokens)
parsed = [answers.parse_answer(t) for t in after]
table = pd.DataFrame({"truth": [f"{conversations.country_name(c)}, {city}" for c, city in zip(test["country"], test["city"])],
                      "before (stage 1 only)": before, "after (both stages)": after,
                      "parsed": [f"{p.country}, {p.city}" for p in parsed]})
with pd.option_context("display.max_colwidth", 200):
    display(table)  # noqa: F821 (IPython)

# %% [markdown]
# ## Can it fit its own training images?
#
# A recipe that cannot name the country of the images it was tuned on cannot generalise to new
# cities. Closed-set scoring (notebook 06 explains it) on up to 100 of each arm's own training
# images: the share whose true country gets the highest log-likelihood in the answer slot.

# %%
fit = {}
candidates = sorted({conversations.country_name(c) for c in splits["train_curated"]["country"]})
for name, arm in arms.items():
    if "highly locatable" in name:  # the data-quality arms: scored on test cities in notebook 06
        continue
    frame = arm_inputs[name].frame.sample(min(100, len(arm_inputs[name].frame)), random_state=0)
    seen = [images[i] for i in frame["row"]]
    seen = np.stack(seen) if demo else seen
    scores = inference.closed_set_scores(arm.model, processor, seen, candidates)
    fit[name] = inference.closed_set_accuracy(scores, candidates,
                                              [conversations.country_name(c) for c in frame["country"]])["top1"]
pd.Series(fit, name="closed-set top-1 on its own training images").map("{:.1%}".format)


# %%
def loss_change(arm):
    losses = pd.DataFrame(arm.log_history).dropna(subset=["loss"])["loss"]
    k = max(1, len(losses) // 10)
    return float(losses.head(k).mean()), float(losses.tail(k).mean())


summary = {
    "model": spec.model_id, "lora": lora, "settings": location_tuning, "parameters": counts,
    "n_conversations": {arm: len(inputs.conversations) for arm, inputs in arm_inputs.items()},
    "arms": {name: dict(zip(("loss_first", "loss_last"), loss_change(arm)),
                        checkpoint=str(arm.output_dir.relative_to(paths.run_dir(profile))))
             for name, arm in arms.items()},
    "answers_parsed_after": float(np.mean([p.answered for p in parsed])),
    "train_fit_top1": fit,
}
io.write_json(results / "05_location_tuning.json", summary)
arm_keys = {"full (stage 1 + stage 2, curated)": "full", "without reasoning tuning": "no_reasoning",
            "stage 2 on a random sample": "uncurated"}
io.merge_summary(profile, {f"05.{arm_keys[name]}.train_closed_set_top1": value for name, value in fit.items()})
pd.DataFrame(summary["arms"]).T

# %% [markdown]
# ## Checks: the stages stack
#
# Stage 1's weights are exactly what stage 1 saved, in memory and on disk; the model answers
# with both adapters active; reloading the saved adapters gives the same answers.

# %%
trainable = [n for n, p in stage.model.named_parameters() if p.requires_grad]
assert trainable and all("lora_" in n and ".location." in n for n in trainable), "only stage 2's LoRA weights train"
assert list(stage.model.active_adapters) == ["reasoning", "location"]
saved = load_file(stages.checkpoint_dir(profile, "reasoning") / "adapter" / "reasoning" / "adapter_model.safetensors")
now = {k: v for k, v in stage.model.named_parameters() if ".reasoning." in k}
assert len(now) == len(saved) == len(reasoning_before) > 0
assert all(bool((now[k] == reasoning_before[k]).all()) for k in now), "stage 2 changed stage 1's weights"
assert all(bool((now[k].cpu() == saved[k.replace(".reasoning", "")]).all()) for k in now), "stage 1 differs from its file"
reloaded, _ = stages.study_model(profile, spec, stages.STUDY_STAGES["full"])
assert inference.generate(reloaded, processor, shown, conversations.PROMPTS["location"], max_new_tokens=max_new_tokens) == after
for name, arm in arms.items():
    first, last = loss_change(arm)
    assert last < first, f"{name}: loss did not go down ({first:.3f} -> {last:.3f})"
    assert (arm.output_dir / "adapter" / "location" / "adapter_config.json").exists()
if arm_workers > 1:  # the loop loaded what the workers trained: the same data, settings and starting weights
    assert not any(arm.trained for arm in arms.values()), "an arm trained side by side was not found by the notebook"
