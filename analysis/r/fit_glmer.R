# Fit a binomial glmer for analysis/lme4.py and write the results as JSON.
#
# Usage: Rscript fit_glmer.R <workdir>
#
# <workdir> holds, written by the Python side:
#   data.csv      the data (header row; empty field = missing value)
#   coltypes.json [{"name": ..., "type": "numeric"|"integer"|"factor", "levels": [...]}]
#                 one entry per column; factor levels are in reference-first order
#   spec.json     {"formula": ..., "nAGQ": null|int, "optimizer": [...], "weights": null|str,
#                  "condvar": true|false}
# and this script writes <workdir>/result.json: either the fit or {"error": "..."}.
# The script exits with status 0 in both cases; any other exit means R itself failed.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1L) stop("usage: Rscript fit_glmer.R <workdir>")
workdir <- args[[1L]]
out_path <- file.path(workdir, "result.json")


script_dir <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1L])))
source(file.path(script_dir, "shared.R"))  # read_input(), write_result()

# lme4 allows adaptive Gauss-Hermite quadrature only for one grouping factor with a
# scalar random intercept; use nAGQ = 25 there and the Laplace approximation otherwise.
choose_nAGQ <- function(f, d, weights) {
  gf <- if (is.null(weights)) {
    glFormula(f, data = d, family = binomial)
  } else {
    glFormula(f, data = d, family = binomial, weights = d[[weights]])
  }
  cnms <- gf$reTrms$cnms
  if (length(cnms) == 1L && identical(unname(cnms[[1L]]), "(Intercept)")) 25L else 1L
}

fit_model <- function(spec, d) {
  f <- as.formula(spec$formula, env = environment())
  weights <- spec$weights
  nAGQ <- if (is.null(spec$nAGQ)) choose_nAGQ(f, d, weights) else as.integer(spec$nAGQ)
  optimizer <- as.character(unlist(spec$optimizer))
  ctrl <- glmerControl(optimizer = optimizer)

  notes <- character(0)
  t0 <- proc.time()[["elapsed"]]
  fit <- withCallingHandlers(
    if (is.null(weights)) {
      glmer(f, data = d, family = binomial, nAGQ = nAGQ, control = ctrl)
    } else {
      w <- d[[weights]]
      glmer(f, data = d, family = binomial, weights = w, nAGQ = nAGQ, control = ctrl)
    },
    warning = function(w) {
      notes <<- c(notes, conditionMessage(w))
      invokeRestart("muffleWarning")
    },
    message = function(m) {
      notes <<- c(notes, sub("\n$", "", conditionMessage(m)))
      invokeRestart("muffleMessage")
    }
  )
  elapsed <- proc.time()[["elapsed"]] - t0
  list(fit = fit, nAGQ = nAGQ, notes = notes, elapsed = elapsed)
}

summarise_fit <- function(res, condvar) {
  fit <- res$fit
  cf <- summary(fit)$coefficients
  z975 <- qnorm(0.975)
  fixed <- data.frame(
    r_term = rownames(cf),
    estimate = unname(cf[, "Estimate"]),
    se = unname(cf[, "Std. Error"]),
    z = unname(cf[, "z value"]),
    p = unname(cf[, "Pr(>|z|)"]),
    stringsAsFactors = FALSE
  )
  fixed$ci_low <- fixed$estimate - z975 * fixed$se
  fixed$ci_high <- fixed$estimate + z975 * fixed$se

  vc <- as.data.frame(VarCorr(fit))
  is_sd <- is.na(vc$var2)
  group_sd <- data.frame(group = vc$grp[is_sd], term = vc$var1[is_sd],
                         sd = vc$sdcor[is_sd], stringsAsFactors = FALSE)
  group_corr <- data.frame(group = vc$grp[!is_sd], term1 = vc$var1[!is_sd],
                           term2 = vc$var2[!is_sd], corr = vc$sdcor[!is_sd],
                           stringsAsFactors = FALSE)

  re <- as.data.frame(ranef(fit, condVar = condvar))
  ranef_df <- data.frame(
    group = as.character(re$grpvar), level = as.character(re$grp),
    term = as.character(re$term), mode = re$condval,
    condsd = if (condvar) re$condsd else rep(NA_real_, nrow(re)),
    stringsAsFactors = FALSE
  )

  conv <- fit@optinfo$conv
  lme4_msgs <- as.character(unlist(conv$lme4$messages))
  opt_warnings <- as.character(unlist(fit@optinfo$warnings))
  singular_msg <- grepl("boundary (singular) fit", lme4_msgs, fixed = TRUE)
  messages <- unique(c(res$notes, lme4_msgs, opt_warnings))
  converged <- isTRUE(conv$opt == 0) && !any(!singular_msg) && length(opt_warnings) == 0L

  ng <- ngrps(fit)
  list(
    fixed = fixed,
    group_sd = group_sd,
    group_corr = group_corr,
    ranef = ranef_df,
    n_obs = nobs(fit),
    n_groups = as.list(setNames(as.integer(ng), names(ng))),
    loglik = as.numeric(logLik(fit)),
    aic = AIC(fit),
    nAGQ = res$nAGQ,
    singular = isSingular(fit),
    messages = I(messages),
    converged = converged,
    optimizer_code = conv$opt,
    elapsed_s = res$elapsed,
    r_version = paste(R.version$major, R.version$minor, sep = "."),
    lme4_version = as.character(packageVersion("lme4"))
  )
}

result <- tryCatch(
  {
    spec <- fromJSON(file.path(workdir, "spec.json"), simplifyVector = FALSE)
    d <- read_input(workdir)
    res <- fit_model(spec, d)
    summarise_fit(res, isTRUE(spec$condvar))
  },
  error = function(e) list(error = conditionMessage(e))
)
write_result(result)
