"""Lettering of the demo world's signs: the Noto font of each script, text runs, widths and text masks.

Each script is set in its Noto font with Pillow's raqm layout (Arabic joining, Indic shaping,
right-to-left); characters a script's font lacks fall back to Noto Sans (:func:`_text_runs`).
"""

from __future__ import annotations

import functools
import math
import os

from PIL import Image, ImageDraw, ImageFont


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
