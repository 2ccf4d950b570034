"""Tuning the vision-language model: LoRA, stage settings, training a stage, stacking stages.

Used by notebooks 04_reasoning_tuning (the demo's base training and stage 1), 05_location_tuning
(stage 2 on top of stage 1, and its ablation arms) and 07_gre_reasoning_rl (the cold-start SFT
stage, through :mod:`geolib.gre`); :mod:`geolib.stages` runs the study's stages through it.

Training is transformers' ``Trainer`` (progress bar, checkpoints, resume, logged loss) with a
collator that puts the loss on assistant tokens only (:class:`geolib.conversations.ConversationCollator`).
The two GeoReasoner stages are two **named** LoRA adapters (``"reasoning"``, ``"location"``):
stage 2 adds its adapter on top of a frozen stage 1 and both stay active, in training and at
inference (:func:`train_stage`, :func:`load_staged_model`). This avoids the trap of GeoReasoner's
released loader, which loads the second LoRA as ``"default"`` over the first
(docs/known-traps.md). Named adapters rather than merging stage 1 into the weights: merging a
small LoRA update into bf16 weights rounds much of it away. A stage folder's versions, intact
checkpoints and finished-stage record are kept by :mod:`geolib.checkpoints`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geolib import io as gio
from geolib import checkpoints, vlm
from geolib.conversations import ConversationCollator, conversation_texts

import torch  # noqa: E402  (after the torchvision patch of geolib.vlm)
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

# ---------------------------------------------------------------------------------------------
# LoRA and the stages' hyperparameters

#: LoRA goes on the language model's attention and MLP projections: never the vision tower
#: (Qwen2.5-VL's vision blocks also have gate/up/down projections, hence the regex); on the
#: projector only where a stage asks for it (``projector`` of :func:`lora_targets`).
LORA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

#: The projector's linear layers (LLaVA's ``multi_modal_projector``, Qwen2.5-VL's patch merger):
#: what ``projector=True`` of :func:`lora_config` adds LoRA to.
LORA_PROJECTOR_PATTERN = r".*(multi_modal_projector\.linear_[12]|visual\.merger\.mlp\.[02])"

#: Keys of a stage's settings that are not ``TrainingArguments`` fields: the effective batch
#: (gradient accumulation follows from it), the longest sequence in tokens, and the warm-up as a
#: share of the steps. Everything else in a stage's settings is a ``TrainingArguments`` field.
NON_TRAINER_KEYS = ("effective_batch_size", "max_length", "warmup_ratio")


# ---------------------------------------------------------------------------------------------
# Training


def lora_targets(target_modules: Sequence[str] = LORA_TARGET_MODULES, projector: bool = False) -> str:
    """The ``target_modules`` of a ``LoraConfig``: the language model's projections ``target_modules``,
    and the projector's linear layers when ``projector`` is true (a regex, so the vision tower's own
    projections of the same names are never adapted).

    LLaVA's own fine-tuning trains the projector beside the language model; GeoReasoner's LoRA
    (the paper profile) adapts the language model only. The demo adapts the projector too: its
    language model learned to read the image tokens from scratch in the base training, and a LoRA
    stage that cannot change how image tokens enter the model fits its own training images far
    worse (docs/known-traps.md gives the measurement).
    """
    bad = [m for m in target_modules if not re.fullmatch(r"\w+", m)]
    if bad:
        raise ValueError(f"target_modules must be plain module names, got {bad}")
    regex = r".*language_model.*\.(" + "|".join(target_modules) + r")"
    return f"({regex})|({LORA_PROJECTOR_PATTERN})" if projector else regex


def lora_config(r: int = 64, lora_alpha: int = 16, lora_dropout: float = 0.05,
                target_modules: Sequence[str] = LORA_TARGET_MODULES, projector: bool = False):
    """A peft ``LoraConfig`` on :func:`lora_targets` (the notebooks write the same line out).

    Args:
        r: LoRA rank. lora_alpha: scaling numerator (update scale alpha / r). lora_dropout: on the LoRA input.
        target_modules: projection names inside the language model (default q, k, v, o, gate, up, down).
        projector: also put LoRA on the projector (:data:`LORA_PROJECTOR_PATTERN`).
    """
    from peft import LoraConfig

    return LoraConfig(r=int(r), lora_alpha=int(lora_alpha), lora_dropout=float(lora_dropout),
                      target_modules=lora_targets(target_modules, projector), bias="none", task_type="CAUSAL_LM")


def training_arguments(output_dir: str | os.PathLike, hparams: Mapping[str, Any], **overrides) -> TrainingArguments:
    """``TrainingArguments`` from a stage's settings (the ``reasoning_tuning``, ``location_tuning``,
    ``base_training`` and ``gre_sft`` parameters of notebooks 04, 05 and 07).

    The settings are ``TrainingArguments`` fields plus :data:`NON_TRAINER_KEYS`:
    ``effective_batch_size`` becomes gradient accumulation over ``per_device_train_batch_size``
    × the number of processes; ``warmup_ratio`` becomes a fractional ``warmup_steps``;
    ``max_length`` is the collator's. On a CPU-only machine ``use_cpu=True`` and bf16 off; on a
    GPU bf16 when supported. Checkpoints every ``save_steps`` (default 50) keeping the last two;
    loss logged every ``logging_steps``.

    Args:
        output_dir: where checkpoints go.
        hparams: the stage's settings.
        overrides: any ``TrainingArguments`` field (e.g. ``max_steps=1`` in tests).

    Raises:
        ValueError: a setting that is neither a ``TrainingArguments`` field nor one of
            :data:`NON_TRAINER_KEYS` (a typo in a params file), with the closest allowed key.
    """
    from dataclasses import fields

    from geolib.params import unknown_keys_error

    hp = dict(hparams)
    allowed = {f.name for f in fields(TrainingArguments)} | set(NON_TRAINER_KEYS) | {"gradient_checkpointing"}
    unknown = sorted(set(hp) - allowed)
    if unknown:
        raise unknown_keys_error("stage", unknown, allowed, "a stage's settings are TrainingArguments fields and "
                                 f"{', '.join(NON_TRAINER_KEYS)}")
    kwargs: dict[str, Any] = {k: v for k, v in hp.items() if k not in NON_TRAINER_KEYS}
    per_device = int(kwargs.setdefault("per_device_train_batch_size", 8))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "effective_batch_size" in hp and "gradient_accumulation_steps" not in kwargs:
        effective = int(hp["effective_batch_size"])
        if effective % (per_device * world):
            raise ValueError(
                f"effective_batch_size={effective} is not a multiple of per_device_train_batch_size={per_device} "
                f"× {world} processes"
            )
        kwargs["gradient_accumulation_steps"] = effective // (per_device * world)
    if "warmup_ratio" in hp and "warmup_steps" not in kwargs:
        kwargs["warmup_steps"] = float(hp["warmup_ratio"])
    cuda = torch.cuda.is_available()
    defaults = {
        "use_cpu": not cuda,
        "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
        "logging_steps": 10,
        "logging_first_step": True,
        "save_strategy": "steps",
        "save_steps": 50,
        "save_total_limit": 2,
        "report_to": "none",
        "remove_unused_columns": False,
        "label_names": ["labels"],
        "dataloader_pin_memory": cuda,
        "disable_tqdm": False,
        "seed": 0,
        "train_sampling_strategy": "group_by_length",  # less padding; batches stay random
    }
    # transformers 5 renamed gradient checkpointing to activation checkpointing.
    if "gradient_checkpointing" in kwargs:
        kwargs["activation_checkpointing"] = bool(kwargs.pop("gradient_checkpointing"))
    if kwargs.get("activation_checkpointing"):
        defaults["activation_checkpointing_kwargs"] = {"use_reentrant": False}
    merged = {**defaults, **kwargs, **overrides}
    return TrainingArguments(output_dir=str(output_dir), **merged)


@dataclass
class StageResult:
    """What :func:`train_stage` returns.

    Attributes:
        model: the trained model (a ``PeftModel`` with the stage's adapter active on top of the
            earlier ones, or the fully fine-tuned model).
        stage: the stage name (= the adapter's name for LoRA stages).
        output_dir: the stage folder (``stage.json``, ``log_history.json``/``.csv``, ``adapter/``
            or ``model/``, ``checkpoint-*``).
        log_history: the trainer's log (one dict per logging step: ``loss``, ``learning_rate``,
            ``epoch``, ``step``; a final entry with ``train_runtime``, ``train_samples_per_second``).
        trained: False when a finished, current stage was found and loaded instead of trained.
        resumed_from: the checkpoint training resumed from, if any.
    """

    model: Any
    stage: str
    output_dir: Path
    log_history: list[dict] = field(default_factory=list)
    trained: bool = True
    resumed_from: str | None = None

    @property
    def metrics(self) -> dict:
        """The final train metrics (runtime, samples/s, steps/s, mean loss)."""
        final = [h for h in self.log_history if "train_runtime" in h]
        return dict(final[-1]) if final else {}


class _LogHistoryWriter(TrainerCallback):
    """Writes the trainer's log history as JSON and CSV (atomically) every time it logs."""

    def __init__(self, output_dir: Path):
        self.output_dir = output_dir

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero:
            write_log_history(self.output_dir, state.log_history)


def write_log_history(output_dir: str | os.PathLike, log_history: list[dict]) -> None:
    """``log_history.json`` and ``log_history.csv`` in ``output_dir``, written atomically."""
    import pandas as pd

    output_dir = Path(output_dir)
    gio.write_json(output_dir / "log_history.json", log_history)
    frame = pd.DataFrame(log_history)
    gio.atomic_write_bytes(output_dir / "log_history.csv", frame.to_csv(index=False).encode("utf-8"))


class _StageTrainer(Trainer):
    """``Trainer`` that resumes a LoRA stage into its own named adapter.

    The stock resume reloads every adapter of a checkpoint and then activates only the first
    one, which would switch the stacked stage 1 off. Here only the stage's adapter weights are
    loaded, in place; which adapters are active does not change.
    """

    stage_adapter: str | None = None

    def _get_train_sampler(self, train_dataset=None):
        """Group conversations of similar length into batches (less padding; ``group_by_length``).

        Lengths are the conversations' text lengths in characters (the image tokens are the same
        for all), so nothing is tokenized ahead of training.
        """
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy == "group_by_length" and isinstance(dataset, list):
            from transformers.trainer_pt_utils import LengthGroupedSampler

            lengths = [sum(len(t) for t in conversation_texts([c])) for c in dataset]
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=lengths)
        return super()._get_train_sampler(train_dataset)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if self.stage_adapter is None:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        model = model if model is not None else self.model
        file = Path(resume_from_checkpoint) / self.stage_adapter / "adapter_model.safetensors"
        if not file.exists():
            raise FileNotFoundError(f"checkpoint {resume_from_checkpoint} holds no adapter {self.stage_adapter!r} ({file})")
        result = set_peft_model_state_dict(model, load_file(str(file)), adapter_name=self.stage_adapter)
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise RuntimeError(f"adapter checkpoint {file} has unexpected keys, e.g. {unexpected[:3]}")


def _jsonable(obj):
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in (sorted(obj) if isinstance(obj, set) else obj)]
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _settings_digest(stage_name, conversations, hparams, lora, images, processor) -> str:
    """What a stage's result depends on besides the starting weights: data, settings, images, tokens."""
    h = hashlib.sha256()
    h.update(stage_name.encode())
    tok = vlm.tokenizer_of(processor)
    h.update(json.dumps(sorted(tok.get_vocab().items())).encode())
    h.update(str(getattr(processor, "chat_template", "")).encode())
    h.update(json.dumps(_jsonable(conversations), sort_keys=True, ensure_ascii=False).encode())
    h.update(json.dumps(_jsonable(hparams), sort_keys=True).encode())
    h.update(json.dumps(_jsonable(lora.to_dict() if lora is not None else None), sort_keys=True).encode())
    if isinstance(images, np.ndarray):
        h.update(f"{images.shape}:{images.dtype}".encode())
        step = max(1, len(images) // 64)
        h.update(np.ascontiguousarray(images[::step]).tobytes())
    elif images is not None:
        h.update(json.dumps([str(x) for x in images]).encode())
    return h.hexdigest()


#: Starting-weight digests of stages begun in this process, per model object and (stage folder,
#: settings): a full fine-tune interrupted in a notebook has changed the model's weights, and a
#: rerun of the cell must still find (and resume) its own checkpoints.
_STARTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _start_digest(model, output_dir: Path, settings: str) -> str:
    key = (str(output_dir.resolve()), settings)
    try:
        seen = _STARTED.setdefault(model, {})
    except TypeError:  # not weak-referenceable
        return vlm.model_digest(model)
    if key not in seen:
        seen[key] = vlm.model_digest(model)
    return seen[key]


def _hparams_dict(training_args) -> dict:
    if isinstance(training_args, TrainingArguments):
        d = training_args.to_dict()
        for k in ("output_dir", "logging_dir", "run_name", "hub_token", "push_to_hub_token"):
            d.pop(k, None)
        return d
    return dict(training_args)


def _final_state(checkpoint: str | None):
    """The ``TrainerState`` of a checkpoint saved at the run's last step, else None.

    Resuming the trainer from its own final checkpoint would take one step more than the run did.
    """
    if checkpoint is None:
        return None
    from transformers import TrainerState

    state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    return state if state.max_steps and state.global_step >= state.max_steps else None


def add_stage_adapter(model, stage_name: str, lora):
    """Add a trainable LoRA adapter named ``stage_name`` on top of any existing adapters.

    Every earlier adapter stays active and frozen; only the new adapter's LoRA weights require
    gradients (the base weights, vision tower and projector are frozen by peft).

    Returns:
        The ``PeftModel`` (a new wrapper for the first adapter, ``model`` itself afterwards).
    """
    from peft import PeftModel, get_peft_model

    if isinstance(model, PeftModel):
        if stage_name in model.peft_config:
            raise ValueError(f"the model already has an adapter named {stage_name!r}: {list(model.peft_config)}")
        model.add_adapter(stage_name, lora)
        names = list(model.peft_config)
    else:
        with warnings.catch_warnings():  # peft 0.21 still asks for the old name
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = get_peft_model(model, lora, adapter_name=stage_name)
        names = [stage_name]
    activate_adapters(model, names, trainable=[stage_name])
    return model


def activate_adapters(model, names: Sequence[str], trainable: Sequence[str] = ()) -> None:
    """Make exactly the adapters ``names`` active (their updates add up); only ``trainable`` get gradients."""
    missing = [n for n in names if n not in model.peft_config]
    if missing:
        raise ValueError(f"no adapters {missing} in the model; it has {list(model.peft_config)}")
    model.base_model.set_adapter(list(names))
    model.base_model.set_requires_grad(list(model.peft_config), False)
    if trainable:
        model.base_model.set_requires_grad(list(trainable), True)
    if list(model.active_adapters) != list(names):
        raise RuntimeError(f"active adapters are {model.active_adapters}, expected {list(names)}")


def train_stage(
    model,
    processor,
    conversations: Sequence[dict],
    stage_name: str,
    training_args: TrainingArguments | Mapping[str, Any],
    lora_config,
    output_dir: str | os.PathLike,
    images=None,
    resume: bool = True,
    max_length: int | None = None,
) -> StageResult:
    """Train one stage with transformers' ``Trainer``; LoRA (a named adapter) or full fine-tune.

    * ``lora_config`` given: a new adapter named ``stage_name`` is added on top of the model's
      existing adapters (stage 1 stays active and frozen under stage 2); only its LoRA weights
      train. The adapter is saved to ``output_dir/adapter/<stage_name>/``.
    * ``lora_config=None``: full fine-tune of everything but the vision tower (the demo's base
      training: language model + projector); saved to ``output_dir/model/`` with the processor.

    The stage is skipped (its result loaded) when ``output_dir/stage.json`` records a finished
    run with the same fingerprint (conversations, settings, LoRA config, starting weights,
    images). With ``resume=True`` an interrupted run restarts from its last checkpoint
    (``output_dir/checkpoint-*``); checkpoints of a different fingerprint are deleted first.
    The trainer's log history is written to ``log_history.json``/``.csv`` as it logs.

    Args:
        model: the model to train (from :func:`geolib.vlm.build_model`, :func:`geolib.vlm.load_model`,
            a previous stage or :func:`load_staged_model`).
        processor: its processor / tokenizer.
        conversations: from :func:`geolib.conversations.make_conversations` /
            :func:`geolib.conversations.base_training_conversations`.
        stage_name: ``"base"``, ``"reasoning"``, ``"location"``, ... (the adapter name).
        training_args: a stage's settings (notebook 04's ``reasoning_tuning``, ...; made into
            ``TrainingArguments`` by :func:`training_arguments`) or a ``TrainingArguments`` whose
            ``output_dir`` is ``output_dir``.
        lora_config: a peft ``LoraConfig`` (the notebooks' own, or :func:`lora_config`), or None (full fine-tune).
        output_dir: the stage folder.
        images: what the conversations' image keys index (a feature array or paths), or None.
        resume: resume from the last checkpoint of an interrupted run.
        max_length: longest sequence in tokens (default: the stage dict's ``max_length``).

    Returns:
        A :class:`StageResult`.
    """
    if not re.fullmatch(r"[A-Za-z][\w\-]*", stage_name or ""):
        raise ValueError(f"stage_name must be a plain name (letters, digits, _ or -), got {stage_name!r}")
    if not conversations:
        raise ValueError("train_stage needs at least one conversation")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    hparams = _hparams_dict(training_args)
    if isinstance(training_args, TrainingArguments):
        if Path(training_args.output_dir).resolve() != output_dir.resolve():
            raise ValueError(f"training_args.output_dir is {training_args.output_dir}, but the stage folder is "
                             f"{output_dir}: checkpoints and resume need them to be the same")
    elif max_length is None:
        max_length = hparams.get("max_length")
    hparams["max_length"] = max_length
    if lora_config is not None and stage_name in (getattr(model, "peft_config", None) or {}):
        raise ValueError(
            f"the model already has an adapter named {stage_name!r} (from an earlier call, perhaps interrupted). "
            f"Start again from the model before this stage (build_model / load_model / load_staged_model): "
            f"training resumes from the last checkpoint in {output_dir}"
        )
    settings = _settings_digest(stage_name, conversations, hparams, lora_config, images, processor)
    fingerprint = hashlib.sha256(f"{settings}:{_start_digest(model, output_dir, settings)}".encode()).hexdigest()

    done = output_dir / "stage.json"
    started = output_dir / "fingerprint.json"
    try:
        before = gio.read_json(started).get("fingerprint") if started.exists() else None
    except (OSError, ValueError, AttributeError):
        before = None
    if before is None and done.exists():
        try:
            before = gio.read_json(done).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            before = None
    if before is not None and before != fingerprint:
        back = checkpoints.switch_stage_version(output_dir, before, fingerprint)
        warnings.warn(f"{output_dir}: settings, data or starting weights changed; the previous run is kept in "
                      f"{checkpoints.VERSIONS}/{before[:16]}/"
                      + ("; the run with these settings was brought back" if back else ""),
                      stacklevel=2)
    info = checkpoints.finished_stage(output_dir)
    if info is not None and info.get("fingerprint") == fingerprint:
        return _load_finished_stage(model, info, output_dir)
    gio.write_json(started, {"stage": stage_name, "fingerprint": fingerprint})

    if isinstance(training_args, TrainingArguments):
        args = training_args
    else:
        args = training_arguments(output_dir, training_args)
    if lora_config is not None:
        from transformers import set_seed

        set_seed(args.seed)  # LoRA's A matrices start random: the same seed gives the same run
        model = add_stage_adapter(model, stage_name, lora_config)
    else:
        from peft import PeftModel

        if isinstance(model, PeftModel):
            raise ValueError("a full fine-tune (lora_config=None) needs a plain model, not one with adapters")
        for p in model.parameters():
            p.requires_grad_(True)
        vlm.freeze_vision_tower(model)

    trainer = _StageTrainer(
        model=model,
        args=args,
        train_dataset=list(conversations),
        data_collator=ConversationCollator(processor, images, max_length),
        callbacks=[_LogHistoryWriter(output_dir)],
    )
    trainer.stage_adapter = stage_name if lora_config is not None else None
    resume_from = None
    if resume:
        last = checkpoints.last_intact_checkpoint(output_dir)
        resume_from = str(last) if last is not None else None
    final_state = _final_state(resume_from)
    use_cache = model.config.use_cache
    model.config.use_cache = False
    try:
        if final_state is not None:  # the run had finished (the stage record was lost): load, do not step again
            trainer._load_from_checkpoint(resume_from)
            trainer.state = final_state
        else:
            trainer.train(resume_from_checkpoint=resume_from)
    finally:
        model.config.use_cache = use_cache
    model.eval()
    if lora_config is not None:
        saved = {"kind": "lora", "adapter_dir": f"adapter/{stage_name}", "adapters": list(model.active_adapters)}
    else:
        saved = {"kind": "full", "model_dir": "model"}
    if trainer.is_world_process_zero():  # under `accelerate launch`, one process writes
        write_log_history(output_dir, trainer.state.log_history)
        if lora_config is not None:
            model.save_pretrained(str(output_dir / "adapter"), selected_adapters=[stage_name])
        else:
            model.save_pretrained(str(output_dir / "model"))
            processor.save_pretrained(str(output_dir / "model"))
        gio.write_json(done, {"stage": stage_name, "fingerprint": fingerprint, "steps": trainer.state.global_step,
                              "n_conversations": len(conversations), **saved})
    trainer.accelerator.wait_for_everyone()
    return StageResult(model, stage_name, output_dir, list(trainer.state.log_history), True, resume_from)


def _load_finished_stage(model, info: dict, output_dir: Path) -> StageResult:
    """Load a finished stage's result onto ``model`` (the same starting model as when it trained)."""
    history = gio.read_json(output_dir / "log_history.json") if (output_dir / "log_history.json").exists() else []
    if info["kind"] == "lora":
        from peft import PeftModel

        name = info["stage"]
        path = str(output_dir / info["adapter_dir"])
        if isinstance(model, PeftModel):
            model.load_adapter(path, adapter_name=name, is_trainable=False)
            names = [n for n in model.peft_config]
        else:
            model = PeftModel.from_pretrained(model, path, adapter_name=name, is_trainable=False)
            names = [name]
        activate_adapters(model, names)
    else:
        dtype = next(model.parameters()).dtype
        model, _ = vlm.load_model(output_dir, dtype=next(k for k, v in vlm.DTYPES.items() if v == dtype))
    model.eval()
    return StageResult(model, info["stage"], output_dir, history, trained=False)


def load_staged_model(base, stage_dirs: Sequence[str | os.PathLike], dtype: str = "float32"):
    """Stack finished stages onto a base model, each as its own named adapter, all active.

    Args:
        base: the base model, or the folder of a full stage (the demo's base training) to load.
        stage_dirs: LoRA stage folders written by :func:`train_stage`, in training order (e.g.
            ``[stage1_dir, stage2_dir]``).
        dtype: dtype when ``base`` is a folder.

    Returns:
        A ``PeftModel`` in eval mode with the adapters active in order and frozen (inference; pass
        it to :func:`train_stage` to add a further stage).
    """
    from peft import PeftModel

    if isinstance(base, (str, os.PathLike)):
        base, _ = vlm.load_model(base, dtype)
    if not stage_dirs:
        raise ValueError("load_staged_model needs at least one stage folder")
    model, names = base, []
    for d in stage_dirs:
        d = Path(d)
        if not (d / "stage.json").exists():
            raise FileNotFoundError(f"{d} holds no finished stage (stage.json missing)")
        info = gio.read_json(d / "stage.json")  # names the file when it is damaged
        if info.get("kind") != "lora":
            raise ValueError(f"{d} is a full fine-tune stage; pass it as `base`")
        name, path = info["stage"], str(d / info["adapter_dir"])
        problem = checkpoints.weights_problem(Path(path))
        if problem:
            raise gio.ReadError(f"stage {name!r} cannot be loaded: {problem}. Rerun the notebook that trains it "
                                "(the stage notices and trains again)")
        if name in names:
            raise ValueError(f"two stages named {name!r}")
        if isinstance(model, PeftModel):
            model.load_adapter(path, adapter_name=name, is_trainable=False)
        else:
            model = PeftModel.from_pretrained(model, path, adapter_name=name, is_trainable=False)
        names.append(name)
    activate_adapters(model, names)
    model.eval()
    return model


__all__ = [
    "LORA_TARGET_MODULES", "LORA_PROJECTOR_PATTERN", "NON_TRAINER_KEYS", "lora_targets", "lora_config", "training_arguments",
    "train_stage", "StageResult", "add_stage_adapter", "activate_adapters", "load_staged_model", "write_log_history",
]
