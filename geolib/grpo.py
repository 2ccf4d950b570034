"""GRE Suite's RL stage: GRPO with TRL on the format and distance rewards, and its model (07_gre_reasoning_rl).

After the cold start on reasoning chains (:mod:`geolib.chains`), GRE trains the model with GRPO on
a format reward and a distance-shaped reward (:mod:`geolib.rewards`). This module holds the GRPO
settings as TRL's config (:func:`grpo_config`; the values are notebook 07's ``gre_grpo``), the
prompts (:func:`grpo_dataset`), the rewards as TRL calls them (:func:`make_grpo_rewards`), the
training (:func:`train_grpo`) and the trained policy (:func:`merge_adapters`, :func:`load_grpo_model`).

* **GRPO** (:func:`train_grpo`) is TRL's ``GRPOTrainer`` on the format and distance rewards, θ
  annealed by a :class:`geolib.rewards.ThetaSchedule` that the distance reward updates after each
  scored batch and that is saved with every checkpoint. The policy is a fresh LoRA (TRL's
  ``peft_config``) on the cold-start model with its SFT adapter merged in, so TRL's reference
  policy for the KL term (the model with adapters disabled) is exactly the SFT model, as in GRE.
  The reward and KL curves are written to ``log_history.json``/``.csv`` (atomically) at every log.
* **The demo model's images** (:class:`FeatureProcessor`): TRL drives a vision-language model
  through its processor (chat template → tokens + ``pixel_values``; ``processor(images=…,
  text=…)`` for the scoring pass). The demo model's tokenizer is not a processor and its images
  are cached EfficientNet-Lite0 features (4 × 1280 on the 2 × 2 grid), so a small processor wraps
  the tokenizer and a feature array: dataset rows carry an integer image key, the processor looks
  the features up and expands ``<|image_pad|>`` to one token per feature (:func:`geolib.conversations.encode_texts`). The
  LLaVA-style model takes the features as ``pixel_values`` unchanged; nothing in TRL is
  overridden. The paper profile's Qwen2.5-VL uses its own processor and PIL images.

Deviations from GRE's released code, on purpose: its reward swaps latitude and longitude and
leaves θ blank (see :mod:`geolib.rewards`); its RL scripts fine-tune all weights with DeepSpeed
ZeRO-3 on 8 GPUs, here GRPO trains a LoRA (one GPU for the paper profile, a CPU for the demo).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geolib import io as gio
from geolib import runtime
from geolib.chains import GRE_PROMPT, check_coordinates, row_images, warn_skipped
from geolib.gre_scores import distances_km
from geolib.rewards import DistanceReward, FormatReward, ThetaSchedule, completion_text

runtime.patch_torchvision()

import torch  # noqa: E402  (after the torchvision patch)
from transformers import TrainerCallback  # noqa: E402
from transformers.processing_utils import ProcessorMixin  # noqa: E402

from geolib import conversations, tuning, vlm  # noqa: E402


# ---------------------------------------------------------------------------------------------
# GRPO settings

def grpo_config(output_dir: str | os.PathLike, hparams: Mapping[str, Any], **overrides):
    """TRL's ``GRPOConfig`` from GRPO settings (notebook 07's ``gre_grpo`` parameter: GRE's RL
    settings on the paper profile, scaled down on the demo).

    ``gradient_checkpointing`` becomes transformers 5's ``activation_checkpointing``. Defaults: CPU and float32 without CUDA, bf16 on a GPU that
    has it; no reporting to online services; dataset columns kept (the rewards read ``lat``,
    ``lon``); checkpoints every ``save_steps`` keeping the last two; seed 0.

    Args:
        output_dir: where checkpoints go.
        hparams: the GRPO settings (``GRPOConfig`` fields).
        overrides: any ``GRPOConfig`` field (e.g. ``max_steps=1`` in tests).

    Raises:
        ValueError: a setting that is not a ``GRPOConfig`` field (a typo in a params file), with
            the closest field as a hint.
    """
    from trl import GRPOConfig

    from geolib.params import unknown_keys_error

    kwargs = dict(hparams)
    if "gradient_checkpointing" in kwargs:
        kwargs["activation_checkpointing"] = bool(kwargs.pop("gradient_checkpointing"))
    cuda = torch.cuda.is_available()
    defaults = {
        "use_cpu": not cuda,
        "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
        "report_to": "none",
        "remove_unused_columns": False,
        "save_strategy": "steps",
        "save_total_limit": 2,
        "dataloader_pin_memory": cuda,
        "disable_tqdm": False,
        "seed": 0,
        "activation_checkpointing": False,
    }
    if kwargs.get("activation_checkpointing") or overrides.get("activation_checkpointing"):
        defaults["activation_checkpointing_kwargs"] = {"use_reentrant": False}
    merged = {**defaults, **kwargs, **overrides}
    unknown = sorted(k for k in merged if k not in GRPOConfig.__dataclass_fields__)
    if unknown:
        raise unknown_keys_error("GRPO", unknown, list(GRPOConfig.__dataclass_fields__) + ["gradient_checkpointing"],
                                 "GRPO's settings are TRL GRPOConfig fields")
    return GRPOConfig(output_dir=str(output_dir), **merged)


# ---------------------------------------------------------------------------------------------
# The demo model's images in TRL


class FeatureProcessor(ProcessorMixin):
    """The demo tokenizer plus a feature array, as the processor TRL's GRPO expects for a VLM.

    TRL treats a ``ProcessorMixin`` as a vision-language processor and calls it three ways; each
    is served by :func:`geolib.conversations.encode_texts`, which expands ``<|image_pad|>`` to one token per
    feature row (49) and stacks the features as ``pixel_values`` (B, 49, 1280):

    * ``apply_chat_template(conversations, tokenize=True, return_dict=True, add_generation_prompt=True)``
      for generation: unpadded ``input_ids`` per prompt and ``pixel_values``;
    * ``apply_chat_template(messages, tokenize=False, …)``: the prompt text;
    * ``processor(images=…, text=…, padding=True, return_tensors="pt")`` for the scoring pass.

    An image is an int key into ``features`` (what :func:`grpo_dataset` puts in its ``image``
    column), a feature row (T, C), or a path / PIL image (run through the tower by the model).

    Args:
        tokenizer: the demo tokenizer (:func:`geolib.vlm.train_tokenizer`).
        features: the cached features (N, tokens, 1280) that int keys index, or None.
    """

    def __init__(self, tokenizer, features=None):
        super().__init__(tokenizer)
        self.features = features

    def _resolve(self, images) -> list:
        flat: list = []
        for item in images if images is not None else []:
            if isinstance(item, (list, tuple)):
                flat.extend(item)
            else:
                flat.append(item)
        out = []
        for x in flat:
            if isinstance(x, (int, np.integer)):
                if self.features is None:
                    raise ValueError("image keys are ints but the processor holds no features: "
                                     "pass images=<feature array> to train_grpo / FeatureProcessor")
                if not 0 <= int(x) < len(self.features):
                    raise IndexError(f"image key {int(x)} out of range for {len(self.features)} feature rows")
                out.append(self.features[int(x)])
            else:
                out.append(x)
        return out

    def apply_chat_template(self, conversation, chat_template=None, tokenize: bool = False, return_dict: bool = False,
                            add_generation_prompt: bool = False, continue_final_message: bool = False, tools=None,
                            **kwargs):
        """Chat template of one conversation or a batch; with ``tokenize=True`` tokens and features too."""
        if tools:
            raise ValueError("the demo processor does not support tools")
        batched = bool(conversation) and isinstance(conversation[0], (list, tuple))
        convs = list(conversation) if batched else [conversation]
        texts = [self.tokenizer.apply_chat_template(list(c), tokenize=False, add_generation_prompt=add_generation_prompt,
                                                    continue_final_message=continue_final_message, chat_template=chat_template)
                 for c in convs]
        if not tokenize:
            return texts if batched else texts[0]
        images = [[part.get("image") for m in c if isinstance(m.get("content"), list) for part in m["content"]
                   if isinstance(part, dict) and part.get("type") == "image"] for c in convs]
        if any(len(x) != 1 for x in images):
            raise ValueError(f"each conversation needs exactly one image, got {[len(x) for x in images]}")
        enc = conversations.encode_texts(self.tokenizer, texts, self._resolve(images))
        ids = [row[mask.bool()].tolist() for row, mask in zip(enc["input_ids"], enc["attention_mask"])]
        out = {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids], "pixel_values": enc["pixel_values"]}
        if not return_dict:
            return out["input_ids"] if batched else out["input_ids"][0]
        return out

    def __call__(self, images=None, text=None, padding=True, return_tensors="pt", padding_side: str = "left", **kwargs):
        """Left-padded tokens of ``text`` (one image each) and the images' features."""
        if text is None:
            raise ValueError("FeatureProcessor needs text")
        texts = [text] if isinstance(text, str) else list(text)
        return conversations.encode_texts(self.tokenizer, texts, self._resolve(images), padding_side=padding_side)

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    def save_pretrained(self, save_directory, **kwargs):
        """Saves the tokenizer only (reload with :func:`geolib.vlm.load_processor`); the features are data."""
        return self.tokenizer.save_pretrained(str(save_directory))


# ---------------------------------------------------------------------------------------------
# GRPO


def grpo_dataset(frame: pd.DataFrame, prompt: str = GRE_PROMPT, image_column: str | None = None):
    """The GRPO prompts: one row per image with its true coordinates for the distance reward.

    Args:
        frame: pool rows with ``lat`` and ``lon``.
        prompt: the user's question (the image is put in front of it by TRL).
        image_column: the image-key column; None: the row position. Int keys index the demo
            features (pass them to :func:`train_grpo` as ``images``); str keys are image paths,
            decoded to PIL images by ``datasets`` for a hub processor (paper profile).

    Returns:
        A ``datasets.Dataset`` with ``prompt`` (a one-message conversation), ``image``, ``lat``,
        ``lon``; rows with unusable coordinates are skipped with a warning.
    """
    import datasets

    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    for c in ("lat", "lon"):
        if c not in frame.columns:
            raise ValueError(f"grpo_dataset needs columns 'lat' and 'lon'; columns: {list(frame.columns)}")
    keys = row_images(frame, image_column)
    rows, skipped = {"image": [], "lat": [], "lon": []}, []
    for i, (key, lat, lon) in enumerate(zip(keys, frame["lat"].tolist(), frame["lon"].tolist())):
        try:
            lat, lon = check_coordinates(lat, lon)
        except ValueError as exc:
            skipped.append((i, str(exc)))
            continue
        rows["image"].append(key)
        rows["lat"].append(lat)
        rows["lon"].append(lon)
    warn_skipped("grpo_dataset", skipped, len(frame))
    if not rows["image"]:
        raise ValueError("grpo_dataset: no usable rows")
    kinds = {type(k).__name__ for k in rows["image"]}
    if not (kinds <= {"int"} or kinds <= {"str"}):
        raise TypeError(f"image keys must be all ints (feature rows) or all str (paths), got {sorted(kinds)}")
    ds = datasets.Dataset.from_dict({"prompt": [[{"role": "user", "content": prompt}]] * len(rows["image"]), **rows})
    if kinds == {"str"}:
        ds = ds.cast_column("image", datasets.Image())
    return ds


class _DistanceRewardLogged(DistanceReward):
    """:class:`geolib.rewards.DistanceReward` that also logs the batch's median error and answered share.

    The reward's scale changes with θ, so the error in km is the curve that compares across stages.
    """

    def __call__(self, completions, **kwargs):
        rewards = super().__call__(completions, **kwargs)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            d = distances_km([completion_text(c) for c in completions], kwargs["lat"], kwargs["lon"])
            log_metric("distance/answered", float(np.isfinite(d).mean()) if d.size else 0.0)
            if np.isfinite(d).any():
                log_metric("distance/median_km", float(np.nanmedian(d)))
        return rewards


def make_grpo_rewards(theta_schedule: ThetaSchedule) -> list:
    """``[format_reward, distance_reward]`` for ``GRPOTrainer``, the distance one updating ``theta_schedule``."""
    return [FormatReward(), _DistanceRewardLogged(theta_schedule)]


class _GRPOWriter(TrainerCallback):
    """Writes the log history (JSON + CSV) and the θ schedule at every log; the schedule into each checkpoint."""

    def __init__(self, output_dir: Path, schedule: ThetaSchedule):
        self.output_dir = output_dir
        self.schedule = schedule

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero:
            tuning.write_log_history(self.output_dir, state.log_history)
            gio.write_json(self.output_dir / "theta_schedule.json", self.schedule.state_dict())

    def on_save(self, args, state, control, **kwargs):
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        ckpt = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if state.is_world_process_zero and ckpt.is_dir():
            gio.write_json(ckpt / "theta_schedule.json", self.schedule.state_dict())


@dataclass
class GRPOResult:
    """What :func:`train_grpo` returns.

    Attributes:
        model: the policy (a ``PeftModel``: the cold-start model with its SFT merged, plus the GRPO
            LoRA ``"default"``), in eval mode.
        output_dir: the run folder (``grpo.json``, ``log_history.json``/``.csv``,
            ``theta_schedule.json``, ``adapter/``, ``checkpoint-*``).
        log_history: the trainer's log, one dict per step: ``reward``, ``reward_std``,
            ``rewards/format_reward/mean``, ``rewards/distance_reward/mean``, ``kl``, ``theta_km``,
            ``distance/median_km``, ``distance/answered``, ``completions/mean_length``, ``loss``, …
        theta_schedule: the schedule's final state (:meth:`ThetaSchedule.state_dict`).
        trained: False when a finished run with the same fingerprint was loaded instead.
        resumed_from: the checkpoint the run resumed from, if any.
    """

    model: Any
    output_dir: Path
    log_history: list[dict] = field(default_factory=list)
    theta_schedule: dict = field(default_factory=dict)
    trained: bool = True
    resumed_from: str | None = None

    def curves(self) -> pd.DataFrame:
        """One row per logged step: step, reward, format and distance rewards, KL, θ, median error, length."""
        columns = {"step": "step", "reward": "reward", "rewards/format_reward/mean": "format_reward",
                   "rewards/distance_reward/mean": "distance_reward", "kl": "kl", "theta_km": "theta_km",
                   "distance/median_km": "median_km", "completions/mean_length": "completion_length"}
        rows = [{new: h.get(old, np.nan) for old, new in columns.items()} for h in self.log_history if "reward" in h]
        return pd.DataFrame(rows, columns=list(columns.values()))

    @property
    def metrics(self) -> dict:
        """The final train metrics (runtime, steps/s)."""
        final = [h for h in self.log_history if "train_runtime" in h]
        return dict(final[-1]) if final else {}


def merge_adapters(model):
    """The model with its active LoRA adapters merged into the weights (a plain model), for GRPO's start.

    TRL's reference policy is the model with adapters disabled; merging the cold-start adapter
    first makes that reference the SFT model. On float32 (demo) the merge is exact to rounding;
    on bf16 weights (paper profile) a small LoRA update partly rounds away, so load the
    cold-start model in float32 to merge when memory allows.
    """
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        return model
    active = list(model.active_adapters)
    unused = [n for n in model.peft_config if n not in active]
    if unused:
        warnings.warn(f"merge_adapters: adapters {unused} are not active and are dropped", stacklevel=2)
    merged = model.merge_and_unload(adapter_names=active)
    return merged


def _has_lora_layers(model) -> bool:
    return any("lora_" in name for name, _ in model.named_parameters())


def load_grpo_model(model, output_dir: str | os.PathLike):
    """Put a finished GRPO run's adapter on its starting model (the cold-start model, adapters merged first).

    Args:
        model: the same starting model as the run had (e.g. from :func:`geolib.tuning.load_staged_model`).
        output_dir: the run folder written by :func:`train_grpo`.

    Returns:
        A ``PeftModel`` in eval mode.
    """
    from peft import PeftModel

    path = Path(output_dir) / "adapter"
    if not (path / "adapter_config.json").exists():
        raise FileNotFoundError(f"{output_dir} holds no finished GRPO adapter ({path}/adapter_config.json missing)")
    policy = PeftModel.from_pretrained(merge_adapters(model), str(path), is_trainable=False)
    policy.eval()
    return policy


def _hash_value(h, value) -> None:
    if isinstance(value, Mapping):
        for k in sorted(value, key=str):
            h.update(f"<{k}>".encode())
            _hash_value(h, value[k])
    elif isinstance(value, (list, tuple)):
        h.update(f"[{len(value)}".encode())
        for v in value:
            _hash_value(h, v)
    elif isinstance(value, (bytes, bytearray)):
        h.update(hashlib.sha256(value).digest())
    elif isinstance(value, float):
        h.update(repr(float(value)).encode())
    else:
        h.update(repr(value).encode())


def _dataset_digest(ds) -> str:
    import datasets

    if isinstance(ds.features.get("image"), datasets.Image):
        ds = ds.cast_column("image", datasets.Image(decode=False))
    h = hashlib.sha256()
    h.update(json.dumps(sorted(ds.column_names)).encode())
    for row in ds.with_format(None):
        _hash_value(h, row)
    return h.hexdigest()


def _features_digest(images) -> str:
    if images is None:
        return "none"
    if isinstance(images, np.ndarray) or isinstance(images, torch.Tensor):
        arr = np.asarray(images)
        step = max(1, len(arr) // 64)
        return hashlib.sha256(f"{arr.shape}:{arr.dtype}".encode() + np.ascontiguousarray(arr[::step]).tobytes()).hexdigest()
    return hashlib.sha256(json.dumps([str(x) for x in images]).encode()).hexdigest()


def _config_dict(config) -> dict:
    d = config.to_dict()
    for k in ("output_dir", "logging_dir", "run_name", "hub_token", "push_to_hub_token", "disable_tqdm"):
        d.pop(k, None)
    return json.loads(json.dumps(d, default=str))


def _clear_run_dir(output_dir: Path) -> None:
    for child in output_dir.iterdir():
        if child.name.startswith("checkpoint-") and child.is_dir():
            shutil.rmtree(child)
    if (output_dir / "adapter").is_dir():
        shutil.rmtree(output_dir / "adapter")
    for name in ("grpo.json", "log_history.json", "log_history.csv", "theta_schedule.json"):
        (output_dir / name).unlink(missing_ok=True)


def train_grpo(
    model,
    processor,
    dataset,
    theta_schedule: ThetaSchedule,
    args,
    output_dir: str | os.PathLike,
    resume: bool = True,
    images=None,
    lora_config=None,
) -> GRPOResult:
    """GRE's RL stage: GRPO with TRL on the format + distance rewards, θ annealed by the schedule.

    Each step TRL samples ``num_generations`` completions per image, scores them with
    :func:`geolib.rewards.format_reward` and the distance reward ``2 / (1 + exp(d / θ))`` at the
    schedule's current θ, normalises the summed reward within each image's group (the advantage)
    and takes a clipped policy-gradient step with a KL penalty ``beta`` towards the cold-start
    model. After scoring a batch the distance reward records its mean in ``theta_schedule``, which
    moves to a finer θ when the recent mean holds (:class:`geolib.rewards.ThetaSchedule`); θ is
    logged every step as ``theta_km``.

    The cold-start model's adapters are merged first (:func:`merge_adapters`) and a new LoRA
    trains on top, so the KL reference is the SFT model. The run is skipped (its result loaded)
    when ``output_dir/grpo.json`` records a finished run with the same fingerprint (data,
    settings, LoRA, θ schedule, starting weights, features). With ``resume=True`` an interrupted
    run restarts from its last checkpoint, θ schedule included; checkpoints of a different
    fingerprint are deleted first. ``log_history.json``/``.csv`` and ``theta_schedule.json`` are
    rewritten (atomically) at every log.

    Args:
        model: the cold-start model (a ``PeftModel`` from :func:`geolib.tuning.train_stage` /
            :func:`geolib.tuning.load_staged_model`, or a plain model). It is consumed: its adapters
            are merged and LoRA layers are added in place; reload it to train again.
        processor: the hub processor (paper profile) or the demo tokenizer (wrapped in a
            :class:`FeatureProcessor` with ``images``).
        dataset: from :func:`grpo_dataset` (or any ``datasets.Dataset`` with ``prompt``, ``image``,
            ``lat``, ``lon``).
        theta_schedule: the θ schedule, updated in place (and restored on resume).
        args: a ``GRPOConfig`` or GRPO settings (:func:`grpo_config`).
        output_dir: the run folder.
        resume: resume from the last checkpoint of an interrupted run.
        images: the demo's cached features (N, tokens, 1280) that int image keys index.
        lora_config: the GRPO LoRA (notebook 07's ``grpo_lora``); None: :func:`geolib.tuning.lora_config`.

    Returns:
        A :class:`GRPOResult`.
    """
    import datasets
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOConfig, GRPOTrainer

    if not isinstance(theta_schedule, ThetaSchedule):
        raise TypeError(f"theta_schedule must be a ThetaSchedule, got {type(theta_schedule).__name__}")
    if isinstance(dataset, (list, tuple)):
        dataset = datasets.Dataset.from_list(list(dataset))
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"dataset must be a datasets.Dataset (grpo_dataset), got {type(dataset).__name__}")
    missing = [c for c in ("prompt", "image", "lat", "lon") if c not in dataset.column_names]
    if missing:
        raise ValueError(f"the GRPO dataset lacks columns {missing}; it has {dataset.column_names} (use grpo_dataset)")
    if len(dataset) == 0:
        raise ValueError("the GRPO dataset is empty")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(args, GRPOConfig):
        config = args
        if Path(config.output_dir).resolve() != output_dir.resolve():
            raise ValueError(f"GRPOConfig.output_dir {config.output_dir!r} differs from output_dir {str(output_dir)!r}")
    elif isinstance(args, Mapping):
        config = grpo_config(output_dir, args)
    else:
        raise TypeError(f"args must be a GRPOConfig or a GRPO dict, got {type(args).__name__}")
    if lora_config is None:
        lora_config = tuning.lora_config()
    if isinstance(processor, ProcessorMixin):
        processing_class = processor
        if images is not None and not isinstance(processor, FeatureProcessor):
            raise ValueError("images= is for the demo model's cached features; a hub processor reads the images itself")
        if isinstance(processor, FeatureProcessor) and images is not None:
            processor.features = images
    else:
        if images is None and dataset.features["image"].dtype.startswith("int"):
            raise ValueError("the dataset's image keys are feature rows: pass the demo features as images=")
        processing_class = FeatureProcessor(processor, images)

    from peft import PeftModel

    if not isinstance(model, PeftModel) and _has_lora_layers(model):
        raise ValueError(
            "the model already carries LoRA layers from an earlier (perhaps interrupted) call; reload the cold-start "
            f"model and call again: training resumes from the last checkpoint in {output_dir}"
        )
    model = merge_adapters(model)

    settings = {
        "config": _config_dict(config),
        "lora": json.loads(json.dumps(lora_config.to_dict(), default=str)),
        "schedule": theta_schedule.state_dict(),
        "dataset": _dataset_digest(dataset),
        "features": _features_digest(images),
    }
    fingerprint = hashlib.sha256(
        (json.dumps(settings, sort_keys=True) + vlm.model_digest(model)).encode()
    ).hexdigest()

    done = output_dir / "grpo.json"
    if done.exists() and gio.read_json(done).get("fingerprint") == fingerprint:
        policy = load_grpo_model(model, output_dir)
        state = gio.read_json(output_dir / "theta_schedule.json")
        theta_schedule.load_state_dict(state)
        history = gio.read_json(output_dir / "log_history.json") if (output_dir / "log_history.json").exists() else []
        return GRPOResult(policy, output_dir, history, state, trained=False)
    started = output_dir / "fingerprint.json"
    if started.exists() and gio.read_json(started).get("fingerprint") != fingerprint:
        warnings.warn(f"{output_dir}: settings, data or starting weights changed; discarding old checkpoints", stacklevel=2)
        _clear_run_dir(output_dir)
    gio.write_json(started, {"fingerprint": fingerprint})

    resume_from = get_last_checkpoint(str(output_dir)) if resume else None
    if resume_from is not None:
        saved = Path(resume_from) / "theta_schedule.json"
        if not saved.exists():
            raise FileNotFoundError(f"checkpoint {resume_from} has no theta_schedule.json; cannot resume θ")
        theta_schedule.load_state_dict(gio.read_json(saved))

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=make_grpo_rewards(theta_schedule),
        args=config,
        train_dataset=dataset,
        processing_class=processing_class,
        peft_config=lora_config,
        callbacks=[_GRPOWriter(output_dir, theta_schedule)],
    )
    with warnings.catch_warnings():
        # TRL 1.16 asks transformers 5 for the deprecated name at every step; nothing to act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        trainer.train(resume_from_checkpoint=resume_from)
    policy = trainer.model
    policy.eval()
    history = list(trainer.state.log_history)
    tuning.write_log_history(output_dir, history)
    state = theta_schedule.state_dict()
    gio.write_json(output_dir / "theta_schedule.json", state)
    policy.save_pretrained(str(output_dir / "adapter"))
    gio.write_json(done, {"fingerprint": fingerprint, "steps": trainer.state.global_step, "n_prompts": len(dataset),
                          "theta_km": theta_schedule.theta, "theta_stage": theta_schedule.stage})
    return GRPOResult(policy, output_dir, history, state, trained=True, resumed_from=resume_from)


__all__ = [
    "grpo_config", "FeatureProcessor", "grpo_dataset",
    "make_grpo_rewards", "GRPOResult", "merge_adapters", "load_grpo_model", "train_grpo",
]
