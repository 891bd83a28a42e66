"""Never silently wrong: properties every estimator keeps on unusual input.

1. Over random shapes (1-200 rows, 0-4 features), grouping layouts (0-2 grouping columns of
   1-30 levels, balanced, unbalanced, with singleton groups, all singletons), label types
   (int, float, str, categorical, mixed int and str, any of them with missing labels),
   scales (each column and the target multiplied by 1e-6..1e6, some shifted by 1e6), column
   orders, DataFrames and arrays, and a NaN or inf placed in a feature or the target: a fit
   either raises a ``ValueError`` that names the culprit (the column, ``X`` or ``y``), or
   gives finite predictions, intervals and draws of the right shape, for seen, unseen and
   missing labels alike.
2. Over repeated small well-posed problems (30-200 rows from a known linear model, with
   random intercepts or slopes for the grouped estimators): the 90% predictive intervals
   cover fresh draws 80-97% of the time on average, for seen and for unseen groups.
3. A learning rate too large to converge is an error or a warning, never a silent misfit.

Hypothesis runs derandomized (the same examples on every run). Every fit is small
(``max_iter=2000``, 200 posterior draws) and the examples use few model structures (each one
is compiled once per process): the file takes about 90 s on two cores once the compile cache
is warm. Sub-cases that fail on defects known and not fixed yet are marked ``xfail`` with the
reason, so that they report XPASS once fixed.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pymc  # noqa: F401  (raises the recursion limit on import: before Hypothesis runs)
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbayes_re import (
    BayesianLinearRegressor,
    RandomEffectsMLPRegressor,
    RandomEffectsRegressor,
    RandomInterceptRegressor,
)

KINDS = ["linear", "intercepts", "slopes", "network"]
# NaN features are refused here ("error"): these properties are about input validation;
# missing_features="model" is tested in test_missing.py.
SMALL_FIT = {
    "max_iter": 2000,
    "n_posterior_samples": 200,
    "random_state": 0,
    "missing_features": "error",
}
MISSING = -1  # the code of a missing label


def make_estimator(kind: str, groups=None, random_slopes=None):
    if kind == "linear":
        return BayesianLinearRegressor(**SMALL_FIT)
    if kind == "intercepts":
        return RandomInterceptRegressor(groups=groups, **SMALL_FIT)
    if kind == "slopes":
        return RandomEffectsRegressor(groups=groups, random_slopes=random_slopes, **SMALL_FIT)
    return RandomEffectsMLPRegressor(groups=groups, **SMALL_FIT)


# ----------------------------------------------------------------------------------------
# Property 1: a named error, or finite predictions of the right shape
# ----------------------------------------------------------------------------------------

LABEL_TYPES = ["int", "float", "str", "category", "mixed"]
LAYOUTS = ["balanced", "unbalanced", "some singletons", "all singletons"]
CORRUPTIONS = ["nan in X", "inf in X", "nan in y", "inf in y"]


def group_codes(rng, n_rows: int, levels: int, layout: str) -> np.ndarray:
    """Group code per row for a layout (codes need not be contiguous)."""
    if layout == "all singletons":
        return np.arange(n_rows)
    if layout == "balanced":
        return rng.permutation(np.arange(n_rows) % levels)
    weights = 1.0 / np.arange(1, levels + 1) ** 2
    codes = rng.choice(levels, size=n_rows, p=weights / weights.sum())
    if layout == "some singletons":
        tail = min(3, n_rows)
        codes[n_rows - tail :] = levels + np.arange(tail)  # groups of one row each
    return codes


def as_labels(codes: np.ndarray, label_type: str):
    """Group labels of a type for codes (``MISSING`` -> None/NaN), as a DataFrame column."""
    missing = codes == MISSING
    if label_type == "float":
        return np.where(missing, np.nan, codes + 0.5)
    if label_type == "int":
        if not missing.any():
            return codes + 100
        labels = [None if m else int(c) + 100 for c, m in zip(codes, missing, strict=True)]
        return np.array(labels, dtype=object)
    if label_type == "category":
        return pd.Categorical([None if m else f"c{c}" for c, m in zip(codes, missing, strict=True)])
    if label_type == "str":
        labels = [None if m else f"g{c}" for c, m in zip(codes, missing, strict=True)]
        return np.array(labels, dtype=object)
    # mixed: ints and strings in one column; missing labels alternate None and NaN
    values = [
        (None if c % 2 else np.nan) if m else (int(c) if c % 2 else f"m{c}")
        for c, m in zip(codes, missing, strict=True)
    ]
    return np.array(values, dtype=object)


def partition(codes: np.ndarray) -> np.ndarray:
    """Canonical group index per row, a missing label being a group of its own (as the
    estimators treat it): two columns split the rows alike when these are equal."""
    keys = [("missing", i) if c == MISSING else ("group", c) for i, c in enumerate(codes)]
    _, first = np.unique([str(k) for k in keys], return_inverse=True)
    order = {}
    return np.array([order.setdefault(v, len(order)) for v in first])


class Problem:
    """An estimator, its training data and rows to predict; ``culprits`` are the patterns
    one of which a ``ValueError`` must contain (empty: the fit must succeed)."""

    def __init__(self, estimator, X, y, X_new, culprits: list[str], description: str):
        self.estimator, self.X, self.y, self.X_new = estimator, X, y, X_new
        self.culprits, self.description = culprits, description

    def __repr__(self) -> str:  # what Hypothesis prints of a failing example
        return f"Problem({self.description}; culprits {self.culprits})"


@st.composite
def problems(draw, kind: str) -> Problem:
    n_rows = draw(st.integers(1, 200))
    n_factors = 0 if kind == "linear" else draw(st.integers(0, 2))
    n_features = draw(st.integers(0, 4))
    # no column at all: an empty array here (an empty DataFrame: test_empty_frame_names_x)
    frame = draw(st.sampled_from([True, True, False])) if n_factors or n_features else False
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    # features and target: a linear signal plus group effects plus noise, then rescaled
    exponents = draw(st.lists(st.integers(-6, 6), min_size=n_features, max_size=n_features))
    shifts = draw(st.lists(st.sampled_from([0.0, 1e6]), min_size=n_features, max_size=n_features))
    if kind == "slopes" and n_factors and n_features:
        shifts[0] = 0.0  # a shifted slope feature: test_random_slope_on_a_shifted_feature
    z = rng.normal(size=(n_rows, n_features))
    signal = z @ rng.normal(size=n_features) + rng.normal(size=n_rows)

    factors = []
    for k in range(n_factors):
        levels = draw(st.integers(1, 30))
        layout = draw(st.sampled_from(LAYOUTS))
        label_type = draw(st.sampled_from(LABEL_TYPES if frame else ["int", "float"]))
        codes = group_codes(rng, n_rows, levels, layout)
        signal = signal + rng.normal(size=codes.max() + 1)[codes]
        if frame and draw(st.booleans()):
            share = draw(st.sampled_from([0.1, 0.5, 1.0]))  # of labels missing
            codes = np.where(rng.random(n_rows) < share, MISSING, codes)
        factors.append((f"g{k}", codes, label_type))
    y_exponent = draw(st.integers(-6, 6))
    y = signal * 10.0**y_exponent + draw(st.sampled_from([0.0, 1e6]))
    x = z * 10.0 ** np.array(exponents, dtype=float) + np.array(shifts)

    columns = {f"x{j}": x[:, j] for j in range(n_features)}
    columns.update({name: as_labels(codes, t) for name, codes, t in factors})
    order = draw(st.permutations(list(columns)))
    names = [name for name, _, _ in factors]

    # rows to predict: training rows, and a row of unseen labels (and one of missing labels)
    new_codes = {
        name: np.r_[codes[:3], 10**6, MISSING][: min(n_rows, 3) + 1 + frame]
        for name, codes, _ in factors
    }
    n_new = min(n_rows, 3) + (1 + frame if factors else 0)
    new_columns = {f"x{j}": np.resize(x[:, j], n_new) for j in range(n_features)}
    new_columns.update({name: as_labels(new_codes[name], t) for name, _, t in factors})

    def named(name: str) -> str:  # how a message names a column: 'g0', or its position
        return repr(name) if frame else rf"\bcolumns?\b[^.]*\b{order.index(name)}\b"

    culprits = []
    corruption = draw(st.sampled_from(["none"] * 4 + CORRUPTIONS)) if frame else "none"
    row = draw(st.integers(0, n_rows - 1))
    if corruption.endswith("in X") and n_features:
        column = f"x{draw(st.integers(0, n_features - 1))}"
        columns[column] = columns[column].copy()
        columns[column][row] = np.nan if corruption.startswith("nan") else -np.inf
        culprits += [r"\bX\b", named(column)]
    elif corruption.endswith("in y"):
        y = y.copy()
        y[row] = np.nan if corruption.startswith("nan") else np.inf
        culprits += [r"\by\b"]
    else:
        corruption = "none"
    # input that is refused whatever the values: no column at all, a grouping column without
    # labels, two grouping columns that split the rows alike
    if n_features == 0 and n_factors == 0:
        culprits += [r"0 feature\(s\)"]
    for name, codes, _ in factors:
        if np.all(codes == MISSING):
            culprits += [named(name)]
    if len(factors) == 2 and np.array_equal(partition(factors[0][1]), partition(factors[1][1])):
        culprits += [named(factors[0][0]), named(factors[1][0])]

    if frame:
        X = pd.DataFrame({name: columns[name] for name in order})
        X_new = pd.DataFrame({name: new_columns[name] for name in order})
        groups = names
        if factors and all(t in ("str", "category", "mixed") for *_, t in factors):
            groups = draw(st.sampled_from([names, "from_dtype"]))
        slope_key, slope_features = (names[:1], ["x0"]) if factors and n_features else ([], [])
    else:
        X = np.column_stack([columns[name] for name in order]) if order else np.empty((n_rows, 0))
        X_new = np.column_stack([new_columns[name] for name in order]) if order else None
        groups = [order.index(name) for name in names]
        slope_key = [order.index(names[0])] if factors and n_features else []
        slope_features = [order.index("x0")] if slope_key else []
    slopes = {slope_key[0]: slope_features} if slope_key else None
    estimator = make_estimator(kind, groups=groups, random_slopes=slopes)
    description = (
        f"{kind}, {n_rows} rows, {n_features} features, "
        f"{[(n, len(set(c)), t) for n, c, t in factors]}, frame={frame}, groups={groups!r}, "
        f"x 10^{exponents} + {shifts}, y 10^{y_exponent}, {corruption} at row {row}"
    )
    return Problem(estimator, X, y, X_new, culprits, description)


def check_named_error_or_finite(problem: Problem) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence, constant target, unseen labels
        try:
            problem.estimator.fit(problem.X, problem.y)
        except ValueError as error:
            message = str(error)
            assert problem.culprits, f"refused well-formed input: {message}"
            assert any(re.search(p, message) for p in problem.culprits), (
                f"the message names none of {problem.culprits}: {message}"
            )
            return
        assert not problem.culprits, f"accepted input that names {problem.culprits}"
        X_new, n_new = problem.X_new, len(problem.X_new)
        mean, std = problem.estimator.predict(X_new, return_std=True)
        bounds = problem.estimator.predict_interval(X_new, coverage=0.9)
        draws = problem.estimator.sample_y(X_new, n_samples=3, random_state=0)
    assert mean.shape == std.shape == (n_new,)
    assert bounds.shape == (n_new, 2) and draws.shape == (n_new, 3)
    for values in (mean, std, bounds, draws):
        assert np.all(np.isfinite(values))
    assert np.all(std >= 0.0)
    slack = 1e-9 * (1.0 + np.abs(mean))
    assert np.all(bounds[:, 0] <= mean + slack) and np.all(mean <= bounds[:, 1] + slack)


@pytest.mark.parametrize("kind", KINDS)
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_fit_names_the_culprit_or_predicts_finite_values(kind, data):
    check_named_error_or_finite(data.draw(problems(kind), label="problem"))


# Sub-cases checked on their own: error messages that name their culprit, and defects
# not fixed yet (marked xfail).


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_an_array_names_x(kind, bad):
    X = np.random.default_rng(0).normal(size=(20, 2))
    X[3, 1] = bad
    groups = None if kind == "linear" else []
    with pytest.raises(ValueError, match=r"\bX\b"):
        make_estimator(kind, groups=groups).fit(X, np.arange(20.0))


@pytest.mark.parametrize("kind", KINDS)
def test_empty_frame_names_x(kind):
    with pytest.raises(ValueError, match=r"\bX\b|0 feature\(s\)"):
        make_estimator(kind).fit(pd.DataFrame(index=range(20)), np.arange(20.0))


@pytest.mark.parametrize("kind", KINDS)
def test_text_feature_column_is_named(kind):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x0": rng.normal(size=20), "colour": ["a", "b"] * 10})
    X["g"] = np.arange(20) % 4
    groups = None if kind == "linear" else ["g"]
    with pytest.raises(ValueError, match="'colour'"):
        make_estimator(kind, groups=groups).fit(X, np.arange(20.0))


def test_random_slope_on_a_shifted_feature():
    """Features are standardised inside, so shifting a slope feature by a constant must not
    change the predictions. With x = 1e6 + 0.01 z the seen group's predictive sd moved by
    10% and an unseen group's variance draws went negative (NaN sd) while the effects were
    kept with the intercept at 0; they are now kept with it at the features' means."""
    rng = np.random.default_rng(0)
    group = rng.integers(0, 5, size=100)
    z = rng.normal(size=100)
    y = z + rng.normal(size=5)[group] + rng.normal(size=100)
    new_z, new_group = np.array([0.0, 1.0, 0.0, 1.0]), [0, 0, 99, 99]
    predictions = []
    for shift in (0.0, 1e6):
        X = pd.DataFrame({"x": shift + 0.01 * z, "g": group})
        model = make_estimator("slopes", groups=["g"], random_slopes={"g": ["x"]}).fit(X, y)
        new = pd.DataFrame({"x": shift + 0.01 * new_z, "g": new_group})
        predictions.append(np.concatenate(model.predict(new, return_std=True)))
    # measured: equal to 1e-7 at shift 1e3; 1e-4 at shift 1e4
    np.testing.assert_allclose(predictions[1], predictions[0], rtol=1e-3)


# ----------------------------------------------------------------------------------------
# Property 2: calibrated intervals on small well-posed problems
# ----------------------------------------------------------------------------------------


def well_posed_problem(seed: int, kind: str, n_rows: int | None = None):
    """Training rows of a known model (1-3 features, 5-15 groups with random intercepts,
    and random slopes on x0 for ``kind="slopes"``; no groups for ``"linear"``) and fresh
    draws of it: 400 rows of seen groups and 400 rows each of a new group."""
    rng = np.random.default_rng(seed)
    n_rows = n_rows or int(rng.integers(30, 201))
    n_features = int(rng.integers(1, 4))
    n_groups = 1 if kind == "linear" else int(rng.integers(5, 16))
    beta, noise = rng.normal(size=n_features), rng.uniform(0.3, 1.0)
    group_sd = 0.0 if kind == "linear" else rng.uniform(0.3, 1.5)
    slope_sd = rng.uniform(0.3, 1.0) if kind == "slopes" else 0.0

    def draw(groups, labels, intercepts, slopes):
        x = rng.normal(size=(len(groups), n_features))
        y = 1.0 + x @ beta + intercepts[groups] + slopes[groups] * x[:, 0]
        X = pd.DataFrame(x, columns=[f"x{j}" for j in range(n_features)])
        if kind != "linear":
            X["g"] = pd.Categorical(labels)
        return X, y + rng.normal(0.0, noise, len(groups))

    intercepts, slopes = rng.normal(0, group_sd, n_groups), rng.normal(0, slope_sd, n_groups)
    every = np.arange(n_groups)[: min(n_groups, n_rows)]  # each group in the data once
    groups = rng.permutation(np.r_[every, rng.integers(0, n_groups, n_rows - len(every))])
    train = draw(groups, groups, intercepts, slopes)
    seen = rng.integers(0, n_groups, 400)
    seen_rows = draw(seen, seen, intercepts, slopes)
    new = np.arange(400)  # each row a new group, with effects from the population
    new_rows = draw(new, new + 1000, rng.normal(0, group_sd, 400), rng.normal(0, slope_sd, 400))
    return train, seen_rows, new_rows


def coverage(model, X, y, level=0.9) -> float:
    bounds = model.predict_interval(X, coverage=level)
    return float(np.mean((bounds[:, 0] <= y) & (y <= bounds[:, 1])))


def mean_coverage(kind: str, seeds, n_rows=None) -> np.ndarray:
    """Mean 90% coverage over problems: of seen groups' rows, and of new groups' rows."""
    results = []
    for seed in seeds:
        (X, y), seen, new = well_posed_problem(seed, kind, n_rows)
        slopes = {"g": ["x0"]} if kind == "slopes" else None
        model = make_estimator(
            kind, groups=None if kind == "linear" else ["g"], random_slopes=slopes
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # new groups only: the unseen-labels warning
            model.fit(X, y)
            results.append([coverage(model, *seen), coverage(model, *new)])
    return np.mean(results, axis=0)


@pytest.mark.parametrize("kind", KINDS)
def test_intervals_cover_fresh_draws(kind):
    """12 problems of 30-200 rows. Measured: linear 0.91; intercepts 0.90 (seen groups),
    0.86 (new groups); slopes 0.89, 0.91; network 0.90, 0.86."""
    seen, new = mean_coverage(kind, seeds=range(12))
    assert 0.80 <= seen <= 0.97
    if kind != "linear":  # a new group of the linear model is just more rows
        assert 0.80 <= new <= 0.97


@pytest.mark.parametrize("n_rows", [3, 4, 5, 6])
@pytest.mark.parametrize("kind", KINDS)
def test_intervals_from_three_rows_are_never_too_narrow(kind, n_rows):
    """Defect 5: with three to six rows, intervals covered 0.15-0.66 for the linear model and
    0.04-0.71 for the others (the noise posterior collapsed). The fits are now the exact
    posterior (``_models/linear.py``, ``_models/few_rows.py``); with one or two residual
    degrees of freedom it is dominated by the weakly-informative priors and its intervals are
    wide. Measured over ten problems (seen groups, new groups) at 3, 4, 5, 6 rows: linear
    0.999, 0.908, 0.998, 0.912; intercepts and network 0.994, 0.976, 0.936, 0.982 (new
    groups within 0.004 of these); slopes 0.995, 0.992, 0.998, 0.974 (new within 0.004)."""
    seen, new = mean_coverage(kind, seeds=range(10), n_rows=n_rows)
    assert seen >= 0.87
    if kind != "linear":
        assert new >= 0.87


@pytest.mark.parametrize(
    "kind",
    [
        "linear",  # the exact noise posterior: no optimisation left to diverge
        "intercepts",  # measured: diverges, warns, refits at 0.5 (R^2 0.629 against 0.629)
        "slopes",  # measured: the same, refitted at 0.5
        "network",  # warns: implausible beside the linear model it contains
    ],
)
def test_a_large_learning_rate_is_not_silent(kind):
    """learning_rate=5.0 (with the default max_iter): an error naming learning_rate, or a
    fit as good as at the default rate (the Gaussian models restart at a tenth of the rate,
    with a warning), or for the network a warning."""
    (X, y), (X_test, y_test), _ = well_posed_problem(3, kind)
    groups = None if kind == "linear" else ["g"]
    slopes = {"g": ["x0"]} if kind == "slopes" else None
    reference = make_estimator(kind, groups=groups, random_slopes=slopes).fit(X, y)
    model = make_estimator(kind, groups=groups, random_slopes=slopes)
    model.set_params(learning_rate=5.0, max_iter=10_000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.fit(X, y)
        except (ValueError, FloatingPointError) as error:
            assert "learning_rate" in str(error)
            return
    warned = [w for w in caught if issubclass(w.category, UserWarning)]
    as_good = model.score(X_test, y_test) > reference.score(X_test, y_test) - 0.05
    assert as_good or (warned and kind == "network")
