"""Tests of geolib.vlm: tiny demo (LLaVA-style) and tiny Qwen2.5-VL models, no hub, a few steps each."""

import ast
import re
import json

import numpy as np
import pandas as pd
import pytest

from geolib import conversations, inference, params, tuning, vlm

torch = pytest.importorskip("torch")

TINY = {"model_id": "demo", "hidden_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 2,
        "intermediate_size": 128, "max_positions": 256, "image_grid": 7}
N_IMAGES = 12
#: Notebook 04's own settings (its parameters cell), and the paper profile's over them.
DEMO = params.notebook_values("04_reasoning_tuning")
PAPER = params.notebook_values("04_reasoning_tuning", "paper")


def _steps(max_steps, **kw):
    """A demo stage dict for a handful of steps (high learning rate so that a few steps show)."""
    settings = dict(DEMO["reasoning_tuning"], learning_rate=5e-2, warmup_ratio=0.0, per_device_train_batch_size=4,
                    effective_batch_size=4, max_steps=max_steps, logging_steps=1, save_steps=2, disable_tqdm=True,
                    max_length=128)
    return {**settings, **kw}


@pytest.fixture(scope="module")
def pool():
    """Rows in the demo world's manifest schema (country codes, clue ids, legible sign text)."""
    countries = ["FR", "JP", "BR", "DE"]
    cities = ["Paris", "Osaka", "Recife", "Berlin"]
    signs = ["lundi / Paris | 12 km", "月曜日 / 大阪", "segunda-feira / Recife", "Deutschland / 5 km"]
    clues = [["script:Latn", "driving_side:right"], ["script:Jpan", "driving_side:left"], ["language:pt"], []]
    return pd.DataFrame({
        "country": [countries[i % 4] for i in range(N_IMAGES)],
        "city": [cities[i % 4] for i in range(N_IMAGES)],
        "reasoning": [f"A street with shops and cars. Clue {i}: the signs use the local script. "
                      f"Together these clues point to {['France', 'Japan', 'Brazil', 'Germany'][i % 4]}."
                      for i in range(N_IMAGES)],
        "scene": ["urban", "rural", "suburban", "natural"] * (N_IMAGES // 4),
        "clues": [clues[i % 4] for i in range(N_IMAGES)],
        "sign_text": [signs[i % 4] for i in range(N_IMAGES)],
        "building_fraction": [0.31, 0.0, 0.12, 0.5] * (N_IMAGES // 4),
    })


@pytest.fixture(scope="module")
def feats():
    rng = np.random.default_rng(0)
    x = rng.random((N_IMAGES, 49, 1280)).astype(np.float16)
    for i in range(N_IMAGES):  # a visible class signal
        x[i, :, (i % 4) * 16:(i % 4) * 16 + 16] += 2
    return x


@pytest.fixture(scope="module")
def tok(pool, tmp_path_factory):
    convs = (conversations.base_training_conversations(pool) + conversations.make_conversations(pool, "reasoning")
             + conversations.make_conversations(pool, "location"))
    path = tmp_path_factory.mktemp("tok")
    return vlm.train_tokenizer(conversations.conversation_texts(convs) + list(conversations.PROMPTS.values()), 500, path)


def _tiny_model(tok, seed=0):
    model, _ = vlm.build_model(dict(TINY, seed=seed), processor=tok)
    return model


def _logits(model, tok, feats, prompt=conversations.PROMPTS["location"]):
    text = tok.apply_chat_template([conversations.user_message(prompt)], tokenize=False, add_generation_prompt=True)
    batch = conversations.encode_texts(tok, [text] * 3, [feats[i] for i in range(3)])
    model.eval()
    with torch.no_grad():
        return model(**batch).logits.float()


def _names(text, names):
    """The names that occur in ``text`` as whole words ("Japanese" does not name Japan)."""
    import re

    return [n for n in names if re.search(rf"(?<!\w){re.escape(n)}(?!\w)", text)]


def _adapter_weights(model, name):
    return {k: v.detach().clone() for k, v in model.named_parameters() if f".{name}." in k and "lora_" in k}


# --------------------------------------------------------------------------------------------- tokenizer


def test_train_tokenizer_special_tokens_template_and_reload(tok, tmp_path):
    for t in vlm.SPECIAL_TOKENS:
        assert len(tok.encode(t, add_special_tokens=False)) == 1, t
    text = tok.apply_chat_template([conversations.user_message("Describe the image."), conversations.assistant_message("A road.")],
                                   tokenize=False)
    assert text == ("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe the image.<|im_end|>\n"
                    "<|im_start|>assistant\nA road.<|im_end|>\n")
    prompt = tok.apply_chat_template([conversations.user_message("Hi")], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    assert tok.decode(tok.encode("Ünïcode 東京 never seen", add_special_tokens=False)) == "Ünïcode 東京 never seen"
    tok.save_pretrained(tmp_path)
    again = vlm.load_processor(tmp_path)
    assert again.encode(text, add_special_tokens=False) == tok.encode(text, add_special_tokens=False)
    assert again.apply_chat_template([conversations.user_message("Hi")], tokenize=False, add_generation_prompt=True) == prompt
    with pytest.raises(ValueError, match="vocab_size"):
        vlm.train_tokenizer(["abc"], 10)


# --------------------------------------------------------------------------------------------- conversations


def test_make_conversations_stage_prompts_and_answers(pool):
    s1 = conversations.make_conversations(pool, "reasoning")
    s2 = conversations.make_conversations(pool, "location", image_column="city")
    assert len(s1) == len(s2) == N_IMAGES
    assert s1[3]["image"] == 3 and s2[0]["image"] == "Paris"
    user, answer = s1[0]["messages"]
    assert user["content"][1]["text"] == "Which country is the image located? Explain the reason."
    assert ast.literal_eval(answer["content"][0]["text"]) == {"country": "France", "reasons": pool.reasoning[0]}
    user, answer = s2[1]["messages"]
    assert user["content"][1]["text"] == "Which country and city is the image located?"
    assert ast.literal_eval(answer["content"][0]["text"]) == {"country": "Japan", "city": "Osaka"}
    assert conversations.format_answer(country="Côte d'Ivoire", city="Abidjan") == '{\'country\': "Côte d\'Ivoire", \'city\': \'Abidjan\'}'
    bad = pool.assign(city=[None] + list(pool.city[1:]))
    with pytest.warns(UserWarning, match="skipped 1 of"):
        assert len(conversations.make_conversations(bad, "location")) == N_IMAGES - 1
    with pytest.raises(ValueError, match="stage must be"):
        conversations.make_conversations(pool, "evaluation")
    with pytest.raises(ValueError, match="missing"):
        conversations.make_conversations(pool.drop(columns="reasoning"), "reasoning")


def test_base_training_conversations_never_name_the_place(pool):
    convs = conversations.base_training_conversations(pool)
    assert len(convs) == N_IMAGES
    captions = [c["messages"][1]["content"][0]["text"] for c in convs]
    assert all(c["messages"][0]["content"][1]["text"] == "Describe the image." for c in convs)
    names = ["France", "Japan", "Brazil", "Germany", "Deutschland", "日本", "Paris", "Osaka", "大阪", "Recife", "Berlin"]
    for caption in captions:
        assert not any(_names(caption, names)), caption
    assert captions[0] == ('A street with shops and cars. Buildings cover about 30% of the view. Visible: signs in '
                           'Latin script, cars driving on the right. Signs read "lundi" and "12 km".')
    assert captions[1].endswith('Visible: signs in Japanese kanji and kana, cars driving on the left. A sign reads "月曜日".')
    assert captions[2].endswith('Visible: sign words in Portuguese. A sign reads "segunda-feira".')
    assert captions[3].endswith('Nothing distinctive is visible. A sign reads "5 km".')
    no_reasoning = conversations.base_training_conversations(pool.drop(columns="reasoning").iloc[:1])
    assert no_reasoning[0]["messages"][1]["content"][0]["text"].startswith("An urban scene. ")


def test_base_training_captions_of_demo_world_scenes_name_no_place():
    world = pytest.importorskip("geolib.world")
    places = world.sample_places(12, 2, seed=1)
    rows = []
    for i in range(30):
        spec = world.world_spec(places, 1, i)
        rows.append({"country": spec.country, "city": spec.city, **world.describe_scene(spec)})
    frame = pd.DataFrame(rows)
    captions = [c["messages"][1]["content"][0]["text"] for c in conversations.base_training_conversations(frame)]
    forbidden = set(frame.city) | set(places.country_name) | {n for d in places.local_names for n in d.values() if n}
    import babel
    from babel import languages

    for code in set(frame.country):
        for lang in languages.get_official_languages(code, de_facto=True):
            try:
                forbidden.add(babel.Locale.parse(lang).territories.get(code) or "")
            except (ValueError, babel.UnknownLocaleError):
                pass
    forbidden.discard("")
    for caption in captions:
        assert not _names(caption, forbidden), caption
    assert any('reads "' in c for c in captions) or not frame.sign_text.str.len().any()


# --------------------------------------------------------------------------------------------- loss mask


def test_collator_labels_only_assistant_tokens_position_by_position(tok, feats):
    conv_a = {"image": 0, "messages": [conversations.user_message("Describe the image."), conversations.assistant_message("A road.")]}
    conv_b = {"image": 1, "messages": [
        conversations.user_message("Which country is the image located?"), conversations.assistant_message("{'country': 'France'}"),
        {"role": "user", "content": "And the city?"}, conversations.assistant_message("Paris, of course."),
    ]}
    batch = conversations.ConversationCollator(tok, feats, max_length=200)([conv_a, conv_b])
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    sid = tok.convert_tokens_to_ids
    image = [sid("<|vision_start|>")] + [sid("<|image_pad|>")] * 49 + [sid("<|vision_end|>")]

    def turn(role, tokens, labelled):
        ids = [sid("<|im_start|>")] + enc(f"{role}\n") + tokens + [sid("<|im_end|>")] + enc("\n")
        head = len(ids) - len(tokens) - 2
        lab = [-100] * head + ((tokens + [sid("<|im_end|>")]) if labelled else [-100] * (len(tokens) + 1)) + [-100]
        return ids, lab

    def expected(turns):
        ids, lab = [], []
        for t in turns:
            i, l = turn(*t)
            ids += i
            lab += l
        return ids, lab

    a_ids, a_lab = expected([("user", image + enc("Describe the image."), False), ("assistant", enc("A road."), True)])
    b_ids, b_lab = expected([
        ("user", image + enc("Which country is the image located?"), False),
        ("assistant", enc("{'country': 'France'}"), True),
        ("user", enc("And the city?"), False),
        ("assistant", enc("Paris, of course."), True),
    ])
    width = batch["input_ids"].shape[1]
    assert width == max(len(a_ids), len(b_ids))
    pad = sid("<|endoftext|>")
    for row, (ids, lab) in enumerate([(a_ids, a_lab), (b_ids, b_lab)]):
        n = len(ids)
        assert batch["input_ids"][row].tolist() == ids + [pad] * (width - n)
        assert batch["labels"][row].tolist() == lab + [-100] * (width - n)
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
    assert batch["pixel_values"].shape == (2, 49, 1280) and batch["pixel_values"].dtype == torch.float32
    np.testing.assert_array_equal(batch["pixel_values"][1].numpy(), feats[1].astype(np.float32))
    with pytest.raises(ValueError, match="cuts into the image tokens"):
        conversations.ConversationCollator(tok, feats, max_length=20)([conv_a])


# --------------------------------------------------------------------------------------------- demo model


def test_demo_model_tower_pretrained_frozen_and_accepts_pixels_or_features(tok):
    from geolib import features

    features.load_image_tower.cache_clear()  # the first build in a process loads the tower ...
    model = _tiny_model(tok)
    again = _tiny_model(tok)  # ... and must not shift the seeded initialisation of the rest
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))
    tower = vlm.vision_tower(model)
    reference = features.load_image_tower()
    for (name, p), (_, q) in zip(tower.tower.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(p, q), name
    assert not any(p.requires_grad for p in tower.parameters())
    assert all(p.requires_grad for n, p in model.named_parameters() if "vision_tower" not in n)
    model.train()
    assert not tower.tower.training  # batch-norm statistics stay put
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        tokens = tower(pixels).last_hidden_state
        direct = reference(pixels).flatten(2).transpose(1, 2)
        passed = tower(direct).last_hidden_state
    assert tokens.shape == (2, 49, 1280)
    torch.testing.assert_close(tokens, direct)
    torch.testing.assert_close(passed, direct)
    with pytest.raises(ValueError, match="expected pixels"):
        tower(torch.zeros(2, 1280))
    report = vlm.trainable_parameter_report(model)
    assert report["vision_tower"] == sum(p.numel() for p in reference.parameters())
    assert report["trainable"] == report["projector"] + report["language_model"]
    assert report["lora"] == 0 and report["total"] == report["trainable"] + report["vision_tower"]


def test_lora_targets_language_model_projections_only(tok):
    model = tuning.add_stage_adapter(_tiny_model(tok), "reasoning", tuning.lora_config(r=4, lora_alpha=8))
    lora_modules = {n.rsplit(".lora_", 1)[0] for n, _ in model.named_parameters() if ".lora_" in n}
    assert lora_modules and all(".language_model." in n for n in lora_modules)
    assert {n.rsplit(".", 1)[-1] for n in lora_modules} == set(tuning.LORA_TARGET_MODULES)
    assert len(lora_modules) == 7 * TINY["num_layers"]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n and ".reasoning" in n for n in trainable)
    report = vlm.trainable_parameter_report(model)
    assert report["trainable"] == report["lora"] > 0
    h, i, r = TINY["hidden_size"], TINY["intermediate_size"], 4
    per_layer = 4 * r * (h + h) + 2 * r * (h + i) + r * (i + h)  # q k v o (kv heads = heads), gate up, down
    assert report["lora"] == TINY["num_layers"] * per_layer


def test_full_stage_trains_lm_and_projector_not_tower_then_reloads(tok, pool, feats, tmp_path):
    model = _tiny_model(tok)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    convs = conversations.base_training_conversations(pool)
    hp = _steps(2, learning_rate=1e-3)
    result = tuning.train_stage(model, tok, convs, "base", hp, None, tmp_path / "base", images=feats)
    assert result.trained and result.stage == "base"
    after = dict(result.model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert not any("vision_tower" in n for n in changed)
    assert any("multi_modal_projector" in n for n in changed) and any("language_model" in n for n in changed)
    history = json.loads((tmp_path / "base" / "log_history.json").read_text())
    assert [h["step"] for h in history if "loss" in h] == [1, 2]
    assert pd.read_csv(tmp_path / "base" / "log_history.csv")["loss"].notna().sum() == 2
    assert result.metrics["train_samples_per_second"] > 0

    from geolib import features

    features.load_image_tower.cache_clear()  # loading first, under from_pretrained's meta device
    reloaded, processor = vlm.load_model(tmp_path / "base")
    shared = features.load_image_tower()
    assert not any(p.is_meta for p in shared.parameters()) and shared.net._conv_stem.weight.abs().sum() > 0
    assert all(torch.equal(p, q) for p, q in zip(shared.parameters(), vlm.vision_tower(reloaded).tower.parameters()))
    torch.testing.assert_close(_logits(reloaded, processor, feats), _logits(result.model, tok, feats))
    again = tuning.train_stage(_tiny_model(tok), tok, convs, "base", hp, None, tmp_path / "base", images=feats)
    assert not again.trained  # finished and current: loaded, not retrained
    torch.testing.assert_close(_logits(again.model, tok, feats), _logits(result.model, tok, feats))


def test_stage_two_stacks_on_stage_one(tok, pool, feats, tmp_path):
    s1 = conversations.make_conversations(pool, "reasoning")
    s2 = conversations.make_conversations(pool, "location")
    lora = tuning.lora_config(r=4, lora_alpha=8, lora_dropout=0.0)
    r1 = tuning.train_stage(_tiny_model(tok), tok, s1, "reasoning", _steps(2), lora, tmp_path / "s1", images=feats)
    stage1 = _adapter_weights(r1.model, "reasoning")
    assert stage1 and any(v.abs().sum() > 0 for k, v in stage1.items() if "lora_B" in k)

    r2 = tuning.train_stage(r1.model, tok, s2, "location", _steps(2), lora, tmp_path / "s2", images=feats)
    model = r2.model
    assert model.active_adapters == ["reasoning", "location"]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(_adapter_weights(model, "location"))  # only stage 2's LoRA weights
    for k, v in _adapter_weights(model, "reasoning").items():  # stage 1 untouched by stage 2
        assert torch.equal(v, stage1[k]), k
    from safetensors.torch import load_file

    saved1 = load_file(str(tmp_path / "s1" / "adapter" / "reasoning" / "adapter_model.safetensors"))
    assert len(saved1) == len(stage1)

    both = _logits(model, tok, feats)
    tuning.activate_adapters(model, ["reasoning"])
    only1 = _logits(model, tok, feats)
    tuning.activate_adapters(model, ["location"])
    only2 = _logits(model, tok, feats)
    tuning.activate_adapters(model, ["reasoning", "location"])
    with model.disable_adapter():
        none = _logits(model, tok, feats)
    for other in (only1, only2, none):
        assert (both - other).abs().max() > 1e-3
    torch.testing.assert_close(_logits(model, tok, feats), both)

    reloaded = tuning.load_staged_model(_tiny_model(tok), [tmp_path / "s1", tmp_path / "s2"])
    assert reloaded.active_adapters == ["reasoning", "location"]
    assert not any(p.requires_grad for p in reloaded.parameters())
    torch.testing.assert_close(_logits(reloaded, tok, feats), both, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="already has an adapter"):
        tuning.train_stage(reloaded, tok, s2, "location", _steps(2), lora, tmp_path / "s2b", images=feats)


def test_interrupted_stage_resumes_from_last_checkpoint(tok, pool, feats, tmp_path, monkeypatch):
    convs = conversations.make_conversations(pool, "location")
    lora = tuning.lora_config(r=4, lora_alpha=8, lora_dropout=0.0)
    straight = tuning.train_stage(_tiny_model(tok), tok, convs, "location", _steps(4), lora, tmp_path / "a", images=feats)

    def interrupt(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt("simulated interruption")

    with monkeypatch.context() as m:
        m.setattr(tuning._LogHistoryWriter, "on_step_end", interrupt, raising=False)
        with pytest.raises(KeyboardInterrupt):
            tuning.train_stage(_tiny_model(tok), tok, convs, "location", _steps(4), lora, tmp_path / "b", images=feats)
    assert (tmp_path / "b" / "checkpoint-2").is_dir() and not (tmp_path / "b" / "stage.json").exists()
    resumed = tuning.train_stage(_tiny_model(tok), tok, convs, "location", _steps(4), lora, tmp_path / "b", images=feats)
    assert resumed.resumed_from.endswith("checkpoint-2")
    assert json.loads((tmp_path / "b" / "stage.json").read_text())["steps"] == 4
    a, b = _adapter_weights(straight.model, "location"), _adapter_weights(resumed.model, "location")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)

    with pytest.warns(UserWarning, match="previous run is kept"):  # other settings: a new run beside the finished one
        other = tuning.train_stage(_tiny_model(tok), tok, convs, "location", _steps(2), lora, tmp_path / "b", images=feats)
    assert other.resumed_from is None and not (tmp_path / "b" / "checkpoint-4").exists()
    kept = list((tmp_path / "b" / "versions").glob("*/stage.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["steps"] == 4
    with pytest.warns(UserWarning, match="brought back"):  # the first settings again: loaded, not retrained
        again = tuning.train_stage(_tiny_model(tok), tok, convs, "location", _steps(4), lora, tmp_path / "b", images=feats)
    assert not again.trained
    for k in a:
        torch.testing.assert_close(_adapter_weights(again.model, "location")[k], b[k], rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------------- inference


def test_generate_batched_equals_one_at_a_time(tok, pool, feats, tmp_path):
    convs = conversations.make_conversations(pool, "location")
    result = tuning.train_stage(_tiny_model(tok), tok, convs, "location", _steps(3), tuning.lora_config(4, 8, 0.0),
                                tmp_path / "g", images=feats)
    prompts = [conversations.PROMPTS["location"], conversations.PROMPTS["describe"], conversations.PROMPTS["reasoning"], "Where?", "Hi"]
    batched = inference.generate(result.model, tok, feats[:5], prompts, max_new_tokens=12, batch_size=5)
    pairs = inference.generate(result.model, tok, feats[:5], prompts, max_new_tokens=12, batch_size=2)
    single = inference.generate(result.model, tok, feats[:5], prompts, max_new_tokens=12, batch_size=1)
    assert len(batched) == 5 and all(isinstance(t, str) for t in batched)
    assert batched == pairs == single
    assert not any(s in t for t in batched for s in vlm.SPECIAL_TOKENS)
    with pytest.raises(ValueError, match="prompts for"):
        inference.generate(result.model, tok, feats[:5], ["a", "b"])
    with pytest.raises(ValueError, match="features must be"):
        inference.generate(result.model, tok, feats[0], "a")


def test_generate_from_image_files_runs_the_tower(tok, feats, tmp_path):
    from PIL import Image

    from geolib import features

    model = _tiny_model(tok)
    paths = []
    for i in range(2):
        p = tmp_path / f"{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    cached = features.image_features(paths, tmp_path / "cache.npy", progress=False)
    from_files = inference.generate(model, tok, paths, "Describe the image.", max_new_tokens=6)
    from_cache = inference.generate(model, tok, np.asarray(cached), "Describe the image.", max_new_tokens=6)
    assert from_files == from_cache


# --------------------------------------------------------------------------------------------- settings


def test_training_arguments_from_stage_settings(tmp_path):
    args = tuning.training_arguments(tmp_path, PAPER["reasoning_tuning"])
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 80
    assert args.learning_rate == 1e-5 and args.adam_beta2 == 0.95 and args.weight_decay == 0.1
    assert args.warmup_steps == 0.01 and args.num_train_epochs == 5
    assert args.lr_scheduler_type == "cosine"
    if not torch.cuda.is_available():
        assert args.use_cpu and not args.bf16
    lora = tuning.lora_config(**PAPER["lora"])
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (64, 16, 0.05)
    with pytest.raises(ValueError, match="not a multiple"):
        tuning.training_arguments(tmp_path, dict(PAPER["reasoning_tuning"], per_device_train_batch_size=3))
    assert tuning.training_arguments(tmp_path, DEMO["reasoning_tuning"], max_steps=1).max_steps == 1


def test_build_model_errors():
    with pytest.raises(ValueError, match="pinned revision"):
        vlm.build_model(vlm.PAPER_MODEL)
    with pytest.raises(ValueError, match="needs its tokenizer"):
        vlm.build_model(vlm.DEMO_MODEL)
    with pytest.raises(ValueError, match="unknown model spec keys"):
        vlm.build_model({"model_id": "demo", "hidden": 3})
    with pytest.raises(ValueError, match="dtype must be"):
        vlm.build_model({"model_id": "demo", "dtype": "float8"}, processor=object())


# --------------------------------------------------------------------------------------------- paper class


@pytest.fixture(scope="module")
def qwen(tok):
    """A tiny randomly initialised Qwen2.5-VL and its processor, built without the hub."""
    return vlm.random_qwen25vl(tok)


@pytest.fixture
def street_images(tmp_path):
    from PIL import Image

    paths = []
    for i in range(4):
        p = tmp_path / f"street{i}.jpg"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (84 + 14 * i, 112, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def test_paper_class_tiny_qwen25vl_build_format_train_generate(qwen, pool, street_images, tmp_path):
    config, processor = qwen
    spec = dict(vlm.PAPER_MODEL, revision="0" * 40, dtype="float32", gradient_checkpointing=True)
    model, proc = vlm.build_model(spec, processor=processor, config=config)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration" and proc is processor
    assert model.is_activation_checkpointing
    assert not any(p.requires_grad for p in vlm.vision_tower(model).parameters())

    # LoRA lands on the language model only (Qwen's vision blocks also have gate/up/down_proj).
    peft_model = tuning.add_stage_adapter(model, "reasoning", tuning.lora_config(r=4, lora_alpha=8))
    lora_modules = {n.rsplit(".lora_", 1)[0] for n, _ in peft_model.named_parameters() if ".lora_" in n}
    assert len(lora_modules) == 7 * 2 and all(".language_model." in n for n in lora_modules)
    assert not any(".visual." in n for n, p in peft_model.named_parameters() if p.requires_grad)

    # Formatting: the processor expands the image pad; labels cover the answer and <|im_end|> only.
    frame = pool.iloc[:4].assign(image_path=street_images)
    convs = conversations.make_conversations(frame, "location", image_column="image_path")
    batch = conversations.ConversationCollator(processor, None, max_length=512)(convs[:2])
    assert {"input_ids", "attention_mask", "labels", "pixel_values", "image_grid_thw", "mm_token_type_ids"} <= set(batch)
    tok = processor.tokenizer
    for row in range(2):
        labelled = batch["labels"][row][batch["labels"][row] != -100].tolist()
        answer = convs[row]["messages"][1]["content"][0]["text"]
        assert labelled == tok.encode(answer, add_special_tokens=False) + [tok.convert_tokens_to_ids("<|im_end|>")]
    assert (batch["input_ids"] == config.image_token_id).sum() == int(batch["image_grid_thw"].prod(-1).sum()) // 4

    # One training step through the shared path (a fresh model: LoRA was injected above).
    model, _ = vlm.build_model(spec, processor=processor, config=config)
    hp = dict(PAPER["reasoning_tuning"], per_device_train_batch_size=2, effective_batch_size=4, max_length=512,
              learning_rate=1e-3, disable_tqdm=True, logging_steps=1)
    result = tuning.train_stage(model, processor, convs, "location", tuning.training_arguments(tmp_path / "q", hp, max_steps=1),
                                tuning.lora_config(**PAPER["lora"]), tmp_path / "q")
    assert result.log_history[0]["step"] == 1 and np.isfinite(result.log_history[0]["loss"])
    assert (tmp_path / "q" / "adapter" / "location" / "adapter_config.json").exists()

    prompts = [conversations.PROMPTS["location"]] * 3
    single = inference.generate(result.model, processor, street_images[:3], prompts, max_new_tokens=4, batch_size=1)
    batched = inference.generate(result.model, processor, street_images[:3], prompts, max_new_tokens=4, batch_size=3)
    assert single == batched and len(batched) == 3


# --------------------------------------------------------------------------------------------- demo base knowledge


def test_knowledge_conversations_are_text_only_facts_in_dict_form(pool):
    convs = conversations.knowledge_conversations(pool, repeats=2)
    n_cities = pool.groupby("country")["city"].nunique()
    assert len(convs) == 2 * (3 * len(n_cities) + n_cities.sum())
    assert all(c["image"] is None for c in convs)  # never an image paired with a place
    answers = [ast.literal_eval(c["messages"][1]["content"][0]["text"]) for c in convs]
    questions = [c["messages"][0]["content"][-1]["text"] for c in convs]
    # the country of a city, and the country that fits its facts, are answered without being asked by name
    assert {"country": "Japan", "city": "Osaka"} in answers
    osaka = answers[questions.index("Which country is Osaka in?")]
    assert osaka == {"country": "Japan", "city": "Osaka"}
    by_clues = [a for q, a in zip(questions, answers) if q.startswith("Which country fits these clues:")]
    assert {"country": "Japan"} in by_clues
    naming = [q for q, a in zip(questions, answers) if a.get("country") == "Japan" and not {"clues", "cities"} & set(a)]
    assert naming and not any(re.search(r"\bJapan\b", q) for q in naming)
    japan = [a for a in answers if a["country"] == "Japan"]
    assert {"clues", "cities"} <= {k for a in japan for k in a}
    clues = next(a["clues"] for a in japan if "clues" in a)
    assert "cars drive on the left" in clues and "Japanese" in clues
    assert next(a["cities"] for a in japan if "cities" in a) == "Osaka"


def test_a_blank_image_key_gives_zero_features_and_trains(tok, feats, pool):
    convs = conversations.knowledge_conversations(pool, repeats=1)[:3] + conversations.make_conversations(pool, "location")[:1]
    batch = conversations.ConversationCollator(tok, feats, 128)(convs)
    model = _tiny_model(tok)
    assert torch.isfinite(model(**batch).loss)
    with pytest.raises(TypeError, match="must be an int row"):
        conversations.ConversationCollator(tok, list(range(3)), 128)([{**convs[0], "image": "x"}])


# --------------------------------------------------------------------------------------------- closed-set scoring


def _slot_log_likelihood_by_hand(model, tok, feature, name, prompt=conversations.PROMPTS["location"]):
    head = tok.apply_chat_template([conversations.user_message(prompt)], tokenize=False, add_generation_prompt=True)
    full = conversations.encode_texts(tok, [head + inference.answer_slot_text(name)], [feature])
    n_prompt = conversations.encode_texts(tok, [head], [feature])["input_ids"].shape[1]
    with torch.no_grad():
        logp = torch.log_softmax(model(**full).logits[0, :-1].float(), dim=-1)
    return float(logp[n_prompt - 1:].gather(-1, full["input_ids"][0, n_prompt:].unsqueeze(-1)).sum())


def test_closed_set_scores_are_the_slot_log_likelihood_cached_and_in_full(tok, feats):
    model = _tiny_model(tok).eval()
    names = ["France", "Japan", "Brazil", "Germany", "Côte d'Ivoire"]
    cached = inference.closed_set_scores(model, tok, feats[:5], names, batch_size=3)
    assert cached.shape == (5, 5) and np.isfinite(cached).all() and (cached < 0).all()
    head = tok.apply_chat_template([conversations.user_message(conversations.PROMPTS["location"])], tokenize=False, add_generation_prompt=True)
    with torch.no_grad():
        full = inference._slot_scores_full(model, tok, head, [inference.answer_slot_text(n) for n in names], list(feats[:5]))
    np.testing.assert_allclose(cached, full, atol=1e-4)
    for i, j in [(0, 0), (2, 4), (4, 1)]:
        assert cached[i, j] == pytest.approx(_slot_log_likelihood_by_hand(model, tok, feats[i], names[j]), abs=1e-4)
    assert inference.answer_slot_text("Côte d'Ivoire") == "{'country': \"Côte d'Ivoire\""


def test_closed_set_scores_on_the_paper_model_class(qwen, street_images):
    config, processor = qwen
    model, _ = vlm.build_model(dict(vlm.PAPER_MODEL, revision="0" * 40, dtype="float32", gradient_checkpointing=False),
                               processor=processor, config=config)
    scores = inference.closed_set_scores(model, processor, street_images[:2], ["France", "Japan", "Peru"], batch_size=4)
    assert scores.shape == (2, 3) and np.isfinite(scores).all()


def test_closed_set_accuracy_top_k():
    scores = np.array([[0.0, -1.0, -2.0], [-3.0, -1.0, -2.0], [-1.0, -2.0, 0.0]])
    names = ["France", "Japan", "Peru"]
    acc = inference.closed_set_accuracy(scores, names, ["France", "Peru", "Japan"], k=(1, 2, 5))
    assert acc == {"top1": pytest.approx(1 / 3), "top2": pytest.approx(2 / 3), "top3": 1.0}
    assert inference.closed_set_accuracy(scores, names, ["Chile", "Chile", "Chile"])["top1"] == 0.0  # not a candidate: a miss
    with pytest.raises(ValueError, match="scores must be"):
        inference.closed_set_accuracy(scores[:2], names, ["France", "Peru", "Japan"])
    with pytest.raises(ValueError, match="at least one candidate"):
        inference.closed_set_scores(None, None, np.zeros((1, 49, 1280)), [])


def test_standardised_tower_tokens(tok, feats, tmp_path):
    model = _tiny_model(tok)
    tower = vlm.vision_tower(model)
    x = torch.from_numpy(feats[:3].astype(np.float32))
    assert torch.equal(tower(x).last_hidden_state, x)  # the identity until set
    vlm.standardize_image_features(model, feats)
    flat = feats.astype(np.float64).reshape(-1, feats.shape[-1])
    np.testing.assert_allclose(tower.feature_mean.numpy(), flat.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tower.feature_scale.numpy(), np.maximum(flat.std(0), 1e-2), rtol=1e-3, atol=1e-4)
    out = tower(torch.from_numpy(feats.astype(np.float32))).last_hidden_state.reshape(-1, feats.shape[-1])
    assert out.mean(0).abs().max() < 1e-3 and (out.std(0) - 1).abs().max() < 1e-2  # each channel: mean 0, std 1
    model.save_pretrained(tmp_path / "m")  # saved with the model, back on reload
    tok.save_pretrained(tmp_path / "m")
    reloaded, _ = vlm.load_model(tmp_path / "m")
    assert torch.equal(vlm.vision_tower(reloaded).feature_scale, tower.feature_scale)
    with pytest.raises(ValueError, match="features must be"):
        vlm.standardize_image_features(model, feats[:1])


def test_a_model_saved_before_the_standardisation_loads_as_the_identity(tok, tmp_path):
    from safetensors.torch import load_file, save_file

    model = _tiny_model(tok)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    file = next((tmp_path / "m").glob("*.safetensors"))
    tensors = {k: v for k, v in load_file(str(file)).items() if ".feature_" not in k}
    save_file(tensors, str(file), metadata={"format": "pt"})
    reloaded, _ = vlm.load_model(tmp_path / "m")
    tower = vlm.vision_tower(reloaded)
    assert torch.equal(tower.feature_mean, torch.zeros_like(tower.feature_mean))
    assert torch.equal(tower.feature_scale, torch.ones_like(tower.feature_scale))


def test_pool_tokens_averages_the_map_cells(feats):
    pooled = vlm.pool_tokens(feats, 2)
    assert pooled.shape == (len(feats), 4, feats.shape[-1]) and pooled.dtype == feats.dtype
    grid = feats.astype(np.float32).reshape(len(feats), 7, 7, -1)
    np.testing.assert_allclose(pooled[:, 0].astype(np.float32), grid[:, :4, :4].mean((1, 2)), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(pooled[:, 3].astype(np.float32), grid[:, 3:, 3:].mean((1, 2)), rtol=2e-3, atol=2e-3)
    assert vlm.pool_tokens(feats, 7) is feats
    for bad in (0, 8):
        with pytest.raises(ValueError, match="grid must be"):
            vlm.pool_tokens(feats, bad)
    with pytest.raises(ValueError, match="square token maps"):
        vlm.pool_tokens(feats[:, :48], 2)


def test_a_model_on_a_coarser_token_grid_trains_and_answers(tok, feats, tmp_path):
    model, _ = vlm.build_model(dict(TINY, image_grid=2), processor=tok)
    pooled = vlm.pool_tokens(feats, 2)
    convs = conversations.make_conversations(pd.DataFrame({"country": ["FR", "JP"] * 4, "city": ["Paris", "Osaka"] * 4}),
                                             "location")
    stage = tuning.train_stage(model, tok, convs, "location", _steps(2), tuning.lora_config(4, 8, 0.0), tmp_path / "s",
                               images=pooled[:8])
    assert len(inference.generate(stage.model, tok, pooled[:2], max_new_tokens=4)) == 2
    with pytest.raises(ValueError, match="pool the cached features"):
        inference.generate(stage.model, tok, feats[:2], max_new_tokens=4)
    from geolib import features

    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():  # pixels are pooled to the same cells as cached features
        tokens = vlm.vision_tower(model)(pixels).last_hidden_state
        maps = features.load_image_tower()(pixels).flatten(2).transpose(1, 2).numpy()
    assert tokens.shape == (2, 4, 1280)
    np.testing.assert_allclose(tokens.numpy(), vlm.pool_tokens(maps, 2), rtol=1e-5, atol=1e-5)


def test_the_demo_model_sees_four_tokens_by_default(tok):
    model, _ = vlm.build_model({"model_id": "demo", "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                "num_kv_heads": 2, "intermediate_size": 64}, processor=tok)
    assert vlm.ModelSpec().image_grid == 2 and model.config.image_seq_length == 4


def test_lora_on_the_projector_where_the_stage_asks(tok, qwen):
    model = tuning.add_stage_adapter(_tiny_model(tok), "reasoning", tuning.lora_config(**DEMO["lora"]))
    lora_modules = {n.rsplit(".lora_", 1)[0] for n, _ in model.named_parameters() if ".lora_" in n}
    projector = {n for n in lora_modules if "multi_modal_projector" in n}
    assert {n.rsplit(".", 1)[-1] for n in projector} == {"linear_1", "linear_2"}
    assert len(lora_modules - projector) == 7 * TINY["num_layers"]  # and the language model's as before
    assert not any("vision_tower" in n for n in lora_modules)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n and ".reasoning" in n for n in trainable)
    assert vlm.trainable_parameter_report(model)["trainable"] == vlm.trainable_parameter_report(model)["lora"]
    # the paper's preset adapts the language model only; asked, the Qwen2.5-VL merger gets LoRA too
    assert PAPER["lora"]["projector"] is False
    assert not tuning.lora_config(**PAPER["lora"]).target_modules.count("merger")
    import re as re_

    config, processor = qwen
    model_, _ = vlm.build_model(dict(vlm.PAPER_MODEL, revision="0" * 40, dtype="float32"), processor=processor,
                                config=config)
    pattern = tuning.lora_config(4, 8, projector=True).target_modules
    names = [n for n, m in model_.named_modules() if isinstance(m, torch.nn.Linear)]
    hit = [n for n in names if re_.fullmatch(pattern, n)]
    assert any(".merger.mlp." in n for n in hit)
    assert not any(".blocks." in n for n in hit)  # never the vision blocks


def test_guess_conversations_answer_the_location_question_with_a_blank_image(pool):
    convs = conversations.guess_conversations(pool, 40, seed=1)
    assert len(convs) == 40 and all(c["image"] is None for c in convs)
    assert {c["messages"][0]["content"][-1]["text"] for c in convs} == {conversations.PROMPTS["location"]}
    answers_ = [ast.literal_eval(c["messages"][1]["content"][0]["text"]) for c in convs]
    places = {(conversations.country_name(a), b) for a, b in zip(pool["country"], pool["city"])}
    assert {(a["country"], a["city"]) for a in answers_} <= places
    assert len({a["country"] for a in answers_}) == len({c for c, _ in places})  # every place is guessed
    assert conversations.guess_conversations(pool, 40, seed=1) == convs and conversations.guess_conversations(pool, 0) == []
    with pytest.raises(ValueError, match="n must be"):
        conversations.guess_conversations(pool, -1)


def test_model_digest_is_the_same_whatever_torchs_thread_count():
    """Notebooks 05 and 07 find stages trained by one-thread workers from a two-thread kernel."""
    import torch

    from geolib import vlm

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.Linear(512, 64))
    before = torch.get_num_threads()
    digests = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        digests.append(vlm.model_digest(model))
        assert torch.get_num_threads() == threads, "the caller's thread count is restored"
    torch.set_num_threads(before)
    assert digests[0] == digests[1]
    with torch.no_grad():
        model[1].bias[0] += 1.0
    assert vlm.model_digest(model) != digests[0]
