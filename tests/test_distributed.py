"""Fitting from Dask collections: statistics from any partitioning equal the in-memory ones,
the fitted model equals the in-memory fit, predictions are lazy Dask arrays, and a two-worker
LocalCluster runs the whole path."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

dd = pytest.importorskip("dask.dataframe")
da = pytest.importorskip("dask.array")

from skbayes_re import (  # noqa: E402
    BayesianLinearRegressor,
    RandomEffectsMLPRegressor,
    RandomEffectsRegressor,
    RandomInterceptRegressor,
)


def grouped_frame(seed=0, n=3000):
    """Rows sorted by the first factor, so partitions split some groups and hold others
    whole; a second, crossed factor; group 'g0' only in the first rows."""
    rng = np.random.default_rng(seed)
    school = np.sort(rng.integers(0, 60, n))
    region = rng.integers(0, 5, n)
    X = pd.DataFrame({"x0": rng.normal(size=n), "x1": rng.normal(50.0, 10.0, size=n)})
    X["school"] = pd.Categorical([f"s{c:02d}" for c in school])
    X["region"] = pd.Categorical(region)
    slope = rng.normal(0, 0.3, 60)[school]
    y = 2.0 + X["x0"] * (1.0 + slope) - 0.05 * X["x1"] + rng.normal(size=60)[school]
    y = y + rng.normal(size=5)[region] + rng.normal(size=n)
    return X, y.rename("y")


class _Capturing:
    """Mixin: keep the statistics a fit hands to the engine."""

    def _spec_from_statistics(self, data):
        self.captured_ = {name: np.array(value, copy=True) for name, value in data.items()}
        return super()._spec_from_statistics(data)


class CapturingIntercepts(_Capturing, RandomInterceptRegressor):
    pass


class CapturingSlopes(_Capturing, RandomEffectsRegressor):
    pass


def _as_dask(X, y, npartitions):
    frame = dd.from_pandas(X.assign(y=y), npartitions=npartitions, sort=False)
    return frame[list(X.columns)], frame["y"]


MODELS = {
    "intercepts": lambda: CapturingIntercepts(),
    "slopes": lambda: CapturingSlopes(random_slopes={"school": ["x0"]}),
}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("npartitions", [1, 3, 17])
@pytest.mark.parametrize("model", list(MODELS))
def test_statistics_from_any_partitioning_equal_the_in_memory_ones(npartitions, model):
    X, y = grouped_frame()
    memory = MODELS[model]().set_params(max_iter=1).fit(X, y)
    distributed = MODELS[model]().set_params(max_iter=1).fit(*_as_dask(X, y, npartitions))
    assert memory.captured_.keys() == distributed.captured_.keys()
    for name, value in memory.captured_.items():
        scale = max(np.max(np.abs(value)), 1e-300)
        error = np.max(np.abs(distributed.captured_[name] - value)) / scale if value.size else 0
        assert error < 1e-10, (name, error)
    assert_allclose(distributed._x_scaler.mean, memory._x_scaler.mean, rtol=1e-12)
    assert_allclose(distributed._x_scaler.scale, memory._x_scaler.scale, rtol=1e-12)
    assert list(distributed._encoders[0].categories_) == list(memory._encoders[0].categories_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator", [RandomInterceptRegressor, BayesianLinearRegressor])
def test_fit_equals_the_in_memory_fit(estimator):
    X, y = grouped_frame(seed=1)
    if estimator is BayesianLinearRegressor:
        X = X[["x0", "x1"]]
    memory = estimator(random_state=0).fit(X, y)
    distributed = estimator(random_state=0).fit(*_as_dask(X, y, 4))
    assert_allclose(distributed.coef_, memory.coef_, rtol=1e-7)
    assert_allclose(distributed.predict(X), memory.predict(X), rtol=1e-7)
    assert distributed.n_features_in_ == memory.n_features_in_
    assert list(distributed.feature_names_in_) == list(memory.feature_names_in_)


def test_predictions_on_dask_input_are_lazy_dask_arrays():
    X, y = grouped_frame(seed=2)
    model = RandomInterceptRegressor(random_state=0).fit(X, y)
    X_dask, _ = _as_dask(X, y, 5)
    mean = model.predict(X_dask)
    assert isinstance(mean, da.Array) and np.isnan(mean.shape[0])  # nothing computed yet
    assert_allclose(mean.compute(), model.predict(X))
    mean, std = model.predict(X_dask, return_std=True)
    assert_allclose(std.compute(), model.predict(X, return_std=True)[1])
    bounds = model.predict_interval(X_dask, coverage=0.8)
    assert_allclose(bounds.compute(), model.predict_interval(X, coverage=0.8))
    draws = model.sample_y(X_dask, n_samples=3, random_state=0).compute()
    assert draws.shape == (len(X), 3)
    assert np.array_equal(draws, model.sample_y(X_dask, n_samples=3, random_state=0).compute())


def test_categories_unknown_to_dask_give_the_in_memory_groups():
    X, y = grouped_frame(seed=6, n=2000)
    X = X.assign(school=X["school"].astype(str))  # text labels, sorted in memory
    memory = RandomInterceptRegressor(random_state=0).fit(X, y)
    X_dask, y_dask = _as_dask(X, y, 4)
    X_dask = X_dask.assign(school=X_dask["school"].astype("category"))  # categories unknown
    distributed = RandomInterceptRegressor(random_state=0).fit(X_dask, y_dask)
    index = distributed.group_effects_["school"].index
    assert list(index) == list(memory.group_effects_["school"].index)
    assert_allclose(distributed.predict(X), memory.predict(X), rtol=1e-7)


def test_dask_arrays_with_positional_groups():
    X, y = grouped_frame(seed=3)
    array = np.column_stack([X["x0"], X["x1"], X["school"].cat.codes]).astype(float)
    memory = RandomInterceptRegressor(groups=[2], random_state=0).fit(array, y)
    X_dask = da.from_array(array, chunks=(700, 3))
    y_dask = da.from_array(y.to_numpy(), chunks=700)
    distributed = RandomInterceptRegressor(groups=[2], random_state=0).fit(X_dask, y_dask)
    assert_allclose(distributed.predict(array), memory.predict(array), rtol=1e-7)
    assert_allclose(distributed.predict(X_dask).compute(), memory.predict(array), rtol=1e-7)


def test_inputs_that_cannot_be_fitted_raise():
    X, y = grouped_frame(seed=4, n=300)
    X_dask, y_dask = _as_dask(X, y, 3)
    with pytest.raises(TypeError, match="RandomInterceptRegressor and RandomEffectsRegressor"):
        RandomEffectsMLPRegressor().fit(X_dask, y_dask)
    with pytest.raises(ValueError, match="X has 3 partitions but y has 2"):
        RandomInterceptRegressor().fit(X_dask, y_dask.repartition(npartitions=2))
    with pytest.raises(TypeError, match="y must be a Dask Series"):
        RandomInterceptRegressor().fit(X_dask, y.to_numpy())
    bad = X.assign(x0=X["x0"].where(X.index != 5))
    with pytest.raises(ValueError, match="NaN or infinity in a feature column"):
        RandomInterceptRegressor().fit(*_as_dask(bad, y, 3))
    text = X.assign(x1=X["x1"].astype(str))
    with pytest.raises(ValueError, match="Feature column 'x1' has dtype"):
        RandomInterceptRegressor(groups=["school", "region"]).fit(*_as_dask(text, y, 3))


def test_weights_from_a_dask_series_give_the_in_memory_weighted_fit():
    X, y = grouped_frame(seed=7, n=2000)
    weights = pd.Series(np.random.default_rng(7).integers(0, 4, len(X)), name="w")
    memory = RandomInterceptRegressor(random_state=0).fit(X, y, sample_weight=weights)
    frame = dd.from_pandas(X.assign(y=y, w=weights), npartitions=4, sort=False)
    X_dask, y_dask = frame[list(X.columns)], frame["y"]
    distributed = RandomInterceptRegressor(random_state=0).fit(
        X_dask, y_dask, sample_weight=frame["w"]
    )
    assert_allclose(distributed.coef_, memory.coef_, rtol=1e-7)
    assert_allclose(distributed.predict(X), memory.predict(X), rtol=1e-7)
    unweighted = RandomInterceptRegressor(random_state=0).fit(X_dask, y_dask)
    assert np.max(np.abs(unweighted.coef_ - memory.coef_)) > 1e-3
    with pytest.raises(TypeError, match="sample_weight must be a Dask Series"):
        RandomInterceptRegressor().fit(X_dask, y_dask, sample_weight=weights.to_numpy())
    with pytest.raises(ValueError, match="Negative values"):
        RandomInterceptRegressor().fit(X_dask, y_dask, sample_weight=frame["w"] - 1)
    with pytest.raises(ValueError, match="at least one non-zero"):
        RandomInterceptRegressor().fit(X_dask, y_dask, sample_weight=frame["w"] * 0)


def test_a_constant_target_and_aliased_groups_from_dask():
    X, y = grouped_frame(seed=8, n=1000)
    X_dask, y_dask = _as_dask(X, pd.Series(np.full(len(X), 4.2), name="y"), 3)
    with pytest.warns(UserWarning, match=r"y is constant \(4\.2 in every row\)"):
        model = RandomInterceptRegressor(random_state=0).fit(X_dask, y_dask)
    assert model.n_iter_ == 0 and model.sigma_ == 0.0
    assert np.all(model.predict(X) == 4.2)
    aliased = X.assign(copy=X["region"].astype(str) + "!")
    groups = ["school", "region", "copy"]
    with pytest.raises(ValueError, match="grouping columns 'region' and 'copy' define the same"):
        RandomInterceptRegressor(groups=groups).fit(*_as_dask(aliased, y, 3))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_two_worker_local_cluster_fits_and_predicts():
    distributed = pytest.importorskip("distributed")
    X, y = grouped_frame(seed=5, n=20_000)
    memory = RandomInterceptRegressor(random_state=0).fit(X, y)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        X_dask, y_dask = _as_dask(X, y, 8)
        model = RandomInterceptRegressor(random_state=0).fit(X_dask, y_dask)
        lazy = model.predict(X_dask)
        graph_bytes = len(pickle.dumps(dict(lazy.__dask_graph__())))
        predicted = lazy.compute()
    assert_allclose(model.coef_, memory.coef_, rtol=1e-7)
    assert_allclose(predicted, memory.predict(X), rtol=1e-7)
    # the model went to the workers once, ahead of the graph, which only refers to it;
    # without a client it is a key of the graph
    without_client = len(pickle.dumps(dict(model.predict(X_dask).__dask_graph__())))
    assert without_client - graph_bytes > 0.9 * len(pickle.dumps(model))
