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
# # 04 · Reasoning tuning: stage 1 of GeoReasoner
#
# GeoReasoner (§3.2) tunes a large vision-language model in two LoRA stages. **Stage 1,
# reasoning tuning**, teaches it *how* people locate a street view: each training example is an
# image from a geo-guessing game with the players' clues, asked as
#
# > Which country is the image located? Explain the reason.
#
# and answered `{'country': …, 'reasons': …}`. Stage 2 (notebook 05) then adds a second adapter
# for country *and* city on the curated street views. The paper tunes Qwen-VL with LoRA
# (r = 64, α = 16) on the language model's attention and MLP projections, 112.19M trainable
# parameters.
#
# * **paper profile**: Qwen2.5-VL-7B-Instruct (the Qwen-VL-Chat of the paper needs remote code and
#   an old transformers), GeoReasoner's released reasoning data, the paper's settings.
# * **demo / ci profiles**: a small LLaVA-style model whose vision tower is the real, frozen
#   ImageNet EfficientNet-Lite0 and whose small Qwen2 language model starts from random weights;
#   the clue corpus is the demo world's reasoning texts of the *training* cities.
#
# Because the demo language model starts from random weights, this notebook first gives it a
# **base training** (demo only, marked below): captions of what is in the scene (never the
# country or city) and text-only world knowledge (country facts and city names, shown with a
# blank image), so that no image is ever paired with its place before the stages. It stands in
# for the pretraining a real base model already has. Both LoRA stages then adapt it exactly as
# they adapt the paper's model.

# %% tags=["parameters"]
profile: str = "demo"  # parameter profile; artifacts go to runs/<profile>/
model: dict = {"model_id": "demo"}  # the vision-language model as geolib.vlm.ModelSpec fields; paper: a hub id at a pinned revision
lora: dict = {"r": 64, "lora_alpha": 128, "lora_dropout": 0.05, "projector": True}  # LoRA of both GeoReasoner stages (peft LoraConfig fields; projector: the projector's layers too)
reasoning_tuning: dict = {"learning_rate": 1e-3, "lr_scheduler_type": "cosine", "warmup_ratio": 0.01, "weight_decay": 0.1, "adam_beta2": 0.95, "num_train_epochs": 10, "effective_batch_size": 16, "per_device_train_batch_size": 16, "max_length": 256, "gradient_checkpointing": False}  # stage 1: TrainingArguments fields, the effective batch and the longest sequence in tokens
base_training: dict = {"learning_rate": 1e-3, "lr_scheduler_type": "cosine", "warmup_ratio": 0.05, "weight_decay": 0.01, "adam_beta2": 0.98, "num_train_epochs": 3, "effective_batch_size": 32, "per_device_train_batch_size": 32, "max_length": 256, "gradient_checkpointing": False}  # demo only: the base training's settings (a full fine-tune from random weights)
tokenizer_vocab_size: int = 3000  # demo: vocabulary of the byte-level BPE trained on the study's texts
base_guesses: int = 4000  # demo: base-training turns that answer the location question, blank image, with a guessed place
clue_corpus: str = ""  # paper: GeoReasoner's reasoning data (its SFT JSON) under the data folder; empty: the demo world's reasoning texts
n_answers_shown: int = 4  # held-out images whose answers are shown before and after tuning
max_new_tokens: int = 96  # generation limit of the answers shown

# %%
# Setup (not the method): imports, the pool and the split by city from notebooks 00-03.
import numpy as np
import pandas as pd

from geolib import answers, chains, conversations, curation, datasets, inference, io, params, paths, plots, stages, tuning, vlm
from peft import LoraConfig  # after geolib, which readies torchvision for transformers first

pool = datasets.study_pool(profile)  # with each image's row and its split by city (notebook 02)
data, results = paths.data_dir(profile), paths.results_dir(profile)
train_pool, test_pool = pool[pool["split"] == "train"], pool[pool["split"] == "test"]
spec = vlm.ModelSpec.coerce(model)
demo = spec.model_id == "demo"
print(f"model: {spec.model_id}; training cities: {train_pool['city'].nunique()} ({len(train_pool)} images)")

# %% [markdown]
# ## The stage-1 data: images with reasons
#
# Demo: every image of the training cities with the demo world's reasoning text (what a player
# would say: the script on the signs, the driving side, the vegetation, and the country it points
# to). No image of a validation or test city is ever trained on, in any stage.

# %%
inputs = stages.stage_inputs(profile, "reasoning", spec, clue_corpus)  # the same call as python -m geolib.train
stage1, images = inputs.conversations, inputs.images
print(len(stage1), "conversations; one of them:")
for message in stage1[0]["messages"]:
    print(f"  {message['role']}: {message['content'][-1]['text']}")

# %% [markdown]
# ## The demo's language model: tokenizer and base training (demo only)
#
# *Not part of the method.* A real base model arrives pretrained; the demo's does not, so it
# first learns to look, to describe and to talk. Its tokenizer is a byte-level BPE trained on
# every text the study trains on (captions, both stages' answers, GRE's chains of notebook 07).
# Its base training is a full fine-tune of the language model and the projector (the image tower
# stays frozen) on two kinds of conversation:
#
# * captions of the training cities' images that never name a country or city;
# * text-only world knowledge shown with a blank image: each country's sourced facts (driving
#   side, sign languages and scripts, climate) and its city names, written as Python dicts, and
#   questions whose answer has to *name* the country ("Which country is Osaka in?", "Which
#   country fits these clues: …?"). A real language model knows these words and facts; without
#   them the country names and the answer syntax would be tokens the demo model never produced
#   where a question does not give them away, and a LoRA adapter (which cannot change the
#   embeddings) could hardly learn to say them;
# * the location question asked with a blank image, answered in GeoReasoner's format with a place
#   drawn at random from the world's cities: a pretrained instruct model answers in the asked
#   format and guesses when it cannot tell (the paper's untuned model answers 95% of the time);
#   the demo's base learns the format and a flat prior.
#
# No image is ever paired with a place here: that is what the two stages teach.

# %%
if demo:
    base_convs = (conversations.base_training_conversations(train_pool, image_column="row")
                  + conversations.knowledge_conversations(pool) + conversations.guess_conversations(pool, base_guesses))
    corpus_texts = conversations.conversation_texts(
        base_convs + stage1 + conversations.make_conversations(train_pool, "location", image_column="row")
        + chains.chain_conversations(train_pool, image_column="row")
    ) + list(conversations.PROMPTS.values())
    processor = stages.study_tokenizer(profile, corpus_texts, tokenizer_vocab_size)
    print(f"tokenizer: {len(processor)} tokens; base training on {len(base_convs)} conversations, e.g.")
    for conv in (base_convs[0], base_convs[-1]):
        print(f"  {conv['messages'][0]['content'][-1]['text']} -> {conv['messages'][1]['content'][0]['text']}")
    base_model, _ = vlm.build_model(spec, processor=processor)
    # the tower's tokens, standardised per channel with the training images' statistics (what
    # tells street views apart; without it the small model learns to ignore the image)
    vlm.standardize_image_features(base_model, images[train_pool["row"].to_numpy()])
    base = tuning.train_stage(base_model, processor, base_convs, "base", base_training, None,  # None: no LoRA, all trains
                              stages.checkpoint_dir(profile, "base"), images=images)
    fig = plots.plot_training_curve(pd.DataFrame(base.log_history).dropna(subset=["loss"]), "step", ["loss"],
                                    "Demo base training (captions; demo only)")
    plots.save_figure(fig, profile, "04_base_training_loss")

# %% [markdown]
# ## Stage 1: a LoRA adapter named `reasoning`
#
# GeoReasoner's settings (`params/paper.yaml`) beside this run's. The demo keeps the paper's rank
# (64; on the demo's 128-wide language model rank 16 stayed at the prior, see
# `docs/known-traps.md`) with α = 2r, and adapts the rest to a small model and a few thousand
# examples on a CPU: a learning rate 100× higher (a tiny model, few steps), 10 epochs instead of 5
# and an effective batch of 16 instead of 80 (more optimiser steps from a small data set), and
# LoRA on the projector too (LLaVA trains its projector when it fine-tunes; the paper's LoRA does
# not). Scheduler, warm-up, weight decay, Adam β2 and dropout are the paper's.

# %%
paper = params.read_params_file(params.params_file("paper"))
pd.DataFrame({"GeoReasoner (paper)": pd.Series({**paper["lora"], **paper["reasoning_tuning"]}),
              "this run": pd.Series({**lora, **reasoning_tuning})}).astype(str)

# %%
model_, processor = stages.study_model(profile, spec)  # the untuned base (demo: after base training)
shown = test_pool.sample(min(n_answers_shown, len(test_pool)), random_state=0)
shown_images = [images[i] for i in shown["row"]] if images is not None else shown["image_path"].tolist()
before = inference.generate(model_, processor, np.stack(shown_images) if demo else shown_images,
                      conversations.PROMPTS["reasoning"], max_new_tokens=max_new_tokens)

# %%
# a LoRA on the language model's attention and MLP projections (never the vision tower), and
# on the projector where `lora["projector"]` says so
lora_config = LoraConfig(r=lora["r"], lora_alpha=lora["lora_alpha"], lora_dropout=lora["lora_dropout"],
                         target_modules=tuning.lora_targets(projector=lora["projector"]), bias="none", task_type="CAUSAL_LM")
stage = tuning.train_stage(model_, processor, stage1, inputs.adapter, reasoning_tuning, lora_config,
                           stages.checkpoint_dir(profile, "reasoning"), images=images)
tuning.activate_adapters(stage.model, ["reasoning"], trainable=["reasoning"])  # count what stage 1 trains
counts = vlm.trainable_parameter_report(stage.model)
pd.Series(counts, name="parameters").map("{:,}".format)

# %% [markdown]
# The paper reports 112.19M LoRA parameters for Qwen-VL-7B at r = 64; the count above is this
# profile's (the demo's language model is 4 layers of width 128, so its adapter is small).

# %%
history = pd.DataFrame(stage.log_history)
losses = history.dropna(subset=["loss"])
fig = plots.plot_training_curve(losses, "step", ["loss"], "Stage 1: reasoning tuning")
plots.save_figure(fig, profile, "04_reasoning_loss")

# %% [markdown]
# ## Answers on held-out images, before and after
#
# Images of test cities, never trained on. Before stage 1 the base model has never been asked
# this question; after it, it answers in GeoReasoner's format with a country and reasons.

# %%
after = inference.generate(stage.model, processor, np.stack(shown_images) if demo else shown_images,
                     conversations.PROMPTS["reasoning"], max_new_tokens=max_new_tokens)
table = pd.DataFrame({"truth": [conversations.country_name(c) for c in shown["country"]],
                      "before": before, "after": after,
                      "after, parsed country": [answers.parse_answer(t).country for t in after]})
with pd.option_context("display.max_colwidth", 200):
    display(table)  # noqa: F821 (IPython)

# %%
first = float(losses["loss"].head(max(1, len(losses) // 10)).mean())
last = float(losses["loss"].tail(max(1, len(losses) // 10)).mean())
summary = {
    "model": spec.model_id, "lora": lora, "settings": reasoning_tuning,
    "n_conversations": len(stage1), "parameters": counts,
    "loss_first": first, "loss_last": last, "steps": int(history["step"].max()),
    "train_samples_per_second": float(history["train_samples_per_second"].dropna().iloc[-1])
    if "train_samples_per_second" in history and history["train_samples_per_second"].notna().any() else None,
    "answers_parsed_after": float(np.mean([answers.parse_answer(t).answered for t in after])),
}
io.write_json(results / "04_reasoning_tuning.json", summary)
{k: v for k, v in summary.items() if k != "settings"}

# %% [markdown]
# ## Checks

# %%
trainable = [n for n, p in stage.model.named_parameters() if p.requires_grad]
assert trainable and all("lora_" in n and ".reasoning." in n for n in trainable), "only stage 1's LoRA weights train"
assert counts["trainable"] == counts["lora"] > 0
assert last < first, f"stage-1 loss did not go down: {first:.3f} -> {last:.3f}"
assert (stages.checkpoint_dir(profile, "reasoning") / "adapter" / "reasoning" / "adapter_config.json").exists()
assert not curation.shared_cities(train_pool, test_pool)
