"""The clue atlas: each country's conventions drawn, one small tile each, by the world's own renderer."""

from __future__ import annotations

import numpy as np
from PIL import Image

from geolib.facts import city_koppen, city_koppen_table, country_facts, koppen_vegetation, local_words
from geolib.world.lettering import text_aspect
from geolib.world.render import render_scene
from geolib.world.scene import _GROUND, _SIGN_RGB, Camera, Car, Marker, Road, SceneSpec, Sign, SignLine, _ink, _sign_dims
from geolib.world.scenery import _draft, _tree


#: Columns of :func:`clue_atlas_tiles`.
ATLAS_COLUMNS = ("road", "warning sign", "speed sign", "bollard", "plate", "direction sign", "sign text", "vegetation")


def _tile_spec(country: str, camera: Camera, **objects) -> SceneSpec:
    f = country_facts(country)
    veg = objects.pop("vegetation", "temperate")
    g, col = _GROUND[veg]
    return SceneSpec(
        image_id="atlas", country=country, country_name=country, city="", lat=0.0, lon=0.0, continent="",
        scene="rural", layout="street", camera=camera, sky_top=(110, 160, 215), sky_bottom=(190, 215, 240),
        clouds=(), ground=g, ground_colour=col, road=objects.pop("road", None), driving_side=f["driving_side"],
        vegetation=veg, **objects,
    )


def clue_atlas_tiles(country: str, city: str | None = None, size: int = 96) -> list[Image.Image | None]:
    """One small picture per :data:`ATLAS_COLUMNS` entry, drawn by the world's own renderer.

    ``road``: the carriageway with the country's centre and edge lines and a car in the lane it keeps
    to; then its warning sign, speed-limit sign, bollard, rear plate (first style), direction-sign
    colour with a local place name, a sign word in its main language, and the trees of ``city``'s
    climate (the largest documented city's when None). ``None`` where the facts say nothing.
    """
    f = country_facts(country)
    tiles: list[Image.Image | None] = []
    sgn = 1.0 if f["driving_side"] == "right" else -1.0
    cam = Camera(horizon=0.45, vp_x=0.5, height=1.6, x=sgn * 1.6)
    road = Road(3.3, (85, 87, 90), True, (f.get("centre_line") or [None])[0], "dashed", (f.get("edge_line") or [None])[0])
    car = Car(sgn * 1.6, 9.0, "away", (200, 200, 205), None)
    tiles.append(render_scene(_tile_spec(country, cam, road=road, cars=(car,)), size, describe=False)[0])
    close = Camera(horizon=0.55, vp_x=0.5, height=1.6, x=0.0)
    for kind, fact in (("warning", "warning_sign"), ("speed", "speed_sign")):
        if f.get(fact):
            m = Marker(kind, f[fact], 0.0, 3.2, 1.1 if kind == "warning" else 0.95, 1.05)
            tiles.append(render_scene(_tile_spec(country, close, markers=(m,)), size, describe=False)[0])
        else:
            tiles.append(None)
    if f.get("bollard"):
        m = Marker("bollard", f["bollard"], 0.0, 2.2, 1.0)
        tiles.append(render_scene(_tile_spec(country, Camera(0.3, 0.5, 0.9, 0.0), markers=(m,)), size, describe=False)[0])
    else:
        tiles.append(None)
    plates = [st for st in (f.get("plates") or [])]
    if plates:
        st = plates[0]
        c = Car(0.0, 2.6, "away", (90, 95, 100), (st["rear"], st.get("band")))
        tiles.append(render_scene(_tile_spec(country, Camera(0.25, 0.5, 0.8, 0.0), cars=(c,)), size, describe=False)[0])
    else:
        tiles.append(None)
    lang = max(f["languages"], key=lambda l: float(f["languages"][l]["share"]))
    script = f["languages"][lang]["script"]
    words = local_words(lang, country)
    word = (words["country"] or words["days"] or ("?",))[0]
    line = SignLine(word, lang, script, round(text_aspect(word, script), 4))
    if f.get("direction_signs"):
        colour = f["direction_signs"][0]
        em = min(0.5, 3.0 / max(line.aspect, 1.0))
        w, h = _sign_dims((line,), em)
        s = Sign("direction", "front", 0.0, 4.0, 1.2, w, h, em, _SIGN_RGB[colour], _ink(_SIGN_RGB[colour]), (line,),
                 posts=2, border=True, colour_name=colour)
        tiles.append(render_scene(_tile_spec(country, close, signs=(s,)), size, describe=False)[0])
    else:
        tiles.append(None)
    em = min(0.5, 3.0 / max(line.aspect, 1.0))
    w, h = _sign_dims((line,), em)
    s = Sign("shop", "front", 0.0, 4.0, 1.2, w, h, em, (250, 250, 245), _ink((250, 250, 245)), (line,), posts=1)
    tiles.append(render_scene(_tile_spec(country, close, signs=(s,)), size, describe=False)[0])
    if city is None:
        table = city_koppen_table().get(country, {})
        veg = koppen_vegetation(next(iter(table.values()), f["koppen"][0]))
    else:
        veg = koppen_vegetation(city_koppen(country, city))
    rng = np.random.default_rng(0)
    draft = _draft({"country": country}, f, rng, veg, f["driving_side"], "open", "natural")
    trees = tuple(_tree(draft, x, z) for x, z in ((-5.0, 14.0), (4.0, 18.0), (0.5, 26.0)))
    tiles.append(render_scene(_tile_spec(country, Camera(0.6, 0.5, 1.7, 0.0), trees=trees, vegetation=veg), size, describe=False)[0])
    return tiles
