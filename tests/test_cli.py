"""The command line: fit a CSV, summarise the saved fit, clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    rng = np.random.default_rng(3)
    n, J = 600, 20
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    y = rng.binomial(1, 1 / (1 + np.exp(-(0.2 + 0.8 * x + rng.normal(0, 0.5, J)[g]))))
    path = tmp_path_factory.mktemp("cli") / "mine.csv"
    pd.DataFrame({"y": y, "x": x, "school": [f"s{k}" for k in g]}).to_csv(path, index=False)
    return path


def test_fit_then_summarise(csv, tmp_path, capsys):
    out = tmp_path / "fit.nc"
    code = main(
        [
            "fit",
            "y ~ x + (1 | school)",
            str(csv),
            "--out",
            str(out),
            "--chains",
            "2",
            "--draws",
            "100",
            "--tune",
            "150",
            "--seed",
            "4",
            "--prior",
            "sd_school=exponential(2)",
        ]
    )
    printed = capsys.readouterr().out
    assert out.exists()
    first = printed.splitlines()[0]
    assert first.startswith(("CONVERGED", "NOT CONVERGED"))
    assert code == (0 if first.startswith("CONVERGED") else 3)
    assert main(["summarise", str(out), "--prob", "0.9"]) == 0
    s = capsys.readouterr().out
    assert "90% equal-tailed interval" in s and "b[x]" in s and "sd_school" in s
    from models import load_fit

    assert str(load_fit(out).priors["sd_school"]) == "exponential(2)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "y ~ x", "nope.csv", "--out", "f.nc"], "nope.csv does not exist"),
        (["fit", "y ~ z + (1 | school)", "{csv}", "--out", "f.nc"], "'z' is not a column"),
        (["fit", "y ~ x", "{csv}", "--out", "f.nc", "--prior", "sd_lad=halfnormal(1)"], "unknown prior name"),
        (["fit", "y ~ x", "{csv}", "--out", "f.nc", "--prior", "oops"], "write NAME=DIST"),
        (["fit", "y ~ x", "{csv}", "--out", "f.nc", "--chains", "0"], "chains must be"),
        (["fit", "y ~ x", "{empty}", "--out", "f.nc"], "is empty"),
        (["summarise", "{bad}"], "cannot read fit file"),
    ],
)
def test_bad_input_gives_one_clear_line(csv, tmp_path, capsys, args, message):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"garbage")
    args = [a.format(csv=csv, empty=empty, bad=bad) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err
