"""Tests of geolib.runtime: the process-wide settings applied by ``import geolib``."""

import subprocess
import sys

import pytest

from geolib import runtime


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_import_geolib_is_cheap_and_offline():
    out = _python("import os, sys, geolib; print('torch' in sys.modules, os.environ['HF_HUB_OFFLINE'])")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "1"]


def test_any_later_import_of_torchvision_works_beside_a_cpu_torch():
    # peft imports transformers, which imports torchvision: with PyPI's torchvision beside a CPU
    # torch this raised "operator torchvision::nms does not exist" unless geolib patched it first
    out = _python("import geolib, peft, torchvision; from torchvision.transforms import InterpolationMode; print('ok')")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_patching_directly_then_importing_works_and_is_idempotent():
    # geolib modules that use torch call patch_torchvision themselves, with the import hook still in place
    out = _python("import geolib; from geolib import runtime; a = runtime.patch_torchvision(); b = runtime.patch_torchvision(); "
                  "import torchvision, peft; print(a == b)")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "True"


def test_in_processes_returns_results_in_job_order_and_raises_a_workers_error():
    jobs = [{"a": i, "b": -i} for i in range(3)]
    assert runtime.in_processes(dict, jobs, workers=2) == jobs  # spawned workers; order kept
    assert runtime.in_processes(dict, jobs, workers=1) == jobs  # here, one after another
    with pytest.raises(TypeError):
        runtime.in_processes(int, [{"x": "1"}, {"no_such_keyword": 1}], workers=2)


def test_limit_threads_sets_torch_and_blas_pools_and_zero_keeps_them():
    out = _python("import geolib, torch, threadpoolctl; from geolib import runtime\n"
                  "before = torch.get_num_threads(); runtime.limit_threads(0); same = torch.get_num_threads() == before\n"
                  "runtime.limit_threads(1)\n"
                  "blas = {p['num_threads'] for p in threadpoolctl.threadpool_info()}\n"
                  "print(same, torch.get_num_threads(), blas <= {1})")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "1", "True"]


def test_timer_records_the_seconds_of_a_block_even_when_it_raises():
    record = {"earlier": 1.0}
    with runtime.timer(record, "work"):
        sum(range(1000))
    assert list(record) == ["earlier", "work"] and record["work"] >= 0
    with pytest.raises(KeyError), runtime.timer(record, "failed"):
        raise KeyError("x")
    assert record["failed"] >= 0
