"""Figures: PNG at 120 dpi, labelled log odds-ratio axes, interval in the title, synthetic marking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from test_analysis_support import fake_fit, simulate

from analysis import figures
from analysis import summaries as S


@pytest.fixture(scope="module")
def fit():
    return fake_fit(simulate()[0])


@pytest.fixture
def captured(monkeypatch):
    """Record each figure as it is saved."""
    figs = []
    real_save = figures.save

    def save(fig, path):
        figs.append(fig)
        return real_save(fig, path)

    monkeypatch.setattr(figures, "save", save)
    return figs


def _suptitle(fig) -> str:
    return fig._suptitle.get_text().replace("\n", " ")


def test_forest_plot_png_axes_and_title(fit, tmp_path, captured):
    path = figures.forest_plot(S.fixed_effects(fit), tmp_path / "f.png", synthetic=False, title="Belonging")
    img = imread(path)
    fig = captured[0]
    assert img.shape[1] == round(fig.get_figwidth() * figures.DPI)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert "Odds ratio" in ax.get_xlabel() and "log scale" in ax.get_xlabel()
    assert "95% equal-tailed interval" in _suptitle(fig)
    assert "SYNTHETIC" not in _suptitle(fig)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "Intercept" not in labels and "age50:area_soc" in labels
    ticks = ax.get_xticks()
    assert 1.0 in ticks and len(ticks) >= 3


def test_synthetic_marking_in_every_figure(fit, tmp_path, captured):
    fe = S.fixed_effects(fit)
    ge = S.group_effects(fit)
    vs = S.varying_slopes(fit)
    ce = S.conditional_effects(fit, "area_soc", "age50", n_points=4)
    shr = pd.DataFrame(
        {
            "level": ["a", "b"],
            "n": [10, 40],
            "no_pooling": [0.1, -0.5],
            "glmer": [0.0, -0.3],
            "posterior_mean": [0.05, -0.35],
        }
    )
    figures.forest_plot(fe, tmp_path / "1.png", synthetic=True)
    figures.caterpillar_plot(ge, tmp_path / "2.png", synthetic=True)
    figures.varying_slopes_plot(vs.slopes, tmp_path / "3.png", synthetic=True)
    figures.conditional_effects_plot(ce, tmp_path / "4.png", synthetic=True)
    figures.shrinkage_plot(shr, tmp_path / "5.png", synthetic=True)
    cal = S.calibration(fit, n_draws=20, figure=False)
    figures.calibration_plot(cal, tmp_path / "6.png", synthetic=True)
    assert len(captured) == 6
    for fig in captured:
        assert _suptitle(fig).startswith("SYNTHETIC DATA")
        assert fig._supxlabel.get_text() == figures.SYNTHETIC_NOTE
    assert all((tmp_path / f"{i}.png").stat().st_size > 5000 for i in range(1, 7))


def test_caterpillar_with_many_las_names_top_and_bottom(tmp_path, captured):
    rng = np.random.default_rng(0)
    n = 350
    lo = rng.normal(0, 0.3, n)
    t = pd.DataFrame(
        {
            "level": [f"E{i:08d}" for i in range(n)],
            "name": [f"LA {i}" for i in range(n)],
            "n": rng.integers(10, 200, n),
            "or_median": np.exp(lo),
            "or_eti95_low": np.exp(lo - 0.4),
            "or_eti95_high": np.exp(lo + 0.4),
        }
    )
    figures.caterpillar_plot(t, tmp_path / "c.png", synthetic=False, label_n=10)
    fig = captured[0]
    band, named = fig.axes
    assert band.get_yscale() == "log" and "rank" in band.get_xlabel()
    labels = [x.get_text() for x in named.get_yticklabels()]
    assert len(labels) == 20
    top = t.sort_values("or_median", ascending=False)
    assert labels[0] == f"{top.name.iloc[0]} (n={top.n.iloc[0]})"
    assert f"{top.name.iloc[-1]} (n={top.n.iloc[-1]})" in labels
    assert "95% equal-tailed interval" in _suptitle(fig)


def test_conditional_effects_plot_lines_and_labels(fit, tmp_path, captured):
    ce = S.conditional_effects(fit, "area_soc", "age50", n_points=6)
    figures.conditional_effects_plot(ce, tmp_path / "ce.png", synthetic=False, outcome="belonging")
    ax = captured[0].axes[0]
    assert len(ax.get_lines()) == 2
    assert ax.get_ylabel() == "Predicted probability of belonging"
    assert "area_soc" in ax.get_xlabel()
    assert "95% equal-tailed band" in _suptitle(captured[0])
