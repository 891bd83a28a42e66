"""Acceptance tests of RandomEffectsRegressor (correlated random slopes).

Agreement with a NUTS reference posterior on sleepstudy, recovery of known truth with crossed
factors, predictive coverage for seen and unseen groups, five-fold MAE against statsmodels'
MixedLM, the exact likelihood behind the fit, input validation and model selection.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import multivariate_normal
from sklearn.compose import ColumnTransformer
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbayes_re import RandomEffectsRegressor, RandomInterceptRegressor
from skbayes_re.datasets import load_sleepstudy

SLEEP_SLOPES = {"subject": ["days"]}

# NUTS reference for Reaction ~ Days + (1 + Days | Subject) with the estimator's priors, from
# `python benchmarks/nuts_sleepstudy_reference.py` (4 chains x 5,000 draws, tune 2,000, seed
# 20240601, 0 divergences, max r_hat 1.0000, min ess_bulk 2903): (mean, sd), original units.
NUTS_INTERCEPT = (251.58289, 8.39343)
NUTS_COEF = (10.51846, 1.65305)
NUTS_SIGMA = (25.80662, 1.53700)
NUTS_SD_INTERCEPT = (31.50031, 7.71872)
NUTS_SD_SLOPE = (6.26207, 1.39191)
NUTS_CORR = (-0.10180, 0.28116)
NUTS_SLOPE_EFFECT_MEAN = np.array(
    [9.23076, -8.15413, -4.98315, -5.29754, -3.49263, -0.48884, -0.55451, 1.12363, -10.92731]
    + [8.16468, 1.51848, 6.84883, -3.17110, 3.21598, 0.78469, 5.19217, -1.05158, 1.05777]
)
NUTS_SLOPE_EFFECT_SD = 2.9  # every subject's is 2.77-2.96


@pytest.fixture(scope="module")
def sleepstudy():
    return load_sleepstudy()


@pytest.fixture(scope="module")
def sleep_model(sleepstudy):
    X, y = sleepstudy
    return RandomEffectsRegressor(random_slopes=SLEEP_SLOPES, random_state=0).fit(X, y)


# ----------------------------------------------------------------------------------------
# 1. Agreement with NUTS on sleepstudy
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sleepstudy_matches_nuts(sleepstudy, seed):
    X, y = sleepstudy
    model = RandomEffectsRegressor(random_slopes=SLEEP_SLOPES, random_state=seed).fit(X, y)
    estimates = {
        "intercept": (model.intercept_, NUTS_INTERCEPT),
        "coef": (model.coef_[0], NUTS_COEF),
        "sigma": (model.sigma_, NUTS_SIGMA),
        "sd intercept": (model.group_sd_["subject"]["intercept"], NUTS_SD_INTERCEPT),
        "sd slope": (model.group_sd_["subject"]["days"], NUTS_SD_SLOPE),
        "correlation": (model.group_corr_["subject"].loc["intercept", "days"], NUTS_CORR),
    }
    for name, (value, (mean, sd)) in estimates.items():
        assert abs(value - mean) <= 0.25 * sd, f"{name}: {value:.4g} vs NUTS {mean} +- {sd}"
    slopes = model.group_effects_["subject"]["days"].to_numpy()
    assert np.max(np.abs(slopes - NUTS_SLOPE_EFFECT_MEAN)) <= 0.25 * NUTS_SLOPE_EFFECT_SD


def test_sleepstudy_posterior_spread_matches_nuts(sleep_model):
    """Not only the means: the posterior sds of the fixed effects and of the group scales
    are within 25% of NUTS's."""
    post = sleep_model.posterior_.posterior
    sd = post["group_sd_subject"].values.reshape(-1, 2).std(axis=0)
    assert_allclose(sd, [NUTS_SD_INTERCEPT[1], NUTS_SD_SLOPE[1]], rtol=0.25)
    assert_allclose(post["coef"].values.reshape(-1).std(), NUTS_COEF[1], rtol=0.25)
    corr = post["group_corr_subject"].values.reshape(-1, 2, 2)[:, 0, 1]
    assert_allclose(corr.std(), NUTS_CORR[1], rtol=0.25)


# ----------------------------------------------------------------------------------------
# 2. Fitted attributes and prediction
# ----------------------------------------------------------------------------------------


def test_fitted_attributes_shapes_and_consistency(sleep_model, sleepstudy):
    X, _ = sleepstudy
    effects = sleep_model.group_effects_["subject"]
    assert isinstance(effects, pd.DataFrame)
    assert list(effects.columns) == ["intercept", "days"]
    assert list(effects.index) == sorted(X["subject"].astype(str).unique())
    cov, corr = sleep_model.group_cov_["subject"], sleep_model.group_corr_["subject"]
    assert list(cov.index) == list(cov.columns) == ["intercept", "days"]
    assert_allclose(cov.to_numpy(), cov.to_numpy().T)
    assert np.all(np.linalg.eigvalsh(cov.to_numpy()) > 0)
    assert_allclose(np.diag(corr.to_numpy()), 1.0)
    sd = sleep_model.group_sd_["subject"]
    assert isinstance(sd, pd.Series)
    # sd is the mean of per-draw sds, cov the mean of per-draw covariances: sd^2 <= cov
    assert np.all(sd.to_numpy() ** 2 <= np.diag(cov.to_numpy()) + 1e-9)
    post = sleep_model.posterior_.posterior
    assert post["effect_subject"].dims[2:] == ("group_subject", "term_subject")
    assert list(post["term_subject"].values) == ["intercept", "days"]
    assert post["group_corr_subject"].shape[2:] == (2, 2)


def test_seen_group_prediction_uses_its_line(sleep_model, sleepstudy):
    X, _ = sleepstudy
    rows = X.iloc[:10]  # subject 308, days 0-9
    line = sleep_model.group_effects_["subject"].loc[str(rows["subject"].iloc[0])]
    expected = (
        sleep_model.intercept_
        + line["intercept"]
        + (sleep_model.coef_[0] + line["days"]) * rows["days"].to_numpy()
    )
    assert_allclose(sleep_model.predict(rows), expected, rtol=2e-3)


def test_unseen_group_spread_grows_with_slope_feature(sleep_model):
    days = np.arange(0.0, 20.0)
    new = pd.DataFrame({"days": days, "subject": pd.Categorical(["new"] * len(days))})
    mean, std = sleep_model.predict(new, return_std=True)
    assert_allclose(mean, sleep_model.intercept_ + sleep_model.coef_[0] * days, rtol=5e-3)
    # the variance is quadratic in days: v' Sigma v + sigma^2, v = (1, days)
    cov = sleep_model.group_cov_["subject"].to_numpy()
    expected = np.sqrt(
        cov[0, 0] + 2 * cov[0, 1] * days + cov[1, 1] * days**2 + sleep_model.sigma_**2
    )
    assert_allclose(std, expected, rtol=0.05)
    assert std[-1] > 1.5 * std[0]


def test_without_slopes_is_the_random_intercept_model(sleepstudy):
    X, y = sleepstudy
    ours = RandomEffectsRegressor(random_state=3).fit(X, y)
    reference = RandomInterceptRegressor(random_state=3).fit(X, y)
    assert_array_equal(ours.predict(X), reference.predict(X))
    assert isinstance(ours.group_effects_["subject"], pd.Series)
    assert ours.group_cov_["subject"].shape == (1, 1)


def test_reproducible_bit_for_bit(sleepstudy):
    X, y = sleepstudy
    first = RandomEffectsRegressor(random_slopes=SLEEP_SLOPES, random_state=7).fit(X, y)
    second = RandomEffectsRegressor(random_slopes=SLEEP_SLOPES, random_state=7).fit(X, y)
    assert_array_equal(first.predict_interval(X), second.predict_interval(X))
    assert_array_equal(
        first.group_effects_["subject"].to_numpy(), second.group_effects_["subject"].to_numpy()
    )


# ----------------------------------------------------------------------------------------
# 3. Five-fold MAE on sleepstudy against random intercepts and MixedLM
# ----------------------------------------------------------------------------------------


def _mixedlm_slopes_mae(X_train, y_train, X_test, y_test) -> float:
    sm = pytest.importorskip("statsmodels.formula.api")
    frame = X_train.assign(y=np.asarray(y_train), subject=X_train["subject"].astype(str))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sm.mixedlm("y ~ days", frame, groups="subject", re_formula="~days").fit()
    blups = {str(k): v for k, v in result.random_effects.items()}
    fe = result.fe_params
    predictions = []
    for days, subject in zip(X_test["days"], X_test["subject"].astype(str), strict=True):
        offset = blups.get(subject, pd.Series({"Group": 0.0, "days": 0.0}))
        predictions.append(fe["Intercept"] + offset.iloc[0] + (fe["days"] + offset.iloc[1]) * days)
    return mean_absolute_error(y_test, predictions)


def test_sleepstudy_five_fold_mae(sleepstudy):
    X, y = sleepstudy
    maes = {"slopes": [], "intercepts": [], "mixedlm": []}
    for train, test in KFold(5, shuffle=True, random_state=0).split(X):
        X_train, X_test, y_train, y_test = X.iloc[train], X.iloc[test], y.iloc[train], y.iloc[test]
        slopes = RandomEffectsRegressor(random_slopes=SLEEP_SLOPES, random_state=0)
        intercepts = RandomInterceptRegressor(random_state=0)
        maes["slopes"].append(
            mean_absolute_error(y_test, slopes.fit(X_train, y_train).predict(X_test))
        )
        maes["intercepts"].append(
            mean_absolute_error(y_test, intercepts.fit(X_train, y_train).predict(X_test))
        )
        maes["mixedlm"].append(_mixedlm_slopes_mae(X_train, y_train, X_test, y_test))
    mae = {name: float(np.mean(values)) for name, values in maes.items()}
    assert mae["slopes"] < mae["intercepts"]
    assert mae["slopes"] <= 1.01 * mae["mixedlm"], mae


# ----------------------------------------------------------------------------------------
# 4. The likelihood behind the fit, against a direct computation
# ----------------------------------------------------------------------------------------


def _tiny_crossed(seed=0, n=60):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 3))
    target = rng.normal(size=n)
    codes = [rng.integers(0, 5, size=n), rng.integers(0, 4, size=n), rng.integers(0, 3, size=n)]
    return features, target, codes, [5, 4, 3]


def _slope_design(features, slope):
    return np.column_stack([np.ones(len(features)), features[:, slope]])


@pytest.mark.filterwarnings("ignore:PyTensor could not link to a BLAS")
def test_integrated_likelihood_equals_the_marginal_normal_density():
    """Three crossed factors (slopes on two, the first integrated out): the model's
    log-likelihood at a point equals the multivariate normal density of y with the first
    factor's effects integrated out by hand."""

    from pytensor.compile.mode import Mode

    from skbayes_re._models import build_gaussian_re_model, gaussian_re_statistics

    features, target, codes, n_groups = _tiny_crossed()
    slopes = [[0, 2], [], [1]]
    data = gaussian_re_statistics(features, target, codes, n_groups, 2.5, slopes)
    model = build_gaussian_re_model(data)
    rng = np.random.default_rng(1)
    point = model.initial_point()
    point = {name: rng.normal(scale=0.5, size=np.shape(v)) for name, v in point.items()}
    loglik_term = next(term for term in model.potentials if term.name == "loglik")
    c_mode = Mode(linker="cvm", optimizer="fast_run")  # the C backend the engine uses
    loglik = model.compile_logp(vars=[loglik_term], jacobian=False, mode=c_mode)(point)

    values = {v.name: point[v.name] for v in model.value_vars}
    b = np.concatenate([[values["alpha"]], values["beta"]])
    sigma = np.exp(values["sigma_log__"])
    tau0 = np.exp(values["sigma_group_0_log__"])
    from skbayes_re._models.slopes import lkj_cholesky_numpy

    chol0 = tau0[:, None] * lkj_cholesky_numpy(values["corr_group_0"][None], 3)[0]
    u1 = np.exp(values["sigma_group_1_log__"]) * values["z_group_1"]
    chol2 = (
        np.exp(values["sigma_group_2_log__"])[:, None]
        * lkj_cholesky_numpy(values["corr_group_2"][None], 2)[0]
    )
    u2 = values["z_group_2"] @ chol2.T
    design = np.column_stack([np.ones(len(target)), features])
    mean = design @ b + u1[codes[1]]
    mean += np.sum(_slope_design(features, [1]) * u2[codes[2]], axis=1)
    v0 = _slope_design(features, [0, 2])
    same = codes[0][:, None] == codes[0][None, :]
    cov = sigma**2 * np.eye(len(target)) + same * (v0 @ chol0 @ chol0.T @ v0.T)
    assert_allclose(loglik, multivariate_normal(mean, cov).logpdf(target), rtol=1e-10)


def test_statistics_do_not_depend_on_row_blocks():
    from skbayes_re._models import gaussian_re_statistics_chunked

    features, target, codes, n_groups = _tiny_crossed()
    slopes = [[0, 2], [], [1]]
    whole = gaussian_re_statistics_chunked([(features, target)], codes, n_groups, 2.5, slopes)
    blocks = [(features[i : i + 7], target[i : i + 7]) for i in range(0, len(target), 7)]
    split = gaussian_re_statistics_chunked(blocks, codes, n_groups, 2.5, slopes)
    assert whole.keys() == split.keys()
    for name in whole:
        assert_allclose(split[name], whole[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_conditional_effect_draws_have_the_conditional_moments():
    """Given fixed hyperparameters, the integrated-out factor's draws have the mean and
    covariance of the exact conditional Gaussian (here from a dense computation)."""
    from skbayes_re._models import gaussian_re_statistics
    from skbayes_re._models.collapsed import conditional_effect_draws

    features, target, codes, n_groups = _tiny_crossed(seed=2, n=80)
    codes, n_groups = codes[:1], n_groups[:1]
    data = gaussian_re_statistics(features, target, codes, n_groups, 2.5, [[0]])
    n_draws = 4000
    alpha, beta, sigma = 0.3, np.array([0.5, -0.2, 0.1]), 0.8
    tau, raw = np.array([0.7, 0.4]), np.array([0.5])
    draws = {
        "alpha": np.full(n_draws, alpha),
        "beta": np.tile(beta, (n_draws, 1)),
        "sigma": np.full(n_draws, sigma),
        "sigma_group_0": np.tile(tau, (n_draws, 1)),
        "corr_group_0": np.tile(raw, (n_draws, 1)),
    }
    conditional_effect_draws(data, draws, 0, 2, [2], np.random.default_rng(0))
    u = draws["u_group_0"].astype(float)
    from skbayes_re._models.slopes import lkj_cholesky_numpy

    chol = tau[:, None] * lkj_cholesky_numpy(raw[None], 2)[0]
    prior = chol @ chol.T
    residual = target - alpha - features @ beta
    for g in range(n_groups[0]):
        rows = codes[0] == g
        v = _slope_design(features[rows], [0])
        cov = np.linalg.inv(v.T @ v / sigma**2 + np.linalg.inv(prior))
        mean = cov @ v.T @ residual[rows] / sigma**2
        error = np.abs(u[:, g].mean(axis=0) - mean)
        assert np.all(error <= 4 * np.sqrt(np.diag(cov) / n_draws)), (g, error)
        assert_allclose(np.cov(u[:, g].T), cov, rtol=0.1, atol=0.02)


# ----------------------------------------------------------------------------------------
# 5. Simulated truth: crossed factors, slopes on the first
# ----------------------------------------------------------------------------------------

TRUE_SD = np.array([1.0, 0.5, 0.3])
TRUE_CORR = np.array([[1.0, 0.3, -0.2], [0.3, 1.0, 0.1], [-0.2, 0.1, 1.0]])


def _simulate_crossed(rng, n_rows, groups, effects):
    """Rows whose first-factor group is drawn from ``groups`` (labels index ``effects``)."""
    u, w = effects
    X = rng.normal(size=(n_rows, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -1.0]
    first = rng.choice(groups, size=n_rows)
    second = rng.integers(0, len(w), size=n_rows)
    y = 1.0 + X @ [0.5, -0.3, 0.8] + u[first, 0] + u[first, 1] * X[:, 0] + u[first, 2] * X[:, 1]
    y += w[second] + rng.normal(size=n_rows)
    frame = pd.DataFrame(X, columns=["x0", "x1", "x2"])
    frame["school"] = pd.Categorical(first)
    frame["region"] = pd.Categorical(second)
    return frame, y


@pytest.mark.slow
def test_simulated_crossed_slopes_truth_and_coverage():
    """50,000 rows, 3 features, two crossed factors of 500 and 40 groups, slopes on two
    features by the first: 90% posterior intervals cover the true sds and correlations;
    predictive 90% intervals cover 0.87-0.93 of new rows of seen and of unseen groups."""
    rng = np.random.default_rng(0)
    cov = TRUE_CORR * np.outer(TRUE_SD, TRUE_SD)
    effects = (rng.multivariate_normal(np.zeros(3), cov, size=600), rng.normal(0, 0.7, 40))
    seen, unseen = np.arange(500), np.arange(500, 600)
    X, y = _simulate_crossed(rng, 50_000, seen, effects)
    model = RandomEffectsRegressor(random_slopes={"school": ["x0", "x1"]}, random_state=0)
    model.fit(X, y)
    post = model.posterior_.posterior
    sd = post["group_sd_school"].values.reshape(-1, 3)
    low, high = np.quantile(sd, [0.05, 0.95], axis=0)
    assert np.all((low <= TRUE_SD) & (TRUE_SD <= high)), (low, high)
    corr = post["group_corr_school"].values.reshape(-1, 3, 3)
    upper = np.triu_indices(3, 1)
    low, high = np.quantile(corr[:, upper[0], upper[1]], [0.05, 0.95], axis=0)
    truth = TRUE_CORR[upper]
    assert np.all((low <= truth) & (truth <= high)), (low, high)
    # the 40 regions (1,250 rows each) are fitted centred: their sd's interval is honest
    region_sd = post["group_sd_region"].values.ravel()
    low, high = np.quantile(region_sd, [0.05, 0.95])
    assert low <= 0.7 <= high and high - low > 0.15, (low, high)
    for label, groups in [("seen", seen), ("unseen", unseen)]:
        X_new, y_new = _simulate_crossed(rng, 5_000, groups, effects)
        bounds = model.predict_interval(X_new, coverage=0.9)
        coverage = np.mean((bounds[:, 0] <= y_new) & (y_new <= bounds[:, 1]))
        assert 0.87 <= coverage <= 0.93, (label, coverage)


def test_well_informed_intercept_factors_are_centred():
    """Beside a factor with slopes, an intercept factor whose groups hold many rows is fitted
    centred, one whose groups hold few rows non-centred."""
    from skbayes_re._models import gaussian_re_statistics, gaussian_re_structure, mark_centred

    rng = np.random.default_rng(3)
    n = 6000
    features = rng.normal(size=(n, 2))
    codes = [rng.integers(0, 50, n), rng.integers(0, 10, n), rng.integers(0, 2000, n)]
    effects = [rng.normal(0, 1.0, 50), rng.normal(0, 1.0, 10), rng.normal(0, 0.3, 2000)]
    slope = rng.normal(0, 0.5, 50)
    target = features @ [1.0, -1.0] + slope[codes[0]] * features[:, 0] + rng.normal(size=n)
    target += sum(effect[code] for effect, code in zip(effects, codes, strict=True))
    data = gaussian_re_statistics(features, target, codes, [50, 10, 2000], 2.5, [[0], [], []])
    data = mark_centred(data)
    assert "centred_1" in data and "centred_2" not in data  # 600 rows a group vs 3
    assert gaussian_re_structure(data)[-1] == (1,)


# ----------------------------------------------------------------------------------------
# 6. Input validation and model selection
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("random_slopes", "message"),
    [
        ({"subject": ["hours"]}, "'hours' is not a column of X"),
        ({"subject": ["subject"]}, "a grouping column"),
        ({"days": ["days"]}, "not a grouping column"),
        ({"nope": ["days"]}, "'nope' is not a column of X"),
        ({"subject": ["days", "days"]}, "names a column twice"),
        ({"subject": ["days"], 1: ["days"]}, "names grouping column 1 twice"),
        (["days"], "'random_slopes' parameter .* must be an instance of 'dict'"),
    ],
)
def test_bad_random_slopes_raise_value_errors(sleepstudy, random_slopes, message):
    X, y = sleepstudy
    model = RandomEffectsRegressor(random_slopes=random_slopes)
    with pytest.raises(ValueError, match=message):
        model.fit(X, y)


def test_positional_random_slopes_on_arrays(sleepstudy):
    X, y = sleepstudy
    array = np.column_stack([X["days"], X["subject"].cat.codes])
    model = RandomEffectsRegressor(groups=[1], random_slopes={1: [0]}, random_state=0)
    model.fit(array, y)
    assert list(model.group_effects_[1].columns) == ["intercept", "x0"]
    with pytest.raises(ValueError, match="out of range: X has 2 feature"):
        RandomEffectsRegressor(groups=[1], random_slopes={1: [5]}).fit(array, y)


def test_grid_search_over_random_slopes_in_a_pipeline(sleepstudy):
    X, y = sleepstudy
    X = X.assign(noise=np.random.default_rng(0).normal(size=len(X)))
    pre = ColumnTransformer(
        [("num", StandardScaler(), ["noise"])],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    pipe = make_pipeline(pre, RandomEffectsRegressor(groups=["subject"], random_state=0))
    grid = {"randomeffectsregressor__random_slopes": [None, {"subject": ["days"]}]}
    search = GridSearchCV(pipe, grid, cv=3, scoring="neg_mean_absolute_error", n_jobs=2)
    search.fit(X, y)
    serial = GridSearchCV(pipe, grid, cv=3, scoring="neg_mean_absolute_error", n_jobs=1)
    serial.fit(X, y)
    assert_allclose(search.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"])
    assert search.best_params_["randomeffectsregressor__random_slopes"] == {"subject": ["days"]}
