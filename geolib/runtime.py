"""Process-wide settings applied when ``geolib`` is imported (all notebooks, tests, benchmarks).

* Offline by default: ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` unless the caller set
  them. To let the paper profile download weights and data, start Python (or the Jupyter
  kernel) with ``HF_HUB_OFFLINE=0``; ``geolib.downloads.download_dataset`` refuses otherwise. A
  hub load would otherwise retry for about 46 s before failing.
* Headless plotting: matplotlib's ``Agg`` backend unless a backend was chosen.
* The CPU-torch / PyPI-torchvision trap (docs/known-traps.md): PyPI's torchvision is built against CUDA
  torch; beside a CPU torch its C++ ops fail to register and ``import torchvision`` raises
  "operator torchvision::nms does not exist", taking open_clip, timm and transformers' vision
  models with it. When torch has no CUDA and torchvision's ops cannot load, the two op schemas
  it needs at import are defined first. This happens on the first ``import torchvision``
  after ``import geolib``, whoever imports it (peft, transformers, open_clip, a student's own
  cell), through a one-shot import hook; torch itself is not imported before then. Images are
  decoded with PIL, never torchvision.io.

Also the notebooks' process helpers: :func:`limit_threads` (torch and BLAS / OpenMP threads),
:func:`timer` (seconds of a block into a dict) and :func:`in_processes` (independent jobs side by side).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys

_configured = False


def configure() -> None:
    """Apply the settings above once per process (idempotent, cheap: torch is not imported)."""
    global _configured
    if _configured:
        return
    _configured = True
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MPLBACKEND", "Agg")
    if "torchvision" not in sys.modules:
        sys.meta_path.insert(0, _TorchvisionHook())


class _TorchvisionHook(importlib.abc.MetaPathFinder):
    """Calls :func:`patch_torchvision` at the first ``import torchvision``, then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            patch_torchvision()
        return None  # the normal finders import the module


def _remove_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TorchvisionHook)]


_torchvision_patched = False


def patch_torchvision() -> bool:
    """Make ``import torchvision`` work beside a CPU-only torch (see module docstring).

    Call before anything imports torchvision (``geolib`` modules that use torch call it).

    Returns:
        True when the op schemas were defined here, False when nothing was needed.
    """
    global _torchvision_patched
    if _torchvision_patched:
        return True
    _remove_hook()  # first: find_spec below would call the hook again
    if importlib.util.find_spec("torchvision") is None:
        return False
    if "torchvision" in sys.modules:  # already imported (successfully): nothing to do
        return False
    import torch

    if torch.cuda.is_available():
        return False
    spec = importlib.util.find_spec("torchvision")
    from pathlib import Path

    for so in sorted(Path(spec.origin).parent.glob("_C*.so")):
        try:  # torchvision's own ops load: it matches this torch, nothing to patch
            torch.ops.load_library(str(so))
            return False
        except (OSError, RuntimeError):
            break
    lib = torch.library.Library("torchvision", "DEF")  # noqa: F841 - kept alive below
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    globals()["_torchvision_lib"] = lib
    _torchvision_patched = True
    return True


class HubUnavailable(RuntimeError):
    """A model or data set had to come from the Hugging Face hub and could not (offline, not cached)."""


def hub_offline() -> bool:
    """True when hub downloads are switched off for this process (``HF_HUB_OFFLINE``, geolib's default)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_load(what: str):
    """Context manager around a hub load: a failure becomes one clear :class:`HubUnavailable`.

    Offline (the default of every profile but ``paper``) a load that is not in the local cache
    fails at once, without network retries, and the message says how to download once.

    Args:
        what: what is being loaded, with its id and revision (``"segmenter facebook/... @ 3f2a…"``).
    """
    from contextlib import contextmanager

    @contextmanager
    def _cm():
        try:
            yield
        except HubUnavailable:
            raise
        except (OSError, ValueError, RuntimeError) as exc:
            if hub_offline():
                raise HubUnavailable(
                    f"{what} is not in the local Hugging Face cache and hub downloads are off (HF_HUB_OFFLINE=1, "
                    "geolib's default). The paper profile downloads it once: start Python or the notebook kernel "
                    f"with HF_HUB_OFFLINE=0 on a machine that reaches the hub. ({type(exc).__name__}: {str(exc)[:300]})"
                ) from exc
            raise HubUnavailable(f"{what} could not be loaded from the hub: {type(exc).__name__}: {str(exc)[:300]}") from exc

    return _cm()


class UnpinnedRevision(ValueError):
    """A hub download without a pinned 40-hex commit (a branch such as ``main`` moves under a study)."""


def pinned_revision(model_id: str, revision: str | None, entry: str) -> str | None:
    """The revision to load ``model_id`` at, refusing a download that is not pinned to a commit.

    A local folder needs no revision. With hub downloads off (``HF_HUB_OFFLINE=1``) an empty
    revision reads whatever the local cache holds and downloads nothing. With downloads on, the
    revision must be a 40-hex commit.

    Args:
        model_id: hub id or local folder.
        revision: the pinned commit from the params file (``""``/None: not pinned).
        entry: the params entry that pins it (``"segmenter_revision"``), named in the error.

    Raises:
        UnpinnedRevision: a branch, tag or malformed hash, or no revision while downloads are on.
    """
    from pathlib import Path

    from geolib.params import is_commit

    if Path(str(model_id)).is_dir():
        return revision or None
    if revision and not is_commit(revision):
        raise UnpinnedRevision(f"{entry} = {revision!r} for {model_id} is not a 40-hex commit hash: a branch or tag "
                               "can move; pin the commit (huggingface-cli download prints it)")
    if not revision and not hub_offline():
        raise UnpinnedRevision(f"{entry} is not set: {model_id} would be downloaded at the hub's moving 'main'. Set "
                               f"{entry} in the params file to the 40-hex commit you mean to use")
    return revision or None


def limit_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in this process: torch's, and numpy's and scikit-learn's BLAS /
    OpenMP pools (threadpoolctl); 0 keeps the defaults."""
    if threads:
        import threadpoolctl
        import torch

        torch.set_num_threads(threads)
        threadpoolctl.threadpool_limits(threads)


@contextlib.contextmanager
def timer(record: dict, key: str):
    """Set ``record[key]`` to the seconds the ``with`` block takes (wall clock, also when it raises)."""
    import time

    start = time.perf_counter()
    try:
        yield
    finally:
        record[key] = time.perf_counter() - start


def _worker_init(threads: int) -> None:
    configure()
    if threads:
        import torch

        torch.set_num_threads(threads)


def _timed(fn, job: dict) -> float:
    """Call ``fn(**job)`` for its side effects (e.g. a model saved to disk); return its seconds."""
    import time

    start = time.perf_counter()
    fn(**job)
    return time.perf_counter() - start


def in_processes(fn, jobs: list[dict], workers: int, threads: int = 1, results: bool = True) -> list:
    """Run ``fn(**job)`` for every job, ``workers`` at a time, each in a fresh (spawned) process.

    For independent CPU work that a small model cannot spread over cores itself: notebook 07's
    training seeds run side by side this way, one torch thread each. ``fn`` must be importable
    (a ``geolib`` function, not a notebook's), and jobs and results are pickled. A job that fails
    raises its error here, after the others have finished or been cancelled.

    Args:
        fn: the function, e.g. :func:`geolib.gre.train_seed`.
        jobs: keyword arguments of each call.
        workers: processes at once; 1 or fewer runs the jobs here, one after another.
        threads: torch intra-op threads in each worker (0: torch's default).
        results: return ``fn``'s results; False: return each call's seconds instead (for work that
            saves what it makes, such as a trained model, which is not worth sending back).

    Returns:
        ``fn``'s results (or seconds), in the order of ``jobs``.
    """
    if not results:
        jobs, fn = [{"fn": fn, "job": job} for job in jobs], _timed
    if workers <= 1 or len(jobs) <= 1:
        return [fn(**job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")  # a fork of a process holding torch threads can hang
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context,
                             initializer=_worker_init, initargs=(threads,)) as pool:
        futures = [pool.submit(fn, **job) for job in jobs]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
