"""Reproducibility: the demo world's bytes depend only on the seed, the lock and the fonts."""

import json
from importlib import metadata

import pytest

from geolib import paths
from scripts import world_hashes

RECORD = json.loads(world_hashes.HASHES.read_text())


def test_babel_is_the_release_the_world_facts_were_written_from():
    installed = metadata.version("babel")
    assert installed == RECORD["babel"], (
        f"babel {installed} is installed, but the demo world's CLDR facts (geolib/data/country_facts.yaml: "
        f"official languages, population shares) and its sign words were written from babel {RECORD['babel']}. "
        "A new CLDR release changes them and every demo number with them. Install the lock (`make setup`); to move "
        "to the new release on purpose, update pyproject.toml and `make lock`, then let tests/test_world.py name "
        "the facts that changed, update the facts file and `python scripts/world_hashes.py`.")


@pytest.mark.slow
def test_same_seed_and_lock_render_the_same_pool_bytes():
    fonts = world_hashes.font_versions()
    record = world_hashes.current_record()
    if record["files"] == RECORD["files"]:
        return
    changed = sorted(k for k in RECORD["files"] if RECORD["files"][k] != record["files"].get(k))
    causes = [f"{name}: {RECORD['fonts'].get(name)} recorded, {fonts.get(name)} here"
              for name in world_hashes.FONT_PACKAGES if fonts.get(name) != RECORD["fonts"].get(name)]
    causes += [f"{pkg}: {RECORD[pkg]} recorded, {record[pkg]} here" for pkg in ("babel", "pillow") if record[pkg] != RECORD[pkg]]
    pytest.fail(
        f"{len(changed)} of {len(RECORD['files'])} rendered files differ from tests/data/world_pool_hashes.json "
        f"(e.g. {changed[:3]}). "
        + (f"The fonts or packages differ from the recorded ones: {'; '.join(causes)}. " if causes else
           "Fonts and packages are the recorded ones, so the renderer or the world's facts changed: if that was "
           "intended, run `python scripts/world_hashes.py` and commit the new hashes. ")
    )


def test_nothing_in_the_repository_points_outside_it():
    """No file reads or cites a path that leaves the repository (the repository stands alone)."""
    import re
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=paths.REPO_ROOT, capture_output=True, text=True, timeout=60).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    leaving = re.compile(r"(?<![\w.])(?:\.\./)+[A-Za-z_][\w./-]*|DESIGN\.md|/work/shared|parent\s*/\s*[\"']shared[\"']")
    hits = []
    for rel in tracked:
        path = paths.REPO_ROOT / rel
        if path.suffix not in {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".sh", ".ipynb", ""} or not path.is_file():
            continue
        if rel == "tests/test_reproducible.py":
            continue
        for no, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if "outside-repo:" in line:  # a test input that escapes on purpose, marked as such
                continue
            for m in leaving.finditer(line):
                ref = m.group(0)
                # a relative path may be meant from the file's folder or from the repository root
                inside = ref.startswith("..") and all(
                    (base / ref).resolve().is_relative_to(paths.REPO_ROOT) for base in (path.parent, paths.REPO_ROOT))
                if not inside:
                    hits.append(f"{rel}:{no}: {line.strip()[:100]}")
    assert not hits, "paths or citations that leave the repository:\n" + "\n".join(hits)
