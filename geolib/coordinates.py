"""Read one latitude/longitude pair in a model's text: keyed, hemisphere-marked, DMS or an unkeyed pair.

The coordinate grammar of :func:`geolib.answers.parse_answer` (notebooks ``06_evaluation`` and
``07_gre_reasoning_rl``, where GRE Suite answers coordinates): ``48.8566, 2.3522``; ``48.86°N,
2.35°E``; ``33.9° S 151.2° E``; DMS ``40°26′46″N 79°58′56″W``; ``Latitude: …, Longitude: …`` in
either order. An unkeyed pair is ``(latitude, longitude)`` and never swapped; ``S`` and ``W``
make a value negative (the hemisphere wins over a stray sign); :func:`check_range` rejects
``|lat| > 90`` or ``|lon| > 180`` (docs/known-traps.md).
"""

from __future__ import annotations

import math
import re
from typing import Any


_MINUS = "-−‐‑–"  # ASCII hyphen-minus, minus sign, hyphens, en dash
_MINUS_CLASS = r"\-−‐‑–"
_NUM = r"\d++(?:\.\d++)?+"  # possessive: a number is never split (no backtracking blow-up)
_DEG_SIGN = r"(?:°|º|˚|\s?deg(?:rees?)?\b)"
_MIN_SIGN = r"(?:['′’ʹ]|\s?min\b)"
_SEC_SIGN = r"(?:\"|″|”|''|′′|’’|\s?sec\b)"
_HEM = r"(?:[NSEW](?![A-Za-z])|(?i:north|south|east|west)\b)"

# one coordinate: optional sign, degrees, optional minutes and seconds, optional hemisphere
_COMPONENT = re.compile(
    rf"(?P<sign>[+{_MINUS_CLASS}])?\s*(?P<deg>{_NUM})\s*{_DEG_SIGN}?\s*"
    rf"(?:(?P<min>{_NUM})\s*{_MIN_SIGN}\s*(?:(?P<sec>{_NUM})\s*{_SEC_SIGN}\s*)?)?"
    rf"(?P<hem>{_HEM})?"
)
# the same with the hemisphere required after the number: 48.86°N, 40°26′46″N, 33.9 S
_HEMI_AFTER = re.compile(
    rf"(?<![\w.])(?P<sign>[+{_MINUS_CLASS}])?(?P<deg>{_NUM})\s*{_DEG_SIGN}?\s*"
    rf"(?:(?P<min>{_NUM})\s*{_MIN_SIGN}\s*(?:(?P<sec>{_NUM})\s*{_SEC_SIGN}\s*)?)?"
    rf"(?P<hem>{_HEM})"
)
# hemisphere first: N 48.86, S33.9°
_HEMI_BEFORE = re.compile(rf"(?<![A-Za-z])(?P<hem>[NSEW])\s?(?P<deg>{_NUM})(?:\s*{_DEG_SIGN})?(?![\w]|\.\d)")
_KEYED = re.compile(r"\b(?P<key>latitude|lat|longitude|lng|lon|long)\b[\"']?\s*(?:\([^()\n]{0,20}\)\s*)?[:=]?\s*[\"']?", re.IGNORECASE)
_SIGNED = rf"[+{_MINUS_CLASS}]?{_NUM}"
_PAIR = re.compile(
    rf"(?<![\w.°′″'])(?P<a>{_SIGNED})\s*°?\s*[,;]\s*(?P<b>{_SIGNED})\s*°?(?![\w°′'\"″]|\.\d)"
)
_PAIR_ALONE = re.compile(rf"\s*[(\[]?\s*(?P<a>{_SIGNED})\s*°?\s*[,;\s]\s*(?P<b>{_SIGNED})\s*°?\s*[)\]]?\s*[.]?\s*")


def signed_float(text: str) -> float:
    """A signed number whose minus may be any of the dashes in ``_MINUS`` (``−33.9``, ``–33.9``)."""
    if text and text[0] in _MINUS:
        return -float(text[1:])
    return float(text)


def _component_value(m: re.Match) -> tuple[float, str | None] | None:
    """Degrees from a component match, with its hemisphere letter (N/S/E/W) or None."""
    deg = float(m.group("deg"))
    minutes = float(m.group("min")) if m.groupdict().get("min") else 0.0
    seconds = float(m.group("sec")) if m.groupdict().get("sec") else 0.0
    if minutes >= 60 or seconds >= 60:
        return None
    value = deg + minutes / 60 + seconds / 3600
    hem = m.group("hem")
    letter = hem[0].upper() if hem else None
    if letter in ("S", "W"):
        value = -value
    elif letter is None and m.groupdict().get("sign") and m.group("sign") in _MINUS:
        value = -value
    return value, letter


def keyed_coordinates(region: str) -> tuple[float | None, float | None, str | None, tuple[int, int] | None]:
    """``Latitude: 48.85, Longitude: 2.35`` in either order (hemispheres and DMS allowed)."""
    found: dict[str, tuple[float, tuple[int, int]]] = {}
    error = None
    for km in _KEYED.finditer(region):
        axis = "lat" if km.group("key").lower().startswith("lat") else "lon"
        if axis in found:
            continue
        cm = _COMPONENT.match(region, km.end())
        if cm is None:
            continue
        got = _component_value(cm)
        if got is None:
            error = f"malformed minutes/seconds in {cm.group(0).strip()!r}"
            continue
        value, letter = got
        if letter is not None and ((axis == "lat") != (letter in "NS")):
            error = f"{'latitude' if axis == 'lat' else 'longitude'} given with hemisphere {letter}"
            continue
        found[axis] = (value, (km.start(), cm.end()))
    if "lat" in found and "lon" in found:
        span = (min(found["lat"][1][0], found["lon"][1][0]), max(found["lat"][1][1], found["lon"][1][1]))
        return found["lat"][0], found["lon"][0], None, span
    if found:
        only = "latitude" if "lat" in found else "longitude"
        return None, None, error or f"only the {only} was given", None
    return None, None, error, None


def _hemisphere_coordinates(region: str) -> tuple[float | None, float | None, str | None, tuple[int, int] | None]:
    """Values marked with hemispheres, in either order: the first N/S one is the latitude."""
    lat = lon = None
    spans: list[tuple[int, int]] = []
    error = None
    for pattern in (_HEMI_AFTER, _HEMI_BEFORE):
        lat = lon = None
        spans = []
        for m in pattern.finditer(region):
            got = _component_value(m)
            if got is None:
                error = f"malformed minutes/seconds in {m.group(0).strip()!r}"
                continue
            value, letter = got
            if letter in ("N", "S") and lat is None:
                lat = value
                spans.append(m.span())
            elif letter in ("E", "W") and lon is None:
                lon = value
                spans.append(m.span())
            if lat is not None and lon is not None:
                return lat, lon, None, (min(s[0] for s in spans), max(s[1] for s in spans))
    return None, None, error, None


def _pair_coordinates(region: str, strict: bool) -> tuple[float | None, float | None, str | None, tuple[int, int] | None]:
    """An unkeyed pair, latitude first (GRE's convention).

    ``strict`` (free prose outside an answer tag): the pair must be bracketed or carry a decimal
    point, so that "In 2019, 45 signs…" is not read as coordinates.
    """
    m = _PAIR_ALONE.fullmatch(region)
    if m is None:
        for cand in _PAIR.finditer(region):
            if strict:
                bracketed = region[: cand.start()].rstrip().endswith(("(", "[")) and region[cand.end() :].lstrip().startswith((")", "]"))
                if not (bracketed or "." in cand.group("a") or "." in cand.group("b")):
                    continue
            m = cand
            break
    if m is None:
        return None, None, None, None
    try:
        return signed_float(m.group("a")), signed_float(m.group("b")), None, m.span()
    except ValueError:  # pragma: no cover - the regex only admits numbers
        return None, None, f"unreadable pair {m.group(0)!r}", None


def read_coordinates(region: str, *, strict: bool = False) -> tuple[float | None, float | None, str | None, tuple[int, int] | None]:
    """Find one (lat, lon) in ``region``: keyed, then hemisphere-marked, then an unkeyed pair.

    Returns:
        ``(lat, lon, error, span)``: degrees (not yet range-checked) or Nones, an error string
        when something coordinate-like could not be used, and the span of the text read.
    """
    error = None
    for reader in (keyed_coordinates, _hemisphere_coordinates):
        lat, lon, err, span = reader(region)
        if lat is not None:
            return lat, lon, None, span
        error = error or err
    lat, lon, err, span = _pair_coordinates(region, strict)
    if lat is not None:
        return lat, lon, None, span
    return None, None, error or err, None


def axis_value(value: Any, axis: str | None) -> float | None:
    """A single latitude or longitude given as a number or a string ("33.9° S", "-33.9")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = _COMPONENT.fullmatch(value.strip().rstrip(",;."))
        if m is None:
            return None
        got = _component_value(m)
        if got is None:
            return None
        v, letter = got
        if axis is not None and letter is not None and ((axis == "lat") != (letter in "NS")):
            return None
        return v
    return None


def check_range(lat: float, lon: float) -> tuple[float, float] | str:
    """``(lat, lon)`` as floats when finite and in range, else a string saying why they are rejected."""
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return f"coordinates not finite: ({lat}, {lon})"
    if abs(lat) > 90:
        return f"latitude {lat:g} outside [-90, 90] (coordinates rejected; pairs are read latitude first)"
    if abs(lon) > 180:
        return f"longitude {lon:g} outside [-180, 180] (coordinates rejected)"
    return float(lat) + 0.0, float(lon) + 0.0
