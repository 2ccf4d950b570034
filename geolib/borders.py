"""Country borders: TopoJSON decoding, country polygons and which country a point lies in.

Used by notebooks ``00_data`` (placing demo-world samples: country by polygon; the world map),
``03_curation`` (world maps), ``06_evaluation`` (the error map) and ``08_read_the_signs`` (the
map of read signs); :func:`country_of` also serves the baselines, the answer reader and the
demo world's places. Inputs follow the conventions of :mod:`geolib.geo` (degrees, latitude
first, NaN is "no answer").

Country polygons are Natural Earth 1:50m admin-0 countries (public domain) as shipped by the npm
package ``world-atlas`` 2.0.2 (``data/countries-50m.json``, ISC licence in
``data/world-atlas.LICENSE``). Country codes are ISO 3166-1 alpha-2, split and merged so that they
agree with GeoNames (whose country codes the demo world's cities carry):

* Natural Earth parts that ISO codes separately get their own code: French Guiana ``GF``,
  Guadeloupe ``GP``, Martinique ``MQ``, Réunion ``RE`` and Mayotte ``YT`` (inside "France" in
  Natural Earth); Bonaire, Sint Eustatius and Saba ``BQ`` (inside "Netherlands"); Svalbard and
  Jan Mayen ``SJ`` (inside "Norway"); Tokelau ``TK`` (inside "New Zealand"); Christmas Island
  ``CX`` and Cocos (Keeling) Islands ``CC`` ("Indian Ocean Ter.", no id in the data).
* Crimea, a part of "Russia" in this Natural Earth release, is ``UA``: the internationally
  recognised border (UN General Assembly resolution 68/262), as GeoNames and ISO 3166-2:UA have it.
* Natural Earth units without an ISO id: Kosovo → ``XK`` (the user-assigned code GeoNames, the EU
  and most software use); N. Cyprus → ``CY`` and Somaliland → ``SO`` (the internationally
  recognised states; GeoNames codes their towns the same way); Siachen Glacier → ``IN`` (the
  administering state since 1984; no town lies there). Ashmore and Cartier Is. share Australia's
  id → ``AU``.
* Everything else keeps Natural Earth's unit, e.g. Corsica, the Azores, Canary Islands, Hawaii,
  Alaska, Galápagos and Easter Island belong to their states; Greenland ``GL``, Puerto Rico ``PR``,
  Hong Kong ``HK``, Åland ``AX``, Western Sahara ``EH`` and Palestine ``PS`` are their own units.
  Places too small for the 1:50m data take what lies around them: Gibraltar (GeoNames ``GI``)
  is sea there and gets ``ES`` through the offshore margin; Ceuta and Melilla (GeoNames ``ES``)
  lie in Morocco's polygon and get ``MA``; the US Minor Outlying Islands are not in the data.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import numbers
import threading
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from geolib import gazetteer, paths
from geolib.geo import EARTH_RADIUS_KM, haversine_rad, latitudes, longitudes

#: Default reach of a country into the sea in km: 12 nautical miles (22.224 km, rounded), the
#: territorial sea of UNCLOS art. 3. A street-view photo taken on a pier, a beach or a ferry just
#: off the 1:50m coastline (whose vertices are ~10 km apart and cut off coves and small islands)
#: still belongs to the country whose waters it was taken in.
DEFAULT_MAX_OFFSHORE_KM = 22.2

COUNTRIES_TOPOJSON = paths.PACKAGE_DATA / "countries-50m.json"
COUNTRY_GRID_FILE = paths.PACKAGE_DATA / "country_grid.npz"

_LOCK = threading.RLock()

# TopoJSON decoding
# ---------------------------------------------------------------------------------------------


def decode_topojson(topology: Mapping[str, Any], object_name: str) -> list[tuple[Any, dict, Any]]:
    """Decode the (Multi)Polygons of one TopoJSON object into shapely geometries.

    Implements the TopoJSON 1.0 rules: with a ``transform``, arc positions are quantized and
    delta-encoded (``x = sum(dx) * scale + translate``); a ring lists arc indices, a negative index
    ``~i`` meaning arc ``i`` reversed, consecutive arcs sharing their end point. Spherical data
    (world-atlas is drawn by d3 on the sphere) is made planar in lon/lat: a ring that jumps across
    the antimeridian is unwrapped and the polygon cut at +-180 into pieces; a ring that winds
    around a pole (Antarctica's coast) is closed through that pole; and a ring hugging a pole
    within 0.01 degrees (world-atlas's cap around the South Pole, an artefact of the 89.999 degree
    limit of its projection) is dropped, so the pole belongs to the polygon around it.

    Args:
        topology: The parsed TopoJSON (``type == "Topology"``).
        object_name: Key of ``topology["objects"]``, e.g. ``"countries"``.

    Returns:
        ``[(id, properties, geometry), ...]`` in file order; ``id`` is None when absent; geometry
        is a valid shapely (Multi)Polygon within [-180, 180] x [-90, 90], or None for null
        geometries.

    Raises:
        ValueError: not a Topology, unknown object, or an unsupported geometry type.
    """
    import shapely

    if topology.get("type") != "Topology":
        raise ValueError(f"not a TopoJSON Topology (type={topology.get('type')!r})")
    objects = topology.get("objects", {})
    if object_name not in objects:
        raise ValueError(f"TopoJSON has no object {object_name!r}; it has {sorted(objects)}")
    transform = topology.get("transform")
    arcs = []
    for arc in topology["arcs"]:
        a = np.asarray(arc, dtype=np.float64).reshape(-1, 2)
        if transform:
            a = np.cumsum(a, axis=0) * np.asarray(transform["scale"], float) + np.asarray(transform["translate"], float)
        arcs.append(a)

    def ring(indices: Sequence[int]) -> np.ndarray:
        pieces = []
        for i in indices:
            a = arcs[i] if i >= 0 else arcs[~i][::-1]
            pieces.append(a if not pieces else a[1:])
        return np.concatenate(pieces)

    def geometries(obj):
        kind = obj.get("type")
        if kind == "GeometryCollection":
            for g in obj["geometries"]:
                yield from geometries(g)
        elif kind in ("Polygon", "MultiPolygon", None):
            yield obj
        else:
            raise ValueError(f"unsupported TopoJSON geometry type {kind!r} (only Polygon/MultiPolygon)")

    out = []
    for obj in geometries(objects[object_name]):
        if obj.get("type") is None:
            out.append((obj.get("id"), obj.get("properties", {}), None))
            continue
        polys = [obj["arcs"]] if obj["type"] == "Polygon" else obj["arcs"]
        pieces = [_planar_polygon([ring(r) for r in p]) for p in polys]
        parts = [q for p in pieces if p is not None for q in shapely.get_parts(p) if not q.is_empty]
        geom = shapely.MultiPolygon(parts) if len(parts) != 1 else parts[0]
        if not geom.is_valid:  # parts of one unit that touch (a polygon cut at the antimeridian)
            geom = _polygonal(shapely.unary_union(parts))
        out.append((obj.get("id"), obj.get("properties", {}), geom))
    return out


def _unwrap(ring: np.ndarray) -> tuple[np.ndarray, int]:
    """Make a ring's longitudes continuous; also return its net number of turns around the globe."""
    steps = -360.0 * np.round(np.diff(ring[:, 0]) / 360.0)
    shift = np.concatenate([[0.0], np.cumsum(steps)])
    return np.column_stack([ring[:, 0] + shift, ring[:, 1]]), int(round(shift[-1] / 360.0))


def _planar_polygon(rings: list[np.ndarray]):
    """One spherical TopoJSON polygon (exterior first) as a planar lon/lat geometry (see decoder)."""
    import shapely

    unwrapped = [_unwrap(r) for r in rings]
    unwrapped = [(r, turns) for r, turns in unwrapped if not (turns != 0 and np.all(np.abs(r[:, 1]) > 89.99))]
    if not unwrapped:
        return None
    shell, turns = unwrapped[0]
    if turns != 0:  # winds around a pole: close it through the pole on its side of the equator
        pole = -90.0 if shell[:, 1].mean() < 0 else 90.0
        shell = np.vstack([shell, [[shell[-1, 0], pole], [shell[0, 0], pole]], shell[:1]])
    lo, hi = shell[:, 0].min(), shell[:, 0].max()
    holes = []
    for hole, _ in unwrapped[1:]:  # shift each hole by whole turns into the shell's longitude span
        k = 360.0 * np.round(((lo + hi) / 2 - hole[:, 0].mean()) / 360.0)
        holes.append(hole + [k, 0.0])
    poly = _polygonal(shapely.Polygon(shell, holes))
    if lo >= -180.0 and hi <= 180.0:
        return poly
    parts = [shapely.clip_by_rect(shapely.transform(poly, lambda c, k=k: c + [k, 0.0]), -180.0, -90.0, 180.0, 90.0) for k in (-360.0, 0.0, 360.0)]
    return _polygonal(shapely.unary_union([p for p in parts if not p.is_empty]))


def _polygonal(geom):
    """``geom`` made valid, keeping only its polygonal parts (a Polygon or MultiPolygon)."""
    import shapely

    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    polys = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.unary_union(polys) if polys else shapely.Polygon()


# ---------------------------------------------------------------------------------------------
# Country polygons and the exact point-in-country test
# ---------------------------------------------------------------------------------------------

# Natural Earth units without an ISO id (see the module docstring for the reasons).
_UNITS_WITHOUT_ID = {"Kosovo": "XK", "N. Cyprus": "CY", "Somaliland": "SO", "Siachen Glacier": "IN", "Indian Ocean Ter.": "CX"}

# Parts of a unit that ISO 3166-1 codes separately: a polygon part of the unit coded ``parent``
# whose representative point lies in the box (lon_min, lat_min, lon_max, lat_max) gets ``code``.
_TERRITORY_BOXES = {
    "FR": [("GF", (-55.0, 1.5, -51.0, 6.5)), ("GP", (-62.0, 15.7, -60.9, 16.7)), ("MQ", (-61.4, 14.2, -60.7, 15.0)),
           ("RE", (55.0, -21.6, 56.0, -20.7)), ("YT", (44.8, -13.2, 45.5, -12.4))],
    "NL": [("BQ", (-69.0, 11.5, -62.5, 18.0))],
    "NO": [("SJ", (-10.0, 70.5, -7.0, 71.5)), ("SJ", (10.0, 74.0, 35.0, 81.5))],
    "NZ": [("TK", (-173.0, -10.0, -170.0, -8.0))],
    "CX": [("CC", (96.0, -13.0, 97.5, -11.5))],
    "RU": [("UA", (32.4, 44.3, 36.7, 46.3))],  # Crimea
}

#: Longest edge (degrees of lon/lat) of the boundary segments used for distances: a straight
#: lon/lat edge and the great-circle arc between its ends then differ by under 2 m.
_EDGE_MAX_DEG = 0.1
#: Widening (degrees) of search boxes, covering that difference and rounding.
_BOX_SLACK_DEG = 1e-3


def _polygons_fingerprint(raw: bytes | None = None) -> str:
    """Hash of what the country polygons are made from: the TopoJSON and the coding rules above."""
    raw = COUNTRIES_TOPOJSON.read_bytes() if raw is None else raw
    rules = json.dumps([_UNITS_WITHOUT_ID, _TERRITORY_BOXES, _EDGE_MAX_DEG, _BOX_SLACK_DEG], sort_keys=True)
    return hashlib.sha256(raw + rules.encode()).hexdigest()


@dataclass(frozen=True)
class _Countries:
    """Country polygons, their parts in an STRtree, and boundary edges as unit vectors for distances."""

    codes: tuple  # ISO alpha-2 per country index (sorted)
    names: tuple
    geoms: np.ndarray  # (n_countries,) shapely (Multi)Polygons
    parts: np.ndarray  # (n_parts,) Polygons
    part_country: np.ndarray  # (n_parts,) country index
    part_tree: Any
    edge_a: np.ndarray  # (n_edges, 3) unit vectors of edge starts
    edge_b: np.ndarray  # (n_edges, 3) unit vectors of edge ends
    edge_n: np.ndarray  # (n_edges, 3) unit normals of the edges' great circles
    edge_na: np.ndarray  # (n_edges, 3) n x a
    edge_bn: np.ndarray  # (n_edges, 3) b x n
    edge_country: np.ndarray  # (n_edges,)
    edge_tree: Any
    fingerprint: str  # _polygons_fingerprint()


def _code_for_unit(unit_id: str | None, name: str) -> str:
    import pycountry

    if unit_id is None:
        if name not in _UNITS_WITHOUT_ID:
            raise ValueError(f"Natural Earth unit {name!r} has no ISO id and no rule in _UNITS_WITHOUT_ID")
        return _UNITS_WITHOUT_ID[name]
    c = pycountry.countries.get(numeric=str(unit_id).zfill(3))
    if c is None:
        raise ValueError(f"Natural Earth unit {name!r} has id {unit_id!r}, which is no ISO 3166-1 numeric code")
    return c.alpha_2


@functools.lru_cache(maxsize=1)
def _countries() -> _Countries:
    """Decode the shipped TopoJSON once (about a second) into :class:`_Countries`."""
    import shapely

    with _LOCK:
        raw = COUNTRIES_TOPOJSON.read_bytes()
        units = decode_topojson(json.loads(raw), "countries")
        by_code: dict[str, list] = {}
        for unit_id, props, geom in units:
            if geom is None or geom.is_empty:
                continue
            code = _code_for_unit(unit_id, props.get("name", ""))
            for part in shapely.get_parts(geom):
                part_code = code
                x, y = part.representative_point().coords[0]
                for sub, (x0, y0, x1, y1) in _TERRITORY_BOXES.get(code, []):
                    if x0 <= x <= x1 and y0 <= y <= y1:
                        part_code = sub
                        break
                by_code.setdefault(part_code, []).append(part)
        codes = tuple(sorted(by_code))
        geoms = np.empty(len(codes), dtype=object)
        for i, c in enumerate(codes):
            geom = shapely.MultiPolygon(by_code[c])
            geoms[i] = geom if geom.is_valid else _polygonal(shapely.unary_union(by_code[c]))
        parts, part_country = shapely.get_parts(geoms, return_index=True)
        shapely.prepare(parts)
        part_tree = shapely.STRtree(parts)

        rings, ring_part = shapely.get_rings(parts, return_index=True)
        rings = shapely.segmentize(rings, _EDGE_MAX_DEG)
        coords, ring_idx = shapely.get_coordinates(rings, return_index=True)
        same = ring_idx[1:] == ring_idx[:-1]
        start, end = coords[:-1][same], coords[1:][same]
        xyz_a, xyz_b = _xyz(start[:, 1], start[:, 0]), _xyz(end[:, 1], end[:, 0])
        normal = np.cross(xyz_a, xyz_b)
        norm = np.linalg.norm(normal, axis=1)
        keep = norm > 1e-15  # zero-length arcs (e.g. along a pole) add nothing: their ends are shared
        edge_country = part_country[ring_part[ring_idx[:-1][same]]][keep]
        lines = shapely.linestrings(np.stack([start[keep], end[keep]], axis=1))
        xyz_a, xyz_b, normal = xyz_a[keep], xyz_b[keep], normal[keep] / norm[keep, None]
        return _Countries(
            codes=codes,
            names=tuple(gazetteer._country_name(c) for c in codes),
            geoms=geoms,
            parts=parts,
            part_country=part_country.astype(np.int64),
            part_tree=part_tree,
            edge_a=xyz_a,
            edge_b=xyz_b,
            edge_n=normal,
            edge_na=np.cross(normal, xyz_a),
            edge_bn=np.cross(xyz_b, normal),
            edge_country=edge_country.astype(np.int64),
            edge_tree=shapely.STRtree(lines),
            fingerprint=_polygons_fingerprint(raw),
        )


def _xyz(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """Unit vectors (..., 3) of points given in degrees."""
    la, lo = np.radians(lat_deg), np.radians(lon_deg)
    c = np.cos(la)
    return np.stack([c * np.cos(lo), c * np.sin(lo), np.sin(la)], axis=-1)


def _point_arc_rad(p: np.ndarray, C: _Countries, edge: np.ndarray) -> np.ndarray:
    """Angular distance (radians) from points ``p`` (m, 3 unit vectors) to boundary edges ``edge`` (m,).

    Edges are great-circle arcs a-b shorter than 180° with unit normal n. The foot of the
    perpendicular (distance ``asin|p.n|``) counts when it falls between a and b, that is when
    ``p.(n x a) > 0`` and ``p.(b x n) > 0``; otherwise the nearer end does (chord -> angle).
    """

    def dot(u, v):
        return np.einsum("ij,ij->i", u, v)

    inside = (dot(p, C.edge_na[edge]) > 0) & (dot(p, C.edge_bn[edge]) > 0)
    perp = np.arcsin(np.minimum(np.abs(dot(p, C.edge_n[edge])), 1.0))
    da, db = p - C.edge_a[edge], p - C.edge_b[edge]
    chord = np.sqrt(np.minimum(dot(da, da), dot(db, db)))
    return np.where(inside, perp, 2.0 * np.arcsin(np.minimum(chord / 2.0, 1.0)))


def _cap_boxes(lat0, lat1, lon0, lon1, radius_km: float):
    """Lon/lat boxes holding every point within ``radius_km`` of the boxes [lat0, lat1] x [lon0, lon1].

    Exact on the sphere: the latitude span grows by the angular radius d, the longitude span by
    ``asin(sin d / cos phi)`` at the most poleward latitude phi (all longitudes when the disc
    reaches a pole), plus ``_BOX_SLACK_DEG``. Boxes that cross the antimeridian come back as two.

    Returns:
        ``(xmin, ymin, xmax, ymax, owner)`` arrays; ``owner`` indexes the input box.
    """
    lat0, lat1, lon0, lon1 = (np.asarray(v, dtype=np.float64) for v in (lat0, lat1, lon0, lon1))
    d = radius_km / EARTH_RADIUS_KM
    d_deg = math.degrees(d) + _BOX_SLACK_DEG
    ymin, ymax = np.maximum(lat0 - d_deg, -90.0), np.minimum(lat1 + d_deg, 90.0)
    phi = np.radians(np.maximum(np.abs(lat0), np.abs(lat1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = math.sin(d) / np.cos(phi)
    polar = (np.degrees(phi) + d_deg >= 90.0) | ~(ratio < 1.0)
    dlon = np.degrees(np.arcsin(np.where(polar, 0.0, ratio))) + _BOX_SLACK_DEG
    xmin, xmax = lon0 - dlon, lon1 + dlon
    full = polar | (xmax - xmin >= 360.0)
    xmin, xmax = np.where(full, -180.0, xmin), np.where(full, 180.0, xmax)
    owner = np.arange(lat0.size)
    west, east = xmin < -180.0, xmax > 180.0  # the wrapped remainder on the other side
    out = [
        (np.maximum(xmin, -180.0), ymin, np.minimum(xmax, 180.0), ymax, owner),
        (xmin[west] + 360.0, ymin[west], np.full(west.sum(), 180.0), ymax[west], owner[west]),
        (np.full(east.sum(), -180.0), ymin[east], xmax[east] - 360.0, ymax[east], owner[east]),
    ]
    return tuple(np.concatenate(col) for col in zip(*out))


def _first_per_group(group: np.ndarray, *sort_keys: np.ndarray) -> np.ndarray:
    """Index of the first row of each group when rows are ordered by ``sort_keys`` (first key first)."""
    order = np.lexsort((*sort_keys[::-1], group))
    g = group[order]
    first = np.ones(len(g), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    return order[first]


def _exact_country_index(lat: np.ndarray, lon: np.ndarray, max_offshore_km: float) -> np.ndarray:
    """Country index per point (-1 for none) by polygons; points must be finite and in range.

    A point inside a polygon (``within``) gets its country; any other point gets the country with
    the nearest boundary (great-circle distance) when that is within ``max_offshore_km``, the lower
    index winning exact ties.
    """
    import shapely

    C = _countries()
    lat, lon = np.asarray(lat, np.float64).ravel(), np.asarray(lon, np.float64).ravel()
    result = np.full(lat.size, -1, dtype=np.int64)
    if lat.size == 0:
        return result
    pt, part = C.part_tree.query(shapely.points(lon, lat))  # bounding boxes, then prepared tests:
    inside = shapely.contains_xy(C.parts[part], lon[pt], lat[pt])  # far faster than predicate="within"
    pt, part = pt[inside], part[inside]
    if pt.size:
        first = _first_per_group(pt, C.part_country[part])
        result[pt[first]] = C.part_country[part[first]]
    rest = np.flatnonzero(result < 0)
    if rest.size == 0:
        return result
    xmin, ymin, xmax, ymax, owner = _cap_boxes(lat[rest], lat[rest], lon[rest], lon[rest], max_offshore_km)
    box_i, edge = C.edge_tree.query(shapely.box(xmin, ymin, xmax, ymax))
    if box_i.size == 0:
        return result
    point = rest[owner[box_i]]
    dist = _point_arc_rad(_xyz(lat[point], lon[point]), C, edge) * EARTH_RADIUS_KM
    near = dist <= max_offshore_km
    point, country, dist = point[near], C.edge_country[edge[near]], dist[near]
    if point.size:
        first = _first_per_group(point, dist, country)
        result[point[first]] = country[first]
    return result


# ---------------------------------------------------------------------------------------------
# The precomputed lookup grid (built by scripts/build_country_grid.py)
# ---------------------------------------------------------------------------------------------
#
# A three-level grid: 0.25° cells, refined 4 x 4 (1/16°) and again 4 x 4 (1/64°) where needed.
# Each cell holds a label that is true for every point of the closed cell at the margin it was
# built for: MIXED (ask the exact test), DEEP (no country within the margin), INSIDE k (the
# cell lies in the interior of country k) or COAST k (every point of the cell gets k: it lies in
# k or within the margin of k and strictly nearer to k than to any other country), or CHILD (look
# in the finer block). The bounds used to label cells are rigorous (see _classify_cells), so the
# grid gives exactly the answer of the exact test.

_MIXED, _DEEP, _INSIDE0 = 0, 1, 2  # COAST k is _INSIDE0 + n_countries + k
_CHILD = -1
_GRID_FORMAT = 1
#: Safety margin (km) of the grid's distance bounds: covers rounding and the <2 m difference
#: between a straight lon/lat edge and its great-circle arc.
_GRID_SLACK_KM = 0.01


def _halfdiag_km(lat0, lon0, size) -> np.ndarray:
    """Largest great-circle distance (km) from the centre of each cell to its corners."""
    clat, clon = np.radians(lat0 + size / 2), np.radians(lon0 + size / 2)
    out = np.zeros(np.shape(lat0))
    for dy in (0.0, size):
        for dx in (0.0, size):
            out = np.maximum(out, haversine_rad(clat, clon, np.radians(lat0 + dy), np.radians(lon0 + dx)))
    return out * EARTH_RADIUS_KM * (1 + 1e-9) + 1e-9


def _group_min(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique keys and the minimum value per key."""
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    start = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if keys.size else np.array([], int)
    return keys[start], (np.minimum.reduceat(values, start) if keys.size else values[:0])


def _classify_cells(lat0: np.ndarray, lon0: np.ndarray, size: float, margin_km: float) -> np.ndarray:
    """Label cells [lat0, lat0 + size] x [lon0, lon0 + size] (degrees) as in the grid comment above.

    For each cell with centre c and half-diagonal h (km), and each country j: lb_j = 0 if j meets
    the cell, else min over j's edges near the cell of dist(c, edge) - h, is a lower bound of the
    distance from any cell point to j; ub_j = h + (0 if c lies in j else that minimum) is an upper
    bound. Edges are searched in the cell's box widened exactly by the margin (``_cap_boxes``),
    so an edge outside it is farther than the margin from every cell point.
    """
    import shapely

    C = _countries()
    K = len(C.codes)
    n = lat0.size
    labels = np.full(n, _MIXED, dtype=np.int64)
    lat1, lon1 = lat0 + size, lon0 + size
    eps = 1e-9
    boxes = shapely.box(lon0 - eps, lat0 - eps, lon1 + eps, lat1 + eps)

    # INSIDE: the widened closed cell lies in the interior of one part. (Bounding-box queries and
    # then vectorised prepared predicates: much faster than STRtree.query(predicate=...).)
    cell, part = C.part_tree.query(boxes)
    ok = shapely.contains_properly(C.parts[part], boxes[cell])
    labels[cell[ok]] = _INSIDE0 + C.part_country[part[ok]]
    todo = np.flatnonzero(labels == _MIXED)
    if todo.size == 0:
        return labels
    pending = labels[cell] == _MIXED
    cell, part = cell[pending], part[pending]
    meets = shapely.intersects(C.parts[part], boxes[cell])
    cell, part = np.searchsorted(todo, cell[meets]), part[meets]  # renumber within todo

    clat, clon = lat0[todo] + size / 2, lon0[todo] + size / 2
    half = _halfdiag_km(lat0[todo], lon0[todo], size)
    # Countries meeting the cell, and whether they hold its centre.
    w_keys = cell * K + C.part_country[part]
    outside = (~shapely.intersects_xy(C.parts[part], clon[cell], clat[cell])).astype(np.int8)
    w_keys, outside = _group_min(w_keys, outside)
    covered = outside == 0
    # Nearest edge of each country near the cell, from the cell's centre.
    xmin, ymin, xmax, ymax, owner = _cap_boxes(lat0[todo], lat1[todo], lon0[todo], lon1[todo], margin_km)
    box_i, edge = C.edge_tree.query(shapely.box(xmin, ymin, xmax, ymax))
    cell = owner[box_i]
    dist = np.empty(cell.size)
    for s in range(0, cell.size, 2_000_000):  # bounded memory
        c, e = cell[s : s + 2_000_000], edge[s : s + 2_000_000]
        dist[s : s + 2_000_000] = _point_arc_rad(_xyz(clat[c], clon[c]), C, e) * EARTH_RADIUS_KM
    e_keys, dmin = _group_min(cell * K + C.edge_country[edge], dist)

    keys = np.union1d(w_keys, e_keys)
    in_w = np.isin(keys, w_keys)
    cov = np.zeros(keys.size, dtype=bool)
    cov[np.searchsorted(keys, w_keys)] = covered
    d = np.full(keys.size, np.inf)
    d[np.searchsorted(keys, e_keys)] = dmin
    row_cell, row_country = keys // K, keys % K
    h = half[row_cell]
    lb = np.where(in_w, 0.0, d - h)
    ub = h + np.where(cov, 0.0, d)
    rel = lb <= margin_km + _GRID_SLACK_KM
    row_cell, row_country, lb, ub, in_w = row_cell[rel], row_country[rel], lb[rel], ub[rel], in_w[rel]

    sub = np.full(todo.size, _DEEP, dtype=np.int64)  # no relevant country: deep
    if row_cell.size:
        best = _first_per_group(row_cell, ub)
        best_ub = np.full(todo.size, np.inf)
        best_ub[row_cell[best]] = ub[best]
        best_country = np.full(todo.size, -1)
        best_country[row_cell[best]] = row_country[best]
        is_best = np.zeros(row_cell.size, dtype=bool)
        is_best[best] = True
        rival = ~is_best & (in_w | (lb <= best_ub[row_cell] + _GRID_SLACK_KM))
        contested = np.zeros(todo.size, dtype=bool)
        contested[row_cell[rival]] = True
        has_rows = best_country >= 0
        coast = has_rows & ~contested & (best_ub <= margin_km - _GRID_SLACK_KM)
        sub[has_rows] = _MIXED
        sub[coast] = _INSIDE0 + K + best_country[coast]
    labels[todo] = sub
    return labels


def build_country_grid(
    max_offshore_km: float = DEFAULT_MAX_OFFSHORE_KM,
    base_deg: float = 0.25,
    factors: Sequence[int] = (4, 4),
    chunk: int = 50_000,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Build the lookup grid of :func:`country_of` (1-2 minutes; ``scripts/build_country_grid.py`` saves it).

    Args:
        max_offshore_km: The margin the labels hold for (km).
        base_deg: Cell size of the top level in degrees (180 / base_deg must be an integer).
        factors: Refinement of each further level (each cell splits into f x f children).
        chunk: Cells classified per batch (memory).
        progress: Print a line per level.

    Returns:
        Arrays for ``np.savez_compressed``: ``level0`` (rows, cols) and ``level1``... (n_blocks,
        f, f) int16 labels (``_CHILD`` marks a refined cell; its block is the next in row-major
        order), ``codes``, ``margin_km``, ``base_deg``, ``factors``, ``format`` and
        ``fingerprint`` (of the TopoJSON and the coding rules: a grid whose fingerprint differs
        from the current one is not used).
    """
    C = _countries()
    rows, cols = int(round(180 / base_deg)), int(round(360 / base_deg))
    r, c = np.divmod(np.arange(rows * cols), cols)
    lat0, lon0, size = r * base_deg - 90.0, c * base_deg - 180.0, base_deg
    levels = []
    for level in range(len(factors) + 1):
        labels = np.concatenate([_classify_cells(lat0[s : s + chunk], lon0[s : s + chunk], size, max_offshore_km) for s in range(0, lat0.size, chunk)])
        if progress:
            counts = np.bincount(np.minimum(labels, 2), minlength=3)
            print(f"level {level}: {labels.size:,} cells of {size:g}°: mixed {counts[0]:,}, deep {counts[1]:,}, country {counts[2]:,}", flush=True)
        if level < len(factors):
            f = factors[level]
            mixed = np.flatnonzero(labels == _MIXED)
            labels[mixed] = _CHILD
            size = size / f
            dy, dx = np.divmod(np.arange(f * f), f)
            lat0 = (lat0[mixed][:, None] + dy * size).ravel()
            lon0 = (lon0[mixed][:, None] + dx * size).ravel()
        levels.append(labels)
    out = {"level0": levels[0].reshape(rows, cols).astype(np.int16)}
    for i, f in enumerate(factors, start=1):
        out[f"level{i}"] = levels[i].reshape(-1, f, f).astype(np.int16)
    out.update(
        codes=np.array(C.codes),
        margin_km=np.float64(max_offshore_km),
        base_deg=np.float64(base_deg),
        factors=np.array(factors, dtype=np.int64),
        fingerprint=np.array(C.fingerprint),
        format=np.int64(_GRID_FORMAT),
    )
    return out


@dataclass(frozen=True)
class _Grid:
    levels: tuple  # int32 arrays; a negative entry -(b + 1) points to block b of the next level
    base_deg: float
    factors: tuple
    codes: tuple
    margin_km: float


@functools.lru_cache(maxsize=1)
def _grid() -> _Grid | None:
    """Load the shipped grid once (milliseconds); None when it is missing or built from other polygons."""
    import warnings

    if not COUNTRY_GRID_FILE.exists():
        warnings.warn(f"{COUNTRY_GRID_FILE} is missing: country_of uses the slower exact test (build it with scripts/build_country_grid.py)", stacklevel=3)
        return None
    with np.load(COUNTRY_GRID_FILE) as z:
        current = "format" in z.files and int(z["format"]) == _GRID_FORMAT and "fingerprint" in z.files
        if not current or str(z["fingerprint"]) != _polygons_fingerprint():
            warnings.warn(f"{COUNTRY_GRID_FILE} was built from other polygons or by another version: rebuild it with scripts/build_country_grid.py; using the exact test", stacklevel=3)
            return None
        factors = tuple(int(f) for f in z["factors"])
        raw = [z[f"level{i}"] for i in range(len(factors) + 1)]
        codes, margin, base = tuple(str(c) for c in z["codes"]), float(z["margin_km"]), float(z["base_deg"])
    levels = []
    for i, lab in enumerate(raw):
        lab = lab.astype(np.int32)
        child = lab == _CHILD
        lab[child] = -(np.cumsum(child.ravel())[child.ravel()])  # block b (row-major order) as -(b + 1)
        levels.append(lab)
    return _Grid(tuple(levels), base, factors, codes, margin)


def _grid_labels(G: _Grid, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Grid label of each (finite, in-range) point."""
    y, x = lat + 90.0, lon + 180.0  # >= 0
    scale = 1.0 / G.base_deg
    rows, cols = G.levels[0].shape
    r = np.minimum((y * scale).astype(np.int32), rows - 1)
    c = np.minimum((x * scale).astype(np.int32), cols - 1)
    label = G.levels[0].ravel().take(r * cols + c)
    todo = np.flatnonzero(label < 0)
    for level, f in enumerate(G.factors, start=1):
        if todo.size == 0:
            break
        scale *= f
        y_t, x_t, r_t, c_t = y[todo], x[todo], r[todo], c[todo]
        rt = np.clip((y_t * scale).astype(np.int32) - r_t * f, 0, f - 1)
        ct = np.clip((x_t * scale).astype(np.int32) - c_t * f, 0, f - 1)
        r[todo], c[todo] = r_t * f + rt, c_t * f + ct
        label[todo] = G.levels[level].ravel().take((-label[todo] - 1) * (f * f) + rt * f + ct)
        todo = todo[label[todo] < 0]
    return label


def _label_table(n_countries: int, max_offshore_km: float, built_km: float) -> np.ndarray:
    """Map grid labels to country index (-1 none, -2 ask the exact test) for a margin."""
    k = np.arange(n_countries)
    table = np.full(_INSIDE0 + 2 * n_countries, -2, dtype=np.int64)
    table[_INSIDE0 + k] = k
    if max_offshore_km <= built_km:  # no country within the built margin: none within a smaller one
        table[_DEEP] = -1
    if max_offshore_km >= built_km:  # reached and nearest at the built margin: also at a larger one
        table[_INSIDE0 + n_countries + k] = k
    return table


# ---------------------------------------------------------------------------------------------
# Public country lookups
# ---------------------------------------------------------------------------------------------


def _margin(max_offshore_km: Any) -> float:
    if not isinstance(max_offshore_km, numbers.Real) or isinstance(max_offshore_km, bool):
        raise TypeError(f"max_offshore_km must be a number of km, got {max_offshore_km!r}")
    m = float(max_offshore_km)
    if not (0.0 <= m < 1000.0):
        raise ValueError(f"max_offshore_km must be in [0, 1000) km, got {max_offshore_km!r}")
    return m


def _country_index(lat: np.ndarray, lon: np.ndarray, margin: float, use_grid: bool) -> np.ndarray:
    """Country index per point of 1-D arrays (-1: none or NaN)."""
    idx = np.full(lat.size, -1, dtype=np.int64)
    ok = ~(np.isnan(lat) | np.isnan(lon))
    if not ok.all():
        idx[ok] = _country_index(lat[ok], lon[ok], margin, use_grid)
        return idx
    if lat.size == 0:
        return idx
    G = _grid() if use_grid else None
    if G is None:
        return _exact_country_index(lat, lon, margin)
    found = _label_table(len(G.codes), margin, G.margin_km).take(_grid_labels(G, lat, lon))
    ask = np.flatnonzero(found == -2)
    if ask.size:
        if _countries().codes != G.codes:
            raise RuntimeError(f"{COUNTRY_GRID_FILE} lists other countries than the polygons: rebuild it with scripts/build_country_grid.py")
        found[ask] = _exact_country_index(lat[ask], lon[ask], margin)
    return found


def _codes() -> tuple:
    G = _grid()
    return G.codes if G is not None else _countries().codes


def country_of(lat: Any, lon: Any, *, max_offshore_km: float = DEFAULT_MAX_OFFSHORE_KM, use_grid: bool = True):
    """ISO 3166-1 alpha-2 code of the country at each point, from Natural Earth 1:50m polygons.

    A point inside a country's polygon gets that country. A point in no polygon (or exactly on a
    boundary) gets the country whose boundary is nearest (great-circle distance, in km), if it is
    within ``max_offshore_km``: the default 22.2 km is the 12-nautical-mile territorial sea, which
    also absorbs the 1:50m coastline's simplification (beaches, piers and small islands it cuts
    off). Farther out (open sea) the answer is None. Territories follow ISO and GeoNames (French
    Guiana is ``GF``, not ``FR``; Kosovo ``XK``; see the module docstring).

    Speed: a precomputed grid (``data/country_grid.npz``) answers most points with a table
    lookup; points in cells near a coast or border go to the exact test. Both give the same
    answer (a test checks it). The first call loads the grid (milliseconds) and, when a point
    needs the exact test, the polygons (about 2 s).

    Args:
        lat: Latitude(s) in degrees, [-90, 90]; NaN gives None.
        lon: Longitude(s) in degrees, [-180, 180]; broadcasts with ``lat``.
        max_offshore_km: How far into the sea a country reaches (km, >= 0). The grid is built
            for the default; other values stay exact and use the grid partly.
        use_grid: False forces the exact polygon test for every point (the reference).

    Returns:
        A code such as ``"FR"`` or None for scalar inputs; else an object array of codes and
        Nones of the broadcast shape.

    Raises:
        TypeError: non-numeric coordinates or margin.
        ValueError: coordinates out of range, a margin outside [0, 1000) km, shapes that do not
            broadcast.
    """
    la, lo = latitudes(lat, "lat"), longitudes(lon, "lon")
    margin = _margin(max_offshore_km)
    scalar = la.ndim == lo.ndim == 0
    try:
        la, lo = np.broadcast_arrays(la, lo)
    except ValueError as exc:
        raise ValueError(f"lat and lon do not broadcast together: shapes {la.shape} and {lo.shape}") from exc
    idx = _country_index(la.ravel(), lo.ravel(), margin, use_grid)
    lookup = np.array(list(_codes()) + [None], dtype=object)
    out = lookup[idx].reshape(la.shape)
    return out.item() if scalar else out


@functools.lru_cache(maxsize=1)
def _country_frame():
    import geopandas as gpd

    C = _countries()
    return gpd.GeoDataFrame({"iso_a2": list(C.codes), "name": list(C.names)}, geometry=list(C.geoms), crs="EPSG:4326")


def country_polygons():
    """Country polygons for maps: a GeoDataFrame with ``iso_a2``, ``name`` and ``geometry`` (EPSG:4326).

    One row per code that :func:`country_of` returns (246 rows), geometries as used there (cut at
    the antimeridian, Antarctica closed at the South Pole). Cached: a copy is returned, so callers
    may modify it.
    """
    return _country_frame().copy()
