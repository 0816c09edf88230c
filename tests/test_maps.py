"""Maps: LA values drawn on the real 2019 boundaries, every code accounted for, LAs below the
disclosure threshold hatched (exactly those), MrP and LA-effect maps from a fake fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from test_analysis_support import fake_fit

from analysis.maps import choropleth, join_boundaries, la_maps, load_boundaries, suppressed_codes
from analysis.mrp import load_population, mrp


@pytest.fixture(scope="module")
def respondents():
    rng = np.random.default_rng(7)
    pop = load_population()
    las = sorted(rng.choice(pop.lad.unique(), 30, replace=False))
    sizes = rng.integers(3, 40, len(las))
    lad = np.repeat(las, sizes)
    n = len(lad)
    area = pd.Series(rng.normal(size=len(las)), index=las)
    df = pd.DataFrame(
        {
            "lad": lad,
            "age": rng.integers(16, 90, n),
            "female": rng.integers(0, 2, n).astype(float),
            "area": area.reindex(lad).to_numpy(),
        }
    )
    df["age50"] = (df.age >= 50).astype(float)
    df["y"] = rng.integers(0, 2, n)
    extra = [c for c in pop.lad.unique() if c not in las][:4]  # LAs without respondents
    population = pop[pop.lad.isin(las + extra)]
    return df, population, area, extra


def test_boundaries_are_the_371_gb_las_of_2019():
    g = load_boundaries()
    assert len(g) == 371 and g.lad19cd.is_unique and g.crs.to_epsg() == 27700
    assert set(g.lad19cd) == set(load_population().lad)


def test_join_counts_every_code_and_names_the_unmatched(tmp_path):
    values = pd.DataFrame({"lad": ["E08000025", "W06000015", "E99999999"], "v": [1.0, 2.0, 3.0]})
    joined, report = join_boundaries(values)
    assert report.n_values == 3 and report.n_matched == 2 and report.unmatched == ("E99999999",)
    assert report.without_value == 369 and len(joined) == 371
    assert "E99999999" in report.sentence()
    path, rep = choropleth(values, "v", tmp_path / "m.png", title="t", units="u (units)", synthetic=True)
    assert rep == report and path.stat().st_size > 20_000
    _, nan_report = join_boundaries(values.assign(v=[1.0, np.nan, 3.0]), column="v")
    assert nan_report.without_value == 370 and nan_report.n_matched == 2
    with pytest.raises(ValueError, match="more than once"):
        join_boundaries(pd.concat([values, values]))


def test_maps_render_and_hatch_exactly_the_las_below_k(respondents, tmp_path):
    df, population, area, extra = respondents
    fit = fake_fit(df, "y ~ age50 + female + area + (1 | lad)")
    k = 15
    table = mrp(
        fit,
        population,
        table=df,
        synthetic=False,
        k=k,
        weight=None,
        max_draws=100,
        area=area.to_frame("area"),
    )
    counts = df.lad.value_counts().to_dict()
    maps = la_maps(fit, table, tmp_path, synthetic=False, k=k, name="demo")
    expected = {c for c in population.lad.unique() if counts.get(c, 0) < k}
    assert maps.suppressed == expected and set(extra) <= expected
    assert expected != set(population.lad.unique())  # some LAs are shown
    # the same LAs have no point estimate in the published MrP table
    everyone = table[(table.subgroup == "all") & (table.lad != "GB")]
    assert set(everyone.loc[everyone.mrp_mean.isna(), "lad"]) == expected
    assert len(maps.figures) == 4
    for path, caption in maps.figures:
        img = imread(path)
        assert img.shape[0] > 800 and img.shape[1] > 600
        assert f"{len(expected)} LA(s) with fewer than {k} respondents" in caption
        assert "0 code(s)" not in caption and "joined to the 2019 boundaries" in caption
    assert {j.unmatched for j in maps.joins.values()} == {()}
    assert maps.joins["mrp_share"].n_matched == population.lad.nunique()
    # synthetic data: nothing hatched
    syn = la_maps(
        fit,
        mrp(fit, population, table=df, weight=None, max_draws=50, area=area.to_frame("area")),
        tmp_path / "syn",
        synthetic=True,
        k=k,
        name="demo",
    )
    assert syn.suppressed == set()
    assert suppressed_codes(["a", "b"], {"a": 3, "b": 30}, 10, synthetic=False) == {"a"}


def test_map_section_in_the_report_follows_the_disclosure_rule(respondents, tmp_path):
    from analysis.maps import map_section
    from analysis.report import write_report

    df, population, area, extra = respondents
    fit = fake_fit(df, "y ~ age50 + female + area + (1 | lad)")
    k = 15
    section = map_section({"life_satisfaction": fit}, df, tmp_path, synthetic=False, k=k, max_draws=100)
    assert section.model == "life_satisfaction" and len(section.maps.figures) == 4
    published = pd.read_csv(section.mrp_csv)
    counts = df.lad.value_counts()
    rows = published[(published.lad != "GB")]
    small = rows[rows.lad.map(lambda c: counts.get(c, 0) < k)]
    assert len(small) and small[["mrp_mean", "mrp_median", "direct", "n", "p_above_gb"]].isna().all().all()
    sub = rows[rows.subgroup == "age50"]
    assert (sub.n.dropna() >= k).all() and sub.loc[sub.n.isna(), ["mrp_mean", "direct"]].isna().all().all()
    # every LA below k (respondents in the fit's rows) is hatched, and only those
    below = {c for c in section.maps.suppressed}
    assert below == {c for c in set(rows.lad) | set(counts.index) if counts.get(c, 0) < k}
    assert f"hatches the {len(below)} LA(s) with fewer than {k} respondents" in section.note
    html, md = write_report({"life_satisfaction": fit}, tmp_path, synthetic=False, min_cell=k, maps=section)
    text = html.read_text()
    assert "Maps: life_satisfaction" in text and "interval only" not in text  # values live in the CSV
    assert text.count("data:image/png;base64") >= 4 and "mrp/life_satisfaction.csv" in text
    assert "LA mode: each row&#39;s own LA" in text or "LA mode: each row's own LA" in text
    assert "hatches the" in md.read_text()
