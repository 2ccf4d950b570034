"""The vision-language model: build, format conversations, train a stage, stack stages, generate.

Used by notebooks 04_reasoning_tuning (base training on the demo profile, stage 1),
05_location_tuning (stage 2 on top of stage 1), 06_evaluation (inference) and
07_gre_reasoning_rl (the cold-start SFT stage). One code path serves every profile:

* ``paper``: ``Qwen/Qwen2.5-VL-7B-Instruct`` (or ``Qwen/Qwen2-VL-7B-Instruct``) through
  ``AutoModelForImageTextToText`` + ``AutoProcessor`` at a pinned ``revision``, bf16, gradient
  checkpointing, vision tower frozen (:func:`build_model`).
* ``demo`` / ``ci``: a small LLaVA-style model (:func:`build_demo_model`): the frozen ImageNet
  EfficientNet-Lite0 of :mod:`geolib.features` (a 7 × 7 map of 1280 dimensions at 224 px,
  average-pooled to ``image_grid`` × ``image_grid`` tokens, 2 × 2 by default) feeds LLaVA's
  two-layer projector into a small randomly initialised Qwen2 decoder. Its vision module takes
  either pixels (B, 3, 224, 224) or the cached, pooled tower features (B, 4, 1280), so features
  are computed once per image (``features.image_features``) and reused by base training, both
  stages and evaluation. Its tokenizer is a byte-level BPE trained on the demo corpus
  (:func:`train_tokenizer`) with Qwen's special tokens and a ChatML chat template. Because its
  language model starts from random weights, the demo first trains a *base* model on captions
  that never name the place (:func:`base_training_conversations`), standing in for a real base
  model's pretraining.

Training is transformers' ``Trainer`` (progress bar, checkpoints, resume, logged loss) with a
collator that puts the loss on assistant tokens only (:class:`ConversationCollator`). The two
GeoReasoner stages are two **named** LoRA adapters (``"reasoning"``, ``"location"``): stage 2 adds
its adapter on top of a frozen stage 1 and both stay active, in training and at inference
(:func:`train_stage`, :func:`load_staged_model`). This avoids the trap of GeoReasoner's released
loader, which loads the second LoRA as ``"default"`` over the first (docs/known-traps.md).
Named adapters rather than merging stage 1 into the weights: merging a small LoRA update into
bf16 weights rounds much of it away.

A conversation is a dict ``{"image": key, "messages": [...]}`` where ``key`` indexes the
``images`` passed alongside (a feature array (N, tokens, 1280) or a list of paths), or is itself an
image path when no ``images`` are passed; ``messages`` are chat messages whose user turn holds
``{"type": "image"}`` and the prompt.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import os
import re
import shutil
import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from geolib import io as gio
from geolib import facts, runtime

runtime.patch_torchvision()

import torch  # noqa: E402  (after the torchvision patch)
from torch import nn  # noqa: E402
from transformers import (  # noqa: E402
    AutoConfig,
    AutoModel,
    PreTrainedConfig,
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.modeling_outputs import BaseModelOutputWithPooling  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Prompts, tokens and the stages' hyperparameters

#: The prompts of the study. ``reasoning`` and ``location`` are GeoReasoner's two tuning
#: prompts; ``describe`` is the demo's base training prompt; ``evaluation`` is GeoReasoner's
#: released inference prompt (``GeoReasoner/infer.py``), verbatim, for inference only (never
#: trained on).
PROMPTS = {
    "describe": "Describe the image.",
    "reasoning": "Which country is the image located? Explain the reason.",
    "location": "Which country and city is the image located?",
    "evaluation": (
        "According to the content of the image, please think step by step and deduce in which country and city "
        "the image is most likely located and offer possible explanations. Output in JSON format, e.g., "
        "{'country': '', 'city': '' ,'reasons':''}."
    ),
}

#: Qwen2-VL's special tokens; the demo tokenizer uses the same ones so that one collator and one
#: generation path serve both model families.
PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_TOKEN = "<|image_pad|>"
VIDEO_TOKEN = "<|video_pad|>"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, IM_END, VISION_START, VISION_END, IMAGE_TOKEN, VIDEO_TOKEN)

#: ChatML as Qwen2-VL writes it (an image part becomes vision start, one image pad, vision end;
#: the processor or :func:`encode_texts` expands the pad to one token per image feature). Unlike
#: Qwen's own template it adds no default system message (shorter sequences for the demo).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

#: LoRA goes on the language model's attention and MLP projections: never the vision tower
#: (Qwen2.5-VL's vision blocks also have gate/up/down projections, hence the regex); on the
#: projector only where a stage asks for it (``lora_projector``, :func:`lora_config`).
LORA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

#: GeoReasoner's LoRA tuning settings (r, alpha, dropout, learning rate, schedule, warm-up, weight
#: decay, Adam β2, epochs, effective batch, max length). The study uses them for both stages
#: (:data:`PAPER_STAGE2` is a copy); ``per_device_train_batch_size`` × gradient accumulation gives
#: the effective batch of 80 on however many GPUs.
PAPER_STAGE1 = {
    "lora_r": 64,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "lora_projector": False,
    "learning_rate": 1e-5,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.01,
    "weight_decay": 0.1,
    "adam_beta2": 0.95,
    "num_train_epochs": 5,
    "effective_batch_size": 80,
    "per_device_train_batch_size": 4,
    "max_length": 2048,
    "gradient_checkpointing": True,
}
PAPER_STAGE2 = dict(PAPER_STAGE1)

#: The demo's base training: full fine-tune of the small language model and the projector from
#: random weights (tower frozen), so a high learning rate and a few epochs.
DEMO_BASE = {
    "learning_rate": 1e-3,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.05,
    "weight_decay": 0.01,
    "adam_beta2": 0.98,
    "num_train_epochs": 3,
    "effective_batch_size": 32,
    "per_device_train_batch_size": 32,
    "max_length": 256,
    "gradient_checkpointing": False,
}

#: The demo's LoRA stages, scaled down from :data:`PAPER_STAGE1`: rank 16 instead of 64 (the
#: demo language model's hidden size is 128, not 3584), alpha = 2r (the usual default for a
#: small rank), a learning rate 100× higher (a tiny model, few steps), 3 epochs instead of 5 and an
#: effective batch of 16 instead of 80 (more optimiser steps from a small data set), and LoRA on
#: the projector too (LLaVA trains its projector when it fine-tunes; the paper's LoRA does not).
#: Scheduler, warm-up, weight decay, β2 and dropout are the paper's.
DEMO_STAGE1 = {
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "lora_projector": True,
    "learning_rate": 1e-3,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.01,
    "weight_decay": 0.1,
    "adam_beta2": 0.95,
    "num_train_epochs": 3,
    "effective_batch_size": 16,
    "per_device_train_batch_size": 16,
    "max_length": 256,
    "gradient_checkpointing": False,
}
DEMO_STAGE2 = dict(DEMO_STAGE1)

#: Keys of the hyperparameter dicts that are not ``TrainingArguments`` fields.
_NON_TRAINER_KEYS = ("lora_r", "lora_alpha", "lora_dropout", "lora_projector", "effective_batch_size", "max_length",
                     "warmup_ratio")

# ---------------------------------------------------------------------------------------------
# The demo's vision module: pixels or cached features → (B, 49, 1280) tokens


class FeatureTowerConfig(PreTrainedConfig):
    """Config of :class:`FeatureTowerModel` (the demo's frozen pretrained vision tower).

    Attributes:
        tower: a tower name of :func:`geolib.features.load_image_tower`.
        hidden_size: feature dimension of one token (1280 for EfficientNet-Lite0).
        image_size: input side in pixels (224).
        patch_size: pixels per token side (224 / 7 = 32).
        tokens_per_side: side of the token grid the language model sees: the tower's own 7 × 7
            map, or that map average-pooled to a coarser grid (:func:`pool_tokens` for cached
            features; the forward pass pools pixels' maps the same way).
    """

    model_type = "geolib_feature_tower"

    tower: str = "efficientnet_lite0"
    hidden_size: int = 1280
    image_size: int = 224
    patch_size: int = 32
    tokens_per_side: int = 7


class FeatureTowerModel(PreTrainedModel):
    """A frozen pretrained CNN as a LLaVA vision tower that also accepts its cached features.

    ``forward(pixel_values)`` takes pixels (B, 3, S, S), runs the tower and flattens its
    (B, C, H, W) map to (B, H·W, C) tokens; or takes features already in that token form
    (B, T, C), e.g. rows of :func:`geolib.features.image_features`, and passes them through. The
    weights are the packaged ImageNet ones (``features.load_image_tower``); ``train()`` keeps the
    tower in eval mode so its batch-norm statistics never move.
    """

    config_class = FeatureTowerConfig
    main_input_name = "pixel_values"
    base_model_prefix = "feature_tower"
    input_modalities = ("image",)
    _no_split_modules: list[str] = []
    # No attention inside: any implementation the language model uses is fine here.
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def __init__(self, config: FeatureTowerConfig):
        super().__init__(config)
        from geolib import features

        # A private copy: load_image_tower() is cached per process and must not be moved or cast.
        # from_pretrained builds models on the meta device in a chosen default dtype; the shared
        # tower must still be loaded for real, in float32, or the cache would hold an empty one.
        # Loading must not draw from the caller's random numbers either (a seeded build of the
        # language model would differ between the first build in a process and the next).
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float32)
        try:
            with torch.device("cpu"), torch.random.fork_rng(devices=[]):
                self.tower = copy.deepcopy(features.load_image_tower(config.tower))
        finally:
            torch.set_default_dtype(previous)
        for p in self.tower.parameters():
            p.requires_grad_(False)
        # Per-channel standardisation of the tower's tokens (identity until
        # :func:`standardize_image_features` sets it from training images; saved with the model).
        self.register_buffer("feature_mean", torch.zeros(config.hidden_size))
        self.register_buffer("feature_scale", torch.ones(config.hidden_size))
        self.post_init()

    def _init_weights(self, module):  # pretrained: nothing to initialise
        return

    def train(self, mode: bool = True):
        super().train(mode)
        self.tower.eval()
        return self

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        """Pixels (B, 3, S, S) or features (B, T, C) → tokens (B, T, C) as ``hidden_states[-1]``."""
        x = pixel_values
        dtype = next(self.tower.parameters()).dtype
        if x.ndim == 4:
            if x.shape[1] != 3:
                raise ValueError(f"pixels must be (B, 3, H, W), got {tuple(x.shape)}")
            with torch.no_grad():
                maps = self.tower(x.to(dtype))  # (B, C, H, W)
                side = self.config.tokens_per_side
                if maps.shape[-2:] != (side, side):  # the coarser grid of pool_tokens, same cells
                    maps = torch.nn.functional.adaptive_avg_pool2d(maps, side)
            tokens = maps.flatten(2).transpose(1, 2)  # (B, H·W, C)
        elif x.ndim == 3:
            if x.shape[-1] != self.config.hidden_size:
                raise ValueError(
                    f"features must be (B, tokens, {self.config.hidden_size}), got {tuple(x.shape)}"
                )
            if x.shape[1] != self.config.tokens_per_side**2:
                raise ValueError(
                    f"this model sees {self.config.tokens_per_side**2} tokens per image, got {x.shape[1]}: "
                    f"pool the cached features with geolib.vlm.pool_tokens(features, {self.config.tokens_per_side})"
                )
            tokens = x.to(dtype)
        else:
            raise ValueError(
                f"expected pixels (B, 3, H, W) or features (B, tokens, {self.config.hidden_size}), "
                f"got shape {tuple(x.shape)}"
            )
        tokens = (tokens - self.feature_mean.to(tokens.dtype)) / self.feature_scale.to(tokens.dtype)
        return BaseModelOutputWithPooling(
            last_hidden_state=tokens, pooler_output=tokens.mean(dim=1), hidden_states=(tokens,)
        )


try:
    AutoConfig.register(FeatureTowerConfig.model_type, FeatureTowerConfig)
    AutoModel.register(FeatureTowerConfig, FeatureTowerModel)
except ValueError:  # already registered (module reloaded)
    pass

# ---------------------------------------------------------------------------------------------
# Tokenizer (demo)


def train_tokenizer(texts: Sequence[str], vocab_size: int, path: str | os.PathLike | None = None):
    """Train a byte-level BPE on ``texts`` and wrap it as a fast tokenizer with a chat template.

    Qwen2-VL's special tokens (:data:`SPECIAL_TOKENS`) are added, ``<|endoftext|>`` pads and
    ``<|im_end|>`` ends a turn; :data:`CHAT_TEMPLATE` formats conversations. Byte-level: any text
    encodes, even characters never seen in training.

    Args:
        texts: the training corpus (all conversation texts the model will see).
        vocab_size: target vocabulary size including the 256 byte symbols and special tokens
            (the result is smaller when the corpus has fewer merges to learn).
        path: folder to ``save_pretrained`` into (reload with :func:`load_processor`); None: not saved.

    Returns:
        A ``PreTrainedTokenizerFast``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [t for t in texts if isinstance(t, str) and t]
    if not texts:
        raise ValueError("train_tokenizer needs at least one non-empty text")
    minimum = 256 + len(SPECIAL_TOKENS)
    if vocab_size < minimum:
        raise ValueError(f"vocab_size must be at least {minimum} (256 bytes + special tokens), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )
    if path is not None:
        tokenizer.save_pretrained(str(path))
    return tokenizer


def load_processor(path: str | os.PathLike):
    """Reload a saved processor (Qwen's ``AutoProcessor``) or demo tokenizer from a folder."""
    from transformers import AutoProcessor, AutoTokenizer

    path = Path(path)
    if (path / "processor_config.json").exists() or (path / "preprocessor_config.json").exists():
        return AutoProcessor.from_pretrained(str(path))
    return AutoTokenizer.from_pretrained(str(path))


def _tokenizer(processor):
    """The tokenizer of a processor (or the processor itself when it is a tokenizer)."""
    return getattr(processor, "tokenizer", processor)


def _is_hf_processor(processor) -> bool:
    return hasattr(processor, "image_processor")


# ---------------------------------------------------------------------------------------------
# Model building


@dataclass(frozen=True)
class ModelSpec:
    """What model to build: a hub model (paper profile) or the demo LLaVA-style model.

    Attributes:
        model_id: ``"demo"`` or a hub id (``"Qwen/Qwen2.5-VL-7B-Instruct"``, ``"Qwen/Qwen2-VL-7B-Instruct"``).
        revision: hub commit to pin (required for hub models; a 40-hex commit, not a branch).
        dtype: ``"bfloat16"`` (GPU), ``"float16"`` or ``"float32"`` (CPU, tests).
        gradient_checkpointing: recompute activations in the backward pass (saves GPU memory).
        attn_implementation: ``"sdpa"``, ``"eager"`` or ``"flash_attention_2"``.
        min_pixels, max_pixels: Qwen's dynamic-resolution bounds (None: the processor's defaults).
        seed: seed of the demo language model's random initialisation.
        hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size, max_positions: the
            demo language model (a Qwen2 decoder).
        image_tower: the demo's tower name (:func:`geolib.features.load_image_tower`).
        image_grid: side of the demo's image token grid: 2 (the tower's 7 × 7 map average-pooled
            to 2 × 2 cells, 4 tokens; :func:`pool_tokens`) up to 7 (the map as it is, 49 tokens).
            Default 2: the demo's small language model fits its training images from 4 tokens
            far more easily than from 49, and every sequence is 45 tokens shorter
            (docs/known-traps.md).
    """

    model_id: str = "demo"
    revision: str | None = None
    dtype: str = "float32"
    gradient_checkpointing: bool = False
    attn_implementation: str = "sdpa"
    min_pixels: int | None = None
    max_pixels: int | None = None
    seed: int = 0
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 4
    intermediate_size: int = 512
    max_positions: int = 1024
    image_tower: str = "efficientnet_lite0"
    image_grid: int = 2

    @classmethod
    def coerce(cls, spec: ModelSpec | Mapping[str, Any]) -> ModelSpec:
        """A :class:`ModelSpec` from itself or a mapping (unknown keys are an error)."""
        if isinstance(spec, ModelSpec):
            return spec
        if not isinstance(spec, Mapping):
            raise TypeError(f"spec must be a ModelSpec or a mapping, got {type(spec).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ValueError(f"unknown model spec keys {unknown}; allowed: {sorted(known)}")
        return cls(**spec)


#: The paper profile's model (pin ``revision`` in params/paper.yaml).
PAPER_MODEL = {"model_id": "Qwen/Qwen2.5-VL-7B-Instruct", "dtype": "bfloat16", "gradient_checkpointing": True}
#: The demo profile's model: a 4-layer, 128-wide Qwen2 decoder behind EfficientNet-Lite0, whose 7 × 7
#: map is pooled to 2 × 2 tokens (sized so that the demo's whole tuning takes minutes on 2 CPU cores).
DEMO_MODEL = {"model_id": "demo"}

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def _torch_dtype(name: str) -> torch.dtype:
    if name not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {name!r}")
    return _DTYPES[name]


def vision_tower(model: nn.Module) -> nn.Module:
    """The vision tower of a Qwen2(.5)-VL or LLaVA model (also inside a PEFT wrapper)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # unwrap PEFT
    core = getattr(inner, "model", inner)
    for name in ("visual", "vision_tower", "vision_model"):
        if isinstance(getattr(core, name, None), nn.Module):
            return getattr(core, name)
    raise ValueError(f"no vision tower found in {type(inner).__name__} (looked for visual, vision_tower, vision_model)")


def freeze_vision_tower(model: nn.Module) -> nn.Module:
    """Set ``requires_grad=False`` on every parameter of the vision tower; returns ``model``."""
    for p in vision_tower(model).parameters():
        p.requires_grad_(False)
    return model


def build_demo_model(tokenizer, spec: ModelSpec | Mapping[str, Any] | None = None) -> PreTrainedModel:
    """The demo's LLaVA-style model: frozen pretrained tower → trained projector → small Qwen2 LM.

    Args:
        tokenizer: from :func:`train_tokenizer` (gives the vocabulary and the special token ids).
        spec: the language model's size (:class:`ModelSpec` fields); default :data:`DEMO_MODEL`.

    Returns:
        A ``LlavaForConditionalGeneration`` in float32 whose vision tower is a
        :class:`FeatureTowerModel` (ImageNet weights, frozen). The language model and the projector
        are randomly initialised from ``spec.seed``.
    """
    from transformers import LlavaConfig, LlavaForConditionalGeneration, Qwen2Config

    spec = ModelSpec.coerce(spec or DEMO_MODEL)
    tok = _tokenizer(tokenizer)
    ids = {t: tok.convert_tokens_to_ids(t) for t in (PAD_TOKEN, IM_END, IMAGE_TOKEN)}
    if any(i is None or i == tok.unk_token_id for i in ids.values()):
        raise ValueError(f"tokenizer lacks the special tokens {SPECIAL_TOKENS}; build it with train_tokenizer()")
    text_config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=ids[IM_END],
        pad_token_id=ids[PAD_TOKEN],
    )
    tower = FeatureTowerConfig(tower=spec.image_tower, tokens_per_side=spec.image_grid)
    tokens_per_side = tower.tokens_per_side
    config = LlavaConfig(
        vision_config=tower,
        text_config=text_config,
        image_token_id=ids[IMAGE_TOKEN],
        image_seq_length=tokens_per_side**2,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
        tie_word_embeddings=True,
    )
    config._attn_implementation = spec.attn_implementation
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = LlavaForConditionalGeneration(config)
    _set_generation_tokens(model, tok)
    return freeze_vision_tower(model)


def standardize_image_features(model: nn.Module, features, min_scale: float = 1e-2) -> nn.Module:
    """Standardise the demo tower's tokens per channel with the training images' statistics.

    EfficientNet's tokens are sparse, non-negative activations on their own scale (87% of the
    values are 0 on the ci world); fed to it raw, a small language model trained from scratch
    treats the image as a constant and learns only the answers' prior. Subtracting each
    channel's mean over the training images' tokens and dividing by its standard deviation
    (floored at ``min_scale``) puts every channel on the scale of the model's embeddings. Measured
    on the ci world (stage 2 fitted from scratch on its 55 curated images, 30 epochs): top-1 on
    those images 24% raw, 84% standardised.

    Args:
        model: a demo model (:func:`build_demo_model`; also inside a PEFT wrapper).
        features: training images' cached tower tokens (N, T, C) (:func:`study_images` rows).
        min_scale: floor of the divisor (channels that are almost always 0).

    Returns:
        ``model``, its tower's ``feature_mean``/``feature_scale`` buffers set (saved with it).
    """
    tower = vision_tower(model)
    if not isinstance(tower, FeatureTowerModel):
        raise TypeError(f"only the demo's feature tower is standardised, not {type(tower).__name__}")
    shape = tuple(np.shape(features))
    if len(shape) != 3 or shape[-1] != tower.config.hidden_size or shape[0] < 2:
        raise ValueError(f"features must be (N >= 2, tokens, {tower.config.hidden_size}), got {shape}")
    total, total_sq, count = np.zeros(shape[-1]), np.zeros(shape[-1]), 0
    for start in range(0, shape[0], 256):  # in chunks: the demo's features are a large float16 array
        chunk = np.asarray(features[start:start + 256], dtype=np.float64).reshape(-1, shape[-1])
        total += chunk.sum(0)
        total_sq += (chunk**2).sum(0)
        count += len(chunk)
    mean = total / count
    variance = np.maximum(total_sq / count - mean**2, 0.0)
    mean, scale = torch.from_numpy(mean), torch.from_numpy(np.sqrt(variance)).clamp_min(float(min_scale))
    with torch.no_grad():
        tower.feature_mean.copy_(mean.to(tower.feature_mean.dtype))
        tower.feature_scale.copy_(scale.to(tower.feature_scale.dtype))
    return model


def _set_generation_tokens(model: PreTrainedModel, tokenizer) -> None:
    """Stop at ``<|im_end|>`` (or ``<|endoftext|>``), pad with ``<|endoftext|>``; greedy by default."""
    tok = _tokenizer(tokenizer)
    eos = [tok.convert_tokens_to_ids(IM_END), tok.convert_tokens_to_ids(PAD_TOKEN)]
    gc = model.generation_config
    gc.eos_token_id = eos
    gc.pad_token_id = tok.convert_tokens_to_ids(PAD_TOKEN)
    gc.bos_token_id = None
    gc.do_sample = False
    for key in ("temperature", "top_p", "top_k", "repetition_penalty"):
        if hasattr(gc, key):
            setattr(gc, key, None)


def build_model(spec: ModelSpec | Mapping[str, Any], processor=None, config=None):
    """Build the profile's vision-language model and its processor.

    Args:
        spec: :class:`ModelSpec` or a mapping of its fields (from the params file).
        processor: the processor/tokenizer to use. Demo: required (from :func:`train_tokenizer`
            or :func:`load_processor`). Hub models: None loads ``AutoProcessor`` at the pinned
            revision.
        config: a transformers config to build from instead of downloading (tests: a tiny random
            Qwen2.5-VL); the weights are then random.

    Returns:
        ``(model, processor)``: the model with its vision tower frozen, in ``spec.dtype``, with
        gradient checkpointing when asked, and generation set to greedy, stopping at
        ``<|im_end|>``.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    spec = ModelSpec.coerce(spec)
    dtype = _torch_dtype(spec.dtype)
    if spec.model_id == "demo":
        if processor is None:
            raise ValueError("the demo model needs its tokenizer: build_model(spec, processor=train_tokenizer(...))")
        model = build_demo_model(processor, spec).to(dtype)
    else:
        if config is None:
            if not spec.revision:
                raise ValueError(
                    f"hub model {spec.model_id!r} needs a pinned revision (a commit hash) in the params file"
                )
            from geolib import runtime

            runtime.pinned_revision(spec.model_id, spec.revision, "model.revision")
            kwargs = {"revision": spec.revision}

            with runtime.hub_load(f"vision-language model {spec.model_id} @ {spec.revision}"):
                if processor is None:
                    pixel_kwargs = {k: v for k, v in (("min_pixels", spec.min_pixels), ("max_pixels", spec.max_pixels)) if v}
                    processor = AutoProcessor.from_pretrained(spec.model_id, **kwargs, **pixel_kwargs)
                model = AutoModelForImageTextToText.from_pretrained(
                    spec.model_id, dtype=dtype, attn_implementation=spec.attn_implementation, **kwargs
                )
        else:
            if processor is None:
                raise ValueError("building from a config needs its processor (processor=...)")
            config._attn_implementation = spec.attn_implementation
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(spec.seed)
                model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
        _set_generation_tokens(model, processor)
        freeze_vision_tower(model)
    if spec.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model, processor


def random_qwen25vl(tokenizer, text: Mapping[str, Any] | None = None, vision: Mapping[str, Any] | None = None,
                    min_pixels: int = 56 * 56, max_pixels: int = 112 * 112):
    """A randomly initialised Qwen2.5-VL config and processor, built without the hub.

    The paper's model class at any size: tests use the tiny defaults; the tuning benchmark passes
    the 7B's widths with fewer layers. ``text``/``vision`` override the text and vision config
    fields; the special-token ids come from ``tokenizer`` (one from :func:`train_tokenizer`).

    Returns:
        ``(config, processor)`` for ``build_model(spec, processor=processor, config=config)``.
    """
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels),
        tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(), chat_template=CHAT_TEMPLATE,
    )
    sid = tokenizer.convert_tokens_to_ids
    text_config = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                       rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
                       bos_token_id=None, eos_token_id=sid(IM_END), pad_token_id=sid(PAD_TOKEN))
    vision_config = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                         fullatt_block_indexes=[1], window_size=56)
    text_config.update(text or {})
    vision_config.update(vision or {})
    vision_config.setdefault("out_hidden_size", text_config["hidden_size"])
    config = Qwen2_5_VLConfig(
        text_config=text_config, vision_config=vision_config,
        image_token_id=sid(IMAGE_TOKEN), video_token_id=sid(VIDEO_TOKEN),
        vision_start_token_id=sid(VISION_START), vision_end_token_id=sid(VISION_END),
    )
    return config, processor


def load_model(path: str | os.PathLike, dtype: str = "float32"):
    """Reload a model saved by a full (non-LoRA) stage of :func:`train_stage` (the demo base model).

    Args:
        path: the stage's output folder (holding ``stage.json`` and ``model/``) or ``model/`` itself.
        dtype: dtype to load in.

    Returns:
        ``(model, processor)`` with the vision tower frozen and generation set up.
    """
    from transformers import AutoModelForImageTextToText

    path = Path(path)
    if (path / "model").is_dir():
        path = path / "model"
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"no saved model in {path} (expected config.json from train_stage)")
    problem = _weights_problem(path)
    if problem:
        raise gio.ReadError(f"saved model cannot be loaded: {problem}. Rerun the notebook that trains it "
                            "(the stage notices and trains again)")
    model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=_torch_dtype(dtype))
    tower = vision_tower(model)
    if isinstance(tower, FeatureTowerModel) and not _saved_tensor_names(path) & {"vision_tower.feature_mean"}:
        with torch.no_grad():  # saved before the standardisation existed: the identity, as it was trained
            tower.feature_mean.zero_()
            tower.feature_scale.fill_(1.0)
    processor = load_processor(path)
    _set_generation_tokens(model, processor)
    return freeze_vision_tower(model), processor


def _saved_tensor_names(folder: Path) -> set[str]:
    """Names of the tensors in a folder's safetensors files."""
    from safetensors import safe_open

    names: set[str] = set()
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            names.update(f.keys())
    return names


# ---------------------------------------------------------------------------------------------
# Conversations


def user_message(prompt: str) -> dict:
    """The user turn: the image, then the prompt."""
    return {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}


def assistant_message(text: str) -> dict:
    """An assistant turn holding ``text``."""
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def format_answer(**fields_: str) -> str:
    """GeoReasoner's answer style: a Python dict literal, e.g. ``{'country': 'France', 'city': 'Paris'}``.

    Keys keep the order given; ``repr`` picks the quotes (``"Côte d'Ivoire"``), so
    ``ast.literal_eval`` and :func:`geolib.answers.parse_answer` read it back.
    """
    return repr({k: str(v) for k, v in fields_.items()})


#: Which columns each tuning stage puts in the answer.
STAGE_FIELDS = {"reasoning": ("country", "reasons"), "location": ("country", "city")}


def country_name(value: str) -> str:
    """An ISO 3166-1 alpha-2 code (``"FR"``) as its English name (CLDR: ``"France"``); names pass through."""
    value = str(value).strip()
    if re.fullmatch(r"[A-Z]{2}", value):
        import babel

        name = babel.Locale("en").territories.get(value)
        if name is None:
            raise ValueError(f"unknown country code {value!r}")
        return name
    return value


def _place_names(country_codes: Sequence[str], cities: Sequence[str]) -> list[str]:
    """Names that give a place away: cities, and each country's code, English name and its names
    in its own official languages (CLDR; what the demo world writes on signs)."""
    import babel
    from babel import languages

    names = [str(c) for c in cities if isinstance(c, str) and c.strip()]
    english = babel.Locale("en").territories
    for code in {str(c).strip() for c in country_codes if isinstance(c, str)}:
        names.append(code)
        if not re.fullmatch(r"[A-Z]{2}", code):
            continue
        if code in english:
            names.append(english[code])
        for lang in languages.get_official_languages(code, de_facto=True):
            try:
                local = babel.Locale.parse(lang).territories.get(code)
            except (ValueError, babel.UnknownLocaleError):
                continue
            if local:
                names.append(local)
    return names


def _row_images(frame, image_column: str | None) -> list:
    if image_column is None:
        return list(range(len(frame)))
    if image_column not in frame.columns:
        raise ValueError(f"image column {image_column!r} not in the frame; columns: {list(frame.columns)}")
    return [v.item() if isinstance(v, np.generic) else v for v in frame[image_column].tolist()]


def _text_value(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v).strip()


def make_conversations(
    frame,
    stage: str,
    image_column: str | None = None,
    country_column: str = "country",
    city_column: str = "city",
    reasons_column: str = "reasoning",
) -> list[dict]:
    """GeoReasoner's tuning conversations, one per row of ``frame``.

    * ``"reasoning"`` (stage 1, reasoning tuning, from the clue corpus): user "Which country is
      the image located? Explain the reason." → ``{'country': …, 'reasons': …}``.
    * ``"location"`` (stage 2, location tuning, curated images): user "Which country and city is
      the image located?" → ``{'country': …, 'city': …}``.

    Country codes (the manifest's ISO alpha-2 ``country``) are written as English names
    (:func:`country_name`), as GeoReasoner's answers are.

    Args:
        frame: a DataFrame with the answer columns (and the image column), e.g. the pool manifest.
        stage: ``"reasoning"`` or ``"location"``.
        image_column: the column whose value is the conversation's image key (an int row of the
            feature array passed to training, or a path); None: the row's position in ``frame``
            (features computed for exactly this frame, in this order).
        country_column, city_column, reasons_column: the answer columns (manifest names by default).

    Returns:
        ``[{"image": key, "messages": [user, assistant]}, ...]``; rows with an empty answer
        field are skipped with a warning (count and first examples).
    """
    if stage not in STAGE_FIELDS:
        raise ValueError(f"stage must be one of {sorted(STAGE_FIELDS)}, got {stage!r}")
    columns = {"country": country_column, "city": city_column, "reasons": reasons_column}
    needed = [columns[f] for f in STAGE_FIELDS[stage]]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"stage {stage!r} needs columns {needed}; missing {missing} in {list(frame.columns)}")
    images = _row_images(frame, image_column)
    conversations, skipped = [], []
    for i, (image, row) in enumerate(zip(images, frame[needed].itertuples(index=False, name=None))):
        values = {f: _text_value(v) for f, v in zip(STAGE_FIELDS[stage], row)}
        if not all(values.values()):
            skipped.append(i)
            continue
        values["country"] = country_name(values["country"])
        conversations.append(
            {"image": image, "messages": [user_message(PROMPTS[stage]), assistant_message(format_answer(**values))]}
        )
    if skipped:
        warnings.warn(
            f"make_conversations({stage!r}): skipped {len(skipped)} of {len(frame)} rows with an empty "
            f"{'/'.join(needed)} (first rows: {skipped[:5]})",
            stacklevel=2,
        )
    return conversations


def _names_pattern(names: Sequence[str]) -> re.Pattern | None:
    """Whole-word, case-sensitive matches of ``names`` (case-insensitive would turn the city "Van"
    or the code "IN" into ordinary words)."""
    names = sorted({n.strip() for n in names if isinstance(n, str) and len(n.strip()) >= 2}, key=len, reverse=True)
    if not names:
        return None
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(n) for n in names) + r")(?!\w)")


def _scrub_sentences(text: str, pattern: re.Pattern | None) -> str:
    """Drop every sentence of ``text`` that mentions one of the forbidden names."""
    if pattern is None:
        return text
    parts = re.split(r"(?<=[.!?])\s+", text)
    return " ".join(p for p in parts if not pattern.search(p)).strip()


@functools.lru_cache(maxsize=None)
def _sign_vocabulary(country: str) -> frozenset[str]:
    """Sign words of the demo world that name no place: the weekday and month names of the
    country's sign languages (CLDR, as :func:`geolib.world.local_words` draws them)."""
    from geolib import facts as world  # facts and clue vocabulary, no renderer

    try:
        languages = world.country_facts(country)["languages"]
    except KeyError:
        return frozenset()
    words: set[str] = set()
    for lang in languages:
        w = world.local_words(lang, country)
        words.update(w["days"], w["days_short"], w["months"])
    return frozenset(words)


def _readable_sign_words(sign_text: str, country: str) -> list[str]:
    """The parts of the legible sign text (signs joined by " | ", lines by " / ") that are safe to
    read out: distances (they hold a digit) and weekday / month names. Place names are left out."""
    vocabulary = _sign_vocabulary(country) if isinstance(country, str) else frozenset()
    out: list[str] = []
    for sign in sign_text.split(" | "):
        for part in sign.split(" / "):
            part = part.strip()
            if not part:
                continue
            pieces = [x for x in re.split(r"\s+[–-]\s+", part) if x]
            if any(ch.isdigit() for ch in part) or (pieces and all(x in vocabulary for x in pieces)):
                if part not in out:
                    out.append(part)
    return out


def scene_caption(row: Mapping[str, Any]) -> str:
    """A caption of one demo-world scene from its manifest row, naming no place.

    What is in view (the first sentence of ``reasoning``, which describes the picture, else the
    ``scene`` type; ``building_fraction``), the visible clues in words (``clues``, clue
    ids through :func:`geolib.world.clue_phrase`: "signs in Cyrillic script", "cars driving on the
    left", "yellow centre lines"), and the legible sign text read out (``sign_text``) except the
    place names on it: only weekday / month names and distances are quoted. Missing fields are
    left out.

    Example:
        ``A suburban road with houses set back from it, with a sidewalk and trees. Buildings cover
        about 30% of the view. Visible: signs in Latin script, cars driving on the right, white
        centre lines. A sign reads "Montag".``
    """

    def get(key):
        v = row.get(key) if hasattr(row, "get") else None
        if isinstance(v, (list, tuple, np.ndarray)):
            return [str(x) for x in v if str(x).strip()]
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    scene, reasoning = get("scene"), get("reasoning")
    first = re.split(r"(?<=[.!?])\s+", reasoning.strip())[0] if isinstance(reasoning, str) and reasoning.strip() else ""
    if first:  # the demo world's reasoning opens with what the picture shows (no place in it)
        sentences = [first]
    elif scene:
        sentences = [f"{'An' if str(scene)[:1] in 'aeiou' else 'A'} {scene} scene."]
    else:
        sentences = ["A street scene."]
    fraction = get("building_fraction")
    if isinstance(fraction, (int, float, np.floating)):
        share = int(round(float(fraction) * 10)) * 10
        sentences.append(f"Buildings cover about {share}% of the view." if share else "No building fills the view.")
    clues = get("clues")
    if isinstance(clues, list):
        sentences.append(f"Visible: {', '.join(facts.clue_words(c) for c in clues)}." if clues else
                         "Nothing distinctive is visible.")
    text = get("sign_text")
    if isinstance(text, str) and text.strip():
        words = _readable_sign_words(text, get("country"))
        if len(words) == 1:
            sentences.append(f'A sign reads "{words[0]}".')
        elif words:
            sentences.append("Signs read " + ", ".join(f'"{w}"' for w in words[:-1]) + f' and "{words[-1]}".')
        else:
            sentences.append("A sign shows a place name.")
    return " ".join(sentences)


def base_training_conversations(
    pool,
    image_column: str | None = None,
    caption_column: str | None = None,
    country_column: str = "country",
    city_column: str = "city",
) -> list[dict]:
    """Caption conversations for the demo's base training: look and describe, never name the place.

    User "Describe the image." → what is in the scene, the visible clues, the sign text read out
    (:func:`scene_caption`, or ``caption_column`` when the pool already has captions). As a
    second guard, every sentence that names a place of the pool is dropped: any city of
    ``city_column``, any country of ``country_column`` by English name or by its name in its own
    official languages (CLDR; signs of the demo world can read "Deutschland"). So the base model
    learns to see, not where it is.

    Args:
        pool: the image pool DataFrame (one row per image; the demo world's manifest).
        image_column: image key column, None for the row position (see :func:`make_conversations`).
        caption_column: use this column's text as the caption instead of :func:`scene_caption`.
        country_column, city_column: the place columns whose values must never appear.

    Returns:
        ``[{"image": key, "messages": [user, assistant]}, ...]``.
    """
    images = _row_images(pool, image_column)
    codes = pool[country_column].dropna().unique().tolist() if country_column in pool.columns else []
    cities = pool[city_column].dropna().unique().tolist() if city_column in pool.columns else []
    pattern = _names_pattern([n for n in _place_names(codes, cities) if not re.fullmatch(r"[A-Z]{2}", n)])
    conversations = []
    for image, row in zip(images, pool.to_dict("records")):
        caption = _text_value(row.get(caption_column)) if caption_column else scene_caption(row)
        caption = _scrub_sentences(caption, pattern) or "A street scene."
        conversations.append({"image": image, "messages": [user_message(PROMPTS["describe"]), assistant_message(caption)]})
    return conversations


#: Prompts of the demo's text-only knowledge conversations (shown a blank image).
KNOWLEDGE_PROMPTS = ("What gives {country} away in a street view?", "Name cities of {country}.")

#: Knowledge prompts whose answer has to *name* the country (not copy it from the question).
KNOWLEDGE_QUESTIONS = ("Which country is {city} in?", "Which country fits these clues: {clues}?")


def knowledge_conversations(pool, country_column: str = "country", city_column: str = "city",
                            repeats: int = 4) -> list[dict]:
    """Text-only world knowledge for the demo's base training, each shown with a blank image.

    A real base model knows country and city names, what each country's roads and signs look
    like, and how to write a Python dict; the demo's language model starts from nothing, so its
    base training adds this knowledge as text: per country of ``pool``, its facts from the demo
    world's sourced fact sheet (driving side, languages and scripts of signs, climate) and its
    cities, answered in dict form. No image is paired with a place (the image is blank: key
    ``None``), so the model learns words and facts, not to locate a picture; stage 1 and 2 still
    have to teach that. Without it the names and the answer syntax would be tokens the base
    model never produced, whose output embeddings its training drove to near zero: a LoRA
    adapter, which cannot change embeddings, could then not learn to say them.

    Two kinds of turn: the country named in the question (:data:`KNOWLEDGE_PROMPTS`: its facts,
    its cities), and questions whose answer has to name the country (:data:`KNOWLEDGE_QUESTIONS`:
    the country of each of its cities, answered ``{'country': …, 'city': …}``; the country that
    fits its facts). Only the second kind teaches the model to *produce* a country name where the
    question does not give it away, which is what both stages ask of it.

    Returns:
        ``repeats`` × (3 + the number of its cities) conversations per country
        (``{"image": None, "messages": [...]}``).
    """
    from geolib import facts as world  # facts and clue vocabulary, no renderer

    conversations = []
    cities = pool.groupby(country_column)[city_column].agg(lambda c: sorted(set(map(str, c))))
    for code, names in cities.items():
        name = country_name(code)
        try:
            facts = world.country_facts(code)
        except (KeyError, ValueError):
            facts = {}
        clues = []
        if facts.get("driving_side"):
            clues.append(f"cars drive on the {facts['driving_side']}")
        for lang, info in facts.get("languages", {}).items():
            script = world.SCRIPT_NAMES.get(info.get("script"), info.get("script"))
            clues.append(f"signs in {world.language_name(lang)} ({script} script)")
        if facts.get("koppen"):
            clues.append(f"{world.koppen_vegetation(facts['koppen'][0])} vegetation")
        answers = (format_answer(country=name, clues="; ".join(clues) or "few"),
                   format_answer(country=name, cities=", ".join(names)))
        turns = [(prompt.format(country=name), answer) for prompt, answer in zip(KNOWLEDGE_PROMPTS, answers)]
        turns += [(KNOWLEDGE_QUESTIONS[0].format(city=city), format_answer(country=name, city=city)) for city in names]
        turns.append((KNOWLEDGE_QUESTIONS[1].format(clues="; ".join(clues) or "few"), format_answer(country=name)))
        for question, answer in turns:
            conv = {"image": None, "messages": [user_message(question), assistant_message(answer)]}
            conversations.extend(copy.deepcopy(conv) for _ in range(repeats))
    return conversations


def guess_conversations(pool, n: int, country_column: str = "country", city_column: str = "city",
                        seed: int = 0) -> list[dict]:
    """Text-only conversations that teach the demo's base model to *answer* the location question.

    A pretrained instruct model asked "Which country and city is the image located?" answers in
    the asked format with a guess from its prior, whether or not it can read the image (the
    paper's untuned Qwen-VL answers 95% of the time). The demo's language model starts from
    nothing, so its base training shows it the question with a **blank image** (key ``None``)
    answered by a place drawn uniformly from the ``(country, city)`` pairs of ``pool``:
    the answer format and a prior over places, and no link from any image to its place (that is
    still the stages' job).

    Args:
        pool: the image pool (its distinct country and city pairs are the guesses).
        n: number of conversations.
        seed: seed of the draws.

    Returns:
        ``[{"image": None, "messages": [user, assistant]}, ...]`` with ``n`` items.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    places = sorted(set(zip(pool[country_column].astype(str), pool[city_column].astype(str))))
    if n and not places:
        raise ValueError("the pool has no (country, city) pairs to guess from")
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(places), size=n) if n else []
    return [{"image": None, "messages": [user_message(PROMPTS["location"]), assistant_message(
        format_answer(country=country_name(places[i][0]), city=places[i][1]))]} for i in picks]


def conversation_texts(conversations: Sequence[dict]) -> list[str]:
    """All message texts of ``conversations`` (a tokenizer corpus for :func:`train_tokenizer`)."""
    out = []
    for conv in conversations:
        for m in conv["messages"]:
            content = m["content"]
            if isinstance(content, str):
                out.append(content)
            else:
                out.extend(p["text"] for p in content if p.get("type") == "text")
    return out


# ---------------------------------------------------------------------------------------------
# Encoding: text + images → model inputs, with the loss on assistant tokens only


def _resolve_images(keys: Sequence, images) -> list:
    """Look each key up in ``images`` (a feature array or a list of paths); None: keys are images."""
    if images is None:
        return list(keys)
    out = []
    for k in keys:
        if isinstance(k, (int, np.integer)):
            out.append(images[int(k)])
        elif k is None and getattr(images, "ndim", 0) == 3:  # a blank image (text-only conversation)
            out.append(np.zeros(images.shape[1:], dtype=np.float32))
        else:
            raise TypeError(f"image key {k!r} must be an int row of the images passed, got {type(k).__name__}")
    return out


def _stack_image_inputs(items: Sequence) -> torch.Tensor | list:
    """Features (T, C) rows → a float32 tensor (B, T, C); anything else is returned as a list."""
    if all(isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 2 for x in items):
        arr = np.stack([np.asarray(x, dtype=np.float32) for x in items])
        if not np.isfinite(arr).all():
            raise ValueError("image features contain NaN/inf (an unreadable image in the feature cache?)")
        return torch.from_numpy(arr)
    if any(isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 2 for x in items):
        raise TypeError("a batch mixes cached features with images; pass one kind")
    return list(items)


def _load_pil(image):
    from geolib import features

    return features.load_rgb(image)  # upright (EXIF), RGB: what the baselines and the image tower see


def encode_texts(processor, texts: Sequence[str], images: Sequence, padding_side: str = "right",
                 max_length: int | None = None) -> dict[str, torch.Tensor]:
    """Tokenize chat-formatted ``texts`` (one image each) and prepare the images.

    Hub processors (Qwen) do both, expanding each ``<|image_pad|>`` to the image's token count.
    The demo tokenizer: ``images`` are cached features (T, C) or pixels' sources (paths / PIL,
    preprocessed by :func:`geolib.features.preprocess`), and ``<|image_pad|>`` is expanded to T
    (49 at 224 px) here.

    Returns:
        ``input_ids`` and ``attention_mask`` (B, L), ``pixel_values`` and, for Qwen,
        ``image_grid_thw`` and ``mm_token_type_ids``.
    """
    if len(texts) != len(images):
        raise ValueError(f"{len(texts)} texts but {len(images)} images")
    if _is_hf_processor(processor):
        stacked = _stack_image_inputs(images)
        if isinstance(stacked, torch.Tensor):
            raise TypeError("cached features work with the demo model only; pass image paths to a hub processor")
        tok = processor.tokenizer
        previous = tok.padding_side
        tok.padding_side = padding_side
        try:
            batch = processor(text=list(texts), images=[_load_pil(x) for x in stacked], padding=True,
                              return_tensors="pt")
        finally:
            tok.padding_side = previous
        batch = dict(batch)
        if max_length is not None and batch["input_ids"].shape[1] > max_length:
            batch = _truncate(batch, max_length, tok.convert_tokens_to_ids(IMAGE_TOKEN), padding_side)
        return batch
    tok = processor
    stacked = _stack_image_inputs(images)
    if isinstance(stacked, list):
        from geolib import features

        stacked = features.preprocess(stacked)  # (B, 3, 224, 224)
        n_tokens = (stacked.shape[-2] // 32) * (stacked.shape[-1] // 32)
    else:
        n_tokens = stacked.shape[1]
    expanded = []
    for t in texts:
        if t.count(IMAGE_TOKEN) != 1:
            raise ValueError(f"each text needs exactly one {IMAGE_TOKEN}, got {t.count(IMAGE_TOKEN)}: {t[:80]!r}")
        expanded.append(t.replace(IMAGE_TOKEN, IMAGE_TOKEN * n_tokens))
    ids = tok(expanded, add_special_tokens=False)["input_ids"]
    if max_length is not None:
        ids = [x[:max_length] for x in ids]
    image_id = tok.convert_tokens_to_ids(IMAGE_TOKEN)
    for x in ids:
        if sum(1 for t in x if t == image_id) != n_tokens:
            raise ValueError(f"max_length={max_length} cuts into the image tokens; raise it")
    pad = tok.convert_tokens_to_ids(PAD_TOKEN)
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    attention = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        if padding_side == "left":
            input_ids[i, width - len(x):] = torch.tensor(x)
            attention[i, width - len(x):] = 1
        else:
            input_ids[i, : len(x)] = torch.tensor(x)
            attention[i, : len(x)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "pixel_values": stacked}


def _truncate(batch: dict, max_length: int, image_id: int, padding_side: str) -> dict:
    """Cut (B, L) tensors to ``max_length`` (keeping the start), refusing to cut image tokens."""
    before = (batch["input_ids"] == image_id).sum()
    sl = slice(None, max_length) if padding_side == "right" else slice(-max_length, None)
    L = batch["input_ids"].shape[1]
    out = {k: (v[:, sl] if isinstance(v, torch.Tensor) and v.ndim == 2 and v.shape[1] == L and k != "pixel_values" else v)
           for k, v in batch.items()}
    if (out["input_ids"] == image_id).sum() != before:
        raise ValueError(f"max_length={max_length} cuts into the image tokens; raise it")
    return out


def assistant_token_mask(input_ids: torch.Tensor, processor) -> torch.Tensor:
    """True on the tokens of each assistant reply and its closing ``<|im_end|>``.

    An assistant turn starts after ``<|im_start|>assistant\\n`` and ends with ``<|im_end|>``
    (ChatML); the header itself, the system and user turns, image tokens and padding are False.

    Args:
        input_ids: (B, L) token ids.

    Returns:
        (B, L) bool mask.
    """
    tok = _tokenizer(processor)
    header = tok.encode(f"{IM_START}assistant\n", add_special_tokens=False)
    end = tok.convert_tokens_to_ids(IM_END)
    ids = input_ids.tolist()
    mask = torch.zeros_like(input_ids, dtype=torch.bool)
    h = len(header)
    for b, row in enumerate(ids):
        i = 0
        while i <= len(row) - h:
            if row[i: i + h] == header:
                j = i + h
                while j < len(row) and row[j] != end:
                    j += 1
                stop = min(j + 1, len(row))  # include <|im_end|> (the model must learn to stop)
                mask[b, i + h: stop] = True
                i = stop
            else:
                i += 1
    return mask


class ConversationCollator:
    """Batches conversations for training: chat template → tokens + images, labels on replies.

    Labels are the input ids on assistant tokens (:func:`assistant_token_mask`) and -100
    everywhere else (prompt, image tokens, padding), so the loss is on the answers only.

    Args:
        processor: a Qwen processor or the demo tokenizer.
        images: what conversation ``"image"`` keys index (a feature array (N, T, C) or a list
            of paths); None when the keys are image paths themselves.
        max_length: longest sequence in tokens (image tokens included); longer ones are cut at the end.
    """

    def __init__(self, processor, images=None, max_length: int | None = None):
        self.processor = processor
        self.images = images
        self.max_length = max_length

    def __call__(self, conversations: Sequence[dict]) -> dict[str, torch.Tensor]:
        texts = [self.processor.apply_chat_template(c["messages"], tokenize=False) for c in conversations]
        images = _resolve_images([c["image"] for c in conversations], self.images)
        batch = encode_texts(self.processor, texts, images, padding_side="right", max_length=self.max_length)
        labels = batch["input_ids"].clone()
        labels[~assistant_token_mask(batch["input_ids"], self.processor)] = -100
        labels[batch["attention_mask"] == 0] = -100
        batch["labels"] = labels
        return batch


# ---------------------------------------------------------------------------------------------
# Training


#: The projector's linear layers (LLaVA's ``multi_modal_projector``, Qwen2.5-VL's patch merger):
#: what ``projector=True`` of :func:`lora_config` adds LoRA to.
LORA_PROJECTOR_PATTERN = r".*(multi_modal_projector\.linear_[12]|visual\.merger\.mlp\.[02])"


def lora_config(r: int = 64, alpha: int = 16, dropout: float = 0.05, target_modules: Sequence[str] = LORA_TARGET_MODULES,
                projector: bool = False):
    """A peft ``LoraConfig`` on the language model's projections ``target_modules``, and the projector's
    linear layers when ``projector`` is true.

    LLaVA's own fine-tuning trains the projector beside the language model; GeoReasoner's LoRA
    (the paper preset) adapts the language model only. The demo preset adapts the projector too:
    its language model learned to read the image tokens from scratch in the base training, and a
    LoRA stage that cannot change how image tokens enter the model fits its own training images
    far worse (docs/known-traps.md gives the measurement).

    Args:
        r: LoRA rank. alpha: scaling numerator (update scale alpha / r). dropout: on the LoRA input.
        target_modules: projection names inside the language model (default q, k, v, o, gate, up, down).
        projector: also put LoRA on the projector (:data:`LORA_PROJECTOR_PATTERN`).
    """
    from peft import LoraConfig

    bad = [m for m in target_modules if not re.fullmatch(r"\w+", m)]
    if bad:
        raise ValueError(f"target_modules must be plain module names, got {bad}")
    regex = r".*language_model.*\.(" + "|".join(target_modules) + r")"
    if projector:
        regex = f"({regex})|({LORA_PROJECTOR_PATTERN})"
    return LoraConfig(r=int(r), lora_alpha=int(alpha), lora_dropout=float(dropout), target_modules=regex,
                      bias="none", task_type="CAUSAL_LM")


def lora_config_from(hparams: Mapping[str, Any]):
    """:func:`lora_config` from a stage dict such as :data:`PAPER_STAGE1` (``lora_r``, ``lora_alpha``,
    ``lora_dropout``, and ``lora_projector``: absent means false)."""
    return lora_config(hparams["lora_r"], hparams["lora_alpha"], hparams["lora_dropout"],
                       projector=bool(hparams.get("lora_projector", False)))


def training_arguments(output_dir: str | os.PathLike, hparams: Mapping[str, Any], **overrides) -> TrainingArguments:
    """``TrainingArguments`` from a stage dict (:data:`PAPER_STAGE1`, :data:`DEMO_STAGE1`, ...).

    ``effective_batch_size`` becomes gradient accumulation over ``per_device_train_batch_size``
    × the number of processes; ``warmup_ratio`` becomes a fractional ``warmup_steps``; the LoRA
    keys and ``max_length`` are ignored here. On a CPU-only machine ``use_cpu=True`` and bf16 off;
    on a GPU bf16 when supported. Checkpoints every ``save_steps`` (default: ~10 per run via
    ``save_strategy="steps"``) keeping the last two; loss logged every ``logging_steps``.

    Args:
        output_dir: where checkpoints go.
        hparams: the stage dict.
        overrides: any ``TrainingArguments`` field (e.g. ``max_steps=1`` in tests).
    """
    hp = dict(hparams)
    kwargs: dict[str, Any] = {k: v for k, v in hp.items() if k not in _NON_TRAINER_KEYS}
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


def model_digest(model: nn.Module) -> str:
    """A cheap digest of a model's weights: per-tensor sums and sums of squares (6 significant digits).

    Summed on one CPU thread: the order of a parallel sum's additions depends on torch's
    thread count, so a process with two threads (a notebook) and a worker with one (notebooks 05
    and 07 train side by side) could otherwise disagree in the last digit and not find each
    other's finished stages.
    """
    h = hashlib.sha256()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for name, p in sorted(model.state_dict().items()):
                if not torch.is_floating_point(p):
                    h.update(f"{name}:{tuple(p.shape)}:{int(p.sum())}".encode())
                    continue
                x = p.detach().float()
                h.update(f"{name}:{tuple(p.shape)}:{float(x.sum()):.6g}:{float((x * x).sum()):.6g}".encode())
    finally:
        torch.set_num_threads(threads)
    return h.hexdigest()


def _settings_digest(stage_name, conversations, hparams, lora, images, processor) -> str:
    """What a stage's result depends on besides the starting weights: data, settings, images, tokens."""
    h = hashlib.sha256()
    h.update(stage_name.encode())
    tok = _tokenizer(processor)
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
        return model_digest(model)
    if key not in seen:
        seen[key] = model_digest(model)
    return seen[key]


def _hparams_dict(training_args) -> dict:
    if isinstance(training_args, TrainingArguments):
        d = training_args.to_dict()
        for k in ("output_dir", "logging_dir", "run_name", "hub_token", "push_to_hub_token"):
            d.pop(k, None)
        return d
    return dict(training_args)


#: What a stage folder holds of one training run (moved together between the folder and ``versions/``).
_STAGE_ITEMS = ("adapter", "model", "stage.json", "fingerprint.json", "log_history.json", "log_history.csv")
VERSIONS = "versions"


def _stage_items(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [c for c in folder.iterdir() if c.name in _STAGE_ITEMS or re.fullmatch(r"checkpoint-\d+", c.name)]


def _switch_stage_version(output_dir: Path, old_fingerprint: str, new_fingerprint: str) -> bool:
    """Move the stage folder's run to ``versions/<old>/`` and bring back ``versions/<new>/`` if it is there.

    A changed setting trains beside the finished stage instead of discarding it; switching back
    finds it again. Returns True when a kept version was brought back.
    """
    old_home = output_dir / VERSIONS / old_fingerprint[:16]
    items = _stage_items(output_dir)
    if items:
        if old_home.exists():
            shutil.rmtree(old_home)
        old_home.mkdir(parents=True)
        for item in items:
            os.replace(item, old_home / item.name)
    new_home = output_dir / VERSIONS / new_fingerprint[:16]
    if not new_home.is_dir():
        return False
    for item in _stage_items(new_home):
        os.replace(item, output_dir / item.name)
    shutil.rmtree(new_home, ignore_errors=True)
    return True


def _checkpoint_problem(folder: Path) -> str | None:
    """Why a ``checkpoint-N`` folder cannot be resumed from (empty, a file truncated), or None."""
    files = [f for f in folder.rglob("*") if f.is_file()]
    if not files:
        return f"{folder} is empty (a save was interrupted)"
    if not (folder / "trainer_state.json").is_file():
        return f"{folder} has no trainer_state.json (a save was interrupted)"
    for f in files:
        problem = gio.file_problem(f)
        if problem:
            return problem
    return None


def last_intact_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest ``checkpoint-N`` whose files are complete; damaged newer ones are set aside with a warning.

    A damaged checkpoint is renamed ``damaged-checkpoint-N`` (the trainer neither resumes from it
    nor rotates it), so the next save of step N writes a fresh one.
    """
    output_dir = Path(output_dir)
    found = sorted((int(m.group(1)), c) for c in output_dir.glob("checkpoint-*")
                   if c.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", c.name)))
    for _, folder in reversed(found):
        problem = _checkpoint_problem(folder)
        if problem is None:
            return folder
        aside = folder.with_name("damaged-" + folder.name)
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(folder, aside)
        warnings.warn(f"checkpoint not used: {problem}; set aside as {aside.name}, resuming from the one before",
                      stacklevel=2)
    return None


def _final_state(checkpoint: str | None):
    """The ``TrainerState`` of a checkpoint saved at the run's last step, else None.

    Resuming the trainer from its own final checkpoint would take one step more than the run did.
    """
    if checkpoint is None:
        return None
    from transformers import TrainerState

    state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    return state if state.max_steps and state.global_step >= state.max_steps else None


def _finished_stage(output_dir: Path) -> dict | None:
    """``stage.json`` when it is complete and its saved weights are intact, else None (with a warning)."""
    done = output_dir / "stage.json"
    if not done.exists():
        return None
    try:
        info = gio.read_json(done)
        saved = output_dir / (info["adapter_dir"] if info.get("kind") == "lora" else info["model_dir"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"{done} is damaged ({exc}); the stage trains again (from its last intact checkpoint)", stacklevel=3)
        done.unlink(missing_ok=True)
        return None
    problem = _weights_problem(saved)
    if problem:
        warnings.warn(f"finished stage in {output_dir} not used: {problem}; it trains again", stacklevel=3)
        done.unlink(missing_ok=True)
        return None
    return info


def _weights_problem(saved: Path) -> str | None:
    """Why a saved adapter or model folder cannot be loaded (no weights, a truncated file), or None."""
    weights = sorted(saved.rglob("*.safetensors")) if saved.is_dir() else []
    if not weights:
        return f"{saved} holds no weights"
    return next((p for p in map(gio.file_problem, weights) if p), None)


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
        model: the model to train (from :func:`build_model`, :func:`load_model`, a previous stage
            or :func:`load_staged_model`).
        processor: its processor / tokenizer.
        conversations: from :func:`make_conversations` / :func:`base_training_conversations`.
        stage_name: ``"base"``, ``"reasoning"``, ``"location"``, ... (the adapter name).
        training_args: a stage dict (:data:`DEMO_STAGE1`, :data:`PAPER_STAGE1`, ...; made into
            ``TrainingArguments`` by :func:`training_arguments`) or a ``TrainingArguments`` whose
            ``output_dir`` is ``output_dir``.
        lora_config: from :func:`lora_config` / :func:`lora_config_from`, or None (full fine-tune).
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
        back = _switch_stage_version(output_dir, before, fingerprint)
        warnings.warn(f"{output_dir}: settings, data or starting weights changed; the previous run is kept in "
                      f"{VERSIONS}/{before[:16]}/" + ("; the run with these settings was brought back" if back else ""),
                      stacklevel=2)
    info = _finished_stage(output_dir)
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
        freeze_vision_tower(model)

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
        last = last_intact_checkpoint(output_dir)
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
        model, _ = load_model(output_dir, dtype=next(k for k, v in _DTYPES.items() if v == dtype))
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
        base, _ = load_model(base, dtype)
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
        problem = _weights_problem(Path(path))
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


# ---------------------------------------------------------------------------------------------
# Inference


def _as_image_list(images_or_features) -> list:
    if isinstance(images_or_features, np.ndarray) or isinstance(images_or_features, torch.Tensor):
        if images_or_features.ndim != 3:
            raise ValueError(f"features must be (N, tokens, dim), got shape {tuple(images_or_features.shape)}")
        return [images_or_features[i] for i in range(len(images_or_features))]
    if isinstance(images_or_features, (str, os.PathLike)):
        raise TypeError("pass a list of images (wrap a single path in a list)")
    return list(images_or_features)


@torch.inference_mode()
def generate(
    model,
    processor,
    images_or_features,
    prompt: str | Sequence[str] = PROMPTS["location"],
    max_new_tokens: int = 128,
    batch_size: int = 16,
    progress: bool = False,
) -> list[str]:
    """Greedy answers for many images, in batches (left padding); raw text, special tokens removed.

    Batched and one-at-a-time generation give the same text (greedy; padding is masked).

    Args:
        model: a model from :func:`build_model` / :func:`load_staged_model` / a stage result.
        processor: its processor or tokenizer.
        images_or_features: cached features (N, tokens, dim) (demo model) or a list of image
            paths / PIL images.
        prompt: one prompt for all images, or one per image.
        max_new_tokens: generation limit per answer.
        batch_size: images per forward pass.
        progress: show a tqdm bar.

    Returns:
        N answer strings.
    """
    items = _as_image_list(images_or_features)
    prompts = [prompt] * len(items) if isinstance(prompt, str) else list(prompt)
    if len(prompts) != len(items):
        raise ValueError(f"{len(prompts)} prompts for {len(items)} images")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tok = _tokenizer(processor)
    was_training = model.training
    model.eval()
    outputs: list[str] = []
    starts = range(0, len(items), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="generate", unit="batch")
    try:
        for s in starts:
            texts = [processor.apply_chat_template([user_message(p)], tokenize=False, add_generation_prompt=True)
                     for p in prompts[s: s + batch_size]]
            batch = encode_texts(processor, texts, items[s: s + batch_size], padding_side="left")
            device = next(model.parameters()).device
            batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
            if "pixel_values" in batch and torch.is_floating_point(batch["pixel_values"]):
                batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.convert_tokens_to_ids(PAD_TOKEN))
            new = out[:, batch["input_ids"].shape[1]:]
            outputs.extend(tok.batch_decode(new, skip_special_tokens=True))
    finally:
        model.train(was_training)
    return [o.strip() for o in outputs]


def answer_slot_text(country: str) -> str:
    """The opening of an answer up to its country slot: ``{'country': 'France'`` (GeoReasoner's style)."""
    text = format_answer(country=country)
    return text[:-1]  # without the closing brace: the answer may go on with a city or reasons


def closed_set_scores(
    model,
    processor,
    images_or_features,
    candidates: Sequence[str],
    prompt: str = PROMPTS["location"],
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Closed-set scoring: the log-likelihood the model gives each candidate country in the answer slot.

    For every image and candidate name it scores the assistant text :func:`answer_slot_text`
    (``{'country': '<name>'``) after the prompt, summing the log-probabilities of its tokens. The
    highest-scoring name is what the model "believes" whether or not its free generation gets the
    answer syntax right, so comparing closed-set accuracy with the generated answers' accuracy
    separates *cannot read the image* (both low) from *cannot write the answer* (closed set high,
    generation low).

    Args:
        model, processor: as for :func:`generate`.
        images_or_features: cached features (N, tokens, dim) or image paths / PIL images.
        candidates: the candidate country names (e.g. every country of the training split).
        prompt: the question asked (the stage's own, as for generation).
        batch_size: sequences per forward pass (each image costs ``len(candidates)`` sequences).
        progress: show a tqdm bar.

    Returns:
        (N, len(candidates)) summed log-probabilities, float64.
    """
    items = _as_image_list(images_or_features)
    names = [str(c) for c in candidates]
    if not names:
        raise ValueError("closed_set_scores needs at least one candidate")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    head = processor.apply_chat_template([user_message(prompt)], tokenize=False, add_generation_prompt=True)
    slots = [answer_slot_text(n) for n in names]
    scores = np.zeros((len(items), len(names)), dtype=np.float64)
    was_training = model.training
    model.eval()
    cached = not _is_hf_processor(processor)  # the demo model: one prompt length, a plain causal LM under it
    per_batch = max(1, batch_size // (1 if cached else len(names)))
    starts = range(0, len(items), per_batch)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="closed-set scores", unit="batch")
    try:
        with torch.no_grad():
            for s in starts:
                chunk = items[s: s + per_batch]
                score = _slot_scores_cached if cached else _slot_scores_full
                scores[s: s + len(chunk)] = score(model, processor, head, slots, chunk)
    finally:
        model.train(was_training)
    return scores


def _on_device(model, batch: dict) -> dict:
    device = next(model.parameters()).device
    batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    if "pixel_values" in batch and torch.is_floating_point(batch["pixel_values"]):
        batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
    return batch


def _slot_ids(processor, head: str, slots: Sequence[str], item) -> tuple[torch.Tensor, list[list[int]]]:
    """The prompt's ids and each slot's ids after it (checked: the prompt's ids are a prefix of every text)."""
    prompt = encode_texts(processor, [head], [item])["input_ids"][0]
    full = encode_texts(processor, [head + slot for slot in slots], [item] * len(slots), padding_side="right")
    out = []
    for ids, mask, slot in zip(full["input_ids"], full["attention_mask"], slots):
        ids = ids[: int(mask.sum())]
        if not torch.equal(ids[: len(prompt)], prompt):
            raise ValueError(f"the tokenizer merges the end of the prompt with the answer {slot!r}; "
                             "closed-set scoring needs the prompt's tokens as a prefix")
        out.append(ids[len(prompt):].tolist())
    return prompt, out


def _slot_scores_full(model, processor, head: str, slots: Sequence[str], chunk: list) -> np.ndarray:
    """Every (image, candidate) sequence run in full: any model, ``len(slots)`` sequences per image."""
    prompt_len = encode_texts(processor, [head] * len(chunk), chunk)["attention_mask"].sum(1)
    batch = _on_device(model, encode_texts(processor, [head + slot for _ in chunk for slot in slots],
                                           [item for item in chunk for _ in slots], padding_side="right"))
    logp = torch.log_softmax(model(**batch).logits[:, :-1].float(), dim=-1)
    targets = batch["input_ids"][:, 1:]
    token_lp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    first = prompt_len.to(targets.device).repeat_interleave(len(slots)) - 1  # position predicting the slot's first token
    positions = torch.arange(targets.shape[1], device=targets.device).unsqueeze(0)
    mask = (positions >= first.unsqueeze(1)) & batch["attention_mask"][:, 1:].bool()
    return (token_lp * mask).sum(1).view(len(chunk), len(slots)).double().cpu().numpy()


def _slot_scores_cached(model, processor, head: str, slots: Sequence[str], chunk: list) -> np.ndarray:
    """The prompt and image run once per image; the candidates continue from its key-value cache."""
    prompt, slot_ids = _slot_ids(processor, head, slots, chunk[0])
    batch = _on_device(model, encode_texts(processor, [head] * len(chunk), chunk))
    if batch["input_ids"].shape[1] != len(prompt):
        raise ValueError("images of one batch give prompts of different lengths; use the full scoring path")
    out = model(**batch, use_cache=True)
    n, c = len(chunk), len(slots)
    first_lp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (n, V): each slot's first token
    width = max(len(x) for x in slot_ids)
    device = batch["input_ids"].device
    pad = _tokenizer(processor).convert_tokens_to_ids(PAD_TOKEN)
    cont = torch.full((c, width), pad, dtype=torch.long, device=device)
    cont_mask = torch.zeros((c, width), dtype=torch.long, device=device)
    for j, ids in enumerate(slot_ids):
        cont[j, : len(ids)] = torch.tensor(ids, device=device)
        cont_mask[j, : len(ids)] = 1
    total = first_lp[:, cont[:, 0]]  # (n, c)
    if width > 1:
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        cache.batch_repeat_interleave(c)
        ids = cont.repeat(n, 1)  # (n·c, width), image-major
        mask = torch.cat([batch["attention_mask"].repeat_interleave(c, dim=0), cont_mask.repeat(n, 1)], dim=1)
        logits = model(input_ids=ids, attention_mask=mask, cache=cache, use_cache=True).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        token_lp = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) * cont_mask.repeat(n, 1)[:, 1:]
        total = total + token_lp.sum(1).view(n, c)
    return total.double().cpu().numpy()


def closed_set_accuracy(scores: np.ndarray, candidates: Sequence[str], truth: Sequence[str], k: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy of :func:`closed_set_scores`: the share of images whose true name is among the k best.

    Args:
        scores: (N, C) scores; candidates: the C names in column order; truth: the N true names.
        k: the k values (each clipped to C).

    Returns:
        ``{"top1": …, "top5": …}`` (keys ``top<k>``).
    """
    scores = np.asarray(scores, dtype=float)
    names = [str(c) for c in candidates]
    truth = [str(t) for t in truth]
    if scores.ndim != 2 or scores.shape != (len(truth), len(names)):
        raise ValueError(f"scores must be (N={len(truth)}, C={len(names)}), got {scores.shape}")
    column = {n: j for j, n in enumerate(names)}
    true_col = np.array([column.get(t, -1) for t in truth])
    order = np.argsort(-scores, axis=1, kind="stable")
    out = {}
    for kk in k:
        kk = min(int(kk), len(names))
        hit = (order[:, :kk] == true_col[:, None]).any(axis=1) & (true_col >= 0)
        out[f"top{kk}"] = float(hit.mean()) if len(truth) else float("nan")
    return out


# ---------------------------------------------------------------------------------------------
# Reports


def trainable_parameter_report(model) -> dict[str, int]:
    """Parameter counts for the notebooks: total, trainable, LoRA, and by part.

    Returns:
        ``{"total", "trainable", "lora", "vision_tower", "projector", "language_model"}``, numbers
        of parameters (the paper reports 112.19M LoRA parameters for Qwen-VL-7B at r = 64).
        Tied weights count once.
    """
    tower_ids = {id(p) for p in vision_tower(model).parameters()}
    seen: set[int] = set()
    counts = {"total": 0, "trainable": 0, "lora": 0, "vision_tower": 0, "projector": 0, "language_model": 0}
    for name, p in model.named_parameters(remove_duplicate=True):
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = p.numel()
        counts["total"] += n
        counts["trainable"] += n if p.requires_grad else 0
        if "lora_" in name:
            counts["lora"] += n
        elif id(p) in tower_ids:
            counts["vision_tower"] += n
        elif "multi_modal_projector" in name or ".merger." in name:
            counts["projector"] += n
        else:
            counts["language_model"] += n
    return counts


# ---------------------------------------------------------------------------------------------
# The study's layout: where notebooks 04-07 keep the model, and what they feed it

#: Checkpoint folders under ``runs/<profile>/checkpoints/vlm/``: the demo's tokenizer and base
#: model (notebook 04), stage 1 (04), stage 2 and its ablation arms (05), GRE (07).
STUDY_STAGES = {
    "reasoning": ("reasoning",),  # stage 1 only ("without location tuning")
    "location_only": ("location_only",),  # stage 2 on the base model ("without reasoning tuning")
    "full": ("reasoning", "location"),  # GeoReasoner: stage 2 on top of stage 1
    "uncurated": ("reasoning", "location_uncurated"),  # stage 2 on a random sample of the curated split's size
}

#: GeoReasoner's data-quality experiment (notebooks 03, 05, 06): stage 2 on top of stage 1 on sets
#: of one size whose share of highly locatable images is 0, 25, 50, 75 or 100%.
QUALITY_SHARES = (0, 25, 50, 75, 100)
STUDY_STAGES.update({f"quality_{pct:03d}": ("reasoning", f"location_quality_{pct:03d}") for pct in QUALITY_SHARES})


#: Stage settings by preset (the ``tuning_preset`` parameter of notebooks 04, 05 and 07).
TUNING_PRESETS = {
    "demo": {"base": DEMO_BASE, "reasoning": DEMO_STAGE1, "location": DEMO_STAGE2},
    "paper": {"base": None, "reasoning": PAPER_STAGE1, "location": PAPER_STAGE2},
}


def stage_settings(preset: str, stage: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A stage's settings: the preset's, then ``overrides`` (from the params file) on top.

    Raises:
        ValueError: an unknown preset or stage, a stage the preset does not have (the paper's
            model needs no base training), or an override that is neither a ``TrainingArguments``
            field nor a stage key (``lora_r``, ``effective_batch_size``, ...), with the allowed keys.
    """
    if preset not in TUNING_PRESETS:
        raise ValueError(f"unknown tuning preset {preset!r}; known: {sorted(TUNING_PRESETS)}")
    if stage not in TUNING_PRESETS[preset]:
        raise ValueError(f"unknown stage {stage!r}; known: {sorted(TUNING_PRESETS[preset])}")
    base = TUNING_PRESETS[preset][stage]
    if base is None:
        raise ValueError(f"the {preset!r} preset has no {stage!r} stage")
    overrides = dict(overrides or {})
    allowed = {f.name for f in fields(TrainingArguments)} | set(_NON_TRAINER_KEYS) | {"gradient_checkpointing"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        import difflib

        hints = {k: difflib.get_close_matches(k, sorted(allowed), n=1) for k in unknown}
        said = ", ".join(f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for k, h in hints.items())
        raise ValueError(f"unknown {stage} setting {said}; stage keys: {sorted(base)}; "
                         f"any transformers TrainingArguments field is allowed too")
    return {**base, **overrides}


def study_tokenizer(profile: str, texts: Sequence[str], vocab_size: int):
    """The demo tokenizer, trained on ``texts`` once and kept in ``checkpoints/vlm/processor``.

    A rerun with the same corpus and size reloads it; a changed corpus trains a new one (and the
    stages trained with the old one then retrain, their fingerprints include the tokenizer).
    """
    folder = checkpoint_dir(profile, "processor")
    digest = hashlib.sha256(json.dumps([vocab_size, list(texts)]).encode()).hexdigest()
    stamp = folder / "corpus.json"
    if stamp.exists() and gio.read_json(stamp).get("sha256") == digest:
        return load_processor(folder)
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = train_tokenizer(texts, vocab_size, tmp)
    gio.write_json(tmp / "corpus.json", {"sha256": digest, "n_texts": len(texts), "vocab_size": vocab_size})
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return tokenizer


def checkpoint_dir(profile: str, name: str) -> Path:
    """``runs/<profile>/checkpoints/vlm/<name>`` (``processor``, ``base``, ``reasoning``, ``location``, ...)."""
    from geolib import paths

    return paths.checkpoints_dir(profile) / "vlm" / name


def study_images(pool, spec: ModelSpec | Mapping[str, Any], profile: str, batch_size: int = 32):
    """What the model sees of the pool's images, indexable by pool row.

    Demo: the frozen tower's token maps (N, 49, 1280), computed once and cached in the same file
    notebook 02 uses (``cache/features_<tower>.npy``), pooled to the model's ``image_grid``
    (:func:`pool_tokens`; in memory); hub models: the image paths.
    """
    spec = ModelSpec.coerce(spec)
    if spec.model_id != "demo":
        return [str(p) for p in pool["image_path"]]
    from geolib import features, paths

    cache = paths.cache_dir(profile) / f"features_{spec.image_tower}.npy"
    tokens = features.image_features(pool["image_path"].tolist(), cache, batch_size=batch_size, tower=spec.image_tower)
    return pool_tokens(tokens, spec.image_grid)


def pool_tokens(features, grid: int, chunk: int = 256) -> np.ndarray:
    """Average-pool square token maps (N, S·S, C) to a ``grid`` × ``grid`` map (N, grid², C).

    Cells are the adaptive-pooling cells of ``torch.nn.functional.adaptive_avg_pool2d`` (for a
    7 × 7 map and grid 2: rows and columns 0-3 and 3-6). ``grid`` = S returns the features as
    they are; the dtype is kept.
    """
    shape = tuple(np.shape(features))
    side = int(round(np.sqrt(shape[1]))) if len(shape) == 3 else 0
    if len(shape) != 3 or side * side != shape[1]:
        raise ValueError(f"features must be square token maps (N, S·S, C), got shape {shape}")
    if not 1 <= int(grid) <= side:
        raise ValueError(f"grid must be between 1 and {side}, got {grid}")
    if grid == side:
        return features
    out = []
    for start in range(0, shape[0], chunk):
        x = torch.from_numpy(np.asarray(features[start:start + chunk], dtype=np.float32))
        maps = x.reshape(len(x), side, side, shape[2]).permute(0, 3, 1, 2)
        pooled = torch.nn.functional.adaptive_avg_pool2d(maps, int(grid)).flatten(2).transpose(1, 2)
        out.append(pooled.numpy().astype(features.dtype))
    return np.concatenate(out)


def pool_rows(pool, frame) -> np.ndarray:
    """Positions in ``pool`` of the images of ``frame`` (matched on ``image_id``)."""
    index = {k: i for i, k in enumerate(pool["image_id"])}
    missing = [k for k in frame["image_id"] if k not in index]
    if missing:
        raise KeyError(f"{len(missing)} images of the frame are not in the pool, e.g. {missing[:3]}")
    return np.array([index[k] for k in frame["image_id"]], dtype=np.int64)


@dataclass
class StageInputs:
    """What one LoRA stage of the study trains on (:func:`stage_inputs`).

    Attributes:
        conversations: the stage's conversations (image keys index ``images``).
        images: cached tower features (demo) or None (hub models read image paths).
        frame: the rows the conversations come from.
        adapter: the adapter's name (``reasoning`` or ``location``).
        start: finished stages stacked under it before training (``()``: the base model).
        settings_stage: the preset stage whose settings it uses.
    """

    conversations: list
    images: Any
    frame: Any
    adapter: str
    start: tuple[str, ...]
    settings_stage: str


#: The LoRA stages notebooks 04 and 05 train (and ``python -m geolib.train`` runs under
#: ``accelerate launch``): adapter name, the stages under it, the split it trains on.
LORA_STAGES = {
    "reasoning": ("reasoning", (), "train"),
    "location": ("location", ("reasoning",), "train_curated"),
    "location_only": ("location", (), "train_curated"),
    "location_uncurated": ("location", ("reasoning",), "train_uncurated"),
    **{f"location_quality_{pct:03d}": ("location", ("reasoning",), f"train_quality_{pct:03d}") for pct in QUALITY_SHARES},
}


def stage_inputs(profile: str, stage: str, spec: ModelSpec | Mapping[str, Any], clue_corpus: str = "") -> StageInputs:
    """The conversations and images of one of the study's LoRA stages (:data:`LORA_STAGES`).

    Stage 1 (``reasoning``) trains on every image of the training cities with its reasoning
    text, or on GeoReasoner's reasoning data when ``clue_corpus`` names it (a file under
    ``$GEOLIB_DATA``); the stage-2 arms train on notebook 03's curated or uncurated split.
    Notebooks and the multi-GPU entry point call this one function, so a stage trained by
    either is the same stage (same fingerprint) for the other.
    """

    from geolib import corpora, datasets, paths

    if stage not in LORA_STAGES:
        raise ValueError(f"unknown stage {stage!r}; known: {sorted(LORA_STAGES)}")
    adapter, start, split_name = LORA_STAGES[stage]
    spec = ModelSpec.coerce(spec)
    if stage == "reasoning" and clue_corpus:
        corpus, report = corpora.load_georeasoner_sft(paths.real_data_root() / clue_corpus)
        print(report)
        convs = make_conversations(corpus, "reasoning", image_column="image_path", reasons_column="reasons")
        return StageInputs(convs, None, corpus, adapter, start, "reasoning")
    pool = datasets.study_pool(profile)
    if split_name == "train":
        frame = pool[pool["split"] == "train"]
    else:
        frame = datasets.read_manifest(paths.data_dir(profile) / f"split_{split_name}.parquet")
        frame = frame.assign(row=pool_rows(pool, frame))
    images = study_images(pool, spec, profile) if spec.model_id == "demo" else None
    column = "row" if images is not None else "image_path"
    convs = make_conversations(frame, adapter, image_column=column)
    return StageInputs(convs, images, frame, adapter, start, adapter)


def run_lora_stage(profile: str, stage: str, spec: ModelSpec | Mapping[str, Any], preset: str,
                   overrides: Mapping[str, Any] | None = None, clue_corpus: str = "") -> StageResult:
    """Train (or load, when finished) one of the study's LoRA stages on its base and earlier stages."""
    inputs = stage_inputs(profile, stage, spec, clue_corpus)
    settings = stage_settings(preset, inputs.settings_stage, overrides)
    model, processor = study_model(profile, spec, inputs.start)
    return train_stage(model, processor, inputs.conversations, inputs.adapter, settings, lora_config_from(settings),
                       checkpoint_dir(profile, stage), images=inputs.images)


def study_model(profile: str, spec: ModelSpec | Mapping[str, Any], stages: Sequence[str] = ()):
    """The study's model with finished stages stacked on it: ``(model, processor)``.

    Args:
        profile: the run profile (checkpoints under ``runs/<profile>/``).
        spec: the model (``model`` parameter of notebooks 04-07).
        stages: checkpoint names in training order, e.g. ``("reasoning", "location")``, or a key
            of :data:`STUDY_STAGES`; ``()``: the untuned base (demo: after base training).
    """
    spec = ModelSpec.coerce(spec)
    if isinstance(stages, str):
        if stages not in STUDY_STAGES:
            raise ValueError(f"unknown model {stages!r}; known: {sorted(STUDY_STAGES)}")
        stages = STUDY_STAGES[stages]
    if spec.model_id == "demo":
        base_dir = checkpoint_dir(profile, "base")
        if not (base_dir / "stage.json").exists():
            raise FileNotFoundError(f"no demo base model in {base_dir}: run notebook 04_reasoning_tuning first")
        model, processor = load_model(base_dir, spec.dtype)
    else:
        model, processor = build_model(spec)
    if stages:
        model = load_staged_model(model, [checkpoint_dir(profile, s) for s in stages])
    model.eval()
    return model, processor


__all__ = [
    "PROMPTS", "PAPER_STAGE1", "PAPER_STAGE2", "DEMO_BASE", "DEMO_STAGE1", "DEMO_STAGE2", "PAPER_MODEL", "DEMO_MODEL",
    "LORA_TARGET_MODULES", "ModelSpec", "FeatureTowerConfig", "FeatureTowerModel", "train_tokenizer", "load_processor",
    "build_model", "build_demo_model", "standardize_image_features", "pool_tokens", "load_model", "make_conversations", "base_training_conversations",
    "scene_caption", "format_answer", "conversation_texts", "encode_texts", "assistant_token_mask",
    "ConversationCollator", "lora_config", "lora_config_from", "training_arguments", "train_stage", "StageResult",
    "add_stage_adapter", "activate_adapters", "load_staged_model", "generate", "closed_set_scores", "closed_set_accuracy", "answer_slot_text", "trainable_parameter_report",
    "vision_tower", "freeze_vision_tower", "write_log_history", "random_qwen25vl", "STUDY_STAGES", "QUALITY_SHARES", "checkpoint_dir",
    "study_images", "pool_rows", "study_model", "TUNING_PRESETS", "stage_settings", "study_tokenizer",
    "StageInputs", "LORA_STAGES", "stage_inputs", "run_lora_stage", "knowledge_conversations", "KNOWLEDGE_PROMPTS", "KNOWLEDGE_QUESTIONS",
    "guess_conversations", "LORA_PROJECTOR_PATTERN",
]
