"""Tests for the lme4 glmer bridge (analysis/lme4.py).

Tests marked ``needs_r`` run R and are skipped, with the reason, when R, lme4 or
jsonlite is missing. Each R call costs a second or two, so fits are shared where possible.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from installed import require_installed

from analysis import lme4
from analysis.lme4 import (
    EstimatesFileError,
    GlmerError,
    GlmerResult,
    RNotAvailableError,
    estimates_from_csv,
    fit_glmer,
    glmer_data,
    normalise_term,
    r_available,
)

POLLS88 = Path(__file__).resolve().parents[1] / "data" / "validation" / "polls88.csv"
CBPP_FORMULA = "cbind(incidence, size - incidence) ~ period + (1 | herd)"

# Laplace fit of cbpp as published in the lme4 documentation (?cbpp; Bates et al. 2015,
# "Fitting linear mixed-effects models using lme4", JSS 67(1), section on glmer).
CBPP_PUBLISHED = {
    "Intercept": (-1.3983, 0.2312),
    "period[2]": (-0.9919, 0.3032),
    "period[3]": (-1.1282, 0.3228),
    "period[4]": (-1.5797, 0.4220),
}
CBPP_HERD_SD = 0.6421


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    require_installed(*r_available())
    return glmer_data("cbpp")


@pytest.fixture(scope="module")
def cbpp_laplace(cbpp: pd.DataFrame) -> GlmerResult:
    return fit_glmer(CBPP_FORMULA, cbpp, nAGQ=1)


# --------------------------------------------------------------------------- with R


@pytest.mark.needs_r
def test_cbpp_data_factors_keep_r_levels(cbpp: pd.DataFrame) -> None:
    assert cbpp.shape == (56, 4)
    assert list(cbpp.period.cat.categories) == ["1", "2", "3", "4"]
    assert list(cbpp.herd.cat.categories) == [str(i) for i in range(1, 16)]
    assert int(cbpp.incidence.sum()) == 99
    assert int(cbpp["size"].sum()) == 842


@pytest.mark.needs_r
def test_cbpp_laplace_matches_published_lme4(cbpp_laplace: GlmerResult) -> None:
    r = cbpp_laplace
    assert list(r.fixed.index) == list(CBPP_PUBLISHED)
    assert list(r.fixed.r_term) == ["(Intercept)", "period2", "period3", "period4"]
    for term, (est, se) in CBPP_PUBLISHED.items():
        assert r.fixed.loc[term, "estimate"] == pytest.approx(est, abs=1e-3), term
        assert r.fixed.loc[term, "se"] == pytest.approx(se, abs=1e-3), term
    assert r.sd("herd") == pytest.approx(CBPP_HERD_SD, abs=1e-3)
    assert r.loglik == pytest.approx(-92.03, abs=0.01)
    assert r.aic == pytest.approx(194.1, abs=0.1)
    assert r.nAGQ == 1
    assert r.n_obs == 56
    assert r.n_groups == {"herd": 15}
    assert r.converged and not r.singular
    assert r.group_corr.empty
    # Wald intervals and p-values are consistent with estimate and SE.
    f = r.fixed
    np.testing.assert_allclose(f.ci_high - f.ci_low, 2 * 1.959964 * f.se, rtol=1e-6)
    np.testing.assert_allclose(f.z, f.estimate / f.se, rtol=1e-6)
    assert (f.p < 0.01).all()
    # Conditional modes: one per herd, with positive conditional SDs.
    assert len(r.ranef) == 15
    assert set(r.ranef.level) == {str(i) for i in range(1, 16)}
    assert (r.ranef.term == "Intercept").all()
    assert (r.ranef.condsd > 0).all()
    assert r.ranef.loc[r.ranef.level == "1", "mode"].item() == pytest.approx(0.5896, abs=2e-3)
    assert r.elapsed_s >= 0 and r.r_version and r.lme4_version


@pytest.mark.needs_r
def test_result_round_trips_through_json(cbpp_laplace: GlmerResult) -> None:
    back = GlmerResult.from_dict(json.loads(json.dumps(cbpp_laplace.to_dict())))
    for name in ("fixed", "group_sd", "group_corr", "ranef"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(cbpp_laplace, name), check_dtype=False)
    assert back.to_dict() == cbpp_laplace.to_dict()


@pytest.mark.needs_r
def test_proportion_response_uses_trials_as_weights(cbpp: pd.DataFrame, cbpp_laplace: GlmerResult) -> None:
    r = fit_glmer("incidence/size ~ period + (1 | herd)", cbpp, nAGQ=1)
    pd.testing.assert_frame_equal(
        r.fixed[["estimate", "se"]], cbpp_laplace.fixed[["estimate", "se"]], atol=1e-5
    )


@pytest.mark.needs_r
def test_factor_reference_level_follows_category_order(cbpp: pd.DataFrame, cbpp_laplace: GlmerResult) -> None:
    data = cbpp.copy()
    data["period"] = data.period.cat.reorder_categories(["4", "1", "2", "3"])
    r = fit_glmer(CBPP_FORMULA, data, nAGQ=1)
    assert list(r.fixed.index) == ["Intercept", "period[1]", "period[2]", "period[3]"]
    base = cbpp_laplace.fixed.estimate
    est = r.fixed.estimate
    assert est["Intercept"] == pytest.approx(base["Intercept"] + base["period[4]"], abs=1e-4)
    assert est["period[1]"] == pytest.approx(-base["period[4]"], abs=1e-4)
    assert est["period[2]"] == pytest.approx(base["period[2]"] - base["period[4]"], abs=1e-4)
    assert r.sd("herd") == pytest.approx(cbpp_laplace.sd("herd"), abs=1e-4)


@pytest.mark.needs_r
def test_polls88_state_intercepts_with_quadrature() -> None:
    data = pd.read_csv(POLLS88)
    r = fit_glmer("y ~ black + female + (1 | state)", data)
    assert r.nAGQ == 25  # chosen automatically: one scalar random intercept
    assert r.n_obs == 11566
    assert r.n_groups == {"state": 49}
    assert r.converged and not r.singular
    est, se = r.fixed.estimate, r.fixed.se
    # Black respondents much less likely to support Bush; women slightly less.
    assert est["black"] == pytest.approx(-1.816, abs=0.01)
    assert se["black"] == pytest.approx(0.0876, abs=0.002)
    assert est["female"] == pytest.approx(-0.1156, abs=0.005)
    assert se["female"] == pytest.approx(0.0394, abs=0.002)
    assert est["Intercept"] == pytest.approx(0.433, abs=0.01)
    assert r.sd("state") == pytest.approx(0.410, abs=0.01)
    assert len(r.ranef) == 49


@pytest.mark.needs_r
def test_singular_fit_is_flagged_and_laplace_chosen_for_two_factors() -> None:
    # Every (g, h) cell has the same 2-in-5 rate: both group variances are zero.
    g, h = np.meshgrid(np.arange(6), np.arange(5), indexing="ij")
    cells = pd.DataFrame({"g": g.ravel().astype(str), "h": h.ravel().astype(str)})
    data = cells.loc[cells.index.repeat(5)].reset_index(drop=True)
    data["y"] = np.tile([1, 1, 0, 0, 0], len(cells))
    r = fit_glmer("y ~ 1 + (1 | g) + (1 | h)", data)
    assert r.nAGQ == 1  # two grouping factors: quadrature not allowed
    assert r.singular
    assert np.allclose(r.group_sd.sd, 0.0, atol=1e-4)
    assert any("singular" in m for m in r.messages)
    assert r.fixed.loc["Intercept", "estimate"] == pytest.approx(np.log(2 / 3), abs=1e-4)


@pytest.mark.needs_r
def test_glmer_error_carries_r_message(cbpp: pd.DataFrame) -> None:
    with pytest.raises(GlmerError, match="not_a_column"):
        fit_glmer("cbind(incidence, size - incidence) ~ not_a_column + (1 | herd)", cbpp)
    with pytest.raises(GlmerError, match="nAGQ"):
        fit_glmer("cbind(incidence, size - incidence) ~ 1 + (1 | herd) + (1 | period)", cbpp, nAGQ=5)


# --------------------------------------------------------------------------- without R


def test_missing_r_raises_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lme4, "RSCRIPT", "/nonexistent/bin/Rscript")
    ok, message = r_available()
    assert not ok
    assert message.startswith("R not found")
    assert "apt-get install r-base-core r-cran-lme4 r-cran-jsonlite" in message
    with pytest.raises(RNotAvailableError, match="R not found.*apt-get install"):
        fit_glmer("y ~ 1 + (1 | g)", pd.DataFrame({"y": [0, 1], "g": ["a", "b"]}))


def test_normalise_term() -> None:
    levels = {"period": ["1", "2"], "per": ["iod2"], "s": ["a", "b"]}
    assert normalise_term("(Intercept)") == "Intercept"
    assert normalise_term("period2", levels) == "period[2]"  # longest factor name wins
    assert normalise_term("black:female") == "black:female"
    assert normalise_term("sb:x", levels) == "s[b]:x"
    assert normalise_term("I(x^2)", levels) == "I(x^2)"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "est.csv"
    path.write_text(text)
    return path


def test_estimates_from_csv_reads_and_fills_intervals(tmp_path: Path) -> None:
    path = _write(tmp_path, "term,estimate,se\n_cons,0.43,0.07\nblack,-1.8,0.09\n")
    est = estimates_from_csv(path)
    assert list(est.index) == ["Intercept", "black"]
    assert list(est.r_term) == ["_cons", "black"]
    assert est.loc["black", "ci_low"] == pytest.approx(-1.8 - 1.959964 * 0.09)
    assert est.loc["black", "z"] == pytest.approx(-20.0)
    assert est.loc["black", "p"] < 1e-80
    path = _write(tmp_path, "term,estimate,se,ci_low,ci_high\nperiod2,-1,0.3,-1.6,-0.4\n")
    est = estimates_from_csv(path, factor_levels={"period": ["1", "2"]})
    assert list(est.index) == ["period[2]"]
    assert est.loc["period[2]", "ci_high"] == -0.4


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("term,estimate\nx,1\n", r"missing column\(s\) se"),
        ("term,estimate,se\nx,abc,1\n", r"column estimate, row 1 \(term 'x'\): value 'abc'"),
        ("term,estimate,se\nx,1,0\n", r"column se, row 1 \(term 'x'\): value '0' must be pos"),
        ("term,estimate,se\nx,1,nan\n", r"column se.*'nan' is not a finite number"),
        ("term,estimate,se\nx,1,1\nx,2,1\n", r"duplicate term 'x'"),
        ("term,estimate,se,ci_low\nx,1,1,0\n", r"ci_low given without"),
        ("term,estimate,se,ci_low,ci_high\nx,1,1,2,3\n", r"does not contain the estimate"),
        ("term,estimate,se\n", r"no rows"),
    ],
)
def test_estimates_from_csv_validation(tmp_path: Path, text: str, match: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(EstimatesFileError, match=match) as info:
        estimates_from_csv(path)
    assert str(path) in str(info.value)


def test_estimates_from_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EstimatesFileError, match="not found"):
        estimates_from_csv(tmp_path / "nope.csv")


@pytest.mark.needs_r
def test_timeout_and_broken_script_raise_glmer_error(cbpp: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(GlmerError, match="timed out after 0.2 s"):
        fit_glmer(CBPP_FORMULA, cbpp, timeout=0.2)
    with pytest.raises(GlmerError, match="cannot open file"):
        fit_glmer(CBPP_FORMULA, cbpp, r_script=tmp_path / "missing.R")


def test_column_types_sent_to_r() -> None:
    data = pd.DataFrame(
        {
            "y": [True, False, True],
            "s": ["b", "a", None],
            "c": pd.Categorical(["lo", "hi", "lo"], categories=["lo", "hi"]),
            "n": [1, 2, 3],
            "x": [0.5, np.nan, 1.5],
        }
    )
    frame, types = lme4._prepare_data(data)
    assert types == [
        {"name": "y", "type": "integer"},
        {"name": "s", "type": "factor", "levels": ["a", "b"]},
        {"name": "c", "type": "factor", "levels": ["lo", "hi"]},
        {"name": "n", "type": "integer"},
        {"name": "x", "type": "numeric"},
    ]
    assert frame.to_csv(index=False, na_rep="").splitlines() == [
        "y,s,c,n,x",
        "1,b,lo,1,0.5",
        "0,a,hi,2,",
        "1,,lo,3,1.5",
    ]
