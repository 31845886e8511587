"""Shared test helpers, and the book build that test_book.py and test_browser.py share."""
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption(
        "--book-build", type=Path, default=None,
        help="build root for the book the tests build, and its browser screenshots "
             "(default: a temporary folder; make test: _build/test)",
    )


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny models run faster on one thread, and far faster when another process shares the cores. Subprocesses
    (notebook kernels, nbval, the CLI) inherit the setting through OMP_NUM_THREADS unless it is set already."""
    n, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(n)
    if env is None:
        os.environ.pop("OMP_NUM_THREADS")


def isin(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.isin(a, b) through a sorted search (np.isin is much slower on large int64 arrays here)."""
    if len(b) == 0:
        return np.zeros(len(a), dtype=bool)
    s = np.sort(b)
    i = np.minimum(np.searchsorted(s, a), len(s) - 1)
    return s[i] == a


@pytest.fixture(scope="session")
def build_book():
    """scripts/build_book.py, the code behind `make book`, as a module."""
    spec = importlib.util.spec_from_file_location("build_book", REPO / "scripts" / "build_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def build_dir(request, tmp_path_factory) -> Path:
    chosen = request.config.getoption("book_build")
    return chosen.resolve() if chosen else tmp_path_factory.mktemp("book") / "_build"


@pytest.fixture(scope="session")
def executed(build_book, build_dir) -> list[Path]:
    """Every notebook executed by papermill at preset "ci" (once per session)."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    return build_book.stage_and_execute(build_dir, preset="ci")


@pytest.fixture(scope="session")
def html(build_book, build_dir, executed) -> Path:
    """The book built strictly (warnings are errors) from the executed notebooks."""
    return build_book.build_html(build_dir, strict=True)
