"""The demo world's facts and clue vocabulary, readable without the renderer.

Model, GRE and evaluation code need the clue ids (``script:Cyrl``, ``warning_sign:yellow_diamond``),
their phrases (:func:`clue_phrase`), the patterns that find them in free text
(:func:`clues_mentioned`) and the per-country facts (:func:`country_facts`); they import this
module, never :mod:`geolib.world`, whose renderer needs Pillow's fonts and the scene machinery.
:mod:`geolib.world` re-exports everything here under the same names.

* ``data/country_facts.yaml``: per-country facts, each with its source (languages and scripts from
  CLDR, driving side, road-line colours, plates, direction-sign colours, warning- and speed-sign
  shapes, bollards, Köppen climates).
* ``data/city_koppen.yaml``: the Köppen type of individual cities, so that vegetation follows the
  city rather than the country.
* Localized sign words (day, month and country names) come from CLDR through ``babel``.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from pathlib import Path
from typing import Any, Mapping

from geolib import paths

#: The per-country facts file.
FACTS_FILE = paths.PACKAGE_DATA / "country_facts.yaml"


#: Clue types: the part of a clue id before the colon, with what it says in words.
CLUE_TYPES: dict[str, str] = {
    "script": "the writing system of legible signs (ISO 15924 code, e.g. script:Cyrl)",
    "language": "the language of legible sign words (ISO 639 code, e.g. language:ru)",
    "driving_side": "the side of the road the cars keep to (driving_side:left / driving_side:right)",
    "centre_line": "the colour of the line between opposing lanes (centre_line:yellow / centre_line:white)",
    "edge_line": "the colour of the lines along the carriageway edge (edge_line:yellow / edge_line:white)",
    "plate": "the colour or band of licence plates (plate:yellow, plate:blue, plate:black, plate:blue_band, plate:mercosur)",
    "direction_sign": "the background colour of direction signs (direction_sign:green, :blue, :white, :yellow)",
    "vegetation": "vegetation that tells the climate (vegetation:tropical, :arid, :temperate, :boreal)",
    "warning_sign": "shape and colours of warning signs (warning_sign:yellow_diamond, :red_triangle, "
    ":red_triangle_yellow, :black_triangle_yellow)",
    "speed_sign": "shape of speed-limit signs (speed_sign:red_ring, speed_sign:rectangle)",
    "bollard": "roadside bollards (delineator posts) and their paint (bollard:white_black_band, ...)",
}

#: Facts every country in the facts file must have; the others are optional.
REQUIRED_FACTS = ("languages", "driving_side", "koppen")
#: All facts a country may have.
FACT_NAMES = REQUIRED_FACTS + (
    "centre_line", "edge_line", "plates", "direction_signs", "warning_sign", "speed_sign", "bollard",
)

_LINE_COLOURS = ("white", "yellow")
_PLATE_COLOURS = ("white", "yellow", "blue", "black")
_PLATE_BANDS = ("eu", "mercosur")
_SIGN_COLOURS = ("green", "blue", "white", "yellow")
_VEGETATION = ("tropical", "arid", "temperate", "boreal")
_WARNING_SIGNS = ("yellow_diamond", "red_triangle", "red_triangle_yellow", "black_triangle_yellow")
_SPEED_SIGNS = ("red_ring", "rectangle")
_BOLLARDS = ("white_black_band", "white_black_top", "white_red_band", "black_white", "white_black_base")


# ---------------------------------------------------------------------------------------------
# Facts
# ---------------------------------------------------------------------------------------------


@functools.cache
def _read_facts(path: str) -> dict:
    import yaml

    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    _validate_facts(data, path)
    return data


def load_country_facts(path: str | os.PathLike | None = None) -> dict:
    """The per-country facts file, validated (cached; treat the result as read-only).

    Returns:
        ``{"cldr_version": str, "sources": {key: citation}, "countries": {alpha2: {"name": str,
        fact: {"value": ..., "source": key}}}}``.

    Raises:
        ValueError: a fact without a known source, an unknown fact, a value outside the allowed set.
    """
    return _read_facts(str(Path(path) if path else FACTS_FILE))


def country_facts(country: str) -> dict[str, Any]:
    """The fact values of one country (``{"driving_side": "left", ...}``, sources dropped).

    Raises:
        KeyError: the country is not in the facts file (the error lists those that are).
    """
    countries = load_country_facts()["countries"]
    if country not in countries:
        raise KeyError(f"no facts for country {country!r}; documented: {', '.join(sorted(countries))}")
    entry = countries[country]
    return {k: v["value"] for k, v in entry.items() if k in FACT_NAMES}


def _validate_facts(data: Mapping, where: str) -> None:
    if not isinstance(data, Mapping) or "countries" not in data or "sources" not in data:
        raise ValueError(f"{where}: expected top-level keys 'sources' and 'countries'")
    sources = data["sources"]
    for cc, entry in data["countries"].items():
        if not (isinstance(cc, str) and len(cc) == 2 and cc.isupper()):
            raise ValueError(f"{where}: country key {cc!r} is not an ISO alpha-2 code")
        for fact in REQUIRED_FACTS:
            if fact not in entry:
                raise ValueError(f"{where}: {cc} lacks the required fact {fact!r}")
        for fact, spec in entry.items():
            if fact == "name":
                continue
            if fact not in FACT_NAMES:
                raise ValueError(f"{where}: {cc} has unknown fact {fact!r}; allowed: {FACT_NAMES}")
            if not isinstance(spec, Mapping) or "value" not in spec or "source" not in spec:
                raise ValueError(f"{where}: {cc}.{fact} must be {{value: ..., source: ...}}, got {spec!r}")
            if spec["source"] not in sources:
                raise ValueError(f"{where}: {cc}.{fact} cites unknown source {spec['source']!r}")
            _validate_value(cc, fact, spec["value"], where)


def _validate_value(cc: str, fact: str, value: Any, where: str) -> None:
    def bad(allowed):
        raise ValueError(f"{where}: {cc}.{fact} = {value!r} is not allowed; allowed: {allowed}")

    if fact == "driving_side" and value not in ("left", "right"):
        bad("left, right")
    elif fact in ("centre_line", "edge_line") and not (value and set(value) <= set(_LINE_COLOURS)):
        bad(_LINE_COLOURS)
    elif fact == "direction_signs" and not (value and set(value) <= set(_SIGN_COLOURS)):
        bad(_SIGN_COLOURS)
    elif fact == "koppen" and not (
        value and all(re.fullmatch(r"(A[fmsw]|B[WS][hk]|C[swf][abc]|D[swf][abcd]|E[TF])", k) for k in value)
    ):
        bad("Köppen codes such as Cfb, BWh, Dfc")
    elif fact == "warning_sign" and value not in _WARNING_SIGNS:
        bad(_WARNING_SIGNS)
    elif fact == "speed_sign" and value not in _SPEED_SIGNS:
        bad(_SPEED_SIGNS)
    elif fact == "bollard" and value not in _BOLLARDS:
        bad(_BOLLARDS)
    elif fact == "plates":
        for style in value:
            if not (style.get("front") in _PLATE_COLOURS and style.get("rear") in _PLATE_COLOURS):
                bad(f"styles with front/rear in {_PLATE_COLOURS}")
            if style.get("band") not in (None,) + _PLATE_BANDS:
                bad(f"band in {_PLATE_BANDS}")
    elif fact == "languages":
        if not value:
            bad("at least one language")
        for lang, info in value.items():
            if info.get("script") not in SCRIPT_NAMES:
                bad(f"scripts in {sorted(SCRIPT_NAMES)}")
            if not 0 < float(info.get("share", 0)) <= 100:
                bad("a population share in (0, 100]")


#: Köppen types of individual cities (``data/city_koppen.yaml``); others take their country's first.
CITY_KOPPEN_FILE = paths.PACKAGE_DATA / "city_koppen.yaml"


@functools.cache
def city_koppen_table() -> dict[str, dict[str, str]]:
    """``{country: {GeoNames city name: Köppen type}}`` from ``data/city_koppen.yaml`` (validated)."""
    import yaml

    with open(CITY_KOPPEN_FILE, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, Mapping) or not data.get("source") or not isinstance(data.get("cities"), Mapping):
        raise ValueError(f"{CITY_KOPPEN_FILE}: expected keys 'source' and 'cities'")
    for cc, table in data["cities"].items():
        for city, code in table.items():
            if not re.fullmatch(r"(A[fmsw]|B[WS][hk]|C[swf][abc]|D[swf][abcd]|E[TF])", str(code)):
                raise ValueError(f"{CITY_KOPPEN_FILE}: {cc}/{city}: {code!r} is not a Köppen type")
    return {cc: {str(k): str(v) for k, v in t.items()} for cc, t in data["cities"].items()}


def city_koppen(country: str, city: str) -> str:
    """The Köppen type of a city: its own (``data/city_koppen.yaml``), else its country's first."""
    own = city_koppen_table().get(country, {}).get(city)
    return own or country_facts(country)["koppen"][0]


def koppen_vegetation(code: str) -> str:
    """The vegetation the renderer draws for a Köppen climate type.

    A (tropical) → ``tropical`` (palms), B (arid) → ``arid`` (bare earth, shrubs), C and the hot-summer
    D types (Dfa, Dwa, Dsa) → ``temperate`` (deciduous trees), the other D types (warm or cool
    summers, the hemiboreal and boreal forests) and E → ``boreal`` (conifers).
    """
    if code.startswith("A"):
        return "tropical"
    if code.startswith("B"):
        return "arid"
    if code.startswith("C"):
        return "temperate"
    if code.startswith("D"):
        return "temperate" if code[2] == "a" else "boreal"
    return "boreal"


#: ISO 15924 script code → English name used in the clue texts.
# fmt: off
SCRIPT_NAMES: dict[str, str] = {
    "Latn": "Latin", "Cyrl": "Cyrillic", "Grek": "Greek", "Arab": "Arabic", "Hebr": "Hebrew",
    "Deva": "Devanagari", "Beng": "Bengali", "Thai": "Thai", "Geor": "Georgian", "Armn": "Armenian",
    "Ethi": "Ethiopic", "Sinh": "Sinhala", "Taml": "Tamil", "Tfng": "Tifinagh", "Hans": "simplified Chinese",
    "Hant": "traditional Chinese", "Jpan": "Japanese", "Kore": "Korean",
}
# fmt: on


# Unicode character-name prefixes → script families, for checking that a word is in its script.
# fmt: off
_UNICODE_SCRIPT = {
    "LATIN": "Latn", "CYRILLIC": "Cyrl", "GREEK": "Grek", "ARABIC": "Arab", "HEBREW": "Hebr",
    "DEVANAGARI": "Deva", "BENGALI": "Beng", "THAI": "Thai", "GEORGIAN": "Geor", "ARMENIAN": "Armn",
    "ETHIOPIC": "Ethi", "SINHALA": "Sinh", "TAMIL": "Taml", "TIFINAGH": "Tfng", "HANGUL": "Hang",
    "HIRAGANA": "Hira", "KATAKANA": "Kana", "CJK": "Hani",
}
# fmt: on
_SCRIPT_FAMILY = {"Jpan": {"Hani", "Hira", "Kana"}, "Kore": {"Hang", "Hani"}, "Hans": {"Hani"}, "Hant": {"Hani"}}


def _char_script(ch: str) -> str | None:
    name = unicodedata.name(ch, "")
    return _UNICODE_SCRIPT.get(name.split(" ", 1)[0]) if name else None


def in_script(text: str, script: str, share: float = 0.7) -> bool:
    """Whether at least ``share`` of the letters of ``text`` belong to ``script`` (ISO 15924)."""
    accept = _SCRIPT_FAMILY.get(script, {script})
    letters = [c for c in text if unicodedata.category(c)[0] in "LM"]
    if not letters:
        return False
    return sum(_char_script(c) in accept for c in letters) >= share * len(letters)


def _language_script(lang: str) -> str:
    from babel import Locale
    from babel.core import get_global

    loc = Locale.parse(lang)
    if loc.script:
        return loc.script
    likely = get_global("likely_subtags").get(lang, "")
    parts = likely.split("_")
    return parts[1] if len(parts) > 1 else "Latn"


def clue_language(lang: str) -> str:
    """The language code a clue uses: the base language (``zh_Hant`` → ``zh``, ``nb`` → ``no``)."""
    base = lang.split("_")[0]
    return {"nb": "no", "nn": "no"}.get(base, base)


@functools.cache
def language_name(lang: str) -> str:
    """English name of a clue language (``ru`` → ``Russian``), from CLDR."""
    from babel import Locale

    return Locale("en").languages.get(lang, lang)


@functools.cache
def local_words(lang: str, country: str) -> dict[str, tuple[str, ...]]:
    """Words for signs in language ``lang``, from CLDR through babel, checked to be in its script.

    Returns:
        ``{"country": (the country's name,), "days": 7 weekday names, "days_short": abbreviated
        weekdays, "months": 12 month names}``; words not in the language's script are dropped.

    Babel keeps parsed locale data in a process-wide cache, and resolving one locale's aliases
    can write into data that other locales share: after Wolof's stand-alone months were read,
    Spanish ones came back as Wolof's (babel 2.x). The words would then depend on which
    languages a process had read before, so a pool built by several workers would differ from
    run to run. Each language is therefore read from a cleared cache.
    """
    from babel import Locale, localedata

    getattr(localedata, "_cache", {}).clear()
    loc = Locale.parse(lang)
    script = _language_script(lang)

    def ok(words):
        return tuple(w for w in words if w and in_script(w, script))

    def month_names():
        for ctx in ("stand-alone", "format"):
            names = ok(loc.months[ctx]["wide"].get(m) for m in range(1, 13))
            if len(names) == 12:
                return names
        return ok(loc.months["format"]["wide"].get(m) for m in range(1, 13))

    return {
        "country": ok([loc.territories.get(country)]),
        "days": ok(loc.days["format"]["wide"].get(d) for d in range(7)),
        "days_short": ok(loc.days["format"]["abbreviated"].get(d) for d in range(7)),
        "months": month_names(),
    }


def local_distance(km: int, lang: str) -> str:
    """``km`` as a short distance in the language (``12 км``), CLDR unit patterns."""
    from babel import units

    try:
        return units.format_unit(km, "length-kilometer", length="short", locale=lang)
    except Exception:
        return f"{km} km"


_SCRIPT_PHRASES = {
    "Hans": "simplified Chinese characters",
    "Hant": "traditional Chinese characters",
    "Jpan": "Japanese kanji and kana",
    "Kore": "Korean Hangul",
    "Ethi": "the Ethiopic (Ge'ez) script",
}
_SCRIPT_PATTERNS = {
    "Latn": r"\bLatin (script|alphabet|letters)\b",
    "Cyrl": r"\bCyrillic\b",
    "Grek": r"\bGreek (script|alphabet|letters)\b",
    "Arab": r"\bArabic (script|alphabet|letters)\b",
    "Hebr": r"\bHebrew (script|alphabet|letters)\b",
    "Deva": r"\bDevanagari\b",
    "Beng": r"\b(Bengali|Bangla) (script|alphabet|letters)\b",
    "Thai": r"\bThai (script|alphabet|letters)\b",
    "Geor": r"\bGeorgian (script|alphabet|letters)\b|\bMkhedruli\b",
    "Armn": r"\bArmenian (script|alphabet|letters)\b",
    "Ethi": r"\bEthiopic\b|\bGe'?ez\b",
    "Sinh": r"\bSinhala (script|alphabet|letters)\b",
    "Taml": r"\bTamil (script|alphabet|letters)\b",
    "Tfng": r"\bTifinagh\b",
    "Hans": r"\bsimplified (Chinese|Han)\b",
    "Hant": r"\btraditional (Chinese|Han)\b",
    "Jpan": r"\b(kana|hiragana|katakana|kanji)\b",
    "Kore": r"\bHangul\b|\bKorean (script|alphabet|letters)\b",
}
_NOT_SCRIPT = r"(?!\s+(script|alphabet|letters|characters|kanji|kana|Hangul|Han)\b)"
_EXTRA_LANGUAGE_NAMES = {"bn": ["Bengali"], "no": ["Norwegian"], "fil": ["Tagalog"], "tzm": ["Tamazight", "Berber"]}
_COLOUR = r"(green|blue|white|yellow)"
_OTHER_PATTERNS = {
    "plate:yellow": r"\byellow\s+(licen[cs]e\s+|number\s+|registration\s+)?plates?\b",
    "plate:blue": r"\bblue\s+(licen[cs]e\s+|number\s+|registration\s+)?plates?\b",
    "plate:black": r"\bblack\s+(licen[cs]e\s+|number\s+|registration\s+)?plates?\b",
    "plate:blue_band": r"\b(blue|EU) (band|strip)\b(?! (along|across|at) the top)",
    "plate:mercosur": r"\bMercosur\b",
    "vegetation:tropical": r"\bpalms?\b|\btropical\b",
    "vegetation:boreal": r"\bconifer(s|ous)?\b|\bspruces?\b|\bpines?\b|\bboreal\b",
    "vegetation:temperate": r"\bdeciduous\b|\bbroad-?leaved?\b|\btemperate\b",
    "vegetation:arid": r"\b(semi-)?arid\b|\bdesert\b|\bdry (land|ground|climate|scrub|earth)\b",
}
for _side in ("left", "right"):
    _OTHER_PATTERNS[f"driving_side:{_side}"] = (
        rf"\b(drive|drives|driving|keep|keeps|keeping)\s+((on|to)\s+)?(the\s+)?{_side}\b"
        rf"|\b{_side}-hand (traffic|driving)\b|\bon the {_side}(-hand)? side of the road\b"
    )
for _c in _LINE_COLOURS:
    _OTHER_PATTERNS[f"centre_line:{_c}"] = (
        rf"\b{_c}\s+(centre|center|middle|dividing)\s+lines?\b|\b{_c} lines? (down|along|in) the (middle|centre|center)\b"
    )
    _OTHER_PATTERNS[f"edge_line:{_c}"] = (
        rf"\b{_c}\s+(edge|side|outer|shoulder)\s+lines?\b|\b{_c} lines? along the (edges?|sides?|shoulders?)\b"
    )
for _c in _SIGN_COLOURS:
    _OTHER_PATTERNS[f"direction_sign:{_c}"] = rf"\b{_c}\s+(direction|guide|road|destination)\s+signs?\b"

#: Marker clues (warning and speed signs, bollards) in words: the phrase texts use, and its pattern.
MARKER_PHRASES: dict[str, str] = {
    "warning_sign:yellow_diamond": "yellow diamond warning signs",
    "warning_sign:red_triangle": "red-bordered triangular warning signs on white",
    "warning_sign:red_triangle_yellow": "red-bordered triangular warning signs on yellow",
    "warning_sign:black_triangle_yellow": "black-bordered triangular warning signs on yellow",
    "speed_sign:red_ring": "speed-limit signs with a red ring",
    "speed_sign:rectangle": "white rectangular speed-limit signs",
    "bollard:white_black_band": "white bollards with a black band",
    "bollard:white_black_top": "white bollards with a black top",
    "bollard:white_red_band": "white bollards with a red band",
    "bollard:black_white": "black bollards with a white band",
    "bollard:white_black_base": "small white bollards with a black base",
}
_OTHER_PATTERNS.update({
    "warning_sign:yellow_diamond": r"\byellow[ -]diamond\b|\bdiamond-shaped yellow\b",
    "warning_sign:red_triangle": r"\bred(-bordered)? triang\w* (warning )?signs? on white\b",
    "warning_sign:red_triangle_yellow": r"\bred(-bordered)? triang\w* (warning )?signs? on (yellow|amber)\b",
    "warning_sign:black_triangle_yellow": r"\bblack(-bordered)? triang\w* (warning )?signs? on yellow\b",
    "speed_sign:red_ring": r"\bspeed[- ]limit signs? with a red (ring|circle)\b|\bred[- ]ring(ed)? speed[- ]limit\b",
    "speed_sign:rectangle": r"\brectangular speed[- ]limit signs?\b",
    "bollard:white_black_band": r"\bwhite bollards? with a black band\b",
    "bollard:white_black_top": r"\bwhite bollards? with a black top\b",
    "bollard:white_red_band": r"\bwhite bollards? with a red band\b",
    "bollard:black_white": r"\bblack bollards? with a white band\b",
    "bollard:white_black_base": r"\bwhite bollards? with a black base\b",
})


@functools.cache
def _clue_patterns() -> dict[str, re.Pattern]:
    pats = {f"script:{k}": v for k, v in _SCRIPT_PATTERNS.items()}
    pats.update(_OTHER_PATTERNS)
    langs = {clue_language(l) for e in load_country_facts()["countries"].values() for l in e["languages"]["value"]}
    for lang in sorted(langs):
        names = [language_name(lang)] + _EXTRA_LANGUAGE_NAMES.get(lang, [])
        alts = "|".join(re.escape(n) for n in names)
        pats[f"language:{lang}"] = rf"\b({alts})\b{_NOT_SCRIPT}"
    return {k: re.compile(v, re.IGNORECASE) for k, v in pats.items()}


def clue_ids() -> list[str]:
    """Every clue id the world can list (the vocabulary, for evaluation tables)."""
    return sorted(_clue_patterns())


def clues_mentioned(text: str) -> set[str]:
    """Clue ids that a free text mentions (e.g. a model's reasons), by keyword patterns.

    ``"The signs are in Cyrillic and the words look Russian; cars keep right."`` →
    ``{"script:Cyrl", "language:ru", "driving_side:right"}``. A language name followed by
    "script"/"alphabet"/"letters"/"characters" counts as the script, not the language.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    return {k for k, p in _clue_patterns().items() if p.search(text)}


def clue_words(clue: str) -> str:
    """:func:`clue_phrase`, or the id's own words for an id outside the vocabulary (``a_b:c`` → ``a b c``)."""
    try:
        return clue_phrase(clue)
    except (ValueError, KeyError):
        return clue.replace("_", " ").replace(":", " ")


def clue_phrase(clue: str) -> str:
    """A clue id in words (``script:Cyrl`` → ``signs in Cyrillic script``)."""
    kind, _, value = clue.partition(":")
    if kind not in CLUE_TYPES:
        raise ValueError(f"unknown clue type {kind!r} in {clue!r}; types: {sorted(CLUE_TYPES)}")
    if kind == "script":
        return "signs in " + _SCRIPT_PHRASES.get(value, f"{SCRIPT_NAMES.get(value, value)} script")
    if kind == "language":
        return f"sign words in {language_name(value)}"
    if kind == "driving_side":
        return f"cars driving on the {value}"
    if kind in ("centre_line", "edge_line"):
        return f"{value} {'centre' if kind == 'centre_line' else 'edge'} lines"
    if kind == "plate":
        return {"blue_band": "licence plates with a blue band", "mercosur": "white Mercosur licence plates"}.get(
            value, f"{value} licence plates"
        )
    if kind == "direction_sign":
        return f"{value} direction signs"
    if kind in ("warning_sign", "speed_sign", "bollard"):
        return MARKER_PHRASES[clue]
    return {
        "tropical": "palm trees (tropical)",
        "arid": "arid, bare ground",
        "temperate": "deciduous trees (temperate)",
        "boreal": "conifers (boreal)",
    }[value]
