"""Evaluation tables: per-image correctness, intervals, paired differences, bins, faithfulness."""

import math

import numpy as np
import pandas as pd
import pytest

from geolib import evaluation, metrics


@pytest.fixture
def test_df():
    return pd.DataFrame({
        "image_id": ["a", "b", "c", "d"],
        "country": ["FR", "FR", "DE", "JP"],
        "city": ["Lyon", "Nice", "Bonn", "Osaka"],
        "lat": [45.76, 43.70, 50.73, 34.69],
        "lon": [4.84, 7.27, 7.10, 135.50],
    })


def _pred(ids, country, city=None, lat=None, lon=None, answered=None):
    n = len(ids)
    frame = pd.DataFrame({"image_id": ids, "pred_country": country, "pred_city": city or [None] * n,
                          "pred_lat": lat if lat is not None else [np.nan] * n,
                          "pred_lon": lon if lon is not None else [np.nan] * n, "score": np.nan})
    if answered is not None:
        frame["answered"] = answered
    return frame


def test_correct_and_answered_reproduce_answer_metrics():
    pred = ["France", None, "Germany", "FR", "", "Atlantis"]
    truth = ["FR", "FR", "DE", "DE", "JP", "JP"]
    correct, answered = evaluation.correct_and_answered(pred, truth)
    assert answered.tolist() == [True, False, True, True, False, True]
    assert correct.tolist() == [True, False, True, False, False, False]
    m = metrics.answer_metrics(pred, truth)
    assert math.isclose(correct.sum() / answered.sum(), m["accuracy"]) and math.isclose(answered.mean(), m["recall"])
    with pytest.raises(ValueError, match="predictions for"):
        evaluation.correct_and_answered(["FR"], ["FR", "DE"])
    raw = evaluation.correct_and_answered(pred, truth, as_text=False)  # the labels as answer_metrics sees them
    assert raw[0].tolist() == correct.tolist() and raw[1].tolist() == answered.tolist()


def test_aligned_follows_test_order_and_marks_missing_rows(test_df):
    pred = _pred(["c", "a"], ["DE", "FR"])
    a = evaluation.aligned(pred, test_df)
    assert a["image_id"].tolist() == ["a", "b", "c", "d"]
    assert a["pred_country"].tolist()[::2] == ["FR", "DE"] and a["answered"].tolist() == [True, False, True, False]
    parsed = _pred(["a", "b"], ["FR", None], answered=[True, False])
    assert evaluation.answered_rows(parsed).tolist() == [True, False]
    with pytest.raises(ValueError, match="repeat"):
        evaluation.aligned(_pred(["a", "a"], ["FR", "FR"]), test_df)


def test_evaluation_table_adds_unanswered_and_formats_intervals(test_df):
    preds = {
        "perfect": _pred(list(test_df["image_id"]), list(test_df["country"]), list(test_df["city"]),
                         list(test_df["lat"]), list(test_df["lon"])),
        "half": _pred(["a", "b", "c", "d"], ["FR", None, "FR", None], ["Lyon", None, None, None],
                      [45.76, np.nan, np.nan, np.nan], [4.84, np.nan, np.nan, np.nan], answered=[True, False, True, False]),
    }
    table = evaluation.evaluation_table(preds, test_df, n_boot=50)
    assert set(table["metric"]) == set(evaluation.EVAL_METRICS)
    v = evaluation.values(table)
    assert list(v.index) == ["perfect", "half"]
    assert v.loc["perfect", "country_f1"] == 1.0 and v.loc["perfect", "unanswered"] == 0.0
    assert v.loc["half", "unanswered"] == 0.5 and v.loc["half", "country_accuracy"] == 0.5
    assert v.loc["half", "within_1km"] == 0.25
    text = evaluation.interval_table(table, ["country_f1", "median_km"])
    assert list(text.columns) == ["country_f1", "median_km"] and text.loc["perfect", "country_f1"].startswith("1.000 [")
    records = evaluation.table_records(table)
    assert records["half"]["unanswered"]["value"] == 0.5 and records["half"]["unanswered"]["n"] == 4


def test_f1_difference_is_paired_and_relative_undefined_over_zero():
    rng = np.random.default_rng(0)
    correct = rng.random(200) < 0.6
    answered = np.ones(200, bool)
    none = (np.zeros(200, bool), np.zeros(200, bool))
    d = evaluation.f1_difference((correct, answered), none, n_boot=200)
    assert d["second"] == 0.0 and math.isnan(d["relative"]) and d["ci_low"] <= d["difference"] <= d["ci_high"]
    same = evaluation.f1_difference((correct, answered), (correct, answered), "accuracy", n_boot=100)
    assert same["difference"] == 0 and same["ci_low"] == same["ci_high"] == 0  # paired: identical models never differ
    half = evaluation.f1_difference((correct, answered), (correct & (np.arange(200) < 100), answered), "accuracy", n_boot=50)
    assert half["relative"] > 0
    with pytest.raises(ValueError, match="statistic"):
        evaluation.f1_difference((correct, answered), (correct, answered), "auc")
    with pytest.raises(ValueError, match="correct but not answered"):
        evaluation.f1_difference((correct, ~answered), (correct, answered))


def test_accuracy_by_bins_orders_by_score():
    score = np.linspace(0, 1, 100)
    correct = score > 0.5
    answered = np.ones(100, bool)
    bins = evaluation.accuracy_by_bins(score, correct, answered, n_bins=10, n_boot=20)
    assert bins["bin"].tolist() == list(range(1, 11)) and bins["n"].sum() == 100
    assert bins["accuracy"].iloc[0] == 0.0 and bins["accuracy"].iloc[-1] == 1.0
    assert (bins["score_low"].diff().dropna() > 0).all() and (bins["answered"] == 1.0).all()
    few = evaluation.accuracy_by_bins([0.3, 0.1], [True, False], [True, False], n_bins=10, n_boot=5)
    assert few["answered"].tolist() == [0.0, 1.0] and math.isnan(few["ci_low"].iloc[0]) and few["accuracy"].iloc[1] == 1.0
    with pytest.raises(ValueError, match="aligned"):
        evaluation.accuracy_by_bins([0.1], [True, False], [True, True])


def test_faithfulness_counts_cited_and_visible_clues():
    reasons = ["The signs are in Cyrillic script and cars keep right.", "Cars drive on the left.", None]
    visible = [["script:Cyrl", "driving_side:right"], ["script:Latn"], ["vegetation:tropical"]]
    table = evaluation.cited_clues(reasons, visible)
    assert table["n_cited"].tolist() == [2, 1, 0] and table["n_cited_visible"].tolist() == [2, 0, 0]
    f = evaluation.faithfulness(reasons, visible, n_boot=50)
    assert math.isclose(f["precision"], 2 / 3) and math.isclose(f["recall"], 2 / 4)
    assert math.isclose(f["hallucination_rate"], 1 / 3) and math.isclose(f["with_reasons"], 2 / 3)
    assert f["precision_low"] <= f["precision"] <= f["precision_high"]
    from geolib import gre_scores

    q = gre_scores.chain_quality([r or "" for r in reasons], visible)
    assert math.isclose(q["precision"], f["precision"]) and math.isclose(q["recall"], f["recall"])
    nothing = evaluation.faithfulness([None, None], visible[:2], n_boot=10)
    assert math.isnan(nothing["precision"]) and nothing["recall"] == 0.0


def test_within_km_curve_counts_missing_as_misses():
    curve = evaluation.within_km_curve([0.5, 30.0, np.nan, 3000.0], [1, 25, 200, 5000])
    assert curve.tolist() == [0.25, 0.25, 0.5, 0.75]


def test_errors_by_country(test_df):
    pred = _pred(["a", "b", "c", "d"], ["FR", "FR", "FR", None], lat=[45.76, 45.76, 45.76, np.nan],
                 lon=[4.84, 4.84, 4.84, np.nan], answered=[True, True, True, False])
    per = evaluation.errors_by_country(pred, test_df).set_index("country")
    assert per.loc["FR", "n"] == 2 and per.loc["FR", "country_correct"] == 1.0
    assert per.loc["DE", "country_correct"] == 0.0 and per.loc["DE", "median_km"] > 400
    assert per.loc["JP", "answered"] == 0.0 and math.isnan(per.loc["JP", "median_km"])


def test_paper_table_recomputes_f1():
    paper = evaluation.paper_table()
    for model, row in paper.iterrows():
        for level in ("country", "city"):
            if not math.isnan(row[f"{level}_f1"]):
                assert abs(metrics.f1_from(row[f"{level}_accuracy"], row[f"{level}_recall"]) - row[f"{level}_f1"]) < 6e-4, model


def test_unrecognised_country_names_are_wrong_answers_not_missing_ones(test_df):
    from geolib import inference

    texts = ["{'country': 'France', 'city': 'Lyon'}", "{'country': 'Atlantis', 'city': 'Nice'}", "I cannot tell.",
             "{'city': 'Osaka'}"]
    scored = inference.predictions_from_texts(list(test_df["image_id"]), texts, geocode=False)
    assert scored["pred_country"].tolist() == ["FR", "Atlantis", None, None]
    correct, answered = evaluation.correct_and_answered(scored["pred_country"], test_df["country"])
    assert answered.tolist() == [True, True, False, False] and correct.tolist() == [True, False, False, False]


def test_reasons_or_raw_falls_back_to_the_raw_answer():
    pred = pd.DataFrame({"reasons": ["Cyrillic signs.", None, None], "raw": ["x", "{'country': ' ' 'reasons': 'cars keep left", None]})
    assert evaluation.reasons_or_raw(pred) == ["Cyrillic signs.", "{'country': ' ' 'reasons': 'cars keep left", None]


def test_quality_curve_accuracy_intervals_and_paired_difference():
    rng = np.random.default_rng(0)
    answered = np.ones(200, bool)
    hits = {pct: (rng.random(200) < p, answered) for pct, p in ((0, 0.2), (50, 0.4), (100, 0.6))}
    curve = evaluation.quality_curve(hits, n_boot=300)
    assert curve["share"].tolist() == [0, 50, 100]
    assert np.allclose(curve["country_accuracy"], [hits[p][0].mean() for p in (0, 50, 100)])
    assert (curve["ci_low"] <= curve["country_accuracy"]).all() and (curve["country_accuracy"] <= curve["ci_high"]).all()
    assert curve.loc[0, "minus_lowest"] == 0
    assert curve.loc[2, "minus_lowest_ci_low"] > 0  # 0.6 vs 0.2 on 200 images: clearly above
    half = (hits[0][0], np.arange(200) < 100)  # accuracy is over answered images
    half = (half[0] & half[1], half[1])
    assert evaluation.quality_curve({0: half}, n_boot=50).loc[0, "answered"] == 0.5
    with pytest.raises(ValueError, match="at least one"):
        evaluation.quality_curve({})


def test_data_quality_figure_draws_intervals_paper_and_chance():
    import matplotlib

    from geolib import plots

    curve = evaluation.quality_curve({0: (np.zeros(10, bool), np.ones(10, bool)),
                                      100: (np.arange(10) < 3, np.ones(10, bool))}, n_boot=50)
    fig = plots.plot_data_quality(curve, 0.025, evaluation.PAPER_DATA_QUALITY, 40)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0%", "100%"]
    assert {"this run (test cities)", "GeoReasoner paper (real street views)", "chance (2.5%)"} <= {
        t.get_text() for t in ax.get_legend().get_texts()}
    assert "40 images" in ax.get_title()
    matplotlib.pyplot.close(fig)
    low = evaluation.quality_curve({0: (np.zeros(100, bool), np.ones(100, bool)),
                                    100: (np.arange(100) < 3, np.ones(100, bool))}, n_boot=50)
    fig = plots.plot_data_quality(low, 0.025, evaluation.PAPER_DATA_QUALITY)
    ax = fig.axes[0]  # a curve near chance keeps its own scale; the paper's ends are written out
    assert ax.get_ylim()[1] < 0.2 and any("0.63 at 0%" in t.get_text() for t in ax.texts)
    matplotlib.pyplot.close(fig)


def _two_models(test_df):
    return {"perfect": _pred(list(test_df["image_id"]), list(test_df["country"]), list(test_df["city"]),
                             list(test_df["lat"]), list(test_df["lon"])),
            "half": _pred(["a", "b", "c", "d"], ["FR", None, "FR", None], answered=[True, False, True, False])}


def test_faithfulness_with_references_frames_each_model(test_df):
    split = test_df.assign(clues=[["script:Cyrl"], ["driving_side:left"], [], ["script:Latn"]],
                           reasoning=["Cyrillic signs.", "Cars drive on the left.", "", "Latin letters."])
    answers = pd.DataFrame({"image_id": list("abcd"), "reasons": ["Cyrillic script.", None, None, "Cars keep left."],
                            "raw": ["x", "Cars drive on the left.", "y", "z"]})
    faith = evaluation.faithfulness_with_references({"full": answers}, split, n_boot=20)
    assert list(faith) == ["full (reasoning question)", "reference: the demo world's reasoning texts",
                           "reference: full, reasons of another image"]
    own = evaluation.faithfulness(evaluation.reasons_or_raw(answers), split["clues"].tolist(), n_boot=20)
    assert faith["full (reasoning question)"] == {**own, "reasons_field_read": 0.5}
    assert faith["reference: the demo world's reasoning texts"]["precision"] == 1.0
    shuffled = faith["reference: full, reasons of another image"]
    assert shuffled["n_cited_visible"] < own["n_cited_visible"]  # reasons of the previous image cite other clues
    assert set(evaluation.FAITHFULNESS_COLUMNS) <= set(faith["full (reasoning question)"])
    assert evaluation.faithfulness_with_references({"full": answers}, test_df) == {}  # no clue annotation: real data
    assert evaluation.faithfulness_with_references({}, split) == {}
    with pytest.raises(ValueError, match="order"):
        evaluation.faithfulness_with_references({"full": answers.iloc[::-1]}, split, n_boot=5)


def test_summary_keys_name_each_arm_closed_set_and_quality_share(test_df):
    table = evaluation.evaluation_table(_two_models(test_df), test_df, n_boot=20)
    quality = evaluation.quality_curve({0: (np.array([True, False]), np.array([True, True])),
                                        100: (np.array([True, True]), np.array([True, True]))}, n_boot=20)
    keys = evaluation.summary_keys([table], {"half": "full", "absent": "base"}, {"half": {"top1": 0.5, "top5": 1.0},
                                                                                  "perfect": {"top1": 1.0, "top5": 1.0}}, quality)
    f1 = evaluation.table_records(table)["half"]["country_f1"]
    assert keys["06.full.country_f1"] == f1["value"] and keys["06.full.country_f1.ci_low"] == f1["ci_low"]
    assert keys["06.full.answered"] == 0.5 and keys["06.full.closed_set_top5"] == 1.0
    assert keys["06.quality.share_100.country_acc"] == 1.0 and "06.quality.share_0.minus_lowest.ci_low" in keys
    assert not [k for k in keys if ".base." in k or "perfect" in k] and len(keys) == 6 + 8
    assert evaluation.summary_keys([table], {"perfect": "p"}, prefix="xx") == {
        "xx.p.country_f1": 1.0, "xx.p.country_f1.ci_low": 1.0, "xx.p.country_f1.ci_high": 1.0, "xx.p.answered": 1.0}
    diff = evaluation.f1_difference((np.array([True, True]), np.array([True, True])),
                                    (np.array([True, False]), np.array([True, True])), n_boot=20)
    keys = evaluation.summary_keys([], {}, differences={"a_minus_b": diff})
    assert keys == {"06.a_minus_b.country_f1": diff["difference"], "06.a_minus_b.country_f1.ci_low": diff["ci_low"],
                    "06.a_minus_b.country_f1.ci_high": diff["ci_high"]} and diff["difference"] > 0


def test_gain_summary_says_the_gain_over_the_base_and_the_best_baseline(test_df):
    table = evaluation.evaluation_table(_two_models(test_df), test_df, n_boot=20)
    gains = {"base": {"first": 0.5, "second": 0.4, "relative": 0.25},
             "perfect": {"difference": -0.2, "ci_low": -0.4, "ci_high": 0.1}}
    text = evaluation.gain_summary(gains, "base", table, ["half", "perfect"])
    assert text.splitlines() == ["country F1: full 0.500 vs untuned base 0.400 (relative gain +25%; the paper's aim: ≥ +25%)",
                                 "full − best baseline (perfect): -0.200 country F1 [-0.400, +0.100]"]
    assert "undefined: the base scores 0" in evaluation.gain_summary({}, "base", table, ["half"])


def test_check_table_passes_a_real_table_and_names_what_fails(test_df):
    table = evaluation.evaluation_table(_two_models(test_df), test_df, n_boot=20)
    evaluation.check_table(table)
    bad = table.copy()
    bad.loc[(bad["model"] == "half") & (bad["metric"] == "country_recall"), "value"] = 1.5
    with pytest.raises(AssertionError, match=r"main: a share outside \[0, 1\]: \['half'\]"):
        evaluation.check_table(bad, "main")
    bad = table.copy()
    bad.loc[(bad["model"] == "perfect") & (bad["metric"] == "city_f1"), ["value", "ci_low", "ci_high"]] = 0.5
    with pytest.raises(AssertionError, match=r"city F1 is not the harmonic mean.*perfect"):
        evaluation.check_table(bad)
    bad = table.copy()
    bad.loc[bad["metric"] == "median_km", "value"] = -1.0
    with pytest.raises(AssertionError, match="negative median"):
        evaluation.check_table(bad)
