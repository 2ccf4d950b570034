"""Project hygiene: notebooks clean and paired, params valid, dependencies in agreement, CI wiring."""

import json
import re
import sys
import tomllib
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from geolib import params as P
from geolib import paths

NOTEBOOKS = P.study_notebooks()
PARAM_FILES = sorted(paths.PARAMS.glob("*.yaml"))


def _ids(items):
    return [p.name for p in items]


def test_the_study_has_notebooks_and_profiles():
    assert NOTEBOOKS, "no numbered notebooks in notebooks/"
    assert {p.stem for p in PARAM_FILES} >= {"ci", "demo", "paper"}


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stored_without_outputs(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{nb_path.name}: cells {dirty} have outputs; run `make sync` (nbstripout)"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_and_its_py_percent_twin_are_in_sync(nb_path):
    twin = nb_path.with_suffix(".py")
    assert twin.exists(), f"{nb_path.name} has no py:percent twin {twin.name}"
    from_py = jupytext.read(twin)
    stored = nbformat.read(nb_path, as_version=4)

    def cells(nb):
        return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]

    assert cells(from_py) == cells(stored), f"{nb_path.name} and {twin.name} differ: edit the .py and run `make sync`"
    assert stored.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_shape(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    ps = P.notebook_parameters(nb_path)
    assert ps and ps[0].name == "profile" and ps[0].annotation == "str", "the first parameter is `profile: str`"
    assert all(p.help for p in ps), f"every parameter has a comment: {[p.name for p in ps if not p.help]}"
    assert not [p.name for p in ps if "=" in p.help], "no '=' in parameter comments: papermill cannot parse such lines"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []) or "parameters" in code[1].metadata.get("tags", []), "parameters cell near the top"
    assert "assert " in code[-1].source, "the notebook ends with an assert cell on its own results"
    defs = sum(len(re.findall(r"^\s*(def|class) ", c.source, re.M)) for c in code)
    assert defs <= 3, f"{nb_path.name}: {defs} def/class in the notebook; plumbing belongs in geolib"


@pytest.mark.parametrize("param_file", PARAM_FILES, ids=_ids(PARAM_FILES))
def test_every_params_file_is_valid_for_every_notebook(param_file):
    values = P.load_params(param_file.stem, param_file, NOTEBOOKS)
    for nb in NOTEBOOKS:
        P.parameters_for(nb, values)  # every notebook accepts what it is given


def test_parameter_types_agree_across_notebooks():
    P.all_parameters(NOTEBOOKS)


def _lock_pins() -> dict[str, str]:
    from scripts.lock import locked_pins

    return locked_pins((paths.REPO_ROOT / "requirements.lock").read_text())


def test_lock_pins_every_dependency_of_pyproject_within_its_range():
    from packaging.requirements import Requirement

    from scripts.lock import normalise

    project = tomllib.loads((paths.REPO_ROOT / "pyproject.toml").read_text())["project"]
    pins = _lock_pins()
    problems = []
    for spec in project["dependencies"] + project["optional-dependencies"]["test"]:
        req = Requirement(spec)
        version = pins.get(normalise(req.name))
        if version is None:
            problems.append(f"{req.name}: not in requirements.lock")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}: locked {version} is outside {req.specifier}")
    assert not problems, "pyproject.toml and requirements.lock disagree (run `make lock`): " + "; ".join(problems)


def test_lock_has_a_hash_for_every_distribution_and_cpu_torch():
    text = (paths.REPO_ROOT / "requirements.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    unhashed = [b.split()[0] for b in blocks if "==" in b.split("\n")[0] and "--hash=sha256:" not in b]
    assert not unhashed, f"locked without a hash: {unhashed}"
    assert _lock_pins()["torch"] == "2.13.0+cpu"


def test_environment_yml_pins_exactly_the_lock():
    from scripts.lock import normalise

    env = yaml.safe_load((paths.REPO_ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = dict(x.split("==", 1) for x in pip if "==" in x)
    listed = {normalise(k): v for k, v in listed.items()}
    pins = _lock_pins()
    assert listed == pins, (
        "environment.yml differs from requirements.lock (run `make lock`): "
        f"{sorted(set(listed.items()) ^ set(pins.items()))[:10]}")
    assert "-e ." in pip


@pytest.mark.skipif(not sys.prefix.startswith(str(paths.REPO_ROOT / ".venv")), reason="runs inside the project's .venv only")
def test_installed_distributions_equal_the_lock():
    """`make setup` installs exactly the lock: nothing more, nothing less, no other version."""
    from importlib import metadata

    from scripts.lock import normalise

    installed = {normalise(d.metadata["Name"]): d.version for d in metadata.distributions()}
    installed = {k: v for k, v in installed.items() if k not in {"geolib", "pip"}}
    pins = _lock_pins()
    extra = sorted(f"{k}=={v}" for k, v in installed.items() if k not in pins)
    missing = sorted(f"{k}=={v}" for k, v in pins.items() if k not in installed)
    moved = sorted(f"{k}: {installed[k]} (lock {v})" for k, v in pins.items() if k in installed and installed[k] != v)
    assert not (extra or missing or moved), f"the .venv is not the lock (rerun `make setup`): extra {extra}, missing {missing}, other version {moved}"


def test_ci_runs_exactly_the_readme_test_command():
    ci = (paths.REPO_ROOT / ".ci" / "run").read_text()
    commands = [line for line in ci.splitlines() if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert commands == ["make test"]
    readme = (paths.REPO_ROOT / "README.md").read_text()
    assert "make test" in readme and "make study" in readme


def test_offline_by_default():
    import os

    import geolib  # noqa: F401

    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_readme_numbers_are_the_committed_demo_summary():
    from scripts import readme_numbers

    summary = json.loads(readme_numbers.SUMMARY.read_text()) if readme_numbers.SUMMARY.exists() else {}
    readme = readme_numbers.README.read_text()
    assert readme_numbers.render(readme, summary) == readme, (
        "README.md's generated tables differ from results/demo/summary.json: run `python scripts/readme_numbers.py`")
    section = readme.split("## What the demo run shows", 1)[1].split("\n## ", 1)[0]
    prose = re.sub(r"<!-- summary:(\w+) -->.*?<!-- /summary:\1 -->", "", section, flags=re.S)
    typed = re.findall(r"(?<![\w.`-])\d+(?:\.\d+)?\s?%|(?<![\w.`-])\d+\.\d+(?![\w.])", prose)
    assert not typed, f"numbers typed by hand in the README's results section (put them in the summary tables): {typed}"


def test_the_committed_summary_names_a_commit_of_this_history():
    import subprocess

    from scripts import readme_numbers

    if not readme_numbers.SUMMARY.exists():
        pytest.skip("no committed demo summary yet")
    commit = json.loads(readme_numbers.SUMMARY.read_text()).get("study.git_commit")
    assert commit, "results/demo/summary.json does not say which commit produced it (a full `make study` run records it)"
    probe = subprocess.run(["git", "merge-base", "--is-ancestor", commit, "HEAD"], cwd=paths.REPO_ROOT, capture_output=True, timeout=60)
    if probe.returncode not in (0, 1):
        pytest.skip("not a git checkout with history")
    assert probe.returncode == 0, f"results/demo/summary.json was produced by {commit[:12]}, which is not in this branch's history"


def test_stage2_recipes_first_row_is_notebook_05s_own_settings():
    """scripts/stage2_recipes.py compares stage-2 recipes against the demo's: its first recipe and
    its shared settings must stay notebook 05's (and 04's LoRA), or the table's baseline row lies."""
    from geolib import params
    from scripts import stage2_recipes

    nb05 = params.notebook_values("05_location_tuning", "demo")
    start, (r, alpha), lr, epochs = next(iter(stage2_recipes.RECIPES.values()))
    assert start == ("reasoning",) and nb05["lora"]["projector"] is True
    assert (r, alpha, stage2_recipes.LORA_DROPOUT) == (nb05["lora"]["r"], nb05["lora"]["lora_alpha"], nb05["lora"]["lora_dropout"])
    assert (lr, epochs) == (nb05["location_tuning"]["learning_rate"], nb05["location_tuning"]["num_train_epochs"])
    shared = {k: v for k, v in nb05["location_tuning"].items() if k not in ("learning_rate", "num_train_epochs")}
    assert stage2_recipes.SETTINGS == shared
    folders = {stage2_recipes._folder(Path("out"), n) for n in stage2_recipes.RECIPES}
    assert len(folders) == len(stage2_recipes.RECIPES), "two recipes would share a stage folder"
    with pytest.raises(SystemExit):
        stage2_recipes.main(["--only", "no such recipe"])


def test_stage2_recipes_refuses_the_paper_profile():
    from scripts import stage2_recipes

    assert stage2_recipes.model_spec("ci").model_id == "demo"
    with pytest.raises(ValueError, match="demo's small model"):
        stage2_recipes.model_spec("paper")
