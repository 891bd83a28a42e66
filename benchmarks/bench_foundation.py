"""Foundation benchmark: check_estimator time, warm and first-fit time, grid search and the
neural network, each against a reference measured in the same run.

* ``check_estimator`` on each estimator against the same checks on a naive estimator
  that builds a fresh ``pm.Model`` and calls ``pm.fit`` on every fit.
* A warm fit on 37,000 x 3 rows against ``sklearn.linear_model.BayesianRidge``.
* At the seed's size (Zillow-like data cleaned as in the study, the 50/50 split's training
  half: about 35,000 rows x 3 features, 388 of the 390 zip codes), ``import skbayes_re``
  plus the first fit of each estimator in a fresh process, first with an empty PyTensor
  compile cache, then with the cache that run filled, against gpboost's import plus first
  fit of the same random-intercept model in a fresh process (best of 3).
* ``RandomEffectsMLPRegressor(weights="map")``'s warm fit time and validation MAE against
  ``sklearn.neural_network.MLPRegressor`` with one hidden layer of 5 tanh units on
  standardised features.
* A ``GridSearchCV`` of ``RandomInterceptRegressor`` (8 candidates, 5 folds, 2 jobs) in a
  fresh process with a filled compile cache, against a fresh process that fits and predicts
  gpboost's ``GPModel`` 40 times (8 settings x 5 folds); both times include the imports.

Run: ``python benchmarks/bench_foundation.py`` (about ten minutes on two cores) or
``python benchmarks/bench_foundation.py --quick`` (fewer repeats, no check_estimator
section; about three minutes). Writes ``benchmarks/results/foundation.md``.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import markdown_table, run_in_fresh_process, timed, write_result
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import BayesianRidge
from sklearn.metrics import mean_absolute_error
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator
from sklearn.utils.validation import check_is_fitted, validate_data

from skbayes_re import BayesianLinearRegressor, RandomEffectsMLPRegressor, RandomInterceptRegressor
from skbayes_re.datasets import SEED_FEATURES, clean_zillow, make_zillow_like

NAIVE_ITERATIONS = 3000
GROUP = "region_zip"
GPBOOST_REPEATS = 3
PRIOR_SCALES = [1.0, 2.5, 5.0, 10.0]
TOLERANCES = [1e-4, 1e-3]
CV_FOLDS = 5


@dataclass(frozen=True)
class Plan:
    """How many times each measurement is repeated (the best time is kept)."""

    first_fit_repeats: int
    warm_fit_repeats: int
    mlp_repeats: int
    check_estimator: bool


FULL = Plan(first_fit_repeats=2, warm_fit_repeats=5, mlp_repeats=3, check_estimator=True)
QUICK = Plan(first_fit_repeats=1, warm_fit_repeats=2, mlp_repeats=1, check_estimator=False)


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


def seed_split():
    """The study's cleaned Zillow-like data split 50/50: (train, validation)."""
    data = clean_zillow(make_zillow_like(random_state=0))
    train = data.sample(frac=0.5, random_state=0)
    return train, data.drop(train.index)


def save_training_arrays(train, path: Path) -> Path:
    """The training half as plain arrays, for fresh processes to load after their imports."""
    np.savez(
        path,
        X=train[SEED_FEATURES].to_numpy(),
        zip=train[GROUP].to_numpy(dtype=np.int64),
        zip_categories=train[GROUP].cat.categories.to_numpy(dtype=np.int64),
        y=train["logerror"].to_numpy(),
    )
    return path


def run_child(code: str, compiledir: str | None = None) -> list[float]:
    """Run ``code`` in a fresh interpreter; the numbers on the last line it printed."""
    try:
        out = run_in_fresh_process(code, False, compiledir)
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"child process failed:\n{error.stderr[-3000:]}") from error
    return [float(value) for value in out.strip().splitlines()[-1].split()]


LOAD_FRAME = """
import numpy as np
import pandas as pd
arrays = np.load("{data}")
X = pd.DataFrame(arrays["X"], columns={features!r})
X["{group}"] = pd.Categorical(arrays["zip"], categories=arrays["zip_categories"])
y = arrays["y"]
"""
LOAD_ARRAYS = """
import numpy as np
arrays = np.load("{data}")
groups = arrays["zip"].astype(str)
exog = np.column_stack([np.ones(len(groups)), arrays["X"]])
y = arrays["y"]
"""
OUR_FIRST_FIT = """
import time
start = time.perf_counter()
from skbayes_re import {estimator}
imported = time.perf_counter()
{load}
if "{estimator}" == "BayesianLinearRegressor":
    X = X.drop(columns="{group}")
    kwargs = dict()
else:
    kwargs = dict(groups=["{group}"])
fit_start = time.perf_counter()
model = {estimator}(random_state=0, **kwargs).fit(X, y)
print(imported - start, time.perf_counter() - fit_start, model.fit_timings_["compile"])
"""
GPBOOST_FIRST_FIT = """
import time
start = time.perf_counter()
import gpboost as gpb
imported = time.perf_counter()
{load}
fit_start = time.perf_counter()
gpb.GPModel(group_data=groups, likelihood="gaussian").fit(y=y, X=exog)
print(imported - start, time.perf_counter() - fit_start)
"""
OUR_GRID_SEARCH = """
import time
start = time.perf_counter()
from sklearn.model_selection import GridSearchCV
from skbayes_re import RandomInterceptRegressor
{load}
search = GridSearchCV(
    RandomInterceptRegressor(groups=["{group}"], random_state=0),
    {{"prior_scale": {prior_scales!r}, "tol": {tolerances!r}}},
    cv={folds},
    n_jobs=2,
    scoring="neg_mean_absolute_error",
).fit(X, y)
print(time.perf_counter() - start, -search.best_score_)
"""
GPBOOST_GRID_LOOP = """
import time
start = time.perf_counter()
import gpboost as gpb
from sklearn.model_selection import KFold
{load}
errors = []
for _setting in range({settings}):
    for fit_rows, test_rows in KFold({folds}).split(exog):
        model = gpb.GPModel(group_data=groups[fit_rows], likelihood="gaussian")
        model.fit(y=y[fit_rows], X=exog[fit_rows])
        mu = model.predict(group_data_pred=groups[test_rows], X_pred=exog[test_rows])["mu"]
        errors.append(np.mean(np.abs(mu - y[test_rows])))
print(time.perf_counter() - start, np.mean(errors))
"""
FIRST_FIT_ESTIMATORS = [
    "BayesianLinearRegressor",
    "RandomInterceptRegressor",
    "RandomEffectsMLPRegressor",
]


def child_code(template: str, loader: str, data: Path, **fields) -> str:
    """A child script: ``template`` with ``loader`` (reading ``data``) as its data block."""
    load = loader.format(data=data.as_posix(), features=SEED_FEATURES, group=GROUP)
    return template.format(load=load, group=GROUP, **fields)


def compile_cache(workdir: Path, estimator: str, repeat: int) -> Path:
    """The PyTensor compile cache of one estimator's cold-then-warm pair of fresh processes."""
    return workdir / f"cache-{estimator}-{repeat}"


def best_of(runs: list[list[float]]) -> list[float]:
    """The run with the smallest total time (the sum of its first two numbers)."""
    return min(runs, key=lambda run: run[0] + run[1])


def gpboost_first_fit(data: Path) -> list[float]:
    """gpboost's (import, first fit) seconds in a fresh process, best of a few."""
    code = child_code(GPBOOST_FIRST_FIT, LOAD_ARRAYS, data)
    return best_of([run_child(code) for _ in range(GPBOOST_REPEATS)])


def our_first_fits(estimator: str, data: Path, workdir: Path, repeats: int):
    """Best (import, fit, compile) of fresh processes with an empty cache and, after each,
    of a fresh process finding the cache that run filled."""
    code = child_code(OUR_FIRST_FIT, LOAD_FRAME, data, estimator=estimator)
    cold, warm = [], []
    for repeat in range(repeats):
        cache = str(compile_cache(workdir, estimator, repeat))
        cold.append(run_child(code, cache))
        warm.append(run_child(code, cache))
    return best_of(cold), best_of(warm)


def first_fit_row(estimator: str, label: str, run: list[float], gpboost_total: float) -> list:
    imported, fit, compiled = run
    ratio = (imported + fit) / gpboost_total
    return [estimator, label, f"{imported:.1f}", f"{fit:.1f}", f"{compiled:.1f}", f"{ratio:.1f}"]


def first_fit_rows(data: Path, workdir: Path, repeats: int) -> list[list]:
    """Each estimator's import plus first fit in fresh processes (cold cache, then the cache
    the cold run filled) beside gpboost's, as ratios of import plus first fit."""
    gpb_import, gpb_fit = gpboost_first_fit(data)
    gpboost_total = gpb_import + gpb_fit
    rows = []
    for estimator in FIRST_FIT_ESTIMATORS:
        cold, warm = our_first_fits(estimator, data, workdir, repeats)
        rows.append(first_fit_row(estimator, "empty (cold)", cold, gpboost_total))
        rows.append(first_fit_row(estimator, "filled by the cold run (warm)", warm, gpboost_total))
    gpboost_row = [f"{gpb_import:.1f}", f"{gpb_fit:.1f}", "-", "1"]
    rows.append(["gpboost GPModel (random intercept)", "-", *gpboost_row])
    return rows


def grid_search_rows(data: Path, workdir: Path) -> list[list]:
    """Our grid search in a fresh process against gpboost's 40 fits. Ours finds the cache that
    the random-intercept model's cold first fit filled, so this runs after ``first_fit_rows``."""
    settings = len(PRIOR_SCALES) * len(TOLERANCES)
    ours_code = child_code(
        OUR_GRID_SEARCH,
        LOAD_FRAME,
        data,
        prior_scales=PRIOR_SCALES,
        tolerances=TOLERANCES,
        folds=CV_FOLDS,
    )
    filled = str(compile_cache(workdir, "RandomInterceptRegressor", 0))
    ours, ours_mae = run_child(ours_code, filled)
    gpb_code = child_code(GPBOOST_GRID_LOOP, LOAD_ARRAYS, data, settings=settings, folds=CV_FOLDS)
    gpb, gpb_mae = run_child(gpb_code)
    fits = f"{settings} x {CV_FOLDS}"
    return [
        ["ours: GridSearchCV(RandomInterceptRegressor), n_jobs=2", fits, f"{ours:.1f}",
         f"{ours / gpb:.2f}", f"{ours_mae:.5f}"],
        ["gpboost GPModel in a loop", fits, f"{gpb:.1f}", "1", f"{gpb_mae:.5f}"],
    ]  # fmt: skip


def sklearn_mlp():
    return make_pipeline(
        StandardScaler(),
        MLPRegressor(hidden_layer_sizes=(5,), activation="tanh", random_state=0),
    )


def fit_and_score(model, columns, train, val, repeats: int) -> tuple[float, float]:
    """Best fit seconds over ``repeats`` and the validation MAE."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted, seconds = timed(model.fit, train[columns], train["logerror"], repeat=repeats)
    return seconds, mean_absolute_error(val["logerror"], fitted.predict(val[columns]))


def mlp_rows(train, val, repeats: int) -> list[list]:
    """Our MLP (map weights) warm in-process fit against sklearn's MLPRegressor."""
    ours_columns = [*SEED_FEATURES, GROUP]
    ours = RandomEffectsMLPRegressor(groups=[GROUP], weights="map", random_state=0)
    ours.fit(train[ours_columns].iloc[:2000], train["logerror"].iloc[:2000])  # compile only
    our_seconds, our_mae = fit_and_score(ours, ours_columns, train, val, repeats)
    seconds, mae = fit_and_score(sklearn_mlp(), SEED_FEATURES, train, val, repeats)
    return [
        ['ours: RandomEffectsMLPRegressor(weights="map")', f"{our_seconds:.2f}",
         f"{our_seconds / seconds:.2f}", f"{our_mae:.5f}", f"{our_mae / mae:.3f}"],
        ["sklearn MLPRegressor((5,), tanh), scaled X", f"{seconds:.2f}", "1", f"{mae:.5f}", "1"],
    ]  # fmt: skip


def check_estimator_section() -> str:
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
    return "## check_estimator wall time\n\n" + markdown_table(
        ["estimator", "seconds", "ratio to naive"],
        [
            *(
                [name, f"{seconds:.1f}", f"{seconds / check_naive:.3f}"]
                for name, seconds in check_seconds.items()
            ),
            [f"naive pm.Model + pm.fit({NAIVE_ITERATIONS}) per fit", f"{check_naive:.1f}", "1"],
        ],
    )


def warm_linear_section(repeats: int) -> str:
    X, y = seed_sized_data()
    BayesianLinearRegressor(random_state=0).fit(X, y)  # compile once (warm from here on)
    model, ours = timed(BayesianLinearRegressor(random_state=0).fit, X, y, repeat=repeats)
    _, ridge = timed(BayesianRidge().fit, X, y, repeat=repeats)
    return f"## Warm fit, 37,000 x 3 rows (best of {repeats})\n\n" + markdown_table(
        ["estimator", "seconds", "ratio to BayesianRidge", "ADVI steps"],
        [
            ["BayesianLinearRegressor", f"{ours:.3f}", f"{ours / ridge:.1f}", model.n_iter_],
            ["sklearn BayesianRidge", f"{ridge:.4f}", "1", "-"],
        ],
    )


def first_fit_section(train, data: Path, workdir: Path, repeats: int) -> str:
    text = "## Import plus first fit in a fresh process, against gpboost\n\n"
    text += (
        f"Seed data: {len(train):,} training rows x {len(SEED_FEATURES)} features, "
        f"{train[GROUP].nunique()} zip codes (the linear model without them). Ours best of "
        f"{repeats} per cache state; gpboost best of {GPBOOST_REPEATS}, fitting "
        '`GPModel(group_data=zip, likelihood="gaussian")` with a constant column in X. '
        "Ratio to gpboost = (import + first fit) / gpboost's (import + first fit).\n\n"
    )
    header = [
        "estimator",
        "PyTensor cache",
        "import seconds",
        "first fit seconds",
        "of which compile",
        "ratio to gpboost",
    ]
    return text + markdown_table(header, first_fit_rows(data, workdir, repeats))


def mlp_section(train, val, repeats: int) -> str:
    text = "\n## Neural network, warm in-process fit on the seed data\n\n"
    text += (
        f"Training on {len(train):,} rows, validation MAE on the other {len(val):,}; "
        f"fit seconds best of {repeats}. Ours uses the zip codes, sklearn's does not; "
        "its target is left as is and it keeps its defaults otherwise (adam, max_iter=200).\n\n"
    )
    header = ["model", "fit seconds", "time ours / sklearn", "validation MAE", "MAE ours / sklearn"]
    return text + markdown_table(header, mlp_rows(train, val, repeats))


def grid_search_section(data: Path, workdir: Path) -> str:
    text = "\n## Grid search in a fresh process, against gpboost\n\n"
    text += (
        f"`prior_scale` in {PRIOR_SCALES} x `tol` in {TOLERANCES}, {CV_FOLDS}-fold CV on the "
        "training half, scored by MAE; ours starts with the compile cache a first fit filled. "
        "gpboost's REML model has no prior to vary, so its loop fits the same model 8 times "
        "per fold. Both times include the imports.\n\n"
    )
    header = ["run", "settings x folds", "seconds", "ratio to gpboost", "CV MAE (best)"]
    return text + markdown_table(header, grid_search_rows(data, workdir))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats, no check_estimator section"
    )
    return parser.parse_args()


def main():
    plan = QUICK if parse_args().quick else FULL
    train, val = seed_split()
    text = "# Foundation benchmark\n\n"
    text += f"Machine: {platform.processor() or platform.machine()}, Python "
    text += f"{platform.python_version()}. Ratios are ours / theirs, measured in one run"
    text += " (quick run: fewer repeats).\n\n" if plan is QUICK else ".\n\n"
    if plan.check_estimator:
        text += check_estimator_section() + "\n"
    text += warm_linear_section(plan.warm_fit_repeats) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data = save_training_arrays(train, workdir / "train.npz")
        text += first_fit_section(train, data, workdir, plan.first_fit_repeats)
        text += mlp_section(train, val, plan.mlp_repeats)
        text += grid_search_section(data, workdir)
    write_result("foundation.md", text)


if __name__ == "__main__":
    main()
