# BYM2 logistic model in brms, for the agreement check of models/spatial.py.
# Usage: Rscript bym2_brms.R data.csv edges.csv out.json [chains] [iter] [seed]
#   data.csv : y (0/1), x, lad (codes)
#   edges.csv: lad19cd_a, lad19cd_b (neighbouring pairs among the levels of lad)
# Same model and priors as `car(lad, type = "bym2", graph = "observed")` with default
# priors: Intercept (at mean x) ~ normal(0, 2.5), b ~ normal(0, 2.5 / sd(x)),
# sdcar ~ half-normal(0, 1), rhocar ~ beta(0.5, 0.5).
# Debian's r-cran-bh is a virtual package (Boost lives in /usr/include), so rstan's check
# system.file("include", package = "BH") fails: give it a library where BH's include
# folder points at the system headers.
bh <- system.file(package = "BH")
if (nzchar(bh) && !dir.exists(file.path(bh, "include", "boost")) && dir.exists("/usr/include/boost")) {
  lib <- file.path(tempdir(), "bh_lib")
  dir.create(lib, showWarnings = FALSE)
  file.copy(bh, lib, recursive = TRUE)
  unlink(file.path(lib, "BH", "include"), recursive = TRUE)
  file.symlink("/usr/include", file.path(lib, "BH", "include"))
  .libPaths(c(lib, .libPaths()))
}
suppressPackageStartupMessages({
  library(brms)
  library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
chains <- if (length(args) >= 4) as.integer(args[4]) else 2L
iter <- if (length(args) >= 5) as.integer(args[5]) else 2000L
seed <- if (length(args) >= 6) as.integer(args[6]) else 1L
d <- read.csv(args[1], stringsAsFactors = FALSE)
e <- read.csv(args[2], stringsAsFactors = FALSE)
levels <- sort(unique(d$lad))
W <- matrix(0, length(levels), length(levels), dimnames = list(levels, levels))
W[cbind(e$lad19cd_a, e$lad19cd_b)] <- 1
W[cbind(e$lad19cd_b, e$lad19cd_a)] <- 1
sx <- sd(d$x) * sqrt((nrow(d) - 1) / nrow(d))  # population SD, as the Python default prior
priors <- c(
  set_prior("normal(0, 2.5)", class = "Intercept"),
  set_prior(sprintf("normal(0, %.6f)", 2.5 / sx), class = "b"),
  set_prior("normal(0, 1)", class = "sdcar"),
  set_prior("beta(0.5, 0.5)", class = "rhocar")
)
fit <- brm(
  y ~ x + car(W, gr = lad, type = "bym2"), data = d, data2 = list(W = W),
  family = bernoulli(), prior = priors, chains = chains, cores = chains, iter = iter,
  seed = seed, refresh = 0, silent = 2
)
draws <- as_draws_df(fit)
summ <- function(v) list(mean = mean(v), sd = sd(v), q025 = unname(quantile(v, 0.025)),
                         q975 = unname(quantile(v, 0.975)))
out <- list(
  rho = summ(draws$rhocar), sd = summ(draws$sdcar), b_x = summ(draws$b_x),
  rhat_max = max(rhat(fit), na.rm = TRUE),
  rhat_compared = max(rhat(fit)[c("rhocar", "sdcar", "b_x")]),
  brms = as.character(packageVersion("brms"))
)
write_json(out, args[3], auto_unbox = TRUE, digits = 10)
