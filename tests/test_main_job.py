"""The main job end to end on a small cohort: findings, report, levels figure, manifest;
complete fits reused, interrupted runs leave nothing that reads as finished, a run repeats
from its manifest with identical draws; the scenario tool on the run's fits."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

import analysis.catalogue as catalogue_mod
from analysis.catalogue import Catalogue, load_catalogue
from analysis.main_job import RunSettings, run_main
from data.errors import DataError
from models import load_fit

CAT = load_catalogue()
NAMES = ["life_satisfaction", "link_belonging", "walkability_community_safety"]
# the ordinal and twin steps are tested on their own (test_ordinal_step_..., test_twin_step_...):
# the other runs skip them
SMALL = dict(n=1500, chains=2, draws=150, tune=150, compare_lme4=False, ordinal=False, twins=False)


def _catalogue(names=NAMES) -> Catalogue:
    return Catalogue(CAT.select(names), CAT.labels, CAT.defaults, CAT.path)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "main"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_main(RunSettings(out=str(out), all_models=True, **SMALL), catalogue=_catalogue())
    return out


def test_run_folder_holds_fits_findings_report_figure_and_manifest(run):
    for name in NAMES:
        assert (run / "fits" / f"{name}.nc").exists()
    assert not list(run.rglob("*.partial"))
    manifest = json.loads((run / "manifest.json").read_text())
    assert set(manifest["models"]) == set(NAMES)
    assert manifest["rerun"].startswith("sameplace main --from-manifest")
    assert manifest["settings"]["n"] == 1500 and manifest["package_versions"]["pymc"]
    for name, m in manifest["models"].items():
        # nothing lost: rows used + rows dropped by reason = the analysis table's rows
        assert m["rows_used"] + sum(m["rows_dropped"].values()) == manifest["audit"]["rows_out"], name
    findings = pd.read_csv(run / "findings.csv")
    n_claims = sum(len(CAT[n].claims) for n in NAMES)
    assert len(findings) == n_claims
    assert set(findings["finding"]) == {1, 2, 3, 5, 7}
    # a fit that failed the gate is never summarised as a result
    for r in findings.itertuples():
        fit_ok = manifest["models"][r.model]["converged"]
        assert r.converged == fit_ok
        assert r.verdict.startswith("NOT CONVERGED") != fit_ok
        if not fit_ok:
            assert "did not pass the convergence gate" in r.sentence
    life = findings[findings.model == "life_satisfaction"]
    assert life.truth_recovered.str.match(r"^(yes|no)").all()  # exact truth for this formula
    walk = findings[findings.model == "walkability_community_safety"]
    assert walk.truth_recovered.str.startswith("n/a").all()
    md = (run / "report.md").read_text()
    assert "Findings of the study, claim by claim" in md
    assert "SYNTHETIC DATA" in md and "levels_model.png" in md
    assert (run / "figures" / "levels_model.png").stat().st_size > 20_000


def test_sentences_state_the_number_interval_and_verdict(run):
    from analysis.findings import findings_table
    from analysis.main_job import _truth
    from data.prepare import default_synthetic_dir, prepare

    table, _ = prepare(n=1500)
    results = {
        n: catalogue_mod.EntryResult(CAT[n], _accepted(load_fit(run / "fits" / f"{n}.nc"))) for n in NAMES
    }
    f = findings_table(results, CAT, _truth(default_synthetic_dir(1500, 20240601)), table)
    row = f[(f.model == "life_satisfaction") & (f.term == "area_turnout")].iloc[0]
    assert f"{row.posterior_or:.2f} times the odds of being satisfied with life" in row.sentence
    assert f"95% interval {row.or_eti95_low:.2f} to {row.or_eti95_high:.2f}" in row.sentence
    assert row.verdict in row.sentence
    x = load_fit(run / "fits" / "life_satisfaction.nc").posterior()["b"].sel(coef="area_turnout").values
    assert row.p_expected == pytest.approx((x > 0).mean())
    stmt = f[f.claim.str.startswith("abs(belonging)")].iloc[0]
    assert "not causes" in stmt.sentence


def _accepted(fit):
    # pretend the gate passed, to test the wording of results (the gate itself is tested elsewhere)
    fit.convergence.passed = True
    return fit


def test_rerun_reuses_complete_fits_and_repeats_from_the_manifest(run, tmp_path, capsys):
    from analysis.cli import main

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["settings"]["out"] = str(copy)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    before = {n: load_fit(copy / "fits" / f"{n}.nc").posterior() for n in NAMES}
    # damage one fit: it must be refitted (same seed -> identical draws), the others reused
    (copy / "fits" / "link_belonging.nc").write_bytes(b"truncated")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        settings = RunSettings.from_manifest(copy / "manifest.json")
        assert settings.n == 1500 and settings.draws == 150
        run_main(settings, catalogue=_catalogue())
    capsys.readouterr()
    again = json.loads((copy / "manifest.json").read_text())
    assert [again["models"][n]["reused"] for n in NAMES] == [True, False, True]
    for n in NAMES:
        after = load_fit(copy / "fits" / f"{n}.nc").posterior()
        np.testing.assert_array_equal(after["b"].values, before[n]["b"].values)
    # the command line repeats a run from its manifest (the default catalogue has these entries)
    assert main(["main", "--from-manifest", str(copy / "manifest.json"), "--draws", "5"]) == 0
    assert "complete fit reused" in capsys.readouterr().out


def test_interrupted_run_leaves_nothing_that_reads_as_finished(run, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "fits" / "walkability_community_safety.nc").unlink()
    real_fit = catalogue_mod.fit

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(catalogue_mod, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_main(RunSettings(out=str(copy), all_models=True, **SMALL), catalogue=_catalogue())
    for name in ("manifest.json", "report.html", "report.md", "findings.csv"):
        assert not (copy / name).exists(), name
    assert not (copy / "fits" / "walkability_community_safety.nc").exists()
    assert not list(copy.rglob("*.partial"))
    monkeypatch.setattr(catalogue_mod, "fit", real_fit)


def test_scenario_from_a_run(run):
    from analysis.scenarios import Shift, scenario, scenario_table, sd_delta
    from data.prepare import prepare

    table, _ = prepare(n=1500)
    fit = load_fit(run / "fits" / "life_satisfaction.nc")
    # raw units convert through the raw column's SD
    raw_sd = table["area_volunteering_raw"].std()
    z_sd = table["area_volunteering"].std()
    assert sd_delta(Shift.parse("area_volunteering=+0.05"), table) == pytest.approx(0.05 * z_sd / raw_sd)
    assert Shift.parse("area_turnout=-0.5sd") == Shift("area_turnout", -0.5, "sd")
    zero = scenario(fit, table, ["area_volunteering=+0sd"], by=["all"], max_draws=50)
    assert zero.change_pp_mean.abs().max() == 0.0
    res = scenario(fit, table, ["area_volunteering=+1sd"], by=["all", "age50"], max_draws=200)
    b = fit.posterior()["b"].sel(coef="area_volunteering").values
    everyone = res[res.level == "everyone"].iloc[0]
    assert everyone.p_positive == pytest.approx((b > 0).mean(), abs=0.05)
    assert everyone.n == fit.md.n_obs
    assert res.level.tolist() == ["everyone", "under 50", "50 and over", "gap: 50 and over minus under 50"]
    la = str(fit.md.frame["lad"].astype(str).value_counts().index[0])
    small = scenario(fit, table, ["area_volunteering=+1sd"], las=[la], by=["age50"], min_cell=10**6)
    assert small.change_pp_mean.isna().all() and (small.suppressed.dropna() != "").all()
    with pytest.raises(DataError, match="area_walkability not in the model"):
        scenario(fit, table, ["area_walkability=+1sd"])
    with pytest.raises(DataError, match="LA code"):
        scenario(fit, table, ["area_volunteering=+1sd"], las=["E99999999"])
    both = scenario_table(
        {n: load_fit(run / "fits" / f"{n}.nc") for n in NAMES}, table, ["area_volunteering=+0.05"], by=["all"]
    )
    assert set(both.model) == set(NAMES)  # every model here contains area_volunteering


def test_ordinal_step_writes_table_figure_and_report_section(run, tmp_path):
    """The ordinal twin of life satisfaction beside the binary fit, finding by finding, in the
    report with the numbers of the CSV; the catalogue fit is reused as the study's cut-off."""
    from analysis.ordinal_findings import BINARY_COLUMNS, ORDINAL_COLUMNS
    from analysis.summaries import fixed_effects
    from analysis.thresholds import or_direction

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    settings = RunSettings(out=str(copy), models=["life_satisfaction"], **{**SMALL, "ordinal": True})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_main(settings, catalogue=_catalogue(["life_satisfaction"]))
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["models"]["life_satisfaction"]["reused"]
    ordinal = manifest["ordinal"]
    assert ordinal["score"] == "lifesat_score" and 6.0 in ordinal["cutoffs"]
    # the run's sampler settings and the entry's seed (draws may grow by escalation, as for every fit)
    binary_settings = manifest["models"]["life_satisfaction"]["settings"]
    for key in ("chains", "tune", "seed"):
        assert ordinal["settings"][key] == binary_settings[key], key
    assert ordinal["settings"]["chains"] == 2 and ordinal["settings"]["draws"] >= 150
    figure = copy / "figures" / "threshold_lifesat_score.png"
    assert figure.stat().st_size > 20_000 and str(figure) in manifest["outputs"]

    table = pd.read_csv(copy / "ordinal" / "threshold_lifesat_score.csv")
    binary6 = table[(table.model == "binary") & (table.cutoff == 6)].set_index("term")
    fe = fixed_effects(load_fit(copy / "fits" / "life_satisfaction.nc"), quiet=True).set_index("term")
    terms = binary6.index
    np.testing.assert_allclose(binary6["or_median"], fe.loc[terms, "or_median"])  # the catalogue fit
    assert binary6["study_cut"].all() and set(table.cutoff.dropna()) == set(ordinal["cutoffs"])

    story = pd.read_csv(copy / "ordinal" / "story_life_satisfaction.csv")
    story["term"] = story["term"].fillna("")
    assert len(story) == len(CAT["life_satisfaction"].claims) == 6
    findings = pd.read_csv(copy / "findings.csv").set_index("term")
    signs = story[story.term != ""]
    assert list(signs.term) == ["area_volunteering", "area_unemployment", "area_turnout", "area_income"]
    for r in signs.itertuples():
        row = r._asdict()
        # one producer: the binary OR is the findings table's, the ordinal OR the threshold table's
        assert row["binary_or"] == pytest.approx(findings.loc[r.term, "posterior_or"])
        o = table[(table.model == "ordinal") & (table.term == r.term)].iloc[0]
        assert row["ordinal_or"] == pytest.approx(o["or_median"])
        b_dir = or_direction(row[BINARY_COLUMNS[0]], row[BINARY_COLUMNS[1]])
        o_dir = or_direction(row[ORDINAL_COLUMNS[0]], row[ORDINAL_COLUMNS[1]])
        assert (b_dir, o_dir) == (r.binary_direction, r.ordinal_direction)
        expected = "n/a: not converged" if not r.converged else ("yes" if b_dir == o_dir else "no")
        assert r.same_story == expected

    md = (copy / "report.md").read_text()
    section = md.split("## Ordinal outcome and threshold sensitivity", 1)[1].split("\n## ", 1)[0]
    assert "threshold_lifesat_score.png" in section and "synthetic data" in section
    rows = [line for line in section.splitlines() if line.startswith("| ") and "finding" not in line]
    assert len(rows) == len(story)
    for line, r in zip(rows, story.to_dict("records"), strict=True):
        cells = [c.strip() for c in line.strip("| ").split(" | ")]
        if r["term"]:
            for which, (lo, hi) in (("binary", BINARY_COLUMNS), ("ordinal", ORDINAL_COLUMNS)):
                assert f"{r[f'{which}_or']:.2f} [{r[lo]:.2f}, {r[hi]:.2f}]" in cells
        else:
            assert f"P = {r['p_binary']:.3f} ({r['binary_direction']})" in cells
        assert cells[-1] == r["same_story"]
    assert "Ordinal outcome and threshold sensitivity" in (copy / "report.html").read_text()


def test_levels_figure_needs_link_and_wellbeing_models(run, tmp_path):
    from analysis.levels import level_arrows, levels_figure

    fits = {n: load_fit(run / "fits" / f"{n}.nc") for n in NAMES}
    arrows = level_arrows(fits)
    pairs = {(a.source, a.target) for a in arrows}
    assert ("area_volunteering", "belonging") in pairs  # from the link model
    assert ("belonging", "life_satisfied") in pairs  # from the wellbeing model
    a = next(a for a in arrows if (a.source, a.target) == ("belonging", "life_satisfied"))
    x = fits["life_satisfaction"].posterior()["b"].sel(coef="belonging").values
    assert a.median == pytest.approx(np.exp(np.median(x)))
    with pytest.raises(ValueError, match="link model"):
        levels_figure(
            {"life_satisfaction": fits["life_satisfaction"]}, CAT, tmp_path / "x.png", synthetic=True
        )


def test_killed_run_leaves_no_finished_result(tmp_path):
    """SIGKILL while sampling: the old report and manifest are gone, no fit under a final name."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "killed"
    out.mkdir()
    for stale in ("manifest.json", "report.html", "report.md", "findings.csv"):
        (out / stale).write_text("from an earlier run")
    code = "import sys; from analysis.cli import main; sys.exit(main())"
    args = ["main", "--n", "1500", "--models", "link_local_friends", "--chains", "2", "--draws", "5000"]
    args += ["--tune", "500", "--no-lme4", "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen = []
    deadline = time.time() + 240
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("[fit 1/1]") or time.time() > deadline:
                break
        time.sleep(3)  # compiling or sampling
        assert proc.poll() is None, "".join(seen)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any(line.startswith("[fit 1/1]") for line in seen), "".join(seen)
    for name in ("manifest.json", "report.html", "report.md", "findings.csv"):
        assert not (out / name).exists(), name
    assert not (out / "fits" / "link_local_friends.nc").exists()


def test_twin_step_writes_story_loo_and_report_section(run, tmp_path):
    """The spillover (BYM2) and tipping-point (hinge) twins of life satisfaction beside its fit,
    claim by claim, with PSIS-LOO, in the report; the entry's odds ratios are the findings
    table's. One sampling run per twin (escalate=False) keeps it quick: the verdicts may then
    be NOT CONVERGED, which the story must say."""
    from analysis.report import write_report
    from analysis.summaries import fixed_effects, interval_columns
    from analysis.twins import twin_step
    from data.prepare import prepare

    table, _ = prepare(n=1500)
    entry = CAT["life_satisfaction"]
    (twin,) = CAT.twins_of(["life_satisfaction"])
    base = load_fit(run / "fits" / "life_satisfaction.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        section = twin_step(
            entry, base, twin, table, tmp_path, chains=2, draws=200, tune=200, seed=5, escalate=False, log=str
        )
    assert set(section.verdicts) == {"spillover", "curve"} and section.curve_kind == "hinge"
    assert section.settings["curve"]["chains"] == 2 and len(section.settings["curve"]["attempts"]) == 1
    story = pd.read_csv(tmp_path / "twins" / "story_life_satisfaction.csv")
    story["term"] = story["term"].fillna("")
    assert len(story) == len(entry.claims)
    fe = fixed_effects(base, quiet=True).set_index("term")
    converged = base.converged and all(v.startswith("CONVERGED") for v in section.verdicts.values())
    for r in story[story.term != ""].itertuples():
        row = r._asdict()
        # one producer: the entry's OR is fixed_effects' (the findings table's)
        assert row["entry_or"] == pytest.approx(fe.loc[r.term, "or_median"], rel=1e-9)
        for m in ("spillover", "curve"):
            lo, hi = interval_columns("eti", 0.95, f"{m}_or_")
            assert row[lo] <= row[f"{m}_or"] <= row[hi]
        changed = [m for m in ("spillover", "curve") if row[f"{m}_direction"] != row["entry_direction"]]
        expected = "unchanged" if not changed else "changed"
        assert r.reading.startswith(expected if converged else "n/a")
    loo = pd.read_csv(tmp_path / "twins" / "loo_life_satisfaction.csv").set_index("model")
    assert list(loo.index) == ["entry", "spillover", "curve"]
    assert loo.loc["entry", "elpd_diff"] == 0 and (loo["dse"].iloc[1:] > 0).all()
    np.testing.assert_allclose(loo["elpd"] - loo.loc["entry", "elpd"], loo["elpd_diff"], atol=1e-6)
    # the hinge's threshold lies in the published units (% unemployed)
    curve = pd.read_csv(tmp_path / "twins" / "curve_life_satisfaction.csv").set_index("index")
    raw = table["area_unemployment_raw"]
    assert raw.quantile(0.01) <= curve.loc["threshold", "mean"] <= raw.quantile(0.99)
    _, md = write_report({"life_satisfaction": base}, tmp_path, synthetic=True, twins=[section])
    text = md.read_text()
    body = text.split("## Spillovers and tipping points", 1)[1].split("\n## ", 1)[0]
    assert "### life_satisfaction" in body and "rho" in body and "Moran" in body
    assert "bym2_structured.png" in body and "curve_area_unemployment_raw.png" in body
    assert "Reading:" in body and "PSIS-LOO" in body
    if not converged:
        assert "NOT CONVERGED" in body
