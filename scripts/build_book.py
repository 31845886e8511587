#!/usr/bin/env python
"""Execute the notebooks with papermill, then build the Jupyter Book (v1) from the outputs.

The book never executes code itself (``execute_notebooks: "off"`` in ``_config.yml``):
this script is the single execution path, shared by ``make book`` and ``tests/test_book.py``.

Layout of a build rooted at ``--out`` (default ``<repo>/_build``)::

    <out>/src/            staged sources: _config.yml, _toc.yml, book/, notebooks/ (executed)
    <out>/html/           the rendered book (index.html)
    <out>/.doctrees, <out>/jupyter_execute   Sphinx by-products

Usage::

    python scripts/build_book.py                      # default notebook parameters
    python scripts/build_book.py --preset ci          # passes `-p preset ci` to every notebook
    python scripts/build_book.py --out /tmp/b --no-build

The module can also be imported (``stage_and_execute``, ``build_html``) by the tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

REPO_ROOT = Path(__file__).resolve().parents[1]
BOOK_FILES = ("_config.yml", "_toc.yml")
BOOK_DIRS = ("book",)
NOTEBOOK_DIR = "notebooks"
KERNEL_NAME = "python3"
INJECTED_TAG = "injected-parameters"


def _log(msg: str) -> None:
    print(f"[build_book] {msg}", flush=True)


def notebook_paths(repo: Path = REPO_ROOT) -> list[Path]:
    """All committed chapter notebooks, in name order."""
    return sorted(
        p for p in (repo / NOTEBOOK_DIR).glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
    )


def _ignore_checkpoints(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in {".ipynb_checkpoints", "__pycache__"}}


def stage_sources(stage: Path, repo: Path = REPO_ROOT) -> None:
    """Copy the book configuration, the prose and non-notebook assets into ``stage``."""
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in BOOK_FILES:
        shutil.copy2(repo / name, stage / name)
    for name in BOOK_DIRS:
        if (repo / name).is_dir():
            shutil.copytree(repo / name, stage / name, ignore=_ignore_checkpoints)
    # Assets that live next to the notebooks (images, small data files).
    nb_src = repo / NOTEBOOK_DIR
    nb_dst = stage / NOTEBOOK_DIR
    nb_dst.mkdir(parents=True, exist_ok=True)
    if nb_src.is_dir():
        for item in nb_src.iterdir():
            if item.suffix == ".ipynb" or item.name in {".ipynb_checkpoints", "__pycache__"}:
                continue
            if item.is_dir():
                shutil.copytree(item, nb_dst / item.name, ignore=_ignore_checkpoints)
            else:
                shutil.copy2(item, nb_dst / item.name)


def hide_injected_parameters(path: Path) -> None:
    """Fold the papermill ``injected-parameters`` cell (papermill #731 drops the tags)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if INJECTED_TAG in tags and "hide-input" not in tags:
            cell.metadata["tags"] = [*tags, "hide-input"]
            changed = True
    if changed:
        nbformat.write(nb, path)


def execute_notebook(
    src: Path,
    dst: Path,
    parameters: dict[str, Any] | None = None,
    cwd: Path = REPO_ROOT,
    timeout: int | None = None,
) -> Path:
    """Run one notebook with papermill (kernel ``python3``, no progress bar)."""
    import papermill as pm

    dst.parent.mkdir(parents=True, exist_ok=True)
    # The kernel inherits this environment: no progress bars, and no MPLBACKEND (a
    # non-inline backend such as Agg, set for the test runner, would turn every figure
    # into the text "<Figure size ...>").
    saved = {k: os.environ.get(k) for k in ("TQDM_DISABLE", "MPLBACKEND")}
    os.environ["TQDM_DISABLE"] = "1"
    os.environ.pop("MPLBACKEND", None)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(
            str(src),
            str(dst),
            parameters=parameters or {},
            kernel_name=KERNEL_NAME,
            cwd=str(cwd),
            progress_bar=False,
            execution_timeout=timeout,
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    hide_injected_parameters(dst)
    _log(f"executed {src.name} in {time.perf_counter() - t0:.1f} s")
    return dst


def stage_and_execute(
    out: Path,
    preset: str | None = None,
    notebooks: Iterable[Path] | None = None,
    repo: Path = REPO_ROOT,
    timeout: int | None = None,
) -> list[Path]:
    """Stage the book under ``out/src`` and execute every notebook into it.

    ``preset`` is passed as the papermill parameter ``preset`` only when given, so
    ``preset=None`` runs each notebook at its own defaults. Returns the executed paths.
    """
    stage = Path(out) / "src"
    stage_sources(stage, repo)
    params = {"preset": preset} if preset else {}
    executed = []
    for nb in notebooks if notebooks is not None else notebook_paths(repo):
        nb = Path(nb)
        executed.append(
            execute_notebook(nb, stage / NOTEBOOK_DIR / nb.name, params, cwd=repo, timeout=timeout)
        )
    return executed


def _jupyter_book_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    return [sys.executable, "-m", "jupyter_book.cli.main"]


def build_html(out: Path, strict: bool = True) -> Path:
    """Build ``out/src`` with Jupyter Book 1; the HTML lands in ``out/html``.

    ``jupyter-book build SRC --path-output P`` always writes to ``P/_build/html``. For the
    usual ``out = <something>/_build`` (``make book``: ``_build``) it is therefore run as
    ``jupyter-book build _build/src --path-output .``, which puts the book at
    ``_build/html``. Any other ``out`` is built in ``out/.jb`` and moved to ``out/html``.
    """
    out = Path(out).resolve()
    stage = out / "src"
    html = out / "html"
    direct = out.name == "_build"
    path_output = out.parent if direct else out / ".jb"
    for d in (html, None if direct else path_output):
        if d is not None and d.exists():
            shutil.rmtree(d)
    cmd = [*_jupyter_book_cmd(), "build", str(stage), "--path-output", str(path_output)]
    cmd += ["--builder", "html"]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    _log(" ".join(cmd))
    t0 = time.perf_counter()
    env = {**os.environ, "TQDM_DISABLE": "1"}
    subprocess.run(cmd, check=True, env=env, cwd=str(out.parent))
    if not direct:
        shutil.move(str(path_output / "_build" / "html"), str(html))
        shutil.rmtree(path_output)
    _log(f"built {html / 'index.html'} in {time.perf_counter() - t0:.1f} s")
    return html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default=None, help="value for the notebooks' `preset` parameter")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "_build", help="build root (default: _build)"
    )
    parser.add_argument(
        "--timeout", type=int, default=None, help="per-cell execution timeout in seconds"
    )
    parser.add_argument("--no-execute", action="store_true", help="reuse notebooks in OUT/src")
    parser.add_argument("--no-build", action="store_true", help="execute only, skip the HTML")
    parser.add_argument("--no-strict", action="store_true", help="do not turn warnings into errors")
    parser.add_argument("notebooks", nargs="*", type=Path, help="subset of notebooks to execute")
    args = parser.parse_args(argv)

    out = args.out.resolve()
    if not args.no_execute:
        stage_and_execute(out, args.preset, args.notebooks or None, timeout=args.timeout)
    if not args.no_build:
        html = build_html(out, strict=not args.no_strict)
        print(f"Book: {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
