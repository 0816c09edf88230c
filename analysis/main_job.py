"""The main job: data -> catalogue models -> lme4 side by side -> findings -> report.

On the embedded synthetic cohort (default) or a real UKHLS release (``release``). By
default the headline entries of the model catalogue (``analysis/catalogue.toml``) run;
``all_models`` runs every entry. The run folder holds the fits (NetCDF, ``fits/``), the
glmer estimates (``lme4/``), CSV tables, figures, the report (HTML + Markdown) and a
manifest from which the run is repeated by ``sameplace main --from-manifest``.

Interruption: fits are written to a temporary name and renamed when complete; the
report and manifest of an earlier run are removed before anything is fitted and written
last, so a run that stops part-way leaves no report or manifest that reads as finished.
Rerunning the same command reuses every fit that is complete and valid for the same
data, formula, priors, sampler settings and seed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.catalogue import (
    Catalogue,
    EntryResult,
    ManifestError,
    fit_settings,
    load_catalogue,
    run_entries,
)
from analysis.files import write_text_atomic
from analysis.findings import findings_table, missing_findings, truth_status
from analysis.summaries import flatten_truth, loo_comparisons
from models.fitting import package_versions

#: Files that only a finished run writes (removed when a run starts).
FINISHED_OUTPUTS = ("manifest.json", "report.html", "report.md", "findings.csv")


@dataclass
class RunSettings:
    """Settings of one main-job run (all recorded in the manifest).

    ``chains``, ``draws``, ``tune`` left as None take each catalogue entry's own settings.
    ``ordinal``: also fit the ordinal twin of the headline outcome on its whole scale and the
    binary model at every cut-off (`analysis.ordinal_findings.ordinal_step`).
    ``twins``: also fit the spillover and tipping-point twins the catalogue declares for the
    entries that run (`analysis.twins.twin_step`).
    """

    release: str | None = None
    n: int = 25_000
    seed: int = 20240601
    chains: int | None = None
    draws: int | None = None
    tune: int | None = None
    fit_seed: int = 1
    out: str = "runs/main"
    compare_lme4: bool = True
    min_cell: int = 10
    all_models: bool = False
    models: list[str] | None = None
    catalogue: str | None = None
    reuse: bool = True
    loo: bool = False
    ordinal: bool = True
    twins: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def sampler_overrides(self) -> dict[str, int]:
        """The sampler settings given explicitly (they override the catalogue's)."""
        pairs = (("chains", self.chains), ("draws", self.draws), ("tune", self.tune))
        return {k: int(v) for k, v in pairs if v is not None}

    @classmethod
    def from_manifest(cls, path: str | os.PathLike) -> RunSettings:
        """The settings recorded in a run's ``manifest.json``."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text())["settings"]
        except FileNotFoundError:
            raise FileNotFoundError(f"manifest {path} does not exist") from None
        except (ValueError, KeyError) as exc:
            raise ManifestError(f"{path} is not a run manifest ({exc})") from None
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def _truth(release_dir: Path) -> dict | None:
    path = release_dir / "truth.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def exact_truth(result: EntryResult, truth: dict | None) -> dict[str, float] | None:
    """True values for `analysis.summaries.recovery` when the entry targets the truth exactly.

    Terms of the formula that the generator does not use are included with value 0.
    """
    status = truth_status(result.entry, truth)
    if status.kind != "exact":
        return None
    group_values = flatten_truth(truth[result.entry.truth])
    return {**status.values, **{k: v for k, v in group_values.items() if k.startswith(("sd_", "cor_"))}}


def _clear_finished(out: Path) -> None:
    for name in FINISHED_OUTPUTS:
        (out / name).unlink(missing_ok=True)


def _atomic_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1, default=str))


def run_main(settings: RunSettings, catalogue: Catalogue | None = None) -> Path:
    """Run the main job and return the run folder.

    Parameters
    ----------
    settings : RunSettings
    catalogue : Catalogue, optional
        Default: ``settings.catalogue`` or the project's catalogue.
    """
    from data.prepare import default_synthetic_dir, prepare

    cat = catalogue or load_catalogue(settings.catalogue)
    entries = cat.select(settings.models, headline_only=not settings.all_models)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    _clear_finished(out)
    t_start = time.time()
    synthetic = settings.release is None
    release_dir = (
        Path(settings.release) if settings.release else default_synthetic_dir(settings.n, settings.seed)
    )
    print(f"[1/4] data: {'synthetic cohort' if synthetic else 'UKHLS release'} {release_dir}", flush=True)
    table, audit = prepare(settings.release, n=settings.n, seed=settings.seed)
    print(audit, flush=True)
    _atomic_json(out / "audit.json", audit.to_dict())
    truth = _truth(release_dir) if synthetic else None

    print(f"[2/4] {len(entries)} models: {', '.join(e.name for e in entries)}", flush=True)
    results = run_entries(
        entries,
        table,
        out,
        seed=settings.fit_seed,
        sampler=settings.sampler_overrides(),
        compare_lme4=settings.compare_lme4,
        reuse=settings.reuse,
        attrs={"synthetic": str(synthetic)},
        log=lambda m: print(m, flush=True),
    )

    print("[3/4] findings, figures and report", flush=True)
    findings = findings_table(results, cat, truth, table)
    ordinal = _ordinal(results, table, out, settings) if settings.ordinal else None
    twins = _twins(results, cat, table, out, settings, synthetic) if settings.twins else []
    paths = _report(results, findings, cat, out, audit, truth, synthetic, settings, table, ordinal, twins)
    manifest = {
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "rerun": f"sameplace main --from-manifest {shlex.quote(str(out / 'manifest.json'))}",
        # the entries actually run, so --from-manifest repeats exactly these
        "settings": {
            **dataclasses.asdict(settings),
            "models": [e.name for e in entries],
            "all_models": False,
        },
        "synthetic": synthetic,
        "release": str(release_dir),
        "catalogue": str(cat.path),
        "package_versions": package_versions(),
        "audit": {"rows_in": audit.to_dict().get("n_input"), "rows_out": len(table)},
        "models": {
            n: {
                "formula": r.fit.md.formula,
                "data_fingerprint": r.fit.md.fingerprint(),
                "catalogue_key": r.fit.attrs.get("catalogue_key"),
                "converged": r.fit.converged,
                "verdict": r.fit.headline,
                "settings": r.fit.settings,
                "reused": r.reused,
                "seconds": round(r.seconds, 1),
                "rows_used": r.fit.md.n_obs,
                "rows_dropped": r.fit.md.drops,
            }
            for n, r in results.items()
        },
        "ordinal": None
        if ordinal is None
        else {
            "model": ordinal.model,
            "score": ordinal.score,
            "cutoffs": ordinal.cutoffs,
            "verdict": ordinal.ordinal_verdict,
            "settings": ordinal.ordinal_settings,
        },
        "twins": {
            t.model: {"verdicts": t.verdicts, "settings": t.settings, "curve": t.curve_kind} for t in twins
        },
        "outputs": [str(p) for p in paths],
        "wall_seconds": round(time.time() - t_start, 1),
    }
    _atomic_json(out / "manifest.json", manifest)
    print(f"[4/4] done in {manifest['wall_seconds']:.0f} s: {paths[0]}", flush=True)
    return out


def _ordinal(results, table, out, settings):  # noqa: ANN001, ANN202
    """The ordinal twin and threshold sensitivity of the run's headline ordinal outcomes
    (`analysis.ordinal_findings.ordinal_step`), with the run's sampler settings and seeds."""
    from analysis.ordinal_findings import ORDINAL_TWINS, ordinal_step

    for name, score in ORDINAL_TWINS.items():
        if name not in results or score not in table:
            continue
        r = results[name]
        sampler = fit_settings(r.entry.sampler, settings.sampler_overrides())
        seed = r.entry.seed(settings.fit_seed)
        try:
            return ordinal_step(
                r.entry,
                r.fit,
                table,
                out,
                score=score,
                seed=seed,
                progressbar=False,
                **sampler,
                log=lambda m: print(m, flush=True),
            )
        except Exception as exc:  # the ordinal step must not lose the rest of the run
            print(f"      ordinal step failed: {type(exc).__name__}: {exc}", flush=True)
            return None
    print("      ordinal step skipped: no entry with an ordinal score in this run", flush=True)
    return None


def _twins(results, cat, table, out, settings, synthetic):  # noqa: ANN001, ANN202
    """The spillover and tipping-point twins of the run's entries (`analysis.twins.twin_step`),
    with the entry's chains and seed and the run's explicit settings (``--draws`` ...); otherwise
    each twin's own defaults (ESS-driven draws, escalation): the entry's ESS target and
    target_accept are set for its exchangeable, linear model, and the catalogue's earlier fixed
    settings left BYM2 unconverged at 25k (R-hat 1.029 on phi with tune 500 and target_accept
    0.8). A failure is printed and the run goes on."""
    from analysis.twins import twin_step
    from data.areas import PUBLISHED_AREA_COLUMNS

    sections = []
    for twin in cat.twins_of(results):
        r = results[twin.of]
        sampler = {"chains": r.entry.sampler.get("chains", 4), **settings.sampler_overrides()}
        units = PUBLISHED_AREA_COLUMNS.get(twin.tipping_point or "", ("", ""))[1]
        try:
            sections.append(
                twin_step(
                    r.entry,
                    r.fit,
                    twin,
                    table,
                    out,
                    synthetic=synthetic,
                    k=settings.min_cell,
                    units=units,
                    seed=r.entry.seed(settings.fit_seed),
                    log=lambda m: print(m, flush=True),
                    **sampler,
                )
            )
        except Exception as exc:  # the twins must not lose the rest of the run
            print(f"      twins of {twin.of} failed: {type(exc).__name__}: {exc}", flush=True)
    return sections


def _report(
    results, findings, cat, out, audit, truth, synthetic, settings, table, ordinal=None, twins=()
) -> list[Path]:
    from analysis.levels import levels_figure
    from analysis.report import write_report

    fits = {n: r.fit for n, r in results.items()}
    la_names = dict(zip(table["lad"], table["lad_name"], strict=False)) if "lad_name" in table else None
    truth_values = {n: exact_truth(r, truth) for n, r in results.items()}
    figures = []
    try:
        fig = levels_figure(results, cat, out / "figures" / "levels_model.png", synthetic=synthetic)
        figures.append((fig, "The levels model (objective community factors -> links -> wellbeing)"))
    except ValueError as exc:  # not enough fitted models for the figure
        print(f"      levels figure not drawn: {exc}", flush=True)
    write_text_atomic(out / "findings.csv", findings.to_csv(index=False))
    maps = _maps(fits, table, out, synthetic, settings, la_names)
    html, md = write_report(
        fits,
        out,
        audit=audit,
        glmer={n: r.glmer for n, r in results.items() if r.glmer is not None},
        truth={n: v for n, v in truth_values.items() if v is not None} or None,
        la_names=la_names,
        synthetic=synthetic,
        min_cell=settings.min_cell,
        comparisons=loo_comparisons(fits) if settings.loo else (),
        findings=findings,
        missing_findings=missing_findings(results),
        figures=figures,
        titles={n: r.entry.title for n, r in results.items()},
        details=True,
        maps=maps,
        ordinal=ordinal,
        twins=twins,
    )
    extra = [ordinal.story_csv, ordinal.table_csv, ordinal.figure] if ordinal is not None else []
    extra += [p for t in twins for p, _ in (*t.csvs, *t.figures)]
    return [Path(html), Path(md), out / "findings.csv", *extra]


def _maps(fits, table, out, synthetic, settings, la_names):  # noqa: ANN001, ANN202
    """MrP and the maps of one model for the report (`analysis.maps.map_section`); a failure is
    printed and the report goes on without maps."""
    from analysis.maps import map_section

    try:
        section = map_section(fits, table, out, synthetic=synthetic, k=settings.min_cell, names=la_names)
    except Exception as exc:  # the maps must not lose the rest of the run
        print(f"      maps not drawn: {type(exc).__name__}: {exc}", flush=True)
        return None
    if section is not None:
        print(f"      maps and MrP of {section.model}: {section.mrp_csv}", flush=True)
    return section
