# Export a data set shipped with lme4 (e.g. cbpp) for analysis/lme4.py.
#
# Usage: Rscript lme4_data.R <name> <workdir>
#
# Writes <workdir>/data.csv (empty field = missing) and <workdir>/coltypes.json:
# [{"name": ..., "type": "numeric"|"integer"|"factor"|"logical", "levels": [...],
#   "ordered": true|false}], factor levels in R's level order.
# On failure writes <workdir>/error.txt with R's error message and exits with status 0.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
if (!length(args) %in% c(2L, 3L)) stop("usage: Rscript lme4_data.R <name> <workdir> [package]")
name <- args[[1L]]
workdir <- args[[2L]]
package <- if (length(args) == 3L) args[[3L]] else "lme4"

result <- tryCatch(
  {
    env <- new.env()
    suppressWarnings(data(list = name, package = package, envir = env))
    if (!exists(name, envir = env, inherits = FALSE)) {
      stop(sprintf("%s has no data set named '%s'", package, name))
    }
    d <- as.data.frame(get(name, envir = env))
    types <- lapply(names(d), function(col) {
      x <- d[[col]]
      if (is.factor(x)) {
        list(name = col, type = "factor", levels = I(levels(x)), ordered = is.ordered(x))
      } else if (is.logical(x)) {
        list(name = col, type = "logical")
      } else if (is.integer(x)) {
        list(name = col, type = "integer")
      } else if (is.numeric(x)) {
        list(name = col, type = "numeric")
      } else {
        list(name = col, type = "character")
      }
    })
    write.csv(d, file.path(workdir, "data.csv"), row.names = FALSE, na = "",
              fileEncoding = "UTF-8")
    writeLines(toJSON(types, auto_unbox = TRUE), file.path(workdir, "coltypes.json"))
    NULL
  },
  error = function(e) conditionMessage(e)
)
if (!is.null(result)) writeLines(result, file.path(workdir, "error.txt"))
