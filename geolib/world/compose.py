"""Composition of demo-world scenes: :func:`scene_spec` and :func:`world_spec`.

:func:`scene_spec` draws a place's layout and scene type, has :class:`_SceneBuilder` compose it,
then draws fog, sky and light. Every random number comes from the image's generator in a fixed
order, so a scene is a pure function of (seed, index).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from geolib.facts import country_facts, koppen_vegetation, local_distance, local_words
from geolib.world.lettering import text_aspect
from geolib.world.places import _jitter, _places_by_country
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
    SceneSpec,
    Sign,
    SignLine,
    Tree,
    _ink,
    _jit,
    _pick,
    _sign_dims,
    image_id,
    image_rng,
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
    if r < 0.30:
        layout, scene = "street", "urban"
    elif r < 0.47:
        layout, scene = "street", "suburban"
    elif r < 0.67:
        layout, scene = "street", "rural"
    elif r < 0.77:
        layout, scene = "open", "natural"
    elif r < 0.84:
        layout, scene = "landmark", "landmark"
    elif r < 0.94:
        layout, scene = "facade", "urban"
    else:
        layout, scene = "wall", "urban"
    b = _SceneBuilder(place, facts, rng, vegetation, side, layout, scene)
    b.build()
    fog = float(rng.uniform(12, 70)) if rng.random() < 0.12 else None
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
        camera=b.camera,
        sky_top=top,
        sky_bottom=bottom,
        clouds=clouds,
        ground=b.ground,
        ground_colour=b.ground_colour,
        road=b.road,
        driving_side=side,
        vegetation=vegetation,
        buildings=tuple(b.buildings),
        trees=tuple(b.trees),
        poles=tuple(b.poles),
        signs=tuple(b.signs),
        cars=tuple(b.cars),
        mountains=tuple(b.mountains),
        treeline=b.treeline,
        treeline_colour=b.treeline_colour,
        fog=fog,
        fog_colour=_jit(rng, (205, 207, 210), 8),
        brightness=float(rng.uniform(0.85, 1.08)),
        text_seed=int(rng.integers(2**31)),
        markers=tuple(b.markers),
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


class _SceneBuilder:
    """Random composition of one scene (used by :func:`scene_spec` only)."""

    def __init__(self, place, facts, rng, vegetation, side, layout, scene):
        self.place, self.facts, self.rng = place, facts, rng
        self.vegetation, self.side, self.layout, self.scene = vegetation, side, layout, scene
        self.sgn = 1.0 if side == "right" else -1.0  # + : traffic keeps right
        self.buildings: list[Building] = []
        self.trees: list[Tree] = []
        self.poles: list[Pole] = []
        self.signs: list[Sign] = []
        self.cars: list[Car] = []
        self.mountains: list[Mountains] = []
        self.markers: list[Marker] = []
        self.treeline = 0.0
        self.treeline_colour = _jit(rng, (55, 85, 50) if vegetation != "arid" else (120, 120, 80), 10)
        self.road: Road | None = None
        g, col = _GROUND[vegetation]
        self.ground, self.ground_colour = g, _jit(rng, col, 12)
        self.camera = Camera(horizon=0.5, vp_x=0.5, height=2.3, x=0.0)

    # -- helpers -------------------------------------------------------------------------------
    def words(self, lang: str) -> dict[str, tuple[str, ...]]:
        return local_words(lang, self.place["country"])

    def pick_language(self) -> str:
        langs = self.facts["languages"]
        codes = sorted(langs)
        w = np.array([float(langs[c]["share"]) for c in codes])
        return codes[int(self.rng.choice(len(codes), p=w / w.sum()))]

    def line(self, text: str, lang: str) -> SignLine:
        script = self.facts["languages"][lang]["script"]
        return SignLine(text, lang, script, round(text_aspect(text, script), 4))

    def sign_text(self, kind: str, lang: str) -> list[str]:
        """1-2 lines of local words for a sign of this kind."""
        rng = self.rng
        w = self.words(lang)
        city = (self.place.get("local_names") or {}).get(lang)
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

    def sign_lines(self, kind: str, lang: str | None = None) -> tuple[SignLine, ...] | None:
        lang = lang or self.pick_language()
        texts = self.sign_text(kind, lang)
        return tuple(self.line(t, lang) for t in texts) if texts else None

    def em_px(self, far: bool = False) -> float:
        """Target text size in px at the reference resolution: mostly legible, some too small."""
        return float(self.rng.uniform(3, 8) if far else self.rng.uniform(9, 22))

    def new_sign(
        self,
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

    def _margin(self) -> float:
        return 0.46 - abs(self.camera.vp_x - 0.5)

    def roadside_sign(
        self,
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
        lines = self.sign_lines(kind)
        if lines is None:
            return None
        cam, F = self.camera, self.camera.focal * REFERENCE_SIZE
        wpe = _sign_dims(lines, 1.0)[0]
        em_px = self.em_px(far)
        room = self._margin() / cam.focal
        em_px = min(em_px, (room - 0.08) * F / wpe)
        a = max(x_inner - sgn * cam.x, 0.5)
        z = a / (room - wpe * em_px / F) * float(self.rng.uniform(1.0, 1.35))
        if far:
            z = max(z, float(self.rng.uniform(30, 70)))
        z = max(z, 4.0)
        em = min(em_px * z / F, max_em)
        width = _sign_dims(lines, em)[0]
        return self.new_sign(
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

    def gantry_sign(self, colour: str, hw: float, far: bool = False) -> Sign | None:
        """A direction sign over the road on a gantry."""
        lines = self.sign_lines("direction")
        if lines is None:
            return None
        F = self.camera.focal * REFERENCE_SIZE
        z = float(self.rng.uniform(35, 80) if far else self.rng.uniform(12, 35))
        em = min(self.em_px(far) * z / F, 1.2, (2 * hw - 0.5) / _sign_dims(lines, 1.0)[0])
        x = float(self.rng.uniform(-0.3, 0.3)) * hw
        return self.new_sign(
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

    def facade_sign(self, sgn: int, fx: float, buildings: list[Building], far: bool = False) -> Sign | None:
        """A shop sign flat on a side facade, placed where it is in the frame and not too oblique."""
        lines = self.sign_lines("shop")
        if lines is None:
            return None
        cam, F = self.camera, self.camera.focal * REFERENCE_SIZE
        a = max(fx - sgn * cam.x, 0.5)
        z0 = a * cam.focal / self._margin() * float(self.rng.uniform(1.0, 1.5))
        if far:
            z0 = float(self.rng.uniform(35, 70))
        em = min(self.em_px(far) * z0 * 1.2 / F, 1.6)
        width = _sign_dims(lines, em)[0]
        for b in buildings:
            if b.side == sgn and b.z0 <= z0 and z0 + width <= b.z1 - 0.3:
                return self.new_sign(
                    "shop",
                    "facade",
                    lines,
                    sgn * (fx - 0.05),
                    z0,
                    float(self.rng.uniform(3.0, 3.6)),
                    em,
                    _pick(self.rng, _SHOP_BG),
                )
        return None

    def tree(self, x: float, z: float, scale: float = 1.0) -> Tree:
        rng, veg = self.rng, self.vegetation
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

    def car(self, lane_x: float, z: float, facing: str) -> Car:
        rng = self.rng
        plate = None
        styles = self.facts.get("plates")
        if styles:
            st = _pick(rng, styles)
            colour = st["rear"] if facing == "away" else st["front"]
            plate = (colour, st.get("band"))
        return Car(lane_x + float(rng.uniform(-0.25, 0.25)), z, facing, _jit(rng, _pick(rng, _CAR_COLOURS), 10), plate)

    # -- layouts -------------------------------------------------------------------------------
    def build(self) -> None:
        getattr(self, f"_{self.layout}")()

    def _camera(self, x: float, horizon=(0.44, 0.54), height=(2.1, 2.6)) -> None:
        rng = self.rng
        self.camera = Camera(
            horizon=round(float(rng.uniform(*horizon)), 4),
            vp_x=round(float(rng.uniform(0.44, 0.56)), 4),
            height=round(float(rng.uniform(*height)), 3),
            x=round(x, 3),
        )

    def _street(self) -> None:
        rng, facts, scene = self.rng, self.facts, self.scene
        lane = float(rng.uniform(2.9, 3.6))
        hw = lane + (float(rng.uniform(0.0, 2.2)) if scene == "urban" else float(rng.uniform(0.0, 0.4)))
        paved = scene != "rural" or rng.random() < 0.8
        centre = edge = None
        if paved and facts.get("centre_line") and rng.random() < 0.92:
            centre = _pick(rng, facts["centre_line"])
        if paved and facts.get("edge_line") and scene != "urban" and rng.random() < 0.8:
            edge = _pick(rng, facts["edge_line"])
        style = _pick(rng, ["dashed", "dashed", "solid", "double"]) if centre else "dashed"
        sidewalk = {
            "urban": rng.uniform(2.0, 5.0),
            "suburban": rng.uniform(1.2, 2.2) if rng.random() < 0.7 else 0.0,
        }.get(scene, 0.0)
        verge = float(rng.uniform(0.8, 3.0)) if scene == "suburban" else 0.0
        surface = _jit(rng, (85, 87, 90) if paved else (150, 120, 85), 12)
        self.road = Road(
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
        if scene == "rural" and self.vegetation != "arid" and rng.random() < 0.5:
            self.ground = "field"
        cam_x = self.sgn * lane / 2 if centre else float(rng.uniform(-0.5, 0.5))
        self._camera(cam_x)
        if scene == "urban":
            self._urban(hw, sidewalk)
        elif scene == "suburban":
            self._suburban(hw, sidewalk, verge)
        else:
            self._rural(hw)
        self._traffic(lane, hw)

    def _facade_x(self, hw, sidewalk, verge=0.0):
        return hw + verge + sidewalk

    def _urban(self, hw: float, sidewalk: float) -> None:
        rng = self.rng
        tall = rng.random() < 0.5
        fx = self._facade_x(hw, sidewalk)
        for sgn in (-1, 1):
            z = float(rng.uniform(1.0, 9.0))
            while z < 160:
                w = float(rng.uniform(8, 26))
                h = float(rng.uniform(14, 45) if tall else rng.uniform(7, 18))
                style = _pick(rng, ["grid", "grid", "bands", "plain"])
                self.buildings.append(
                    Building(
                        sgn,
                        sgn * fx,
                        sgn * (fx + 15),
                        round(z, 2),
                        round(z + w, 2),
                        round(h, 2),
                        _jit(rng, _pick(rng, _FACADES), 14),
                        _jit(rng, (70, 85, 100), 15),
                        floor_height=float(rng.uniform(3.0, 3.6)),
                        window_every=float(rng.uniform(2.4, 4.0)),
                        style=style,
                        shopfront=rng.random() < 0.6,
                    )
                )
                z += w + (float(rng.uniform(2, 8)) if rng.random() < 0.12 else 0.0)
            if rng.random() < 0.6:  # street lamps along the kerb
                z0 = float(rng.uniform(4, 14))
                for k in range(4):
                    self.poles.append(
                        Pole(
                            sgn * (hw + 0.4),
                            z0 + 22 * k,
                            "lamp",
                            float(rng.uniform(7, 9)),
                            _jit(rng, (90, 95, 100), 10),
                            arm=-sgn * 1.6,
                        )
                    )
            for _ in range(int(rng.choice([0, 1, 1, 2, 2]))):  # shop signs along the ground floors
                s = self.facade_sign(sgn, fx, self.buildings, far=rng.random() < 0.2)
                if s is not None and not any(
                    o.mount == "facade" and o.x == s.x and abs(o.z - s.z) < 8 for o in self.signs
                ):
                    self.signs.append(s)
            if rng.random() < 0.45:  # a blade sign sticking out of the facade, facing the street
                lines = self.sign_lines("shop")
                if lines is not None:
                    F = self.camera.focal * REFERENCE_SIZE
                    a = max(fx - 0.2 - sgn * self.camera.x, 0.5)
                    z = a * self.camera.focal / self._margin() * float(rng.uniform(1.0, 1.6))
                    em = min(self.em_px(rng.random() < 0.2) * z / F, 1.0)
                    wd = _sign_dims(lines, em)[0]
                    self.signs.append(
                        self.new_sign(
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
            if rng.random() < 0.35:
                for k in range(int(rng.integers(1, 4))):
                    self.trees.append(self.tree(sgn * (hw + 1.0), float(rng.uniform(6, 60)), 0.9))
        if rng.random() < 0.5:  # a building across the end of the street
            zf = float(rng.uniform(120, 200))
            self.buildings.append(
                Building(
                    0,
                    -fx,
                    fx,
                    zf,
                    zf + 20,
                    float(rng.uniform(15, 40)),
                    _jit(rng, _pick(rng, _FACADES), 14),
                    _jit(rng, (70, 85, 100), 15),
                    window_every=float(rng.uniform(3, 5)),
                )
            )
        self._roadside_signs(hw + 0.5, urban=True)

    def _suburban(self, hw: float, sidewalk: float, verge: float) -> None:
        rng = self.rng
        fx = self._facade_x(hw, sidewalk, verge)
        for sgn in (-1, 1):
            z = float(rng.uniform(2.0, 12.0))
            while z < 140:
                setback = float(rng.uniform(4, 12))
                w = float(rng.uniform(8, 14))
                apartment = rng.random() < 0.2
                h = float(rng.uniform(9, 16) if apartment else rng.uniform(4.5, 7.5))
                self.buildings.append(
                    Building(
                        sgn,
                        sgn * (fx + setback),
                        sgn * (fx + setback + 10),
                        round(z, 2),
                        round(z + w, 2),
                        round(h, 2),
                        _jit(rng, _pick(rng, _FACADES), 14),
                        _jit(rng, (70, 85, 100), 15),
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
                    self.trees.append(
                        self.tree(sgn * (fx + float(rng.uniform(1, setback - 0.5))), z + float(rng.uniform(0, w)), 0.9)
                    )
                z += w + float(rng.uniform(4, 12))
        if rng.random() < 0.6:
            sgn = _pick(rng, [-1, 1])
            z0 = float(rng.uniform(5, 15))
            for k in range(4):
                self.poles.append(
                    Pole(
                        sgn * (hw + verge * 0.5 + 0.3),
                        z0 + 30 * k,
                        "utility",
                        float(rng.uniform(8, 10)),
                        _jit(rng, (110, 90, 70), 15),
                    )
                )
        self._roadside_signs(hw + 0.6, urban=False)

    def _rural(self, hw: float) -> None:
        rng = self.rng
        self.treeline = float(rng.uniform(0.0, 0.05)) if rng.random() < 0.7 else 0.0
        if rng.random() < 0.55:
            self._add_mountains()
        n_trees = int(rng.integers(0, 12)) if self.vegetation != "arid" else int(rng.integers(0, 6))
        for _ in range(n_trees):
            sgn = _pick(rng, [-1, 1])
            self.trees.append(self.tree(sgn * (hw + float(rng.uniform(2, 25))), float(rng.uniform(6, 120))))
        if rng.random() < 0.6:
            sgn = _pick(rng, [-1, 1])
            z0 = float(rng.uniform(5, 20))
            for k in range(5):
                self.poles.append(
                    Pole(
                        sgn * (hw + 1.5),
                        z0 + 35 * k,
                        "utility",
                        float(rng.uniform(7, 10)),
                        _jit(rng, (110, 90, 70), 15),
                    )
                )
        if rng.random() < 0.3:  # a farm house
            sgn = _pick(rng, [-1, 1])
            z = float(rng.uniform(30, 90))
            x = sgn * (hw + float(rng.uniform(10, 30)))
            self.buildings.append(
                Building(
                    sgn,
                    x,
                    x + sgn * 10,
                    z,
                    z + 10,
                    float(rng.uniform(4, 6)),
                    _jit(rng, _pick(rng, _FACADES), 14),
                    _jit(rng, (70, 85, 100), 15),
                    window_every=3.5,
                    kind="house",
                    roof=float(rng.uniform(1.5, 3.0)),
                    roof_colour=_jit(rng, (120, 60, 50), 20),
                )
            )
        self._roadside_signs(hw + 0.8, urban=False)

    def _outer_z(self, x_outer: float) -> float:
        """The nearest depth at which something reaching ``x_outer`` (m, signed) is in the frame."""
        cam = self.camera
        return max(abs(x_outer - cam.x) * cam.focal / self._margin(), 3.0)

    def _markers(self, x_edge: float) -> None:
        """Warning and speed-limit signs on the driving side, bollards along the edge (where sourced).

        Sized as the real objects (warning-sign panels 1.0-1.25 m as on main roads, speed signs
        0.8-1 m, bollards about 1 m) and mostly placed near enough that a 224-px image shows them at
        20-45 px, the nearest that stays in the frame; some stand far away on purpose.
        """
        rng, facts, scene = self.rng, self.facts, self.scene
        sgn = int(self.sgn)  # signs stand on the side the traffic keeps to
        if self.road is not None:  # at the kerb or just off the carriageway
            x_edge = min(x_edge, self.road.half_width + 0.3)
        p_warn = {"rural": 0.85, "suburban": 0.75}.get(scene, 0.5)
        z_next = 0.0
        if facts.get("warning_sign") and rng.random() < p_warn:
            size = float(rng.uniform(1.0, 1.25))
            x = sgn * (x_edge + 0.2 + size / 2)
            z = self._outer_z(x + sgn * size / 2) * float(rng.uniform(1.0, 1.2))
            if rng.random() < 0.12:
                z = float(rng.uniform(30, 60))
            self.markers.append(Marker("warning", facts["warning_sign"], round(x, 3), round(z, 3), round(size, 3),
                                       round(float(rng.uniform(1.3, 1.8)), 3)))
            z_next = z + float(rng.uniform(2.5, 5))
        if facts.get("speed_sign") and rng.random() < {"urban": 0.4}.get(scene, 0.55):
            size = float(rng.uniform(0.8, 1.0))
            x = sgn * (x_edge + 0.2 + size / 2)
            z = max(self._outer_z(x + sgn * size / 2) * float(rng.uniform(1.0, 1.4)), z_next)
            y = float(rng.uniform(1.4, 1.9))
            if facts["speed_sign"] == "rectangle":  # tall panel: size is its height
                size = size * 1.25
            self.markers.append(Marker("speed", facts["speed_sign"], round(x, 3), round(z, 3), round(size, 3),
                                       round(y, 3)))
        if facts.get("bollard") and scene != "urban" and rng.random() < (0.85 if scene == "rural" else 0.5):
            style = facts["bollard"]
            h = 0.75 if style == "white_black_base" else float(rng.uniform(0.95, 1.1))
            for side in (sgn, -sgn) if rng.random() < 0.5 else (sgn,):
                x = side * (x_edge + 0.1)
                z = max(self._outer_z(x), 4.5) * float(rng.uniform(1.0, 1.3))
                step = float(rng.uniform(12, 25))
                for _ in range(5):
                    self.markers.append(Marker("bollard", style, round(x, 3), round(z, 3), h))
                    z += step

    def _roadside_signs(self, x_edge: float, urban: bool) -> None:
        """Direction signs (where their colour is documented), billboards and small street signs."""
        rng, facts = self.rng, self.facts
        self._markers(x_edge)
        far = rng.random() < 0.25  # some signs deliberately too far away to read
        road = self.road
        if facts.get("direction_signs") and rng.random() < 0.75:
            colour = _pick(rng, facts["direction_signs"])
            if road is not None and road.paved and rng.random() < 0.35:
                s = self.gantry_sign(colour, road.half_width, far)
            else:
                s = self.roadside_sign(
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
                self.signs.append(s)
        if rng.random() < 0.75:
            kind = "shop" if urban else "billboard"
            s = self.roadside_sign(
                kind,
                _pick(rng, [-1, 1]),
                x_edge + (0.5 if urban else float(rng.uniform(1, 6))),
                float(rng.uniform(2.0, 3.0)),
                _pick(rng, _SHOP_BG),
                far,
                posts=2 if kind == "billboard" else 1,
                border=kind == "billboard",
                max_em=2.0,
            )
            if s is not None:
                self.signs.append(s)
        if rng.random() < 0.3:  # a small street-name plate: usually too small to read
            sgn = _pick(rng, [-1, 1])
            lines = self.sign_lines("street")
            if lines is not None:
                em = float(rng.uniform(0.1, 0.2))
                self.signs.append(
                    self.new_sign(
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
        if self.signs and rng.random() < 0.15:  # something in front of a sign
            s = _pick(rng, self.signs)
            if s.mount == "front":
                self.trees.append(
                    Tree(
                        s.x + float(rng.uniform(-0.5, 0.5)) * s.width,
                        max(s.z - 3.0, 2.5),
                        "deciduous",
                        s.y + s.height + 2.0,
                        max(s.width, 3.0) * 1.1,
                        _jit(
                            rng,
                            _pick(rng, _VEG_COLOURS["temperate" if self.vegetation == "arid" else self.vegetation]),
                            10,
                        ),
                    )
                )

    def _traffic(self, lane: float, hw: float) -> None:
        rng, sgn = self.rng, self.sgn
        n = int(rng.choice([0, 1, 1, 2, 2, 3, 4])) if self.scene == "urban" else int(rng.choice([0, 1, 1, 1, 2, 2]))
        if self.scene == "urban" and rng.random() < 0.2:  # queueing right behind a car
            self.cars.append(self.car(sgn * lane / 2, float(rng.uniform(3.8, 6.0)), "away"))
        for k in range(n):
            near = rng.random() < (0.75 if k == 0 else 0.3)
            if rng.random() < 0.5:  # same direction, ahead of us
                self.cars.append(
                    self.car(sgn * lane / 2, float(rng.uniform(5, 11) if near else rng.uniform(11, 60)), "away")
                )
            else:  # oncoming
                self.cars.append(
                    self.car(-sgn * lane / 2, float(rng.uniform(6, 12) if near else rng.uniform(12, 70)), "toward")
                )
        if self.scene == "urban" and hw > lane + 1.5 and rng.random() < 0.6:  # parked along the kerb
            for k in range(int(rng.integers(1, 4))):
                far_side = rng.random() < 0.4
                x = (-sgn if far_side else sgn) * (hw - 1.0)
                self.cars.append(self.car(x, float(rng.uniform(5, 50)), "toward" if far_side else "away"))

    def _open(self) -> None:
        rng = self.rng
        self._camera(0.0, horizon=(0.45, 0.6), height=(1.6, 2.2))
        if self.vegetation == "arid" and rng.random() < 0.4:
            self.ground, self.ground_colour = "sand", _jit(rng, (210, 185, 140), 12)
        self._add_mountains(always=rng.random() < 0.8)
        self.treeline = float(rng.uniform(0.0, 0.06)) if rng.random() < 0.5 else 0.0
        for _ in range(int(rng.integers(2, 14))):
            self.trees.append(self.tree(float(rng.uniform(-40, 40)), float(rng.uniform(5, 90))))

    def _add_mountains(self, always: bool = True) -> None:
        rng = self.rng
        if not always:
            return
        for k in range(int(rng.integers(1, 3))):
            base = (140, 150, 170) if k == 0 else (110, 125, 115)
            self.mountains.append(
                Mountains(
                    float(rng.uniform(0.06, 0.22)) * (1.0 if k == 0 else 0.6),
                    _jit(rng, base, 15),
                    tuple(float(p) for p in rng.uniform(0, 2 * np.pi, 4)),
                    snow=float(rng.uniform(0.2, 0.4)) if (k == 0 and rng.random() < 0.35) else 0.0,
                )
            )

    def _landmark(self) -> None:
        rng = self.rng
        self._camera(float(rng.uniform(-2, 2)), horizon=(0.5, 0.6), height=(1.6, 2.0))
        self.ground, self.ground_colour = "sidewalk", _jit(rng, (195, 190, 180), 12)
        z = float(rng.uniform(28, 50))
        w = float(rng.uniform(30, 60))
        h = float(rng.uniform(14, 26))
        col = _jit(rng, _pick(rng, [(225, 215, 195), (235, 235, 230), (200, 170, 140), (180, 180, 175)]), 10)
        self.buildings.append(
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
        self.poles.append(
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
                self.trees.append(self.tree(sgn * float(rng.uniform(8, w / 2 + 8)), float(rng.uniform(8, z - 3)), 0.9))
        if rng.random() < 0.85:  # a name board in front
            lines = self.sign_lines("landmark")
            if lines is not None:
                zs = float(rng.uniform(8, 18))
                F = self.camera.focal * REFERENCE_SIZE
                em = min(self.em_px() * zs / F, 1.5, 14.0 / _sign_dims(lines, 1.0)[0])
                bg = _jit(rng, _pick(rng, [(60, 60, 65), (150, 30, 30), (20, 60, 120), (240, 240, 235)]), 8)
                self.signs.append(
                    self.new_sign(
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

    def _facade(self) -> None:
        """Looking across the street at one building: high building share, maybe a big sign."""
        rng = self.rng
        self._camera(0.0, horizon=(0.5, 0.62), height=(1.8, 2.5))
        self.ground, self.ground_colour = "sidewalk", _jit(rng, (175, 172, 165), 12)
        d = float(rng.uniform(5.5, 15))
        h = float(rng.uniform(10, 30))
        self.buildings.append(
            Building(
                0,
                -40,
                40,
                d,
                d + 15,
                h,
                _jit(rng, _pick(rng, _FACADES), 14),
                _jit(rng, (70, 85, 100), 15),
                floor_height=float(rng.uniform(3.0, 3.6)),
                window_every=float(rng.uniform(2.2, 3.5)),
                style=_pick(rng, ["grid", "grid", "bands"]),
                shopfront=True,
            )
        )
        if rng.random() < 0.75:
            lines = self.sign_lines("shop")
            if lines is not None:
                F = self.camera.focal * REFERENCE_SIZE
                em = min(self.em_px(rng.random() < 0.15) * d / F, 1.2, 0.8 * 2 * d * 0.55 / _sign_dims(lines, 1.0)[0])
                self.signs.append(
                    self.new_sign(
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
        self.road = None

    def _wall(self) -> None:
        """A close-up wall or fence: almost no clue."""
        rng = self.rng
        self._camera(0.0, horizon=(0.45, 0.6), height=(1.6, 2.2))
        self.ground, self.ground_colour = _pick(rng, [("sidewalk", (170, 168, 160)), ("earth", (150, 130, 100))])
        self.ground_colour = _jit(rng, self.ground_colour, 10)
        d = float(rng.uniform(2.5, 7.0))
        h = float(rng.uniform(2.0, 4.5))
        kind = "fence" if rng.random() < 0.3 else "wall"
        colours = (
            _FACADES + [(130, 125, 120)]
            if kind == "wall"
            else [(120, 90, 60), (150, 120, 80), (90, 95, 100), (60, 90, 60)]
        )
        self.buildings.append(
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
                self.trees.append(self.tree(float(rng.uniform(-12, 12)), d + float(rng.uniform(3, 10))))
        if rng.random() < 0.3:
            zb = d + float(rng.uniform(8, 25))
            self.buildings.append(
                Building(
                    0,
                    -15,
                    15,
                    zb,
                    zb + 10,
                    float(rng.uniform(8, 25)),
                    _jit(rng, _pick(rng, _FACADES), 14),
                    _jit(rng, (70, 85, 100), 15),
                )
            )
        if rng.random() < 0.3:  # a small plaque: too small to read
            lines = self.sign_lines("street")
            if lines is not None:
                self.signs.append(
                    self.new_sign(
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
