"""Scale-out: a grid search through a dask cluster picks what a serial one picks.

The pattern for users::

    from dask.distributed import Client, LocalCluster
    import joblib

    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster):
        with joblib.parallel_backend("dask"):
            search.fit(X, y)

Each worker compiles a model structure once (from the on-disk PyTensor cache when warm) and
then reuses it for every fit it runs.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV

from skbayes_re import RandomInterceptRegressor


def grouped_data(seed=0, n=1500, n_groups=40):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n)
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    X["g"] = pd.Categorical(g)
    y = X["x1"] - 0.5 * X["x2"] + rng.normal(size=n_groups)[g] + rng.normal(size=n)
    return X, y


@pytest.mark.slow
def test_dask_backend_picks_the_same_best_params():
    joblib = pytest.importorskip("joblib")
    distributed = pytest.importorskip("distributed")
    X, y = grouped_data()
    grid = {"prior_scale": [0.05, 2.5], "learning_rate": [0.05, 0.1]}

    def search():
        return GridSearchCV(
            RandomInterceptRegressor(random_state=0), grid, scoring="neg_mean_absolute_error", cv=3
        )

    serial = search().fit(X, y)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        distributed.Client(cluster),
        joblib.parallel_backend("dask"),
    ):
        parallel = search().fit(X, y)
    assert parallel.best_params_ == serial.best_params_
    np.testing.assert_allclose(
        parallel.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"], rtol=1e-12
    )
