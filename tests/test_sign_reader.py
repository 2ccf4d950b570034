"""The offline sign reader (geolib.sign_reader): rendered signs of every script, a photo-like scene
drawn here, text-free photos, bad files, and the evidence rules on text."""

import json

import numpy as np
import pytest
from PIL import Image

from geolib import answers, gazetteer, ocr, sign_photos, sign_reader

SCRIPTS = ("Latn", "Cyrl", "Grek", "Arab", "Hebr", "Deva", "Beng", "Thai", "Geor", "Armn", "Ethi", "Sinh", "Taml",
           "Hans", "Hant", "Jpan", "Kore")


@pytest.fixture(scope="module")
def script_check():
    """Two signs per script (the country's name, Monday), all read in one batch (one tesseract process)."""
    return sign_photos.script_reading_check(SCRIPTS, words_per_script=2, threads=1)


@pytest.mark.parametrize("script", SCRIPTS)
def test_rendered_signs_of_every_supported_script_are_read(script_check, script):
    rows = script_check[script_check["script"] == script]
    if not rows["readable"].all():
        pytest.skip(f"{script} cannot be read here: {ocr.unreadable_scripts().get(script)}")
    # rapidocr's scripts are read without fail; tesseract's fast models miss some words
    need = len(rows) if script in ("Latn", "Hans", "Hant", "Jpan") else 1
    assert rows["correct"].sum() >= need, f"{script}: rendered {rows['word'].tolist()}, read {rows['read'].tolist()}"


def test_most_rendered_signs_are_read(script_check):
    readable = script_check[script_check["readable"]]
    assert readable["correct"].mean() >= 0.75, readable[~readable["correct"]][["script", "word", "read"]].to_string()


def test_without_tesseract_only_rapidocr_scripts_are_readable_and_the_rest_say_why(monkeypatch):
    monkeypatch.setattr(ocr, "tesseract_binary", lambda: None)
    assert set(ocr.readable_scripts()) == set(ocr.RAPIDOCR_SCRIPTS)
    why = ocr.unreadable_scripts()
    assert set(why) == set(ocr.TESSERACT_MODELS) | {"Tfng"}
    assert "tesseract is not installed" in why["Cyrl"]


def _street_photo(lines, size=(960, 640), seed=0):
    return sign_photos.street_photo(lines, size, seed)


@pytest.fixture(scope="module")
def photo_readings():
    spain = _street_photo(["FARMACIA", "Tel. +34 915 551 234", "www.farmacia-sol.es"])
    empty = _street_photo([], seed=1)
    return sign_reader.read_photos([spain, empty], threads=1)


def test_a_photo_like_scene_with_a_shop_sign_is_placed_where_its_text_says(photo_readings):
    r = photo_readings[0]
    assert "FARMACIA" in r.text.upper()
    parsed = answers.parse_answer(r.answer)
    assert parsed.answered and parsed.country == "ES", r.answer
    assert "+34" in parsed.reasons and ".es" in parsed.reasons, "the reasons quote what was read"
    assert r.candidates[0].country == "ES" and 0 < r.candidates[0].score <= 1
    assert set(r.seconds) >= {"detector", "recogniser", "identify"}


def test_batches_read_while_the_previous_batchs_tesseract_runs_give_the_same_readings(monkeypatch):
    """read_photos starts each batch's tesseract process and detects the next batch meanwhile; the
    readings equal one batch read after another, and no tesseract process outlives an error."""
    photos = [_street_photo(["Москва", "ТЕЛЕФОН"], (320, 224), seed=2), _street_photo(["FARMACIA"], (320, 224), seed=3),
              _street_photo(["Αθήνα"], (320, 224), seed=4)]
    overlapped = sign_reader.read_photos(photos, batch_size=1)
    for photo, reading in zip(photos, overlapped):
        boxes, _ = ocr.read_text([photo], threads=1)
        assert [b.text for b in reading.boxes] == [b.text for b in boxes[0]]
        assert reading.answer == sign_reader.answer_text(sign_reader.identify(boxes[0]), boxes[0])
    if ocr.tesseract_scripts():
        assert any(b.engine == "tesseract" for r in overlapped for b in r.boxes), "tesseract read the Cyrillic/Greek"
    started = []
    real_job = ocr._TesseractJob

    def job(*args):
        started.append(real_job(*args))
        return started[-1]

    monkeypatch.setattr(ocr, "_TesseractJob", job)
    monkeypatch.setattr(sign_reader, "identify", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        sign_reader.read_photos(photos, batch_size=1)
    assert all(j.proc is None or j.proc.poll() is not None for j in started)


def test_a_photo_without_text_answers_no_text_found_and_is_not_answered(photo_readings):
    r = photo_readings[1]
    assert r.boxes == [] and r.candidates == []
    parsed = answers.parse_answer(r.answer)
    assert not parsed.answered and sign_reader.NO_TEXT in json.loads(r.answer)["reasons"]


def _box(text):
    return ocr.TextBox(text, 0.99, [[0, 0], [10, 0], [10, 5], [0, 5]], ocr.text_script(text))


@pytest.mark.parametrize("text, country", [
    ("Tel. +48 22 123 45 67", "PL"), ("www.tienda.com.br", "BR"), ("Deutschland", "DE"), ("Россия", "RU"),
    ("poniedziałek", "PL"), ("Kraków", "PL"), ("12 zł", "PL"), ("日本", "JP"), ("500 ₽", "RU"),
])
def test_evidence_in_text_points_to_its_country(text, country):
    cands = sign_reader.identify([_box(text)])
    assert cands and cands[0].country == country, [(c.country, c.score, c.reasons) for c in cands[:3]]
    assert cands[0].reasons and any(text in why for why in cands[0].reasons)


def test_candidates_can_be_restricted_to_the_studys_countries():
    cands = sign_reader.identify([_box("Deutschland")], countries=["AT", "CH"])
    assert all(c.country in {"AT", "CH"} for c in cands)


def test_text_that_names_nothing_is_read_but_not_answered():
    box = _box("1234")
    assert sign_reader.identify([box]) == []
    parsed = answers.parse_answer(sign_reader.answer_text([], [box]))
    assert not parsed.answered and "1234" in parsed.reasons


@pytest.mark.parametrize("code", ["ES", "US", "CD", "CG", "KR", "KP", "CI", "GB", "TW", "PS", "VA", "MK", "CZ"])
def test_the_answer_names_a_country_that_parse_answer_reads_back(code):
    cand = sign_reader.Candidate(code, 1.0, None, ["a reason"])
    parsed = answers.parse_answer(sign_reader.answer_text([cand], [_box("x")]))
    assert parsed.country == code and parsed.city
    if parsed.city:
        assert gazetteer.geocode_city(parsed.city, code) is not None


def test_every_countrys_name_reads_back():
    bad = [c for c in sign_reader._countries_info() if gazetteer.normalize_country(sign_reader.country_name(c)) != c]
    assert len(bad) <= 3, bad


# --- bad input: one clear line, never a crash ------------------------------------------------


@pytest.fixture()
def files(tmp_path):
    out = {}
    out["text"] = tmp_path / "notes.jpg"
    out["text"].write_text("not an image")
    good = tmp_path / "good.jpg"
    _street_photo(["Kraków"], size=(320, 240)).save(good, quality=90)
    data = good.read_bytes()
    out["truncated"] = tmp_path / "truncated.jpg"
    out["truncated"].write_bytes(data[: len(data) // 3])
    out["cmyk"] = tmp_path / "cmyk.jpg"
    Image.open(good).convert("CMYK").save(out["cmyk"])
    out["16bit"] = tmp_path / "deep.png"
    Image.fromarray((np.linspace(0, 65535, 240 * 320).reshape(240, 320)).astype(np.uint16)).save(out["16bit"])
    out["rotated"] = tmp_path / "rotated.jpg"
    img = Image.new("RGB", (300, 200), "white")
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    img.save(out["rotated"], exif=exif)
    out["missing"] = tmp_path / "missing.png"
    out["huge"] = tmp_path / "huge.png"
    Image.new("L", (4000, 3000)).save(out["huge"])
    return out


def test_a_non_image_truncated_missing_or_huge_file_gets_one_clear_line(files):
    for name, why in (("text", "not an image"), ("truncated", "truncated"), ("missing", "no such file")):
        with pytest.raises(sign_reader.PhotoError, match=why) as err:
            sign_reader.load_photo(files[name])
        assert "\n" not in str(err.value) and files[name].name in str(err.value)
    with pytest.raises(sign_reader.PhotoError, match="downscale"):
        sign_reader.load_photo(files["huge"], max_pixels=10_000_000)
    readings = sign_reader.read_photos([files["text"], files["missing"]])
    assert all(r.error and not answers.parse_answer(r.answer).answered for r in readings)


def test_cmyk_16_bit_and_exif_rotated_photos_are_converted_and_say_so(files):
    img, notes = sign_reader.load_photo(files["cmyk"])
    assert img.mode == "RGB" and any("CMYK" in n for n in notes)
    img, notes = sign_reader.load_photo(files["16bit"])
    arr = np.asarray(img)
    assert img.mode == "RGB" and arr.max() >= 250 and arr.min() <= 5 and any("16-bit" in n for n in notes)
    img, notes = sign_reader.load_photo(files["rotated"])
    assert img.size == (200, 300) and any("EXIF" in n for n in notes)


def test_package_photos_are_real_files_with_a_licence():
    for p in sign_photos.package_photos():
        assert p["licence"] and sign_reader.load_photo(p["path"])[0].size[0] > 100
