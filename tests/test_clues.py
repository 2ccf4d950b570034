"""The demo world's conventions: sourced facts, sizes a 224-px tower resolves, visibility, the oracle."""

import subprocess
import sys

import numpy as np
import pytest

from geolib import clue_oracle, facts, world


def test_every_new_fact_has_a_source_and_game_guides_are_marked():
    data = facts.load_country_facts()
    for cc, entry in data["countries"].items():
        for fact in ("warning_sign", "speed_sign", "bollard"):
            if fact in entry:
                assert entry[fact]["source"] in data["sources"], (cc, fact)
        if "bollard" in entry:  # sourced from game guides only: the citation must say so
            assert "GAME GUIDE" in data["sources"][entry["bollard"]["source"]]


def test_demo_countries_have_at_least_five_visual_facts():
    places = world.sample_places(40, 3, 0)
    for cc in places["country"].unique():
        f = facts.country_facts(cc)
        visual = [k for k in f if k != "koppen"] + ["vegetation"]
        assert len(visual) >= 5, (cc, visual)


def test_vegetation_follows_the_city_not_the_country():
    assert facts.city_koppen("BR", "Salvador") == "Af"
    assert facts.koppen_vegetation(facts.city_koppen("BR", "Salvador")) == "tropical"
    assert facts.koppen_vegetation(facts.city_koppen("BR", "São Paulo")) == "temperate"
    assert facts.koppen_vegetation(facts.city_koppen("US", "Phoenix")) == "arid"
    assert facts.city_koppen("GB", "London") == facts.country_facts("GB")["koppen"][0]  # not listed: the country's
    places = world.sample_places(40, 3, 0)
    row = places[places["city"] == "Salvador"].iloc[0]
    spec = world.scene_spec(row, np.random.default_rng(1))
    assert spec.vegetation == "tropical"


def test_model_code_imports_no_renderer():
    code = (
        "import sys\n"
        "from geolib import facts, clue_oracle, chains, grpo, gre, evaluation, gre_scores\n"
        "facts.clues_mentioned('yellow diamond warning signs'); clue_oracle.country_clue_values('DE')\n"
        "loaded = sorted(m for m in sys.modules if m == 'geolib.world' or m.startswith('geolib.world.'))\n"
        "assert not loaded, f'the renderer was imported: {loaded}'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _spec_with(marker, fog=None):
    cam = world.Camera(horizon=0.5, vp_x=0.5, height=1.6, x=0.0)
    spec = world._tile_spec("DE", cam, markers=(marker,))
    return world._replace(spec, fog=fog) if fog else spec


def test_a_sign_in_plain_view_is_labelled_visible_and_measures_at_least_24_px():
    m = world.Marker("warning", "red_triangle", 0.0, 6.0, 1.1, 1.2)
    spec = _spec_with(m)
    assert "warning_sign:red_triangle" in world.describe_scene(spec)["clues"]
    _, mask, _ = world.render_scene(spec, 224)
    ys, xs = np.nonzero(mask == world.ade_index("signboard"))
    assert xs.max() - xs.min() + 1 >= 24 and ys.max() - ys.min() + 1 >= 20


def test_a_far_sign_or_one_in_thick_fog_is_not_labelled():
    far = _spec_with(world.Marker("warning", "red_triangle", 0.0, 60.0, 1.1, 1.2))
    assert not world.describe_scene(far)["clues"]
    fog = _spec_with(world.Marker("warning", "red_triangle", 0.0, 8.0, 1.1, 1.2), fog=10.0)
    assert "warning_sign:red_triangle" not in world.describe_scene(fog)["clues"]


def test_clue_rich_street_scenes_show_several_conventions_at_resolvable_sizes():
    places = world.sample_places(40, 3, 0)
    counts, sizes = [], []
    for i in range(200):
        spec = world.world_spec(places, 0, i)
        d = world.describe_scene(spec)
        counts.append(len(d["clues"]))
        view = world._View(spec.camera, 224)
        for m in spec.markers:
            if m.kind == "warning" and f"warning_sign:{m.style}" in d["clues"]:
                sizes.append(view.px(m.size, m.z))
    counts = np.array(counts)
    assert (counts == 0).mean() > 0.02 and (counts <= 1).mean() > 0.05  # clue-poor images stay in the pool
    assert (counts >= 4).mean() > 0.25 and counts.max() >= 6
    assert np.median(sizes) >= 24


def test_marker_clues_are_named_and_found_in_text():
    for clue, phrase in facts.MARKER_PHRASES.items():
        assert facts.clue_phrase(clue) == phrase
        assert facts.clues_mentioned(f"I can see {phrase}.") == {clue}, clue


def test_oracle_counts_ties_and_reads_the_facts():
    countries = ["US", "CA", "DE", "JP"]
    scores = clue_oracle.oracle_scores(
        [["warning_sign:yellow_diamond", "speed_sign:rectangle"], ["script:Jpan"], []], ["US", "JP", "DE"], countries
    )
    assert scores["country_acc"].tolist() == pytest.approx([0.5, 1.0, 0.25])
    assert scores["cluster_acc"].iloc[0] == 1.0  # US/CA is one confusable cluster
    assert clue_oracle.summarize(scores)["country_acc"] == pytest.approx(1.75 / 3)


# ---------------------------------------------------------------------------------------------
# Visibility and legibility measured on the rendered pixels: cases a person would judge


def _street(*, fog=None, **objects):
    """A plain German roadside (grass, sky, camera at eye height) with the given objects."""
    spec = world._tile_spec("DE", world.Camera(horizon=0.5, vp_x=0.5, height=1.6, x=0.0), **objects)
    return world._replace(spec, fog=fog) if fog else spec


def _name_sign(z=6.0, x=0.0, em=0.5):
    """A white sign reading 'Deutschland' in black, 1.2 m above the ground, facing the camera."""
    from geolib.world.scene import _sign_dims

    line = world.SignLine("Deutschland", "de", "Latn", round(world.text_aspect("Deutschland", "Latn"), 4))
    w, h = _sign_dims((line,), em)
    return world.Sign("shop", "front", x, z, 1.2, w, h, em, (250, 250, 245), (20, 20, 20), (line,), posts=1)


def _reads(spec) -> set[str]:
    return {c for c in world.describe_scene(spec)["clues"] if c.startswith(("script:", "language:"))}


def test_a_country_name_in_plain_view_is_read_and_its_pixels_are_the_signs():
    from geolib.world import render

    spec = _street(signs=(_name_sign(),))
    d = world.describe_scene(spec)
    assert {"script:Latn", "language:de"} <= set(d["clues"])
    assert d["legible_signs"] == [0] and d["sign_text"] == "Deutschland"
    # the id map agrees with the drawing: every pixel of the sign (face and glyphs) is the mask's signboard
    seen = render._observations(spec)
    face, text = seen[("sign", 0)], seen[("text", 0)]
    _, mask, _ = world.render_scene(spec, 224)
    assert face.visible == face.drawn and text.visible == text.drawn > 100
    assert face.visible + text.visible == int((mask == world.ade_index("signboard")).sum())
    assert 13 <= text.em <= 16 and text.contrast > 150  # black glyphs on white, 15 px high


def test_a_sign_hidden_behind_a_truck_or_a_building_is_not_read():
    sign = _name_sign()
    truck = world.Car(0.0, 4.0, "away", (200, 200, 205), None, width=2.5, height=3.6)
    assert not _reads(_street(signs=(sign,), cars=(truck,)))
    aside = world.Car(-0.4, 4.0, "away", (200, 200, 205), None, width=2.8, height=3.6)  # only the final "d" peeks out
    assert not _reads(_street(signs=(sign,), cars=(aside,)))
    beside = world.Car(5.0, 4.0, "away", (200, 200, 205), None, width=2.5, height=3.6)  # not in the line of sight
    assert {"script:Latn", "language:de"} <= _reads(_street(signs=(sign,), cars=(beside,)))
    house = world.Building(0, -8.0, 8.0, 4.5, 12.0, 9.0, (200, 190, 170), (90, 100, 120))
    assert not _reads(_street(signs=(sign,), buildings=(house,)))
    behind = world.Building(0, -8.0, 8.0, 9.0, 16.0, 9.0, (200, 190, 170), (90, 100, 120))  # a wall behind it
    assert {"script:Latn", "language:de"} <= _reads(_street(signs=(sign,), buildings=(behind,)))


def test_fog_hides_a_sign_through_the_contrast_it_leaves():
    from geolib.world import render

    sign = _name_sign()
    assert not _reads(_street(signs=(sign,), fog=5.0))  # 6 m into 5 m visibility: 3 % of the contrast left
    assert {"script:Latn", "language:de"} <= _reads(_street(signs=(sign,), fog=60.0))  # light haze
    clear, thick = (render._observations(_street(signs=(sign,), fog=f))[("text", 0)] for f in (None, 5.0))
    assert thick.visible == clear.visible  # nothing covers it: the fog took the contrast
    assert thick.contrast < 0.1 * clear.contrast


def test_a_small_far_sign_is_seen_but_not_read():
    from geolib.world import render

    assert "script:Latn" in _reads(_street(signs=(_name_sign(z=8.0),)))  # em 11 px: the script, not the words
    assert "language:de" not in _reads(_street(signs=(_name_sign(z=8.0),)))
    far = _street(signs=(_name_sign(z=14.0),))  # em 6 px
    assert not _reads(far)
    seen = render._observations(far)[("sign", 0)]
    assert seen.visible == seen.drawn > 200  # the sign itself shows


def test_a_sign_half_out_of_the_frame_is_not_read():
    # at 6 m the frame is 7.5 m wide (±3.75 m); the sign is 3.2 m wide
    assert {"script:Latn", "language:de"} <= _reads(_street(signs=(_name_sign(x=2.0),)))
    assert not _reads(_street(signs=(_name_sign(x=3.75),)))


def test_a_bollard_or_warning_sign_in_plain_view_is_labelled_and_not_when_hidden_or_fogged():
    bollard = world.Marker("bollard", "white_red_band", 0.4, 4.0, 1.0)
    assert "bollard:white_red_band" in world.describe_scene(_street(markers=(bollard,)))["clues"]
    car = world.Car(0.4, 3.0, "away", (30, 50, 120), None)
    assert "bollard:white_red_band" not in world.describe_scene(_street(markers=(bollard,), cars=(car,)))["clues"]
    assert "bollard:white_red_band" not in world.describe_scene(_street(markers=(bollard,), fog=3.0))["clues"]
    warning = world.Marker("warning", "yellow_diamond", 1.0, 7.0, 1.0, 1.2)
    assert "warning_sign:yellow_diamond" in world.describe_scene(_street(markers=(warning,)))["clues"]
    assert "warning_sign:yellow_diamond" not in world.describe_scene(_street(markers=(warning,), fog=4.0))["clues"]


def test_labels_are_the_same_from_a_render_and_without_one():
    from geolib.world import render

    spec = _street(signs=(_name_sign(x=-1.0),), markers=(world.Marker("speed", "red_ring", 2.0, 8.0, 0.9, 1.2),))
    render._observations.cache_clear()
    alone = world.describe_scene(spec)
    render._observations.cache_clear()
    _, _, meta = world.render_scene(spec, 224)
    assert {k: meta[k] for k in alone} == alone
    assert {"script:Latn", "language:de", "speed_sign:red_ring"} <= set(alone["clues"])
