"""The known hierarchical logistic models behind the synthetic release.

Every model is stated on analysis-table variables exactly as :mod:`data.derive` makes
them (standardised predictors, 0/1 indicators, LOO area means). The synthetic
generator draws the links (``belonging``, ``local_friends``, ``lonely``) first, then the
wellbeing outcomes with the drawn links as predictors. Sizes are log-odds per SD of a
standardised predictor (or per unit of a 0/1 indicator).

Findings of the study built in (``docs/study.md``):

1. ``area_volunteering`` (+) and ``area_unemployment`` (-) in community and individual
   wellbeing;
2. ``area_turnout`` (+) and 3. ``area_income`` (+) in individual wellbeing;
4. ``urban`` (-) on community wellbeing with ``urban:area_turnout`` (+);
5. outcomes depend on individual ``unsafe`` (-) and not on ``area_walkability``, while
   feeling unsafe is more common in walkable LAs (omitted-variable effect);
6. cross-level interactions with correlated LA slopes: ``sociability:area_sociability``
   (+) and ``log_income:area_income`` (-) for mental wellbeing, ``age50:area_sociability``
   (+) for community wellbeing;
7. links: ``belonging`` (+) and ``lonely`` (-) matter more than ``local_friends`` (+).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.formula import parse_formula

__all__ = [
    "OutcomeTruth",
    "TRUTH",
    "LINKS",
    "OUTCOMES",
    "DRAW_ORDER",
    "expand_formula",
    "design_matrix",
    "UNSAFE_MODEL",
]


@dataclass(frozen=True)
class OutcomeTruth:
    """Truth of one binary outcome.

    Attributes
    ----------
    outcome : str
        Analysis-table name.
    formula : str
        lme4-style formula in analysis-table names.
    fixed : dict
        ``"Intercept"`` and every term of the formula (interactions as ``"a:b"``).
    group_terms : tuple of str
        Terms varying by LA, ``"Intercept"`` first.
    sd : tuple of float
        Their LA standard deviations.
    corr : tuple of tuple of float
        Their correlation matrix.
    exact : bool
        Whether a model of ``formula`` fitted to the reader's table targets exactly
        these values (complete cases).
    note : str
        Caveats.
    """

    outcome: str
    formula: str
    fixed: dict[str, float]
    group_terms: tuple[str, ...] = ("Intercept",)
    sd: tuple[float, ...] = (0.2,)
    corr: tuple[tuple[float, ...], ...] = ((1.0,),)
    exact: bool = True
    note: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        terms = expand_formula(self.formula)
        if ["Intercept", *terms] != list(self.fixed):
            raise ValueError(f"{self.outcome}: fixed keys {list(self.fixed)} != formula {terms}")
        k = len(self.group_terms)
        if len(self.sd) != k or len(self.corr) != k:
            raise ValueError(f"{self.outcome}: group sizes disagree")

    @property
    def terms(self) -> list[str]:
        """Fixed terms without the intercept, in formula order."""
        return expand_formula(self.formula)

    def covariance(self) -> np.ndarray:
        """LA covariance matrix of the varying terms."""
        sd = np.asarray(self.sd)
        return np.asarray(self.corr) * np.outer(sd, sd)

    def to_json(self) -> dict[str, object]:
        """Entry of ``truth.json``."""
        return {
            "formula": self.formula,
            "fixed": {k: float(v) for k, v in self.fixed.items()},
            "groups": {
                "lad": {
                    "terms": list(self.group_terms),
                    "sd": [float(s) for s in self.sd],
                    "corr": [[float(c) for c in row] for row in self.corr],
                }
            },
            "exact": self.exact,
            "note": self.note,
            **self.extra,
        }


def expand_formula(formula: str) -> list[str]:
    """Fixed-effect terms of an lme4 formula, interactions written ``a:b`` (asked of the
    project's formula parser, `models.formula.parse_formula`).

    Examples
    --------
    >>> expand_formula("y ~ a * b + c + (1 + a | lad)")
    ['a', 'b', 'a:b', 'c']
    """
    return parse_formula(formula).fixed_terms()


def design_matrix(
    table: pd.DataFrame, terms: list[str], overrides: Mapping[str, np.ndarray] | None = None
) -> np.ndarray:
    """Columns of ``terms`` (interactions as products) from the table; NaN -> 0.

    ``overrides`` supplies variables by name (e.g. the drawn, complete link values).
    Missing predictor values are set to 0 only for *drawing*: such rows fall out of
    any complete-case analysis, so the truth stays exact for the rows analysed.
    """
    overrides = overrides or {}

    def col(name: str) -> np.ndarray:
        v = overrides[name] if name in overrides else table[name].to_numpy(dtype="float64")
        return np.nan_to_num(np.asarray(v, dtype="float64"), nan=0.0)

    out = np.empty((len(table), len(terms)))
    for j, term in enumerate(terms):
        parts = term.split(":")
        v = col(parts[0])
        for p in parts[1:]:
            v = v * col(p)
        out[:, j] = v
    return out


_LINK_NOTE = (
    "Link drawn for every adult; observed in the files only where the item was answered "
    "(wave 9 for lonely). Truth is exact for complete cases."
)

TRUTH: dict[str, OutcomeTruth] = {
    "belonging": OutcomeTruth(
        "belonging",
        "belonging ~ age50 + female + unsafe + sociability + area_volunteering"
        " + area_unemployment + area_sociability + (1 | lad)",
        {
            "Intercept": 0.35,
            "age50": 0.45,
            "female": 0.10,
            "unsafe": -0.50,
            "sociability": 0.50,
            "area_volunteering": 0.20,
            "area_unemployment": -0.15,
            "area_sociability": 0.20,
        },
        sd=(0.25,),
        note=_LINK_NOTE,
    ),
    "local_friends": OutcomeTruth(
        "local_friends",
        "local_friends ~ age50 + urban + sociability + area_sociability + (1 | lad)",
        {
            "Intercept": 0.50,
            "age50": 0.30,
            "urban": -0.20,
            "sociability": 0.45,
            "area_sociability": 0.15,
        },
        sd=(0.20,),
        note=_LINK_NOTE,
    ),
    "lonely": OutcomeTruth(
        "lonely",
        "lonely ~ age50 + married + illness + sociability + unsafe + area_sociability + (1 | lad)",
        {
            "Intercept": -0.55,
            "age50": -0.20,
            "married": -0.60,
            "illness": 0.50,
            "sociability": -0.45,
            "unsafe": 0.30,
            "area_sociability": -0.10,
        },
        sd=(0.15,),
        note=_LINK_NOTE + " lonely comes from wave 9 (i_sclonely); about a quarter of "
        "wave-6 adults are absent at wave 9.",
    ),
    "life_satisfied": OutcomeTruth(
        "life_satisfied",
        "life_satisfied ~ belonging + local_friends + lonely + log_income + unemployed"
        " + illness + married + unsafe + area_volunteering + area_unemployment"
        " + area_turnout + area_income + (1 | lad)",
        {
            "Intercept": 0.20,
            "belonging": 0.50,
            "local_friends": 0.15,
            "lonely": -0.60,
            "log_income": 0.20,
            "unemployed": -0.60,
            "illness": -0.50,
            "married": 0.35,
            "unsafe": -0.55,
            "area_volunteering": 0.12,
            "area_unemployment": -0.12,
            "area_turnout": 0.12,
            "area_income": 0.15,
        },
        sd=(0.20,),
        note="Uses the links as predictors; exact conditional on the links being observed "
        "(complete cases: lonely needs a wave-9 answer).",
    ),
    "mental_wellbeing_high": OutcomeTruth(
        "mental_wellbeing_high",
        "mental_wellbeing_high ~ sociability * area_sociability + log_income * area_income"
        " + belonging + local_friends + lonely + unemployed + illness + unsafe"
        " + area_volunteering + area_unemployment + area_turnout + (1 + sociability | lad)",
        {
            "Intercept": -0.10,
            "sociability": 0.30,
            "area_sociability": 0.05,
            "sociability:area_sociability": 0.25,
            "log_income": 0.20,
            "area_income": 0.20,
            "log_income:area_income": -0.15,
            "belonging": 0.40,
            "local_friends": 0.10,
            "lonely": -0.70,
            "unemployed": -0.40,
            "illness": -0.45,
            "unsafe": -0.40,
            "area_volunteering": 0.12,
            "area_unemployment": -0.12,
            "area_turnout": 0.10,
        },
        group_terms=("Intercept", "sociability"),
        sd=(0.25, 0.20),
        corr=((1.0, -0.5), (-0.5, 1.0)),
        note="Outcome from wave 7 (present for about 90% of wave-6 adults). The slope of "
        "log_income is fixed (not varying by LA); sociability varies by LA, correlated "
        "-0.5 with the intercept. Exact for complete cases.",
    ),
    "ghq_case": OutcomeTruth(
        "ghq_case",
        "ghq_case ~ female + unemployed + illness + log_income + lonely"
        " + area_unemployment + area_volunteering + (1 | lad)",
        {
            "Intercept": -2.10,
            "female": 0.30,
            "unemployed": 0.60,
            "illness": 0.70,
            "log_income": -0.15,
            "lonely": 0.90,
            "area_unemployment": 0.10,
            "area_volunteering": -0.08,
        },
        sd=(0.15,),
        note="GHQ-12 caseness (distress: signs opposite to wellbeing).",
    ),
    "community_abs": OutcomeTruth(
        "community_abs",
        "community_abs ~ urban * area_turnout + age50 * area_sociability + female + unsafe"
        " + area_volunteering + area_unemployment + (1 + age50 | lad)",
        {
            "Intercept": 0.15,
            "urban": -0.35,
            "area_turnout": 0.10,
            "urban:area_turnout": 0.20,
            "age50": 0.35,
            "area_sociability": 0.15,
            "age50:area_sociability": 0.25,
            "female": 0.05,
            "unsafe": -0.75,
            "area_volunteering": 0.20,
            "area_unemployment": -0.15,
        },
        group_terms=("Intercept", "age50"),
        sd=(0.30, 0.20),
        corr=((1.0, 0.4), (0.4, 1.0)),
        note="Absolute community wellbeing: community_score (mean of reversed cohesion "
        "items c-g) >= 3.5. Exact for complete cases.",
    ),
}

#: community_rel is derived from community_score, so its truth is approximate: the
#: values below are large-sample fixed-effects logistic estimates on generator output
#: (two seeds, 300,000 adults each, averaged and rounded), not parameters.
TRUTH["community_rel"] = OutcomeTruth(
    "community_rel",
    TRUTH["community_abs"].formula.replace("community_abs", "community_rel"),
    {
        "Intercept": 0.23,
        "urban": -0.22,
        "area_turnout": -0.10,
        "urban:area_turnout": 0.10,
        "age50": 0.35,
        "area_sociability": -0.12,
        "age50:area_sociability": 0.25,
        "female": 0.04,
        "unsafe": -0.64,
        "area_volunteering": -0.03,
        "area_unemployment": -0.02,
    },
    group_terms=("Intercept", "age50"),
    sd=(0.05, 0.20),
    corr=((1.0, 0.0), (0.0, 1.0)),
    exact=False,
    note="APPROXIMATE. community_rel = community_score above the leave-one-out mean of "
    "the other respondents in the same LA; it is not drawn from a model of its own. The "
    "latent variable behind community_abs drives community_score, but comparing with the "
    "LA mean removes the LA intercept and most area main effects, adds contextual effects "
    "(LA composition) that are not in the formula, and the 1-5 score is coarse. Fixed "
    "values are large-sample fixed-effects logistic estimates on generator output (not "
    "parameters); LA sd/corr are rough. Use the signs: urban -, urban:area_turnout +, "
    "age50:area_sociability +, unsafe -.",
)

LINKS = ("belonging", "local_friends", "lonely")
OUTCOMES = ("life_satisfied", "mental_wellbeing_high", "ghq_case", "community_abs")
DRAW_ORDER = LINKS + OUTCOMES

#: Model of feeling unsafe after dark (drawn before everything else, not a table model):
#: logit P(unsafe) = Intercept + walkability * walk_z(LA) + female + deprivation * dep_z(LA)
#: + age70 * (age >= 70) + LA noise (sd la_sd). Walkable LAs feel less safe: the
#: omitted-variable mechanism.
UNSAFE_MODEL = {
    "Intercept": -2.05,
    "walkability": 1.10,
    "female": 0.90,
    "deprivation": 0.25,
    "age70": 0.20,
    "la_sd": 0.30,
}
