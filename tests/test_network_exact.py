"""The network's exact route (``_models/network_exact.py``): the perceptron by L-BFGS, the
linear part, group intercepts and scales exactly; against the ADVI route, the linear model,
and where each route is taken."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from skbayes_re import RandomEffectsMLPRegressor, RandomInterceptRegressor

N_GROUPS = 40


def non_linear(n, seed):
    """``sin(2 x0) + x1 x2 + group effect + N(0, 0.3)``, x uniform on (-2, 2)."""
    rng = np.random.default_rng(seed)
    effects = np.random.default_rng(11).normal(scale=0.7, size=N_GROUPS)
    groups = rng.integers(0, N_GROUPS, size=n)
    X = rng.uniform(-2.0, 2.0, size=(n, 3))
    y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + effects[groups] + rng.normal(0, 0.3, n)
    frame = pd.DataFrame(X, columns=["x0", "x1", "x2"])
    frame["g"] = pd.Categorical(groups, categories=range(N_GROUPS))
    return frame, y


def mae(model, X, y):
    return float(np.mean(np.abs(model.predict(X) - y)))


@pytest.fixture(scope="module")
def routes():
    (X, y), (X_val, y_val) = non_linear(3000, 1), non_linear(3000, 2)
    exact = RandomEffectsMLPRegressor(random_state=0).fit(X, y)
    advi = RandomEffectsMLPRegressor(method="advi", random_state=0).fit(X, y)
    return exact, advi, X_val, y_val


def test_exact_route_predicts_as_well_as_advi(routes):
    """Validation MAE within 3% of the ADVI route's (measured: 0.2394 against 0.2401), the same
    group effects (correlation above 0.99) and noise sd within 5%."""
    exact, advi, X_val, y_val = routes
    assert exact.loss_curve_ == [] and len(advi.loss_curve_) > 0
    assert mae(exact, X_val, y_val) < 1.03 * mae(advi, X_val, y_val)
    correlation = np.corrcoef(exact.group_effects_["g"], advi.group_effects_["g"])[0, 1]
    assert correlation > 0.99
    assert exact.sigma_ == pytest.approx(advi.sigma_, rel=0.05)


def test_exact_route_intervals_cover(routes):
    """90% predictive intervals of fresh rows of seen groups cover 0.87-0.93 (measured 0.904)."""
    exact, _, X_val, y_val = routes
    bounds = exact.predict_interval(X_val, coverage=0.9)
    covered = np.mean((y_val >= bounds[:, 0]) & (y_val <= bounds[:, 1]))
    assert 0.87 <= covered <= 0.93


def test_without_signal_beyond_the_linear_part_it_is_the_linear_model():
    """A linear truth: the perceptron is judged to add nothing on held-out rows, and the fit
    is RandomInterceptRegressor's exact posterior, draw for draw."""
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 10, 800)
    X = pd.DataFrame({"x1": rng.normal(size=800), "g": pd.Categorical(groups)})
    y = 1 + 2 * X["x1"].to_numpy() + rng.normal(size=10)[groups] + rng.normal(0, 0.5, 800)
    network = RandomEffectsMLPRegressor(random_state=0).fit(X, y)
    linear = RandomInterceptRegressor(random_state=0).fit(X, y)
    assert np.all(network.coefs_[1] == 0.0)
    np.testing.assert_allclose(network.predict(X), linear.predict(X), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(network.predict_interval(X), linear.predict_interval(X))


@pytest.mark.parametrize(
    "params",
    [
        {"method": "advi"},
        {"weights": "bayesian"},
        {"batch_size": 1000},
        {"groups": ["g", "h"]},
    ],
)
def test_other_settings_keep_advi(params):
    X, y = non_linear(1500, 4)
    X["h"] = pd.Categorical(np.arange(len(X)) % 3)
    model = RandomEffectsMLPRegressor(max_iter=200, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # few steps: only the route
        model.fit(X if "groups" in params else X.drop(columns="h"), y)
    assert len(model.loss_curve_) > 0
