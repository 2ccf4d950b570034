"""GeoCLIP baselines of the evaluation table: the real location encoder and GPS gallery, retrieval over
the gallery, the demo's trained retrieval head and GeoCLIP itself (paper profile).

Used by notebook ``06_evaluation``; every baseline here returns the prediction frame of
:mod:`geolib.baselines` (:data:`geolib.baselines.PREDICTION_COLUMNS`).

GeoCLIP-style retrieval (Vivanco et al., NeurIPS 2023): GeoCLIP embeds GPS coordinates with a
location encoder (random Fourier features of the Equal Earth projection at three scales, each
followed by an MLP) and predicts the gallery point whose embedding is most similar to the
image's. Both the **real** location encoder weights and the 100K-point GPS gallery ship inside
the ``geoclip`` package (:func:`load_location_encoder`, :func:`load_gps_gallery`);
:func:`gallery_embeddings` embeds the gallery once and caches it.

* Demo: GeoCLIP's image side is CLIP ViT-L/14 (a hub download), so a small MLP head
  (:class:`GeoRetrievalHead`) maps frozen image features into the location encoder's 512-d
  space, trained contrastively (InfoNCE, learned temperature) against the embeddings of the
  training images' true coordinates, with the rest of the batch plus a fresh sample of gallery
  embeddings as negatives (:func:`train_geoclip_head`); prediction is retrieval over the
  100K gallery (:func:`retrieve_gps`), top-1 or the probability-weighted mean of the top k.
* Paper: GeoCLIP itself (:func:`load_geoclip`, a hub download of its CLIP backbone; only on
  the paper profile) through :func:`geoclip_image_baseline`.

:func:`geoclip_baseline` is notebook 06's row: either of the two on a (subset of the) gallery.

The country of a predicted point is :func:`geolib.borders.country_of` (the nearest city's
country for a point out at sea), its city :func:`geolib.gazetteer.nearest_city`.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geolib import io as gio
from geolib import runtime
from geolib.baselines import check_split, features_2d, predictions_frame, spherical_mean

runtime.patch_torchvision()

import torch  # noqa: E402  (after the torchvision patch)
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

#: GeoCLIP's location-embedding size.
GEOCLIP_EMBED_DIM = 512


# ---------------------------------------------------------------------------------------------
# The real location encoder and GPS gallery


def geoclip_package_dir() -> Path:
    """Folder of the installed ``geoclip`` package's model files (``weights/``, ``gps_gallery/``)."""
    import importlib.util

    spec = importlib.util.find_spec("geoclip")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the geoclip package is not installed (pip install -c constraints.txt geoclip==1.3.0)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def location_encoder_weights_path() -> Path:
    """GeoCLIP's location encoder weights inside the package (``weights/location_encoder_weights.pth``)."""
    return geoclip_package_dir() / "weights" / "location_encoder_weights.pth"


def gps_gallery_path() -> Path:
    """GeoCLIP's GPS gallery inside the package (``gps_gallery/coordinates_100K.csv``, columns LAT, LON)."""
    return geoclip_package_dir() / "gps_gallery" / "coordinates_100K.csv"


def _freeze(module: nn.Module) -> nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


@functools.lru_cache(maxsize=1)
def load_location_encoder() -> nn.Module:
    """GeoCLIP's location encoder with its released weights, frozen (cached per process).

    ``geoclip.LocationEncoder(from_pretrained=False)`` builds the architecture (three random
    Fourier feature capsules, σ = 2⁰, 2⁴, 2⁸, over the Equal Earth projection) and the package's
    ``location_encoder_weights.pth`` is loaded with ``strict=True``; nothing touches the hub.

    Returns:
        An eval-mode module without trainable parameters mapping (N, 2) ``[lat, lon]`` degrees to
        (N, 512) embeddings (not normalised; GeoCLIP compares them by cosine).
    """
    from geoclip.model.location_encoder import LocationEncoder

    encoder = LocationEncoder(from_pretrained=False)
    state = torch.load(location_encoder_weights_path(), map_location="cpu", weights_only=True)
    encoder.load_state_dict(state, strict=True)
    return _freeze(encoder)


@functools.lru_cache(maxsize=1)
def _gallery_array() -> np.ndarray:
    path = gps_gallery_path()
    frame = pd.read_csv(path)
    if list(frame.columns[:2]) != ["LAT", "LON"]:
        raise ValueError(f"{path}: expected columns LAT, LON, got {list(frame.columns)}")
    coords = frame[["LAT", "LON"]].to_numpy(dtype=np.float64)
    if not (np.isfinite(coords).all() and (np.abs(coords[:, 0]) <= 90).all() and (np.abs(coords[:, 1]) <= 180).all()):
        raise ValueError(f"{path}: coordinates missing or out of range")
    coords.setflags(write=False)
    return coords


def load_gps_gallery() -> np.ndarray:
    """GeoCLIP's GPS gallery: (100000, 2) ``[lat, lon]`` degrees (float64, read-only).

    The candidate locations GeoCLIP retrieves from (sampled from its MP-16 training locations).
    """
    return _gallery_array()


def _threads(n: int | None):
    from geolib.features import _torch_threads

    return _torch_threads(n)


def encode_locations(
    lat: Any,
    lon: Any,
    encoder: nn.Module | None = None,
    batch_size: int = 4096,
    normalize: bool = True,
    progress: bool = False,
    num_threads: int | None = None,
) -> torch.Tensor:
    """GeoCLIP location embeddings of coordinates.

    Args:
        lat, lon: degrees, (N,).
        encoder: a location encoder (default :func:`load_location_encoder`).
        batch_size: points per forward pass.
        normalize: L2-normalise each embedding (what GeoCLIP compares).
        progress: tqdm bar.
        num_threads: torch intra-op threads while encoding (default: unchanged).

    Returns:
        float32 Tensor (N, 512) on the CPU (the encoder may sit on a GPU).
    """
    from tqdm.auto import tqdm

    la = np.asarray(lat, dtype=np.float32).reshape(-1)
    lo = np.asarray(lon, dtype=np.float32).reshape(-1)
    if la.shape != lo.shape:
        raise ValueError(f"lat and lon must have the same length, got {la.shape} and {lo.shape}")
    if not (np.isfinite(la).all() and np.isfinite(lo).all()):
        raise ValueError("encode_locations needs finite coordinates")
    if (np.abs(la) > 90).any() or (np.abs(lo) > 180).any():
        raise ValueError("coordinates out of range (|lat| <= 90, |lon| <= 180)")
    encoder = encoder if encoder is not None else load_location_encoder()
    coords = torch.from_numpy(np.stack([la, lo], axis=1))
    device = device_of(encoder)
    out = torch.empty((len(la), GEOCLIP_EMBED_DIM), dtype=torch.float32)
    with _threads(num_threads), torch.inference_mode(), tqdm(
        total=len(la), desc="GeoCLIP location embeddings", unit="pt", disable=not progress
    ) as bar:
        for s in range(0, len(la), batch_size):
            emb = encoder(coords[s : s + batch_size].to(device)).float().cpu()
            out[s : s + batch_size] = F.normalize(emb, dim=1) if normalize else emb
            bar.update(min(batch_size, len(la) - s))
    return out


def _state_hash(module: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def gallery_embeddings(
    cache_path: str | os.PathLike | None = None,
    gallery: np.ndarray | None = None,
    encoder: nn.Module | None = None,
    batch_size: int = 4096,
    progress: bool = True,
    num_threads: int | None = None,
) -> np.ndarray:
    """L2-normalised GeoCLIP embeddings of the GPS gallery, computed once and cached on disk.

    The 100K gallery takes about a minute on 2 CPU cores; the cache is a float16 ``.npy``
    (100 MB) plus a ``.json`` key (hashes of the gallery and the encoder's weights), both written
    atomically, so a second call only reads and a changed gallery or encoder recomputes.

    Args:
        cache_path: ``X.npy``, e.g. ``paths.cache_dir(profile) / "geoclip_gallery.npy"``; None:
            no cache.
        gallery: (M, 2) ``[lat, lon]`` (default :func:`load_gps_gallery`).
        encoder: location encoder (default :func:`load_location_encoder`).
        batch_size, progress, num_threads: see :func:`encode_locations`.

    Returns:
        float32 (M, 512), unit rows, row i for ``gallery[i]``.
    """
    gallery = load_gps_gallery() if gallery is None else np.asarray(gallery, dtype=np.float64)
    if gallery.ndim != 2 or gallery.shape[1] != 2:
        raise ValueError(f"gallery must be (M, 2) [lat, lon], got shape {gallery.shape}")
    encoder = encoder if encoder is not None else load_location_encoder()
    key = None
    if cache_path is not None:
        data_file = Path(cache_path).with_suffix(".npy")
        key_file = data_file.with_suffix(".json")
        key = {"format": 1, "gallery_sha256": hashlib.sha256(np.ascontiguousarray(gallery).tobytes()).hexdigest(),
               "encoder_sha256": _state_hash(encoder), "shape": [len(gallery), GEOCLIP_EMBED_DIM]}
        if data_file.exists() and key_file.exists():
            try:
                if gio.read_json(key_file) == key:
                    cached = np.load(data_file)
                    if cached.shape == tuple(key["shape"]):
                        return cached.astype(np.float32)
            except (OSError, ValueError):
                pass  # unreadable cache: recompute
    emb = encode_locations(gallery[:, 0], gallery[:, 1], encoder, batch_size, True, progress, num_threads).numpy()
    if cache_path is not None:
        import io as _io

        buf = _io.BytesIO()
        np.save(buf, emb.astype(np.float16), allow_pickle=False)
        gio.atomic_write_bytes(data_file, buf.getvalue())
        gio.write_json(key_file, key)
        emb = emb.astype(np.float16).astype(np.float32)  # what a later call reads back
    return emb


# ---------------------------------------------------------------------------------------------
# Retrieval over the gallery


def _unit(x: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x.float()
    return F.normalize(t, dim=-1)


def retrieve_gps(
    query_emb: Any,
    gallery_emb: Any,
    gallery_coords: Any,
    top_k: int = 1,
    logit_scale: float = 1.0 / 0.07,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GeoCLIP's prediction: a softmax over the gallery of scaled cosine similarities.

    ``p = softmax(logit_scale · cos(query, gallery))``; top-1 is the most probable gallery point;
    ``top_k > 1`` gives the p-weighted spherical mean of the k most probable points.

    Args:
        query_emb: (N, 512) image embeddings in the location space (normalised here).
        gallery_emb: (M, 512) gallery embeddings (normalised here).
        gallery_coords: (M, 2) ``[lat, lon]`` degrees.
        top_k: points to average (1: GeoCLIP's top-1).
        logit_scale: inverse temperature (GeoCLIP's ``logit_scale.exp()``, about 39.7).
        batch_size: queries per similarity block ((batch_size, M) floats in memory).

    Returns:
        ``(lat, lon, score)``: (N,) degrees and the probability mass of the points used.
    """
    q = _unit(query_emb)
    g = _unit(gallery_emb)
    coords = np.asarray(gallery_coords, dtype=np.float64)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"query_emb (N, D) and gallery_emb (M, D) must share D, got {tuple(q.shape)}, {tuple(g.shape)}")
    if coords.shape != (g.shape[0], 2):
        raise ValueError(f"gallery_coords must be ({g.shape[0]}, 2), got {coords.shape}")
    if not (isinstance(top_k, (int, np.integer)) and 1 <= top_k <= g.shape[0]):
        raise ValueError(f"top_k must be an integer in [1, {g.shape[0]}], got {top_k!r}")
    n = q.shape[0]
    lat, lon, score = np.empty(n), np.empty(n), np.empty(n)
    with torch.inference_mode():
        for s in range(0, n, batch_size):
            logits = float(logit_scale) * (q[s : s + batch_size] @ g.T)
            probs = logits.softmax(dim=1)
            top = torch.topk(probs, top_k, dim=1)
            idx, p = top.indices.numpy(), top.values.double().numpy()
            if top_k == 1:
                lat[s : s + len(idx)], lon[s : s + len(idx)] = coords[idx[:, 0], 0], coords[idx[:, 0], 1]
            else:
                la, lo = spherical_mean(coords[idx, 0], coords[idx, 1], weights=p, axis=1)
                lat[s : s + len(idx)], lon[s : s + len(idx)] = la, lo
            score[s : s + len(idx)] = p.sum(axis=1)
    return lat, lon, score


def predictions_from_coordinates(image_id: Sequence[Any], lat: Any, lon: Any, score: Any = None) -> pd.DataFrame:
    """Predictions from predicted points: country by polygon, city = the nearest GeoNames city.

    A point that :func:`geolib.borders.country_of` places in no country (open sea beyond 22 km) takes
    its nearest city's country, so a retrieval baseline always answers.

    Args:
        image_id: (N,) ids.
        lat, lon: (N,) predicted degrees (NaN: no prediction).
        score: (N,) confidence.

    Returns:
        Predictions (:data:`PREDICTION_COLUMNS`).
    """
    from geolib.borders import country_of
    from geolib.gazetteer import nearest_city

    lat = np.asarray(lat, dtype=float).reshape(-1)
    lon = np.asarray(lon, dtype=float).reshape(-1)
    country = np.asarray(country_of(lat, lon), dtype=object).reshape(-1)
    cities = nearest_city(lat, lon)
    city_country = cities["country"].to_numpy(dtype=object)
    country = np.where(pd.isna(country.astype(object)), city_country, country)
    return predictions_frame(image_id, country, cities["name"].to_numpy(dtype=object), lat, lon, score)


# ---------------------------------------------------------------------------------------------
# Demo: a retrieval head from frozen image features into GeoCLIP's location space

CHECKPOINT_FORMAT = 1


@dataclass
class GeoHeadConfig:
    """Hyper-parameters of the retrieval head and its training loop.

    Attributes:
        hidden_dim: hidden width of the MLP (features → hidden → 512).
        dropout: dropout on the hidden layer.
        init_temperature: initial softmax temperature τ (logits = cos / τ; CLIP and GeoCLIP: 0.07).
        max_logit_scale: cap on 1/τ (CLIP's 100).
        n_gallery_negatives: gallery embeddings sampled as extra negatives for every batch (GeoCLIP
            uses a queue of recent GPS points for the same purpose).
        lr: AdamW learning rate.
        weight_decay: AdamW decoupled weight decay.
        batch_size: images per step (the other images of the batch are negatives).
        epochs: passes over the training split.
        checkpoint_every: epochs between mid-run checkpoints (when a checkpoint path is given).
        seed: seeds initialisation, shuffling, negative sampling and dropout.
        progress: show a tqdm bar.
        num_threads: torch intra-op threads while training (restored after; None: unchanged). The
            matrices are small, and on a busy 2-core machine one thread measured 4-8 times faster
            than two (threads spinning against each other); it does not change the result's key.
    """

    hidden_dim: int = 1024
    dropout: float = 0.1
    init_temperature: float = 0.07
    max_logit_scale: float = 100.0
    n_gallery_negatives: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    epochs: int = 30
    checkpoint_every: int = 5
    seed: int = 0
    progress: bool = True
    num_threads: int | None = 1

    def __post_init__(self):
        for name in ("hidden_dim", "batch_size", "epochs", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.n_gallery_negatives < 0:
            raise ValueError(f"n_gallery_negatives must be >= 0, got {self.n_gallery_negatives}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.init_temperature <= 0 or self.lr <= 0 or self.max_logit_scale <= 1:
            raise ValueError("init_temperature and lr must be > 0, max_logit_scale > 1")

    #: Fields that do not change the trained model (left out of the checkpoint's currency key).
    _NOT_IN_KEY = ("progress", "checkpoint_every", "num_threads")

    def key_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in self._NOT_IN_KEY}


class GeoRetrievalHead(nn.Module):
    """Frozen image features (B, D) → unit vectors (B, 512) in GeoCLIP's location space.

    Features are standardised with the training split's mean and std (buffers), then an MLP
    ``Linear(D, hidden) → ReLU → Dropout → Linear(hidden, 512)``; ``logit_scale`` = log(1/τ) is
    learned as in CLIP.
    """

    def __init__(self, feature_dim: int, config: GeoHeadConfig | None = None):
        super().__init__()
        self.config = config or GeoHeadConfig()
        c = self.config
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.register_buffer("feature_std", torch.ones(feature_dim))
        self.mlp = nn.Sequential(
            nn.Linear(feature_dim, c.hidden_dim), nn.ReLU(), nn.Dropout(c.dropout), nn.Linear(c.hidden_dim, GEOCLIP_EMBED_DIM)
        )
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / c.init_temperature)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, D) → (B, 512), unit rows
        x = (features - self.feature_mean) / self.feature_std
        return F.normalize(self.mlp(x), dim=-1)

    def scale(self) -> torch.Tensor:
        """1/τ, clamped to ``max_logit_scale``."""
        return self.logit_scale.clamp(max=math.log(self.config.max_logit_scale)).exp()


def geoclip_head_loss(
    head: GeoRetrievalHead, features: torch.Tensor, location_emb: torch.Tensor, negatives: torch.Tensor | None = None
) -> torch.Tensor:
    """InfoNCE of images against their true locations (GeoCLIP's image→GPS loss).

    ``logits = (1/τ) · img @ [loc_batch; negatives]ᵀ``, the target of image i is column i: every
    other location of the batch and every sampled gallery location is a negative.

    Args:
        head: the retrieval head.
        features: (B, D) image features.
        location_emb: (B, 512) unit embeddings of the images' true coordinates.
        negatives: (K, 512) unit gallery embeddings, or None.

    Returns:
        The mean cross-entropy (a scalar Tensor).
    """
    img = head(features)
    cand = location_emb if negatives is None or len(negatives) == 0 else torch.cat([location_emb, negatives], dim=0)
    logits = head.scale() * img @ cand.T
    return F.cross_entropy(logits, torch.arange(len(img)))


def load_geoclip_head(checkpoint_path: str | os.PathLike) -> tuple[GeoRetrievalHead, pd.DataFrame]:
    """A trained head and its history from a checkpoint written by :func:`train_geoclip_head`."""
    payload = gio.load_torch(checkpoint_path)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT or "state" not in payload:
        raise ValueError(f"{checkpoint_path}: not a GeoCLIP-head checkpoint of format {CHECKPOINT_FORMAT}")
    config = GeoHeadConfig(**{f.name: payload["config"][f.name] for f in fields(GeoHeadConfig) if f.name in payload["config"]})
    head = GeoRetrievalHead(payload["feature_dim"], config)
    head.load_state_dict(payload["state"])
    head.eval()
    return head, pd.DataFrame(payload["history"])


def train_geoclip_head(
    train_features: Any,
    train_lat: Any,
    train_lon: Any,
    gallery_emb: Any,
    config: GeoHeadConfig | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    location_encoder: nn.Module | None = None,
) -> tuple[GeoRetrievalHead, pd.DataFrame]:
    """Train the retrieval head contrastively against GeoCLIP's location embeddings.

    Each step: a shuffled batch of images, the location-encoder embeddings of their true
    coordinates (positives, and each other's negatives) and ``n_gallery_negatives`` gallery
    embeddings drawn afresh (more negatives); loss :func:`geoclip_head_loss`; AdamW.

    Args:
        train_features: (N, D) frozen image features (or (N, tokens, D), mean-pooled); NaN rows
            are left out with a warning.
        train_lat, train_lon: (N,) true coordinates, degrees.
        gallery_emb: (M, 512) from :func:`gallery_embeddings` (source of negatives).
        config: hyper-parameters (default :class:`GeoHeadConfig`).
        checkpoint_path: if given, a finished and current checkpoint is loaded instead of
            training, a mid-run one is resumed, and progress is saved every ``checkpoint_every``
            epochs (atomic writes). "Current": same features, coordinates, gallery and config.
        location_encoder: default :func:`load_location_encoder`.

    Returns:
        The trained head (eval mode) and its history, one row per epoch: ``epoch``,
        ``train_loss``, ``temperature``.
    """
    from tqdm.auto import tqdm

    config = config or GeoHeadConfig()
    lat = np.asarray(train_lat, dtype=np.float64).reshape(-1)
    lon = np.asarray(train_lon, dtype=np.float64).reshape(-1)
    x = features_2d(train_features, "train_features", len(lat))
    if lon.shape != lat.shape:
        raise ValueError(f"train_lat and train_lon differ in length: {lat.shape} vs {lon.shape}")
    ok = np.isfinite(x).all(axis=1) & np.isfinite(lat) & np.isfinite(lon)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        warnings.warn(f"GeoCLIP head: left out {len(bad)} training rows with NaN features or coordinates "
                      f"(first: {bad[:5].tolist()})", stacklevel=2)
        x, lat, lon = x[ok], lat[ok], lon[ok]
    if len(x) < 2:
        raise ValueError(f"the GeoCLIP head needs at least 2 training rows, got {len(x)}")
    gallery = _unit(gallery_emb)
    if gallery.ndim != 2 or gallery.shape[1] != GEOCLIP_EMBED_DIM:
        raise ValueError(f"gallery_emb must be (M, {GEOCLIP_EMBED_DIM}), got {tuple(gallery.shape)}")
    key = gio.fingerprint(x, lat, lon, gallery.numpy(), settings=config.key_dict())

    payload = None
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        try:
            payload = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint is retrained, not fatal
            warnings.warn(f"ignoring unreadable checkpoint {checkpoint_path}: {exc}", stacklevel=2)
        if payload is not None and (payload.get("format") != CHECKPOINT_FORMAT or payload.get("key") != key):
            warnings.warn(f"checkpoint {checkpoint_path} is not current (other data or config): retraining", stacklevel=2)
            payload = None
        if payload is not None and payload.get("complete"):
            return load_geoclip_head(checkpoint_path)

    location_emb = encode_locations(lat, lon, location_encoder)  # (N, 512) unit rows, frozen targets
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    head = GeoRetrievalHead(x.shape[1], config)
    head.feature_mean.copy_(torch.from_numpy(x.mean(axis=0)))
    head.feature_std.copy_(torch.from_numpy(x.std(axis=0) + 1e-6))
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history: list[dict] = []
    start_epoch = 0
    if payload is not None:  # resume mid-run
        head.load_state_dict(payload["state"])
        optimizer.load_state_dict(payload["optimizer"])
        generator.set_state(payload["generator"])
        torch.set_rng_state(payload["torch_rng"])
        history = list(payload["history"])
        start_epoch = payload["epoch"] + 1

    def snapshot(epoch: int, complete: bool) -> dict:
        return {
            "format": CHECKPOINT_FORMAT, "key": key, "complete": complete, "config": asdict(config),
            "feature_dim": x.shape[1], "epoch": epoch, "history": history, "state": head.state_dict(),
            "optimizer": optimizer.state_dict(), "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
        }

    xt = torch.from_numpy(x)
    n, bs, k = len(x), min(config.batch_size, len(x)), min(config.n_gallery_negatives, len(gallery))
    with _threads(config.num_threads), tqdm(
        total=config.epochs, initial=start_epoch, desc="GeoCLIP head", unit="epoch", disable=not config.progress
    ) as bar:
        for epoch in range(start_epoch, config.epochs):
            head.train()
            order = torch.randperm(n, generator=generator)
            total = 0.0
            for s in range(0, n, bs):
                idx = order[s : s + bs]
                if len(idx) < 2:  # a lone image has no in-batch negative; its epoch-mates cover it
                    continue
                neg = gallery[torch.randint(len(gallery), (k,), generator=generator)] if k else None
                optimizer.zero_grad(set_to_none=True)
                loss = geoclip_head_loss(head, xt[idx], location_emb[idx], neg)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
            history.append({"epoch": epoch, "train_loss": total / n, "temperature": float(1.0 / head.scale().detach())})
            bar.update(1)
            bar.set_postfix(loss=f"{history[-1]['train_loss']:.3f}", tau=f"{history[-1]['temperature']:.3f}")
            if checkpoint_path is not None and (epoch + 1) % config.checkpoint_every == 0 and epoch + 1 < config.epochs:
                gio.save_torch(checkpoint_path, snapshot(epoch, complete=False))

    head.eval()
    if checkpoint_path is not None:
        gio.save_torch(checkpoint_path, snapshot(config.epochs - 1, complete=True))
    return head, pd.DataFrame(history)


def predict_geoclip_head(
    head: GeoRetrievalHead,
    features: Any,
    gallery_emb: Any,
    gallery_coords: Any,
    top_k: int = 1,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted coordinates of images by retrieval over the gallery (see :func:`retrieve_gps`).

    Args:
        head: a trained :class:`GeoRetrievalHead`.
        features: (N, D) image features; NaN rows get NaN predictions.
        gallery_emb: (M, 512); gallery_coords: (M, 2) ``[lat, lon]``.
        top_k: 1 (top-1) or the number of points to average.
        batch_size: queries per similarity block.

    Returns:
        ``(lat, lon, score)``, each (N,).
    """
    x = np.asarray(features, dtype=np.float32)
    x = x.mean(axis=1) if x.ndim == 3 else x
    if x.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {x.shape}")
    n = len(x)
    ok = np.isfinite(x).all(axis=1)
    lat, lon, score = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    if ok.any():
        head.eval()
        with torch.inference_mode():
            emb = head(torch.from_numpy(x[ok]))
            scale = float(head.scale())
        lat[ok], lon[ok], score[ok] = retrieve_gps(emb, gallery_emb, gallery_coords, top_k, scale, batch_size)
    return lat, lon, score


def geoclip_head_baseline(
    train_features: Any,
    train_df: pd.DataFrame,
    test_features: Any,
    test_df: pd.DataFrame,
    gallery_emb: Any,
    gallery_coords: Any,
    config: GeoHeadConfig | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    top_k: int = 1,
) -> pd.DataFrame:
    """Train (or load) the retrieval head and predict the test split (demo's GeoCLIP baseline).

    Returns:
        Predictions (:data:`PREDICTION_COLUMNS`): the retrieved point, its country and nearest
        city; ``score`` is the probability mass of the retrieved point(s).
    """
    check_split(train_df, "train_df", ("lat", "lon"))
    check_split(test_df, "test_df", ("image_id",))
    head, _ = train_geoclip_head(train_features, train_df["lat"], train_df["lon"], gallery_emb, config, checkpoint_path)
    x = features_2d(test_features, "test_features", len(test_df))
    lat, lon, score = predict_geoclip_head(head, x, gallery_emb, gallery_coords, top_k)
    return predictions_from_coordinates(test_df["image_id"], lat, lon, score)


# ---------------------------------------------------------------------------------------------
# Paper: GeoCLIP itself


def load_geoclip(clip_model: str = "openai/clip-vit-large-patch14", revision: str | None = None, device: str = "cpu"):
    """GeoCLIP with its CLIP ViT-L/14 backbone (paper profile only: the backbone is a hub download).

    ``geoclip.GeoCLIP(clip_path=...)`` loads CLIP from ``clip_path`` and the packaged image MLP,
    location encoder and logit scale weights. With ``revision`` the backbone is first fetched at
    that commit (``huggingface_hub.snapshot_download``), so the run is pinned.

    Args:
        clip_model: hub id or local folder of the CLIP backbone.
        revision: hub commit to pin (from ``params/paper.yaml``).
        device: torch device.

    Returns:
        An eval-mode ``geoclip.GeoCLIP``.

    Raises:
        RuntimeError: downloads are switched off (``HF_HUB_OFFLINE=1``) and the backbone is not cached.
    """
    from geoclip import GeoCLIP

    from geolib import runtime

    revision = runtime.pinned_revision(clip_model, revision, "geoclip_revision")
    path = clip_model
    try:
        if not Path(clip_model).is_dir():
            from huggingface_hub import snapshot_download

            path = snapshot_download(clip_model, revision=revision,
                                     allow_patterns=["*.json", "merges.txt", "vocab.json", "*.safetensors"])
        model = GeoCLIP(clip_path=path)
    except OSError as exc:
        raise RuntimeError(
            f"GeoCLIP's CLIP backbone {clip_model!r} could not be loaded ({exc}). It is a hub download (paper "
            "profile): start the kernel with HF_HUB_OFFLINE=0 to fetch it once."
        ) from exc
    return model.to(device).eval()


def device_of(model: nn.Module) -> torch.device:
    """The device of a module's parameters (the CPU for a module without any)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def geoclip_embed_images(model: nn.Module, images: Sequence[Any], batch_size: int = 32, progress: bool = False) -> torch.Tensor:
    """GeoCLIP image embeddings: ``model.image_encoder`` (CLIP + MLP) on its own preprocessing.

    Args:
        model: ``geoclip.GeoCLIP`` (or any module with an ``image_encoder`` that has
            ``preprocess_image(list of PIL) -> pixels`` and maps pixels to (B, 512)).
        images: paths or PIL images.
        batch_size: images per forward pass.
        progress: tqdm bar.

    Returns:
        float32 (N, 512) unit rows (on the CPU).
    """
    from tqdm.auto import tqdm

    from geolib.features import load_rgb

    device = device_of(model)
    out = []
    with torch.inference_mode(), tqdm(total=len(images), desc="GeoCLIP images", unit="img", disable=not progress) as bar:
        for s in range(0, len(images), batch_size):
            batch = [load_rgb(im) for im in images[s : s + batch_size]]  # upright (EXIF), RGB
            pixels = model.image_encoder.preprocess_image(batch).to(device)
            out.append(F.normalize(model.image_encoder(pixels).float(), dim=-1).cpu())
            bar.update(len(batch))
    return torch.cat(out) if out else torch.zeros((0, GEOCLIP_EMBED_DIM))


def geoclip_image_baseline(
    model: nn.Module,
    images: Sequence[Any],
    image_ids: Sequence[Any],
    gallery_emb: Any = None,
    gallery_coords: Any = None,
    top_k: int = 1,
    batch_size: int = 32,
    progress: bool = True,
) -> pd.DataFrame:
    """GeoCLIP's own predictions for images (paper profile), in the baselines' prediction shape.

    Args:
        model: from :func:`load_geoclip` (see :func:`geoclip_embed_images` for what it needs).
        images: paths or PIL images; image_ids: their ids.
        gallery_emb: (M, 512) from :func:`gallery_embeddings` (cached; GeoCLIP's location encoder
            is the packaged one); None computes it from ``model.location_encoder`` on
            ``gallery_coords``.
        gallery_coords: (M, 2) (default :func:`load_gps_gallery`, the model's ``gps_gallery``).
        top_k: 1 (GeoCLIP's top-1) or points to average.
        batch_size: images per forward pass.
        progress: tqdm bar.

    Returns:
        Predictions (:data:`PREDICTION_COLUMNS`).
    """
    if len(images) != len(image_ids):
        raise ValueError(f"{len(images)} images but {len(image_ids)} image ids")
    coords = load_gps_gallery() if gallery_coords is None else np.asarray(gallery_coords, dtype=np.float64)
    if gallery_emb is None:
        gallery_emb = gallery_embeddings(None, coords, model.location_encoder, progress=progress)
    emb = geoclip_embed_images(model, images, batch_size, progress)
    scale = float(model.logit_scale.detach().exp())
    lat, lon, score = retrieve_gps(emb, gallery_emb, coords, top_k, scale)
    return predictions_from_coordinates(image_ids, lat, lon, score)



def geoclip_baseline(test_df: pd.DataFrame, cache_dir: str | os.PathLike, gallery_size: int = 0, backbone: str = "",
                     revision: str | None = None, device: str = "cpu", train_features: Any = None, train_df: pd.DataFrame | None = None,
                     test_features: Any = None, head: dict | None = None, checkpoint_path: str | os.PathLike | None = None):
    """Notebook 06's GeoCLIP row: GeoCLIP itself (paper: ``backbone`` names its CLIP backbone) or, without
    ``backbone``, the demo's retrieval head (:func:`geoclip_head_baseline`, overrides ``head`` of
    :class:`GeoHeadConfig`) on the frozen features, retrieving from GeoCLIP's GPS gallery (a random
    subset of ``gallery_size`` points, seed 0, when smaller) embedded once in
    ``cache_dir/geoclip_gallery_<points>.npy``.

    Returns:
        ``(predictions, gallery)``: :data:`PREDICTION_COLUMNS` for ``test_df`` and the (M, 2) gallery.
    """
    gallery = load_gps_gallery()
    if gallery_size and gallery_size < len(gallery):
        gallery = gallery[np.sort(np.random.default_rng(0).choice(len(gallery), gallery_size, replace=False))]
    cache = Path(cache_dir) / f"geoclip_gallery_{len(gallery)}.npy"
    if backbone:
        model = load_geoclip(backbone, revision or None, device=device)
        emb = gallery_embeddings(cache, gallery, model.location_encoder)
        return geoclip_image_baseline(model, test_df["image_path"].tolist(), test_df["image_id"], emb, gallery), gallery
    config = GeoHeadConfig(**{"progress": False, **(head or {})})
    return geoclip_head_baseline(train_features, train_df, test_features, test_df, gallery_embeddings(cache, gallery), gallery,
                                 config, checkpoint_path=checkpoint_path), gallery
