"""Execute every notebook (preset "ci"), check it with nbval, and build the book strictly.

The notebooks are executed once per session by ``scripts/build_book.py`` (the code behind
``make book``) into a build folder; the fixtures ``executed`` and ``html`` in conftest.py
share that build with test_browser.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SANITIZE = REPO / "tests" / "nbval_sanitize.cfg"

pytestmark = pytest.mark.slow


def test_every_notebook_executed(executed):
    assert NOTEBOOKS, "notebooks/ holds no notebook"
    assert sorted(p.name for p in executed) == [p.name for p in NOTEBOOKS]
    for path in executed:
        assert path.stat().st_size > 0


def test_injected_parameters_are_hidden(executed):
    import nbformat

    for path in executed:
        nb = nbformat.read(path, as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1, f"{path.name}: papermill did not inject the ci preset"
        assert "hide-input" in injected[0].metadata["tags"]


def test_executed_notebooks_pass_nbval(executed):
    cmd = [
        sys.executable, "-m", "pytest", "-q", "--nbval-lax", "--nbval-current-env",
        "-p", "no:cacheprovider", *map(str, executed),
    ]
    if SANITIZE.exists():
        cmd[5:5] = ["--nbval-sanitize-with", str(SANITIZE)]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    env.pop("MPLBACKEND", None)  # notebooks keep the inline backend, as in the book build
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]


def test_book_builds_strictly(html):
    index = html / "index.html"
    assert index.is_file()
    pages = list(html.rglob("*.html"))
    for nb in NOTEBOOKS:
        assert (html / "notebooks" / f"{nb.stem}.html").is_file(), f"no page for {nb.name}"
    with_traceback = [
        str(p.relative_to(html)) for p in pages if "Traceback" in p.read_text(errors="replace")
    ]
    assert not with_traceback, f"pages containing a traceback: {with_traceback}"


def test_pages_show_figures_not_their_text(html):
    """A figure that failed to render shows up as its repr; an unresolved glue key as a warning in the page."""
    bad = [str(p.relative_to(html)) for p in (html / "notebooks").glob("*.html")
           if "Figure size" in p.read_text(errors="replace")]
    assert not bad, f"pages with a figure rendered as text: {bad}"
