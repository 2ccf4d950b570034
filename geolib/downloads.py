"""Downloads of the real data sets (paper profile): a hub snapshot at a pinned revision, then the zips unpacked.

Used by no notebook: run by hand before notebook ``00_data`` on real data (README, "Moving to a GPU
and real data"); the loaders of :mod:`geolib.sources` and :mod:`geolib.corpora` then read the files.

:func:`download_dataset` wraps ``huggingface_hub.snapshot_download`` with a pinned revision; it
never runs on import, refuses while ``HF_HUB_OFFLINE=1``, and skips a download that is already
complete. :func:`extract_zips` unpacks OSV-5M's image archives in place, once.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from geolib import io

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
# Unpacking
# --------------------------------------------------------------------------------------------


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
