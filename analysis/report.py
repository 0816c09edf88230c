"""One report for one or more fits: a self-contained HTML file (inline CSS, figures embedded
as base64 PNG) and a Markdown version (figures as relative PNG links), written together.

For each fit, in order: the convergence verdict (first line; red when the fit failed), the
formula, rows used and dropped with reasons, priors, fixed effects as odds ratios (ETI and
HDI), VPC / MOR / IOR, varying slopes, LA effects (caterpillar), conditional effects for
every cross-level interaction, probability statements (when asked), the lme4 side by side
(or why it is missing) with the shrinkage plot, PAV calibration, and recovery of known
values when a truth is given. Before the fits: a synthetic-data banner (when synthetic),
the disclosure-control statement, the data audit and a PSIS-LOO comparison of fits to the
same data.

Disclosure control (`analysis.disclosure`): with real data (``synthetic=False``) every
LA-level table, CSV and figure omits LAs with fewer than ``min_cell`` respondents.
"""

from __future__ import annotations

import base64
import datetime as _dt
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from analysis import compare, figures, summaries
from analysis import findings as findings_mod
from analysis.compare import SideBySide, shrinkage_table, side_by_side
from analysis.disclosure import DisclosurePolicy
from analysis.files import write_text_atomic
from analysis.lme4 import GlmerResult
from models.fitting import ConvergenceWarning, Fit

__all__ = ["write_grid_report", "write_report"]

SYNTHETIC_BANNER = "SYNTHETIC DATA - these results come from simulated data, not from real survey responses."


# --------------------------------------------------------------------------- document model


@dataclass
class _Doc:
    """A flat list of blocks rendered to both HTML and Markdown."""

    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text, _slug(text))))

    def p(self, text: str, cls: str = "") -> None:
        self.blocks.append(("p", (text, cls)))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def items(self, lines: Sequence[str], cls: str = "") -> None:
        if lines:
            self.blocks.append(("ul", (list(lines), cls)))

    def table(
        self, df: pd.DataFrame, caption: str = "", *, collapsed: bool = False, csv: str | None = None
    ) -> None:
        self.blocks.append(("table", (df, caption, collapsed, csv)))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(("figure", (path, caption)))

    def link(self, text: str, href: str) -> None:
        self.blocks.append(("link", (text, href)))

    def extend(self, other: _Doc) -> None:
        self.blocks.extend(other.blocks)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "section"


_STAT_COLUMNS = {
    "raw_rate",
    "no_pooling",
    "posterior_mean",
    "mean_predicted",
    "observed_rate",
    "cep_mean",
    "band_low",
    "band_high",
    "n_rows",
    "n_obs",
    "k_threshold",
    "n_k_above_threshold",
    "n_k_above_1",
    "max_k",
    "elpd_diff",
}
_PREFIXES = (
    ("log_odds_", "log-odds "),
    ("or_", "OR "),
    ("post_", "posterior "),
    ("ref_", "reference "),
    ("ame_", "AME "),
    ("p_", "P "),
    ("diff_", "difference "),
)


def pretty_column(name: str, label: summaries.IntervalLabel | None = None) -> str:
    """Readable column header that keeps the interval kind and probability.

    An interval column's header is written from what the column holds (``label``, from the
    table's ``attrs``; else the label `summaries.interval_columns` recorded when it made the
    name): ``or_eti95_low`` -> ``OR 95% ETI low``. ``p_or_gt_1`` -> ``P(OR > 1)``. Names that
    are not statistics this package makes (variables such as ``area_soc``) are left unchanged.
    """
    special = {
        "p_or_gt_1": "P(OR > 1)",
        "p_gt_0": "P(> 0)",
        "diff_in_se": "difference (SE units)",
        "sd_over_se": "posterior SD / SE",
    }
    if name in special:
        return special[name]
    label = label or summaries.interval_label(name)
    if label is not None:
        return label.header()
    known = name in _STAT_COLUMNS or name.startswith(tuple(a for a, _ in _PREFIXES))
    if not known:
        return name
    text = name
    for a, b in _PREFIXES:
        if text.startswith(a):
            text = b + text[len(a) :]
            break
    return text.replace("_", " ")


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return f"{int(v):,}" if abs(int(v)) >= 10000 else str(int(v))
    if isinstance(v, float | np.floating):
        v = float(v)
        if v != 0 and abs(v) < 0.001:
            return f"{v:.1e}"
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.3f}"
    return str(v)


def _rows(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    meta = summaries.interval_metadata(df)
    header = [pretty_column(str(c), meta.get(str(c))) for c in df.columns]
    body = [[_fmt(v) for v in row] for row in df.itertuples(index=False, name=None)]
    return header, body


# --------------------------------------------------------------------------- rendering

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',Arial,sans-serif;max-width:1180px;
margin:0 auto;padding:0 24px 60px;color:#1b1b1b;line-height:1.45;font-size:16px}
h1{font-size:30px;margin:26px 0 6px}h2{font-size:24px;margin:38px 0 8px;border-bottom:2px solid #1f4e79;
padding-bottom:4px}h3{font-size:19px;margin:24px 0 6px;color:#1f4e79}
.synthetic{background:#fff3cd;border:2px solid #b00000;color:#b00000;font-weight:700;padding:10px 14px;
margin:12px 0;font-size:17px}
.fail{color:#b00000;font-weight:700;font-size:18px;border-left:6px solid #b00000;padding:6px 10px;
background:#fdecea}
.ok{color:#1b6e20;font-weight:700;font-size:17px;border-left:6px solid #1b6e20;padding:6px 10px;
background:#edf7ed}
.note{color:#444;font-size:14.5px}.flag{color:#8a4b00}
.disclosure{border:1px solid #1f4e79;background:#eef4fa;padding:8px 12px}
table{border-collapse:collapse;font-size:13.5px;margin:6px 0 4px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;max-width:520px}
th{background:#eef2f6;white-space:normal;vertical-align:bottom;min-width:48px}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}.caption{font-size:14px;color:#333;margin:2px 0 14px}
figure{margin:12px 0 18px}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:14px;color:#333}pre,code{font-size:13px;background:#f6f8fa}
pre{padding:8px;overflow-x:auto}details summary{cursor:pointer;color:#1f4e79}
"""

_HTML = jinja2.Environment(autoescape=True).from_string(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>{{ css }}</style></head><body>
{% for kind, b in blocks %}
{%- if kind == "h" %}<h{{ b[0] }} id="{{ b[2] }}">{{ b[1] }}</h{{ b[0] }}>
{%- elif kind == "p" %}<p{% if b[1] %} class="{{ b[1] }}"{% endif %}>{{ b[0] }}</p>
{%- elif kind == "code" %}<pre>{{ b }}</pre>
{%- elif kind == "ul" %}<ul{% if b[1] %} class="{{ b[1] }}"{% endif %}>
{%- for x in b[0] %}<li>{{ x }}</li>{% endfor %}</ul>
{%- elif kind == "table" %}
{%- if b.collapsed %}<details><summary>{{ b.caption }} ({{ b.body|length }} rows)</summary>{% endif %}
<div class="scroll"><table><thead><tr>{% for c in b.header %}<th>{{ c }}</th>{% endfor %}</tr></thead><tbody>
{%- for r in b.body %}<tr>
{%- for v, num in r %}<td{% if num %} class="num"{% endif %}>{{ v }}</td>{% endfor %}</tr>
{%- endfor %}</tbody></table></div>
{%- if b.collapsed %}</details>
{%- elif b.caption %}<p class="caption">{{ b.caption }}</p>{% endif %}
{%- elif kind == "link" %}<p><a href="{{ b[1] }}">{{ b[0] }}</a></p>
{%- elif kind == "figure" %}<figure><img alt="{{ b.caption }}" src="data:image/png;base64,{{ b.data }}">
<figcaption>{{ b.caption }}</figcaption></figure>
{%- endif %}
{% endfor %}
</body></html>
"""
)


def _render_html(doc: _Doc, title: str) -> str:
    blocks = []
    for kind, b in doc.blocks:
        if kind == "table":
            df, caption, collapsed, _csv = b
            header, body = _rows(df)
            numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
            body = [list(zip(r, numeric, strict=True)) for r in body]
            blocks.append(
                (kind, {"header": header, "body": body, "caption": caption, "collapsed": collapsed})
            )
        elif kind == "figure":
            path, caption = b
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            blocks.append((kind, {"data": data, "caption": caption}))
        else:
            blocks.append((kind, b))
    return _HTML.render(blocks=blocks, title=title, css=_CSS)


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _render_md(doc: _Doc, out_dir: Path) -> str:
    """Markdown of a document written in ``out_dir`` (figure paths relative to it)."""
    out: list[str] = []
    for kind, b in doc.blocks:
        if kind == "h":
            out.append(f"{'#' * b[0]} {b[1]}\n")
        elif kind == "p":
            text = b[0]
            out.append(f"**{text}**\n" if b[1] in ("fail", "ok", "synthetic") else f"{text}\n")
        elif kind == "code":
            out.append(f"```\n{b}\n```\n")
        elif kind == "ul":
            out.append("\n".join(f"- {x}" for x in b[0]) + "\n")
        elif kind == "table":
            df, caption, collapsed, csv = b
            if collapsed and csv:
                out.append(f"{caption}: [{len(df)} rows in {csv}]({csv})\n")
                continue
            header, body = _rows(df)
            lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_md_cell(v) for v in r) + " |" for r in body]
            out.append("\n".join(lines) + "\n")
            if caption:
                out.append(f"*{caption}*\n")
        elif kind == "link":
            out.append(f"[{b[0]}]({b[1]})\n")
        elif kind == "figure":
            path, caption = b
            rel = Path(os.path.relpath(Path(path).resolve(), Path(out_dir).resolve())).as_posix()
            out.append(f"![{caption}]({rel})\n\n*{caption}*\n")
    return "\n".join(out)


# --------------------------------------------------------------------------- sections


@dataclass
class _Ctx:
    out_dir: Path
    fig_dir: Path
    synthetic: bool
    policy: DisclosurePolicy
    la_names: Mapping[str, str] | None
    prob: float
    group: str
    inline_tables: bool = True  # False: LA-level tables only as CSV downloads (the detail pages)
    csv_href: str = ""  # how a page reaches the CSV files in out_dir ("../" from details/)

    def caption(self, text: str) -> str:
        return f"Synthetic data. {text}" if self.synthetic else text

    def fig(self, slug: str, kind: str) -> Path:
        return self.fig_dir / f"{slug}_{kind}.png"


def _safe(doc: _Doc, what: str, fn: Callable[[], None]) -> None:
    """Run one section; on error, say so in the report and go on."""
    try:
        fn()
    except Exception as exc:  # one failed section must not lose the rest of the report
        warnings.warn(f"report section '{what}' failed: {exc!r}", stacklevel=2)
        doc.p(f"{what}: could not be computed ({type(exc).__name__}: {exc}).", "flag")


def _ival(prob: float, kind: str = "eti") -> str:
    return summaries.describe_interval(kind, prob)


def _group_of(fit: Fit, group: str) -> str | None:
    for b in fit.md.blocks:
        if group in (b.name, b.factor):
            return b.factor
    return fit.md.blocks[0].factor if fit.md.blocks else None


def _unit(group: str) -> str:
    return "LA" if group == "lad" else group


def _centring_words(centered: Any) -> str:
    """How the group effects were parameterised: all one way, or factor by factor."""
    if isinstance(centered, Mapping):
        if centered and all(centered.values()):
            return "centred group effects"
        if not any(centered.values()):
            return "non-centred group effects"
        return "group effects " + ", ".join(
            f"{k} {'centred' if v else 'non-centred'}" for k, v in centered.items()
        )
    return f"{'centred' if centered else 'non-centred'} group effects"


def _overview(doc: _Doc, fit: Fit, ctx: _Ctx) -> None:
    md = fit.md
    doc.p(f"Outcome: {md.response} ({md.family}); formula:")
    doc.code(md.formula)
    s = fit.settings
    doc.p(
        f"Sampler {s.get('sampler')}: {s.get('chains')} chains x {s.get('draws')} draws after "
        f"{s.get('tune')} tuning steps, seed {s.get('seed')}, target acceptance {s.get('target_accept')}, "
        f"{_centring_words(s.get('centered'))}.",
        "note",
    )
    doc.h(3, "Rows used")
    doc.table(md.drop_table(), "Rows in, rows dropped (with the reason), rows used.")
    doc.h(3, "Priors")
    pri = pd.DataFrame({"parameter": list(fit.priors), "prior": [str(p) for p in fit.priors.values()]})
    doc.table(pri, "Priors used (log-odds scale; b priors are scaled by each predictor's SD).")


def _fixed_section(doc: _Doc, fit: Fit, ctx: _Ctx, slug: str, name: str) -> None:
    p = ctx.prob
    fe = summaries.fixed_effects(fit, p)
    lo, hi = summaries.interval_columns("eti", p, "or_")
    hlo, hhi = summaries.interval_columns("hdi", p, "or_")
    cols = ["term", "or_median", lo, hi, hlo, hhi, "p_or_gt_1", "log_odds_mean", "log_odds_sd"]
    doc.h(3, "Fixed effects (odds ratios)")
    doc.table(
        fe[cols],
        f"Odds ratio = exp(log-odds coefficient): posterior median, {_ival(p)} and {_ival(p, 'hdi')} "
        "(the HDI is computed on the log-odds scale); P(OR > 1) is the posterior probability of a positive "
        "association. The Intercept row is the odds when every predictor is 0.",
    )
    if (fe["term"] != "Intercept").any():
        path = figures.forest_plot(fe, ctx.fig(slug, "forest"), synthetic=ctx.synthetic, title=name)
        doc.figure(path, ctx.caption(f"Fixed-effect odds ratios of {name}, with the {_ival(p)}."))


def _variance_section(doc: _Doc, fit: Fit, ctx: _Ctx, group: str) -> None:
    p = ctx.prob
    vp = summaries.variance_partition(fit, group, prob=p)
    lo, hi = summaries.interval_columns("eti", p)
    doc.h(3, f"How much {_unit(group)}s differ: VPC, MOR and IOR")
    doc.table(
        vp[["quantity", "term", "mean", lo, hi, "note"]],
        f"Posterior mean and {_ival(p)} of each quantity, computed draw by draw. VPC: share of the latent "
        "(log-odds) variance between areas. MOR: median odds ratio between two people with the same "
        "characteristics in two random areas. IOR-80: middle 80% of area-to-area odds ratios for a one-unit "
        "difference in an area-level predictor; an IOR containing 1 means the predictor explains little "
        "compared with the unexplained area variation (Larsen & Merlo 2005).",
    )


def _slopes_section(doc: _Doc, fit: Fit, ctx: _Ctx, group: str, slug: str) -> None:
    if not any(t != "Intercept" for b in fit.md.blocks if b.factor == group for t in b.terms):
        return
    p = ctx.prob
    vs = summaries.varying_slopes(fit, group, prob=p, names=ctx.la_names)
    lo, hi = summaries.interval_columns("eti", p)
    doc.h(3, "Varying slopes (different people, same place)")
    doc.table(
        vs.sd[["term", "mean", lo, hi]],
        f"SD of each varying effect across {_unit(group)}s (log-odds), posterior mean and {_ival(p)}.",
    )
    if len(vs.cor):
        doc.table(
            vs.cor[["term1", "term2", "mean", lo, hi, "p_gt_0"]],
            f"Correlations between varying effects (upper triangle), posterior mean and {_ival(p)}.",
        )
    slopes = ctx.policy.apply(vs.slopes, group=group)
    for term in slopes["term"].unique() if len(slopes) else []:
        part = slopes[slopes.term == term]
        path = figures.varying_slopes_plot(
            part, ctx.fig(slug, f"slopes_{_slug(term)}"), synthetic=ctx.synthetic, unit=_unit(group)
        )
        how = part["includes"].iloc[0]
        doc.figure(
            path,
            ctx.caption(
                f"Each {_unit(group)}'s slope of {term} ({how}) as an odds ratio per unit, "
                f"posterior median and {_ival(p)}. {_suppressed(slopes)}"
            ),
        )
    _level_table(doc, slopes, ctx, slug, "slopes", f"Every {_unit(group)}'s slope")


def _suppressed(table: pd.DataFrame) -> str:
    note = table.attrs.get("suppression_note")
    return note or ""


def _level_table(doc: _Doc, table: pd.DataFrame, ctx: _Ctx, slug: str, kind: str, caption: str) -> None:
    """Full level table: CSV next to the report, collapsed table in the HTML."""
    csv = f"{slug}_{kind}.csv"
    table.to_csv(ctx.out_dir / csv, index=False)
    if not ctx.inline_tables:
        doc.link(f"{ctx.caption(caption)}: {len(table)} rows ({_ival(ctx.prob)}), CSV", ctx.csv_href + csv)
        return
    cols = [c for c in table.columns if c not in ("includes", "rank", "term")]
    doc.table(
        table[cols], f"{ctx.caption(caption)} ({_ival(ctx.prob)}; also in {csv})", collapsed=True, csv=csv
    )


def _groups_section(doc: _Doc, fit: Fit, ctx: _Ctx, group: str, slug: str) -> None:
    p = ctx.prob
    ge = summaries.group_effects(fit, group, "Intercept", names=ctx.la_names, prob=p)
    ge = ctx.policy.apply(ge, group=group)
    unit = _unit(group)
    doc.h(3, f"{unit} effects")
    path = figures.caterpillar_plot(ge, ctx.fig(slug, "caterpillar"), synthetic=ctx.synthetic, unit=unit)
    doc.figure(
        path,
        ctx.caption(
            f"Each {unit}'s odds ratio against the average {unit} (same person, other {unit}), "
            f"posterior median and {_ival(p)}, ranked. {_suppressed(ge)}"
        ),
    )
    _level_table(doc, ge.sort_values("rank"), ctx, slug, "la_effects", f"Every {unit}'s effect")


def _conditional_section(doc: _Doc, fit: Fit, ctx: _Ctx, group: str, slug: str, outcome: str) -> None:
    inter = summaries.cross_level_interactions(fit, group)
    if not inter:
        return
    doc.h(3, "Conditional effects of cross-level interactions")
    for term, area, indiv in inter:
        ce = summaries.conditional_effects(fit, area, indiv, prob=ctx.prob)
        path = figures.conditional_effects_plot(
            ce, ctx.fig(slug, f"cond_{_slug(term)}"), synthetic=ctx.synthetic, title=term, outcome=outcome
        )
        doc.figure(
            path,
            ctx.caption(
                f"Predicted probability of {outcome} across {area} ({ce.attrs['range']}) for values "
                f"of {indiv}; posterior mean and {_ival(ctx.prob)}; other predictors at their means; "
                f"LA mode: {ce.attrs['la_mode']}."
            ),
        )
        uniq = np.sort(ce[area].unique())
        pts = [uniq[0], uniq[len(uniq) // 2], uniq[-1]]
        lo, hi = summaries.interval_columns("eti", ctx.prob, "p_")
        doc.table(
            ce[ce[area].isin(pts)][[area, indiv, "la_mode", "p_mean", lo, hi]],
            f"Predicted probabilities at the low, middle and high values of {area} ({_ival(ctx.prob)}).",
        )


def _statements_section(doc: _Doc, fit: Fit, ctx: _Ctx, statements: Sequence[Any]) -> None:
    tab = summaries.probability_statements(fit, statements, prob=ctx.prob)
    lo, hi = summaries.interval_columns("eti", ctx.prob, "diff_")
    doc.h(3, "Probability statements")
    doc.table(
        tab[["statement", "probability", "diff_mean", lo, hi]],
        f"Posterior probability of each statement about coefficients (log-odds), with the "
        f"{_ival(ctx.prob)} of the difference.",
    )


def _lme4_section(doc: _Doc, fit: Fit, ctx: _Ctx, ref: Any, group: str | None, slug: str) -> None:
    p = ctx.prob
    doc.h(3, "Frequentist reference (lme4 glmer)")
    if ref is None:
        doc.p("lme4 comparison not run (pass glmer=, e.g. from analysis.lme4.glmer_for).", "note")
        sbs = None
    elif isinstance(ref, SideBySide):
        sbs = ref
    else:
        sbs = side_by_side(fit, ref, prob=p)
    glmer_res = None
    if sbs is not None:
        if not sbs.available:
            doc.p(sbs.note, "fail")
        else:
            doc.p(sbs.note, "note")
            doc.items(sbs.flags, "flag")
            lo, hi = summaries.interval_columns("eti", p, "post_")
            cols = [
                "parameter",
                "ref_estimate",
                "ref_se",
                compare.REF_LOW,
                compare.REF_HIGH,
                "post_mean",
                "post_sd",
                lo,
                hi,
                "diff_in_se",
                "sd_over_se",
                "note",
            ]
            doc.table(
                sbs.table[cols],
                f"{sbs.table.attrs.get('interval', '')}. Difference in SE units = "
                "(posterior mean - estimate) / SE. Log-odds scale; sd and cor rows are the group "
                "standard deviations and correlations.",
            )
            glmer_res = sbs.glmer
    if group is None:
        return
    shr = shrinkage_table(fit, glmer_res, group, names=ctx.la_names, prob=p)
    shr = ctx.policy.apply(shr, group=group)
    path = figures.shrinkage_plot(shr, ctx.fig(slug, "shrinkage"), synthetic=ctx.synthetic, unit=_unit(group))
    doc.figure(
        path,
        ctx.caption(
            f"Shrinkage, like for like: each {_unit(group)}'s mean log-odds over its own respondents "
            f"from a glm with the {_unit(group)} as a fixed factor and the same covariates (no pooling), "
            f"{'from glmer, ' if glmer_res is not None else ''}and from the posterior, against its "
            f"number of respondents; {shr.attrs.get('not_estimable', 0)} {_unit(group)}(s) with all-0 or "
            f"all-1 outcomes have no finite no-pooling estimate (hollow, at the edge). {_suppressed(shr)}"
        ),
    )
    _level_table(doc, shr, ctx, slug, "shrinkage", f"Shrinkage of every {_unit(group)}")


def _calibration_section(doc: _Doc, fit: Fit, ctx: _Ctx, slug: str) -> None:
    cal = summaries.calibration(fit, prob=ctx.prob, figure=False)
    path = figures.calibration_plot(cal, ctx.fig(slug, "calibration"), synthetic=ctx.synthetic)
    doc.h(3, "Calibration")
    a = cal.table.attrs
    doc.p(
        f"Mean predicted probability {a['mean_predicted']:.3f}, observed rate {a['observed_rate']:.3f}; "
        f"{100 * a['share_outside_band']:.0f}% of the PAV curve lies outside the {100 * ctx.prob:g}% "
        "consistency band.",
        "note",
    )
    doc.figure(
        path,
        ctx.caption(
            f"PAV-adjusted calibration on the rows used, with the {100 * ctx.prob:g}% "
            "consistency band of outcomes replicated from the model."
        ),
    )
    doc.table(cal.table, f"By decile of predicted probability; band: {cal.table.attrs['interval']}.")


def _recovery_section(doc: _Doc, fit: Fit, ctx: _Ctx, truth: Any) -> None:
    rec = summaries.recovery(fit, truth, prob=ctx.prob)
    lo, hi = summaries.interval_columns("eti", ctx.prob)
    doc.h(3, "Recovery of the known (simulated) values")
    n_in = int((rec.covered == "yes").sum())
    n_all = int(rec.covered.isin(["yes", "no"]).sum())
    doc.p(f"{n_in} of {n_all} true values lie inside their {_ival(ctx.prob)}.", "note")
    doc.table(
        rec[["parameter", "true", "mean", lo, hi, "covered"]],
        f"True value, posterior mean and {_ival(ctx.prob)}; covered = the interval contains the truth.",
    )


def _fit_section(
    name: str, fit: Fit, ctx: _Ctx, ref: Any, truth: Any, statements: Sequence[Any] | None
) -> _Doc:
    doc = _Doc()
    slug = _slug(name)
    doc.h(2, f"Model: {name}{' (synthetic data)' if ctx.synthetic else ''}")
    doc.p(fit.headline, "ok" if fit.converged else "fail")
    if not fit.converged:
        doc.p("The convergence checks failed: the numbers below are shown for diagnosis only.", "fail")
    group = _group_of(fit, ctx.group)
    _safe(doc, "overview", lambda: _overview(doc, fit, ctx))
    _safe(doc, "fixed effects", lambda: _fixed_section(doc, fit, ctx, slug, name))
    if group is not None:
        if any("Intercept" in b.terms for b in fit.md.blocks if b.factor == group):
            _safe(doc, "variance partition", lambda: _variance_section(doc, fit, ctx, group))
            _safe(doc, "group effects", lambda: _groups_section(doc, fit, ctx, group, slug))
        _safe(doc, "varying slopes", lambda: _slopes_section(doc, fit, ctx, group, slug))
        _safe(
            doc,
            "conditional effects",
            lambda: _conditional_section(doc, fit, ctx, group, slug, fit.md.response),
        )
    if statements:
        _safe(doc, "probability statements", lambda: _statements_section(doc, fit, ctx, statements))
    _safe(doc, "lme4 comparison", lambda: _lme4_section(doc, fit, ctx, ref, group, slug))
    _safe(doc, "calibration", lambda: _calibration_section(doc, fit, ctx, slug))
    if truth is not None:
        _safe(doc, "recovery", lambda: _recovery_section(doc, fit, ctx, truth))
    return doc


def _comparison_section(doc: _Doc, comparisons: Sequence[Any]) -> None:
    """Render precomputed PSIS-LOO comparisons (`summaries.loo_comparisons`)."""
    if not comparisons:
        return
    doc.h(2, "Model comparison (PSIS-LOO)")
    for cmp in comparisons:
        if isinstance(cmp, str):
            doc.p(cmp, "fail")
            continue
        doc.items(cmp.notes, "flag")
        cols = [c for c in ("rank", "elpd", "se", "elpd_diff", "dse", "p", "weight") if c in cmp.table]
        doc.table(
            cmp.table[cols].reset_index(),
            "Expected log predictive density (higher is better), its "
            "standard error, difference from the best model and its SE, effective number of "
            "parameters p, stacking weight.",
        )
        doc.table(
            cmp.pareto, "Pareto k diagnostics: observations above the threshold make PSIS-LOO unreliable."
        )


def _audit_section(doc: _Doc, audit: Any) -> None:
    doc.h(2, "Data audit")
    doc.code(str(audit))
    if hasattr(audit, "to_frame"):
        frame = audit.to_frame()
        if isinstance(frame, pd.DataFrame) and len(frame):
            doc.table(frame.reset_index() if frame.index.name else frame, "Audit of the input rows.")


# --------------------------------------------------------------------------- entry point


def write_report(
    fits: Mapping[str, Fit],
    out_dir: str | Path,
    *,
    synthetic: bool,
    audit: Any = None,
    glmer: Mapping[str, GlmerResult | SideBySide | pd.DataFrame] | None = None,
    truth: Mapping[str, Any] | None = None,
    la_names: Mapping[str, str] | None = None,
    min_cell: int = 10,
    title: str = "Different People, Same Place: Bayesian multilevel models of wellbeing",
    group: str = "lad",
    prob: float = 0.95,
    statements: Mapping[str, Sequence[Any]] | None = None,
    comparisons: Sequence[Any] = (),
    basename: str = "report",
    findings: pd.DataFrame | None = None,
    missing_findings: Sequence[int] = (),
    figures: Sequence[tuple[Path, str]] = (),
    titles: Mapping[str, str] | None = None,
    details: bool = False,
    grid: Any = None,
    maps: Any = None,
    ordinal: Any = None,
    twins: Sequence[Any] = (),
) -> tuple[Path, Path]:
    """Write the HTML and Markdown report of one or more fits.

    Parameters
    ----------
    fits : mapping of str to models.Fit
        Fits by name (the name heads each section).
    out_dir : path
        Directory for ``report.html``, ``report.md``, ``figures/*.png`` and LA-level CSVs.
    synthetic : bool
        Whether the data are synthetic (required: it switches the synthetic marking on, and
        disclosure control off).
    audit : object, optional
        Data audit (``str()`` and optional ``to_frame()``), e.g. from `data.prepare.prepare`.
    glmer : mapping, optional
        By fit name: a `GlmerResult` or the `Lme4Unavailable` note from `analysis.lme4.glmer_for`,
        a `compare.SideBySide`, or a fixed-effects table from `analysis.lme4.estimates_from_csv`.
        The report renders what it is given: it starts neither R nor PSIS-LOO.
    truth : mapping, optional
        By fit name: true values (see `summaries.recovery`); adds a recovery table.
    la_names : mapping, optional
        LA code -> LA name, for LA-level tables and figures.
    min_cell : int
        With real data, LAs with fewer respondents are suppressed everywhere.
    title : str
        Report title.
    group : str
        Grouping factor of the area effects.
    prob : float
        Probability of every interval (default 0.95).
    statements : mapping, optional
        By fit name: probability statements (see `summaries.probability_statements`).
    comparisons : sequence
        Precomputed PSIS-LOO comparisons (`summaries.loo_comparisons`), rendered as given.
    basename : str
        File name stem.
    findings : pandas.DataFrame, optional
        The study's findings claim by claim (`analysis.findings.findings_table`), shown first.
    missing_findings : sequence of int
        Findings of the study that no fitted model tests (listed as such).
    figures : sequence of (path, caption)
        Figures shown after the findings (e.g. the levels-model figure).
    maps : analysis.maps.MapSection, optional
        The map section (MrP and choropleths, computed by `analysis.maps.map_section`),
        rendered after the figures with its note and a link to the MrP CSV.
    titles : mapping, optional
        Fit name -> a longer title for its section.
    details : bool
        Lean report: the main page keeps the verdicts, the findings, the figures, the
        disclosure note, the audit and the LOO comparison, and links to one detail page per
        model (``details/<model>.html`` and ``.md``), whose LA-level tables are CSV downloads.
        Default False: everything on one page.
    grid : analysis.grid_summary.GridSection, optional
        A grid run's forest plots and sensitivity flags, rendered after the figures.
    ordinal : analysis.ordinal_findings.OrdinalSection, optional
        The ordinal twin of one outcome: finding by finding, the binary against the ordinal
        odds ratio, and the threshold-sensitivity figure (rendered after the maps).
    twins : sequence of analysis.twins.TwinSection
        Spillover and tipping-point twins of entries: claim by claim, whether the reading
        changes, with rho, Moran's I, the threshold and PSIS-LOO against the entry.

    Returns
    -------
    (pathlib.Path, pathlib.Path)
        The HTML and Markdown files.
    """
    if not fits:
        raise ValueError("write_report needs at least one fit")
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    policy = DisclosurePolicy(synthetic=bool(synthetic), k=int(min_cell))
    ctx = _Ctx(
        out_dir,
        fig_dir,
        bool(synthetic),
        policy,
        la_names,
        prob,
        group,
        not details,
        "../" if details else "",
    )
    glmer = dict(glmer or {})
    truth = dict(truth or {})
    statements = dict(statements or {})

    body = _Doc()
    pages: dict[str, _Doc] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, f in fits.items():
            ref = glmer.get(name)
            section = _fit_section(name, f, ctx, ref, truth.get(name), statements.get(name))
            if titles and name in titles:
                section.blocks.insert(1, ("p", (titles[name], "note")))
            if details:
                pages[name] = section
            else:
                body.extend(section)
        comparison = _Doc()
        _comparison_section(comparison, comparisons)

    doc = _Doc()
    full_title = f"{title}{' (SYNTHETIC DATA)' if synthetic else ''}"
    doc.h(1, full_title)
    if synthetic:
        doc.p(SYNTHETIC_BANNER, "synthetic")
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    doc.p(
        f"Generated {stamp}. Every interval is labelled with its kind and probability: ETI = equal-tailed "
        f"interval, HDI = highest-density interval (posterior); CI = frequentist confidence interval.",
        "note",
    )
    verdicts = pd.DataFrame(
        {
            "model": list(fits),
            "outcome": [f.md.response for f in fits.values()],
            "rows used": [f.md.n_obs for f in fits.values()],
            "verdict": [f.headline for f in fits.values()],
        }
    )
    doc.h(2, "Models in this report")
    doc.table(
        verdicts,
        "Convergence verdict of each fit (its details first on "
        + ("the model's linked page)." if pages else "the model's section)."),
    )
    for name in pages:
        doc.link(f"{name}: every table and figure of this model", f"details/{_slug(name)}.html")
    failed = [n for n, f in fits.items() if not f.converged]
    if failed:
        doc.p(f"NOT CONVERGED: {', '.join(failed)} - do not interpret those results.", "fail")
    if findings is not None:
        _findings_section(doc, findings, missing_findings, synthetic)
    for path, caption in figures:
        doc.figure(Path(path), caption)
    if maps is not None:
        _maps_section(doc, maps, out_dir)
    if ordinal is not None:
        _ordinal_section(doc, ordinal, out_dir, synthetic)
    if twins:
        _twins_section(doc, twins, out_dir, synthetic)
    if grid is not None:
        _grid_section(doc, grid)
    doc.h(2, "Disclosure control")
    unit = _unit(group)
    if synthetic:
        doc.p(policy.note(unit, group), "disclosure")
    else:
        groups_seen = {_group_of(f, group) for f in fits.values()} - {None}
        lines = [policy.note(_unit(g), g) for g in sorted(groups_seen)] or [policy.note(unit, group)]
        doc.p(
            f"Real data: every {unit}-level table, CSV file and figure omits {unit}s (levels of the grouping "
            f"factor) with fewer than {min_cell} respondents. " + " ".join(lines),
            "disclosure",
        )
    if audit is not None:
        _audit_section(doc, audit)
    doc.extend(comparison)
    doc.extend(body)
    if synthetic:
        doc.p(SYNTHETIC_BANNER, "synthetic")

    html_path = out_dir / f"{basename}.html"
    md_path = out_dir / f"{basename}.md"
    if pages:
        (out_dir / "details").mkdir(exist_ok=True)
    for name, section in pages.items():
        page = _Doc()
        page.h(1, f"{name}{' (SYNTHETIC DATA)' if synthetic else ''}")
        if synthetic:
            page.p(SYNTHETIC_BANNER, "synthetic")
        page.link(f"Back to the report ({basename}.html)", f"../{basename}.html")
        page.extend(section)
        if synthetic:
            page.p(SYNTHETIC_BANNER, "synthetic")
        stem = out_dir / "details" / _slug(name)
        write_text_atomic(stem.with_suffix(".html"), _render_html(page, f"{name}: {full_title}"))
        write_text_atomic(stem.with_suffix(".md"), _render_md(page, out_dir / "details"))
    write_text_atomic(html_path, _render_html(doc, full_title))
    write_text_atomic(md_path, _render_md(doc, out_dir))
    return html_path, md_path


def _maps_section(doc: _Doc, maps: Any, out_dir: Path) -> None:
    """Render a precomputed `analysis.maps.MapSection`."""
    doc.h(2, f"Maps: {maps.model}")
    doc.p(maps.note, "note")
    rel = Path(os.path.relpath(Path(maps.mrp_csv).resolve(), Path(out_dir).resolve())).as_posix()
    doc.link(f"MrP estimates of every LA, with subgroups (CSV, published values only): {rel}", rel)
    for path, caption in maps.maps.figures:
        doc.figure(Path(path), caption)


def _ordinal_section(doc: _Doc, ordinal: Any, out_dir: Path, synthetic: bool) -> None:
    """Render a precomputed `analysis.ordinal_findings.OrdinalSection`."""
    doc.h(2, "Ordinal outcome and threshold sensitivity")
    doc.p(
        f"The study cut {ordinal.scale} at >= {ordinal.study_cut:g} ({ordinal.model}). The ordinal "
        f"twin is a cumulative-logit (proportional-odds) model of the whole scale with the same "
        "predictors and LA effects: its cumulative odds ratio multiplies the odds of answering above "
        "any cut-off, so where proportional odds hold it estimates the same number as the binary "
        "odds ratio. Same story: the same direction, the 95% equal-tailed interval (ETI) excluding 1 "
        "in both models or in neither (for a probability statement: the same verdict). "
        + (
            "These are synthetic data: the scales were drawn from a known cumulative-logit model, so "
            "agreement here checks the method, not the study."
            if synthetic
            else ""
        )
        + f" Ordinal twin: {ordinal.ordinal_verdict}.",
        "note",
    )
    if not bool(ordinal.story["converged"].all()):
        doc.p("NOT CONVERGED: a fit of this comparison failed the gate - do not interpret it.", "fail")
    f = ordinal.story
    prob = float(f.attrs.get("prob", summaries.DEFAULT_PROB))
    cols = tuple(summaries.interval_columns("eti", prob, f"{m}_or_") for m in ("binary", "ordinal"))

    def cell(row: pd.Series, which: str, columns: tuple[str, str]) -> str:
        if row["term"]:
            return _or_cell(row, f"{which}_or", *columns)
        return f"P = {row[f'p_{which}']:.3f} ({row[f'{which}_direction']})"

    table = pd.DataFrame(
        {
            "finding": f["finding"],
            "claim": f["claim"],
            "expected": f["expected"].where(f["term"] != "", ""),
            f"binary OR [{prob:.0%} ETI]": f.apply(cell, axis=1, args=("binary", cols[0])),
            f"ordinal OR [{prob:.0%} ETI]": f.apply(cell, axis=1, args=("ordinal", cols[1])),
            "same story?": f["same_story"],
        }
    )
    doc.table(table, f"Binary (>= {ordinal.study_cut:g}) against ordinal odds ratios, claim by claim.")
    doc.figure(
        Path(ordinal.figure),
        f"{ordinal.scale}: the binary odds ratio at every cut-off (points, 95% ETI; red where its "
        "direction differs from the ordinal one) against the ordinal odds ratio (band); dashed: the "
        "study's cut-off.",
    )
    for path, what in ((ordinal.table_csv, "every term at every cut-off"), (ordinal.story_csv, "claims")):
        rel = Path(os.path.relpath(Path(path).resolve(), Path(out_dir).resolve())).as_posix()
        doc.link(f"Threshold sensitivity, {what} (CSV): {rel}", rel)


def _twins_section(doc: _Doc, twins: Sequence[Any], out_dir: Path, synthetic: bool) -> None:
    """Render precomputed `analysis.twins.TwinSection`s."""
    from analysis.twins import MODEL_LABELS

    doc.h(2, "Spillovers and tipping points")
    doc.p(
        "The study's models treat LAs as exchangeable and every area factor as a straight line on the "
        "log-odds scale. Each twin refits one of its models with one change: the spillover twin lets "
        'neighbouring LAs share their effects (BYM2, car(lad, type = "bym2")); rho is the share of '
        "the LA variation that is spatially structured. The tipping-point twin lets one area factor "
        "bend (a hinge: a change of slope at a threshold; or a smooth). For the curved factor the "
        "twin's odds ratio is that of the curve's best straight line, per SD as in the study's model. "
        "The reading is unchanged when every model gives the same direction with the 95% equal-tailed "
        "interval (ETI) excluding 1 in all or in none. PSIS-LOO: elpd_diff above 0 means the twin "
        "predicts held-out people better; a difference within 2 standard errors is no real difference."
        + (" These are synthetic data: the checks test the method, not the study." if synthetic else ""),
        "note",
    )
    for t in twins:
        doc.h(3, f"{t.model}")
        doc.p("; ".join(f"{MODEL_LABELS[k]} twin: {v}" for k, v in t.verdicts.items()), "note")
        f = t.story
        if not bool(f["converged"].all()):
            doc.p("NOT CONVERGED: a fit of this comparison failed the gate - do not interpret it.", "fail")
        models = [m for m in f.attrs.get("models", ["entry"]) if f"{m}_direction" in f]
        prob = float(f.attrs.get("prob", summaries.DEFAULT_PROB))

        def cell(row: pd.Series, m: str, prob: float = prob) -> str:
            if row["term"]:
                return _or_cell(row, f"{m}_or", *summaries.interval_columns("eti", prob, f"{m}_or_"))
            return f"P = {row[f'p_{m}']:.3f} ({row[f'{m}_direction']})"

        table = pd.DataFrame(
            {
                "finding": f["finding"],
                "claim": f["claim"],
                "expected": f["expected"].where(f["term"] != "", ""),
                **{
                    f"{MODEL_LABELS[m]} OR [{prob:.0%} ETI]": f.apply(cell, axis=1, args=(m,)) for m in models
                },
                "reading": f["reading"],
            }
        )
        doc.table(table, f"{t.model}: the study's model against its twins, claim by claim.")
        changed = f[f["reading"].str.startswith("changed")]
        loo = t.loo
        words = []
        for m in (m for m in models if m != "entry"):
            d, se = float(loo.loc[m, "elpd_diff"]), float(loo.loc[m, "dse"])
            better = "better" if d > 2 * se else ("worse" if d < -2 * se else "no better and no worse")
            words.append(f"the {MODEL_LABELS[m]} twin predicts {better} (elpd_diff {d:+.1f}, SE {se:.1f})")
        n_changed = len(changed)
        doc.p(
            (
                f"Reading: {n_changed} of {len(f)} claims change "
                f"({'; '.join(changed['claim'].astype(str))}). "
                if n_changed
                else f"Reading: none of the {len(f)} claims changes. "
            )
            + "By PSIS-LOO, "
            + "; ".join(words)
            + "."
        )
        loo_table = loo.reset_index()[["model", "elpd", "se", "elpd_diff", "dse", "p_loo", "n_k_high"]]
        loo_table["model"] = loo_table["model"].map(MODEL_LABELS)
        doc.table(loo_table.round(2), str(loo.attrs.get("note", "PSIS-LOO")))
        if t.spatial is not None:
            lo, hi = summaries.interval_columns("eti", prob)
            r, sdv = t.spatial.loc["rho"], t.spatial.loc["sd"]
            doc.p(
                f"Spillover: rho {r['mean']:.2f} [{r[lo]:.2f}, {r[hi]:.2f}] of the LA variation is "
                f"spatially structured; total LA SD {sdv['mean']:.2f} [{sdv[lo]:.2f}, {sdv[hi]:.2f}] "
                "(log-odds)."
            )
        if t.moran is not None:
            doc.table(
                t.moran[["model", "effect", "I", "expected", "p_value"]].round(3),
                "Moran's I of the posterior-mean LA effects on the adjacency graph (permutation p-value, "
                "one-sided: neighbours alike). The BYM2 total is smoothed towards neighbours by its prior, "
                "so its I is high even without spillover: read rho and the unstructured part's I.",
            )
        if t.curve is not None and t.curve_kind == "hinge":
            lo, hi = summaries.interval_columns("eti", prob)
            c, dl = t.curve.loc["threshold"], t.curve.loc["delta"]
            found = dl[hi] < 0 or dl[lo] > 0
            doc.p(
                f"Tipping point in {t.curve_factor} ({t.curve_units}): threshold {c['mean']:.2f} "
                f"[{c[lo]:.2f}, {c[hi]:.2f}], change of slope {dl['mean']:+.3f} "
                f"[{dl[lo]:+.3f}, {dl[hi]:+.3f}] log-odds per unit: "
                + (
                    "a threshold is supported (the change of slope excludes 0)."
                    if found
                    else "no threshold is supported (the change of slope includes 0); the threshold's "
                    "interval then only restates its prior range."
                )
            )
        elif t.curve is not None:
            regions = t.curve
            doc.p(
                f"Smooth of {t.curve_factor}: "
                + (
                    "the slope departs credibly from the straight line over "
                    + "; ".join(f"{r.start:.2f}-{r.end:.2f} ({r.direction})" for r in regions.itertuples())
                    + "."
                    if len(regions)
                    else "the slope nowhere departs credibly from the straight line: no tipping point."
                )
            )
        for path, caption in t.figures:
            doc.figure(Path(path), caption)
        for path, what in t.csvs:
            rel = Path(os.path.relpath(Path(path).resolve(), Path(out_dir).resolve())).as_posix()
            doc.link(f"{t.model} twins, {what} (CSV): {rel}", rel)


def _or_cell(row: pd.Series, mid: str, lo: str, hi: str) -> str:
    if mid not in row or pd.isna(row.get(mid)):
        return ""
    return f"{row[mid]:.2f} [{row[lo]:.2f}, {row[hi]:.2f}]"


def _findings_section(doc: _Doc, findings: pd.DataFrame, missing: Sequence[int], synthetic: bool) -> None:
    doc.h(2, "Findings of the study, claim by claim")
    doc.p(
        "Each row is one claim of the study tested by one model. Posterior: odds ratio (median) "
        "with its 95% equal-tailed interval (ETI) and the posterior probability of the expected "
        "direction. lme4: glmer odds ratio (adaptive quadrature where lme4 allows it, else Laplace) "
        "with its Wald 95% confidence interval (CI). "
        + (
            "Truth: the value built into the synthetic cohort, and whether the 95% ETI contains it "
            "(only where the model's formula targets it; otherwise the reason is given)."
            if synthetic
            else "Real data: there is no known truth."
        ),
        "note",
    )
    if missing:
        doc.p(f"Findings not tested by any model in this run: {', '.join(map(str, missing))}.", "fail")
    f = findings
    table = pd.DataFrame(
        {
            "finding": f["finding"],
            "model": f["model"],
            "claim": f["claim"],
            "posterior OR [95% ETI]": f.apply(
                _or_cell, axis=1, args=("posterior_or", *findings_mod.OR_COLUMNS)
            ),
            "P(expected)": f["p_expected"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}"),
            "lme4 OR [95% CI]": f.apply(_or_cell, axis=1, args=("lme4_or", *findings_mod.LME4_COLUMNS)),
        }
    )
    if synthetic:
        table["true OR"] = f.get("true_or", pd.Series(dtype=float)).map(
            lambda v: "" if pd.isna(v) else f"{v:.2f}"
        )
        table["truth recovered"] = f["truth_recovered"]
    table["verdict"] = f["verdict"]
    doc.table(table, "The study's findings (posterior 95% ETI; lme4 Wald 95% CI).", csv="findings_table")
    for k, rows in f.groupby("finding", sort=False):
        text = str(rows["finding_text"].iloc[0])
        doc.h(3, f"Finding {k}: {text}" if k else text)
        doc.items([f"[{r.model}] {r.sentence}" for r in rows.itertuples()], "")


def _grid_section(doc: _Doc, grid: Any) -> None:
    """A grid run (`analysis.grid_summary.GridSection`): forest plots across cells, then the
    parameters that power-scaling flags as prior-sensitive."""
    doc.h(2, "Grid of fits")
    doc.p(
        f"{grid.cells} cells of the grid run in {grid.run}. Each forest plot shows one claimed term "
        f"of one model in every cell: posterior median odds ratio and {grid.interval}.",
        "note",
    )
    if grid.not_converged:
        doc.p(f"NOT CONVERGED: {', '.join(grid.not_converged)} - do not interpret those cells.", "fail")
    for forest in grid.forests:
        doc.h(3, f"{forest.entry}: {forest.term}")
        doc.figure(forest.figure, forest.caption)
        doc.table(forest.table.drop(columns=["cell"]), forest.caption, collapsed=True)
    if grid.sensitivity is None:
        return
    doc.h(3, "Prior sensitivity (power-scaling)")
    doc.p(
        "Power-scaling sensitivity (ArviZ psense; Kallioinen et al. 2024) of every reported parameter in "
        f"{grid.sensitivity_cells} cells. Flagged: prior sensitivity >= 0.05 (the prior moves the "
        "posterior); likelihood-weak when the likelihood sensitivity is also below 0.05 (the data say "
        "little: typically a group SD with few groups or a slope SD); prior-data conflict when both "
        "are above 0.05.",
        "note",
    )
    flagged = grid.sensitivity
    if flagged.empty:
        doc.p("No parameter is prior-sensitive in any cell.", "ok")
        return
    cols = [
        c
        for c in ("cell", "parameter", "prior", "likelihood", "likelihood_weak", "diagnosis")
        if c in flagged
    ]
    doc.table(flagged[cols], f"Prior-sensitive parameters ({len(flagged)} cell parameters).")


def write_grid_report(
    grid: Any,
    out_dir: str | Path,
    *,
    synthetic: bool,
    title: str = "Grid of fits",
    basename: str = "grid_report",
) -> tuple[Path, Path]:
    """Write the HTML and Markdown report of a grid run alone (`analysis.grid_summary.grid_section`).

    Returns
    -------
    (pathlib.Path, pathlib.Path)
        The HTML and Markdown files.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = _Doc()
    full_title = f"{title}{' (SYNTHETIC DATA)' if synthetic else ''}"
    doc.h(1, full_title)
    if synthetic:
        doc.p(SYNTHETIC_BANNER, "synthetic")
    _grid_section(doc, grid)
    if synthetic:
        doc.p(SYNTHETIC_BANNER, "synthetic")
    html_path, md_path = out_dir / f"{basename}.html", out_dir / f"{basename}.md"
    write_text_atomic(html_path, _render_html(doc, full_title))
    write_text_atomic(md_path, _render_md(doc, out_dir))
    return html_path, md_path
