"""The baselines of notebook 06: geolib.baselines (majority, linear probe), geolib.geoclip (GeoCLIP retrieval),
geolib.zero_shot (StreetCLIP zero-shot), and their table (geolib.evaluation.baseline_table)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from geolib import baselines as bl  # noqa: E402
from geolib import evaluation  # noqa: E402
from geolib import geoclip as gc  # noqa: E402
from geolib import zero_shot as zs  # noqa: E402

CITIES = {  # (country, city): (lat, lon, training images)
    ("FR", "Paris"): (48.8566, 2.3522, 26),
    ("FR", "Lyon"): (45.7640, 4.8357, 24),
    ("JP", "Tokyo"): (35.6762, 139.6503, 30),
    ("JP", "Osaka"): (34.6937, 135.5023, 10),
    ("BR", "São Paulo"): (-23.5505, -46.6333, 12),
    ("BR", "Rio de Janeiro"): (-22.9068, -43.1729, 8),
}


def make_split(scale: float = 1.0, seed: int = 0, prefix: str = "train", dim: int = 16, noise: float = 0.6):
    """A split over CITIES (counts × scale) and features that separate the cities (hence the countries)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(len(CITIES), dim)) * 2.0
    rows, feats = [], []
    for k, ((country, city), (lat, lon, n)) in enumerate(CITIES.items()):
        for _ in range(max(1, round(n * scale))):
            rows.append({"image_id": f"{prefix}_{len(rows)}", "country": country, "city": city,
                         "lat": lat + rng.normal(scale=0.03), "lon": lon + rng.normal(scale=0.03)})
            feats.append(centres[k] + rng.normal(scale=noise, size=dim))
    return pd.DataFrame(rows), np.asarray(feats, dtype=np.float32)


@pytest.fixture(scope="module")
def train():
    return make_split(1.0, seed=0, prefix="train")


@pytest.fixture(scope="module")
def test_split():
    return make_split(0.5, seed=1, prefix="test")


# ---------------------------------------------------------------------------------------------
# shape and helpers


def test_predictions_frame_has_the_common_columns():
    df = bl.predictions_frame(["a", "b"], ["FR", None], [None, "Lyon"], [1.0, np.nan], [2.0, np.nan])
    assert tuple(df.columns) == bl.PREDICTION_COLUMNS
    assert df["pred_country"].tolist() == ["FR", None] and df["pred_city"].tolist() == [None, "Lyon"]
    assert np.isnan(df["score"]).all() and np.isnan(df.loc[1, "pred_lat"])
    with pytest.raises(ValueError, match="pred_country has 1 values"):
        bl.predictions_frame(["a", "b"], ["FR"])


def test_spherical_mean_crosses_the_antimeridian():
    lat, lon = bl.spherical_mean([10.0, 10.0], [179.0, -179.0])
    assert abs(abs(float(lon)) - 180.0) < 1e-9 and abs(float(lat) - 10.0) < 0.01


# ---------------------------------------------------------------------------------------------
# 1. majority


def test_majority_picks_the_mode_at_each_level(train, test_split):
    train_df, _ = train
    test_df, _ = test_split
    pred = bl.majority_baseline(train_df, test_df)
    assert tuple(pred.columns) == bl.PREDICTION_COLUMNS and len(pred) == len(test_df)
    assert (pred["pred_country"] == "FR").all()  # 50 French images, 40 Japanese, 20 Brazilian
    assert (pred["pred_city"] == "Tokyo").all()  # the single most common city (30 images)
    tokyo = train_df[train_df["city"] == "Tokyo"]
    assert np.allclose(pred["pred_lat"], tokyo["lat"].mean(), atol=1e-3)
    assert np.allclose(pred["pred_lon"], tokyo["lon"].mean(), atol=1e-3)
    assert np.allclose(pred["score"], 50 / len(train_df))
    assert pred["image_id"].tolist() == test_df["image_id"].tolist()


# ---------------------------------------------------------------------------------------------
# 2. linear probe


def test_linear_probe_beats_the_majority_on_held_out_rows(train, test_split):
    from geolib.metrics import answer_metrics

    (train_df, xtr), (test_df, xte) = train, test_split
    probe = bl.fit_linear_probe(xtr, train_df, target="country", C=1.0, seed=0)
    pred = bl.predict_linear_probe(probe, xte, test_df)
    acc = answer_metrics(pred["pred_country"], test_df["country"])["accuracy"]
    majority = answer_metrics(bl.majority_baseline(train_df, test_df)["pred_country"], test_df["country"])["accuracy"]
    assert acc > 0.95 > majority + 0.3, (acc, majority)
    assert pred["pred_city"].isna().all()  # a country probe answers no city
    assert ((pred["score"] > 0) & (pred["score"] <= 1)).all()
    fr = probe.classes.set_index("country").loc["FR"]
    assert np.allclose(pred.loc[pred["pred_country"] == "FR", "pred_lat"], fr["lat"])

    city = bl.linear_probe_baseline(xtr, train_df, xte, test_df, target="city", C=1.0, seed=0)
    assert answer_metrics(city["pred_city"], test_df["city"], "city")["accuracy"] > 0.9
    consistent = city.merge(test_df, on="image_id")
    assert (consistent["pred_country"] == consistent.groupby("pred_city")["country"].transform("first")).all()


def test_linear_probe_leaves_unreadable_rows_unanswered(train, test_split):
    (train_df, xtr), (test_df, xte) = train, test_split
    xte = xte.copy()
    xte[3] = np.nan
    pred = bl.linear_probe_baseline(xtr, train_df, xte, test_df)
    assert pred.loc[3, "pred_country"] is None and np.isnan(pred.loc[3, "pred_lat"])
    assert pred["pred_country"].notna().sum() == len(test_df) - 1


def test_select_probe_c_takes_the_best_validation_accuracy(train, test_split):
    (tr, xtr), (va, xva) = train, test_split
    best, scores = bl.select_probe_c(xtr, tr, xva, va, [1e-4, 1.0])
    assert list(scores) == [1e-4, 1.0] and best == max(scores, key=scores.get)
    pred = bl.linear_probe_baseline(xtr, tr, xva, va, "country", C=1.0)
    assert scores[1.0] == float((pred["pred_country"] == va["country"]).mean())
    assert scores[1.0] > scores[1e-4]  # a strong penalty flattens the probe towards the majority
    assert bl.select_probe_c(xtr, tr, xva, va, [0.5, 0.5])[0] == 0.5
    with pytest.raises(ValueError, match="c_grid"):
        bl.select_probe_c(xtr, tr, xva, va, [])


def test_linear_probe_rejects_bad_input(train):
    train_df, xtr = train
    with pytest.raises(ValueError, match="target"):
        bl.fit_linear_probe(xtr, train_df, target="continent")
    with pytest.raises(ValueError, match="rows"):
        bl.fit_linear_probe(xtr[:-1], train_df)
    with pytest.raises(ValueError, match="at least 2"):
        one = train_df.assign(country="FR")
        bl.fit_linear_probe(xtr, one)


# ---------------------------------------------------------------------------------------------
# 3. GeoCLIP: real location encoder and gallery


@pytest.fixture(scope="module")
def encoder():
    return gc.load_location_encoder()


@pytest.fixture(scope="module")
def gallery():
    return gc.load_gps_gallery()


def test_location_encoder_holds_the_released_weights(encoder):
    released = torch.load(gc.location_encoder_weights_path(), map_location="cpu", weights_only=True)
    state = encoder.state_dict()
    assert set(state) == set(released)
    assert all(torch.equal(state[k], released[k]) for k in released)
    assert not any(p.requires_grad for p in encoder.parameters()) and not encoder.training


def test_location_encoder_embeds_nearby_places_closer(encoder):
    # Paris, 5 km from Paris, Lyon, Tokyo
    emb = gc.encode_locations([48.8566, 48.8566, 45.764, 35.6762], [2.3522, 2.4206, 4.8357, 139.6503], encoder)
    assert emb.shape == (4, 512) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=1), torch.ones(4), atol=1e-5)
    cos = emb @ emb.T
    assert cos[0, 1] > cos[0, 2] > cos[0, 3], cos
    raw = gc.encode_locations([48.8566], [2.3522], encoder, normalize=False)
    assert not torch.allclose(raw.norm(dim=1), torch.ones(1))


def test_gps_gallery_has_100k_valid_points(gallery):
    assert gallery.shape == (100_000, 2)
    assert np.isfinite(gallery).all()
    assert (np.abs(gallery[:, 0]) <= 90).all() and (np.abs(gallery[:, 1]) <= 180).all()
    assert gallery[:, 0].min() < -30 and gallery[:, 0].max() > 60  # both hemispheres
    assert len(np.unique(gallery, axis=0)) > 90_000  # the released file repeats some points (94,123 distinct)


def test_gallery_embeddings_are_cached_and_keyed(tmp_path, encoder, gallery, monkeypatch):
    small = gallery[:200]
    cache = tmp_path / "gallery.npy"
    first = gc.gallery_embeddings(cache, small, encoder, progress=False)
    assert first.shape == (200, 512) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1, atol=2e-3)
    direct = gc.encode_locations(small[:, 0], small[:, 1], encoder).numpy()
    assert np.abs(first - direct).max() < 2e-3  # float16 cache

    def boom(*a, **k):
        raise AssertionError("recomputed a current cache")

    monkeypatch.setattr(gc, "encode_locations", boom)
    assert np.array_equal(gc.gallery_embeddings(cache, small, encoder, progress=False), first)
    with pytest.raises(AssertionError, match="recomputed"):  # another gallery: not current
        gc.gallery_embeddings(cache, gallery[200:300], encoder, progress=False)


def test_retrieve_gps_top1_and_topk(encoder, gallery):
    coords = gallery[:500]
    emb = gc.encode_locations(coords[:, 0], coords[:, 1], encoder)
    lat, lon, score = gc.retrieve_gps(emb[:20], emb, coords, top_k=1, logit_scale=40.0, batch_size=7)
    assert np.allclose(lat, coords[:20, 0], atol=1e-5) and np.allclose(lon, coords[:20, 1], atol=1e-5)
    assert ((score > 0) & (score <= 1)).all()
    lat5, lon5, score5 = gc.retrieve_gps(emb[:20], emb, coords, top_k=5, logit_scale=40.0)
    assert (score5 >= score - 1e-9).all()
    from geolib.geo import haversine_km

    assert np.median(haversine_km(lat5, lon5, coords[:20, 0], coords[:20, 1])) < 2000
    with pytest.raises(ValueError, match="top_k"):
        gc.retrieve_gps(emb[:2], emb, coords, top_k=0)


def test_predictions_from_coordinates_country_and_city():
    pred = gc.predictions_from_coordinates(["a", "b", "c"], [48.8566, 0.0, np.nan], [2.3522, -30.0, np.nan], [0.5, 0.1, np.nan])
    from geolib.gazetteer import nearest_city

    assert pred.loc[0, "pred_country"] == "FR"
    assert pred.loc[0, "pred_city"] == nearest_city(48.8566, 2.3522).name  # GeoNames: "Paris 04 Hôtel-de-Ville"
    assert pred.loc[1, "pred_country"] is not None  # open sea: the nearest city's country
    assert pred.loc[2, "pred_country"] is None and pred.loc[2, "pred_city"] is None


# ---------------------------------------------------------------------------------------------
# 3b. the demo's retrieval head


def located_features(lat, lon, dim: int = 64, seed: int = 0, noise: float = 0.05) -> np.ndarray:
    """Features that encode the location: random Fourier features of the 3-D unit vector, plus noise."""
    la, lo = np.radians(lat), np.radians(lon)
    xyz = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=1)
    rng = np.random.default_rng(1234)
    w, b = rng.normal(scale=3.0, size=(3, dim)), rng.uniform(0, 2 * np.pi, size=dim)
    f = np.cos(xyz @ w + b)
    return (f + np.random.default_rng(seed).normal(scale=noise, size=f.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def head_data(encoder, gallery):
    rng = np.random.default_rng(0)
    pick = rng.choice(len(gallery), size=2000, replace=False)
    g_coords = gallery[pick]
    g_emb = gc.gallery_embeddings(None, g_coords, encoder, progress=False)
    tr = rng.choice(len(g_coords), size=600, replace=False)
    te = np.setdiff1d(np.arange(len(g_coords)), tr)[:150]
    jitter = lambda c, s: np.clip(c + np.random.default_rng(s).normal(scale=0.05, size=c.shape), [-90, -180], [90, 180])  # noqa: E731
    tr_c, te_c = jitter(g_coords[tr], 1), jitter(g_coords[te], 2)
    return {
        "g_coords": g_coords, "g_emb": g_emb,
        "xtr": located_features(tr_c[:, 0], tr_c[:, 1], seed=1), "tr": tr_c,
        "xte": located_features(te_c[:, 0], te_c[:, 1], seed=2), "te": te_c,
    }


FAST = dict(hidden_dim=128, batch_size=64, epochs=12, n_gallery_negatives=256, lr=3e-3, progress=False, checkpoint_every=4)


def test_retrieval_head_predicts_closer_than_chance(head_data):
    from geolib.geo import haversine_km

    d = head_data
    config = gc.GeoHeadConfig(**FAST)
    head, history = gc.train_geoclip_head(d["xtr"], d["tr"][:, 0], d["tr"][:, 1], d["g_emb"], config)
    assert list(history.columns) == ["epoch", "train_loss", "temperature"] and len(history) == config.epochs
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    lat, lon, score = gc.predict_geoclip_head(head, d["xte"], d["g_emb"], d["g_coords"], top_k=1)
    err = haversine_km(lat, lon, d["te"][:, 0], d["te"][:, 1])
    rng = np.random.default_rng(5)
    chance = d["g_coords"][rng.integers(0, len(d["g_coords"]), size=len(err))]
    chance_err = haversine_km(chance[:, 0], chance[:, 1], d["te"][:, 0], d["te"][:, 1])
    assert np.median(err) < 0.25 * np.median(chance_err), (np.median(err), np.median(chance_err))
    assert ((score > 0) & (score <= 1)).all()


def test_retrieval_head_checkpoint_is_loaded_resumed_and_keyed(tmp_path, head_data, monkeypatch):
    d = head_data
    ckpt = tmp_path / "head.pt"
    config = gc.GeoHeadConfig(**{**FAST, "epochs": 6, "checkpoint_every": 2})
    args = (d["xtr"][:200], d["tr"][:200, 0], d["tr"][:200, 1], d["g_emb"])
    reference, ref_hist = gc.train_geoclip_head(*args, config)

    # interrupted in epoch 5 (after the epoch-4 checkpoint), then resumed: the same model
    calls = {"n": 0}
    real_loss = gc.geoclip_head_loss

    def interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] > 4 * 4:  # 200 rows / 64 = 4 steps an epoch; die in the 5th epoch
            raise KeyboardInterrupt
        return real_loss(*a, **k)

    monkeypatch.setattr(gc, "geoclip_head_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        gc.train_geoclip_head(*args, config, checkpoint_path=ckpt)
    monkeypatch.setattr(gc, "geoclip_head_loss", real_loss)
    resumed, hist = gc.train_geoclip_head(*args, config, checkpoint_path=ckpt)
    assert len(hist) == 6 and np.allclose(hist["train_loss"], ref_hist["train_loss"])
    for k, v in reference.state_dict().items():
        assert torch.allclose(resumed.state_dict()[k], v), k

    # finished and current: loaded, not trained
    def no_training(*a, **k):
        raise AssertionError("trained although the checkpoint is current")

    monkeypatch.setattr(gc, "geoclip_head_loss", no_training)
    loaded, _ = gc.train_geoclip_head(*args, config, checkpoint_path=ckpt)
    x = torch.from_numpy(d["xte"][:5])
    assert torch.allclose(loaded(x), reference(x))
    monkeypatch.setattr(gc, "geoclip_head_loss", real_loss)

    # another configuration: not current, retrained with a warning
    with pytest.warns(UserWarning, match="not current"):
        gc.train_geoclip_head(*args, gc.GeoHeadConfig(**{**FAST, "epochs": 1}), checkpoint_path=ckpt)


def test_geoclip_head_baseline_returns_predictions(head_data, tmp_path):
    d = head_data
    train_df = pd.DataFrame({"image_id": [f"t{i}" for i in range(len(d["tr"]))], "lat": d["tr"][:, 0], "lon": d["tr"][:, 1]})
    test_df = pd.DataFrame({"image_id": [f"q{i}" for i in range(20)]})
    pred = gc.geoclip_head_baseline(d["xtr"], train_df, d["xte"][:20], test_df, d["g_emb"], d["g_coords"],
                                    gc.GeoHeadConfig(**{**FAST, "epochs": 2}), tmp_path / "h.pt", top_k=3)
    assert tuple(pred.columns) == bl.PREDICTION_COLUMNS and len(pred) == 20
    assert pred["pred_lat"].notna().all() and pred["pred_country"].notna().all() and pred["pred_city"].notna().all()


def test_geoclip_baseline_retrieves_from_a_cached_gallery_subset(head_data, gallery, tmp_path):
    d = head_data
    train_df = pd.DataFrame({"image_id": [f"t{i}" for i in range(len(d["tr"]))], "lat": d["tr"][:, 0], "lon": d["tr"][:, 1]})
    test_df = pd.DataFrame({"image_id": [f"q{i}" for i in range(10)]})
    pred, points = gc.geoclip_baseline(test_df, tmp_path, gallery_size=300, train_features=d["xtr"], train_df=train_df,
                                       test_features=d["xte"][:10], head={"epochs": 1, "hidden_dim": 32, "batch_size": 64},
                                       checkpoint_path=tmp_path / "head.pt")
    assert points.shape == (300, 2) and (tmp_path / "geoclip_gallery_300.npy").exists() and (tmp_path / "head.pt").exists()
    assert np.array_equal(points, gallery[np.sort(np.random.default_rng(0).choice(len(gallery), 300, replace=False))])
    assert tuple(pred.columns) == bl.PREDICTION_COLUMNS and pred["image_id"].tolist() == list(test_df["image_id"])
    found = {tuple(np.round(p, 5)) for p in points}
    assert all(tuple(np.round(p, 5)) in found for p in pred[["pred_lat", "pred_lon"]].to_numpy())  # top-1: a gallery point


# ---------------------------------------------------------------------------------------------
# 3c. the paper path: GeoCLIP's own image encoder (tiny random CLIP here) + the real location encoder


def tiny_clip(projection_dim: int, vocab_size: int = 600, seed: int = 0):
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64, bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2),
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    return CLIPModel(config).eval()


def tiny_image_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


def random_images(n: int, seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, size=(40 + 3 * i, 60, 3), dtype=np.uint8)) for i in range(n)]


class TinyGeoCLIP(torch.nn.Module):
    """geoclip.GeoCLIP's parts with a tiny random CLIP in place of ViT-L/14 (no hub)."""

    def __init__(self, location_encoder):
        from geoclip.model.image_encoder import ImageEncoder

        super().__init__()
        image_encoder = ImageEncoder.__new__(ImageEncoder)
        torch.nn.Module.__init__(image_encoder)
        image_encoder.CLIP = tiny_clip(projection_dim=768)
        image_encoder.image_processor = tiny_image_processor()
        image_encoder.mlp = torch.nn.Sequential(torch.nn.Linear(768, 768), torch.nn.ReLU(), torch.nn.Linear(768, 512))
        weights = gc.geoclip_package_dir() / "weights"
        image_encoder.mlp.load_state_dict(torch.load(weights / "image_encoder_mlp_weights.pth", weights_only=True))
        self.image_encoder = image_encoder.eval()
        self.location_encoder = location_encoder
        self.logit_scale = torch.nn.Parameter(torch.load(weights / "logit_scale_weights.pth", weights_only=True))


def test_geoclip_paper_path_matches_geoclip_forward(encoder, gallery):
    from geoclip import GeoCLIP

    model = TinyGeoCLIP(encoder)
    coords = gallery[:300]
    images = random_images(4) + [str(gc.geoclip_package_dir().parent / "images" / "Kauai.png")]
    pred = gc.geoclip_image_baseline(model, images, list("abcde"), gallery_coords=coords, batch_size=2, progress=False)
    assert tuple(pred.columns) == bl.PREDICTION_COLUMNS and pred["image_id"].tolist() == list("abcde")

    from geolib.features import load_rgb

    pixels = model.image_encoder.preprocess_image([load_rgb(im) for im in images])
    with torch.no_grad():  # GeoCLIP's own forward on the same parts: the argmax must agree
        logits = GeoCLIP.forward(model, pixels, torch.tensor(coords, dtype=torch.float32))
    best = logits.argmax(dim=1).numpy()
    assert np.allclose(pred["pred_lat"], coords[best, 0], atol=1e-5)
    assert np.allclose(pred["pred_lon"], coords[best, 1], atol=1e-5)
    assert np.allclose(pred["score"], logits.softmax(dim=1).max(dim=1).values.numpy(), atol=1e-4)
    emb = gc.geoclip_embed_images(model, images, batch_size=5)
    assert emb.shape == (5, 512)


def test_geoclip_baseline_runs_geoclip_itself_when_given_its_backbone(encoder, tmp_path, monkeypatch):
    model = TinyGeoCLIP(encoder)
    asked = {}

    def load(backbone, revision, device):
        asked.update(backbone=backbone, revision=revision, device=device)
        return model

    monkeypatch.setattr(gc, "load_geoclip", load)
    test_df = pd.DataFrame({"image_id": list("ab"), "image_path": random_images(2)})
    pred, points = gc.geoclip_baseline(test_df, tmp_path, gallery_size=200, backbone="some/clip", revision="")
    assert asked == {"backbone": "some/clip", "revision": None, "device": "cpu"}
    emb = gc.gallery_embeddings(tmp_path / "geoclip_gallery_200.npy", points, model.location_encoder, progress=False)  # cached
    own = gc.geoclip_image_baseline(model, test_df["image_path"].tolist(), test_df["image_id"], emb, points, progress=False)
    pd.testing.assert_frame_equal(pred, own)


# ---------------------------------------------------------------------------------------------
# 4. StreetCLIP zero-shot on a tiny random CLIP


@pytest.fixture(scope="module")
def tiny_streetclip():
    from tokenizers import pre_tokenizers
    from transformers import CLIPProcessor, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    for suffix in ("", "</w>"):
        for ch in alphabet:
            vocab[ch + suffix] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    processor = CLIPProcessor(image_processor=tiny_image_processor(), tokenizer=tokenizer)
    return tiny_clip(projection_dim=16, vocab_size=len(vocab), seed=3), processor


def test_country_prompts_take_codes_and_names():
    codes, prompts = zs.country_prompts(["FR", "Japan", "BRA"])
    assert codes == ["FR", "JP", "BR"]
    assert prompts[2] == "A Street View photo in Brazil."
    assert prompts[0] == "A Street View photo in France." and prompts[1] == "A Street View photo in Japan."
    with pytest.raises(ValueError, match="unknown"):
        zs.country_prompts(["FR", "Atlantis"])
    with pytest.raises(ValueError, match="twice"):
        zs.country_prompts(["FR", "France"])


def test_streetclip_zero_shot_on_a_tiny_clip(tiny_streetclip):
    model, processor = tiny_streetclip
    images = random_images(5, seed=1)
    countries = ["FR", "Japan", "BR", "Kenya"]
    codes, probs = zs.streetclip_country_probs(images, countries, model, processor, batch_size=2)
    assert codes == ["FR", "JP", "BR", "KE"]
    assert probs.shape == (5, 4) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)

    pred = zs.streetclip_zero_shot(images, countries, model, processor, batch_size=2, image_ids=list("vwxyz"))
    assert tuple(pred.columns) == bl.PREDICTION_COLUMNS and pred["image_id"].tolist() == list("vwxyz")
    assert pred["pred_country"].tolist() == [codes[i] for i in probs.argmax(axis=1)]
    assert np.allclose(pred["score"], probs.max(axis=1))
    assert pred["pred_city"].isna().all() and pred["pred_lat"].isna().all()

    one = [zs.streetclip_country_probs([im], countries, model, processor, batch_size=1)[1][0] for im in images]
    assert np.allclose(np.stack(one), probs, atol=1e-5)  # batching changes nothing
    _, all_at_once = zs.streetclip_country_probs(images, countries, model, processor, batch_size=8)
    assert np.allclose(all_at_once, probs, atol=1e-5)

    # the same numbers as CLIPModel's own forward (logits_per_image)
    prompts = zs.country_prompts(countries)[1]
    inputs = processor(text=prompts, images=images, return_tensors="pt", padding=True)
    with torch.no_grad():
        ref = model(**inputs).logits_per_image.softmax(dim=-1).numpy()
    assert np.allclose(ref, probs, atol=1e-5)


def test_streetclip_baseline_loads_and_answers_a_split(tiny_streetclip, monkeypatch):
    model, processor = tiny_streetclip
    monkeypatch.setattr(zs, "load_streetclip", lambda model_id, revision, device: (model, processor))
    test_df = pd.DataFrame({"image_id": list("xyz"), "image_path": random_images(3, seed=2)})
    pred = zs.streetclip_baseline("geolocal/StreetCLIP", test_df, ["FR", "JP"])
    own = zs.streetclip_zero_shot(test_df["image_path"].tolist(), ["FR", "JP"], model, processor, image_ids=list("xyz"))
    pd.testing.assert_frame_equal(pred, own)


# ---------------------------------------------------------------------------------------------
# 5. the table


def test_baseline_table_ranges_and_intervals(train, test_split):
    (train_df, xtr), (test_df, xte) = train, test_split
    perfect = bl.predictions_frame(test_df["image_id"], test_df["country"], test_df["city"], test_df["lat"], test_df["lon"])
    vlm = pd.DataFrame({  # a VLM's parsed answers: names, refusals, cities without coordinates
        "image_id": test_df["image_id"],
        "pred_country": ["France" if c == "FR" else None for c in test_df["country"]],
        "pred_city": ["paris" if c == "FR" else None for c in test_df["country"]],
        "pred_lat": np.nan, "pred_lon": np.nan,
    })
    preds = {
        "majority": bl.majority_baseline(train_df, test_df),
        "probe": bl.linear_probe_baseline(xtr, train_df, xte, test_df, target="city"),
        "perfect": perfect,
        "vlm": vlm,
    }
    table = evaluation.baseline_table(preds, test_df, n_boot=200, seed=0)
    assert list(table.columns) == ["model", "metric", "value", "ci_low", "ci_high", "n"]
    assert len(table) == 4 * len(evaluation.TABLE_METRICS)
    assert table.groupby("model")["metric"].apply(list).map(lambda m: tuple(m) == evaluation.TABLE_METRICS).all()
    shares = table[~table["metric"].isin(["median_km", "mean_geoscore"])].dropna(subset=["value"])
    assert ((shares[["value", "ci_low", "ci_high"]] >= 0) & (shares[["value", "ci_low", "ci_high"]] <= 1)).all().all()
    geo = table[table["metric"] == "mean_geoscore"]
    assert ((geo["value"] >= 0) & (geo["value"] <= 5000)).all()
    finite = table.dropna(subset=["value", "ci_low", "ci_high"])
    assert (finite["ci_low"] <= finite["value"] + 1e-9).all() and (finite["value"] <= finite["ci_high"] + 1e-9).all()

    wide = table.pivot(index="model", columns="metric", values="value")
    assert wide.loc["perfect", "country_f1"] == 1.0 and wide.loc["perfect", "within_1km"] == 1.0
    assert wide.loc["perfect", "median_km"] == 0.0 and wide.loc["perfect", "mean_geoscore"] == 5000.0
    assert wide.loc["probe", "country_accuracy"] > wide.loc["majority", "country_accuracy"]
    n_fr = int((test_df["country"] == "FR").sum())
    assert wide.loc["vlm", "country_accuracy"] == 1.0  # "France" is FR
    assert np.isclose(wide.loc["vlm", "country_recall"], n_fr / len(test_df))
    assert np.isclose(wide.loc["vlm", "city_accuracy"], (test_df["city"] == "Paris").sum() / n_fr)
    assert wide.loc["vlm", "within_2500km"] == 0.0 and np.isnan(wide.loc["vlm", "median_km"])


def test_baseline_table_alignment(train, test_split):
    (train_df, _), (test_df, _) = train, test_split
    pred = bl.majority_baseline(train_df, test_df)
    with pytest.warns(UserWarning, match="cover"):
        part = evaluation.baseline_table({"m": pred.iloc[:-3]}, test_df, n_boot=20)
    full = evaluation.baseline_table({"m": pred.iloc[::-1]}, test_df, n_boot=20)  # order does not matter
    rec = lambda t: t.set_index("metric").loc["country_recall", "value"]  # noqa: E731
    assert rec(full) == 1.0 and np.isclose(rec(part), (len(test_df) - 3) / len(test_df))
    with pytest.raises(ValueError, match="not in test_df"):
        evaluation.baseline_table({"m": pred.assign(image_id="other_" + pred["image_id"])}, test_df, n_boot=20)
    with pytest.raises(ValueError, match="lack columns"):
        evaluation.baseline_table({"m": pred.drop(columns="pred_lat")}, test_df, n_boot=20)
