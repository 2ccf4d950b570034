"""Shared test settings: offline, headless, artifacts in a temporary runs folder."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture
def runs_tmp(tmp_path, monkeypatch):
    """Point ``runs/`` at a temporary folder for the test."""
    monkeypatch.setenv("GEOLIB_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"
