"""Hierarchical logistic models from lme4-style formulas, in PyMC.

``models`` knows nothing of the wellbeing survey: it turns a formula and any data frame into
a PyMC model with partial pooling and correlated varying slopes, samples it (nutpie by
default), checks convergence, saves fits as NetCDF and predicts for new rows.

Modules: `formula` (formula -> arrays), `priors` (defaults and overrides), `logistic` (the
model family), `fitting` (fit, save, load), `convergence` (the gate), `prediction`; for
speed, `compiled` (compile once per model structure), `ops` (the sampling form's
likelihood Op) and `kernels` (its vectorised numba kernel).
"""

from models.convergence import Convergence, check_convergence
from models.fitting import (
    ConvergenceWarning,
    Fit,
    FitFileError,
    SamplerSettingsError,
    fit,
    load_fit,
    sample_prior_predictive,
)
from models.formula import DataWarning, FormulaError, ModelData, build_model_data
from models.logistic import hierarchical_logistic
from models.priors import Prior, PriorError, default_priors, resolve_priors

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
    "hierarchical_logistic",
    "load_fit",
    "resolve_priors",
    "sample_prior_predictive",
]
