"""Tests of geolib.metrics: GeoReasoner's accuracy/recall/F1, distance summaries, bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geolib import gazetteer, geo
from geolib.answers import ParsedAnswer, parse_answer
from geolib.metrics import (
    answer_metrics,
    bootstrap_ci,
    distance_errors_km,
    distance_summary,
    f1_from,
    normalize_city_label,
    predicted_coordinates,
)

# --------------------------------------------------------------------------------------------
# GeoReasoner's table (docs/published-numbers.md): accuracy, recall → F1

PUBLISHED = [
    # level, model, accuracy, recall, F1
    ("country", "StreetCLIP", 0.7943, 1.00, 0.8854),
    ("country", "LLaVA", 0.4029, 1.00, 0.5744),
    ("country", "Qwen-VL", 0.5829, 0.95, 0.7225),
    ("country", "GPT-4V", 0.8917, 0.34, 0.4923),
    ("country", "GeoReasoner", 0.8237, 1.00, 0.9033),
    ("city", "StreetCLIP", 0.7457, 1.00, 0.8543),
    ("city", "Qwen-VL", 0.3743, 0.89, 0.5270),
    ("city", "GeoReasoner", 0.7521, 1.00, 0.8585),
]


@pytest.mark.parametrize("level, model, accuracy, recall, f1", PUBLISHED, ids=[f"{r[0]}-{r[1]}" for r in PUBLISHED])
def test_f1_recomputes_the_papers_column(level, model, accuracy, recall, f1):
    assert f1_from(accuracy, recall) == pytest.approx(f1, abs=5e-4)  # to 3 decimals
    assert round(f1_from(accuracy, recall), 4) == f1  # in fact every row matches to 4 decimals


def test_f1_edge_cases():
    assert f1_from(0, 0) == 0.0
    assert f1_from(1, 1) == 1.0
    assert f1_from(0.5, 0) == 0.0
    with pytest.raises(ValueError, match="recall"):
        f1_from(0.5, 1.5)
    with pytest.raises(ValueError, match="accuracy"):
        f1_from(float("nan"), 0.5)


def test_answer_metrics_counts_like_georeasoner():
    truth = ["France", "DE", "DE", "FR", "JP"]
    predicted = ["FR", None, "Germany", "fr", "Atlantis"]  # "fr" in lower case is not a code
    m = answer_metrics(predicted, truth)
    assert (m["n"], m["n_answered"], m["n_correct"]) == (5, 4, 2)
    assert m["accuracy"] == 0.5 and m["recall"] == 0.8
    assert m["f1"] == pytest.approx(2 * 0.5 * 0.8 / 1.3)


def test_answer_metrics_country_labels_normalise():
    m = answer_metrics(["United States", "USA", "DEU", "Deutschland"], ["US", "US", "DE", "Germany"])
    assert m["accuracy"] == 1.0 and m["recall"] == 1.0 and m["f1"] == 1.0


def test_answer_metrics_missing_predictions():
    m = answer_metrics([None, float("nan"), "", "  "], ["FR", "FR", "FR", "FR"])
    assert (m["n_answered"], m["accuracy"], m["recall"], m["f1"]) == (0, 0.0, 0.0, 0.0)


def test_answer_metrics_city_is_case_and_diacritic_insensitive():
    truth = ["São Paulo", "Zürich", "New York City", "Paris"]
    predicted = ["sao paulo", "ZURICH", "New York", None]
    m = answer_metrics(predicted, truth, level="city")
    assert (m["n_answered"], m["n_correct"]) == (3, 2)
    assert normalize_city_label("  Saint-Étienne ") == normalize_city_label("saint etienne")


def test_answer_metrics_takes_parsed_answers():
    answers = [
        parse_answer("{'country': 'France', 'city': 'Paris', 'reasons': 'x'}"),
        parse_answer("{'country': 'Unknown', 'city': 'Unknown'}"),
        parse_answer("{'country': 'Atlantis', 'city': 'Lyon'}"),
    ]
    country = answer_metrics(answers, ["FR", "FR", "FR"])
    assert (country["n_answered"], country["n_correct"]) == (2, 1)
    city = answer_metrics(answers, ["Paris", "Paris", "Lyon"], level="city")
    assert (city["n_answered"], city["n_correct"]) == (2, 2)


def test_answer_metrics_matches_a_published_row_from_counts():
    # Qwen-VL country: 95% answered, 58.29% of those right → F1 .7225 (rounding of the paper)
    n, answered, correct = 10_000, 9_500, 5_538  # 5538 / 9500 = .58295
    predicted = ["FR"] * correct + ["DE"] * (answered - correct) + [None] * (n - answered)
    m = answer_metrics(predicted, ["FR"] * n)
    assert m["accuracy"] == pytest.approx(0.5829, abs=1e-4) and m["recall"] == 0.95
    assert m["f1"] == pytest.approx(0.7225, abs=5e-4)


@pytest.mark.parametrize(
    "predicted, truth, match",
    [
        (["FR"], ["FR", "DE"], "1 labels but truth has 2"),
        ([], [], "at least one row"),
        (["FR"], [None], "truth label 0 is missing"),
    ],
)
def test_answer_metrics_errors(predicted, truth, match):
    with pytest.raises(ValueError, match=match):
        answer_metrics(predicted, truth)


def test_answer_metrics_unknown_level():
    with pytest.raises(ValueError, match="level"):
        answer_metrics(["FR"], ["FR"], level="continent")


# --------------------------------------------------------------------------------------------
# distances

PARIS = (48.8566, 2.3522)
LONDON = (51.5074, -0.1278)
SYDNEY = (-33.8688, 151.2093)


def test_distance_summary_hand_checked():
    d_pl = geo.haversine_km(*PARIS, *LONDON)  # about 344 km
    assert 340 < d_pl < 346
    pred_lat = [PARIS[0], LONDON[0], np.nan, SYDNEY[0]]
    pred_lon = [PARIS[1], LONDON[1], np.nan, SYDNEY[1]]
    true_lat = [PARIS[0], PARIS[0], PARIS[0], PARIS[0]]
    true_lon = [PARIS[1], PARIS[1], PARIS[1], PARIS[1]]
    s = distance_summary(pred_lat, pred_lon, true_lat, true_lon)
    assert s["n"] == 4 and s["n_answered"] == 3 and s["unparsable"] == 0.25
    # 0 km, ~344 km, miss (NaN), ~16,950 km
    assert (s["within_1km"], s["within_25km"], s["within_200km"]) == (0.25, 0.25, 0.25)
    assert (s["within_750km"], s["within_2500km"]) == (0.5, 0.5)
    assert s["median_km"] == pytest.approx(d_pl)  # median over the 3 answered
    d_ps = geo.haversine_km(*PARIS, *SYDNEY)
    expected = (5000 + 5000 * math.exp(-d_pl / 1492.7) + 0 + 5000 * math.exp(-d_ps / 1492.7)) / 4
    assert s["mean_geoscore"] == pytest.approx(expected)


def test_distance_summary_boundaries_are_inclusive():
    # a prediction exactly 25 km away (on the equator, 25 km of longitude) counts within 25 km
    dlon = np.degrees(25 / geo.EARTH_RADIUS_KM)
    s = distance_summary([0.0], [dlon], [0.0], [0.0], thresholds=(25,))
    assert s["within_25km"] == 1.0


def test_distance_summary_nothing_answered():
    s = distance_summary([np.nan, np.nan], [np.nan, np.nan], [0, 1], [0, 1])
    assert s["unparsable"] == 1.0 and s["mean_geoscore"] == 0.0 and math.isnan(s["median_km"])
    assert all(s[f"within_{t}km"] == 0.0 for t in (1, 25, 200, 750, 2500))


def test_distance_errors_and_validation():
    d = distance_errors_km([PARIS[0], np.nan], [PARIS[1], 0.0], [PARIS[0], 0.0], [PARIS[1], 0.0])
    assert d[0] == 0.0 and math.isnan(d[1])  # a half-missing prediction is unanswered
    with pytest.raises(ValueError, match="aligned"):
        distance_summary([1.0], [1.0], [1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="true coordinates must be finite"):
        distance_summary([1.0], [1.0], [np.nan], [1.0])
    with pytest.raises(ValueError, match="predicted coordinates out of range"):
        distance_summary([95.0], [1.0], [1.0], [1.0])
    with pytest.raises(ValueError, match="at least one row"):
        distance_summary([], [], [], [])


def test_predicted_coordinates_sources():
    answers = [
        parse_answer("<answer>48.8566, 2.3522</answer>"),
        parse_answer("{'country': 'France', 'city': 'Paris'}"),
        parse_answer("{'country': 'France', 'city': 'Nowhereville'}"),
        parse_answer("I cannot tell."),
        None,
    ]
    lat, lon, source = predicted_coordinates(answers)
    assert source.tolist() == ["coords", "city", "none", "none", "none"]
    assert (lat[0], lon[0]) == PARIS
    assert geo.haversine_km(lat[1], lon[1], *PARIS) < 20  # GeoNames' Paris
    assert np.isnan(lat[2:]).all() and np.isnan(lon[2:]).all()
    lat2, _, source2 = predicted_coordinates(answers, geocode=False)
    assert source2.tolist()[1] == "none" and np.isnan(lat2[1])


def test_predicted_coordinates_geocodes_each_pair_once(monkeypatch):
    calls = []

    def fake(city, country=None):
        calls.append((city, country))
        return (1.0, 2.0)

    monkeypatch.setattr(gazetteer, "geocode_city", fake)
    answers = [ParsedAnswer(city="Lyon", country="FR", answered=True)] * 3 + [ParsedAnswer(city="Lyon", answered=True)]
    lat, lon, source = predicted_coordinates(answers)
    assert calls == [("Lyon", "FR"), ("Lyon", None)]
    assert source.tolist() == ["city"] * 4 and (lat == 1.0).all() and (lon == 2.0).all()


# --------------------------------------------------------------------------------------------
# bootstrap


def test_bootstrap_contains_the_estimate_and_is_deterministic():
    rng = np.random.default_rng(1)
    x = rng.exponential(300.0, size=200)
    lo, hi = bootstrap_ci(np.mean, x, n_boot=500, seed=3)
    assert lo < x.mean() < hi
    assert (lo, hi) == bootstrap_ci(np.mean, x, n_boot=500, seed=3)
    assert (lo, hi) != bootstrap_ci(np.mean, x, n_boot=500, seed=4)
    wide = bootstrap_ci(np.mean, x, n_boot=500, seed=3, alpha=0.01)
    assert wide[0] <= lo and wide[1] >= hi


def test_bootstrap_vectorized_gives_the_same_interval():
    x = np.random.default_rng(2).normal(size=150)
    loop = bootstrap_ci(lambda a: float(np.mean(a > 0)), x, n_boot=300, seed=7)
    vec = bootstrap_ci(lambda a: np.mean(a > 0, axis=-1), x, n_boot=300, seed=7, vectorized=True)
    assert loop == vec


def test_bootstrap_resamples_rows_in_pairs():
    x = np.arange(50.0)
    # paired: the same rows of both arrays, so the difference is always exactly zero
    assert bootstrap_ci(lambda a, b: float(np.mean(a - b)), x, x.copy(), n_boot=200) == (0.0, 0.0)


def test_bootstrap_of_answer_metrics_over_labels():
    truth = ["FR"] * 60 + ["DE"] * 40
    predicted = ["FR"] * 50 + [None] * 10 + ["DE"] * 30 + ["FR"] * 10
    point = answer_metrics(predicted, truth)["f1"]
    lo, hi = bootstrap_ci(lambda p, t: answer_metrics(p, t)["f1"], predicted, truth, n_boot=200, seed=0)
    assert lo <= point <= hi and hi - lo < 0.3


def test_bootstrap_accepts_parsed_answers():
    answers = [parse_answer("France"), parse_answer("unknown")] * 10
    lo, hi = bootstrap_ci(lambda a: float(np.mean([p.answered for p in a])), answers, n_boot=100)
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0


def test_bootstrap_skips_undefined_replicates():
    x = np.array([np.nan] * 5 + [1.0] * 5)
    lo, hi = bootstrap_ci(lambda a: float(np.nanmean(a)) if np.isfinite(a).any() else float("nan"), x, n_boot=100)
    assert (lo, hi) == (1.0, 1.0)
    assert all(math.isnan(v) for v in bootstrap_ci(lambda a: float("nan"), x, n_boot=10))


@pytest.mark.parametrize(
    "kwargs, arrays, error",
    [
        ({}, (), ValueError),
        ({}, ([1.0], [1.0, 2.0]), ValueError),
        ({}, ([],), ValueError),
        ({"n_boot": 0}, ([1.0],), ValueError),
        ({"alpha": 1.0}, ([1.0],), ValueError),
        ({}, (3.0,), ValueError),
    ],
)
def test_bootstrap_errors(kwargs, arrays, error):
    with pytest.raises(error):
        bootstrap_ci(np.mean, *arrays, **kwargs)


def test_bootstrap_vectorized_shape_is_checked():
    with pytest.raises(ValueError, match="one value per replicate"):
        bootstrap_ci(lambda a: 1.0, np.arange(5.0), n_boot=10, vectorized=True)


def test_accuracy_and_f1_over_answered_rows_agree_with_f1_from():
    from geolib import metrics as M

    correct = np.array([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=bool)
    answered = np.array([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=bool)
    acc, f1 = M.accuracy_answered(correct, answered), M.f1_answered(correct, answered)
    assert acc.tolist() == [0.5, 0.0]  # nothing answered: 0, not NaN
    assert f1[0] == pytest.approx(M.f1_from(0.5, 0.5)) and f1[1] == 0.0
