"""The vision-language model: build, load and freeze it, and the demo's tokenizer.

Used by notebooks 04_reasoning_tuning (the demo tokenizer and base model), 05_location_tuning,
06_evaluation and 07_gre_reasoning_rl (the models they tune and evaluate; the study's own is
loaded by :func:`geolib.stages.study_model`). One code path serves every profile:

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
  that never name the place (:func:`geolib.conversations.base_training_conversations`), standing
  in for a real base model's pretraining.

The rest of the path: conversations and their encoding (:mod:`geolib.conversations`), the LoRA
stages and their training (:mod:`geolib.tuning`, stage folders: :mod:`geolib.checkpoints`),
generation and closed-set scoring (:mod:`geolib.inference`), and the study's stages, checkpoint
folders and inputs by profile (:mod:`geolib.stages`).
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from geolib import io as gio
from geolib import checkpoints, runtime

runtime.patch_torchvision()

import torch  # noqa: E402  (after the torchvision patch)
from torch import nn  # noqa: E402
from transformers import (  # noqa: E402
    AutoConfig,
    AutoModel,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import BaseModelOutputWithPooling  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Tokens

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
#: the processor or :func:`geolib.conversations.encode_texts` expands the pad to one token per
#: image feature). Unlike Qwen's own template it adds no default system message (shorter
#: sequences for the demo).
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


def tokenizer_of(processor):
    """The tokenizer of a processor (or the processor itself when it is a tokenizer)."""
    return getattr(processor, "tokenizer", processor)


def is_hf_processor(processor) -> bool:
    """True for a hub processor (Qwen's, with an image processor), False for the demo tokenizer."""
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

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def _torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


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
    tok = tokenizer_of(tokenizer)
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
        features: training images' cached tower tokens (N, T, C) (:func:`geolib.stages.study_images` rows).
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
    tok = tokenizer_of(tokenizer)
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
    """Reload a model saved by a full (non-LoRA) stage of :func:`geolib.tuning.train_stage` (the demo base model).

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
    problem = checkpoints.weights_problem(path)
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
# Reports and digests


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


__all__ = [
    "PAPER_MODEL", "DEMO_MODEL", "ModelSpec", "FeatureTowerConfig", "FeatureTowerModel", "train_tokenizer",
    "load_processor", "build_model", "build_demo_model", "standardize_image_features", "pool_tokens", "load_model",
    "trainable_parameter_report", "vision_tower", "freeze_vision_tower", "random_qwen25vl",
]
