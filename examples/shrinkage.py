"""
Shrinkage: partial pooling of zip-code intercepts
=================================================

A zip code with three sales says little about its own level: its within-cluster mean
("no pooling") is mostly noise. A random-intercept model pulls each zip code's intercept
towards the global one, the more so the fewer its rows ("partial pooling"). The original
Zillow study drew this as its key figure; :func:`skbayes_re.plotting.plot_shrinkage` draws
it, and :func:`skbayes_re.plotting.shrinkage_table` returns the numbers behind it.

On simulated Zillow-like data (:func:`skbayes_re.datasets.make_zillow_like`) the true zip
effects are known, so we can measure whether pulling in is right: which estimate lies closer
to the truth, by cluster size?
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from skbayes_re import RandomInterceptRegressor
from skbayes_re.datasets import SEED_FEATURES, clean_zillow, make_zillow_like
from skbayes_re.plotting import plot_posterior, plot_shrinkage, shrinkage_table

# %%
# Data and fit
# ------------
# 8,000 simulated sales in 200 zip codes, cleaned as the study did; the study's three
# features and zip-code intercepts.

frame, truth = make_zillow_like(n_samples=8_000, n_groups=200, random_state=0, return_truth=True)
frame = clean_zillow(frame)
X, y = frame[[*SEED_FEATURES, "region_zip"]], frame["logerror"]
model = RandomInterceptRegressor(groups=["region_zip"], random_state=0).fit(X, y)
print(f"{len(X)} sales in {X['region_zip'].nunique()} zip codes")
realised = truth["zip_effects"].std()
print(
    f"zip sd: true {truth['zip_sd']:.4f} (sd of the 200 simulated effects {realised:.4f}),"
    f" posterior mean {model.group_sd_['region_zip']:.4f}"
)
print(f"noise sd (posterior mean): {model.sigma_:.4f}")

# %%
# The shrinkage figure
# --------------------
# Per zip code, ordered by size: the within-cluster estimate (the mean residual of its rows,
# with the population slopes held at their fitted values) and the posterior mean of its
# intercept. The zip-code sd is small beside the noise, so small clusters are pulled most of the
# way to the global intercept (dashed).

fig, ax = plt.subplots(figsize=(11, 4.5))
plot_shrinkage(model, X, y, ax=ax)
fig.tight_layout()
plt.show()

# %%
# Which estimate is closer to the truth?
# --------------------------------------
# ``shrinkage_table`` gives both estimates per zip code. Both are compared with the true zip
# effect as departures from the global intercept, each side centred on its mean (the
# intercept absorbs the mean of the effects and of the non-linear signal).

table = shrinkage_table(model, X, y)
true_effect = truth["zip_effects"].reindex(table["group"]).to_numpy()
errors = pd.DataFrame({"size_tercile": table["size_tercile"], "n": table["n"]})
for estimate in ["no_pooling", "partial_pooling"]:
    departure = table[estimate] - table["global_intercept"]
    errors[estimate] = (departure - departure.mean()) - (true_effect - true_effect.mean())

by_size = errors.groupby("size_tercile", observed=True).agg(
    zip_codes=("n", "size"),
    median_rows=("n", "median"),
    rmse_no_pooling=("no_pooling", lambda e: np.sqrt(np.mean(e**2))),
    rmse_partial_pooling=("partial_pooling", lambda e: np.sqrt(np.mean(e**2))),
    median_shrinkage=("n", lambda n: table.loc[n.index, "shrinkage"].median()),
)
print(by_size.round(4).to_string())

# %%
# Partial pooling is closer to the truth in every tercile, and by far the most where
# clusters are small: there the within-cluster mean is dominated by the noise of a few
# heavy-tailed sales. In large clusters the two estimates nearly agree, as they should.
#
# The errors zip code by zip code:

fig, ax = plt.subplots(figsize=(7, 4.5))
colours = {"small": "C3", "medium": "C1", "large": "C2"}
for tercile, rows in errors.groupby("size_tercile", observed=True):
    ax.scatter(
        rows["no_pooling"].abs(),
        rows["partial_pooling"].abs(),
        s=12,
        color=colours[tercile],
        label=f"{tercile} clusters",
    )
ax.axline((0, 0), slope=1, color="grey", ls="--", lw=1)
ax.set_xlabel("|error| of the within-cluster estimate")
ax.set_ylabel("|error| of the partial-pooling estimate")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# The posterior of the scales
# ---------------------------
# ``plot_posterior`` draws 50% and 90% posterior intervals of named parameters from the
# stored draws: here the zip-code sd and the noise sd, both learned with the rest.

ax = plot_posterior(model, var_names=["group_sd_region_zip", "sigma"])
ax.figure.tight_layout()
plt.show()
