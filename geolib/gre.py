"""GRE Suite's study glue for notebook 07 (07_gre_reasoning_rl): one training seed, and its answers.

GRE (Wang et al., NeurIPS 2025) teaches a vision-language model to answer in a structured chain,
``<think>…</think><answer>latitude, longitude</answer>``: cold-start SFT on reasoning chains
(:mod:`geolib.chains`), then GRPO on a format reward and a distance-shaped reward
(:mod:`geolib.grpo`, :mod:`geolib.rewards`); GREval-Bench scores the answers per scene type and
distance granularity (:func:`geolib.gre_scores.evaluate_gre`), and the chains for the clues they
use (:mod:`geolib.gre_scores`).

This module runs that path in the study's layout, the one GRE module that uses it: a seed's cold
start and GRPO run in the study's checkpoint folders (:func:`train_seed`), and the ablation pair's
answers (:func:`answer_both`, :func:`seed_answers`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from geolib import inference, stages, tuning
from geolib.chains import GRE_PROMPT, SFT_STAGE, chain_token_ids
from geolib.grpo import train_grpo
from geolib.rewards import ThetaSchedule


@dataclass
class SeedRun:
    """What :func:`train_seed` returns: the cold start, the GRPO run on it, the cold start's trained
    parameter names, and the processor both use."""

    sft: Any
    grpo: Any
    trainable: list[str]
    processor: Any


def train_seed(profile: str, spec, seed: int, cold_start: Sequence[dict], sft_settings: Mapping[str, Any], sft_lora,
               prompts, theta_schedule: ThetaSchedule, grpo_settings: Mapping[str, Any], grpo_lora, sft_images=None,
               images=None, train_chain_tokens: bool = False):
    """One training seed of notebook 07: the cold-start SFT on the chains, then GRPO on top of it.

    The cold start is :func:`geolib.tuning.train_stage` (the LoRA stage of GeoReasoner's notebooks)
    in ``gre_sft/seed_<seed>``, GRPO is :func:`geolib.grpo.train_grpo` in ``gre_grpo/seed_<seed>``;
    both start from the study's untuned base and load instead of training when a finished run with
    the same fingerprint is there, so calling this again (the notebook after :func:`geolib.runtime.in_processes`
    trained the seeds side by side) only loads.

    Args:
        profile: the run profile.
        spec: the model (:class:`geolib.vlm.ModelSpec` fields).
        seed: the training seed (LoRA's initial weights, the order of examples, GRPO's samples).
        cold_start: the chains (:func:`geolib.chains.chain_conversations`).
        sft_settings: the cold start's settings (notebook 07's ``gre_sft``); ``seed`` is set here.
        sft_lora: the cold start's ``LoraConfig``.
        prompts: :func:`geolib.grpo.grpo_dataset`.
        theta_schedule: a fresh :class:`ThetaSchedule`, updated in place.
        grpo_settings: GRPO's settings (notebook 07's ``gre_grpo``); ``seed`` is set here.
        grpo_lora: GRPO's ``LoraConfig``.
        sft_images, images: the demo's cached features for the cold start and for GRPO.
        train_chain_tokens: also train the embedding rows of the chains' tokens (the demo's base
            never wrote them, :func:`chain_token_ids`).

    Returns:
        A :class:`SeedRun`: the cold start's :class:`geolib.tuning.StageResult` (its model is
        consumed by GRPO), the :class:`geolib.grpo.GRPOResult`, the cold start's trained parameter
        names and the processor.
    """
    import copy

    base_model, processor = stages.study_model(profile, spec)
    if train_chain_tokens:
        sft_lora = copy.deepcopy(sft_lora)
        sft_lora.trainable_token_indices = chain_token_ids(processor, cold_start)
    sft = tuning.train_stage(base_model, processor, cold_start, SFT_STAGE, {**sft_settings, "seed": seed}, sft_lora,
                             stages.checkpoint_dir(profile, f"gre_sft/seed_{seed}"), images=sft_images)
    trainable = [n for n, p in sft.model.named_parameters() if p.requires_grad]
    grpo = train_grpo(sft.model, processor, prompts, theta_schedule, {**grpo_settings, "seed": seed},
                      stages.checkpoint_dir(profile, f"gre_grpo/seed_{seed}"), images=images, lora_config=grpo_lora)
    return SeedRun(sft, grpo, trainable, processor)


def answer_both(model, processor, images, max_new_tokens: int = 160, batch_size: int = 64) -> dict[str, list[str]]:
    """GRE's ablation pair answering the same images greedily with :data:`GRE_PROMPT`: the GRPO
    policy with its adapter disabled, which is exactly the cold-start model and TRL's KL
    reference ("SFT only"), and the policy itself ("SFT + GRPO").

    Args:
        model: a :class:`geolib.grpo.GRPOResult`'s ``model``.
        processor: the study's processor (:class:`SeedRun`'s).
        images: the demo's cached features or image paths.
    """
    with model.disable_adapter():
        sft = inference.generate(model, processor, images, GRE_PROMPT, max_new_tokens=max_new_tokens, batch_size=batch_size)
    grpo = inference.generate(model, processor, images, GRE_PROMPT, max_new_tokens=max_new_tokens, batch_size=batch_size)
    return {"SFT only": sft, "SFT + GRPO": grpo}


def seed_answers(job: Mapping[str, Any], images, max_new_tokens: int = 160, batch_size: int = 64) -> dict[str, list[str]]:
    """:func:`answer_both` for one finished seed, loaded by :func:`train_seed` from ``job`` (its
    arguments): self-contained, so the seeds answer side by side in worker processes.

    The θ schedule is taken afresh from ``job``'s configuration (a schedule that a finished run
    has already updated is not the one the run started from, and would not find the run).

    Raises:
        RuntimeError: the seed's cold start or GRPO run was not finished (it was trained here).
    """
    s = job["theta_schedule"]
    job = {**job, "theta_schedule": ThetaSchedule(stages=tuple(s.stages), window=s.window, advance_at=s.advance_at)}
    run = train_seed(**job)
    if run.sft.trained or run.grpo.trained:
        raise RuntimeError(f"seed {job['seed']}: no finished cold start and GRPO run with these settings in "
                           f"{run.grpo.output_dir.parent}; train the seeds (train_seed) before answering")
    return answer_both(run.grpo.model, run.processor, images, max_new_tokens, batch_size)


__all__ = ["SeedRun", "train_seed", "answer_both", "seed_answers"]
