"""
Crossed random effects: two grouping columns
============================================

Essays of pupils from 40 schools, each graded by one of 25 markers chosen at random: a mark
depends on the pupil's hours of preparation, on the school, and on how lenient the marker
is. School and marker are *crossed* factors (every marker grades essays of many schools), not
nested ones. ``RandomInterceptRegressor(groups=["school", "marker"])`` gives each factor its
own random intercepts and its own learned standard deviation:

``mark ~ Normal(alpha + beta * hours + u_school + v_marker, sigma)``

The data are simulated, so every estimate can be checked against the truth. We compare the
crossed model with one that knows the schools only, on held-out essays.
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from skbayes_re import RandomInterceptRegressor
from skbayes_re.metrics import coverage, crps

# %%
# Simulated marks with a known truth
# ----------------------------------
# 4,000 essays; the school effects have sd 0.6, the markers' leniency sd 0.4, the noise
# sd 1.0, and each hour of preparation adds 0.5 to the mark.

TRUTH = {"intercept": 5.0, "hours": 0.5, "sd school": 0.6, "sd marker": 0.4, "noise sd": 1.0}


def simulate_marks(n_essays=4_000, n_schools=40, n_markers=25, seed=0):
    """Marks of essays with crossed school and marker effects, and the true effects."""
    rng = np.random.default_rng(seed)
    school = rng.integers(0, n_schools, n_essays)
    marker = rng.integers(0, n_markers, n_essays)
    effects = {
        "school": pd.Series(rng.normal(0, TRUTH["sd school"], n_schools)),
        "marker": pd.Series(rng.normal(0, TRUTH["sd marker"], n_markers)),
    }
    X = pd.DataFrame(
        {
            "hours": rng.gamma(4.0, 1.0, n_essays),
            "school": pd.Categorical(school),
            "marker": pd.Categorical(marker),
        }
    )
    noise = rng.normal(0, TRUTH["noise sd"], n_essays)
    y = TRUTH["intercept"] + TRUTH["hours"] * X["hours"] + noise
    y += effects["school"].to_numpy()[school] + effects["marker"].to_numpy()[marker]
    return X, y.rename("mark"), effects


X, y, true_effects = simulate_marks()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
print(f"{len(X_train)} training and {len(X_test)} held-out essays")

# %%
# Two models: schools only, and schools crossed with markers
# ----------------------------------------------------------
# The grouping columns are listed in ``groups``; the schools-only model does not see the
# marker column at all.

models = {
    "schools only": RandomInterceptRegressor(groups=["school"], random_state=0),
    "schools x markers": RandomInterceptRegressor(groups=["school", "marker"], random_state=0),
}
columns = {"schools only": ["hours", "school"], "schools x markers": ["hours", "school", "marker"]}
for name, model in models.items():
    model.fit(X_train[columns[name]], y_train)


def estimates(model):
    """Posterior means of the model's parameters, in the names of ``TRUTH``."""
    return {
        "intercept": model.intercept_,
        "hours": model.coef_[0],
        "sd school": model.group_sd_["school"],
        "sd marker": model.group_sd_.get("marker", np.nan),
        "noise sd": model.sigma_,
    }


simulated = {**TRUTH, **{f"sd {k}": effects.std() for k, effects in true_effects.items()}}
table = pd.DataFrame(
    {
        "truth": TRUTH,
        "simulated": simulated,
        **{name: estimates(model) for name, model in models.items()},
    }
)
print(table.round(3).to_string())

# %%
# "simulated" is the standard deviation of the effects the simulation actually drew (40
# schools and 25 markers are few draws): that is what the data can tell, and the crossed
# model's estimates are close to it. The schools-only model has nowhere
# to put the markers' leniency, so it ends up in its noise sd, which comes out close to
# ``sqrt(1.0**2 + 0.4**2) = 1.08``.
#
# Held-out essays
# ---------------
# Every school and marker of the test essays was seen in training, so the crossed model can
# use both effects. We score the point prediction (MAE), the whole predictive distribution
# (CRPS, lower is better) and the 90% intervals (coverage, to compare with 0.9).


def held_out_scores(name, model):
    X_new = X_test[columns[name]]
    return {
        "MAE": np.mean(np.abs(y_test - model.predict(X_new))),
        "CRPS": crps(model, X_new, y_test),
        "90% coverage": coverage(model, X_new, y_test, level=0.9),
    }


scores = pd.DataFrame({name: held_out_scores(name, m) for name, m in models.items()}).T
print(scores.round(3).to_string())

# %%
# Estimated effects against the truth
# -----------------------------------
# Each point is a school or a marker: its true effect against its posterior mean, with the
# 90% posterior interval from the stored draws (``posterior_``). An effect is identified up
# to a shift shared with the intercept, so both sides are centred on their mean.


def effect_intervals(model, column):
    """Posterior mean and 90% interval of each group's effect, centred on their mean."""
    draws = model.posterior_.posterior[f"effect_{column}"].stack(sample=("chain", "draw"))
    draws = draws - draws.mean(f"group_{column}")
    low, high = draws.quantile([0.05, 0.95], dim="sample").to_numpy()
    return draws.mean("sample").to_numpy(), low, high


crossed = models["schools x markers"]
fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharex=True, sharey=True)
for ax, column in zip(axes, ["school", "marker"], strict=True):
    mean, low, high = effect_intervals(crossed, column)
    labels = crossed.posterior_.posterior[f"group_{column}"].to_numpy()
    truth = true_effects[column].reindex(labels).to_numpy()
    truth = truth - truth.mean()
    ax.errorbar(truth, mean, yerr=[mean - low, high - mean], fmt="o", ms=4, alpha=0.7)
    ax.axline((0, 0), slope=1, color="grey", ls="--", lw=1)
    inside = np.mean((low <= truth) & (truth <= high))
    ax.set_title(f"{column}: 90% intervals cover {inside:.0%} of the true effects")
    ax.set_xlabel("true effect (centred)")
axes[0].set_ylabel("posterior mean and 90% interval (centred)")
fig.tight_layout()
plt.show()

# %%
# With 40 schools and 25 markers the share of true effects inside their intervals is a
# noisy measure: a calibrated 90% interval misses five or more of 25 effects in about one
# simulation in ten.
