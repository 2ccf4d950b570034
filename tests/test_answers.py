"""Tests of geolib.answers: every answer style of GeoReasoner and GRE, refusals, properties."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geolib.answers import ParsedAnswer, is_refusal, parse_answer

# --------------------------------------------------------------------------------------------
# GeoReasoner: dict / JSON


@pytest.mark.parametrize(
    "text, fmt",
    [
        ("{'country': 'France', 'city': 'Paris', 'reasons': 'Blue street signs.'}", "dict"),
        ('{"country": "France", "city": "Paris", "reasons": "Blue street signs."}', "json"),
        ("```python\n{'country': 'France', 'city': 'Paris', 'reasons': 'Blue street signs.'}\n```", "dict"),
        ('```json\n{"country": "France", "city": "Paris", "reasons": "Blue street signs."}\n```', "json"),
        ("Here is my answer: {'country': 'France', 'city': 'Paris', 'reasons': 'Blue street signs.'} Hope it helps!", "dict"),
        ("{'Country': 'France', 'CITY': 'Paris', 'Reasons': 'Blue street signs.'}", "dict"),
        ("{country: France, city: Paris, reasons: Blue street signs.}", "dict"),
    ],
)
def test_georeasoner_dict_styles(text, fmt):
    p = parse_answer(text)
    assert (p.country, p.country_text, p.city) == ("FR", "France", "Paris")
    assert p.reasons.startswith("Blue street signs")
    assert p.answered and p.format == fmt and p.error is None
    assert p.lat is None and p.lon is None


def test_apostrophes_inside_values():
    double = parse_answer('{"country": "Côte d\'Ivoire", "city": "Abidjan", "reasons": "French signs"}')
    assert (double.country, double.city, double.format) == ("CI", "Abidjan", "json")
    python = parse_answer("{'country': \"Côte d'Ivoire\", 'city': 'Abidjan'}")
    assert (python.country, python.format) == ("CI", "dict")
    # a model that forgot to switch quotes: the apostrophe does not end the value
    broken = parse_answer("{'country': 'Côte d'Ivoire', 'city': 'Abidjan', 'reasons': 'The word 'Abidjan', a sign'}")
    assert (broken.country, broken.country_text, broken.city) == ("CI", "Côte d'Ivoire", "Abidjan")
    assert broken.reasons == "The word 'Abidjan', a sign"


def test_truncated_dict_keeps_complete_values():
    p = parse_answer("{'country': 'Japan', 'city': 'Osaka', 'reasons': 'The signs are written in kanji and the car")
    assert (p.country, p.city, p.answered, p.format) == ("JP", "Osaka", True, "dict")
    assert p.reasons is None  # cut off mid-value: dropped, never guessed


def test_truncated_dict_inside_the_city_drops_the_city():
    p = parse_answer('{"country": "Japan", "city": "Osa')
    assert (p.country, p.city, p.answered) == ("JP", None, True)


def test_truncated_before_any_value():
    p = parse_answer("{'country': 'Jap")
    assert not p.answered and p.country is None


def test_escaped_quotes_in_json_value():
    p = parse_answer('{"country": "Brazil", "reasons": "a sign says \\"Rua\\""}')
    assert p.country == "BR" and p.reasons == 'a sign says "Rua"'


def test_unrecognised_country_keeps_the_text_and_counts_as_answered():
    p = parse_answer("{'country': 'Atlantis', 'city': 'Poseidonia'}")
    assert p.country is None and p.country_text == "Atlantis" and p.city == "Poseidonia"
    assert p.answered and p.country_label == "Atlantis"


def test_dict_with_coordinates():
    p = parse_answer("{'country': 'Australia', 'city': 'Sydney', 'coordinates': [-33.87, 151.21]}")
    assert (p.country, p.lat, p.lon) == ("AU", -33.87, 151.21)
    q = parse_answer('{"latitude": "33.87° S", "longitude": "151.21° E"}')
    assert (q.lat, q.lon, q.format) == (-33.87, 151.21, "json")


def test_numbers_in_dict_reasons_are_not_coordinates():
    p = parse_answer("{'country': 'France', 'reasons': 'Route 48.5, 2.3 km to Paris'}")
    assert p.lat is None and p.error is None


# --------------------------------------------------------------------------------------------
# Country: / City: lines


@pytest.mark.parametrize(
    "text",
    [
        "Country: France\nCity: Paris\nReasons: French road signs.",
        "**Country:** France\n**City:** Paris\n**Reasons:** French road signs.",
        "- **Country**: France\n- **City**: Paris\n- **Reasons**: French road signs.",
        "I think this is France.\n\ncountry: france\ncity: paris\nreasons: French road signs.",
        "1. Country: France.\n2. City: Paris.\n3. Reasons: French road signs.",
    ],
)
def test_kv_lines(text):
    p = parse_answer(text)
    assert p.country == "FR" and p.city.lower() == "paris"
    assert p.reasons.startswith("French road signs")
    assert p.answered and p.format == "kv"


def test_kv_reasons_run_to_the_next_key_and_numbers_in_them_are_not_coordinates():
    p = parse_answer("Country: Germany\nReasons: In 2019, 45.5 signs said\nStraße.\nCity: Berlin")
    assert (p.country, p.city) == ("DE", "Berlin")
    assert p.reasons == "In 2019, 45.5 signs said\nStraße."
    assert p.lat is None and p.error is None


def test_kv_with_keyed_coordinates():
    p = parse_answer("Country: Australia\nCity: Sydney\nLatitude: 33.87 S\nLongitude: 151.21 E")
    assert (p.country, p.lat, p.lon, p.format) == ("AU", -33.87, 151.21, "kv")


# --------------------------------------------------------------------------------------------
# GRE: <think>…</think><answer>…</answer>

THINK = "<think>Right-hand traffic, Latin script, a sign in French.</think>"


@pytest.mark.parametrize(
    "answer, lat, lon",
    [
        ("48.8566, 2.3522", 48.8566, 2.3522),
        ("(48.8566, 2.3522)", 48.8566, 2.3522),
        ("[-33.8688, 151.2093]", -33.8688, 151.2093),
        ("−33.8688, 151.2093", -33.8688, 151.2093),  # unicode minus
        ("48.86°N, 2.35°E", 48.86, 2.35),
        ("48.86° N, 2.35° W", 48.86, -2.35),
        ("33.9° S 151.2° E", -33.9, 151.2),
        ("151.2° E, 33.9° S", -33.9, 151.2),  # hemispheres decide, not the order
        ("33.9 degrees South, 151.2 degrees East", -33.9, 151.2),
        ("N 48.86, W 2.35", 48.86, -2.35),
        ("40°26′46″N 79°58′56″W", 40 + 26 / 60 + 46 / 3600, -(79 + 58 / 60 + 56 / 3600)),
        ("40°26'46\"N, 79°58'56\"W", 40 + 26 / 60 + 46 / 3600, -(79 + 58 / 60 + 56 / 3600)),
        ("Latitude: 40.44, Longitude: -79.98", 40.44, -79.98),
        ("Longitude: -79.98, Latitude: 40.44", 40.44, -79.98),
        ("lat=-33.9; lon=151.2", -33.9, 151.2),
        ("Latitude: 33.9° S, Longitude: 151.2° E", -33.9, 151.2),
        ('{"lat": 40.44, "lon": -79.98}', 40.44, -79.98),
        ('{"longitude": -79.98, "latitude": 40.44}', 40.44, -79.98),
        ("The location is approximately 48.8566, 2.3522.", 48.8566, 2.3522),
    ],
)
def test_gre_coordinates(answer, lat, lon):
    p = parse_answer(f"{THINK}\n<answer>{answer}</answer>")
    assert p.lat == pytest.approx(lat, abs=1e-9) and p.lon == pytest.approx(lon, abs=1e-9)
    assert p.answered and p.format == "gre" and p.error is None
    assert p.reasons == "Right-hand traffic, Latin script, a sign in French."


def test_unkeyed_pair_is_latitude_first_even_when_swapping_would_fit():
    p = parse_answer("<answer>2.3522, 48.8566</answer>")
    assert (p.lat, p.lon) == (2.3522, 48.8566)
    # and a pair whose first value cannot be a latitude is rejected, not swapped
    q = parse_answer("<answer>151.2093, -33.8688</answer>")
    assert not q.answered and q.lat is None and "latitude 151.209" in q.error


@pytest.mark.parametrize(
    "answer, needle",
    [
        ("95.0, 20.0", "latitude 95"),
        ("-90.5, 0", "latitude -90.5"),
        ("20.0, 200.0", "longitude 200"),
        ("Latitude: 91, Longitude: 10", "latitude 91"),
        ("100° N, 20° E", "latitude 100"),
        ("Latitude: 33.9 E, Longitude: 151.2 E", "hemisphere E"),
        ("Latitude: 48.85", "only the latitude"),
    ],
)
def test_bad_coordinates_are_rejected_with_a_reason(answer, needle):
    p = parse_answer(f"{THINK}<answer>{answer}</answer>")
    assert p.lat is None and p.lon is None and not p.answered
    assert needle in p.error


def test_out_of_range_coordinates_beside_a_country_keep_the_country():
    p = parse_answer("Country: France\nLatitude: 148.85\nLongitude: 2.35")
    assert p.answered and p.country == "FR" and p.lat is None
    assert "latitude 148.85" in p.error


@pytest.mark.parametrize(
    "answer, country, city",
    [
        ("France", "FR", None),
        ("Paris, France", "FR", "Paris"),
        ("Paris, Île-de-France, France", "FR", "Paris"),
        ("Paris", None, "Paris"),
        ("**Sydney, Australia**", "AU", "Sydney"),
    ],
)
def test_gre_place_answers(answer, country, city):
    p = parse_answer(f"{THINK}<answer>{answer}</answer>")
    assert (p.country, p.city, p.answered, p.format) == (country, city, True, "gre")


def test_gre_place_and_coordinates_together():
    p = parse_answer("<answer>Paris, France (48.8566, 2.3522)</answer>")
    assert (p.country, p.city, p.lat, p.lon) == ("FR", "Paris", 48.8566, 2.3522)


def test_gre_think_text_never_supplies_coordinates():
    p = parse_answer("<think>Paris is at 48.85, 2.35 but the signs are German.</think><answer>Germany</answer>")
    assert p.country == "DE" and p.lat is None
    q = parse_answer("<think>Paris is at 48.85, 2.35, hmm")
    assert not q.answered and q.lat is None and "inside <think>" in q.error


def test_answer_tag_quoted_inside_think_is_skipped():
    p = parse_answer("<think>I must write <answer>lat, lon</answer> at the end. Kanji.</think><answer>35.68, 139.69</answer>")
    assert (p.lat, p.lon, p.format) == (35.68, 139.69, "gre")


def test_gre_without_answer_tag_reads_after_think():
    p = parse_answer("<think>Kanji signs.</think> 35.68, 139.69")
    assert (p.lat, p.lon, p.format, p.reasons) == (35.68, 139.69, "coords", "Kanji signs.")


def test_gre_unclosed_answer_tag_is_read():
    p = parse_answer(f"{THINK}<answer>35.68, 139.69")
    assert (p.lat, p.lon, p.format) == (35.68, 139.69, "gre")


def test_first_answer_tag_wins():
    p = parse_answer("<answer>Sydney, Australia</answer><answer>Paris, France</answer>")
    assert p.country == "AU"


# --------------------------------------------------------------------------------------------
# bare answers, prose, refusals, garbage


def test_bare_coordinates_and_places():
    assert (parse_answer("48.8566, 2.3522").lat, parse_answer("48.8566 2.3522").lon) == (48.8566, 2.3522)
    assert parse_answer("The coordinates are (48, 2).").lat == 48.0
    p = parse_answer("Paris, France.")
    assert (p.country, p.city, p.format) == ("FR", "Paris", "text")
    assert parse_answer("France").country == "FR"


def test_prose_numbers_are_not_coordinates():
    p = parse_answer("In 2019, 45 signs were counted along the road.")
    assert not p.answered and p.lat is None


def test_a_lone_unknown_word_outside_tags_is_not_an_answer():
    p = parse_answer("Paris")  # outside <answer> a lone name must be a country to count
    assert not p.answered and p.format is None


@pytest.mark.parametrize(
    "text",
    [
        "I cannot determine the location from this image.",
        "Sorry, I can't tell where this is.",
        "unknown",
        "N/A",
        "n/a",
        "{'country': 'Unknown', 'city': 'Unknown', 'reasons': 'There are no clues.'}",
        '{"country": "N/A", "city": "N/A"}',
        "Country: Not determinable\nCity: Unknown",
        "Country: None\nCity: -",
        "<think>No clues at all.</think><answer>unknown</answer>",
        "<think>Fog.</think><answer>I am unable to determine the location.</answer>",
    ],
)
def test_refusals_are_not_answered(text):
    p = parse_answer(text)
    assert not p.answered
    assert p.country is None and p.city is None and p.lat is None
    assert p.country_label is None
    assert p.error.startswith("refusal")


def test_na_in_capitals_is_namibia_not_a_refusal():
    assert not is_refusal("NA")
    assert parse_answer("{'country': 'NA', 'city': 'Windhoek'}").country == "NA"


def test_refused_city_with_a_real_country_is_answered():
    p = parse_answer("{'country': 'France', 'city': 'Unknown'}")
    assert p.answered and p.country == "FR" and p.city is None


@pytest.mark.parametrize("text", ["", "   \n", "asdkjh qwe zxc", "{}", "{'foo': 'bar'}", "<answer></answer>", "???"])
def test_garbage_is_not_answered(text):
    p = parse_answer(text)
    assert not p.answered and p.error


@pytest.mark.parametrize("value", [None, 3, 4.5, b"{'country': 'France'}", ["France"], {"country": "France"}])
def test_non_strings_are_unanswered(value):
    p = parse_answer(value)
    assert p == ParsedAnswer(error=p.error) and "not a string" in p.error


def test_parsed_answer_is_frozen():
    p = parse_answer("France")
    with pytest.raises(AttributeError):
        p.country = "DE"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# properties

_FRAGMENTS = st.sampled_from(
    [
        "{", "}", "'", '"', ":", ",", "country", "City", "reasons", "lat", "Longitude", "<think>", "</think>",
        "<answer>", "</answer>", "°", "′", "″", "N", "S", "E", "W", "-", "48.85", "2.35", "999", " ", "\n",
        "France", "Côte d'Ivoire", "unknown", "**", "```", "[", "]", "(", ")", "\\", "null", "1e9", ".",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), st.lists(_FRAGMENTS, max_size=40).map("".join)))
def test_never_raises_on_any_text(text):
    p = parse_answer(text)
    assert isinstance(p, ParsedAnswer)
    assert p.answered == (p.country_label is not None or p.city is not None or p.has_coordinates)
    if p.has_coordinates:
        assert -90 <= p.lat <= 90 and -180 <= p.lon <= 180
    if not p.answered:
        assert p.error


_LAT = st.floats(min_value=-90, max_value=90, allow_nan=False)
_LON = st.floats(min_value=-180, max_value=180, allow_nan=False)


def _hemi(value: float, pos: str, neg: str) -> str:
    return f"{abs(value):.6f}°{pos if value >= 0 else neg}"


def _dms(value: float, pos: str, neg: str) -> str:
    hundredths = round(abs(value) * 360_000)  # hundredths of an arc second
    d, rest = divmod(hundredths, 360_000)
    m, s = divmod(rest, 6_000)
    return f"{d}°{m}′{s / 100:.2f}″{pos if value >= 0 else neg}"


_STYLES = {
    "decimal": lambda a, o: f"{a:.6f}, {o:.6f}",
    "bracketed": lambda a, o: f"({a:.6f}, {o:.6f})",
    "hemispheres": lambda a, o: f"{_hemi(a, 'N', 'S')}, {_hemi(o, 'E', 'W')}",
    "hemispheres lon first": lambda a, o: f"{_hemi(o, 'E', 'W')} {_hemi(a, 'N', 'S')}",
    "keyed": lambda a, o: f"Latitude: {a:.6f}, Longitude: {o:.6f}",
    "keyed lon first": lambda a, o: f"Longitude: {o:.6f}, Latitude: {a:.6f}",
    "json": lambda a, o: f'{{"lat": {a:.6f}, "lon": {o:.6f}}}',
    "dms": lambda a, o: f"{_dms(a, 'N', 'S')} {_dms(o, 'E', 'W')}",
}


@settings(max_examples=400, deadline=None)
@given(_LAT, _LON, st.sampled_from(sorted(_STYLES)), st.booleans())
def test_valid_coordinates_round_trip(lat, lon, style, tagged):
    text = _STYLES[style](lat, lon)
    if tagged:
        text = f"<think>Clues.</think>\n<answer>{text}</answer>"
    p = parse_answer(text)
    tol = 1.5e-6 if style == "dms" else 1e-6  # 6 decimals, or hundredths of an arc second
    assert p.answered and p.error is None, (text, p)
    assert abs(p.lat - lat) <= tol and abs(p.lon - lon) <= tol, (text, p)
    assert p.format == ("gre" if tagged else ("json" if style == "json" else "coords"))


@settings(max_examples=100, deadline=None)
@given(
    st.floats(min_value=90.000001, max_value=1e4, allow_nan=False) | st.floats(min_value=-1e4, max_value=-90.000001),
    _LON,
)
def test_out_of_range_latitude_never_parses(lat, lon):
    p = parse_answer(f"<answer>{lat:.6f}, {lon:.6f}</answer>")
    assert p.lat is None and not p.answered and "outside [-90, 90]" in p.error
