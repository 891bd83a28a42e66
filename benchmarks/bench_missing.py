"""Missing feature values modelled inside RandomInterceptRegressor, against imputers.

Simulated: 20,000 training and 5,000 held-out rows, 200 groups, three correlated features
(correlations 0.4 to 0.6), random intercepts (sd 0.7) and noise (sd 1), 20% of the feature
cells missing completely at random. Reported, in one run:

* coefficients of the fit on the masked data against the same model fitted on the complete
  data before masking, in posterior sds of the masked fit, on this data set and on four
  more (seeds 1-4), beside the gap expected by chance alone, ``sqrt(1 - sd_complete^2 /
  sd_masked^2)`` sds (the masked data lack a fifth of the cells' information), and a summary
  over twenty data sets;
* coverage of 90% intervals of the masked training cells (``impute``'s mean and sd);
* held-out MAE and 90% predictive coverage on rows with a missing cell, ours beside
  ``make_pipeline(SimpleImputer(), RandomInterceptRegressor())`` and the same with
  ``IterativeImputer``;
* coefficient bias (the mean error over ten data sets, whose chance part is about 0.003) and
  root mean square error when cells of ``c`` are missing at random given an observed value
  (the feature ``a``, or the target), ours against complete-case analysis (the same model
  on the rows without a missing cell): missing given a feature leaves complete-case
  analysis unbiased but discards the rows' other cells, missing given the target biases it;
* warm fit times with and without missing cells at 20,000 and 37,000 rows (one run each,
  after a fit of the same structure), ``method="auto"`` (the Gibbs sampler) beside
  ``method="advi"``;
* with ``--nuts``: the posterior of the masked 20,000 rows against NUTS on the same model
  (two chains of 1,000 draws; about six minutes).

Run: ``python benchmarks/bench_missing.py [--nuts]``; writes ``benchmarks/results/missing.md``.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd
from _common import markdown_table, write_result
from sklearn.compose import make_column_transformer
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, SimpleImputer
from sklearn.pipeline import make_pipeline

import skbayes_re._models as models
from skbayes_re import RandomInterceptRegressor

FEATURES = ["a", "b", "c"]
COEF = np.array([1.0, -0.5, 0.8])
COV = np.array([[1.0, 0.6, 0.5], [0.6, 1.0, 0.4], [0.5, 0.4, 1.0]])


def simulate(n_rows: int, n_groups: int, seed: int, fraction: float = 0.2, missing_given=None):
    """The complete frame, the masked one, y and the mask. ``missing_given``: None (cells
    missing completely at random), ``"a"`` or ``"y"`` (only ``c``'s cells missing, with
    probability rising with the feature ``a`` or the target; 20% on average)."""
    rng = np.random.default_rng(seed)
    x = rng.multivariate_normal([0.0, 1.0, -1.0], COV, size=n_rows)
    group = rng.integers(0, n_groups, size=n_rows)
    effect = rng.normal(0.0, 0.7, size=n_groups)
    y = 1.0 + x @ COEF + effect[group] + rng.normal(0.0, 1.0, size=n_rows)
    complete = pd.DataFrame(x, columns=FEATURES)
    complete["g"] = pd.Categorical(group)
    if missing_given is None:
        mask = rng.random((n_rows, 3)) < fraction
    else:
        driver = x[:, 0] if missing_given == "a" else y
        score = 2.0 * (driver - driver.mean()) / driver.std()
        mask = np.zeros((n_rows, 3), dtype=bool)
        mask[:, 2] = rng.random(n_rows) < 1.0 / (1.0 + np.exp(-(score - 1.9)))
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


def warm_fit_seconds(X, y, method="auto") -> float:
    start = time.perf_counter()
    RandomInterceptRegressor(method=method, random_state=1).fit(X, y)
    return time.perf_counter() - start


def coefficient_gaps(complete, masked, y):
    """The masked fit's coefficients against the complete-data fit's, in sds of the masked
    fit, and the gap expected by chance; both fits and the masked fit's sds returned too."""
    full = RandomInterceptRegressor(random_state=0).fit(complete, y)
    ours = RandomInterceptRegressor(random_state=0).fit(masked, y)
    sd = ours.posterior_.posterior["coef"].std(("chain", "draw")).to_numpy()
    sd_full = full.posterior_.posterior["coef"].std(("chain", "draw")).to_numpy()
    chance = np.sqrt(np.maximum(1.0 - sd_full**2 / sd**2, 0.0))
    return (ours.coef_ - full.coef_) / sd, chance, full, ours, sd


def gap_section(complete, masked, y) -> tuple[str, object]:
    """The gap table on the benchmark's data, the same on seeds 1-4, and a summary over
    seeds 0-19; returns the text and the masked fit."""
    gap, chance, full, ours, sd = coefficient_gaps(complete, masked, y)
    text = "## Coefficients against the complete-data fit\n\n"
    text += markdown_table(
        ["feature", "true", "complete data", "masked data", "posterior sd", "gap (sds)"],
        [
            [f, f"{t:.2f}", f"{a:.4f}", f"{b:.4f}", f"{s:.4f}", f"{g:+.2f}"]
            for f, t, a, b, s, g in zip(
                FEATURES, COEF, full.coef_, ours.coef_, sd, gap, strict=True
            )
        ],
    )
    by_seed = [coefficient_gaps(*simulate(20_000, 200, seed=s)[:3])[:2] for s in range(20)]
    rows = [["0", *(f"{g:+.2f}" for g in gap), *(f"{c:.2f}" for c in chance)]]
    for seed in range(1, 5):
        more, more_chance = by_seed[seed]
        rows.append([str(seed), *(f"{g:+.2f}" for g in more), *(f"{c:.2f}" for c in more_chance)])
    text += "\nThe same on five data sets, beside the gap's sd expected by chance alone:\n\n"
    text += markdown_table(
        ["seed", *(f"gap {f}" for f in FEATURES), *(f"chance sd {f}" for f in FEATURES)], rows
    )
    gaps = np.array([gaps for gaps, _ in by_seed])
    within = np.mean(np.abs(gaps) < 0.25, axis=0)
    text += (
        "\nOver twenty data sets (seeds 0-19) the gaps average "
        + ", ".join(f"{m:+.2f}" for m in gaps.mean(axis=0))
        + " (a, b, c) with sds "
        + ", ".join(f"{s:.2f}" for s in gaps.std(axis=0))
        + ": no systematic gap, the chance spread above; "
        + ", ".join(f"{w:.0%}" for w in within)
        + " of them fall within 0.25 sd.\n"
    )
    return text, ours


def bias_section(n_rows: int = 20_000, n_sets: int = 10) -> str:
    """Coefficient bias and error under missing at random, over ``n_sets`` data sets: ours
    against complete-case analysis (the same model on the rows without a missing cell)."""
    rows = []
    for given in ("a", "y"):
        ours, complete_case, share = [], [], []
        for seed in range(n_sets):
            _, masked, y, mask = simulate(n_rows, 200, seed=100 + seed, missing_given=given)
            kept = ~mask.any(axis=1)
            ours.append(RandomInterceptRegressor(random_state=0).fit(masked, y).coef_ - COEF)
            case = RandomInterceptRegressor(random_state=0).fit(masked[kept], y[kept])
            complete_case.append(case.coef_ - COEF)
            share.append(np.mean(mask[:, 2]))
        for name, error in (("ours", np.array(ours)), ("complete-case", np.array(complete_case))):
            bias = error.mean(axis=0)
            rows.append(
                [
                    f"c missing given {given} ({np.mean(share):.0%} of its cells)",
                    name,
                    *(f"{b:+.4f}" for b in bias),
                    f"{np.sqrt(np.mean(bias**2)):.4f}",
                    f"{np.sqrt(np.mean(error**2)):.4f}",
                ]
            )
    return markdown_table(
        [
            "missingness",
            "fit",
            *(f"bias {f}" for f in FEATURES),
            "root mean square bias",
            "root mean square error",
        ],
        rows,
    )


def timing_section() -> str:
    rows = []
    for n_rows in (20_000, 37_000):
        c, m, yy, _ = simulate(n_rows, 200, seed=1)
        RandomInterceptRegressor(random_state=0, max_iter=200).fit(c.iloc[:500], yy[:500])
        RandomInterceptRegressor(random_state=0, method="advi", max_iter=200).fit(
            m.iloc[:500], yy[:500]
        )
        without = warm_fit_seconds(c, yy)
        with_missing = warm_fit_seconds(m, yy)
        advi = warm_fit_seconds(m, yy, method="advi")
        rows.append(
            [
                f"{n_rows:,}",
                f"{without:.3f}",
                f"{with_missing:.2f}",
                f"{with_missing / without:.0f}x",
                f"{advi:.2f}",
                f"{advi / with_missing:.1f}x",
            ]
        )
    return markdown_table(
        [
            "rows",
            "complete data",
            "20% cells missing (Gibbs)",
            "ratio",
            "missing, method='advi'",
            "ADVI / Gibbs",
        ],
        rows,
    )


def nuts_section(masked, y) -> str:
    """The sampler's posterior against NUTS on the same model (effects centred)."""
    import pymc as pm

    seen = {}
    sampler = models.missing_gibbs_draws

    def spy(data, n_draws, seed, verbose=0):
        draws, n_iter = sampler(data, n_draws, seed, verbose)
        seen["data"], seen["draws"] = data, {k: np.copy(v) for k, v in draws.items()}
        return draws, n_iter

    models.missing_gibbs_draws = spy
    start = time.perf_counter()
    RandomInterceptRegressor(random_state=0, n_posterior_samples=2000).fit(masked, y)
    ours_seconds = time.perf_counter() - start
    models.missing_gibbs_draws = sampler
    with models.build_missing_model({**seen["data"], "centred_0": np.asarray(1.0)}):
        start = time.perf_counter()
        trace = pm.sample(1000, tune=1000, chains=2, random_seed=1, progressbar=False)
        nuts_seconds = time.perf_counter() - start
    rows = []
    for name in ["alpha", "beta", "sigma", "sigma_group_0", "feature_mean"]:
        values = trace.posterior[name].values
        reference = values.reshape(values.shape[0] * values.shape[1], -1)
        ours = seen["draws"][name].reshape(len(seen["draws"][name]), -1)
        for j in range(reference.shape[1]):
            sd = reference[:, j].std()
            rows.append(
                [
                    name if reference.shape[1] == 1 else f"{name}[{j}]",
                    f"{(ours[:, j].mean() - reference[:, j].mean()) / sd:+.2f}",
                    f"{ours[:, j].std() / sd:.2f}",
                ]
            )
    text = (
        f"Standardised scale; ours: 2,000 draws in {ours_seconds:.1f} s; NUTS: 2 x 1,000 "
        f"draws in {nuts_seconds:.0f} s ({nuts_seconds / ours_seconds:.0f}x).\n\n"
    )
    return text + markdown_table(["parameter", "mean gap (NUTS sds)", "sd ratio"], rows)


def main() -> None:
    warnings.simplefilter("ignore")
    n_train, n_test = 20_000, 5_000
    complete, masked, y, mask = simulate(n_train + n_test, 200, seed=0)
    train, test = slice(0, n_train), slice(n_train, None)
    gaps, ours = gap_section(complete[train], masked[train], y[train])
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

    text = "# Missing feature values\n\n" + __doc__.split("\n\n", 1)[1] + "\n"
    text += gaps
    text += (
        f"\n90% intervals of the {int(cells.sum()):,} masked training cells cover "
        f"{cell_coverage:.3f} of their true values.\n\n"
    )
    text += f"## Held-out rows with a missing cell ({int(incomplete.sum()):,})\n\n"
    text += markdown_table(["model", "MAE", "90% coverage", "mean 90% width"], rows)
    text += "\n## Missing at random: coefficient bias against the truth\n\n"
    text += bias_section()
    text += "\n## Warm fit time (seconds, one run each)\n\n"
    text += timing_section()
    if "--nuts" in sys.argv:
        text += "\n## Against NUTS (masked training rows)\n\n"
        text += nuts_section(masked[train], y[train])
    write_result("missing.md", text)


if __name__ == "__main__":
    main()
