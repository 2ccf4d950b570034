"""What a demo-world image shows: visible, legible clues measured on the rendered pixels.

The renderer draws every clue object (a sign's face and its text, a car and its plate, a warning or
speed sign, a bollard, a tree, the road's centre and edge lines, bare ground) into an object-id map
beside the image and the mask, in the same painter's order, and measures each object on the
finished image at :data:`REFERENCE_SIZE` px (:func:`geolib.world.render._observe`): the pixels
drawn of it in the frame, those still visible (not overdrawn by nearer things), its size, the share
of it inside the frame, its contrast with its surroundings after fog and light, and for text the em
of the drawn glyphs and their contrast with the sign's face. :func:`judge` keeps the clues whose
object is visible enough, large enough and not washed out; :func:`describe_scene` renders the scene
at the reference size for that when no rendering is at hand. The reasoning text comes from
:mod:`geolib.world.captions`.
"""

from __future__ import annotations

from typing import Any, Mapping

from geolib.facts import clue_language, in_script
from geolib.world.captions import reasoning_text
from geolib.world.scene import REFERENCE_SIZE, Camera, Car, SceneSpec, Sign, Tree


# Thresholds, in px of an image of REFERENCE_SIZE; contrast as a distance between mean RGB colours
# (0-441) in the finished image.
_SCRIPT_MIN_EM = 9.0  # em of visible text at which the look of a script is recognisable
_LANGUAGE_MIN_EM = 13.0  # ... at which the words can be read
_SIGN_COLOUR_MIN_PX = 12.0  # sign height at which its colour counts as a direction-sign colour
_MARKER_MIN_PX = 12.0  # warning / speed sign panel size at which its shape and colours are clear
_BOLLARD_MIN_PX = 16.0  # bollard height at which its paint pattern is clear
_CAR_MIN_PX = 10.0  # car width at which its direction of travel is visible
_PLATE_MIN_PX = 8.0  # plate width at which its colour is visible
_PLATE_BAND_MIN_PX = 18.0  # plate width at which a band on it is visible
_MIN_PX = 6  # visible pixels below which nothing counts
_TEXT_MIN_PX = 12  # visible glyph pixels below which no text counts
_LINE_MIN_PX = 12  # visible pixels of a road line
_GROUND_MIN_SHARE = 0.05  # share of the image that bare ground must cover to count as arid
_CONTRAST_MIN = 24.0  # contrast of an object with its surroundings (or its own colour spread)
_TEXT_CONTRAST_MIN = 48.0  # contrast of glyphs with their sign's face
_VISIBLE_MIN = 0.75  # share of a sign, marker or text still visible of what was drawn
_IN_FRAME_MIN = 0.7  # share of a sign or marker inside the image
_FLAT_MIN = 0.35  # facade signs: drawn width / face-on width below which they are seen too obliquely


# ---------------------------------------------------------------------------------------------
# Geometry: the renderer's projection (tests and benchmarks use it too)
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


# ---------------------------------------------------------------------------------------------
# Clues: what is visible and legible
# ---------------------------------------------------------------------------------------------


def describe_scene(spec: SceneSpec) -> dict[str, Any]:
    """Clues, legible sign text and reasoning of a scene, measured on its rendering at
    :data:`REFERENCE_SIZE` px, drawn here (cached per spec); :func:`~geolib.world.render_scene` judges its own drawing.

    See :func:`judge` for the rules. Same spec, same labels.

    Returns:
        ``{"clues": sorted clue ids, "sign_text": text of legible signs joined by " | ",
        "legible_signs": indices into spec.signs, "reasoning": str, "scene": str}``.
    """
    from geolib.world.render import _observations  # the renderer imports this module

    return judge(spec, _observations(spec))


def _shows(o, lenient: bool = False) -> bool:
    """Whether enough of an object shows: visible pixels, the share of it not hidden and in the
    frame (half of it for ``lenient``: cars and trees), and its contrast."""
    return (
        o is not None
        and o.visible >= _MIN_PX
        and o.share >= (0.5 if lenient else _VISIBLE_MIN)
        and o.in_frame >= (0.5 if lenient else _IN_FRAME_MIN)
        and o.contrast >= _CONTRAST_MIN
    )


def judge(spec: SceneSpec, seen: Mapping[tuple[str, int], Any]) -> dict[str, Any]:
    """The clues an image shows, from what its rendering shows of each clue object.

    ``seen`` maps ``(kind, index)`` to the measurements of :func:`geolib.world.render._observe`
    (``visible`` and ``drawn`` px, ``share`` = visible / drawn, ``in_frame``, ``width``/``height``
    of the drawn shapes, ``contrast`` in the finished image, ``em`` of text, ``flat`` of facade
    signs), at :data:`REFERENCE_SIZE` px. An object counts when at least 75 % of what was drawn of
    it still shows (50 % for cars and trees), at least 70 % of it is in the frame (50 % for cars and
    trees), and its contrast with its surroundings after fog and light is at least 24 (RGB
    distance). A sign's script counts when its text shows (75 % of the glyph pixels visible, glyphs
    against the face at a contrast of at least 48) at an em of at least 9 px, its language from
    13 px. Markers need 12 px (bollards 16 px), direction-sign colours a 12-px sign, cars a 10-px
    width, plate colours an 8-px plate and bands an 18-px one.

    Returns:
        :func:`describe_scene`'s dict.
    """
    clues: set[str] = set()
    legible: list[int] = []
    for i, s in enumerate(spec.signs):
        face, text = seen.get(("sign", i)), seen.get(("text", i))
        if face is None or not _shows(_Whole(face, text)):
            continue
        if s.mount == "facade" and face.flat < _FLAT_MIN:  # seen too obliquely
            continue
        if s.kind == "direction" and s.colour_name and face.height >= _SIGN_COLOUR_MIN_PX:
            clues.add(f"direction_sign:{s.colour_name}")
        if (
            text is None
            or text.em < _SCRIPT_MIN_EM
            or text.visible < _TEXT_MIN_PX
            or text.share < _VISIBLE_MIN
            or text.contrast < _TEXT_CONTRAST_MIN
        ):
            continue
        legible.append(i)
        for line in s.lines:
            if in_script(line.text, line.script):
                clues.add(f"script:{line.script}")
                if text.em >= _LANGUAGE_MIN_EM:
                    clues.add(f"language:{clue_language(line.lang)}")
    for i, c in enumerate(spec.cars):
        o = seen.get(("car", i))
        if not _shows(o, lenient=True) or o.width < _CAR_MIN_PX:
            continue
        clues.add(f"driving_side:{spec.driving_side}")
        plate = seen.get(("plate", i))
        if c.plate is not None and _shows(plate, lenient=True):
            colour, band = c.plate
            if plate.width >= _PLATE_MIN_PX and colour != "white":
                clues.add(f"plate:{colour}")
            if band and plate.width >= _PLATE_BAND_MIN_PX:
                clues.add("plate:blue_band" if band == "eu" else "plate:mercosur")
    for i, m in enumerate(spec.markers):
        o = seen.get(("marker", i))
        need = _BOLLARD_MIN_PX if m.kind == "bollard" else _MARKER_MIN_PX
        if _shows(o) and max(o.width, o.height) >= need:
            clues.add(f"{m.kind if m.kind == 'bollard' else m.kind + '_sign'}:{m.style}")
    road = spec.road
    if road is not None:
        for kind, colour in (("centre_line", road.centre_line), ("edge_line", road.edge_line)):
            o = seen.get((kind, 0))
            if colour and o is not None and o.visible >= _LINE_MIN_PX and o.contrast >= _CONTRAST_MIN:
                clues.add(f"{kind}:{colour}")
    veg = _visible_vegetation(spec, seen)
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


class _Whole:
    """A sign's face and its text measured together."""

    def __init__(self, face, text):
        parts = [p for p in (face, text) if p is not None]
        self.visible = sum(p.visible for p in parts)
        drawn = sum(p.drawn for p in parts)
        self.share = self.visible / drawn if drawn else 0.0
        self.in_frame = face.in_frame
        self.contrast = face.contrast


def _visible_vegetation(spec: SceneSpec, seen: Mapping[tuple[str, int], Any]) -> str | None:
    kind = {"tropical": "palm", "boreal": "conifer", "temperate": "deciduous"}.get(spec.vegetation)
    if kind:
        n = 0
        for i, t in enumerate(spec.trees):
            o = seen.get(("tree", i))
            if t.kind == kind and _shows(o, lenient=True) and o.height >= (22 if kind == "palm" else 18):
                n += 1
        return spec.vegetation if n >= (1 if kind == "palm" else 2) else None
    # arid: open bare ground in view
    o = seen.get(("ground", 0))
    if (
        spec.layout in ("street", "open")
        and spec.scene != "urban"
        and o is not None
        and o.visible >= _GROUND_MIN_SHARE * REFERENCE_SIZE**2
        and o.contrast >= _CONTRAST_MIN
    ):
        return "arid"
    return None
