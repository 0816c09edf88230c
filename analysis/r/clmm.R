# Fit a cumulative-logit mixed model with ordinal::clmm for analysis/lme4.py (clmm_for) and
# write the results as JSON.
#
# Usage: Rscript clmm.R <workdir>
#
# <workdir> holds, written by the Python side:
#   data.csv      the data (header row; empty field = missing value)
#   coltypes.json one entry per column (shared.R: read_input); the response is a factor whose
#                 levels are the categories, lowest first
#   spec.json     {"formula": ..., "response": ..., "nAGQ": null|int}
# and this script writes <workdir>/result.json: either the fit or {"error": "..."}.
# The model is clmm's: logit P(Y <= k) = theta_k - (x b + z u), the same sign convention as
# the Python model (cutpoints tau_k - eta).

suppressPackageStartupMessages({
  library(ordinal)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1L) stop("usage: Rscript clmm.R <workdir>")
workdir <- args[[1L]]
out_path <- file.path(workdir, "result.json")

script_dir <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1L])))
source(file.path(script_dir, "shared.R"))  # read_input(), write_result()

fit_model <- function(spec, d) {
  d[[spec$response]] <- factor(d[[spec$response]], levels = levels(d[[spec$response]]), ordered = TRUE)
  f <- as.formula(spec$formula, env = environment())
  nAGQ <- if (is.null(spec$nAGQ)) 1L else as.integer(spec$nAGQ)
  notes <- character(0)
  t0 <- proc.time()[["elapsed"]]
  fit <- withCallingHandlers(
    clmm(f, data = d, link = "logit", nAGQ = nAGQ, Hess = TRUE),
    warning = function(w) {
      notes <<- c(notes, conditionMessage(w))
      invokeRestart("muffleWarning")
    }
  )
  list(fit = fit, nAGQ = nAGQ, notes = notes, elapsed = proc.time()[["elapsed"]] - t0)
}

summarise_fit <- function(res) {
  fit <- res$fit
  cf <- summary(fit)$coefficients
  n_alpha <- length(fit$alpha)
  rows <- rownames(cf)
  table <- data.frame(r_term = rows, estimate = unname(cf[, "Estimate"]),
                      se = unname(cf[, "Std. Error"]), stringsAsFactors = FALSE)
  vc <- VarCorr(fit)
  group_sd <- do.call(rbind, lapply(names(vc), function(g) {
    s <- attr(vc[[g]], "stddev")
    data.frame(group = g, term = names(s), sd = unname(s), stringsAsFactors = FALSE)
  }))
  group_corr <- do.call(rbind, lapply(names(vc), function(g) {
    cm <- attr(vc[[g]], "correlation")
    if (is.null(cm) || nrow(cm) < 2L) return(NULL)
    idx <- which(upper.tri(cm), arr.ind = TRUE)
    data.frame(group = g, term1 = rownames(cm)[idx[, 1]], term2 = colnames(cm)[idx[, 2]],
               corr = cm[idx], stringsAsFactors = FALSE)
  }))
  list(
    cutpoints = table[seq_len(n_alpha), ],
    fixed = table[-seq_len(n_alpha), ],
    group_sd = group_sd,
    group_corr = if (is.null(group_corr)) list() else group_corr,
    n_obs = nobs(fit),
    loglik = as.numeric(logLik(fit)),
    nAGQ = res$nAGQ,
    converged = isTRUE(fit$optRes$convergence == 0) && length(res$notes) == 0L,
    messages = I(unique(c(res$notes, as.character(fit$optRes$message)))),
    max_grad = max(abs(fit$gradient)),
    cond_hessian = { ev <- eigen(fit$Hessian, only.values = TRUE)$values; max(ev) / min(ev) },
    elapsed_s = res$elapsed,
    r_version = paste(R.version$major, R.version$minor, sep = "."),
    ordinal_version = as.character(packageVersion("ordinal"))
  )
}

result <- tryCatch(
  {
    spec <- fromJSON(file.path(workdir, "spec.json"), simplifyVector = FALSE)
    d <- read_input(workdir)
    summarise_fit(fit_model(spec, d))
  },
  error = function(e) list(error = conditionMessage(e))
)
write_result(result)
