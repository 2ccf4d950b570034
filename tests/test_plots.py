"""Figures: every plot_* function is rendered by a notebook (nbval smoke run), and the ones a reader
misread before are checked here on tiny data."""

import re

import matplotlib
import numpy as np
import pandas as pd
import pytest

from geolib import borders, ocr, paths, plots

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
