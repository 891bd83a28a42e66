"""What every estimator gets from the shared base: grouping columns checked against each other,
a frame of grouping columns only, labels checked at predict, a constant target fitted at once,
and sample weights with scikit-learn's meaning."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skbayes_re import (
    BayesianLinearRegressor,
    RandomEffectsMLPRegressor,
    RandomEffectsRegressor,
    RandomInterceptRegressor,
)


@pytest.fixture(scope="module")
def grouped():
    """300 rows, 8 groups (integer labels, column 'g'), two features."""
    rng = np.random.default_rng(5)
    group = rng.integers(0, 8, size=300)
    x = rng.normal(size=(300, 2))
    y = 0.5 + x @ np.array([1.0, -2.0]) + rng.normal(0.0, 1.0, 8)[group]
    y = y + rng.normal(0.0, 0.3, size=300)
    return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "g": group}), y


# ----------------------------------------------------------------------------------------
# Grouping columns that alias each other
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alias",
    [lambda g: g, lambda g: np.array([f"s{v}" for v in g], dtype=object), lambda g: 7 - g],
    ids=["copy", "relabelled", "renumbered"],
)
def test_grouping_column_copying_another_is_refused(grouped, alias):
    X, y = grouped
    X = X.assign(g2=alias(X["g"].to_numpy()))
    with pytest.raises(ValueError, match="grouping columns 'g' and 'g2' define the same groups"):
        RandomInterceptRegressor(groups=["g", "g2"]).fit(X, y)
    with pytest.raises(ValueError, match="grouping columns 'g2' and 'g' define the same groups"):
        RandomEffectsRegressor(groups=["g2", "g"], random_slopes={"g": ["x0"]}).fit(X, y)


def test_grouping_column_named_twice_is_refused(grouped):
    X, y = grouped
    for groups in (["g", "g"], [2, 2], [2, -1]):
        with pytest.raises(ValueError, match="grouping column 'g' twice"):
            RandomInterceptRegressor(groups=groups).fit(X, y)
    array = np.column_stack([X["g"], X["g"] * 10.0, X[["x0", "x1"]]])
    with pytest.raises(ValueError, match="grouping columns 0 and 1 define the same groups"):
        RandomInterceptRegressor(groups=[0, 1]).fit(array, y)


def test_nearly_identical_grouping_columns_are_allowed(grouped):
    X, y = grouped
    near = X["g"].to_numpy().copy()
    near[0] = 99  # one row moved to a group of its own
    both = RandomInterceptRegressor(groups=["g", "g2"], random_state=0).fit(X.assign(g2=near), y)
    assert len(both.group_effects_["g"]) == 8 and len(both.group_effects_["g2"]) == 9
    assert both.score(X.assign(g2=near), y) > 0.95


# ----------------------------------------------------------------------------------------
# A frame holding grouping columns only
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "estimator", [RandomInterceptRegressor, RandomEffectsRegressor, RandomEffectsMLPRegressor]
)
def test_frame_of_grouping_columns_only_fits_intercepts(grouped, estimator):
    X, y = grouped
    frame = pd.DataFrame({"g": pd.Categorical(X["g"])})
    array = X[["g"]].to_numpy(dtype=float)
    by_frame = estimator(random_state=0, max_iter=2000).fit(frame, y)
    by_array = estimator(groups=[0], random_state=0, max_iter=2000).fit(array, y)
    assert_array_equal(by_frame.predict(frame), by_array.predict(array))
    assert_array_equal(by_frame.predict_interval(frame[:5]), by_array.predict_interval(array[:5]))
    effects = by_frame.group_effects_["g"]
    assert_array_equal(effects.to_numpy(), by_array.group_effects_[0].to_numpy())
    if estimator is not RandomEffectsMLPRegressor:  # intercepts that follow y's group means
        means = pd.Series(y).groupby(X["g"].to_numpy()).mean().loc[effects.index]
        assert np.corrcoef(effects.to_numpy(), means.to_numpy())[0, 1] > 0.999


# ----------------------------------------------------------------------------------------
# Labels at predict
# ----------------------------------------------------------------------------------------


def test_labels_of_another_type_at_predict_warn(grouped):
    X, y = grouped
    model = RandomInterceptRegressor(groups=["g"], random_state=0).fit(X, y)
    rows = X.iloc[:4]
    as_text = rows.assign(g=rows["g"].astype(str).astype(object))
    message = r"grouping column 'g'.*\[0, 1, 2, \.\.\.\] \(int\); given: \['\d', '\d', '\d'"
    with pytest.warns(UserWarning, match=message):
        mean = model.predict(as_text)
    assert_allclose(mean, model.intercept_ + rows[["x0", "x1"]].to_numpy() @ model.coef_)
    with pytest.warns(UserWarning, match="grouping column 'g'"):
        model.predict_interval(as_text)
    with pytest.warns(UserWarning, match="grouping column 'g'"):
        model.sample_y(as_text.assign(g=[None, "5", np.nan, "1"]), random_state=0)

    text_model = RandomInterceptRegressor(groups=["g"], random_state=0).fit(
        X.assign(g=X["g"].astype(str).astype(object)), y
    )
    with pytest.warns(UserWarning, match=r"\['0', '1', '2', \.\.\.\] \(str\); given: \[\d"):
        text_model.predict(rows)


def test_labels_partly_seen_or_all_missing_do_not_warn(grouped):
    X, y = grouped
    model = RandomInterceptRegressor(groups=["g"], random_state=0).fit(X, y)
    rows = X.iloc[:3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict(rows.assign(g=[99, 100, 3]))
        model.predict(rows.assign(g=pd.Series([None, np.nan, None], dtype=object)))


# ----------------------------------------------------------------------------------------
# A constant target
# ----------------------------------------------------------------------------------------

CONSTANT_CASES = {
    "linear": lambda: BayesianLinearRegressor(n_posterior_samples=50),
    "intercepts": lambda: RandomInterceptRegressor(groups=["g"], n_posterior_samples=50),
    "slopes": lambda: RandomEffectsRegressor(
        groups=["g"], random_slopes={"g": ["x0"]}, n_posterior_samples=50
    ),
    "network": lambda: RandomEffectsMLPRegressor(groups=["g"], n_posterior_samples=50),
    "bayesian network": lambda: RandomEffectsMLPRegressor(
        groups=["g"], weights="bayesian", n_posterior_samples=50
    ),
}


@pytest.mark.parametrize("case", list(CONSTANT_CASES))
def test_constant_target_is_fitted_at_once(grouped, case):
    X, _ = grouped
    model = CONSTANT_CASES[case]()
    if case == "linear":
        X = X[["x0", "x1"]]
    with pytest.warns(UserWarning, match=r"y is constant \(3\.7 in every row\)"):
        model.fit(X, np.full(len(X), 3.7))
    assert model.n_iter_ == 0 and model.loss_curve_ == []
    assert model.fit_timings_["optimise"] == 0.0
    assert model.sigma_ == 0.0

    new = X.iloc[:4]
    if case != "linear":
        new = new.assign(g=[0, 1, 99, None])  # seen, seen, unseen, missing
    mean, std = model.predict(new, return_std=True)
    assert_array_equal(mean, 3.7)
    assert_array_equal(std, 0.0)
    assert_array_equal(model.predict_interval(new, coverage=0.9), 3.7)
    assert_array_equal(model.sample_y(new, n_samples=3, random_state=0), 3.7)

    posterior = model.posterior_.posterior
    assert posterior["sigma"].shape == (1, 50)
    assert_array_equal(posterior["intercept"], 3.7)
    if hasattr(model, "coef_"):
        assert_array_equal(model.coef_, [0.0, 0.0])
    else:
        assert [coef.shape for coef in model.coefs_] == [(2, 5), (5, 1)]
        assert all(np.all(coef == 0.0) for coef in model.coefs_)
    if case != "linear":
        assert_array_equal(model.group_effects_["g"], 0.0)
        assert len(model.group_effects_["g"]) == 8
        assert_array_equal(model.group_sd_["g"], 0.0)
    if case == "slopes":
        assert_array_equal(model.group_cov_["g"], 0.0)
        assert_array_equal(model.group_corr_["g"], np.eye(2))


# ----------------------------------------------------------------------------------------
# Sample weights
# ----------------------------------------------------------------------------------------

WEIGHTED_CASES = {
    "linear": lambda: BayesianLinearRegressor(random_state=0),
    "intercepts": lambda: RandomInterceptRegressor(groups=["g"], random_state=0),
    "slopes": lambda: RandomEffectsRegressor(
        groups=["g"], random_slopes={"g": ["x0"]}, random_state=0
    ),
    "network": lambda: RandomEffectsMLPRegressor(groups=["g"], random_state=0, max_iter=2000),
}


def _posterior_summary(model) -> np.ndarray:
    """Posterior means of the noise sd, the group sds and the population mean function."""
    grid = pd.DataFrame({"x0": [-1.0, 0.0, 1.5], "x1": [0.5, -0.5, 2.0], "g": [0, 3, 99]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the batch may hold unseen groups only
        predicted = model.predict(grid[[c for c in grid if c in model.feature_names_in_]])
    group_sds = [np.ravel(sd) for sd in getattr(model, "group_sd_", {}).values()]
    return np.concatenate([[model.sigma_], *group_sds, predicted])


@pytest.mark.parametrize("case", list(WEIGHTED_CASES))
def test_integer_weights_equal_repeated_rows(grouped, case):
    X, y = grouped
    if case == "linear":
        X = X[["x0", "x1"]]
    weights = np.random.default_rng(1).integers(1, 4, size=len(X))
    repeated = np.repeat(np.arange(len(X)), weights)
    weighted = WEIGHTED_CASES[case]().fit(X, y, sample_weight=weights)
    copies = WEIGHTED_CASES[case]().fit(X.iloc[repeated], y[repeated])
    # the same statistics to rounding, the same seed: the same fit (measured: ~1e-13)
    assert_allclose(_posterior_summary(weighted), _posterior_summary(copies), rtol=1e-9)
    assert_allclose(weighted.predict(X), copies.predict(X), rtol=1e-9)
    # and not the unweighted fit
    unweighted = WEIGHTED_CASES[case]().fit(X, y)
    assert abs(unweighted.sigma_ - weighted.sigma_) > 1e-4


@pytest.mark.parametrize("case", list(WEIGHTED_CASES))
def test_zero_weight_equals_dropping_the_row(grouped, case):
    X, y = grouped
    if case == "linear":
        X = X[["x0", "x1"]]
    weights = np.ones(len(X))
    weights[::7] = 0.0
    if case != "linear":
        weights[X["g"].to_numpy() == 5] = 0.0  # group 5 only in rows of weight 0
    kept = weights > 0
    weighted = WEIGHTED_CASES[case]().fit(X, y, sample_weight=weights)
    dropped = WEIGHTED_CASES[case]().fit(X[kept], y[kept])
    assert_allclose(_posterior_summary(weighted), _posterior_summary(dropped), rtol=1e-9)
    if case != "linear":
        assert 5 not in weighted.group_effects_["g"].index  # unseen, as if absent
        assert list(weighted.group_effects_["g"].index) == [0, 1, 2, 3, 4, 6, 7]


def test_fractional_weights_scale_the_evidence(grouped):
    """Two copies of each row at weight 0.5 are the rows once; every row at 0.5 is half the
    evidence, so the coefficients' posterior sds grow by about sqrt(2)."""
    X, y = grouped
    once = RandomInterceptRegressor(groups=["g"], random_state=0).fit(X, y)
    twice = RandomInterceptRegressor(groups=["g"], random_state=0).fit(
        pd.concat([X, X]), np.r_[y, y], sample_weight=np.full(2 * len(X), 0.5)
    )
    assert_allclose(_posterior_summary(twice), _posterior_summary(once), rtol=1e-9)
    half = RandomInterceptRegressor(groups=["g"], random_state=0).fit(
        X, y, sample_weight=np.full(len(X), 0.5)
    )
    coef_sd = [
        m.posterior_.posterior["coef"].std(("chain", "draw")).to_numpy() for m in (once, half)
    ]
    assert_allclose(coef_sd[1] / coef_sd[0], np.sqrt(2.0), rtol=0.05)  # measured: 1.445, 1.450


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (lambda n: -np.ones(n), "Negative values"),
        (lambda n: np.r_[np.nan, np.ones(n - 1)], "NaN"),
        (lambda n: np.zeros(n), "at least one non-zero"),
        (lambda n: np.ones(n + 1), "shape"),
    ],
)
def test_bad_weights_are_refused(grouped, weights, message):
    X, y = grouped
    with pytest.raises(ValueError, match=message):
        RandomInterceptRegressor(groups=["g"]).fit(X, y, sample_weight=weights(len(X)))


def test_a_first_fit_of_the_day_prints_nothing_of_arviz(tmp_path):
    """ArviZ 0.2x prints a multi-line FutureWarning about its refactor on its first import of
    the day (it keeps the day in its cache folder, here an empty one); a fit and the posterior
    of a fresh process print none of it."""
    script = (
        "import numpy as np, pandas as pd\n"
        "from skbayes_re import RandomInterceptRegressor\n"
        "rng = np.random.default_rng(0)\n"
        "g = pd.Categorical(rng.integers(0, 6, 60))\n"
        "X = pd.DataFrame({'x': rng.normal(size=60), 'g': g})\n"
        "model = RandomInterceptRegressor(random_state=0).fit(X, X['x'] + rng.normal(size=60))\n"
        "model.posterior_\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONWARNINGS": "default"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert "ArviZ" not in result.stderr
    assert result.stdout == ""
