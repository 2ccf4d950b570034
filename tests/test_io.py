"""Atomic writes, fingerprints and figure saving."""

import numpy as np
import pandas as pd
import pytest

from geolib import io, plots


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "a.json"
    io.write_json(target, {"x": np.float32(1.5), "arr": np.arange(3)})
    assert io.read_json(target) == {"x": 1.5, "arr": [0, 1, 2]}
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]  # no temporary files left


def test_interrupted_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "t.parquet"
    io.write_parquet(target, pd.DataFrame({"a": [1]}))
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert pd.read_parquet(target)["a"].tolist() == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


def test_fingerprint_tracks_data_and_settings():
    a = np.arange(6.0).reshape(2, 3)
    base = io.fingerprint(a, settings={"lr": 0.1})
    assert base == io.fingerprint(a.copy(), settings={"lr": 0.1})
    assert base != io.fingerprint(a + 1, settings={"lr": 0.1})
    assert base != io.fingerprint(a, settings={"lr": 0.2})
    assert base != io.fingerprint(a.reshape(3, 2), settings={"lr": 0.1})


def test_save_figure_names_and_reproducible_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOLIB_RUNS", str(tmp_path))
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    first = plots.save_figure(fig, "ci", "09_line").read_bytes()
    second = plots.save_figure(fig, "ci", "09_line").read_bytes()
    assert first == second  # no timestamps in the PNG
    assert (tmp_path / "ci" / "figures" / "09_line.png").exists()
    with pytest.raises(ValueError, match="NN_slug"):
        plots.save_figure(fig, "ci", "line")
