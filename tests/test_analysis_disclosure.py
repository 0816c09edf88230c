"""Disclosure control: LAs with fewer than k respondents are removed from real-data outputs."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.disclosure import DisclosurePolicy, suppress_small_groups, suppression_note


@pytest.fixture
def table() -> pd.DataFrame:
    t = pd.DataFrame({"level": ["A", "B", "C", "D"], "n": [5, 9, 10, 250], "value": [1.0, 2.0, 3.0, 4.0]})
    t.attrs["interval"] = "95% equal-tailed interval (ETI)"
    return t


def test_rows_below_k_are_removed_and_counted(table):
    out = suppress_small_groups(table, k=10)
    assert list(out.level) == ["C", "D"]
    assert out.attrs["suppressed"] == 2
    assert "2 LAs with fewer than 10 respondents suppressed" in out.attrs["suppression_note"]
    assert out.attrs["interval"] == table.attrs["interval"]  # other labels survive
    assert len(table) == 4  # the input is not modified


def test_k_is_configurable_and_long_tables_count_levels(table):
    assert list(suppress_small_groups(table, k=6).level) == ["B", "C", "D"]
    long = pd.concat([table.assign(term="x"), table.assign(term="z")], ignore_index=True)
    out = suppress_small_groups(long, k=10)
    assert out.attrs["suppressed"] == 2 and len(out) == 4


def test_missing_count_column_is_an_error(table):
    with pytest.raises(KeyError, match="without respondent counts"):
        suppress_small_groups(table.drop(columns="n"))
    with pytest.raises(ValueError):
        suppress_small_groups(table, k=0)


def test_policy_real_vs_synthetic(table):
    real = DisclosurePolicy(synthetic=False, k=10)
    assert list(real.apply(table).level) == ["C", "D"]
    assert real.note() == suppression_note(2, 10)
    syn = DisclosurePolicy(synthetic=True)
    assert len(syn.apply(table)) == 4
    assert "Synthetic data" in syn.note()
    assert suppression_note(0, 10).startswith("No LA had fewer than 10")
