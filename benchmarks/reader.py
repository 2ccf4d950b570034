"""Speed of the offline sign reader (geolib.sign_reader), beside rapidocr's own pipeline in the same run.

* ``read_photos`` (rapidocr's detector, its recogniser on the straightened lines, tesseract's
  script models on the same lines where installed, then the evidence) on photo-like street scenes
  with a shop sign, drawn here (:func:`geolib.sign_photos.street_photo`), at 224 px (the demo
  world's size) and at 1,920 px (a phone photo), with the share of each step;
* the baseline: rapidocr's stock call ``RapidOCR()(image)`` (detector, orientation classifier,
  recogniser) on the same photos;
* a folder of 224-px photos, four batches of 16 (``--quick``: 8; notebooks 06 and 08 read the test
  split in batches of 16):
  ``read_photos``, which starts each batch's tesseract process and detects the next batch while it
  runs (one onnxruntime thread), against one batch after another (``read_text`` per batch, then
  the evidence; onnxruntime's default threads), with the check that both read the same text.

Models load in a warm-up call that is not timed; tesseract loads its 13 script models once per
process, that is once per batch of photos (``read_photos(batch_size=16)``), so with the 3 photos of
``--quick`` its share is larger than on a folder of photos. Threads: onnxruntime's default (all
cores), and tesseract one thread a process. On a shared machine the numbers move with the load: compare the
two rows of one run, not runs.

    python benchmarks/reader.py           # 8 photos per size
    python benchmarks/reader.py --quick   # 3 photos per size
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from geolib import ocr, sign_photos, sign_reader


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="geolib.sign_reader benchmark")
    parser.add_argument("--quick", action="store_true", help="3 photos per size")
    args = parser.parse_args(argv)
    n = 3 if args.quick else 8
    from rapidocr import RapidOCR

    stock = RapidOCR(params={"Global.log_level": "error"})
    lines = ["FARMACIA", "Tel. +34 915 551 234", "www.farmacia-sol.es"]
    sign_reader.read_photos([sign_photos.street_photo(lines, (320, 224))])  # warm-up: models, CLDR and GeoNames indexes
    stock(np.asarray(sign_photos.street_photo(lines, (320, 224))))
    print(f"{platform.processor() or platform.machine()}, {n} photos per size; "
          f"tesseract scripts: {', '.join(ocr.tesseract_scripts()) or 'none (not installed)'}")
    print(f"{'size':>12} {'reader photos/s':>16} {'rapidocr stock photos/s':>24}  reader's time by step")
    for size in ((224, 224), (1920, 1280)):
        photos = [sign_photos.street_photo(lines, size, seed=i) for i in range(n)]
        start = time.perf_counter()
        readings = sign_reader.read_photos(photos)
        ours = time.perf_counter() - start
        start = time.perf_counter()
        for p in photos:
            stock(np.asarray(p))
        theirs = time.perf_counter() - start
        steps: dict[str, float] = {}
        for r in readings:
            for k, v in r.seconds.items():
                steps[k] = steps.get(k, 0.0) + v
        total = sum(steps.values()) or 1.0
        shares = ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(steps.items(), key=lambda kv: -kv[1]))
        answered = sum(r.candidates[:1] != [] and r.candidates[0].country == "ES" for r in readings)
        print(f"{size[0]:>5}×{size[1]:<6} {n / ours:>16.2f} {n / theirs:>24.2f}  {shares}; Spain in {answered}/{n}")

    batch = 8 if args.quick else 16
    folder = [sign_photos.street_photo(lines, (224, 224), seed=100 + i) for i in range(4 * batch)]
    start = time.perf_counter()
    overlapped = sign_reader.read_photos(folder, batch_size=batch)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    one_by_one = []
    for b in range(0, len(folder), batch):
        boxes, _ = ocr.read_text(folder[b: b + batch], threads=0)
        one_by_one += [sign_reader.answer_text(sign_reader.identify(x), x) for x in boxes]
    theirs = time.perf_counter() - start
    same = [r.answer for r in overlapped] == one_by_one
    print(f"{len(folder)} photos at 224 px, batches of {batch}: overlapped {len(folder) / ours:.2f} photos/s, "
          f"one batch after another {len(folder) / theirs:.2f} photos/s ({theirs / ours:.2f}×); same answers: {same}")


if __name__ == "__main__":
    main()
