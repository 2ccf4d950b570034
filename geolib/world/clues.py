"""What a demo-world image shows: visible, legible clues judged from the scene's geometry.

:func:`describe_scene` projects every sign, car, marker and tree at :data:`REFERENCE_SIZE` px
(:class:`_View`, shared with the renderer) and keeps what is large enough, in the frame, not lost
in fog and not hidden behind nearer things; its reasoning text comes from
:mod:`geolib.world.captions`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from geolib.facts import clue_language, in_script
from geolib.world.captions import reasoning_text
from geolib.world.scene import REFERENCE_SIZE, Camera, Car, SceneSpec, Sign, Tree


# Legibility thresholds, in px at REFERENCE_SIZE.
_SCRIPT_MIN_EM = 9.0  # text em size at which the look of a script is recognisable
_LANGUAGE_MIN_EM = 13.0  # ... at which the words can be read
_SIGN_COLOUR_MIN_PX = 12.0  # sign height at which its colour counts as a direction-sign colour
_MARKER_MIN_PX = 12.0  # warning / speed sign panel size at which its shape and colours are clear
_BOLLARD_MIN_PX = 16.0  # bollard height at which its paint pattern is clear
_CAR_MIN_PX = 10.0  # car width at which its direction of travel is visible
_PLATE_MIN_PX = 8.0  # plate width at which its colour is visible
_PLATE_BAND_MIN_PX = 18.0  # plate width at which a band on it is visible
_FOG_MIN = 0.4  # contrast left after fog, exp(-3 z / visibility), for anything to count
_VISIBLE_MIN = 0.75  # share of a sign not hidden behind nearer things
_IN_FRAME_MIN = 0.7  # share of a sign inside the image


# ---------------------------------------------------------------------------------------------
# Geometry shared by the renderer and the clue judge
# ---------------------------------------------------------------------------------------------


class _View:
    """Projection of scene coordinates (m) into pixels of an S×S image."""

    def __init__(self, cam: Camera, size: int):
        self.S = size
        self.f = cam.focal * size
        self.u0 = cam.vp_x * size
        self.v0 = cam.horizon * size
        self.hc = cam.height
        self.xc = cam.x
        self.z_near = self.f * self.hc / (1.6 * size)  # ground depth well below the bottom edge

    def p(self, x: float, y: float, z: float) -> tuple[float, float]:
        return (self.u0 + self.f * (x - self.xc) / z, self.v0 + self.f * (self.hc - y) / z)

    def px(self, metres: float, z: float) -> float:
        return self.f * metres / z

    def front_box(self, x0, x1, y0, y1, z) -> tuple[float, float, float, float]:
        (a, b), (c, d) = self.p(x0, y1, z), self.p(x1, y0, z)
        return a, b, c, d

    def sign_box(self, s: Sign) -> tuple[float, float, float, float]:
        if s.mount == "front":
            return self.front_box(s.x - s.width / 2, s.x + s.width / 2, s.y, s.y + s.height, s.z)
        pts = self.sign_quad(s)
        us, vs = [p[0] for p in pts], [p[1] for p in pts]
        return min(us), min(vs), max(us), max(vs)

    def sign_quad(self, s: Sign) -> list[tuple[float, float]]:
        """Facade sign corners: top-left, top-right, bottom-right, bottom-left as seen in the image."""
        z0, z1 = s.z, s.z + s.width
        near_top, far_top = self.p(s.x, s.y + s.height, z0), self.p(s.x, s.y + s.height, z1)
        near_bot, far_bot = self.p(s.x, s.y, z0), self.p(s.x, s.y, z1)
        if s.x < 0:  # left facade: reads from near (left in the image) to far
            return [near_top, far_top, far_bot, near_bot]
        return [far_top, near_top, near_bot, far_bot]

    def tree_box(self, t: Tree) -> tuple[float, float, float, float]:
        return self.front_box(t.x - t.width / 2, t.x + t.width / 2, 0.0, t.height, t.z)

    def car_box(self, c: Car) -> tuple[float, float, float, float]:
        return self.front_box(c.x - c.width / 2, c.x + c.width / 2, 0.0, c.height, c.z)


def _fog_factor(spec: SceneSpec, z: float) -> float:
    return 1.0 if spec.fog is None else math.exp(-3.0 * z / spec.fog)


def _in_frame(box, size) -> float:
    x0, y0, x1, y1 = box
    area = max(x1 - x0, 1e-9) * max(y1 - y0, 1e-9)
    w = max(0.0, min(x1, size) - max(x0, 0.0))
    h = max(0.0, min(y1, size) - max(y0, 0.0))
    return w * h / area


def _occluders(spec: SceneSpec, view: _View) -> list[tuple[float, tuple]]:
    occ = []
    for t in spec.trees:
        x0, y0, x1, y1 = view.tree_box(t)
        if t.kind in ("deciduous", "shrub", "conifer"):
            occ.append((t.z, (x0, y0, x1, y1)))
        else:  # palm: crown only roughly, trunk thin
            occ.append((t.z, (x0 + 0.2 * (x1 - x0), y0, x1 - 0.2 * (x1 - x0), y0 + 0.35 * (y1 - y0))))
    for c in spec.cars:
        occ.append((c.z, view.car_box(c)))
    for p in spec.poles:
        w = 0.3 if p.kind != "flag" else 0.2
        occ.append((p.z, view.front_box(p.x - w / 2, p.x + w / 2, 0.0, p.height, p.z)))
    for s in spec.signs:
        if s.mount == "front":
            occ.append((s.z, view.sign_box(s)))
    for b in spec.buildings:
        if b.side == 0:
            occ.append((b.z0, view.front_box(b.x0, b.x1, 0.0, b.height, b.z0)))
    for m in spec.markers:
        if m.kind != "bollard":
            occ.append((m.z, view.front_box(*m.box_m(), m.z)))
    return occ


def _visible_share(box, z, occluders, n: int = 12) -> float:
    x0, y0, x1, y1 = box
    us = np.linspace(x0, x1, n + 2)[1:-1]
    vs = np.linspace(y0, y1, max(3, n // 2) + 2)[1:-1]
    U, V = np.meshgrid(us, vs)
    hidden = np.zeros(U.shape, bool)
    for oz, (a, b, c, d) in occluders:
        if oz < z - 1e-6:
            hidden |= (U >= a) & (U <= c) & (V >= b) & (V <= d)
    return float(1.0 - hidden.mean())


# ---------------------------------------------------------------------------------------------
# Clues: what is visible and legible
# ---------------------------------------------------------------------------------------------


def describe_scene(spec: SceneSpec) -> dict[str, Any]:
    """Clues, legible sign text and reasoning of a scene, judged from its geometry (no rendering).

    Sizes are judged at :data:`REFERENCE_SIZE` px: a sign's script counts when its text em is at
    least 9 px, its language at 13 px; nothing counts when fog leaves less than 40 % of its contrast,
    when less than 70 % of it is in the frame, or when nearer things hide more than a quarter of it.

    Returns:
        ``{"clues": sorted clue ids, "sign_text": text of legible signs joined by " | ",
        "legible_signs": indices into spec.signs, "reasoning": str, "scene": str}``.
    """
    S = REFERENCE_SIZE
    view = _View(spec.camera, S)
    clues: set[str] = set()
    legible: list[int] = []
    occ = _occluders(spec, view)
    for i, s in enumerate(spec.signs):
        if _fog_factor(spec, s.z + (s.width / 2 if s.mount == "facade" else 0.0)) < _FOG_MIN:
            continue
        box = view.sign_box(s)
        if _in_frame(box, S) < _IN_FRAME_MIN or _visible_share(box, s.z, occ) < _VISIBLE_MIN:
            continue
        if s.mount == "front":
            em = view.px(s.em, s.z)
        else:  # on a facade: size at mid-depth, and not seen too obliquely
            zm = s.z + s.width / 2
            em = view.px(s.em, zm)
            flat = view.px(s.width, zm)
            if flat <= 0 or (box[2] - box[0]) / flat < 0.35:
                continue
        if s.kind == "direction" and s.colour_name and view.px(s.height, s.z) >= _SIGN_COLOUR_MIN_PX:
            clues.add(f"direction_sign:{s.colour_name}")
        if em >= _SCRIPT_MIN_EM:
            legible.append(i)
            for line in s.lines:
                if in_script(line.text, line.script):
                    clues.add(f"script:{line.script}")
                    if em >= _LANGUAGE_MIN_EM:
                        clues.add(f"language:{clue_language(line.lang)}")
    for c in spec.cars:
        box = view.car_box(c)
        if (
            _fog_factor(spec, c.z) < _FOG_MIN
            or _in_frame(box, S) < 0.5
            or view.px(c.width, c.z) < _CAR_MIN_PX
            or _visible_share(box, c.z, occ) < 0.5
        ):
            continue
        clues.add(f"driving_side:{spec.driving_side}")
        if c.plate is not None and _fog_factor(spec, c.z) >= 0.6:
            colour, band = c.plate
            pw = view.px(0.52, c.z)
            if pw >= _PLATE_MIN_PX and colour != "white":
                clues.add(f"plate:{colour}")
            if band and pw >= _PLATE_BAND_MIN_PX:
                clues.add("plate:blue_band" if band == "eu" else "plate:mercosur")
    for m in spec.markers:
        if _fog_factor(spec, m.z) < _FOG_MIN:
            continue
        box = view.front_box(*m.box_m(), m.z)
        need = _BOLLARD_MIN_PX if m.kind == "bollard" else _MARKER_MIN_PX
        if view.px(m.size, m.z) < need or _in_frame(box, S) < _IN_FRAME_MIN:
            continue
        if _visible_share(box, m.z, occ) < _VISIBLE_MIN:
            continue
        clues.add(f"{m.kind if m.kind == 'bollard' else m.kind + '_sign'}:{m.style}")
    road = spec.road
    if road is not None and spec.layout == "street" and _fog_factor(spec, 6.0) >= _FOG_MIN:  # the near road
        if road.centre_line:
            clues.add(f"centre_line:{road.centre_line}")
        if road.edge_line:
            clues.add(f"edge_line:{road.edge_line}")
    veg = _visible_vegetation(spec, view)
    if veg:
        clues.add(f"vegetation:{veg}")
    clue_list = sorted(clues)
    texts = [" / ".join(l.text for l in spec.signs[i].lines) for i in legible]
    return {
        "clues": clue_list,
        "sign_text": " | ".join(texts),
        "legible_signs": legible,
        "reasoning": reasoning_text(spec, clue_list),
        "scene": spec.scene,
    }


def _visible_vegetation(spec: SceneSpec, view: _View) -> str | None:
    S = view.S
    kind = {"tropical": "palm", "boreal": "conifer", "temperate": "deciduous"}.get(spec.vegetation)
    if kind:
        n = 0
        occ = _occluders(spec, view)
        for t in spec.trees:
            if t.kind != kind or _fog_factor(spec, t.z) < _FOG_MIN:
                continue
            box = view.tree_box(t)
            if (
                view.px(t.height, t.z) >= (22 if kind == "palm" else 18)
                and _in_frame(box, S) >= 0.5
                and _visible_share(box, t.z, occ) >= 0.5
            ):
                n += 1
        return spec.vegetation if n >= (1 if kind == "palm" else 2) else None
    # arid: open bare ground in view
    if (
        spec.ground in ("earth", "sand")
        and spec.layout in ("street", "open")
        and spec.scene != "urban"
        and _fog_factor(spec, 15.0) >= _FOG_MIN
    ):
        return "arid"
    return None
