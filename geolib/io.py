"""Atomic, resumable writes of run artifacts (used by every notebook through geolib modules).

A file is written to a temporary name in its target's folder and renamed into place, so an
interrupted run leaves either the old file or the new one, never half of one. Files get the
permissions the user's umask gives a new file (``mkstemp`` alone would make them 0600, which a
group sharing ``runs/`` cannot read). A full disk or a read-only folder raises
:class:`WriteError`, one line naming the file.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_UMASK_LOCK = threading.Lock()


def file_mode() -> int:
    """The mode a new file gets under the current umask (``0o666 & ~umask``)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


class WriteError(OSError):
    """An artifact could not be written (disk full, read-only folder, no permission); names the file."""


_HINTS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up", errno.EROFS: "the folder is on a read-only file system",
          errno.EACCES: "no permission to write there", errno.EPERM: "no permission to write there"}


def write_error(path: str | os.PathLike, exc: OSError) -> WriteError:
    """A :class:`WriteError` for ``path`` from the ``OSError`` that stopped the write."""
    if isinstance(exc, WriteError):
        return exc
    why = _HINTS.get(exc.errno, exc.strerror or str(exc))
    return WriteError(exc.errno, f"cannot write {path}: {why} ({exc.strerror or exc}); nothing was changed there")


def _mkstemp(target: Path, suffix: str = ".tmp") -> tuple[int, str]:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    except OSError as exc:
        raise write_error(target, exc) from None


@contextmanager
def _removed_on_failure(tmp: str, target: Path):
    """Remove the temporary file ``tmp`` when the block fails; an ``OSError`` becomes a :class:`WriteError`
    naming ``target`` (which the block never touched)."""
    try:
        yield
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(target, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + rename); creates parent folders.

    Args:
        path: The target file.
        data: The bytes.
        fsync: Flush to disk before the rename (about 10 ms a file here). Bulk writers of files
            they can verify on resume (the demo world's PNGs) pass False: an interrupted run still
            never leaves a half-written file under the final name.

    Returns:
        The target path.
    """
    path = Path(path)
    fd, tmp = _mkstemp(path)
    with _removed_on_failure(tmp, path):
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    return path


def atomic_path(path: str | os.PathLike):
    """Context manager yielding a temporary path beside ``path``; renamed onto it on success.

    For writers that want a file name (``DataFrame.to_parquet``, ``Image.save``,
    ``torch.save``). On an exception the temporary file is removed and the target is untouched.
    """

    @contextmanager
    def _cm():
        target = Path(path)
        fd, tmp = _mkstemp(target, ".tmp" + target.suffix)
        os.close(fd)
        with _removed_on_failure(tmp, target):
            yield Path(tmp)
            if Path(tmp).is_file():  # a writer may have replaced the file (mode from the umask then)
                os.chmod(tmp, file_mode())
            os.replace(tmp, target)

    return _cm()


def _json_default(obj: Any):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented UTF-8 JSON, atomically (numpy scalars/arrays are converted)."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default, allow_nan=True)
    return atomic_write_bytes(path, (text + "\n").encode("utf-8"))


class ReadError(ValueError):
    """A file could not be read or parsed; the message names it."""


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file written by :func:`write_json`.

    Raises:
        FileNotFoundError: no such file.
        ReadError: the file is not UTF-8 JSON (truncated, binary, empty), naming it.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ReadError(f"{path} is not valid JSON ({exc}); it may be truncated") from None


def write_parquet(path: str | os.PathLike, frame) -> Path:
    """Write a pandas DataFrame to Parquet atomically (index dropped)."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)


def fingerprint(*arrays, settings: dict | None = None) -> str:
    """SHA-256 of arrays (as float32, with their shapes) and a JSON-able settings dict.

    Used to decide whether a checkpoint is *current*: made from the same data and configuration.
    """
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a, dtype=np.float32)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    h.update(json.dumps(settings or {}, sort_keys=True, default=_json_default).encode())
    return h.hexdigest()


def reserve_space(path: str | os.PathLike, target: str | os.PathLike | None = None) -> None:
    """Allocate the blocks of a (sparse) file now, so that a full disk is a :class:`WriteError` here.

    A memory-mapped file written on a full disk otherwise fails with SIGBUS, killing the kernel.
    File systems without ``fallocate`` are left as they are.
    """
    if not hasattr(os, "posix_fallocate"):
        return
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, max(size, 1))
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return
        raise write_error(target or path, exc) from None
    finally:
        os.close(fd)


def npy_problem(path: str | os.PathLike) -> str | None:
    """Why a ``.npy`` file cannot be trusted (bad header, or size unlike its header's shape), or None.

    ``np.load(..., mmap_mode="r+")`` would pad a truncated file with zeros; check first.
    """
    import numpy as np

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _fortran, dtype = reader(fh)
            offset = fh.tell()
        size = path.stat().st_size
    except (OSError, ValueError, EOFError) as exc:
        return f"{path}: unreadable .npy header ({exc})"
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size != expected:
        return f"{path}: {size} bytes, but its header ({dtype}, shape {tuple(shape)}) needs {expected}: truncated or overwritten"
    return None


def safetensors_problem(path: str | os.PathLike) -> str | None:
    """Why a ``.safetensors`` file cannot be trusted (header unreadable, size unlike its header), or None."""
    import struct

    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{path}: {size} bytes, too short for a safetensors header"
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                return f"{path}: header length {n} exceeds the file ({size} bytes): truncated"
            header = json.loads(fh.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return f"{path}: unreadable safetensors header ({exc})"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v]
    if 8 + n + max(ends, default=0) != size:
        return f"{path}: {size} bytes, but its header needs {8 + n + max(ends, default=0)}: truncated or overwritten"
    return None


def torch_file_problem(path: str | os.PathLike) -> str | None:
    """Why a ``torch.save`` file (zip format) cannot be trusted (truncated: no central directory), or None."""
    import zipfile

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        return f"{path}: not a complete torch file ({exc})"
    return None if names else f"{path}: an empty archive"


def file_problem(path: str | os.PathLike) -> str | None:
    """:func:`npy_problem`, :func:`safetensors_problem`, :func:`torch_file_problem` or a JSON check by suffix."""
    path = Path(path)
    if path.suffix == ".npy":
        return npy_problem(path)
    if path.suffix == ".safetensors":
        return safetensors_problem(path)
    if path.suffix in (".pt", ".pth", ".bin"):
        return torch_file_problem(path)
    if path.suffix == ".json":
        try:
            read_json(path)
        except (OSError, ValueError) as exc:
            return str(exc) if str(path) in str(exc) else f"{path}: {exc}"
    return None


def load_torch(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; a missing, truncated or foreign file raises :class:`ReadError` naming it."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint {path}")
    problem = torch_file_problem(path)
    if problem:
        raise ReadError(problem)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several types for a damaged file
        raise ReadError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from None


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` atomically (a checkpoint is either the old one or the new one, never half)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def merge_summary(profile: str, values: dict[str, Any]) -> Path:
    """Merge headline numbers into ``runs/<profile>/results/summary.json`` (one flat JSON).

    Each notebook merges its own keys (``"06.full.country_f1"``, ``"world.n_images"``, …);
    keys it does not pass are kept. ``docs/results.md`` lists the keys. Values must be plain
    numbers, strings, booleans or ``None`` (numpy scalars are converted; NaN becomes ``None``).

    Args:
        profile: The profile whose summary to update.
        values: Flat mapping of key → value.

    Returns:
        The summary's path.
    """
    import math

    from geolib import paths

    clean: dict[str, Any] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"summary keys are non-empty strings, got {key!r}")
        value = _json_default(value) if not isinstance(value, (str, int, float, bool, type(None))) else value
        if isinstance(value, (list, dict)):
            raise TypeError(f"summary value for {key!r} must be a scalar, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        clean[key] = value
    path = paths.results_dir(profile) / "summary.json"
    try:
        current = read_json(path) if path.exists() else {}
    except ReadError:
        current = None
    if not isinstance(current, dict):  # damaged: kept aside, a new summary starts (each notebook adds its keys again)
        import warnings

        aside = path.with_name("summary.damaged.json")
        os.replace(path, aside)
        warnings.warn(f"{path} was not a JSON object (truncated?); kept as {aside.name}, a new summary starts",
                      stacklevel=2)
        current = {}
    current.update(clean)
    write_json(path, dict(sorted(current.items())))
    return path
