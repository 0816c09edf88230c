"""The formula language end to end: a catalogue claim on a factor and on a three-way
interaction goes through findings and the report; the textbook formulas that used to be
refused fit (mlmRev's Contraception, with glmer beside it)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.catalogue import EntryResult, load_catalogue
from analysis.findings import findings_table
from analysis.lme4 import fit_glmer, glmer_data, glmer_term_names
from analysis.report import write_report
from models import fit
from models.formula import DataWarning

CATALOGUE = """
[defaults]
chains = 2
draws = 300
tune = 300

[[model]]
name = "factors"
outcome = "y"
formula = "y ~ education + a * b * c + (1 | g)"
claims = [
  { finding = 1, term = "education", expect = "+" },
  { finding = 1, term = "education[degree]", expect = "+" },
  { finding = 6, term = "a:b:c", expect = "+" },
  { finding = 7, statement = "abs(a:b:c) > abs(b)" },
]
"""


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n, groups = 1600, 30
    d = pd.DataFrame(
        {
            "education": pd.Categorical(
                rng.choice(["none", "gcse", "degree"], n), categories=["none", "gcse", "degree"]
            ),
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "c": rng.normal(size=n),
            "g": rng.integers(0, groups, n).astype(str),
        }
    )
    u = rng.normal(0, 0.4, groups)[d["g"].astype(int)]
    eta = (
        -0.2
        + 0.6 * (d.education == "gcse")
        + 1.2 * (d.education == "degree")
        + 0.3 * d.a
        + 0.1 * d.b
        + 0.8 * d.a * d.b * d.c
        + u
    )
    d["y"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return d


@pytest.fixture(scope="module")
def fitted(frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("cat") / "mine.toml"
    path.write_text(CATALOGUE)
    cat = load_catalogue(path)
    entry = cat["factors"]
    f = fit(entry.formula, frame, seed=3, progressbar=False, **entry.sampler)
    f.convergence.passed = True  # wording of results is tested here; the gate elsewhere
    return cat, entry, f


def test_claims_on_a_factor_and_a_three_way_interaction_reach_the_findings(fitted, frame):
    cat, entry, f = fitted
    table = findings_table({"factors": EntryResult(entry, f)}, cat, None, frame)
    # the factor claim is read level by level against the reference (none), plus the named level
    assert list(table["term"]) == [
        "education[gcse]",
        "education[degree]",
        "education[degree]",
        "a:b:c",
        "",
    ]
    by = table.set_index(["term", "expected"])
    gcse = table[table.term == "education[gcse]"].iloc[0]
    assert 1.2 < gcse.posterior_or < 3.0 and gcse.verdict == "supported"  # true OR exp(0.6) = 1.82
    three = table[table.term == "a:b:c"].iloc[0]
    assert 1.6 < three.posterior_or < 3.0 and three.verdict == "supported"  # true OR exp(0.8) = 2.23
    assert table.iloc[-1].verdict == "supported"  # |a:b:c| > |b|
    assert by.index.is_unique is False  # the named level appears twice: once per claim
    assert all("education" in s or "a:b:c" in s or "b" in s for s in table.claim)


def test_the_report_renders_those_findings(fitted, frame, tmp_path):
    cat, entry, f = fitted
    table = findings_table({"factors": EntryResult(entry, f)}, cat, None, frame)
    html, md = write_report({"factors": f}, tmp_path, synthetic=True, findings=table, glmer={})
    text = md.read_text()
    assert "education[gcse]" in text and "a:b:c" in text
    assert "could not be computed" not in text


CONTRACEPTION = "use ~ age + I(age^2) + urban + livch + (1 | district)"


@pytest.mark.needs_r
def test_contraception_fits_and_agrees_with_glmer():
    """The first formula many methodologists write (mlmRev's Contraception), refused before,
    fits; each fixed effect's posterior mean is within one posterior SD of glmer's estimate
    (adaptive quadrature, 25 points: one scalar random intercept)."""
    d = glmer_data("Contraception", package="mlmRev")  # use is a factor N/Y, livch 0/1/2/3+
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        f = fit(CONTRACEPTION, d, seed=11, chains=2, draws=1000, tune=500, progressbar=False)
    assert f.md.fixed_terms == [
        "Intercept",
        "age",
        "I(age^2)",
        "urban[Y]",
        "livch[1]",
        "livch[2]",
        "livch[3+]",
    ]
    assert f.md.response_levels == ("N", "Y")
    g = fit_glmer(f.md.glmer_formula, f.md.frame, term_names=glmer_term_names(f.md))
    post = f.posterior()["b"]
    for term in f.md.fixed_terms[1:]:
        x = post.sel(coef=term).values.ravel()
        est = g.fixed.loc[term, "estimate"]
        assert abs(x.mean() - est) < x.std(), (term, x.mean(), x.std(), est)
