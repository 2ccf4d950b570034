"""Read what a model answered: country, city, coordinates and reasons (06_evaluation, 07_gre_reasoning_rl).

One entry point, :func:`parse_answer`, turns a model's free text into a :class:`ParsedAnswer`.
It never raises on a string, and it reads the answer styles the two papers produce:

* **GeoReasoner** answers a Python dict or a JSON object, ``{'country': 'France', 'city':
  'Paris', 'reasons': '...'}``: single or double quotes, inside ```` ``` ```` fences or prose,
  keys in any case, apostrophes inside values (``'Côte d'Ivoire'``). A completion cut off by the
  generation limit keeps the values that are complete; a value cut off mid-way (usually the
  reasons) is dropped, never guessed.
* ``Country: France`` / ``City: Paris`` lines, markdown bold too (``**Country:** France``).
* **GRE Suite** answers ``<think>…</think><answer>…</answer>``; the answer holds coordinates
  (``48.8566, 2.3522``; ``48.86°N, 2.35°E``; ``33.9° S 151.2° E``; DMS ``40°26′46″N
  79°58′56″W``; ``Latitude: …, Longitude: …`` in either order; ``{"lat": …, "lon": …}``) or a
  place (``Paris, France``). The think text becomes ``reasons``.

Conventions (GRE's released reward gets the first two wrong, docs/known-traps.md):

* an unkeyed pair is ``(latitude, longitude)``; it is never swapped to make it fit;
* ``S`` and ``W`` make a value negative (the hemisphere wins over a stray sign);
* ``|lat| > 90`` or ``|lon| > 180`` is rejected: no coordinates, ``error`` says why.

The coordinate grammar (and these conventions) is :mod:`geolib.coordinates`.

``answered`` is True when a country, a city or valid coordinates were found. A refusal
(``"I cannot determine"``, ``"Unknown"``, ``"N/A"``) or text with none of the above is not
answered, which is what GeoReasoner's *Recall* counts. A country name that
:func:`geolib.gazetteer.normalize_country` does not know leaves ``country=None`` but keeps
``country_text``, and still counts as answered (an answer, and a wrong one);
:attr:`ParsedAnswer.country_label` gives the label to score.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from dataclasses import dataclass
from typing import Any

from geolib.coordinates import axis_value, check_range, keyed_coordinates, read_coordinates, signed_float

#: Longest text read; anything after it is ignored (generation limits are far below this).
MAX_CHARS = 200_000

FORMATS = ("dict", "json", "kv", "gre", "coords", "text")


@dataclass(frozen=True)
class ParsedAnswer:
    """What one model answer said.

    Attributes:
        country: ISO 3166-1 alpha-2 code, or None (not given, refused or not recognised).
        country_text: the country as written (raw), or None.
        city: the city as written, or None.
        lat: latitude in degrees (north positive), or None; set together with ``lon``.
        lon: longitude in degrees (east positive), or None.
        reasons: the explanation (GeoReasoner's ``reasons``, GRE's think text), or None.
        answered: True when a country, a city or valid coordinates were found.
        format: which reader matched: ``"dict"`` (Python literal, or a brace object read
            leniently, e.g. truncated), ``"json"``, ``"kv"`` (``Country: …`` lines), ``"gre"``
            (``<answer>`` tag), ``"coords"`` (bare coordinates), ``"text"`` (a bare short
            ``"City, Country"`` / ``"Country"`` answer); None when nothing matched.
        error: why the answer (or its coordinate part) was not taken, or None.
    """

    country: str | None = None
    country_text: str | None = None
    city: str | None = None
    lat: float | None = None
    lon: float | None = None
    reasons: str | None = None
    answered: bool = False
    format: str | None = None
    error: str | None = None

    @property
    def has_coordinates(self) -> bool:
        """True when valid coordinates were given."""
        return self.lat is not None and self.lon is not None

    @property
    def country_label(self) -> str | None:
        """The country label to score: alpha-2, else the raw text of an unrecognised answer, else None.

        None means "no country answered" (GeoReasoner's Recall); an unrecognised name is an
        answer that :func:`geolib.metrics.answer_metrics` counts as wrong.
        """
        if self.country is not None:
            return self.country
        if self.country_text and not is_refusal(self.country_text):
            return self.country_text
        return None


# --------------------------------------------------------------------------------------------
# refusals

_REFUSAL = re.compile(
    r"\b(?:unknown|unsure|not\s+sure|uncertain|unclear|undetermined|indeterminate|undeterminable|"
    r"unidentifiable|unable|cannot|can\s*not|can'?t|could\s*n[o']t|impossible|not\s+possible|"
    r"no\s+idea|don'?t\s+know|do\s+not\s+know|not\s+enough|insufficient|not\s+(?:be\s+)?determin\w*|"
    r"none|null|nil|not\s+applicable|not\s+available|not\s+specified|not\s+provided|"
    r"not\s+identifiable|not\s+visible)\b|\bn\s*/\s*a\b|\bn\.a\.?(?!\w)|^\W*$",
    re.IGNORECASE,
)


def is_refusal(text: str | None) -> bool:
    """True when ``text`` declines to answer ("Unknown", "I cannot determine…", "N/A", "", "-").

    A bare ``NA`` is *not* a refusal: it is Namibia's code.
    """
    if text is None:
        return True
    return bool(_REFUSAL.search(text))


# --------------------------------------------------------------------------------------------
# small helpers

_KEY_ALIASES = {
    "country": "country",
    "country_name": "country",
    "predicted_country": "country",
    "nation": "country",
    "city": "city",
    "city_name": "city",
    "predicted_city": "city",
    "town": "city",
    "reasons": "reasons",
    "reason": "reasons",
    "reasoning": "reasons",
    "explanation": "reasons",
    "rationale": "reasons",
    "lat": "lat",
    "latitude": "lat",
    "lon": "lon",
    "lng": "lon",
    "long": "lon",
    "longitude": "lon",
    "coordinates": "coords",
    "coordinate": "coords",
    "coords": "coords",
    "gps": "coords",
    "location": "coords",
}


def _canon_key(key: Any) -> str | None:
    k = re.sub(r"[\s\-]+", "_", str(key).strip().lower())
    return _KEY_ALIASES.get(k)


def _clean_value(value: str) -> str:
    """Strip markdown emphasis, quotes, brackets and trailing punctuation around a value."""
    v = value.strip()
    v = v.strip("*_`\"'“”‘’ \t")
    v = re.sub(r"[\s.,;:!]+$", "", v)
    return v.strip("*_`\"'“”‘’ \t")


def _normalize_country(text: str) -> str | None:
    from geolib.gazetteer import normalize_country

    code = normalize_country(text)
    if code is None and "(" in text:
        # "France (FR)", "Czechia (Czech Republic)"
        head = text.split("(", 1)[0].strip()
        if head:
            code = normalize_country(head)
        if code is None:
            inner = text.split("(", 1)[1].split(")", 1)[0].strip()
            if inner:
                code = normalize_country(inner)
    return code


#: Values that are a program's placeholder for "nothing", never a place ("nan, nan" from a
#: DataFrame printed into a prompt, "undefined" from a template).
_NON_VALUES = frozenset({"nan", "inf", "-inf", "+inf", "infinity", "-infinity", "undefined", "null", "none", "nil",
                         "n/a", "na", "?", "-", "--", "..."})


def _non_value(text: str) -> bool:
    return _clean_value(text).casefold() in _NON_VALUES or not _clean_value(text)


class _Fields:
    """Mutable accumulator while reading one answer."""

    def __init__(self) -> None:
        self.country: str | None = None
        self.country_text: str | None = None
        self.city: str | None = None
        self.lat: float | None = None
        self.lon: float | None = None
        self.reasons: str | None = None
        self.coord_error: str | None = None
        self.refused = False

    def set_country(self, raw: Any) -> None:
        if not isinstance(raw, str):
            return
        text = _clean_value(raw)
        if _non_value(text) and _normalize_country(text) is None:  # "NA" is Namibia, "nan" is nothing
            self.refused = True
            return
        self.country_text = text
        self.country = _normalize_country(text)
        if self.country is None and is_refusal(text):
            self.refused = True

    def set_city(self, raw: Any) -> None:
        if not isinstance(raw, str):
            return
        text = _clean_value(raw)
        if _non_value(text) or is_refusal(text):
            self.refused = True
            return
        self.city = text

    def set_reasons(self, raw: Any) -> None:
        if isinstance(raw, str) and raw.strip():
            self.reasons = raw.strip()
        elif isinstance(raw, (list, tuple)):
            items = [str(r).strip() for r in raw if str(r).strip()]
            if items:
                self.reasons = "\n".join(items)

    def set_coords(self, lat: float | None, lon: float | None, error: str | None) -> None:
        if error is not None:
            self.coord_error = error
            return
        if lat is None or lon is None:
            return
        checked = check_range(lat, lon)
        if isinstance(checked, str):
            self.coord_error = checked
        else:
            self.lat, self.lon = checked
            self.coord_error = None

    @property
    def place_found(self) -> bool:
        return self.city is not None or (self.country_text is not None and self.country_label_ok)

    @property
    def country_label_ok(self) -> bool:
        return self.country is not None or (self.country_text is not None and not is_refusal(self.country_text))

    @property
    def answered(self) -> bool:
        return self.place_found or (self.lat is not None and self.lon is not None)


# --------------------------------------------------------------------------------------------
# coordinates (the grammar: geolib.coordinates)


def _coords_from_value(value: Any) -> tuple[float | None, float | None, str | None]:
    """A ``coordinates`` value: [lat, lon], (lat, lon), "48.85, 2.35" or {"lat":…, "lon":…}."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        a, b = (axis_value(v, None) for v in value)
        if a is None or b is None:
            return None, None, f"unreadable coordinates {value!r}"
        return a, b, None
    if isinstance(value, str):
        lat, lon, err, _ = read_coordinates(value)
        return lat, lon, err
    if isinstance(value, dict):
        fields = _Fields()
        _fill_from_mapping(fields, value)
        return fields.lat, fields.lon, fields.coord_error
    return None, None, None


# --------------------------------------------------------------------------------------------
# brace objects (GeoReasoner's dict, JSON)

_OBJ_KEY = re.compile(r"(?:^|(?<=[{,\n]))\s*(?P<q>[\"']?)(?P<key>[A-Za-z][A-Za-z _\-]{0,30})(?P=q)\s*:\s*")
_CLOSE_OK = re.compile(r"\s*(?:$|}|,\s*(?:$|}|[\"']?[A-Za-z][A-Za-z _\-]{0,30}[\"']?\s*:))")
_BARE_VALUE = re.compile(r"[^,}\n]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "'": "'", '"': '"', "\\": "\\", "/": "/"}


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), text, flags=re.S)


def _fill_from_mapping(fields: _Fields, mapping: dict, depth: int = 0) -> bool:
    """Copy known keys of a parsed dict into ``fields``; True when any key was known."""
    known = False
    lat_raw = lon_raw = None
    for key, value in mapping.items():
        canon = _canon_key(key)
        if canon is None:
            continue
        known = True
        if canon == "country":
            fields.set_country(value)
        elif canon == "city":
            fields.set_city(value)
        elif canon == "reasons":
            fields.set_reasons(value)
        elif canon == "lat":
            lat_raw = value
        elif canon == "lon":
            lon_raw = value
        elif canon == "coords" and fields.lat is None:
            lat, lon, err = _coords_from_value(value)
            fields.set_coords(lat, lon, err)
    given = [v for v in (lat_raw, lon_raw) if v is not None and not (isinstance(v, str) and is_refusal(v))]
    if given:
        lat, lon = axis_value(lat_raw, "lat"), axis_value(lon_raw, "lon")
        if lat is None or lon is None:
            fields.set_coords(None, None, f"unreadable coordinates lat={lat_raw!r}, lon={lon_raw!r}")
        else:
            fields.set_coords(lat, lon, None)
    if not known and depth < 2:
        for value in mapping.values():
            if isinstance(value, dict) and _fill_from_mapping(fields, value, depth + 1):
                return True
    return known


def _literal(candidate: str) -> tuple[dict | None, str | None]:
    """Strict parse of a brace object: JSON first, then a Python literal."""
    try:
        obj = json.loads(candidate)
        if isinstance(obj, dict):
            return obj, "json"
    except Exception:  # noqa: BLE001 - any failure means "not JSON"
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = ast.literal_eval(candidate)
        if isinstance(obj, dict):
            return obj, "dict"
    except Exception:  # noqa: BLE001 - SyntaxError, ValueError, RecursionError, MemoryError…
        pass
    return None, None


def _lenient_object(text: str) -> dict:
    """Key/value pairs of a brace object that is malformed or cut off: complete values only.

    A quoted value ends at a closing quote followed by ``,`` + another key, ``}`` or the end, so
    an apostrophe inside ``'Côte d'Ivoire'`` does not end it. A value still open at the end of
    the text (truncated generation) is dropped, and reading stops there.
    """
    out: dict[str, Any] = {}
    pos = 0
    n = len(text)
    while pos < n:
        km = _OBJ_KEY.search(text, pos)
        if km is None:
            break
        i = km.end()
        if i >= n:
            break
        ch = text[i]
        if ch in "\"'":
            j = i + 1
            end = None
            while True:
                j = text.find(ch, j)
                if j < 0:
                    break
                k = j
                while k > i + 1 and text[k - 1] == "\\":
                    k -= 1
                backslashes = j - k
                if backslashes % 2 == 0 and _CLOSE_OK.match(text, j + 1):
                    end = j
                    break
                j += 1
            if end is None:
                break  # truncated inside this value
            out.setdefault(km.group("key"), _unescape(text[i + 1 : end]))
            pos = end + 1
        elif ch == "[":
            j = text.find("]", i)
            if j < 0:
                break
            items = [s.strip().strip("\"'") for s in text[i + 1 : j].split(",")]
            out.setdefault(km.group("key"), items)
            pos = j + 1
        else:
            vm = _BARE_VALUE.match(text, i)
            j = vm.end()
            if j >= n:
                break  # a bare value running into the end may be cut off
            value = vm.group(0).strip()
            out.setdefault(km.group("key"), value)
            pos = max(j, i + 1)
    for key, value in list(out.items()):
        if _canon_key(key) == "coords" and isinstance(value, list):
            out[key] = [_num_or_str(v) for v in value]
    return out


def _num_or_str(value: str) -> Any:
    try:
        return signed_float(value)
    except ValueError:
        return value


def _read_object(region: str, fields: _Fields) -> str | None:
    """Read the first brace object with a known key; returns its format ("json"/"dict") or None."""
    start = region.find("{")
    tries = 0
    while start >= 0 and tries < 8:
        tries += 1
        end = region.rfind("}")
        candidates = []
        if end > start:
            candidates.append(region[start : end + 1])
            first_close = region.find("}", start)
            if first_close != end:
                candidates.append(region[start : first_close + 1])
        for cand in candidates:
            obj, fmt = _literal(cand)
            if obj is not None:
                trial = _Fields()
                if _fill_from_mapping(trial, obj):
                    _copy(trial, fields)
                    return fmt
        loose = _lenient_object(region[start:])
        if loose:
            trial = _Fields()
            if _fill_from_mapping(trial, loose):
                _copy(trial, fields)
                return "dict"
        start = region.find("{", start + 1)
    return None


def _copy(src: _Fields, dst: _Fields) -> None:
    dst.__dict__.update(src.__dict__)


# --------------------------------------------------------------------------------------------
# "Country: France" lines

_KV_LINE = re.compile(
    r"^[ \t>#*•\-\d.)]*?(?P<key>country|city|reasons?|reasoning|explanation|coordinates|coords|gps)\b"
    r"[ \t*_]*[:：=][ \t*_]*(?P<val>[^\n]*)$",
    re.IGNORECASE | re.MULTILINE,
)


#: A further ``key:`` on the same line as a first one: "Country: France, City: Paris".
_KV_NEXT = re.compile(r"\s*[,;|]\s*(?=(?:country|city|coordinates|coords|gps|reasons?|reasoning|explanation)\b[ \t*_]*[:：=])",
                      re.IGNORECASE)


def _split_kv_lines(region: str) -> str:
    """Put each ``key: value`` of a one-line answer on its own line (only on lines that start with a key)."""
    lines = region.split("\n")
    for i, line in enumerate(lines):
        if _KV_LINE.match(line):
            lines[i] = _KV_NEXT.sub("\n", line)
    return "\n".join(lines)


def _read_kv(region: str, fields: _Fields) -> bool:
    """``Country: …`` / ``City: …`` / ``Reasons: …`` / ``Coordinates: …`` lines; True when any."""
    region = _split_kv_lines(region)
    matches = list(_KV_LINE.finditer(region))
    seen = set()
    for idx, m in enumerate(matches):
        canon = _canon_key(m.group("key"))
        if canon in seen:
            continue
        seen.add(canon)
        if canon == "country":
            fields.set_country(m.group("val"))
        elif canon == "city":
            fields.set_city(m.group("val"))
        elif canon == "reasons":
            stop = matches[idx + 1].start() if idx + 1 < len(matches) else len(region)
            fields.set_reasons(region[m.start("val") : stop].strip().strip("*_").strip())
        elif canon == "coords":
            lat, lon, err, _ = read_coordinates(m.group("val"))
            fields.set_coords(lat, lon, err)
    return bool(seen)


# --------------------------------------------------------------------------------------------
# a bare place: "Paris, France", "France", "Paris" (the last only inside <answer>)

_NAME = re.compile(r"[^\W\d_][\w .'’\-]{0,60}")


def _read_place(text: str, fields: _Fields, allow_city_alone: bool) -> bool:
    s = _clean_value(re.sub(r"\(\s*\)|\[\s*\]", " ", text))
    s = re.sub(r"^(?:the\s+)?(?:answer|location|place|prediction)\s*(?:is|:)\s*", "", s, flags=re.I).strip()
    if not s or len(s) > 100 or "\n" in s:
        return False
    if is_refusal(s):
        fields.refused = True
        return False
    parts = [p.strip() for p in re.split(r"[,;]", s) if p.strip()]
    if not parts or len(parts) > 3:
        return False
    code = _normalize_country(parts[-1])
    if code is not None:
        fields.country, fields.country_text = code, parts[-1]
        if len(parts) >= 2 and _NAME.fullmatch(parts[0]):
            fields.city = parts[0]
        return True
    parts = [p for p in parts if not _non_value(p)]  # "nan, nan" is no place
    if not parts:
        fields.refused = True
        return False
    if allow_city_alone and len(parts) <= 2 and _NAME.fullmatch(parts[0]) and len(parts[0].split()) <= 5:
        fields.city = parts[0]
        if len(parts) == 2:
            fields.country_text = parts[1]
        return True
    return False


_CAP_WORDS = re.compile(r"\b[A-Z][\w.'’\-]*(?:\s+(?:of|the|and|de|du|la|[A-Z][\w.'’\-]*)){0,4}")


def _country_in_prose(text: str, fields: _Fields) -> None:
    """The country a sentence names beside its coordinates ("… this is Ethiopia, about 12 N, 40 E").

    Every run of capitalised words (and sub-runs of it) is looked up as a country name; one
    country named is taken; several are resolved by the country the coordinates fall in, else none.
    """
    from geolib.gazetteer import _country_name_index, _norm_key
    from geolib.borders import country_of

    names, _ = _country_name_index()
    found: dict[str, str] = {}
    for m in _CAP_WORDS.finditer(text[:5000]):
        words = m.group(0).split()
        for n in range(len(words), 0, -1):
            for start in range(0, len(words) - n + 1):
                phrase = " ".join(words[start : start + n]).strip(".,;:")
                key = _norm_key(phrase)
                if len(key) >= 4 and names.get(key):
                    found.setdefault(names[key], phrase)
    if not found:
        return
    code = next(iter(found)) if len(found) == 1 else None
    if code is None:
        try:
            at = country_of(fields.lat, fields.lon)
        except Exception:  # noqa: BLE001 - no polygons: leave the country unread
            at = None
        code = at if at in found else None
    if code is not None:
        fields.country, fields.country_text = code, found[code]


# --------------------------------------------------------------------------------------------
# GRE tags

_ANSWER_TAG = re.compile(r"<answer>(?P<body>.*?)(?:</answer>|\Z)", re.IGNORECASE | re.DOTALL)
_THINK_TAG = re.compile(r"<think>(?P<body>.*?)(?:</think>|\Z)", re.IGNORECASE | re.DOTALL)


def _split_tags(text: str) -> tuple[str, bool, str | None, str | None]:
    """Returns (region to read, inside an answer tag?, think text, note)."""
    think_m = _THINK_TAG.search(text)
    think = think_m.group("body").strip() if think_m else None
    # an answer tag quoted inside the think text is not the answer: look after </think> first
    after = think_m.end() if think_m is not None and think_m.group(0).lower().endswith("</think>") else 0
    ans = _ANSWER_TAG.search(text, after) or _ANSWER_TAG.search(text)
    if ans is not None:
        return ans.group("body"), True, think or None, None
    lower = text.lower()
    close = lower.rfind("</think>")
    if close >= 0:
        return text[close + len("</think>") :], False, think or None, None
    if think_m is not None:
        return text[: think_m.start()], False, think or None, "completion ends inside <think> (no answer)"
    return text, False, None, None


# --------------------------------------------------------------------------------------------
# entry point


def parse_answer(text: Any) -> ParsedAnswer:
    """Read a model's answer into country, city, coordinates and reasons.

    Readers, first match wins: a brace object (``dict``/``json``), ``Country:`` lines (``kv``),
    coordinates (keyed, hemisphere-marked, then an unkeyed ``lat, lon`` pair), a bare place.
    With ``<answer>…</answer>`` only the tag's content is read and ``format`` is ``"gre"``;
    without it, text after ``</think>`` is read (the think text never supplies coordinates).

    Args:
        text: the model's completion; anything that is not a ``str`` gives an unanswered result.

    Returns:
        A :class:`ParsedAnswer`; never raises.
    """
    if not isinstance(text, str):
        return ParsedAnswer(error=f"answer is not a string: {type(text).__name__}")
    if not text.strip():
        return ParsedAnswer(error="empty answer")
    text = text[:MAX_CHARS]
    region, in_tag, think, note = _split_tags(text)
    fields = _Fields()
    fmt = _read_object(region, fields)
    if fmt is None and _read_kv(region, fields):
        fmt = "kv"
        if fields.lat is None:
            # beside Country:/City: lines, only keyed coordinates (Latitude: …) are read, so
            # numbers in the reasons are never taken for a location
            lat, lon, err, _ = keyed_coordinates(region)
            fields.set_coords(lat, lon, err)
    if fmt is None:
        lat, lon, err, span = read_coordinates(region, strict=not in_tag)
        fields.set_coords(lat, lon, err)
        if lat is not None:
            fmt = "coords"
            if in_tag and fields.lat is not None and span is not None:
                _read_place(region[: span[0]] + " " + region[span[1] :], fields, allow_city_alone=True)
            elif fields.lat is not None and span is not None and fields.country is None:
                _country_in_prose(region[: span[0]] + " " + region[span[1] :], fields)
        elif _read_place(region, fields, allow_city_alone=in_tag):
            fmt = "text"
    if fields.reasons is None and think:
        fields.reasons = think
    answered = fields.answered
    if in_tag and fmt is not None:
        fmt = "gre"
    if not answered and fmt == "text":
        fmt = None
    error = fields.coord_error
    if not answered:
        if fields.refused or (region.strip() and is_refusal(region[:2000])):
            error = "refusal" + (f" ({error})" if error else "")
        elif error is None:
            error = note or "no country, city or coordinates found"
    country_text = fields.country_text
    return ParsedAnswer(
        country=fields.country,
        country_text=country_text,
        city=fields.city,
        lat=fields.lat,
        lon=fields.lon,
        reasons=fields.reasons,
        answered=answered,
        format=fmt,
        error=error,
    )
