"""Throughput of scoring images with the locatability network, end to end vs the bare tower.

Figure: images/s of ``locnet.score_images`` (PIL decode in a thread pool + resize + normalise +
EfficientNet-Lite0 forward + pairing head), beside the baseline measured in the same run: the bare
image-tower forward pass on the same images decoded and normalised beforehand. Target: the
pipeline keeps >= 80% of the bare forward's throughput, i.e. decoding overlaps compute.

Images: the demo world rendered by ``geolib.world.build_world`` into a temporary folder (224 px
PNGs), else random 640×320 PNGs (colour bands with noise; ``--random`` forces them). The head has
random weights (throughput does not depend on them).

    python benchmarks/locatability.py --n-images 128 --repeats 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from geolib import features, locnet


def random_pngs(folder: Path, n: int, width: int = 640, height: int = 320, seed: int = 0) -> list[Path]:
    """Write ``n`` street-view-sized PNGs: flat colour bands with noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = np.empty((height, width, 3), np.uint8)
        bands = np.sort(rng.integers(0, height, size=3))
        for lo, hi in zip([0, *bands], [*bands, height]):
            a[lo:hi] = rng.integers(0, 256, size=3)
        a = np.clip(a.astype(np.int16) + rng.integers(-12, 13, size=a.shape), 0, 255).astype(np.uint8)
        p = folder / f"random_{i:04d}.png"
        Image.fromarray(a).save(p)
        out.append(p)
    return out


def world_images(folder: Path, n: int) -> list[Path] | None:
    """Images rendered by ``geolib.world.build_world`` (224 px PNGs) if it renders, else None."""
    try:
        from geolib import world

        manifest = world.build_world(folder, n_images=n, progress=False)
    except Exception as exc:  # noqa: BLE001 - the benchmark falls back to random PNGs
        print(f"geolib.world did not render ({type(exc).__name__}: {exc}); using random PNGs")
        return None
    return [folder / p for p in manifest["image_path"]]


def bare_forward(tower, batches) -> float:
    """Seconds for the tower's forward on pre-normalised batches."""
    import torch

    with features._torch_threads(features.default_num_threads()), torch.inference_mode():
        t0 = time.perf_counter()
        for x in batches:
            tower(x)
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-images", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2, help="alternating timed runs of each; the best is kept")
    ap.add_argument("--decode-workers", type=int, default=None)
    ap.add_argument("--folder", type=Path, default=None, help="score these *.png/*.jpg instead")
    ap.add_argument("--random", action="store_true", help="random 640x320 PNGs instead of the demo world")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        if args.folder:
            paths = sorted([*args.folder.glob("*.png"), *args.folder.glob("*.jpg")])[: args.n_images]
            source = str(args.folder)
        else:
            paths = None if args.random else world_images(Path(tmp), args.n_images)
            source = "geolib.world (224 px PNG)"
            if paths is None:
                paths = random_pngs(Path(tmp), args.n_images)
                source = "random PNGs 640x320"
        tower = features.load_image_tower()
        rng = np.random.default_rng(0)
        model = locnet.LocNet(rng.normal(size=(6, 384)).astype(np.float32), image_dim=1280)
        model.eval()
        # pre-decoded batches for the baseline (same images, same preprocessing)
        batches = [features.preprocess(paths[s : s + args.batch_size], size=tower.image_size)
                   for s in range(0, len(paths), args.batch_size)]
        bare_forward(tower, batches[:1])  # warm-up
        bare, pipe, bare_cpu, pipe_cpu = [], [], [], []
        for _ in range(args.repeats):
            c0 = time.process_time()
            bare.append(bare_forward(tower, batches))
            bare_cpu.append(time.process_time() - c0)
            c0, t0 = time.process_time(), time.perf_counter()
            scores = locnet.score_images(model, paths, tower=tower, batch_size=args.batch_size,
                                         decode_workers=args.decode_workers, progress=False)
            pipe.append(time.perf_counter() - t0)
            pipe_cpu.append(time.process_time() - c0)
        assert np.isfinite(scores).all()
    n = len(paths)
    result = {
        "images": n, "source": source, "threads": features.default_num_threads(),
        "bare_forward_img_s": n / min(bare), "pipeline_img_s": n / min(pipe),
    }
    result["ratio"] = result["pipeline_img_s"] / result["bare_forward_img_s"]
    result["bare_cpu_ms_img"] = 1000 * min(bare_cpu) / n
    result["pipeline_cpu_ms_img"] = 1000 * min(pipe_cpu) / n
    print(f"images: {n} ({source}), batch {args.batch_size}, torch threads {result['threads']}")
    print(f"bare image-tower forward (pre-decoded batches): {result['bare_forward_img_s']:.1f} images/s")
    print(f"end-to-end scoring (decode + preprocess + tower + head): {result['pipeline_img_s']:.1f} images/s")
    print(f"ratio pipeline / bare forward: {result['ratio']:.2f} (target >= 0.80)")
    print(f"CPU time per image (all threads): bare {result['bare_cpu_ms_img']:.0f} ms, "
          f"pipeline {result['pipeline_cpu_ms_img']:.0f} ms (best of {args.repeats}; a busy machine inflates both)")
    return result


if __name__ == "__main__":
    main()
