"""partial_fit: statistics accumulated over batches give the fit of all rows together."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from skbayes_re import BayesianLinearRegressor, RandomEffectsRegressor, RandomInterceptRegressor


def streamed_data(seed=0, n=20_000):
    """Crossed factors; rows ordered by the first factor, so most of its groups are first
    seen in a later batch; 1% of its labels missing; features far from standardised."""
    rng = np.random.default_rng(seed)
    school = rng.integers(0, 300, n)
    region = rng.integers(0, 7, n)
    X = pd.DataFrame({"x0": rng.normal(size=n), "x1": rng.normal(1990.0, 20.0, size=n)})
    X["school"] = pd.Categorical(school)
    X["region"] = pd.Categorical([f"r{c}" for c in region])
    y = 1.0 + X["x0"] - 0.02 * X["x1"] + rng.normal(size=300)[school]
    y = y + rng.normal(size=7)[region] + rng.normal(size=n)
    X.loc[rng.random(n) < 0.01, "school"] = np.nan
    order = np.argsort(school, kind="stable")
    return X.iloc[order].reset_index(drop=True), y.iloc[order].reset_index(drop=True)


def _posterior_gap(first, second) -> float:
    """Largest difference of posterior means in posterior sds, over every parameter."""
    a, b = first.posterior_.posterior, second.posterior_.posterior
    gaps = []
    for name in a.data_vars:
        draws_a = a[name].values.reshape(-1, int(np.prod(a[name].shape[2:], dtype=int)))
        draws_b = b[name].values.reshape(draws_a.shape)
        sd = np.maximum(draws_a.std(axis=0), 1e-12)
        gaps.append(np.max(np.abs(draws_a.mean(axis=0) - draws_b.mean(axis=0)) / sd))
    return float(max(gaps))


def test_ten_batches_give_the_fit_of_all_rows():
    X, y = streamed_data()
    full = RandomInterceptRegressor(random_state=0).fit(X, y)
    streamed = RandomInterceptRegressor(random_state=0)
    for rows in np.array_split(np.arange(len(X)), 10):
        streamed.partial_fit(X.iloc[rows], y.iloc[rows])
    assert _posterior_gap(full, streamed) < 0.05  # measured: ~1e-11
    for name in ["school", "region"]:
        assert list(streamed.group_effects_[name].index) == list(full.group_effects_[name].index)
    assert_allclose(streamed.predict(X.iloc[:500]), full.predict(X.iloc[:500]), rtol=1e-8)


def test_each_call_fits_the_rows_seen_so_far():
    X, y = streamed_data(seed=1, n=6000)
    streamed = BayesianLinearRegressor(random_state=0)
    features = X[["x0", "x1"]]
    streamed.partial_fit(features.iloc[:2000], y.iloc[:2000])
    partial = BayesianLinearRegressor(random_state=0).fit(features.iloc[:2000], y.iloc[:2000])
    assert _posterior_gap(partial, streamed) < 0.05
    streamed.partial_fit(features.iloc[2000:], y.iloc[2000:])
    full = BayesianLinearRegressor(random_state=0).fit(features, y)
    assert _posterior_gap(full, streamed) < 0.05


def test_fit_forgets_the_batches():
    X, y = streamed_data(seed=2, n=4000)
    model = RandomInterceptRegressor(random_state=0)
    model.partial_fit(X.iloc[:2000], y.iloc[:2000])
    model.fit(X.iloc[2000:], y.iloc[2000:])
    model.partial_fit(X.iloc[:1000], y.iloc[:1000])  # a new stream: only these rows
    alone = RandomInterceptRegressor(random_state=0).fit(X.iloc[:1000], y.iloc[:1000])
    assert _posterior_gap(alone, model) < 0.05


def test_batches_must_share_the_layout():
    X, y = streamed_data(seed=3, n=2000)
    model = RandomInterceptRegressor(random_state=0).partial_fit(X.iloc[:1000], y.iloc[:1000])
    with pytest.raises(ValueError, match="feature"):
        model.partial_fit(X.iloc[1000:, :3], y.iloc[1000:])


@pytest.mark.parametrize(
    "slopes", [{"school": ["x0"]}, {"school": ["x0"], "region": ["x1"]}], ids=["one", "two"]
)
def test_ten_batches_with_random_slopes_give_the_fit_of_all_rows(slopes):
    """Slope statistics (per group V'y, W'V, and crossed pairs' cross-products) map to the
    standardisation of all rows exactly; x1 lies 100 of its sds from 0."""
    X, y = streamed_data(seed=7, n=8000)
    y = y + 0.5 * X["x0"] * np.random.default_rng(7).normal(size=300)[X["school"].cat.codes]
    full = RandomEffectsRegressor(random_slopes=slopes, random_state=0).fit(X, y)
    streamed = RandomEffectsRegressor(random_slopes=slopes, random_state=0)
    for rows in np.array_split(np.arange(len(X)), 10):
        streamed.partial_fit(X.iloc[rows], y.iloc[rows])
    assert _posterior_gap(full, streamed) < 0.05  # measured: 1e-13
    assert_allclose(streamed.predict(X.iloc[:300]), full.predict(X.iloc[:300]), rtol=1e-8)


def test_weighted_batches_give_the_weighted_fit_of_all_rows():
    X, y = streamed_data(seed=4, n=6000)
    weights = np.random.default_rng(4).integers(0, 4, size=len(X)).astype(float)
    weights[X["region"].to_numpy() == "r3"] = 0.0  # region r3 only in rows of weight 0
    full = RandomInterceptRegressor(random_state=0).fit(X, y, sample_weight=weights)
    streamed = RandomInterceptRegressor(random_state=0)
    for rows in np.array_split(np.arange(len(X)), 3):
        streamed.partial_fit(X.iloc[rows], y.iloc[rows], sample_weight=weights[rows])
    assert _posterior_gap(full, streamed) < 0.05  # measured: 2e-12
    assert "r3" not in streamed.group_effects_["region"].index
    assert_allclose(streamed.predict(X.iloc[:300]), full.predict(X.iloc[:300]), rtol=1e-8)


def test_a_constant_stream_is_fitted_at_once_until_y_varies():
    X, y = streamed_data(seed=5, n=2000)
    y = y.copy()
    y.iloc[:200] = 2.5
    model = RandomInterceptRegressor(random_state=0)
    with pytest.warns(UserWarning, match=r"y is constant \(2\.5 in every row\)"):
        model.partial_fit(X.iloc[:100], y.iloc[:100])
    with pytest.warns(UserWarning, match="y is constant"):
        model.partial_fit(X.iloc[100:200], y.iloc[100:200])
    assert model.n_iter_ == 0 and model.sigma_ == 0.0
    np.testing.assert_array_equal(model.predict(X.iloc[:50]), 2.5)
    model.partial_fit(X.iloc[200:], y.iloc[200:])  # the target now varies: a real fit
    full = RandomInterceptRegressor(random_state=0).fit(X, y)
    assert model.n_iter_ > 0
    assert _posterior_gap(full, model) < 0.05


def test_batches_with_aliased_grouping_columns_are_refused():
    X, y = streamed_data(seed=6, n=2000)
    X = X.assign(copy=X["region"].astype(str) + "!")
    model = RandomInterceptRegressor(groups=["school", "region", "copy"], random_state=0)
    with pytest.raises(ValueError, match="grouping columns 'region' and 'copy' define the same"):
        model.partial_fit(X, y)
