"""The model catalogue: every entry builds its model on a small cohort, bad files are refused
by name, findings are covered, truth status is decided from the formulas, and no row is
lost for any of the study's models."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from analysis.catalogue import CATALOGUE_PATH, FINDINGS, CatalogueError, fit_settings, load_catalogue
from analysis.findings import truth_status
from data.prepare import default_synthetic_dir, prepare
from models.formula import build_model_data
from models.logistic import hierarchical_logistic
from models.priors import resolve_priors

CAT = load_catalogue()
N_SMALL = 1500


@pytest.fixture(scope="module")
def small():
    table, audit = prepare(n=N_SMALL)
    truth = json.loads((default_synthetic_dir(N_SMALL, 20240601) / "truth.json").read_text())
    return table, audit, truth


def test_headline_entries_test_every_finding_of_the_study():
    tested = {c.finding for e in CAT.select(headline_only=True) for c in e.claims}
    assert tested >= set(range(1, 8))
    assert {c.finding for e in CAT.entries for c in e.claims} == set(FINDINGS)
    for e in CAT.entries:
        assert e.claims, f"{e.name} tests no claim"
        # draws set by the ESS asked for, not fixed (a run's --draws replaces it: `fit_settings`)
        assert e.sampler["chains"] >= 2 and e.sampler["ess"] >= 1000 and "draws" not in e.sampler


def test_explicit_draws_replace_the_ess_target():
    e = CAT["life_satisfaction"]
    assert fit_settings(e.sampler) == e.sampler and fit_settings(e.sampler, {"chains": 2})["ess"] == 1000
    smoke = fit_settings(e.sampler, {"chains": 2, "draws": 150, "tune": 150})
    assert smoke == {
        **{k: v for k, v in e.sampler.items() if k != "ess"},
        "chains": 2,
        "draws": 150,
        "tune": 150,
    }
    assert fit_settings(e.sampler, {"draws": 150, "ess": 200})["ess"] == 200
    assert "ess" in e.sampler  # the entry itself is unchanged


@pytest.mark.parametrize("entry", CAT.entries, ids=CAT.names)
def test_every_entry_builds_its_model_on_a_small_cohort(entry, small):
    table, _, _ = small
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md = build_model_data(entry.formula, table)
    # nothing lost: rows used + rows dropped (by reason) = rows of the analysis table
    assert md.n_input == len(table)
    assert md.n_obs + sum(md.drops.values()) == md.n_input
    assert md.response == entry.outcome
    for claim in entry.claims:
        if claim.term:
            assert claim.term in md.fixed_terms
    model = hierarchical_logistic(md, resolve_priors(md, entry.priors or None))
    point = model.initial_point()
    logp = model.compile_logp()(point)
    grad = model.compile_dlogp()(point)
    assert np.isfinite(logp) and np.all(np.isfinite(grad))


def test_truth_status_is_decided_from_the_formula(small):
    _, _, truth = small
    kinds = {e.name: truth_status(e, truth).kind for e in CAT.entries}
    assert kinds["life_satisfaction"] == "exact"
    assert kinds["community_wellbeing"] == "exact"
    assert kinds["mental_wellbeing"] == "exact"
    # extra terms with true value 0 keep the truth exact
    st = truth_status(CAT["community_area_interactions"], truth)
    assert st.kind == "exact" and st.values["area_volunteering:area_unemployment"] == 0.0
    # a different LA-varying term, or an approximate truth, is labelled approximate
    assert kinds["mental_wellbeing_income_slope"] == "approximate"
    assert kinds["community_wellbeing_relative"] == "approximate"
    # omitting a true term (the point of the walkability models) means no truth applies
    assert kinds["walkability_community"] == "none"
    assert truth_status(CAT["life_satisfaction"], None).reason.startswith("real data")


_GOOD = """
[defaults]
chains = 2
draws = 1000
[[model]]
name = "m"
outcome = "y"
formula = "y ~ x + (1 | lad)"
  [[model.claims]]
  finding = 1
  term = "x"
  expect = "+"
"""


@pytest.mark.parametrize(
    "edit, message",
    [
        (('expect = "+"', 'expect = "up"'), "expect = 'up' must be"),
        (('term = "x"', 'term = "z"'), "term 'z' is not a fixed term"),
        (('outcome = "y"', 'outcome = "w"'), "outcome 'w' is not the formula's response 'y'"),
        (("finding = 1", "finding = 9"), "finding = 9 is not one of"),
        (("chains = 2", 'chains = "two"'), "chains = 'two'"),
        (('name = "m"', 'name = "m"\ncolour = "red"'), "unknown key"),
        (('term = "x"\n  expect = "+"', 'statement = "abs(x) > abs(q)"'), "uses 'q'"),
        (("[[model]]", "[[model]"), "not valid TOML"),
    ],
)
def test_bad_catalogue_files_name_the_entry_and_key(tmp_path, edit, message):
    path = tmp_path / "cat.toml"
    path.write_text(_GOOD.replace(*edit))
    with pytest.raises(CatalogueError, match=message) as info:
        load_catalogue(path)
    assert str(path) in str(info.value)


def test_duplicate_names_and_unknown_selection_are_refused(tmp_path):
    path = tmp_path / "cat.toml"
    body = _GOOD.split("[[model]]", 1)[1]
    path.write_text(_GOOD + "[[model]]" + body)
    with pytest.raises(CatalogueError, match="duplicate name"):
        load_catalogue(path)
    with pytest.raises(CatalogueError, match="no entry named 'nope'"):
        CAT.select(["nope"])


def test_entry_key_changes_with_what_changes_the_draws():
    e = CAT["life_satisfaction"]
    k = e.key("abc", 1)
    assert k == e.key("abc", 1)
    assert k != e.key("abd", 1)
    assert k != e.key("abc", 2)
    assert k != e.key("abc", 1, {**e.sampler, "draws": 10})
    assert e.seed(1) == CAT["life_satisfaction"].seed(1) != CAT["community_wellbeing"].seed(1)


def test_catalogue_lists_from_the_command_line(capsys):
    from analysis.cli import main

    assert main(["catalogue"]) == 0
    out = capsys.readouterr().out
    assert str(CATALOGUE_PATH) in out
    for e in CAT.entries:
        assert e.name in out
