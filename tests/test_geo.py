"""Tests of geolib.geo (distances, metrics), geolib.borders (TopoJSON decoding, countries) and geolib.gazetteer (cities, country names)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geolib import borders, gazetteer, geo

R = geo.EARTH_RADIUS_KM

# Real places (lat, lon) and the country each lies in.
PLACES = {
    "Paris": (48.8566, 2.3522, "FR"),
    "Tokyo": (35.6895, 139.6917, "JP"),
    "Nairobi": (-1.2864, 36.8172, "KE"),
    "Brasília": (-15.7939, -47.8828, "BR"),
    "Canberra": (-35.2809, 149.1300, "AU"),
    "Ottawa": (45.4215, -75.6972, "CA"),
    "Buenos Aires": (-34.6037, -58.3816, "AR"),
    "New Delhi": (28.6139, 77.2090, "IN"),
    "Moscow": (55.7558, 37.6173, "RU"),
    "Cairo": (30.0444, 31.2357, "EG"),
    "Strasbourg": (48.5734, 7.7521, "FR"),
    "Kehl": (48.5722, 7.8156, "DE"),
    "El Paso (north-east)": (31.8457, -106.4260, "US"),
    "Ciudad Juárez": (31.6904, -106.4245, "MX"),
    "Basel": (47.5596, 7.5886, "CH"),
    "Valletta, Malta": (35.8989, 14.5146, "MT"),
    "Port Louis, Mauritius": (-20.1609, 57.5012, "MU"),
    "Honolulu": (21.3069, -157.8583, "US"),
    "Reykjavík": (64.1466, -21.9426, "IS"),
    "Taveuni, Fiji (east of 180°)": (-16.85, -179.95, "FJ"),
    "Vanua Levu, Fiji (west of 180°)": (-16.45, 179.30, "FJ"),
    "Chukotka, Russia (west of 180°)": (65.80, 179.00, "RU"),
    "Chukotka, Russia (east of 180°)": (65.50, -178.00, "RU"),
    "South Pole": (-90.0, 0.0, "AQ"),
    "South Pole (other meridian)": (-90.0, 123.0, "AQ"),
    "North Pole": (90.0, 0.0, None),
    "Mid-Atlantic": (30.0, -40.0, None),
    "Cayenne, French Guiana": (4.9224, -52.3135, "GF"),
    "Saint-Denis, Réunion": (-20.8823, 55.4504, "RE"),
    "Pristina, Kosovo": (42.6629, 21.1655, "XK"),
    "Kyrenia, N. Cyprus": (35.3364, 33.3175, "CY"),
    "Hargeisa, Somaliland": (9.5600, 44.0650, "SO"),
    "Longyearbyen, Svalbard": (78.2232, 15.6267, "SJ"),
    "Nuuk, Greenland": (64.1814, -51.6941, "GL"),
    "San Juan, Puerto Rico": (18.4655, -66.1057, "PR"),
    "Simferopol, Crimea": (44.9521, 34.1024, "UA"),
}


# --------------------------------------------------------------------------------------------
# haversine_km
# --------------------------------------------------------------------------------------------


def test_haversine_known_distances():
    assert geo.haversine_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.5, rel=0.005)  # Paris-London
    assert geo.haversine_km(40.7128, -74.0060, 51.5074, -0.1278) == pytest.approx(5570, rel=0.005)  # NYC-London
    assert geo.haversine_km(90, 0, -90, 0) == pytest.approx(math.pi * R, rel=1e-12)
    assert geo.haversine_km(0, 0, 0, 180) == pytest.approx(math.pi * R, rel=1e-12)
    assert geo.haversine_km(0, 0, 0, 1) == pytest.approx(2 * math.pi * R / 360, rel=1e-9)
    assert geo.EARTH_RADIUS_KM == 6371.0088


def test_haversine_zero_symmetry_and_antimeridian():
    assert geo.haversine_km(12.3, 45.6, 12.3, 45.6) == 0.0
    assert geo.haversine_km(-33.9, 18.4, 51.5, -0.1) == geo.haversine_km(51.5, -0.1, -33.9, 18.4)
    across = geo.haversine_km(-16.5, 179.9, -16.5, -179.9)  # across the antimeridian: short
    assert across == pytest.approx(2 * math.pi * R / 360 * 0.2 * math.cos(math.radians(16.5)), rel=1e-3)
    assert geo.haversine_km(0, -180, 0, 180) == pytest.approx(0.0, abs=1e-9)
    assert geo.haversine_km(90, 0, 90, 123) == pytest.approx(0.0, abs=1e-9)  # the pole is one point


def test_haversine_scalars_arrays_and_broadcasting():
    d = geo.haversine_km(48.8566, 2.3522, 51.5074, -0.1278)
    assert isinstance(d, float)
    lat2 = np.array([48.8566, 51.5074, np.nan])
    lon2 = np.array([2.3522, -0.1278, 0.0])
    out = geo.haversine_km(48.8566, 2.3522, lat2, lon2)
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    assert out[0] == 0.0 and out[1] == pytest.approx(343.5, rel=0.005) and np.isnan(out[2])
    grid = geo.haversine_km(np.zeros((2, 1)), 0.0, 0.0, np.array([0.0, 1.0, 2.0]))
    assert grid.shape == (2, 3)
    assert geo.haversine_km([0, 1], [0, 1], [0, 1], [0, 1]).tolist() == [0.0, 0.0]
    assert geo.haversine_km(np.array([]), np.array([]), 0, 0).shape == (0,)
    assert np.isnan(geo.haversine_km(float("nan"), 0, 0, 0))


def test_haversine_bad_input():
    with pytest.raises(ValueError, match="lat1.*91"):
        geo.haversine_km(91, 0, 0, 0)
    with pytest.raises(ValueError, match="lon2.*-180.5"):
        geo.haversine_km(0, 0, 0, -180.5)
    with pytest.raises(ValueError, match="lat2.*inf"):
        geo.haversine_km(0, 0, np.inf, 0)
    with pytest.raises(ValueError, match="index"):
        geo.haversine_km(np.array([0.0, 95.0]), 0, 0, 0)
    with pytest.raises(ValueError, match="broadcast"):
        geo.haversine_km(np.zeros(2), np.zeros(3), 0, 0)
    for bad in ("48.8", None, True, [1.0, "x"], np.array(["a"]), 1 + 2j, [None, 1.0]):
        with pytest.raises(TypeError):
            geo.haversine_km(bad, 0, 0, 0)


lats = st.floats(-90, 90, allow_nan=False)
lons = st.floats(-180, 180, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(lats, lons, lats, lons, lats, lons)
def test_haversine_properties(la1, lo1, la2, lo2, la3, lo3):
    ab = geo.haversine_km(la1, lo1, la2, lo2)
    assert ab == geo.haversine_km(la2, lo2, la1, lo1)
    assert 0.0 <= ab <= math.pi * R + 1e-9
    ac, cb = geo.haversine_km(la1, lo1, la3, lo3), geo.haversine_km(la3, lo3, la2, lo2)
    assert ab <= ac + cb + 1e-6


# --------------------------------------------------------------------------------------------
# accuracy_within_km, geoscore
# --------------------------------------------------------------------------------------------


def test_accuracy_within_km_boundaries_are_inclusive():
    d = [0.0, 1.0, 1.0000001, 25.0, 200.0, 750.0, 2500.0, 2500.1, np.nan, np.inf]
    acc = geo.accuracy_within_km(d)
    assert list(acc) == [1, 25, 200, 750, 2500]
    assert acc == {1: 0.2, 25: 0.4, 200: 0.5, 750: 0.6, 2500: 0.7}
    assert geo.accuracy_within_km(np.array([[3.0, 30.0]]), thresholds=(3, 30.0)) == {3: 0.5, 30.0: 1.0}


def test_accuracy_within_km_nan_counts_as_miss():
    assert geo.accuracy_within_km([np.nan, np.nan, 0.5, 10.0], thresholds=(1,)) == {1: 0.25}
    assert geo.accuracy_within_km([np.nan]) == {t: 0.0 for t in geo.DEFAULT_THRESHOLDS_KM}


def test_accuracy_within_km_bad_input():
    with pytest.raises(ValueError, match="empty"):
        geo.accuracy_within_km([])
    with pytest.raises(ValueError, match="empty"):
        geo.accuracy_within_km(np.array([]))
    with pytest.raises(ValueError, match=">= 0"):
        geo.accuracy_within_km([1.0, -2.0])
    with pytest.raises(ValueError, match="> 0"):
        geo.accuracy_within_km([1.0], thresholds=(0,))
    with pytest.raises(ValueError, match="empty"):
        geo.accuracy_within_km([1.0], thresholds=())
    with pytest.raises(TypeError):
        geo.accuracy_within_km(["12 km"])
    with pytest.raises(TypeError):
        geo.accuracy_within_km(None)
    with pytest.raises(TypeError):
        geo.accuracy_within_km([1.0], thresholds="25")
    with pytest.raises(TypeError):
        geo.accuracy_within_km([1.0], thresholds=("25",))


def test_geoscore():
    assert geo.geoscore(0) == 5000.0
    assert geo.geoscore(1492.7) == pytest.approx(5000 / math.e)
    assert geo.geoscore(float("nan")) == 0.0
    assert isinstance(geo.geoscore(10), float)
    out = geo.geoscore(np.array([0.0, np.nan, 20000.0]))
    assert out.shape == (3,) and out[0] == 5000 and out[1] == 0 and 0 < out[2] < 1
    with pytest.raises(ValueError):
        geo.geoscore(-1)
    with pytest.raises(TypeError):
        geo.geoscore("far")


# --------------------------------------------------------------------------------------------
# decode_topojson
# --------------------------------------------------------------------------------------------


def _square_topology():
    # A 4x4 square (two arcs, the second used reversed) with a 2x2 hole, quantized: scale 0.5,
    # translate (10, 20), delta-encoded; so the square spans lon 10..12, lat 20..22.
    return {
        "type": "Topology",
        "transform": {"scale": [0.5, 0.5], "translate": [10, 20]},
        "arcs": [
            [[0, 0], [4, 0], [0, 4]],  # (0,0) -> (4,0) -> (4,4)
            [[0, 0], [0, 4], [4, 0]],  # (0,0) -> (0,4) -> (4,4); used reversed as ~1
            [[1, 1], [0, 2], [2, 0], [0, -2], [-2, 0]],  # hole ring (1,1) (1,3) (3,3) (3,1) (1,1)
        ],
        "objects": {
            "shapes": {
                "type": "GeometryCollection",
                "geometries": [
                    {"type": "Polygon", "arcs": [[0, ~1], [2]], "id": "001", "properties": {"name": "holed"}},
                    {"type": "MultiPolygon", "arcs": [[[0, ~1]]], "properties": {"name": "no id"}},
                    {"type": None, "properties": {"name": "null"}},
                ],
            }
        },
    }


def test_decode_topojson_quantized_arcs_reversal_and_holes():
    decoded = borders.decode_topojson(_square_topology(), "shapes")
    (id0, props0, holed), (id1, props1, plain), (_, _, null) = decoded
    assert id0 == "001" and props0 == {"name": "holed"} and id1 is None and null is None
    assert holed.bounds == (10.0, 20.0, 12.0, 22.0)
    assert holed.area == pytest.approx(4.0 - 1.0) and plain.area == pytest.approx(4.0)
    assert holed.is_valid and not holed.contains(shapely.Point(11, 21))  # the hole


def test_decode_topojson_cuts_at_the_antimeridian_and_closes_polar_rings():
    topo = {
        "type": "Topology",
        "arcs": [
            [[178.0, 10.0], [-178.0, 10.0], [-178.0, 12.0], [178.0, 12.0], [178.0, 10.0]],  # crosses 180°
            [[-180.0, -70.0], [-60.0, -65.0], [60.0, -65.0], [179.0, -70.0]],  # winds around the South Pole
            [[179.0, -70.0], [-180.0, -70.0]],
            [[-180.0, -89.999], [0.0, -89.999], [179.0, -89.999], [-180.0, -89.999]],  # polar cap artefact
        ],
        "objects": {
            "x": {
                "type": "GeometryCollection",
                "geometries": [
                    {"type": "Polygon", "arcs": [[0]]},
                    {"type": "Polygon", "arcs": [[3], [1, 2]]},
                ],
            }
        },
    }
    (_, _, island), (_, _, antarctic) = borders.decode_topojson(topo, "x")
    assert island.geom_type == "MultiPolygon" and island.is_valid
    assert island.bounds == (-180.0, 10.0, 180.0, 12.0)
    assert island.area == pytest.approx(4.0 * 2.0)
    assert island.contains(shapely.Point(179.0, 11.0)) and island.contains(shapely.Point(-179.0, 11.0))
    assert not island.intersects(shapely.Point(0.0, 11.0))
    assert antarctic.is_valid and antarctic.bounds[1] == -90.0
    assert antarctic.intersects(shapely.Point(0.0, -90.0)) and antarctic.contains(shapely.Point(0.0, -80.0))
    assert not antarctic.intersects(shapely.Point(0.0, -60.0))


def test_decode_topojson_errors():
    with pytest.raises(ValueError, match="Topology"):
        borders.decode_topojson({"type": "FeatureCollection"}, "x")
    with pytest.raises(ValueError, match="no object"):
        borders.decode_topojson(_square_topology(), "countries")


# --------------------------------------------------------------------------------------------
# country_of, country_polygons
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("place", list(PLACES))
def test_country_of_real_places(place):
    lat, lon, code = PLACES[place]
    assert borders.country_of(lat, lon) == code
    assert borders.country_of(lat, lon, use_grid=False) == code


def test_country_of_arrays_nan_and_shapes():
    lat = np.array([[48.8566, np.nan], [30.0, 35.6895]])
    lon = np.array([[2.3522, 2.0], [-40.0, 139.6917]])
    out = borders.country_of(lat, lon)
    assert out.shape == (2, 2) and out.dtype == object
    assert out.tolist() == [["FR", None], [None, "JP"]]
    assert borders.country_of(float("nan"), 0.0) is None
    assert borders.country_of(np.array([]), np.array([])).shape == (0,)
    assert borders.country_of([48.8566], 2.3522).tolist() == ["FR"]


def test_country_of_offshore_margin():
    # The 1:50m coast of Portugal at 40°N lies at 8.90°W; these points are 4.5 and 39 km out.
    near, far = (40.0, -8.96), (40.0, -9.40)
    assert borders.country_of(*near, max_offshore_km=0) is None  # at sea
    assert borders.country_of(*near) == "PT"
    assert borders.country_of(*far) is None
    assert borders.country_of(*far, max_offshore_km=60) == "PT"
    # 7 km off Copacabana, Rio de Janeiro; in the Strait of Dover (34 km wide) the nearer coast wins.
    assert borders.country_of(-22.99, -43.15) == "BR"
    assert borders.country_of(51.02, 1.45) == "GB" and borders.country_of(50.98, 1.70) == "FR"


def test_country_of_bad_input():
    with pytest.raises(ValueError, match="lat.*-91"):
        borders.country_of(-91, 0)
    with pytest.raises(ValueError, match="lon.*190"):
        borders.country_of(0, 190)
    with pytest.raises(TypeError):
        borders.country_of("48.8", 2.3)
    with pytest.raises(TypeError):
        borders.country_of(None, 2.3)
    with pytest.raises(ValueError, match="max_offshore_km"):
        borders.country_of(0, 0, max_offshore_km=-1)
    with pytest.raises(TypeError, match="max_offshore_km"):
        borders.country_of(0, 0, max_offshore_km="12")


def _random_points(n, seed):
    rng = np.random.default_rng(seed)
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)


def _coastal_points(n, seed):
    """Points within ~40 km of boundary vertices: where the grid's hard cells are."""
    rng = np.random.default_rng(seed)
    C = borders._countries()
    i = rng.integers(0, len(C.edge_a), n)
    xyz = C.edge_a[i]
    lat, lon = np.degrees(np.arcsin(np.clip(xyz[:, 2], -1, 1))), np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))
    lat = np.clip(lat + rng.normal(0, 0.2, n), -90, 90)
    lon = (lon + rng.normal(0, 0.2, n) / np.maximum(np.cos(np.radians(lat)), 0.05) + 180) % 360 - 180
    return lat, lon


def test_country_grid_is_shipped_small_and_current():
    assert borders.COUNTRY_GRID_FILE.exists()
    assert borders.COUNTRY_GRID_FILE.stat().st_size < 2_000_000
    G = borders._grid()
    assert G is not None, "grid missing or stale: run scripts/build_country_grid.py"
    assert G.codes == borders._countries().codes and G.margin_km == borders.DEFAULT_MAX_OFFSHORE_KM


@pytest.mark.parametrize("points", [_random_points, _coastal_points], ids=["uniform", "coastal"])
def test_country_grid_agrees_with_exact_test(points):
    lat, lon = points(4000, seed=7)
    fast, exact = borders.country_of(lat, lon), borders.country_of(lat, lon, use_grid=False)
    assert (fast == exact).all(), list(zip(lat[fast != exact][:5], lon[fast != exact][:5]))


@pytest.mark.parametrize("margin", [0.0, 10.0, 50.0])
def test_country_grid_other_margins_stay_exact(margin):
    lat, lon = _coastal_points(1500, seed=11)
    fast = borders.country_of(lat, lon, max_offshore_km=margin)
    exact = borders.country_of(lat, lon, max_offshore_km=margin, use_grid=False)
    assert (fast == exact).all()


def test_country_of_nearest_coast_matches_brute_force_in_km():
    # The exact test searches boundary edges in boxes widened by the exact spherical cap of the
    # margin; a brute-force scan of every edge in km must agree, also at high latitudes where a
    # degree of longitude is short (raw-degree distances would be wrong there).
    lat, lon = _coastal_points(3000, seed=3)
    at_sea = np.flatnonzero(pd.isna(borders.country_of(lat, lon, max_offshore_km=0, use_grid=False).astype(object)))
    high = at_sea[np.argsort(-np.abs(lat[at_sea]))[:20]]
    C = borders._countries()
    every_edge = np.arange(len(C.edge_a))
    for j in np.concatenate([high, at_sea[:20]]):
        p = np.repeat(borders._xyz(lat[j : j + 1], lon[j : j + 1]), len(every_edge), axis=0)
        d = borders._point_arc_rad(p, C, every_edge) * R
        expected = C.codes[C.edge_country[np.argmin(d)]] if d.min() <= borders.DEFAULT_MAX_OFFSHORE_KM else None
        assert borders.country_of(lat[j], lon[j], use_grid=False) == expected, (lat[j], lon[j], d.min())
    assert np.abs(lat[high]).min() > 60


def test_country_of_agrees_with_geonames_country_codes():
    # The coding rules (territories, units without an id, Crimea) follow GeoNames: its ~33,000
    # cities get their GeoNames country from the polygons, except near coarse 1:50m borders.
    c = gazetteer._cities()
    got = borders.country_of(c.lat, c.lon)
    assert np.mean(got == c.countries) > 0.995


def test_country_polygons():
    gdf = borders.country_polygons()
    assert list(gdf.columns) == ["iso_a2", "name", "geometry"]
    assert gdf.crs.to_epsg() == 4326
    assert gdf["iso_a2"].is_unique and len(gdf) == len(borders._countries().codes)
    assert gdf.geometry.is_valid.all()
    row = gdf.set_index("iso_a2").loc["FR"]
    assert row["name"] == "France" and row.geometry.bounds[0] > -10  # French Guiana is GF, not FR
    assert gdf.set_index("iso_a2").loc["XK", "name"] == "Kosovo"
    gdf["name"] = "changed"
    assert (borders.country_polygons()["name"] != "changed").all()  # callers get a copy


# --------------------------------------------------------------------------------------------
# nearest_city, geocode_city
# --------------------------------------------------------------------------------------------


def test_nearest_city_scalar():
    c = gazetteer.nearest_city(-35.2809, 149.1300)
    assert isinstance(c, gazetteer.City)
    assert (c.name, c.country) == ("Canberra", "AU") and c.population > 300_000 and c.distance_km < 5
    paris = gazetteer.nearest_city(48.8566, 2.3522)  # GeoNames lists Paris's arrondissements as cities
    assert paris.name.startswith("Paris") and paris.country == "FR" and paris.distance_km < 2
    suva = gazetteer.nearest_city(-18.14, 178.44)
    assert suva.country == "FJ"
    assert gazetteer.nearest_city(float("nan"), 0.0) is None
    far = gazetteer.nearest_city(-90, 0)
    assert far.distance_km == pytest.approx(geo.haversine_km(-90, 0, far.lat, far.lon), rel=1e-9)


def test_nearest_city_arrays():
    df = gazetteer.nearest_city([35.6895, np.nan, 47.37], [139.6917, 0.0, 8.54])
    assert isinstance(df, pd.DataFrame) and len(df) == 3
    assert list(df.columns) == ["name", "country", "lat", "lon", "population", "distance_km"]
    assert df.loc[0, "country"] == "JP" and df.loc[2, "name"] == "Zürich"
    assert df.loc[1, ["name", "country", "lat", "population", "distance_km"]].isna().all()
    assert str(df["population"].dtype) == "Int64"
    assert len(gazetteer.nearest_city(np.array([]), np.array([]))) == 0
    with pytest.raises(ValueError):
        gazetteer.nearest_city(0, 200)


def test_geocode_city():
    zurich = gazetteer.geocode_city("Zurich", "CH")
    assert zurich == pytest.approx((47.367, 8.55), abs=0.01)
    assert gazetteer.geocode_city("zürich", "Switzerland") == zurich
    assert gazetteer.geocode_city("ZURICH", "che") is None  # lower-case alpha-3 is not a code
    assert gazetteer.geocode_city("Zurigo", "Schweiz") == zurich  # an alternate name, the country in German
    assert gazetteer.geocode_city("Paris", "FR") == pytest.approx((48.853, 2.349), abs=0.01)
    assert gazetteer.geocode_city("Paris", "US")[0] == pytest.approx(33.66, abs=0.01)  # Paris, Texas
    assert gazetteer.geocode_city("Paris") == gazetteer.geocode_city("Paris", "France")  # most populous worldwide
    assert gazetteer.geocode_city("São Paulo", "Brazil") == gazetteer.geocode_city("Sao Paulo", "BR")
    assert gazetteer.geocode_city("Cayenne", "GF") is not None and gazetteer.geocode_city("Cayenne", "FR") is None


def test_geocode_city_unknown_is_none():
    assert gazetteer.geocode_city("Atlantis", "GR") is None
    assert gazetteer.geocode_city("Zurich", "Narnia") is None
    assert gazetteer.geocode_city("Zurich", "AT") is None
    assert gazetteer.geocode_city("Zurrich", "CH") is None  # no fuzzy matching
    assert gazetteer.geocode_city(None, "CH") is None and gazetteer.geocode_city(float("nan")) is None
    with pytest.raises(TypeError):
        gazetteer.geocode_city(42, "CH")
    with pytest.raises(TypeError):
        gazetteer.geocode_city("Zurich", 756)


# --------------------------------------------------------------------------------------------
# normalize_country
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, code",
    [
        ("USA", "US"), ("U.S.", "US"), ("u.s.a.", "US"), ("United States of America", "US"), ("US", "US"),
        ("UK", "GB"), ("Great Britain", "GB"), ("England", "GB"), ("Scotland", "GB"), ("Wales", "GB"),
        ("Czechia", "CZ"), ("Czech Republic", "CZ"), ("Türkiye", "TR"), ("Turkey", "TR"), ("turkiye", "TR"),
        ("Ivory Coast", "CI"), ("Côte d'Ivoire", "CI"), ("Cote d’Ivoire", "CI"), ("Viet Nam", "VN"),
        ("South Korea", "KR"), ("Korea, Republic of", "KR"), ("North Korea", "KP"), ("Russia", "RU"),
        ("Russian Federation", "RU"), ("Holland", "NL"), ("the Netherlands", "NL"), ("Burma", "MM"),
        ("Swaziland", "SZ"), ("Macedonia", "MK"), ("UAE", "AE"), ("DR Congo", "CD"),
        ("Republic of the Congo", "CG"), ("Deutschland", "DE"), ("España", "ES"), ("espana", "ES"),
        ("日本", "JP"), ("Schweiz", "CH"), ("Suisse", "CH"), ("Svizzera", "CH"), ("Россия", "RU"),
        ("Brasil", "BR"), ("  FRANCE  ", "FR"), ("france!", "FR"), ("St. Lucia", "LC"), ("Saint Lucia", "LC"),
        ("Bosnia & Herzegovina", "BA"), ("Trinidad and Tobago", "TT"), ("Kosovo", "XK"), ("XK", "XK"),
        ("DEU", "DE"), ("NO", "NO"), ("Georgia", "GE"), ("Niger", "NE"), ("Nigeria", "NG"),
        ("Guinea-Bissau", "GW"), ("guinea bissau", "GW"), ("Hong Kong", "HK"), ("Taiwan", "TW"),
    ],
)
def test_normalize_country_names_and_aliases(text, code):
    assert gazetteer.normalize_country(text) == code


@pytest.mark.parametrize(
    "text", ["Congo", "Korea", "Virgin Islands", "Nippon", "no", "it", "N/A", "n/a", "deu", "Frnace", "", "   ", "Europe", "Narnia"]
)
def test_normalize_country_unknown_or_ambiguous_is_none(text):
    assert gazetteer.normalize_country(text) is None


def test_normalize_country_non_strings():
    assert gazetteer.normalize_country(None) is None
    assert gazetteer.normalize_country(float("nan")) is None
    assert gazetteer.normalize_country(np.nan) is None
    assert gazetteer.normalize_country(pd.NA) is None
    for bad in (5, 3.5, b"France", ["France"], True):
        with pytest.raises(TypeError):
            gazetteer.normalize_country(bad)


def test_normalize_country_round_trips_every_pycountry_country():
    import pycountry

    deliberately_ambiguous = {"Congo"}  # ISO short name of CG; see _COUNTRY_ALIASES
    for c in pycountry.countries:
        assert gazetteer.normalize_country(c.alpha_2) == c.alpha_2
        assert gazetteer.normalize_country(c.alpha_3) == c.alpha_2, c.alpha_3
        if c.name in deliberately_ambiguous:
            assert gazetteer.normalize_country(c.name) is None
        else:
            assert gazetteer.normalize_country(c.name) == c.alpha_2, c.name
        for attr in ("official_name", "common_name"):
            if getattr(c, attr, None):
                assert gazetteer.normalize_country(getattr(c, attr)) == c.alpha_2, getattr(c, attr)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_normalize_country_never_raises_on_text(text):
    code = gazetteer.normalize_country(text)
    assert code is None or (len(code) == 2 and code.isupper())
