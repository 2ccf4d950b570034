"""Tests of geolib.segmentation: class names, class fractions of masks, the segmenter adapter."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from geolib import segmentation as S

# transformers' huggingface/label-files ade20k-id2label.json, as in the configs of
# facebook/maskformer-swin-large-ade, Mask2Former ADE and nvidia/segformer-*-ade checkpoints.
HF_ADE20K_LABELS = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed ", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence",
    "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag",
)


def test_class_names_follow_the_reference_csv():
    assert len(S.ADE20K_CLASSES) == 150 and len(set(S.ADE20K_CLASSES)) == 150
    assert S.ADE20K_CLASSES[:3] == ("wall", "building", "sky")
    assert S.ADE20K_CLASSES[6] == "road, route" and S.ADE20K_CLASSES[149] == "flag"


@pytest.mark.parametrize("name, index", [
    ("road", 6), ("road, route", 6), ("  Road ", 6), ("route", 6), (6, 6), (np.int64(6), 6),
    ("street lamp", 87), ("streetlight", 87), ("windowpane", 8), ("palm tree", 72), ("traffic_light", 136),
    ("screen", 130), ("counter", 45), ("stool", 110),
])
def test_class_index_accepts_names_synonyms_and_indices(name, index):
    assert S.class_index(name) == index


def test_class_index_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match="roadd") as err:
        S.class_index("roadd")
    assert "road, route" in str(err.value)


def test_class_index_rejects_ambiguous_names_out_of_range_and_wrong_types():
    with pytest.raises(ValueError, match="ambiguous.*earth, ground.*land, ground, soil"):
        S.class_index("ground")
    with pytest.raises(ValueError, match="out of range"):
        S.class_index(150)
    with pytest.raises(TypeError):
        S.class_index(6.0)
    with pytest.raises(TypeError):
        S.class_index(True)


def test_class_fractions_of_a_tiny_mask_by_hand():
    mask = np.array([[6, 6, 2],
                     [1, 255, 6]], dtype=np.uint8)  # 5 labelled pixels: road 3, sky 1, building 1
    fr = S.class_fractions(mask)
    assert fr.shape == (150,)
    assert fr[6] == pytest.approx(3 / 5) and fr[2] == pytest.approx(1 / 5) and fr[1] == pytest.approx(1 / 5)
    assert fr.sum() == pytest.approx(1.0) and np.count_nonzero(fr) == 3


def test_class_fractions_ignore_values_at_or_above_150():
    mask = np.array([[0, 150, 200, 255, 1000]], dtype=np.int32)
    fr = S.class_fractions(mask)
    assert fr[0] == 1.0 and fr.sum() == 1.0
    assert not S.class_fractions(np.full((3, 3), 255, np.uint8)).any()  # nothing labelled: all zero


def test_class_fractions_reduce_labels_shifts_the_raw_ade_convention():
    raw = np.array([[0, 7], [3, 1]], dtype=np.uint8)  # 0 unlabelled; 7 -> road, 3 -> sky, 1 -> wall
    fr = S.class_fractions(raw, reduce_labels=True)
    assert fr[6] == fr[2] == fr[0] == pytest.approx(1 / 3)


@pytest.mark.parametrize("mask, error", [
    (np.zeros((2, 2), np.float32), TypeError),
    (np.zeros((2, 2), bool), TypeError),
    (np.zeros((2, 2, 3), np.uint8), ValueError),
    (np.array([[1, -1]]), ValueError),
])
def test_class_fractions_bad_masks(mask, error):
    with pytest.raises(error):
        S.class_fractions(mask)


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.int16, hnp.array_shapes(min_dims=2, max_dims=2, max_side=12),
                  elements=st.integers(0, 300)))
def test_class_fractions_properties(mask):
    fr = S.class_fractions(mask)
    labelled = mask[mask < 150]
    assert np.all(fr >= 0)
    if labelled.size:
        assert fr.sum() == pytest.approx(1.0)
        for c in np.unique(labelled)[:5]:
            assert fr[c] == pytest.approx(np.mean(labelled == c))
    else:
        assert fr.sum() == 0


def test_class_fractions_batch_matches_single_masks():
    rng = np.random.default_rng(0)
    masks = [rng.integers(0, 160, size=(5, 7)), rng.integers(0, 150, size=(3, 4))]
    out = S.class_fractions_batch(masks)
    assert out.shape == (2, 150) and out.dtype == np.float32
    np.testing.assert_allclose(out[1], S.class_fractions(masks[1]), rtol=1e-6)
    stacked = rng.integers(0, 150, size=(4, 6, 6))
    np.testing.assert_allclose(S.class_fractions_batch(stacked)[3], S.class_fractions(stacked[3]), rtol=1e-6)


@pytest.fixture
def mask_files(tmp_path):
    road = np.full((4, 4), 6, np.uint8)
    road[0] = 2  # a quarter sky
    Image.fromarray(road, mode="L").save(tmp_path / "a.png")
    np.save(tmp_path / "b.npy", np.array([[1, 1], [255, 25]], dtype=np.int32))
    return [tmp_path / "a.png", tmp_path / "b.npy"]


@pytest.mark.parametrize("workers", [1, 2])
def test_fractions_from_mask_files(mask_files, workers):
    out = S.fractions_from_mask_files(mask_files, workers=workers)
    assert out.shape == (2, 150) and out.dtype == np.float32
    assert out[0, 6] == pytest.approx(0.75) and out[0, 2] == pytest.approx(0.25)
    assert out[1, 1] == pytest.approx(2 / 3) and out[1, 25] == pytest.approx(1 / 3)


def test_missing_mask_file_is_named_or_skipped(mask_files, tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError, match="nope.png"):
        S.fractions_from_mask_files([mask_files[0], missing], workers=1)
    with pytest.warns(UserWarning, match=r"1 of 3 mask files.*nope\.png"):
        out = S.fractions_from_mask_files([mask_files[0], missing, mask_files[1]], on_error="skip")
    assert np.isnan(out[1]).all() and not np.isnan(out[[0, 2]]).any()


def test_corrupt_or_colour_mask_files_are_named(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="bad.png"):
        S.fractions_from_mask_files([tmp_path / "bad.png"])
    with pytest.raises(ValueError, match="rgb.png.*mode RGB"):
        S.fractions_from_mask_files([tmp_path / "rgb.png"])
    with pytest.raises(ValueError, match="on_error"):
        S.fractions_from_mask_files([], on_error="ignore")


def test_building_proportion_with_and_without_merge():
    fr = np.zeros(150)
    fr[[1, 25, 48, 2]] = [0.2, 0.1, 0.05, 0.65]
    assert S.building_proportion(fr) == pytest.approx(0.2)
    assert S.building_proportion(fr, merge=True) == pytest.approx(0.35)
    batch = np.stack([fr, np.eye(150)[25]])
    np.testing.assert_allclose(S.building_proportion(batch, merge=True), [0.35, 1.0])
    np.testing.assert_allclose(S.building_proportion(batch), [0.2, 0.0])
    with pytest.raises(ValueError, match="150"):
        S.building_proportion(np.zeros(149))


# ----- the segmenter adapter -------------------------------------------------------------------


def test_label_check_accepts_study_and_transformers_names_and_rejects_others():
    S.check_ade20k_labels(dict(enumerate(S.ADE20K_CLASSES)))
    hf = HF_ADE20K_LABELS
    assert len(hf) == 150
    S.check_ade20k_labels({str(i): name for i, name in enumerate(hf)})  # config.json keys are strings
    swapped = list(S.ADE20K_CLASSES)
    swapped[1], swapped[2] = swapped[2], swapped[1]
    with pytest.raises(ValueError, match="2 mismatches.*1: model 'sky'"):
        S.check_ade20k_labels(dict(enumerate(swapped)))
    with pytest.raises(ValueError, match="150 ADE20K classes"):
        S.check_ade20k_labels({i: f"LABEL_{i}" for i in range(19)})
    with pytest.raises(ValueError, match="mismatches"):
        S.check_ade20k_labels({i: f"LABEL_{i}" for i in range(150)})


@pytest.fixture(scope="module", params=["maskformer", "mask2former", "segformer"])
def tiny_segmenter(request):
    return S.build_tiny_segmenter(request.param)


def test_tiny_segmenter_masks_have_the_input_size_and_ade_indices(tiny_segmenter, tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8),
              rng.integers(0, 256, size=(30, 30, 3), dtype=np.uint8),
              rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8)]
    Image.fromarray(arrays[1]).save(tmp_path / "img.png")
    images = [arrays[0], tmp_path / "img.png", Image.fromarray(arrays[2])]
    masks = S.segment(images, tiny_segmenter, batch_size=2)
    assert [m.shape for m in masks] == [(40, 56), (30, 30), (40, 56)]
    for m in masks:
        assert m.dtype == np.uint8 and m.max() < 150
    assert tiny_segmenter.model.config.num_labels == 150
    # same-size images are batched together; the result does not depend on the batch
    np.testing.assert_array_equal(S.segment([arrays[2]], tiny_segmenter)[0], masks[2])
    fr = S.class_fractions_batch(masks)
    np.testing.assert_allclose(fr.sum(axis=1), 1.0, rtol=1e-5)


def test_load_segmenter_from_a_saved_folder_checks_labels(tmp_path):
    tiny = S.build_tiny_segmenter("segformer")
    tiny.model.save_pretrained(tmp_path / "ok")
    tiny.processor.save_pretrained(tmp_path / "ok")
    loaded = S.load_segmenter(tmp_path / "ok")
    assert loaded.kind == "segformer" and not loaded.model.training
    img = np.zeros((20, 24, 3), np.uint8)
    np.testing.assert_array_equal(S.segment([img], loaded)[0], S.segment([img], tiny)[0])

    tiny.model.config.id2label = {i: f"LABEL_{i}" for i in range(150)}
    tiny.model.config.label2id = {f"LABEL_{i}": i for i in range(150)}
    tiny.model.save_pretrained(tmp_path / "bad")
    with pytest.raises(ValueError, match="not ADE20K-150"):
        S.load_segmenter(tmp_path / "bad")


def test_segmenter_rejects_unknown_kinds_and_bad_images():
    with pytest.raises(ValueError, match="unsupported.*segformer"):
        S.build_tiny_segmenter("unet")
    tiny = S.build_tiny_segmenter("segformer")
    with pytest.raises(ValueError, match="uint8"):
        S.segment([np.zeros((8, 8, 3), np.float32)], tiny)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        S.segment(["missing.jpg"], tiny)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert S.segment([], tiny) == []


def test_segmenter_reads_photos_upright_like_every_other_model(tmp_path):
    """A phone photo stored sideways (EXIF orientation 6) reaches the segmenter as taken, and a
    transparent PNG composited on white, exactly as the study's one loader gives them to the others."""
    from geolib.features import load_rgb

    stored = Image.new("RGB", (40, 20), (200, 30, 30))
    stored.paste((20, 20, 200), (0, 0, 10, 20))  # a blue band on the stored image's left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "sideways.jpg"
    stored.save(path, exif=exif, quality=95)
    seen = S._to_rgb(path)
    assert seen.size == (20, 40)  # upright: taller than wide
    assert np.array_equal(np.asarray(seen), np.asarray(load_rgb(path)))
    assert np.asarray(seen)[:5, :, 2].mean() > 150  # the stored left edge is now the top
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert np.asarray(S._to_rgb(clear)).min() == 255  # transparent → white, not black
