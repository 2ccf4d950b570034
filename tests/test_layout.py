"""The package's layout: one module per stage, and which modules may import which.

The rules read every ``import`` in geolib's source, those inside functions too (a lazy import is
still a dependency), so they hold whatever a test happens to exercise.
"""

import ast
from pathlib import Path

import pytest

import geolib

ROOT = Path(geolib.__file__).parent

#: The demo world's renderer: it draws street views, so only the pool builder and the synthetic
#: sign photos may use it. Everything else reads country facts and the clue vocabulary from
#: ``geolib.facts``, which works on real photos too.
RENDERER = "geolib.world"
RENDERER_USERS = {"geolib.sources", "geolib.sign_photos"}

#: The study's layout: which stages, profiles, folders and manifests the notebooks use. The
#: methods below it take data, models and folders as arguments, so they run outside the study.
STUDY_LAYOUT = {"geolib.stages", "geolib.study", "geolib.train", "geolib.gre", "geolib.datasets", "geolib.sources",
                "geolib.corpora", "geolib.downloads", "geolib.curation"}

#: Model, training and GRE code, and the scores and baselines: none imports the renderer or the layout.
METHOD = {"geolib.vlm", "geolib.conversations", "geolib.tuning", "geolib.checkpoints", "geolib.inference",
          "geolib.chains", "geolib.grpo", "geolib.rewards", "geolib.gre_scores", "geolib.evaluation",
          "geolib.baselines", "geolib.geoclip", "geolib.zero_shot", "geolib.features", "geolib.segmentation",
          "geolib.locatability", "geolib.locnet", "geolib.ocr", "geolib.sign_reader", "geolib.clue_oracle",
          "geolib.facts", "geolib.metrics", "geolib.answers", "geolib.coordinates", "geolib.geo", "geolib.borders",
          "geolib.gazetteer", "geolib.plots", "geolib.plots.common", "geolib.plots.data_figures", "geolib.plots.model_figures"}

#: Foundations every stage stands on: they import no method, model or layout code.
FOUNDATIONS = {"geolib.paths", "geolib.io", "geolib.params", "geolib.runtime", "geolib.metrics", "geolib.answers",
               "geolib.coordinates", "geolib.geo", "geolib.borders", "geolib.gazetteer", "geolib.facts"}
ABOVE_FOUNDATIONS = (METHOD | STUDY_LAYOUT | {RENDERER}) - FOUNDATIONS

#: The module size the layout keeps to (lines of a module file).
MAX_LINES = 800


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """The geolib modules that module ``name`` imports anywhere in its source."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from .x import y
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m != "geolib" and (m in MODULES or _is_renderer(m))}


def _is_renderer(module: str) -> bool:
    return module == RENDERER or module.startswith(RENDERER + ".")


def test_the_layout_names_every_module_it_rules():
    listed = METHOD | STUDY_LAYOUT | FOUNDATIONS | RENDERER_USERS
    assert listed <= set(MODULES), sorted(listed - set(MODULES))


@pytest.mark.parametrize("name", sorted(m for m in MODULES if not _is_renderer(m) and m not in RENDERER_USERS))
def test_only_the_pool_builder_and_the_sign_photos_import_the_renderer(name):
    assert not [m for m in _imports(name) if _is_renderer(m)], f"{name} imports the demo world's renderer"


@pytest.mark.parametrize("name", sorted(METHOD))
def test_method_code_imports_no_study_layout(name):
    bad = sorted(_imports(name) & STUDY_LAYOUT)
    assert not bad, f"{name} imports the study layout {bad}: pass data, models and folders in as arguments"


@pytest.mark.parametrize("name", sorted(FOUNDATIONS))
def test_foundations_import_nothing_above_them(name):
    bad = sorted(_imports(name) & ABOVE_FOUNDATIONS)
    assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_says_what_it_does_and_stays_small(name):
    path = MODULES[name]
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert doc, f"{name} has no module docstring"
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by what it does (CONTRIBUTING.md)"


def test_the_rules_see_lazy_and_relative_imports(tmp_path, monkeypatch):
    monkeypatch.setitem(MODULES, "geolib.tuning", tmp_path / "tuning.py")
    (tmp_path / "tuning.py").write_text('"""x"""\ndef f():\n    from geolib import stages, world\n')
    assert _imports("geolib.tuning") == {"geolib.stages", "geolib.world"}
    monkeypatch.setitem(MODULES, "geolib.world.draw", tmp_path / "draw.py")
    (tmp_path / "draw.py").write_text("from .render import _Canvas\nfrom . import scene\n")
    assert {"geolib.world.render", "geolib.world.scene"} <= _imports("geolib.world.draw")
