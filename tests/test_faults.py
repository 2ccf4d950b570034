"""A catalogue of bad inputs and faults: each case ends in a clear error, a correct result, or a rerun that recovers.

Every case is a small function registered with its class:

* ``clear_error``: the call fails at once with one message that names what is wrong (the key,
  the file, the notebook) — never a raw traceback from a library, never a silent wrong run;
* ``correct_result``: input a careful user might give (or a program might produce) is read the
  way a person would read it;
* ``recovered``: after a fault (a truncated file, an interruption, an empty checkpoint folder)
  the next run works without anything deleted by hand, and nothing finished is lost.

``test_catalogue_size`` keeps the counts honest; the property tests at the end (hypothesis)
cover the parser and the metrics beyond the listed cases.
"""

from __future__ import annotations

import errno
import json
import math
import os
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from geolib import answers, corpora, downloads, io, metrics, runtime, sources, study
from geolib import datasets as D
from geolib import params as P
from tests.test_params import write_notebook
from tests.test_vlm import _adapter_weights, _steps, _tiny_model, feats, pool, tok  # noqa: F401 - fixtures

CASES: dict[str, tuple[str, object]] = {}
CLASSES = ("clear_error", "correct_result", "recovered")


def case(kind: str):
    """Register a catalogue case of class ``kind`` under its function name."""
    assert kind in CLASSES

    def register(fn):
        assert fn.__name__ not in CASES, fn.__name__
        CASES[fn.__name__] = (kind, fn)
        return fn

    return register


@pytest.fixture
def ctx(tmp_path, monkeypatch, runs_tmp):
    return SimpleNamespace(tmp=tmp_path, mp=monkeypatch, runs=runs_tmp)


# --------------------------------------------------------------------------------------------
# helpers


def _yaml(ctx, text: str, name: str = "p.yaml") -> Path:
    path = ctx.tmp / name
    path.write_text(text)
    return path


def _png(path: Path, size=(8, 8), value=128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)
    return path


def _streetview(ctx, rows: list[tuple[str, float, float, str]], make_images=True) -> Path:
    folder = ctx.tmp / "sv"
    folder.mkdir(exist_ok=True)
    lines = ["image,lat,lon,country"]
    for name, lat, lon, country in rows:
        lines.append(f"{name},{lat},{lon},{country}")
        if make_images and "/" not in name and not name.startswith(".."):
            _png(folder / name)
    (folder / "pool.csv").write_text("\n".join(lines) + "\n")
    return folder / "pool.csv"


def _bad_file(ctx, name: str, content: str | bytes, exc, match: str, fn):
    """Write ``content`` to ``name``, then ``fn(path)`` must raise ``exc`` matching ``match``."""
    path = ctx.tmp / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return _raises(exc, match, fn, path)


def _raises(exc, match, fn, *args, **kwargs):
    with pytest.raises(exc, match=match) as err:
        fn(*args, **kwargs)
    return err.value


# --------------------------------------------------------------------------------------------
# params files and --set


@case("clear_error")
def duplicate_key_in_params_file(ctx):
    f = _yaml(ctx, "n_boot: 10\nn_images: 4\nn_boot: 20\n")
    _raises(P.ParamsError, r"p\.yaml.*'n_boot' is given twice \(lines 1 and 3\)", P.read_params_file, f)


@case("clear_error")
def duplicate_key_inside_a_dict_parameter(ctx):
    f = _yaml(ctx, "reasoning_tuning:\n  learning_rate: 0.1\n  learning_rate: 0.2\n")
    _raises(P.ParamsError, "'learning_rate' is given twice", P.read_params_file, f)


@case("clear_error")
def zero_epochs_inside_a_dict_parameter(ctx):
    _raises(P.ParamsError, r"reasoning_tuning\.num_train_epochs' must be a number >= 1, got 0",
            P.validate_params, {"reasoning_tuning": {"num_train_epochs": 0}})


@case("clear_error")
def zero_learning_rate(ctx):
    _raises(P.ParamsError, r"location_tuning\.learning_rate' must be a number > 0",
            P.validate_params, {"location_tuning": {"learning_rate": 0.0}})


@case("clear_error")
def negative_learning_rate(ctx):
    _raises(P.ParamsError, "learning_rate' must be a number > 0", P.validate_params, {"gre_sft": {"learning_rate": -1e-4}})


@case("clear_error")
def repeated_seed(ctx):
    _raises(P.ParamsError, "seeds' must be a non-empty list of distinct integers", P.validate_params, {"seeds": [0, 0]})
    _raises(P.ParamsError, "seeds' must be a non-empty list of distinct integers", P.validate_params, {"seeds": []})


@case("clear_error")
def nan_learning_rate(ctx):
    _raises(P.ParamsError, "learning_rate' must be a number > 0", P.validate_params,
            {"gre_sft": {"learning_rate": float("nan")}})


@case("clear_error")
def learning_rate_given_as_a_word(ctx):
    _raises(P.ParamsError, "learning_rate' must be a number > 0, got 'fast'", P.validate_params,
            {"reasoning_tuning": {"learning_rate": "fast"}})


@case("clear_error")
def zero_batch_size_inside_a_dict(ctx):
    _raises(P.ParamsError, r"base_training\.per_device_train_batch_size' must be an integer >= 1",
            P.validate_params, {"base_training": {"per_device_train_batch_size": 0}})


@case("clear_error")
def zero_epochs_of_the_geoclip_head(ctx):
    _raises(P.ParamsError, r"geoclip_head\.epochs' must be an integer >= 1", P.validate_params, {"geoclip_head": {"epochs": 0}})


@case("clear_error")
def zero_grpo_steps(ctx):
    _raises(P.ParamsError, r"gre_grpo\.max_steps'", P.validate_params, {"gre_grpo": {"max_steps": 0}})


@case("clear_error")
def model_revision_is_a_branch(ctx):
    _raises(P.ParamsError, r"model\.revision' must be a 40-hex commit", P.validate_params,
            {"model": {"model_id": "Qwen/Qwen2.5-VL-7B-Instruct", "revision": "main"}})


@case("clear_error")
def segmenter_revision_is_a_tag(ctx):
    _raises(P.ParamsError, "'segmenter_revision' must be a 40-hex commit", P.validate_params, {"segmenter_revision": "v1.0"})


@case("clear_error")
def zero_bootstrap_resamples(ctx):
    _raises(P.ParamsError, "'n_boot' must be an integer >= 1, got 0", P.validate_params, {"n_boot": 0})


@case("clear_error")
def negative_number_of_images(ctx):
    _raises(P.ParamsError, "'n_images' must be an integer >= 1", P.validate_params, {"n_images": -5})


@case("clear_error")
def unknown_key_with_a_suggestion(ctx):
    _raises(P.ParamsError, "unknown key 'n_imgaes'.*did you mean 'n_images'", P.validate_params, {"n_imgaes": 3})


@case("clear_error")
def wrong_type_at_the_top_level(ctx):
    _raises(P.ParamsError, "'n_images'", P.validate_params, {"n_images": "many"})


@case("clear_error")
def params_file_is_a_list(ctx):
    f = _yaml(ctx, "- n_images: 3\n")
    _raises(P.ParamsError, "expected a mapping", P.load_params, "ci", f)


@case("clear_error")
def params_file_is_not_yaml(ctx):
    f = _yaml(ctx, "n_images: [3\n")
    _raises(P.ParamsError, "not valid YAML", P.read_params_file, f)


@case("clear_error")
def params_file_is_binary(ctx):
    _bad_file(ctx, "p.yaml", b"\xff\xfe\x00\x81binary", P.ParamsError, r"p\.yaml: cannot be read as UTF-8", P.read_params_file)


@case("clear_error")
def params_file_missing(ctx):
    _raises(P.ParamsError, "no params file", P.read_params_file, ctx.tmp / "nope.yaml")


@case("clear_error")
def set_without_equals(ctx):
    _raises(P.ParamsError, "expected key=value", P.parse_overrides, ["n_images"])


@case("clear_error")
def set_zero_epochs_from_the_command_line(ctx):
    _raises(P.ParamsError, r"reasoning_tuning\.num_train_epochs", study.resolve_run, "ci",
            sets=["reasoning_tuning.num_train_epochs=0"])


@case("clear_error")
def user_params_file_with_a_duplicate_key(ctx):
    f = _yaml(ctx, "n_boot: 5\nn_boot: 6\n", "mine.yaml")
    _raises(P.ParamsError, r"mine\.yaml.*given twice", study.resolve_run, "ci", str(f))


@case("correct_result")
def nested_settings_that_are_fine_pass(ctx):
    values = P.validate_params({"reasoning_tuning": {"num_train_epochs": 2, "learning_rate": 2e-3},
                                "model": {"model_id": "demo", "revision": "a" * 40}})
    assert values["reasoning_tuning"]["num_train_epochs"] == 2


@case("correct_result")
def every_committed_profile_passes_the_checks(ctx):
    for profile in ("ci", "demo", "paper"):
        assert P.load_params(profile)["profile"] == profile


@case("correct_result")
def paper_revisions_are_commits_or_refused_when_unset(ctx):
    values = P.read_params_file(P.params_file("paper"))
    revisions = {k: v for k, v in values.items() if k.endswith("_revision")} | {"model.revision": values["model"]["revision"]}
    assert all(v == "" or P.is_commit(v) for v in revisions.values()), revisions
    assert P.is_commit(values["model"]["revision"]) and P.is_commit(values["geoclip_revision"])
    ctx.mp.setenv("HF_HUB_OFFLINE", "0")
    for entry, value in revisions.items():
        if value == "":  # not pinned yet: a download is refused, naming the entry
            _raises(runtime.UnpinnedRevision, entry, runtime.pinned_revision, "org/model", value, entry)


# --------------------------------------------------------------------------------------------
# the study runner and its command line


def _notebooks(ctx):
    nbs = ctx.tmp / "nbs"
    nbs.mkdir(exist_ok=True)
    write_notebook(nbs, "00_first.ipynb", 'profile: str = "demo"  # profile\n', "x = 1")
    write_notebook(nbs, "01_second.ipynb", 'profile: str = "demo"  # profile\n', "y = 2")
    return sorted(nbs.glob("*.ipynb"))


@case("clear_error")
def only_with_three_digits(ctx):
    _raises(study.StudyError, "no notebook '012'", study.select_notebooks, _notebooks(ctx), only=["012"])


@case("clear_error")
def only_with_a_number_that_is_not_a_notebook(ctx):
    _raises(study.StudyError, "no notebook '99'.*00, 01", study.select_notebooks, _notebooks(ctx), only=["99"])


@case("clear_error")
def from_with_a_word(ctx):
    _raises(study.StudyError, "no notebook 'abc'", study.select_notebooks, _notebooks(ctx), start="abc")


@case("clear_error")
def only_with_a_number_and_letters(ctx):
    _raises(study.StudyError, "no notebook '1x'", study.select_notebooks, _notebooks(ctx), only=["1x"])


@case("clear_error")
def from_with_a_negative_number(ctx):
    _raises(study.StudyError, "no notebook '-1'", study.select_notebooks, _notebooks(ctx), start="-1")


@case("clear_error")
def command_line_only_012_is_one_line_and_exit_1(ctx):
    import io as _io
    from contextlib import redirect_stderr

    err = _io.StringIO()
    with redirect_stderr(err):
        code = study.main(["run", "--profile", "ci", "--only", "012", "--quiet"])
    assert code == 1 and err.getvalue().startswith("error: no notebook '012'") and "Traceback" not in err.getvalue()


@case("clear_error")
def command_line_duplicate_key_is_one_line(ctx):
    import io as _io
    from contextlib import redirect_stderr

    f = _yaml(ctx, "n_boot: 5\nn_boot: 6\n", "mine.yaml")
    err = _io.StringIO()
    with redirect_stderr(err):
        code = study.main(["run", "--profile", "ci", "--params", str(f), "--only", "01", "--quiet"])
    assert code == 1 and "given twice" in err.getvalue() and "Traceback" not in err.getvalue()


@case("correct_result")
def only_accepts_one_digit_and_a_notebook_name(ctx):
    nbs = _notebooks(ctx)
    assert study.select_notebooks(nbs, only=["1"]) == [nbs[1]]
    assert study.select_notebooks(nbs, only=["01_second"]) == [nbs[1]]
    assert study.select_notebooks(nbs, start="00_first.ipynb") == nbs


@case("correct_result")
def running_record_of_a_dead_runner_reads_interrupted(ctx):
    assert study.record_status({"status": "running", "pid": 2 ** 22 + 12345, "host": study.platform.node()}) == "interrupted"
    assert study.record_status({"status": "running"}) == "interrupted"  # no pid: an old record
    assert study.record_status({"status": "running", "pid": os.getpid(), "host": study.platform.node()}) == "running"


def _fake_runner(ctx, behaviour):
    """A study of two tiny notebooks whose papermill is ``behaviour(input, output, **kw)``."""
    import papermill

    from geolib import paths

    ctx.mp.setattr(paths, "PARAMS", ctx.tmp / "params")
    paths.PARAMS.mkdir(exist_ok=True)
    (paths.PARAMS / "ci.yaml").write_text("")
    nbs = ctx.tmp / "nbs"
    _notebooks(ctx)
    ctx.mp.setattr(papermill, "execute_notebook", behaviour)
    return nbs


def _copy_notebook(src, out, **kw):
    Path(out).write_text(Path(src).read_text())


@case("recovered")
def ctrl_c_in_a_notebook_records_interrupted_and_rerun_finishes(ctx):
    calls = []

    def interrupted(src, out, **kw):
        calls.append(src)
        Path(out).write_text('{"cells": [')  # half-written copy
        raise KeyboardInterrupt

    nbs = _fake_runner(ctx, interrupted)
    out = ctx.runs / "ci" / "notebooks"
    with pytest.raises(KeyboardInterrupt):
        study.run("ci", notebooks_dir=nbs, quiet=True)
    env = io.read_json(out / "00_first.env.json")
    assert env["status"] == "interrupted" and env["error"] == "Ctrl-C"
    assert not (out / "00_first.ipynb").exists() and not list(out.glob(".*partial*"))
    stale = study.stale_upstream("ci", sorted(nbs.glob("*.ipynb")), sorted(nbs.glob("*.ipynb"))[1:], {"profile": "ci"})
    assert "interrupted" in stale[0][1]
    import papermill

    ctx.mp.setattr(papermill, "execute_notebook", _copy_notebook)
    done = study.run("ci", notebooks_dir=nbs, quiet=True)
    assert len(done) == 2 and io.read_json(out / "00_first.env.json")["status"] == "ok"


@case("recovered")
def sigterm_in_a_notebook_records_interrupted(ctx):
    def killed(src, out, **kw):
        raise study._Terminated(15)

    nbs = _fake_runner(ctx, killed)
    _raises(study.StudyError, "stopped by a signal; rerun", study.run, "ci", notebooks_dir=nbs, quiet=True)
    assert io.read_json(ctx.runs / "ci" / "notebooks" / "00_first.env.json")["status"] == "interrupted"


@case("recovered")
def a_run_that_fails_writing_keeps_the_previous_executed_copy(ctx):
    nbs = _fake_runner(ctx, _copy_notebook)
    study.run("ci", notebooks_dir=nbs, quiet=True)
    out = ctx.runs / "ci" / "notebooks" / "00_first.ipynb"
    before = out.read_text()

    def disk_full(src, dst, **kw):
        Path(dst).write_text('{"cells": [{"trunc')
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    import papermill

    ctx.mp.setattr(papermill, "execute_notebook", disk_full)
    _raises(io.WriteError, "the disk is full", study.run, "ci", notebooks_dir=nbs, quiet=True)
    assert out.read_text() == before and json.loads(before)  # still the complete previous copy
    assert io.read_json(out.with_name("00_first.env.json"))["status"] == "failed"
    ctx.mp.setattr(papermill, "execute_notebook", _copy_notebook)
    assert len(study.run("ci", notebooks_dir=nbs, quiet=True)) == 2


@case("correct_result")
def a_failing_cell_still_publishes_its_executed_copy(ctx):
    class CellError(Exception):
        ename, evalue, cell_index, source = "ValueError", "boom", 3, "raise ValueError('boom')"

    def fails(src, out, **kw):
        Path(out).write_text(Path(src).read_text())
        raise CellError()

    nbs = _fake_runner(ctx, fails)
    _raises(study.StudyError, "00_first.ipynb failed in cell 3", study.run, "ci", notebooks_dir=nbs, quiet=True)
    assert json.loads((ctx.runs / "ci" / "notebooks" / "00_first.ipynb").read_text())["cells"]


@case("clear_error")
def command_line_disk_full_is_one_line(ctx):
    import io as _io
    from contextlib import redirect_stderr

    def disk_full(src, dst, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    _fake_runner(ctx, disk_full)
    ctx.mp.setattr(P, "study_notebooks", lambda folder=None: sorted((ctx.tmp / "nbs").glob("*.ipynb")))
    err = _io.StringIO()
    with redirect_stderr(err):
        code = study.main(["run", "--profile", "ci", "--quiet"])
    text = err.getvalue()
    assert code == 1 and text.count("\n") == 1 and "cannot write" in text and "disk is full" in text


# --------------------------------------------------------------------------------------------
# artifacts: atomic writes, umask, full disk, read-only folders, damaged files


@case("clear_error")
def write_json_on_a_full_disk(ctx):
    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    ctx.mp.setattr(io.os, "replace", full)
    target = ctx.tmp / "r" / "summary.json"
    err = _raises(io.WriteError, "cannot write .*summary.json: the disk is full", io.write_json, target, {"a": 1})
    assert isinstance(err, OSError) and not list((ctx.tmp / "r").iterdir())  # no temporary file left


@case("clear_error")
def write_json_in_a_read_only_folder(ctx):
    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    ctx.mp.setattr(io.tempfile, "mkstemp", read_only)
    _raises(io.WriteError, "cannot write .*x.json: the folder is on a read-only file system", io.write_json,
            ctx.tmp / "x.json", {})


@case("clear_error")
def write_below_a_file(ctx):
    (ctx.tmp / "f").write_text("a file, not a folder")
    _raises(io.WriteError, "cannot write .*f/x.json", io.write_json, ctx.tmp / "f" / "x.json", {})


@case("clear_error")
def parquet_writer_on_a_full_disk_keeps_the_old_file(ctx):
    target = ctx.tmp / "t.parquet"
    io.write_parquet(target, pd.DataFrame({"a": [1]}))

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    ctx.mp.setattr(io.os, "replace", full)
    _raises(io.WriteError, "t.parquet: the disk is full", io.write_parquet, target, pd.DataFrame({"a": [2]}))
    ctx.mp.undo()
    assert pd.read_parquet(target)["a"].tolist() == [1]


@case("correct_result")
def files_honour_a_group_readable_umask(ctx):
    old = os.umask(0o027)
    try:
        a = io.write_json(ctx.tmp / "a.json", {})
        b = io.write_parquet(ctx.tmp / "b.parquet", pd.DataFrame({"a": [1]}))
    finally:
        os.umask(old)
    assert (a.stat().st_mode & 0o777, b.stat().st_mode & 0o777) == (0o640, 0o640)


@case("correct_result")
def files_honour_a_shared_umask(ctx):
    old = os.umask(0o002)
    try:
        a = io.atomic_write_bytes(ctx.tmp / "a.bin", b"x")
        t = io.save_torch(ctx.tmp / "t.pt", {"x": 1})
    finally:
        os.umask(old)
    assert (a.stat().st_mode & 0o777, t.stat().st_mode & 0o777) == (0o664, 0o664)


@case("clear_error")
def read_json_of_a_truncated_file(ctx):
    _bad_file(ctx, "stage.json", '{"stage": "reas', io.ReadError, r"stage\.json is not valid JSON.*truncated", io.read_json)


@case("clear_error")
def read_json_of_a_binary_file(ctx):
    _bad_file(ctx, "b.json", b"\x89PNG\r\n\x1a\n\xff\xff", io.ReadError, r"b\.json is not valid JSON", io.read_json)


@case("clear_error")
def load_torch_of_a_truncated_checkpoint(ctx):
    f = io.save_torch(ctx.tmp / "locnet.pt", {"w": np.arange(1000)})
    f.write_bytes(f.read_bytes()[:300])
    _raises(io.ReadError, r"locnet\.pt: not a complete torch file", io.load_torch, f)


@case("clear_error")
def load_locnet_of_a_truncated_checkpoint(ctx):
    from geolib import locnet

    f = io.save_torch(ctx.tmp / "locnet.pt", {"format": 1})
    f.write_bytes(f.read_bytes()[:50])
    _raises(io.ReadError, "locnet.pt", locnet.load_locnet, f)


@case("correct_result")
def file_checks_accept_intact_files(ctx):
    from safetensors.numpy import save_file

    np.save(ctx.tmp / "a.npy", np.zeros((3, 4), np.float16))
    save_file({"w": np.ones((2, 2), np.float32)}, str(ctx.tmp / "w.safetensors"))
    io.save_torch(ctx.tmp / "o.pt", {"a": 1})
    assert [io.file_problem(ctx.tmp / n) for n in ("a.npy", "w.safetensors", "o.pt")] == [None, None, None]


@case("clear_error")
def file_checks_name_a_truncated_npy_safetensors_and_torch_file(ctx):
    from safetensors.numpy import save_file

    np.save(ctx.tmp / "a.npy", np.zeros((30, 4), np.float16))
    save_file({"w": np.ones((20, 2), np.float32)}, str(ctx.tmp / "w.safetensors"))
    io.save_torch(ctx.tmp / "o.pt", {"a": np.arange(100)})
    for name in ("a.npy", "w.safetensors", "o.pt"):
        f = ctx.tmp / name
        f.write_bytes(f.read_bytes()[:-40])
        assert name in (io.file_problem(f) or ""), name


# --------------------------------------------------------------------------------------------
# the feature cache


class _Tower:
    """Stand-in image tower: per-channel means on a 2x2 grid (see tests/test_features.py)."""


@pytest.fixture
def tower(monkeypatch):
    torch = pytest.importorskip("torch")
    from geolib import features

    class Counting(torch.nn.Module):
        name, image_size = "counting", 16
        mean, std = features.IMAGENET_MEAN, features.IMAGENET_STD

        def forward(self, x):
            grid = torch.nn.functional.adaptive_avg_pool2d(x, 2)
            return torch.cat([grid, torch.ones_like(grid[:, :1])], dim=1)

    t = Counting()
    monkeypatch.setattr(features, "TOWERS", ("efficientnet_lite0", "counting"))
    monkeypatch.setattr(features, "load_image_tower", lambda name="efficientnet_lite0": t)
    return t


def _feature_images(ctx, n=6):
    return [_png(ctx.tmp / "img" / f"{i}.png", value=20 * i + 10) for i in range(n)]


def _damaged_cache_recovers(ctx, damage):
    from geolib import features

    images = _feature_images(ctx)
    cache = ctx.tmp / "cache" / "f.npy"
    first = np.array(features.image_features(images, cache, tower="counting", progress=False))
    damage(cache)
    with pytest.warns(UserWarning, match="feature cache.*not used, rebuilt"):
        again = np.array(features.image_features(images, cache, tower="counting", progress=False))
    np.testing.assert_array_equal(again, first)
    assert (np.abs(again).sum(axis=(1, 2)) > 0).all()  # no row read as zeros
    np.testing.assert_array_equal(features.image_features(images, cache, tower="counting", progress=False), first)


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@case("recovered")
def truncated_feature_cache_is_rebuilt_not_padded_with_zeros(ctx, tower):
    _damaged_cache_recovers(ctx, lambda cache: _truncate(cache))


@case("recovered")
def truncated_feature_status_file_is_rebuilt(ctx, tower):
    _damaged_cache_recovers(ctx, lambda cache: _truncate(cache.with_suffix(".done.npy"), 0.9))


@case("recovered")
def broken_feature_index_is_rebuilt(ctx, tower):
    _damaged_cache_recovers(ctx, lambda cache: cache.with_suffix(".index.json").write_text('{"format": '))


@case("recovered")
def feature_cache_overwritten_with_garbage_is_rebuilt(ctx, tower):
    _damaged_cache_recovers(ctx, lambda cache: cache.write_bytes(b"garbage" * 100))


@case("clear_error")
def feature_cache_on_a_full_disk(ctx, tower):
    from geolib import features

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    ctx.mp.setattr(io.os, "posix_fallocate", full)
    cache = ctx.tmp / "cache" / "f.npy"
    _raises(io.WriteError, r"cannot write .*f\.npy: the disk is full", features.image_features, _feature_images(ctx),
            cache, tower="counting", progress=False)
    assert not [p for p in cache.parent.iterdir() if p.suffix == ".npy"]  # no half-made cache left behind


@case("recovered")
def truncated_summary_is_kept_aside_and_started_again(ctx):
    from geolib import paths

    path = io.merge_summary("ci", {"00.n_images": 160})
    path.write_text('{"00.n_images": 1')
    with pytest.warns(UserWarning, match="summary.json was not a JSON object.*summary.damaged.json"):
        io.merge_summary("ci", {"02.spearman": 0.8})
    assert io.read_json(path) == {"02.spearman": 0.8}
    assert (paths.results_dir("ci") / "summary.damaged.json").read_text() == '{"00.n_images": 1'
    io.merge_summary("ci", {"00.n_images": 160})  # the next notebook adds its key again
    assert io.read_json(path) == {"00.n_images": 160, "02.spearman": 0.8}


# --------------------------------------------------------------------------------------------
# training stages and checkpoints (files only; tests/test_vlm.py trains for real)


def _checkpoint(folder: Path, step: int, *, adapter=True) -> Path:
    from safetensors.numpy import save_file

    ck = folder / f"checkpoint-{step}"
    (ck / "location").mkdir(parents=True)
    io.write_json(ck / "trainer_state.json", {"global_step": step})
    io.save_torch(ck / "optimizer.pt", {"state": np.arange(50)})
    if adapter:
        save_file({"lora_A": np.ones((4, 4), np.float32)}, str(ck / "location" / "adapter_model.safetensors"))
    return ck


def _newest_is_damaged(ctx, damage) -> None:
    from geolib import checkpoints

    _checkpoint(ctx.tmp, 2)
    newest = _checkpoint(ctx.tmp, 4)
    damage(newest)
    with pytest.warns(UserWarning, match="checkpoint not used"):
        assert checkpoints.last_intact_checkpoint(ctx.tmp).name == "checkpoint-2"
    assert (ctx.tmp / "damaged-checkpoint-4").is_dir() and not newest.exists()
    assert checkpoints.last_intact_checkpoint(ctx.tmp).name == "checkpoint-2"  # a rerun: no warning, same answer


@case("recovered")
def empty_checkpoint_folder_left_by_a_kill_during_save(ctx):
    import shutil

    _newest_is_damaged(ctx, lambda ck: (shutil.rmtree(ck), ck.mkdir()))


@case("recovered")
def truncated_optimizer_state(ctx):
    _newest_is_damaged(ctx, lambda ck: _truncate(ck / "optimizer.pt"))


@case("recovered")
def truncated_adapter_in_a_checkpoint(ctx):
    _newest_is_damaged(ctx, lambda ck: _truncate(ck / "location" / "adapter_model.safetensors", 0.7))


@case("recovered")
def truncated_trainer_state(ctx):
    _newest_is_damaged(ctx, lambda ck: (ck / "trainer_state.json").write_text('{"global_st'))


@case("recovered")
def checkpoint_without_trainer_state(ctx):
    _newest_is_damaged(ctx, lambda ck: (ck / "trainer_state.json").unlink())


@case("correct_result")
def no_checkpoint_at_all_starts_from_scratch(ctx):
    from geolib import checkpoints

    assert checkpoints.last_intact_checkpoint(ctx.tmp) is None


def _finished(folder: Path) -> Path:
    from safetensors.numpy import save_file

    (folder / "adapter" / "location").mkdir(parents=True)
    save_file({"lora_A": np.ones((4, 4), np.float32)}, str(folder / "adapter" / "location" / "adapter_model.safetensors"))
    io.write_json(folder / "stage.json", {"stage": "location", "fingerprint": "f" * 64, "kind": "lora",
                                          "adapter_dir": "adapter/location"})
    io.write_json(folder / "fingerprint.json", {"stage": "location", "fingerprint": "f" * 64})
    return folder


@case("recovered")
def truncated_stage_record_trains_again(ctx):
    from geolib import checkpoints

    (_finished(ctx.tmp) / "stage.json").write_text('{"stage": "loc')
    with pytest.warns(UserWarning, match=r"stage\.json is damaged"):
        assert checkpoints.finished_stage(ctx.tmp) is None
    assert not (ctx.tmp / "stage.json").exists() and checkpoints.finished_stage(ctx.tmp) is None


@case("recovered")
def truncated_finished_adapter_trains_again(ctx):
    from geolib import checkpoints

    _truncate(_finished(ctx.tmp) / "adapter" / "location" / "adapter_model.safetensors", 0.6)
    with pytest.warns(UserWarning, match="finished stage .* not used"):
        assert checkpoints.finished_stage(ctx.tmp) is None


@case("correct_result")
def intact_finished_stage_is_used(ctx):
    from geolib import checkpoints

    assert checkpoints.finished_stage(_finished(ctx.tmp))["fingerprint"] == "f" * 64


@case("recovered")
def changed_settings_keep_the_finished_stage_beside_the_new_one(ctx):
    from geolib import checkpoints

    _finished(ctx.tmp)
    _checkpoint(ctx.tmp, 2)
    assert not checkpoints.switch_stage_version(ctx.tmp, "f" * 64, "e" * 64)
    kept = ctx.tmp / "versions" / ("f" * 16)
    assert (kept / "stage.json").exists() and (kept / "checkpoint-2").is_dir() and not (ctx.tmp / "stage.json").exists()
    (ctx.tmp / "stage.json").write_text("{}")  # the new settings' run
    assert checkpoints.switch_stage_version(ctx.tmp, "e" * 64, "f" * 64)  # back to the first settings: nothing retrains
    assert io.read_json(ctx.tmp / "stage.json")["fingerprint"] == "f" * 64
    assert (ctx.tmp / "versions" / ("e" * 16) / "stage.json").exists() and not kept.exists()


@case("clear_error")
def later_stage_loads_a_truncated_adapter(ctx):
    from geolib import tuning

    _truncate(_finished(ctx.tmp / "location") / "adapter" / "location" / "adapter_model.safetensors", 0.6)
    _raises(io.ReadError, "stage 'location' cannot be loaded: .*adapter_model.safetensors.*Rerun the notebook",
            tuning.load_staged_model, object(), [ctx.tmp / "location"])


@case("clear_error")
def truncated_base_model(ctx):
    from safetensors.numpy import save_file

    from geolib import vlm

    model = ctx.tmp / "base" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    save_file({"w": np.ones((64, 64), np.float32)}, str(model / "model.safetensors"))
    _truncate(model / "model.safetensors", 0.5)
    _raises(io.ReadError, r"saved model cannot be loaded: .*model\.safetensors", vlm.load_model, ctx.tmp / "base")


@case("recovered")
def training_resumes_past_an_empty_checkpoint_and_a_damaged_stage_record(ctx, request):
    torch = pytest.importorskip("torch")
    from geolib import conversations, tuning

    rows, features, tokenizer = (request.getfixturevalue(n) for n in ("pool", "feats", "tok"))

    convs = conversations.make_conversations(rows, "location")
    lora = tuning.lora_config(r=4, lora_alpha=8, lora_dropout=0.0)
    straight = tuning.train_stage(_tiny_model(tokenizer), tokenizer, convs, "location", _steps(4), lora, ctx.tmp / "a", images=features)

    def interrupt(self, args, state, control, **kwargs):
        if state.global_step == 3:
            (ctx.tmp / "b" / "checkpoint-3").mkdir()  # the kill came while step 3 was being saved
            raise KeyboardInterrupt

    with ctx.mp.context() as m:
        m.setattr(tuning._LogHistoryWriter, "on_step_end", interrupt, raising=False)
        with pytest.raises(KeyboardInterrupt):
            tuning.train_stage(_tiny_model(tokenizer), tokenizer, convs, "location", _steps(4), lora, ctx.tmp / "b", images=features)
    with pytest.warns(UserWarning, match="checkpoint-3 is empty"):
        resumed = tuning.train_stage(_tiny_model(tokenizer), tokenizer, convs, "location", _steps(4), lora, ctx.tmp / "b", images=features)
    assert resumed.resumed_from.endswith("checkpoint-2")
    want = _adapter_weights(straight.model, "location")
    for k, v in _adapter_weights(resumed.model, "location").items():
        torch.testing.assert_close(v, want[k], rtol=1e-4, atol=1e-6)
    (ctx.tmp / "b" / "stage.json").write_text('{"stage": "loc')  # truncated record of the finished stage
    with pytest.warns(UserWarning, match=r"stage\.json is damaged"):
        again = tuning.train_stage(_tiny_model(tokenizer), tokenizer, convs, "location", _steps(4), lora, ctx.tmp / "b", images=features)
    assert io.read_json(ctx.tmp / "b" / "stage.json")["steps"] == 4
    for k, v in _adapter_weights(again.model, "location").items():
        torch.testing.assert_close(v, want[k], rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------------
# hub revisions


@case("clear_error")
def download_with_an_empty_revision(ctx):
    ctx.mp.setenv("HF_HUB_OFFLINE", "0")
    _raises(runtime.UnpinnedRevision, "segmenter_revision is not set", runtime.pinned_revision,
            "facebook/maskformer-swin-large-ade", "", "segmenter_revision")


@case("clear_error")
def download_at_a_branch(ctx):
    _raises(runtime.UnpinnedRevision, "streetclip_revision = 'main'.*not a 40-hex", runtime.pinned_revision,
            "geolocal/StreetCLIP", "main", "streetclip_revision")


@case("clear_error")
def download_at_a_short_hash(ctx):
    _raises(runtime.UnpinnedRevision, "not a 40-hex", runtime.pinned_revision, "org/m", "cc59489", "model.revision")


@case("clear_error")
def hub_model_at_a_branch_is_refused_before_loading(ctx):
    pytest.importorskip("torch")
    from geolib import vlm

    _raises(runtime.UnpinnedRevision, "model.revision = 'main'", vlm.build_model,
            {"model_id": "Qwen/Qwen2.5-VL-7B-Instruct", "revision": "main"})


@case("clear_error")
def dataset_download_at_a_branch(ctx):
    _raises(ValueError, "40-hex commit hash.*'main'", downloads.download_dataset, "osv5m", "main", ctx.tmp / "osv")


@case("clear_error")
def dataset_download_at_an_uppercase_hash(ctx):
    _raises(ValueError, "40-hex commit", downloads.download_dataset, "gre30k", "A" * 40, ctx.tmp / "gre")


@case("correct_result")
def unpinned_revision_offline_reads_the_cache_only(ctx):
    ctx.mp.setenv("HF_HUB_OFFLINE", "1")
    assert runtime.pinned_revision("org/model", "", "segmenter_revision") is None
    assert runtime.pinned_revision(str(ctx.tmp), "", "segmenter_revision") is None  # a local folder
    assert runtime.pinned_revision("org/model", "b" * 40, "x") == "b" * 40


# --------------------------------------------------------------------------------------------
# answers


def _p(text):
    return answers.parse_answer(text)


@case("correct_result")
def prose_with_a_country_and_coordinates_keeps_the_country(ctx):
    a = _p("The script on the signs and the dry hills suggest this is Ethiopia, at about 12 N and 40 E.")
    assert (a.country, a.lat, a.lon, a.answered) == ("ET", 12.0, 40.0, True)


@case("correct_result")
def prose_naming_two_countries_takes_the_one_holding_the_coordinates(ctx):
    a = _p("Not Kenya, I think: the signs point to Ethiopia. Location 9.0 N, 38.7 E.")
    assert a.country == "ET" and a.lat == 9.0


@case("correct_result")
def one_line_country_and_city(ctx):
    a = _p("Country: France, City: Paris")
    assert (a.country, a.city, a.answered) == ("FR", "Paris", True)


@case("correct_result")
def one_line_country_city_and_coordinates(ctx):
    a = _p("Country: Japan; City: Osaka; Coordinates: 34.69, 135.50")
    assert (a.country, a.city, a.lat, a.lon) == ("JP", "Osaka", 34.69, 135.5)


@case("correct_result")
def nan_pair_in_an_answer_tag_is_no_answer(ctx):
    a = _p("<think>hard to say</think><answer>nan, nan</answer>")
    assert not a.answered and a.city is None and a.country_label is None


@case("correct_result")
def nan_country_in_key_value_lines_is_no_answer(ctx):
    a = _p("Country: nan\nCity: nan")
    assert not a.answered and a.country_label is None


@case("correct_result")
def nan_in_a_dict_answer_is_no_answer(ctx):
    a = _p("{'country': 'NaN', 'city': 'undefined', 'reasons': 'none visible'}")
    assert not a.answered


@case("correct_result")
def nan_city_of_thailand_is_a_city(ctx):
    a = _p("<answer>Nan, Thailand</answer>")
    assert (a.country, a.city) == ("TH", "Nan")


@case("correct_result")
def na_in_capitals_is_still_namibia(ctx):
    assert _p("Country: NA\nCity: Windhoek").country == "NA"


@case("correct_result")
def a_city_with_a_placeholder_country(ctx):
    a = _p("<answer>Paris, nan</answer>")
    assert a.city == "Paris" and a.country_label is None


@case("correct_result")
def non_string_answers_are_not_answered(ctx):
    for value in (None, float("nan"), pd.NA, 3, b"France"):
        a = _p(value)
        assert not a.answered and a.error.startswith("answer is not a string")


# --------------------------------------------------------------------------------------------
# metrics


@case("clear_error")
def answer_metrics_given_two_strings(ctx):
    _raises(TypeError, "predicted must be a sequence of labels.*got str", metrics.answer_metrics, "France", "France")


@case("clear_error")
def answer_metrics_given_a_string_as_truth(ctx):
    _raises(TypeError, "truth must be a sequence", metrics.answer_metrics, ["FR", "DE"], "FR")


@case("clear_error")
def answer_metrics_given_a_number(ctx):
    _raises(TypeError, "predicted must be a sequence", metrics.answer_metrics, 3, [1])


@case("clear_error")
def answer_metrics_lengths_differ(ctx):
    _raises(ValueError, "predicted has 1 labels but truth has 2", metrics.answer_metrics, ["FR"], ["FR", "DE"])


@case("clear_error")
def answer_metrics_with_a_missing_truth(ctx):
    _raises(ValueError, "truth label 1 is missing", metrics.answer_metrics, ["FR", "DE"], ["FR", None])


@case("correct_result")
def nan_predictions_are_not_answers(ctx):
    m = metrics.answer_metrics([float("nan"), np.float32("nan"), np.nan, "FR"], ["FR", "DE", "IT", "FR"])
    assert (m["n_answered"], m["n_correct"], m["recall"]) == (1, 1, 0.25)


@case("correct_result")
def pandas_missing_predictions_are_not_answers(ctx):
    pred = pd.Series(["FR", pd.NA, None], dtype="object")
    m = metrics.answer_metrics(pred, ["FR", "DE", "IT"])
    assert m["n_answered"] == 1
    m = metrics.answer_metrics(pd.array(["FR", pd.NA, "IT"], dtype="string"), ["FR", "DE", "IT"])
    assert (m["n_answered"], m["n_correct"]) == (2, 2)


@case("correct_result")
def parsed_placeholder_answers_are_not_answers(ctx):
    parsed = [_p("<answer>nan, nan</answer>"), _p("Country: France, City: Paris")]
    m = metrics.answer_metrics(parsed, ["FR", "FR"])
    assert (m["n_answered"], m["n_correct"]) == (1, 1)
    assert metrics.answer_metrics(parsed, ["X", "Paris"], level="city")["n_correct"] == 1


# --------------------------------------------------------------------------------------------
# data loaders


@case("clear_error")
def empty_csv(ctx):
    _bad_file(ctx, "pool.csv", b"", D.DataFileError, r"pool\.csv: cannot be read as CSV", sources.load_streetview_folder)


@case("clear_error")
def binary_csv(ctx):
    _bad_file(ctx, "pool.csv", bytes(range(256)) * 4, D.DataFileError, r"pool\.csv", sources.load_streetview_folder)


@case("clear_error")
def broken_json_list(ctx):
    _bad_file(ctx, "cot.json", '[{"image": "a.jpg", "gt_lat": 1', D.DataFileError, r"cot\.json: not valid JSON", corpora.load_gre30k_cot)


@case("clear_error")
def empty_json(ctx):
    _bad_file(ctx, "sft.json", "  \n", D.DataFileError, r"sft\.json: the file is empty", corpora.load_georeasoner_sft)


@case("clear_error")
def binary_json(ctx):
    _bad_file(ctx, "seed.jsonl", b"\xff\xd8\xff\xe0\x00\x10JFIF", D.DataFileError, r"seed\.jsonl: not UTF-8", corpora.load_gre30k_seed)


@case("clear_error")
def truncated_manifest(ctx):
    f = D.write_manifest(ctx.tmp / "pool.parquet", D.validate_manifest(pd.DataFrame({
        "image_id": ["a"], "image_path": ["a.png"], "lat": [48.85], "lon": [2.35], "country": ["FR"], "city": ["Paris"],
        "continent": ["EU"], "source": ["x"]})))
    _truncate(f)
    _raises(D.DataFileError, r"pool\.parquet: not a readable Parquet file", D.read_manifest, f)


@case("correct_result")
def image_path_to_a_system_file_is_left_out(ctx):
    df, report = sources.load_streetview_folder(_streetview(ctx, [("a.png", 48.85, 2.35, "FR"), ("/etc/hostname", 48.85, 2.35, "FR")]))
    assert list(df["image_id"]) == ["streetview_a"] and report.problems == {"outside_data_folder": 1}


@case("correct_result")
def image_path_leading_up_and_out_is_left_out(ctx):
    _png(ctx.tmp / "secret.png")
    df, report = sources.load_streetview_folder(_streetview(ctx, [("a.png", 48.85, 2.35, "FR"), ("../secret.png", 48.85, 2.35, "FR")]))  # outside-repo: a path that escapes on purpose
    assert len(df) == 1 and report.problems == {"outside_data_folder": 1}


@case("correct_result")
def json_record_pointing_outside_the_image_root_is_not_used(ctx):
    outside = _png(ctx.tmp / "elsewhere" / "x.png")
    root = ctx.tmp / "root"
    root.mkdir()
    found = D.resolve_image_path(str(outside), root)
    assert found != outside and D.inside_folder(found, root)  # looked up under the root instead (and reported missing)
    inside = _png(root / "y.png")
    assert D.resolve_image_path(str(inside), root) == inside


@case("correct_result")
def country_contradicting_the_coordinates_is_reported(ctx):
    df, report = sources.load_streetview_folder(_streetview(ctx, [("a.png", 48.85, 2.35, "FR"), ("b.png", 48.85, 2.35, "JP")]))
    assert list(df["country"]) == ["FR"] and report.problems == {"country_mismatch": 1}
    assert "country='JP'" in report.examples["country_mismatch"][0] and "FR" in report.examples["country_mismatch"][0]


@case("correct_result")
def corrupt_image_is_left_out_without_asking(ctx):
    csv = _streetview(ctx, [("a.png", 48.85, 2.35, "FR"), ("b.png", 52.52, 13.40, "DE")])
    (csv.parent / "b.png").write_bytes(b"\x89PNG\r\n not really")
    df, report = sources.load_streetview_folder(csv)
    assert len(df) == 1 and report.problems == {"unreadable_image": 1}


@case("correct_result")
def zero_byte_image_is_left_out(ctx):
    csv = _streetview(ctx, [("a.png", 48.85, 2.35, "FR"), ("b.png", 52.52, 13.40, "DE")])
    (csv.parent / "b.png").write_bytes(b"")
    df, report = sources.load_streetview_folder(csv)
    assert len(df) == 1 and report.problems == {"unreadable_image": 1}


@case("correct_result")
def truncated_image_is_left_out_with_check_images(ctx):
    csv = _streetview(ctx, [("a.png", 48.85, 2.35, "FR"), ("b.png", 52.52, 13.40, "DE")])
    _png(csv.parent / "b.png", size=(64, 64))
    _truncate(csv.parent / "b.png", 0.5)
    df, report = sources.load_streetview_folder(csv, check_images=True)
    assert len(df) == 1 and report.problems == {"unreadable_image": 1}


@case("clear_error")
def pool_whose_images_were_removed(ctx):
    from geolib import paths

    folder = paths.data_dir("ci")
    _png(folder / "images" / "a.png")
    D.write_manifest(D.manifest_path("ci"), D.validate_manifest(pd.DataFrame({
        "image_id": ["a"], "image_path": [str(folder / "images" / "a.png")], "lat": [48.85], "lon": [2.35],
        "country": ["FR"], "city": ["Paris"], "continent": ["EU"], "source": ["x"]})))
    (folder / "images" / "a.png").unlink()
    _raises(D.ManifestError, "lists 1 files that are not there.*rerun notebook 00", D.study_pool, "ci")


@case("recovered")
def out_of_range_world_parameter_removes_nothing(ctx):
    from geolib import world

    out = ctx.tmp / "world"
    first = world.build_world(out, n_images=2, n_countries=2, cities_per_country=1, image_size=16, workers=1, progress=False)
    before = sorted(p.name for p in (out / "images").iterdir())
    _raises(ValueError, "n_countries", world.build_world, out, n_images=2, n_countries=100_000, cities_per_country=1,
            image_size=16, workers=1, progress=False)
    assert sorted(p.name for p in (out / "images").iterdir()) == before and len(before) == 2
    again = world.build_world(out, n_images=2, n_countries=2, cities_per_country=1, image_size=16, workers=1, progress=False)
    assert again.attrs["rendered"] == 0 and again["image_id"].tolist() == first["image_id"].tolist()


# --------------------------------------------------------------------------------------------
# the catalogue


@pytest.mark.parametrize("name", sorted(CASES))
def test_case(name, request):
    kind, fn = CASES[name]
    import inspect

    needed = inspect.signature(fn).parameters
    args = [request.getfixturevalue(p) for p in needed]
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        fn(*args)


def test_catalogue_size():
    counts = {k: sum(1 for kind, _ in CASES.values() if kind == k) for k in CLASSES}
    assert sum(counts.values()) >= 60, counts
    assert all(counts.values()), counts


# --------------------------------------------------------------------------------------------
# property tests (hypothesis)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_COUNTRIES = {"France": "FR", "Japan": "JP", "Brazil": "BR", "Germany": "DE", "Kenya": "KE", "Ethiopia": "ET",
              "Canada": "CA", "Argentina": "AR", "Thailand": "TH", "Norway": "NO"}
_CITIES = ["Paris", "Osaka", "Recife", "Berlin", "Nairobi", "Lyon", "Bergen"]
_label = st.one_of(st.none(), st.just(float("nan")), st.just(""), st.sampled_from(list(_COUNTRIES.values())))


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_parser_never_raises_and_an_answer_has_content(text):
    a = answers.parse_answer(text)
    assert a.answered == (a.country_label is not None or a.city is not None or a.has_coordinates)
    if a.has_coordinates:
        assert -90 <= a.lat <= 90 and -180 <= a.lon <= 180


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(sorted(_COUNTRIES)), st.sampled_from(_CITIES), st.sampled_from([", ", "; ", " | ", "\n"]))
def test_parser_reads_country_and_city_lines_in_any_layout(country, city, sep):
    a = answers.parse_answer(f"Country: {country}{sep}City: {city}")
    assert (a.country, a.city, a.answered) == (_COUNTRIES[country], city, True)


@settings(max_examples=80, deadline=None)
@given(st.floats(-89.9, 89.9), st.floats(-179.9, 179.9), st.sampled_from(sorted(_COUNTRIES)))
def test_parser_keeps_the_country_named_beside_coordinates(lat, lon, country):
    ns, ew = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
    a = answers.parse_answer(f"The signs suggest {country}, near {abs(lat):.3f} {ns} and {abs(lon):.3f} {ew}.")
    assert a.country == _COUNTRIES[country]
    assert math.isclose(a.lat, round(abs(lat), 3) * (1 if lat >= 0 else -1), abs_tol=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["nan", "NaN", "inf", "null", "None", "undefined", "N/A", "-"]), min_size=1, max_size=3))
def test_parser_refuses_placeholders_in_an_answer_tag(parts):
    a = answers.parse_answer(f"<answer>{', '.join(parts)}</answer>")
    assert not a.answered


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_label, st.sampled_from(list(_COUNTRIES.values()))), min_size=1, max_size=30))
def test_answer_metrics_count_only_real_answers(pairs):
    pred, truth = [p for p, _ in pairs], [t for _, t in pairs]
    m = metrics.answer_metrics(pred, truth)
    answered = [p for p in pred if isinstance(p, str) and p]
    assert m["n_answered"] == len(answered) and m["recall"] == len(answered) / len(pred)
    assert m["n_correct"] == sum(p == t for p, t in pairs if isinstance(p, str) and p)
    assert 0 <= m["f1"] <= 1 and 0 <= m["accuracy"] <= 1


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["num_train_epochs", "learning_rate", "per_device_train_batch_size"]),
                       st.one_of(st.integers(-3, 3), st.floats(-1, 3), st.just(float("nan"))), min_size=1))
def test_params_check_refuses_exactly_the_bad_settings(stage):
    problems = P.check_settings({"reasoning_tuning": stage})
    bad = {k for k, v in stage.items() if not SETTING_OK[k](v)}
    assert {p.split("'")[1].split(".")[1] for p in problems} == bad


SETTING_OK = {
    "num_train_epochs": lambda v: not isinstance(v, bool) and math.isfinite(v) and v >= 1,
    "learning_rate": lambda v: not isinstance(v, bool) and math.isfinite(v) and v > 0,
    "per_device_train_batch_size": lambda v: isinstance(v, int) and v >= 1,
}
