"""Real image data sets → one image-pool manifest, with a report of what was left out (notebook ``00_data``).

:func:`build_pool` is notebook 00's one entry point: it renders the demo world or reads one real
data set with the loaders below, and writes the manifest of :mod:`geolib.datasets`. Each loader
returns ``(table, LoadReport)`` and reports, rather than silently changes, bad input (the checks
and their order: :mod:`geolib.datasets`).

The real layouts (what each loader follows, and where it was found)
--------------------------------------------------------------------

* **OSV-5M** (:func:`load_osv5m`), ``osv5m/osv5m`` on the Hugging Face hub: ``train.csv`` and
  ``test.csv`` at the root, columns ``id, latitude, longitude, thumb_original_url, country,
  sequence, captured_at, lon_bin, lat_bin, cell, region, sub-region, city, land_cover, ...,
  unique_country, creator_username, creator_id`` (the header comment and ``_info`` of the
  hub's ``osv5m.py`` builder, which reads ``id`` as str and keeps ``id, latitude, longitude,
  country, region, sub-region, city`` by default). Images ship as ``images/{split}/00.zip ...``
  (98 train, 5 test zips; ``osv5m.py`` ``_split_generators``) that the dataset card says to
  extract in place; the builder matches an image to its row by the file stem
  (``{id}.jpg``), whatever the sub-folder, and so does this loader.
* **A folder of Street View images with a CSV** (:func:`load_streetview_folder`): GeoReasoner's
  stage-2 data is not released ("due to copyright issues with Google Street View images ...
  retrieve the relevant data by using the official API", README of ``lingli1996/GeoReasoner``),
  so the layout is the one such a collection yields: a CSV with an image file name, latitude,
  longitude and optionally country and city; every column name is a parameter.
* **Im2GPS3k and YFCC4k** (:func:`load_im2gps3k`, :func:`load_yfcc4k`):
  ``im2gps3k_places365.csv`` from ``TIBHannover/GeoEstimation`` (``meta/``), header ``IMG_ID,
  AUTHOR, LAT, LON, S3_Label, S16_Label, S365_Label, Prob_indoor, Prob_natural, Prob_urban``,
  ``IMG_ID`` the file name (``1000269685_e60e9cdfb4_1125_78841376@N00.jpg``). One stored copy
  of that file (GeoEstimation commit ``3487c53``) labels the two columns ``LON, LAT`` while
  holding the same values (latitude first); the loader detects such a swap and raises (pass
  ``lat_col``/``lon_col`` to read it). ``yfcc4k_places365.csv`` is read by the G3 and Img2Loc
  code (``yfcc4kDataset`` in their ``utils``) through the same ``IMG_ID``, ``LAT``, ``LON``
  columns, images in ``<root>/images/<IMG_ID>``. Neither file has a country: it is derived from
  the coordinates (``country_source = "coordinates"``).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from geolib import paths
from geolib.datasets import (
    COUNTRY_MISMATCH,
    DUPLICATE_ID,
    IMPOSSIBLE_COORDINATES,
    MALFORMED_LINE,
    MAX_EXAMPLES,
    MISSING_ID,
    MISSING_IMAGE,
    OUTSIDE_DATA_FOLDER,
    UNKNOWN_COUNTRY,
    UNREADABLE_IMAGE,
    DataFileError,
    LoadReport,
    _is_null,
    continent_of_country,
    image_header_problem,
    inside_folder,
    manifest_path,
    read_manifest,
    validate_manifest,
    verify_image,
    write_manifest,
)

_ALPHA2 = re.compile(r"^[A-Z]{2}$")

# --------------------------------------------------------------------------------------------
# Shared cleaning: coordinates, country, images, ids (the loaders here and in geolib.corpora)
# --------------------------------------------------------------------------------------------


def _normalize_countries(values: Iterable[Any]) -> list[str | None]:
    """Alpha-2 code for each raw country value (None where it does not normalise); each
    distinct value is normalised once."""
    from geolib.gazetteer import normalize_country

    values = list(values)
    table: dict[Any, str | None] = {}
    for v in dict.fromkeys(v for v in values if isinstance(v, str)):
        code = normalize_country(v) if v.strip() else None
        table[v] = code if isinstance(code, str) and _ALPHA2.match(code) else None
    return [table.get(v) if isinstance(v, str) else None for v in values]


def _countries_at(lat: np.ndarray, lon: np.ndarray) -> list[str | None]:
    """Alpha-2 code of the country holding each point (None where none does)."""
    from geolib.borders import country_of

    if len(lat) == 0:
        return []
    codes = country_of(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    codes = [codes] if isinstance(codes, str) or codes is None else list(codes)
    return [c if isinstance(c, str) and _ALPHA2.match(c) else None for c in codes]

def _where(frame: pd.DataFrame) -> Callable[[int], str]:
    """Labeller of rows for report examples: ``frame.attrs["where"]`` + the row's ``_where``.

    CSV tables keep only the line number per row (``attrs["where"] = "test.csv line "``), so
    that 4.9 million rows do not carry 4.9 million label strings.
    """
    prefix, values = frame.attrs.get("where", ""), frame["_where"].to_numpy()
    return lambda i: f"{prefix}{values[i]}"


def _drop(report: LoadReport, keep: np.ndarray, bad: np.ndarray, problem: str,
          describe: Callable[[int], str]) -> None:
    """Leave out the rows flagged in ``bad`` that are still kept; count them under ``problem``.

    Only the first :data:`MAX_EXAMPLES` rows are described (millions of rows may be bad).
    """
    rows = np.flatnonzero(bad & keep)
    if len(rows):
        keep[rows] = False
        room = max(0, MAX_EXAMPLES - len(report.examples.get(problem, [])))
        report.add_rows(problem, len(rows), [describe(i) for i in rows[:room]])


def _drop_outside(frame: pd.DataFrame, keep: np.ndarray, report: LoadReport, root: str | os.PathLike) -> None:
    """Drop rows whose image path leads outside the data folder ``root``."""
    where = _where(frame) if "_where" in frame.columns else (lambda i: f"row {i}")
    images = frame["image_path"].to_numpy(dtype=object)
    rows = np.flatnonzero(keep)
    outside = np.zeros(len(frame), dtype=bool)
    outside[rows] = [isinstance(p, str) and not inside_folder(p, root) for p in images[rows]]
    _drop(report, keep, outside, OUTSIDE_DATA_FOLDER, lambda i: f"{where(i)}: {images[i]} is outside {root}")


def _check_images(frame: pd.DataFrame, keep: np.ndarray, report: LoadReport, *, check_images: bool,
                  exists: Callable[[str], bool] | None = None, root: str | os.PathLike | None = None) -> None:
    """Drop rows whose image lies outside ``root``, is missing, or is not an image.

    Every image's header is read (cheap: format and size); ``check_images`` verifies whole files.
    """
    exists = exists or os.path.isfile
    where = _where(frame)
    images = frame["image_path"].to_numpy(dtype=object)
    if root is not None:
        _drop_outside(frame, keep, report, root)
    rows = np.flatnonzero(keep)
    missing = np.zeros(len(frame), dtype=bool)
    missing[rows] = [not (isinstance(p, str) and exists(p)) for p in images[rows]]
    _drop(report, keep, missing, MISSING_IMAGE, lambda i: f"{where(i)}: {images[i]} not found")
    from tqdm.auto import tqdm

    check = verify_image if check_images else image_header_problem
    errors: dict[int, str] = {}
    todo = np.flatnonzero(keep)
    for i in tqdm(todo, desc=f"checking images ({report.source})", disable=len(todo) < 2000):
        err = check(images[i])
        if err is not None:
            errors[int(i)] = err
    bad = np.zeros(len(frame), dtype=bool)
    bad[list(errors)] = True
    _drop(report, keep, bad, UNREADABLE_IMAGE, lambda i: f"{where(i)}: {images[i]}: {errors[i]}")


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _degrees(values: pd.Series) -> np.ndarray:
    """Numbers as float64; anything else (text, None, lists, booleans) as NaN."""
    if pd.api.types.is_bool_dtype(values):
        return np.full(len(values), np.nan)
    if values.dtype == object:
        values = values.map(lambda v: np.nan if isinstance(v, (bool, np.bool_)) else v)
    return pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()


def _coordinates(frame: pd.DataFrame, keep: np.ndarray, report: LoadReport) -> tuple[np.ndarray, np.ndarray]:
    """Numeric lat/lon; rows with impossible coordinates are dropped and reported."""
    raw_lat, raw_lon = frame["_lat"].to_numpy(dtype=object), frame["_lon"].to_numpy(dtype=object)
    lat, lon = _degrees(frame["_lat"]), _degrees(frame["_lon"])
    with np.errstate(invalid="ignore"):
        bad = np.isnan(lat) | np.isnan(lon) | (np.abs(lat) > 90) | (np.abs(lon) > 180)
    where = _where(frame)
    _drop(report, keep, bad, IMPOSSIBLE_COORDINATES,
          lambda i: f"{where(i)}: lat={_plain(raw_lat[i])!r} lon={_plain(raw_lon[i])!r}")
    return lat, lon


def _blank(values: pd.Series) -> np.ndarray:
    """True where a value is null or blank text."""
    null = values.isna().to_numpy()
    text = values.where(~values.isna(), "").astype(str).str.strip()
    return null | (text == "").to_numpy()


def _drop_duplicates(ids: pd.Series, keep: np.ndarray, report: LoadReport, frame: pd.DataFrame,
                     shown: pd.Series | None = None) -> None:
    """Among the rows still kept, drop each whose id a previous kept row has."""
    rows = np.flatnonzero(keep)
    again = np.zeros(len(ids), dtype=bool)
    again[rows] = ids.iloc[rows].duplicated(keep="first").to_numpy()
    shown = (ids if shown is None else shown).to_numpy(dtype=object)
    where = _where(frame)
    _drop(report, keep, again, DUPLICATE_ID, lambda i: f"{where(i)}: id {shown[i]!r} seen before")


def _finish_manifest(frame: pd.DataFrame, report: LoadReport, *, source: str, check_images: bool,
                     exists: Callable[[str], bool] | None = None, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Turn a raw table into a manifest, reporting and dropping bad rows.

    ``frame`` holds ``_id`` (native id, str), ``image_path`` (str), ``_lat``, ``_lon`` (raw),
    ``_where`` (row label for examples, after ``frame.attrs["where"]``), optionally
    ``_country`` (the source's value) and ``city``, plus pass-through columns.
    """
    n = len(frame)
    keep = np.ones(n, dtype=bool)
    where = _where(frame)
    ids = frame["_id"]
    _drop(report, keep, _blank(ids), MISSING_ID, lambda i: f"{where(i)}: no id")
    lat, lon = _coordinates(frame, keep, report)

    country = np.full(n, None, dtype=object)
    if "_country" in frame.columns:
        country_source = "file"
        raw_country = frame["_country"].to_numpy(dtype=object)
        country[:] = _normalize_countries(raw_country)
        _drop(report, keep, np.array([c is None for c in country], dtype=bool), UNKNOWN_COUNTRY,
              lambda i: f"{where(i)}: country={_plain(raw_country[i])!r}")
    else:
        country_source = "coordinates"
        rows = np.flatnonzero(keep)
        country[rows] = _countries_at(lat[rows], lon[rows])
        _drop(report, keep, np.array([c is None for c in country], dtype=bool), UNKNOWN_COUNTRY,
              lambda i: f"{where(i)}: no country at lat={lat[i]}, lon={lon[i]}")

    if country_source == "file":  # a label that contradicts the coordinates is reported, not kept
        rows = np.flatnonzero(keep)
        at = np.full(n, None, dtype=object)
        at[rows] = _countries_at(lat[rows], lon[rows])
        contradicts = np.array([a is not None and c is not None and a != c for a, c in zip(at, country)], dtype=bool)
        _drop(report, keep, contradicts, COUNTRY_MISMATCH,
              lambda i: f"{where(i)}: country={_plain(raw_country[i])!r} but lat={lat[i]}, lon={lon[i]} is in {at[i]}")

    _check_images(frame, keep, report, check_images=check_images, exists=exists, root=root)

    image_id = source + "_" + ids.astype(str)
    _drop_duplicates(image_id, keep, report, frame, ids)

    if "city" in frame.columns:
        city = frame["city"].where(~_blank(frame["city"]), None).to_numpy(dtype=object)
    else:
        city = np.full(n, None, dtype=object)
    out = pd.DataFrame({
        "image_id": image_id.to_numpy(dtype=object),
        "image_path": frame["image_path"].to_numpy(dtype=object),
        "lat": lat,
        "lon": lon,
        "country": country,
        "city": city,
    })
    out["continent"] = continent_of_country(out["country"]).to_numpy()
    out["source"] = source
    out["country_source"] = country_source
    if country_source == "file":
        out["country_in_file"] = frame["_country"].to_numpy(dtype=object)
    for c in frame.columns:  # the source's other columns pass through
        if c.startswith("_") or c in ("image_path", "city"):
            continue
        out[c if c not in out.columns else f"{c}_in_file"] = frame[c].to_numpy()
    out = out[keep].reset_index(drop=True)
    report.n_read = n + report.problems.get(MALFORMED_LINE, 0)
    report.n_kept = len(out)
    return validate_manifest(out)


# --------------------------------------------------------------------------------------------
# CSV reading with malformed lines reported
# --------------------------------------------------------------------------------------------

_SKIPPED = re.compile(r"Skipping line (\d+): (.*)")


def _csv_columns(path: Path) -> list[str]:
    return list(pd.read_csv(path, nrows=0).columns)


def _require_columns(path: Path, have: Sequence[str], need: dict[str, str]) -> None:
    have = [c for c in have if c != "_where"]
    missing = {role: col for role, col in need.items() if col not in have}
    if missing:
        roles = ", ".join(f"{role} column {col!r}" for role, col in missing.items())
        raise DataFileError(f"{path}: no {roles}; the file's columns are {list(have)} "
                         f"(pass the right names as arguments)")


#: Rows parsed at a time by :func:`_read_csv` (bounds memory on OSV-5M's 2.9 GB train.csv).
CSV_CHUNK_ROWS = 250_000


def _read_csv(path: Path, report: LoadReport, *, str_columns: Iterable[str] = (),
              keep: Sequence[str] | None = None, limit: int | None = None) -> pd.DataFrame:
    """Read a CSV; lines with too many fields are left out and reported; adds ``_where``.

    Every column is parsed (pandas checks a line's field count only for parsed columns: with
    ``usecols`` a line shifted by a stray comma would pass), in chunks; only ``keep`` is kept.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    with open(path, "rb") as fh:
        if b"\x00" in fh.read(4096):
            raise DataFileError(f"{path}: holds NUL bytes, so it is a binary file, not a CSV")
    try:
        have = _csv_columns(path)
        dtype = {c: str for c in str_columns if c in have}
        cols = [c for c in have if keep is None or c in keep]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            with pd.read_csv(path, dtype=dtype, nrows=limit, on_bad_lines="warn",
                             chunksize=CSV_CHUNK_ROWS) as reader:
                parts = [chunk[cols] for chunk in reader]
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataFileError(f"{path}: cannot be read as CSV ({type(exc).__name__}: {str(exc)[:200]}); "
                            "is it empty, binary or truncated?") from None
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    skipped: list[int] = []
    for w in caught:
        found = [m for m in map(_SKIPPED.search, str(w.message).splitlines()) if m]
        if not found:  # not ours: let it through
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        for m in found:
            skipped.append(int(m.group(1)))
            report.add(MALFORMED_LINE, f"{path.name} line {m.group(1)}: {m.group(2).strip()}")
    lines = np.arange(len(df)) + 2  # line 1 is the header
    for s in sorted(skipped):
        lines[lines >= s] += 1
    df = df.reset_index(drop=True)
    df["_where"] = lines
    df.attrs["where"] = f"{path.name} line "
    return df


def _check_lat_lon_labels(path: Path, lat: pd.Series, lon: pd.Series, lat_col: str, lon_col: str) -> None:
    """Raise when the latitude column holds longitudes and vice versa (a swapped header)."""
    la = pd.to_numeric(lat, errors="coerce").abs()
    lo = pd.to_numeric(lon, errors="coerce").abs()
    n = int(la.notna().sum())
    if n >= 20 and (la > 90).mean() >= 0.05 and (lo > 90).sum() == 0:
        example = float(pd.to_numeric(lat, errors="coerce")[la > 90].iloc[0])
        raise ValueError(
            f"{path}: column {lat_col!r} holds values beyond ±90 in {int((la > 90).sum())} of {n} rows "
            f"(e.g. {example}) while {lon_col!r} stays within ±90: the latitude/longitude labels look "
            f"swapped (one copy of im2gps3k_places365.csv, TIBHannover/GeoEstimation commit 3487c53, "
            f"labels them LON,LAT). If so, pass lat_col={lon_col!r}, lon_col={lat_col!r}.")


# --------------------------------------------------------------------------------------------
# OSV-5M
# --------------------------------------------------------------------------------------------

OSV5M_COLUMNS = ("id", "latitude", "longitude", "country", "region", "sub-region", "city")


def _index_images(folder: Path, wanted: set[str], suffixes=(".jpg", ".jpeg", ".png")) -> dict[str, str]:
    """Map file stem → path for the wanted stems, walking ``folder`` once (any depth)."""
    found: dict[str, str] = {}
    stack = [folder]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                    continue
                stem, ext = os.path.splitext(entry.name)
                if ext.lower() in suffixes and stem in wanted and stem not in found:
                    found[stem] = entry.path
    return found


def load_osv5m(root: str | os.PathLike, split: str = "test", *, check_images: bool = False,
               limit: int | None = None) -> tuple[pd.DataFrame, LoadReport]:
    """Load OSV-5M (``osv5m/osv5m``) as a manifest.

    Layout (see the module docstring): ``<root>/{split}.csv`` with ``id, latitude, longitude,
    country, region, sub-region, city, ...``; images ``<root>/images/{split}/.../{id}.jpg``
    (the hub's zips extracted in place, e.g. with :func:`extract_zips`).

    Args:
        root: the downloaded data set (``local_dir`` of :func:`download_dataset`).
        split: ``"train"`` or ``"test"``.
        check_images: verify every image with PIL (reads each file).
        limit: read only the first ``limit`` rows of the CSV.

    Returns:
        The manifest (``image_id = "osv5m_<id>"``; ``region``, ``sub_region`` and ``split``
        pass through) and the load report.

    Raises:
        FileNotFoundError: no CSV, or no image folder for the split.
        ValueError: the images are still zipped.
    """
    if split not in ("train", "test"):
        raise ValueError(f"OSV-5M split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    csv = root / f"{split}.csv"
    report = LoadReport(f"osv5m {split} ({csv})")
    raw = _read_csv(csv, report, str_columns=("id", "country", "region", "sub-region", "city"),
                    keep=OSV5M_COLUMNS, limit=limit)
    _require_columns(csv, list(raw.columns), {"id": "id", "latitude": "latitude", "longitude": "longitude",
                                              "country": "country"})
    _check_lat_lon_labels(csv, raw["latitude"], raw["longitude"], "latitude", "longitude")
    image_dir = root / "images" / split
    if not image_dir.is_dir():
        raise FileNotFoundError(f"no OSV-5M image folder {image_dir} (download images/{split}/*.zip "
                                f"and extract them there)")
    index = _index_images(image_dir, set(raw["id"].dropna().astype(str)))
    if not index and len(raw) and any(image_dir.glob("*.zip")):
        raise ValueError(f"{image_dir} holds .zip archives and no extracted image of {csv.name}: "
                         f"run geolib.downloads.extract_zips({str(image_dir)!r}) first")
    frame = pd.DataFrame({
        "_id": raw["id"], "_lat": raw["latitude"], "_lon": raw["longitude"], "_country": raw["country"],
        "_where": raw["_where"],
        "image_path": [index.get(i) or os.path.join(image_dir, f"{i}.jpg") for i in raw["id"]],
        "city": raw["city"] if "city" in raw.columns else None,
    })
    for col, name in (("region", "region"), ("sub-region", "sub_region")):
        if col in raw.columns:
            frame[name] = raw[col].to_numpy()
    frame["split"] = split
    frame.attrs["where"] = raw.attrs["where"]
    found = set(index.values())  # the walk saw every image there is: no stat per row
    df = _finish_manifest(frame, report, source="osv5m", check_images=check_images,
                          exists=lambda p: p in found, root=image_dir)
    return df, report


# --------------------------------------------------------------------------------------------
# A folder of Street View images with a CSV (GeoReasoner stage 2)
# --------------------------------------------------------------------------------------------


def load_streetview_folder(csv_path: str | os.PathLike, image_dir: str | os.PathLike | None = None, *,
                           image_col: str = "image", lat_col: str = "lat", lon_col: str = "lon",
                           country_col: str | None = "country", city_col: str | None = "city",
                           id_col: str | None = None, source: str = "streetview",
                           check_images: bool = False) -> tuple[pd.DataFrame, LoadReport]:
    """Load a folder of street-view images described by a CSV (how GeoReasoner's stage-2 data is collected).

    Args:
        csv_path: the CSV: one row per image.
        image_dir: folder the image names are relative to (default: the CSV's folder).
        image_col: column with the image file name (or path relative to ``image_dir``).
        lat_col: latitude column, degrees.
        lon_col: longitude column, degrees.
        country_col: country column (names or codes, normalised with
            :func:`geolib.gazetteer.normalize_country`). When the file has no such column (or None is
            passed), the country is the one holding the point (``country_source =
            "coordinates"``).
        city_col: city column, used when the file has it.
        id_col: id column; default: the image name without its extension.
        source: the ``source`` value and id prefix.
        check_images: verify every image with PIL.

    Returns:
        The manifest (other CSV columns pass through) and the load report.
    """
    csv_path = Path(csv_path)
    image_dir = Path(image_dir) if image_dir is not None else csv_path.parent
    report = LoadReport(f"{source} ({csv_path})")
    text_cols = [c for c in (image_col, country_col, city_col, id_col) if c]
    raw = _read_csv(csv_path, report, str_columns=text_cols)
    need = {"image": image_col, "latitude": lat_col, "longitude": lon_col}
    if id_col:
        need["id"] = id_col
    _require_columns(csv_path, list(raw.columns), need)
    _check_lat_lon_labels(csv_path, raw[lat_col], raw[lon_col], lat_col, lon_col)
    names = raw[image_col]

    def stem(v: Any) -> str | None:  # the image name without its extension ("a/b.jpg" -> "a/b")
        if _is_null(v) or not str(v).strip():
            return None
        try:
            return Path(str(v).strip()).with_suffix("").as_posix()
        except ValueError:  # a name such as ".." has no stem
            return None

    frame = pd.DataFrame({
        "_id": raw[id_col] if id_col else names.map(stem),
        "_lat": raw[lat_col], "_lon": raw[lon_col], "_where": raw["_where"],
        "image_path": names.map(lambda v: None if _is_null(v) else str(image_dir / v)),
    })
    frame.attrs["where"] = raw.attrs["where"]
    if country_col and country_col in raw.columns:
        frame["_country"] = raw[country_col]
    if city_col and city_col in raw.columns:
        frame["city"] = raw[city_col]
    used = {image_col, lat_col, lon_col, country_col, city_col, id_col, "_where"}
    for c in raw.columns:
        if c not in used and c not in frame.columns:
            frame[c] = raw[c].to_numpy()
    return _finish_manifest(frame, report, source=source, check_images=check_images, root=image_dir), report


# --------------------------------------------------------------------------------------------
# Im2GPS3k and YFCC4k
# --------------------------------------------------------------------------------------------


def _load_flickr_benchmark(root: str | os.PathLike, csv_name: str, image_dir: str, *, source: str,
                           id_col: str, lat_col: str, lon_col: str, check_images: bool
                           ) -> tuple[pd.DataFrame, LoadReport]:
    root = Path(root)
    csv = root / csv_name
    report = LoadReport(f"{source} ({csv})")
    raw = _read_csv(csv, report, str_columns=(id_col, "AUTHOR"))
    _require_columns(csv, list(raw.columns), {"image id": id_col, "latitude": lat_col, "longitude": lon_col})
    _check_lat_lon_labels(csv, raw[lat_col], raw[lon_col], lat_col, lon_col)
    images = root / image_dir

    def file_name(v: Any) -> str | None:
        if _is_null(v) or not str(v).strip():
            return None
        v = str(v).strip()
        return v if Path(v).suffix else v + ".jpg"

    names = raw[id_col].map(file_name)
    frame = pd.DataFrame({
        "_id": names.map(lambda v: None if v is None else Path(v).stem),
        "_lat": raw[lat_col], "_lon": raw[lon_col], "_where": raw["_where"],
        "image_path": names.map(lambda v: None if v is None else str(images / v)),
    })
    frame.attrs["where"] = raw.attrs["where"]
    for c in raw.columns:
        if c not in (lat_col, lon_col, "_where") and c not in frame.columns:
            frame[c] = raw[c].to_numpy()
    return _finish_manifest(frame, report, source=source, check_images=check_images, root=images), report


def load_im2gps3k(root: str | os.PathLike, *, csv_name: str = "im2gps3k_places365.csv",
                  image_dir: str = "images", id_col: str = "IMG_ID", lat_col: str = "LAT",
                  lon_col: str = "LON", check_images: bool = False) -> tuple[pd.DataFrame, LoadReport]:
    """Load Im2GPS3k (2,997 Flickr photos) as a manifest; the country comes from the coordinates.

    Args:
        root: folder with the metadata CSV and the image folder.
        csv_name: ``im2gps3k_places365.csv`` (TIBHannover/GeoEstimation ``meta/``).
        image_dir: image folder under ``root`` (G3/Img2Loc: ``images``; the TransLocator
            tarball extracts to ``im2gps3k_rgb_images``).
        id_col: image file name column.
        lat_col: latitude column.
        lon_col: longitude column.
        check_images: verify every image with PIL.

    Returns:
        The manifest (``country_source = "coordinates"``; ``IMG_ID``, ``AUTHOR``, the Places365
        scene columns pass through) and the load report.

    Raises:
        ValueError: the latitude/longitude labels look swapped (see the module docstring).
    """
    return _load_flickr_benchmark(root, csv_name, image_dir, source="im2gps3k", id_col=id_col,
                                  lat_col=lat_col, lon_col=lon_col, check_images=check_images)


def load_yfcc4k(root: str | os.PathLike, *, csv_name: str = "yfcc4k_places365.csv",
                image_dir: str = "images", id_col: str = "IMG_ID", lat_col: str = "LAT",
                lon_col: str = "LON", check_images: bool = False) -> tuple[pd.DataFrame, LoadReport]:
    """Load YFCC4k (Flickr photos from YFCC100M) as a manifest; the country comes from the coordinates.

    Same layout as :func:`load_im2gps3k` (``IMG_ID``, ``LAT``, ``LON`` as read by G3 and
    Img2Loc); an ``IMG_ID`` without an extension names ``<IMG_ID>.jpg``.
    """
    return _load_flickr_benchmark(root, csv_name, image_dir, source="yfcc4k", id_col=id_col,
                                  lat_col=lat_col, lon_col=lon_col, check_images=check_images)

# --------------------------------------------------------------------------------------------
# One entry point for notebook 00
# --------------------------------------------------------------------------------------------

#: The sources notebook ``00_data`` can build a pool from (``source`` parameter).
POOL_SOURCES = ("demo_world", "osv5m", "streetview_folder", "im2gps3k", "yfcc4k")


def build_pool(profile: str, source: str = "demo_world", *, data_root: str | os.PathLike = "", split: str = "test",
               check_images: bool = False, seed: int = 0, n_images: int = 3000, n_countries: int = 40,
               cities_per_country: int = 6, image_size: int = 224, workers: int | None = None,
               limit: int | None = None) -> tuple[pd.DataFrame, LoadReport]:
    """Build the image pool of a profile from one source and write ``runs/<profile>/data/pool.parquet``.

    Args:
        profile: The run's profile (where the pool is written).
        source: One of :data:`POOL_SOURCES`. ``demo_world`` renders the embedded world into
            ``runs/<profile>/data/`` (resumable); the others read a real data set under
            ``data_root`` (relative paths are taken under :func:`geolib.paths.real_data_root`).
        data_root: Folder of a real data set (for ``streetview_folder``: its CSV file).
        split: OSV-5M split.
        check_images: Open every real image once to catch corrupt files.
        seed, n_images, n_countries, cities_per_country, image_size, workers: The demo world's
            settings (see :func:`geolib.world.build_world`).
        limit: Keep at most this many rows of a real data set (in file order; None = all).

    Returns:
        ``(pool, report)``: the validated manifest (paths resolved) and what was left out.
    """
    if source not in POOL_SOURCES:
        raise ValueError(f"unknown source {source!r}; choose one of {', '.join(POOL_SOURCES)}")
    out = manifest_path(profile)
    if source == "demo_world":
        from geolib import world

        frame = world.build_world(out.parent, n_images=n_images, n_countries=n_countries,
                                  cities_per_country=cities_per_country, seed=seed, image_size=image_size,
                                  workers=workers)
        report = LoadReport(source, n_read=len(frame), n_kept=len(frame))
        frame = frame.assign(image_path=[str(out.parent / p) for p in frame["image_path"]],
                             mask_path=[str(out.parent / p) for p in frame["mask_path"]])
    else:
        root = Path(data_root) if data_root else Path(source)
        if not root.is_absolute():
            root = paths.real_data_root() / root
        loaders = {"osv5m": lambda: load_osv5m(root, split, check_images=check_images, limit=limit),
                   "streetview_folder": lambda: load_streetview_folder(root, check_images=check_images),
                   "im2gps3k": lambda: load_im2gps3k(root, check_images=check_images),
                   "yfcc4k": lambda: load_yfcc4k(root, check_images=check_images)}
        frame, report = loaders[source]()
        if limit is not None:
            frame = frame.head(limit)
    write_manifest(out, frame)
    return read_manifest(out), report
