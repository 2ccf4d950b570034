"""Great-circle distances and the distance metrics: haversine, accuracy within km, GeoScore.

Used by notebooks ``00_data`` and ``03_curation`` (through :mod:`geolib.borders` and
:mod:`geolib.gazetteer`, which build on the validation and distances here), ``06_evaluation``
(distance metrics) and ``07_gre_reasoning_rl`` (distance reward, GREval-style scores). Countries
of points are in :mod:`geolib.borders`; country names and GeoNames cities in
:mod:`geolib.gazetteer`.

Conventions for every function here and in those two modules:

* Coordinates are decimal degrees, latitude first. Scalars in give scalars out; arrays (or lists)
  in give numpy arrays out, broadcast together like numpy does.
* NaN coordinates are "no answer": they give NaN distances, ``None`` countries and cities, and count
  as misses in :func:`accuracy_within_km`. Latitudes outside [-90, 90] or longitudes outside
  [-180, 180] (including infinities) raise ``ValueError`` naming the first bad value; inputs that
  are not real numbers (strings, ``None``, booleans, complex) raise ``TypeError``. Empty arrays give
  empty results.
* Distances are great-circle (haversine) distances on a sphere of radius :data:`EARTH_RADIUS_KM`
  (the IUGG mean radius); they differ from WGS84 ellipsoidal geodesic distances by up to about
  0.5 %, far below the 1 / 25 / 200 / 750 / 2500 km bands of the metrics.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable, Sequence

import numpy as np

#: Mean Earth radius in km (IUGG: R1 = (2a + b) / 3 of WGS84), the sphere of every distance here.
EARTH_RADIUS_KM = 6371.0088

#: Distance thresholds of the GRE Suite / Im2GPS tables in km: street, city, region, country, continent.
DEFAULT_THRESHOLDS_KM = (1, 25, 200, 750, 2500)

#: GeoGuessr-style score: ``GEOSCORE_MAX * exp(-d / GEOSCORE_SCALE_KM)``.
GEOSCORE_MAX = 5000.0
GEOSCORE_SCALE_KM = 1492.7


# ---------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------


def _as_float_array(x: Any, name: str) -> np.ndarray:
    """``x`` as a float64 array; TypeError for anything that is not real numbers (NaN allowed)."""
    if x is None:
        raise TypeError(f"{name} must be a real number or an array of real numbers, got None")
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a real number or an array of real numbers, got the string {x!r}")
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number, got the boolean {x!r}")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} must be a real number or an array of real numbers, got {type(x).__name__}") from exc
    kind = arr.dtype.kind
    if kind in "iuf":
        return arr.astype(np.float64, copy=False)
    if kind == "O":
        flat = arr.ravel()
        for v in flat:
            if not isinstance(v, numbers.Real) or isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{name} must contain only real numbers, found {v!r} ({type(v).__name__})")
        return arr.astype(np.float64)
    raise TypeError(f"{name} must be real numbers, got an array of dtype {arr.dtype} (e.g. {arr.ravel()[:1].tolist()})")


def _check_range(arr: np.ndarray, name: str, bound: float) -> None:
    """ValueError naming the first value of ``arr`` outside [-bound, bound] (NaN is allowed)."""
    with np.errstate(invalid="ignore"):
        bad = np.abs(arr) > bound
    if bad.any():
        idx = np.flatnonzero(bad.ravel())
        where = "" if arr.ndim == 0 else f" at index {np.unravel_index(idx[0], arr.shape)}"
        more = "" if len(idx) == 1 else f" ({len(idx)} values out of range)"
        raise ValueError(f"{name} must be in [-{bound:g}, {bound:g}] degrees, got {arr.ravel()[idx[0]]!r}{where}{more}")


def latitudes(x: Any, name: str) -> np.ndarray:
    arr = _as_float_array(x, name)
    _check_range(arr, name, 90.0)
    return arr


def longitudes(x: Any, name: str) -> np.ndarray:
    arr = _as_float_array(x, name)
    _check_range(arr, name, 180.0)
    return arr


def _out(arr: np.ndarray, scalar: bool):
    """Return a Python float for scalar inputs, the array otherwise."""
    return float(arr) if scalar else arr


# ---------------------------------------------------------------------------------------------
# Distances and distance metrics
# ---------------------------------------------------------------------------------------------


def haversine_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any):
    """Great-circle distance between two points on a sphere of radius ``EARTH_RADIUS_KM``.

    The haversine formula on the IUGG mean radius :data:`EARTH_RADIUS_KM` = 6371.0088 km. Pole to
    pole is ``pi * EARTH_RADIUS_KM`` (20015.1 km); the result is within 0.5 % of the WGS84
    geodesic distance.

    Args:
        lat1: Latitude(s) of the first point(s) in degrees, in [-90, 90]; NaN allowed.
        lon1: Longitude(s) of the first point(s) in degrees, in [-180, 180].
        lat2: Latitude(s) of the second point(s) in degrees.
        lon2: Longitude(s) of the second point(s) in degrees.
            All four broadcast together (e.g. one point against an array of points).

    Returns:
        Distance in km: a float for scalar inputs, else an array of the broadcast shape.
        NaN where any coordinate is NaN.

    Raises:
        TypeError: an input is not real numbers (a string, None, booleans).
        ValueError: a latitude outside [-90, 90] or a longitude outside [-180, 180];
            inputs that do not broadcast.
    """
    la1, lo1 = latitudes(lat1, "lat1"), longitudes(lon1, "lon1")
    la2, lo2 = latitudes(lat2, "lat2"), longitudes(lon2, "lon2")
    scalar = la1.ndim == lo1.ndim == la2.ndim == lo2.ndim == 0
    try:
        la1, lo1, la2, lo2 = np.broadcast_arrays(la1, lo1, la2, lo2)
    except ValueError as exc:
        raise ValueError(f"coordinates do not broadcast together: shapes {[a.shape for a in (la1, lo1, la2, lo2)]}") from exc
    return _out(haversine_rad(np.radians(la1), np.radians(lo1), np.radians(la2), np.radians(lo2)) * EARTH_RADIUS_KM, scalar)


def haversine_rad(lat1, lon1, lat2, lon2):
    """Central angle in radians between points given in radians (no validation)."""
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2.0 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _distances_km(dist_km: Any, name: str = "dist_km") -> np.ndarray:
    """Validated 1-D float array of distances (NaN and +inf allowed, negatives refused)."""
    arr = _as_float_array(dist_km, name).ravel()
    with np.errstate(invalid="ignore"):
        neg = arr < 0
    if neg.any():
        i = int(np.flatnonzero(neg)[0])
        raise ValueError(f"{name} must be >= 0 km (NaN for no answer), got {arr[i]!r} at index {i}")
    return arr


def accuracy_within_km(dist_km: Any, thresholds: Sequence[float] = DEFAULT_THRESHOLDS_KM) -> dict:
    """Share of predictions within each distance threshold (``<=``), the Im2GPS / GRE table metric.

    NaN distances (unparsable or refused answers) and ``inf`` count as misses: the share is over
    all predictions, answered or not.

    Args:
        dist_km: Great-circle errors in km, any shape (flattened); NaN for "no answer".
        thresholds: Thresholds in km (positive numbers); default 1 / 25 / 200 / 750 / 2500
            (street / city / region / country / continent).

    Returns:
        ``{threshold: share}`` with the thresholds as given (in order) and shares in [0, 1].

    Raises:
        ValueError: no distances, a negative distance, no or non-positive thresholds.
        TypeError: non-numeric distances or thresholds.
    """
    d = _distances_km(dist_km)
    if d.size == 0:
        raise ValueError("accuracy_within_km needs at least one distance, got an empty input")
    if isinstance(thresholds, (str, bytes)) or not isinstance(thresholds, Iterable):
        raise TypeError(f"thresholds must be a sequence of numbers in km, got {thresholds!r}")
    thresholds = list(thresholds)
    if not thresholds:
        raise ValueError("thresholds must not be empty")
    out = {}
    for t in thresholds:
        if not isinstance(t, numbers.Real) or isinstance(t, bool):
            raise TypeError(f"each threshold must be a number in km, got {t!r}")
        if not t > 0:
            raise ValueError(f"each threshold must be > 0 km, got {t!r}")
        with np.errstate(invalid="ignore"):
            out[t] = float(np.count_nonzero(d <= t)) / d.size
    return out


def geoscore(dist_km: Any):
    """GeoGuessr-style score ``5000 * exp(-d / 1492.7)`` (5000 at 0 km, 1839 at 1492.7 km).

    Args:
        dist_km: Great-circle error(s) in km, >= 0; NaN (no answer) scores 0.

    Returns:
        Score(s) in [0, 5000], not rounded: a float for a scalar, else an array of the same shape.

    Raises:
        ValueError: a negative distance.
        TypeError: non-numeric input.
    """
    arr = _as_float_array(dist_km, "dist_km")
    _distances_km(arr)
    score = GEOSCORE_MAX * np.exp(-arr / GEOSCORE_SCALE_KM)
    score = np.where(np.isnan(arr), 0.0, score)
    return _out(score, arr.ndim == 0)


# ---------------------------------------------------------------------------------------------
