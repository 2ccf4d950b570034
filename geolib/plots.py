"""Figures of the study: one ``plot_<slug>()`` per figure, each taking data and returning a Figure.

Used by every notebook. A notebook cell calls ``plot_<slug>(...)`` and saves the result with
:func:`save_figure` as ``NN_slug.png`` (NN = the notebook that makes it): the demo profile's
figures go to ``figures/`` (committed), other profiles' to ``runs/<profile>/figures/``.
Seaborn for statistics, geopandas for maps, one palette, labelled axes with units.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

from geolib import io, paths  # noqa: E402

#: One qualitative palette for the whole study (colour-blind safe: seaborn "colorblind").
PALETTE = ["#0173B2", "#DE8F05", "#029E73", "#D55E00", "#CC78BC", "#CA9161", "#FBAFE4", "#949494", "#ECE133", "#56B4E9"]
#: Fixed roles so the same thing has the same colour in every figure.
COLORS = {"ours": PALETTE[0], "paper": PALETTE[1], "kept": PALETTE[2], "dropped": PALETTE[7], "baseline": PALETTE[5], "error": PALETTE[3]}

_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")


def style() -> None:
    """Apply the study's plotting style (called by every plot function; cheap and idempotent)."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, font="DejaVu Sans")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "axes.titleweight": "bold", "figure.autolayout": False})


def save_figure(fig, profile: str, name: str) -> Path:
    """Save ``fig`` as ``<figures_dir(profile)>/<name>.png`` atomically, with reproducible bytes.

    Args:
        fig: a matplotlib Figure.
        profile: the run's profile; ``demo`` writes to the committed ``figures/`` folder.
        name: ``NN_slug`` where NN is the number of the notebook that makes the figure.

    Returns:
        The path written.
    """
    if not _NAME.match(name):
        raise ValueError(f"figure name {name!r} must look like 'NN_slug' (two digits, underscore, lowercase slug)")
    target = paths.figures_dir(profile) / f"{name}.png"
    with io.atomic_path(target) as tmp:
        # no timestamp or software version in the PNG: the same figure gives the same bytes
        fig.savefig(tmp, format="png", bbox_inches="tight", metadata={"Software": None})
    return target
