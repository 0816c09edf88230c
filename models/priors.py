"""Default priors and user overrides, by parameter name.

Defaults (weakly informative, on the scale of standardised predictors, as in rstanarm's
autoscaling and brms' defaults):

==================  =================================  ==========================================
parameter           default                            meaning
==================  =================================  ==========================================
``Intercept``       ``normal(0, 2.5)``                 log-odds at the mean of the predictors
                                                       (the fixed design is centred while
                                                       sampling; the reported ``Intercept`` is on
                                                       the original scale)
``b[<term>]``       ``normal(0, 2.5 / sd(x))``         each fixed slope; i.e. ``normal(0, 2.5)``
                                                       per standard deviation of its predictor
``sd_<group>``      ``halfnormal(1)``                  SD of each varying effect (log-odds)
``cor_<group>``     ``lkj(2)``                         correlation matrix of a block's effects
``rho_<group>``     ``beta(0.5, 0.5)``                 spatial share of the variance of a
                                                       ``car()`` term (BYM2, `models.spatial`)
``cutpoints``       ``normal(0, 2.5)``, ordered        cumulative (ordinal) family only: each
                                                       cutpoint on the logit scale at the mean
                                                       of the predictors, the vector restricted
                                                       to increasing values (brms' default is
                                                       student_t(3, 0, 2.5) the same way)
==================  =================================  ==========================================

Override any of them with a dict: ``{"b[age50]": "normal(0, 1)", "b": "normal(0, 1)",
"sd_lad": "exponential(2)", "cor_lad": "lkj(4)", "Intercept": "student_t(3, 0, 2.5)"}``.
A key ``"b"`` sets all fixed slopes at once (a per-term key wins); ``"sd"`` all group SDs.
Unknown names raise an error listing the valid ones.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pymc as pm

from models.formula import ModelData

_FAMILIES = {
    "normal": ("mu", "sigma"),
    "student_t": ("nu", "mu", "sigma"),
    "halfnormal": ("sigma",),
    "halfstudent_t": ("nu", "sigma"),
    "exponential": ("lam",),
    "lkj": ("eta",),
    "beta": ("alpha", "beta"),
}
_POSITIVE = {"halfnormal", "halfstudent_t", "exponential"}


class PriorError(ValueError):
    """An unknown prior name, family, or invalid parameter."""


@dataclass(frozen=True)
class Prior:
    """A prior distribution given by family and parameters, e.g. ``Prior("normal", (0, 1))``."""

    family: str
    params: tuple[float, ...]

    @classmethod
    def parse(cls, text: str | Prior) -> Prior:
        """Parse ``"normal(0, 2.5)"``-style text (brms syntax)."""
        if isinstance(text, Prior):
            return text
        m = re.fullmatch(r"\s*([a-z_]+)\s*\((.*)\)\s*", str(text))
        if not m:
            raise PriorError(f"cannot read prior {text!r}: write e.g. 'normal(0, 1)'")
        family = m.group(1)
        if family not in _FAMILIES:
            raise PriorError(f"unknown prior family {family!r} in {text!r}; use one of {sorted(_FAMILIES)}")
        try:
            params = tuple(float(v) for v in m.group(2).split(",") if v.strip())
        except ValueError:
            raise PriorError(f"prior {text!r} has a non-numeric parameter") from None
        if len(params) != len(_FAMILIES[family]):
            raise PriorError(
                f"prior {text!r}: {family} takes {len(_FAMILIES[family])} parameters "
                f"({', '.join(_FAMILIES[family])})"
            )
        names = _FAMILIES[family]
        for n, v in zip(names, params, strict=True):
            if n in ("sigma", "nu", "lam", "eta", "alpha", "beta") and not v > 0:
                raise PriorError(f"prior {text!r}: {n} must be positive, got {v:g}")
            if not np.isfinite(v):
                raise PriorError(f"prior {text!r}: {n} must be a finite number, got {v:g}")
        return cls(family, params)

    def __str__(self) -> str:
        return f"{self.family}({', '.join(f'{p:g}' for p in self.params)})"

    def dist(self, name: str, **kwargs):
        """Create the PyMC random variable (inside a model context)."""
        kw = dict(zip(_FAMILIES[self.family], self.params, strict=True))
        if self.family == "normal":
            return pm.Normal(name, **kw, **kwargs)
        if self.family == "student_t":
            return pm.StudentT(name, **kw, **kwargs)
        if self.family == "halfnormal":
            return pm.HalfNormal(name, **kw, **kwargs)
        if self.family == "halfstudent_t":
            return pm.HalfStudentT(name, **kw, **kwargs)
        if self.family == "exponential":
            return pm.Exponential(name, **kw, **kwargs)
        if self.family == "beta":
            return pm.Beta(name, **kw, **kwargs)
        raise PriorError(f"{self} cannot be used for {name!r}")

    def dist_unnamed(self, shape: int):
        """An unnamed distribution (``.dist``) for LKJCholeskyCov's ``sd_dist``."""
        kw = dict(zip(_FAMILIES[self.family], self.params, strict=True))
        table = {
            "halfnormal": pm.HalfNormal,
            "halfstudent_t": pm.HalfStudentT,
            "exponential": pm.Exponential,
        }
        if self.family not in table:
            raise PriorError(f"a group SD prior must be positive-valued, not {self}")
        return table[self.family].dist(**kw, shape=shape)

    @property
    def mean_sd(self) -> tuple[float, float]:
        """Location and scale, for centring parameters."""
        kw = dict(zip(_FAMILIES[self.family], self.params, strict=True))
        return kw.get("mu", 0.0), kw.get("sigma", 1.0)


def default_priors(md: ModelData) -> dict[str, Prior]:
    """The default prior of every parameter of a model, keyed by its name."""
    priors: dict[str, Prior] = {}
    if md.has_intercept:
        priors["Intercept"] = Prior("normal", (0.0, 2.5))
    if md.family == "cumulative":
        priors["cutpoints"] = Prior("normal", (0.0, 2.5))
    for j, term in enumerate(md.fixed_terms):
        if term == "Intercept":
            continue
        sd = float(np.std(md.X[:, j]))
        priors[f"b[{term}]"] = Prior("normal", (0.0, float(f"{2.5 / sd:.4g}") if sd > 0 else 2.5))
    for block in md.blocks:
        priors[f"sd_{block.name}"] = Prior("halfnormal", (1.0,))
        if block.correlated:
            priors[f"cor_{block.name}"] = Prior("lkj", (2.0,))
        if block.spatial:  # car(g, type = "bym2"): share of the variance that is spatial
            priors[f"rho_{block.name}"] = Prior("beta", (0.5, 0.5))
    return priors


def resolve_priors(md: ModelData, overrides: dict[str, str | Prior] | None = None) -> dict[str, Prior]:
    """Defaults updated with the user's overrides (checked by name and family).

    Parameters
    ----------
    md : ModelData
    overrides : dict, optional
        ``{name: "family(params)"}``; names as in `default_priors`, plus ``"b"`` (all
        slopes) and ``"sd"`` (all group SDs).

    Returns
    -------
    dict of str to Prior
    """
    priors = default_priors(md)
    if overrides is not None and not isinstance(overrides, Mapping):
        raise PriorError(
            "priors must be a dict of name -> prior, e.g. {'b': 'normal(0, 1)'}, "
            f"got {type(overrides).__name__}"
        )
    overrides = dict(overrides or {})
    for key in ("b", "sd"):
        if key in overrides:
            p = Prior.parse(overrides.pop(key))
            targets = [n for n in priors if n.startswith(f"{key}[") or (key == "sd" and n.startswith("sd_"))]
            if not targets:
                raise PriorError(
                    f"prior key {key!r}: this model has no {'slopes' if key == 'b' else 'group SDs'}"
                )
            for name in targets:
                _check_family(name, p, key)
                priors[name] = p
    for name, text in overrides.items():
        if name not in priors:
            close = difflib.get_close_matches(str(name), list(priors), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PriorError(
                f"unknown prior name {name!r}{hint}; this model's parameters are: "
                f"{', '.join(priors)} (and 'b', 'sd' for all slopes / all group SDs)"
            )
        p = Prior.parse(text)
        _check_family(name, p, name)
        priors[name] = p
    return priors


def _check_family(name: str, p: Prior, key: str) -> None:
    """The family must suit the parameter (``key`` is the name the user wrote)."""
    if name.startswith("sd_") and p.family not in _POSITIVE:
        raise PriorError(f"prior for {key!r} must be positive-valued (halfnormal, exponential, ...), got {p}")
    if name.startswith("rho_") and p.family != "beta":
        raise PriorError(f"prior for {key!r} must be beta(alpha, beta), got {p}")
    if name.startswith("cor_") and p.family != "lkj":
        raise PriorError(f"prior for {key!r} must be lkj(eta), got {p}")
    if (name.startswith("b[") or name in ("Intercept", "cutpoints")) and p.family not in (
        "normal",
        "student_t",
    ):
        raise PriorError(f"prior for {key!r} must be normal or student_t, got {p}")


def priors_to_json(priors: dict[str, Prior]) -> str:
    return json.dumps({k: str(v) for k, v in priors.items()})


def priors_from_json(text: str) -> dict[str, Prior]:
    return {k: Prior.parse(v) for k, v in json.loads(text).items()}
