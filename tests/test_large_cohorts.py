"""Storage types of the sampling form (`models.sampling_form.sampling_form`), without compiling.

A gradient of a large cohort streams the design, positions and outcome from memory, so
the sampling form stores each in the narrowest type that holds its values exactly:
dummies, ages and counts float32 (uncentred; the kernel centres them), continuous columns
float64, positions int32. The exactness of the log density and gradient with these types
is tested against the plain model in `tests/test_models_fast.py` (its ``pooled`` and
``pooled_slope`` models have float32 columns and weights).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import build_model_data
from models.ops import GLMMLikelihood


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    n = 3_000
    return pd.DataFrame(
        {
            "y": rng.integers(0, 2, n),
            "x": rng.normal(size=n),
            "female": rng.integers(0, 2, n),
            "age": rng.integers(16, 91, n),
            "kids": rng.integers(0, 6, n),
            "lad": rng.integers(0, 40, n).astype(str),
        }
    )


def test_exact_columns_are_float32_and_the_rest_float64(df):
    from models.sampling_form import interleaving, sampling_form

    md = build_model_data("y ~ x + female + age + kids + (1 + female | lad)", df)
    layout, arrays = sampling_form(md)
    coefs = [t for t in md.fixed_terms if t != "Intercept"]
    assert [coefs[j] for j in layout.f32_cols] == ["female", "age", "kids"]
    assert arrays["XT_rows"].dtype == np.float64 and arrays["XT_rows"].shape == (1, len(df))
    assert arrays["XS_rows"].dtype == np.float32 and arrays["XS_rows"].shape == (3, len(df))
    assert arrays["P_effects"].dtype == np.int32
    assert arrays["W_effects"].dtype == np.float32 and layout.f32_weights  # the female slope
    assert arrays["y_lik"].dtype == np.float32 and layout.f32_outcome
    # stored uncentred (as recorded, rows interleaved by LA), with the means the kernel subtracts
    order = interleaving(md.blocks[0].idx)
    np.testing.assert_array_equal(arrays["XS_rows"][1], df["age"].to_numpy(np.float32)[order])
    means = df[["x", "female", "age", "kids"]].mean().to_numpy()
    np.testing.assert_allclose(arrays["x_mean_rows"], means, rtol=1e-15)
    # a column that is not exact in float32 stays float64
    md2 = build_model_data("y ~ x + female + age + kids + (1 + female | lad)", df.assign(age=df["age"] / 10))
    layout2, arrays2 = sampling_form(md2)
    assert [coefs[j] for j in layout2.f32_cols] == ["female", "kids"]
    assert arrays2["XT_rows"].shape == (2, len(df))


def test_uncentred_float32_storage_gives_the_centred_float64_likelihood():
    """The Op's numpy implementation: float32 uncentred columns with their means equal the
    centred float64 design to rounding (the numba kernel is compared in test_models_fast)."""
    rng = np.random.default_rng(2)
    m, q = 700, 12
    X = np.column_stack([rng.integers(0, 2, m), rng.integers(16, 91, m), rng.normal(size=m)]).astype(float)
    xm = X.mean(axis=0)
    b, c, R = rng.normal(0, 0.3, 3), 0.2, rng.normal(0, 1, q)
    PT = rng.integers(0, q, (1, m))
    y = rng.integers(0, 2, m).astype(float)
    op = GLMMLikelihood("bernoulli", True)

    def run(XT, XS, b_, xm_, PT_, y_):
        out = [[None] for _ in range(4)]
        inputs = [XT, XS, b_, np.asarray(c), xm_, R, PT_, np.zeros((0, 0)), y_, np.ones(m), np.asarray(0.0)]
        op.perform(None, inputs, out)
        return [np.asarray(o[0]) for o in out]

    centred = run((X - xm).T.copy(), np.zeros((0, m), np.float32), b, np.zeros(3), PT, y)
    b_order = [2, 0, 1]  # the stored form's order: float64 columns first, then float32 ones
    stored = run(
        X[:, [2]].T.copy(),
        X[:, :2].T.astype(np.float32),
        b[b_order],
        xm[b_order],
        PT.astype(np.int32),
        y.astype(np.float32),
    )
    np.testing.assert_allclose(stored[0], centred[0], rtol=1e-12)
    np.testing.assert_allclose(stored[1], centred[1][b_order], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(stored[2], centred[2], rtol=1e-12)
    np.testing.assert_allclose(stored[3], centred[3], rtol=1e-12, atol=1e-12)
