"""RandomEffectsMLPRegressor with a non-Gaussian likelihood (``_models/network_glmm.py``):
counts and heavy-tailed noise around a non-linear mean with random intercepts."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from skbayes_re import RandomEffectsMLPRegressor, RandomInterceptRegressor

N_GROUPS = 30
GROUP_SD = 0.4


def simulate(n, seed, likelihood):
    """Log mean (or mean) ``0.5 + sin(2 a) + 0.3 b + u[g] + log exposure``, a and b uniform on
    (-2, 2); the exposure only for the count families. Returns X, y, the true linear
    predictor and the true group effects."""
    rng = np.random.default_rng(seed)
    effects = np.random.default_rng(100).normal(scale=GROUP_SD, size=N_GROUPS)
    groups = rng.integers(0, N_GROUPS, size=n)
    a, b = rng.uniform(-2, 2, size=(2, n))
    eta = 0.5 + np.sin(2 * a) + 0.3 * b + effects[groups]
    X = pd.DataFrame({"a": a, "b": b, "store": pd.Categorical(groups, categories=range(N_GROUPS))})
    if likelihood == "student_t":
        return X, eta + 0.3 * rng.standard_t(3, size=n), eta, effects
    X["log_exposure"] = np.log(rng.uniform(0.5, 2.0, size=n))
    eta = eta + X["log_exposure"].to_numpy()
    mean = np.exp(eta)
    if likelihood == "poisson":
        return X, rng.poisson(mean).astype(float), eta, effects
    return X, rng.negative_binomial(5.0, 5.0 / (5.0 + mean)).astype(float), eta, effects


def fit(likelihood, X, y, **params):
    """Fit, failing on a ConvergenceWarning (the defaults should converge)."""
    offset = None if likelihood == "student_t" else "log_exposure"
    model = RandomEffectsMLPRegressor(
        hidden_layer_sizes=(8,), likelihood=likelihood, offset=offset, random_state=0, **params
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        return model.fit(X, y)


def link_error(model, X, eta, likelihood):
    """Mean squared error of the predicted mean on the link scale against the truth."""
    predicted = model.predict(X)
    if likelihood != "student_t":
        predicted = np.log(predicted)
    return float(np.mean((predicted - eta) ** 2))


@pytest.fixture(scope="module")
def poisson():
    X, y, eta, effects = simulate(2000, 0, "poisson")
    return fit("poisson", X, y), X, y, eta, effects


def test_poisson_network_learns_the_curve_a_linear_model_misses(poisson):
    model, X, y, eta, effects = poisson
    linear = RandomInterceptRegressor(likelihood="poisson", offset="log_exposure", random_state=0)
    linear.fit(X, y)
    network_error = link_error(model, X, eta, "poisson")
    assert network_error < 0.05 < link_error(linear, X, eta, "poisson") / 4  # 0.012, 0.44
    estimated = model.group_effects_["store"]
    truth = effects[estimated.index.astype(int)]
    assert np.corrcoef(estimated, truth)[0, 1] > 0.9
    assert abs(model.group_sd_["store"] - np.std(effects, ddof=1)) < 0.1
    assert not hasattr(model, "sigma_")  # no noise parameter of its own


def test_offset_enters_with_coefficient_one(poisson):
    model, X, *_ = poisson
    doubled = X.assign(log_exposure=X["log_exposure"] + np.log(2.0))
    np.testing.assert_allclose(model.predict(doubled), 2.0 * model.predict(X), rtol=1e-10)
    assert "log_exposure" not in model.posterior_.posterior["coef"].coords["feature"].values


def test_poisson_intervals_cover_held_out_counts(poisson):
    model, *_ = poisson
    X, y, _, _ = simulate(2000, 1, "poisson")
    low, high = model.predict_interval(X, coverage=0.9).T
    covered = np.mean((y >= low) & (y <= high))
    assert 0.88 < covered < 0.98  # 0.959; a closed interval of counts covers at least 90%


def test_student_t_network_recovers_the_noise_and_covers_unseen_rows():
    X, y, eta, _ = simulate(2000, 2, "student_t")
    model = fit("student_t", X, y)
    assert link_error(model, X, eta, "student_t") < 0.02
    assert 2.0 < model.nu_ < 5.0  # truth 3, measured 2.97
    assert 0.24 < model.sigma_ < 0.36  # truth 0.3, measured 0.305
    X_new, y_new, _, _ = simulate(3000, 3, "student_t")
    low, high = model.predict_interval(X_new, coverage=0.9).T
    assert 0.87 <= np.mean((y_new >= low) & (y_new <= high)) <= 0.93


def test_negative_binomial_network_recovers_the_dispersion():
    X, y, eta, _ = simulate(2000, 4, "negative_binomial")
    model = fit("negative_binomial", X, y)
    assert link_error(model, X, eta, "negative_binomial") < 0.05
    assert 3.5 < model.dispersion_ < 8.0  # truth 5 (variance mu + mu^2 / 5), measured 6.4


def test_minibatch_fit_agrees_with_full_batch(poisson):
    model, X, y, eta, _ = poisson
    batched = fit("poisson", X, y, batch_size=500)
    full, minibatch = np.log(model.predict(X)), np.log(batched.predict(X))
    # two networks about as close to the truth (0.012 and 0.013), not the same network
    assert np.sqrt(np.mean((full - minibatch) ** 2)) < 0.12  # 0.065
    assert link_error(batched, X, eta, "poisson") < 1.5 * link_error(model, X, eta, "poisson")
    assert abs(batched.group_sd_["store"] - model.group_sd_["store"]) < 0.05


def test_bayesian_weights_keep_the_fit():
    X, y, eta, _ = simulate(1500, 5, "poisson")
    model = fit("poisson", X, y, weights="bayesian")
    assert link_error(model, X, eta, "poisson") < 0.05
    draws = model.posterior_.posterior["coef_out"].values.reshape(-1, 8)
    assert np.all(draws.std(axis=0) > 0)  # the weights have a posterior spread


def test_counts_outside_the_support_name_the_likelihood():
    X, y, _, _ = simulate(100, 6, "poisson")
    y[3] = -1.0
    with pytest.raises(ValueError, match="likelihood='poisson'.*negative"):
        fit("poisson", X, y)
