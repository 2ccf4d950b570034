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
