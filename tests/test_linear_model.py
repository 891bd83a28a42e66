"""BayesianLinearRegressor against closed-form OLS, and its scikit-learn behaviour."""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from skbayes_re import BayesianLinearRegressor

TRUE_COEF = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
NOISE_SD = 0.5


def simulate(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(loc=[0, 5, -3, 0, 10], scale=[1, 2, 0.5, 3, 4], size=(n, 5))
    y = 0.7 + X @ TRUE_COEF + rng.normal(scale=NOISE_SD, size=n)
    return X, y


def ols(X, y):
    design = np.column_stack([np.ones(len(y)), X])
    estimate, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ estimate
    residual_sd = np.sqrt(residual @ residual / (len(y) - design.shape[1]))
    return estimate, residual_sd


@pytest.fixture(scope="module")
def data():
    return simulate(2000, seed=1)


@pytest.fixture(scope="module", params=["advi", "fullrank_advi"])
def fitted(request, data):
    X, y = data
    return BayesianLinearRegressor(method=request.param, random_state=0).fit(X, y)


def test_posterior_means_agree_with_ols(fitted, data):
    estimate, _ = ols(*data)
    posterior = fitted.posterior_.posterior
    post_mean = np.r_[fitted.intercept_, fitted.coef_]
    post_sd = np.r_[float(posterior["intercept"].std()), posterior["coef"].std(("chain", "draw"))]
    assert np.all(np.abs(post_mean - estimate) <= 0.25 * post_sd)


def test_posterior_sd_matches_ols_standard_errors(fitted, data):
    X, y = data
    _, residual_sd = ols(X, y)
    design = np.column_stack([np.ones(len(y)), X])
    se = residual_sd * np.sqrt(np.diag(np.linalg.inv(design.T @ design)))
    coef_sd = fitted.posterior_.posterior["coef"].std(("chain", "draw")).to_numpy()
    np.testing.assert_allclose(coef_sd, se[1:], rtol=0.3)


def test_sigma_matches_ols_residual_sd(fitted, data):
    _, residual_sd = ols(*data)
    assert abs(fitted.sigma_ / residual_sd - 1) < 0.03


def test_interval_coverage_on_fresh_data(fitted):
    X_new, y_new = simulate(20_000, seed=2)
    bounds = fitted.predict_interval(X_new, coverage=0.9)
    covered = np.mean((y_new >= bounds[:, 0]) & (y_new <= bounds[:, 1]))
    assert 0.87 <= covered <= 0.93


def test_predictive_std_combines_noise_and_parameter_spread(fitted, data):
    X, _ = data
    _, std = fitted.predict(X[:50], return_std=True)
    assert np.all(std > fitted.sigma_) and np.all(std < 1.05 * fitted.sigma_)
    samples = fitted.sample_y(X[:3], n_samples=4000, random_state=0)
    assert samples.shape == (3, 4000)
    np.testing.assert_allclose(samples.std(axis=1), std[:3], rtol=0.06)


def test_same_seed_same_fit_other_seed_other_draws(data):
    X, y = data
    first = BayesianLinearRegressor(random_state=3).fit(X, y)
    second = BayesianLinearRegressor(random_state=3).fit(X, y)
    third = BayesianLinearRegressor(random_state=4).fit(X, y)
    np.testing.assert_array_equal(first.coef_, second.coef_)
    assert first.loss_curve_ == second.loss_curve_
    np.testing.assert_array_equal(first.predict(X), second.predict(X))
    np.testing.assert_array_equal(first.predict_interval(X), second.predict_interval(X))
    assert not np.array_equal(first._draws["coef"], third._draws["coef"])


def test_unconverged_fit_warns_and_converged_fit_stops_early(data):
    X, y = data
    with pytest.warns(ConvergenceWarning, match="max_iter=30"):
        short = BayesianLinearRegressor(max_iter=30, random_state=0).fit(X, y)
    assert short.n_iter_ == 30 and len(short.loss_curve_) == 30
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = BayesianLinearRegressor(max_iter=10_000, random_state=0).fit(X, y)
    assert model.n_iter_ < 5_000


def test_refit_on_new_shape_does_not_recompile(data):
    from skbayes_re._inference import compiled_structures

    X, y = data
    BayesianLinearRegressor(random_state=0).fit(X, y)
    before = compiled_structures()
    model = BayesianLinearRegressor(random_state=0).fit(X[:700, :3], y[:700])
    assert model.fit_timings_["compile"] == 0.0
    assert compiled_structures() == before


def test_pickle_round_trip_predicts_identically(fitted, data):
    X, _ = data
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(
        restored.predict_interval(X[:20]), fitted.predict_interval(X[:20])
    )


def test_fresh_process_predicts_without_pytensor(tmp_path, fitted, data):
    X, _ = data
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(fitted))
    np.save(tmp_path / "X.npy", X[:100])
    script = (
        "import pickle, sys, numpy as np\n"
        f"model = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        f"pred = model.predict(np.load({str(tmp_path / 'X.npy')!r}))\n"
        f"np.save({str(tmp_path / 'pred.npy')!r}, pred)\n"
        "assert 'pytensor' not in sys.modules and 'pymc' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "pred.npy"), fitted.predict(X[:100]))


def test_posterior_has_feature_names_as_coordinates(data):
    X, y = data
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    model = BayesianLinearRegressor(random_state=0, n_posterior_samples=100).fit(frame, y)
    posterior = model.posterior_.posterior
    assert list(posterior["coef"].coords["feature"].values) == list(frame.columns)
    assert posterior["coef"].shape == (1, 100, 5)


def test_verbose_shows_progress_and_silent_by_default(data, capfd):
    X, y = data
    BayesianLinearRegressor(random_state=0).fit(X, y)
    assert capfd.readouterr() == ("", "")
    BayesianLinearRegressor(random_state=0, verbose=1).fit(X, y)
    err = capfd.readouterr().err
    assert "ADVI" in err and "loss" in err and "converged" in err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), y), "NaN"),
        (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X), y), "inf"),
        (lambda X, y: (X, np.r_[np.nan, y[1:]]), "y contains NaN"),
        (lambda X, y: (X, np.r_[np.inf, y[1:]]), "y contains infinity"),
        (lambda X, y: (X, np.column_stack([y, y])), "1d array"),
    ],
)
def test_bad_training_data_is_refused(data, change, message):
    X, y = change(*data)
    with pytest.raises(ValueError, match=message):
        BayesianLinearRegressor().fit(X, y)


def test_bad_hyperparameters_are_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="tol"):
        BayesianLinearRegressor(tol=0.0).fit(X, y)
    with pytest.raises(ValueError, match="method"):
        BayesianLinearRegressor(method="nuts").fit(X, y)
    with pytest.raises(ValueError, match="coverage"):
        BayesianLinearRegressor(max_iter=300).fit(X, y).predict_interval(X, coverage=1.5)


def test_wrong_feature_count_at_predict_is_refused(fitted, data):
    X, _ = data
    with pytest.raises(ValueError, match="5 features"):
        fitted.predict(X[:, :4])
