"""Bad inputs, one by one: each gives the project's own error or warning, with a message that
names the file, column, row or term and the offending value (never a raw traceback from numpy,
pandas or PyTensor, and never silent garbage).

Cases already covered elsewhere (tests/test_data_errors.py, tests/test_models_structure.py,
tests/test_cli.py) are not repeated; the ones here are variants or new. Sampling happens once
(a tiny fit that shows separation, a one-respondent LA and income in pence all still fit).
"""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from test_analysis_support import fake_fit, fake_glmer, simulate

from analysis import figures
from analysis.cli import main as cli
from analysis.report import write_report
from data.areas import harmonise_la_code, harmonise_la_codes
from data.errors import DataError
from data.synthetic import generate_release
from data.ukhls import load_extra_area, read_release
from models import (
    DataWarning,
    FitFileError,
    FormulaError,
    PriorError,
    SamplerSettingsError,
    build_model_data,
    fit,
    load_fit,
    resolve_priors,
)


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 300
    return pd.DataFrame(
        {
            "y": rng.integers(0, 2, n),
            "x": rng.normal(size=n),
            "w": rng.normal(size=n),
            "z": rng.normal(size=n),
            "income": rng.lognormal(7, 0.4, n),
            "income_eq": rng.lognormal(7, 0.4, n),
            "g": rng.choice([f"E0700{k:04d}" for k in range(10)], n),
            "s": rng.integers(0, 6, n),
            "t": np.full(n, 5),
        }
    )


def _set(d: pd.DataFrame, col: str, row: int, value) -> pd.DataFrame:
    d = d.copy()
    if not isinstance(value, int | float):
        d[col] = d[col].astype(object)
    elif isinstance(value, float):
        d[col] = d[col].astype(float)
    d.loc[row, col] = value
    return d


# --------------------------------------------------------------------------- formula and data frame

FORMULA_CASES = [
    # (id, formula, mutate, message)
    (
        "outcome-proportion",
        "y ~ x",
        lambda d: _set(d, "y", 7, 0.5),
        r"response 'y' must be 0/1; row 7 has 0\.5",
    ),
    (
        "outcome-text",
        "y ~ x",
        lambda d: d.assign(y=np.where(d.y == 1, "yes", np.where(d.x > 0, "no", "maybe"))),
        r"response 'y' must be 0/1 \(or true/false, or a factor with two levels\), but has 3 level\(s\) "
        r"\['maybe', 'no', 'yes'\]; row 0 has '(yes|no|maybe)'",
    ),
    ("outcome-all-0", "y ~ x", lambda d: d.assign(y=0), r"response 'y' is 0 for every one of the 300 rows"),
    (
        "successes-over-trials",
        "p(s, t) ~ x",
        lambda d: _set(d, "s", 4, 6),
        r"successes exceed trials \(trials 5\); row 4 has 6",
    ),
    (
        "negative-trials",
        "p(s, t) ~ x",
        lambda d: _set(d, "t", 4, -1),
        r"trials 't' must be >= 0; row 4 has -1",
    ),
    (
        "negative-failures",
        "cbind(s, f) ~ x",
        lambda d: _set(d.assign(f=6 - d.s), "f", 9, -2),
        r"failures 'f' must be >= 0 \(successes exceed trials\); row 9 has -2",
    ),
    (
        "fractional-count",
        "p(s, t) ~ x",
        lambda d: _set(d, "s", 2, 2.5),
        r"must be whole counts; row 2 has 2\.5",
    ),
    (
        "binomial-all-failures",
        "p(s, t) ~ x",
        lambda d: d.assign(s=0),
        r"every one of the 1500 trials is a failure",
    ),
    ("single-level-factor", "y ~ x + c", lambda d: d.assign(c="a"), r"predictor 'c' .* single level 'a'"),
    (
        "constant-varying-slope",
        "y ~ x + (1 + c | g)",
        lambda d: d.assign(c=2.0),
        r"varying term 'c' of \(1 \+ c \| g\) takes the single value 2",
    ),
    (
        "constant-after-missing-rows",
        "y ~ x + w",
        lambda d: d.assign(w=np.where(d.index < 100, np.nan, 1.5)),
        r"predictor 'w' .* single value 1\.5 in every row used",
    ),
    (
        "all-missing-predictor",
        "y ~ x",
        lambda d: d.assign(x=np.nan),
        r"column 'x' has no usable value: all 300",
    ),
    ("all-missing-group", "y ~ x + (1 | g)", lambda d: d.assign(g=None), r"column 'g' has no usable value"),
    (
        "text-in-numeric-predictor",
        "y ~ x",
        lambda d: _set(d, "x", 3, "n/a"),
        r"column 'x' looks numeric but holds text; row 3 has 'n/a'",
    ),
    (
        "misspelt-term",
        "y ~ incom + x",
        None,
        r"term 'incom' is not a column of the data; did you mean 'income'",
    ),
    (
        "collinear-three",
        "y ~ x + w + z + v",
        lambda d: d.assign(v=d.x - 2 * d.w),
        r"rank deficient .*'x', 'w', 'v' are collinear",
    ),
    ("no-tilde", "y + x", None, r"formula 'y \+ x' has no '~'"),
    (
        "unknown-nested-group",
        "y ~ x + (1 | g/klass)",
        None,
        r"grouping factor of \(1 \| g/klass\): term 'klass'",
    ),
    ("empty-group", "y ~ x + (1 | )", None, r"'\(1 \| \)' needs an expression and a group"),
    ("offset", "y ~ x + offset(w)", None, r"offset\(\) terms are not supported"),
]


@pytest.mark.parametrize(
    ("formula", "mutate", "message"), [c[1:] for c in FORMULA_CASES], ids=[c[0] for c in FORMULA_CASES]
)
def test_bad_formula_or_data_is_named(df, formula, mutate, message):
    data = mutate(df) if mutate else df
    with pytest.raises(FormulaError, match=message):
        build_model_data(formula, data)


def test_data_that_is_not_a_data_frame():
    with pytest.raises(FormulaError, match="data must be a pandas DataFrame, got dict"):
        build_model_data("y ~ x", {"y": [0, 1], "x": [1.0, 2.0]})


def test_nan_in_a_predictor_is_dropped_and_counted(df):
    d = df.copy()
    d.loc[[3, 8, 9], "x"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # missing values are routine: no warning
        md = build_model_data("y ~ x + (1 | g)", d)
    text = md.drop_table().to_string()
    assert re.search(r"dropped: missing or non-finite x\s+3", text), text
    assert md.n_obs == 297


def test_inf_in_a_predictor_warns_and_is_dropped(df):
    d = _set(df, "x", 3, np.inf)
    with pytest.warns(DataWarning, match=r"column 'x' has 1 infinite value\(s\) \(first: row 3 = inf\)"):
        md = build_model_data("y ~ x", d)
    assert md.drops == {"missing or non-finite x": 1}


def test_few_groups_for_a_varying_slope_warns(df):
    d = df.assign(h=np.where(df.index % 2 == 0, "a", "b"))
    with pytest.warns(
        DataWarning, match=r"'h' of \(1 \+ x \| h\) has only 2 level\(s\).*varying slope\(s\) x"
    ):
        build_model_data("y ~ x + (1 + x | h)", d)


# --------------------------------------------------------------------------- one tiny fit


def test_complete_separation_warns(df):
    d = df.assign(y=(df.x > 0.3).astype(int))
    with pytest.warns(
        DataWarning, match=r"perfect separation: predictor 'x' completely separates the outcome 'y'"
    ):
        build_model_data("y ~ x + w", d)


@pytest.fixture(scope="module")
def odd_data() -> pd.DataFrame:
    """A rare category whose 12 members all have y = 1 (quasi-complete separation), income in
    pence, and an LA with one respondent."""
    rng = np.random.default_rng(2)
    n = 240
    x = rng.normal(size=n)
    y = rng.binomial(1, 1 / (1 + np.exp(-0.5 * x)))
    rare = np.zeros(n, dtype=int)
    rare[-12:] = 1
    y[-12:] = 1
    lad = rng.choice([f"E0600{k:04d}" for k in range(12)], n).astype(object)
    lad[0] = "E09000001"  # one respondent
    income_p = rng.lognormal(np.log(150_000), 0.5, n)  # monthly income in pence
    return pd.DataFrame({"y": y, "x": x, "rare": rare, "income_p": income_p, "lad": lad})


@pytest.fixture(scope="module")
def odd_fit(odd_data):
    with pytest.warns(DataWarning) as record:
        f = fit(
            "y ~ x + rare + income_p + (1 | lad)",
            odd_data,
            chains=2,
            draws=150,
            tune=150,
            seed=5,
            progressbar=False,
        )
    return f, [str(w.message) for w in record if issubclass(w.category, DataWarning)]


def test_separation_warns_and_the_prior_holds_the_estimate(odd_fit):
    f, messages = odd_fit
    pattern = (
        r"perfect separation: predictor 'rare' quasi-completely separates .*every row with rare > 0 has y = 1"
    )
    assert any(re.search(pattern, m) for m in messages), messages
    b = f.posterior()["b"].sel(coef="rare").values
    assert np.isfinite(b).all()
    prior_sd = f.priors["b[rare]"].params[1]
    assert b.mean() > 0  # the direction is known
    assert np.quantile(np.abs(b), 0.99) < 4 * prior_sd  # the size stays in the prior's range


def test_one_respondent_la_warns_and_still_fits(odd_fit):
    f, messages = odd_fit
    assert any(re.search(r"'lad': 1 of 13 levels have a single row \('E09000001'\)", m) for m in messages)
    r = f.posterior()["r_lad"].sel(lad="E09000001").values
    assert np.isfinite(r).all()


def test_income_in_pence_warns_and_fits_on_a_sensible_scale(odd_fit, odd_data):
    f, messages = odd_fit
    assert any(
        re.search(r"'income_p' is on an extreme scale .*divide it by a power of 10", m) for m in messages
    )
    sd = float(np.std(odd_data["income_p"]))
    assert f.priors["b[income_p]"].params[1] == pytest.approx(2.5 / sd, rel=1e-3)
    per_sd = f.posterior()["b"].sel(coef="income_p").values * sd  # log-odds per SD of income
    assert np.isfinite(per_sd).all() and np.abs(per_sd).mean() < 2.5 * 4


# --------------------------------------------------------------------------- priors

PRIOR_CASES = [
    ("typo-name", {"b[ww]": "normal(0, 1)"}, r"unknown prior name 'b\[ww\]' \(did you mean 'b\[w\]'\?\)"),
    ("sd-all-normal", {"sd": "normal(0, 1)"}, r"prior for 'sd' must be positive-valued"),
    ("b-all-lkj", {"b": "lkj(2)"}, r"prior for 'b' must be normal or student_t, got lkj\(2\)"),
    ("infinite-mean", {"b[x]": "normal(inf, 1)"}, r"'normal\(inf, 1\)': mu must be a finite number"),
    ("unclosed", {"b[x]": "normal(0, 1"}, r"cannot read prior 'normal\(0, 1'"),
    ("text-parameter", {"Intercept": "normal(0, wide)"}, r"'normal\(0, wide\)' has a non-numeric parameter"),
    ("zero-rate", {"sd_g": "exponential(0)"}, r"lam must be positive, got 0"),
    ("not-a-dict", ["normal(0, 1)"], r"priors must be a dict .* got list"),
]


@pytest.mark.parametrize(
    ("overrides", "message"), [c[1:] for c in PRIOR_CASES], ids=[c[0] for c in PRIOR_CASES]
)
def test_bad_prior_is_named(df, overrides, message):
    md = build_model_data("y ~ x + w + (1 + x | g)", df)
    with pytest.raises(PriorError, match=message):
        resolve_priors(md, overrides)


# --------------------------------------------------------------------------- sampler settings

SETTINGS_CASES = [
    ("draws-negative", {"draws": -5}, r"draws must be an integer >= 1, got -5"),
    ("chains-fractional", {"chains": 2.5}, r"chains must be an integer >= 1, got 2\.5"),
    (
        "target-accept-0",
        {"target_accept": 0.0},
        r"target_accept must be between 0 and 1 \(exclusive\), got 0\.0",
    ),
    ("target-accept-1", {"target_accept": 1}, r"between 0 and 1 \(exclusive\), got 1"),
    ("target-accept-text", {"target_accept": "0.9"}, r"between 0 and 1 \(exclusive\), got '0\.9'"),
    ("unknown-sampler", {"sampler": "NUTS"}, r"unknown sampler 'NUTS'; choose one of nutpie, pymc, numpyro"),
    ("unknown-adaptation", {"adaptation": "full"}, r"adaptation must be 'low_rank', 'diag' or 'draw_diag'"),
    ("negative-seed", {"seed": -3}, r"seed must be an integer from 0 to 2\*\*32 - 1 .*got -3"),
    ("text-seed", {"seed": "abc"}, r"seed must be an integer .*got 'abc'"),
    ("zero-cores", {"cores": 0}, r"cores must be an integer >= 1 .*got 0"),
]


@pytest.mark.parametrize(
    ("kwargs", "message"), [c[1:] for c in SETTINGS_CASES], ids=[c[0] for c in SETTINGS_CASES]
)
def test_bad_sampler_settings_are_named(df, kwargs, message):
    with pytest.raises(SamplerSettingsError, match=message):
        fit("y ~ x", df, progressbar=False, **kwargs)


# --------------------------------------------------------------------------- fit files


@pytest.fixture(scope="module")
def saved_fit(tmp_path_factory) -> Path:
    data, _ = simulate(n_la=8, n=300)
    return fake_fit(data, draws=50).save(tmp_path_factory.mktemp("fits") / "fake.nc")


def test_fit_file_round_trips(saved_fit):
    assert load_fit(saved_fit).md.n_obs == 300  # the baseline for the damaged copies below


def test_corrupt_netcdf(tmp_path):
    p = tmp_path / "corrupt.nc"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    with pytest.raises(FitFileError, match=r"cannot read fit file .*corrupt\.nc: not a complete NetCDF file"):
        load_fit(p)


def test_truncated_netcdf(saved_fit, tmp_path):
    p = tmp_path / "truncated.nc"
    p.write_bytes(saved_fit.read_bytes()[: saved_fit.stat().st_size // 2])
    with pytest.raises(FitFileError, match=r"truncated\.nc: not a complete NetCDF file"):
        load_fit(p)


def test_damaged_posterior_is_detected_by_its_checksum(saved_fit, tmp_path):
    raw = bytearray(saved_fit.read_bytes())
    draws = load_fit(saved_fit).posterior()["r_lad"].values
    at = bytes(raw).find(np.ascontiguousarray(draws).tobytes()[:64])
    assert at > 0  # contiguous storage: the draws are in the file as written
    raw[at : at + 800] = b"\x00" * 800
    p = tmp_path / "damaged.nc"
    p.write_bytes(bytes(raw))
    with pytest.raises(
        FitFileError, match=r"damaged\.nc is damaged: its posterior draws do not match the checksum"
    ):
        load_fit(p)


def test_missing_fit_file(tmp_path):
    with pytest.raises(FitFileError, match=r"fit file .*nowhere\.nc does not exist"):
        load_fit(tmp_path / "nowhere.nc")


def test_netcdf_that_is_not_a_fit(tmp_path):
    p = tmp_path / "other.nc"
    xr.Dataset({"a": ("x", [1.0, 2.0])}).to_netcdf(p, engine="h5netcdf")
    with pytest.raises(FitFileError, match=r"other\.nc is a NetCDF file but not a fit saved by this project"):
        load_fit(p)


def test_folder_given_as_fit_file(tmp_path):
    with pytest.raises(FitFileError, match=r"cannot read fit file"):
        load_fit(tmp_path)


# --------------------------------------------------------------------------- UKHLS files and LA codes


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return generate_release(tmp_path_factory.mktemp("src") / "rel", n=1_000, seed=3, layout="flat")


@pytest.fixture
def rel(source, tmp_path) -> Path:
    dst = tmp_path / "rel"
    shutil.copytree(source, dst)
    return dst


def _read_err(rel: Path, match: str) -> DataError:
    with pytest.raises(DataError, match=match) as info:
        read_release(rel)
    return info.value


def test_duplicate_pidp_in_a_later_wave(rel):
    p = rel / "g_indresp.tab"
    d = pd.read_csv(p, sep="\t")
    pd.concat([d, d.iloc[[4]]], ignore_index=True).to_csv(p, sep="\t", index=False)
    e = _read_err(rel, rf"g_indresp\.tab: duplicate pidp {d.pidp.iloc[4]} in data rows 5, {len(d) + 1}")
    assert (e.file, e.column) == ("g_indresp.tab", "pidp")


def test_empty_la_file(rel):
    (rel / "f_oslaua_protect.tab").write_bytes(b"")
    _read_err(rel, r"f_oslaua_protect\.tab: the file is empty")


def test_wave_g_file_read_as_wave_i(rel):
    shutil.copy(rel / "g_indresp.tab", rel / "i_indresp.tab")
    e = _read_err(rel, r"i_indresp\.tab: column 'g_hidp' carries the wave prefix 'g_' \(wave 7\)")
    assert e.column == "g_hidp"


def test_text_in_a_numeric_household_column(rel):
    p = rel / "f_hhresp.tab"
    d = pd.read_csv(p, sep="\t")
    d["f_fihhmnnet1_dv"] = d["f_fihhmnnet1_dv"].astype(object)
    d.loc[2, "f_fihhmnnet1_dv"] = "lots"
    d.to_csv(p, sep="\t", index=False)
    e = _read_err(rel, r"f_hhresp\.tab: column 'f_fihhmnnet1_dv' must be numeric, but data row 3 .* 'lots'")
    assert e.row == 3


def test_unclosed_quote_in_a_tab_file(rel):
    p = rel / "f_hhresp.tab"
    lines = p.read_text().splitlines()
    lines[5] = '"' + lines[5]
    p.write_text("\n".join(lines) + "\n")
    _read_err(rel, r"f_hhresp\.tab: not a well-formed tab-delimited file .*EOF inside string")


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # pandas, reading junk
def test_corrupt_stata_file(rel):
    (rel / "i_indresp.tab").unlink()
    (rel / "i_indresp.dta").write_bytes(b"not stata" * 50)
    _read_err(rel, r"i_indresp\.dta: not a readable Stata \.dta file")


def test_unknown_la_code_alone():
    with pytest.raises(DataError, match=r"LA code 'E0600004' matches no GB local authority of 2011-2024"):
        harmonise_la_code("E0600004")


def test_unknown_la_codes_name_file_column_and_rows():
    codes = pd.Series(["E06000001", "X123", "x123 "], index=[1, 2, 3])
    with pytest.raises(
        DataError, match=r"mine\.csv, column 'la': LA code 'X123' \(row 2 and 1 more\)"
    ) as info:
        harmonise_la_codes(codes, source="mine.csv", column="la")
    assert (info.value.value, info.value.row) == ("X123", 2)


def test_missing_extra_area_file(tmp_path):
    with pytest.raises(DataError, match=r"extra area file not found: .*parks\.csv"):
        load_extra_area(tmp_path / "parks.csv")


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def csv(df, tmp_path) -> Path:
    p = tmp_path / "mine.csv"
    df.to_csv(p, index=False)
    return p


def _cli_error(args: list[str], capsys) -> str:
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def test_cli_csv_with_text_in_a_numeric_column(csv, tmp_path, capsys):
    d = pd.read_csv(csv)
    d["x"] = d["x"].astype(object)
    d.loc[3, "x"] = "n/a "
    d.loc[4, "x"] = "missing"
    d.to_csv(csv, index=False)
    err = _cli_error(["fit", "y ~ x + (1 | g)", str(csv), "--out", str(tmp_path / "f.nc")], capsys)
    assert re.search(r"column 'x' looks numeric but holds text; row 3 has 'n/a' \(2 such rows\)", err), err
    assert not (tmp_path / "f.nc").exists()


def test_cli_csv_with_a_text_outcome(csv, tmp_path, capsys):
    d = pd.read_csv(csv)
    d["y"] = np.where(d["y"] == 1, "yes", np.where(d["x"] > 0, "no", "maybe"))
    d.to_csv(csv, index=False)
    err = _cli_error(["fit", "y ~ x", str(csv), "--out", str(tmp_path / "f.nc")], capsys)
    assert "response 'y' must be 0/1" in err and "3 level(s)" in err


def test_cli_ragged_csv(csv, tmp_path, capsys):
    with csv.open("a") as fh:
        fh.write("1,2,3,4,5,6,7,8,9,10,11,12\n")
    err = _cli_error(["fit", "y ~ x", str(csv), "--out", str(tmp_path / "f.nc")], capsys)
    assert "mine.csv: not a well-formed CSV file" in err and "line 302" in err


def test_cli_binary_file_as_csv(tmp_path, capsys):
    p = tmp_path / "data.csv"
    p.write_bytes(b"y,x\n\xff\xfe\x00\x81\n")
    err = _cli_error(["fit", "y ~ x", str(p), "--out", str(tmp_path / "f.nc")], capsys)
    assert "data.csv: not a text CSV file" in err


def test_cli_folder_as_csv(tmp_path, capsys):
    err = _cli_error(["fit", "y ~ x", str(tmp_path), "--out", str(tmp_path / "f.nc")], capsys)
    assert "is a folder, not a CSV file" in err


def test_cli_estimates_file_without_se(saved_fit, tmp_path, capsys):
    est = tmp_path / "stata.csv"
    pd.DataFrame({"term": ["_cons", "age50"], "estimate": [0.1, 0.2]}).to_csv(est, index=False)
    err = _cli_error(["compare", str(saved_fit), "--estimates", str(est)], capsys)
    assert "stata.csv: missing column(s) se" in err


# --------------------------------------------------------------------------- disclosure control

SMALL = {"E09000099": "Tiny Borough", "E09000098": "Little Parish"}


def _visible(html: str) -> str:
    html = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    return re.sub(r'src="data:image/png;base64,[^"]+"', 'src=""', html)


def test_real_data_outputs_never_show_an_la_below_min_cell(tmp_path, monkeypatch):
    """Every file the report writes and every table handed to a figure omits LAs with fewer
    than k respondents: two small LAs (5 and 3 respondents) and two fits, one of them on a
    subset of rows so an LA that is large enough in one fit is small in the other."""
    data, names = simulate(n_la=20, n=700, seed=8)
    data.loc[5:7, "lad"] = "E09000098"  # a second small LA: 3 respondents
    names = {**names, **SMALL}
    k = 10
    sizes = data["lad"].value_counts()
    subset = data[~data["lad"].isin(sizes.index[sizes >= k][:1])].copy()
    subset = pd.concat([subset, data[data["lad"] == sizes.index[sizes >= k][0]].head(k - 1)])
    small_in_subset = sizes.index[sizes >= k][0]
    fits = {"full": fake_fit(data), "subset": fake_fit(subset, seed=1)}
    ranef = pd.DataFrame(
        [("lad", code, "(Intercept)", 0.1, 0.2) for code in sorted(set(data["lad"]))],
        columns=["group", "level", "term", "mode", "condsd"],
    )
    glmer = {
        name: fake_glmer(
            {"(Intercept)": (-0.2, 0.1), "age50": (0.5, 0.1)}, {("lad", "(Intercept)"): 0.4}, ranef=ranef
        )
        for name in fits
    }
    tables: list[pd.DataFrame] = []
    for fname in dir(figures):
        fn = getattr(figures, fname)
        if callable(fn) and fname.endswith(("_plot", "_figure")):

            def spy(*args, _fn=fn, **kwargs):
                tables.extend(a.copy() for a in args if isinstance(a, pd.DataFrame))
                tables.extend(a.table.copy() for a in args if hasattr(a, "table"))
                return _fn(*args, **kwargs)

            monkeypatch.setattr(figures, fname, spy)
    write_report(fits, tmp_path, synthetic=False, la_names=names, min_cell=k, glmer=glmer)

    banned = {"full": set(SMALL) | set(SMALL.values()), "subset": set(SMALL) | set(SMALL.values())}
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".csv", ".md", ".html")]
    assert len([p for p in files if p.suffix == ".csv"]) >= 4
    for p in files:
        text = p.read_text(encoding="utf-8")
        text = _visible(text) if p.suffix == ".html" else text
        for word in banned["full"]:
            assert word not in text, f"{word} in {p.name}"
        if p.name.startswith("subset"):  # 9 respondents in the subset fit: suppressed there
            assert small_in_subset not in text and names[small_in_subset] not in text, p.name
    level_tables = [t for t in tables if "level" in t.columns]
    assert len(level_tables) >= 6  # caterpillar, slopes, shrinkage for each fit
    for t in level_tables:
        assert not set(t["level"].astype(str)) & set(SMALL), t.columns
        assert (t["n"] >= k).all()
    html = _visible((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert "2 LAs with fewer than 10 respondents suppressed" in html or "3 LAs with fewer" in html
