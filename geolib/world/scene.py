"""What a demo-world scene is made of: the dataclasses :func:`geolib.world.render_scene` draws.

:class:`SceneSpec` and its parts (camera, road, buildings, signs, trees, poles, cars, markers,
mountains), the colours they are drawn in, an image's id and random generator, and small helpers
shared by the composition (:mod:`geolib.world.compose`), the captions and the clue atlas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


#: Resolution at which legibility is judged (px); sizes scale with the image, so the clue list of a
#: scene does not depend on ``image_size``. EfficientNet-Lite0 sees the demo images at 224 px.
REFERENCE_SIZE = 224

#: Focal length as a fraction of the image width (a horizontal field of view of about 64 degrees).
FOCAL = 0.8

#: Scene types (GREval-style): the ``scene`` column of the manifest.
SCENES = ("urban", "suburban", "rural", "natural", "landmark")


RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Camera:
    """Pinhole camera over flat ground; lengths in metres, image positions as fractions of its size."""

    horizon: float  # image row of the horizon (fraction of height)
    vp_x: float  # image column of the vanishing point (fraction of width)
    height: float  # camera height above the ground (m)
    x: float  # lateral position relative to the road's centre line (m, + = right)
    focal: float = FOCAL  # focal length (fraction of width)


@dataclass(frozen=True)
class Road:
    """The road ahead of the camera (along +z)."""

    half_width: float  # m
    surface: RGB
    paved: bool = True
    centre_line: str | None = None  # colour, or None for no centre line
    centre_style: str = "dashed"  # dashed | solid | double
    edge_line: str | None = None
    sidewalk: float = 0.0  # sidewalk width on each side (m), 0 for none
    sidewalk_colour: RGB = (170, 170, 165)
    verge: float = 0.0  # grass verge between road and sidewalk (m)


@dataclass(frozen=True)
class Building:
    """A box. Side buildings (side ±1) show the facade plane x = ``x0`` between depths z0..z1;
    buildings across (side 0) face the camera at depth z0, spanning x0..x1."""

    side: int
    x0: float  # side buildings: facade plane; across: left edge (m)
    x1: float  # side buildings: back plane; across: right edge (m)
    z0: float
    z1: float
    height: float
    colour: RGB
    window_colour: RGB
    floor_height: float = 3.2
    window_every: float = 3.0  # m between window centres (0 = no windows)
    style: str = "grid"  # windows: grid | bands | plain; walls: plain | brick | panels
    kind: str = "building"  # building | house | wall | fence (ADE20K class of the box)
    roof: float = 0.0  # pitched-roof height (houses)
    roof_colour: RGB = (120, 60, 50)
    shopfront: bool = False
    dome: float = 0.0  # landmark dome radius (m)
    columns: int = 0  # landmark columns in front


@dataclass(frozen=True)
class SignLine:
    """One line of text on a sign."""

    text: str
    lang: str  # locale code (``ru``, ``zh_Hant``, ``sr_Latn``)
    script: str  # ISO 15924
    aspect: float  # width / em size


@dataclass(frozen=True)
class Sign:
    """A signboard. ``mount="front"`` faces the camera at depth z (x = centre); ``mount="facade"``
    lies on a side facade plane x, from depth z to z + width."""

    kind: str  # direction | shop | billboard | street | landmark
    mount: str  # front | facade
    x: float
    z: float
    y: float  # bottom edge height (m)
    width: float
    height: float
    em: float  # text em size (m)
    background: RGB
    foreground: RGB
    lines: tuple[SignLine, ...]
    posts: int = 0  # posts under a front sign (0, 1 or 2)
    border: bool = False
    colour_name: str | None = None  # direction signs: the documented colour
    span: float = 0.0  # > 0: hangs on a gantry whose posts stand at x = ±span (m)


@dataclass(frozen=True)
class Tree:
    x: float
    z: float
    kind: str  # deciduous | conifer | palm | shrub
    height: float
    width: float
    colour: RGB
    lean: float = 0.0


@dataclass(frozen=True)
class Pole:
    x: float
    z: float
    kind: str  # utility | lamp | flag
    height: float
    colour: RGB
    arm: float = 0.0  # lamp arm towards the road (m, signed)
    flag_colours: tuple[RGB, ...] = ()


@dataclass(frozen=True)
class Car:
    x: float
    z: float
    facing: str  # away (rear visible) | toward (front visible)
    colour: RGB
    plate: tuple[str, str | None] | None  # (plate colour, band) on the visible side; None = no plate drawn
    width: float = 1.8
    height: float = 1.45


@dataclass(frozen=True)
class Marker:
    """A roadside object that carries a convention without text: a warning sign, a speed-limit
    sign (panel of ``size`` m whose bottom is at ``y`` on a post) or a bollard (``size`` m tall)."""

    kind: str  # warning | speed | bollard
    style: str  # the fact value (yellow_diamond, red_ring, white_black_band, ...)
    x: float
    z: float
    size: float
    y: float = 0.0

    def box_m(self) -> tuple[float, float, float, float]:
        """(x0, x1, y0, y1) of the part that shows the convention, in metres."""
        if self.kind == "bollard":
            w = 0.1 if self.style == "white_black_base" else 0.09
            return self.x - w, self.x + w, 0.0, self.size
        return self.x - self.size / 2, self.x + self.size / 2, self.y, self.y + self.size


@dataclass(frozen=True)
class Mountains:
    height: float  # fraction of image height above the horizon
    colour: RGB
    phases: tuple[float, ...]
    snow: float = 0.0  # share of the height covered by snow (0 = none)


@dataclass(frozen=True)
class SceneSpec:
    """Everything :func:`render_scene` draws, and the labels: a pure function of (seed, index)."""

    image_id: str
    country: str
    country_name: str
    city: str
    lat: float
    lon: float
    continent: str
    scene: str  # one of SCENES
    layout: str  # street | facade | wall | open | landmark
    camera: Camera
    sky_top: RGB
    sky_bottom: RGB
    clouds: tuple[tuple[float, float, float, float], ...]  # (u, v, rx, ry) fractions
    ground: str  # grass | earth | sand | field | sidewalk
    ground_colour: RGB
    road: Road | None
    driving_side: str
    vegetation: str
    buildings: tuple[Building, ...] = ()
    trees: tuple[Tree, ...] = ()
    poles: tuple[Pole, ...] = ()
    signs: tuple[Sign, ...] = ()
    cars: tuple[Car, ...] = ()
    mountains: tuple[Mountains, ...] = ()
    treeline: float = 0.0  # height of a distant tree line (fraction of image height)
    treeline_colour: RGB = (60, 90, 50)
    fog: float | None = None  # meteorological visibility (m), None = clear
    fog_colour: RGB = (200, 202, 205)
    brightness: float = 1.0
    text_seed: int = 0  # seeds the wording of the reasoning text
    markers: tuple[Marker, ...] = ()  # warning and speed signs, bollards


def _jit(rng: np.random.Generator, base: Sequence[int], amount: int = 12) -> RGB:
    """``base`` with each channel moved by up to ±amount."""
    d = rng.random(3).tolist()
    return tuple(min(255, max(0, int(c) + int(e * (2 * amount + 1)) - amount)) for c, e in zip(base, d))  # type: ignore[return-value]


def _pick(rng: np.random.Generator, seq: Sequence):
    return seq[min(int(rng.random() * len(seq)), len(seq) - 1)]


# fmt: off
_FACADES = [(214, 200, 170), (190, 180, 165), (225, 220, 210), (160, 95, 75), (175, 175, 180), (120, 125, 135),
            (235, 215, 180), (200, 160, 120), (150, 160, 150), (210, 190, 200), (95, 100, 110), (240, 235, 225)]
_CAR_COLOURS = [(200, 200, 205), (30, 30, 35), (240, 240, 240), (140, 20, 25), (30, 50, 120), (90, 95, 100),
                (160, 160, 165), (20, 80, 60), (200, 170, 60)]
_SHOP_BG = [(180, 30, 30), (20, 60, 140), (250, 250, 245), (30, 120, 60), (240, 200, 40), (40, 40, 45),
            (230, 110, 20), (120, 30, 90)]
# fmt: on
_SIGN_RGB = {"green": (0, 110, 60), "blue": (20, 70, 160), "white": (245, 245, 240), "yellow": (250, 205, 20)}
_LINE_RGB = {"white": (238, 238, 232), "yellow": (250, 190, 20)}
_PLATE_RGB = {"white": (242, 242, 238), "yellow": (250, 205, 30), "blue": (25, 60, 170), "black": (20, 20, 22)}
_VEG_COLOURS = {
    "temperate": [(70, 120, 50), (90, 135, 55), (60, 105, 45)],
    "boreal": [(35, 75, 45), (40, 85, 50), (30, 65, 40)],
    "tropical": [(50, 140, 50), (70, 150, 40), (40, 120, 45)],
    "arid": [(120, 125, 70), (135, 130, 80), (105, 110, 65)],
}
_GROUND = {
    "temperate": ("grass", (95, 140, 60)),
    "boreal": ("grass", (80, 115, 60)),
    "tropical": ("grass", (85, 150, 55)),
    "arid": ("earth", (185, 160, 120)),
}


def _sign_dims(lines: Sequence[SignLine], em: float) -> tuple[float, float]:
    """(width, height) in m of a sign with these lines at text size ``em`` (m), margins included."""
    return max(l.aspect for l in lines) * em + 1.0 * em, len(lines) * 1.3 * em + 0.6 * em


def _ink(background: RGB) -> RGB:
    """Text colour that reads on a sign background."""
    r, g, b = background
    return (20, 20, 20) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def _replace(obj, **changes):
    from dataclasses import replace

    return replace(obj, **changes)


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of image ``index`` in a world built with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def image_id(index: int) -> str:
    """The id of image ``index`` (also its file stem)."""
    return f"demo_{int(index):06d}"
