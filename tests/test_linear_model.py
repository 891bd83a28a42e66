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
        short = BayesianLinearRegressor(method="advi", max_iter=30, random_state=0).fit(X, y)
    assert short.n_iter_ == 30 and len(short.loss_curve_) == 30
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = BayesianLinearRegressor(method="advi", max_iter=10_000, random_state=0)
        model.fit(X, y)
    assert model.n_iter_ < 5_000


def test_refit_on_new_shape_does_not_recompile(data):
    from skbayes_re._inference import compiled_structures

    X, y = data
    BayesianLinearRegressor(method="advi", random_state=0).fit(X, y)
    before = compiled_structures()
    model = BayesianLinearRegressor(method="advi", random_state=0).fit(X[:700, :3], y[:700])
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
    BayesianLinearRegressor(method="advi", random_state=0, verbose=1).fit(X, y)
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
        BayesianLinearRegressor(missing_features="error").fit(X, y)


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


# The likelihood with the coefficients integrated out, and the exact posterior it implies.


def few_rows(n_rows=5, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, 2))
    return X, 1.0 + X @ np.array([0.5, -1.0]) + rng.normal(scale=0.7, size=n_rows)


def standardised_statistics(model, X, y, prior_scale=2.5):
    from skbayes_re._models import gaussian_re_statistics

    features = model._x_scaler.transform(X)
    target = model._y_scaler.transform(y)
    return gaussian_re_statistics(features, target, [], [], prior_scale), features, target


@pytest.mark.parametrize("n_rows", [3, 6, 40])
def test_integrated_likelihood_equals_the_marginal_gaussian(n_rows):
    """log p(y | sigma) with the coefficients integrated out equals the log density of
    y ~ Normal(0, sigma^2 I + s^2 W W'), also with fewer rows than coefficients."""
    from scipy.stats import multivariate_normal

    from skbayes_re._models import build_linear_model, linear_data

    X, y = few_rows(n_rows)
    X = np.column_stack([X, X[:, 0] + 0.1 * np.random.default_rng(0).normal(size=n_rows)])
    model = BayesianLinearRegressor(random_state=0).fit(X, y)
    statistics, features, target = standardised_statistics(model, X, y)
    data = linear_data(statistics)
    pymc_model = build_linear_model(data)
    loglik = pymc_model.compile_fn(pymc_model.logp(vars=pymc_model.potentials))
    design = np.column_stack([np.ones(n_rows), features])
    for sigma in [0.05, 0.4, 1.0, 3.0]:
        covariance = sigma**2 * np.eye(n_rows) + 2.5**2 * design @ design.T
        expected = multivariate_normal(np.zeros(n_rows), covariance).logpdf(target)
        assert loglik({"sigma_log__": np.log(sigma)}) == pytest.approx(expected, rel=1e-10)


def exact_noise_posterior(data, grid):
    """The exact posterior density of log sigma on a grid (standardised scale)."""
    from skbayes_re._models import build_linear_model

    pymc_model = build_linear_model(data)
    logp = pymc_model.compile_fn(pymc_model.logp())  # includes the Jacobian
    log_density = np.array([logp({"sigma_log__": t}) for t in grid])
    density = np.exp(log_density - log_density.max())
    return density / np.trapezoid(density, grid)


def test_few_rows_noise_and_coefficients_match_the_exact_posterior():
    """Five rows, two features: the noise posterior is skewed (two residual degrees of
    freedom) and the fit's draws follow the exact one, computed here on another grid; the
    coefficients' posterior sd (a mixture over sigma) too."""
    from skbayes_re._models import linear_data

    X, y = few_rows(5)
    model = BayesianLinearRegressor(random_state=0, n_posterior_samples=20_000).fit(X, y)
    statistics, _, _ = standardised_statistics(model, X, y)
    data = linear_data(statistics)
    grid = np.linspace(-6.0, 3.0, 4001)
    density = exact_noise_posterior(data, grid)
    cdf = np.cumsum(density) * (grid[1] - grid[0])
    exact = np.interp([0.05, 0.5, 0.95], cdf, grid)
    fitted = np.quantile(np.log(model._draws["sigma"] / model._y_scaler.scale), [0.05, 0.5, 0.95])
    # the exact quantiles span 3.1; a Gaussian fit of log sigma put the 95% one 1.16 low
    np.testing.assert_allclose(fitted, exact, atol=0.1)
    # each coefficient's exact posterior: a mixture over sigma of its conditional Gaussians
    from scipy.stats import norm

    weights = density / density.sum()
    sigma = np.exp(grid)
    delta = sigma**2 / 2.5**2
    lam, c, vectors = data["eigenvalues"], data["projections"], data["eigenvectors"]
    means = (c[None, :] / (lam[None, :] + delta[:, None])) @ vectors.T
    sds = np.sqrt((sigma[:, None] ** 2 / (lam[None, :] + delta[:, None])) @ (vectors**2).T)
    scale = model._y_scaler.scale / model._x_scaler.scale
    for j in range(2):
        values = np.linspace(-20.0, 20.0, 8001)
        cdf = norm.cdf((values[:, None] - means[:, 1 + j]) / sds[:, 1 + j]) @ weights
        exact = np.interp([0.05, 0.25, 0.5, 0.75, 0.95], cdf, values) * scale[j]
        fitted = np.quantile(model._draws["coef"][:, j], [0.05, 0.25, 0.5, 0.75, 0.95])
        # within 5% of the exact 90% interval's width
        np.testing.assert_allclose(fitted, exact, atol=0.05 * (exact[-1] - exact[0]))


def test_full_rank_needs_no_second_compiled_step():
    """One parameter is left to approximate, so both methods share one compiled step (a
    full-rank step of its own cost five times mean-field's compile time elsewhere)."""
    from skbayes_re._inference import compiled_structures

    X, y = few_rows(40)
    BayesianLinearRegressor(method="advi", random_state=0).fit(X, y)
    before = compiled_structures()
    model = BayesianLinearRegressor(method="fullrank_advi", random_state=0).fit(X, y)
    assert compiled_structures() == before
    reference = BayesianLinearRegressor(method="advi", random_state=0).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))
