"""Execute every worked-example notebook (``notebooks/*.py``, jupytext percent format).

Each notebook runs top to bottom in a fresh kernel of *this* interpreter (a kernelspec
pointing at ``sys.executable`` is written to a temporary folder and put first on
``JUPYTER_PATH``, so no other Python on the machine is picked up), with the small
settings that the notebooks read from ``SAMEPLACE_NB_*`` environment variables, and with
a temporary working and output folder so nothing lands in the repository. A cell that
raises fails the test. Cheap structural checks (title cell, fixed seed cell) run without
a kernel.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import ipykernel  # noqa: F401  (the kernel the notebooks run in; a dev dependency, so missing = failure)
import jupytext
import nbclient
import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9]*.py"))
KERNEL_NAME = "sameplace-test-python"

#: Small settings used by CI (the notebooks' own defaults, stated explicitly here).
SMALL_SETTINGS = {
    "SAMEPLACE_NB_N": "3000",
    "SAMEPLACE_NB_DRAWS": "300",
    "SAMEPLACE_NB_TUNE": "300",
    "SAMEPLACE_NB_CHAINS": "2",
}


def test_notebooks_exist() -> None:
    names = [p.name for p in NOTEBOOKS]
    assert names, f"no notebooks found in {NOTEBOOK_DIR}"
    for expected in (
        "01_quick_start.py",
        "02_different_people_same_place.py",
        "03_bayes_vs_lme4.py",
        "04_mechanisms.py",
    ):
        assert expected in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_starts_with_title_and_seed(path: Path) -> None:
    nb = jupytext.read(path)
    cells = nb.cells
    assert cells, f"{path.name} has no cells"
    first = cells[0]
    assert first.cell_type == "markdown", f"{path.name}: the first cell must be a markdown title cell"
    assert re.match(r"#\s+\S", first.source.lstrip()), (
        f"{path.name}: the first cell must start with '# Title'"
    )
    code = [c for c in cells if c.cell_type == "code"]
    seeded = [i for i, c in enumerate(code[:2]) if re.search(r"^RANDOM_SEED\s*=\s*\d+\s*$", c.source, re.M)]
    assert seeded, f"{path.name}: one of the first two code cells must set RANDOM_SEED = <integer>"
    # the seed comes before any model is fitted
    first_fit = next((i for i, c in enumerate(code) if re.search(r"\bfit\(", c.source)), len(code))
    assert seeded[0] < first_fit, f"{path.name}: RANDOM_SEED must be set before the first fit"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A kernelspec for this interpreter in a temporary Jupyter data folder."""
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"sameplace test ({sys.executable})",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return {
        "JUPYTER_PATH": os.pathsep.join([str(root), os.environ.get("JUPYTER_PATH", "")]).rstrip(os.pathsep),
        "MPLBACKEND": "Agg",
        **SMALL_SETTINGS,
    }


def _execute(path: Path, tmp_path: Path) -> nbformat.NotebookNode:
    """Run a notebook in the test kernel (environment already set); fail on any cell error."""
    before = set(NOTEBOOK_DIR.iterdir())
    nb = jupytext.read(path)
    # one extra cell at the end reports which interpreter ran the notebook
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": KERNEL_NAME, "language": "python"}
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    t0 = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name}: a cell raised an error:\n{str(exc)[-4000:]}")
    print(f"{path.name}: executed in {time.perf_counter() - t0:.1f} s")
    ran_with = "".join(o.get("text", "") for o in nb.cells[-1].outputs).strip()
    assert Path(ran_with) == Path(sys.executable), f"kernel ran {ran_with!r}, not {sys.executable!r}"
    written = set(NOTEBOOK_DIR.iterdir()) - before
    assert not written, f"{path.name} wrote into the repository: {sorted(map(str, written))}"
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: error outputs {errors}"
    return nb


def _set_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tmp_path: Path) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SAMEPLACE_NB_OUT", str(tmp_path / "outputs"))
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(
    path: Path, kernel_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set_env(monkeypatch, kernel_env, tmp_path)
    _execute(path, tmp_path)


R_NOTEBOOKS = [p for p in NOTEBOOKS if "r_available()" in p.read_text()]


@pytest.mark.parametrize("path", R_NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_without_r(
    path: Path, kernel_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no usable Rscript the lme4 steps are skipped with a message, not failed."""
    _set_env(monkeypatch, kernel_env, tmp_path)
    monkeypatch.setenv("SAMEPLACE_RSCRIPT", str(tmp_path / "no-such-Rscript"))
    nb = _execute(path, tmp_path)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "R not found" in text, "the notebook should say that R is missing"
    assert "install" in text, "the notebook should say what to install"
