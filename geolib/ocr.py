"""Text on photos, offline: which script a letter is in, and OCR with rapidocr and tesseract.

Used by notebooks ``08_read_the_signs`` and ``06_evaluation`` through :mod:`geolib.sign_reader`,
whose first step this is: ``rapidocr``'s PP-OCR detector finds text lines and its recogniser
reads Latin (about 45 languages), Chinese and Japanese; the weights ship inside the wheel. Every
box is also read by **tesseract** with its script models (Debian ``tesseract-ocr-script-*``:
Cyrillic, Greek, Arabic, Hebrew, Devanagari, Bengali, Thai, Georgian, Armenian, Ethiopic,
Sinhala, Tamil, Hangul), one tesseract process for a whole batch of photos, and one reading per
line is kept (:func:`read_text`). Where tesseract is not installed those scripts cannot be read,
and :func:`unreadable_scripts` says so. The script of a box comes from its letters (Unicode
names, :func:`text_script`).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
import time
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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

#: rapidocr boxes below this recogniser score are dropped.
MIN_OCR_SCORE = 0.5
#: tesseract words below this confidence (0-100) are dropped.
MIN_TESSERACT_CONF = 55.0


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
    return OcrBatch(images, use_tesseract, threads).boxes()


class OcrBatch:
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
