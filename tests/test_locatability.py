"""Tests of geolib.locatability: the score, weights from clues, comparison with the paper."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from geolib import locatability as L
from geolib.segmentation import ADE20K_CLASSES, class_index

ROAD, SKY, BUILDING = 6, 2, 1


@pytest.fixture(scope="module")
def paper():
    return L.paper_weights()


@pytest.fixture(scope="module")
def encoder():
    """The real offline MiniLM, loaded once for the module."""
    return L.load_sentence_encoder()


class FakeEncoder:
    """Deterministic stand-in for a sentence encoder: one axis per keyword, records what it saw."""

    keywords = ("road", "sky", "building")

    def __init__(self):
        self.seen = []

    def encode(self, texts, batch_size=32, show_progress_bar=False, convert_to_numpy=True,
               normalize_embeddings=False):
        self.seen.append(list(texts))
        out = np.array([[t.lower().count(k) for k in self.keywords] + [0.1] for t in texts], dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def vec(**shares):
    out = np.zeros(150)
    for name, share in shares.items():
        out[class_index(name)] = share
    return out


# ----- the score -------------------------------------------------------------------------------


def test_paper_weights_are_the_published_csv(paper):
    assert paper.shape == (150,) and paper.min() == 0.0 and paper.max() == 1.0
    assert paper[ROAD] == 1.0
    assert paper[SKY] == pytest.approx(0.16823, abs=1e-5) and paper[BUILDING] == pytest.approx(0.22782, abs=1e-5)
    mine = L.paper_weights()
    mine[0] = 99.0  # callers get a copy
    assert L.paper_weights()[0] != 99.0


def test_hand_computed_score(paper):
    expected = 0.5 * 1.0 + 0.3 * 0.1682270176863706 + 0.2 * 0.22782079363438223  # = 0.596032
    score = L.locatability_score({"road": 0.5, "sky": 0.3, "building": 0.2}, paper)
    assert isinstance(score, float)
    assert score == pytest.approx(expected, abs=1e-12)
    assert score == pytest.approx(0.5960325, abs=1e-6)


def test_mapping_vector_and_batch_agree(paper):
    as_names = L.locatability_score({"road, route": 0.5, "sky": 0.3, "building": 0.2}, paper)
    as_indices = L.locatability_score({ROAD: 0.5, SKY: 0.3, BUILDING: 0.2}, paper)
    as_vector = L.locatability_score(vec(road=0.5, sky=0.3, building=0.2), paper)
    batch = np.stack([vec(road=0.5, sky=0.3, building=0.2), vec(sky=1.0), vec(road=0.25, tree=0.75)])
    scores = L.locatability_score(batch, paper)
    assert scores.shape == (3,)
    assert as_names == as_indices == pytest.approx(as_vector) == pytest.approx(scores[0])
    assert scores[1] == pytest.approx(paper[SKY])
    assert scores[2] == pytest.approx(0.25 + 0.75 * paper[class_index("tree")])
    assert L.locatability_score(batch.tolist(), paper) == pytest.approx(scores)  # lists work too


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, (3, 150), elements=st.floats(0, 1)))
def test_score_is_a_weighted_mean_of_the_weights(raw):
    paper = L.paper_weights()
    raw[:, 0] += 1e-3  # no all-zero row
    fr = raw / raw.sum(axis=1, keepdims=True)
    scores = L.locatability_score(fr, paper)
    assert np.all(scores >= -1e-12) and np.all(scores <= 1 + 1e-12)
    np.testing.assert_allclose(L.locatability_score(raw, paper, normalize=True), scores, rtol=1e-9)


def test_fractions_not_summing_to_one(paper):
    with pytest.raises(ValueError, match=r"sum to 1.*rows \[0\].*1\.1.*normalize=True"):
        L.locatability_score({"road": 0.8, "sky": 0.3}, paper)
    assert L.locatability_score({"road": 0.8, "sky": 0.3}, paper, normalize=True) == pytest.approx(
        (0.8 + 0.3 * paper[SKY]) / 1.1)
    # within the 1e-3 tolerance
    assert L.locatability_score({"road": 0.5, "sky": 0.5005}, paper) == pytest.approx(0.5 + 0.5005 * paper[SKY])


def test_all_zero_fractions(paper):
    batch = np.stack([vec(road=1.0), np.zeros(150)])
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        L.locatability_score(batch, paper)
    with pytest.warns(UserWarning, match="all zero"):
        scores = L.locatability_score(batch, paper, normalize=True)
    assert scores[0] == 1.0 and np.isnan(scores[1])


@pytest.mark.parametrize("fractions, match", [
    (np.full(149, 1 / 149), "150 classes.*149"),
    (np.full((2, 151), 1 / 151), "150 classes"),
    (np.full((2, 3, 150), 1 / 150), "150 classes"),
    ({"road": -0.1, "sky": 1.1}, "must be >= 0"),
    (np.r_[np.nan, np.full(149, 1 / 149)], "NaN"),
    ({"road": 0.5, ROAD: 0.5}, "given twice"),
    ({"roadd": 1.0}, "unknown ADE20K class.*road, route"),
])
def test_bad_fractions(paper, fractions, match):
    with pytest.raises(ValueError, match=match):
        L.locatability_score(fractions, paper)


def test_nan_rows_can_propagate(paper):
    batch = np.stack([vec(road=1.0), np.full(150, np.nan)])
    scores = L.locatability_score(batch, paper, nan_policy="propagate")
    assert scores[0] == 1.0 and np.isnan(scores[1])


def test_bad_weights_and_options(paper):
    with pytest.raises(ValueError, match="length-150"):
        L.locatability_score(vec(road=1.0), paper[:10])
    with pytest.raises(ValueError, match="NaN"):
        L.locatability_score(vec(road=1.0), np.full(150, np.nan))
    with pytest.raises(ValueError, match="nan_policy"):
        L.locatability_score(vec(road=1.0), paper, nan_policy="omit")
    with pytest.raises(TypeError, match="number"):
        L.locatability_score({"road": "a lot"}, paper)


# ----- weights from clues ----------------------------------------------------------------------


def test_reductions_on_a_hand_made_similarity_matrix():
    sim = np.array([[0.9, 0.1, 0.0],
                    [0.8, 0.2, 0.1],
                    [0.1, 0.3, 0.7]])
    np.testing.assert_allclose(L.reduce_similarity(sim, "mean"), [0.6, 0.2, 0.8 / 3])
    np.testing.assert_allclose(L.reduce_similarity(sim, "mention_rate"), [2 / 3, 0, 1 / 3])
    np.testing.assert_allclose(L.reduce_similarity(sim, "mean_topk", k=2), [0.85, 0.25, 0.4])
    np.testing.assert_allclose(L.reduce_similarity(sim, "mean_topk", k=99), L.reduce_similarity(sim, "mean"))
    with pytest.raises(ValueError, match="allowed: mean, mention_rate, mean_topk"):
        L.reduce_similarity(sim, "median")
    with pytest.raises(ValueError, match="k must be"):
        L.reduce_similarity(sim, "mean_topk", k=0)


def test_minmax_normalize():
    np.testing.assert_allclose(L.minmax_normalize([2.0, 4.0, 3.0]), [0.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="all 3 scores equal"):
        L.minmax_normalize([1.0, 1.0, 1.0])


def test_class_template_and_fake_encoder():
    enc = FakeEncoder()
    w = L.clue_class_weights(["the road", "a road again", "sky"], class_names=["road", "sky", "building"],
                             encoder=enc, reduction="mention_rate", class_template="a photo of a {}")
    assert enc.seen[-1] == ["a photo of a road", "a photo of a sky", "a photo of a building"]
    np.testing.assert_allclose(w, [1.0, 0.5, 0.0])
    L.clue_class_weights(["sky"], class_names=["road", "sky", "building"], encoder=enc,
                         reduction="mean", class_template="a photo of a {}")
    assert enc.seen[-1] == ["sky"] and len(enc.seen) == 3  # class names encoded once per encoder
    with pytest.raises(ValueError, match="class_template"):
        L.clue_class_weights(["road"], class_names=["road", "sky"], encoder=enc, class_template="photo")


@pytest.mark.parametrize("reduction", L.REDUCTIONS)
def test_a_corpus_about_roads_weights_road_highest(encoder, reduction):
    clues = ["The road has a yellow centre line.", "A dirt road with no markings.",
             "The road surface is cracked asphalt.", "Cars drive on the right side of the road.",
             "A wide road with white dashed lane lines."]
    w = L.clue_class_weights(clues, encoder=encoder, reduction=reduction, k=3)
    assert w.shape == (150,)
    assert w.min() == 0.0 and w.max() == 1.0
    assert int(np.argmax(w)) == ROAD, ADE20K_CLASSES[int(np.argmax(w))]


def test_empty_or_malformed_corpora_are_rejected():
    enc = FakeEncoder()
    for empty in ([], ["", "   "]):
        with pytest.raises(ValueError, match="empty"):
            L.clue_class_weights(empty, encoder=enc)
    with pytest.raises(TypeError, match="single string"):
        L.clue_class_weights("the road", encoder=enc)
    with pytest.raises(TypeError, match="non-strings"):
        L.clue_class_weights(["road", 3], encoder=enc)
    with pytest.raises(ValueError, match="unknown reduction"):
        L.clue_class_weights(["road"], encoder=enc, reduction="max")
    assert enc.seen == []  # rejected before encoding


def test_sentence_encoder_is_cached(encoder):
    assert L.load_sentence_encoder() is encoder


def test_compare_weights(paper):
    same = L.compare_weights(paper)
    assert same.spearman == pytest.approx(1.0) and same.kendall == pytest.approx(1.0)
    assert list(same.table.columns) == ["class", "ours", "paper", "rank_ours", "rank_paper"]
    assert same.table.loc[0, "class"] == "road, route" and same.table.loc[0, "rank_paper"] == 1
    assert (same.table["rank_ours"] == same.table["rank_paper"]).all()
    rev = L.compare_weights(-paper)
    assert rev.spearman == pytest.approx(-1.0)
    # the two classes with paper weight 0 tie for first under -paper and share rank 1
    assert set(rev.top(2, by="ours")["class"]) == {"armchair", "swivel chair"}
    assert rev.top(2, by="ours")["rank_ours"].tolist() == [1, 1]
    assert same.top(3)["class"].tolist() == ["road, route", "column, pillar", "path"]
    with pytest.raises(ValueError, match="one value per class"):
        L.compare_weights(paper[:10])


def test_select_weights(paper):
    np.testing.assert_array_equal(L.select_weights("paper"), paper)
    enc = FakeEncoder()
    w = L.select_weights("clues", ["road", "road", "sky"], class_names=["road", "sky", "building"], encoder=enc,
                         reduction="mention_rate")
    np.testing.assert_allclose(w, [1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="needs clue_texts"):
        L.select_weights("clues")
    with pytest.raises(ValueError, match="allowed: 'paper', 'clues'"):
        L.select_weights("mine")
