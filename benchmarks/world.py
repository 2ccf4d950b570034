"""Speed of the demo world (geolib.world.build_world): images/s at 224×224, one core and all cores.

    python benchmarks/world.py --n 200

Prints images/s on one core (workers=1) and on all cores, each into a fresh temporary folder,
then the resumed pass (everything on disk: metadata only), and as a baseline the I/O floor:
encoding and atomically writing a blank image and mask of the same size. Target: >= 25 images/s
on one core, so a demo pool of a few thousand images builds in a couple of minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from geolib import io as gio  # noqa: E402
from geolib import world  # noqa: E402


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:7.1f} images/s ({1000 * seconds / n:5.1f} ms/image)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="images per run")
    ap.add_argument("--size", type=int, default=224, help="image side (px)")
    ap.add_argument("--countries", type=int, default=40)
    ap.add_argument("--cities", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the all-cores run")
    args = ap.parse_args()

    # warm-up: places, fonts and polygons load once per process; not what a build of thousands pays per image
    t = time.perf_counter()
    places = world.sample_places(args.countries, args.cities, 0)
    for i in range(5):
        world.render_scene(world.world_spec(places, 0, i), args.size)
    print(f"warm-up (places, fonts, polygons): {time.perf_counter() - t:.1f} s")

    with tempfile.TemporaryDirectory() as tmp:
        blank = np.zeros((args.size, args.size, 3), np.uint8)
        t = time.perf_counter()
        for i in range(args.n):
            world._write_atomic(Path(tmp) / "b" / f"{i}.png", world.png_bytes(blank))
            world._write_atomic(Path(tmp) / "m" / f"{i}.png", world.png_bytes(blank[..., 0]))
        print(f"baseline, encode + write blank pairs:            {_rate(args.n, time.perf_counter() - t)}")
        t = time.perf_counter()
        for i in range(args.n):
            gio.atomic_write_bytes(Path(tmp) / "fb" / f"{i}.png", world.png_bytes(blank))
            gio.atomic_write_bytes(Path(tmp) / "fm" / f"{i}.png", world.png_bytes(blank[..., 0]))
        print(f"  the same with geolib.io's fsync per file:      {_rate(args.n, time.perf_counter() - t)}")

        kw = dict(
            n_images=args.n,
            n_countries=args.countries,
            cities_per_country=args.cities,
            seed=0,
            image_size=args.size,
            progress=False,
        )
        t = time.perf_counter()
        world.build_world(Path(tmp) / "one", workers=1, **kw)
        print(f"one core ({args.size} px):                           {_rate(args.n, time.perf_counter() - t)}")

        t = time.perf_counter()
        df = world.build_world(Path(tmp) / "all", workers=args.workers, **kw)
        print(
            f"all cores ({args.workers} processes):                       {_rate(args.n, time.perf_counter() - t)}"
            "  (includes starting the processes)"
        )

        t = time.perf_counter()
        df2 = world.build_world(Path(tmp) / "all", workers=1, **kw)
        print(
            f"resume, all on disk (one core):                  {_rate(args.n, time.perf_counter() - t)}"
            f"  rendered again: {df2.attrs['rendered']}"
        )
        assert df.equals(df2), "resumed manifest differs"


if __name__ == "__main__":
    main()
