"""Tidy posterior summaries of a fitted hierarchical logistic model (`models.Fit`).

Every table is a `pandas.DataFrame` whose column names say the interval kind and
probability (``eti95_low``: lower end of the 95% equal-tailed interval; ``hdi95_low``: of
the 95% highest-density interval) and whose ``.attrs["interval"]`` says it in words. All
quantities are computed draw by draw from the posterior and then summarised, so every
interval is a posterior interval of the quantity itself (never a transformed point value).

Tables: `fixed_effects`, `group_effects`, `variance_partition`, `varying_slopes`,
`predicted_probabilities`, `average_marginal_effect`, `conditional_effects`,
`probability_statements` / `prob_greater`, `compare_models` (PSIS-LOO), `calibration`.
Helpers used by the report: `area_level_terms`, `cross_level_interactions`,
`level_counts`, `reference_values`.

Modules by topic: `intervals` (the only place that builds interval labels), `draws`
(posterior draws and model structure), `effects`, `predictions`, `statements`, `checks`
(LOO, calibration, recovery). Everything is re-exported here, so
``from analysis.summaries import fixed_effects`` keeps working.
"""

from __future__ import annotations

from analysis.summaries.checks import (
    Calibration,
    ModelComparison,
    calibration,
    compare_models,
    flatten_truth,
    in_sample_probabilities,
    loo_comparisons,
    recovery,
    same_rows_sets,
    truth_draws,
    with_log_likelihood,
)
from analysis.summaries.draws import (
    AREA_LEVEL_TOLERANCE,
    area_level_terms,
    blocks_for,
    cross_level_interactions,
    fixed_draws,
    group_columns,
    level_counts,
    nearly_constant_within,
    posterior_draws,
    predictor_columns,
    reference_values,
    response_columns,
    variable_of,
)
from analysis.summaries.effects import (
    LATENT_VARIANCE,
    VaryingSlopes,
    fixed_effects,
    group_effects,
    variance_partition,
    varying_slopes,
)
from analysis.summaries.intervals import (
    DEFAULT_PROB,
    IntervalLabel,
    describe_interval,
    interval_bounds,
    interval_columns,
    interval_label,
    interval_metadata,
    stamp,
    summarise_draws,
    warn_if_not_converged,
)
from analysis.summaries.ordinal import (
    category_probabilities,
    category_scores,
    cumulative_odds_ratios,
    cutpoint_summary,
    ordinal_calibration,
    ordinal_variance_partition,
)
from analysis.summaries.predictions import (
    average_marginal_effect,
    conditional_effects,
    is_binary,
    la_factor,
    moderator_range,
    predicted_probabilities,
    resolve_la_mode,
    summarise_probabilities,
)
from analysis.summaries.statements import (
    parse_statement,
    prob_greater,
    probability_statements,
    statement_operand,
    statement_probability,
    statement_term,
    statement_verdict,
)

__all__ = [
    "category_probabilities",
    "category_scores",
    "cumulative_odds_ratios",
    "cutpoint_summary",
    "ordinal_calibration",
    "ordinal_variance_partition",
    "loo_comparisons",
    "same_rows_sets",
    "DEFAULT_PROB",
    "IntervalLabel",
    "interval_label",
    "interval_metadata",
    "AREA_LEVEL_TOLERANCE",
    "Calibration",
    "LATENT_VARIANCE",
    "ModelComparison",
    "VaryingSlopes",
    "area_level_terms",
    "average_marginal_effect",
    "blocks_for",
    "calibration",
    "compare_models",
    "conditional_effects",
    "cross_level_interactions",
    "describe_interval",
    "fixed_draws",
    "fixed_effects",
    "flatten_truth",
    "group_columns",
    "group_effects",
    "in_sample_probabilities",
    "interval_bounds",
    "interval_columns",
    "is_binary",
    "la_factor",
    "level_counts",
    "moderator_range",
    "nearly_constant_within",
    "parse_statement",
    "posterior_draws",
    "predicted_probabilities",
    "predictor_columns",
    "prob_greater",
    "probability_statements",
    "recovery",
    "reference_values",
    "resolve_la_mode",
    "response_columns",
    "stamp",
    "statement_operand",
    "statement_probability",
    "statement_verdict",
    "statement_term",
    "summarise_draws",
    "summarise_probabilities",
    "truth_draws",
    "variable_of",
    "variance_partition",
    "varying_slopes",
    "warn_if_not_converged",
    "with_log_likelihood",
]
