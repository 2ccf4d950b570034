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
def tiny_study(tmp_path, runs_tmp, monkeypatch):
    from geolib import paths

    monkeypatch.setattr(paths, "PARAMS", tmp_path / "params")
    paths.PARAMS.mkdir()
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    write_notebook(nbs, "00_first.ipynb", 'profile: str = "demo"  # profile\nn: int = 1  # a number\n',
                   "from pathlib import Path\nimport os\nPath(os.environ['GEOLIB_RUNS'], profile).mkdir(parents=True, exist_ok=True)\n"
                   "Path(os.environ['GEOLIB_RUNS'], profile, 'n.txt').write_text(str(n))\n# save_figure(fig, profile, \"00_first_plot\")")
    write_notebook(nbs, "01_second.ipynb", 'profile: str = "demo"  # profile\nfail: bool = False  # raise on purpose\n',
                   "y = 2\nif fail:\n    raise ValueError('boom on purpose')")
    params = paths.PARAMS / "ci.yaml"
    params.write_text("n: 7\n")
    return nbs, params


@sockets_on
@loopback_only
def test_run_executes_in_order_with_injected_parameters(tiny_study, runs_tmp):
    nbs, params = tiny_study
    done = study.run("ci", notebooks_dir=nbs, quiet=True)
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
        study.run("ci", notebooks_dir=nbs, quiet=True)
    msg = str(err.value)
    assert "01_second.ipynb" in msg and "cell" in msg and "boom on purpose" in msg
    env = json.loads((runs_tmp / "ci" / "notebooks" / "01_second.env.json").read_text())
    assert env["status"] == "failed"


def test_bad_params_stop_before_anything_runs(tiny_study, runs_tmp):
    nbs, params = tiny_study
    params.write_text("nn: 7\n")
    with pytest.raises(Exception, match="unknown key 'nn'"):
        study.run("ci", notebooks_dir=nbs, quiet=True)
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


def test_overrides_layer_on_the_profile_and_make_a_run_of_their_own(tiny_study, tmp_path):
    nbs, params = tiny_study
    mine = tmp_path / "mine.yaml"
    mine.write_text("fail: true\n")
    name, values = study.resolve_run("ci", str(mine), ["n=9"], notebooks=sorted(nbs.glob("*.ipynb")))
    assert name == "mine" and values == {"n": 9, "fail": True, "profile": "mine"}  # n: 7 from ci.yaml, then 9
    name, values = study.resolve_run("ci", None, ["n=3"], notebooks=sorted(nbs.glob("*.ipynb")))
    assert name == "ci-n-3" and values["n"] == 3
    with pytest.raises(Exception, match="cannot be named 'ci'"):
        study.resolve_run("ci", None, ["n=3"], name="ci", notebooks=sorted(nbs.glob("*.ipynb")))
    with pytest.raises(Exception, match="unknown key 'm'"):
        study.resolve_run("ci", None, ["m=3"], notebooks=sorted(nbs.glob("*.ipynb")))


def test_dotted_overrides_set_one_entry_of_a_dict():
    from geolib import params as P

    assert P.parse_overrides(["stage.lora_r=8", "stage.lr=1e-3", "x=[1, 2]"]) == {"stage": {"lora_r": 8, "lr": 1e-3}, "x": [1, 2]}
    assert P.layer({"stage": {"lora_r": 16, "epochs": 2}}, {"stage": {"lora_r": 8}}) == {"stage": {"lora_r": 8, "epochs": 2}}
    with pytest.raises(P.ParamsError, match="key=value"):
        P.parse_overrides(["lora_r"])


@sockets_on
@loopback_only
def test_a_stale_upstream_notebook_is_named_before_anything_runs(tiny_study, runs_tmp):
    nbs, params = tiny_study
    study.run("ci", notebooks_dir=nbs, quiet=True)
    assert study.run("ci", start="01", notebooks_dir=nbs, quiet=True)  # upstream current: runs
    params.write_text("n: 8\n")  # 00 now gets another n: 01 would read stale outputs
    with pytest.raises(study.StudyError, match=r"00_first: ran with other parameters \(n: 7 → 8\)"):
        study.run("ci", start="01", notebooks_dir=nbs, quiet=True)
    done = study.run("ci", start="01", notebooks_dir=nbs, quiet=True, rerun_stale=True)
    assert [p.name[:2] for p in done] == ["00", "01"]
    assert (runs_tmp / "ci" / "n.txt").read_text() == "8"


@sockets_on
@loopback_only
def test_a_run_with_overrides_starts_from_the_profile_and_leaves_it_alone(tiny_study, runs_tmp):
    nbs, params = tiny_study
    study.run("ci", notebooks_dir=nbs, quiet=True)
    done = study.run("ci", start="01", sets=["fail=false"], notebooks_dir=nbs, quiet=True)
    assert done[0].parent == runs_tmp / "ci-fail-False" / "notebooks"
    assert (runs_tmp / "ci-fail-False" / "n.txt").read_text() == "7"  # 00's output, copied from the profile's run
    summary = json.loads((runs_tmp / "ci-fail-False" / "results" / "summary.json").read_text())
    assert summary["study.01.seconds"] > 0
