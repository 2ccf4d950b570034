"""Drawing a demo-world scene on the renderer's canvas: painter's order and each kind of object.

Part of :func:`geolib.world.render_scene` (:mod:`geolib.world.render`), which makes the demo
world's images and masks for notebooks ``00_data`` to ``08_read_the_signs`` (and the clue atlas of
``00_data``). :func:`draw_scene` draws sky, mountains and tree line, ground and road markings,
then buildings, trees, poles, markers, cars and signs far to near, each with the same shapes in
the image, the ADE20K mask, the fog depth and (when measuring) the object-id map of the canvas.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from geolib.world.lettering import _line_mask, _TEXT_LADDER
from geolib.world.scene import _LINE_RGB, _PLATE_RGB, RGB, Building, Car, Marker, Pole, Sign, Tree

if TYPE_CHECKING:
    from geolib.world.render import _Canvas


def depth_code(z: float) -> int:
    """Fog-depth code of a distance ``z`` from the camera: 30·log2(1 + z) rounded, at most 254 (255: infinity)."""
    return int(min(254, max(0, round(30 * math.log2(1 + z)))))


def draw_scene(cv: _Canvas) -> None:
    spec = cv.spec
    _draw_background(cv)
    _draw_ground(cv)
    # Painter's order. Side facades come first (everything else stands between them and the road),
    # together with buildings across the view that lie behind every object; then the rest far to near.
    depths = [o.z for o in (*spec.trees, *spec.poles, *spec.cars, *spec.signs, *spec.markers)]
    far = max(depths, default=0.0)
    first = [b for b in spec.buildings if b.side != 0 or b.z0 > far]
    for b in sorted(first, key=lambda b: -b.z0):
        _draw_building(cv, b)
    objects: list[tuple[float, int, Any, int]] = [
        (b.z0, -1, b, 0) for b in spec.buildings if b.side == 0 and b.z0 <= far
    ]
    for i, o in enumerate(spec.trees):
        objects.append((o.z, 0, o, i))
    for o in spec.poles:
        objects.append((o.z, 1, o, 0))
    for i, o in enumerate(spec.markers):
        objects.append((o.z, 1, o, i))
    for i, o in enumerate(spec.cars):
        objects.append((o.z, 2, o, i))
    for i, o in enumerate(spec.signs):
        objects.append((o.z + (o.width / 2 if o.mount == "facade" else 0.0), 3, o, i))
    objects.sort(key=lambda t: (-t[0], t[1]))
    for _, _, o, i in objects:
        if isinstance(o, Building):
            _draw_building(cv, o)
        elif isinstance(o, Tree):
            _draw_tree(cv, o, i)
        elif isinstance(o, Pole):
            _draw_pole(cv, o)
        elif isinstance(o, Car):
            _draw_car(cv, o, i)
        elif isinstance(o, Marker):
            _draw_marker(cv, o, i)
        else:
            _draw_sign(cv, o, i)


# ---------------------------------------------------------------------------------------------
# Each kind of object
# ---------------------------------------------------------------------------------------------


def _draw_background(cv: _Canvas) -> None:
    spec, S, v = cv.spec, cv.S, cv.v
    for u, vv, rx, ry in spec.clouds:
        cy = vv * spec.camera.horizon * S
        cv.ellipse((u * S - rx * S, cy - ry * S, u * S + rx * S, cy + ry * S), (238, 240, 244), "sky")
    xs = np.linspace(-0.05, 1.05, 48)
    for m in spec.mountains:
        ph = m.phases
        prof = (
            0.55
            + 0.25 * np.sin(2 * np.pi * 1.3 * xs + ph[0])
            + 0.15 * np.sin(2 * np.pi * 3.1 * xs + ph[1])
            + 0.05 * np.sin(2 * np.pi * 7.7 * xs + ph[2])
        )
        ys = v.v0 - m.height * S * prof
        top = [(float(x * S), float(y)) for x, y in zip(xs, ys)]
        cv.poly(top + [(1.05 * S, v.v0 + 1), (-0.05 * S, v.v0 + 1)], m.colour, "mountain", 400.0)
        if m.snow > 0:
            snow_y = v.v0 - m.height * S * (1 - m.snow) * 0.95
            bottom = [(float(x * S), float(max(y, snow_y))) for x, y in zip(xs, ys)]
            cv.poly(top + bottom[::-1], (240, 242, 245), "mountain", 400.0)
    if spec.treeline > 0:
        rng = np.random.default_rng(spec.text_seed + 1)
        bumps = spec.treeline * S * (0.6 + 0.4 * rng.random(40))
        top = [(float(x), float(v.v0 - h)) for x, h in zip(np.linspace(-2, S + 2, 40), bumps)]
        cv.poly(top + [(S + 2, v.v0 + 1), (-2, v.v0 + 1)], spec.treeline_colour, "tree", 300.0)


def _draw_ground(cv: _Canvas) -> None:
    spec, S, v = cv.spec, cv.S, cv.v
    g = spec.ground
    cls = {"grass": "grass", "earth": "earth", "sand": "sand", "field": "field", "sidewalk": "sidewalk"}[g]
    if g in ("earth", "sand"):  # bare ground: the arid clue
        cv.open("ground")
    cv.poly([(-1, v.v0), (S + 1, v.v0), (S + 1, S + 1), (-1, S + 1)], spec.ground_colour, cls)
    cv.close()
    zn, zf = v.z_near, 600.0
    if g == "field":  # furrowed strips beyond the verges
        c2 = tuple(int(c * 0.85) for c in spec.ground_colour)
        for k, z in enumerate(np.geomspace(12, 400, 14)):
            if k % 2:
                cv.ground_quad(-400, 400, z, z * 1.28, c2, "field")
    road = spec.road
    if road is None:
        return
    hw = road.half_width
    if road.verge > 0:
        for sgn in (-1, 1):
            x0, x1 = sorted((sgn * hw, sgn * (hw + road.verge)))
            cv.ground_quad(x0, x1, zn, zf, _mix(spec.ground_colour, (90, 140, 60), 0.5), "grass")
    if road.sidewalk > 0:
        for sgn in (-1, 1):
            x0, x1 = sorted((sgn * (hw + road.verge), sgn * (hw + road.verge + road.sidewalk)))
            cv.ground_quad(x0, x1, zn, zf, road.sidewalk_colour, "sidewalk")
            k0, k1 = sorted((sgn * hw, sgn * (hw + 0.25)))
            if road.verge == 0:
                cv.ground_quad(k0, k1, zn, zf, _mix(road.sidewalk_colour, (230, 230, 225), 0.5), "sidewalk")
    cv.ground_quad(-hw, hw, zn, zf, road.surface, "road" if road.paved else "dirt_track")
    if road.centre_line:
        cv.open("centre_line")
        col = _LINE_RGB[road.centre_line]
        w = 0.16
        if road.centre_style == "double":
            for off in (-0.17, 0.17):
                cv.ground_quad(off - w / 2, off + w / 2, zn, 400, col, "road")
        elif road.centre_style == "solid":
            cv.ground_quad(-0.15, 0.15, zn, 400, col, "road")
        else:
            z = zn
            while z < 150:
                cv.ground_quad(-0.15, 0.15, z, z + 3.0, col, "road")
                z += 9.0
        cv.close()
    if road.edge_line:
        cv.open("edge_line")
        col = _LINE_RGB[road.edge_line]
        for sgn in (-1, 1):
            x0, x1 = sorted((sgn * (hw - 0.15), sgn * (hw - 0.4)))
            cv.ground_quad(x0, x1, zn, 400, col, "road")
        cv.close()


def _mix(a, b, t) -> RGB:
    return tuple(int(round(x * (1 - t) + y * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def _shade(c, f) -> RGB:
    return tuple(int(max(0, min(255, round(x * f)))) for x in c)  # type: ignore[return-value]


def _draw_building(cv: _Canvas, b: Building) -> None:
    p = cv.v.p
    cls = b.kind
    if b.side == 0:  # faces the camera
        z = b.z0
        cv.front_rect(b.x0, b.x1, 0, b.height, z, b.colour, cls)
        if b.dome > 0:
            cx = (b.x0 + b.x1) / 2
            a, top = p(cx - b.dome, b.height + b.dome * 1.4, z + 5)
            c, bot = p(cx + b.dome, b.height - b.dome * 0.2, z + 5)
            cv.ellipse((a, top, c, bot + (bot - top) * 0.0), _shade(b.colour, 0.9), cls, z)
            cv.front_rect(
                cx - b.dome * 0.15,
                cx + b.dome * 0.15,
                b.height + b.dome * 1.2,
                b.height + b.dome * 1.7,
                z + 5,
                _shade(b.colour, 0.8),
                cls,
            )
        if b.kind in ("wall", "fence"):
            _wall_texture(cv, b)
        else:
            _front_windows(cv, b)
        if b.columns:  # steps, pediment and a portico of columns
            cx = (b.x0 + b.x1) / 2
            half = (b.x1 - b.x0) * 0.3
            cv.front_rect(cx - half - 1.5, cx + half + 1.5, 0, 1.2, z - 3.0, _shade(b.colour, 0.92), cls)
            cv.front_rect(cx - half - 1.0, cx + half + 1.0, 0, 0.6, z - 3.6, _shade(b.colour, 0.85), cls)
            cv.poly(
                [
                    p(cx - half, b.height, z - 0.5),
                    p(cx + half, b.height, z - 0.5),
                    p(cx, b.height + half * 0.35, z - 0.5),
                ],
                _shade(b.colour, 1.05),
                cls,
                z - 0.5,
            )
            cv.front_rect(cx - half, cx + half, b.height * 0.82, b.height, z - 0.5, _shade(b.colour, 1.03), cls)
            cv.front_rect(
                cx - half, cx + half, 1.2, b.height * 0.82, z - 0.4, _shade(b.colour, 0.6), cls
            )  # portico shade
            for k in range(b.columns):
                x = cx - half * 0.9 + k * (1.8 * half / max(b.columns - 1, 1))
                cv.front_rect(x - 0.7, x + 0.7, 1.2, b.height * 0.82, z - 2.0, _shade(b.colour, 1.12), "column")
        return
    x, x_back = b.x0, b.x1
    # front face (towards the camera) at z0, then the facade along the road
    front = [p(x, 0, b.z0), p(x_back, 0, b.z0), p(x_back, b.height, b.z0), p(x, b.height, b.z0)]
    cv.poly(front, _shade(b.colour, 0.82), cls, b.z0)
    facade = [p(x, 0, b.z0), p(x, b.height, b.z0), p(x, b.height, b.z1), p(x, 0, b.z1)]
    cv.poly(facade, b.colour, cls, (b.z0 + b.z1) / 2)
    if b.roof > 0:
        xr = (x + x_back) / 2
        roof = [
            p(x, b.height, b.z0),
            p(x, b.height, b.z1),
            p(xr, b.height + b.roof, b.z1),
            p(xr, b.height + b.roof, b.z0),
        ]
        cv.poly(roof, b.roof_colour, cls, (b.z0 + b.z1) / 2)
        gable = [p(x, b.height, b.z0), p(x_back, b.height, b.z0), p(xr, b.height + b.roof, b.z0)]
        cv.poly(gable, _shade(b.colour, 0.82), cls, b.z0)
    _side_windows(cv, b)


def _side_windows(cv: _Canvas, b: Building) -> None:
    v, p = cv.v, cv.v.p
    if b.window_every <= 0 or b.style == "plain":
        return
    fh = b.floor_height
    floors = max(1, int((b.height - 0.5) // fh))
    x = b.x0
    dark = _shade(b.colour, 0.55)
    if b.shopfront and b.kind == "building":  # ground-floor glass
        z = b.z0 + 0.8
        while z + 2.5 < b.z1 and v.px(1.0, z) > 0.8:
            cv.poly(
                [p(x, 0.3, z), p(x, 2.6, z), p(x, 2.6, z + 2.6), p(x, 0.3, z + 2.6)], _shade(b.window_colour, 0.8), None
            )
            z += 3.4
    start = 1 if b.kind == "building" else 0
    for f in range(start, floors):
        y0, y1 = f * fh + 0.9, f * fh + fh - 0.6
        if b.style == "bands":
            zs = [(b.z0 + 0.5, b.z1 - 0.5)]
        else:
            zs = []
            z = b.z0 + b.window_every * 0.5
            while z + 1.2 < b.z1:
                zs.append((z - 0.6, z + 0.6))
                z += b.window_every
        for za, zb in zs:
            if v.px(zb - za, za) * abs(x - v.xc) / max(za, 1) < 0.6 and v.px(1.0, za) < 1.2:
                break
            cv.poly(
                [p(x, y0, za), p(x, y1, za), p(x, y1, zb), p(x, y0, zb)],
                b.window_colour if f % 2 or b.style != "grid" else _mix(b.window_colour, dark, 0.3),
                None,
            )


def _front_windows(cv: _Canvas, b: Building) -> None:
    if b.window_every <= 0 or b.style == "plain":
        return
    fh = b.floor_height
    floors = max(1, int((b.height - 0.5) // fh))
    z = b.z0
    if b.shopfront:
        xg = b.x0 + 0.6
        while xg + 2.6 < b.x1:
            cv.front_rect(xg, xg + 2.6, 0.3, 2.6, z, _shade(b.window_colour, 0.8), None, depth=False)
            xg += 3.4
    for f in range(1, floors):
        y0, y1 = f * fh + 0.9, f * fh + fh - 0.6
        if b.style == "bands":
            cv.front_rect(b.x0 + 0.5, b.x1 - 0.5, y0, y1, z, b.window_colour, None, depth=False)
            continue
        xw = b.x0 + b.window_every * 0.5
        while xw + 0.6 < b.x1:
            cv.front_rect(xw - 0.6, xw + 0.6, y0, y1, z, b.window_colour, None, depth=False)
            xw += b.window_every


def _wall_texture(cv: _Canvas, b: Building) -> None:
    """Planks, bricks or panels on a close wall or fence (image only; the mask keeps the class)."""
    p = cv.v.p
    dark = _shade(b.colour, 0.8)
    z = b.z0
    if b.kind == "fence":  # vertical planks
        x = b.x0
        while x < b.x1:
            (a, top), (c, bot) = p(x, b.height, z), p(x + 0.04, 0, z)
            cv.di.rectangle([a, top, max(a, c), bot], fill=dark)
            x += 0.18
        return
    if b.style == "plain":
        return
    step = 0.3 if b.style == "brick" else 1.2
    y, row = 0.0, 0
    while y < b.height:
        (a, vy), (c, _) = p(b.x0, y, z), p(b.x1, y, z)
        cv.di.line([(a, vy), (c, vy)], fill=dark, width=1)
        if cv.v.px(step, z) > 4:
            x = b.x0 + (0.3 * (row % 2) if b.style == "brick" else 0.0)
            w = 0.6 if b.style == "brick" else 2.0
            while x < b.x1:
                (u, v0), (_, v1) = p(x, y + step, z), p(x, y, z)
                cv.di.line([(u, v0), (u, v1)], fill=dark, width=1)
                x += w
        y += step
        row += 1


def _draw_tree(cv: _Canvas, t: Tree, ref: int = 0) -> None:
    cv.open("tree", ref)
    _tree_shapes(cv, t)
    cv.close()


def _tree_shapes(cv: _Canvas, t: Tree) -> None:
    p = cv.v.p
    z = t.z
    trunk = _shade((95, 75, 55), 1.0)
    if t.kind == "palm":
        top_x = t.x + t.lean * t.height
        w = 0.18
        cv.poly(
            [p(t.x - w, 0, z), p(t.x + w, 0, z), p(top_x + w * 0.7, t.height, z), p(top_x - w * 0.7, t.height, z)],
            (120, 100, 70),
            "palm",
            z,
        )
        r = t.width / 2
        for k in range(8):
            a = math.pi * (0.1 + 0.8 * k / 7)
            dx, dy = math.cos(a) * r, math.sin(a) * r * 0.35 - 0.25 * r
            tip = (top_x + dx, t.height + dy)
            mid = (top_x + dx * 0.5, t.height + max(dy, 0) * 0.5 + 0.35 * r * 0.4)
            side = 0.18 * r
            cv.poly(
                [p(top_x, t.height, z), p(mid[0], mid[1] + side, z), p(*tip, z), p(mid[0], mid[1] - side, z)],
                _shade(t.colour, 0.9 + 0.2 * (k % 2)),
                "palm",
                z,
            )
        return
    if t.kind == "conifer":
        cv.front_rect(t.x - 0.15, t.x + 0.15, 0, t.height * 0.2, z, trunk, "tree")
        for k, (y0, y1, wf) in enumerate(((0.12, 0.6, 1.0), (0.35, 0.82, 0.75), (0.58, 1.0, 0.5))):
            hw = t.width / 2 * wf
            cv.poly(
                [p(t.x - hw, t.height * y0, z), p(t.x + hw, t.height * y0, z), p(t.x, t.height * y1, z)],
                _shade(t.colour, 0.9 + 0.08 * k),
                "tree",
                z,
            )
        return
    if t.kind == "shrub":
        (a, b), (c, d) = p(t.x - t.width / 2, t.height, z), p(t.x + t.width / 2, 0, z)
        cv.ellipse((a, b, c, d), t.colour, "plant", z)
        return
    cv.front_rect(t.x - 0.18, t.x + 0.18, 0, t.height * 0.5, z, trunk, "tree")
    r = t.width / 2
    for k, (dx, dy, rf) in enumerate(((0.0, 0.68, 1.0), (-0.45, 0.58, 0.7), (0.45, 0.6, 0.72), (0.1, 0.85, 0.6))):
        cx, cy, rr = t.x + dx * r, t.height * dy, r * rf
        (a, b), (c, d) = p(cx - rr, cy + rr * 0.9, z), p(cx + rr, cy - rr * 0.9, z)
        cv.ellipse((a, b, c, d), _shade(t.colour, 0.88 + 0.07 * k), "tree", z)


def _draw_pole(cv: _Canvas, o: Pole) -> None:
    z = o.z
    if o.kind == "lamp":
        cv.front_rect(o.x - 0.1, o.x + 0.1, 0, o.height, z, o.colour, "street_lamp")
        x2 = o.x + o.arm
        a, b = sorted((o.x, x2))
        cv.front_rect(a, b, o.height - 0.12, o.height, z, o.colour, "street_lamp")
        cv.front_rect(x2 - 0.3, x2 + 0.3, o.height - 0.3, o.height, z, (235, 235, 210), "street_lamp")
        return
    if o.kind == "flag":
        cv.front_rect(o.x - 0.08, o.x + 0.08, 0, o.height, z, o.colour, "pole")
        n = len(o.flag_colours)
        for k, c in enumerate(o.flag_colours):
            y1 = o.height - 0.1 - k * 2.4 / n
            cv.front_rect(o.x + 0.08, o.x + 3.6, y1 - 2.4 / n, y1, z, c, "flag")
        return
    cv.front_rect(o.x - 0.13, o.x + 0.13, 0, o.height, z, o.colour, "pole")
    cv.front_rect(o.x - 0.9, o.x + 0.9, o.height - 0.7, o.height - 0.55, z, o.colour, "pole")


_WARNING_RGB = {  # (border, field)
    "yellow_diamond": ((20, 20, 20), (250, 200, 20)),
    "red_triangle": ((200, 20, 30), (248, 248, 244)),
    "red_triangle_yellow": ((200, 20, 30), (250, 205, 25)),
    "black_triangle_yellow": ((20, 20, 20), (250, 205, 25)),
}
# (body, band) and where the band is (fractions of the height)
_BOLLARD_PAINT = {
    "white_black_band": ((240, 240, 236), (20, 20, 22), (0.62, 0.85)),
    "white_black_top": ((240, 240, 236), (20, 20, 22), (0.8, 1.0)),
    "white_red_band": ((240, 240, 236), (205, 25, 30), (0.68, 0.86)),
    "black_white": ((25, 25, 28), (240, 240, 236), (0.68, 0.86)),
    "white_black_base": ((240, 240, 236), (20, 20, 22), (0.0, 0.3)),
}


def _draw_marker(cv: _Canvas, m: Marker, ref: int = 0) -> None:
    if m.kind != "bollard":  # the post is no part of the convention
        cv.front_rect(m.x - 0.05, m.x + 0.05, 0.0, m.y + m.size / 2, m.z, (120, 122, 125), "pole")
    cv.open("marker", ref)
    _marker_shapes(cv, m)
    cv.close()


def _marker_shapes(cv: _Canvas, m: Marker) -> None:
    p, z, x, s = cv.v.p, m.z, m.x, m.size
    ink = (20, 20, 20)
    if m.kind == "bollard":
        x0, x1, y0, y1 = m.box_m()
        body, band, (b0, b1) = _BOLLARD_PAINT[m.style]
        cv.front_rect(x0, x1, y0, y1, z, body, "pole")
        cv.front_rect(x0, x1, y0 + b0 * (y1 - y0), y0 + b1 * (y1 - y0), z, band, "pole", depth=False)
        if m.style != "white_black_base":  # reflector
            r = (200, 30, 30) if m.style == "white_red_band" else (245, 245, 245) if m.style != "black_white" else (250, 200, 20)
            cv.front_rect(x0 + 0.03, x1 - 0.03, y0 + 0.7 * (y1 - y0), y0 + 0.8 * (y1 - y0), z, r, None, depth=False)
        return
    y0, cy = m.y, m.y + s / 2
    if m.kind == "warning":
        border, field = _WARNING_RGB[m.style]
        if m.style == "yellow_diamond":
            outer = [p(x, y0 + s, z), p(x + s / 2, cy, z), p(x, y0, z), p(x - s / 2, cy, z)]
            k = 0.82
            inner = [p(x, cy + k * s / 2, z), p(x + k * s / 2, cy, z), p(x, cy - k * s / 2, z), p(x - k * s / 2, cy, z)]
        else:
            h = s * 0.87
            outer = [p(x, y0 + h, z), p(x + s / 2, y0, z), p(x - s / 2, y0, z)]
            k, gy = 0.62, y0 + h / 3
            inner = [p(x, gy + k * 2 * h / 3, z), p(x + k * s / 2, gy - k * h / 3, z), p(x - k * s / 2, gy - k * h / 3, z)]
            cy = gy
        cv.poly(outer, border, "signboard", z)
        cv.poly(inner, field, None)
        g = s * 0.09  # a pictogram: a bend arrow, drawn as two bars
        cv.front_rect(x - g / 2, x + g / 2, cy - 2.2 * g, cy + 1.2 * g, z, ink, None, depth=False)
        cv.front_rect(x - g / 2, x + 1.8 * g, cy + 0.6 * g, cy + 1.5 * g, z, ink, None, depth=False)
        return
    if m.style == "red_ring":
        a, b = p(x - s / 2, y0 + s, z)
        c, d = p(x + s / 2, y0, z)
        cv.ellipse((a, b, c, d), (205, 25, 30), "signboard", z)
        e = 0.16 * (c - a)
        cv.ellipse((a + e, b + e, c - e, d - e), (248, 248, 244), None)
    else:  # white rectangle, black border
        w = s * 0.78
        cv.front_rect(x - w / 2, x + w / 2, y0, y0 + s, z, ink, "signboard")
        cv.front_rect(x - w / 2 + 0.04, x + w / 2 - 0.04, y0 + 0.04, y0 + s - 0.04, z, (248, 248, 244), None, depth=False)
        for k in (0.78, 0.62):  # SPEED / LIMIT
            cv.front_rect(x - w * 0.32, x + w * 0.32, y0 + k * s, y0 + (k + 0.07) * s, z, ink, None, depth=False)
    # the number
    g = s * 0.1
    for dx in (-1.1 * g, 1.1 * g):
        cv.front_rect(x + dx - 0.6 * g, x + dx + 0.6 * g, y0 + s * 0.3, y0 + s * 0.3 + 2.6 * g, z, ink, None, depth=False)


def _draw_car(cv: _Canvas, c: Car, ref: int = 0) -> None:
    v, p = cv.v, cv.v.p
    z, x, w = c.z, c.x, c.width / 2
    # shadow on the road (image only: the pixels stay road, but road lines under it no longer show)
    (a, b), (e, d) = p(x - w * 1.05, 0.0, z - 0.3), p(x + w * 1.05, 0.0, z + 1.2)
    cv.di.ellipse((a, min(b, d) - 1, e, max(b, d) + 1), fill=(40, 40, 42))
    if cv.measure:
        cv.did.ellipse((a, min(b, d) - 1, e, max(b, d) + 1), fill=0)
    car = cv.open("car", ref)
    body = c.colour
    cv.front_rect(x - w, x - w + 0.32, 0, 0.38, z, (25, 25, 25), "car")
    cv.front_rect(x + w - 0.32, x + w, 0, 0.38, z, (25, 25, 25), "car")
    cv.front_rect(x - w, x + w, 0.25, 0.95, z, body, "car")
    cabin = [
        p(x - w * 0.92, 0.95, z),
        p(x + w * 0.92, 0.95, z),
        p(x + w * 0.72, c.height, z),
        p(x - w * 0.72, c.height, z),
    ]
    cv.poly(cabin, _shade(body, 0.92), "car", z)
    glass = [
        p(x - w * 0.82, 0.99, z),
        p(x + w * 0.82, 0.99, z),
        p(x + w * 0.68, c.height - 0.07, z),
        p(x - w * 0.68, c.height - 0.07, z),
    ]
    cv.poly(glass, (45, 55, 65) if c.facing == "away" else (70, 85, 100), None)
    light = (200, 25, 25) if c.facing == "away" else (250, 245, 215)
    for sx in (-1, 1):
        x0, x1 = sorted((x + sx * (w - 0.05), x + sx * (w - 0.38)))
        cv.front_rect(x0, x1, 0.68, 0.84, z, light, None, depth=False)
    cv.front_rect(x - w, x + w, 0.25, 0.33, z, _shade(body, 0.6), None, depth=False)
    if c.plate is not None:
        colour, band = c.plate
        cv.open("plate", ref, part_of=car)
        cv.front_rect(x - 0.26, x + 0.26, 0.38, 0.5, z, _PLATE_RGB[colour], None, depth=False)
        ink = (240, 240, 240) if colour in ("blue", "black") else (25, 25, 25)
        if v.px(0.52, z) >= 10:
            cv.front_rect(x - 0.15, x + 0.2, 0.415, 0.465, z, _mix(_PLATE_RGB[colour], ink, 0.6), None, depth=False)
        if band == "eu":
            cv.front_rect(x - 0.26, x - 0.2, 0.38, 0.5, z, (20, 50, 170), None, depth=False)
        elif band == "mercosur":
            cv.front_rect(x - 0.26, x + 0.26, 0.475, 0.5, z, (20, 50, 170), None, depth=False)
    cv.close()


def _sign_face(s: Sign, w: int, h: int, em_px: float, ink: Image.Image | None = None) -> Image.Image:
    """The sign's face as a w×h image: background, border and the text lines.

    ``ink``, a w×h "L" image, receives the glyphs' coverage (0–255) where given.
    """
    face = Image.new("RGB", (w, h), s.background)
    d = ImageDraw.Draw(face)
    if s.border and min(w, h) >= 6:
        bw = max(1, int(round(min(w, h) * 0.05)))
        d.rectangle(
            [bw, bw, w - 1 - bw, h - 1 - bw], outline=s.foreground, width=max(1, bw // 2 + (1 if min(w, h) > 30 else 0))
        )
    if em_px < 3:  # too small for glyphs: a smudge of ink
        if min(w, h) >= 3:
            d.line([(w * 0.2, h / 2), (w * 0.8, h / 2)], fill=_mix(s.background, s.foreground, 0.5), width=1)
        return face
    n = len(s.lines)
    base = next((b for b in _TEXT_LADDER if b >= em_px), _TEXT_LADDER[-1])
    lh = max(1, int(round(1.3 * em_px)))
    y = int(round((h - n * 1.3 * em_px) / 2))
    for line in s.lines:
        m = _line_mask(line.text, line.script, base)
        lw = max(1, int(round(m.width * em_px / base)))
        m = m.resize((lw, lh), Image.Resampling.BILINEAR, reducing_gap=2.0)
        face.paste(s.foreground, (int(round((w - lw) / 2)), y), m)
        if ink is not None:
            ink.paste(m, (int(round((w - lw) / 2)), y))
        y += lh
    return face


_GLYPH_MIN = 128  # glyph coverage (of 255) from which a pixel counts as text in the id map


def _glyphs(ink: Image.Image) -> Image.Image:
    return ink.point([255 if i >= _GLYPH_MIN else 0 for i in range(256)])


def _perspective_coeffs(dst: Sequence[tuple[float, float]], src: Sequence[tuple[float, float]]) -> list[float]:
    """Coefficients of PIL's PERSPECTIVE transform mapping output points dst to input points src."""
    A, bvec = [], []
    for (x, y), (u, w) in zip(dst, src):
        A.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        A.append([0, 0, 0, x, y, 1, -w * x, -w * y])
        bvec += [u, w]
    return np.linalg.solve(np.array(A, float), np.array(bvec, float)).tolist()


def _draw_sign(cv: _Canvas, s: Sign, ref: int = 0) -> None:
    v = cv.v
    S = cv.S
    if s.mount == "front":
        if s.span > 0:  # gantry: two posts beside the road and a beam
            grey = (140, 142, 148)
            for sx in (-1, 1):
                cv.front_rect(sx * s.span - 0.15, sx * s.span + 0.15, 0, s.y + s.height * 0.8, s.z + 0.1, grey, "pole")
            cv.front_rect(-s.span, s.span, s.y + s.height * 0.55, s.y + s.height * 0.72, s.z + 0.1, grey, "pole")
        elif s.posts:
            offs = [0.0] if s.posts == 1 else [-s.width * 0.35, s.width * 0.35]
            for o in offs:
                cv.front_rect(
                    s.x + o - 0.06, s.x + o + 0.06, 0, s.y + s.height * 0.5, s.z + 0.05, (150, 150, 155), "pole"
                )
        x0, y0, x1, y1 = v.sign_box(s)
        X0, Y0, X1, Y1 = int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))
        if X1 <= X0 or Y1 <= Y0 or X1 <= 0 or Y1 <= 0 or X0 >= S or Y0 >= S:
            return
        em = v.px(s.em, s.z)
        ink = Image.new("L", (X1 - X0, Y1 - Y0), 0) if cv.measure else None
        face = _sign_face(s, X1 - X0, Y1 - Y0, em, ink)
        cv.img.paste(face, (X0, Y0))
        cv.dm.rectangle([X0, Y0, X1 - 1, Y1 - 1], fill=cv.C["signboard"])
        if cv.fog:
            cv.dd.rectangle([X0, Y0, X1 - 1, Y1 - 1], fill=depth_code(s.z))
        if ink is not None:
            sign = cv.open("sign", ref)
            cv.did.rectangle([X0, Y0, X1 - 1, Y1 - 1], fill=sign)
            cv._grow((X0, X1), (Y0, Y1))
            cv.open("text", ref, part_of=sign)
            cv.seen[cv.cur].em = em
            cv.ids.paste(cv.cur, (X0, Y0), _glyphs(ink))
            cv._grow((X0, X1), (Y0, Y1))
            cv.close()
        return
    quad = v.sign_quad(s)
    us, vs = [q[0] for q in quad], [q[1] for q in quad]
    bx0, by0 = int(math.floor(min(us))), int(math.floor(min(vs)))
    bx1, by1 = int(math.ceil(max(us))), int(math.ceil(max(vs)))
    if bx1 - bx0 < 2 or by1 - by0 < 2 or bx1 <= 0 or by1 <= 0 or bx0 >= S or by0 >= S:
        return
    zm = s.z + s.width / 2
    fw, fh = max(2, int(round(v.px(s.width, zm)))), max(2, int(round(v.px(s.height, zm))))
    em = v.px(s.em, zm)
    ink = Image.new("L", (fw, fh), 0) if cv.measure else None
    face = _sign_face(s, fw, fh, em, ink)
    local = [(q[0] - bx0, q[1] - by0) for q in quad]
    coeffs = _perspective_coeffs(local, [(0, 0), (fw, 0), (fw, fh), (0, fh)])
    size = (bx1 - bx0, by1 - by0)
    warped = face.transform(size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)
    pm = Image.new("L", size, 0)
    ImageDraw.Draw(pm).polygon(local, fill=255)
    cv.img.paste(warped, (bx0, by0), pm)
    cv.dm.polygon(quad, fill=cv.C["signboard"])
    if cv.fog:
        cv.dd.polygon(quad, fill=depth_code(zm))
    if ink is not None:
        sign = cv.open("sign", ref)
        cv.did.polygon(quad, fill=sign)
        cv._grow(us, vs)
        cv.seen[sign].flat = (max(us) - min(us)) / max(v.px(s.width, zm), 1e-9)
        cv.open("text", ref, part_of=sign)
        cv.seen[cv.cur].em = em
        glyphs = ImageChops.multiply(_glyphs(ink.transform(size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)), pm)
        cv.ids.paste(cv.cur, (bx0, by0), glyphs)
        cv._grow(us, vs)
        cv.close()
