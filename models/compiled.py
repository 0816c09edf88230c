"""Compile once, reuse across fits of the same model structure.

nutpie compiles a PyMC model's log density and gradient to machine code (numba). That
takes seconds to a minute; sampling a grid of models (outcomes x specifications x
subgroups) must not pay it per fit. Compiled models are cached in memory by
`models.logistic.structure_key`; a fit whose structure matches reuses the compiled model
with its data swapped in (`CompiledModel.with_data`).

The compiled model is the sampling form of the model (``fast_likelihood=True`` in
`models.logistic.hierarchical_logistic`): same parameters and log density, likelihood and
gradient in one loop. Set ``FAST_LIKELIHOOD = False`` to sample the straightforward model.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import nutpie

from models.formula import ModelData
from models.logistic import data_values, hierarchical_logistic, structure_key
from models.priors import Prior

_CACHE: OrderedDict[str, object] = OrderedDict()
MAX_CACHED = 16
FAST_LIKELIHOOD = True
"""Compile the sampling form of the model (`models.ops.glmm_loglik`)."""


def compiled_model(md: ModelData, priors: dict[str, Prior], *, centered: bool) -> tuple[object, dict]:
    """A nutpie compiled model for this model data, from the cache when possible.

    Returns
    -------
    compiled : nutpie CompiledModel, with this data set
    info : dict
        ``{"reused": bool, "compile_seconds": float, "structure_key": str}``
    """
    key = structure_key(md, priors, centered=centered, fast_likelihood=FAST_LIKELIHOOD)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        compiled = _CACHE[key].with_data(**data_values(md, priors, fast_likelihood=FAST_LIKELIHOOD))
        return compiled, {"reused": True, "compile_seconds": 0.0, "structure_key": key}
    t0 = time.perf_counter()
    model = hierarchical_logistic(md, priors, centered=centered, fast_likelihood=FAST_LIKELIHOOD)
    compiled = nutpie.compile_pymc_model(model, backend="numba")
    seconds = time.perf_counter() - t0
    _CACHE[key] = compiled
    while len(_CACHE) > MAX_CACHED:
        _CACHE.popitem(last=False)
    return compiled, {"reused": False, "compile_seconds": seconds, "structure_key": key}


def clear_cache() -> None:
    """Forget every compiled model (the next fit of each structure compiles again)."""
    _CACHE.clear()
