"""The non-Gaussian likelihoods of the linear estimators (``likelihood=``, ``offset=``):
recovery of simulated truth, agreement with statsmodels' GLM where the prior is negligible,
predictive calibration on fresh rows of seen and unseen groups, and input validation."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skbayes_re import BayesianLinearRegressor, RandomEffectsRegressor, RandomInterceptRegressor

COEF = np.array([0.3, -0.2])


def _grouped_counts(seed, n_rows=3000, n_groups=40, intercept=0.5, group_sd=0.4, dispersion=None):
    """Counts with a log link, an exposure offset and random intercepts: ``(X, y, truth)``;
    ``dispersion`` makes them negative binomial (Var = mu + mu^2 / dispersion). The effects'
    sample sd is exactly ``group_sd``, so that coverage of new groups is not blurred by the
    luck of their draw."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, n_rows)
    effects = rng.normal(0.0, 1.0, n_groups)
    effects = group_sd * (effects - effects.mean()) / effects.std()  # sd exactly group_sd
    X = pd.DataFrame(
        {
            "x1": rng.normal(size=n_rows),
            "x2": rng.normal(size=n_rows),
            "log_exposure": np.log(rng.uniform(0.5, 2.0, n_rows)),
            "g": pd.Categorical(groups),
        }
    )
    eta = intercept + X[["x1", "x2"]].to_numpy() @ COEF + effects[groups] + X["log_exposure"]
    rate = np.exp(eta.to_numpy())
    if dispersion is not None:
        rate = rng.gamma(dispersion, rate / dispersion)
    return X, rng.poisson(rate).astype(float), {"effects": effects, "intercept": intercept}


def _posterior_sd(model, name):
    return model.posterior_.posterior[name].std(dim=("chain", "draw")).to_numpy()


@pytest.fixture(scope="module")
def poisson_fit():
    X, y, truth = _grouped_counts(0)
    model = RandomInterceptRegressor(likelihood="poisson", offset="log_exposure", random_state=0)
    return model.fit(X, y), X, y, truth


def test_poisson_random_intercepts_recover_the_truth(poisson_fit):
    model, X, y, truth = poisson_fit
    sd = _posterior_sd(model, "coef")
    assert np.all(np.abs(model.coef_ - COEF) < 3.0 * sd)
    assert model.coef_.shape == (2,)  # the offset column has no coefficient
    realised = truth["effects"].std()
    assert abs(model.group_sd_["g"] - realised) < 0.15 * realised
    effects = model.group_effects_["g"].to_numpy()
    assert np.corrcoef(effects, truth["effects"])[0, 1] > 0.95
    assert not hasattr(model, "sigma_")


def test_poisson_intervals_cover_fresh_counts_of_seen_and_unseen_groups():
    """Counts around 20 (so integer bounds barely over-cover): held-out rows of the seen
    groups, and rows of 300 new groups, each covered near the nominal 90%."""
    X, y, _ = _grouped_counts(1, n_rows=6000, intercept=3.0)
    model = RandomInterceptRegressor(likelihood="poisson", offset="log_exposure", random_state=0)
    model.fit(X[:3000], y[:3000])
    new_X, new_y, _ = _grouped_counts(2, n_rows=3000, intercept=3.0, n_groups=300)
    new_X["g"] = pd.Categorical(new_X["g"].astype(int) + 1000)
    for rows, target in [(X[3000:], y[3000:]), (new_X, new_y)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # no label seen in fit, on purpose
            bounds = model.predict_interval(rows)
        covered = np.mean((target >= bounds[:, 0]) & (target <= bounds[:, 1]))
        assert 0.87 <= covered <= 0.94, covered


def test_poisson_without_groups_matches_statsmodels_glm():
    sm = pytest.importorskip("statsmodels.api")
    X, y, _ = _grouped_counts(3, n_rows=5000, group_sd=0.0)
    features = X[["x1", "x2"]]
    model = BayesianLinearRegressor(likelihood="poisson", random_state=0).fit(features, y)
    glm = sm.GLM(y, sm.add_constant(features), family=sm.families.Poisson()).fit()
    assert_allclose(model.coef_, glm.params[1:].to_numpy(), atol=0.2 * glm.bse[1:].min())
    assert abs(model.intercept_ - glm.params.iloc[0]) < 0.2 * glm.bse.iloc[0]


def test_negative_binomial_learns_the_dispersion():
    X, y, truth = _grouped_counts(4, n_rows=4000, intercept=1.5, dispersion=2.0)
    model = RandomInterceptRegressor(
        likelihood="negative_binomial", offset="log_exposure", random_state=0
    ).fit(X, y)
    assert 1.6 < model.dispersion_ < 2.5
    assert np.all(np.abs(model.coef_ - COEF) < 3.0 * _posterior_sd(model, "coef"))
    poisson = RandomInterceptRegressor(likelihood="poisson", offset="log_exposure", random_state=0)
    widths = [np.mean(np.diff(m.predict_interval(X), axis=1)) for m in (model, poisson.fit(X, y))]
    assert widths[0] > 1.3 * widths[1]  # overdispersion widens the intervals


def _heavy_tailed(seed, n_rows=2000, n_groups=30, df=3.0):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, n_rows)
    X = pd.DataFrame({"x1": rng.normal(size=n_rows), "g": pd.Categorical(groups)})
    noise = 0.5 * rng.standard_t(df, n_rows)
    y = 1.0 + 2.0 * X["x1"].to_numpy() + rng.normal(0, 0.7, n_groups)[groups] + noise
    return X, y


def test_student_t_learns_heavy_tails_and_stays_calibrated():
    X, y = _heavy_tailed(5, n_rows=4000)
    train, held_out = slice(0, 2000), slice(2000, None)
    model = RandomInterceptRegressor(likelihood="student_t", random_state=0)
    model.fit(X[train], y[train])
    gaussian = RandomInterceptRegressor(random_state=0).fit(X[train], y[train])
    assert 2.0 < model.nu_ < 5.0
    assert abs(model.sigma_ - 0.5) < 0.1
    bounds = model.predict_interval(X[held_out])
    covered = np.mean((y[held_out] >= bounds[:, 0]) & (y[held_out] <= bounds[:, 1]))
    assert 0.87 <= covered <= 0.93
    errors = [np.mean(np.abs(m.coef_ - 2.0)) for m in (model, gaussian)]
    assert errors[0] <= errors[1] + 0.005


def test_offset_with_an_identity_link_is_subtracted_from_the_target():
    rng = np.random.default_rng(7)
    X = pd.DataFrame({"x": rng.normal(size=400), "known": rng.normal(size=400)})
    y = 2.0 * X["x"] + X["known"] + rng.normal(0, 0.3, 400)
    model = BayesianLinearRegressor(offset="known", random_state=0).fit(X, y)
    assert model.coef_.shape == (1,)
    assert abs(model.coef_[0] - 2.0) < 0.05
    shifted = X.assign(known=X["known"] + 5.0)
    assert_allclose(model.predict(shifted) - model.predict(X), 5.0, atol=1e-9)


def test_poisson_random_slopes_recover_the_slope_spread():
    rng = np.random.default_rng(8)
    n_rows, n_groups = 4000, 50
    groups = rng.integers(0, n_groups, n_rows)
    x = rng.normal(size=n_rows)
    slopes = rng.normal(0.0, 0.3, n_groups)
    y = rng.poisson(np.exp(1.0 + (0.2 + slopes[groups]) * x)).astype(float)
    X = pd.DataFrame({"x": x, "g": pd.Categorical(groups)})
    model = RandomEffectsRegressor(
        likelihood="poisson", random_slopes={"g": ["x"]}, random_state=0
    ).fit(X, y)
    assert abs(model.coef_[0] - 0.2) < 0.1
    assert abs(model.group_sd_["g"]["x"] - slopes.std()) < 0.3 * slopes.std()
    assert model.group_sd_["g"]["intercept"] < 0.15  # no intercept spread in the truth


def test_fits_are_reproducible_bit_for_bit():
    X, y, _ = _grouped_counts(9, n_rows=500)
    first, second = (
        RandomInterceptRegressor(likelihood="negative_binomial", random_state=3).fit(X, y)
        for _ in range(2)
    )
    assert_array_equal(first.predict_interval(X), second.predict_interval(X))
    assert_array_equal(first.sample_y(X, 3, random_state=1), second.sample_y(X, 3, random_state=1))


@pytest.mark.parametrize(
    ("kwargs", "y", "message"),
    [
        ({"likelihood": "poisson"}, [1.0, -3.0, 2.0, 0.0], r"likelihood='poisson'.*-3"),
        ({"likelihood": "negative_binomial"}, [0.0] * 4, "zero in every row"),
        ({"offset": "g"}, [1.0, 2.0, 3.0, 4.0], "offset 'g' is also a grouping column"),
        ({"offset": "missing"}, [1.0, 2.0, 3.0, 4.0], "offset 'missing' is not a column"),
        ({"likelihood": "gamma"}, [1.0, 2.0, 3.0, 4.0], "likelihood"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, y, message):
    X = pd.DataFrame({"x": [0.1, 0.2, 0.3, 0.4], "g": pd.Categorical(["a", "a", "b", "b"])})
    with pytest.raises(ValueError, match=message):
        RandomInterceptRegressor(max_iter=5, **kwargs).fit(X, np.array(y))


def test_streaming_and_dask_routes_refuse_other_likelihoods():
    X, y, _ = _grouped_counts(10, n_rows=100)
    model = RandomInterceptRegressor(likelihood="poisson")
    assert not hasattr(model, "partial_fit")
    with pytest.raises(AttributeError, match="no attribute 'partial_fit'") as raised:
        model.partial_fit(X, y)
    assert "partial_fit needs likelihood='gaussian'" in str(raised.value.__cause__)
    with pytest.raises(AttributeError) as raised:
        RandomInterceptRegressor(offset="log_exposure").partial_fit(X, y)
    assert "offset='log_exposure'" in str(raised.value.__cause__)
    dd = pytest.importorskip("dask.dataframe")
    with pytest.raises(ValueError, match="Dask input needs likelihood='gaussian'"):
        model.fit(dd.from_pandas(X, npartitions=2), dd.from_array(y))


def test_a_constant_target_with_student_t_noise_is_that_constant():
    X = pd.DataFrame({"x": np.arange(20.0), "g": pd.Categorical(np.arange(20) % 4)})
    with pytest.warns(UserWarning, match="y is constant"):
        model = RandomInterceptRegressor(likelihood="student_t", random_state=0)
        model.fit(X, np.full(20, 3.0))
    assert model.sigma_ == 0.0 and model.nu_ == np.inf
    mean, std = model.predict(X, return_std=True)
    assert_array_equal(mean, 3.0)
    assert_array_equal(std, 0.0)
    assert_array_equal(model.predict_interval(X), 3.0)
    assert_array_equal(model.sample_y(X, 3, random_state=0), 3.0)


def test_minibatch_fit_agrees_with_the_full_batch_fit():
    """20,000 rows in batches of 2,500 (rows shuffled once, contiguous blocks): the
    coefficients within 0.5 full-batch posterior sd of the full-batch fit, the group sd
    within 10%; the same seed gives the same fit."""
    X, y, _ = _grouped_counts(7, n_rows=20_000, n_groups=100)
    options = {"likelihood": "poisson", "offset": "log_exposure", "random_state": 0}
    full = RandomInterceptRegressor(**options).fit(X, y)
    batched = RandomInterceptRegressor(batch_size=2500, **options).fit(X, y)
    again = RandomInterceptRegressor(batch_size=2500, **options).fit(X, y)
    assert np.all(np.abs(batched.coef_ - full.coef_) < 0.5 * _posterior_sd(full, "coef"))
    assert abs(batched.group_sd_["g"] / full.group_sd_["g"] - 1.0) < 0.1
    assert_array_equal(batched.coef_, again.coef_)
