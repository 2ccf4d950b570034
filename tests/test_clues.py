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
        "from geolib import facts, clue_oracle, gre, evaluation\n"
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
