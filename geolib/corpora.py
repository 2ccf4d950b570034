"""Conversation corpora → tables: GeoReasoner's reasoning-tuning data and GRE30K (CoT, Judge, Seed).

Used by notebooks ``04_reasoning_tuning`` (GeoReasoner SFT, through :func:`geolib.stages.stage_inputs`)
and ``07_gre_reasoning_rl`` (GRE30K). Each loader returns ``(table, LoadReport)`` with the columns
:data:`CONVERSATION_COLUMNS` first, and reports bad records as the image loaders of
:mod:`geolib.sources` do (problem codes: :mod:`geolib.datasets`).

The real layouts (what each loader follows, and where it was found)
--------------------------------------------------------------------

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
"""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geolib.datasets import (
    MALFORMED_LINE,
    MALFORMED_RECORD,
    UNKNOWN_COUNTRY,
    UNPARSABLE_ANSWER,
    DataFileError,
    LoadReport,
    resolve_image_path,
)
from geolib.sources import _check_images, _coordinates, _drop_duplicates, _drop_outside, _normalize_countries

# --------------------------------------------------------------------------------------------
# Conversation data: GeoReasoner SFT, GRE30K
# --------------------------------------------------------------------------------------------

#: Columns every conversation table has (SFT / CoT data); loaders add their own after these.
CONVERSATION_COLUMNS = ("sample_id", "image_path", "question", "answer_text", "source")

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


def _load_gre_json(json_path, kind: str, image_root, require_images: bool, check_images: bool):
    """Read a GRE30K JSON file of ``kind`` ("cot" or "judge") into a table and its load report."""
    json_path = Path(json_path)
    report = LoadReport(f"gre30k_{kind} ({json_path})")
    records = _read_json_records(json_path, report)
    root = Path(image_root) if image_root is not None else json_path.parent
    return _load_gre(report, records, kind=kind, root=root, require_images=require_images,
                     check_images=check_images), report


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
    return _load_gre_json(json_path, "cot", image_root, require_images, check_images)


def load_gre30k_judge(json_path: str | os.PathLike, *, image_root: str | os.PathLike | None = None,
                      require_images: bool = True, check_images: bool = False) -> tuple[pd.DataFrame, LoadReport]:
    """Load GRE30K-Judge (reasoning chains judged True/False) as a conversations table.

    Returns:
        The CoT columns plus ``label`` (bool, from the answer ``"True"``/``"False"``),
        ``predicted_cot`` and ``predicted_answer``; and the load report.
    """
    return _load_gre_json(json_path, "judge", image_root, require_images, check_images)


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
