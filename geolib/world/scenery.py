"""What the layouts of :mod:`geolib.world.compose` place in a scene, and the draft they fill.

:class:`_Draft` holds a scene being composed: its place, facts and random generator, and the
lists of buildings, trees, poles, signs, cars, mountains and markers placed so far, with the
camera, road and ground. The helpers here draw signs (their words, size and place), trees, cars,
the camera, mountains, roadside markers and signs, and traffic; every random draw comes from the
draft's generator, in the order the layouts call them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from geolib.facts import local_distance, local_words
from geolib.world.lettering import text_aspect
from geolib.world.scene import (
    _CAR_COLOURS,
    _FACADES,
    _GROUND,
    _SHOP_BG,
    _SIGN_RGB,
    _VEG_COLOURS,
    REFERENCE_SIZE,
    RGB,
    Building,
    Camera,
    Car,
    Marker,
    Mountains,
    Pole,
    Road,
    Sign,
    SignLine,
    Tree,
    _ink,
    _jit,
    _pick,
    _sign_dims,
)


@dataclass
class _Draft:
    """A scene being composed (filled by the layouts of :mod:`geolib.world.compose`)."""

    place: Mapping
    facts: Mapping
    rng: np.random.Generator
    vegetation: str
    side: str
    layout: str
    scene: str
    treeline_colour: RGB
    ground: str
    ground_colour: RGB
    camera: Camera = field(default_factory=lambda: Camera(horizon=0.5, vp_x=0.5, height=2.3, x=0.0))
    road: Road | None = None
    treeline: float = 0.0
    buildings: list[Building] = field(default_factory=list)
    trees: list[Tree] = field(default_factory=list)
    poles: list[Pole] = field(default_factory=list)
    signs: list[Sign] = field(default_factory=list)
    cars: list[Car] = field(default_factory=list)
    mountains: list[Mountains] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)

    @property
    def sgn(self) -> float:
        """+1 where traffic keeps right, -1 where it keeps left."""
        return 1.0 if self.side == "right" else -1.0


def _draft(place, facts, rng, vegetation, side, layout, scene) -> _Draft:
    """An empty draft: the tree line's and the ground's colours are drawn from ``rng``, in that order."""
    treeline_colour = _jit(rng, (55, 85, 50) if vegetation != "arid" else (120, 120, 80), 10)
    g, col = _GROUND[vegetation]
    ground_colour = _jit(rng, col, 12)
    return _Draft(place, facts, rng, vegetation, side, layout, scene, treeline_colour, g, ground_colour)


def _pick_language(draft: _Draft) -> str:
    """A language of the country, drawn with probability ∝ its share."""
    langs = draft.facts["languages"]
    codes = sorted(langs)
    w = np.array([float(langs[c]["share"]) for c in codes])
    return codes[int(draft.rng.choice(len(codes), p=w / w.sum()))]


def _sign_line(draft: _Draft, text: str, lang: str) -> SignLine:
    """A line of sign text in ``lang``'s script, with its width in em."""
    script = draft.facts["languages"][lang]["script"]
    return SignLine(text, lang, script, round(text_aspect(text, script), 4))


def _sign_text(draft: _Draft, kind: str, lang: str) -> list[str]:
    """1-2 lines of local words for a sign of this kind."""
    rng = draft.rng
    w = local_words(lang, draft.place["country"])
    city = (draft.place.get("local_names") or {}).get(lang)
    pool = {
        "city": [city] if city else [],
        "country": list(w["country"]),
        "day": list(w["days"]),
        "month": list(w["months"]),
    }

    def one(*keys):
        opts = [t for k in keys for t in pool[k]]
        short = [t for t in opts if len(t) <= 14]  # long names make small letters
        opts = short or opts
        return _pick(rng, opts) if opts else None

    if kind == "direction":
        first = one("city", "country")
        return (
            [first, local_distance(int(rng.integers(2, 90)), lang)]
            if first
            else [local_distance(int(rng.integers(2, 90)), lang)]
        )
    if kind == "landmark":
        return [t for t in [one("city", "country")] if t]
    if kind == "billboard":
        return [t for t in (one("country", "city"), one("month", "day")) if t]
    if kind == "street":
        return [t for t in [one("city", "day")] if t]
    # shop
    if rng.random() < 0.25 and len(w["days_short"]) == 7:
        return [f"{w['days_short'][0]} – {w['days_short'][4]}"]
    return [t for t in [one("city", "country", "day", "month")] if t]


def _sign_lines(draft: _Draft, kind: str, lang: str | None = None) -> tuple[SignLine, ...] | None:
    """The lines of a sign of this kind in ``lang`` (default: a drawn language), or None without words."""
    lang = lang or _pick_language(draft)
    texts = _sign_text(draft, kind, lang)
    return tuple(_sign_line(draft, t, lang) for t in texts) if texts else None


def _em_px(draft: _Draft, far: bool = False) -> float:
    """Target text size in px at the reference resolution: mostly legible, some too small."""
    return float(draft.rng.uniform(3, 8) if far else draft.rng.uniform(12, 24))


def _new_sign(
    kind: str,
    mount: str,
    lines,
    x: float,
    z: float,
    y: float,
    em: float,
    bg: RGB,
    posts: int = 0,
    border: bool = False,
    colour_name: str | None = None,
    span: float = 0.0,
    fg: RGB | None = None,
) -> Sign:
    """A sign sized to its lines at text size ``em`` (m), positions rounded to the mm."""
    width, height = _sign_dims(lines, em)
    return Sign(
        kind,
        mount,
        round(x, 3),
        round(z, 3),
        round(y, 3),
        round(width, 3),
        round(height, 3),
        round(em, 3),
        bg,
        fg or _ink(bg),
        lines,
        posts=posts,
        border=border,
        colour_name=colour_name,
        span=round(span, 3),
    )


def _margin(draft: _Draft) -> float:
    """Room (fraction of the width) between the vanishing point and the nearer image edge, less a border."""
    return 0.46 - abs(draft.camera.vp_x - 0.5)


def _roadside_sign(
    draft: _Draft,
    kind: str,
    sgn: int,
    x_inner: float,
    y: float,
    bg: RGB,
    far: bool = False,
    posts: int = 1,
    border: bool = False,
    colour_name: str | None = None,
    max_em: float = 1.6,
) -> Sign | None:
    """A sign facing the camera beside the road, placed far enough away to be in the frame."""
    lines = _sign_lines(draft, kind)
    if lines is None:
        return None
    cam, F = draft.camera, draft.camera.focal * REFERENCE_SIZE
    wpe = _sign_dims(lines, 1.0)[0]
    em_px = _em_px(draft, far)
    room = _margin(draft) / cam.focal
    em_px = min(em_px, (room - 0.08) * F / wpe)
    a = max(x_inner - sgn * cam.x, 0.5)
    z = a / (room - wpe * em_px / F) * float(draft.rng.uniform(1.0, 1.35))
    if far:
        z = max(z, float(draft.rng.uniform(30, 70)))
    z = max(z, 4.0)
    em = min(em_px * z / F, max_em)
    width = _sign_dims(lines, em)[0]
    return _new_sign(
        kind,
        "front",
        lines,
        sgn * (x_inner + width / 2),
        z,
        y,
        em,
        bg,
        posts=posts,
        border=border,
        colour_name=colour_name,
    )


def _gantry_sign(draft: _Draft, colour: str, hw: float, far: bool = False) -> Sign | None:
    """A direction sign over the road on a gantry."""
    lines = _sign_lines(draft, "direction")
    if lines is None:
        return None
    F = draft.camera.focal * REFERENCE_SIZE
    z = float(draft.rng.uniform(35, 80) if far else draft.rng.uniform(12, 35))
    em = min(_em_px(draft, far) * z / F, 1.2, (2 * hw - 0.5) / _sign_dims(lines, 1.0)[0])
    x = float(draft.rng.uniform(-0.3, 0.3)) * hw
    return _new_sign(
        "direction",
        "front",
        lines,
        x,
        z,
        5.2,
        em,
        _SIGN_RGB[colour],
        posts=0,
        border=True,
        colour_name=colour,
        span=hw + 0.4,
    )


def _facade_sign(draft: _Draft, sgn: int, fx: float, buildings: list[Building], far: bool = False) -> Sign | None:
    """A shop sign flat on a side facade, placed where it is in the frame and not too oblique."""
    lines = _sign_lines(draft, "shop")
    if lines is None:
        return None
    cam, F = draft.camera, draft.camera.focal * REFERENCE_SIZE
    a = max(fx - sgn * cam.x, 0.5)
    z0 = a * cam.focal / _margin(draft) * float(draft.rng.uniform(1.0, 1.5))
    if far:
        z0 = float(draft.rng.uniform(35, 70))
    em = min(_em_px(draft, far) * z0 * 1.2 / F, 1.6)
    width = _sign_dims(lines, em)[0]
    for b in buildings:
        if b.side == sgn and b.z0 <= z0 and z0 + width <= b.z1 - 0.3:
            return _new_sign(
                "shop",
                "facade",
                lines,
                sgn * (fx - 0.05),
                z0,
                float(draft.rng.uniform(3.0, 3.6)),
                em,
                _pick(draft.rng, _SHOP_BG),
            )
    return None


def _building_colours(rng: np.random.Generator) -> tuple[RGB, RGB]:
    """A building's wall colour (one of the facade colours) and window colour, drawn in that order."""
    return _jit(rng, _pick(rng, _FACADES), 14), _jit(rng, (70, 85, 100), 15)


def _tree(draft: _Draft, x: float, z: float, scale: float = 1.0) -> Tree:
    """A tree of the scene's vegetation (palm, conifer, shrub or deciduous) at (x, z)."""
    rng, veg = draft.rng, draft.vegetation
    col = _jit(rng, _pick(rng, _VEG_COLOURS[veg]), 10)
    if veg == "tropical":
        kind = "palm" if rng.random() < 0.65 else "deciduous"
    elif veg == "boreal":
        kind = "conifer"
    elif veg == "arid":
        kind = "shrub" if rng.random() < 0.6 else "deciduous"
    else:
        kind = "deciduous"
    if kind == "palm":
        h = rng.uniform(6, 11) * scale
        return Tree(x, z, "palm", h, h * 0.55, col, lean=float(rng.uniform(-0.12, 0.12)))
    if kind == "conifer":
        h = rng.uniform(7, 16) * scale
        return Tree(x, z, "conifer", h, h * rng.uniform(0.32, 0.42), col)
    if kind == "shrub":
        h = rng.uniform(0.8, 2.0) * scale
        return Tree(x, z, "shrub", h, h * rng.uniform(1.2, 2.0), col)
    h = rng.uniform(5, 11) * scale * (0.6 if veg == "arid" else 1.0)
    return Tree(x, z, "deciduous", h, h * rng.uniform(0.55, 0.8), col)


def _car(draft: _Draft, lane_x: float, z: float, facing: str) -> Car:
    """A car in a lane, with one of the country's plate styles on the side it shows."""
    rng = draft.rng
    plate = None
    styles = draft.facts.get("plates")
    if styles:
        st = _pick(rng, styles)
        colour = st["rear"] if facing == "away" else st["front"]
        plate = (colour, st.get("band"))
    return Car(lane_x + float(rng.uniform(-0.25, 0.25)), z, facing, _jit(rng, _pick(rng, _CAR_COLOURS), 10), plate)


def _set_camera(draft: _Draft, x: float, horizon=(0.44, 0.54), height=(2.1, 2.6)) -> None:
    """Draw the camera's horizon, vanishing point and height; ``x`` is its place across the road (m)."""
    rng = draft.rng
    draft.camera = Camera(
        horizon=round(float(rng.uniform(*horizon)), 4),
        vp_x=round(float(rng.uniform(0.44, 0.56)), 4),
        height=round(float(rng.uniform(*height)), 3),
        x=round(x, 3),
    )


def _pole_row(
    draft: _Draft, kind: str, x: float, z0: float, n: int, step: float, height: tuple[float, float], colour: RGB,
    jitter: int, arm: float = 0.0,
) -> None:
    """``n`` poles of a kind at ``x`` along the road, ``step`` m apart from depth ``z0``; each pole's
    height is drawn from the range ``height``, then its colour around ``colour``."""
    rng = draft.rng
    for k in range(n):
        draft.poles.append(Pole(x, z0 + step * k, kind, float(rng.uniform(*height)), _jit(rng, colour, jitter), arm=arm))


def _add_mountains(draft: _Draft, always: bool = True) -> None:
    """One or two mountain ranges on the horizon (none when not ``always``)."""
    rng = draft.rng
    if not always:
        return
    for k in range(int(rng.integers(1, 3))):
        base = (140, 150, 170) if k == 0 else (110, 125, 115)
        draft.mountains.append(
            Mountains(
                float(rng.uniform(0.06, 0.22)) * (1.0 if k == 0 else 0.6),
                _jit(rng, base, 15),
                tuple(float(p) for p in rng.uniform(0, 2 * np.pi, 4)),
                snow=float(rng.uniform(0.2, 0.4)) if (k == 0 and rng.random() < 0.35) else 0.0,
            )
        )


def _outer_z(draft: _Draft, x_outer: float) -> float:
    """The nearest depth at which something reaching ``x_outer`` (m, signed) is in the frame."""
    cam = draft.camera
    return max(abs(x_outer - cam.x) * cam.focal / _margin(draft), 3.0)


def _markers(draft: _Draft, x_edge: float) -> None:
    """Warning and speed-limit signs on the driving side, bollards along the edge (where sourced).

    Sized as the real objects (warning-sign panels 1.0-1.25 m as on main roads, speed signs
    0.8-1 m, bollards about 1 m) and mostly placed near enough that a 224-px image shows them at
    20-45 px, the nearest that stays in the frame; some stand far away on purpose.
    """
    rng, facts, scene = draft.rng, draft.facts, draft.scene
    sgn = int(draft.sgn)  # signs stand on the side the traffic keeps to
    if draft.road is not None:  # at the kerb or just off the carriageway
        x_edge = min(x_edge, draft.road.half_width + 0.3)
    p_warn = {"rural": 0.95, "suburban": 0.9}.get(scene, 0.75)
    z_next = 0.0
    if facts.get("warning_sign") and rng.random() < p_warn:
        size = float(rng.uniform(1.0, 1.25))
        x = sgn * (x_edge + 0.2 + size / 2)
        z = _outer_z(draft, x + sgn * size / 2) * float(rng.uniform(1.0, 1.2))
        if rng.random() < 0.06:
            z = float(rng.uniform(30, 60))
        draft.markers.append(Marker("warning", facts["warning_sign"], round(x, 3), round(z, 3), round(size, 3),
                                   round(float(rng.uniform(1.3, 1.8)), 3)))
        z_next = z + float(rng.uniform(2.5, 5))
    if facts.get("speed_sign") and rng.random() < {"urban": 0.7}.get(scene, 0.8):
        size = float(rng.uniform(0.8, 1.0))
        x = sgn * (x_edge + 0.2 + size / 2)
        z = max(_outer_z(draft, x + sgn * size / 2) * float(rng.uniform(1.0, 1.4)), z_next)
        y = float(rng.uniform(1.4, 1.9))
        if facts["speed_sign"] == "rectangle":  # tall panel: size is its height
            size = size * 1.25
        draft.markers.append(Marker("speed", facts["speed_sign"], round(x, 3), round(z, 3), round(size, 3),
                                   round(y, 3)))
    if facts.get("bollard") and scene != "urban" and rng.random() < (0.95 if scene == "rural" else 0.8):
        style = facts["bollard"]
        h = 0.75 if style == "white_black_base" else float(rng.uniform(0.95, 1.1))
        for side in (sgn, -sgn) if rng.random() < 0.5 else (sgn,):
            x = side * (x_edge + 0.1)
            z = max(_outer_z(draft, x), 4.5) * float(rng.uniform(1.0, 1.3))
            step = float(rng.uniform(12, 25))
            for _ in range(5):
                draft.markers.append(Marker("bollard", style, round(x, 3), round(z, 3), h))
                z += step


def _roadside_signs(draft: _Draft, x_edge: float, urban: bool) -> None:
    """Direction signs (where their colour is documented), billboards and small street signs."""
    rng, facts = draft.rng, draft.facts
    _markers(draft, x_edge)
    far = rng.random() < 0.12  # some signs deliberately too far away to read
    road = draft.road
    if facts.get("direction_signs") and rng.random() < 0.9:
        colour = _pick(rng, facts["direction_signs"])
        if road is not None and road.paved and rng.random() < 0.35:
            s = _gantry_sign(draft, colour, road.half_width, far)
        else:
            s = _roadside_sign(
                draft,
                "direction",
                _pick(rng, [-1, 1]),
                x_edge + 0.3,
                float(rng.uniform(1.6, 2.4)),
                _SIGN_RGB[colour],
                far,
                posts=2,
                border=True,
                colour_name=colour,
            )
        if s is not None:
            draft.signs.append(s)
    if rng.random() < 0.9:
        kind = "shop" if urban else "billboard"
        s = _roadside_sign(
            draft,
            kind,
            _pick(rng, [-1, 1]),
            x_edge + (0.5 if urban else float(rng.uniform(1, 6))),
            float(rng.uniform(2.0, 3.0)),
            _pick(rng, _SHOP_BG),
            far,
            posts=2 if kind == "billboard" else 1,
            border=kind == "billboard",
            max_em=3.0,
        )
        if s is not None:
            draft.signs.append(s)
    if rng.random() < 0.3:  # a small street-name plate: usually too small to read
        sgn = _pick(rng, [-1, 1])
        lines = _sign_lines(draft, "street")
        if lines is not None:
            em = float(rng.uniform(0.1, 0.2))
            draft.signs.append(
                _new_sign(
                    "street",
                    "front",
                    lines,
                    sgn * (x_edge + 0.3),
                    float(rng.uniform(8, 30)),
                    float(rng.uniform(2.2, 2.8)),
                    em,
                    _pick(rng, [(20, 70, 160), (250, 250, 245), (30, 110, 60)]),
                    posts=1,
                )
            )
    if draft.signs and rng.random() < 0.15:  # something in front of a sign
        s = _pick(rng, draft.signs)
        if s.mount == "front":
            draft.trees.append(
                Tree(
                    s.x + float(rng.uniform(-0.5, 0.5)) * s.width,
                    max(s.z - 3.0, 2.5),
                    "deciduous",
                    s.y + s.height + 2.0,
                    max(s.width, 3.0) * 1.1,
                    _jit(
                        rng,
                        _pick(rng, _VEG_COLOURS["temperate" if draft.vegetation == "arid" else draft.vegetation]),
                        10,
                    ),
                )
            )


def _traffic(draft: _Draft, lane: float, hw: float) -> None:
    """Cars ahead in our lane, oncoming and (in towns) parked along the kerb."""
    rng, sgn = draft.rng, draft.sgn
    n = int(rng.choice([0, 1, 1, 2, 2, 3, 4])) if draft.scene == "urban" else int(rng.choice([1, 1, 1, 2, 2, 3]))
    if draft.scene == "urban" and rng.random() < 0.2:  # queueing right behind a car
        draft.cars.append(_car(draft, sgn * lane / 2, float(rng.uniform(3.8, 6.0)), "away"))
    for k in range(n):
        near = rng.random() < (0.9 if k == 0 else 0.4)
        if rng.random() < 0.5:  # same direction, ahead of us
            draft.cars.append(
                _car(draft, sgn * lane / 2, float(rng.uniform(5, 11) if near else rng.uniform(11, 60)), "away")
            )
        else:  # oncoming
            draft.cars.append(
                _car(draft, -sgn * lane / 2, float(rng.uniform(6, 12) if near else rng.uniform(12, 70)), "toward")
            )
    if draft.scene == "urban" and hw > lane + 1.5 and rng.random() < 0.6:  # parked along the kerb
        for k in range(int(rng.integers(1, 4))):
            far_side = rng.random() < 0.4
            x = (-sgn if far_side else sgn) * (hw - 1.0)
            draft.cars.append(_car(draft, x, float(rng.uniform(5, 50)), "toward" if far_side else "away"))
