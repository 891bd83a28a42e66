"""Missing feature values modelled inside RandomInterceptRegressor, against imputers.

Simulated: 20,000 training and 5,000 held-out rows, 200 groups, three correlated features
(correlations 0.4 to 0.6), random intercepts (sd 0.7) and noise (sd 1), 20% of the feature
cells missing completely at random. Reported, in one run:

* coefficients of the fit on the masked data against the same model fitted on the complete
  data before masking, in posterior sds of the masked fit;
* coverage of 90% intervals of the masked training cells (``impute``'s mean and sd);
* held-out MAE and 90% predictive coverage on rows with a missing cell, ours beside
  ``make_pipeline(SimpleImputer(), RandomInterceptRegressor())`` and the same with
  ``IterativeImputer``;
* warm fit times with and without missing cells at 20,000 and 37,000 rows (one run each,
  after a fit of the same structure).

Run: ``python benchmarks/bench_missing.py``; writes ``benchmarks/results/missing.md``.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from _common import markdown_table, write_result
from sklearn.compose import make_column_transformer
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, SimpleImputer
from sklearn.pipeline import make_pipeline

from skbayes_re import RandomInterceptRegressor

FEATURES = ["a", "b", "c"]
COEF = np.array([1.0, -0.5, 0.8])
COV = np.array([[1.0, 0.6, 0.5], [0.6, 1.0, 0.4], [0.5, 0.4, 1.0]])


def simulate(n_rows: int, n_groups: int, seed: int, fraction: float = 0.2):
    rng = np.random.default_rng(seed)
    x = rng.multivariate_normal([0.0, 1.0, -1.0], COV, size=n_rows)
    group = rng.integers(0, n_groups, size=n_rows)
    effect = rng.normal(0.0, 0.7, size=n_groups)
    y = 1.0 + x @ COEF + effect[group] + rng.normal(0.0, 1.0, size=n_rows)
    complete = pd.DataFrame(x, columns=FEATURES)
    complete["g"] = pd.Categorical(group)
    mask = rng.random((n_rows, 3)) < fraction
    masked = complete.copy()
    masked[FEATURES] = np.where(mask, np.nan, x)
    return complete, masked, y, mask


def imputed(imputer):
    """An imputer of the feature columns, the grouping column passed through."""
    transformer = make_column_transformer(
        (imputer, FEATURES), ("passthrough", ["g"]), verbose_feature_names_out=False
    ).set_output(transform="pandas")
    return make_pipeline(transformer, RandomInterceptRegressor(groups=["g"], random_state=0))


def coverage(bounds, y):
    return float(np.mean((y >= bounds[:, 0]) & (y <= bounds[:, 1])))


def warm_fit_seconds(X, y) -> float:
    start = time.perf_counter()
    RandomInterceptRegressor(random_state=1).fit(X, y)
    return time.perf_counter() - start


def main() -> None:
    warnings.simplefilter("ignore")
    n_train, n_test = 20_000, 5_000
    complete, masked, y, mask = simulate(n_train + n_test, 200, seed=0)
    train, test = slice(0, n_train), slice(n_train, None)
    full = RandomInterceptRegressor(random_state=0).fit(complete[train], y[train])
    ours = RandomInterceptRegressor(random_state=0).fit(masked[train], y[train])
    sd = ours.posterior_.posterior["coef"].std(("chain", "draw")).to_numpy()
    gap = (ours.coef_ - full.coef_) / sd
    mean, cell_sd = ours.impute(masked[train], return_std=True)
    truth = complete[FEATURES].to_numpy()[train]
    cells = mask[train]
    z = np.abs(mean.to_numpy()[cells] - truth[cells]) / cell_sd.to_numpy()[cells]
    cell_coverage = float(np.mean(z < 1.6449))

    incomplete = mask[test].any(axis=1)
    y_test = y[test][incomplete]
    X_test = masked[test][incomplete]
    rows = []
    for name, model in [
        ("ours (missing_features='model')", ours),
        ("SimpleImputer pipeline", imputed(SimpleImputer()).fit(masked[train], y[train])),
        (
            "IterativeImputer pipeline",
            imputed(IterativeImputer(random_state=0)).fit(masked[train], y[train]),
        ),
    ]:
        features = X_test if model is ours else model[:-1].transform(X_test)
        estimator = model if model is ours else model[-1]
        prediction = estimator.predict(features)
        bounds = estimator.predict_interval(features, coverage=0.9)
        rows.append(
            [
                name,
                f"{np.mean(np.abs(prediction - y_test)):.4f}",
                f"{coverage(bounds, y_test):.3f}",
                f"{np.mean(bounds[:, 1] - bounds[:, 0]):.3f}",
            ]
        )

    timing_rows = []
    for n_rows in (20_000, 37_000):
        c, m, yy, _ = simulate(n_rows, 200, seed=1)
        RandomInterceptRegressor(random_state=0, max_iter=200).fit(c.iloc[:500], yy[:500])
        without = warm_fit_seconds(c, yy)
        with_missing = warm_fit_seconds(m, yy)
        timing_rows.append(
            [
                f"{n_rows:,}",
                f"{without:.2f}",
                f"{with_missing:.2f}",
                f"{with_missing / without:.0f}x",
            ]
        )

    text = "# Missing feature values\n\n" + __doc__.split("\n\n", 1)[1] + "\n"
    text += "## Coefficients against the complete-data fit\n\n"
    text += markdown_table(
        ["feature", "true", "complete data", "masked data", "posterior sd", "gap (sds)"],
        [
            [f, f"{t:.2f}", f"{a:.4f}", f"{b:.4f}", f"{s:.4f}", f"{g:+.2f}"]
            for f, t, a, b, s, g in zip(
                FEATURES, COEF, full.coef_, ours.coef_, sd, gap, strict=True
            )
        ],
    )
    text += (
        f"\n90% intervals of the {int(cells.sum()):,} masked training cells cover "
        f"{cell_coverage:.3f} of their true values.\n\n"
    )
    text += f"## Held-out rows with a missing cell ({int(incomplete.sum()):,})\n\n"
    text += markdown_table(["model", "MAE", "90% coverage", "mean 90% width"], rows)
    text += "\n## Warm fit time (seconds, one run each)\n\n"
    text += markdown_table(["rows", "complete data", "20% cells missing", "ratio"], timing_rows)
    write_result("missing.md", text)


if __name__ == "__main__":
    main()
