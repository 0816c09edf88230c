"""Command line: ``sameplace <command>``.

Commands
--------
main       the main job on the synthetic cohort (or ``--release DIR``): data, the catalogue's
           headline models (``--all``: every entry), lme4 side by side, findings, report
catalogue  list the model catalogue (analysis/catalogue.toml)
scenario   who gains, who loses: shift area factors for chosen LAs, change by subgroup
page       the decision makers' interactive what-if page (one offline HTML file) from a run
mrp        MrP: the share of each LA's adult population with an outcome (and by subgroup), CSV
simulate   write a synthetic UKHLS release (SN 6614 + SN 6666 layout) with its true parameters
prepare    read a release (real or synthetic) into the analysis table and print the audit
fit        fit an lme4-style formula to any CSV and save the fit as NetCDF
summarise  print the summary of a saved fit (convergence verdict first)
compare    a saved fit side by side with lme4 glmer (or a CSV of estimates, e.g. Stata melogit)
report     HTML + Markdown report of one or more saved fits
grid       many fits on Dask: catalogue entries x subgroups x prior sets x seeds x sampler sets
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from analysis.catalogue import CatalogueError, ManifestError
from analysis.grid import GridError
from analysis.lme4 import EstimatesFileError
from analysis.page import PageError
from data.errors import DataError
from models import FitFileError, FormulaError, PriorError, SamplerSettingsError

USER_ERRORS = (
    DataError,
    FormulaError,
    PriorError,
    SamplerSettingsError,
    FitFileError,
    EstimatesFileError,
    CatalogueError,
    ManifestError,
    GridError,
    FileNotFoundError,
    PageError,
)


def _add_sampling(p: argparse.ArgumentParser, draws: int | None = 1000) -> None:
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=draws)
    p.add_argument(
        "--tune",
        type=int,
        default=None,
        help="tuning steps per chain (default: the sampler's, 300 for nutpie)",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (recorded; drawn if not given)")
    p.add_argument("--sampler", default="nutpie", choices=["nutpie", "pymc", "numpyro"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sameplace", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    m = sub.add_parser("main", help="main job: data, headline models, lme4 comparison, report")
    m.add_argument("--release", help="real UKHLS release folder (default: the synthetic cohort)")
    m.add_argument("--n", type=int, default=25_000, help="synthetic cohort size")
    m.add_argument("--data-seed", type=int, default=20240601, help="seed of the synthetic cohort")
    m.add_argument("--out", default="runs/main", help="run folder")
    m.add_argument("--chains", type=int, default=None, help="chains per model (default: the catalogue's)")
    m.add_argument(
        "--draws",
        type=int,
        default=None,
        help="draws per chain, exactly (default: each fit runs until the catalogue's ESS target is met)",
    )
    m.add_argument(
        "--tune",
        type=int,
        default=None,
        help="tuning steps per chain (default: the catalogue's or the sampler's)",
    )
    m.add_argument(
        "--seed", type=int, default=1, help="base sampling seed (each model's seed derives from it)"
    )
    m.add_argument("--all", action="store_true", help="run every catalogue entry, not only the headline ones")
    m.add_argument("--models", help="comma-separated catalogue entries to run (see `sameplace catalogue`)")
    m.add_argument("--catalogue", help="a catalogue TOML file (default: analysis/catalogue.toml)")
    m.add_argument("--no-reuse", action="store_true", help="refit even complete fits in the run folder")
    m.add_argument("--loo", action="store_true", help="PSIS-LOO comparison of models of the same rows")
    m.add_argument(
        "--from-manifest", help="repeat the run recorded in a manifest.json (other options ignored)"
    )
    m.add_argument("--no-lme4", action="store_true", help="skip the glmer comparison")
    m.add_argument(
        "--no-ordinal",
        action="store_true",
        help="skip the ordinal twin of life satisfaction and its threshold sensitivity",
    )
    m.add_argument(
        "--no-twins",
        action="store_true",
        help="skip the catalogue's spillover (BYM2) and tipping-point twins",
    )
    m.add_argument("--min-cell", type=int, default=10, help="disclosure threshold for real data")
    m.add_argument("--quick", action="store_true", help="small cohort and short chains (a smoke test)")
    m.add_argument(
        "--no-page", action="store_true", help="skip the interactive what-if page (page.html) at the end"
    )

    pg = sub.add_parser("page", help="the interactive what-if page of a finished run (one offline HTML file)")
    pg.add_argument("run", help="a finished main-job run folder (its fits and manifest.json)")
    pg.add_argument("--out", help="HTML file to write (default: <run>/page.html)")
    pg.add_argument("--draws", type=int, default=None, help="posterior draws shipped per model (default 200)")
    pg.add_argument(
        "--k", type=int, default=None, help="disclosure threshold (default: the run's --min-cell)"
    )

    sc = sub.add_parser("scenario", help="who gains, who loses: shift area factors for chosen LAs")
    sc.add_argument("run", help="a finished main-job run folder (its fits and manifest.json)")
    sc.add_argument(
        "--shift",
        action="append",
        required=True,
        help="column=+delta in raw units (area_volunteering=+0.05 is 5 points) or column=+0.5sd; repeatable",
    )
    sc.add_argument("--la", help="comma-separated LA codes the scenario applies to (default: every LA)")
    sc.add_argument("--by", default="all,age50,income_band,sociability_band,urban", help="subgroups")
    sc.add_argument("--models", help="comma-separated fit names (default: every fit with the columns)")
    sc.add_argument("--out", help="folder for scenario.csv and scenario.png (default: <run>/scenario)")
    sc.add_argument("--draws", type=int, default=1000, help="posterior draws used")

    sc.add_argument(
        "--la-mode",
        default="own_la",
        choices=["own_la", "average_la", "marginal", "new_la"],
        help="which LA effects the people are predicted with (default: each person's own LA)",
    )

    mr = sub.add_parser("mrp", help="MrP: share of each LA's adult population with an outcome, as a CSV")
    mr.add_argument("run", help="a finished main-job run folder (its fits and manifest.json)")
    mr.add_argument("--outcome", help="outcome column, e.g. life_satisfied (default: every fit's outcome)")
    mr.add_argument("--models", help="comma-separated fit names (default: every fit)")
    mr.add_argument(
        "--by", default="", help="subgroups besides everyone: sex, age_band, age50 or a predictor"
    )
    mr.add_argument(
        "--la-mode",
        default="own_la",
        choices=["own_la", "average_la", "marginal", "new_la", "these_las"],
        help="which LA effects (default: each LA's fitted effect; a new-LA draw without respondents)",
    )
    mr.add_argument("--las", help="comma-separated LA codes (with --la-mode these_las)")
    mr.add_argument("--table", help="respondents' table (CSV or parquet; default: prepared as in the run)")
    mr.add_argument("--population", help="population CSV (default: ONS mid-2019 by LA, sex and age band)")
    mr.add_argument("--out", help="CSV file (default: <run>/mrp/mrp.csv)")
    mr.add_argument("--draws", type=int, default=400, help="posterior draws used")

    c = sub.add_parser("catalogue", help="list the model catalogue: entries, formulas, findings tested")
    c.add_argument("--catalogue", help="a catalogue TOML file (default: analysis/catalogue.toml)")

    s = sub.add_parser("simulate", help="write a synthetic UKHLS release")
    s.add_argument("out", help="output folder")
    s.add_argument("--n", type=int, default=25_000)
    s.add_argument("--seed", type=int, default=20240601)
    s.add_argument("--layout", choices=["per_wave", "flat"], default="per_wave")

    p = sub.add_parser("prepare", help="read a release into the analysis table; print the audit")
    p.add_argument("release", nargs="?", help="release folder (default: the synthetic cohort)")
    p.add_argument("--n", type=int, default=25_000)
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--out", help="folder for the synthetic release (default: under synthetic/)")
    p.add_argument("--save", help="write the analysis table (CSV or .parquet)")

    f = sub.add_parser("fit", help="fit a formula to a CSV and save the fit (NetCDF)")
    f.add_argument("formula", help='lme4-style, e.g. "y ~ x + (1 + x | group)"')
    f.add_argument("data", help="CSV file")
    f.add_argument("--out", required=True, help="fit file (.nc)")
    f.add_argument(
        "--prior",
        action="append",
        default=[],
        metavar="NAME=DIST",
        help='override a prior, e.g. --prior "sd_lad=exponential(2)" (repeatable)',
    )
    f.add_argument("--centered", action="store_true", help="centred effects (default: per factor, by data)")
    f.add_argument("--ess", type=float, default=None, help="bulk and tail ESS asked for (default 400)")
    f.add_argument("--no-escalate", action="store_true", help="one attempt: no retry when the gate fails")
    f.add_argument("--budget-draws", type=int, default=None, help="cap on iterations over all attempts")
    f.add_argument("--budget-seconds", type=float, default=None, help="cap on wall time over all attempts")
    _add_sampling(f, draws=None)

    su = sub.add_parser("summarise", help="print a saved fit's summary")
    su.add_argument("fit", help="fit file (.nc)")
    su.add_argument("--prob", type=float, default=0.95)
    su.add_argument("--hdi", action="store_true", help="HDI instead of equal-tailed intervals")
    su.add_argument("--accept-failed", action="store_true", help="summarise a non-converged fit anyway")

    c = sub.add_parser("compare", help="a saved fit side by side with lme4 glmer or a CSV of estimates")
    c.add_argument("fit")
    c.add_argument(
        "--estimates", help="CSV of estimates from elsewhere (term, estimate, se[, ci_low, ci_high])"
    )
    c.add_argument("--out", help="write the table as CSV")

    r = sub.add_parser("report", help="HTML + Markdown report of saved fits")
    r.add_argument("fits", nargs="+")
    r.add_argument("--out", required=True, help="report folder")
    r.add_argument("--real", action="store_true", help="data are real UKHLS: suppress small LAs")
    r.add_argument("--min-cell", type=int, default=10)
    r.add_argument("--no-lme4", action="store_true")
    r.add_argument("--grid", metavar="RUN", help="a grid run folder: add its forest plots and psense flags")

    g = sub.add_parser("grid", help="many fits on Dask: a grid file of entries x subgroups x priors x seeds")
    g.add_argument("spec", help="grid file (TOML), e.g. analysis/grids/example.toml")
    g.add_argument(
        "--scheduler",
        default="local",
        help="'local' (a LocalCluster of --workers processes), 'serial' (this process, no Dask) "
        "or a scheduler address such as tcp://host:8786",
    )
    g.add_argument("--workers", type=int, default=2, help="worker processes of the local cluster")
    g.add_argument("--out", help="run folder (default: runs/grid/<grid file name>)")
    g.add_argument(
        "--n", type=int, default=None, help="synthetic cohort size (default: the grid's, else 25,000)"
    )
    g.add_argument("--no-reuse", action="store_true", help="refit even complete cells in the run folder")
    g.add_argument("--retries", type=int, default=2, help="times a failed or orphaned cell is tried again")
    g.add_argument(
        "--dashboard", default=None, metavar="ADDRESS", help="serve the local cluster's dashboard, e.g. :8787"
    )
    g.add_argument("--worker-dirs", help="parent of each worker's compile folders (default: in the cache)")
    g.add_argument("--cores-per-fit", type=int, default=1, help="chains a worker samples at once (default 1)")
    g.add_argument(
        "--report",
        action="store_true",
        help="also write <out>/report/grid_report.html (.md): forest plots across cells, psense flags",
    )
    return parser


def _names(text: str | None) -> list[str] | None:
    """A comma-separated option as a list of stripped names (None when not given)."""
    return [t.strip() for t in text.split(",")] if text else None


def _cmd_main(a: argparse.Namespace) -> int:
    from analysis.main_job import RunSettings, run_main

    if a.from_manifest:
        run_main(RunSettings.from_manifest(a.from_manifest))
        return 0
    settings = RunSettings(
        release=a.release,
        n=a.n,
        seed=a.data_seed,
        chains=a.chains,
        draws=a.draws,
        tune=a.tune,
        fit_seed=a.seed,
        out=a.out,
        compare_lme4=not a.no_lme4,
        min_cell=a.min_cell,
        all_models=a.all,
        models=_names(a.models),
        catalogue=a.catalogue,
        reuse=not a.no_reuse,
        loo=a.loo,
        ordinal=not a.no_ordinal,
        twins=not a.no_twins,
    )
    if a.quick:
        settings.n = min(a.n, 4000)
        settings.chains, settings.draws, settings.tune = a.chains or 2, a.draws or 200, a.tune or 300
    out = run_main(settings)
    if not a.no_page:
        from analysis.page import write_page

        try:
            print(f"page written: {write_page(out)} (open it in a browser; it works offline)")
        except PageError as e:  # the run itself is complete: say why there is no page
            print(f"no page written: {e}")
    return 0


def _cmd_page(a: argparse.Namespace) -> int:
    import time

    from analysis.page import PAGE_DRAWS, write_page

    t0 = time.perf_counter()
    path = write_page(a.run, a.out, draws=a.draws or PAGE_DRAWS, k=a.k)
    size = path.stat().st_size / 1e6
    print(f"page written: {path} ({size:.1f} MB, {time.perf_counter() - t0:.0f} s); open it in a browser")
    return 0


def _cmd_scenario(a: argparse.Namespace) -> int:
    import warnings

    from analysis.main_job import RunSettings
    from analysis.scenarios import scenario_plot, scenario_table
    from data.prepare import prepare
    from models import load_fit

    run = Path(a.run)
    settings = RunSettings.from_manifest(run / "manifest.json")
    table, _ = prepare(settings.release, n=settings.n, seed=settings.seed)
    paths = sorted((run / "fits").glob("*.nc"))
    if a.models:
        wanted = _names(a.models)
        paths = [p for p in paths if p.stem in wanted]
        missing = sorted(set(wanted) - {p.stem for p in paths})
        if missing:
            raise FileNotFoundError(f"no fit named {', '.join(missing)} in {run / 'fits'}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {p.stem: load_fit(p) for p in paths}
    synthetic = settings.release is None
    res = scenario_table(
        fits,
        table,
        a.shift,
        las=_names(a.la),
        by=_names(a.by),
        max_draws=a.draws,
        min_cell=0 if synthetic else settings.min_cell,
        la=a.la_mode,
    )
    out = Path(a.out) if a.out else run / "scenario"
    out.mkdir(parents=True, exist_ok=True)
    res.to_csv(out / "scenario.csv", index=False)
    fig = scenario_plot(res, out / "scenario.png", synthetic=synthetic)
    print(f"scenario: {res.attrs['scenario']}" + (" (SYNTHETIC DATA)" if synthetic else ""))
    print(f"intervals: {res.attrs['interval']}. {res.attrs['caveat']}")
    if res.attrs.get("skipped"):
        print(f"models without the shifted column(s), skipped: {', '.join(res.attrs['skipped'])}")
    print(res.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"written: {out / 'scenario.csv'} and {fig}")
    return 0


def _cmd_mrp(a: argparse.Namespace) -> int:
    import warnings

    from analysis.main_job import RunSettings
    from analysis.mrp import load_population, mrp_table
    from models import load_fit

    run = Path(a.run)
    settings = RunSettings.from_manifest(run / "manifest.json")
    synthetic = settings.release is None
    if a.table:
        p = Path(a.table)
        table = pd.read_parquet(p) if p.suffix == ".parquet" else _read_csv(a.table)
    else:
        from data.prepare import prepare

        table, _ = prepare(settings.release, n=settings.n, seed=settings.seed)
    paths = sorted((run / "fits").glob("*.nc"))
    if a.models:
        paths = [p for p in paths if p.stem in _names(a.models)]
    if not paths:
        raise FileNotFoundError(f"no fits in {run / 'fits'}" + (f" named {a.models}" if a.models else ""))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {p.stem: load_fit(p) for p in paths}
        res = mrp_table(
            fits,
            table,
            outcome=a.outcome,
            population=load_population(a.population) if a.population else None,
            by=_names(a.by) or (),
            la=a.la_mode,
            las=_names(a.las),
            synthetic=synthetic,
            k=settings.min_cell,
            max_draws=a.draws,
            names=dict(zip(table["lad"], table["lad_name"], strict=False)) if "lad_name" in table else None,
        )
    out = Path(a.out) if a.out else run / "mrp" / "mrp.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    res.to_csv(out, index=False)
    print(
        f"MrP (LA mode: {res.attrs['la_mode']}); {res.attrs['interval']}"
        + (" (SYNTHETIC DATA)" if synthetic else "")
    )
    print(res.attrs["direct"])
    if not synthetic:
        print(f"disclosure: rows with fewer than {settings.min_cell} respondents show the MrP interval only")
    if res.attrs["not_estimable"]:
        print(f"{len(res.attrs['not_estimable'])} LA(s) not estimated (no area values); listed in the CSV")
    if res.attrs["unmatched"]:
        print(f"respondents' LA codes not in the population table: {', '.join(res.attrs['unmatched'])}")
    for name, why in res.attrs.get("skipped", {}).items():
        print(f"skipped {name}: {why}")
    print(f"written: {out} ({len(res)} rows)")
    return 0


def _cmd_catalogue(a: argparse.Namespace) -> int:
    from analysis.catalogue import FINDINGS, load_catalogue

    cat = load_catalogue(a.catalogue)
    print(f"catalogue: {cat.path}")
    for e in cat.entries:
        flag = "headline" if e.headline else "all only"
        print(f"\n{e.name} [{flag}] findings {', '.join(map(str, e.findings))}: {e.title}")
        print(f"  {e.formula}")
        print(f"  sampler: {e.sampler}" + (f"; priors: {e.priors}" if e.priors else ""))
        for c in e.claims:
            what = c.statement or f"{c.term} {c.expect}"
            says = f" - {c.says}" if c.says else ""
            print(f"  finding {c.finding} ({FINDINGS[c.finding]}): {what}{says}")
    return 0


def _cmd_simulate(a: argparse.Namespace) -> int:
    from data.synthetic import generate_release

    path = generate_release(a.out, n=a.n, seed=a.seed, layout=a.layout)
    print(f"synthetic release with n={a.n}, seed={a.seed} written to {path} (truth in truth.json)")
    return 0


def _cmd_prepare(a: argparse.Namespace) -> int:
    from data.prepare import prepare, save_table

    table, audit = prepare(a.release, a.out, n=a.n, seed=a.seed)
    print(audit)
    if a.save:
        out = save_table(table, a.save)
        print(f"analysis table ({len(table):,} rows) written to {out}")
    return 0


def _read_csv(path: str) -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data file {p} does not exist")
    if not p.is_file():
        raise DataError(f"{p}: is a folder, not a CSV file", file=str(p))
    try:
        df = pd.read_csv(p)
    except pd.errors.EmptyDataError:
        raise DataError(f"{p}: the file is empty") from None
    except pd.errors.ParserError as exc:
        why = " ".join(str(exc).split())
        raise DataError(f"{p}: not a well-formed CSV file ({why})", file=str(p)) from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{p}: not a text CSV file (byte {exc.start} cannot be read as {exc.encoding})", file=str(p)
        ) from None
    if df.empty:
        raise DataError(f"{p}: the file has a header but no rows")
    return df


def _cmd_fit(a: argparse.Namespace) -> int:
    import warnings

    from models import DataWarning, fit

    priors = {}
    for item in a.prior:
        if "=" not in item:
            raise PriorError(f"--prior {item!r}: write NAME=DIST, e.g. sd_lad=exponential(2)")
        k, v = item.split("=", 1)
        priors[k.strip()] = v.strip()
    df = _read_csv(a.data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        f = fit(
            a.formula,
            df,
            priors=priors or None,
            centered=True if a.centered else None,
            sampler=a.sampler,
            chains=a.chains,
            draws=a.draws,
            tune=a.tune,
            seed=a.seed,
            escalate=not a.no_escalate,
            ess=a.ess,
            budget={k: v for k, v in (("draws", a.budget_draws), ("seconds", a.budget_seconds)) if v},
        )
    for w in caught:
        if issubclass(w.category, DataWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    f.save(a.out)
    print(f)
    print(f"\nfit saved to {a.out}")
    return 0 if f.converged else 3


def _cmd_summarise(a: argparse.Namespace) -> int:
    import warnings

    from models import load_fit

    f = load_fit(a.fit)
    f.accept_failed = a.accept_failed or f.accept_failed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = f.summary(prob=a.prob, ci_kind="hdi" if a.hdi else "eti")
    print(f.headline)
    print(f"formula: {f.md.formula}; rows used {f.md.n_obs} of {f.md.n_input}")
    print(f"intervals: {table.attrs['interval']}")
    print(table.to_string())
    return 0


def _cmd_compare(a: argparse.Namespace) -> int:
    from analysis import compare
    from models import load_fit

    f = load_fit(a.fit)
    if a.estimates:
        from analysis.lme4 import estimates_from_csv

        table = compare.side_by_side(f, estimates_from_csv(a.estimates))
    else:
        table = compare.compare_with_lme4(f)
    print(f.headline)
    print(table if isinstance(table, str) else table.to_string())
    if a.out and not isinstance(table, str):
        table.to_csv(a.out)
    return 0


def _cmd_report(a: argparse.Namespace) -> int:
    from analysis.report import write_report
    from models import load_fit

    fits = {Path(p).stem: load_fit(p) for p in a.fits}
    glmer = None
    if not a.no_lme4:
        from analysis.lme4 import glmer_for

        glmer = {name: glmer_for(f) for name, f in fits.items()}
    grid = None
    if a.grid:
        from analysis.grid_summary import grid_section

        grid = grid_section(a.grid, Path(a.out) / "figures", synthetic=not a.real)
    html, md = write_report(fits, a.out, glmer=glmer, synthetic=not a.real, min_cell=a.min_cell, grid=grid)
    print(f"report written: {html} and {md}")
    return 0


def _cmd_grid(a: argparse.Namespace) -> int:
    from analysis.grid import run_grid

    out = Path(a.out) if a.out else Path("runs/grid") / Path(a.spec).stem
    run = run_grid(
        a.spec,
        out,
        n=a.n,
        scheduler=a.scheduler,
        workers=a.workers,
        retries=a.retries,
        reuse=not a.no_reuse,
        worker_base=a.worker_dirs,
        cluster_options={"dashboard_address": a.dashboard} if a.dashboard else None,
        cores_per_fit=a.cores_per_fit,
    )
    if a.report and not run.results.empty:
        from analysis.grid_summary import grid_section
        from analysis.report import write_grid_report

        section = grid_section(out, out / "report" / "figures", synthetic=True)
        html, _ = write_grid_report(
            section, out / "report", synthetic=True, title=f"Grid {Path(a.spec).stem}"
        )
        print(f"grid report written: {html}")
    if not run.results.empty:
        gate = (~run.results.drop_duplicates("cell")["converged"].astype(bool)).sum()
        if gate:
            print(f"{gate} of {len(run.cells)} cells did not pass the convergence gate (see 'verdict')")
    if run.failed:
        print(
            f"{len(run.failed)} of {len(run.cells)} cells failed (rerun to try them again):", file=sys.stderr
        )
        for name, why in run.failed.items():
            print(f"  {name}: {why}", file=sys.stderr)
        return 1
    return 0


COMMANDS = {
    "main": _cmd_main,
    "catalogue": _cmd_catalogue,
    "scenario": _cmd_scenario,
    "page": _cmd_page,
    "mrp": _cmd_mrp,
    "simulate": _cmd_simulate,
    "prepare": _cmd_prepare,
    "fit": _cmd_fit,
    "summarise": _cmd_summarise,
    "compare": _cmd_compare,
    "report": _cmd_report,
    "grid": _cmd_grid,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sameplace`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
