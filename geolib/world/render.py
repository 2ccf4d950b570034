"""Rendering of demo-world scenes: the image, its exact ADE20K segmentation mask and what it shows.

Used by notebook ``00_data`` (the demo world's pool, through :func:`geolib.world.build_world`, and
its clue atlas); the pool's images then feed notebooks 01-08. :func:`render_scene` draws a
:class:`~geolib.world.scene.SceneSpec` on a :class:`_Canvas` (image, mask, in fog depth, and at
:data:`~geolib.world.scene.REFERENCE_SIZE` an object-id map, all drawn with the same shapes): sky,
mountains and tree line, ground and road markings, then buildings, trees, poles, markers, cars and
signs in painter's order (:mod:`geolib.world.draw`), then fog and brightness. Mask values are
ADE20K-150 class indices looked up by name (:func:`ade_index`).

The id map gives every clue object (a sign's face and its text, a car and its plate, a warning or
speed sign, a bollard, a tree, the centre and edge lines, bare ground) its own integer, drawn with
the object's shapes in the same order, so nearer things overwrite it as they overwrite its pixels.
:func:`_observe` then measures each object on the finished image (after fog and light): how many of
its pixels were drawn in the frame and how many are still visible, its size, its contrast with its
surroundings (or, for text, with the sign's face) and the em of its text; :func:`~geolib.world.clues.judge`
turns these measurements into the clue labels.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw

from geolib.segmentation import ADE20K_CLASSES, class_index
from geolib.world.clues import _View, describe_scene, judge
from geolib.world.draw import depth_code, draw_scene
from geolib.world.scene import REFERENCE_SIZE, SceneSpec


_FOG_HIDDEN = 0.15  # contrast below which a fogged pixel is labelled sky in the mask


# ---------------------------------------------------------------------------------------------
# ADE20K classes
# ---------------------------------------------------------------------------------------------


def ade_classes() -> tuple[str, ...]:
    """The 150 ADE20K class names in index order (:data:`geolib.segmentation.ADE20K_CLASSES`)."""
    return ADE20K_CLASSES


def ade_index(name: str) -> int:
    """Index of an ADE20K class by its name or one of its synonyms (``"road"``, ``"sidewalk"``);
    :func:`geolib.segmentation.class_index`.

    Raises:
        ValueError: the name is no class name or synonym.
    """
    return class_index(name)


# fmt: off
_CLASS_NAMES = {
    "wall": "wall", "building": "building", "sky": "sky", "tree": "tree", "road": "road",
    "grass": "grass", "sidewalk": "sidewalk", "earth": "earth", "mountain": "mountain",
    "house": "house", "field": "field", "car": "car", "column": "column", "signboard": "signboard",
    "sand": "sand", "palm": "palm", "plant": "plant", "street_lamp": "street lamp", "pole": "pole",
    "flag": "flag", "dirt_track": "dirt track", "fence": "fence",
}
# fmt: on


@functools.cache
def _cls() -> dict[str, int]:
    return {k: ade_index(v) for k, v in _CLASS_NAMES.items()}


# ---------------------------------------------------------------------------------------------
# Drawing: the canvas, the scene (geolib.world.draw), fog and light
# ---------------------------------------------------------------------------------------------


class _Seen:
    """One clue object (or part of one) in the id map: what was drawn of it, then what shows.

    Filled while drawing (``kind``, ``ref``: index in its spec list, ``parent``: the id of the object
    a part belongs to, the bounding box of its shapes in px, unclipped, the pixels drawn of it in the
    frame, the text em in px) and by :func:`_observe` (visible pixels, contrast)."""

    __slots__ = ("kind", "ref", "parent", "box", "drawn", "in_frame", "visible", "contrast", "em", "flat")

    def __init__(self, kind: str, ref: int, parent: int):
        self.kind, self.ref, self.parent = kind, ref, parent
        self.box = [math.inf, math.inf, -math.inf, -math.inf]
        self.drawn = 0
        self.in_frame = 0.0
        self.visible = 0
        self.contrast = 0.0
        self.em = 0.0  # text: em size of the drawn glyphs (px)
        self.flat = 1.0  # facade signs: drawn width / width seen face-on

    @property
    def width(self) -> float:
        return max(0.0, self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return max(0.0, self.box[3] - self.box[1])

    @property
    def share(self) -> float:
        """Share of the drawn pixels still visible (not overdrawn by nearer things)."""
        return self.visible / self.drawn if self.drawn else 0.0


class _Canvas:
    """Image, mask, (for fog) depth and (when ``measure``) object ids drawn with the same shapes.

    With ``measure``, every shape that carries a class (and every shape of an open clue object)
    writes the current object id (:meth:`open`; 0 outside clue objects) into ``ids``, so that after
    drawing, ``ids`` holds the id of the object each pixel shows.
    """

    def __init__(self, spec: SceneSpec, size: int, measure: bool = False):
        self.spec = spec
        self.S = size
        self.v = _View(spec.camera, size)
        self.C = _cls()
        self.fog = spec.fog is not None
        S = size
        rows = np.linspace(0.0, 1.0, S, dtype=np.float32)[:, None]
        hz = max(spec.camera.horizon, 0.05)
        t = np.clip(rows / hz, 0, 1)
        top, bot = np.array(spec.sky_top, np.float32), np.array(spec.sky_bottom, np.float32)
        col = (top * (1 - t) + bot * t + 0.5).astype(np.uint8)  # (S, 3)
        self.img = Image.fromarray(col[:, None, :], "RGB").resize((S, S), Image.Resampling.NEAREST)
        self.mask = Image.new("L", (S, S), self.C["sky"])
        self.di = ImageDraw.Draw(self.img)
        self.dm = ImageDraw.Draw(self.mask)
        if self.fog:
            d = np.full((S, S), 255, np.uint8)
            vr = np.arange(S, dtype=np.float64) + 0.5 - self.v.v0
            with np.errstate(divide="ignore"):
                zrow = np.where(vr > 0, self.v.f * self.v.hc / np.maximum(vr, 1e-9), np.inf)
            codes = np.array([depth_code(z) if np.isfinite(z) else 255 for z in zrow], np.uint8)
            d[:] = codes[:, None]
            self.depth = Image.fromarray(d, "L")
            self.dd = ImageDraw.Draw(self.depth)
        self.measure = measure
        self.cur = 0  # id that shapes write now (0: no clue object)
        self.seen: list[_Seen | None] = [None]  # by id
        self._open: list[int] = []
        if measure:
            self.ids = Image.new("I", (S, S), 0)
            self.did = ImageDraw.Draw(self.ids)

    # -- object ids ------------------------------------------------------------------------------

    def open(self, kind: str, ref: int = 0, part_of: int = 0) -> int:
        """Start a clue object (or a part of the object ``part_of``): later shapes write its id."""
        if not self.measure:
            return 0
        self.seen.append(_Seen(kind, ref, part_of))
        self.cur = len(self.seen) - 1
        self._open.append(self.cur)
        return self.cur

    def close(self) -> None:
        """End the open object and its parts: count the pixels drawn of each in the frame."""
        S = self.S
        for i in self._open:
            o = self.seen[i]
            x0, y0, x1, y1 = o.box
            if not x1 > x0 or not y1 > y0:
                continue
            a, b = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
            c, d = min(S, int(math.ceil(x1)) + 1), min(S, int(math.ceil(y1)) + 1)
            w, h = max(0.0, min(x1, S) - max(x0, 0.0)), max(0.0, min(y1, S) - max(y0, 0.0))
            o.in_frame = w * h / ((x1 - x0) * (y1 - y0))
            if c > a and d > b:
                o.drawn = int((np.asarray(self.ids.crop((a, b, c, d))) == i).sum())
        self._open = []
        self.cur = 0

    def _grow(self, xs, ys) -> None:
        box = self.seen[self.cur].box
        box[0], box[1] = min(box[0], min(xs)), min(box[1], min(ys))
        box[2], box[3] = max(box[2], max(xs)), max(box[3], max(ys))

    # -- shapes ----------------------------------------------------------------------------------

    def poly(self, pts, rgb, cls: str | None, z: float | None = None) -> None:
        self.di.polygon(pts, fill=rgb)
        if cls is not None:
            self.dm.polygon(pts, fill=self.C[cls])
        if z is not None and self.fog:
            self.dd.polygon(pts, fill=depth_code(z))
        if self.measure and (cls is not None or self.cur):
            self.did.polygon(pts, fill=self.cur)
            if self.cur:
                self._grow([q[0] for q in pts], [q[1] for q in pts])

    def ellipse(self, box, rgb, cls: str | None, z: float | None = None) -> None:
        self.di.ellipse(box, fill=rgb)
        if cls is not None:
            self.dm.ellipse(box, fill=self.C[cls])
        if z is not None and self.fog:
            self.dd.ellipse(box, fill=depth_code(z))
        if self.measure and (cls is not None or self.cur):
            self.did.ellipse(box, fill=self.cur)
            if self.cur:
                self._grow((box[0], box[2]), (box[1], box[3]))

    def front_rect(self, x0, x1, y0, y1, z, rgb, cls, depth=True):
        (a, b), (c, d) = self.v.p(x0, y1, z), self.v.p(x1, y0, z)
        self.poly([(a, b), (c, b), (c, d), (a, d)], rgb, cls, z if depth else None)

    def ground_quad(self, x0, x1, z0, z1, rgb, cls):
        p = self.v.p
        self.poly([p(x0, 0, z0), p(x1, 0, z0), p(x1, 0, z1), p(x0, 0, z1)], rgb, cls)


def render_scene(
    spec: SceneSpec, image_size: int = 224, describe: bool = True
) -> tuple[Image.Image, np.ndarray, dict]:
    """Draw a scene and its exact segmentation, and say which clues the image shows.

    Args:
        spec: From :func:`scene_spec`.
        image_size: Side of the square image (px).
        describe: Judge the clues (False: ``meta`` holds only ``building_fraction``; the clue atlas
            needs only the pictures).

    Returns:
        ``(image, mask, meta)``: an RGB image (image_size × image_size), a uint8 mask of the same
        size whose values are ADE20K-150 class indices (drawn with the image's own shapes; in fog,
        pixels left with less than 15 % contrast show only haze and are labelled sky), and
        :func:`~geolib.world.clues.describe_scene`'s dict plus ``building_fraction`` (share of
        pixels of class building). The clues are measured on this very rendering when
        ``image_size`` is :data:`REFERENCE_SIZE`, else on one at that size (clue labels do not
        depend on the image size).
    """
    if not isinstance(image_size, (int, np.integer)) or image_size < 16:
        raise ValueError(f"image_size must be an integer >= 16, got {image_size!r}")
    cv = _Canvas(spec, int(image_size), measure=describe and int(image_size) == REFERENCE_SIZE)
    draw_scene(cv)
    img = _finish(cv)
    mask = np.asarray(cv.mask, dtype=np.uint8).copy()
    if cv.measure:
        meta = judge(spec, _observe(cv, img))
    else:
        meta = describe_scene(spec) if describe else {}
    meta["building_fraction"] = float((mask == cv.C["building"]).mean())
    return img, mask, meta


# ---------------------------------------------------------------------------------------------
# What the finished image shows of each clue object
# ---------------------------------------------------------------------------------------------

_RING_PX = 2  # width of the ring of surrounding pixels an object's contrast is measured against


def _dilate(m: np.ndarray, r: int) -> np.ndarray:
    out = m
    for _ in range(r):
        t = out.copy()
        t[1:] |= out[:-1]
        t[:-1] |= out[1:]
        t[:, 1:] |= out[:, :-1]
        t[:, :-1] |= out[:, 1:]
        out = t
    return out


def _observe(cv: _Canvas, img: Image.Image) -> dict[tuple[str, int], _Seen]:
    """Measure every clue object of a measured canvas on the finished image ``img``.

    Sets each :class:`_Seen`'s ``visible`` (pixels whose id is still the object's) and ``contrast``:
    the distance (RGB, 0–441) between the mean colour of its visible pixels and that of a ring of
    pixels around it (the object's parts excluded), or its own colour spread where that is larger
    (a red-bordered triangle on a red wall); for text, between the mean colour of the visible
    glyph pixels and that of the visible face of its sign. Fog and light are in ``img``, so thick
    fog leaves no contrast.

    Returns:
        ``{(kind, ref): _Seen}``; kinds: ``sign``, ``text`` (ref: the sign's index), ``car``,
        ``plate`` (the car's index), ``marker``, ``tree``, ``centre_line``, ``edge_line``, ``ground``.
    """
    S = cv.S
    ids = np.asarray(cv.ids)
    counts = np.bincount(ids.ravel(), minlength=len(cv.seen))
    rgb = np.asarray(img, dtype=np.float32)
    kids: dict[int, list[int]] = {}
    for i in range(1, len(cv.seen)):
        o = cv.seen[i]
        if o.parent:
            kids.setdefault(o.parent, []).append(i)
    out: dict[tuple[str, int], _Seen] = {}
    means: dict[int, np.ndarray] = {}
    for i in range(1, len(cv.seen)):
        o = cv.seen[i]
        out[(o.kind, o.ref)] = o
        o.visible = int(counts[i])
        if not o.visible:
            continue
        x0, y0, x1, y1 = o.box
        r = _RING_PX
        a, b = max(0, int(math.floor(x0)) - r), max(0, int(math.floor(y0)) - r)
        c, d = min(S, int(math.ceil(x1)) + 1 + r), min(S, int(math.ceil(y1)) + 1 + r)
        block, col = ids[b:d, a:c], rgb[b:d, a:c]
        own = block == i
        px = col[own]
        mean = px.mean(axis=0)
        means[i] = mean
        if o.kind == "text":  # glyphs against their sign's face (drawn before them: its mean is known)
            face = means.get(o.parent)
            o.contrast = float(np.linalg.norm(mean - face)) if face is not None else 0.0
            continue
        family = own
        for k in kids.get(i, ()):
            family = family | (block == k)
        ring = _dilate(family, r) & ~family
        spread = float(np.sqrt(((px - mean) ** 2).sum(axis=1).mean()))
        edge = float(np.linalg.norm(mean - col[ring].mean(axis=0))) if ring.any() else 0.0
        o.contrast = max(edge, spread)
    return out


@functools.lru_cache(maxsize=512)
def _observations(spec: SceneSpec) -> dict[tuple[str, int], _Seen]:
    """What a rendering of ``spec`` at :data:`REFERENCE_SIZE` shows of each clue object, for
    :func:`describe_scene` without a rendering at hand (cached by spec)."""
    cv = _Canvas(spec, REFERENCE_SIZE, measure=True)
    draw_scene(cv)
    return _observe(cv, _finish(cv))


def _finish(cv: _Canvas) -> Image.Image:
    spec = cv.spec
    if not cv.fog and abs(spec.brightness - 1.0) < 1e-6:
        return cv.img
    if not cv.fog:  # brightness only: a lookup table
        lut = [min(255, int(i * spec.brightness + 0.5)) for i in range(256)]
        return cv.img.point(lut * 3)
    arr = np.asarray(cv.img, dtype=np.float32)
    code = np.asarray(cv.depth, dtype=np.float32)
    t = np.exp(-3.0 * (np.exp2(code / 30.0) - 1.0) / spec.fog)
    t[code >= 255] = 0.0
    # where fog leaves almost no contrast the pixel shows only haze, which ADE20K annotates as sky
    mask = np.asarray(cv.mask).copy()
    mask[t < _FOG_HIDDEN] = cv.C["sky"]
    cv.mask = Image.fromarray(mask, "L")
    arr = arr * t[..., None] + np.array(spec.fog_colour, np.float32) * (1.0 - t[..., None])
    arr *= spec.brightness
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")
