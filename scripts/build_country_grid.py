"""Build ``geolib/data/country_grid.npz``, the lookup grid behind :func:`geolib.borders.country_of`.

Rebuild it whenever ``geolib/data/countries-50m.json``, the country coding rules or the labelling in
``geolib.geo`` change (``country_of`` ignores a grid whose fingerprint differs, with a warning, and
uses the exact test). Takes one to two minutes on one core:

    python scripts/build_country_grid.py            # default margin (12 nautical miles)
    python scripts/build_country_grid.py --check 20000  # then compare with the exact test
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np

from geolib import borders
from geolib.io import atomic_write_bytes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-offshore-km", type=float, default=borders.DEFAULT_MAX_OFFSHORE_KM, help="margin the grid holds for (km)")
    parser.add_argument("--base-deg", type=float, default=0.25, help="top-level cell size (degrees)")
    parser.add_argument("--factors", type=int, nargs="+", default=[4, 4], help="refinement per further level")
    parser.add_argument("--out", default=str(borders.COUNTRY_GRID_FILE), help="output .npz")
    parser.add_argument("--check", type=int, default=0, metavar="N", help="compare N random points with the exact test")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    arrays = borders.build_country_grid(args.max_offshore_km, args.base_deg, tuple(args.factors), progress=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"wrote {args.out}: {len(buf.getvalue()) / 1e6:.2f} MB in {time.perf_counter() - start:.0f} s")

    if args.check:
        borders.COUNTRY_GRID_FILE = Path(args.out)  # check the grid just written
        borders._grid.cache_clear()
        rng = np.random.default_rng(0)
        lat = np.degrees(np.arcsin(rng.uniform(-1, 1, args.check)))
        lon = rng.uniform(-180, 180, args.check)
        fast = borders.country_of(lat, lon)
        exact = borders.country_of(lat, lon, use_grid=False)
        bad = np.flatnonzero(fast != exact)
        print(f"check: {args.check - bad.size}/{args.check} points agree with the exact test")
        if bad.size:
            raise SystemExit(f"grid disagrees with the exact test at {list(zip(lat[bad][:5], lon[bad][:5]))}")


if __name__ == "__main__":
    main()
