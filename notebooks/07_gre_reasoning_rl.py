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
# to coordinates, in a chain `<think>` scene and architecture → text and language → vegetation
# and terrain → transport and road markings → conclusion `</think><answer>lat, lon</answer>`, in two
# parts: **cold-start SFT** on reasoning chains (GRE30K-CoT), then **GRPO**: the model samples a
# group of chains per image, each scored by a **format** and a **distance reward**
# r = 2 / (1 + exp(d/θ)), normalised within the group, and takes a clipped policy-gradient step
# with a KL penalty towards the cold-start model. GREval-Bench scores the answers per scene type
# and distance (% within 1/25/200/750/2500 km; `docs/metrics.md`). Like GRE's
# ablation, this notebook compares SFT alone with SFT + GRPO (over several seeds) from an untuned
# base: the paper's Qwen2.5-VL-7B-Instruct, or the demo's small model of notebook 04 on chains of
# each image's *visible* clues.

# %% tags=["parameters"]
profile: str = "demo"  # parameter profile; artifacts go to runs/<profile>/
model: dict = {"model_id": "demo"}  # the vision-language model as geolib.vlm.ModelSpec fields; paper: a hub id at a pinned revision
lora: dict = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "projector": True}  # the cold start's LoRA (peft LoraConfig fields; projector: the projector's layers too); the demo keeps rank 16 here, where GeoReasoner's stages (notebooks 04-05) use 64
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

import pandas as pd
import torch

from geolib import chains, curation, datasets, gre, gre_scores, io, params, paths, plots, rewards, runtime, stages, tuning, vlm
from peft import LoraConfig  # after geolib, which readies torchvision for transformers first

if num_threads:
    torch.set_num_threads(num_threads)

pool = datasets.study_pool(profile)  # with each image's row and its split by city (notebook 02)
results = paths.results_dir(profile)
train_pool, test_pool = pool[pool["split"] == "train"], pool[pool["split"] == "test"]
spec = vlm.ModelSpec.coerce(model)
demo = spec.model_id == "demo"
images = stages.study_images(pool, spec, profile)  # demo: cached tower features pooled to the model's grid; paper: image paths
has_clues = "clues" in pool.columns and pool["clues"].notna().all()  # the demo world lists each image's visible clues
print(f"model: {spec.model_id}; {len(train_pool)} training images ({train_pool['city'].nunique()} cities), "
      f"{len(test_pool)} test images ({test_pool['city'].nunique()} other cities)")

# %% [markdown]
# ## 1. Reasoning chains and the prompt
#
# On the demo world an image's chain is written only from the clues *visible* in it
# (`chains.build_chain`): a step with nothing visible says so, and no chain mentions a clue the
# image does not show, which is what makes section 5's chain-quality score meaningful. The paper
# profile reads GRE30K-CoT's chains. The prompt is this study's (GRE's is not released):

# %%
print(chains.GRE_PROMPT)
cold_start, sft_images = gre.cold_start_chains(train_pool, images, gre_corpus)  # empty gre_corpus: the demo world's chains
clues = f" (visible clues: {list(pool['clues'].iloc[cold_start[0]['image']])})" if sft_images is not None and has_clues else ""
print(f"\n{len(cold_start)} cold-start conversations; one of them{clues}:\n\n{cold_start[0]['messages'][1]['content'][0]['text']}")

# %% [markdown]
# ## 2. Rewards
#
# **Format**: 1 when the completion is exactly `<think>…</think>` then `<answer>…</answer>`.
# **Distance**: 2 / (1 + exp(d/θ)) for the great-circle error d (km): 1 at d = 0, 0.538 at d = θ,
# 0 without valid coordinates. GRE's released reward swaps latitude and longitude, loses the sign
# of `…°S`/`…°W` and leaves θ blank; here `(lat, lon)` is read in order and sign
# (`answers.parse_answer`), as these hand-checked answers for an image in Sydney show.
#
# **The θ schedule**: a large θ pays for the right continent, so early in RL a sample less wrong
# than its group still gets a gradient; a small θ pays only for the right city. θ **anneals from
# coarse to fine**, moving on when the mean distance reward over the last `theta_window` steps
# reaches `theta_advance_at` (0.6 is earned at d ≈ 0.85 θ); it never goes back and is saved with
# every checkpoint (`rewards.ThetaSchedule`). On the demo world one fixed answer for every test
# image (near Istanbul) earns 0.54 at 5,000 km and 0.33 at 2,500 km.

# %%
sydney, think = (-33.8688, 151.2093), "<think>Cars keep left.</think>"
hand_checked = {
    "right": think + "<answer>-33.8688, 151.2093</answer>", "Melbourne (713 km off)": think + "<answer>-37.8136, 144.9631</answer>",
    "hemisphere letters": think + "<answer>33.8688°S, 151.2093°E</answer>",
    "latitude and longitude swapped": think + "<answer>151.2093, -33.8688</answer>",
    "sign of the latitude lost": think + "<answer>33.8688, 151.2093</answer>", "no <think> block": "<answer>-33.8688, 151.2093</answer>",
    "cut off (no answer)": "<think>Cars keep left; the signs",
}
display(pd.DataFrame({"format reward": [rewards.format_reward(t) for t in hand_checked.values()],  # noqa: F821 (IPython)
                      **{f"distance reward, θ = {theta:g} km": [rewards.gre_reward(t, *sydney, theta_km=theta)
                                                                for t in hand_checked.values()] for theta in (750.0, 25.0)}},
                     index=list(hand_checked)).round(3))
schedule = rewards.ThetaSchedule(stages=tuple(theta_schedule), window=theta_window, advance_at=theta_advance_at)
print(schedule)  # each seed's run gets a fresh copy of this schedule
fig = plots.plot_distance_reward(schedule.stages)
plots.save_figure(fig, profile, "07_distance_reward")

# %% [markdown]
# ## 3. Cold-start SFT (adapter `gre_sft`) and 4. GRPO
#
# The cold start is GeoReasoner's LoRA stage (`tuning.train_stage`; GRE's is not public). *Demo
# only:* its base training never wrote digits or `<think>`/`<answer>`, so the demo also trains
# those tokens' embedding rows (peft's `trainable_token_indices`). GRPO is TRL's `GRPOTrainer`
# (`grpo.train_grpo`: the two rewards, θ updated after each batch) on a new LoRA over the *merged*
# cold-start model, so TRL's reference policy (adapter disabled) is exactly the SFT model, as in
# GRE. Settings beside GRE's scripts (GRPO's learning rate, temperature, loss and LoRA are ours):

# %%
paper = params.read_params_file(params.params_file("paper"))
settings = [("lora", lora), ("gre_sft", gre_sft), ("grpo_lora", grpo_lora), ("gre_grpo", gre_grpo)]
display(pd.DataFrame({"paper": pd.Series({f"{n}.{k}": v for n, _ in settings for k, v in paper[n].items()}),  # noqa: F821
                      "this run": pd.Series({f"{n}.{k}": v for n, d in settings for k, v in d.items()})}).astype(str))
prompts = gre.rl_prompts(train_pool, gre_rl_prompts, image_column="row" if demo else "image_path")  # empty: the training split
print(f"{len(prompts)} RL prompts; each step samples {gre_grpo['num_generations']} chains for each of "
      f"{gre_grpo['per_device_train_batch_size'] // gre_grpo['num_generations']} images")

# %% [markdown]
# ### The runs: cold start, then GRPO, once per seed
#
# A seed draws everything random in training (LoRA's initial weights, the example order, GRPO's
# samples). On a CPU the seeds train side by side (`seed_workers` processes running `gre.train_seed`);
# the loop then calls it again, which loads each finished run, as a rerun does. The table: each GRPO
# run's rewards, median batch error (km) and KL over the first and last tenth of its steps, θ
# reached, time (the total reward is at the *current* θ: it can drop as θ tightens).

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
                images=images if demo else None, train_chain_tokens=demo)  # demo: and the chains' token rows (see above)
        for s in seeds}
seconds = {}
if seed_workers > 1:  # the seeds train side by side, one process each; the loop below then loads them
    seconds = dict(zip(seeds, runtime.in_processes(gre.train_seed, list(jobs.values()), seed_workers,
                                                   threads=num_threads, results=False)))
seed_runs = {}
for s, job in jobs.items():
    t0 = time.perf_counter()
    seed_runs[s] = gre.train_seed(**job)  # the cold start, then GRPO on top of it
    seconds.setdefault(s, time.perf_counter() - t0)
sft_losses, curves = gre.training_logs(seed_runs)
fig = plots.plot_training_curve(sft_losses.pivot_table(index="step", columns="seed", values="loss").add_prefix("seed ")
                                .reset_index(), "step", [f"seed {s}" for s in seeds], "GRE cold start: SFT on reasoning chains")
plots.save_figure(fig, profile, "07_cold_start_loss")
fig = plots.plot_grpo_curves(curves)
plots.save_figure(fig, profile, "07_grpo_curves")
runs = gre.run_summary(curves, seed_runs, schedules, seconds)
pd.DataFrame(runs).rename(columns=lambda s: f"seed {s}")

# %% [markdown]
# ## 5. Evaluation: GREval-style scores on the test cities
#
# Each seed's **SFT only** (GRPO's adapter disabled: exactly the KL reference) and **SFT + GRPO**
# answer every test image greedily (no coordinates: a miss at every distance). The table pools the
# seeds' answers: % within each distance, in GRE's format, without coordinates (95% intervals),
# median error. GRE reports on Im2GPS3k 7.8/29.3/44.8/62.4/78.8 after SFT, 11.3/35.3/51.7/69.3/85.7
# after RL (`docs/published-numbers.md`); here only the direction compares.

# %%
eval_pool, eval_images = stages.evaluation_sample(test_pool, images, max_test_images)
t0 = time.perf_counter()  # each seed's pair answers in its own process (loading the runs), or here
by_seed = gre.answer_seeds(jobs, eval_images, seed_workers, num_threads, seed_runs, chain_max_new_tokens, generation_batch_size)
answered = gre.collect_answers(by_seed, eval_pool)  # both models' answers of every seed, with their errors
eval_seconds = time.perf_counter() - t0
scores = gre_scores.evaluate_models(answered.answers, answered.pool, n_boot=n_boot)
io.write_parquet(results / "07_gre_answers.parquet", answered.table())
print(f"{len(eval_pool)} test images, two models, {len(seeds)} seeds, in {eval_seconds:.0f} s")
headline = gre_scores.headline_table(scores)
headline

# %% [markdown]
# **Did GRPO help?** SFT + GRPO minus SFT only, in points on the same images: the mean over seeds,
# each seed's, and a paired 95% interval over images, each with its answers of all seeds and both
# models (above 0: GRPO helped beyond the spread of the test sample and the seeds). Then **beside
# notebook 06's models** (baselines, GeoReasoner's arms): a model that learned the country should
# beat the linear probe; one that learned where most answers pay off, the majority row. Last,
# **per scene type**: scenes without signs or buildings carry fewer clues; do both models do worse?

# %%
errors = answered.errors_by_seed  # model → (seeds, images) km
paired = gre_scores.paired_within_difference(errors["SFT + GRPO"], errors["SFT only"], n_boot=n_boot,
                                             scenes=eval_pool["scene"] if "scene" in eval_pool.columns else None)
display(gre_scores.paired_table(paired, km=(25, 750, 2500)))  # noqa: F821 (IPython)
gre.beside_notebook_06(headline, results / "06_evaluation.json", whole_test_split=len(eval_pool) == len(test_pool))

# %%
display(gre_scores.scene_table(scores, ["within_25km", "within_750km", "within_2500km", "format_ok"]))  # noqa: F821
fig = plots.plot_gre_accuracy(scores, n_label=f"answers: test images × {len(seeds)} seeds")
plots.save_figure(fig, profile, "07_accuracy_by_scene")

# %% [markdown]
# **Chain quality**: on the demo world a chain is checked against the image's visible clues:
# **recall** = visible clues it mentions / visible clues; **precision** = mentioned clues that are
# visible / mentioned clues (one not visible is a hallucination); 95% bootstrap intervals. Then a
# few test images: the truth and each model's chain (first seed).

# %%
quality = ({name: gre_scores.chain_quality(a, answered.pool["clues"], n_boot=n_boot) for name, a in answered.answers.items()}
           if has_clues else {})  # real data carry no visible-clue labels
display(*gre_scores.quality_tables(quality))  # noqa: F821 (IPython)
print(gre.example_chains(answered, n_answers_shown))

# %%
summary = {"model": spec.model_id, "lora": lora, "sft_settings": gre_sft, "grpo_lora": grpo_lora, "grpo_settings": gre_grpo,
           "seeds": list(seeds), "theta_schedules": {s: schedules[s].state_dict() for s in seeds},
           "n_cold_start": len(cold_start), "n_rl_prompts": len(prompts), "n_test_images": len(eval_pool),
           "sft_loss": gre.first_last(sft_losses, "loss"), "grpo": runs, "eval_seconds": round(eval_seconds, 1),
           "scores": scores.to_dict(orient="records"), "grpo_minus_sft": paired.to_dict(orient="records"), "chain_quality": quality}
io.write_json(results / "07_gre.json", summary)
io.merge_summary(profile, gre.summary_keys(scores, paired, schedules))

# %%
# Checks. Whether GRPO raised the reward is a finding (shown above), not a check.
if seed_workers > 1:  # the loop loaded what the workers trained: the same data, settings and starting weights
    assert not any(r.sft.trained or r.grpo.trained for r in seed_runs.values()), "a seed trained side by side was retrained"
for s, run in seed_runs.items():
    gre.check_seed(run, schedules[s])  # adapters, the loss, GRPO's curves, θ, the KL bound
gre_scores.check_scores(scores, len(seeds) * len(eval_pool), paired, quality)
assert not curation.shared_cities(train_pool, test_pool), "no test city is trained on"
