"""Foundation benchmark: check_estimator time, warm and cold fit time, all side by side.

* ``check_estimator`` on each estimator against the same checks on a naive estimator
  that builds a fresh ``pm.Model`` and calls ``pm.fit`` on every fit.
* A warm fit on 37,000 x 3 rows against ``sklearn.linear_model.BayesianRidge``.
* A cold first fit in a fresh process with an empty PyTensor compile cache, against a warm
  first fit in a fresh process (cache on disk).

Run: ``python benchmarks/bench_foundation.py``; writes ``benchmarks/results/foundation.md``.
"""

from __future__ import annotations

import platform
import tempfile
import warnings

import numpy as np
from _common import markdown_table, run_in_fresh_process, timed, write_result
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import BayesianRidge
from sklearn.utils.estimator_checks import check_estimator
from sklearn.utils.validation import check_is_fitted, validate_data

from skbayes_re import BayesianLinearRegressor, RandomEffectsMLPRegressor, RandomInterceptRegressor

NAIVE_ITERATIONS = 3000


class NaivePyMCRegressor(RegressorMixin, BaseEstimator):
    """What a user would write by hand: a new PyMC model and ``pm.fit`` for every fit."""

    def __init__(self, n_iter=NAIVE_ITERATIONS, random_state=0):
        self.n_iter = n_iter
        self.random_state = random_state

    def fit(self, X, y):
        import logging

        import pymc as pm

        X, y = validate_data(self, X, y, y_numeric=True)
        logging.getLogger("pymc").setLevel(logging.ERROR)
        with pm.Model():
            data = pm.Data("X", X)
            alpha = pm.Normal("alpha", 0, 10)
            beta = pm.Normal("beta", 0, 10, shape=X.shape[1])
            sigma = pm.HalfNormal("sigma", 10)
            pm.Normal("y", alpha + data @ beta, sigma, observed=y)
            approx = pm.fit(self.n_iter, progressbar=False, random_seed=self.random_state)
        draws = approx.sample(200, random_seed=self.random_state).posterior
        self.coef_ = draws["beta"].mean(("chain", "draw")).to_numpy()
        self.intercept_ = float(draws["alpha"].mean())
        return self

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.intercept_ + X @ self.coef_


def time_check_estimator(estimator) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, seconds = timed(check_estimator, estimator)
    return seconds


def seed_sized_data(n=37_000, p=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * [1.0, 50.0, 0.01]
    y = 0.01 + X @ np.array([0.02, -0.0004, 3.0]) + 0.16 * rng.standard_t(4, size=n)
    return X, y


COLD_FIT = """
import time
start = time.perf_counter()
import numpy as np
import pandas as pd
from skbayes_re import BayesianLinearRegressor, RandomEffectsMLPRegressor, RandomInterceptRegressor
imported = time.perf_counter()
rng = np.random.default_rng(0)
X = pd.DataFrame(rng.normal(size=(37000, 3)), columns=["a", "b", "c"])
X["zip"] = pd.Categorical(rng.integers(0, 390, size=37000))
y = X[["a", "b", "c"]].to_numpy() @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=37000)
if "{estimator}" == "BayesianLinearRegressor":
    X = X.drop(columns="zip")
model = {estimator}(random_state=0).fit(X, y)
print(imported - start, time.perf_counter() - imported, model.fit_timings_["compile"])
"""
COLD_ESTIMATORS = [
    "BayesianLinearRegressor",
    "RandomInterceptRegressor",
    "RandomEffectsMLPRegressor",
]


def fresh_process_fit(estimator: str, compiledir: str) -> list[float]:
    code = COLD_FIT.replace("{estimator}", estimator)
    return [float(v) for v in run_in_fresh_process(code, False, compiledir).split()]


def first_fit_rows() -> list[list]:
    """Each estimator's first fit in a fresh process with an empty PyTensor cache of its own
    (cold: PyTensor's helpers and the step are compiled), then in a second fresh process
    that finds the cache the first one filled (warm: as a user's next session)."""
    rows = []
    for estimator in COLD_ESTIMATORS:
        with tempfile.TemporaryDirectory() as cache:
            for label in ("empty (cold)", "filled by the cold run (warm)"):
                imported, fit, compiled = fresh_process_fit(estimator, cache)
                rows.append([estimator, label, f"{imported:.1f}", f"{fit:.1f}", f"{compiled:.1f}"])
    return rows


def main():
    X, y = seed_sized_data()
    BayesianLinearRegressor(random_state=0).fit(X, y)  # compile once (warm from here on)
    model, ours = timed(BayesianLinearRegressor(random_state=0).fit, X, y, repeat=5)
    _, ridge = timed(BayesianRidge().fit, X, y, repeat=5)
    checked = {
        "BayesianLinearRegressor()": BayesianLinearRegressor(random_state=0),
        "RandomInterceptRegressor()": RandomInterceptRegressor(random_state=0),
        "RandomInterceptRegressor(groups=[0])": RandomInterceptRegressor(
            groups=[0], random_state=0
        ),
        "RandomEffectsMLPRegressor()": RandomEffectsMLPRegressor(random_state=0),
        'RandomEffectsMLPRegressor(weights="bayesian")': RandomEffectsMLPRegressor(
            weights="bayesian", random_state=0
        ),
    }
    check_seconds = {name: time_check_estimator(est) for name, est in checked.items()}
    check_naive = time_check_estimator(NaivePyMCRegressor())
    first_fits = first_fit_rows()
    text = "# Foundation benchmark\n\n"
    text += f"Machine: {platform.processor() or platform.machine()}, Python "
    text += f"{platform.python_version()}. Ratios are ours / theirs, measured in one run.\n\n"
    text += "## check_estimator wall time\n\n" + markdown_table(
        ["estimator", "seconds", "ratio to naive"],
        [
            *(
                [name, f"{seconds:.1f}", f"{seconds / check_naive:.3f}"]
                for name, seconds in check_seconds.items()
            ),
            [f"naive pm.Model + pm.fit({NAIVE_ITERATIONS}) per fit", f"{check_naive:.1f}", "1"],
        ],
    )
    text += "\n## Warm fit, 37,000 x 3 rows (best of 5)\n\n" + markdown_table(
        ["estimator", "seconds", "ratio to BayesianRidge", "ADVI steps"],
        [
            ["BayesianLinearRegressor", f"{ours:.3f}", f"{ours / ridge:.1f}", model.n_iter_],
            ["sklearn BayesianRidge", f"{ridge:.4f}", "1", "-"],
        ],
    )
    text += (
        "\n## First fit in a fresh process (37,000 x 3, 390 groups but for the linear model)\n\n"
    )
    text += markdown_table(
        ["estimator", "PyTensor cache", "import seconds", "first fit seconds", "of which compile"],
        first_fits,
    )
    write_result("foundation.md", text)


if __name__ == "__main__":
    main()
