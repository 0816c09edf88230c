# Build lme4's design for a formula (no fit) for analysis/lme4.py (r_design, r_designs).
#
# Usage: Rscript design.R <workdir>
#
# <workdir> holds, written by the Python side (same conventions as fit_glmer.R):
#   data.csv      the data (header row; empty field = missing value)
#   coltypes.json [{"name": ..., "type": "numeric"|"integer"|"factor"|"logical",
#                   "levels": [...]}], one entry per column; factor levels in
#                 reference-first order
#   spec.json     {"formula": "..."} for one formula, or {"formulas": ["...", ...]}
#
# For a formula with random-effect bars the design is
#   lme4::glFormula(formula, data, family = binomial, na.action = na.omit, <no checks>)
# and for one without bars model.matrix(formula, model.frame(formula, d, na.omit)).
# The script writes <workdir>/result.json holding, per formula:
#   rows    1-based numbers of the data rows kept (after na.omit)
#   x_names column names of the fixed design X;  x  its columns (one array each)
#   blocks  one per element of reTrms$Ztlist: factor (grouping factor's name), terms
#           (cnms), levels (levels of the factor), idx (1-based level of each kept row)
#           and Z (one array per term: the row's own coefficient of that term)
# With {"formula": ...} an error is written to stderr ("Error in design.R: ...") with
# exit status 1 and no result.json. With {"formulas": [...]} result.json is a list with
# one entry per formula, {"error": "..."} for a formula that failed.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1L) {
  cat("Error in design.R: usage: Rscript design.R <workdir>\n", file = stderr())
  quit(status = 2)
}
workdir <- args[[1L]]
out_path <- file.path(workdir, "result.json")


script_dir <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1L])))
source(file.path(script_dir, "shared.R"))  # read_input(), write_result()

# Checks that would stop glFormula on designs that are legal but odd (few levels,
# rank-deficient X, one level); only the design is wanted here, not a fit.
design_control <- glmerControl(
  check.nobs.vs.nlev = "ignore",
  check.nobs.vs.rankZ = "ignore",
  check.nobs.vs.nRE = "ignore",
  check.nlev.gtr.1 = "ignore",
  check.nlev.gtreq.5 = "ignore",
  check.rankX = "ignore",
  check.scaleX = "ignore",
  check.response.not.const = "ignore"
)

columns <- function(m) {
  lapply(seq_len(ncol(m)), function(j) I(unname(as.numeric(m[, j]))))
}

# One random-effects block: Zt has rows (level - 1) * k + term and one column per row.
block_design <- function(Zt, terms, fac, name) {
  k <- length(terms)
  n <- ncol(Zt)
  idx <- as.integer(fac)
  Z <- matrix(0, nrow = n, ncol = k)
  trip <- summary(as(Zt, "CsparseMatrix"))
  if (nrow(trip)) {
    level <- (trip$i - 1L) %/% k + 1L
    term <- (trip$i - 1L) %% k + 1L
    off <- level != idx[trip$j] & trip$x != 0
    if (any(off)) {
      stop(sprintf("block on '%s': row %d has a coefficient outside its own level", name,
                   trip$j[which(off)[1L]]))
    }
    Z[cbind(trip$j, term)] <- trip$x
  }
  list(
    factor = name,
    terms = I(as.character(terms)),
    levels = I(levels(fac)),
    idx = I(idx),
    Z = columns(Z)
  )
}

design_of <- function(formula_text, d) {
  f <- as.formula(formula_text, env = globalenv())
  if (is.null(lme4::findbars(f))) {
    mf <- model.frame(f, d, na.action = na.omit)
    X <- model.matrix(f, mf)
    blocks <- list()
  } else {
    gf <- lme4::glFormula(f, data = d, family = binomial, na.action = na.omit,
                          control = design_control)
    X <- gf$X
    re <- gf$reTrms
    assign <- attr(re$flist, "assign")
    blocks <- lapply(seq_along(re$Ztlist), function(b) {
      g <- assign[[b]]
      block_design(re$Ztlist[[b]], re$cnms[[b]], re$flist[[g]], names(re$flist)[[g]])
    })
  }
  list(
    formula = formula_text,
    rows = I(as.integer(rownames(X))),
    x_names = I(colnames(X)),
    x = columns(X),
    blocks = blocks
  )
}

spec <- tryCatch(
  fromJSON(file.path(workdir, "spec.json"), simplifyVector = FALSE),
  error = function(e) e
)
d <- if (inherits(spec, "error")) spec else tryCatch(read_input(workdir), error = function(e) e)
fail <- if (inherits(spec, "error")) spec else if (inherits(d, "error")) d else NULL
if (!is.null(fail)) {
  cat("Error in design.R: cannot read the input in ", workdir, ": ", conditionMessage(fail),
      "\n", sep = "", file = stderr())
  quit(status = 1)
}

if (!is.null(spec$formulas)) {
  results <- lapply(spec$formulas, function(f) {
    tryCatch(design_of(f, d), error = function(e) list(formula = f, error = conditionMessage(e)))
  })
  write_result(results)
} else {
  result <- tryCatch(design_of(spec$formula, d), error = function(e) e)
  if (inherits(result, "error")) {
    cat("Error in design.R: lme4 design of '", spec$formula, "' failed: ",
        conditionMessage(result), "\n", sep = "", file = stderr())
    quit(status = 1)
  }
  write_result(result)
}
