"""Parameters: read each notebook's ``parameters`` cell, validate ``params/<profile>.yaml`` against them.

Used by the study runner (:mod:`geolib.study`) before anything runs, and by the tests that
check every file in ``params/`` against every notebook.

The parameters cell of a notebook is the single source of truth: each line is
``name: type = default  # what it means``. The schema of a params file is the union of the
parameters of all notebooks, built as a pydantic model that forbids unknown keys and checks
types strictly (papermill itself only warns about an unknown parameter and runs the default,
which would silently run the wrong experiment). A name used by several notebooks must have the
same type in each, and means the same thing.
"""

from __future__ import annotations

import ast
import difflib
import typing
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Literal

import yaml

from geolib import paths

PARAMETERS_TAG = "parameters"


class ParamsError(ValueError):
    """A params file or a parameters cell is invalid; the message names the key and the file."""


@dataclass(frozen=True)
class Parameter:
    """One parameter declared in a notebook's ``parameters`` cell."""

    name: str
    annotation: str  # the type as written, e.g. "int", "list[str]", "str | None"
    default: Any
    help: str
    notebook: str  # the notebook's stem, e.g. "00_data"


_TYPE_NAMESPACE = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list": list,
    "dict": dict,
    "tuple": tuple,
    "None": None,
    "Literal": Literal,
    "Optional": typing.Optional,
}


def resolve_annotation(annotation: str) -> Any:
    """Turn an annotation string from a parameters cell into a type pydantic understands."""
    try:
        return eval(annotation, {"__builtins__": {}}, dict(_TYPE_NAMESPACE))  # noqa: S307 - names limited above
    except Exception as exc:  # pragma: no cover - message path
        raise ParamsError(f"unsupported parameter type {annotation!r}: use int, float, str, bool, list[...], dict[...], X | None or Literal[...]") from exc


def parameters_cell_source(notebook: dict) -> str:
    """The source of the one cell tagged ``parameters`` (error if none or several)."""
    cells = [c for c in notebook.get("cells", []) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParamsError(f"expected exactly one cell tagged {PARAMETERS_TAG!r}, found {len(cells)}")
    src = cells[0]["source"]
    return "".join(src) if isinstance(src, list) else src


def parse_parameters_cell(source: str, notebook: str = "") -> list[Parameter]:
    """Parse ``name: type = default  # help`` lines (annotated assignments with literal defaults).

    Raises:
        ParamsError: a statement that is not an annotated assignment of a literal, which would
            make the parameters cell compute something (STYLE.md: nothing derived in it).
    """
    tree = ast.parse(source)
    lines = source.splitlines()
    out: list[Parameter] = []
    for node in tree.body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name) or node.value is None:
            raise ParamsError(
                f"{notebook}: parameters cell line {node.lineno}: only `name: type = literal  # help` lines are allowed"
            )
        try:
            default = ast.literal_eval(node.value)
        except ValueError as exc:
            raise ParamsError(f"{notebook}: parameter {node.target.id!r} must have a literal default") from exc
        line = lines[node.end_lineno - 1]
        rest = line[node.value.end_col_offset :] if node.value.end_lineno == node.end_lineno else ""
        help_text = rest.split("#", 1)[1].strip() if "#" in rest else ""
        out.append(Parameter(node.target.id, ast.unparse(node.annotation), default, help_text, notebook))
    return out


def notebook_parameters(path: str | Path) -> list[Parameter]:
    """The parameters declared by one notebook file (``.ipynb``)."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    try:
        return parse_parameters_cell(parameters_cell_source(nb), path.stem)
    except ParamsError as exc:
        raise ParamsError(f"{path.name}: {exc}") from None


def study_notebooks(folder: str | Path | None = None) -> list[Path]:
    """The numbered notebooks ``NN_slug.ipynb`` in order (``_``-prefixed scratch notebooks excluded)."""
    folder = Path(folder) if folder else paths.NOTEBOOKS
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def all_parameters(notebooks: list[Path] | None = None) -> dict[str, list[Parameter]]:
    """Every parameter name → its declarations across notebooks (types must agree)."""
    by_name: dict[str, list[Parameter]] = {}
    for nb in notebooks if notebooks is not None else study_notebooks():
        for p in notebook_parameters(nb):
            by_name.setdefault(p.name, []).append(p)
    for name, decls in by_name.items():
        types = {d.annotation for d in decls}
        if len(types) > 1:
            where = ", ".join(f"{d.notebook}: {d.annotation}" for d in decls)
            raise ParamsError(f"parameter {name!r} has different types in different notebooks ({where})")
    return by_name


def schema(notebooks: list[Path] | None = None):
    """A pydantic model of every allowed key: strict types, unknown keys forbidden."""
    from pydantic import ConfigDict, create_model

    fields = {name: (resolve_annotation(decls[0].annotation), decls[0].default) for name, decls in all_parameters(notebooks).items()}
    return create_model("StudyParams", __config__=ConfigDict(extra="forbid", strict=True), **fields)


def unknown_keys_error(what: str, unknown: Sequence[str], allowed: Sequence[str], extra: str = "") -> ValueError:
    """A ValueError naming settings that are not allowed, each with the closest allowed key as a hint."""
    hints = {k: difflib.get_close_matches(k, sorted(allowed), n=1) for k in unknown}
    said = ", ".join(f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for k, h in hints.items())
    return ValueError(f"unknown {what} setting {said}" + (f"; {extra}" if extra else ""))


def _format_validation_error(exc, source: str, allowed: list[str]) -> str:
    problems = []
    for err in exc.errors():
        loc = list(err["loc"]) or ["<file>"]
        key = str(loc[0])
        item = f" (item {'.'.join(str(x) for x in loc[1:])})" if len(loc) > 1 else ""
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(key, allowed, n=3)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            problems.append(f"unknown key {key!r}{hint}")
        else:
            problems.append(f"key {key!r}{item}: {err['msg']} (got {err.get('input')!r})")
    return f"{source}: " + "; ".join(problems) + f".\nAllowed keys: {', '.join(sorted(allowed))}"


def validate_params(values: dict[str, Any], source: str = "params", notebooks: list[Path] | None = None) -> dict[str, Any]:
    """Validate a mapping of overrides; returns only the keys given (types checked).

    Raises:
        ParamsError: naming each unknown or mistyped key, close matches, and the allowed keys.
    """
    from pydantic import ValidationError

    if not isinstance(values, dict):
        raise ParamsError(f"{source}: expected a mapping of `key: value` lines, got {type(values).__name__}")
    model = schema(notebooks)
    allowed = list(model.model_fields)
    try:
        validated = model.model_validate(values)
    except ValidationError as exc:
        raise ParamsError(_format_validation_error(exc, source, allowed)) from None
    out = {k: getattr(validated, k) for k in values}
    problems = check_settings(out)
    if problems:
        raise ParamsError(f"{source}: " + "; ".join(problems))
    return out


_HEX40 = "0123456789abcdef"


def is_commit(value: Any) -> bool:
    """True for a 40-hex commit hash (a branch or tag name can move; a commit cannot)."""
    return isinstance(value, str) and len(value) == 40 and all(c in _HEX40 for c in value)


def _number(x: Any) -> bool:
    import math

    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _rule(test, what: str):
    return test, what


#: Checks of values by name, at the top level or inside a dict parameter (``reasoning_tuning:
#: {num_train_epochs: 0}`` would "train" for 0 steps). Each: (test, what a valid value is).
SETTING_RULES: dict[str, tuple[Any, str]] = {
    "num_train_epochs": _rule(lambda x: _number(x) and x >= 1, "a number >= 1"),
    "epochs": _rule(lambda x: _int(x) and x >= 1, "an integer >= 1"),
    "max_steps": _rule(lambda x: _int(x) and (x >= 1 or x == -1), "an integer >= 1 (or -1: use the epochs)"),
    "learning_rate": _rule(lambda x: _number(x) and x > 0, "a number > 0"),
    "lr": _rule(lambda x: _number(x) and x > 0, "a number > 0"),
    "lora_dropout": _rule(lambda x: _number(x) and 0 <= x < 1, "a number in [0, 1)"),
    "warmup_ratio": _rule(lambda x: _number(x) and 0 <= x <= 1, "a number in [0, 1]"),
    "weight_decay": _rule(lambda x: _number(x) and x >= 0, "a number >= 0"),
    "beta": _rule(lambda x: _number(x) and x >= 0, "a number >= 0"),
    "lora_alpha": _rule(lambda x: _number(x) and x > 0, "a number > 0"),
    "revision": _rule(lambda x: x in (None, "") or is_commit(x), "a 40-hex commit hash (or empty)"),
    "model_id": _rule(lambda x: isinstance(x, str) and x.strip() != "", "a non-empty model id"),
    "dtype": _rule(lambda x: x in ("float32", "bfloat16", "float16"), "float32, bfloat16 or float16"),
    "gradient_checkpointing": _rule(lambda x: isinstance(x, bool), "true or false"),
    "projector": _rule(lambda x: isinstance(x, bool), "true or false"),
    "base_guesses": _rule(lambda x: _int(x) and x >= 0, "an integer >= 0"),
    "n_boot": _rule(lambda x: _int(x) and x >= 1, "an integer >= 1"),
    "n_images": _rule(lambda x: _int(x) and x >= 1, "an integer >= 1"),
    "n_countries": _rule(lambda x: _int(x) and x >= 1, "an integer >= 1"),
    "cities_per_country": _rule(lambda x: _int(x) and x >= 1, "an integer >= 1"),
    "image_size": _rule(lambda x: _int(x) and x >= 16, "an integer >= 16"),
    "seeds": _rule(lambda x: isinstance(x, list) and len(x) >= 1 and all(_int(i) and i >= 0 for i in x)
                   and len(set(x)) == len(x), "a non-empty list of distinct integers >= 0"),
    "image_grid": _rule(lambda x: _int(x) and 1 <= x <= 7, "an integer from 1 to 7 (the demo tower's token grid side)"),
}
#: Entries that must be positive integers wherever they appear.
for _name in ("per_device_train_batch_size", "effective_batch_size", "gradient_accumulation_steps", "logging_steps",
              "save_steps", "num_generations", "max_completion_length", "max_length", "max_new_tokens", "lora_r", "r",
              "hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size", "max_pixels",
              "feature_batch_size", "tokenizer_vocab_size", "chain_max_new_tokens", "reasons_max_new_tokens",
              "theta_window", "geoclip_gallery_size", "locatability_bins", "seed_workers", "inference_workers", "arm_workers"):
    SETTING_RULES[_name] = _rule(lambda x: _int(x) and x >= 1, "an integer >= 1")
#: Top-level keys ending in ``_revision`` are hub commits: empty (not pinned) or 40 hex digits.
REVISION_SUFFIX = "_revision"


def check_settings(values: dict[str, Any], where: str = "") -> list[str]:
    """Problems with values by name (:data:`SETTING_RULES`), inside dict parameters too.

    Returns:
        One line per bad value, naming its key path (``reasoning_tuning.num_train_epochs``).
    """
    problems: list[str] = []
    for key, value in values.items():
        name = f"{where}{key}"
        if isinstance(value, dict):
            problems += check_settings(value, f"{name}.")
            continue
        rule = SETTING_RULES.get(str(key))
        if rule is None and not where and str(key).endswith(REVISION_SUFFIX):
            rule = SETTING_RULES["revision"]
        if rule is not None and value is not None and not rule[0](value):
            problems.append(f"key {name!r} must be {rule[1]}, got {value!r}")
    return problems


def params_file(profile: str) -> Path:
    """``params/<profile>.yaml``."""
    return paths.PARAMS / f"{profile}.yaml"


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base loader reports it
                continue
            if first != key_node.start_mark.line + 1:
                raise ParamsError(f"key {key!r} is given twice (lines {first} and {key_node.start_mark.line + 1}); "
                                  "keep one: YAML would silently use the last")
        return super().construct_mapping(node, deep)


def read_params_file(path: str | Path) -> Any:
    """The raw mapping of a params file (not validated); a clear error when missing, not YAML or a key repeats."""
    path = Path(path)
    if not path.exists():
        known = sorted(p.stem for p in paths.PARAMS.glob("*.yaml"))
        raise ParamsError(f"no params file {path} (profiles: {', '.join(known)})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{path}: cannot be read as UTF-8 text: {exc}") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader) or {}  # noqa: S506 - a SafeLoader subclass
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["key=value", "stage.lora_r=8"]`` → ``{"key": value, "stage": {"lora_r": 8}}`` (values read as YAML).

    A dotted key sets one entry of a ``dict`` parameter and keeps its other entries.

    Raises:
        ParamsError: an item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ParamsError(f"--set {item!r}: expected key=value (or dict_key.entry=value), e.g. --set curation_threshold=0.5")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ParamsError(f"--set {item!r}: the value is not valid YAML: {exc}") from None
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string; a person means the number
            try:
                value = float(value) if any(c in value.lower() for c in ".e") or value.lower() in {"nan", "inf"} else value
            except ValueError:
                pass
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ParamsError(f"--set {item!r}: {part!r} is set to a value and used as a dict")
        node[parts[-1]] = value
    return out


def layer(base: dict[str, Any], *overrides: dict[str, Any]) -> dict[str, Any]:
    """Layer override mappings on ``base``: later wins; a dict value merges into a dict value key by key."""
    out = dict(base)
    for over in overrides:
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = layer(out[key], value)
            else:
                out[key] = value
    return out


def load_params(profile: str, params_path: str | Path | None = None, notebooks: list[Path] | None = None) -> dict[str, Any]:
    """Read and validate the overrides of a profile (or an explicit file).

    ``profile`` is injected into every notebook by the runner; a file may name it only to agree.
    """
    path = Path(params_path) if params_path else params_file(profile)
    values = read_params_file(path)
    if isinstance(values, dict) and values.get("profile", profile) != profile:
        raise ParamsError(f"{path}: says profile {values['profile']!r} but is run as profile {profile!r}")
    values = dict(values) if isinstance(values, dict) else values
    if isinstance(values, dict):
        values["profile"] = profile
    return validate_params(values, str(path), notebooks)


def parameters_for(notebook: Path, values: dict[str, Any]) -> dict[str, Any]:
    """The subset of validated ``values`` that one notebook declares (what papermill injects).

    A dict value is layered key by key on the notebook's own default dict (:func:`layer`), so a
    params file can change one setting of a stage (``reasoning_tuning: {max_steps: 5}``) and keep
    the rest of the notebook's values.
    """
    defaults = {p.name: p.default for p in notebook_parameters(notebook)}
    return {k: layer(defaults[k], v) if isinstance(v, dict) and isinstance(defaults[k], dict) else v
            for k, v in values.items() if k in defaults}


def notebook_values(notebook: str | Path, profile: str | None = None, params_path: str | Path | None = None) -> dict[str, Any]:
    """A notebook's parameters as a run gives them: its defaults, then the profile's params file on top.

    For code that runs a notebook's step outside it (``python -m geolib.train``, benchmarks, tests).

    Args:
        notebook: the notebook's stem (``"04_reasoning_tuning"``) or path.
        profile: a profile whose params file is layered on the defaults; None: the defaults alone.
        params_path: a params file instead of ``params/<profile>.yaml``.
    """
    path = Path(notebook)
    if path.suffix != ".ipynb":
        path = paths.NOTEBOOKS / f"{path.name}.ipynb"
    values = {p.name: p.default for p in notebook_parameters(path)}
    if profile is not None:
        values.update(parameters_for(path, load_params(profile, params_path)))
    return values

