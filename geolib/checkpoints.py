"""A training stage's folder: kept versions, intact checkpoints, the finished-stage record.

Used by notebooks 04_reasoning_tuning, 05_location_tuning and 07_gre_reasoning_rl, through
:func:`geolib.tuning.train_stage` (and :func:`geolib.vlm.load_model`, which checks a saved
model's weights here). A stage folder holds one run (its ``checkpoint-N`` folders, the saved
``adapter/`` or ``model/``, ``stage.json``, ``fingerprint.json``, the log history); a run with
other settings moves it to ``versions/<fingerprint>/`` (:func:`switch_stage_version`), a damaged
checkpoint is set aside (:func:`last_intact_checkpoint`), and a finished stage counts only when
its saved weights are intact (:func:`finished_stage`).
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

from geolib import io as gio

#: What a stage folder holds of one training run (moved together between the folder and ``versions/``).
_STAGE_ITEMS = ("adapter", "model", "stage.json", "fingerprint.json", "log_history.json", "log_history.csv")
VERSIONS = "versions"


def _stage_items(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [c for c in folder.iterdir() if c.name in _STAGE_ITEMS or re.fullmatch(r"checkpoint-\d+", c.name)]


def switch_stage_version(output_dir: Path, old_fingerprint: str, new_fingerprint: str) -> bool:
    """Move the stage folder's run to ``versions/<old>/`` and bring back ``versions/<new>/`` if it is there.

    A changed setting trains beside the finished stage instead of discarding it; switching back
    finds it again. Returns True when a kept version was brought back.
    """
    old_home = output_dir / VERSIONS / old_fingerprint[:16]
    items = _stage_items(output_dir)
    if items:
        if old_home.exists():
            shutil.rmtree(old_home)
        old_home.mkdir(parents=True)
        for item in items:
            os.replace(item, old_home / item.name)
    new_home = output_dir / VERSIONS / new_fingerprint[:16]
    if not new_home.is_dir():
        return False
    for item in _stage_items(new_home):
        os.replace(item, output_dir / item.name)
    shutil.rmtree(new_home, ignore_errors=True)
    return True


def _checkpoint_problem(folder: Path) -> str | None:
    """Why a ``checkpoint-N`` folder cannot be resumed from (empty, a file truncated), or None."""
    files = [f for f in folder.rglob("*") if f.is_file()]
    if not files:
        return f"{folder} is empty (a save was interrupted)"
    if not (folder / "trainer_state.json").is_file():
        return f"{folder} has no trainer_state.json (a save was interrupted)"
    for f in files:
        problem = gio.file_problem(f)
        if problem:
            return problem
    return None


def last_intact_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest ``checkpoint-N`` whose files are complete; damaged newer ones are set aside with a warning.

    A damaged checkpoint is renamed ``damaged-checkpoint-N`` (the trainer neither resumes from it
    nor rotates it), so the next save of step N writes a fresh one.
    """
    output_dir = Path(output_dir)
    found = sorted((int(m.group(1)), c) for c in output_dir.glob("checkpoint-*")
                   if c.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", c.name)))
    for _, folder in reversed(found):
        problem = _checkpoint_problem(folder)
        if problem is None:
            return folder
        aside = folder.with_name("damaged-" + folder.name)
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(folder, aside)
        warnings.warn(f"checkpoint not used: {problem}; set aside as {aside.name}, resuming from the one before",
                      stacklevel=2)
    return None


def finished_stage(output_dir: Path) -> dict | None:
    """``stage.json`` when it is complete and its saved weights are intact, else None (with a warning)."""
    done = output_dir / "stage.json"
    if not done.exists():
        return None
    try:
        info = gio.read_json(done)
        saved = output_dir / (info["adapter_dir"] if info.get("kind") == "lora" else info["model_dir"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"{done} is damaged ({exc}); the stage trains again (from its last intact checkpoint)", stacklevel=3)
        done.unlink(missing_ok=True)
        return None
    problem = weights_problem(saved)
    if problem:
        warnings.warn(f"finished stage in {output_dir} not used: {problem}; it trains again", stacklevel=3)
        done.unlink(missing_ok=True)
        return None
    return info


def weights_problem(saved: Path) -> str | None:
    """Why a saved adapter or model folder cannot be loaded (no weights, a truncated file), or None."""
    weights = sorted(saved.rglob("*.safetensors")) if saved.is_dir() else []
    if not weights:
        return f"{saved} holds no weights"
    return next((p for p in map(gio.file_problem, weights) if p), None)


__all__ = [
    "VERSIONS", "switch_stage_version", "last_intact_checkpoint", "finished_stage", "weights_problem",
]
