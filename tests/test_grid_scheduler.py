"""A grid sent to a running Dask scheduler by its address (`--scheduler ADDRESS`), with the
prior sensitivity job: the same draws, results and sensitivity tables as the serial run; and
the report's grid section (forest plots across cells) made from that run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.grid import RESULTS_FILE, SENSITIVITY_FILE, cell_path, load_grid, run_grid, sensitivity_path

N = 1500  # the synthetic cohort of tests/test_grid.py (prepared once, cached)

CATALOGUE = """
[defaults]
chains = 2
draws = 200
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
seed = 11
jobs = ["fit", "psense"]

[priors.default]
[priors.tight]
b = "normal(0, 0.05)"

[sampler.default]
escalate = false
"""


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    from data.prepare import prepare

    return prepare(n=N)[0]


def _spec(tmp: Path):  # noqa: ANN202
    (tmp / "cat.toml").write_text(CATALOGUE)
    (tmp / "grid.toml").write_text(GRID)
    return load_grid(tmp / "grid.toml")


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory, table: pd.DataFrame):  # noqa: ANN201
    """The grid's two cells fitted one by one in this process (shared by the tests below)."""
    tmp = tmp_path_factory.mktemp("grid")
    spec = _spec(tmp)
    run = run_grid(spec, tmp / "serial", table=table, scheduler="serial", progress=False, log=lambda m: None)
    assert not run.failed and len(run.fitted) == 2
    return spec, run


def test_grid_on_a_scheduler_address_equals_serial(tmp_path: Path, table: pd.DataFrame, serial) -> None:  # noqa: ANN001
    """A real LocalCluster (2 process workers, 1 thread each) reached by its address."""
    from distributed import LocalCluster

    from models import load_fit

    spec, serial = serial
    assert spec.jobs == ("fit", "psense")
    done = serial.out
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
    ) as cluster:
        remote = run_grid(
            spec,
            tmp_path / "remote",
            table=table,
            scheduler=cluster.scheduler_address,
            progress=False,
            log=lambda m: None,
        )
    assert not remote.failed and sorted(remote.fitted) == sorted(serial.fitted)
    for c in serial.cells:
        a = load_fit(cell_path(done, c)).posterior()
        b = load_fit(cell_path(tmp_path / "remote", c)).posterior()
        for k in a.data_vars:
            np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=f"{c.name}: {k}")
        assert sensitivity_path(tmp_path / "remote", c).exists()
    for name in (RESULTS_FILE, SENSITIVITY_FILE):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "remote" / name), pd.read_csv(done / name))
    # the sensitivity table: one row per cell and parameter; the tight slope prior (sd 0.05 on
    # every slope) is flagged for both slopes, the default priors leave the slopes alone
    sens = pd.read_csv(done / SENSITIVITY_FILE)
    assert len(sens) == 2 * 4 and set(sens.parameter) == {
        "Intercept",
        "b[female]",
        "b[area_volunteering]",
        "sd_lad[Intercept]",
    }
    slopes = sens[sens.parameter.str.startswith("b[")].set_index(["prior_set", "parameter"])
    assert slopes.loc["tight", "flagged"].all() and (slopes.loc["tight", "prior"] > 0.05).all()
    assert not slopes.loc["default", "flagged"].any()
    # a rerun reuses both the fits and the sensitivity tables
    again = run_grid(spec, done, table=table, scheduler="serial", progress=False, log=print)
    assert again.fitted == [] and len(again.reused) == 2
    pd.testing.assert_frame_equal(again.sensitivity, serial.sensitivity, check_dtype=False)


def test_grid_report_section_has_one_row_per_cell_with_the_fits_intervals(
    tmp_path: Path,
    serial,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    """`sameplace grid SPEC --report` on the finished run (every cell reused) writes the grid
    report: one forest plot for the entry's claim with one row per cell, whose odds ratios and
    interval columns are those `summaries.fixed_effects` gives for each stored fit (column names
    from `summaries.interval_columns`), and the prior-sensitivity flags."""
    from analysis.cli import main
    from analysis.grid_summary import grid_section
    from analysis.summaries import DEFAULT_PROB, fixed_effects, interval_columns
    from models import load_fit

    spec, run = serial
    out = tmp_path / "run"
    import shutil

    shutil.copytree(run.out, out)
    assert (
        main(["grid", str(spec.path), "--out", str(out), "--n", str(N), "--scheduler", "serial", "--report"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "2 complete and reused, 0 to fit" in printed and "grid report written" in printed
    html = (out / "report" / "grid_report.html").read_text()
    md = (out / "report" / "grid_report.md").read_text()
    assert "Grid of fits" in html and "tiny: area_volunteering" in html
    assert html.count("<figure>") == 1 and "data:image/png;base64," in html
    assert "SYNTHETIC DATA" in html and "Prior sensitivity (power-scaling)" in html
    assert "(2 rows)" in html  # the forest's table: one row per cell
    assert "figures/grid_tiny_area_volunteering.png" in md

    section = grid_section(out, tmp_path / "figs", synthetic=True)
    assert section.cells == 2 and len(section.forests) == 1 and section.sensitivity_cells == 2
    forest = section.forests[0]
    low, high = interval_columns("eti", DEFAULT_PROB, "or_")
    assert list(forest.table.label) == ["default", "tight"]  # only the prior set varies
    assert {low, high, "or_median"} <= set(forest.table.columns)
    for cell in run.cells:
        fe = fixed_effects(load_fit(cell_path(out, cell)), DEFAULT_PROB, quiet=True).set_index("term")
        row = forest.table.set_index("cell").loc[cell.name]
        for col in ("or_median", low, high):
            assert row[col] == pytest.approx(fe.loc["area_volunteering", col], rel=1e-12)
    # the tight prior pulls the odds ratio towards 1 and its flags are listed
    t = forest.table.set_index("label")
    assert abs(np.log(t.loc["tight", "or_median"])) < abs(np.log(t.loc["default", "or_median"]))
    assert set(section.sensitivity.parameter) >= {"b[female]", "b[area_volunteering]"}
    assert section.sensitivity["flagged"].all()
    # the fits report takes the same section (`sameplace report FITS --grid RUN`)
    fit = cell_path(out, run.cells[0])
    assert main(["report", str(fit), "--out", str(tmp_path / "rep"), "--no-lme4", "--grid", str(out)]) == 0
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "Grid of fits" in page and "tiny: area_volunteering" in page and "(2 rows)" in page
