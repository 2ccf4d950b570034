"""The overfit test: can the demo recipe fit its own training images? (the ci profile's model)

A recipe that cannot name the country of the images it was trained on cannot generalise; the
first demo recipe named 3% of them. Here: a small demo world (8 countries, as in the ci profile), the
frozen tower's cached features, the demo's base training (captions, world knowledge, guesses),
then stage 2 with the demo preset's LoRA settings (rank 64, α 128, projector included) at twice
the demo's learning rate for 60 epochs on 100 of the training images, scored by closed-set top-1
on those same images. Measured: 100% here (88% at five times the learning rate, where the earlier
rank-16 preset passed); on the demo profile's model and world (40 countries) the rank-16 preset
reached 97% (the first recipe: 3%).
"""

import pytest

from geolib import conversations, curation, features, inference, params, tuning, vlm, world

torch = pytest.importorskip("torch")

CI_MODEL = {"model_id": "demo", "hidden_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 2,
            "intermediate_size": 128}
N_FIT = 100
BASE_EPOCHS = 10  # the small world gives few base-training steps per epoch
EPOCHS = 60
LR = 2e-3


def test_stage_two_fits_its_own_training_images(tmp_path):
    torch.manual_seed(0)
    pool = world.build_world(tmp_path / "world", n_images=240, n_countries=8, cities_per_country=2, seed=0,
                             progress=False)
    pool = pool.assign(image_path=[str(tmp_path / "world" / p) for p in pool["image_path"]])
    split = curation.split_by_city(pool, [0.6, 0.1, 0.3], seed=0)
    train = pool[(split == "train").to_numpy()]
    spec = vlm.ModelSpec.coerce(CI_MODEL)
    tokens = features.image_features(pool["image_path"].tolist(), tmp_path / "features.npy")
    images = vlm.pool_tokens(tokens, spec.image_grid)
    fit = train.sample(min(N_FIT, len(train)), random_state=0)
    rows = fit.index.to_numpy()
    base_convs = (conversations.base_training_conversations(train.assign(row=train.index), image_column="row")
                  + conversations.knowledge_conversations(pool) + conversations.guess_conversations(pool, 400))
    stage2 = conversations.make_conversations(fit.assign(row=rows), "location", image_column="row")
    tok = vlm.train_tokenizer(conversations.conversation_texts(base_convs + stage2) + list(conversations.PROMPTS.values()), 800,
                              tmp_path / "tok")
    model, _ = vlm.build_model(spec, processor=tok)
    vlm.standardize_image_features(model, images[train.index.to_numpy()])
    demo = params.notebook_values("05_location_tuning") | {"base_training": params.notebook_values("04_reasoning_tuning")["base_training"]}
    base_settings = dict(demo["base_training"], num_train_epochs=BASE_EPOCHS, per_device_train_batch_size=16, effective_batch_size=16, disable_tqdm=True)
    base = tuning.train_stage(model, tok, base_convs, "base", base_settings, None, tmp_path / "base", images=images)
    settings = dict(demo["location_tuning"], num_train_epochs=EPOCHS, learning_rate=LR, disable_tqdm=True, save_steps=10**6)
    stage = tuning.train_stage(base.model, tok, stage2, "location", settings, tuning.lora_config(**demo["lora"]),
                               tmp_path / "location", images=images)
    names = sorted({conversations.country_name(c) for c in pool["country"]})
    scores = inference.closed_set_scores(stage.model, tok, images[rows], names)
    top1 = inference.closed_set_accuracy(scores, names, [conversations.country_name(c) for c in fit["country"]])["top1"]
    assert top1 >= 0.9, f"stage 2 names the country of {top1:.0%} of its own {len(rows)} training images"
