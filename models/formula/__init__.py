"""lme4-style formulas: one parser (`parse_formula`) and its evaluation on data (`build_model_data`).

Modules: `syntax` (formula text -> syntax tree, and R's spelling of it), `terms` (what a
formula says without data: response, fixed terms, bars, variables), `atoms` (variables and
transforms evaluated with R's meaning), `design` (the complete-case rows, fixed design,
response and group blocks: `ModelData`), `errors`.
"""

from models.formula.atoms import STRAY_TEXT_SHARE, supported_functions
from models.formula.design import (
    MIN_GROUP_LEVELS,
    SCALE_RANGE,
    DesignColumn,
    GroupBlock,
    ModelData,
    build_model_data,
    design_for_new_data,
    r_label,
    split_level,
    split_top_level,
)
from models.formula.errors import DataWarning
from models.formula.syntax import FormulaError
from models.formula.terms import Bar, FormulaTerms, Response, parse_formula

__all__ = [
    "MIN_GROUP_LEVELS",
    "SCALE_RANGE",
    "STRAY_TEXT_SHARE",
    "Bar",
    "DataWarning",
    "DesignColumn",
    "FormulaError",
    "FormulaTerms",
    "GroupBlock",
    "ModelData",
    "Response",
    "build_model_data",
    "design_for_new_data",
    "parse_formula",
    "r_label",
    "split_level",
    "split_top_level",
    "supported_functions",
]
