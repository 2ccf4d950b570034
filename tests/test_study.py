"""The study runner on tiny notebooks: order, selection, environment record, failures."""

import json

import nbformat
import pytest

from geolib import study
from tests.test_params import write_notebook

#: a notebook kernel talks to its client over the loopback; every other address stays blocked
sockets_on = pytest.mark.enable_socket
loopback_only = pytest.mark.allow_hosts(["127.0.0.1", "::1"])


@pytest.fixture
def tiny_study(tmp_path, runs_tmp):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    write_notebook(nbs, "00_first.ipynb", 'profile: str = "demo"  # profile\nn: int = 1  # a number\n',
                   "from pathlib import Path\nimport os\nPath(os.environ['GEOLIB_RUNS'], profile).mkdir(parents=True, exist_ok=True)\n"
                   "Path(os.environ['GEOLIB_RUNS'], profile, 'n.txt').write_text(str(n))\n# save_figure(fig, profile, \"00_first_plot\")")
    write_notebook(nbs, "01_second.ipynb", 'profile: str = "demo"  # profile\nfail: bool = False  # raise on purpose\n',
                   "y = 2\nif fail:\n    raise ValueError('boom on purpose')")
    params = tmp_path / "ci.yaml"
    params.write_text("n: 7\n")
    return nbs, params


@sockets_on
@loopback_only
def test_run_executes_in_order_with_injected_parameters(tiny_study, runs_tmp):
    nbs, params = tiny_study
    done = study.run("ci", str(params), notebooks_dir=nbs, quiet=True)
    assert [p.name for p in done] == ["00_first.ipynb", "01_second.ipynb"]
    assert (runs_tmp / "ci" / "n.txt").read_text() == "7"
    env = json.loads((runs_tmp / "ci" / "notebooks" / "00_first.env.json").read_text())
    assert env["status"] == "ok" and env["parameters"] == {"profile": "ci", "n": 7}
    assert env["packages"]["papermill"] and "git_commit" in env and "device" in env and env["started"]
    executed = nbformat.read(done[0], as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


@sockets_on
@loopback_only
def test_failure_names_the_notebook_and_cell(tiny_study, runs_tmp, tmp_path):
    nbs, params = tiny_study
    params.write_text("fail: true\n")
    with pytest.raises(study.StudyError) as err:
        study.run("ci", str(params), notebooks_dir=nbs, quiet=True)
    msg = str(err.value)
    assert "01_second.ipynb" in msg and "cell" in msg and "boom on purpose" in msg
    env = json.loads((runs_tmp / "ci" / "notebooks" / "01_second.env.json").read_text())
    assert env["status"] == "failed"


def test_bad_params_stop_before_anything_runs(tiny_study, runs_tmp):
    nbs, params = tiny_study
    params.write_text("nn: 7\n")
    with pytest.raises(Exception, match="unknown key 'nn'"):
        study.run("ci", str(params), notebooks_dir=nbs, quiet=True)
    assert not (runs_tmp / "ci" / "notebooks").exists()


def test_selection(tiny_study):
    nbs, _ = tiny_study
    all_nbs = sorted(nbs.glob("*.ipynb"))
    assert [p.name[:2] for p in study.select_notebooks(all_nbs, only=["1"])] == ["01"]
    assert [p.name[:2] for p in study.select_notebooks(all_nbs, start="01")] == ["01"]
    assert [p.name[:2] for p in study.select_notebooks(all_nbs, figure="00_first_plot")] == ["00"]
    with pytest.raises(study.StudyError, match="no notebook '07'"):
        study.select_notebooks(all_nbs, only=["07"])
    with pytest.raises(study.StudyError, match="no notebook makes figure"):
        study.select_notebooks(all_nbs, figure="09_nothing")


def test_list_and_prepare(tiny_study, tmp_path):
    nbs, params = tiny_study
    text = study.describe(nbs)
    assert "00_first" in text and "n: int = 1  # a number" in text and "00_first_plot.png" in text
    made = study.prepare("ci", str(params), tmp_path / "prepared", notebooks_dir=nbs)
    nb = nbformat.read(made[0], as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "n = 7" in injected[0].source and not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_cli_reports_errors_without_traceback(tiny_study, capsys):
    nbs, params = tiny_study
    assert study.main(["run", "--profile", "nope"]) == 1
    assert capsys.readouterr().err.startswith("error: ")
