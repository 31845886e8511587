"""Consistency checks between pyproject.toml, constraints.txt, environment.yml and notebooks."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        m = PIN.match(line)
        if m:
            pins[_canon(m.group(1))] = m.group(2)
    return pins


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def constraints() -> dict[str, str]:
    return _pins((REPO / "constraints.txt").read_text().splitlines())


@pytest.fixture(scope="module")
def environment() -> dict:
    return yaml.safe_load((REPO / "environment.yml").read_text())


def _pip_section(env: dict) -> list[str]:
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "environment.yml needs exactly one pip: section"
    return [str(x) for x in sections[0]]


def test_environment_python_is_311(environment):
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    pythons = [d.replace(" ", "") for d in conda if re.match(r"^python\b", d)]
    assert pythons, "environment.yml does not pin python"
    assert pythons == ["python=3.11"] or all(p.startswith("python=3.11") for p in pythons)
    assert "pip" in conda


def test_environment_installs_package_with_pyproject_extras(environment, pyproject):
    pip = _pip_section(environment)
    editable = [x for x in pip if re.match(r"^-e\s+\.", x)]
    assert len(editable) == 1, f"expected one '-e .[extras]' line, got {editable}"
    m = re.match(r"^-e\s+\.\[([^\]]*)\]\s*$", editable[0])
    assert m, editable[0]
    extras = {e.strip() for e in m.group(1).split(",")}
    declared = set(pyproject["project"]["optional-dependencies"])
    assert extras == declared


def test_environment_pins_match_constraints(environment, constraints):
    env_pins = _pins(_pip_section(environment))
    assert env_pins, "environment.yml pins nothing"
    mismatched = {
        name: (ver, constraints.get(name))
        for name, ver in env_pins.items()
        if constraints.get(name) != ver
    }
    assert not mismatched, f"environment.yml vs constraints.txt: {mismatched}"


def test_constraints_cover_the_doc_stack(constraints, pyproject):
    for name in ("jupyter-book", "sphinx", "myst-parser", "myst-nb", "sphinx-book-theme",
                 "pydata-sphinx-theme", "sphinxcontrib-bibtex", "jupyter-cache",
                 "papermill", "nbval", "pytest"):
        assert name in constraints, f"{name} is not pinned in constraints.txt"
    # torch stays a range: a CUDA torch already installed must keep working.
    assert "torch" not in constraints
    book = pyproject["project"]["optional-dependencies"]["book"]
    jb = [d for d in book if d.startswith("jupyter-book")]
    assert jb == [f"jupyter-book=={constraints['jupyter-book']}"]


def test_test_extra_includes_book_extra(pyproject):
    extras = pyproject["project"]["optional-dependencies"]
    assert set(extras["book"]) <= set(extras["test"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_kernel_and_parameters(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", (
        f"{path.name}: kernelspec.name must be 'python3' (papermill/nbval run with -k python3)"
    )
    tagged = [
        c for c in nb["cells"]
        if c["cell_type"] == "code" and "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    assert len(tagged) == 1, f"{path.name}: needs exactly one code cell tagged 'parameters'"


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebook"
