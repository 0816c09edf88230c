"""Threshold sensitivity (`analysis.thresholds`): on a scale drawn from a proportional-odds
model, the binary odds ratio at every cut-off estimates the ordinal one (overlapping
intervals, same direction), and the table and figure say so."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.summaries import interval_columns
from analysis.thresholds import threshold_figure, threshold_sensitivity
from tests.test_ordinal import simulate_ordinal


def test_binary_odds_ratios_by_cutoff_beside_the_ordinal_one(tmp_path):
    df, _ = simulate_ordinal(n=1500, n_lad=25, seed=5)
    df["score"] = df["y"].cat.codes + 1  # a 1-5 scale
    res = threshold_sensitivity(
        df,
        "score",
        "x + f + (1 | lad)",
        study_cut=4,
        seed=2,
        chains=2,
        draws=400,
        tune=400,
        escalate=False,
        accept_failed=True,
        progressbar=False,
    )
    t = res.table
    lo, hi = interval_columns("eti", 0.95, "or_")
    assert sorted(res.binary) == [2.0, 3.0, 4.0, 5.0]
    assert len(t) == 2 * (1 + 4) and set(t["model"]) == {"ordinal", "binary"}
    assert t.loc[t["study_cut"], "cutoff"].tolist() == [4.0, 4.0]
    for term in ("x", "f"):
        rows = t[t["term"] == term]
        o = rows[rows["model"] == "ordinal"].iloc[0]
        b = rows[rows["model"] == "binary"]
        # proportional odds holds in the data: every binary interval overlaps the ordinal one
        assert ((b[lo] < o[hi]) & (b[hi] > o[lo])).all(), rows
        assert not b["differs_from_ordinal"].any()
        # the ordinal interval is the narrowest (it uses the whole scale), on the log-odds scale:
        # on the odds-ratio scale a width also grows with the OR itself
        assert np.log(o[hi] / o[lo]) < np.log(b[hi] / b[lo]).min()
    o = t[(t["term"] == "x") & (t["model"] == "ordinal")].iloc[0]
    assert o[lo] > 1 and t[(t["term"] == "f") & (t["model"] == "ordinal")].iloc[0][hi] < 1  # true signs
    share = t[(t["model"] == "binary") & (t["term"] == "x")].set_index("cutoff")["share_above"]
    np.testing.assert_allclose(share.to_numpy(), [(df["score"] >= c).mean() for c in share.index])
    fig = threshold_figure(t, tmp_path / "thresholds.png")
    assert (tmp_path / "thresholds.png").stat().st_size > 10_000 and len(fig.axes) >= 2
    with pytest.raises(KeyError, match="not in the data"):
        threshold_sensitivity(df, "nope", "x + (1 | lad)")
    assert isinstance(t, pd.DataFrame)
