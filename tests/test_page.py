"""The decision makers' page: written from a small run, opened in headless Chromium from disk;
its numbers equal Python's (`analysis.page.whatif`) for the same shift; the what-if stays close
to `analysis.scenarios.scenario` on people; the disclosure rule holds for everything shipped;
nothing is fetched and nothing is logged as an error."""

from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from installed import require_installed

from analysis.catalogue import Catalogue, load_catalogue
from analysis.main_job import RunSettings, run_main
from analysis.page import FACTORS, read_payload, whatif, write_page
from analysis.scenarios import Shift, scenario
from data.prepare import prepare
from models import load_fit

CAT = load_catalogue()
NAMES = ["mental_wellbeing", "link_belonging"]
SMALL = dict(n=1500, chains=2, draws=150, tune=150, compare_lme4=False)
K = 10
SHOTS = Path("runs/page_test_screenshots")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pagerun") / "main"
    cat = Catalogue(CAT.select(NAMES), CAT.labels, CAT.defaults, CAT.path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_main(RunSettings(out=str(out), all_models=True, **SMALL), catalogue=cat)
    return out


@pytest.fixture(scope="module")
def table():
    return prepare(n=SMALL["n"])[0]


@pytest.fixture(scope="module")
def page(run, table):
    t0 = time.perf_counter()
    path = write_page(run, table=table)
    seconds = time.perf_counter() - t0
    print(f"\npage: {path.stat().st_size / 1e6:.2f} MB written in {seconds:.1f} s")
    return path


@pytest.fixture(scope="module")
def payload(page):
    return read_payload(page)


# --------------------------------------------------------------------------- the payload


def test_payload_obeys_the_disclosure_rule(payload, table):
    assert payload["k"] == K
    counts = table["lad"].value_counts()
    assert (counts < K).any()  # the small cohort has small LAs: the rule has something to do
    shipped = {la["code"] for la in payload["las"]}
    assert all(la["n"] >= K for la in payload["las"])
    assert all(counts[c] >= K for c in shipped)
    for name, m in payload["models"].items():
        assert set(m["las"]) <= shipped, name
        assert all(n >= K for n in m["cells"]["n"]), name
        assert all(n >= K for n in m["la_effects"]["n"]), name
        assert m["suppressed_cells"] > 0, name
    small = set(counts.index[counts < K])
    text = json.dumps(payload)
    assert not any(code in text for code in small)
    geo = {f["properties"]["lad19cd"] for f in payload["geojson"]["features"]}
    assert geo == shipped
    assert "no LA with fewer than 10 respondents" in payload["disclosure"]


def test_payload_holds_no_rows_and_reads_the_fits(payload, run, table):
    # cells are means over at least k people, never rows: far fewer cells than people
    for name, m in payload["models"].items():
        f = load_fit(run / "fits" / f"{name}.nc")
        assert len(m["cells"]["n"]) < f.md.n_obs / K
        assert m["draws"] == 200 and m["converged"] == f.converged
        assert m["groups"][0] == {"subgroup": "all", "level": "everyone"}
    # arrows come from analysis.levels (summaries.fixed_effects), one per estimated term
    from analysis.levels import level_arrows

    fits = {n: load_fit(run / "fits" / f"{n}.nc") for n in NAMES}
    expected = {(a.source, a.target, round(float(a.median), 4)) for a in level_arrows(fits)}
    got = {(a["source"], a["target"], a["or_median"]) for a in payload["arrows"]}
    assert got == expected
    assert all(a["sentence"] for a in payload["arrows"])
    assert payload["synthetic"] is True
    assert set(payload["factors"]) == {
        "area_volunteering",
        "area_unemployment",
        "area_sociability",
        "area_turnout",
        "area_income",
    }


def test_whatif_is_close_to_the_scenario_on_people(payload, run, table):
    """Same draws, cells instead of people: with k = 1 (nothing suppressed) the change of every
    subgroup is within 0.25 percentage points of `scenario` (whose intervals are wider than 1 pp)."""
    from analysis.page import build_payload

    fit = load_fit(run / "fits" / "mental_wellbeing.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = build_payload({"mental_wellbeing": fit}, table, synthetic=True, k=1, draws=200)
    for factor, value in (("area_volunteering", 5.0), ("area_sociability", 0.3), ("area_income", 10.0)):
        mine = whatif(full, "mental_wellbeing", {factor: value}).set_index(["subgroup", "level"])
        ref = scenario(fit, table, [Shift(factor, FACTORS[factor].to_raw(value))], max_draws=200)
        ref = ref.set_index(["subgroup", "level"])
        assert list(mine.index) == list(ref.index)
        assert (mine["n"].dropna() == ref["n"].dropna()).all()
        diff = (mine["change_pp_mean"] - ref["change_pp_mean"]).abs()
        assert diff.max() < 0.25, (factor, diff.max())
        width = ref["change_pp_eti95_high"] - ref["change_pp_eti95_low"]
        assert (diff < 0.25 * width).all(), factor
        assert (mine["p_positive"] - ref["p_positive"]).abs().max() < 0.1
    zero = whatif(full, "mental_wellbeing", {"area_volunteering": 0.0})
    assert (zero["change_pp_mean"] == 0).all()


def test_outer_rings_are_clockwise_for_d3(payload):
    def area2(pts):
        return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False))

    for ft in payload["geojson"]["features"]:
        g = ft["geometry"]
        polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
        for poly in polys:
            assert area2(poly[0]) < 0, ft["id"]
            assert all(area2(hole) > 0 for hole in poly[1:]), ft["id"]


def test_a_table_that_is_not_the_runs_is_refused(run, table, tmp_path):
    from analysis.cli import main
    from analysis.page import PageError, build_payload

    fit = load_fit(run / "fits" / "link_belonging.nc")
    with pytest.raises(PageError, match="not the table the run was fitted on"):
        build_payload({"link_belonging": fit}, table.iloc[:-50], synthetic=True)
    assert main(["page", str(tmp_path)]) == 2  # no manifest: one line, exit code 2


def test_page_command_writes_the_page(run, tmp_path, capsys):
    from analysis.cli import main

    out = tmp_path / "p.html"
    assert main(["page", str(run), "--out", str(out), "--draws", "50"]) == 0
    assert "page written" in capsys.readouterr().out
    assert all(m["draws"] == 50 for m in read_payload(out)["models"].values())


# --------------------------------------------------------------------------- in the browser


@pytest.fixture(scope="module")
def driver():
    chromedriver = shutil.which("chromedriver")
    require_installed(chromedriver is not None, "chromium-driver not installed: browser check skipped")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,2400"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chromium = shutil.which("chromium")
    if chromium:
        opts.binary_location = chromium
    drv = webdriver.Chrome(service=Service(executable_path=chromedriver), options=opts)
    yield drv
    drv.quit()


def _open(driver, page: Path) -> float:
    t0 = time.perf_counter()
    driver.get(page.resolve().as_uri())
    for _ in range(600):
        if driver.execute_script("return !!(window.sameplace && window.sameplace.ready)"):
            return time.perf_counter() - t0
        time.sleep(0.1)
    raise AssertionError(f"page never became ready: {driver.find_element('id', 'loading').text}")


def _table_values(driver, model: str) -> pd.DataFrame:
    rows = driver.execute_script(
        """
        const out = [];
        document.querySelectorAll(`table.res[data-model="${arguments[0]}"] tbody tr`).forEach((tr) => {
          const r = {subgroup: tr.dataset.subgroup, level: tr.dataset.level};
          tr.querySelectorAll('td[data-key]').forEach((td) => { r[td.dataset.key] = td.dataset.value; });
          out.push(r);
        });
        return out;
        """,
        model,
    )
    t = pd.DataFrame(rows)
    t[["change_pp_eti95_low", "change_pp_eti95_high"]] = (
        t["interval"].str.split(" ", expand=True).astype(float)
    )
    for c in ("change_pp_mean", "p_positive"):
        t[c] = t[c].astype(float)
    return t.set_index(["subgroup", "level"])


def _set_slider(driver, factor: str, value: float) -> None:
    driver.execute_script(
        """
        const s = document.getElementById('slider-' + arguments[0]);
        s.value = arguments[1];
        s.dispatchEvent(new Event('input', {bubbles: true}));
        """,
        factor,
        str(value),
    )
    time.sleep(0.3)


def _assert_equal(page_t: pd.DataFrame, py: pd.DataFrame) -> None:
    py = py.set_index(["subgroup", "level"])
    assert list(page_t.index) == list(py.index)
    for c in ("change_pp_mean", "change_pp_eti95_low", "change_pp_eti95_high", "p_positive"):
        np.testing.assert_allclose(page_t[c].to_numpy(), py[c].to_numpy(), rtol=0, atol=1e-6, err_msg=c)


def test_page_in_chromium_matches_python_and_fetches_nothing(driver, page, payload):
    SHOTS.mkdir(parents=True, exist_ok=True)
    load_s = _open(driver, page)
    body = driver.find_element("tag name", "body").text
    assert "SYNTHETIC DATA" in body and "not a forecast" in body
    assert (
        driver.execute_script("return document.querySelectorAll('.synthetic-tag:not([hidden])').length") >= 4
    )

    # a slider in the factor's real units: volunteering +5 percentage points, all LAs
    _set_slider(driver, "area_volunteering", 5)
    value = float(driver.execute_script("return document.getElementById('slider-area_volunteering').value"))
    assert value == 5.0
    for model in NAMES:
        _assert_equal(_table_values(driver, model), whatif(payload, model, {"area_volunteering": value}))
    ms = driver.execute_script("return window.sameplace.page.lastComputeMs")
    driver.save_screenshot(str(SHOTS / "page_all_las.png"))

    # a second factor with an interaction, and one LA picked by name in the search box
    _set_slider(driver, "area_sociability", 0.3)
    la = max(payload["las"], key=lambda x: x["n"])
    box = driver.find_element("id", "la-input")
    box.send_keys(la["name"])
    driver.find_element("id", "la-add").click()
    time.sleep(0.3)
    assert driver.find_element("css selector", f'#la-chosen li[data-code="{la["code"]}"]')
    shifts = {"area_volunteering": 5.0, "area_sociability": 0.3}
    for model in NAMES:
        _assert_equal(_table_values(driver, model), whatif(payload, model, shifts, las=[la["code"]]))

    # a list of LAs: the map's click handler path (plotly_click) picks a second one
    driver.find_element("css selector", "input[name=la-mode][value=list]").click()
    other = sorted(payload["las"], key=lambda x: -x["n"])[1]
    driver.execute_script(
        "document.getElementById('map').emit('plotly_click', {points: [{location: arguments[0]}]})",
        other["code"],
    )
    time.sleep(0.3)
    codes = [la["code"], other["code"]]
    for model in NAMES:
        _assert_equal(_table_values(driver, model), whatif(payload, model, shifts, las=codes))
    # the JS function itself, for a shift on the log-income scale
    js = driver.execute_script("return window.sameplace.compute('mental_wellbeing', {area_income: 12}, null)")
    js = pd.DataFrame(js).rename(
        columns={"mean": "change_pp_mean", "low": "change_pp_eti95_low", "high": "change_pp_eti95_high"}
    )
    _assert_equal(
        js.set_index(["subgroup", "level"]), whatif(payload, "mental_wellbeing", {"area_income": 12})
    )
    driver.save_screenshot(str(SHOTS / "page_la_list.png"))

    # the map draws every LA shipped on its own (no shape covers the plot: rings wound for d3-geo)
    boxes = driver.execute_script(
        """
        const frame = document.querySelector('#map .bg rect, #map rect.bg') || document.getElementById('map');
        const f = frame.getBoundingClientRect();
        return [...document.querySelectorAll('#map path.choroplethlocation')].map((p) => {
          const b = p.getBoundingClientRect();
          return (b.width * b.height) / (f.width * f.height);
        });
        """
    )
    shown = payload["models"][NAMES[0]]["la_effects"]["codes"]  # the map shows the selected model
    assert len(boxes) == len(shown)
    assert max(boxes) < 0.2, max(boxes)
    # nothing fetched: no resource entries other than data:/blob:/file: URLs
    urls = driver.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert all(u.split(":", 1)[0] in ("data", "file", "blob") for u in urls), urls
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    print(f"\nopened in {load_s:.1f} s; recompute after a slider change {ms:.0f} ms")


def test_levels_model_is_keyboard_operable(driver, page, payload):
    from selenium.webdriver.common.keys import Keys

    _open(driver, page)
    arrows = driver.find_elements("css selector", "#levels-svg g.arrow")
    assert arrows and all(a.get_attribute("tabindex") == "0" for a in arrows)
    from selenium.webdriver.common.action_chains import ActionChains

    first = next(a for a in payload["arrows"] if a["target"] in ("belonging", "lonely", "local_friends"))
    css = f'#levels-svg g.arrow[data-source="{first["source"]}"][data-target="{first["target"]}"]'
    driver.execute_script("arguments[0].focus()", driver.find_element("css selector", css))
    assert driver.execute_script("return document.activeElement.matches(arguments[0])", css)
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    detail = driver.find_element("id", "levels-detail").text
    assert first["sentence"] in detail
    assert f"{first['or_low']:.2f} to {first['or_high']:.2f}" in detail
    assert ("Convergence gate: passed" if first["converged"] else "FAILED") in detail
    # every control has a label
    unlabelled = driver.execute_script(
        """
        return [...document.querySelectorAll('input, select')].filter((e) =>
          !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && e.type !== 'hidden'
        ).map((e) => e.id || e.name);
        """
    )
    assert not unlabelled, unlabelled


def test_a_failed_fit_is_shown_as_failed(payload, tmp_path, driver):
    broken = json.loads(json.dumps(payload))
    name = NAMES[0]
    broken["models"][name]["converged"] = False
    for a in broken["arrows"]:
        if a["model"] == name:
            a["converged"] = False
    from analysis.page import page_html

    path = tmp_path / "failed.html"
    path.write_text(page_html(broken), encoding="utf-8")
    _open(driver, path)
    _set_slider(driver, "area_volunteering", 5)
    text = driver.find_element("css selector", f'div.result[data-model="{name}"]').text
    assert "NOT CONVERGED" in text
    assert not driver.find_elements("css selector", f'table.res[data-model="{name}"]')
    labels = driver.execute_script(
        "return [...document.querySelectorAll('#levels-svg g.arrow text')].map((t) => t.textContent)"
    )
    assert any("NOT CONVERGED" in t for t in labels)
