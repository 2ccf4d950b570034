"""geolib.datasets (the manifest schema, load reports), geolib.sources and geolib.corpora (every loader on a tiny
fixture in its real layout), geolib.downloads."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from geolib import corpora, downloads, sources
from geolib import datasets as D

# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------


def _jpg(path: Path, color=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path, format="JPEG")
    return path


def _corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    return path


def _manifest(tmp_path: Path, n: int = 3) -> pd.DataFrame:
    images = [_jpg(tmp_path / "data" / "images" / f"{i}.jpg") for i in range(n)]
    return pd.DataFrame({
        "image_id": [f"demo_{i}" for i in range(n)],
        "image_path": [str(p) for p in images],
        "lat": np.linspace(-10.0, 50.0, n),
        "lon": np.linspace(-100.0, 100.0, n),
        "country": ["FR", "JP", "BR"][:n],
        "city": ["Paris", None, "Recife"][:n],
        "continent": ["EU", "AS", None][:n],
        "source": "demo",
        "scene": ["urban", "rural", None][:n],
        "clues": [["sign language: fr"], [], None][:n],
        "reasoning": ["French road signs", None, "Portuguese shop names"][:n],
        "locatability": [0.9, 0.1, 0.5][:n],  # an extra column passes through
    })


def _problem_sum(report):
    return sum(report.problems.values())


# ---------------------------------------------------------------------------------------------
# the manifest schema
# ---------------------------------------------------------------------------------------------


def test_schema_constant_is_documented_in_the_module_docstring():
    for col in D.MANIFEST_SCHEMA:
        assert f"``{col.name}``" in D.__doc__, col.name
    assert set(D.REQUIRED_COLUMNS) == {"image_id", "image_path", "lat", "lon", "country", "city",
                                       "continent", "source"}


def test_write_then_read_round_trips_and_stores_paths_relative(tmp_path):
    df = _manifest(tmp_path)
    target = tmp_path / "data" / "pool.parquet"
    assert D.write_manifest(target, df) == target
    stored = pd.read_parquet(target)
    assert stored["image_path"].tolist() == [f"images/{i}.jpg" for i in range(3)]
    back = D.read_manifest(target)
    assert back["image_path"].tolist() == df["image_path"].tolist()
    assert back["clues"].tolist() == [["sign language: fr"], [], None]
    assert back["lat"].dtype == np.float64 and back["lat"].tolist() == df["lat"].tolist()
    assert back["locatability"].tolist() == [0.9, 0.1, 0.5]
    assert back["city"].isna().tolist() == [False, True, False]
    raw = D.read_manifest(target, resolve_paths=False)
    assert raw["image_path"].iat[0] == "images/0.jpg"
    assert not list(tmp_path.glob("data/.pool.parquet.*"))  # no temporary file left behind


def test_paths_outside_the_manifest_folder_stay_absolute(tmp_path):
    df = _manifest(tmp_path)
    D.write_manifest(tmp_path / "elsewhere" / "pool.parquet", df)
    stored = pd.read_parquet(tmp_path / "elsewhere" / "pool.parquet")
    assert stored["image_path"].tolist() == df["image_path"].tolist()


def test_manifest_path_lives_under_the_profile_data_folder(runs_tmp):
    assert D.manifest_path("paper") == runs_tmp / "paper" / "data" / "pool.parquet"


def test_study_pool_adds_rows_and_the_split_and_refuses_a_stale_split(runs_tmp):
    df = _manifest(runs_tmp)
    D.write_manifest(D.manifest_path("ci"), df)
    split_path = D.manifest_path("ci").parent / "splits.parquet"
    with pytest.raises(FileNotFoundError, match="run notebook 00"):
        D.study_pool("ci")
    pd.DataFrame({"image_id": df["image_id"], "split": ["train", "val", "test"]}).to_parquet(split_path)
    pool = D.study_pool("ci")
    assert pool["row"].tolist() == [0, 1, 2] and pool["split"].tolist() == ["train", "val", "test"]
    pd.DataFrame({"image_id": df["image_id"][::-1], "split": ["train", "val", "test"]}).to_parquet(split_path)
    with pytest.raises(ValueError, match="not in the pool's order"):
        D.study_pool("ci")
    pd.DataFrame({"image_id": df["image_id"][:2], "split": ["train", "val"]}).to_parquet(split_path)
    with pytest.raises(ValueError, match="not in the pool's order"):
        D.study_pool("ci")


def test_missing_required_columns_are_named(tmp_path):
    df = _manifest(tmp_path).drop(columns=["country", "continent"])
    with pytest.raises(D.ManifestError, match=r"lacks required columns \['country', 'continent'\]"):
        D.validate_manifest(df)


def test_duplicate_ids_are_named(tmp_path):
    df = _manifest(tmp_path)
    df.loc[2, "image_id"] = "demo_0"
    with pytest.raises(D.ManifestError, match=r"'image_id'.*not unique.*'demo_0' \(rows \[0, 2\]\)"):
        D.validate_manifest(df)


@pytest.mark.parametrize("column, value, message", [
    ("lat", 95.0, r"'lat': 1 values outside \[-90, 90\], first: row 1 \(image_id='demo_1', lat=95.0\)"),
    ("lon", -180.5, r"'lon': 1 values outside \[-180, 180\]"),
    ("lat", np.nan, r"'lat': 1 null values"),
    ("country", "fr", r"'country': 1 values are not ISO alpha-2 codes.*'fr'"),
    ("country", "FRA", r"'country': 1 values are not ISO alpha-2"),
    ("country", None, r"'country': 1 null values"),
    ("continent", "Europe", r"'continent': 1 values are not continent codes"),
    ("scene", "indoor", r"'scene': 1 values are not scene types"),
    ("image_id", "", r"'image_id': 1 values are not non-empty str"),
    ("source", None, r"'source': 1 null values"),
])
def test_bad_values_are_named_with_column_and_row(tmp_path, column, value, message):
    df = _manifest(tmp_path)
    df[column] = df[column].astype(object)
    df.at[1, column] = value
    if column in ("lat", "lon"):
        df[column] = df[column].astype("float64")
    with pytest.raises(D.ManifestError, match=message):
        D.validate_manifest(df)


def test_wrong_dtypes_are_named(tmp_path):
    df = _manifest(tmp_path)
    df["lat"] = df["lat"].astype(str)
    df["clues"] = ["a", [], None]
    with pytest.raises(D.ManifestError) as err:
        D.validate_manifest(df)
    text = str(err.value)
    assert "column 'lat' must be float64 degrees, got dtype" in text
    assert "column 'clues' must hold lists of str" in text  # every problem is listed at once
    with pytest.raises(TypeError, match="DataFrame"):
        D.validate_manifest(df.to_dict())


def test_invalid_manifest_is_not_written(tmp_path):
    df = _manifest(tmp_path)
    df.loc[0, "lat"] = 100.0
    with pytest.raises(D.ManifestError):
        D.write_manifest(tmp_path / "data" / "pool.parquet", df)
    assert not (tmp_path / "data" / "pool.parquet").exists()


def test_read_manifest_validates_on_load(tmp_path):
    df = _manifest(tmp_path)
    df.loc[0, "country"] = "xx"
    df.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(D.ManifestError, match="'country'"):
        D.read_manifest(tmp_path / "bad.parquet")
    with pytest.raises(FileNotFoundError):
        D.read_manifest(tmp_path / "none.parquet")


def test_concat_manifests_keeps_ids_unique(tmp_path):
    a = _manifest(tmp_path)
    b = a.assign(image_id=a["image_id"] + "_b")
    assert len(D.concat_manifests([a, b])) == 6
    with pytest.raises(D.ManifestError, match="not unique"):
        D.concat_manifests([a, a])


@settings(max_examples=60, deadline=None)
@given(lat=st.floats(-90, 90), lon=st.floats(-180, 180),
       bad=st.one_of(st.floats(90.0001, 1e6), st.floats(-1e6, -90.0001)))
def test_coordinates_in_range_pass_and_out_of_range_fail(lat, lon, bad):
    df = pd.DataFrame({"image_id": ["a"], "image_path": ["a.jpg"], "lat": [lat], "lon": [lon],
                       "country": ["FR"], "city": [None], "continent": ["EU"], "source": ["x"]})
    D.validate_manifest(df)
    with pytest.raises(D.ManifestError, match="'lat'"):
        D.validate_manifest(df.assign(lat=[bad]))


# ---------------------------------------------------------------------------------------------
# load reports
# ---------------------------------------------------------------------------------------------


def test_load_report_counts_and_prints():
    r = D.LoadReport("demo (x.csv)", n_read=10)
    for i in range(7):
        r.add(D.MISSING_IMAGE, f"line {i}: gone")
    r.add(D.UNKNOWN_COUNTRY, "line 9: country='Atlantis'")
    r.n_kept = 2
    assert r.problems == {"missing_image": 7, "unknown_country": 1}
    assert len(r.examples["missing_image"]) == D.MAX_EXAMPLES
    assert r.n_dropped == 8
    text = str(r)
    assert text.startswith("demo (x.csv): kept 2 of 10 rows, left out 8:")
    assert "missing_image" in text and "line 0: gone" in text and "Atlantis" in text
    assert json.loads(json.dumps(r.to_dict()))["problems"]["missing_image"] == 7
    assert str(D.LoadReport("clean", 3, 3)).endswith("(nothing left out)")
    with pytest.raises(ValueError, match="unknown problem"):
        r.add("weird", "x")


# ---------------------------------------------------------------------------------------------
# OSV-5M
# ---------------------------------------------------------------------------------------------

# header of train.csv / test.csv as in the hub's osv5m.py builder
OSV5M_HEADER = ("id,latitude,longitude,thumb_original_url,country,sequence,captured_at,lon_bin,lat_bin,cell,"
                "region,sub-region,city,land_cover,road_index,drive_side,climate,soil,dist_sea,"
                "quadtree_10_5000,quadtree_10_25000,quadtree_10_1000,quadtree_10_50000,quadtree_10_12500,"
                "quadtree_10_500,quadtree_10_2500,unique_region,unique_sub-region,unique_city,unique_country,"
                "creator_username,creator_id")


def _osv_row(i, lat, lon, country, city="", region="R", subregion=""):
    tail = ",".join(["0"] * 13)
    return (f"{i},{lat},{lon},,{country},seq,2020-01-01,1,2,\"(1, 2)\",{region},{subregion},{city},"
            f"{tail},{region}_{country},,{city}_{country},{country},someone,1")


def _osv5m(tmp_path: Path) -> Path:
    root = tmp_path / "osv5m"
    img = root / "images" / "test"
    rows = [
        _osv_row(3859149887465501, -43.804769384023, -176.61409250805, "NZ", "Waitangi", "Chatham Islands"),
        _osv_row(1000000000000001, 48.8566, 2.3522, "FR", "Paris", "Ile-de-France"),
        _osv_row(1000000000000002, 35.68, 139.69, "JP", "", "Tokyo"),     # no city
        _osv_row(1000000000000003, 40.0, -3.7, "ES", "Madrid"),            # image missing
        _osv_row(1000000000000004, "", -3.7, "ES", "Madrid"),              # NaN latitude
        _osv_row(1000000000000005, 95.0, 10.0, "DE"),                      # |lat| > 90
        _osv_row(1000000000000006, 10.0, 200.0, "DE"),                     # |lon| > 180
        _osv_row(1000000000000007, 52.5, 13.4, "Atlantis"),                # unknown country
        _osv_row(1000000000000008, 52.5, 13.4, "DE", "Berlin") + ",extra", # too many fields
        _osv_row(1000000000000001, 48.8566, 2.3522, "FR", "Paris"),        # duplicate id
        _osv_row(1000000000000009, 41.9, 12.5, "IT", "Rome"),              # corrupt image bytes
    ]
    root.mkdir(parents=True)
    (root / "test.csv").write_text(OSV5M_HEADER + "\n" + "\n".join(rows) + "\n")
    # the hub's zips extract to nested folders; the loader matches images by file stem
    for i in (3859149887465501, 1000000000000001, 1000000000000005, 1000000000000006, 1000000000000007):
        _jpg(img / "00" / f"{i}.jpg")
    _jpg(img / "01" / "1000000000000002.jpg")
    _corrupt(img / "01" / "1000000000000009.jpg")
    return root


def test_load_osv5m_reports_and_leaves_out_bad_rows(tmp_path):
    root = _osv5m(tmp_path)
    df, report = sources.load_osv5m(root, "test", check_images=True)
    assert df["image_id"].tolist() == ["osv5m_3859149887465501", "osv5m_1000000000000001",
                                       "osv5m_1000000000000002"]  # the long id is read exactly
    assert df["country"].tolist() == ["NZ", "FR", "JP"]
    assert df["continent"].tolist() == ["OC", "EU", "AS"]
    assert df["city"].tolist()[:2] == ["Waitangi", "Paris"] and df["city"].isna().tolist() == [False, False, True]
    assert df["region"].tolist() == ["Chatham Islands", "Ile-de-France", "Tokyo"]
    assert set(df["split"]) == {"test"} and set(df["source"]) == {"osv5m"}
    assert set(df["country_source"]) == {"file"}
    assert Path(df["image_path"].iat[2]).parent.name == "01"
    assert df["lat"].iat[0] == pytest.approx(-43.804769384023)
    assert report.problems == {"malformed_line": 1, "impossible_coordinates": 3, "unknown_country": 1,
                               "missing_image": 1, "unreadable_image": 1, "duplicate_id": 1}
    assert report.n_read == 11 and report.n_kept == 3
    assert _problem_sum(report) == report.n_read - report.n_kept
    assert report.examples["malformed_line"][0].startswith("test.csv line 10:")
    assert "country='Atlantis'" in report.examples["unknown_country"][0]
    assert "test.csv line 5" in report.examples["missing_image"][0]
    D.validate_manifest(df)


def test_csv_line_numbers_hold_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "CSV_CHUNK_ROWS", 2)
    _jpg(tmp_path / "a.jpg")
    rows = ["a.jpg,48.85,2.35",            # line 2: kept
            "a.jpg,48.85,2.35",            # line 3: duplicate id
            "a.jpg,48.85,2.35,surplus",    # line 4: too many fields
            "b.jpg,48.1,2.1",              # line 5: image missing
            "c.jpg,48.2,2.2",              # line 6: image missing
            "d.jpg,48.3,2.3,x",            # line 7: too many fields
            "e.jpg,48.4,2.4"]              # line 8: image missing
    (tmp_path / "p.csv").write_text("image,lat,lon\n" + "\n".join(rows) + "\n")
    df, report = sources.load_streetview_folder(tmp_path / "p.csv")
    assert report.problems == {"malformed_line": 2, "missing_image": 3, "duplicate_id": 1}
    where = {k: [e.split(":")[0] for e in v] for k, v in report.examples.items()}
    assert where == {"malformed_line": ["p.csv line 4", "p.csv line 7"],
                     "missing_image": ["p.csv line 5", "p.csv line 6", "p.csv line 8"],
                     "duplicate_id": ["p.csv line 3"]}
    assert report.n_read == 7 and report.n_kept == 1 and df["image_id"].tolist() == ["streetview_a"]


def test_header_only_csv_gives_an_empty_manifest(tmp_path):
    (tmp_path / "p.csv").write_text("image,lat,lon\n")
    df, report = sources.load_streetview_folder(tmp_path / "p.csv")
    assert len(df) == 0 and list(df.columns[:8]) == list(D.REQUIRED_COLUMNS)
    assert report.n_read == 0 and str(report).endswith("(nothing left out)")


def test_osv5m_images_are_checked_by_header_without_check_images(tmp_path):
    df, report = sources.load_osv5m(_osv5m(tmp_path), "test", check_images=False)
    assert "osv5m_1000000000000009" not in set(df["image_id"])  # not an image: its header says so
    assert report.problems["unreadable_image"] == 1


def test_osv5m_limit_and_bad_arguments(tmp_path):
    root = _osv5m(tmp_path)
    df, report = sources.load_osv5m(root, "test", limit=2)
    assert report.n_read == 2 and len(df) == 2
    with pytest.raises(ValueError, match="split"):
        sources.load_osv5m(root, "val")
    with pytest.raises(FileNotFoundError, match="train.csv"):
        sources.load_osv5m(root, "train")


def test_osv5m_zipped_images_ask_for_extraction(tmp_path):
    root = tmp_path / "osv5m"
    img = root / "images" / "test"
    img.mkdir(parents=True)
    (root / "test.csv").write_text(OSV5M_HEADER + "\n" + _osv_row(7, 48.85, 2.35, "FR", "Paris") + "\n")
    jpg = _jpg(tmp_path / "7.jpg")
    with zipfile.ZipFile(img / "00.zip", "w") as zf:
        zf.write(jpg, "00/7.jpg")
    with pytest.raises(ValueError, match="extract_zips"):
        sources.load_osv5m(root, "test")
    assert downloads.extract_zips(img) == [img / "00.zip"]
    assert downloads.extract_zips(img) == []  # once
    df, report = sources.load_osv5m(root, "test")
    assert df["image_id"].tolist() == ["osv5m_7"] and report.n_dropped == 0


def test_extract_zips_refuses_members_outside_the_folder(tmp_path):
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("../outside.txt", "x")  # outside-repo: a zip-slip entry on purpose
    with pytest.raises(ValueError, match="outside"):
        downloads.extract_zips(tmp_path)
    assert not (tmp_path.parent / "outside.txt").exists()


# ---------------------------------------------------------------------------------------------
# a folder of Street View images with a CSV
# ---------------------------------------------------------------------------------------------


def test_streetview_folder_with_configured_columns(tmp_path):
    folder = tmp_path / "gsv"
    for name in ("a.jpg", "b.jpg", "d.jpg", "e.jpg"):
        _jpg(folder / "pics" / name)
    (folder / "meta.csv").write_text(
        "file,latitude,longitude,nation,town,heading\n"
        "a.jpg,48.8566,2.3522,France,Paris,90\n"
        "b.jpg,35.68,139.69,JP,,180\n"
        "c.jpg,40.0,-3.7,Spain,Madrid,0\n"        # image missing
        "d.jpg,abc,-3.7,Spain,Madrid,0\n"         # latitude not a number
        "e.jpg,10.0,10.0,Narnia,,0\n"             # unknown country
        ",10.0,10.0,France,,0\n")                 # no image name
    df, report = sources.load_streetview_folder(folder / "meta.csv", folder / "pics", image_col="file",
                                          lat_col="latitude", lon_col="longitude", country_col="nation",
                                          city_col="town", source="gsv")
    assert df["image_id"].tolist() == ["gsv_a", "gsv_b"]
    assert df["country"].tolist() == ["FR", "JP"] and df["country_in_file"].tolist() == ["France", "JP"]
    assert df["city"].iat[0] == "Paris" and pd.isna(df["city"].iat[1])
    assert df["heading"].tolist() == [90, 180]  # other columns pass through
    assert report.problems == {"missing_id": 1, "impossible_coordinates": 1, "unknown_country": 1,
                               "missing_image": 1}
    assert "lat='abc'" in report.examples["impossible_coordinates"][0]
    assert _problem_sum(report) == report.n_read - report.n_kept == 4


def test_streetview_folder_without_country_uses_the_coordinates(tmp_path):
    _jpg(tmp_path / "x.jpg")
    (tmp_path / "points.csv").write_text("image,lat,lon\nx.jpg,48.8566,2.3522\n")
    df, report = sources.load_streetview_folder(tmp_path / "points.csv")
    assert df["country"].tolist() == ["FR"] and df["country_source"].tolist() == ["coordinates"]
    assert report.n_kept == 1
    with pytest.raises(ValueError, match=r"no latitude column 'latitude'.*\['image', 'lat', 'lon'\]"):
        sources.load_streetview_folder(tmp_path / "points.csv", lat_col="latitude")


# ---------------------------------------------------------------------------------------------
# Im2GPS3k and YFCC4k
# ---------------------------------------------------------------------------------------------

IM2GPS3K_HEADER = "IMG_ID,AUTHOR,LAT,LON,S3_Label,S16_Label,S365_Label,Prob_indoor,Prob_natural,Prob_urban"


def _im2gps3k(tmp_path: Path, header: str = IM2GPS3K_HEADER, rows=None) -> Path:
    root = tmp_path / "im2gps3k"
    rows = rows if rows is not None else [
        ("103442236_09c8d53dbc_37_73293249@N00.jpg", 51.501821, -0.140655),    # London
        ("1023756068_20c3ffc329_1039_70323761@N00.jpg", 40.807694, -73.962262),  # New York
        ("104132709_97b998c989_41_19355699@N00.jpg", -33.861328, 151.209039),  # Sydney
        ("1_missing_1_1@N00.jpg", 46.21488, 7.049309),                          # image missing
        ("2_ocean_1_1@N00.jpg", 0.0, -30.0),                                     # no country holds it
    ]
    lines = [header] + [f"{i},1@N00,{a},{b},2,11,84,0.1,0.2,0.7" for i, a, b in rows]
    root.mkdir(parents=True)
    (root / "im2gps3k_places365.csv").write_text("\n".join(lines) + "\n")
    for i, _, _ in rows:
        if "missing" not in i:
            _jpg(root / "images" / i)
    return root


def test_load_im2gps3k_derives_the_country_from_coordinates(tmp_path):
    df, report = sources.load_im2gps3k(_im2gps3k(tmp_path))
    assert df["country"].tolist() == ["GB", "US", "AU"]
    assert df["continent"].tolist() == ["EU", "NA", "OC"]
    assert set(df["country_source"]) == {"coordinates"}
    assert df["image_id"].iat[0] == "im2gps3k_103442236_09c8d53dbc_37_73293249@N00"
    assert df["IMG_ID"].iat[0] == "103442236_09c8d53dbc_37_73293249@N00.jpg"  # source columns pass through
    assert df["S365_Label"].tolist() == [84, 84, 84]
    assert df["city"].isna().all()
    assert report.problems == {"missing_image": 1, "unknown_country": 1}
    assert "no country at lat=0.0, lon=-30.0" in report.examples["unknown_country"][0]


def test_im2gps3k_with_swapped_lat_lon_labels_raises_then_reads(tmp_path):
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-40, 60, 30), rng.uniform(100, 150, 30)  # points in Asia/Oceania
    rows = [(f"{k}_x_1_1@N00.jpg", a, b) for k, (a, b) in enumerate(zip(lat, lon))]
    swapped = IM2GPS3K_HEADER.replace("LAT,LON", "LON,LAT")  # the mislabelled copy: values lat first
    root = _im2gps3k(tmp_path, swapped, rows)
    with pytest.raises(ValueError, match=r"labels look swapped.*lat_col='LON', lon_col='LAT'"):
        sources.load_im2gps3k(root)
    df, report = sources.load_im2gps3k(root, lat_col="LON", lon_col="LAT")
    assert report.n_read == 30
    assert np.allclose(df["lat"], lat[[int(i.split("_")[1]) for i in df["image_id"]]])


def test_load_yfcc4k_ids_without_extension(tmp_path):
    root = tmp_path / "yfcc4k"
    root.mkdir()
    (root / "yfcc4k_places365.csv").write_text(
        "IMG_ID,LAT,LON\n25935894,48.8566,2.3522\n99999999,35.68,139.69\n")
    _jpg(root / "images" / "25935894.jpg")
    _jpg(root / "images" / "99999999.jpg")
    df, report = sources.load_yfcc4k(root)
    assert df["image_id"].tolist() == ["yfcc4k_25935894", "yfcc4k_99999999"]
    assert df["country"].tolist() == ["FR", "JP"] and report.n_dropped == 0
    assert df["image_path"].iat[0].endswith("images/25935894.jpg")


# ---------------------------------------------------------------------------------------------
# GeoReasoner SFT
# ---------------------------------------------------------------------------------------------

QUESTION = "Which country is this picture most likely located in? Explain the reason."


def _sft_record(i, image, answer):
    return {"id": f"identity_{i}", "conversations": [
        {"from": "user", "value": f"Picture 1: <img>{image}</img>\n{QUESTION}"},
        {"from": "assistant", "value": answer}]}


def test_load_georeasoner_sft(tmp_path):
    root = tmp_path / "sft"
    _jpg(root / "imgs" / "a.jpg")
    _jpg(root / "imgs" / "b.jpg")
    _jpg(root / "imgs" / "c.jpg")
    _jpg(root / "imgs" / "e.jpg")
    records = [
        _sft_record(0, "imgs/a.jpg", "{'country': 'France', 'reasons': 'Yellow licence plates at the back.'}"),
        # the released JSON holds its authors' absolute paths: found by file name under image_root
        _sft_record(1, "/mnt/data/projects/geoguessr/b.jpg",
                    "```json\n" + json.dumps({"country": "Japan", "city": "Tokyo",
                                               "reasons": ["kanji", "left-hand traffic"]}) + "\n```"),
        _sft_record(2, "imgs/c.jpg", "I think this is France, because of the bollards."),  # unparsable
        _sft_record(3, "imgs/d.jpg", "{'country': 'Spain', 'reasons': 'x'}"),               # image missing
        _sft_record(4, "imgs/e.jpg", "{'country': 'Atlantis', 'reasons': 'x'}"),            # unknown country
        {"id": "identity_5", "conversations": []},                                          # malformed
        {"id": "identity_6", "conversations": [{"from": "user", "value": "no image here"},
                                               {"from": "assistant", "value": "{'country': 'France'}"}]},
    ]
    (root / "georeasoner_sft.json").write_text(json.dumps(records))
    df, report = corpora.load_georeasoner_sft(root / "georeasoner_sft.json", image_root=root / "imgs")
    assert list(df.columns[:5]) == list(corpora.CONVERSATION_COLUMNS)
    assert df["sample_id"].tolist() == ["identity_0", "identity_1"]
    assert df["country"].tolist() == ["FR", "JP"] and df["country_name"].tolist() == ["France", "Japan"]
    assert pd.isna(df["city"].iat[0]) and df["city"].iat[1] == "Tokyo"
    assert df["reasons"].tolist() == ["Yellow licence plates at the back.", "kanji\nleft-hand traffic"]
    assert df["question"].tolist() == [QUESTION, QUESTION]
    assert df["answer_text"].iat[0] == records[0]["conversations"][1]["value"]  # verbatim
    assert df["image_path"].tolist() == [str(root / "imgs" / "a.jpg"), str(root / "imgs" / "b.jpg")]
    assert report.problems == {"malformed_record": 2, "unparsable_answer": 1, "unknown_country": 1,
                               "missing_image": 1}
    assert "I think this is France" in report.examples["unparsable_answer"][0]
    assert _problem_sum(report) == report.n_read - report.n_kept
    kept, _ = corpora.load_georeasoner_sft(root / "georeasoner_sft.json", image_root=root / "imgs",
                                     require_images=False)
    assert "identity_3" in set(kept["sample_id"])


def test_parse_answer_dict_cases():
    assert corpora.parse_answer_dict("{'country': 'France', 'reasons': 'x'}") == {"country": "France", "reasons": "x"}
    assert corpora.parse_answer_dict('Answer: {"country": "Peru"} done') == {"country": "Peru"}
    assert corpora.parse_answer_dict("__import__('os').system('echo hi')") is None  # literals only, never code
    assert corpora.parse_answer_dict("['France']") is None
    assert corpora.parse_answer_dict(None) is None
    assert corpora.parse_answer_dict("{" * 10_000) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_parse_answer_dict_never_raises(text):
    out = corpora.parse_answer_dict(text)
    assert out is None or isinstance(out, dict)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["country", "city", "reasons"]), st.text(max_size=40), min_size=1))
def test_parse_answer_dict_reads_back_any_python_dict(d):
    assert corpora.parse_answer_dict(repr(d)) == d
    assert corpora.parse_answer_dict(json.dumps(d)) == d


def test_resolve_image_path(tmp_path):
    _jpg(tmp_path / "imgs" / "x.jpg")
    assert D.resolve_image_path("imgs/x.jpg", tmp_path) == tmp_path / "imgs" / "x.jpg"
    assert D.resolve_image_path("images/x.jpg", tmp_path / "imgs") == tmp_path / "imgs" / "x.jpg"
    assert D.resolve_image_path("/elsewhere/y.jpg", tmp_path) == tmp_path / "elsewhere" / "y.jpg"


# ---------------------------------------------------------------------------------------------
# GRE30K
# ---------------------------------------------------------------------------------------------


def _gre_record(image, lat, lon, answer, **extra):
    return {"image": image, "conversations": [
        {"from": "human", "value": "<image>\nWhere was this photo taken? Think step by step."},
        {"from": "gpt", "value": answer}], "gt_lat": lat, "gt_lon": lon, **extra}


def test_load_gre30k_cot(tmp_path):
    root = tmp_path / "gre_cot"
    _jpg(root / "imgs" / "1.jpg")
    _jpg(root / "imgs" / "2.jpg")
    chain = "<think>Cyrillic signs, wide roads.</think><answer>[55.75, 37.62]</answer>"
    records = [_gre_record("images/1.jpg", 55.75, 37.62, chain),      # README path; the folder is imgs/
               _gre_record("images/2.jpg", 100.0, 37.62, chain),     # impossible latitude
               {"conversations": []}]                                # no image field
    (root / "gre_cot.json").write_text(json.dumps(records))
    df, report = corpora.load_gre30k_cot(root / "gre_cot.json", image_root=root / "imgs")
    assert df["sample_id"].tolist() == ["cot_0"]
    assert df["question"].iat[0] == "Where was this photo taken? Think step by step."
    assert df["answer_text"].iat[0] == chain
    assert (df["lat"].iat[0], df["lon"].iat[0]) == (55.75, 37.62)
    assert set(df["source"]) == {"gre30k_cot"}
    assert report.problems == {"impossible_coordinates": 1, "malformed_record": 1}
    assert "gre_cot.json record 2: no 'image' field" in report.examples["malformed_record"]


def test_load_gre30k_judge(tmp_path):
    root = tmp_path / "gre_judge"
    for k in range(3):
        _jpg(root / "imgs" / f"{k}.jpg")
    records = [_gre_record(f"imgs/{k}.jpg", 10.0, 20.0, ans, predicted_cot="<think>..</think>",
                           predicted_answer="[10, 20]") for k, ans in enumerate(["True", "False", "Maybe"])]
    (root / "gre_judge.json").write_text(json.dumps(records))
    df, report = corpora.load_gre30k_judge(root / "gre_judge.json")
    assert df["label"].tolist() == [True, False]
    assert df["predicted_answer"].tolist() == ["[10, 20]", "[10, 20]"]
    assert report.problems == {"unparsable_answer": 1}


def test_load_gre30k_seed_jsonl_with_a_malformed_line(tmp_path):
    root = tmp_path / "gre_seed"
    _jpg(root / "imgs" / "a.jpg")
    _jpg(root / "imgs" / "b.jpg")
    lines = [json.dumps({"image": "imgs/a.jpg", "instructions": "Where is this?", "gt_lat": -22.9, "gt_lon": -43.2}),
             '{"image": "imgs/b.jpg", "instructions": "Where?", "gt_lat": 1.0,',   # cut off: not JSON
             "",
             json.dumps({"image": "imgs/b.jpg", "gt_lat": 1.0, "gt_lon": 2.0}),    # no instructions
             json.dumps({"image": "imgs/b.jpg", "instructions": "Where?", "gt_lat": None, "gt_lon": 2.0}),
             json.dumps({"image": "imgs/b.jpg", "instructions": "Where?", "gt_lat": True, "gt_lon": 2.0})]
    (root / "gre_seed.jsonl").write_text("\n".join(lines) + "\n")
    df, report = corpora.load_gre30k_seed(root / "gre_seed.jsonl")
    assert df["sample_id"].tolist() == ["seed_1"]  # its line number
    assert df["question"].tolist() == ["Where is this?"] and df["answer_text"].isna().all()
    assert (df["lat"].iat[0], df["lon"].iat[0]) == (-22.9, -43.2)
    assert report.problems == {"malformed_line": 1, "malformed_record": 1, "impossible_coordinates": 2}
    assert report.examples["malformed_line"][0].startswith("gre_seed.jsonl line 2:")
    assert "lat=True" in report.examples["impossible_coordinates"][1]  # a boolean is not 1.0 degrees
    assert report.n_read == 5 and report.n_kept == 1


# ---------------------------------------------------------------------------------------------
# downloads
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub

    calls = []

    def snapshot_download(repo_id, **kw):
        calls.append({"repo_id": repo_id, **kw})
        local = Path(kw["local_dir"])
        (local / "images" / "test").mkdir(parents=True, exist_ok=True)
        (local / "test.csv").write_text(OSV5M_HEADER + "\n")
        (local / "images" / "test" / "00.zip").write_bytes(b"PK")
        (local / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)
        return str(local)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def _online(monkeypatch, on: bool):
    import huggingface_hub.constants as c

    monkeypatch.setenv("HF_HUB_OFFLINE", "0" if on else "1")
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", not on)


def test_download_refuses_while_offline(tmp_path, monkeypatch, fake_hub):
    _online(monkeypatch, False)
    with pytest.raises(downloads.DownloadsDisabled, match=r"HF_HUB_OFFLINE=0"):
        downloads.download_dataset("osv5m", "a" * 40, tmp_path / "osv5m")
    assert fake_hub == []


def test_download_is_pinned_and_idempotent(tmp_path, monkeypatch, fake_hub):
    _online(monkeypatch, True)
    local = tmp_path / "osv5m"
    rev = "0123456789abcdef0123456789abcdef01234567"
    assert downloads.download_dataset("osv5m", rev, local) == local
    assert fake_hub == [{"repo_id": "osv5m/osv5m", "repo_type": "dataset", "revision": rev,
                         "allow_patterns": ["README.md", "test.csv", "images/test/*.zip"],
                         "local_dir": str(local)}]
    marker = json.loads((local / downloads.DOWNLOAD_MARKER).read_text())
    assert marker["files"] == ["images/test/00.zip", "test.csv"]
    downloads.download_dataset("osv5m", rev, local)
    assert len(fake_hub) == 1  # skipped: complete
    _online(monkeypatch, False)
    downloads.download_dataset("osv5m", rev, local)  # a complete download needs no network
    assert len(fake_hub) == 1
    (local / "test.csv").unlink()
    with pytest.raises(downloads.DownloadsDisabled):  # incomplete now, and offline
        downloads.download_dataset("osv5m", rev, local)
    _online(monkeypatch, True)
    downloads.download_dataset("osv5m", rev, local)
    downloads.download_dataset("osv5m", "f" * 40, local)  # another revision is another download
    assert [c["revision"] for c in fake_hub] == [rev, rev, "f" * 40]


def test_download_needs_a_known_name_and_a_revision(tmp_path, fake_hub):
    with pytest.raises(ValueError, match="unknown data set 'osv6m'"):
        downloads.download_dataset("osv6m", "a" * 40, tmp_path)
    with pytest.raises(ValueError, match="pinned revision"):
        downloads.download_dataset("osv5m", None, tmp_path)
    assert fake_hub == []
