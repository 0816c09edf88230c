# Fit a design-based weighted logistic regression with survey::svyglm for analysis/lme4.py
# (fit_svyglm) and write the results as JSON.
#
# Usage: Rscript svyglm.R <workdir>
#
# <workdir> holds, written by the Python side:
#   data.csv      the data (header row; empty field = missing value)
#   coltypes.json column types (see shared.R)
#   spec.json     {"formula": ..., "weights": column, "psu": column, "strata": column|null,
#                  "lonely_psu": "adjust"|"remove"|...}
# and this script writes <workdir>/result.json: {"terms", "coef", "se", "vcov", "n", "n_psu",
# "n_strata", "survey_version"} or {"error": "..."}. Exit status 0 in both cases.

suppressPackageStartupMessages({
  library(survey)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1L) stop("usage: Rscript svyglm.R <workdir>")
workdir <- args[[1L]]
out_path <- file.path(workdir, "result.json")

script_dir <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1L])))
source(file.path(script_dir, "shared.R"))  # read_input(), write_result()

fit_model <- function(spec, d) {
  options(survey.lonely.psu = spec$lonely_psu)
  f <- as.formula(spec$formula, env = environment())
  d <- d[complete.cases(d[, all.vars(f), drop = FALSE]), , drop = FALSE]
  ids <- as.formula(paste("~", spec$psu))
  w <- as.formula(paste("~", spec$weights))
  des <- if (is.null(spec$strata)) {
    svydesign(ids = ids, weights = w, data = d)
  } else {
    svydesign(ids = ids, strata = as.formula(paste("~", spec$strata)), weights = w, data = d, nest = TRUE)
  }
  t0 <- proc.time()[["elapsed"]]
  fit <- svyglm(f, design = des, family = quasibinomial())
  v <- vcov(fit)
  list(
    terms = names(coef(fit)),
    coef = unname(coef(fit)),
    se = unname(sqrt(diag(v))),
    vcov = unname(lapply(seq_len(nrow(v)), function(i) unname(v[i, ]))),
    n = nrow(d),
    n_psu = length(unique(paste(if (is.null(spec$strata)) 1 else d[[spec$strata]], d[[spec$psu]]))),
    n_strata = if (is.null(spec$strata)) 1L else length(unique(d[[spec$strata]])),
    seconds = proc.time()[["elapsed"]] - t0,
    survey_version = as.character(packageVersion("survey"))
  )
}

result <- tryCatch({
  spec <- fromJSON(file.path(workdir, "spec.json"), simplifyVector = TRUE)
  d <- read_input(workdir)
  fit_model(spec, d)
}, error = function(e) list(error = conditionMessage(e)))

write_result(result)
