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
# # 07 · GRE: reasoning chains and reinforcement learning with a distance reward
#
# GRE Suite (Wang et al., NeurIPS 2025, §3) teaches a vision-language model to *reason its way*
# to coordinates. Every answer is a structured chain,
#
# ```
# <think>
# 1. Scene and architecture: …
# 2. Text and language: …
# 3. Vegetation and terrain: …
# 4. Transport and road markings: …
# Conclusion: …
# </think>
# <answer>latitude, longitude</answer>
# ```
#
# and training has two parts:
#
# 1. **cold-start SFT** on reasoning chains (GRE30K-CoT), so the model learns the format and the
#    kind of evidence to look for;
# 2. **GRPO** (group relative policy optimisation): for each image the model samples a group of
#    chains, each is scored by a **format reward** and a **distance reward**
#    r = 2 / (1 + exp(d/θ)), the rewards are normalised within the group (the advantage), and the
#    policy takes a clipped policy-gradient step with a KL penalty towards the cold-start model.
#
# GREval-Bench then scores the answers per scene type and distance granularity (% within
# 1/25/200/750/2500 km: street, city, region, country, continent). GRE's ablation compares the
# model after SFT alone with SFT + GRPO; this notebook does the same.
#
# * **paper profile**: Qwen2.5-VL-7B-Instruct, GRE30K-CoT chains, GRE30K-Seed RL prompts, GRE's RL
#   settings (8 generations per prompt, KL β = 0.04, completions up to 2048 tokens).
# * **demo / ci profiles**: the demo's small LLaVA-style model after its base training (notebook
#   04), chains written from each image's *visible* clues in the demo world, GRPO on 2 CPU cores.
#
# In this study GRE starts from the untuned base model (not from GeoReasoner's stages of
# notebooks 04-05), as GRE starts from Qwen2.5-VL.

# %% tags=["parameters"]
profile: str = "demo"  # parameter profile; artifacts go to runs/<profile>/
model: dict = {"model_id": "demo"}  # the vision-language model as geolib.vlm.ModelSpec fields; paper: a hub id at a pinned revision
lora: dict = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "projector": True}  # the cold start's LoRA: GeoReasoner's of notebooks 04 and 05 (peft LoraConfig fields; projector: the projector's layers too)
gre_sft: dict = {"learning_rate": 3e-3, "lr_scheduler_type": "cosine", "warmup_ratio": 0.01, "weight_decay": 0.1, "adam_beta2": 0.95, "num_train_epochs": 2, "effective_batch_size": 16, "per_device_train_batch_size": 16, "max_length": 320, "gradient_checkpointing": False}  # the cold start: TrainingArguments fields, the effective batch and the longest sequence in tokens
gre_grpo: dict = {"num_generations": 8, "beta": 0.04, "max_completion_length": 128, "per_device_train_batch_size": 16, "gradient_accumulation_steps": 1, "max_steps": 100, "learning_rate": 2e-4, "lr_scheduler_type": "constant", "temperature": 1.0, "loss_type": "grpo", "scale_rewards": "group", "gradient_checkpointing": False, "logging_steps": 1, "save_steps": 25}  # GRPO: TRL GRPOConfig fields
grpo_lora: dict = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "projector": False}  # GRPO's LoRA on the cold-start model (peft LoraConfig fields)
seeds: list[int] = [0, 1, 2]  # training seeds: the cold start and GRPO run once per seed, all answer the same test images (each seed's model stays in memory until then)
theta_schedule: list[float] = [5000.0, 2500.0, 750.0, 200.0, 25.0]  # θ of the distance reward in km, coarse to fine
theta_window: int = 20  # GRPO steps whose mean distance reward decides a move to the next θ
theta_advance_at: float = 0.6  # mean distance reward over the window at which θ moves to the next stage
gre_corpus: str = ""  # paper: GRE30K-CoT JSON (cold-start chains) under the data folder; empty: chains from the demo world's visible clues
gre_rl_prompts: str = ""  # paper: GRE30K-Seed JSONL (RL prompts with coordinates) under the data folder; empty: the training split
max_test_images: int = 0  # evaluate a random sample of this many test images (0: the whole test split)
chain_max_new_tokens: int = 160  # generation limit of a chain at evaluation (a demo chain is 82-120 tokens)
generation_batch_size: int = 64  # images per batched generation
n_boot: int = 1000  # bootstrap replicates for intervals
n_answers_shown: int = 3  # test images whose chains are shown
num_threads: int = 1  # torch CPU threads (1 is fastest for the small demo models on a shared CPU; 0 keeps torch's default)
seed_workers: int = 3  # seeds trained at once, each in its own process with num_threads threads (1: one after another here)

# %%
# Setup (not the method): imports, the pool and the split by city from notebooks 00-03.
import time

import numpy as np
import pandas as pd
import torch

from geolib import chains, corpora, curation, datasets, gre, gre_scores, grpo, io, params, paths, plots, rewards, runtime, stages, tuning, vlm
from peft import LoraConfig  # after geolib, which readies torchvision for transformers first

if num_threads:
    torch.set_num_threads(num_threads)

pool = datasets.study_pool(profile)  # with each image's row and its split by city (notebook 02)
data, results = paths.data_dir(profile), paths.results_dir(profile)
train_pool, test_pool = pool[pool["split"] == "train"], pool[pool["split"] == "test"]
spec = vlm.ModelSpec.coerce(model)
demo = spec.model_id == "demo"
images = stages.study_images(pool, spec, profile)  # demo: cached tower features pooled to the model's grid (N, 4, 1280); paper: image paths
has_clues = "clues" in pool.columns and pool["clues"].notna().all()  # the demo world lists each image's visible clues
print(f"model: {spec.model_id}; {len(train_pool)} training images ({train_pool['city'].nunique()} cities), "
      f"{len(test_pool)} test images ({test_pool['city'].nunique()} other cities)")

# %% [markdown]
# ## 1. Reasoning chains
#
# GRE's chains walk through the evidence in a fixed order: scene and architecture, text and
# language, vegetation and terrain, transport and road markings, then a conclusion and the
# coordinates (latitude first, decimal degrees, south and west negative). On the demo world the
# chain of an image is written only from the clues that are *visible* in it (the pool's `clues`
# column, `geolib.chains.build_chain`): a step with nothing visible says so, and the chain never
# mentions a clue that the image does not show. This is what makes the chain-quality score of
# section 5 meaningful. The paper profile reads GRE30K-CoT's own chains.
#
# The prompt is this study's (GRE's is not released); it names the steps and the answer format
# that the rewards check:

# %%
print(chains.GRE_PROMPT)

# %%
if gre_corpus:
    cot, report = corpora.load_gre30k_cot(paths.real_data_root() / gre_corpus)
    print(report)
    cold_start = chains.gre30k_conversations(cot, prompt=chains.GRE_PROMPT)  # one prompt for SFT, GRPO and evaluation
    sft_images = None  # the conversations' image keys are paths
else:
    cold_start = chains.chain_conversations(train_pool, image_column="row")
    sft_images = images
print(f"{len(cold_start)} cold-start conversations; one of them"
      + (f" (visible clues: {list(pool['clues'].iloc[cold_start[0]['image']])})" if sft_images is not None and has_clues else "")
      + ":\n")
print(cold_start[0]["messages"][1]["content"][0]["text"])

# %% [markdown]
# ## 2. Rewards
#
# GRPO needs a scalar reward per sampled chain. GRE uses two, summed:
#
# * **format**: 1 when the completion is exactly `<think>…</think>` then `<answer>…</answer>`, else 0;
# * **distance**: r = 2 / (1 + exp(d/θ)) for the great-circle error d (km) of the answered
#   coordinates; 1 at d = 0, 2/(1+e) ≈ 0.538 at d = θ, towards 0 far away; an answer without
#   valid coordinates scores 0.
#
# GRE's released reward swaps latitude and longitude, loses the sign of `…°S`/`…°W` answers and
# leaves θ blank. Here `(lat, lon)` is read in the right order and sign (`geolib.answers.parse_answer`),
# which the hand-checked answers below show for an image in Sydney:

# %%
sydney = (-33.8688, 151.2093)
hand_checked = {
    "right": "<think>Cars keep left; eucalyptus.</think><answer>-33.8688, 151.2093</answer>",
    "Melbourne (713 km off)": "<think>Cars keep left.</think><answer>-37.8136, 144.9631</answer>",
    "hemisphere letters": "<think>Cars keep left.</think><answer>33.8688°S, 151.2093°E</answer>",
    "latitude and longitude swapped": "<think>Cars keep left.</think><answer>151.2093, -33.8688</answer>",
    "sign of the latitude lost": "<think>Cars keep left.</think><answer>33.8688, 151.2093</answer>",
    "no <think> block": "<answer>-33.8688, 151.2093</answer>",
    "cut off (no answer)": "<think>Cars keep left; the signs",
}
pd.DataFrame({
    "format reward": [rewards.format_reward(t) for t in hand_checked.values()],
    "distance reward, θ = 750 km": [rewards.gre_reward(t, *sydney, theta_km=750.0) for t in hand_checked.values()],
    "distance reward, θ = 25 km": [rewards.gre_reward(t, *sydney, theta_km=25.0) for t in hand_checked.values()],
}, index=list(hand_checked)).round(3)

# %% [markdown]
# ### The θ schedule (documented here, blank in GRE's code)
#
# A large θ pays for a coarse answer (the right continent), so early in RL, when most samples are
# far off, a sample that is less wrong still earns more than its group and gets a gradient. A
# small θ only pays for the right city. The study therefore **anneals θ from coarse to fine**:
# training starts at the first θ and moves to the next when the mean distance reward over the last
# `theta_window` steps reaches `theta_advance_at` (a single answer earns 0.6 at d ≈ 0.85 θ, so a
# mean of 0.6 says that typical errors are already below θ). θ never goes back, the last stage
# stays until the end, and the schedule is saved with every checkpoint so that a resumed run
# continues at the same θ (`geolib.rewards.ThetaSchedule`).
#
# The first θ, 5,000 km, is one a model can reach by telling the hemisphere and continent: on the
# demo world the best *single* answer for every test image (a point near Istanbul) earns 0.54 at
# θ = 5,000 km and 0.33 at 2,500 km, so the first advance asks for more than one fixed guess, and
# at 2,500 km only a model that places most images within about 2,000 km advances again.

# %%
schedule = rewards.ThetaSchedule(stages=tuple(theta_schedule), window=theta_window, advance_at=theta_advance_at)
print(schedule)  # each seed's run gets a fresh copy of this schedule
fig = plots.plot_distance_reward(schedule.stages)
plots.save_figure(fig, profile, "07_distance_reward")

# %% [markdown]
# ## 3. Cold-start SFT: a LoRA adapter named `gre_sft`
#
# The chains of the training images, trained with the same LoRA stage as GeoReasoner's stages
# (`geolib.tuning.train_stage`, loss on the assistant's tokens only) and GeoReasoner's LoRA (`lora`).
# GRE's stage-1 script is not public, so the paper profile keeps GeoReasoner's settings with room
# for long chains (`max_length` 4096); the demo's are notebook 04's stage for two epochs at a 3×
# higher learning rate (about 220 steps of 16 chains; a demo chain is 82-120 tokens after the 4
# image tokens and the prompt's 83, well inside `max_length`).
#
# *Demo only:* the demo's base training (notebook 04: captions that never name a place, and
# text-only world knowledge) never wrote coordinates' digits or `<think>`/`<answer>`, and the
# (tied) embedding rows of those tokens were pushed down all through it. A LoRA on the projections alone
# climbs out of that slowly (a loss near 2.5 after an epoch, and sampled chains that never reach an
# answer). So the demo's cold start also trains the embedding rows of the tokens the chains are
# written in (peft's `trainable_token_indices`); a real base model writes all of them already.

# %%
paper = params.read_params_file(params.params_file("paper"))  # GRE's settings where its paper or scripts give them
pd.DataFrame({"paper": pd.Series({**paper["lora"], **paper["gre_sft"]}), "this run": pd.Series({**lora, **gre_sft})}).astype(str)

# %% [markdown]
# ## 4. GRPO with the format and distance rewards
#
# TRL's `GRPOTrainer` does the RL step; `geolib.grpo.train_grpo` gives it the two rewards (the
# distance one reads θ from the schedule and updates it after each batch), and writes the reward,
# KL and θ curves as it goes. The cold-start adapter is merged into the weights first and GRPO
# trains a new LoRA on top, so TRL's reference policy for the KL term (the model with its adapter
# disabled) is exactly the SFT model, as in GRE. The settings beside GRE's:

# %%
# "paper": GRE's RL settings from its scripts (8 generations per prompt, KL β 0.04, completions up
# to 2048 tokens, 8 completions per device × 2 accumulation steps, one epoch, a checkpoint every
# 800 steps, data seed 42); the learning rate (TRL's default), the temperature, the loss and a LoRA
# (GeoReasoner's r 64, α 16) instead of GRE's full fine-tune on 8 GPUs are this study's choices.
# The demo: 8 generations for each of 2 images a step, completions up to 128 tokens, a learning
# rate for a small model and 100 steps (about 350 s a seed on one core).
pd.DataFrame({"paper": pd.Series({**paper["grpo_lora"], **paper["gre_grpo"]}),
              "this run": pd.Series({**grpo_lora, **gre_grpo})}).astype(str)

# %%
if gre_rl_prompts:
    seed_prompts, report = corpora.load_gre30k_seed(paths.real_data_root() / gre_rl_prompts)
    print(report)
    prompts = grpo.grpo_dataset(seed_prompts, image_column="image_path")
else:  # the training split: no validation or test city is ever seen in RL either
    prompts = grpo.grpo_dataset(train_pool, image_column="row" if demo else "image_path")
print(f"{len(prompts)} RL prompts; each step samples {gre_grpo['num_generations']} chains for each of "
      f"{gre_grpo['per_device_train_batch_size'] // gre_grpo['num_generations']} images")

# %% [markdown]
# ### The runs: cold start, then GRPO, once per seed
#
# One seed is one draw of everything random in training (LoRA's initial weights, the order of
# the examples, GRPO's samples). Each seed trains its own cold start and its own GRPO run, and
# both models of every seed answer the same test images, so GRPO's gain can be judged against
# the spread between seeds (section 5).
#
# The seeds are independent, so on a CPU they train side by side: `seed_workers` processes, each
# with one torch thread (the small demo model cannot keep two cores busy on its own), run
# `geolib.gre.train_seed` (the cold start with `tuning.train_stage`, then `grpo.train_grpo`); the loop
# below then calls the same function, which finds each finished run (same data, settings and
# starting weights) and loads it, as a rerun of the notebook does. With `seed_workers: 1` the loop
# trains them itself, one after another.

# %%
# LoRA on the language model's attention and MLP projections (and the projector where it says so)
sft_lora = LoraConfig(r=lora["r"], lora_alpha=lora["lora_alpha"], lora_dropout=lora["lora_dropout"],
                      target_modules=tuning.lora_targets(projector=lora["projector"]), bias="none", task_type="CAUSAL_LM")
rl_lora = LoraConfig(r=grpo_lora["r"], lora_alpha=grpo_lora["lora_alpha"], lora_dropout=grpo_lora["lora_dropout"],
                     target_modules=tuning.lora_targets(projector=grpo_lora["projector"]), bias="none", task_type="CAUSAL_LM")
schedules = {s: rewards.ThetaSchedule(stages=tuple(theta_schedule), window=theta_window, advance_at=theta_advance_at)
             for s in seeds}
jobs = {s: dict(profile=profile, spec=spec, seed=s, cold_start=cold_start, sft_settings=gre_sft, sft_lora=sft_lora,
                prompts=prompts, theta_schedule=schedules[s], grpo_settings=gre_grpo, grpo_lora=rl_lora, sft_images=sft_images,
                images=images if demo else None,
                train_chain_tokens=demo)  # demo: and the embedding rows of the chains' tokens (see above)
        for s in seeds}
seconds = {}
if seed_workers > 1:  # the seeds train side by side, one process each; the loop below then loads them
    seconds = dict(zip(seeds, runtime.in_processes(gre.train_seed, list(jobs.values()), seed_workers,
                                                   threads=num_threads, results=False)))
sft_runs, grpo_runs, sft_trainable = {}, {}, {}
for s, job in jobs.items():
    t0 = time.perf_counter()
    run = gre.train_seed(**job)  # the cold start, then GRPO on top of it
    sft_runs[s], grpo_runs[s], sft_trainable[s], processor = run.sft, run.grpo, run.trainable, run.processor
    seconds.setdefault(s, time.perf_counter() - t0)
sft_losses = pd.concat([pd.DataFrame(r.log_history).dropna(subset=["loss"]).assign(seed=s) for s, r in sft_runs.items()])
curves = pd.concat([r.curves().assign(seed=s) for s, r in grpo_runs.items()], ignore_index=True)
fig = plots.plot_training_curve(sft_losses.pivot_table(index="step", columns="seed", values="loss").add_prefix("seed ")
                                .reset_index(), "step", [f"seed {s}" for s in seeds], "GRE cold start: SFT on reasoning chains")
plots.save_figure(fig, profile, "07_cold_start_loss")
fig = plots.plot_grpo_curves(curves)
plots.save_figure(fig, profile, "07_grpo_curves")

# %% [markdown]
# How each run went: the reward and the KL at the start and the end (means over the first and the
# last tenth of the steps), θ reached, the time. The total reward is format + distance at the
# *current* θ, so it can drop when θ tightens; the batch's median error (km) compares across θ.

# %%
runs = {}
for s, part in curves.groupby("seed"):
    tenth = max(1, len(part) // 10)
    head, tail = part.head(tenth), part.tail(tenth)
    runs[s] = {
        "steps": int(part["step"].max()), "trained_now": grpo_runs[s].trained,
        **{f"{col}_{end}": float(frame[col].mean()) for col in ("reward", "format_reward", "distance_reward", "median_km", "kl")
           for end, frame in (("start", head), ("end", tail))},
        "kl_max": float(part["kl"].max()),
        "theta_km_reached": float(schedules[s].theta), "theta_stage": int(schedules[s].stage),
        "theta_changes_at_step": [int(x) for x in part["step"][part["theta_km"].diff().fillna(0) != 0]],
        "seconds (cold start + GRPO)": round(seconds[s], 1), "grpo_train_runtime_s": grpo_runs[s].metrics.get("train_runtime"),
    }
pd.DataFrame(runs).rename(columns=lambda s: f"seed {s}")

# %% [markdown]
# ## 5. Evaluation: GREval-style scores on the test cities
#
# Every test image (cities never trained on, in SFT or RL) is answered greedily twice per seed:
# by the cold-start model (**SFT only**: the GRPO adapter disabled, which is exactly the KL
# reference) and by **SFT + GRPO**. The answer's coordinates are read from `<answer>`; an answer
# without valid coordinates counts as a miss at every distance and its share is reported. The
# tables pool the seeds' answers (each image once per seed); their intervals are 95% percentile
# bootstraps over those answers (`geolib.metrics.bootstrap_ci`). GRE's ablation, SFT + GRPO
# minus SFT, is judged by a paired bootstrap over *images* that keeps each image's answers of all
# seeds and both models together (`geolib.gre_scores.paired_within_difference`).

# %%
eval_pool = test_pool
if max_test_images and len(test_pool) > max_test_images:
    eval_pool = test_pool.sample(max_test_images, random_state=0).sort_values("row")
eval_images = np.asarray(images)[eval_pool["row"].to_numpy()] if demo else [images[i] for i in eval_pool["row"]]
t0 = time.perf_counter()
# "SFT only": the GRPO policy with its adapter disabled, exactly the cold-start model (the KL reference)
if seed_workers > 1:  # each seed's pair answers in its own process, loading the finished runs
    by_seed = dict(zip(seeds, runtime.in_processes(gre.seed_answers, [dict(
        job=jobs[s], images=eval_images, max_new_tokens=chain_max_new_tokens, batch_size=generation_batch_size)
        for s in seeds], seed_workers, threads=num_threads)))
else:
    by_seed = {s: gre.answer_both(grpo_runs[s].model, processor, eval_images, chain_max_new_tokens, generation_batch_size)
               for s in seeds}
eval_seconds = time.perf_counter() - t0
models = ["SFT only", "SFT + GRPO"]
errors_by_seed = {name: np.stack([gre_scores.answer_errors_km(by_seed[s][name], eval_pool) for s in seeds]) for name in models}
answers = {name: [a for s in seeds for a in by_seed[s][name]] for name in models}  # seeds one after another
answered_pool = pd.concat([eval_pool] * len(seeds), ignore_index=True)
errors = {name: errors_by_seed[name].ravel() for name in models}  # km, aligned with answered_pool; NaN: no coordinates
scores = pd.concat([gre_scores.evaluate_gre(answers[name], answered_pool, n_boot=n_boot).assign(model=name) for name in models],
                   ignore_index=True)
io.write_parquet(results / "07_gre_answers.parquet", answered_pool[["image_id", "lat", "lon"]].assign(
    seed=np.repeat(seeds, len(eval_pool)), sft_answer=answers["SFT only"], sft_error_km=errors["SFT only"],
    grpo_answer=answers["SFT + GRPO"], grpo_error_km=errors["SFT + GRPO"]))
print(f"{len(eval_pool)} test images, two models, {len(seeds)} seeds, in {eval_seconds:.0f} s")

# %% [markdown]
# ### GRE's ablation: SFT only vs SFT + GRPO, all test images
#
# % within each distance (95% interval), the share of answers in GRE's format, the share without
# usable coordinates, and the median error. GRE reports on Im2GPS3k 7.8/29.3/44.8/62.4/78.8 after
# SFT and 11.3/35.3/51.7/69.3/85.7 after RL (docs/published-numbers.md); the demo world is a different, much
# smaller task, so only the direction of the change compares.

# %%
thresholds = [f"within_{t}km" for t in (1, 25, 200, 750, 2500)]
overall = scores[scores["group"] == "all"]
headline = gre_scores.score_table(overall, thresholds + ["format_ok", "unparsable"]).set_index("model")
headline["median km"] = overall.set_index("model")["median_km"].round(0)
headline.drop(columns=["group"])

# %% [markdown]
# **Did GRPO help?** SFT + GRPO minus SFT only, in points of the share within each distance, on
# the same images: the mean over seeds, each seed's own difference, and the paired 95% interval
# (images resampled, every seed's answers kept together). An interval above 0 says GRPO helped
# beyond the spread of the test sample and of these seeds; per scene type below.

# %%
paired = gre_scores.paired_within_difference(errors_by_seed["SFT + GRPO"], errors_by_seed["SFT only"], n_boot=n_boot,
                                      scenes=eval_pool["scene"] if "scene" in eval_pool.columns else None)
paired_table = pd.DataFrame({
    "group": paired["group"], "km": paired["km"].astype(int), "n images": paired["n_images"],
    "SFT only %": 100 * paired["before"], "SFT + GRPO %": 100 * paired["after"],
    "difference (points)": 100 * paired["difference"],
    "95% interval": [f"[{100 * lo:+.1f}, {100 * hi:+.1f}]" for lo, hi in zip(paired["ci_low"], paired["ci_high"])],
    "difference by seed": [" ".join(f"{100 * (a - b):+.1f}" for a, b in zip(aa, bb))
                           for aa, bb in zip(paired["after_by_seed"], paired["before_by_seed"])],
})
paired_table[paired_table["km"].isin([25, 750, 2500])].set_index(["group", "km"]).round(1)

# %% [markdown]
# **Beside notebook 06's models.** The same distances on the same test images, as notebook 06
# scored them, for its baselines (the linear probe on the tower's features, the majority country,
# GeoCLIP-style retrieval, the sign reader) and GeoReasoner's arms, so the GRE models' numbers have a scale: a
# model that learned the image's country should be ahead of the probe; one that learned only
# where most answers pay off, ahead of the majority row.

# %%
table_06 = results / "06_evaluation.json"  # notebook 06's main table: every model on the whole test split
beside = {name: {"from": "this notebook (seeds pooled)", **{f"within {t:,} km": row[f"within_{t}km"] for t in (750, 2500)}}
          for name, row in headline.iterrows()}  # the GRE rows of the table above
if table_06.exists() and len(eval_pool) == len(test_pool):
    for name, scores_06 in io.read_json(table_06)["main_table"].items():
        beside[name] = {"from": "notebook 06", **{
            f"within {t:,} km": "{:.1f} [{:.1f}, {:.1f}]".format(*(100 * scores_06[f"within_{t}km"][k] for k in ("value", "ci_low", "ci_high")))
            for t in (750, 2500)}}
else:
    print("notebook 06's results are not in this run folder (or 07 scored a sample): GRE rows only")
pd.DataFrame(beside).T

# %% [markdown]
# ### Per scene type (GREval-Bench style)
#
# % within 25 km (city) and 750 km (country), and format compliance, per scene type of the demo
# world (urban, suburban, rural, natural, landmark-like). Scenes without signs or buildings carry
# fewer clues, so one would expect both models to do worse there; the table says whether they do
# (on the small demo groups the intervals are wide).

# %%
by_scene = gre_scores.score_table(scores[scores["group"] != "all"], ["within_25km", "within_750km", "within_2500km", "format_ok"])
by_scene.pivot(index=["group", "n"], columns="model").swaplevel(axis=1).sort_index(axis=1, level=0)

# %%
fig = plots.plot_gre_accuracy(scores, n_label=f"answers: test images × {len(seeds)} seeds")
plots.save_figure(fig, profile, "07_accuracy_by_scene")

# %% [markdown]
# ### Chain quality: do the chains report what the image shows?
#
# On the demo world every image lists its visible clues, so a chain can be checked: **recall** =
# visible clues that the chain mentions / visible clues; **precision** = mentioned clues that are
# visible / mentioned clues (a mentioned clue that is not visible is a hallucination). Pooled over
# test images, with 95% bootstrap intervals. (Real data sets carry no such labels: skipped there.)

# %%
if has_clues:
    quality = {name: gre_scores.chain_quality(a, answered_pool["clues"], n_boot=n_boot) for name, a in answers.items()}
    keys = ["recall", "precision", "f1", "hallucination_rate"]
    quality_table = pd.DataFrame({name: {k: f"{100 * q[k]:.1f} [{100 * q[k + '_low']:.1f}, {100 * q[k + '_high']:.1f}]"
                                         for k in keys} for name, q in quality.items()}).T
    by_type = pd.concat({name: pd.DataFrame(q["by_type"]).T[["recall", "precision", "n_visible", "n_mentioned"]]
                         for name, q in quality.items()}, axis=1)
    display(quality_table)  # noqa: F821 (IPython)
    display(by_type.round(3))  # noqa: F821 (IPython)
else:
    quality = {}
    print("no visible-clue labels in this pool: chain quality is scored on the demo world only")

# %% [markdown]
# ### Example chains on test images
#
# The truth, then each model's chain (first seed) and its error.

# %%
shown = eval_pool.sample(min(n_answers_shown, len(eval_pool)), random_state=1)
position = {row: i for i, row in enumerate(eval_pool["row"])}
for _, row in shown.iterrows():
    i = position[row["row"]]
    clues = list(row["clues"]) if has_clues else "n/a"
    print(f"=== {row['image_id']}: {row.get('scene')} scene in {row.get('city')}, {row.get('country')} "
          f"({row['lat']:.4f}, {row['lon']:.4f}); visible clues: {clues}")
    for name, a in answers.items():
        d = errors[name][i]
        print(f"--- {name}, seed {seeds[0]} (error {'unparsable' if np.isnan(d) else f'{d:,.0f} km'}):\n{a[i]}")
    print()

# %%
summary = {
    "model": spec.model_id, "lora": lora, "sft_settings": gre_sft, "grpo_lora": grpo_lora, "grpo_settings": gre_grpo,
    "seeds": list(seeds), "theta_schedules": {s: schedules[s].state_dict() for s in seeds},
    "n_cold_start": len(cold_start), "n_rl_prompts": len(prompts), "n_test_images": len(eval_pool),
    "sft_loss": {s: {"first": float(part["loss"].head(max(1, len(part) // 10)).mean()),
                     "last": float(part["loss"].tail(max(1, len(part) // 10)).mean())} for s, part in sft_losses.groupby("seed")},
    "grpo": runs, "eval_seconds": round(eval_seconds, 1),
    "scores": scores.to_dict(orient="records"), "grpo_minus_sft": paired.to_dict(orient="records"),
    "chain_quality": quality,
}
io.write_json(results / "07_gre.json", summary)
arm_keys = {"SFT only": "sft", "SFT + GRPO": "grpo"}
# θ: the coarsest final θ over the seeds (every seed got at least this fine) and the fewest advances
summary_keys = {"07.theta_final_km": max(sc.theta for sc in schedules.values()),
                "07.theta_advances": min(sc.stage for sc in schedules.values()), "07.n_seeds": len(seeds)}
for row in overall.itertuples(index=False):
    for t in (750, 2500):
        summary_keys[f"07.{arm_keys[row.model]}.within_{t}"] = getattr(row, f"within_{t}km")
for row in paired[paired["group"] == "all"].itertuples(index=False):
    if row.km in (750, 2500):
        summary_keys[f"07.grpo_minus_sft.within_{row.km:g}"] = float(row.difference)
        for key in ("ci_low", "ci_high"):
            summary_keys[f"07.grpo_minus_sft.within_{row.km:g}.{key}"] = float(getattr(row, key))
io.merge_summary(profile, summary_keys)
headline.drop(columns=["group"])[["within_25km", "within_750km", "format_ok"]]

# %% [markdown]
# ## Checks

# %%
if seed_workers > 1:  # the loop loaded what the workers trained: the same data, settings and starting weights
    assert not any(sft_runs[s].trained or grpo_runs[s].trained for s in seeds), "a seed trained side by side was not found"
for s in seeds:
    assert all(f".{chains.SFT_STAGE}" in n and ("lora_" in n or "trainable_tokens" in n) for n in sft_trainable[s])
    trainable = [n for n, p in grpo_runs[s].model.named_parameters() if p.requires_grad]
    assert all("lora_" in n for n in trainable), "GRPO trains only its LoRA"
    assert not any(chains.SFT_STAGE in n for n, _ in grpo_runs[s].model.named_parameters()), "the cold-start adapter is merged"
    assert summary["sft_loss"][s]["last"] < summary["sft_loss"][s]["first"], "the cold-start loss went down"
    assert (stages.checkpoint_dir(profile, f"gre_grpo/seed_{s}") / "adapter" / "adapter_config.json").exists()
    part = curves[curves["seed"] == s]
    assert len(part) == runs[s]["steps"] and part[["reward", "kl", "theta_km"]].notna().all().all()
    assert (part["theta_km"].diff().dropna() <= 0).all(), "θ only moves from coarse to fine"
    assert set(part["theta_km"]) <= set(schedules[s].stages) and schedules[s].theta <= part["theta_km"].iloc[-1]
    assert runs[s]["kl_max"] < 1.0, f"the KL to the cold-start model stays bounded (seed {s}: max {runs[s]['kl_max']:.3f})"
assert ((paired["ci_low"] <= paired["difference"] + 1e-9) & (paired["difference"] <= paired["ci_high"] + 1e-9)).all()
# Whether GRPO raised the reward is a finding, not a check: it is printed (with its parts) above, and
# a reader who changes θ or the reward may see it fall.
assert not curation.shared_cities(train_pool, test_pool), "no test city is trained on"

# %%
for name in answers:
    part = scores[scores["model"] == name]
    shares = part[thresholds].to_numpy()
    assert ((shares >= 0) & (shares <= 1)).all() and (np.diff(shares, axis=1) >= 0).all(), "shares grow with distance"
    for col in thresholds + ["format_ok"]:
        assert (part[f"{col}_low"] <= part[col] + 1e-9).all() and (part[col] <= part[f"{col}_high"] + 1e-9).all()
    assert part.loc[part["group"] == "all", "n"].item() == len(seeds) * len(eval_pool)
for q in quality.values():
    assert 0 <= q["recall"] <= 1 and q["n"] == len(seeds) * len(eval_pool)
    assert np.isnan(q["precision"]) if q["n_mentioned"] == 0 else 0 <= q["precision"] <= 1
