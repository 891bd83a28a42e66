"""The exact posterior of the linear and one-factor random-intercept models
(``_models/exact.py``): its likelihood against the dense stacking of ``few_rows.py``, its
conditional draws against the closed form, its fits against statsmodels' MixedLM and NUTS,
its intervals' coverage, and that it needs neither PyMC nor a compiler."""

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from skbayes_re import BayesianLinearRegressor, RandomEffectsRegressor, RandomInterceptRegressor
from skbayes_re._models import gaussian_re_statistics, gaussian_re_statistics_chunked
from skbayes_re._models.exact import _Intercepts, use_exact
from skbayes_re._models.few_rows import _Model


def grouped_data(seed=0, n_rows=60, n_groups=7, tau=0.5, weights=False):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_rows, 3))
    codes = rng.integers(0, n_groups, n_rows)
    effects = rng.normal(0.0, tau, n_groups)
    target = features @ [0.3, -0.2, 0.1] + effects[codes] + rng.normal(size=n_rows)
    row_weights = rng.uniform(0.5, 2.0, n_rows) if weights else None
    return features, target, codes, row_weights


@pytest.mark.parametrize("sizes", [[1], []])
def test_likelihood_is_the_dense_stacked_one(sizes):
    """Weighted rows, random theta: the arrowhead elimination by distinct group sizes gives
    the dense ``P x P`` integrated likelihood to rounding."""
    features, target, codes, weights = grouped_data(weights=True)
    codes_, levels = ([codes], [7]) if sizes else ([], [])
    chunks = [(features, target, weights)]
    data = gaussian_re_statistics_chunked(chunks, codes_, levels, 2.0)
    theta = np.random.default_rng(1).normal(0.0, 0.7, size=(6, 1 + len(sizes)))
    ours = _Intercepts(data, sizes).log_likelihood(theta)
    dense = _Model(data, sizes).log_likelihood(theta)
    np.testing.assert_allclose(ours, dense, rtol=1e-11, atol=1e-9)


def test_conditional_draws_have_the_closed_form_moments():
    """Given one theta, 40,000 draws of the coefficients and effects: means within 4 Monte
    Carlo standard errors of the dense closed form, covariances within 0.03 of it."""
    features, target, codes, _ = grouped_data()
    data = gaussian_re_statistics(features, target, [codes], [7], 2.0)
    theta = np.array([[-0.2, -0.5]])
    dense = _Model(data, [1])
    sigma, factor, chol, _, solved = dense._solve(theta)
    mean = factor[0] @ solved[0] / sigma[0] ** 2
    system = chol[0] @ chol[0].T
    covariance = factor[0] @ np.linalg.solve(system, factor[0].T)
    draws = _Intercepts(data, [1]).coefficient_draws(
        np.repeat(theta, 40_000, axis=0), np.random.default_rng(2)
    )
    stacked = np.column_stack([draws["alpha"], draws["beta"], draws["u_group_0"]])
    standard_error = np.sqrt(np.diag(covariance) / len(stacked))
    assert np.all(np.abs(stacked.mean(axis=0) - mean) < 4.0 * standard_error)
    np.testing.assert_allclose(np.cov(stacked.T), covariance, atol=0.03 * np.max(covariance))


def test_used_for_the_linear_model_and_one_intercept_factor_only():
    features, target, codes, _ = grouped_data()
    one = gaussian_re_statistics(features, target, [codes], [7], 2.0)
    two = gaussian_re_statistics(features, target, [codes, codes % 3], [7, 3], 2.0)
    none = gaussian_re_statistics(features, target, [], [], 2.0)
    assert use_exact(one, [1]) and use_exact(none, [])
    assert not use_exact(two, [1, 1]) and not use_exact(one, [2])


def simulated_frame(seed, n_rows, n_groups, tau=0.4):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n_rows, 3)), columns=["a", "b", "c"])
    X["g"] = rng.integers(0, n_groups, n_rows)
    effects = rng.normal(0.0, tau, n_groups)
    y = 1.0 + X[["a", "b", "c"]].to_numpy() @ [0.5, -0.3, 0.2] + effects[X["g"]]
    return X, y + rng.normal(0.0, 1.0, n_rows)


def test_agrees_with_mixedlm():
    """4,000 rows, 40 groups: the coefficients' posterior means within 0.1 posterior sd of
    MixedLM's REML estimates, the noise sd within 1%, the group sd's posterior median
    within 10% of REML's."""
    import statsmodels.formula.api as smf

    X, y = simulated_frame(3, 4000, 40)
    model = RandomInterceptRegressor(groups=["g"], random_state=0).fit(X, y)
    assert model.loss_curve_ == [] and model.n_iter_ > 0  # no ADVI; the mode search
    frame = X.assign(y=y)
    reml = smf.mixedlm("y ~ a + b + c", frame, groups=frame["g"]).fit(reml=True)
    sd = model._draws["coef"].std(axis=0)
    gap = np.abs(model.coef_ - reml.fe_params[["a", "b", "c"]].to_numpy()) / sd
    assert np.all(gap < 0.1), gap
    assert abs(model.sigma_ / np.sqrt(reml.scale) - 1.0) < 0.01
    group_sd = np.median(model._draws["group_sd"][0])
    assert abs(group_sd / np.sqrt(float(reml.cov_re.iloc[0, 0])) - 1.0) < 0.1


def test_intervals_cover_seen_and_new_groups():
    """Three simulated sets (1,500 rows, 30 groups): 90% predictive intervals on fresh rows
    of the seen groups and of 30 new groups cover 0.87-0.93 on average."""
    seen, new = [], []
    for seed in range(3):
        X, y = simulated_frame(seed, 4500, 60)
        train = (X["g"] < 30).to_numpy() & (np.arange(len(X)) < 3000)
        fresh_seen = (X["g"] < 30).to_numpy() & (np.arange(len(X)) >= 3000)
        fresh_new = (X["g"] >= 30).to_numpy()
        model = RandomInterceptRegressor(groups=["g"], random_state=seed).fit(X[train], y[train])
        for rows, store in ((fresh_seen, seen), (fresh_new, new)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # the new groups, as meant
                bounds = model.predict_interval(X[rows], coverage=0.9)
            store.append(np.mean((y[rows] >= bounds[:, 0]) & (y[rows] <= bounds[:, 1])))
    assert 0.87 <= np.mean(seen) <= 0.93, seen
    assert 0.87 <= np.mean(new) <= 0.93, new


@pytest.mark.slow
def test_agrees_with_nuts():
    """300 rows, 10 groups, the same model on the standardised scale sampled by NUTS (4 x
    1,000 draws): the 10%, 50% and 90% quantiles of the noise sd, the group sd, a
    coefficient and a seen group's effect within 0.15 of NUTS's posterior sd."""
    import pymc as pm

    X, y = simulated_frame(9, 300, 10)
    model = RandomInterceptRegressor(groups=["g"], n_posterior_samples=4000, random_state=0)
    model.fit(X, y)
    features = X[["a", "b", "c"]].to_numpy()
    x = (features - features.mean(axis=0)) / features.std(axis=0)
    y_scale = y.std()
    target = (y - y.mean()) / y_scale
    codes = X["g"].to_numpy()
    with pm.Model():
        alpha = pm.Normal("alpha", 0.0, model.prior_scale)
        beta = pm.Normal("beta", 0.0, model.prior_scale, shape=3)
        sigma = pm.HalfNormal("sigma", model.prior_scale)
        sigma_g = pm.HalfNormal("sigma_g", model.prior_scale)
        u = pm.Normal("u", 0.0, sigma_g, shape=10)
        pm.Normal("y", alpha + x @ beta + u[codes], sigma, observed=target)
        trace = pm.sample(1000, tune=1000, chains=4, random_seed=1, progressbar=False)
    posterior = trace.posterior
    nuts = {
        "sigma": posterior["sigma"].values.ravel(),
        "group": posterior["sigma_g"].values.ravel(),
        "beta": posterior["beta"].values[..., 0].ravel(),
        "effect": posterior["u"].values[..., 0].ravel(),
    }
    draws = model._draws
    ours = {
        "sigma": draws["sigma"] / y_scale,
        "group": draws["group_sd"][0] / y_scale,
        "beta": draws["coef"][:, 0] * features[:, 0].std() / y_scale,
        "effect": draws["effects"][0][:, 0] / y_scale,
    }
    for name, reference in nuts.items():
        for level in (0.1, 0.5, 0.9):
            gap = np.quantile(ours[name], level) - np.quantile(reference, level)
            assert abs(gap) < 0.15 * np.std(reference), (name, level, gap)


def test_advi_remains_available_and_agrees():
    """``method="advi"`` runs the engine; its posterior means agree with the exact ones
    within 0.5 posterior sd (mean-field narrows, it does not move)."""
    X, y = simulated_frame(5, 3000, 30)
    exact = RandomInterceptRegressor(groups=["g"], random_state=0).fit(X, y)
    advi = RandomInterceptRegressor(groups=["g"], method="advi", random_state=0).fit(X, y)
    assert exact.loss_curve_ == [] and len(advi.loss_curve_) == advi.n_iter_ > 0
    sd = exact._draws["coef"].std(axis=0)
    assert np.all(np.abs(exact.coef_ - advi.coef_) < 0.5 * sd)
    assert abs(exact.sigma_ / advi.sigma_ - 1.0) < 0.02


def test_reproducible_and_weights_are_repeated_rows():
    X, y = simulated_frame(6, 400, 12)
    first = RandomInterceptRegressor(groups=["g"], random_state=1).fit(X, y)
    second = RandomInterceptRegressor(groups=["g"], random_state=1).fit(X, y)
    np.testing.assert_array_equal(first.predict_interval(X), second.predict_interval(X))
    weights = np.r_[np.full(200, 2.0), np.ones(200)]
    doubled = pd.concat([X.iloc[:200], X])
    weighted = RandomInterceptRegressor(groups=["g"], random_state=1)
    weighted.fit(X, y, sample_weight=weights)
    repeated = RandomInterceptRegressor(groups=["g"], random_state=1)
    repeated.fit(doubled, np.r_[y[:200], y])
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-7, atol=1e-9)


def test_slopes_and_crossed_factors_keep_advi():
    X, y = simulated_frame(7, 600, 10)
    X["h"] = np.arange(len(X)) % 4
    crossed = RandomInterceptRegressor(groups=["g", "h"], max_iter=300, random_state=0)
    slopes = RandomEffectsRegressor(
        groups=["g"], random_slopes={"g": ["a"]}, max_iter=300, random_state=0
    )
    for model in (crossed, slopes):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # few steps: only the route
            model.fit(X, y)
        assert model.n_iter_ > 0


def test_first_fit_imports_no_pymc():
    """In a fresh process, the linear and random-intercept fits and their predictions load
    neither PyMC nor PyTensor (nothing to import or compile)."""
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import pandas as pd
        from skbayes_re import BayesianLinearRegressor, RandomInterceptRegressor
        rng = np.random.default_rng(0)
        X = pd.DataFrame({"a": rng.normal(size=300), "g": rng.integers(0, 9, 300)})
        y = X["a"] + rng.normal(size=300)
        RandomInterceptRegressor(groups=["g"]).fit(X, y).predict_interval(X)
        BayesianLinearRegressor().fit(X[["a"]], y).sample_y(X[["a"]])
        print(sorted(name for name in ("pymc", "pytensor") if name in sys.modules))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_linear_model_matches_the_engine_route():
    """The linear model's exact route and its ADVI route (which computes the same posterior
    around its fit) agree: coefficients within 0.1 posterior sd, noise sd within 1%."""
    X, y = simulated_frame(8, 2000, 5)
    features = X[["a", "b", "c"]]
    exact = BayesianLinearRegressor(random_state=0).fit(features, y)
    advi = BayesianLinearRegressor(method="advi", random_state=0).fit(features, y)
    sd = exact._draws["coef"].std(axis=0)
    assert np.all(np.abs(exact.coef_ - advi.coef_) < 0.1 * sd)
    assert abs(exact.sigma_ / advi.sigma_ - 1.0) < 0.01
