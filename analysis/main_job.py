"""The main job: data -> headline models -> lme4 side by side -> report, in one run folder.

On the embedded synthetic cohort (default) or a real UKHLS release. The run folder holds
the fits (NetCDF), CSV tables, the report (HTML + Markdown) and a manifest from which the
run can be repeated.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models import Fit, fit
from models.fitting import package_versions

#: The headline models: (outcome, formula, the finding it tests).
HEADLINE_MODELS: dict[str, tuple[str, str]] = {
    "life_satisfaction": (
        "life_satisfied ~ belonging + local_friends + lonely + log_income + unemployed + illness"
        " + married + unsafe + area_volunteering + area_unemployment + area_turnout + area_income"
        " + (1 | lad)",
        "Findings 1-3 and 7: area volunteering (+), unemployment (-), turnout (+) and income (+) "
        "with individual wellbeing; belonging and loneliness matter more than local friendships.",
    ),
    "community_wellbeing": (
        "community_abs ~ urban * area_turnout + age50 * area_sociability + female + unsafe"
        " + area_volunteering + area_unemployment + (1 + age50 | lad)",
        "Findings 4 and 6: urban residents have worse community wellbeing, least so where turnout "
        "is high; in more sociable areas people aged 50+ do better (varying age-50+ slope by LA).",
    ),
}


@dataclass
class RunSettings:
    """Settings of one main-job run (all recorded in the manifest)."""

    release: str | None = None
    n: int = 25_000
    seed: int = 20240601
    chains: int = 4
    draws: int = 1000
    tune: int = 500
    fit_seed: int = 1
    out: str = "runs/main"
    compare_lme4: bool = True
    min_cell: int = 10


def _truth(release_dir: Path) -> dict | None:
    path = release_dir / "truth.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def recovery_table(fitted: Fit, truth_entry: dict) -> pd.DataFrame:
    """True value, posterior mean, 95% equal-tailed interval and whether it is covered."""
    post = fitted.posterior()
    rows = []
    for term, value in truth_entry["fixed"].items():
        if term == "Intercept":
            draws = post["Intercept"].values.ravel()
        elif term in post["b"].coords["coef"].values:
            draws = post["b"].sel(coef=term).values.ravel()
        else:
            continue
        rows.append((term, value, draws))
    for gname, g in truth_entry.get("groups", {}).items():
        for k, term in enumerate(g["terms"]):
            rows.append(
                (
                    f"sd_{gname}[{term}]",
                    g["sd"][k],
                    post[f"sd_{gname}"].sel({f"{gname}_term": term}).values.ravel(),
                )
            )
        if len(g["terms"]) > 1 and f"cor_{gname}" in post:
            t0, t1 = g["terms"][0], g["terms"][1]
            rows.append(
                (
                    f"cor_{gname}[{t0}, {t1}]",
                    g["corr"][0][1],
                    post[f"cor_{gname}"].sel({f"{gname}_term": t0, f"{gname}_term2": t1}).values.ravel(),
                )
            )
    out = []
    for name, value, draws in rows:
        lo, hi = np.quantile(draws, [0.025, 0.975])
        out.append(
            {
                "parameter": name,
                "true": value,
                "posterior_mean": float(draws.mean()),
                "eti95_low": float(lo),
                "eti95_high": float(hi),
                "covered": bool(lo <= value <= hi),
            }
        )
    table = pd.DataFrame(out)
    table.attrs["interval"] = "95% equal-tailed posterior interval"
    table.attrs["exact"] = truth_entry.get("exact", True)
    return table


def run_main(settings: RunSettings, models: dict[str, tuple[str, str]] | None = None) -> Path:
    """Run the main job and return the run folder.

    Parameters
    ----------
    settings : RunSettings
    models : dict, optional
        name -> (formula, finding); default `HEADLINE_MODELS`.
    """
    from data.prepare import default_synthetic_dir, prepare

    models = models or HEADLINE_MODELS
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    synthetic = settings.release is None
    release_dir = (
        Path(settings.release) if settings.release else default_synthetic_dir(settings.n, settings.seed)
    )
    print(f"[1/4] data: {'synthetic cohort' if synthetic else 'UKHLS release'} {release_dir}", flush=True)
    table, audit = prepare(settings.release, n=settings.n, seed=settings.seed)
    print(audit, flush=True)
    (out / "audit.json").write_text(json.dumps(audit.to_dict(), indent=1, default=str))
    truth = _truth(release_dir) if synthetic else None

    fits: dict[str, Fit] = {}
    glmer: dict = {}
    recovery: dict[str, pd.DataFrame] = {}
    for i, (name, (formula, finding)) in enumerate(models.items(), 1):
        print(f"[2/4] fit {i}/{len(models)} {name}: {formula}", flush=True)
        f = fit(
            formula,
            table,
            chains=settings.chains,
            draws=settings.draws,
            tune=settings.tune,
            seed=settings.fit_seed + i,
        )
        f.attrs["finding"] = finding
        f.attrs["synthetic"] = str(synthetic)
        f.save(out / f"{name}.nc")
        print(f"      {f.headline}", flush=True)
        fits[name] = f
        outcome = formula.split("~")[0].strip()
        if truth and outcome in truth:
            recovery[name] = recovery_table(f, truth[outcome])
            recovery[name].to_csv(out / f"{name}_recovery.csv", index=False)
        if settings.compare_lme4:
            glmer[name] = _glmer_or_note(f)

    print("[3/4] report", flush=True)
    paths = _report(fits, out, audit, glmer, recovery, truth, synthetic, settings, table)
    manifest = {
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "settings": settings.__dict__,
        "synthetic": synthetic,
        "release": str(release_dir),
        "package_versions": package_versions(),
        "models": {
            n: {
                "formula": f.md.formula,
                "data_fingerprint": f.md.fingerprint(),
                "converged": f.converged,
                "settings": f.settings,
            }
            for n, f in fits.items()
        },
        "outputs": [str(p) for p in paths],
        "wall_seconds": round(time.time() - t_start, 1),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
    print(f"[4/4] done in {manifest['wall_seconds']:.0f} s: {paths[0]}", flush=True)
    return out


def _glmer_or_note(f: Fit):
    from analysis.lme4 import GlmerError, fit_glmer, r_available

    ok, msg = r_available()
    if not ok:
        return msg
    try:
        return fit_glmer(f.md.formula, f.md.frame)
    except GlmerError as exc:
        return f"glmer failed: {exc}"


def _report(fits, out, audit, glmer, recovery, truth, synthetic, settings, table) -> list[Path]:
    try:
        from analysis.report import write_report
    except ImportError:
        write_report = None
    la_names = None
    if "lad_name" in table:
        la_names = dict(zip(table["lad"], table["lad_name"], strict=False))
    if write_report is not None:
        truth_values = {
            name: {r.parameter: r.true for r in rec.itertuples()} for name, rec in recovery.items()
        }
        html, md = write_report(
            fits,
            out,
            audit=audit,
            glmer=glmer,
            truth=truth_values or None,
            la_names=la_names,
            synthetic=synthetic,
            min_cell=settings.min_cell,
        )
        return [Path(html), Path(md)]
    return [_plain_report(fits, out, audit, glmer, recovery, synthetic)]


def _plain_report(fits, out, audit, glmer, recovery, synthetic) -> Path:
    lines = ["# Different People, Same Place: headline models", ""]
    if synthetic:
        lines += ["**SYNTHETIC DATA**: the embedded synthetic cohort, not real survey responses.", ""]
    for name, f in fits.items():
        lines += [f"## {name}", "", f"**{f.headline}**", "", f"`{f.md.formula}`", ""]
        lines += [f.attrs.get("finding", ""), ""]
        t = f.summary()
        lines += [
            f"Intervals: {t.attrs['interval']}.",
            "",
            t.to_string(),
            "",
        ]
        if name in recovery:
            lines += ["Recovery of the built-in truth:", "", recovery[name].to_string(index=False), ""]
        g = glmer.get(name)
        if isinstance(g, str):
            lines += [f"lme4: {g}", ""]
        elif g is not None:
            lines += ["lme4 glmer:", "", g.fixed.to_string(), ""]
    lines += ["## Data audit", "", "```", str(audit), "```"]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
