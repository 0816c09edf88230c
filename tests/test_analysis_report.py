"""The HTML/Markdown report: verdict first, synthetic marking, disclosure control, labelled
intervals, the R-missing path, and one end-to-end report of a real (short) PyMC fit."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from installed import require_installed
from test_analysis_support import fake_fit, fake_glmer, simulate

from analysis import figures, lme4
from analysis import summaries as S
from analysis.compare import compare_with_lme4
from analysis.report import pretty_column, write_report
from models import fit as fit_model

SMALL_CODE, SMALL_NAME = "E09000099", "Tiny Borough"


@pytest.fixture(scope="module")
def data():
    return simulate()


@pytest.fixture(scope="module")
def fake(data):
    return fake_fit(data[0])


@pytest.fixture
def recorded(monkeypatch):
    """Every table handed to a figure function by the report."""
    tables = []
    for name in ("caterpillar_plot", "varying_slopes_plot", "shrinkage_plot"):
        real = getattr(figures, name)

        def wrapper(table, *args, _real=real, **kwargs):
            tables.append(table.copy())
            return _real(table, *args, **kwargs)

        monkeypatch.setattr(figures, name, wrapper)
    return tables


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _visible_html(html: str) -> str:
    """HTML without the style sheet and the embedded images (base64 could hold any short string)."""
    html = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    return re.sub(r'src="data:image/png;base64,[^"]+"', 'src=""', html)


# --------------------------------------------------------------------------- disclosure control


def test_real_data_report_never_shows_a_small_la(fake, data, tmp_path, recorded):
    _, names = data
    html, md = write_report({"belonging": fake}, tmp_path, synthetic=False, la_names=names, min_cell=10)
    text = _visible_html(_text(html)) + _text(md)
    assert SMALL_CODE not in text and SMALL_NAME not in text
    for csv in tmp_path.glob("*.csv"):
        assert SMALL_CODE not in csv.read_text(), csv.name
    assert len(recorded) >= 3  # caterpillar, slopes, shrinkage
    for table in recorded:
        assert SMALL_CODE not in set(table["level"])
        assert (table["n"] >= 10).all()
    assert "1 LA with fewer than 10 respondents suppressed" in text
    assert "Borough 3" in text  # the other LAs are there
    assert "synthetic" not in text.lower()


def test_synthetic_report_shows_every_la_and_is_marked(fake, data, tmp_path, recorded):
    _, names = data
    html, md = write_report({"belonging": fake}, tmp_path, synthetic=True, la_names=names)
    page = _visible_html(_text(html))
    assert SMALL_CODE in page and SMALL_NAME in page
    assert SMALL_CODE in (tmp_path / "belonging_la_effects.csv").read_text()
    assert any(SMALL_CODE in set(t["level"]) for t in recorded)
    # marked in the title, a banner, every model heading and every figure caption
    assert "(SYNTHETIC DATA)</h1>" in page
    assert 'class="synthetic">SYNTHETIC DATA' in page
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page, flags=re.S)
    assert captions and all(c.startswith("Synthetic data.") for c in captions)
    md_text = _text(md)
    assert md_text.startswith("# ") and "(SYNTHETIC DATA)" in md_text.splitlines()[0]
    assert "**SYNTHETIC DATA" in md_text
    assert "no disclosure control applied" in page


def test_min_cell_is_configurable(fake, data, tmp_path):
    html, _ = write_report({"m": fake}, tmp_path, synthetic=False, la_names=data[1], min_cell=3)
    assert SMALL_NAME in _visible_html(_text(html))


# --------------------------------------------------------------------------- verdict first, labels


def test_verdict_is_the_first_line_of_each_model_and_red_when_failed(data, tmp_path):
    good = fake_fit(data[0], "y ~ x + (1 | lad)")
    bad = fake_fit(data[0], "y ~ x + (1 | lad)", converged=False)
    html, md = write_report({"good one": good, "bad one": bad}, tmp_path, synthetic=True)
    page = _text(html)
    for name, cls, start in (("good one", "ok", "CONVERGED"), ("bad one", "fail", "NOT CONVERGED")):
        m = re.search(rf"<h2 [^>]*>Model: {name}[^<]*</h2>\s*<p class=\"(\w+)\">([^<]*)</p>", page)
        assert m, name
        assert m.group(1) == cls and m.group(2).startswith(start)
    assert re.search(r"\.fail\{color:#b00000", page)  # red
    lines = _text(md).splitlines()
    i = lines.index("## Model: bad one (synthetic data)")
    assert next(x for x in lines[i + 1 :] if x.strip()).startswith("**NOT CONVERGED")
    assert "NOT CONVERGED: bad one - do not interpret" in page


def test_every_interval_header_says_its_probability(fake, tmp_path):
    html, md = write_report({"m": fake}, tmp_path, synthetic=True, truth={"m": {"age50": 0.3, "sd_lad": 0.4}})
    page = _visible_html(_text(html))
    headers = re.findall(r"<th>(.*?)</th>", page)
    interval_headers = [h for h in headers if re.search(r"\b(ETI|HDI|CI)\b", h)]
    assert len(interval_headers) > 10
    assert all(re.search(r"\d+% (ETI|HDI|CI) (low|high)", h) for h in interval_headers), interval_headers
    assert not any(re.search(r"(eti|hdi)\d", h) for h in headers)
    assert "Recovery of the known (simulated) values" in page and "covered" in page
    assert pretty_column("or_hdi90_low") == "OR 90% HDI low"
    assert pretty_column("ref_ci95_high") == "reference 95% CI high"


def test_lme4_section_from_a_given_result(fake, tmp_path):
    ref = fake_glmer(
        {
            "Intercept": (-0.2, 0.2),
            "age50": (0.5, 0.1),
            "area_soc": (0.3, 0.1),
            "age50:area_soc": (0.3, 0.1),
            "x": (0.4, 0.05),
        },
        {("lad", "Intercept"): 0.4, ("lad", "age50"): 0.0},
        singular=True,
    )
    html, _ = write_report({"m": fake}, tmp_path, synthetic=True, glmer={"m": ref})
    page = _text(html)
    assert "Reference: lme4 glmer (Laplace, nAGQ = 1)." in page
    assert "glmer reports a singular (boundary) fit" in page
    assert "difference (SE units)" in page


def test_missing_r_note_and_the_report_still_renders(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(lme4, "RSCRIPT", "/nonexistent/bin/Rscript")
    html, md = write_report({"m": fake}, tmp_path, synthetic=True, glmer={"m": lme4.glmer_for(fake)})
    page = _text(html)
    assert '<p class="fail">R/lme4 not available: R not found' in page
    assert "Fixed effects (odds ratios)" in page and "Calibration" in page
    assert "could not be computed" not in page
    assert "R/lme4 not available" in _text(md)


def test_audit_section(fake, tmp_path):
    class Audit:
        def __str__(self) -> str:
            return "rows in 1000, rows out 900"

        def to_frame(self) -> pd.DataFrame:
            return pd.DataFrame({"step": ["in", "out"], "rows": [1000, 900]})

    html, _ = write_report({"m": fake}, tmp_path, synthetic=True, audit=Audit())
    page = _text(html)
    assert "Data audit" in page and "rows in 1000, rows out 900" in page


# --------------------------------------------------------------------------- a real fit, end to end


@pytest.fixture(scope="module")
def real_fit():
    df, names = simulate(n_la=20, n=700, seed=3)
    # PyMC's own sampler: its compiled C code is cached on disk between test runs, so this
    # short fit costs ~15 s on 2 cores; nutpie's numba compilation is paid in every session.
    f = fit_model(
        "y ~ age50 * area_soc + x + (1 + age50 | lad)",
        df,
        sampler="pymc",
        chains=2,
        draws=150,
        tune=200,
        seed=7,
        progressbar=False,
        thresholds={"ess_bulk_min": 50, "ess_tail_min": 50, "rhat_max": 1.1},
    )
    return f, names


def test_end_to_end_report_of_a_real_fit(real_fit, tmp_path):
    f, names = real_fit
    cmp = S.compare_models({"a": f, "same": f})  # PSIS-LOO on the log-likelihood the fit computes
    assert cmp.table.loc["same", "elpd"] == pytest.approx(cmp.table.loc["a", "elpd"])
    assert set(cmp.pareto.columns) >= {"n_k_above_threshold", "max_k"}
    sbs = compare_with_lme4(f)  # runs glmer once, or says why it cannot
    fits = {"community": f, "community again": f}
    html, md = write_report(
        fits,
        tmp_path,
        synthetic=False,
        la_names=names,
        comparisons=S.loo_comparisons(fits),  # computed here: the report only renders
        glmer={"community": sbs, "community again": sbs},
        statements={"community": ["abs(age50) > abs(x)"]},
    )
    page = _visible_html(_text(html))
    assert "could not be computed" not in page
    assert "Model comparison (PSIS-LOO)" in page
    assert "Conditional effects of cross-level interactions" in page
    assert "|b[age50]| &gt; |b[x]|" in page
    assert SMALL_CODE not in page and SMALL_NAME not in page
    if lme4.r_available()[0]:
        assert "Reference: lme4 glmer" in page
    imgs = re.findall(r"data:image/png;base64,", _text(html))
    assert len(imgs) == 2 * 6  # forest, caterpillar, slopes, conditional, shrinkage, calibration per model
    for link in re.findall(r"\]\((figures/[^)]+\.png)\)", _text(md)):
        assert (tmp_path / link).exists()
    _screenshot(html, tmp_path / "shot.png")


def test_missing_r_note_from_the_main_job_path_keeps_the_section_and_the_shrinkage_plot(
    fake, tmp_path, monkeypatch
):
    """`sameplace main` and `sameplace report` hand the report the one lme4 path's result; with
    R absent that is a note, which must be shown as such (it once reached side_by_side as a
    string, whose TypeError was swallowed: 'could not be computed', shrinkage figure lost)."""
    monkeypatch.setattr(lme4, "RSCRIPT", "/nonexistent/bin/Rscript")
    note = lme4.glmer_for(fake)
    html, md = write_report({"m": fake}, tmp_path, synthetic=True, glmer={"m": note})
    page = _text(html)
    assert '<p class="fail">R/lme4 not available: R not found' in page
    assert "could not be computed" not in page
    assert "Shrinkage" in page and (tmp_path / "figures").exists()
    assert any("shrinkage" in p.name for p in (tmp_path / "figures").iterdir())


def _screenshot(html: Path, shot: Path) -> None:
    chromium = shutil.which("chromium")
    require_installed(chromium is not None, "chromium not installed: browser check skipped")
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1280,2000",
            f"--screenshot={shot}",
            html.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 20000, f"chromium rendered nothing for {html}"


def test_lean_report_links_detail_pages_and_keeps_la_tables_as_csv(data, tmp_path):
    """details=True (the main job's layout): the main page keeps verdicts and findings and
    links one page per model; LA-level tables are CSV downloads, not inline; both pages render
    in a real browser."""
    fits = {
        "first model": fake_fit(data[0], "y ~ x + (1 | lad)"),
        "second": fake_fit(data[0], "y ~ x + (1 | lad)"),
    }
    single, _ = write_report(fits, tmp_path / "one", synthetic=True)
    html, md = write_report(fits, tmp_path / "lean", synthetic=True, details=True)
    page = _text(html)
    assert "Models in this report" in page and "Fixed effects (odds ratios)" not in page
    assert 'href="details/first-model.html"' in page and 'href="details/second.html"' in page
    detail = tmp_path / "lean" / "details" / "first-model.html"
    dpage = _text(detail)
    assert "Fixed effects (odds ratios)" in dpage and 'href="../report.html"' in dpage
    csvs = re.findall(r'href="\.\./([^"]+\.csv)"', dpage)
    assert csvs and all((tmp_path / "lean" / c).exists() for c in csvs)
    assert "<details>" not in dpage  # LA tables are downloads, not inline tables
    assert html.stat().st_size < single.stat().st_size / 3
    dmd = (tmp_path / "lean" / "details" / "first-model.md").read_text()
    for link in re.findall(r"\]\((\.\./figures/[^)]+\.png)\)", dmd):
        assert (detail.parent / link).resolve().exists()
    _screenshot(html, tmp_path / "lean.png")
    _screenshot(detail, tmp_path / "detail.png")
