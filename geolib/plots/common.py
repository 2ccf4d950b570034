"""The study's plotting style, figure saving and the helpers several figures share.

Used by every notebook (00-08) through :mod:`geolib.plots`: :func:`save_figure` writes each
figure as ``NN_slug.png``; :func:`style`, the palette and the map, mask and font helpers serve
the figures of :mod:`geolib.plots.data_figures` and :mod:`geolib.plots.model_figures`.
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


# ------------------------------------------------------------------------------------------
# helpers shared by several figures
# ------------------------------------------------------------------------------------------

#: GeoNames continent codes → names used in legends.
CONTINENT_NAMES = {"AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe", "NA": "North America",
                   "OC": "Oceania", "SA": "South America"}


def class_palette(n: int = 150, seed: int = 7):
    """A fixed RGB colour per ADE20K class for mask overlays: (n, 3) uint8."""
    import numpy as np

    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 235, size=(n + 1, 3)).astype("uint8")
    return colours


def overlay_mask(image, mask, alpha: float = 0.45):
    """Blend a class-index mask over an RGB image (both H×W): returns an (H, W, 3) uint8 array."""
    import numpy as np

    img = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.float32)
    pal = class_palette()
    m = np.clip(np.asarray(mask), 0, len(pal) - 1)
    return ((1 - alpha) * img + alpha * pal[m]).astype("uint8")


def world_axes(ax, countries, land="#eeeeee", edge="#bbbbbb"):
    countries.plot(ax=ax, color=land, edgecolor=edge, linewidth=0.3)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-60, 85)
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.set_aspect("equal")
