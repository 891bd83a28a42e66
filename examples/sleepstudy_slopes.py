"""
Correlated random slopes on sleepstudy
======================================

lme4's sleepstudy: the reaction times of 18 subjects over ten days of sleep deprivation.
Each subject has their own line, so both the intercept and the ``days`` slope vary by
subject: lme4's ``reaction ~ days + (1 + days | subject)``, which
``RandomEffectsRegressor(random_slopes={"subject": ["days"]})`` fits, the intercept and slope
of a subject jointly normal with a learned correlation.

The script fits the model, prints the population line, the subjects' spread of intercepts
and slopes and their correlation beside lme4's REML estimates, compares five-fold MAE with
the random-intercept model (for subjects seen in training and for new ones), and draws two
figures: each subject's data and fitted line (the classic lattice) and the shrinkage of the
subjects' slopes.

Run: ``python examples/sleepstudy_slopes.py [--output-dir DIR]``; the figures are saved as
PNG there (by default in ``examples/output/``).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.model_selection import GroupKFold, KFold, cross_val_score  # noqa: E402

from skbayes_re import RandomEffectsRegressor, RandomInterceptRegressor  # noqa: E402
from skbayes_re.datasets import load_sleepstudy  # noqa: E402
from skbayes_re.plotting import plot_group_lines, plot_shrinkage  # noqa: E402

LME4_REML = {"intercept": 251.4, "days": 10.47, "sd intercept": 24.7, "sd days": 5.9}

# %%
# The posterior beside lme4
# -------------------------
# lme4 reports REML point estimates (no priors); ours are posterior means. With 18
# subjects the group sds are uncertain and their posteriors skewed to the right, so a
# posterior mean sits above a point estimate such as REML's.


def summary(model: RandomEffectsRegressor) -> pd.DataFrame:
    """Our posterior means beside lme4's REML estimates."""
    sd = model.group_sd_["subject"]
    ours = {
        "intercept": model.intercept_,
        "days": model.coef_[0],
        "sd intercept": sd["intercept"],
        "sd days": sd["days"],
        "correlation": model.group_corr_["subject"].loc["intercept", "days"],
        "residual sd": model.sigma_,
    }
    lme4 = {**LME4_REML, "correlation": 0.07, "residual sd": 25.6}
    return pd.DataFrame({"posterior mean": ours, "lme4 REML": lme4}).round(2)


# %%
# Five-fold MAE, seen and new subjects
# ------------------------------------
# With shuffled folds every subject has days in training, and their own slope pays off.
# With whole subjects held out, both models predict the population line (a new subject's
# intercept and slope are unknown), so the slopes cannot help there.


def five_fold_mae(X, y) -> pd.DataFrame:
    """Five-fold MAE with shuffled rows (every subject seen in training) and with whole
    subjects held out (new subjects get the population line)."""
    models = {
        "random intercepts": RandomInterceptRegressor(random_state=0),
        "intercepts and slopes": RandomEffectsRegressor(
            random_slopes={"subject": ["days"]}, random_state=0
        ),
    }
    splits = {
        "seen subjects": (KFold(5, shuffle=True, random_state=0), None),
        "new subjects": (GroupKFold(5), X["subject"]),
    }
    with warnings.catch_warnings():  # "no subject of X was seen in fit": new subjects
        warnings.simplefilter("ignore", UserWarning)
        return pd.DataFrame(
            {
                split: {
                    name: -np.mean(
                        cross_val_score(
                            model, X, y, groups=groups, cv=cv, scoring="neg_mean_absolute_error"
                        )
                    )
                    for name, model in models.items()
                }
                for split, (cv, groups) in splits.items()
            }
        ).round(2)


# %%
# Run the example
# ---------------
# ``main`` fits the model, prints both tables and draws the figures: each subject's days
# and reaction times with the fitted line and its 90% band, and the shrinkage of the
# subjects' slopes towards the population slope.


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description="Correlated random slopes on sleepstudy.")
    parser.add_argument("--output-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    args.output_dir = args.output_dir or Path(__file__).parent / "output"
    args.output_dir.mkdir(parents=True, exist_ok=True)

    X, y = load_sleepstudy()
    model = RandomEffectsRegressor(random_slopes={"subject": ["days"]}, random_state=0)
    model.fit(X, y)
    table = summary(model)
    print(table.to_string())
    print()
    print("five-fold MAE (ms)")
    print(five_fold_mae(X, y).to_string())

    axes = plot_group_lines(model, X, y)
    axes[0].figure.savefig(args.output_dir / "sleepstudy_lines.png", dpi=110)
    ax = plot_shrinkage(model, X, y, term="days")
    ax.figure.savefig(args.output_dir / "sleepstudy_slope_shrinkage.png", dpi=110)
    print(f"\nFigures written to {args.output_dir}")
    return table


if __name__ == "__main__":
    main()
