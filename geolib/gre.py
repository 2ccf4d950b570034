"""GRE Suite's study glue for notebook 07 (07_gre_reasoning_rl): one training seed, and its answers.

GRE (Wang et al., NeurIPS 2025) teaches a vision-language model to answer in a structured chain,
``<think>…</think><answer>latitude, longitude</answer>``: cold-start SFT on reasoning chains
(:mod:`geolib.chains`), then GRPO on a format reward and a distance-shaped reward
(:mod:`geolib.grpo`, :mod:`geolib.rewards`); GREval-Bench scores the answers per scene type and
distance granularity (:func:`geolib.gre_scores.evaluate_gre`), and the chains for the clues they
use (:mod:`geolib.gre_scores`).

This module runs that path in the study's layout, the one GRE module that uses it:

* the cold start's chains and the RL prompts of a profile (:func:`cold_start_chains`, :func:`rl_prompts`);
* a seed's cold start and GRPO run in the study's checkpoint folders (:func:`train_seed`), what
  the runs logged (:func:`training_logs`, :func:`first_last`, :func:`run_summary`) and the checks
  on them (:func:`check_seed`);
* the ablation pair's answers to the test images for every seed (:func:`geolib.stages.evaluation_sample`,
  :func:`answer_both`, :func:`seed_answers`, :func:`answer_seeds`, :func:`collect_answers` →
  :class:`EvalAnswers`, :func:`example_chains`);
* notebook 06's rows beside GRE's (:func:`beside_notebook_06`) and the ``07.*`` summary keys
  (:func:`summary_keys`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geolib import chains, corpora, gre_scores, inference, io, paths, runtime, stages, tuning
from geolib.chains import GRE_PROMPT, SFT_STAGE, chain_token_ids
from geolib.grpo import grpo_dataset, train_grpo
from geolib.rewards import ThetaSchedule


#: GRE's ablation pair (:func:`answer_both`) and each one's short name in the summary keys.
ARMS = {"SFT only": "sft", "SFT + GRPO": "grpo"}


def cold_start_chains(train_pool: pd.DataFrame, images, corpus: str | Path = "") -> tuple[list[dict], Any]:
    """The cold start's conversations, and the images they need.

    Args:
        train_pool: the training split's rows (with the pool's ``row`` and, on the demo world, ``clues``).
        images: :func:`geolib.stages.study_images` of the pool.
        corpus: GRE30K-CoT's JSON under the data folder (:func:`geolib.paths.real_data_root`;
            read by :func:`geolib.corpora.load_gre30k_cot`, its report printed); empty: the demo
            world's chains of the training rows (:func:`geolib.chains.chain_conversations`).

    Returns:
        The conversations (asked with :data:`GRE_PROMPT`) and the images to train with: ``images``
        for the demo's chains (keyed by pool row), None for GRE30K-CoT's (keyed by image path).
    """
    if corpus:
        cot, report = corpora.load_gre30k_cot(paths.real_data_root() / corpus)
        print(report)
        return chains.gre30k_conversations(cot, prompt=GRE_PROMPT), None  # one prompt for SFT, GRPO and evaluation
    return chains.chain_conversations(train_pool, image_column="row"), images


def rl_prompts(train_pool: pd.DataFrame, corpus: str | Path = "", image_column: str = "row"):
    """GRPO's prompts (:func:`geolib.grpo.grpo_dataset`): GRE30K-Seed's, or the training split's.

    Args:
        train_pool: the training split's rows: no validation or test city is seen in RL either.
        corpus: GRE30K-Seed's JSONL under the data folder (read by
            :func:`geolib.corpora.load_gre30k_seed`, its report printed); empty: the training split.
        image_column: the training rows' image key (``row`` for the demo's features, else ``image_path``).
    """
    if corpus:
        seed_prompts, report = corpora.load_gre30k_seed(paths.real_data_root() / corpus)
        print(report)
        return grpo_dataset(seed_prompts, image_column="image_path")
    return grpo_dataset(train_pool, image_column=image_column)


@dataclass
class SeedRun:
    """What :func:`train_seed` returns: the cold start, the GRPO run on it, the cold start's trained
    parameter names, the processor both use, and the seed."""

    sft: Any
    grpo: Any
    trainable: list[str]
    processor: Any
    seed: int | None = None


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
    return SeedRun(sft, grpo, trainable, processor, seed)


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


# ---------------------------------------------------------------------------------------------
# What the runs logged, and the checks on them


def _tenth(part: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first and the last tenth of a run's rows (at least one each)."""
    tenth = max(1, len(part) // 10)
    return part.head(tenth), part.tail(tenth)


def training_logs(runs: Mapping[int, SeedRun]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every seed's cold-start loss and GRPO curves, each with a ``seed`` column.

    Args:
        runs: seed → :func:`train_seed`'s result.

    Returns:
        The cold start's logged steps that have a ``loss`` (the trainer's log columns), and
        :meth:`geolib.grpo.GRPOResult.curves` of every seed (one row per step).
    """
    sft = pd.concat([pd.DataFrame(r.sft.log_history).dropna(subset=["loss"]).assign(seed=s) for s, r in runs.items()])
    curves = pd.concat([r.grpo.curves().assign(seed=s) for s, r in runs.items()], ignore_index=True)
    return sft, curves


def first_last(log: pd.DataFrame, column: str = "loss") -> dict[Any, dict[str, float]]:
    """Per seed, the mean of ``column`` over the first and over the last tenth of its rows.

    Returns:
        seed → ``{"first": …, "last": …}``.
    """
    out = {}
    for s, part in log.groupby("seed"):
        head, tail = _tenth(part[column])
        out[s] = {"first": float(head.mean()), "last": float(tail.mean())}
    return out


def run_summary(curves: pd.DataFrame, runs: Mapping[int, SeedRun], schedules: Mapping[int, ThetaSchedule],
                seconds: Mapping[int, float]) -> dict[Any, dict[str, Any]]:
    """How each seed's GRPO run went, for the notebook's table and ``07_gre.json``'s ``grpo``.

    Args:
        curves: :func:`training_logs`'s GRPO curves.
        runs: seed → :func:`train_seed`'s result.
        schedules: seed → its θ schedule after the run.
        seconds: seed → the time of its cold start and GRPO run.

    Returns:
        seed → ``steps``, ``trained_now``, the means of the total, format and distance rewards,
        the batch's median error and the KL over the first and the last tenth of the steps
        (``<curve>_start``, ``<curve>_end``), ``kl_max``, ``theta_km_reached``, ``theta_stage``,
        ``theta_changes_at_step``, the seconds and TRL's ``train_runtime``.
    """
    out = {}
    for s, part in curves.groupby("seed"):
        head, tail = _tenth(part)
        grpo = runs[s].grpo
        out[s] = {
            "steps": int(part["step"].max()), "trained_now": grpo.trained,
            **{f"{col}_{end}": float(frame[col].mean())
               for col in ("reward", "format_reward", "distance_reward", "median_km", "kl")
               for end, frame in (("start", head), ("end", tail))},
            "kl_max": float(part["kl"].max()),
            "theta_km_reached": float(schedules[s].theta), "theta_stage": int(schedules[s].stage),
            "theta_changes_at_step": [int(x) for x in part["step"][part["theta_km"].diff().fillna(0) != 0]],
            "seconds (cold start + GRPO)": round(seconds[s], 1), "grpo_train_runtime_s": grpo.metrics.get("train_runtime"),
        }
    return out


def _check(ok: Any, message: str) -> None:
    if not bool(ok):
        raise AssertionError(message)


def check_seed(run: SeedRun, schedule: ThetaSchedule, max_kl: float = 1.0) -> None:
    """Notebook 07's checks of one seed's runs: raise ``AssertionError`` naming the first that fails.

    * the cold start trained only its LoRA (and token rows) of the ``gre_sft`` adapter, and its
      loss fell (first vs last tenth of its steps);
    * GRPO trained only its LoRA, on the cold-start model with that adapter merged, and saved it;
    * GRPO logged every step with a reward, a KL and a θ; θ only moved from coarse to fine,
      through the schedule's stages, and ended at the schedule's θ or coarser;
    * the KL to the cold-start model stayed below ``max_kl``.

    Args:
        run: :func:`train_seed`'s result.
        schedule: the seed's θ schedule after the run.
        max_kl: the bound on the logged KL.
    """
    who = f"seed {run.seed}"
    _check(all(f".{SFT_STAGE}" in n and ("lora_" in n or "trainable_tokens" in n) for n in run.trainable),
           f"{who}: the cold start trained more than its LoRA and token rows")
    loss = pd.DataFrame(run.sft.log_history).dropna(subset=["loss"])["loss"]
    head, tail = _tenth(loss)
    _check(tail.mean() < head.mean(), f"{who}: the cold-start loss did not go down ({head.mean():.3f} → {tail.mean():.3f})")
    names = [(n, p.requires_grad) for n, p in run.grpo.model.named_parameters()]
    _check(all("lora_" in n for n, trainable in names if trainable), f"{who}: GRPO trains more than its LoRA")
    _check(not any(SFT_STAGE in n for n, _ in names), f"{who}: the cold-start adapter is not merged")
    _check((Path(run.grpo.output_dir) / "adapter" / "adapter_config.json").exists(), f"{who}: GRPO's adapter is not saved")
    part = run.grpo.curves()
    _check(len(part) == int(part["step"].max()), f"{who}: {len(part)} GRPO steps logged of {int(part['step'].max())}")
    _check(part[["reward", "kl", "theta_km"]].notna().all().all(), f"{who}: a GRPO step without a reward, KL or θ")
    _check((part["theta_km"].diff().dropna() <= 0).all(), f"{who}: θ moved from fine back to coarse")
    _check(set(part["theta_km"]) <= set(schedule.stages) and schedule.theta <= part["theta_km"].iloc[-1],
           f"{who}: the θ logged ({sorted(set(part['theta_km']))}) is not the schedule's "
           f"({schedule.stages}, now {schedule.theta})")
    _check(part["kl"].max() < max_kl,
           f"{who}: the KL to the cold-start model reached {part['kl'].max():.3f} (bound {max_kl})")


# ---------------------------------------------------------------------------------------------
# The test images' answers


def answer_seeds(jobs: Mapping[int, Mapping[str, Any]], images, workers: int = 1, threads: int = 1,
                 runs: Mapping[int, SeedRun] | None = None, max_new_tokens: int = 160,
                 batch_size: int = 64) -> dict[int, dict[str, list[str]]]:
    """Both models of every seed answer the images (:func:`answer_both`).

    Args:
        jobs: seed → :func:`train_seed`'s arguments; the seeds' runs must be finished.
        images: the demo's cached features or image paths.
        workers: with more than 1, the seeds answer side by side, one process each
            (:func:`geolib.runtime.in_processes` of :func:`seed_answers`, which loads each run);
            else here, one after another, with ``runs``.
        threads: torch threads in each worker.
        runs: seed → :func:`train_seed`'s result (needed with ``workers`` 1).
        max_new_tokens, batch_size: generation's limit and batch.

    Returns:
        seed → model name (:data:`ARMS`) → the answers, aligned with ``images``.
    """
    if workers > 1:
        found = runtime.in_processes(seed_answers, [dict(job=job, images=images, max_new_tokens=max_new_tokens,
                                                         batch_size=batch_size) for job in jobs.values()],
                                     workers, threads=threads)
        return dict(zip(jobs, found))
    if runs is None:
        raise ValueError("answering here (workers 1) needs the seeds' runs")
    return {s: answer_both(runs[s].grpo.model, runs[s].processor, images, max_new_tokens, batch_size) for s in jobs}


@dataclass
class EvalAnswers:
    """Both models' answers to the same test images, once per seed (:func:`collect_answers`).

    Attributes:
        pool: the answered images' rows, repeated once per seed (seeds one after another).
        seeds: the seeds, in that order.
        answers: model name → its answers, aligned with ``pool``.
        errors_by_seed: model name → km errors, ``(n_seeds, n_images)``; NaN: no coordinates.
    """

    pool: pd.DataFrame
    seeds: list[int]
    answers: dict[str, list[str]]
    errors_by_seed: dict[str, np.ndarray]

    @property
    def errors(self) -> dict[str, np.ndarray]:
        """model name → km errors aligned with :attr:`pool`."""
        return {name: e.ravel() for name, e in self.errors_by_seed.items()}

    def table(self) -> pd.DataFrame:
        """One row per image and seed: ``image_id``, ``lat``, ``lon``, ``seed``, and each model's answer
        and error (``sft_answer``, ``sft_error_km``, ``grpo_answer``, ``grpo_error_km``)."""
        n_images = len(self.pool) // max(1, len(self.seeds))
        columns = {}
        for name, arm in ARMS.items():
            columns[f"{arm}_answer"], columns[f"{arm}_error_km"] = self.answers[name], self.errors[name]
        return self.pool[["image_id", "lat", "lon"]].assign(seed=np.repeat(self.seeds, n_images), **columns)


def collect_answers(by_seed: Mapping[int, Mapping[str, Sequence[str]]], eval_pool: pd.DataFrame) -> EvalAnswers:
    """Every seed's answers of both models, pooled, with each answer's error against ``eval_pool``.

    Args:
        by_seed: :func:`answer_seeds`'s result.
        eval_pool: the answered images' rows (``lat``, ``lon``), aligned with each seed's answers.
    """
    seeds = list(by_seed)
    errors = {name: np.stack([gre_scores.answer_errors_km(by_seed[s][name], eval_pool) for s in seeds]) for name in ARMS}
    answers = {name: [a for s in seeds for a in by_seed[s][name]] for name in ARMS}
    return EvalAnswers(pd.concat([eval_pool] * len(seeds), ignore_index=True), seeds, answers, errors)


def example_chains(test: EvalAnswers, n: int = 3, random_state: int = 1) -> str:
    """``n`` random test images as text: the truth and its visible clues, then each model's chain of
    the first seed and its error."""
    n_images = len(test.pool) // max(1, len(test.seeds))
    first = test.pool.iloc[:n_images]
    has_clues = "clues" in first.columns and first["clues"].notna().all()
    lines = []
    for i, row in first.sample(min(n, n_images), random_state=random_state).iterrows():  # i: the image's position
        clues = list(row["clues"]) if has_clues else "n/a"
        lines.append(f"=== {row['image_id']}: {row.get('scene')} scene in {row.get('city')}, {row.get('country')} "
                     f"({row['lat']:.4f}, {row['lon']:.4f}); visible clues: {clues}")
        for name, answers in test.answers.items():
            d = test.errors[name][i]
            error = "unparsable" if np.isnan(d) else f"{d:,.0f} km"
            lines.append(f"--- {name}, seed {test.seeds[0]} (error {error}):\n{answers[i]}")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Notebook 06's rows and the summary keys


def beside_notebook_06(headline: pd.DataFrame, table_06: str | Path, whole_test_split: bool = True,
                       km: Sequence[int] = (750, 2500)) -> pd.DataFrame:
    """GRE's overall rows beside notebook 06's models, at the same distances on the same test images.

    Args:
        headline: :func:`geolib.gre_scores.headline_table` (text with intervals, one row per model).
        table_06: notebook 06's results (``06_evaluation.json``, its ``main_table``).
        whole_test_split: whether GRE answered the whole test split, as notebook 06 did; else only
            GRE's rows.
        km: the distances shown.

    Returns:
        One row per model: ``from`` (which notebook) and ``within <km> km`` as ``value [low, high]``.
    """
    beside = {name: {"from": "this notebook (seeds pooled)", **{f"within {t:,} km": row[f"within_{t}km"] for t in km}}
              for name, row in headline.iterrows()}
    table_06 = Path(table_06)
    if table_06.exists() and whole_test_split:
        for name, scores in io.read_json(table_06)["main_table"].items():
            beside[name] = {"from": "notebook 06", **{
                f"within {t:,} km": "{:.1f} [{:.1f}, {:.1f}]".format(*(100 * scores[f"within_{t}km"][k]
                                                                      for k in ("value", "ci_low", "ci_high")))
                for t in km}}
    else:
        print("notebook 06's results are not in this run folder (or 07 scored a sample): GRE rows only")
    return pd.DataFrame(beside).T


def summary_keys(scores: pd.DataFrame, paired: pd.DataFrame, schedules: Mapping[int, ThetaSchedule],
                 km: Sequence[int] = (750, 2500)) -> dict[str, Any]:
    """Notebook 07's headline numbers for ``summary.json`` (``docs/results.md``).

    Args:
        scores: :func:`geolib.gre_scores.evaluate_models`'s rows of the :data:`ARMS`.
        paired: :func:`geolib.gre_scores.paired_within_difference` (SFT + GRPO minus SFT only).
        schedules: seed → its θ schedule after the run.
        km: the distances reported.

    Returns:
        ``07.theta_final_km`` (the coarsest final θ over the seeds: every seed got at least this
        fine), ``07.theta_advances`` (the fewest advances), ``07.n_seeds``,
        ``07.<arm>.within_<km>`` and ``07.grpo_minus_sft.within_<km>`` with ``.ci_low``/``.ci_high``.
    """
    keys = {"07.theta_final_km": max(sc.theta for sc in schedules.values()),
            "07.theta_advances": min(sc.stage for sc in schedules.values()), "07.n_seeds": len(schedules)}
    for row in scores[scores["group"] == "all"].itertuples(index=False):
        for t in km:
            keys[f"07.{ARMS[row.model]}.within_{t}"] = getattr(row, f"within_{t}km")
    for row in paired[paired["group"] == "all"].itertuples(index=False):
        if row.km in km:
            keys[f"07.grpo_minus_sft.within_{row.km:g}"] = float(row.difference)
            for key in ("ci_low", "ci_high"):
                keys[f"07.grpo_minus_sft.within_{row.km:g}.{key}"] = float(getattr(row, key))
    return keys


__all__ = ["ARMS", "cold_start_chains", "rl_prompts", "SeedRun", "train_seed", "answer_both", "seed_answers", "training_logs",
           "first_last", "run_summary", "check_seed", "answer_seeds", "EvalAnswers", "collect_answers",
           "example_chains", "beside_notebook_06", "summary_keys"]
