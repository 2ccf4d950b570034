"""Tests of GRE Suite's path (notebook 07): chains and conversations (geolib.chains), scores and tables
(geolib.gre_scores), GRPO steps on tiny models (geolib.grpo, no hub), and notebook 07's glue (geolib.gre)."""

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geolib import chains, conversations, gre_scores, grpo, params, tuning, world
from geolib.answers import parse_answer
from geolib.rewards import ThetaSchedule, format_reward

torch = pytest.importorskip("torch")
from geolib import vlm  # noqa: E402

TINY = {"model_id": "demo", "hidden_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 2,
        "intermediate_size": 128, "max_positions": 512, "image_grid": 7}
#: Notebook 07's own settings (its parameters cell).
DEMO = params.notebook_values("07_gre_reasoning_rl")
N_IMAGES = 8


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and the test machine is shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _row(lat, lon, clues=(), **kw):
    return {"lat": lat, "lon": lon, "clues": list(clues), "scene": kw.pop("scene", "urban"),
            "country": kw.pop("country", "FR"), "city": kw.pop("city", "Lyon"), **kw}


# --------------------------------------------------------------------------------------------- chains


@settings(max_examples=200, deadline=None)
@given(lat=st.floats(-90, 90, allow_nan=False), lon=st.floats(-180, 180, allow_nan=False))
def test_chain_passes_format_reward_and_parses_back_to_its_coordinates(lat, lon):
    chain = chains.build_chain(_row(lat, lon, ["script:Latn"]))
    assert format_reward(chain) == 1.0
    parsed = parse_answer(chain)
    assert parsed.format == "gre"
    assert parsed.lat == pytest.approx(round(lat, 4), abs=1e-9)
    assert parsed.lon == pytest.approx(round(lon, 4), abs=1e-9)


@pytest.mark.parametrize("lat, lon", [(-33.8688, 151.2093), (-22.9068, -43.1729), (40.7128, -74.006),
                                      (64.1466, -21.9426), (-0.1807, -78.4678), (90.0, 180.0), (-90.0, -180.0)])
def test_chain_keeps_hemispheres_latitude_first(lat, lon):
    chain = chains.build_chain(_row(lat, lon))
    assert chain.endswith(f"<answer>{lat:.4f}, {lon:.4f}</answer>")
    parsed = parse_answer(chain)
    assert (parsed.lat, parsed.lon) == (pytest.approx(lat), pytest.approx(lon))


def test_chain_steps_in_order_each_clue_in_its_step_nothing_else_mentioned():
    clues = world.clue_ids()
    chain = chains.build_chain(_row(48.0, 2.0, clues, scene="rural"))
    think = chain.split("<think>")[1].split("</think>")[0].strip().splitlines()
    assert [line.split(":")[0] for line in think] == [
        "1. Scene and architecture", "2. Text and language", "3. Vegetation and terrain",
        "4. Transport and road markings", "Conclusion"]
    assert world.clues_mentioned(chain) == set(clues)
    steps = dict(zip(("scene", "text", "vegetation", "transport"), think[:4]))
    for clue in clues:
        kind = clue.partition(":")[0]
        step = next(k for k, _, types in chains.CHAIN_STEPS if kind in types)
        assert clue in world.clues_mentioned(steps[step]), (clue, steps[step])


def test_chain_with_nothing_visible_says_so_and_mentions_no_clue():
    chain = chains.build_chain(_row(35.0, 139.0, [], scene="natural", country="JP", city="Tokyo"))
    assert world.clues_mentioned(chain) == set()
    for key, _, _ in chains.CHAIN_STEPS[1:]:
        assert chains.NOTHING_VISIBLE[key] in chain
    assert "weak guess: Japan, near Tokyo" in chain


@pytest.fixture(scope="module")
def pool():
    """Hand-made pool rows in the demo world's manifest columns (both hemispheres, with and without clues)."""
    return pd.DataFrame({
        "image_id": [f"demo_{i:06d}" for i in range(N_IMAGES)],
        "lat": [55.7558, -33.8688, -22.9068, 40.7128, 35.6762, -1.2921, 64.1466, 0.0],
        "lon": [37.6173, 151.2093, -43.1729, -74.0060, 139.6503, 36.8219, -21.9426, 0.0],
        "country": ["RU", "AU", "BR", "US", "JP", "KE", "IS", None],
        "city": ["Moscow", "Sydney", "Rio de Janeiro", "New York", "Tokyo", "Nairobi", "Reykjavik", None],
        "scene": ["urban", "suburban", "rural", "urban", "landmark", "rural", "natural", "natural"],
        "clues": [["script:Cyrl", "language:ru", "driving_side:right"], ["driving_side:left", "vegetation:tropical"],
                  ["plate:mercosur", "centre_line:yellow"], ["direction_sign:green", "edge_line:white"],
                  ["script:Jpan"], ["vegetation:arid", "driving_side:left"], [], []],
        "reasoning": ["A city street lined with buildings on both sides, with a sidewalk. The signs are in Cyrillic.",
                      "A residential street with low houses. Palm trees.", "An open country road.",
                      "An urban road between tall buildings, with cars.", "A landmark building across a plaza.",
                      "A rural road through open land.", "Open countryside without buildings. Thick fog washes out "
                      "the distance.", None],
    })


@pytest.fixture(scope="module")
def world_pool(tmp_path_factory):
    """A few real demo-world scenes (rendered at a small size: the clues do not depend on it)."""
    out = tmp_path_factory.mktemp("world")
    return world.build_world(out, n_images=N_IMAGES, n_countries=4, cities_per_country=1, seed=3, image_size=64,
                             workers=1, progress=False)


def test_hand_made_rows_chains_mention_exactly_the_visible_clues(pool):
    for row in pool.to_dict("records"):
        chain = chains.build_chain(row)
        assert format_reward(chain) == 1.0
        assert world.clues_mentioned(chain) == set(row["clues"]), (row["clues"], chain)
    assert "fog hides the distance" in chains.build_chain(pool.iloc[6])
    assert "weak guess." in chains.build_chain(pool.iloc[7])  # no clue, no place: still a chain


@pytest.mark.slow
def test_demo_world_chains_mention_exactly_the_visible_clues(world_pool):
    assert len(world_pool) == N_IMAGES
    for row in world_pool.to_dict("records"):
        chain = chains.build_chain(row)
        assert format_reward(chain) == 1.0
        assert world.clues_mentioned(chain) == set(row["clues"]), (row["clues"], chain)
        parsed = parse_answer(chain)
        assert (parsed.lat, parsed.lon) == (pytest.approx(row["lat"], abs=6e-5), pytest.approx(row["lon"], abs=6e-5))


def test_chain_conversations_shape_and_bad_rows_skipped(pool):
    frame = pool.copy()
    frame.loc[1, "lat"] = 123.0
    with pytest.warns(UserWarning, match=r"skipped 1 of 8 rows \(row 1: .*out of range"):
        convs = chains.chain_conversations(frame)
    assert len(convs) == N_IMAGES - 1 and [c["image"] for c in convs][:2] == [0, 2]
    user, assistant = convs[0]["messages"]
    assert user == conversations.user_message(chains.GRE_PROMPT)
    assert assistant["role"] == "assistant" and format_reward(assistant["content"][0]["text"]) == 1.0
    keyed = chains.chain_conversations(pool.assign(key=range(10, 10 + N_IMAGES)), prompt="Where?", image_column="key")
    assert keyed[0]["image"] == 10 and keyed[0]["messages"][0] == conversations.user_message("Where?")


def test_gre30k_cot_records_become_the_same_conversation_shape(tmp_path):
    from geolib.corpora import load_gre30k_cot

    records = [
        {"image": "imgs/a.jpg", "conversations": [{"from": "human", "value": "<image>\nWhere is this?"},
                                                  {"from": "gpt", "value": "<think>Cyrillic signs.</think><answer>55.75, 37.62</answer>"}],
         "gt_lat": 55.75, "gt_lon": 37.62},
        {"image": "imgs/b.jpg", "conversations": [{"from": "human", "value": "<image>\nWhere is this?"},
                                                  {"from": "gpt", "value": "Somewhere in Peru."}],
         "gt_lat": -12.05, "gt_lon": -77.04},
    ]
    path = tmp_path / "gre_cot.json"
    path.write_text(json.dumps(records))
    cot, _ = load_gre30k_cot(path, require_images=False)
    with pytest.warns(UserWarning, match="1 of 2 chains are not in GRE's"):
        convs = chains.gre30k_conversations(cot)
    assert len(convs) == 2 and convs[0]["image"].endswith("a.jpg")
    assert convs[0]["messages"][0] == conversations.user_message("Where is this?")
    assert convs[0]["messages"][1] == conversations.assistant_message(records[0]["conversations"][1]["value"])
    assert chains.gre30k_conversations(cot.iloc[:1], prompt=chains.GRE_PROMPT)[0]["messages"][0] == conversations.user_message(chains.GRE_PROMPT)


# --------------------------------------------------------------------------------------------- scores


def _truth():
    # two urban, two rural, one natural image
    return pd.DataFrame({"lat": [48.8566, 48.8566, -33.8688, -33.8688, 0.0],
                         "lon": [2.3522, 2.3522, 151.2093, 151.2093, 0.0],
                         "scene": ["urban", "urban", "rural", "rural", "natural"]})


def test_evaluate_gre_overall_and_per_scene_on_hand_made_answers():
    completions = [
        "<think>Paris.</think><answer>48.8566, 2.3522</answer>",          # 0 km
        "<think>Belgium?</think><answer>50.8503, 4.3517</answer>",        # Brussels, ~264 km
        "<think>Sydney.</think><answer>-33.8688, 151.2093</answer>",      # 0 km
        "Sydney, I think: -33.80, 151.30",                                  # ~11 km, not GRE's format
        [{"role": "assistant", "content": "<think>Sea.</think><answer>somewhere</answer>"}],  # unparsable
    ]
    table = gre_scores.evaluate_gre(completions, _truth(), n_boot=200)
    assert table["group"].tolist() == ["all", "urban", "rural", "natural"]
    by = table.set_index("group")
    assert by.loc["all", "n"] == 5 and by.loc["all", "n_answered"] == 4
    assert by.loc["all", "format_ok"] == pytest.approx(4 / 5)
    assert by.loc["all", "unparsable"] == pytest.approx(1 / 5)
    assert by.loc["all", "within_1km"] == pytest.approx(2 / 5)
    assert by.loc["all", "within_25km"] == pytest.approx(3 / 5)
    assert by.loc["all", "within_750km"] == pytest.approx(4 / 5)
    assert by.loc["urban", "within_1km"] == 0.5 and by.loc["urban", "within_200km"] == 0.5
    assert by.loc["urban", "within_750km"] == 1.0
    assert by.loc["urban", "median_km"] == pytest.approx(264 / 2, rel=0.02)
    assert by.loc["rural", "within_25km"] == 1.0 and by.loc["rural", "format_ok"] == 0.5
    assert by.loc["natural", "unparsable"] == 1.0 and by.loc["natural", "within_2500km"] == 0.0
    assert math.isnan(by.loc["natural", "median_km"])
    for col in ("within_25km", "format_ok", "unparsable"):
        assert (table[f"{col}_low"] <= table[col] + 1e-12).all() and (table[col] <= table[f"{col}_high"] + 1e-12).all()
    with pytest.raises(ValueError, match="3 completions for 5 truth rows"):
        gre_scores.evaluate_gre(completions[:3], _truth())
    assert gre_scores.evaluate_gre(completions, _truth().drop(columns="scene"), n_boot=10)["group"].tolist() == ["all"]


def test_chain_quality_recall_precision_and_hallucinations():
    completions = [
        "<think>The signs are in Cyrillic and the words read as Russian.</think><answer>55.7, 37.6</answer>",
        "<think>Cars keep left; palm trees.</think><answer>-33.8, 151.2</answer>",
        "<think>Nothing to see.</think><answer>0, 0</answer>",
    ]
    truth = [["script:Cyrl", "language:ru", "driving_side:right"], ["driving_side:left"], np.array([], dtype=object)]
    q = gre_scores.chain_quality(completions, truth)
    assert (q["n_visible"], q["n_mentioned"], q["n_correct"]) == (4, 4, 3)
    assert q["recall"] == pytest.approx(3 / 4) and q["precision"] == pytest.approx(3 / 4)
    assert q["recall_macro"] == pytest.approx((2 / 3 + 1) / 2)
    assert q["hallucination_rate"] == pytest.approx(1 / 3)
    assert q["by_type"]["vegetation"] == {"recall": pytest.approx(float("nan"), nan_ok=True), "precision": 0.0,
                                          "n_visible": 0, "n_mentioned": 1}
    assert q["by_type"]["driving_side"]["recall"] == 0.5
    # the answer block never counts as reasoning
    assert gre_scores.chain_text("<think>a</think><answer>Russian</answer>") == "a"
    assert gre_scores.chain_quality(["no tags, Cyrillic <answer>Latin script</answer>"], [["script:Cyrl"]])["precision"] == 1.0


def test_chain_quality_intervals_bracket_the_pooled_scores():
    completions = ["<think>Cyrillic signs; cars keep right.</think><answer>55.7, 37.6</answer>",
                   "<think>Cars keep left; palm trees.</think><answer>-33.8, 151.2</answer>",
                   "<think>Latin script.</think><answer>48.8, 2.3</answer>",
                   "<think>Nothing to see.</think><answer>0, 0</answer>"]
    truth = [["script:Cyrl", "driving_side:right"], ["driving_side:left"], ["script:Latn", "language:fr"], []]
    q = gre_scores.chain_quality(completions, truth, n_boot=300)
    assert "recall_low" not in gre_scores.chain_quality(completions, truth)
    for key in ("recall", "precision", "f1", "hallucination_rate"):
        assert 0.0 <= q[f"{key}_low"] <= q[key] + 1e-12 <= q[f"{key}_high"] + 2e-12 <= 1.0 + 2e-12, key
    again = gre_scores.chain_quality(completions, truth, n_boot=300)  # deterministic for a seed
    assert [q[k] for k in q if k.endswith(("_low", "_high"))] == [again[k] for k in q if k.endswith(("_low", "_high"))]


def test_answer_errors_km_and_score_table():
    completions = ["<think>Paris.</think><answer>48.8566, 2.3522</answer>",
                   "<think>Brussels.</think><answer>50.8503, 4.3517</answer>", "no idea", "<answer>-33.87, 151.21</answer>",
                   "<think>x</think><answer>somewhere</answer>"]
    d = gre_scores.answer_errors_km(completions, _truth())
    assert d[0] == pytest.approx(0.0, abs=1e-6) and d[1] == pytest.approx(264, rel=0.02) and np.isnan(d[2])
    assert d[3] < 1.0 and np.isnan(d[4])
    with pytest.raises(ValueError, match="2 completions for 5"):
        gre_scores.answer_errors_km(completions[:2], _truth())
    scores = gre_scores.evaluate_gre(completions, _truth(), n_boot=100).assign(model="m")
    table = gre_scores.score_table(scores, ["within_25km", "format_ok"])
    assert list(table.columns) == ["group", "n", "n_answered", "model", "within_25km", "format_ok"]
    row = scores.iloc[0]
    assert table["within_25km"].iloc[0] == (f"{100 * row['within_25km']:.1f} [{100 * row['within_25km_low']:.1f}, "
                                            f"{100 * row['within_25km_high']:.1f}]")
    assert gre_scores.score_table(scores, ["median_km"], percent=False, digits=0)["median_km"].iloc[-1] == "–"  # no answer
    with pytest.raises(ValueError, match="lack"):
        gre_scores.score_table(scores, ["within_3km"])


def test_build_chain_scores_perfectly_on_its_own_rows(pool):
    texts = [chains.build_chain(r) for r in pool.to_dict("records")]
    q = gre_scores.chain_quality(texts, pool["clues"])
    assert q["hallucination_rate"] == 0.0
    if q["n_visible"]:
        assert q["recall"] == 1.0 and q["precision"] == 1.0
    table = gre_scores.evaluate_gre(texts, pool, n_boot=50)
    assert (table["within_1km"] == 1.0).all() and (table["format_ok"] == 1.0).all()


# --------------------------------------------------------------------------------------------- settings


def test_grpo_config_from_the_paper_and_demo_settings(tmp_path):
    paper = grpo.grpo_config(tmp_path, params.notebook_values("07_gre_reasoning_rl", "paper")["gre_grpo"])
    assert (paper.num_generations, paper.beta, paper.max_completion_length) == (8, 0.04, 2048)
    assert paper.per_device_train_batch_size == 8 and paper.gradient_accumulation_steps == 2
    assert paper.activation_checkpointing and not paper.remove_unused_columns
    assert paper.max_steps == -1 and paper.num_train_epochs == 1  # the demo's 100 steps do not leak into the paper's run
    demo = grpo.grpo_config(tmp_path, DEMO["gre_grpo"], max_steps=1)
    assert demo.max_steps == 1 and demo.generation_batch_size % demo.num_generations == 0
    if not torch.cuda.is_available():
        assert demo.use_cpu and not demo.bf16
    with pytest.raises(ValueError, match=r"unknown GRPO setting 'n_generations' \(did you mean 'num_generations'\?\)"):
        grpo.grpo_config(tmp_path, dict(DEMO["gre_grpo"], n_generations=4))


def test_grpo_dataset_int_keys_paths_and_bad_rows(tmp_path):
    from PIL import Image

    frame = pd.DataFrame({"lat": [10.0, float("nan"), -5.0], "lon": [20.0, 1.0, -60.0]})
    with pytest.warns(UserWarning, match="skipped 1 of 3"):
        ds = grpo.grpo_dataset(frame)
    assert ds["image"] == [0, 2] and ds["lat"] == [10.0, -5.0]
    assert ds[0]["prompt"] == [{"role": "user", "content": chains.GRE_PROMPT}]
    p = tmp_path / "a.png"
    Image.new("RGB", (32, 32)).save(p)
    ds = grpo.grpo_dataset(pd.DataFrame({"lat": [1.0], "lon": [2.0], "path": [str(p)]}), image_column="path")
    assert isinstance(ds[0]["image"], Image.Image)


# --------------------------------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def tok(pool, tmp_path_factory):
    texts = [c["messages"][1]["content"][0]["text"] for c in chains.chain_conversations(pool)]
    return vlm.train_tokenizer(texts * 3 + [chains.GRE_PROMPT], 600, tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def feats():
    return np.random.default_rng(0).random((N_IMAGES, 49, 1280)).astype(np.float16)


def _tiny(tok, seed=0):
    model, _ = vlm.build_model(dict(TINY, seed=seed), processor=tok)
    return model


def test_feature_processor_serves_trl_calls_like_encode_texts(tok, feats):
    proc = grpo.FeatureProcessor(tok, feats)
    conv = [{"role": "user", "content": [{"type": "image", "image": 3}, {"type": "text", "text": chains.GRE_PROMPT}]}]
    text = tok.apply_chat_template([conversations.user_message(chains.GRE_PROMPT)], tokenize=False, add_generation_prompt=True)
    assert proc.apply_chat_template(conv, add_generation_prompt=True) == text
    tokens = proc.apply_chat_template([conv, conv], tokenize=True, return_dict=True, add_generation_prompt=True)
    ref = conversations.encode_texts(tok, [text], [feats[3]])
    assert tokens["input_ids"][0] == ref["input_ids"][0].tolist()
    assert torch.equal(tokens["pixel_values"][1], ref["pixel_values"][0])
    batch = proc(images=[[3], [5]], text=[text, text], padding=True, return_tensors="pt")
    assert batch["pixel_values"].shape == (2, 49, 1280) and torch.equal(batch["input_ids"][0], ref["input_ids"][0])
    with pytest.raises(IndexError, match="out of range"):
        proc(images=[[99]], text=[text])


def test_merged_cold_start_equals_the_stacked_adapter_model(tok, feats):
    model = tuning.add_stage_adapter(_tiny(tok), chains.SFT_STAGE, tuning.lora_config(4, 8, 0.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    text = tok.apply_chat_template([conversations.user_message(chains.GRE_PROMPT)], tokenize=False, add_generation_prompt=True)
    batch = conversations.encode_texts(tok, [text] * 2, [feats[0], feats[1]])
    model.eval()
    with torch.no_grad():
        stacked = model(**batch).logits
        merged = grpo.merge_adapters(model)
        assert not grpo._has_lora_layers(merged)
        assert torch.allclose(merged(**batch).logits, stacked, atol=1e-4)


def test_chain_token_ids_and_a_cold_start_with_trainable_token_rows_merges_exactly(tok, feats, pool):
    convs = chains.chain_conversations(pool)
    ids = chains.chain_token_ids(tok, convs)
    chain = convs[0]["messages"][1]["content"][0]["text"]
    assert set(tok(chain, add_special_tokens=False)["input_ids"]) <= set(ids) and ids == sorted(set(ids))
    assert tok.convert_tokens_to_ids(vlm.IM_END) in ids
    prompt_only = set(tok(chains.GRE_PROMPT, add_special_tokens=False)["input_ids"]) - set(ids)
    assert prompt_only, "the user's prompt is not a chain: its own tokens are left out"
    lora = tuning.lora_config(4, 8, 0.0)
    lora.trainable_token_indices = ids
    model = tuning.add_stage_adapter(_tiny(tok), chains.SFT_STAGE, lora)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("trainable_tokens" in n for n in trainable) and all("lora_" in n or "trainable_tokens" in n for n in trainable)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "trainable_tokens_delta" in name:
                p.normal_(0, 0.2)
    text = tok.apply_chat_template([conversations.user_message(chains.GRE_PROMPT)], tokenize=False, add_generation_prompt=True)
    batch = conversations.encode_texts(tok, [text + chain] * 2, [feats[0], feats[1]])
    model.eval()
    with torch.no_grad():
        stacked = model(**batch).logits
        merged = grpo.merge_adapters(model)
        assert not any("trainable_tokens" in n or "lora_" in n for n, _ in merged.named_parameters())
        assert torch.allclose(merged(**batch).logits, stacked, atol=1e-4)


def _grpo_settings(**kw):
    base = dict(DEMO["gre_grpo"], num_generations=4, per_device_train_batch_size=8, max_completion_length=12,
                max_steps=1, save_steps=1, disable_tqdm=True, learning_rate=1e-2)
    return {**base, **kw}


def test_one_grpo_step_on_the_tiny_demo_model_with_the_real_rewards(tok, feats, pool, tmp_path):
    dataset = grpo.grpo_dataset(pool)
    schedule = ThetaSchedule()
    out = tmp_path / "grpo"
    result = grpo.train_grpo(_tiny(tok), tok, dataset, schedule, _grpo_settings(), out, images=feats)
    assert result.trained and result.resumed_from is None
    step = [h for h in result.log_history if "reward" in h]
    assert len(step) == 1
    for key in ("reward", "kl", "theta_km", "rewards/format_reward/mean", "rewards/distance_reward/mean",
                "distance/answered", "completions/mean_length"):
        assert key in step[0] and np.isfinite(step[0][key]), key
    assert step[0]["theta_km"] == 2500.0 and schedule.n_updates == 1
    assert 0.0 <= step[0]["reward"] <= 2.0 and step[0]["kl"] >= 0.0
    for name in ("log_history.json", "log_history.csv", "theta_schedule.json", "grpo.json", "adapter/adapter_config.json",
                 "checkpoint-1/theta_schedule.json"):
        assert (out / name).exists(), name
    assert json.loads((out / "log_history.json").read_text()) == json.loads(json.dumps(result.log_history))
    assert list(result.curves().columns)[:3] == ["step", "reward", "format_reward"] and len(result.curves()) == 1
    # only the GRPO LoRA trained; the tower and the projector are untouched by it
    trainable = [n for n, p in result.model.named_parameters() if p.requires_grad]
    assert trainable == [] or all("lora_" in n for n in trainable)
    # a second call with the same inputs loads the finished run
    again = grpo.train_grpo(_tiny(tok), tok, dataset, ThetaSchedule(), _grpo_settings(), out, images=feats)
    assert not again.trained and again.theta_schedule == result.theta_schedule
    with pytest.raises(ValueError, match="pass the demo features"):
        grpo.train_grpo(_tiny(tok), tok, dataset, ThetaSchedule(), _grpo_settings(), tmp_path / "x")


def test_theta_advances_inside_training_and_resumes_from_a_checkpoint(tok, feats, pool, tmp_path, monkeypatch):
    import geolib.rewards as rewards

    calls = {"n": 0}

    def high_reward(completion, lat, lon, theta, use_city=False):
        calls["n"] += 1
        if calls["n"] > 8 and calls.get("interrupt"):  # step 2's batch: simulate a crash after checkpoint-1
            raise KeyboardInterrupt
        return 0.9

    monkeypatch.setattr(rewards, "gre_reward", high_reward)
    dataset = grpo.grpo_dataset(pool)
    out = tmp_path / "grpo"
    settings_ = _grpo_settings(max_steps=3)
    calls["interrupt"] = True
    with pytest.raises(KeyboardInterrupt):
        grpo.train_grpo(_tiny(tok), tok, dataset, ThetaSchedule(window=1, advance_at=0.6), settings_, out, images=feats)
    saved = json.loads((out / "checkpoint-1" / "theta_schedule.json").read_text())
    assert saved["stage"] == 1 and saved["n_updates"] == 1  # one high batch: 2500 → 750 km
    assert not (out / "grpo.json").exists()

    calls.update(n=0, interrupt=False)
    schedule = ThetaSchedule(window=1, advance_at=0.6)
    result = grpo.train_grpo(_tiny(tok), tok, dataset, schedule, settings_, out, images=feats)
    assert result.trained and result.resumed_from.endswith("checkpoint-1")
    thetas = [h["theta_km"] for h in result.log_history if "theta_km" in h]
    assert thetas[-2:] == [750.0, 200.0]  # θ used by steps 2 and 3, each advancing after its batch
    assert schedule.theta == 25.0 and schedule.n_updates == 3
    assert json.loads((out / "theta_schedule.json").read_text()) == schedule.state_dict()


def test_one_grpo_step_on_a_tiny_qwen25vl_with_image_files(tok, tmp_path):
    """The paper profile's path: a hub-class processor, PIL images from paths, TRL unchanged."""
    from PIL import Image

    config, processor = vlm.random_qwen25vl(tok, vision=dict(depth=1, fullatt_block_indexes=[0]),
                                            max_pixels=56 * 56)
    spec = dict(vlm.PAPER_MODEL, revision="0" * 40, dtype="float32", gradient_checkpointing=False)
    model, proc = vlm.build_model(spec, processor=processor, config=config)
    paths = []
    for i in range(2):
        p = tmp_path / f"s{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (56, 56, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    dataset = grpo.grpo_dataset(pd.DataFrame({"lat": [48.85, -33.87], "lon": [2.35, 151.21], "path": paths}),
                               image_column="path")
    hp, lora = _grpo_settings(), tuning.lora_config(4, 8, 0.0)
    result = grpo.train_grpo(model, proc, dataset, ThetaSchedule(), hp, tmp_path / "grpo", lora_config=lora)
    step = [h for h in result.log_history if "reward" in h]
    assert len(step) == 1 and np.isfinite(step[0]["kl"]) and step[0]["theta_km"] == 2500.0
    with pytest.raises(ValueError, match="hub processor reads the images itself"):
        grpo.train_grpo(model, proc, dataset, ThetaSchedule(), hp, tmp_path / "y", images=np.zeros((2, 49, 1280)),
                        lora_config=lora)


def test_train_grpo_input_errors(tok, feats, tmp_path):
    import datasets

    with pytest.raises(TypeError, match="ThetaSchedule"):
        grpo.train_grpo(None, tok, [], 2500.0, DEMO["gre_grpo"], tmp_path)
    with pytest.raises(ValueError, match=r"lacks columns \['image'"):
        grpo.train_grpo(None, tok, datasets.Dataset.from_dict({"prompt": [[]], "lat": [1.0], "lon": [2.0]}),
                       ThetaSchedule(), DEMO["gre_grpo"], tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="no usable rows"):
            grpo.grpo_dataset(pd.DataFrame({"lat": [100.0], "lon": [0.0]}))


def test_paired_difference_over_seeds_on_hand_made_errors():
    """Two seeds, four images: GRPO gets images 0-1 within 750 km in both seeds, SFT only image 0 in seed 0."""
    after = np.array([[100.0, 500.0, 3000.0, np.nan], [200.0, 700.0, 9000.0, 4000.0]])
    before = np.array([[10.0, 900.0, np.nan, 8000.0], [800.0, 2000.0, 5000.0, np.nan]])
    table = gre_scores.paired_within_difference(after, before, thresholds=(750, 2500), n_boot=500).set_index("km")
    assert table.loc[750, "after"] == pytest.approx(0.5) and table.loc[750, "before"] == pytest.approx(0.125)
    assert table.loc[750, "difference"] == pytest.approx(0.375)
    assert table.loc[750, "after_by_seed"] == [0.5, 0.5] and table.loc[750, "before_by_seed"] == [0.25, 0.0]
    assert table.loc[2500, "difference"] == pytest.approx(0.0), "both arms: 2 of 4 images in each seed"
    assert (table["ci_low"] <= table["difference"]).all() and (table["difference"] <= table["ci_high"]).all()
    assert table.loc[750, "n_seeds"] == 2 and table.loc[750, "n_images"] == 4
    same = gre_scores.paired_within_difference(after, after, thresholds=(750,), n_boot=100).iloc[0]
    assert same["difference"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0, "an arm against itself: exactly 0"
    one_seed = gre_scores.paired_within_difference(after[0], before[0], thresholds=(750,), n_boot=100).iloc[0]
    assert one_seed["n_seeds"] == 1 and one_seed["difference"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="one \\(seeds, images\\) shape"):
        gre_scores.paired_within_difference(after, before[:1])


def test_paired_difference_per_scene_type_keeps_the_evaluation_order():
    after = np.array([[100.0, 5000.0, 100.0], [100.0, 100.0, 9000.0]])
    before = np.full((2, 3), np.nan)
    table = gre_scores.paired_within_difference(after, before, thresholds=(750,), scenes=["rural", "urban", "urban"],
                                         n_boot=100)
    assert table["group"].tolist() == ["all", "urban", "rural"], "all first, then evaluate_gre's scene order"
    by = table.set_index("group")
    assert by.loc["all", "difference"] == pytest.approx(4 / 6) and by.loc["all", "n_images"] == 3
    assert by.loc["urban", "difference"] == pytest.approx(0.5) and by.loc["urban", "n_images"] == 2
    assert by.loc["rural", "difference"] == pytest.approx(1.0) and by.loc["rural", "after_by_seed"] == [1.0, 1.0]
    with pytest.raises(ValueError, match="2 scene labels for 3 images"):
        gre_scores.paired_within_difference(after, before, scenes=["rural", "urban"])


# --------------------------------------------------------------------------------------------- notebook 07's tables


_PARIS = "<think>Paris.</think><answer>48.8566, 2.3522</answer>"
_BRUSSELS = "<think>Brussels.</think><answer>50.8503, 4.3517</answer>"          # ~264 km from Paris
_SYDNEY = "<think>Sydney.</think><answer>-33.8688, 151.2093</answer>"
_NONE = "<think>Sea.</think><answer>somewhere</answer>"


def _two_models():
    return {"SFT only": [_BRUSSELS, _NONE, _SYDNEY, _NONE, _NONE], "SFT + GRPO": [_PARIS, _BRUSSELS, _SYDNEY, _SYDNEY, _NONE]}


def test_evaluate_models_headline_and_scene_tables():
    scores = gre_scores.evaluate_models(_two_models(), _truth(), n_boot=100)
    assert scores["model"].tolist() == ["SFT only"] * 4 + ["SFT + GRPO"] * 4
    alone = gre_scores.evaluate_gre(_two_models()["SFT + GRPO"], _truth(), n_boot=100)
    pd.testing.assert_frame_equal(scores[scores["model"] == "SFT + GRPO"].drop(columns="model").reset_index(drop=True), alone)
    headline = gre_scores.headline_table(scores)
    assert headline.index.tolist() == ["SFT only", "SFT + GRPO"]
    assert list(headline.columns) == ["n", "n_answered", "within_1km", "within_25km", "within_200km", "within_750km",
                                      "within_2500km", "format_ok", "unparsable", "median km"]
    assert headline.loc["SFT + GRPO", "within_1km"].startswith("60.0 [") and headline.loc["SFT only", "unparsable"].startswith("60.0 [")
    assert headline.loc["SFT + GRPO", "median km"] == 0 and headline.loc["SFT only", "median km"] == pytest.approx(264 / 2, rel=0.02)
    scene = gre_scores.scene_table(scores, ["within_25km", "format_ok"])
    assert scene.index.tolist() == [("natural", 1), ("rural", 2), ("urban", 2)]
    assert scene[("SFT + GRPO", "within_25km")].loc[("rural", 2)].startswith("100.0 [")
    assert set(scene.columns.get_level_values(0)) == {"SFT only", "SFT + GRPO"}


def test_paired_table_in_points_with_each_seed():
    after = np.array([[100.0, 500.0, 3000.0, np.nan], [200.0, 700.0, 9000.0, 4000.0]])
    before = np.array([[10.0, 900.0, np.nan, 8000.0], [800.0, 2000.0, 5000.0, np.nan]])
    paired = gre_scores.paired_within_difference(after, before, n_boot=100)
    table = gre_scores.paired_table(paired)
    assert table.index.tolist() == [("all", 25), ("all", 750), ("all", 2500)]
    row = table.loc[("all", 750)]
    assert row["SFT + GRPO %"] == 50.0 and row["SFT only %"] == 12.5 and row["difference (points)"] == 37.5
    assert row["difference by seed"] == "+25.0 +50.0" and row["95% interval"].startswith("[+")
    assert len(gre_scores.paired_table(paired, km=None)) == 5


def test_quality_tables_and_without_labels():
    quality = {name: gre_scores.chain_quality(a, [["script:Cyrl"], [], ["driving_side:left"], [], []], n_boot=50)
               for name, a in _two_models().items()}
    table, by_type = gre_scores.quality_tables(quality)
    assert table.index.tolist() == ["SFT only", "SFT + GRPO"]
    assert list(table.columns) == ["recall", "precision", "f1", "hallucination_rate"]
    assert set(by_type.columns.get_level_values(0)) == {"SFT only", "SFT + GRPO"}
    assert all(t.empty for t in gre_scores.quality_tables({}))


def test_check_scores_passes_on_real_scores_and_names_what_fails():
    scores = gre_scores.evaluate_models(_two_models(), _truth(), n_boot=100)
    paired = gre_scores.paired_within_difference(np.zeros((1, 5)), np.full((1, 5), np.nan), n_boot=50)
    quality = {"SFT only": gre_scores.chain_quality(_two_models()["SFT only"], [["script:Latn"]] * 5)}
    gre_scores.check_scores(scores, 5, paired, quality)
    with pytest.raises(AssertionError, match="SFT only: \\[5\\] answers in its 'all' row, expected 10"):
        gre_scores.check_scores(scores, 10)
    shrinking = scores.copy()
    shrinking.loc[0, "within_2500km"] = 0.0
    with pytest.raises(AssertionError, match="do not grow with the distance"):
        gre_scores.check_scores(shrinking, 5)
    outside = scores.copy()
    outside.loc[1, "format_ok_high"] = -1.0
    with pytest.raises(AssertionError, match="format_ok outside its interval in groups \\['urban'\\]"):
        gre_scores.check_scores(outside, 5)
    with pytest.raises(AssertionError, match="paired difference outside"):
        gre_scores.check_scores(scores, 5, paired.assign(ci_high=0.5))
    with pytest.raises(AssertionError, match="chain quality of 5 chains, expected 4"):
        gre_scores.check_scores(scores.assign(n=scores["n"].where(scores["group"] != "all", 4)), 4, quality=quality)


# --------------------------------------------------------------------------------------------- notebook 07's glue


def _by_seed():
    """Two seeds' answers of both models to _truth()'s five images."""
    return {0: _two_models(), 1: {"SFT only": [_PARIS, _NONE, _NONE, _NONE, _NONE], "SFT + GRPO": [_PARIS] * 5}}


def _eval_pool():
    return _truth().assign(image_id=[f"img_{i}" for i in range(5)], row=[3, 5, 6, 8, 9], city="c", country="FR",
                           clues=[["script:Latn"], [], [], ["driving_side:left"], []])


def test_collect_answers_pools_the_seeds_and_writes_the_answers_table():
    from geolib import gre

    test = gre.collect_answers(_by_seed(), _eval_pool())
    assert test.seeds == [0, 1] and len(test.pool) == 10 and test.pool["image_id"].tolist()[5] == "img_0"
    assert test.answers["SFT only"] == _by_seed()[0]["SFT only"] + _by_seed()[1]["SFT only"]
    assert test.errors_by_seed["SFT + GRPO"].shape == (2, 5)
    np.testing.assert_array_equal(test.errors["SFT only"], test.errors_by_seed["SFT only"].ravel())
    assert test.errors["SFT + GRPO"][0] == pytest.approx(0.0, abs=1e-6) and np.isnan(test.errors["SFT only"][1])
    table = test.table()
    assert list(table.columns) == ["image_id", "lat", "lon", "seed", "sft_answer", "sft_error_km", "grpo_answer", "grpo_error_km"]
    assert table["seed"].tolist() == [0] * 5 + [1] * 5 and table["grpo_answer"].tolist() == test.answers["SFT + GRPO"]
    shown = gre.example_chains(test, n=2)
    assert shown.count("=== img_") == 2 and shown.count("--- SFT only, seed 0") == 2 and "visible clues: [" in shown
    assert "unparsable" in gre.example_chains(test, n=5)


def test_evaluation_sample_keeps_pool_order_for_features_and_paths():
    from geolib import stages

    test_pool = _eval_pool()
    features = np.arange(10)[:, None] * np.ones((1, 3))
    same, images = stages.evaluation_sample(test_pool, features)
    assert same is test_pool and images[:, 0].tolist() == [3, 5, 6, 8, 9]
    sample, images = stages.evaluation_sample(test_pool, [f"p{i}" for i in range(10)], max_images=3)
    assert len(sample) == 3 and sample["row"].is_monotonic_increasing
    assert images == [f"p{i}" for i in sample["row"]]


def test_answer_seeds_here_and_its_input_errors(monkeypatch):
    from types import SimpleNamespace

    from geolib import gre

    monkeypatch.setattr(gre, "answer_both", lambda model, processor, images, *a: {"SFT only": [model] * len(images),
                                                                                   "SFT + GRPO": [processor] * len(images)})
    runs = {s: SimpleNamespace(grpo=SimpleNamespace(model=f"m{s}"), processor=f"p{s}") for s in (0, 1)}
    found = gre.answer_seeds({0: {}, 1: {}}, ["a", "b"], workers=1, runs=runs)
    assert found == {0: {"SFT only": ["m0", "m0"], "SFT + GRPO": ["p0", "p0"]},
                     1: {"SFT only": ["m1", "m1"], "SFT + GRPO": ["p1", "p1"]}}
    with pytest.raises(ValueError, match="needs the seeds' runs"):
        gre.answer_seeds({0: {}}, ["a"], workers=1)


def _schedule(stage=0):
    schedule = ThetaSchedule(stages=(5000.0, 2500.0, 750.0), window=2, advance_at=0.6)
    schedule.load_state_dict({**schedule.state_dict(), "stage": stage})
    return schedule


def _fake_run(seed, tmp_path, thetas=(5000.0, 5000.0, 2500.0, 2500.0), kl=0.01, losses=(3.0, 2.0, 1.0),
              grpo_names=("base.lora_A.default.weight",), trainable=("x.gre_sft.lora_A.weight",)):
    from types import SimpleNamespace

    out = tmp_path / f"seed_{seed}"
    (out / "adapter").mkdir(parents=True, exist_ok=True)
    (out / "adapter" / "adapter_config.json").write_text("{}")
    curves = pd.DataFrame({"step": range(1, len(thetas) + 1), "reward": [0.2, 0.4, 0.5, 0.9][:len(thetas)],
                           "format_reward": 0.5, "distance_reward": 0.1, "kl": kl, "theta_km": list(thetas),
                           "median_km": [4000.0, 3000.0, 2000.0, 1000.0][:len(thetas)]})
    params_ = [(n, SimpleNamespace(requires_grad=True)) for n in grpo_names] + [("base.weight", SimpleNamespace(requires_grad=False))]
    grpo_run = SimpleNamespace(model=SimpleNamespace(named_parameters=lambda: iter(params_)), output_dir=out, trained=False,
                               metrics={"train_runtime": 12.5}, curves=lambda: curves.copy())
    sft = SimpleNamespace(log_history=[{"loss": v, "step": i + 1} for i, v in enumerate(losses)] + [{"train_runtime": 1.0}])
    from geolib import gre

    return gre.SeedRun(sft, grpo_run, list(trainable), None, seed)


def test_training_logs_run_summary_first_last_and_summary_keys(tmp_path):
    from geolib import gre

    runs = {0: _fake_run(0, tmp_path), 1: _fake_run(1, tmp_path, thetas=(5000.0,) * 4)}
    schedules = {0: _schedule(1), 1: _schedule(0)}
    sft, curves = gre.training_logs(runs)
    assert sft["seed"].tolist() == [0, 0, 0, 1, 1, 1] and curves["seed"].tolist() == [0] * 4 + [1] * 4
    assert gre.first_last(sft) == {0: {"first": 3.0, "last": 1.0}, 1: {"first": 3.0, "last": 1.0}}
    summary = gre.run_summary(curves, runs, schedules, {0: 10.04, 1: 20.0})
    assert summary[0]["steps"] == 4 and summary[0]["trained_now"] is False
    assert summary[0]["reward_start"] == 0.2 and summary[0]["reward_end"] == 0.9 and summary[0]["kl_max"] == 0.01
    assert summary[0]["theta_changes_at_step"] == [3] and summary[1]["theta_changes_at_step"] == []
    assert summary[0]["theta_km_reached"] == 2500.0 and summary[0]["theta_stage"] == 1
    assert summary[0]["seconds (cold start + GRPO)"] == 10.0 and summary[0]["grpo_train_runtime_s"] == 12.5
    scores = gre_scores.evaluate_models(_two_models(), _truth(), n_boot=20)
    paired = gre_scores.paired_within_difference(np.zeros((2, 5)), np.full((2, 5), 1000.0), n_boot=20)
    keys = gre.summary_keys(scores, paired, schedules)
    assert keys["07.theta_final_km"] == 5000.0 and keys["07.theta_advances"] == 0 and keys["07.n_seeds"] == 2
    assert keys["07.sft.within_750"] == pytest.approx(0.4) and keys["07.grpo.within_2500"] == pytest.approx(0.8)
    assert keys["07.grpo_minus_sft.within_750"] == 1.0 and keys["07.grpo_minus_sft.within_2500"] == 0.0
    assert set(keys) == {"07.theta_final_km", "07.theta_advances", "07.n_seeds"} | {
        f"07.{arm}.within_{t}" for arm in ("sft", "grpo") for t in (750, 2500)} | {
        f"07.grpo_minus_sft.within_{t}{end}" for t in (750, 2500) for end in ("", ".ci_low", ".ci_high")}


def test_check_seed_passes_and_names_what_fails(tmp_path):
    from geolib import gre

    gre.check_seed(_fake_run(0, tmp_path), _schedule(1))
    failing = [
        (dict(trainable=("x.gre_sft.base_layer.weight",)), "cold start trained more than its LoRA"),
        (dict(losses=(1.0, 2.0, 3.0)), "cold-start loss did not go down"),
        (dict(grpo_names=("base.weight_q",)), "GRPO trains more than its LoRA"),
        (dict(grpo_names=("x.gre_sft.lora_A.weight",)), "cold-start adapter is not merged"),
        (dict(thetas=(2500.0, 5000.0, 2500.0, 2500.0)), "θ moved from fine back to coarse"),
        (dict(thetas=(5000.0, 5000.0, 1000.0, 1000.0)), "is not the schedule's"),
        (dict(kl=2.0), "KL to the cold-start model reached 2.000"),
    ]
    for i, (kw, message) in enumerate(failing, start=1):
        with pytest.raises(AssertionError, match=f"seed {i}: .*{message}"):
            gre.check_seed(_fake_run(i, tmp_path, **kw), _schedule(1))
    run = _fake_run(9, tmp_path)
    (run.grpo.output_dir / "adapter" / "adapter_config.json").unlink()
    with pytest.raises(AssertionError, match="seed 9: GRPO's adapter is not saved"):
        gre.check_seed(run, _schedule(1))


def test_beside_notebook_06_reads_its_main_table(tmp_path, capsys):
    from geolib import gre, io

    scores = gre_scores.evaluate_models(_two_models(), _truth(), n_boot=20)
    headline = gre_scores.headline_table(scores)
    path = tmp_path / "06_evaluation.json"
    only_gre = gre.beside_notebook_06(headline, path)
    assert only_gre.index.tolist() == ["SFT only", "SFT + GRPO"] and "GRE rows only" in capsys.readouterr().out
    cell = {"value": 0.5, "ci_low": 0.25, "ci_high": 0.75}
    io.write_json(path, {"main_table": {"linear probe": {"within_750km": cell, "within_2500km": cell}}})
    table = gre.beside_notebook_06(headline, path)
    assert table.loc["linear probe", "from"] == "notebook 06" and table.loc["linear probe", "within 750 km"] == "50.0 [25.0, 75.0]"
    assert table.loc["SFT + GRPO", "within 2,500 km"] == headline.loc["SFT + GRPO", "within_2500km"]
    assert gre.beside_notebook_06(headline, path, whole_test_split=False).index.tolist() == ["SFT only", "SFT + GRPO"]


def test_cold_start_chains_and_rl_prompts_of_the_demo_world(pool):
    from geolib import gre

    rows = pool.assign(row=range(len(pool)))
    images = np.zeros((len(pool), 4, 8))
    cold_start, sft_images = gre.cold_start_chains(rows, images)
    assert sft_images is images and len(cold_start) == len(chains.chain_conversations(rows, image_column="row"))
    prompts = gre.rl_prompts(rows.dropna(subset=["lat"]))
    assert len(prompts) == len(rows) and prompts[0]["prompt"][0]["content"] == chains.GRE_PROMPT
