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
# # Mechanisms: which "links" go with life satisfaction, and what the data cannot say
#
# The original study asked what connects the *objective* community (the place) with
# *subjective* individual wellbeing. It looked at "links" such as a sense of belonging to
# the neighbourhood, not feeling lonely, valuing local friendships and being able to
# access local services, and concluded that belonging and (not) feeling lonely mattered
# more than local friendships or access to services. It also said, rightly, that
# cross-sectional data cannot rank these links causally.
#
# This notebook shows what a Bayesian analysis **can** add: the posterior probability that
# one association is larger than another, with its uncertainty, stated as plainly as
# possible, together with everything such a statement does *not* mean.
#
# The data are the project's **synthetic** cohort (made-up people in real GB LAs, with
# effects of known size built in). Nothing here is a finding about real people.

# %%
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Image, display

from analysis import figures, summaries
from data.prepare import prepare
from models import fit
from models.fitting import package_versions

# %%
RANDOM_SEED = 20240604
rng = np.random.default_rng(RANDOM_SEED)

# %% [markdown]
# ## Settings
#
# Small defaults so the notebook runs in under a minute (the project's tests run it with
# these); the fit will usually fail the convergence gate with them. **For a real
# analysis** set `SAMEPLACE_NB_N=25000 SAMEPLACE_NB_DRAWS=1000 SAMEPLACE_NB_TUNE=1000
# SAMEPLACE_NB_CHAINS=4` (and `SAMEPLACE_NB_OUT=<folder>` to keep the outputs) before
# starting Jupyter.

# %%
N_PEOPLE = int(os.environ.get("SAMEPLACE_NB_N", 3000))
DRAWS = int(os.environ.get("SAMEPLACE_NB_DRAWS", 300))
TUNE = int(os.environ.get("SAMEPLACE_NB_TUNE", 300))
CHAINS = int(os.environ.get("SAMEPLACE_NB_CHAINS", 2))
DATA_SEED = int(os.environ.get("SAMEPLACE_NB_DATA_SEED", 20240601))
OUT = Path(os.environ.get("SAMEPLACE_NB_OUT") or tempfile.mkdtemp(prefix="sameplace_nb04_"))
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
# ## 1. The links in this cohort
#
# | link | variable | measured |
# |---|---|---|
# | sense of belonging | `belonging`: agrees "I feel like I belong to this neighbourhood" | wave 6 |
# | local friendships | `local_friends`: agrees "local friendships mean a lot to me" | wave 6 |
# | loneliness | `lonely`: lonely "some of the time" or "often" | **wave 9 only** |
# | access to local services | *not measured in this cohort* | - |
#
# Two things to notice before any model:
#
# - **Access to local services is not in the data**, so this analysis cannot say
#   anything about it, and "belonging matters more than services" cannot be checked here.
# - **Loneliness is only asked at wave 9**, about three years *after* the wave-6 life
#   satisfaction outcome. Everyone without a wave-9 interview drops out of the model, and
#   the "predictor" is measured after the outcome, so the time order runs the wrong way
#   for any causal reading.

# %%
table, audit = prepare(n=N_PEOPLE, seed=DATA_SEED, out=OUT / "synthetic")
audit.check()
links = ["belonging", "local_friends", "lonely"]
pd.DataFrame(
    {
        "share = 1": table[links].mean(),
        "missing": table[links].isna().sum(),
        "missing %": 100 * table[links].isna().mean(),
    }
).round(2)

# %% [markdown]
# The links can be related to each other: in real data, people who feel they belong
# also tend to value local friendships and to be less lonely (in this synthetic cohort
# the correlations are weak). That matters below, because each coefficient is the
# association of one link *holding the others fixed*.

# %%
table[links].corr().round(2)

# %% [markdown]
# ## 2. The model
#
# Life satisfaction (1 = satisfied) on the three links, individual characteristics, four
# area characteristics and an LA random intercept:

# %%
FORMULA = (
    "life_satisfied ~ belonging + local_friends + lonely + log_income + unemployed + illness"
    " + married + unsafe + area_volunteering + area_unemployment + area_turnout + area_income + (1 | lad)"
)
f = fit(FORMULA, table, chains=CHAINS, draws=DRAWS, tune=TUNE, seed=RANDOM_SEED, progressbar=False)
print(f"rows used: {f.md.n_obs:,} of {f.md.n_input:,}")
f.md.drop_table()

# %% [markdown]
# Most of the dropped rows are people with no wave-9 loneliness answer. The model
# describes people who stayed in the survey to wave 9, who may differ from those who left
# (for example, lonelier or less settled people may be more likely to drop out).
#
# ## 3. Convergence verdict first

# %%
print(f.headline)
if DEMO and not f.converged:
    # demonstration settings only: go on, but every table carries the failure
    f.accept_failed = True
    print("Demonstration only:", f.headline)

# %% [markdown]
# (With the demonstration settings the fit usually fails the gate; it is accepted here
# only so that the example can continue, and every table says so. In a real analysis run
# longer chains instead.)
#
# ## 4. The links as odds ratios

# %%
fe = summaries.fixed_effects(f)
show(
    fe[fe["term"].isin(links)],
    ["term", "or_median", "or_eti95_low", "or_eti95_high", "p_or_gt_1"],
)

# %%
display(
    Image(
        filename=figures.forest_plot(
            fe, OUT / "forest.png", synthetic=True, title="Life satisfaction with the links"
        )
    )
)

# %% [markdown]
# ### On the probability scale
#
# Odds ratios are not the easiest scale to compare. The **average marginal effect**
# (AME) of a 0/1 link is the difference in the predicted probability of being satisfied
# between having and not having it, averaged over the people in the data (each with their
# own characteristics and LA), in percentage points after multiplying by 100.

# %%
ame = pd.concat(
    [summaries.average_marginal_effect(f, link, max_draws=300) for link in links], ignore_index=True
)
ame_pp = ame.copy()
for c in [c for c in ame.columns if c.startswith("ame_")]:
    ame_pp[c] = 100 * ame[c]
print("Average marginal effect, percentage points:", ame.attrs.get("scale"))
show(ame_pp, ["term", "contrast", "ame_mean", "ame_eti95_low", "ame_eti95_high", "p_gt_0", "n_rows"])

# %% [markdown]
# ## 5. Which association is larger? Probability statements
#
# Belonging goes with *higher* and loneliness with *lower* satisfaction, so we compare
# sizes: `abs(belonging) > abs(local_friends)` reads "the association of belonging is
# larger in size than that of local friendships" (on the log-odds scale). For each
# posterior draw the statement is either true or false; the share of draws in which it is
# true is its posterior probability. The table also gives the difference in size with its
# interval, which says *how much* larger, not only whether.

# %%
ps = summaries.probability_statements(
    f, ["abs(belonging) > abs(local_friends)", "abs(lonely) > abs(local_friends)"]
)
show(ps)

# %% [markdown]
# **How to report this** (on real data, with a converged fit): "Given the model and the
# data, the probability that the association of belonging with life satisfaction is
# larger than that of local friendships is P (difference in log-odds D, 95% interval
# [a, b])." Avoid "belonging is the more important mechanism", which is a causal claim
# the data cannot support (next section).
#
# A methodological caution: comparing sizes of coefficients is meaningful here because
# all three links are 0/1 indicators (having vs not having). Comparisons between
# predictors on different scales depend on the scaling chosen. The comparison on the
# probability scale (the AMEs above) can also differ from the log-odds comparison when
# the links have very different prevalences.
#
# ## 6. What these data can and cannot say
#
# **They can say:** among people in this (synthetic) cohort, with the same individual
# and area characteristics and in the same kind of LA, those who feel they belong are
# more often satisfied with life, and how probable it is that this association is larger
# than the one with local friendships.
#
# **They cannot say** that building belonging would raise life satisfaction more than
# building local friendships, because:
#
# - **Cross-sectional associations, not causal rankings.** Each link and the outcome are
#   observed once (or, for loneliness, in the wrong time order). No intervention or
#   change over time is observed.
# - **Reverse causation.** Satisfied people may be more likely to feel they belong and
#   less likely to feel lonely, rather than (or as well as) the other way round.
# - **Unmeasured confounding.** Personality, health, length of residence, housing or
#   family circumstances can drive both the links and life satisfaction. Adjusting for
#   the measured covariates does not remove what is not measured.
# - **The links overlap.** Belonging, friendships and loneliness are correlated; each
#   coefficient is "holding the others fixed", which may not correspond to any real
#   change, and a link's association can be absorbed by a correlated one.
# - **Measurement.** One or two survey items per link, dichotomised at a cut-off
#   (`ReaderConfig` makes the cut-offs configurable: check the sensitivity).
# - **Selection.** Loneliness needs a wave-9 interview: the model describes the people who
#   stayed in the survey.
# - **Access to local services is not measured in this cohort**, so the study's comparison
#   of belonging and loneliness with access to services cannot be made here at all.
#
# On the synthetic cohort we do know the truth: the generator makes belonging and
# loneliness matter more than local friendships, *and* makes them causes by
# construction. On real data neither is known.
#
# ## Levels-model figure
#
# The main job (`sameplace main`) fits the three link models (belonging, loneliness and
# local friendships on area factors) beside the wellbeing models and draws the study's
# levels model from them, `figures/levels_model.png`: objective community factors ->
# links -> wellbeing, with the posterior odds ratio and 95% interval on every arrow. In
# Python: `analysis.levels.levels_figure(results, catalogue, path, synthetic=True)` with
# fits of the link models and of a wellbeing model; this notebook fits only the wellbeing
# model, so it does not draw it.
#
# ## Versions

# %%
package_versions()
