# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Different people, same place: varying slopes and cross-level interactions
#
# The same place can be good for some people and less good for others. This notebook
# asks one such question of (synthetic) data: **is the gap in community wellbeing
# between people aged 50+ and younger adults the same everywhere, or does it depend on
# the place, in particular on how sociable the area is?**
#
# Two modelling tools answer it:
#
# - a **varying slope**: each local authority (LA) gets its own age-50+ gap, drawn from a
#   common distribution, and the model estimates how much these gaps differ between LAs
#   and whether they go with the LA's baseline (the LA slope correlation);
# - a **cross-level interaction** `age50 * area_sociability`: part of the LA-to-LA
#   difference in the age gap is explained by a measured area characteristic.
#
# We then turn the model into **predicted probabilities** for subgroups of people in
# more and less sociable areas, which is usually what decision makers need.
#
# The data are the project's **synthetic** cohort (made-up people in real GB LAs, with
# effects of known size built in), so nothing here is a finding about real people.

# %%
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Image, display

from analysis import figures, summaries
from analysis.scenarios import scenario, scenario_plot
from data.prepare import prepare
from models import fit
from models.fitting import package_versions

# %%
RANDOM_SEED = 20240602
rng = np.random.default_rng(RANDOM_SEED)

# %% [markdown]
# ## Settings
#
# Small defaults so the notebook runs in under a minute (the project's tests run it with
# these). Fits with these settings usually fail the convergence gate; the notebook says
# so and marks the failure as accepted *for the demonstration only*.
#
# **For a real analysis** set `SAMEPLACE_NB_N=25000 SAMEPLACE_NB_DRAWS=1000
# SAMEPLACE_NB_TUNE=1000 SAMEPLACE_NB_CHAINS=4` (and `SAMEPLACE_NB_OUT=<folder>` to keep
# the outputs) before starting Jupyter. Varying slopes need more data than random
# intercepts: with few people per LA the slope SD and the correlation are only weakly
# identified (their intervals below are wide for that reason).

# %%
N_PEOPLE = int(os.environ.get("SAMEPLACE_NB_N", 3000))
DRAWS = int(os.environ.get("SAMEPLACE_NB_DRAWS", 300))
TUNE = int(os.environ.get("SAMEPLACE_NB_TUNE", 300))
CHAINS = int(os.environ.get("SAMEPLACE_NB_CHAINS", 2))
DATA_SEED = int(os.environ.get("SAMEPLACE_NB_DATA_SEED", 20240601))
OUT = Path(os.environ.get("SAMEPLACE_NB_OUT") or tempfile.mkdtemp(prefix="sameplace_nb02_"))
OUT.mkdir(parents=True, exist_ok=True)
DEMO = N_PEOPLE < 25_000 or DRAWS < 1000 or CHAINS < 4
print(f"{N_PEOPLE:,} people, {CHAINS} chains x ({TUNE} tuning + {DRAWS} draws); outputs in {OUT}")
if DEMO:
    print("DEMONSTRATION SETTINGS: numbers below illustrate the workflow, they are not results.")

# harmless: R-hat of the constant diagonal of a correlation matrix
warnings.filterwarnings("ignore", message="invalid value encountered in scalar divide")


def show(table: pd.DataFrame, columns: list[str] | None = None, digits: int = 3) -> None:
    """Print which interval a table shows (the library labels every table), then the table."""
    print("Intervals:", table.attrs.get("interval", "(none)"))
    display((table[columns] if columns else table).round(digits))


# %% [markdown]
# ## 1. Data
#
# `community_abs` is 1 when a person's community cohesion score (the mean of five
# neighbourhood items, e.g. "people around here are willing to help their neighbours")
# is at least 3.5 on the 1-5 scale. `age50` is 1 for people aged 50 or over. `urban`,
# `female` and `unsafe` (feels unsafe walking alone after dark) are 0/1. Area variables
# (`area_*`) are z-scores across LAs. `area_sociability` is the average sociability of the
# *other* respondents in the LA (a leave-one-out mean, so a person's own answer never
# enters their area value).

# %%
table, audit = prepare(n=N_PEOPLE, seed=DATA_SEED, out=OUT / "synthetic")
audit.check()
print(f"{audit.rows_in:,} rows in, {audit.rows_out:,} rows out; dropped: {audit.drop_counts().to_dict()}")
la_names = dict(zip(table["lad"], table["lad_name"], strict=False))

# %% [markdown]
# ## 2. The model
#
# ```
# community_abs ~ urban * area_turnout + age50 * area_sociability + female + unsafe
#                 + area_volunteering + area_unemployment + (1 + age50 | lad)
# ```
#
# - `urban * area_turnout`: the urban-rural gap may depend on area turnout (finding 4 of
#   the study);
# - `age50 * area_sociability`: the **cross-level interaction**, an individual
#   characteristic (age 50+) times an area characteristic (sociability);
# - `(1 + age50 | lad)`: each LA has its own baseline (random intercept) **and** its own
#   age-50+ gap (random slope), and the two may be correlated.
#
# *For methodologists.* `r_lad[j] = (r_j0, r_j1) ~ MvNormal(0, diag(sd) C diag(sd))`, with
# an LKJ(2) prior on the correlation matrix C (through its Cholesky factor), half-normal(1)
# priors on the SDs, and the non-centred parameterisation.

# %%
FORMULA = (
    "community_abs ~ urban * area_turnout + age50 * area_sociability + female + unsafe"
    " + area_volunteering + area_unemployment + (1 + age50 | lad)"
)
f = fit(FORMULA, table, chains=CHAINS, draws=DRAWS, tune=TUNE, seed=RANDOM_SEED, progressbar=False)
print(f"rows used: {f.md.n_obs:,} of {f.md.n_input:,}")

# %% [markdown]
# ## 3. Convergence verdict first

# %%
print(f.headline)

# %% [markdown]
# Varying slopes are harder to sample than random intercepts: the slope SD and the
# correlation typically have the lowest effective sample sizes. With the demonstration
# settings the fit usually fails the gate; we accept it **only** so the example can go on
# (every table then says "ACCEPTED BY USER DESPITE FAILED CONVERGENCE"). Never do this in
# a real analysis: run longer chains instead.

# %%
if DEMO and not f.converged:
    f.accept_failed = True
    print("Demonstration only:", f.headline)

# %% [markdown]
# ## 4. Fixed effects
#
# Odds ratios with 95% intervals. In a model with interactions, a main effect is the
# effect when its interaction partner is 0: `age50` is the age-50+ odds ratio in an LA of
# average sociability (`area_sociability = 0`), and `age50:area_sociability` says how
# much that odds ratio is multiplied for each SD more sociability.

# %%
fe = summaries.fixed_effects(f)
show(fe, ["term", "or_median", "or_eti95_low", "or_eti95_high", "p_or_gt_1"])

# %%
display(
    Image(filename=figures.forest_plot(fe, OUT / "forest.png", synthetic=True, title="Community wellbeing"))
)

# %% [markdown]
# ## 5. How much does the age gap vary between LAs?
#
# `summaries.varying_slopes` gives three tables:
#
# - `sd`: the between-LA standard deviation of the baseline (`Intercept`) and of the
#   age-50+ gap (`age50`), on the log-odds scale. An SD of 0.2 for `age50` means that in
#   a typical pair of LAs the age-50+ odds ratio differs by a factor of roughly
#   exp(0.2 x 1.35) = 1.3 (the slope equivalent of the median odds ratio).
# - `cor`: the **LA slope correlation** between baseline and age gap. A positive value
#   means that LAs where younger adults report better community wellbeing also tend to
#   have a larger advantage for the over-50s; a negative one means the gap narrows where
#   the baseline is high. `p_gt_0` is the posterior probability that it is positive.
# - `slopes`: each LA's own age-50+ slope (log-odds), with its interval.

# %%
vs = summaries.varying_slopes(f, "lad", names=la_names)
show(vs.sd)

# %%
show(vs.cor)

# %% [markdown]
# With a few thousand people the correlation's interval typically spans most of -1 to 1:
# the data say little about it, and the estimate mostly reflects the LKJ prior, which
# gently favours correlations near 0. That is an honest answer, not a failure (a
# maximum-likelihood fit would often report a correlation of exactly +-1 here; see
# notebook 03).
#
# ### Each LA's age-50+ slope
#
# **Known issue (worked around here).** `varying_slopes` adds the cross-level interaction
# to each LA's slope only when the area variable is exactly constant within the LA.
# `area_sociability` is a leave-one-out mean, so it varies slightly between people of the
# same LA, and the library's `includes` column shows that the interaction was left out:

# %%
print("cross-level interactions found by the library:", summaries.cross_level_interactions(f, "lad"))
print("the library's LA slope includes:", vs.slopes["includes"].iloc[0])

# %% [markdown]
# So we compute each LA's total age-50+ slope ourselves, draw by draw:
# `b[age50] + r_lad[j, age50] + b[age50:area_sociability] x (LA's mean area_sociability)`,
# then summarise with the library's `summarise_draws` (which labels the interval).

# %%
post = f.posterior()
block = f.md.blocks[0]
r_age = summaries.posterior_draws(f, "r_lad", post)[:, :, block.terms.index("age50")]
b = post["b"].stack(sample=("chain", "draw"))
b_age = b.sel(coef="age50").values
b_int = b.sel(coef="age50:area_sociability").values
la_soc = f.md.frame.groupby("lad", observed=True)["area_sociability"].mean().reindex(block.levels).to_numpy()
total = b_age[:, None] + r_age + b_int[:, None] * la_soc[None, :]
slopes = summaries.summarise_draws(total, prob=0.95)
slopes.insert(0, "level", block.levels)
slopes.insert(1, "name", [la_names.get(lv, lv) for lv in block.levels])
slopes.insert(2, "n", summaries.level_counts(f, "lad").to_numpy())
slopes.insert(3, "area_sociability", la_soc)
slopes["p_gt_0"] = (total > 0).mean(axis=0)
show(slopes.sort_values("median", ascending=False).head(8))

# %%
# the library's figure reads the columns of `VaryingSlopes.slopes`; give it ours
slopes_for_plot = slopes.assign(term="age50")
display(
    Image(filename=figures.varying_slopes_plot(slopes_for_plot, OUT / "age50_slopes.png", synthetic=True))
)

# %% [markdown]
# Does the LA's age gap go with area sociability, as the cross-level interaction says?
# (Posterior means of the LA slopes, so this is a description, not a test.)

# %%
print(
    "correlation of LA slope (posterior mean) with area sociability:",
    round(float(np.corrcoef(slopes["mean"], slopes["area_sociability"])[0, 1]), 2),
)

# %% [markdown]
# ## 6. The cross-level interaction on the probability scale
#
# Odds ratios of interactions are hard to read. `summaries.conditional_effects` shows
# instead the **predicted probability** of good community wellbeing for under-50s and
# 50+ across the range of area sociability, with everything else held at typical values
# (means, or reference levels) and the LA effects at zero (a typical LA).
#
# We pass the sociability values ourselves, from the 5th to the 95th percentile **over
# LAs** (the library would use percentiles over respondents here, because it does not
# see `area_sociability` as an LA-level variable; see above).

# %%
soc_values = np.linspace(*np.percentile(la_soc, [5, 95]), 25)
ce = summaries.conditional_effects(f, "area_sociability", by="age50", values=soc_values)
ce.attrs["range"] = "5th to 95th percentile over LAs"
show(ce.iloc[[0, 1, -2, -1]])
print("held at:", {k: round(v, 2) if isinstance(v, float) else v for k, v in ce.attrs["held"].items()})

# %%
display(
    Image(
        filename=figures.conditional_effects_plot(
            ce, OUT / "age50_x_sociability.png", synthetic=True, outcome="community wellbeing (absolute)"
        )
    )
)

# %% [markdown]
# ### The age gap itself, with its interval
#
# The figure shows two bands; the question is about their *difference*. Because we have
# posterior draws, the difference in probability (50+ minus under-50) at each
# sociability value gets its own interval: compute it draw by draw, then summarise.

# %%
held = dict(ce.attrs["held"])
grid = pd.DataFrame(
    [
        {**held, "area_sociability": s, "age50": a}
        for s in np.percentile(la_soc, [5, 50, 95])
        for a in (0.0, 1.0)
    ]
)
p = f.predict(grid, include_groups=False, max_draws=1000).values  # draws x rows
gap = p[:, 1::2] - p[:, 0::2]
gap_table = summaries.summarise_draws(
    100 * gap, index=["least sociable LAs (5th pct)", "median LA", "most sociable LAs (95th pct)"]
)
gap_table["P(gap > 0)"] = (gap > 0).mean(axis=0)
print("Age-50+ minus under-50 difference in probability, in percentage points")
show(gap_table)

# %% [markdown]
# **Reading it.** On this synthetic cohort the over-50s' advantage in community
# wellbeing grows with area sociability (the generator builds in the study's finding 6).
# In a real analysis the statement to report is the one in the table: the difference in
# percentage points at named points of the area distribution, with its interval.
#
# ## 7. Predicted probabilities for subgroups
#
# Decision makers usually ask "what share of *these* people would we expect to report
# good community wellbeing *here*?". `summaries.predicted_probabilities` answers it for
# any grid of characteristics. Below: urban and rural residents, under and over 50, who
# feel safe, in an LA of low (10th percentile) or high (90th percentile) sociability,
# other characteristics at typical values, LA effects at zero.

# %%
ref = summaries.reference_values(f)
rows, labels = [], []
for soc_label, soc in (("low", np.percentile(la_soc, 10)), ("high", np.percentile(la_soc, 90))):
    for urban in (0.0, 1.0):
        for age50 in (0.0, 1.0):
            rows.append({**ref, "area_sociability": soc, "urban": urban, "age50": age50, "unsafe": 0.0})
            labels.append(soc_label)
grid = pd.DataFrame(rows)
pp = summaries.predicted_probabilities(f, grid)
pp.insert(0, "sociability", labels)
show(pp, ["sociability", "urban", "age50", "p_mean", "p_eti95_low", "p_eti95_high"])
print("groups:", pp.attrs["groups"])

# %% [markdown]
# These are probabilities for the *average* LA (`la="average_la"`, the default: LA effects
# at zero; the `la_mode` column says so). Every prediction names its LA mode:
# `la="marginal"` averages over the fitted distribution of LAs (a person in a random LA;
# nearer 0.5), `la="new_la"` is one unseen LA (honestly wider), and `la=["E08000025"]`
# uses the fitted effects of named LAs (the grid is predicted in each).
#
# ## 8. On synthetic data we know the truth
#
# The synthetic cohort was generated with known parameters (`truth.json` in the release
# folder). `summaries.recovery` puts them next to the posterior: with the small
# demonstration settings some intervals are wide and coverage of one or two of them can
# fail by chance; with 25,000 people they are much tighter.

# %%
truth = json.loads((OUT / "synthetic" / "truth.json").read_text())["community_abs"]
rec = summaries.recovery(f, truth)
show(rec)

# %% [markdown]
# ## Who gains, who loses
#
# Users of the original study wanted to map interventions onto the model: if area
# sociability rose by one SD, which groups of people would gain most, and would anyone
# lose? `analysis.scenarios.scenario` shifts the area factor for the people of the chosen
# LAs (here: all), predicts each person's probability before and after, draw by draw
# (LA effects and the age 50+ x area sociability interaction included), and averages the
# change within subgroups. The `gap` rows say how much more the second group gains than
# the first, with an interval and the probability that the gap is positive. This is a
# what-if on cross-sectional associations, not the effect of an intervention.
# From the command line, on a main-job run: `sameplace scenario runs/main --shift area_sociability=+1sd`.

# %%
who = scenario(f, table, ["area_sociability=+1sd"], by=["all", "age50", "urban"], max_draws=400)
print(who.attrs["interval"], "|", who.attrs["caveat"])
show(who)

# %%
Image(filename=scenario_plot(who, OUT / "scenario.png", synthetic=True))

# %% [markdown]
# ## Versions

# %%
package_versions()
