"""Validation MAE, 90% interval coverage and fit time: our estimators against the alternatives.

Five-fold cross-validation (shuffled, seed 0) on four grouped data sets: Zillow-like (the
original study's setting, simulated), Minnesota radon (counties), Ames housing (neighbourhoods)
and sleepstudy (subjects). Tools that ignore groups see the numeric features only, as in the
original study; "one-hot" variants add the group as dummy columns. Coverage is reported for
tools that give predictive intervals. Fit time is the tool's mean fit time divided by that of
our RandomInterceptRegressor in the same run.

Run: ``python benchmarks/compare_mae.py [--quick]``; writes ``benchmarks/results/compare_mae.md``
and one PNG bar chart per data set.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from _common import RESULTS, markdown_table, write_result
from scipy.stats import norm
from sklearn.compose import TransformedTargetRegressor, make_column_transformer
from sklearn.linear_model import BayesianRidge, LinearRegression
from sklearn.model_selection import KFold
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skbayes_re import BayesianLinearRegressor, RandomEffectsMLPRegressor, RandomInterceptRegressor
from skbayes_re.datasets import (
    clean_zillow,
    load_ames,
    load_radon,
    load_sleepstudy,
    make_zillow_like,
)

Z90 = norm.ppf(0.95)


def zillow_like():
    frame = clean_zillow(make_zillow_like(random_state=0))
    return frame.drop(columns="logerror"), frame["logerror"], "region_zip"


DATASETS = {
    "zillow-like": zillow_like,
    "radon": lambda: (*load_radon(), "county"),
    "ames": lambda: (*load_ames(), "neighborhood"),
    "sleepstudy": lambda: (*load_sleepstudy(), "subject"),
}


class Tool:
    """A fit/predict adapter: ``fit(X, y, group)``; ``predict(X)`` -> (mean, bounds or None)."""

    name = ""

    def numeric(self, X, group):
        return X.drop(columns=group)


class Ours(Tool):
    def __init__(self, name, factory, grouped=True):
        self.name, self.factory, self.grouped = name, factory, grouped

    def fit(self, X, y, group):
        self.group = group
        data = X if self.grouped else self.numeric(X, group)
        extra = {"groups": [group]} if self.grouped else {}
        self.model = self.factory(**extra).fit(data, y)

    def predict(self, X):
        data = X if self.grouped else self.numeric(X, self.group)
        return self.model.predict(data), self.model.predict_interval(data, coverage=0.9)


class Sklearn(Tool):
    def __init__(self, name, factory, one_hot=False, std_interval=False):
        self.name, self.factory = name, factory
        self.one_hot, self.std_interval = one_hot, std_interval

    def design(self, X, group):
        if self.one_hot:
            return X
        return self.numeric(X, group)

    def fit(self, X, y, group):
        self.group = group
        numeric = [c for c in X.columns if c != group]
        steps = [StandardScaler()]
        if self.one_hot:
            steps = [
                make_column_transformer(
                    (StandardScaler(), numeric),
                    (OneHotEncoder(handle_unknown="ignore", sparse_output=False), [group]),
                )
            ]
        self.model = make_pipeline(*steps, self.factory()).fit(self.design(X, group), y)

    def predict(self, X):
        data = self.design(X, self.group)
        if not self.std_interval:
            return self.model.predict(data), None
        mean, std = self.model.predict(data, return_std=True)
        return mean, np.column_stack([mean - Z90 * std, mean + Z90 * std])


class MixedLM(Tool):
    name = "statsmodels MixedLM"

    def fit(self, X, y, group):
        import statsmodels.api as sm

        self.group = group
        exog = sm.add_constant(self.numeric(X, group).to_numpy(float))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.result = sm.MixedLM(
                np.asarray(y, float), exog, X[group].astype(str).to_numpy()
            ).fit(reml=True)
        self.effects = {k: float(np.ravel(v)[0]) for k, v in self.result.random_effects.items()}

    def predict(self, X):
        import statsmodels.api as sm

        exog = sm.add_constant(self.numeric(X, self.group).to_numpy(float), has_constant="add")
        labels = X[self.group].astype(str)
        seen = labels.isin(self.effects).to_numpy()
        mean = exog @ self.result.fe_params + labels.map(self.effects).fillna(0.0).to_numpy()
        group_var = float(np.ravel(self.result.cov_re)[0])
        sd = np.sqrt(self.result.scale + np.where(seen, 0.0, group_var))
        return mean, np.column_stack([mean - Z90 * sd, mean + Z90 * sd])


class GPBoost(Tool):
    name = "gpboost"

    def fit(self, X, y, group):
        import gpboost as gpb

        self.group = group
        self.model = gpb.GPModel(group_data=X[group].astype(str).to_numpy(), likelihood="gaussian")
        self.model.fit(y=np.asarray(y, float), X=self.design(X))

    def design(self, X):
        numeric = self.numeric(X, self.group).to_numpy(float)
        return np.column_stack([np.ones(len(numeric)), numeric])

    def predict(self, X):
        out = self.model.predict(
            group_data_pred=X[self.group].astype(str).to_numpy(),
            X_pred=self.design(X),
            predict_var=True,
            predict_response=True,
        )
        mean, sd = np.asarray(out["mu"]), np.sqrt(np.asarray(out["var"]))
        return mean, np.column_stack([mean - Z90 * sd, mean + Z90 * sd])


def tools():
    return [
        Ours("ours: RandomInterceptRegressor", lambda **kw: RandomInterceptRegressor(**kw)),
        Ours(
            "ours: BayesianLinearRegressor",
            lambda **kw: BayesianLinearRegressor(),
            grouped=False,
        ),
        Ours(
            "ours: RandomEffectsMLPRegressor",
            lambda **kw: RandomEffectsMLPRegressor(random_state=0, **kw),
        ),
        Sklearn("LinearRegression", LinearRegression),
        Sklearn("LinearRegression, one-hot groups", LinearRegression, one_hot=True),
        Sklearn("BayesianRidge", BayesianRidge, std_interval=True),
        Sklearn("BayesianRidge, one-hot groups", BayesianRidge, one_hot=True, std_interval=True),
        Sklearn(
            "MLPRegressor (5,), scaled target",
            lambda: TransformedTargetRegressor(
                MLPRegressor(hidden_layer_sizes=(5,), max_iter=1000, random_state=0),
                transformer=StandardScaler(),
            ),
        ),
        MixedLM(),
        GPBoost(),
    ]


def cross_validate(tool, X, y, group, n_splits):
    maes, coverages, seconds = [], [], []
    for train, test in KFold(n_splits, shuffle=True, random_state=0).split(X):
        start = time.perf_counter()
        tool.fit(X.iloc[train], y.iloc[train], group)
        seconds.append(time.perf_counter() - start)
        mean, bounds = tool.predict(X.iloc[test])
        truth = y.iloc[test].to_numpy()
        maes.append(np.mean(np.abs(truth - mean)))
        if bounds is not None:
            coverages.append(np.mean((truth >= bounds[:, 0]) & (truth <= bounds[:, 1])))
    coverage = np.mean(coverages) if coverages else np.nan
    return np.mean(maes), coverage, np.mean(seconds)


def bar_chart(name, table):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = table.sort_values("MAE")
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(ordered) + 1.2))
    colours = ["tab:red" if t.startswith("ours") else "tab:grey" for t in ordered["tool"]]
    ax.barh(ordered["tool"], ordered["MAE"], color=colours)
    low = ordered["MAE"].min()
    ax.set_xlim(low * 0.97, ordered["MAE"].max() * 1.01)
    ax.invert_yaxis()
    ax.set_xlabel("5-fold validation MAE (lower is better)")
    ax.set_title(name)
    fig.tight_layout()
    path = RESULTS / f"compare_mae_{name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="radon and sleepstudy only")
    args = parser.parse_args()
    names = ["radon", "sleepstudy"] if args.quick else list(DATASETS)
    X, y = load_sleepstudy()
    for tool in tools()[:3]:  # compile our model structures outside the timings
        tool.fit(X, y, "subject")
    text = "# Validation MAE against the alternatives\n\n" + __doc__.split("\n\n")[1] + "\n"
    for name in names:
        X, y, group = DATASETS[name]()
        rows = []
        for tool in tools():
            mae, coverage, seconds = cross_validate(tool, X, y, group, n_splits=5)
            rows.append((tool.name, mae, coverage, seconds))
            print(f"{name:12s} {tool.name:40s} MAE {mae:.5f} cov {coverage:.3f} {seconds:.3f}s")
        table = pd.DataFrame(rows, columns=["tool", "MAE", "coverage", "seconds"])
        ours = table.loc[table["tool"] == "ours: RandomInterceptRegressor", "seconds"].item()
        text += f"\n## {name} ({len(X):,} rows, {X[group].nunique()} {group} groups)\n\n"
        text += markdown_table(
            ["tool", "MAE", "90% coverage", "fit time / ours"],
            [
                [
                    t,
                    f"{m:.4f}",
                    "-" if np.isnan(c) else f"{c:.3f}",
                    f"{s / ours:.2f}",
                ]
                for t, m, c, s in table.sort_values("MAE").itertuples(index=False)
            ],
        )
        text += f"\n![{name}]({bar_chart(name, table).name})\n"
    write_result("compare_mae.md", text)


if __name__ == "__main__":
    main()
