"""Hierarchical logistic models from lme4-style formulas, in PyMC.

``models`` knows nothing of the wellbeing survey: it turns a formula and any data frame into
a PyMC model with partial pooling and correlated varying slopes, samples it (nutpie by
default), checks convergence, saves fits as NetCDF and predicts for new rows.

Modules: `formula` (formula -> arrays), `priors` (defaults and overrides), `logistic` (the
model family), `fitting` (fit, save, load), `convergence` (the gate), `prediction`; for
speed, `compiled` (compile once per model structure), `ops` (the sampling form's
likelihood Op) and `kernels` (its vectorised numba kernel).
"""

import importlib

# Names are loaded on first use (PEP 562), so that `models.formula` can be imported, e.g. by
# the synthetic generator in `data`, without importing PyMC.
_HOME = {
    "Convergence": "models.convergence",
    "check_convergence": "models.convergence",
    "ConvergenceWarning": "models.fitting",
    "Fit": "models.fitting",
    "FitFileError": "models.fitting",
    "SamplerSettingsError": "models.fitting",
    "fit": "models.fitting",
    "load_fit": "models.fitting",
    "sample_prior_predictive": "models.fitting",
    "DataWarning": "models.formula",
    "FormulaError": "models.formula",
    "ModelData": "models.formula",
    "build_model_data": "models.formula",
    "parse_formula": "models.formula",
    "hierarchical_logistic": "models.logistic",
    "hierarchical_cumulative": "models.cumulative",
    "Prior": "models.priors",
    "PriorError": "models.priors",
    "default_priors": "models.priors",
    "resolve_priors": "models.priors",
}


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])


__all__ = [
    "Convergence",
    "ConvergenceWarning",
    "DataWarning",
    "Fit",
    "FitFileError",
    "FormulaError",
    "ModelData",
    "Prior",
    "PriorError",
    "SamplerSettingsError",
    "build_model_data",
    "check_convergence",
    "default_priors",
    "fit",
    "hierarchical_cumulative",
    "hierarchical_logistic",
    "load_fit",
    "parse_formula",
    "resolve_priors",
    "sample_prior_predictive",
]
