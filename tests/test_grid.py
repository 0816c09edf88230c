"""Grids of fits on Dask (`analysis.grid`): the file is checked, a grid on a LocalCluster gives
the draws of the same cells fitted one by one, a worker killed mid-fit loses nothing, and a
rerun reuses every finished cell."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.grid import (
    RESULTS_FILE,
    GridError,
    apply_filter,
    cell_path,
    cell_seed,
    load_grid,
    local_cluster,
    plan_grid,
    run_grid,
)

N = 1500  # synthetic cohort (prepared once, cached under synthetic/ like the other tests)

CATALOGUE = """
[defaults]
chains = 2
draws = 150
tune = 150

[[model]]
name = "tiny"
outcome = "life_satisfied"
formula = "life_satisfied ~ female + area_volunteering + (1 | lad)"
  [[model.claims]]
  finding = 1
  term = "area_volunteering"
  expect = "+"
"""

GRID = """
[grid]
entries = ["tiny"]
catalogue = "cat.toml"
seed = 7
replicates = [1]

[subgroups]
everyone = ""
rural = "urban == 0"

[priors.default]
[priors.tight]
sd_lad = "exponential(3)"

[sampler.default]
escalate = false
"""


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    from data.prepare import prepare

    return prepare(n=N)[0]


def _write(tmp: Path, grid: str = GRID, catalogue: str = CATALOGUE) -> Path:
    (tmp / "cat.toml").write_text(catalogue)
    path = tmp / "grid.toml"
    path.write_text(grid)
    return path


def _posterior(path: Path) -> dict[str, np.ndarray]:
    from models import load_fit

    post = load_fit(path).posterior()
    return {k: post[k].values for k in post.data_vars}


# --------------------------------------------------------------------------- the file


def test_grid_file_is_read_and_crossed(tmp_path: Path, table: pd.DataFrame) -> None:
    spec = load_grid(_write(tmp_path))
    assert spec.subgroups == {"everyone": "", "rural": "urban == 0"}
    cells = plan_grid(spec, table)
    assert [c.name for c in cells] == [
        "tiny__everyone__default__default__r1",
        "tiny__everyone__tight__default__r1",
        "tiny__rural__default__default__r1",
        "tiny__rural__tight__default__r1",
    ]
    # common random numbers across prior sets; other subgroups, other seeds
    assert cells[0].seed == cells[1].seed == cell_seed(7, "tiny", "everyone", 1)
    assert cells[0].seed != cells[2].seed
    assert len({c.key for c in cells}) == 4
    assert cells[1].priors == {"sd_lad": "exponential(3)"} and cells[0].settings["escalate"] is False
    rural = apply_filter(table, "urban == 0 and female == 1")
    assert len(rural) == ((table.urban == 0) & (table.female == 1)).sum() > 0


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('entries = ["tiny"]', 'entries = "tiny"', "[grid] entries = 'tiny'"),
        ("seed = 7", 'seed = "7"', "[grid] seed = '7'"),
        ("seed = 7", "seeds = 7", "unknown key(s) ['seeds']"),
        ('rural = "urban == 0"', 'rural = "urban = 0"', "[subgroups] rural = 'urban = 0'"),
        ('rural = "urban == 0"', 'bad__name = ""', "name 'bad__name'"),
        ('sd_lad = "exponential(3)"', "sd_lad = 3", "[priors.tight] sd_lad = 3"),
        ("escalate = false", "draws = 0", "[sampler.default] draws = 0"),
        ("escalate = false", "drawz = 10", "unknown setting 'drawz'"),
        ("escalate = false", "target_accept = 1.2", "[sampler.default] target_accept = 1.2"),
        ("escalate = false", 'adaptation = "full"', "[sampler.default] adaptation = 'full'"),
        ('catalogue = "cat.toml"', 'catalogue = "nope.toml"', "catalogue = 'nope.toml'"),
        ("[priors.tight]", "[prior.tight]", "unknown table(s) ['prior']"),
    ],
)
def test_malformed_grid_file_is_refused_naming_file_key_and_value(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in GRID
    path = _write(tmp_path, GRID.replace(old, new))
    with pytest.raises(GridError) as err:
        load_grid(path)
    assert str(path) in str(err.value) and message in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('entries = ["tiny"]', 'entries = ["tiny", "huge"]', "no entry named 'huge'"),
        ('rural = "urban == 0"', 'rural = "urbn == 0"', "no column 'urbn'"),
        ('rural = "urban == 0"', 'rural = "urban == 5"', "no rows"),
        ('rural = "urban == 0"', 'rural = "lad < 3"', "column 'lad'"),
        ('rural = "urban == 0"', 'rural = "female == 1"', "entry 'tiny' cannot be fitted there"),
        ('sd_lad = "exponential(3)"', 'sd_region = "exponential(3)"', "[priors.tight] for entry 'tiny'"),
    ],
)
def test_grid_that_does_not_fit_the_data_is_refused_before_fitting(
    tmp_path: Path, table: pd.DataFrame, old: str, new: str, message: str
) -> None:
    path = _write(tmp_path, GRID.replace(old, new))
    with pytest.raises(GridError) as err:
        plan_grid(load_grid(path), table)
    assert str(path) in str(err.value) and message in str(err.value)


def test_example_grid_file_is_valid(table: pd.DataFrame) -> None:
    spec = load_grid(Path(__file__).resolve().parents[1] / "analysis" / "grids" / "example.toml")
    assert len(plan_grid(spec, table)) == 12


def test_prior_sensitivity_grid_file_is_valid(table: pd.DataFrame) -> None:
    spec = load_grid(Path(__file__).resolve().parents[1] / "analysis" / "grids" / "prior_sensitivity.toml")
    assert spec.jobs == ("fit", "psense")
    cells = plan_grid(spec, table)
    assert len(cells) == 9 and {c.prior_set for c in cells} == {"default", "wide_sd", "tight_sd"}
    assert cells[2].priors["sd"] == "exponential(5)"


def test_jobs_must_be_known(tmp_path: Path) -> None:
    path = _write(tmp_path, GRID.replace("seed = 7", 'seed = 7\njobs = ["fit", "loo"]'))
    with pytest.raises(GridError, match=r"\[grid\] jobs = \['fit', 'loo'\]"):
        load_grid(path)


# --------------------------------------------------------------------------- running it


def test_grid_on_dask_equals_serial_and_survives_a_killed_worker(
    tmp_path: Path, table: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 2-worker LocalCluster (processes) fits 4 cells; the worker fitting the slow cell is
    SIGKILLed while it fits. The grid completes with every cell once, draws identical to the
    same cells fitted one by one in this process, and a rerun fits nothing."""
    grid = GRID + "[sampler.long]\nescalate = false\ndraws = 2500\n"
    grid = grid.replace('rural = "urban == 0"\n', "")
    spec = load_grid(_write(tmp_path, grid))
    serial = run_grid(
        spec, tmp_path / "serial", table=table, scheduler="serial", progress=False, log=lambda m: None
    )
    assert len(serial.cells) == 4 and len(serial.fitted) == 4
    slow = next(c for c in serial.cells if c.sampler_set == "long" and c.prior_set == "tight")
    out = tmp_path / "dask"
    killed: list[int] = []

    def kill_when_running() -> None:  # the cell's running marker names its worker process
        marker = out / "running" / f"{slow.name}.json"
        deadline = time.time() + 240
        while time.time() < deadline and not marker.exists():
            time.sleep(0.05)
        if marker.exists():
            time.sleep(0.3)
            pid = json.loads(marker.read_text())["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with local_cluster(2, tmp_path / "workers") as cluster:
        from distributed import Client

        with Client(cluster) as client:
            pids = set(client.run(os.getpid).values())
            killer = threading.Thread(target=kill_when_running)
            killer.start()
            run = run_grid(spec, out, table=table, client=client, progress=False, log=lambda m: None)
            killer.join()
            client.wait_for_workers(2, timeout=120)  # the nanny restarts the killed worker
            after = set(client.run(os.getpid).values())
            dirs = client.run(lambda: (os.environ["PYTENSOR_FLAGS"], os.environ["NUMBA_CACHE_DIR"]))
            compiledirs = client.run(lambda: __import__("pytensor").config.compiledir)
    assert killed and killed[0] in pids, "the slow cell's worker was not killed mid-fit"
    assert killed[0] not in after and len(after) == 2  # the nanny started a fresh worker
    assert not list((out / "running").iterdir())  # the retried cell finished and cleared its marker
    # each worker compiled in its own folders
    assert len(set(compiledirs.values())) == 2
    assert all(str(tmp_path / "workers") in str(d) for d in compiledirs.values())
    assert len({d[1] for d in dirs.values()}) == 2
    # every cell once, the same draws as serial
    assert sorted(run.fitted) == sorted(c.name for c in serial.cells)
    assert sorted(p.name for p in (out / "fits").iterdir()) == sorted(f"{c.name}.nc" for c in serial.cells)
    for c in serial.cells:
        a, b = _posterior(cell_path(tmp_path / "serial", c)), _posterior(cell_path(out, c))
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{c.name}: {k}")
    # the results table: one row per cell and claimed term, odds ratios from fixed_effects
    res = pd.read_csv(out / RESULTS_FILE)
    pd.testing.assert_frame_equal(res, pd.read_csv(tmp_path / "serial" / RESULTS_FILE))
    assert len(res) == 4 and set(res.term) == {"area_volunteering"}
    assert (res.or_eti95_low < res.or_median).all() and (res.or_median < res.or_eti95_high).all()
    assert set(res.seed) == {cell_seed(7, "tiny", "everyone", 1)}
    # a rerun, from the command line, fits nothing: every cell is complete and valid
    from analysis.cli import main

    assert main(["grid", str(spec.path), "--out", str(out), "--n", str(N), "--scheduler", "serial"]) == 0
    assert "4 complete and reused, 0 to fit" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_csv(out / RESULTS_FILE), res)


def test_grid_command_refuses_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.cli import main

    path = _write(tmp_path, GRID.replace("seed = 7", "seed = -1"))
    assert main(["grid", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(path) in err and "[grid] seed = -1" in err
    assert not (tmp_path / "out").exists()


def _fake_fit_cell(cell, table, out, cores=1):  # noqa: ANN001, ANN202  (stands in for a fit)
    if cell.subgroup == "rural":
        raise FloatingPointError(f"no fit for {cell.name}")
    return [{**cell.label(), "key": cell.key, "converged": True, "verdict": "CONVERGED", "term": ""}]


@pytest.mark.parametrize("mode", ["serial", "dask"])
def test_a_failed_cell_does_not_stop_the_grid(
    tmp_path: Path, table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The other cells finish and are tabulated; the failure is reported (exit code 1) and
    the failed cell has no fit, so a rerun tries it again."""
    import analysis.grid as grid

    monkeypatch.setattr(grid, "fit_cell", _fake_fit_cell)
    spec = load_grid(_write(tmp_path, GRID.replace('[priors.tight]\nsd_lad = "exponential(3)"\n', "")))
    if mode == "serial":
        run = run_grid(spec, tmp_path / "out", table=table, scheduler="serial", progress=False, log=print)
    else:
        from distributed import Client

        with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
            run = run_grid(spec, tmp_path / "out", table=table, client=client, retries=1, progress=False)
    assert run.fitted == ["tiny__everyone__default__default__r1"]
    assert list(run.failed) == ["tiny__rural__default__default__r1"]
    assert "FloatingPointError: no fit for tiny__rural" in run.failed["tiny__rural__default__default__r1"]
    assert list(pd.read_csv(tmp_path / "out" / RESULTS_FILE).cell) == ["tiny__everyone__default__default__r1"]
