"""Every path of the study, rooted at the repository (used by all notebooks and modules).

Environment overrides:
    GEOLIB_RUNS: where ``runs/<profile>/`` lives (default ``<repo>/runs``).
    GEOLIB_DATA: where real data sets for the paper profile live (default ``<repo>/data``).
    HF_HOME: the Hugging Face cache (left to ``huggingface_hub``; only the paper profile uses it).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
PACKAGE_DATA = PACKAGE_DIR / "data"
NOTEBOOKS = REPO_ROOT / "notebooks"
PARAMS = REPO_ROOT / "params"
FIGURES = REPO_ROOT / "figures"
#: committed copies of full runs' headline numbers (``results/demo/summary.json``)
COMMITTED_RESULTS = REPO_ROOT / "results"
#: published reference data shipped with the package (e.g. GeoReasoner's class weights)
REFERENCE = PACKAGE_DATA / "reference"

#: The profile whose figures are committed to ``figures/``; other profiles write under runs/.
DEMO_PROFILE = "demo"


def runs_root() -> Path:
    """Root of all run artifacts (``$GEOLIB_RUNS`` or ``<repo>/runs``)."""
    return Path(os.environ.get("GEOLIB_RUNS", REPO_ROOT / "runs"))


def run_dir(profile: str) -> Path:
    """``runs/<profile>/``: manifests, checkpoints, results and executed notebooks of a profile."""
    if not profile or "/" in profile or profile.startswith("."):
        raise ValueError(f"invalid profile name {profile!r}")
    return runs_root() / profile


def data_dir(profile: str) -> Path:
    """``runs/<profile>/data/``: the pool manifest, rendered images, masks, curated splits."""
    return run_dir(profile) / "data"


def results_dir(profile: str) -> Path:
    """``runs/<profile>/results/``: one ``NN_*.json`` per notebook result."""
    return run_dir(profile) / "results"


def checkpoints_dir(profile: str) -> Path:
    """``runs/<profile>/checkpoints/``: model checkpoints and adapters."""
    return run_dir(profile) / "checkpoints"


def cache_dir(profile: str) -> Path:
    """``runs/<profile>/cache/``: derived data that can be rebuilt (e.g. image-tower features)."""
    return run_dir(profile) / "cache"


def figures_dir(profile: str) -> Path:
    """Where a profile's figures go: ``figures/`` for demo (committed), else ``runs/<profile>/figures``."""
    return FIGURES if profile == DEMO_PROFILE else run_dir(profile) / "figures"


def real_data_root() -> Path:
    """Root of downloaded real data sets (``$GEOLIB_DATA`` or ``<repo>/data``)."""
    return Path(os.environ.get("GEOLIB_DATA", REPO_ROOT / "data"))


def reference_file(name: str) -> Path:
    """A file of published reference data shipped in ``geolib/data/reference``."""
    path = REFERENCE / name
    if not path.exists():
        known = sorted(p.name for p in REFERENCE.iterdir()) if REFERENCE.is_dir() else []
        raise FileNotFoundError(f"reference file {name!r} not found in {REFERENCE} (there: {known})")
    return path
