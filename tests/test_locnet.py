"""Tests of geolib.locnet: the visual–text pairing network that predicts locatability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geolib import locnet
from geolib.locnet import LocNet, LocNetConfig

torch = pytest.importorskip("torch")

FAST = dict(max_epochs=60, patience=15, batch_size=64, image_hidden=64, lr=3e-3, checkpoint_every=5, progress=False)


def synthetic(n: int, dim: int = 24, seed: int = 0, tokens: int | None = None):
    """Features whose hidden direction sets a monotone target in [0, 1]."""
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(123).normal(size=dim)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = 1.0 / (1.0 + np.exp(-1.5 * (x @ w) / np.sqrt(dim)))
    if tokens:  # token maps whose mean is x
        noise = rng.normal(scale=0.5, size=(n, tokens, dim)).astype(np.float32)
        x = x[:, None, :] + noise - noise.mean(axis=1, keepdims=True)
    return x, y.astype(np.float32)


@pytest.fixture(scope="module")
def prompts_emb():
    return torch.from_numpy(np.random.default_rng(7).normal(size=(6, 16)).astype(np.float32))


@pytest.fixture(scope="module")
def trained(prompts_emb):
    xtr, ytr = synthetic(500, seed=1)
    xva, yva = synthetic(120, seed=2)
    model, history = locnet.train_locnet(xtr, ytr, xva, yva, prompts_emb, LocNetConfig(**FAST))
    return model, history


def test_learns_a_monotone_target_on_held_out_data(trained):
    model, history = trained
    xte, yte = synthetic(300, seed=3)
    pred = locnet.predict_locatability(model, xte)
    metrics = locnet.evaluate(pred, yte)
    assert metrics["spearman"] > 0.9, metrics
    assert metrics["mae"] < 0.1 and metrics["n"] == 300
    assert isinstance(history, pd.DataFrame)
    assert {"epoch", "train_loss", "val_loss", "val_mae", "val_spearman", "temperature"} <= set(history.columns)
    assert history["val_loss"].min() < history["val_loss"].iloc[0]
    assert history["val_loss"].iloc[history.attrs["best_epoch"]] == history["val_loss"].min()


def test_predictions_lie_in_unit_interval(trained):
    model, _ = trained
    extreme = np.concatenate([synthetic(50, seed=4)[0] * 50, np.zeros((1, 24), np.float32)])
    pred = locnet.predict_locatability(model, extreme, batch_size=7)
    assert pred.dtype == np.float32 and pred.shape == (51,)
    assert (pred >= 0).all() and (pred <= 1).all()


def test_token_maps_are_mean_pooled(trained):
    model, _ = trained
    maps, _ = synthetic(20, seed=5, tokens=9)
    np.testing.assert_allclose(
        locnet.predict_locatability(model, maps.astype(np.float16)),
        locnet.predict_locatability(model, maps.mean(axis=1)),
        atol=2e-3,
    )


def test_two_hot_labels_have_the_target_as_mean():
    s = torch.tensor([0.0, 0.1, 0.5, 0.93, 1.0])
    q = locnet.two_hot(s, 6)
    assert torch.allclose(q.sum(dim=1), torch.ones(5))
    assert torch.allclose(q @ torch.linspace(0, 1, 6), s, atol=1e-6)
    assert (q > 0).sum(dim=1).max() <= 2


def test_forward_shapes_and_score_range(prompts_emb):
    model = LocNet(prompts_emb, image_dim=24, config=LocNetConfig(image_hidden=0))
    logits = model(torch.randn(5, 24))
    assert logits.shape == (5, 6) and model.n_levels == 6
    s = model.score(torch.randn(5, 3, 24))
    assert s.shape == (5,) and ((s >= 0) & (s <= 1)).all()
    assert not model.prompts_emb.requires_grad  # the text tower's output is frozen


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path, prompts_emb):
    xtr, ytr = synthetic(200, seed=1)
    xva, yva = synthetic(60, seed=2)
    ckpt = tmp_path / "ckpt" / "locnet.pt"
    config = LocNetConfig(**{**FAST, "max_epochs": 12})
    model, history = locnet.train_locnet(xtr, ytr, xva, yva, prompts_emb, config, checkpoint_path=ckpt)
    assert ckpt.exists()
    loaded, loaded_history = locnet.load_locnet(ckpt)
    xte, _ = synthetic(40, seed=9)
    np.testing.assert_array_equal(locnet.predict_locatability(model, xte), locnet.predict_locatability(loaded, xte))
    pd.testing.assert_frame_equal(history, loaded_history)
    assert loaded_history.attrs["best_epoch"] == history.attrs["best_epoch"]
    # a finished, current checkpoint is returned without training
    again, _ = locnet.train_locnet(xtr, ytr, xva, yva, prompts_emb, config, checkpoint_path=ckpt)
    np.testing.assert_array_equal(locnet.predict_locatability(again, xte), locnet.predict_locatability(model, xte))


def test_training_resumes_from_a_mid_run_checkpoint(tmp_path, prompts_emb, monkeypatch):
    xtr, ytr = synthetic(200, seed=1)
    xva, yva = synthetic(60, seed=2)
    config = LocNetConfig(**{**FAST, "max_epochs": 14, "patience": 100})
    reference, ref_history = locnet.train_locnet(
        xtr, ytr, xva, yva, prompts_emb, config, checkpoint_path=tmp_path / "a.pt"
    )

    original = locnet._run_epoch
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:  # dies in epoch 8, after the checkpoint of epoch 5
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(locnet, "_run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        locnet.train_locnet(xtr, ytr, xva, yva, prompts_emb, config, checkpoint_path=tmp_path / "b.pt")
    monkeypatch.setattr(locnet, "_run_epoch", original)
    calls["n"] = 0

    counted = {"n": 0}

    def counting(*args, **kwargs):
        counted["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(locnet, "_run_epoch", counting)
    resumed, history = locnet.train_locnet(xtr, ytr, xva, yva, prompts_emb, config, checkpoint_path=tmp_path / "b.pt")
    assert counted["n"] == 14 - 5  # epochs 5..13 only
    pd.testing.assert_frame_equal(history, ref_history)
    xte, _ = synthetic(40, seed=9)
    np.testing.assert_array_equal(
        locnet.predict_locatability(resumed, xte), locnet.predict_locatability(reference, xte)
    )


def test_a_stale_checkpoint_is_retrained(tmp_path, prompts_emb):
    xtr, ytr = synthetic(120, seed=1)
    xva, yva = synthetic(40, seed=2)
    ckpt = tmp_path / "locnet.pt"
    config = LocNetConfig(**{**FAST, "max_epochs": 3})
    locnet.train_locnet(xtr, ytr, xva, yva, prompts_emb, config, checkpoint_path=ckpt)
    with pytest.warns(UserWarning, match="not current"):
        _, history = locnet.train_locnet(xtr, 1 - ytr, xva, yva, prompts_emb, config, checkpoint_path=ckpt)
    assert len(history) == 3


def test_nan_rows_are_skipped_and_bad_targets_rejected(prompts_emb):
    xtr, ytr = synthetic(100, seed=1)
    xva, yva = synthetic(30, seed=2)
    xtr[3] = np.nan
    config = LocNetConfig(**{**FAST, "max_epochs": 2})
    with pytest.warns(UserWarning, match="train: skipped 1 rows"):
        locnet.train_locnet(xtr, ytr, xva, yva, prompts_emb, config)
    with pytest.raises(ValueError, match=r"scores must lie in \[0, 1\]"):
        locnet.train_locnet(xtr[4:], ytr[4:] * 3, xva, yva, prompts_emb, config)
    with pytest.raises(ValueError, match="99 feature rows but 100 scores"):
        locnet.train_locnet(xtr[:99], ytr, xva, yva, prompts_emb, config)


def test_config_validation():
    with pytest.raises(ValueError, match="score_loss"):
        LocNetConfig(score_loss="l1")
    with pytest.raises(ValueError, match="dropout"):
        LocNetConfig(dropout=1.0)


def test_evaluate_metrics():
    m = locnet.evaluate([0.1, 0.2, 0.3, np.nan], [0.2, 0.4, 0.9, 0.5])
    assert m["n"] == 3 and m["spearman"] == pytest.approx(1.0)
    assert m["mae"] == pytest.approx((0.1 + 0.2 + 0.6) / 3)
    with pytest.raises(ValueError, match="differ in length"):
        locnet.evaluate([0.1], [0.1, 0.2])


def test_encode_prompts_with_the_packaged_sentence_encoder():
    encoder = locnet.load_sentence_encoder()
    emb = locnet.encode_prompts(locnet.DEFAULT_PROMPTS, encoder)
    assert emb.shape == (len(locnet.DEFAULT_PROMPTS), 384) and emb.dtype == torch.float32
    assert torch.isfinite(emb).all()
    # a plain callable works too (e.g. features.clip_text_encoder)
    assert locnet.encode_prompts(["a", "b"], lambda p: np.ones((len(p), 3))).shape == (2, 3)
    with pytest.raises(ValueError, match="at least 2"):
        locnet.encode_prompts(["only one"], encoder)


def test_score_images_end_to_end(tmp_path, prompts_emb):
    from PIL import Image

    from geolib import features

    class TinyTower(torch.nn.Module):
        name, image_size, mean, std = "tiny", 8, features.IMAGENET_MEAN, features.IMAGENET_STD

        def forward(self, x):
            return torch.nn.functional.adaptive_avg_pool2d(x, 2).repeat(1, 2, 1, 1)  # (B, 6, 2, 2)

    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (20, 10), (40 * i, 0, 0)).save(paths[-1])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"no")
    model = LocNet(prompts_emb, image_dim=6)
    with pytest.warns(UserWarning, match="bad.png"):
        scores = locnet.score_images(
            model, [*paths, bad], tower=TinyTower(), batch_size=2, on_error="skip", progress=False
        )
    assert np.isnan(scores[5]) and ((scores[:5] >= 0) & (scores[:5] <= 1)).all()
    direct = model.score(TinyTower()(features.preprocess(paths, size=8))).detach().numpy()
    np.testing.assert_allclose(scores[:5], direct, atol=1e-6)
