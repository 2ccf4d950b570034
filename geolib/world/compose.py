"""Composition of demo-world scenes: one function per layout, and :func:`scene_spec` / :func:`world_spec`.

:func:`scene_spec` draws a place's layout and scene type, has the layout's function fill a
:class:`~geolib.world.scenery._Draft` (street: urban, suburban or rural; open country; a landmark;
a facade across the street; a close wall), then draws fog, sky and light. Every random number
comes from the image's generator in a fixed order, so a scene is a pure function of (seed, index).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from geolib.facts import country_facts, koppen_vegetation
from geolib.world.places import _jitter, _places_by_country
from geolib.world.scene import (
    _FACADES,
    _SHOP_BG,
    REFERENCE_SIZE,
    Building,
    Pole,
    Road,
    SceneSpec,
    _jit,
    _pick,
    _sign_dims,
    image_id,
    image_rng,
)
from geolib.world.scenery import (
    _add_mountains,
    _building_colours,
    _Draft,
    _draft,
    _em_px,
    _facade_sign,
    _margin,
    _new_sign,
    _pole_row,
    _roadside_signs,
    _set_camera,
    _sign_lines,
    _traffic,
    _tree,
)


#: How often each (layout, scene) is drawn, as cumulative upper bounds of one uniform draw. Mostly
#: street scenes, as a geo-game drops players on roads (82 %); open country, landmarks, facades and
#: walls keep clue-poor images in the pool (18 %; fog comes on top, on 6 % of all scenes).
SCENE_MIX: tuple[tuple[float, str, str], ...] = (
    (0.34, "street", "urban"),
    (0.56, "street", "suburban"),
    (0.82, "street", "rural"),
    (0.89, "open", "natural"),
    (0.93, "landmark", "landmark"),
    (0.98, "facade", "urban"),
    (1.0, "wall", "urban"),
)


def scene_spec(place_row: Mapping, rng: np.random.Generator, image_id: str = "") -> SceneSpec:
    """Compose a scene at a place: what to draw, from the country's facts and random choices.

    Args:
        place_row: A row of :func:`sample_places` (mapping or pandas Series).
        rng: The image's random generator (:func:`image_rng`).
        image_id: Stored in the spec.

    Returns:
        A :class:`SceneSpec`.
    """
    place = dict(place_row)
    cc = place["country"]
    facts = country_facts(cc)
    lat, lon = _jitter(place, rng)
    vegetation = koppen_vegetation(place.get("koppen") or facts["koppen"][0])
    side = facts["driving_side"]
    r = rng.random()
    layout, scene = next((layout, scene) for upper, layout, scene in SCENE_MIX if r < upper)
    draft = _draft(place, facts, rng, vegetation, side, layout, scene)
    _LAYOUTS[layout, scene](draft)
    fog = float(rng.uniform(12, 70)) if rng.random() < 0.06 else None
    sky_clear = rng.random() < 0.6
    top = _jit(rng, (70, 130, 210) if sky_clear else (150, 160, 175), 15)
    bottom = _jit(rng, (175, 205, 235) if sky_clear else (200, 205, 212), 10)
    clouds = tuple(
        (
            float(rng.uniform(0, 1)),
            float(rng.uniform(0.02, 0.3)),
            float(rng.uniform(0.05, 0.18)),
            float(rng.uniform(0.02, 0.05)),
        )
        for _ in range(int(rng.integers(0, 6)))
    )
    return SceneSpec(
        image_id=image_id,
        country=cc,
        country_name=str(place.get("country_name") or cc),
        city=str(place["city"]),
        lat=lat,
        lon=lon,
        continent=str(place["continent"]),
        scene=scene,
        layout=layout,
        camera=draft.camera,
        sky_top=top,
        sky_bottom=bottom,
        clouds=clouds,
        ground=draft.ground,
        ground_colour=draft.ground_colour,
        road=draft.road,
        driving_side=side,
        vegetation=vegetation,
        buildings=tuple(draft.buildings),
        trees=tuple(draft.trees),
        poles=tuple(draft.poles),
        signs=tuple(draft.signs),
        cars=tuple(draft.cars),
        mountains=tuple(draft.mountains),
        treeline=draft.treeline,
        treeline_colour=draft.treeline_colour,
        fog=fog,
        fog_colour=_jit(rng, (205, 207, 210), 8),
        brightness=float(rng.uniform(0.85, 1.08)),
        text_seed=int(rng.integers(2**31)),
        markers=tuple(draft.markers),
    )


def world_spec(places, seed: int, index: int) -> SceneSpec:
    """The scene of image ``index``: country ``index mod n_countries`` (balanced classes), a city
    of it drawn with probability ∝ sqrt(population), then :func:`scene_spec`."""
    rng = image_rng(seed, index)
    by_country = _places_by_country(places)
    countries = sorted(by_country)
    rows = by_country[countries[index % len(countries)]]
    w = np.sqrt(np.array([r["population"] for r in rows], dtype=float))
    row = rows[int(rng.choice(len(rows), p=w / w.sum()))]
    return scene_spec(row, rng, image_id(index))


def _street_road(draft: _Draft) -> tuple[float, float, float, float]:
    """The road of a street scene (lanes, markings, sidewalks, verges) and the camera in its lane.

    Returns:
        ``(lane, hw, sidewalk, verge)``: lane width, the road's half width, sidewalk and verge widths (m).
    """
    rng, facts, scene = draft.rng, draft.facts, draft.scene
    lane = float(rng.uniform(2.9, 3.6))
    hw = lane + (float(rng.uniform(0.0, 2.2)) if scene == "urban" else float(rng.uniform(0.0, 0.4)))
    paved = scene != "rural" or rng.random() < 0.8
    centre = edge = None
    if paved and facts.get("centre_line") and rng.random() < 0.92:
        centre = _pick(rng, facts["centre_line"])
    if paved and facts.get("edge_line") and rng.random() < 0.9:
        edge = _pick(rng, facts["edge_line"])
    style = _pick(rng, ["dashed", "dashed", "solid", "double"]) if centre else "dashed"
    sidewalk = {
        "urban": rng.uniform(2.0, 5.0),
        "suburban": rng.uniform(1.2, 2.2) if rng.random() < 0.7 else 0.0,
    }.get(scene, 0.0)
    verge = float(rng.uniform(0.8, 3.0)) if scene == "suburban" else 0.0
    surface = _jit(rng, (85, 87, 90) if paved else (150, 120, 85), 12)
    draft.road = Road(
        round(hw, 3),
        surface,
        paved,
        centre,
        style,
        edge,
        round(float(sidewalk), 3),
        _jit(rng, (175, 172, 165), 15),
        verge,
    )
    if scene == "rural" and draft.vegetation != "arid" and rng.random() < 0.5:
        draft.ground = "field"
    cam_x = draft.sgn * lane / 2 if centre else float(rng.uniform(-0.5, 0.5))
    _set_camera(draft, cam_x)
    return lane, hw, sidewalk, verge


def _facade_x(hw, sidewalk, verge=0.0):
    """Distance of the building line from the road's centre (m)."""
    return hw + verge + sidewalk


def _urban_street(draft: _Draft) -> None:
    """A city street: rows of tall buildings with shop signs, street lamps, kerbside trees and traffic."""
    lane, hw, sidewalk, _ = _street_road(draft)
    rng = draft.rng
    tall = rng.random() < 0.5
    fx = _facade_x(hw, sidewalk)
    for sgn in (-1, 1):
        z = float(rng.uniform(1.0, 9.0))
        while z < 160:
            w = float(rng.uniform(8, 26))
            h = float(rng.uniform(14, 45) if tall else rng.uniform(7, 18))
            style = _pick(rng, ["grid", "grid", "bands", "plain"])
            draft.buildings.append(
                Building(
                    sgn,
                    sgn * fx,
                    sgn * (fx + 15),
                    round(z, 2),
                    round(z + w, 2),
                    round(h, 2),
                    *_building_colours(rng),
                    floor_height=float(rng.uniform(3.0, 3.6)),
                    window_every=float(rng.uniform(2.4, 4.0)),
                    style=style,
                    shopfront=rng.random() < 0.6,
                )
            )
            z += w + (float(rng.uniform(2, 8)) if rng.random() < 0.12 else 0.0)
        if rng.random() < 0.6:  # street lamps along the kerb
            z0 = float(rng.uniform(4, 14))
            _pole_row(draft, "lamp", sgn * (hw + 0.4), z0, 4, 22, (7, 9), (90, 95, 100), 10, arm=-sgn * 1.6)
        for _ in range(int(rng.choice([1, 1, 2, 2, 3]))):  # shop signs along the ground floors
            s = _facade_sign(draft, sgn, fx, draft.buildings, far=rng.random() < 0.1)
            if s is not None and not any(
                o.mount == "facade" and o.x == s.x and abs(o.z - s.z) < 8 for o in draft.signs
            ):
                draft.signs.append(s)
        if rng.random() < 0.45:  # a blade sign sticking out of the facade, facing the street
            lines = _sign_lines(draft, "shop")
            if lines is not None:
                F = draft.camera.focal * REFERENCE_SIZE
                a = max(fx - 0.2 - sgn * draft.camera.x, 0.5)
                z = a * draft.camera.focal / _margin(draft) * float(rng.uniform(1.0, 1.6))
                em = min(_em_px(draft, rng.random() < 0.2) * z / F, 1.0)
                wd = _sign_dims(lines, em)[0]
                draft.signs.append(
                    _new_sign(
                        "shop",
                        "front",
                        lines,
                        sgn * (fx - 0.2 - wd / 2),
                        z,
                        float(rng.uniform(3.5, 5.5)),
                        em,
                        _pick(rng, _SHOP_BG),
                    )
                )
        if rng.random() < 0.6:  # street trees
            for k in range(int(rng.integers(2, 5))):
                draft.trees.append(_tree(draft, sgn * (hw + 1.0), float(rng.uniform(6, 60)), 0.9))
    if rng.random() < 0.5:  # a building across the end of the street
        zf = float(rng.uniform(120, 200))
        draft.buildings.append(
            Building(
                0,
                -fx,
                fx,
                zf,
                zf + 20,
                float(rng.uniform(15, 40)),
                *_building_colours(rng),
                window_every=float(rng.uniform(3, 5)),
            )
        )
    _roadside_signs(draft, hw + 0.5, urban=True)
    _traffic(draft, lane, hw)


def _suburban_street(draft: _Draft) -> None:
    """A residential road: houses set back behind verges and sidewalks, garden trees, utility poles."""
    lane, hw, sidewalk, verge = _street_road(draft)
    rng = draft.rng
    fx = _facade_x(hw, sidewalk, verge)
    for sgn in (-1, 1):
        z = float(rng.uniform(2.0, 12.0))
        while z < 140:
            setback = float(rng.uniform(4, 12))
            w = float(rng.uniform(8, 14))
            apartment = rng.random() < 0.2
            h = float(rng.uniform(9, 16) if apartment else rng.uniform(4.5, 7.5))
            draft.buildings.append(
                Building(
                    sgn,
                    sgn * (fx + setback),
                    sgn * (fx + setback + 10),
                    round(z, 2),
                    round(z + w, 2),
                    round(h, 2),
                    *_building_colours(rng),
                    window_every=float(rng.uniform(3.0, 4.5)),
                    style="grid",
                    kind="building" if apartment else "house",
                    roof=0.0 if apartment else float(rng.uniform(1.5, 3.0)),
                    roof_colour=_jit(
                        rng, _pick(rng, [(130, 60, 45), (70, 70, 75), (150, 90, 60), (60, 80, 110)]), 12
                    ),
                )
            )
            if rng.random() < 0.6:
                draft.trees.append(
                    _tree(draft, sgn * (fx + float(rng.uniform(1, setback - 0.5))), z + float(rng.uniform(0, w)), 0.9)
                )
            z += w + float(rng.uniform(4, 12))
    if rng.random() < 0.6:
        sgn = _pick(rng, [-1, 1])
        z0 = float(rng.uniform(5, 15))
        _pole_row(draft, "utility", sgn * (hw + verge * 0.5 + 0.3), z0, 4, 30, (8, 10), (110, 90, 70), 15)
    _roadside_signs(draft, hw + 0.6, urban=False)
    _traffic(draft, lane, hw)


def _rural_street(draft: _Draft) -> None:
    """A country road: a tree line, maybe mountains, scattered trees, utility poles, a farm house."""
    lane, hw, _, _ = _street_road(draft)
    rng = draft.rng
    draft.treeline = float(rng.uniform(0.0, 0.05)) if rng.random() < 0.7 else 0.0
    if rng.random() < 0.55:
        _add_mountains(draft)
    n_trees = int(rng.integers(3, 14)) if draft.vegetation != "arid" else int(rng.integers(0, 6))
    for _ in range(n_trees):
        sgn = _pick(rng, [-1, 1])
        draft.trees.append(_tree(draft, sgn * (hw + float(rng.uniform(2, 25))), float(rng.uniform(6, 120))))
    if rng.random() < 0.6:
        sgn = _pick(rng, [-1, 1])
        z0 = float(rng.uniform(5, 20))
        _pole_row(draft, "utility", sgn * (hw + 1.5), z0, 5, 35, (7, 10), (110, 90, 70), 15)
    if rng.random() < 0.3:  # a farm house
        sgn = _pick(rng, [-1, 1])
        z = float(rng.uniform(30, 90))
        x = sgn * (hw + float(rng.uniform(10, 30)))
        draft.buildings.append(
            Building(
                sgn,
                x,
                x + sgn * 10,
                z,
                z + 10,
                float(rng.uniform(4, 6)),
                *_building_colours(rng),
                window_every=3.5,
                kind="house",
                roof=float(rng.uniform(1.5, 3.0)),
                roof_colour=_jit(rng, (120, 60, 50), 20),
            )
        )
    _roadside_signs(draft, hw + 0.8, urban=False)
    _traffic(draft, lane, hw)


def _open(draft: _Draft) -> None:
    """Open country without a road: mountains, maybe a tree line, scattered trees."""
    rng = draft.rng
    _set_camera(draft, 0.0, horizon=(0.45, 0.6), height=(1.6, 2.2))
    if draft.vegetation == "arid" and rng.random() < 0.4:
        draft.ground, draft.ground_colour = "sand", _jit(rng, (210, 185, 140), 12)
    _add_mountains(draft, always=rng.random() < 0.8)
    draft.treeline = float(rng.uniform(0.0, 0.06)) if rng.random() < 0.5 else 0.0
    for _ in range(int(rng.integers(2, 14))):
        draft.trees.append(_tree(draft, float(rng.uniform(-40, 40)), float(rng.uniform(5, 90))))


def _landmark(draft: _Draft) -> None:
    """A monumental building across a paved square, a flag pole, trees and maybe a name board."""
    rng = draft.rng
    _set_camera(draft, float(rng.uniform(-2, 2)), horizon=(0.5, 0.6), height=(1.6, 2.0))
    draft.ground, draft.ground_colour = "sidewalk", _jit(rng, (195, 190, 180), 12)
    z = float(rng.uniform(28, 50))
    w = float(rng.uniform(30, 60))
    h = float(rng.uniform(14, 26))
    col = _jit(rng, _pick(rng, [(225, 215, 195), (235, 235, 230), (200, 170, 140), (180, 180, 175)]), 10)
    draft.buildings.append(
        Building(
            0,
            -w / 2,
            w / 2,
            z,
            z + 30,
            h,
            col,
            _jit(rng, (60, 70, 85), 10),
            window_every=4.0,
            floor_height=5.0,
            style="grid",
            dome=float(rng.uniform(5, 10)) if rng.random() < 0.6 else 0.0,
            columns=int(rng.integers(4, 9)),
        )
    )
    draft.poles.append(
        Pole(
            0.0 + float(rng.uniform(-3, 3)),
            z - 0.5,
            "flag",
            h + float(rng.uniform(6, 10)) + (8 if rng.random() < 0.5 else 0),
            (200, 200, 200),
            flag_colours=tuple(_jit(rng, _pick(rng, _SHOP_BG), 5) for _ in range(2)),
        )
    )
    for sgn in (-1, 1):
        for k in range(int(rng.integers(0, 4))):
            draft.trees.append(_tree(draft, sgn * float(rng.uniform(8, w / 2 + 8)), float(rng.uniform(8, z - 3)), 0.9))
    if rng.random() < 0.85:  # a name board in front
        lines = _sign_lines(draft, "landmark")
        if lines is not None:
            zs = float(rng.uniform(8, 18))
            F = draft.camera.focal * REFERENCE_SIZE
            em = min(_em_px(draft) * zs / F, 1.5, 14.0 / _sign_dims(lines, 1.0)[0])
            bg = _jit(rng, _pick(rng, [(60, 60, 65), (150, 30, 30), (20, 60, 120), (240, 240, 235)]), 8)
            draft.signs.append(
                _new_sign(
                    "landmark",
                    "front",
                    lines,
                    float(rng.uniform(-3, 3)),
                    zs,
                    float(rng.uniform(0.3, 0.9)),
                    em,
                    bg,
                    border=True,
                )
            )


def _facade(draft: _Draft) -> None:
    """Looking across the street at one building: high building share, maybe a big sign."""
    rng = draft.rng
    _set_camera(draft, 0.0, horizon=(0.5, 0.62), height=(1.8, 2.5))
    draft.ground, draft.ground_colour = "sidewalk", _jit(rng, (175, 172, 165), 12)
    d = float(rng.uniform(5.5, 15))
    h = float(rng.uniform(10, 30))
    draft.buildings.append(
        Building(
            0,
            -40,
            40,
            d,
            d + 15,
            h,
            *_building_colours(rng),
            floor_height=float(rng.uniform(3.0, 3.6)),
            window_every=float(rng.uniform(2.2, 3.5)),
            style=_pick(rng, ["grid", "grid", "bands"]),
            shopfront=True,
        )
    )
    if rng.random() < 0.75:
        lines = _sign_lines(draft, "shop")
        if lines is not None:
            F = draft.camera.focal * REFERENCE_SIZE
            em = min(_em_px(draft, rng.random() < 0.15) * d / F, 1.2, 0.8 * 2 * d * 0.55 / _sign_dims(lines, 1.0)[0])
            draft.signs.append(
                _new_sign(
                    "shop",
                    "front",
                    lines,
                    float(rng.uniform(-2, 2)),
                    d - 0.1,
                    float(rng.uniform(2.9, 3.4)),
                    em,
                    _pick(rng, _SHOP_BG),
                )
            )
    draft.road = None


def _wall(draft: _Draft) -> None:
    """A close-up wall or fence: almost no clue."""
    rng = draft.rng
    _set_camera(draft, 0.0, horizon=(0.45, 0.6), height=(1.6, 2.2))
    draft.ground, draft.ground_colour = _pick(rng, [("sidewalk", (170, 168, 160)), ("earth", (150, 130, 100))])
    draft.ground_colour = _jit(rng, draft.ground_colour, 10)
    d = float(rng.uniform(2.5, 7.0))
    h = float(rng.uniform(2.0, 4.5))
    kind = "fence" if rng.random() < 0.3 else "wall"
    colours = (
        _FACADES + [(130, 125, 120)]
        if kind == "wall"
        else [(120, 90, 60), (150, 120, 80), (90, 95, 100), (60, 90, 60)]
    )
    draft.buildings.append(
        Building(
            0,
            -25,
            25,
            d,
            d + 0.4,
            h,
            _jit(rng, _pick(rng, colours), 14),
            (0, 0, 0),
            window_every=0.0,
            style=_pick(rng, ["plain", "brick", "panels"]),
            kind=kind,
        )
    )
    if rng.random() < 0.6:
        for _ in range(int(rng.integers(1, 4))):
            draft.trees.append(_tree(draft, float(rng.uniform(-12, 12)), d + float(rng.uniform(3, 10))))
    if rng.random() < 0.3:
        zb = d + float(rng.uniform(8, 25))
        draft.buildings.append(
            Building(
                0,
                -15,
                15,
                zb,
                zb + 10,
                float(rng.uniform(8, 25)),
                *_building_colours(rng),
            )
        )
    if rng.random() < 0.3:  # a small plaque: too small to read
        lines = _sign_lines(draft, "street")
        if lines is not None:
            draft.signs.append(
                _new_sign(
                    "street",
                    "front",
                    lines,
                    float(rng.uniform(-1.5, 1.5)),
                    d - 0.05,
                    float(rng.uniform(1.5, 2.0)),
                    0.05,
                    (250, 250, 245),
                )
            )


#: The function that composes each (layout, scene type) that :func:`scene_spec` draws.
_LAYOUTS = {
    ("street", "urban"): _urban_street,
    ("street", "suburban"): _suburban_street,
    ("street", "rural"): _rural_street,
    ("open", "natural"): _open,
    ("landmark", "landmark"): _landmark,
    ("facade", "urban"): _facade,
    ("wall", "urban"): _wall,
}
