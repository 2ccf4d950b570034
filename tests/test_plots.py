"""Figures: every plot_* function is rendered by a notebook (nbval smoke run) and drawn here on tiny
input and saved (smoke tests); the ones a reader misread before are checked here on tiny data."""

import re

import matplotlib
import numpy as np
import pandas as pd
import pytest

from PIL import Image

from geolib import borders, clue_oracle, ocr, paths, plots

matplotlib.use("Agg")


def test_every_plot_function_is_drawn_by_a_notebook():
    """The ci profile's notebook run under nbval is the smoke test of every figure."""
    names = {n for n in dir(plots) if n.startswith("plot_") and callable(getattr(plots, n))}
    sources = "\n".join(p.read_text() for p in paths.NOTEBOOKS.glob("[0-9][0-9]_*.py"))
    called = set(re.findall(r"plots\.(plot_\w+)\(", sources))
    assert names - called == set(), f"plot functions no notebook draws (add a cell or remove them): {sorted(names - called)}"


@pytest.fixture(scope="module")
def countries():
    return borders.country_polygons()


def test_curation_map_shows_the_kept_share_of_every_city(countries):
    pool = pd.DataFrame({"city": ["Paris"] * 4 + ["Lyon"] * 2, "country": ["FR"] * 6,
                         "lat": [48.85] * 4 + [45.76] * 2, "lon": [2.35] * 4 + [4.83] * 2})
    fig = plots.plot_curation_map(pool, [True, True, False, False, True, True], countries)
    discs = [c for c in fig.axes[0].collections if c.get_array() is not None and len(c.get_offsets()) == 2]
    assert discs, "one disc per city"
    assert sorted(np.asarray(discs[0].get_array()).round(2)) == [0.5, 1.0]
    assert "4 of 6" in fig.axes[0].get_title()
    matplotlib.pyplot.close(fig)


def test_a_zero_f1_reads_as_zero():
    table = pd.DataFrame({"model": ["base", "full"], "metric": ["country_f1"] * 2, "value": [0.0, 0.4],
                          "ci_low": [0.0, 0.3], "ci_high": [0.0, 0.5]})
    fig = plots.plot_country_f1(table)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "0.000" in texts and "0.400" in texts
    matplotlib.pyplot.close(fig)


def test_a_flat_zero_curve_is_labelled():
    curves = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3, "km": [1, 25, 200] * 2, "share": [0, 0, 0, 0.1, 0.2, 0.3]})
    fig = plots.plot_accuracy_within_km(curves)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["a (0 at every d)", "b"]
    matplotlib.pyplot.close(fig)


def test_error_map_names_countries_without_coordinates(countries):
    per_country = pd.DataFrame({"country": ["FR", "DE"], "median_km": [120.0, np.nan], "n": [3, 2]})
    fig = plots.plot_error_map(per_country, countries, "model x")
    assert "no answer with coordinates" in fig.axes[0].get_title()
    matplotlib.pyplot.close(fig)


def test_read_signs_shows_boxes_candidates_reasons_and_a_map(countries):
    from PIL import Image

    from geolib import sign_reader

    box = ocr.TextBox("FARMACIA", 0.98, [[10, 10], [90, 10], [90, 30], [10, 30]], "Latn")
    read = sign_reader.Reading("shop.jpg", (120, 80), [box], [sign_reader.Candidate("ES", 0.7, "Madrid", ["why"]),
                                                            sign_reader.Candidate("MX", 0.3)])
    read.answer = sign_reader.answer_text(read.candidates, read.boxes)
    empty = sign_reader.Reading("sky.jpg", (120, 80))
    empty.answer = sign_reader.answer_text([], [])
    broken = sign_reader.Reading("notes.jpg", error="notes.jpg: not an image Pillow can read")
    broken.answer = sign_reader.answer_text([], [], broken.error)
    img = Image.new("RGB", (120, 80), "white")
    fig = plots.plot_read_signs([read, empty, broken], [img, img, None], countries, ["Spain, Madrid", None, None])
    assert len(fig.axes) >= 9
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "FARMACIA" in texts and "no text found" in texts and "not an image" in texts
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["Mexico", "Spain"]
    matplotlib.pyplot.close(fig)


def test_grpo_curves_draw_one_row_of_panels_per_seed():
    steps = np.arange(1, 6)
    one = pd.DataFrame({"step": steps, "reward": 0.5, "format_reward": 0.3, "distance_reward": 0.2, "kl": 0.01,
                        "theta_km": [5000.0, 5000.0, 2500.0, 2500.0, 2500.0], "median_km": 3000.0})
    fig = plots.plot_grpo_curves(pd.concat([one.assign(seed=0), one.assign(seed=1)]))
    assert len(fig.axes) == 6 and fig.axes[3].get_title().startswith("seed 1")
    matplotlib.pyplot.close(fig)
    fig = plots.plot_grpo_curves(one)
    assert len(fig.axes) == 3 and not fig.axes[0].get_title().startswith("seed")
    matplotlib.pyplot.close(fig)


# ---------------------------------------------------------------------------------------------
# Smoke tests: every public plot_* function of geolib draws tiny input and saves a figure
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory):
    """Two small photos and their class masks on disk, and a tiny pool that points to them."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("tiny_images")
    rows = []
    for i, (city, country, continent, scene) in enumerate([("Paris", "FR", "EU", "street"), ("Lima", "PE", "SA", "road")]):
        image, mask = folder / f"{i}.png", folder / f"{i}_mask.png"
        Image.new("RGB", (32, 24), (40 * i + 60, 120, 200)).save(image)
        Image.fromarray(np.full((24, 32), 1 + i, np.uint8)).save(mask)
        rows.append({"image_path": str(image), "mask_path": str(mask), "city": city, "country": country,
                     "continent": continent, "scene": scene, "clues": ["bollard"], "building_fraction": 0.2 + 0.3 * i,
                     "lat": 48.85 if i == 0 else -12.05, "lon": 2.35 if i == 0 else -77.04})
    return pd.DataFrame(rows)


def _reading():
    from geolib import sign_reader

    box = ocr.TextBox("FARMACIA", 0.98, [[2, 2], [20, 2], [20, 8], [2, 8]], "Latn")
    read = sign_reader.Reading("shop.jpg", (32, 24), [box], [sign_reader.Candidate("ES", 1.0, "Madrid", ["why"])])
    read.answer = sign_reader.answer_text(read.candidates, read.boxes)
    return read


def _within(thresholds=(1, 25)):
    row = {"group": "all", "model": "a", "n": 4}
    for t in thresholds:
        row |= {f"within_{t:g}km": 0.25, f"within_{t:g}km_low": 0.0, f"within_{t:g}km_high": 0.5}
    return pd.DataFrame([row])


_steps = pd.DataFrame({"step": [1, 2, 3], "loss": [1.0, 0.8, 0.7], "arm": ["a", "a", "a"]})
_f1 = pd.DataFrame({"model": ["a"], "metric": ["country_f1"], "value": [0.4], "ci_low": [0.3], "ci_high": [0.5]})
_bins = pd.DataFrame({"model": ["a", "a"], "bin": [1, 2], "accuracy": [0.2, 0.4], "ci_low": [0.1, 0.3], "ci_high": [0.3, 0.5],
                      "answered": [0.5, 0.6], "score_mean": [0.1, 0.2]})
_curve = pd.DataFrame({"share": [0, 100], "country_accuracy": [0.2, 0.3], "ci_low": [0.1, 0.2], "ci_high": [0.3, 0.4]})
_grpo = pd.DataFrame({"step": [1, 2], "reward": 0.5, "format_reward": 0.3, "distance_reward": 0.2, "kl": 0.01,
                      "theta_km": [5000.0, 2500.0], "median_km": 3000.0})
_binned = pd.DataFrame({"bin_lo": [0.0, 0.5], "bin_hi": [0.5, 1.0], "bin_mid": [0.25, 0.75], "mean": [0.3, 0.5],
                        "ci_low": [0.2, 0.4], "ci_high": [0.4, 0.6], "count": [3, 4]})

#: ``module.function`` → how to draw it on tiny input (pool: :func:`tiny_images`, countries: polygons).
SMOKE = {
    "plots.plot_world_map": lambda pool, countries: plots.plot_world_map(pool, countries),
    "plots.plot_examples": lambda pool, countries: plots.plot_examples(pool, n=2, columns=2),
    "plots.plot_pool_counts": lambda pool, countries: plots.plot_pool_counts(pool),
    "plots.plot_building_proportion": lambda pool, countries: plots.plot_building_proportion(pool),
    "plots.plot_class_weights": lambda pool, countries: plots.plot_class_weights(
        pd.DataFrame({"class": ["wall", "building, edifice"], "ours": [0.2, 0.9], "paper": [0.1, 1.0]}), spearman=0.5),
    "plots.plot_locatability_examples": lambda pool, countries: plots.plot_locatability_examples(pool, np.array([0.2, 0.8]), n=1),
    "plots.plot_building_vs_locatability": lambda pool, countries: plots.plot_building_vs_locatability(
        {"building": _binned}, x=[0.1, 0.6], y=[0.3, 0.5]),
    "plots.plot_clue_roc": lambda pool, countries: plots.plot_clue_roc(
        {"fpr": [0, 0.5, 1], "tpr": [0, 0.8, 1], "auc": 0.7, "auc_ci": (0.6, 0.8), "n_with": 3, "n_without": 2}),
    "plots.plot_training_curve": lambda pool, countries: plots.plot_training_curve(_steps, "step", ["loss"], "training"),
    "plots.plot_stage_losses": lambda pool, countries: plots.plot_stage_losses(_steps, "stage"),
    "plots.plot_predicted_vs_target": lambda pool, countries: plots.plot_predicted_vs_target(
        [0.1, 0.5, 0.9], [0.2, 0.4, 0.8], {"spearman": 0.9, "mae": 0.1, "n": 3}),
    "plots.plot_threshold_sweep": lambda pool, countries: plots.plot_threshold_sweep(
        pd.DataFrame({"threshold": [0.1, 0.2], "kept_share": [0.9, 0.5], "countries_covered": [2, 1],
                      "mean_score_kept": [0.4, 0.6], "countries_total": [2, 2]}), 0.15, 0.4),
    "plots.plot_curation_map": lambda pool, countries: plots.plot_curation_map(pool, [True, False], countries),
    "plots.plot_distance_reward": lambda pool, countries: plots.plot_distance_reward([100.0, 1000.0]),
    "plots.plot_grpo_curves": lambda pool, countries: plots.plot_grpo_curves(_grpo),
    "plots.plot_gre_accuracy": lambda pool, countries: plots.plot_gre_accuracy(_within(), thresholds=(1, 25)),
    "plots.plot_country_f1": lambda pool, countries: plots.plot_country_f1(_f1, {"paper": 0.5}),
    "plots.plot_accuracy_within_km": lambda pool, countries: plots.plot_accuracy_within_km(
        pd.DataFrame({"model": ["a", "a"], "km": [1, 25], "share": [0.1, 0.3]})),
    "plots.plot_error_map": lambda pool, countries: plots.plot_error_map(
        pd.DataFrame({"country": ["FR"], "median_km": [120.0], "n": [3]}), countries, "model a"),
    "plots.plot_locatability_bins": lambda pool, countries: plots.plot_locatability_bins(_bins),
    "plots.plot_answer_examples": lambda pool, countries: plots.plot_answer_examples(
        pool.assign(truth="France, Paris", answer="France, Paris", reasons="a bollard", correct=[True, False]), columns=2),
    "plots.plot_read_signs": lambda pool, countries: plots.plot_read_signs(
        [_reading()], [Image.open(pool.loc[0, "image_path"]).convert("RGB")], countries, ["Spain, Madrid"]),
    "plots.plot_data_quality": lambda pool, countries: plots.plot_data_quality(_curve, 0.05, {"uncurated": 0.63, "curated": 0.72}, 10),
    "clue_oracle.plot_locatability": lambda pool, countries: clue_oracle.plot_locatability(
        pd.DataFrame({"country_acc": [0.2, 0.5], "cluster_acc": [0.4, 0.7], "images": [3, 2]}, index=[0, 1]), 0.3, 0.05,
        pd.Series([0.1, 0.4], index=[0, 1])),
    "clue_oracle.plot_atlas": lambda pool, countries: clue_oracle.plot_atlas(
        [("FR", [np.zeros((8, 8, 3), np.uint8), None])], ["bollard", "plate"]),
}


def test_every_public_plot_function_of_geolib_has_a_smoke_test():
    found = set()
    for path in paths.REPO_ROOT.joinpath("geolib").rglob("*.py"):
        module = ".".join(path.relative_to(paths.REPO_ROOT / "geolib").with_suffix("").parts)
        module = module.removesuffix(".__init__").split(".")[0] if module.startswith("plots") else module
        found |= {f"{module}.{name}" for name in re.findall(r"^def (plot_\w+)\(", path.read_text(), re.M)}
    assert found == set(SMOKE), f"plot functions without a smoke test: {sorted(found - set(SMOKE))}; stale: {sorted(set(SMOKE) - found)}"


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_plot_function_draws_tiny_input_and_saves(name, tiny_images, countries, tmp_path):
    fig = SMOKE[name](tiny_images, countries)
    out = tmp_path / f"{name}.png"
    fig.savefig(out)
    assert out.stat().st_size > 1000 and fig.axes
    matplotlib.pyplot.close(fig)
