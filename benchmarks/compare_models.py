"""MAE, CRPS, 90% interval coverage and fit time for seen and unseen groups: our estimators
against the alternatives.

Four grouped data sets: Zillow-like (the original study's setting, simulated), Minnesota radon
(counties), Ames housing (neighbourhoods) and sleepstudy (subjects), each under two schemes of
five-fold cross-validation. "Seen groups": shuffled KFold (seed 0), so nearly every test row's
group is also in its training folds. "Unseen groups": GroupKFold on the grouping column, so
every test row's group is new to the model that predicts it. Scores are means over all rows,
each predicted once per scheme by the model that did not see it.

Tools that ignore groups see the numeric features only, as in the original study; "one-hot"
variants add the group as dummy columns (an unseen group gets no dummy: the intercept alone).
CRPS (continuous ranked probability score, in the target's units, lower is better) scores the
whole predictive distribution; coverage is the share of rows inside the central 90% predictive
interval. Tools with a Gaussian predictive distribution are scored in closed form: statsmodels
MixedLM (variance: residual + the group effect's conditional variance for a seen group, the
group variance for a new one, + the fixed effects' uncertainty from their REML covariance),
gpboost (its ``predict_var=True`` variance: residual + the group effect's conditional
variance, or the group variance for a new group; gpboost leaves out the fixed effects'
uncertainty) and BayesianRidge (``return_std``; it knows no group variance). Our estimators
are scored on draws from their posterior predictive distributions (``sample_y``) by the fair
CRPS estimator (``skbayes_re.metrics.crps_ensemble``), with 40 million divided by the data
set's rows draws per row, kept within 2,000 (Zillow-like) and 100,000 (sleepstudy); the
Monte Carlo standard error is given below each table. Their intervals are
``predict_interval``'s. Tools that give a point prediction only show "-" for CRPS and
coverage (a point prediction's CRPS is its absolute error, so its CRPS is its MAE). Fit time
is the tool's mean fit time over both schemes' folds divided by that of our
RandomInterceptRegressor in the same run.

Run: ``python benchmarks/compare_models.py [--quick]``; writes
``benchmarks/results/compare_models.md`` and one PNG chart per data set.
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
from sklearn.model_selection import GroupKFold, KFold
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
from skbayes_re.metrics import crps_ensemble

LEVEL = 0.9
Z = norm.ppf(0.5 + LEVEL / 2)
DRAWS_PER_DATA_SET = 4e7  # posterior predictive draws (rows x draws per row) for our CRPS
MIN_DRAWS, MAX_DRAWS = 2_000, 100_000  # draws per row
CHUNK = 10_000_000  # draws held in memory at once
N_BATCHES = 10  # batches of draws whose spread gives the CRPS's Monte Carlo standard error
N_SPLITS = 5
OURS = "ours: RandomInterceptRegressor"
SCHEMES = {"seen": "seen groups", "unseen": "unseen groups"}


def zillow_like():
    frame = clean_zillow(make_zillow_like(random_state=0))
    return frame.drop(columns="logerror"), frame["logerror"], "region_zip"


DATASETS = {
    "zillow-like": zillow_like,
    "radon": lambda: (*load_radon(), "county"),
    "ames": lambda: (*load_ames(), "neighborhood"),
    "sleepstudy": lambda: (*load_sleepstudy(), "subject"),
}


def gaussian_crps(mean, sd, y):
    """Per-row CRPS of N(mean, sd^2) at y: sd (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi))."""
    z = (y - mean) / sd
    return sd * (z * (2.0 * norm.cdf(z) - 1.0) + 2.0 * norm.pdf(z) - 1.0 / np.sqrt(np.pi))


class Prediction:
    """A tool's predictions of some rows: the point prediction, and, if the tool gives a
    predictive distribution, its 90% intervals and ``crps(y)`` -> (mean CRPS over the rows,
    its Monte Carlo variance)."""

    def __init__(self, mean, bounds=None, crps=None):
        self.mean, self.bounds, self.crps = np.asarray(mean, float), bounds, crps

    @classmethod
    def gaussian(cls, mean, sd):
        mean, sd = np.asarray(mean, float), np.asarray(sd, float)
        bounds = np.column_stack([mean - Z * sd, mean + Z * sd])
        return cls(mean, bounds, lambda y: (np.mean(gaussian_crps(mean, sd, y)), 0.0))


class Tool:
    """A fit/predict adapter: ``fit(X, y, group)``; ``predict(X)`` -> a ``Prediction``."""

    name = ""

    def numeric(self, X, group):
        return X.drop(columns=group)


def draws_per_row(n_rows):
    """As many draws per row as keep ``DRAWS_PER_DATA_SET`` in all, within the bounds and
    a multiple of ``N_BATCHES``: the CRPS's Monte Carlo error shrinks as 1 / sqrt(rows x
    draws), so each data set's is then about as small."""
    draws = np.clip(DRAWS_PER_DATA_SET / n_rows, MIN_DRAWS, MAX_DRAWS)
    return int(draws // N_BATCHES * N_BATCHES)


class Ours(Tool):
    n_draws = MIN_DRAWS  # per row; main sets it per data set

    def __init__(self, name, factory, grouped=True):
        self.name, self.factory, self.grouped = name, factory, grouped

    def fit(self, X, y, group):
        self.group = group
        data = X if self.grouped else self.numeric(X, group)
        extra = {"groups": [group]} if self.grouped else {}
        self.model = self.factory(**extra).fit(data, y)

    def predict(self, X):
        data = X if self.grouped else self.numeric(X, self.group)
        with warnings.catch_warnings():  # a fold of new groups is expected here
            warnings.filterwarnings("ignore", "None of the labels", UserWarning)
            mean = self.model.predict(data)
            bounds = self.model.predict_interval(data, coverage=LEVEL)
        return Prediction(mean, bounds, lambda y, model=self.model: self.draws_crps(model, data, y))

    def draws_crps(self, model, data, y):
        """Mean fair CRPS of ``sample_y`` draws over the rows, and the Monte Carlo variance
        of that mean (from the spread of the means of ``N_BATCHES`` disjoint batches of the
        draws); the rows are drawn in chunks to bound memory."""
        rows_per_chunk = max(1, CHUNK // self.n_draws)
        total, batch_totals = 0.0, np.zeros(N_BATCHES)
        for seed, start in enumerate(range(0, len(y), rows_per_chunk)):
            rows = slice(start, start + rows_per_chunk)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "None of the labels", UserWarning)
                draws = model.sample_y(data.iloc[rows], n_samples=self.n_draws, random_state=seed)
            n = len(draws)
            total += n * crps_ensemble(y[rows], draws, fair=True)
            for b, part in enumerate(np.split(draws, N_BATCHES, axis=1)):
                batch_totals[b] += n * crps_ensemble(y[rows], part, fair=True)
        n = len(y)
        return total / n, np.var(batch_totals / n, ddof=1) / N_BATCHES


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
            return Prediction(self.model.predict(data))
        return Prediction.gaussian(*self.model.predict(data, return_std=True))


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
        self.effect_vars = {
            k: float(np.ravel(v)[0]) for k, v in self.result.random_effects_cov.items()
        }

    def predict(self, X):
        import statsmodels.api as sm

        exog = sm.add_constant(self.numeric(X, self.group).to_numpy(float), has_constant="add")
        labels = X[self.group].astype(str)
        k_fe = self.result.k_fe
        fe_cov = np.asarray(self.result.cov_params())[:k_fe, :k_fe]
        mean = exog @ self.result.fe_params + labels.map(self.effects).fillna(0.0).to_numpy()
        group_var = float(np.ravel(self.result.cov_re)[0])
        effect_var = labels.map(self.effect_vars).fillna(group_var).to_numpy()
        fe_var = np.einsum("ij,jk,ik->i", exog, fe_cov, exog)
        return Prediction.gaussian(mean, np.sqrt(self.result.scale + effect_var + fe_var))


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
        return Prediction.gaussian(np.asarray(out["mu"]), np.sqrt(np.asarray(out["var"])))


def tools():
    return [
        Ours(OURS, lambda **kw: RandomInterceptRegressor(random_state=0, **kw)),
        Ours(
            "ours: BayesianLinearRegressor",
            lambda **kw: BayesianLinearRegressor(random_state=0),
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


def splits(scheme, X, group):
    if scheme == "seen":
        return KFold(N_SPLITS, shuffle=True, random_state=0).split(X)
    return GroupKFold(N_SPLITS).split(X, groups=X[group].astype(str))


def cross_validate(tool, X, y, group, scheme):
    """Scores of the out-of-fold predictions over all rows, and the fit times."""
    errors, inside, crps_sum, crps_mc_var, seconds = [], [], 0.0, 0.0, []
    for train, test in splits(scheme, X, group):
        start = time.perf_counter()
        tool.fit(X.iloc[train], y.iloc[train], group)
        seconds.append(time.perf_counter() - start)
        prediction = tool.predict(X.iloc[test])
        truth = y.iloc[test].to_numpy(float)
        errors.append(np.abs(truth - prediction.mean))
        if prediction.bounds is not None:
            low, high = prediction.bounds[:, 0], prediction.bounds[:, 1]
            inside.append((truth >= low) & (truth <= high))
            mean_crps, mc_var = prediction.crps(truth)
            crps_sum += len(test) * mean_crps
            crps_mc_var += len(test) ** 2 * mc_var
    n = len(X)
    scores = {"MAE": np.mean(np.concatenate(errors)), "seconds": seconds}
    scores["coverage"] = np.mean(np.concatenate(inside)) if inside else np.nan
    scores["CRPS"] = crps_sum / n if inside else np.nan
    scores["CRPS MC se"] = np.sqrt(crps_mc_var) / n if inside else np.nan
    return scores


def decimals(table):
    """Decimals that show four significant digits of the data set's typical MAE."""
    return max(0, 3 - int(np.floor(np.log10(table["seen MAE"].median()))))


def ordered(table):
    """Tools by seen-group CRPS, then those without CRPS by seen-group MAE."""
    scored = table[table["seen CRPS"].notna()].sort_values("seen CRPS")
    return pd.concat([scored, table[table["seen CRPS"].isna()].sort_values("seen MAE")])


def bar_chart(name, table):
    """CRPS of the tools with a predictive distribution, seen and unseen groups side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ordered(table).dropna(subset=["seen CRPS"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.4 * len(rows) + 1.4), sharey=True)
    colours = ["tab:red" if t.startswith("ours") else "tab:grey" for t in rows["tool"]]
    for ax, scheme in zip(axes, SCHEMES, strict=True):
        values = rows[f"{scheme} CRPS"].to_numpy()
        ax.barh(rows["tool"], values, color=colours)
        spread = values.max() - values.min()
        ax.set_xlim(values.min() - 0.2 * spread, values.max() + 0.05 * spread)
        ax.set_title(SCHEMES[scheme])
        ax.set_xlabel("5-fold CRPS (lower is better; axis not from 0)")
    axes[0].invert_yaxis()
    fig.suptitle(name)
    fig.tight_layout()
    path = RESULTS / f"compare_models_{name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def change(new, old):
    """Relative change in percent, signed, e.g. ``+4.9%``."""
    percent = 100 * (new / old - 1)
    return "0.0%" if abs(percent) < 0.05 else f"{percent:+.1f}%"


def summary(table, digits, n_rows):
    """What the data set's numbers say, as a few bullets computed from them."""
    rows = table.set_index("tool")
    f = f"{{:.{digits}f}}".format
    best = [
        f"{label} {rows[f'{scheme} CRPS'].idxmin()} ({f(rows[f'{scheme} CRPS'].min())})"
        for scheme, label in SCHEMES.items()
    ]
    lines = ["Lowest CRPS: for " + "; for ".join(best) + "."]
    for scheme, label in SCHEMES.items():
        parts = [
            f"{tool.removeprefix('ours: ')} {f(rows.loc[tool, f'{scheme} CRPS'])} "
            f"(MAE {f(rows.loc[tool, f'{scheme} MAE'])}, "
            f"coverage {rows.loc[tool, f'{scheme} coverage']:.3f})"
            for tool in [OURS, "gpboost", "statsmodels MixedLM"]
        ]
        lines.append(f"Random intercepts, {label}: CRPS " + "; ".join(parts) + ".")
    ours, pooled = rows.loc[OURS], rows.loc["ours: BayesianLinearRegressor"]
    lines.append(
        "Unseen against seen groups, our RandomInterceptRegressor's CRPS changes by "
        f"{change(ours['unseen CRPS'], ours['seen CRPS'])} and its MAE by "
        f"{change(ours['unseen MAE'], ours['seen MAE'])}; for unseen groups its CRPS differs "
        f"by {change(ours['unseen CRPS'], pooled['unseen CRPS'])} from that of our "
        "BayesianLinearRegressor, which ignores the groups."
    )
    for scheme, label in SCHEMES.items():
        cover = rows[f"{scheme} coverage"].dropna()
        off = cover[(cover < 0.87) | (cover > 0.93)]
        if len(off) == len(cover):
            spread = f"{cover.min():.3f}" + (
                f" to {cover.max():.3f}" if f"{cover.min():.3f}" != f"{cover.max():.3f}" else ""
            )
            lines.append(f"Every tool's 90% coverage for {label} is outside 0.87-0.93: {spread}.")
        elif len(off):
            listed = ", ".join(f"{t} {c:.3f}" for t, c in off.items())
            lines.append(f"90% coverage outside 0.87-0.93 for {label}: {listed}.")
        else:
            lines.append(f"Every tool's 90% coverage for {label} is within 0.87-0.93.")
    mc = rows["seen CRPS MC se"].combine(rows["unseen CRPS MC se"], max)
    mc = mc[rows.index.str.startswith("ours")]
    lines.append(
        f"Precision: the coverage of {n_rows:,} rows by a calibrated 90% interval has "
        f"standard error {np.sqrt(LEVEL * (1 - LEVEL) / n_rows):.3f}; our CRPS values' "
        f"Monte Carlo standard error ({Ours.n_draws:,} draws per row) is at most "
        f"{mc.max():.1e}."
    )
    return "".join(f"* {line}\n" for line in lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="radon and sleepstudy only")
    args = parser.parse_args()
    names = ["radon", "sleepstudy"] if args.quick else list(DATASETS)
    started = time.perf_counter()
    X, y = load_sleepstudy()
    for tool in tools()[:3]:  # compile our model structures outside the timings
        tool.fit(X, y, "subject")
    intro = __doc__.split("\n\n", 1)[1].rsplit("\n\nRun:", 1)[0]
    text = "# Seen and unseen groups: MAE, CRPS and coverage against the alternatives\n\n"
    text += intro + "\n"
    for name in names:
        X, y, group = DATASETS[name]()
        Ours.n_draws = draws_per_row(len(X))
        rows = []
        for tool in tools():
            row = {"tool": tool.name, "seconds": []}
            for scheme in SCHEMES:
                scores = cross_validate(tool, X, y, group, scheme)
                row["seconds"] += scores.pop("seconds")
                row.update({f"{scheme} {key}": value for key, value in scores.items()})
                print(
                    f"{name:12s} {tool.name:36s} {scheme:6s} MAE {scores['MAE']:.5f} "
                    f"CRPS {scores['CRPS']:.5f} (se {scores['CRPS MC se']:.1e}) "
                    f"cov {scores['coverage']:.3f} {np.mean(row['seconds']):.3f}s",
                    flush=True,
                )
            row["seconds"] = np.mean(row["seconds"])
            rows.append(row)
        table = pd.DataFrame(rows)
        ours = table.loc[table["tool"] == OURS, "seconds"].item()
        digits = decimals(table)

        def number(value, digits=digits):
            return "-" if np.isnan(value) else f"{value:.{digits}f}"

        text += f"\n## {name} ({len(X):,} rows, {X[group].nunique()} {group} groups)\n\n"
        header = ["tool"]
        for label in SCHEMES.values():
            header += [f"MAE, {label}", f"CRPS, {label}", f"90% coverage, {label}"]
        text += markdown_table(
            header + ["fit time / ours"],
            [
                [row["tool"]]
                + [
                    cell
                    for scheme in SCHEMES
                    for cell in (
                        number(row[f"{scheme} MAE"]),
                        number(row[f"{scheme} CRPS"]),
                        number(row[f"{scheme} coverage"], 3),
                    )
                ]
                + [f"{row['seconds'] / ours:.2f}"]
                for _, row in ordered(table).iterrows()
            ],
        )
        text += "\n" + summary(table, digits, len(X))
        text += f"\n![{name}]({bar_chart(name, table).name})\n"
    write_result("compare_models.md", text)
    print(f"total wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
