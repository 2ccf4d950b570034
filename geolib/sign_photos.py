"""Photos for checking the sign reader: real photos shipped by installed packages, rendered signs.

Used by notebook ``08_read_the_signs`` (the package photos, street photos with and without a
sign, and :func:`script_reading_check`, which renders CLDR words of every script on signs and
scores what :func:`geolib.sign_reader.read_photos` reads) and by the sign reader's tests and
benchmark. Signs use the demo world's Noto fonts (:func:`geolib.world.font_file`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from geolib import gazetteer
from geolib.ocr import readable_scripts
from geolib.sign_reader import read_photos

#: Real photos inside installed packages: (distribution, path in it, place, licence).
PACKAGE_PHOTOS = (
    ("geoclip", "geoclip/images/Kauai.png", "Kauai, Hawaii, US", "MIT (geoclip)"),
    ("ultralytics", "ultralytics/assets/bus.jpg", "Madrid, ES", "AGPL-3.0 (ultralytics): used in place, never copied"),
)


def package_photos() -> list[dict]:
    """The real photos that installed packages ship (:data:`PACKAGE_PHOTOS`), where present."""
    import importlib.metadata as md

    out = []
    for dist, rel, place, licence in PACKAGE_PHOTOS:
        try:
            files = md.distribution(dist).files or ()
        except md.PackageNotFoundError:
            continue
        for f in files:
            if str(f).replace("\\", "/") == rel:
                path = Path(f.locate())
                if path.is_file():
                    out.append({"path": str(path), "place": place, "licence": licence, "package": dist})
    return out


def sign_words(script: str, n: int = 4) -> tuple[str, list[str]]:
    """``n`` CLDR words (weekday and month names, the country's name) of a language in ``script``."""
    from babel import Locale, localedata

    lang, country = {
        "Latn": ("pl", "PL"), "Cyrl": ("ru", "RU"), "Grek": ("el", "GR"), "Arab": ("ar", "EG"), "Hebr": ("he", "IL"),
        "Deva": ("hi", "IN"), "Beng": ("bn", "BD"), "Thai": ("th", "TH"), "Geor": ("ka", "GE"), "Armn": ("hy", "AM"),
        "Ethi": ("am", "ET"), "Sinh": ("si", "LK"), "Taml": ("ta", "LK"), "Hans": ("zh_Hans", "CN"),
        "Hant": ("zh_Hant", "TW"), "Jpan": ("ja", "JP"), "Kore": ("ko", "KR"), "Tfng": ("zgh", "MA"),
    }[script]
    getattr(localedata, "_cache", {}).clear()
    loc = Locale.parse(lang)
    words = [loc.territories[country], loc.days["format"]["wide"][0], loc.months["format"]["wide"][5],
             loc.days["format"]["wide"][3], loc.months["format"]["wide"][10]]
    getattr(localedata, "_cache", {}).clear()
    return lang, words[:n]


def render_sign(lines: Sequence[str], script: str, size: int = 40, canvas: tuple[int, int] = (480, 240), seed: int = 0):
    """A white-on-blue street sign holding ``lines`` in the script's Noto font (the demo world's),
    centred on a plain ``canvas`` (an RGB PIL image)."""
    from PIL import Image, ImageDraw, ImageFont

    from geolib import world

    path, index = world.font_file(script)
    font = ImageFont.truetype(path, size, index=index, layout_engine=ImageFont.Layout.RAQM)
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", canvas, tuple(int(v) for v in rng.integers(170, 240, 3)))
    d = ImageDraw.Draw(img)
    text_w = max(d.textlength(line, font=font) for line in lines)
    w, h = int(text_w + size), int(size * 1.6 * len(lines) + size * 0.6)
    x0, y0 = max(4, (canvas[0] - w) // 2), max(4, (canvas[1] - h) // 2)
    d.rectangle([x0, y0, x0 + w, y0 + h], fill=(20, 60, 140))
    for i, line in enumerate(lines):
        d.text((x0 + size // 2, y0 + size * 0.3 + i * size * 1.6), line, font=font, fill="white")
    return img


def street_photo(lines: Sequence[str], size: tuple[int, int] = (960, 640), seed: int = 0):
    """A photo-like street scene (sky, facades with windows, a road, blur and noise) with a green
    shop sign holding ``lines`` in Noto Sans, or no sign when ``lines`` is empty (an RGB PIL image)."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    from geolib import world

    rng = np.random.default_rng(seed)
    w, h = size
    sky = np.linspace([120, 170, 225], [200, 220, 240], h // 2).astype(np.uint8)
    img = Image.new("RGB", size, (90, 90, 95))
    img.paste(Image.fromarray(np.repeat(sky[:, None, :], w, axis=1)), (0, 0))
    d = ImageDraw.Draw(img)
    x, unit = 0, w / 960
    while x < w:
        bw = int(rng.integers(120, 260) * unit) + 1
        top = int(rng.integers(60, 200) * h / 640)
        d.rectangle([x, top, x + bw, int(h * 0.72)], fill=tuple(int(v) for v in rng.integers(120, 220, 3)))
        step = max(4, int(45 * unit))
        for wy in range(top + step // 2, int(h * 0.6), max(4, int(50 * unit))):
            for wx in range(x + step // 3, x + bw - step // 2, step):
                d.rectangle([wx, wy, wx + step // 2, wy + int(step * 0.66)], fill=(60, 70, 90))
        x += bw
    d.polygon([(0, h), (w, h), (w * 0.6, h * 0.72), (w * 0.4, h * 0.72)], fill=(70, 70, 72))
    if lines:
        path, index = world.font_file("Latn")
        em = max(8, int(34 * unit))
        font = ImageFont.truetype(path, em, index=index)
        sx, sy = int(w * 0.18), int(h * 0.33)
        width = int(max(font.getlength(t) for t in lines) + em)
        d.rectangle([sx, sy, sx + width, sy + int(em * 1.5) * len(lines) + em // 2], fill=(20, 110, 60))
        for i, line in enumerate(lines):
            d.text((sx + em // 2, sy + em // 3 + int(em * 1.5) * i), line, font=font, fill="white")
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(0.8 * max(unit, 0.5)))).astype(np.float32)
    arr += rng.normal(0, 6, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def matches(read: str, expected: str) -> bool:
    """Whether a reading is the expected text (case, spacing, punctuation and diacritics ignored)."""
    return bool(expected) and gazetteer._norm_key(expected) in gazetteer._norm_key(read)


def script_reading_check(scripts: Sequence[str] | None = None, words_per_script: int = 4, **kwargs):
    """Render CLDR words of every script on signs, one sign a word, read them, and score the reading.

    Args:
        scripts: ISO 15924 codes (default: every script of the demo world but Tifinagh).
        words_per_script: signs per script.

    Returns:
        DataFrame ``script, language, word, read, engine, correct, readable`` (``readable``: the
        machine has a model for the script; unreadable scripts are listed, not read).
    """
    import pandas as pd

    scripts = list(scripts or ("Latn", "Cyrl", "Grek", "Arab", "Hebr", "Deva", "Beng", "Thai", "Geor", "Armn", "Ethi",
                               "Sinh", "Taml", "Hans", "Hant", "Jpan", "Kore"))
    readable = set(readable_scripts()) | {"Hans", "Hant"}
    rows, images = [], []
    for s in scripts:
        lang, words = sign_words(s, words_per_script)
        for i, word in enumerate(words):
            rows.append({"script": s, "language": lang, "word": word, "readable": s in readable})
            if s in readable:
                images.append(render_sign([word], s, seed=i))
    readings = iter(read_photos(images, **kwargs))
    for row in rows:
        if row["readable"]:
            r = next(readings)
            row["read"] = r.text
            row["engine"] = ",".join(sorted({b.engine for b in r.boxes}))
            row["correct"] = matches(r.text, row["word"])
        else:
            row.update(read="", engine="", correct=False)
    return pd.DataFrame(rows)
