"""ADE20K-150 semantic segmentation: class names, class fractions of masks, a segmenter adapter.

Used by ``01_locatability_analysis`` (class fractions, building proportion, segmenting real
photos) and ``03_curation`` (class fractions of the pool before scoring).

GeoReasoner §3.1 segments each street view into the 150 ADE20K classes (MaskFormer Swin-L),
turns the mask into per-class pixel fractions and scores locatability as Σ fraction·weight
(:mod:`geolib.locatability`). Class indices everywhere in the study are **0..149 in the order of
``georeasoner_class_weights.csv``** (the MaskFormer / detectron2 ADE20K order, e.g. 6 = "road,
route"). Mask conventions:

* a mask is an integer array ``(H, W)`` of class indices 0..149;
* any value >= 150 (conventionally 255) means *ignore / unlabelled*: such pixels are left out of
  the denominator, so the fractions of the labelled pixels sum to 1;
* raw ADEChallenge annotation PNGs use 0 = unlabelled and 1..150 for the classes: pass
  ``reduce_labels=True`` to shift them (0 -> ignore, v -> v - 1).

The segmenter adapter wraps transformers' ADE20K semantic segmentation models: MaskFormer
(``facebook/maskformer-swin-large-ade``, as the paper used), Mask2Former and SegFormer; it checks
at load time that the checkpoint's labels are the ADE20K-150 classes in this order. No package
ships such weights offline, so tests and the ci/demo profiles use :func:`build_tiny_segmenter`
(randomly initialised, same 150 classes); the paper profile loads the real checkpoint.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from geolib import paths

#: Number of ADE20K SceneParsing classes.
N_CLASSES = 150
#: Conventional "ignore / unlabelled" mask value (any value >= N_CLASSES is ignored).
IGNORE_INDEX = 255
#: Lists at least this long get a progress bar when ``progress="auto"``.
PROGRESS_MIN_ITEMS = 200


def _load_class_names() -> tuple[str, ...]:
    import pandas as pd

    table = pd.read_csv(paths.reference_file("georeasoner_class_weights.csv"))
    if list(table["index"]) != list(range(N_CLASSES)):
        raise ValueError("georeasoner_class_weights.csv must list class indices 0..149 in order")
    return tuple(str(name).strip() for name in table["ade20k_class"])


#: The 150 ADE20K class names in index order, e.g. ``ADE20K_CLASSES[6] == "road, route"``.
ADE20K_CLASSES: tuple[str, ...] = _load_class_names()

#: Names used by transformers' ADE20K checkpoints (the ``huggingface/label-files``
#: ``ade20k-id2label.json`` read by MaskFormer, Mask2Former and SegFormer configs) that are not
#: one of the synonyms in ``ADE20K_CLASSES``; all other checkpoint names are the first synonym.
HF_LABEL_ALIASES: dict[str, int] = {
    "windowpane": 8,
    "bathtub": 37,
    "railing": 38,
    "streetlight": 87,
    "television receiver": 89,
    "airplane": 90,
    "apparel": 92,
    "swimming pool": 109,
    "waterfall": 113,
    "ashcan": 138,
}

BUILDING, HOUSE, SKYSCRAPER = 1, 25, 48


def _norm(name: str) -> str:
    return " ".join(str(name).replace("_", " ").lower().split())


@lru_cache(maxsize=1)
def _name_lookup() -> tuple[dict[str, int], dict[str, int], dict[str, list[int]]]:
    """(full name -> index, first synonym -> index, any synonym -> indices)."""
    full, first, synonyms = {}, {}, {}
    for i, name in enumerate(ADE20K_CLASSES):
        full[_norm(name)] = i
        parts = [_norm(p) for p in name.split(",")]
        first.setdefault(parts[0], i)
        for p in parts:
            synonyms.setdefault(p, [])
            if i not in synonyms[p]:
                synonyms[p].append(i)
    for alias, i in HF_LABEL_ALIASES.items():
        synonyms.setdefault(alias, [i])
    return full, first, synonyms


def class_index(name: str | int) -> int:
    """Index 0..149 of an ADE20K class given by name (or an index, checked and returned).

    A name matches, in this order: the full name (``"road, route"``), the first synonym
    (``"road"``), then any other synonym or a transformers label name (``"route"``,
    ``"streetlight"``) when it names one class only. Case, extra spaces and ``_`` are ignored.

    Args:
        name: class name, or an integer index.

    Returns:
        The class index.

    Raises:
        ValueError: unknown or ambiguous name (the message lists close matches), or an index out
            of range.
    """
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
        if not 0 <= int(name) < N_CLASSES:
            raise ValueError(f"class index {int(name)} out of range 0..{N_CLASSES - 1}")
        return int(name)
    if not isinstance(name, str):
        raise TypeError(f"class must be a name (str) or an index (int), got {type(name).__name__}: {name!r}")
    key = _norm(name)
    full, first, synonyms = _name_lookup()
    if key in full:
        return full[key]
    if key in first:
        return first[key]
    hits = synonyms.get(key, [])
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        options = ", ".join(f"{i} {ADE20K_CLASSES[i]!r}" for i in hits)
        raise ValueError(f"ambiguous ADE20K class name {name!r}: it names {options}; use the full name or index")
    candidates = list(full) + list(synonyms)
    close = difflib.get_close_matches(key, candidates, n=5, cutoff=0.6)
    close_names = []
    for c in close:
        idx = full.get(c, first.get(c, synonyms.get(c, [None])[0]))
        label = f"{ADE20K_CLASSES[idx]!r} ({idx})"
        if label not in close_names:
            close_names.append(label)
    hint = f"; close matches: {', '.join(close_names)}" if close_names else ""
    raise ValueError(f"unknown ADE20K class name {name!r}{hint}")


# --------------------------------------------------------------------------------------------
# Class fractions


def class_fractions(mask: np.ndarray, reduce_labels: bool = False) -> np.ndarray:
    """Share of the labelled pixels of a mask that belong to each of the 150 classes.

    Pixels with a value >= 150 (e.g. 255) are unlabelled: they are excluded from the
    denominator. A mask with no labelled pixel gives an all-zero vector (which
    :func:`geolib.locatability.locatability_score` rejects, or scores NaN with ``normalize=True``).

    Args:
        mask: integer array ``(H, W)`` of class indices 0..149 (>= 150 = ignore).
        reduce_labels: the mask uses the raw ADEChallenge convention (0 = unlabelled, 1..150 =
            classes): shift it to 0..149 first.

    Returns:
        ``(150,)`` float64 fractions summing to 1 (or all zero).

    Raises:
        TypeError: the mask is not an integer array.
        ValueError: the mask is not 2-D or holds negative values.
    """
    arr = np.asarray(mask)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"mask must be an integer array of class indices, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {arr.shape}")
    flat = arr.ravel().astype(np.int64, copy=False)
    if flat.size and flat.min() < 0:
        raise ValueError(f"mask holds negative class indices (min {flat.min()}); allowed: 0..149, >= 150 = ignore")
    if reduce_labels:
        flat = np.where(flat == 0, IGNORE_INDEX, flat - 1)
    labelled = flat[flat < N_CLASSES]
    counts = np.bincount(labelled, minlength=N_CLASSES).astype(np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts


def class_fractions_batch(masks: Iterable[np.ndarray] | np.ndarray, reduce_labels: bool = False,
                          progress: bool | str = "auto") -> np.ndarray:
    """Class fractions of many masks (see :func:`class_fractions`).

    Args:
        masks: a sequence of ``(H, W)`` integer masks (sizes may differ) or an ``(N, H, W)`` array.
        reduce_labels: masks use the raw ADEChallenge convention (0 = unlabelled).
        progress: show a tqdm bar: True, False, or "auto" (lists of 200 or more).

    Returns:
        ``(N, 150)`` float32.
    """
    masks = list(masks)
    out = np.zeros((len(masks), N_CLASSES), dtype=np.float32)
    for i, mask in enumerate(_progress(masks, progress, "class fractions")):
        out[i] = class_fractions(mask, reduce_labels=reduce_labels)
    return out


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read one mask file: a single-channel PNG/TIFF (mode L, P, I or I;16) or a ``.npy`` array.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded or is not a single-channel integer mask (the
            message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    try:
        if path.suffix.lower() == ".npy":
            mask = np.load(path, allow_pickle=False)
        else:
            from PIL import Image

            with Image.open(path) as img:
                if img.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
                    raise ValueError(f"expected a single-channel label image, got mode {img.mode}")
                mask = np.asarray(img)
    except Exception as exc:  # noqa: BLE001 - any decode failure is reported with the file name
        raise ValueError(f"cannot read mask file {path}: {exc}") from exc
    if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"mask file {path} is not a 2-D integer mask (shape {mask.shape}, dtype {mask.dtype})")
    return mask


def fractions_from_mask_files(mask_paths: Sequence[str | os.PathLike], workers: int | None = None,
                              on_error: str = "raise", reduce_labels: bool = False,
                              progress: bool | str = "auto") -> np.ndarray:
    """Class fractions of mask files (see :func:`read_mask` for the formats).

    Args:
        mask_paths: N mask files.
        workers: reader threads (default: up to 4, never more than the CPU count); 1 reads in
            this thread.
        on_error: "raise": a missing or unreadable file raises, naming the file; "skip": its row
            is NaN and a warning reports how many failed with the first few files and reasons.
        reduce_labels: masks use the raw ADEChallenge convention (0 = unlabelled).
        progress: show a tqdm bar: True, False, or "auto" (200 files or more).

    Returns:
        ``(N, 150)`` float32, rows in the order of ``mask_paths``.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    mask_paths = list(mask_paths)
    out = np.full((len(mask_paths), N_CLASSES), np.nan, dtype=np.float32)
    failures: list[tuple[int, str, str]] = []

    def one(i: int) -> None:
        try:
            out[i] = class_fractions(read_mask(mask_paths[i]), reduce_labels=reduce_labels)
        except (OSError, ValueError, TypeError) as exc:
            if on_error == "raise":
                raise
            failures.append((i, str(mask_paths[i]), str(exc)))

    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    indices = range(len(mask_paths))
    if workers == 1 or len(mask_paths) < 2:
        for i in _progress(indices, progress, "mask files", total=len(mask_paths)):
            one(i)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in _progress(pool.map(one, indices), progress, "mask files", total=len(mask_paths)):
                pass
    if failures:
        failures.sort()
        examples = "; ".join(f"{p}: {why}" for _, p, why in failures[:3])
        warnings.warn(f"{len(failures)} of {len(mask_paths)} mask files could not be read (rows left NaN), "
                      f"e.g. {examples}", stacklevel=2)
    return out


def building_proportion(fractions: np.ndarray, merge: bool = False) -> float | np.ndarray:
    """Share of the image covered by buildings (the x axis of GeoReasoner Fig. 5).

    Args:
        fractions: ``(150,)`` or ``(N, 150)`` class fractions.
        merge: False: the ADE20K ``building`` class (1) only. True: ``building`` + ``house`` (25)
            + ``skyscraper`` (48), since a segmenter splits built-up frontage between them.

    Returns:
        A float for one image, ``(N,)`` for a batch.
    """
    arr = np.asarray(fractions, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[-1] != N_CLASSES:
        raise ValueError(f"fractions must have shape (150,) or (N, 150), got {arr.shape}")
    cols = [BUILDING, HOUSE, SKYSCRAPER] if merge else [BUILDING]
    share = arr[..., cols].sum(axis=-1)
    return float(share) if arr.ndim == 1 else share


def _progress(iterable, progress: bool | str, desc: str, total: int | None = None):
    if progress not in (True, False, "auto"):
        raise ValueError(f"progress must be True, False or 'auto', got {progress!r}")
    n = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
    show = progress is True or (progress == "auto" and n is not None and n >= PROGRESS_MIN_ITEMS)
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=n, desc=desc)


# --------------------------------------------------------------------------------------------
# Segmenter adapter (transformers)

#: model_type of the config -> (model class, image processor class) in transformers.
SEGMENTER_KINDS: dict[str, tuple[str, str]] = {
    "maskformer": ("MaskFormerForInstanceSegmentation", "MaskFormerImageProcessor"),
    "mask2former": ("Mask2FormerForUniversalSegmentation", "Mask2FormerImageProcessor"),
    "segformer": ("SegformerForSemanticSegmentation", "SegformerImageProcessor"),
}

#: The checkpoint GeoReasoner used (paper profile).
PAPER_SEGMENTER = "facebook/maskformer-swin-large-ade"


@dataclass
class Segmenter:
    """A loaded ADE20K semantic segmentation model and its image processor."""

    model: Any  # a transformers PreTrainedModel in eval mode
    processor: Any  # its image processor
    kind: str  # "maskformer" | "mask2former" | "segformer"
    device: str = "cpu"
    model_id: str | None = None


def check_ade20k_labels(id2label: dict) -> None:
    """Check that a model's ``id2label`` is the 150 ADE20K classes in the study's order.

    A label matches index i when it is any synonym of ``ADE20K_CLASSES[i]`` or the transformers
    label-file name for it (``HF_LABEL_ALIASES``), ignoring case and spaces.

    Raises:
        ValueError: wrong number of labels, or labels that do not match (the first few listed).
    """
    labels = {int(k): v for k, v in (id2label or {}).items()}
    if sorted(labels) != list(range(N_CLASSES)):
        raise ValueError(f"segmentation model must predict the {N_CLASSES} ADE20K classes (ids 0..149), "
                         f"its config has {len(labels)} labels")
    full, _, synonyms = _name_lookup()
    bad = []
    for i in range(N_CLASSES):
        key = _norm(labels[i])
        if full.get(key) != i and i not in synonyms.get(key, []):
            bad.append(f"{i}: model {labels[i]!r} vs ADE20K {ADE20K_CLASSES[i]!r}")
    if bad:
        raise ValueError(f"segmentation model labels are not ADE20K-150 in order ({len(bad)} mismatches): "
                         + "; ".join(bad[:5]))


def _segmenter_classes(model_type: str):
    if model_type not in SEGMENTER_KINDS:
        raise ValueError(f"unsupported segmentation model type {model_type!r}; allowed: {sorted(SEGMENTER_KINDS)}")
    from geolib import runtime

    runtime.patch_torchvision()
    import transformers

    model_name, processor_name = SEGMENTER_KINDS[model_type]
    return getattr(transformers, model_name), getattr(transformers, processor_name)


def load_segmenter(model_id: str | os.PathLike, revision: str | None = None,
                   device: str = "cpu") -> Segmenter:
    """Load an ADE20K semantic segmentation checkpoint (hub id or local folder).

    Dispatches on the config's ``model_type`` (maskformer, mask2former, segformer) and checks
    that its labels are ADE20K-150 in the study's order. Hub ids need the paper profile (the
    offline profiles set ``HF_HUB_OFFLINE=1``); pin ``revision`` there.

    Args:
        model_id: e.g. ``"facebook/maskformer-swin-large-ade"`` or a folder saved with
            ``save_pretrained`` (model and image processor).
        revision: the hub revision (commit hash) to load.
        device: torch device for inference.

    Returns:
        A :class:`Segmenter` in eval mode.
    """
    from geolib import runtime

    revision = runtime.pinned_revision(str(model_id), revision, "segmenter_revision")
    runtime.patch_torchvision()
    from transformers import AutoConfig

    with runtime.hub_load(f"segmenter {model_id} @ {revision}"):
        config = AutoConfig.from_pretrained(str(model_id), revision=revision)
    model_cls, processor_cls = _segmenter_classes(config.model_type)
    check_ade20k_labels(config.id2label)
    with runtime.hub_load(f"segmenter {model_id} @ {revision}"):
        model = model_cls.from_pretrained(str(model_id), revision=revision).eval().to(device)
        processor = processor_cls.from_pretrained(str(model_id), revision=revision)
    return Segmenter(model=model, processor=processor, kind=config.model_type, device=device, model_id=str(model_id))


def build_tiny_segmenter(kind: str = "maskformer", seed: int = 0, image_size: int = 64) -> Segmenter:
    """A tiny randomly initialised ADE20K-150 segmenter (tests, ci/demo profiles; no download).

    Same classes and code path as the real checkpoints, random predictions.

    Args:
        kind: "maskformer" (tiny Swin backbone), "mask2former" or "segformer".
        seed: torch seed of the initialisation.
        image_size: the processor's working resolution (shortest edge / square side, pixels).
    """
    model_cls, processor_cls = _segmenter_classes(kind)
    import torch
    import transformers as tf

    id2label = dict(enumerate(ADE20K_CLASSES))
    labels = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}

    def swin():
        return tf.SwinConfig(image_size=image_size, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1],
                             num_heads=[1, 1, 1, 1], window_size=2,
                             out_features=["stage1", "stage2", "stage3", "stage4"])

    if kind == "maskformer":
        decoder = tf.DetrConfig(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                                decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=8)
        config = tf.MaskFormerConfig(backbone_config=swin(), decoder_config=decoder, fpn_feature_size=32,
                                     mask_feature_size=32, **labels)
        size = {"shortest_edge": image_size, "longest_edge": 2 * image_size}
    elif kind == "mask2former":
        config = tf.Mask2FormerConfig(backbone_config=swin(), feature_size=32, mask_feature_size=32, hidden_dim=32,
                                      encoder_feedforward_dim=32, encoder_layers=1, decoder_layers=2,
                                      num_attention_heads=2, dim_feedforward=32, num_queries=8, **labels)
        size = {"shortest_edge": image_size, "longest_edge": 2 * image_size}
    else:
        config = tf.SegformerConfig(hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1],
                                    num_attention_heads=[1, 1, 1, 1], decoder_hidden_size=16, **labels)
        size = {"height": image_size, "width": image_size}
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    return Segmenter(model=model, processor=processor_cls(size=size), kind=kind, device="cpu", model_id=None)


def _to_rgb(image: Any):
    """A path, PIL image or uint8 array → RGB PIL image; files and PIL images go through the study's
    one loader (:func:`geolib.features.load_rgb`: EXIF orientation, alpha on white), so the segmenter
    sees the same upright picture as every other model."""
    from PIL import Image

    from geolib.features import load_rgb

    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {path}")
        return load_rgb(path)
    if isinstance(image, Image.Image):
        return load_rgb(image)
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4) or arr.dtype != np.uint8:
        raise ValueError(f"an image array must be uint8 (H, W, 3), got shape {arr.shape}, dtype {arr.dtype}")
    return Image.fromarray(arr[..., :3])


def segment(images: Sequence[Any], segmenter: Segmenter, batch_size: int = 4,
            progress: bool | str = "auto") -> list[np.ndarray]:
    """Semantic segmentation of images into ADE20K-150 class-index masks.

    Images of the same size are batched together (MaskFormer-style processors pad a mixed batch
    to its largest image, which would shift the masks of the smaller ones).

    Args:
        images: PIL images, uint8 ``(H, W, 3)`` arrays or image file paths.
        segmenter: from :func:`load_segmenter` or :func:`build_tiny_segmenter`.
        batch_size: images per forward pass.
        progress: show a tqdm bar over batches: True, False, or "auto" (200 images or more).

    Returns:
        One ``(H, W)`` uint8 mask per image, at the image's own size, values 0..149.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    import torch

    pil = [_to_rgb(img) for img in images]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(pil):
        groups.setdefault((img.height, img.width), []).append(i)
    batches = [(hw, idx[s:s + batch_size]) for hw, idx in groups.items() for s in range(0, len(idx), batch_size)]
    show = progress is True or (progress == "auto" and len(pil) >= PROGRESS_MIN_ITEMS)
    masks: list[np.ndarray | None] = [None] * len(pil)
    for hw, idx in _progress(batches, show, "segmenting"):
        inputs = segmenter.processor(images=[pil[i] for i in idx], return_tensors="pt")
        inputs = {k: v.to(segmenter.device) for k, v in inputs.items() if hasattr(v, "to")}
        with torch.inference_mode():
            outputs = segmenter.model(**inputs)
        maps = segmenter.processor.post_process_semantic_segmentation(outputs, target_sizes=[hw] * len(idx))
        for i, m in zip(idx, maps):
            masks[i] = m.detach().cpu().numpy().astype(np.uint8)
    return masks  # type: ignore[return-value]
