"""Inference: parsed predictions from raw answers, and from a tiny demo model end to end."""

import numpy as np
import pandas as pd

from geolib import inference


def test_predictions_from_texts_parse_geocode_and_keep_raw():
    texts = ["{'country': 'France', 'city': 'Paris', 'reasons': 'French signs.'}",
             "<think>Cyrillic signs.</think><answer>55.75, 37.62</answer>",
             "I cannot tell.", "", "{'country': 'Atlantis'"]
    table = inference.predictions_from_texts(list("abcde"), texts)
    assert table["image_id"].tolist() == list("abcde")
    assert table["raw"].tolist() == texts
    assert table.loc[0, "pred_country"] == "FR" and table.loc[0, "coord_source"] == "city"
    assert abs(table.loc[0, "pred_lat"] - 48.85) < 0.2
    assert table.loc[1, "coord_source"] == "coords" and table.loc[1, "pred_lon"] == 37.62
    assert not table.loc[2, "answered"] and np.isnan(table.loc[2, "pred_lat"])
    assert not table.loc[3, "answered"]


def test_answer_images_with_a_tiny_demo_model(tmp_path):
    from geolib import conversations, vlm

    tok = vlm.train_tokenizer(["{'country': 'France', 'city': 'Paris'}", *conversations.PROMPTS.values()], 300, tmp_path / "tok")
    model, _ = vlm.build_model({"model_id": "demo", "hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1,
                                "intermediate_size": 64, "max_positions": 256, "image_grid": 7}, processor=tok)
    feats = np.random.default_rng(0).random((3, 49, 1280)).astype(np.float16)
    table = inference.answer_images(model, tok, feats, ["x", "y", "z"], max_new_tokens=6, batch_size=2, progress=False)
    assert len(table) == 3 and isinstance(table["raw"].iloc[0], str)
    assert set(["pred_country", "pred_city", "pred_lat", "pred_lon", "score"]) <= set(table.columns)
    assert isinstance(table, pd.DataFrame)


# ---------------------------------------------------------------------------------------------
# Several models answering the same images (notebook 06)


def _answers(ids, texts):
    return inference.predictions_from_texts(ids, texts, geocode=False)


def test_answer_jobs_ask_the_closed_set_and_the_reasons_only_of_the_named_models():
    arms = {"base": (), "full": ["reasoning", "location"], "q0": ("reasoning", "location_quality_000")}
    jobs = inference.answer_jobs(arms, "Where?", candidates=["France", "Japan"], closed_set_arms=["base", "full"],
                                 reasons_prompt="Why?", reasons_arms=["full"], profile="ci", max_new_tokens=8)
    assert list(jobs) == ["base", "full", "q0"]
    assert jobs["full"] == {"profile": "ci", "max_new_tokens": 8, "stages": ("reasoning", "location"), "prompt": "Where?",
                            "candidates": ["France", "Japan"], "reasons_prompt": "Why?"}
    assert jobs["base"]["reasons_prompt"] is None and jobs["q0"]["candidates"] is None
    assert inference.answer_jobs(arms, "Where?", closed_set_arms=["base"])["base"]["candidates"] is None


def test_sort_answers_falls_back_to_the_first_answers_and_scores_the_closed_set():
    first = _answers(["a", "b"], ["{'country': 'France', 'city': 'Lyon'}", "no idea"])
    why = _answers(["a", "b"], ["{'country': 'France', 'reasons': 'French signs'}", "{'country': 'Japan'}"])
    scores = np.array([[0.0, -1.0], [-2.0, -0.5]])  # columns France, Japan
    done = {"base": {"answers": first, "slot_scores": None, "reasons": None, "seconds": 1.5},
            "s1": {"answers": first, "slot_scores": None, "reasons": None, "seconds": 2.0},
            "full": {"answers": first, "slot_scores": scores, "reasons": why, "seconds": 3.0}}
    answers, reasons, closed, seconds = inference.sort_answers(done, ["s1", "full"], ["France", "Japan"], ["France", "France"])
    assert list(answers) == ["base", "s1", "full"] and answers["full"] is first
    assert reasons["full"] is why and reasons["s1"] is first and "base" not in reasons
    assert closed == {"full": {"top1": 0.5, "top2": 1.0}}  # top-5 is clipped to the 2 candidates
    assert seconds == {"base": 1.5, "s1": 2.0, "full": 3.0}


def test_answer_tables_show_what_was_written_and_read():
    test = pd.DataFrame({"image_id": ["a", "b", "c"], "country": ["FR", "JP", "FR"], "city": ["Lyon", "Osaka", "Nice"],
                         "lat": [45.76, 34.69, 43.70], "lon": [4.84, 135.50, 7.27]})
    full = _answers(["a", "b", "c"], ["{'country': 'France', 'city': 'Lyon'}", "no idea", "{'country': 'Japan', 'city': 'Kyoto'}"])
    why = _answers(["a", "b", "c"], ["{'country': 'France', 'reasons': 'French signs'}", "nothing", "{'country': 'Japan'}"])
    answers = {"base": why, "full": full}

    shown = inference.shown_answers(answers, test, ["base", "full", "not run"])
    assert list(shown.columns) == ["truth", "base: raw", "base: read", "full: raw", "full: read"]
    assert shown["truth"].tolist() == ["France, Lyon", "Japan, Osaka", "France, Nice"]
    assert shown["full: read"].tolist() == ["FR, Lyon", "(unparsable)", "JP, Kyoto"]

    diagnosis = inference.closed_set_diagnosis(answers, {"full": {"top1": 2 / 3, "top5": 1.0}}, test, n_candidates=4)
    assert list(diagnosis.index) == ["full"]
    row = diagnosis.loc["full"]
    assert row["generated: right (share of all images)"] == 1 / 3 and row["generated: answered"] == 2 / 3
    assert row["closed set: top-1"] == 2 / 3 and row["chance (top-1)"] == 0.25

    picked = inference.answer_examples(full, why, test, [True, False, False], per_kind=1)
    assert picked["image_id"].tolist() == ["a", "b"] and picked["correct"].tolist() == [True, False]
    assert picked["answer"].tolist() == ["France, Lyon", "no idea"]  # the raw text where nothing was read
    assert picked["reasons"].tolist() == ["French signs", "(no reasons could be read) nothing"]
    own = inference.answer_examples(full, None, test, [True, False, False], per_kind=2)
    assert own["image_id"].tolist() == ["a", "b", "c"]

    baseline = pd.DataFrame({"image_id": ["a", "b", "c"], "pred_country": ["FR", None, "FR"], "pred_city": None,
                             "pred_lat": np.nan, "pred_lon": np.nan, "score": [1, 2, 3]})
    frame = inference.answers_frame(answers, "location", {"full": why}, "reasoning", {"majority": baseline})
    assert frame["model"].tolist() == ["base"] * 3 + ["full"] * 3 + ["full"] * 3 + ["majority"] * 3
    assert frame["prompt"].tolist() == ["location"] * 6 + ["reasoning"] * 3 + [""] * 3
    assert frame["answered"].tolist()[-3:] == [True, False, True] and frame["score"].dtype == float
    assert len(inference.answers_frame(answers, "location")) == 6
