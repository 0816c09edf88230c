# Shared by the R scripts of analysis/lme4.py: read data.csv with the column types of
# coltypes.json (factors with the level order Python sent, logicals, integers, numerics),
# and write result.json (the caller sets out_path).
read_input <- function(workdir) {
  types <- fromJSON(file.path(workdir, "coltypes.json"), simplifyVector = FALSE)
  col_names <- vapply(types, function(t) t$name, character(1))
  col_classes <- vapply(types, function(t) {
    switch(t$type, numeric = "numeric", integer = "integer", factor = "character",
           logical = "logical",
           stop(sprintf("unknown column type '%s' for column '%s'", t$type, t$name)))
  }, character(1))
  d <- read.csv(file.path(workdir, "data.csv"), colClasses = unname(col_classes),
                check.names = FALSE, na.strings = "", stringsAsFactors = FALSE,
                encoding = "UTF-8")
  if (!identical(names(d), col_names)) {
    stop("column names in data.csv do not match coltypes.json")
  }
  for (t in types) {
    if (identical(t$type, "factor")) {
      levels <- as.character(unlist(t$levels))
      x <- d[[t$name]]
      bad <- unique(x[!is.na(x) & !(x %in% levels)])
      if (length(bad)) {
        stop(sprintf("column '%s' has values not among its levels: %s", t$name,
                     paste(head(bad, 5), collapse = ", ")))
      }
      d[[t$name]] <- factor(x, levels = levels)
    }
  }
  d
}

write_result <- function(x) {
  writeLines(
    toJSON(x, auto_unbox = TRUE, digits = NA, na = "null", null = "null"),
    out_path,
    useBytes = TRUE
  )
}
