"""
Unseen groups: predicting for a new county
==========================================

A random-intercept model can predict for a group it never saw: the new group's intercept is
unknown, so it is drawn from ``Normal(0, sigma_county)``, the learned spread of the counties.
The prediction is the population one, and its interval is wider by that spread. Nothing
needs to be done for it: an unseen (or missing) label is never an error.

Are those wider intervals right? On the Minnesota radon data (log radon of 919 houses in 85
counties, :func:`skbayes_re.datasets.load_radon`) we hold out whole counties with
``GroupKFold`` and measure the coverage of the 90% intervals with
:func:`skbayes_re.metrics.coverage`, beside the usual shuffled ``KFold``, where the test
houses' counties were seen in training.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold

from skbayes_re import RandomInterceptRegressor
from skbayes_re.datasets import load_radon
from skbayes_re.metrics import coverage, interval_width

X, y = load_radon()
X_house = X.drop(columns="uranium")  # the house's floor only; the county is a group
print(f"{len(X)} houses in {X['county'].nunique()} counties; columns {list(X_house.columns)}")

# %%
# One house, seen counties and a new one
# --------------------------------------
# The model is fitted on every house. A house with a basement gets a 90% interval in each
# county; a county name the model never saw gets the population intercept and a wider
# interval. ``predict`` warns when no label of a column was seen in ``fit``, as here on
# purpose.

model = RandomInterceptRegressor(random_state=0).fit(X_house, y)
print(f"county sd {model.group_sd_['county']:.3f}, noise sd {model.sigma_:.3f} (log radon)")

counties = ["LAC QUI PARLE", "HENNEPIN", "ST LOUIS", "AITKIN", "a new county"]
house = pd.DataFrame(
    {"basement": 1.0, "county": pd.Categorical(counties)}, index=pd.Index(counties)
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    bounds = pd.DataFrame(
        model.predict_interval(house, coverage=0.9), index=counties, columns=["low", "high"]
    )
bounds["width"] = bounds["high"] - bounds["low"]
bounds["houses in county"] = X["county"].value_counts().reindex(counties).fillna(0).astype(int)
print(bounds.round(3).to_string())

# %%
# A county with many houses (Hennepin, St Louis) gets the narrowest interval; Lac Qui Parle
# and Aitkin, with a handful each, add their own uncertain intercept; the new county adds a
# whole county's spread.
#
# Coverage of held-out houses, seen and new counties
# --------------------------------------------------
# Five folds each. With ``KFold`` nearly every test house's county is in its training
# folds; with ``GroupKFold`` none is.


def cross_validated_intervals(X, cv, groups=None):
    """Per fold: 90% coverage, mean interval width and MAE of the held-out houses."""
    rows = []
    for train, test in cv.split(X, y, groups):
        fold_model = RandomInterceptRegressor(random_state=0).fit(X.iloc[train], y.iloc[train])
        X_test, y_test = X.iloc[test], y.iloc[test]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "no county of X seen in fit"
            rows.append(
                {
                    "coverage": coverage(fold_model, X_test, y_test, level=0.9),
                    "width": interval_width(fold_model, X_test, y_test, level=0.9),
                    "MAE": np.mean(np.abs(y_test - fold_model.predict(X_test))),
                }
            )
    return pd.DataFrame(rows)


schemes = {
    "seen counties (KFold)": (KFold(5, shuffle=True, random_state=0), None),
    "new counties (GroupKFold)": (GroupKFold(5), X["county"]),
}
folds = {name: cross_validated_intervals(X_house, cv, g) for name, (cv, g) in schemes.items()}
print(pd.DataFrame({name: f.mean() for name, f in folds.items()}).T.round(3).to_string())

# %%
# Both schemes cover close to 90% of the held-out houses: the new counties' intervals are
# wider by about what it takes, not more. The point predictions of new counties are worse
# (higher MAE), which the wider intervals own up to.
#
# A county-level predictor makes new counties cheaper
# ---------------------------------------------------
# The county's soil uranium explains much of why counties differ. With it as a feature the
# learned county sd shrinks, and so does the price of not knowing a county.

with_uranium = cross_validated_intervals(X, GroupKFold(5), X["county"])
uranium_model = RandomInterceptRegressor(random_state=0).fit(X, y)
print(f"county sd with uranium: {uranium_model.group_sd_['county']:.3f}")
print("new counties (GroupKFold), with uranium:")
print(with_uranium.mean().round(3).to_string())

# %%
# The figure: the intervals of the one house, and each fold's coverage.

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), width_ratios=[1.3, 1])
centre = bounds[["low", "high"]].mean(axis=1)
left.errorbar(centre, range(len(bounds)), xerr=bounds["width"] / 2, fmt="o", capsize=4, color="C0")
left.set_yticks(range(len(bounds)), [f"{c} ({n})" for c, n in bounds["houses in county"].items()])
left.invert_yaxis()
left.set_xlabel("log radon, 90% predictive interval")
left.set_title("a house with a basement (houses in county)")
for k, (name, frame) in enumerate(folds.items()):
    right.plot(np.arange(1, 6) + 0.1 * k, frame["coverage"], "o", label=name, color=f"C{k}")
right.axhline(0.9, color="grey", ls="--", lw=1, label="nominal 0.9")
right.set_ylim(0.75, 1.0)
right.set_xlabel("fold")
right.set_ylabel("coverage of 90% intervals")
right.legend(loc="lower left", fontsize="small")
fig.tight_layout()
plt.show()
