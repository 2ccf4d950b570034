"""Speed of geolib.borders.country_of and geolib.geo.haversine_km on one core, each beside a baseline measured in the same run.

* ``country_of`` (grid + exact test, default 22.2 km offshore margin) against a geopandas spatial
  join (``geopandas.sjoin(points, countries, predicate="within")``) on the same polygons.
  ``country_of`` is timed from lon/lat arrays; the join is timed alone, on point geometries built
  beforehand (their building time is printed beside it), which favours the baseline.
* ``haversine_km`` (vectorised) against a Python loop over ``geopy.distance.great_circle``
  (timed on a subsample, reported per point).

Points are uniform on the sphere (seeded). The process is pinned to one CPU and BLAS/OpenMP
pools are set to one thread; GEOS (shapely) is single-threaded anyway. Loading the grid,
polygons and spatial indexes happens in a warm-up call that is not timed.

    python benchmarks/geo.py            # 10^5 and 10^6 points, best of 3
    python benchmarks/geo.py --quick    # 10^4 and 10^5 points, one run
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from geolib import borders, geo  # noqa: E402


def random_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform on the sphere: (lat, lon) in degrees."""
    rng = np.random.default_rng(seed)
    return np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n))), rng.uniform(-180.0, 180.0, n)


def best_time(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` calls (s)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="geolib.geo benchmark")
    parser.add_argument("--quick", action="store_true", help="10^4 and 10^5 points, one run each")
    args = parser.parse_args(argv)
    sizes, repeat = ((10**4, 10**5), 1) if args.quick else ((10**5, 10**6), 3)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    import geopandas as gpd
    import pandas as pd
    from geopy.distance import great_circle

    countries = borders.country_polygons()
    warm_lat, warm_lon = random_points(2000, seed=99)
    borders.country_of(warm_lat, warm_lon)  # loads the grid and the polygons
    warm = gpd.GeoDataFrame(geometry=gpd.points_from_xy(warm_lon, warm_lat), crs=countries.crs)
    gpd.sjoin(warm, countries, predicate="within")  # builds the spatial index, prepares polygons

    rows = []
    for n in sizes:
        lat, lon = random_points(n, seed=n)
        t_ours = best_time(lambda: borders.country_of(lat, lon), repeat)
        start = time.perf_counter()
        points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=countries.crs)
        t_points = time.perf_counter() - start  # not charged to the join
        t_join = best_time(lambda: gpd.sjoin(points, countries, predicate="within", how="left"), repeat)
        join = gpd.sjoin(points, countries, predicate="within", how="left")
        joined = join.groupby(level=0)["iso_a2"].first().reindex(range(n)).to_numpy(dtype=object)
        joined = np.where(pd.isna(joined), None, joined)
        agree = np.mean(borders.country_of(lat, lon, max_offshore_km=0) == joined)
        rows.append(("country_of", n, n / t_ours, "geopandas.sjoin within", n / t_join,
                     f"join only (+{t_points:.2f} s to build its points); same country at 0 km margin: {agree:.3%}"))

    for n in sizes:
        lat1, lon1 = random_points(n, seed=2 * n)
        lat2, lon2 = random_points(n, seed=2 * n + 1)
        t_ours = best_time(lambda: geo.haversine_km(lat1, lon1, lat2, lon2), repeat)
        m = min(n, 10**4)
        pairs = list(zip(zip(lat1[:m], lon1[:m]), zip(lat2[:m], lon2[:m])))
        t_loop = best_time(lambda: [great_circle(a, b).km for a, b in pairs], repeat)
        ref = np.array([great_circle(a, b).km for a, b in pairs])
        diff = np.max(np.abs(geo.haversine_km(lat1[:m], lon1[:m], lat2[:m], lon2[:m]) - ref) / np.maximum(ref, 1e-9))
        rows.append(("haversine_km", n, n / t_ours, f"geopy great_circle loop ({m:,})", m / t_loop, f"max relative difference: {diff:.1e}"))

    print(f"geolib.geo benchmark: one core, {platform.processor() or platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}, geopandas {gpd.__version__}")
    print(f"{'function':<13} {'points':>9}  {'ours pts/s':>11}  {'baseline':<30} {'base pts/s':>10}  {'speed-up':>8}  note")
    for name, n, ours, base_name, base, note in rows:
        print(f"{name:<13} {n:>9,}  {ours:>11,.0f}  {base_name:<30} {base:>10,.0f}  {ours / base:>7.1f}x  {note}")


if __name__ == "__main__":
    main()
