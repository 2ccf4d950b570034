"""The demo world: facts with sources, places, exact masks, visible clues, reasoning, determinism, resume."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from PIL import Image

from geolib import world as W

SEED = 3
SIZE = 96  # small renders keep the tests fast; clue judgement does not depend on the size


@pytest.fixture(scope="module")
def places():
    return W.sample_places(8, 2, SEED)


@pytest.fixture(scope="module")
def specs(places):
    return [W.world_spec(places, SEED, i) for i in range(160)]


def _first(specs, pred):
    for s in specs:
        if pred(s):
            return s
    pytest.fail("no scene in the test pool has the wanted property")


def _geo_country_of():
    borders = pytest.importorskip("geolib.borders")
    if not hasattr(borders, "country_of"):
        pytest.skip("geolib.borders.country_of not available yet")
    return borders.country_of


# ---------------------------------------------------------------------------------------------
# Facts


def test_facts_file_loads_and_every_fact_has_a_source():
    facts = W.load_country_facts()
    sources = facts["sources"]
    assert len(facts["countries"]) >= 50
    assert all(isinstance(v, str) and len(v) > 20 for v in sources.values())
    for cc, entry in facts["countries"].items():
        assert entry["name"]
        for fact in W.REQUIRED_FACTS:
            assert fact in entry, (cc, fact)
        for fact, spec in entry.items():
            if fact == "name":
                continue
            assert fact in W.FACT_NAMES
            assert spec["source"] in sources, (cc, fact)
            assert spec["value"] not in (None, [], {})


def test_facts_cover_every_inhabited_continent_and_many_scripts():
    facts = W.load_country_facts()["countries"]
    _, countries = W._geonames()
    assert {countries[cc]["continentcode"] for cc in facts} >= {"AF", "AS", "EU", "NA", "SA", "OC"}
    scripts = {info["script"] for e in facts.values() for info in e["languages"]["value"].values()}
    assert len(scripts) >= 14 and {"Latn", "Cyrl", "Arab", "Hebr", "Deva", "Thai", "Kore", "Jpan", "Ethi"} <= scripts


def test_facts_languages_agree_with_cldr():
    """The languages in the file are what the documented rule reads from CLDR through babel."""
    from babel import Locale, languages
    from babel.core import get_global

    shares = get_global("territory_languages")
    for cc, entry in W.load_country_facts()["countries"].items():
        want = {}
        for lang in languages.get_official_languages(cc, de_facto=True):
            share = shares[cc].get(lang, {}).get("population_percent") or 0
            if share < 3 or lang == "gsw":
                continue
            try:
                Locale.parse(lang)
            except Exception:
                continue
            want[lang] = share
        if "nb" in want:
            want.pop("no", None)
        got = entry["languages"]["value"]
        assert set(got) == set(want), cc
        for lang, info in got.items():
            assert info["script"] == W._language_script(lang), (cc, lang)
            assert float(info["share"]) == pytest.approx(want[lang])


def test_facts_validation_names_the_bad_fact(tmp_path):
    bad = tmp_path / "facts.yaml"
    bad.write_text(
        "sources: {a: 'A source.'}\n"
        "countries:\n"
        "  'XX':\n"
        "    name: Nowhere\n"
        "    languages: {value: {en: {script: Latn, share: 90}}, source: a}\n"
        "    driving_side: {value: right, source: a}\n"
        "    koppen: {value: [Cfb], source: a}\n"
        "    centre_line: {value: [purple], source: a}\n"
    )
    with pytest.raises(ValueError, match="XX.centre_line"):
        W.load_country_facts(bad)
    bad.write_text(bad.read_text().replace("[purple], source: a", "[white], source: nowhere"))
    with pytest.raises(ValueError, match="unknown source 'nowhere'"):
        W.load_country_facts(bad)


def test_every_language_has_a_font_and_words_in_its_script():
    for cc, entry in W.load_country_facts()["countries"].items():
        for lang, info in entry["languages"]["value"].items():
            path, _ = W.font_file(info["script"])
            assert os.path.exists(path)
            words = W.local_words(lang, cc)
            assert len(words["days"]) == 7 and len(words["months"]) == 12, (cc, lang)
            assert all(W.in_script(w, info["script"]) for w in words["days"] + words["months"])


def test_text_runs_fall_back_for_missing_glyphs_and_keep_rtl_order():
    # the Hebrew font has no ASCII digits: they fall back to Noto Sans, and the right-to-left line
    # is laid out right to left: the number ends up at the right, the space between the two
    runs = W._text_runs("12 קמ", "Hebr")
    assert runs == [("קמ", "Hebr"), (" 12", "Latn")]
    assert W._text_runs("12 კმ", "Geor") == [("12 ", "Latn"), ("კმ", "Geor")]
    assert W._text_runs("Москва", "Cyrl") == [("Москва", "Cyrl")]


def test_ade_index_by_name():
    assert W.ade_classes()[W.ade_index("road")].startswith("road")
    assert W.ade_index("sidewalk") == W.ade_index("pavement")
    assert W.ade_index("signboard") == W.ade_index("sign")
    with pytest.raises(ValueError, match="unknown ADE20K class"):
        W.ade_index("spaceship")


# ---------------------------------------------------------------------------------------------
# Places


def test_sample_places_shape_continents_and_determinism(places):
    assert len(places) == 16 and places["country"].nunique() == 8
    assert (places.groupby("country").size() == 2).all()
    assert set(places["continent"]) >= {"AF", "AS", "EU", "NA", "SA", "OC"}
    assert (places["population"] >= 15000).all()
    facts = W.load_country_facts()["countries"]
    assert set(places["country"]) <= set(facts)
    assert W.sample_places(8, 2, SEED).equals(places)
    assert not W.sample_places(8, 2, SEED + 1)[["country", "city"]].equals(places[["country", "city"]])


def test_sample_places_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_countries"):
        W.sample_places(500, 2, 0)
    with pytest.raises(ValueError, match="cities_per_country"):
        W.sample_places(4, 0, 0)


def test_labels_agree_with_country_of(places, specs):
    country_of = _geo_country_of()
    assert list(country_of(places["lat"].to_numpy(), places["lon"].to_numpy())) == list(places["country"])
    lat = np.array([s.lat for s in specs[:60]])
    lon = np.array([s.lon for s in specs[:60]])
    assert list(country_of(lat, lon)) == [s.country for s in specs[:60]]
    for s in specs[:60]:
        row = places[(places["country"] == s.country) & (places["city"] == s.city)].iloc[0]
        d = W._km({"latitude": s.lat, "longitude": s.lon}, {"latitude": row["lat"], "longitude": row["lon"]})
        assert d <= 5.01
    assert len({(s.lat, s.lon) for s in specs[:60]}) == 60  # jittered, not the city centre


# ---------------------------------------------------------------------------------------------
# Rendering and masks


def test_render_is_deterministic_and_seed_dependent(places):
    a = W.render_scene(W.world_spec(places, SEED, 7), SIZE)
    b = W.render_scene(W.world_spec(places, SEED, 7), SIZE)
    assert W.png_bytes(a[0]) == W.png_bytes(b[0]) and W.png_bytes(a[1]) == W.png_bytes(b[1])
    assert a[2] == b[2]
    c = W.render_scene(W.world_spec(places, SEED + 1, 7), SIZE)
    assert W.png_bytes(a[0]) != W.png_bytes(c[0])


def test_render_shapes_and_valid_class_indices(specs):
    used = set(W._cls().values())
    for s in specs[:24]:
        img, mask, meta = W.render_scene(s, SIZE)
        assert img.mode == "RGB" and img.size == (SIZE, SIZE)
        assert mask.dtype == np.uint8 and mask.shape == (SIZE, SIZE)
        assert set(np.unique(mask).tolist()) <= used
        assert int(mask.max()) < len(W.ade_classes())


def test_mask_matches_what_was_drawn(specs):
    C = W._cls()
    S = 224
    s = _first(
        specs,
        lambda s: s.layout == "street"
        and s.road.paved
        and s.fog is None
        and any(W.describe_scene(s)["legible_signs"])
        and any(x.mount == "front" for x in s.signs),
    )
    img, mask, meta = W.render_scene(s, S)
    view = W._View(s.camera, S)
    # a legible front sign: its box carries the signboard class (where nothing nearer hides it)
    i = next(i for i in meta["legible_signs"] if s.signs[i].mount == "front")
    x0, y0, x1, y1 = (int(round(v)) for v in view.sign_box(s.signs[i]))
    box = mask[max(y0, 0) : min(y1, S), max(x0, 0) : min(x1, S)]
    assert (box == C["signboard"]).mean() > 0.6
    # the sign's own pixels differ from the background around it (it was drawn there)
    assert np.asarray(img)[max(y0, 0) : min(y1, S), max(x0, 0) : min(x1, S)].std() > 5
    # the road in front of the camera: the bottom row around the centre line, where it projects
    z_bottom = view.f * view.hc / (S - 1 - view.v0)
    for x in (-0.5 * s.road.half_width, 0.0, 0.5 * s.road.half_width):
        u = int(view.u0 + view.f * (x - view.xc) / z_bottom)
        if 0 <= u < S:
            assert mask[S - 1, u] in (C["road"], C["car"])
    # and the sky at the top
    sky_rows = mask[: max(1, int(view.v0 * 0.3))]
    assert (sky_rows == C["sky"]).mean() > 0.2 or (sky_rows == C["building"]).mean() > 0.5


def test_mask_classes_by_layout(specs):
    C = W._cls()
    wall = _first(specs, lambda s: s.layout == "wall")
    _, mask, _ = W.render_scene(wall, SIZE)
    assert np.isin(mask, [C["wall"], C["fence"]]).mean() > 0.3
    natural = _first(specs, lambda s: s.layout == "open")
    _, mask, meta = W.render_scene(natural, SIZE)
    assert meta["building_fraction"] == 0.0 and C["road"] not in mask and C["sky"] in mask
    street = _first(specs, lambda s: s.layout == "street" and s.cars and s.fog is None)
    _, mask, _ = W.render_scene(street, SIZE)
    assert C["road"] in mask or C["dirt_track"] in mask
    assert C["car"] in mask


def test_thick_fog_shows_as_sky_in_the_mask(specs):
    C = W._cls()
    s = _first(specs, lambda s: s.layout == "street" and s.buildings)
    _, clear, _ = W.render_scene(dataclasses.replace(s, fog=None), SIZE)
    img, foggy, _ = W.render_scene(dataclasses.replace(s, fog=15.0), SIZE)
    assert (foggy == C["sky"]).mean() > (clear == C["sky"]).mean() + 0.1
    assert (foggy == C["road"]).any()  # the near road still shows
    # the pixels relabelled sky are haze-coloured in the image
    changed = (foggy == C["sky"]) & (clear != C["sky"])
    haze = np.abs(np.asarray(img, float)[changed] - np.array(s.fog_colour) * s.brightness).max(axis=1)
    assert np.median(haze) < 40


def test_building_fraction_spreads(specs):
    fr = np.array([W.render_scene(s, 64)[2]["building_fraction"] for s in specs[:80]])
    assert fr.min() == 0.0 and fr.max() > 0.6
    assert ((fr > 0.1) & (fr < 0.5)).sum() >= 5


def test_scene_types_and_clue_counts_vary(specs):
    metas = [W.describe_scene(s) for s in specs]
    assert {s.scene for s in specs} == set(W.SCENES)
    counts = [len(m["clues"]) for m in metas]
    assert min(counts) == 0 and max(counts) >= 4
    assert any(s.fog for s in specs)
    assert sum(any(c.startswith("script:") for c in m["clues"]) for m in metas) >= 20


# ---------------------------------------------------------------------------------------------
# Clues


def test_clues_use_the_documented_vocabulary(specs):
    vocab = set(W.clue_ids())
    for s in specs:
        for c in W.describe_scene(s)["clues"]:
            assert c.split(":")[0] in W.CLUE_TYPES and c in vocab, c
            assert W.clue_phrase(c)


def test_clues_follow_the_facts(specs):
    for s in specs:
        facts = W.country_facts(s.country)
        scripts = {i["script"] for i in facts["languages"].values()}
        for c in W.describe_scene(s)["clues"]:
            kind, _, v = c.partition(":")
            if kind == "script":
                assert v in scripts
            elif kind == "driving_side":
                assert v == facts["driving_side"]
            elif kind in ("centre_line", "edge_line"):
                assert v in facts[kind]
            elif kind == "direction_sign":
                assert v in facts["direction_signs"]
            elif kind == "vegetation":
                assert v in {W.koppen_vegetation(k) for k in facts["koppen"]}


def test_fog_and_small_signs_hide_script_clues(specs):
    s = _first(specs, lambda s: s.fog is None and any(c.startswith("script:") for c in W.describe_scene(s)["clues"]))
    assert not any(
        c.startswith(("script:", "language:")) for c in W.describe_scene(dataclasses.replace(s, fog=8.0))["clues"]
    )
    tiny = tuple(dataclasses.replace(x, em=x.em * 0.2) for x in s.signs)
    assert not any(
        c.startswith(("script:", "language:")) for c in W.describe_scene(dataclasses.replace(s, signs=tiny))["clues"]
    )
    far = tuple(dataclasses.replace(x, z=x.z * 6) for x in s.signs)
    assert not any(c.startswith("script:") for c in W.describe_scene(dataclasses.replace(s, signs=far))["clues"])
    # a big bush right in front of every sign hides them (a tall tree's crown passes over a sign
    # and its trunk hides a sliver: the sign still reads, and is labelled so)
    def in_front(kind, size):
        return s.trees + tuple(
            W.Tree(x.x if x.mount == "front" else x.x * 0.8, max(x.z - 1.0, 1.5), kind, size, size, (60, 100, 50))
            for x in s.signs
        )

    assert not any(c.startswith("script:") for c in W.describe_scene(dataclasses.replace(s, trees=in_front("shrub", 12.0)))["clues"])
    assert any(c.startswith("script:") for c in W.describe_scene(dataclasses.replace(s, trees=in_front("deciduous", 40.0)))["clues"])


def test_driving_side_needs_a_visible_car(specs):
    s = _first(specs, lambda s: any(c.startswith("driving_side:") for c in W.describe_scene(s)["clues"]))
    assert not any(c.startswith("driving_side:") for c in W.describe_scene(dataclasses.replace(s, cars=()))["clues"])


def test_reasoning_mentions_exactly_the_visible_clues(specs):
    texts = set()
    for s in specs:
        meta = W.describe_scene(s)
        assert W.clues_mentioned(meta["reasoning"]) == set(meta["clues"]), meta["reasoning"]
        texts.add(meta["reasoning"].split(".")[0])
    assert len(texts) >= 15  # varied wording


def test_reasoning_names_scene_elements(specs):
    s = _first(specs, lambda s: s.scene == "urban" and s.layout == "street")
    text = W.describe_scene(s)["reasoning"].lower()
    assert "street" in text or "road" in text
    assert "building" in text


def test_clues_mentioned_in_free_text():
    got = W.clues_mentioned("The signs are in Cyrillic and the words look Russian; cars keep to the right.")
    assert got == {"script:Cyrl", "language:ru", "driving_side:right"}
    assert W.clues_mentioned("Arabic script on a shop sign.") == {"script:Arab"}
    assert W.clues_mentioned("The text is Arabic.") == {"language:ar"}
    assert W.clues_mentioned("A yellow center line and palm trees; this is Thailand.") == {
        "centre_line:yellow",
        "vegetation:tropical",
    }
    assert W.clues_mentioned("Yellow number plates and a green direction sign") == {
        "plate:yellow",
        "direction_sign:green",
    }
    assert W.clues_mentioned("Nothing to see here.") == set()
    with pytest.raises(TypeError):
        W.clues_mentioned(None)


def test_metadata_without_rendering_matches_render(specs):
    for s in specs[:10]:
        meta = W.describe_scene(s)
        _, _, rmeta = W.render_scene(s, SIZE)
        assert {k: rmeta[k] for k in meta} == meta


def test_render_scene_rejects_bad_size(specs):
    with pytest.raises(ValueError, match="image_size"):
        W.render_scene(specs[0], 8)


# ---------------------------------------------------------------------------------------------
# Building the pool


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_build_world_writes_manifest_and_resumes(tmp_path):
    kw = dict(n_images=6, n_countries=8, cities_per_country=2, seed=SEED, image_size=64, workers=1, progress=False)
    df = W.build_world(tmp_path / "a", **kw)
    assert list(df.columns) == list(W.MANIFEST_COLUMNS) and len(df) == 6 and df.attrs["rendered"] == 6
    assert (df["source"] == "demo_world").all() and df["image_id"].is_unique
    for row in df.itertuples():
        img = Image.open(tmp_path / "a" / row.image_path)
        mask = np.asarray(Image.open(tmp_path / "a" / row.mask_path))
        assert img.size == (64, 64) and img.mode == "RGB" and mask.dtype == np.uint8
        assert row.building_fraction == pytest.approx((mask == W._cls()["building"]).mean())
        assert isinstance(row.clues, list) and row.reasoning
    # same seed, other folder: same bytes
    W.build_world(tmp_path / "b", **kw)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    # resume: nothing rendered again, same manifest, files untouched
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*.png")}
    again = W.build_world(tmp_path / "a", **kw)
    assert again.attrs["rendered"] == 0 and again.equals(df)
    assert mtimes == {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*.png")}
    # a missing or truncated file is rendered again, to the same bytes
    first = tmp_path / "a" / df["image_path"][0]
    good = first.read_bytes()
    first.write_bytes(good[: len(good) // 2])
    (tmp_path / "a" / df["mask_path"][1]).unlink()
    again = W.build_world(tmp_path / "a", **kw)
    assert again.attrs["rendered"] == 2 and first.read_bytes() == good
    assert not list((tmp_path / "a").rglob("*.tmp"))


def test_build_world_other_seed_differs(tmp_path):
    kw = dict(n_images=2, n_countries=8, cities_per_country=2, image_size=48, workers=1, progress=False)
    W.build_world(tmp_path / "a", seed=SEED, **kw)
    W.build_world(tmp_path / "b", seed=SEED + 1, **kw)
    assert _files(tmp_path / "a") != _files(tmp_path / "b")


@pytest.mark.slow
def test_parallel_build_equals_serial(tmp_path):
    kw = dict(n_images=8, n_countries=8, cities_per_country=2, seed=SEED, image_size=48, progress=False)
    serial = W.build_world(tmp_path / "s", workers=1, **kw)
    parallel = W.build_world(tmp_path / "p", workers=2, **kw)
    assert serial.equals(parallel)
    assert _files(tmp_path / "s") == _files(tmp_path / "p")


def test_build_world_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n_images"):
        W.build_world(tmp_path, n_images=0, progress=False)
    with pytest.raises(ValueError, match="image_size"):
        W.build_world(tmp_path, n_images=2, image_size=4, progress=False)


def test_changed_settings_start_the_pool_afresh(tmp_path):
    from geolib import world

    world.build_world(tmp_path, n_images=3, n_countries=3, cities_per_country=1, seed=0, image_size=64, workers=1, progress=False)
    again = world.build_world(tmp_path, n_images=3, n_countries=3, cities_per_country=1, seed=0, image_size=64, workers=1, progress=False)
    assert again.attrs["rendered"] == 0  # same settings: resumed, nothing redrawn
    other = world.build_world(tmp_path, n_images=3, n_countries=3, cities_per_country=1, seed=1, image_size=64, workers=1, progress=False)
    assert other.attrs["rendered"] == 3  # another seed: the old images are not reused


def test_sign_words_do_not_depend_on_languages_read_before():
    # babel's process-wide cache lets one locale's alias resolution leak into another's data:
    # after Wolof's stand-alone months, Spanish ones came back in Wolof
    from babel import Locale

    W.local_words.cache_clear()
    Locale.parse("wo").months["stand-alone"]["wide"].get(2)
    assert W.local_words("es", "AR")["months"][:2] == ("enero", "febrero")
    assert W.local_words("wo", "SN")["months"][1] == "Fewriyee"
    assert W.local_words("es", "ES")["months"][1] == "febrero"
    W.local_words.cache_clear()


def test_a_scene_does_not_depend_on_the_scenes_built_before_it():
    # the demo's world (40 countries x 3 cities, seed 0): scene 680 (Argentina) built after scene
    # 672 (Senegal, Wolof signs) in the same process once had Wolof month names on its Spanish
    # sign; babel's cache is per process, so each order runs in a fresh interpreter
    import subprocess
    import sys

    code = ("import json, sys; from geolib import world as W; p = W.sample_places(40, 3, 0); "
            "out = [W.describe_scene(W.world_spec(p, 0, int(i))) for i in sys.argv[1:]]; print(json.dumps(out[-1], default=str))")
    alone, after = (subprocess.run([sys.executable, "-c", code, *order], capture_output=True, text=True, timeout=300)
                    for order in (["680"], ["672", "680"]))
    assert alone.returncode == 0 and after.returncode == 0, alone.stderr[-1000:] + after.stderr[-1000:]
    assert alone.stdout == after.stdout
