"""Tests of skbayes_re.metrics: CRPS against the Gaussian closed form and scoringrules, log
predictive density against the Normal density, coverage and width on hand-made intervals,
and the scorers in GridSearchCV and grouped cross-validation. Every test uses fixed seeds."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.metrics import get_scorer
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbayes_re import BayesianLinearRegressor, RandomInterceptRegressor
from skbayes_re._predictive import GaussianMixture
from skbayes_re.metrics import (
    SCORERS,
    coverage,
    crps,
    crps_ensemble,
    interval_coverage,
    interval_width,
    log_predictive_density,
    mean_interval_width,
)


def _gaussian_crps(mu, sd, y):
    """CRPS of N(mu, sd) at y: sd * (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi))."""
    z = (y - mu) / sd
    return sd * (z * (2.0 * norm.cdf(z) - 1.0) + 2.0 * norm.pdf(z) - 1.0 / np.sqrt(np.pi))


@pytest.fixture(scope="module")
def linear():
    """200 rows of y = 1 + 2 x + N(0, 1) and a linear model fitted to them."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 1))
    y = 1.0 + 2.0 * X[:, 0] + rng.normal(size=200)
    return X, y, BayesianLinearRegressor(random_state=0).fit(X, y)


def _grouped(seed, n_rows, n_groups, noise_sd=0.5):
    """y = 1 + 2 x + u[g] + noise, group sd 1, labels in a categorical column 'g'."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, n_groups, size=n_rows)
    X = pd.DataFrame({"x": rng.normal(size=n_rows), "g": pd.Categorical(group)})
    effects = rng.normal(0.0, 1.0, size=n_groups)
    y = 1.0 + 2.0 * X["x"].to_numpy() + effects[group] + rng.normal(0.0, noise_sd, n_rows)
    return X, y


# ----------------------------------------------------------------------------------------
# CRPS of draws
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fair", [False, True])
def test_crps_ensemble_matches_gaussian_closed_form(fair):
    rng = np.random.default_rng(1)
    n_draws = 40_000
    mu, sd = rng.normal(size=12), rng.uniform(0.2, 3.0, size=12)
    y = mu + sd * np.linspace(-3.0, 3.0, 12)  # from the centre to far in both tails
    draws = mu[:, None] + sd[:, None] * rng.standard_normal((12, n_draws))
    scores = [crps_ensemble(y[i : i + 1], draws[i : i + 1], fair=fair) for i in range(12)]
    # Monte Carlo error of either term is below sd / sqrt(m): allow 6 of them
    assert_allclose(scores, _gaussian_crps(mu, sd, y), rtol=0, atol=6 * sd.max() / np.sqrt(n_draws))


def test_fair_crps_is_unbiased_with_few_draws():
    """With 5 draws per row the empirical distribution's CRPS exceeds the Gaussian's by
    E|X - X'| / (2 m) = sd / (m sqrt(pi)); the fair estimator does not."""
    rng = np.random.default_rng(2)
    n_rows, m, sd = 40_000, 5, 1.0
    y = rng.normal(size=n_rows)
    draws = rng.normal(size=(n_rows, m))
    expected = float(np.mean(_gaussian_crps(0.0, sd, y)))
    bias = sd / (m * np.sqrt(np.pi))  # 0.113
    assert crps_ensemble(y, draws, fair=True) == pytest.approx(expected, abs=0.01)
    assert crps_ensemble(y, draws) == pytest.approx(expected + bias, abs=0.01)


def test_crps_ensemble_equals_scoringrules():
    sr = pytest.importorskip("scoringrules")
    rng = np.random.default_rng(3)
    y = rng.normal(size=30)
    draws = np.round(rng.normal(size=(30, 17)) * 2.0, 1)  # ties included
    for fair, estimator in [(False, "nrg"), (True, "fair")]:
        reference = sr.crps_ensemble(y, draws, estimator=estimator, backend="numpy")
        ours = [crps_ensemble(y[i : i + 1], draws[i : i + 1], fair=fair) for i in range(30)]
        assert_allclose(ours, reference, rtol=1e-12, atol=1e-14)
        assert crps_ensemble(y, draws, fair=fair) == pytest.approx(np.mean(reference), rel=1e-12)


def test_crps_ensemble_of_one_draw_is_the_absolute_error():
    y, x = np.array([0.0, 1.0, -2.0]), np.array([[0.5], [1.0], [1.0]])
    assert crps_ensemble(y, x) == pytest.approx(np.mean([0.5, 0.0, 3.0]))
    assert crps_ensemble(y, x, sample_weight=[0, 1, 1]) == pytest.approx(1.5)


def test_crps_ensemble_rejects_mismatched_or_too_few_draws():
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        crps_ensemble([0.0, 1.0], [[0.0, 1.0]])
    with pytest.raises(ValueError, match="minimum of 2 is required"):
        crps_ensemble([0.0], [[0.0]], fair=True)


# ----------------------------------------------------------------------------------------
# Intervals
# ----------------------------------------------------------------------------------------


def test_interval_coverage_and_width_on_hand_made_intervals():
    bounds = np.array([[0.0, 1.0], [0.0, 1.0], [-2.0, 2.0], [5.0, 9.0]])
    y = np.array([1.0, 1.5, -2.0, 4.9])  # on a bound, above, on a bound, below
    assert interval_coverage(y, bounds) == 0.5
    assert interval_coverage(y, bounds, sample_weight=[1, 0, 3, 0]) == 1.0
    assert mean_interval_width(bounds) == pytest.approx(2.5)
    assert mean_interval_width(bounds, sample_weight=[0, 0, 1, 1]) == pytest.approx(4.0)
    with pytest.raises(ValueError, match=r"bounds must have shape \(4, 2\)"):
        interval_coverage(y, bounds[:3])


def test_coverage_and_width_of_an_estimator(linear):
    X, y, model = linear
    bounds = model.predict_interval(X, coverage=0.8)
    assert coverage(model, X, y, level=0.8) == interval_coverage(y, bounds)
    assert interval_width(model, X, y, level=0.8) == mean_interval_width(bounds)
    # noise sd 1: a 90% interval is about 2 x 1.645 wide and covers about 90%
    assert interval_width(model, X) == pytest.approx(2 * 1.645, rel=0.06)
    assert 0.85 <= coverage(model, X, y) <= 0.95


# ----------------------------------------------------------------------------------------
# Estimator-level CRPS and log predictive density
# ----------------------------------------------------------------------------------------


def test_crps_of_an_estimator_scores_its_predictive_draws(linear):
    X, y, model = linear
    draws = model.sample_y(X, n_samples=300, random_state=7)
    assert crps(model, X, y, n_draws=300, random_state=7) == crps_ensemble(y, draws, fair=True)
    assert crps(model, X, y) == crps(model, X, y)  # fixed default seed
    mean, std = model.predict(X, return_std=True)
    assert crps(model, X, y) == pytest.approx(np.mean(_gaussian_crps(mean, std, y)), rel=0.02)


def _hand_made_mixture(model, monkeypatch, loc, scale):
    """Make ``model`` predict each row as the mixture of its row of ``loc`` and ``scale``."""

    def chunks(X):
        yield slice(0, loc.shape[0]), GaussianMixture(loc, scale)

    monkeypatch.setattr(model, "_predictive_chunks", chunks)


def test_log_predictive_density_of_one_draw_is_the_normal_log_density(linear, monkeypatch):
    _, _, model = linear
    loc, scale = np.array([[0.0], [2.0], [-1.0]]), np.array([[1.0], [0.5], [3.0]])
    y = np.array([0.3, 1.0, 8.0])
    _hand_made_mixture(model, monkeypatch, loc, scale)
    expected = norm.logpdf(y, loc[:, 0], scale[:, 0])
    assert_allclose(model._log_predictive_density(np.zeros((3, 1)), y), expected, rtol=1e-13)
    score = log_predictive_density(model, np.zeros((3, 1)), y)
    assert score == pytest.approx(np.mean(expected), rel=1e-13)
    weighted = log_predictive_density(model, np.zeros((3, 1)), y, sample_weight=[1, 0, 1])
    assert weighted == pytest.approx(np.mean(expected[[0, 2]]), rel=1e-13)


def test_log_predictive_density_of_a_mixture_is_finite_far_in_a_tail(linear, monkeypatch):
    _, _, model = linear
    loc, scale = np.array([[0.0, 1.0], [0.0, 1.0]]), np.array([[1.0, 2.0], [1.0, 2.0]])
    y = np.array([0.5, 200.0])  # the second row's density underflows to 0 in floats
    _hand_made_mixture(model, monkeypatch, loc, scale)
    per_row = model._log_predictive_density(np.zeros((2, 1)), y)
    assert per_row[0] == pytest.approx(np.log(np.mean(norm.pdf(0.5, loc[0], scale[0]))))
    assert per_row[1] == pytest.approx(logsumexp(norm.logpdf(200.0, loc[1], scale[1])) - np.log(2))
    assert np.mean(norm.pdf(200.0, loc[1], scale[1])) == 0.0


def test_log_predictive_density_of_a_noise_free_fit_is_a_point_mass():
    X = pd.DataFrame({"x": np.arange(20.0), "g": pd.Categorical(np.arange(20) % 4)})
    with pytest.warns(UserWarning, match="y is constant"):
        model = RandomInterceptRegressor(random_state=0).fit(X, np.full(20, 3.0))
    per_row = model._log_predictive_density(X.iloc[:3], [3.0, 3.5, 3.0])
    assert per_row.tolist() == [np.inf, -np.inf, np.inf]


def test_log_predictive_density_of_a_fit_is_the_gaussian_noise_density(linear):
    X, y, model = linear
    mean, std = model.predict(X, return_std=True)
    # a mixture over draws of nearly equal Normals: close to the moment-matched Normal
    expected = np.mean(norm.logpdf(y, mean, std))
    assert log_predictive_density(model, X, y) == pytest.approx(expected, abs=0.01)


def test_functions_take_a_pipeline(linear):
    X, y, _ = linear
    pipeline = make_pipeline(StandardScaler(), BayesianLinearRegressor(random_state=0)).fit(X, y)
    scaled, model = pipeline[0].transform(X), pipeline[-1]
    assert crps(pipeline, X, y) == crps(model, scaled, y)
    assert log_predictive_density(pipeline, X, y) == log_predictive_density(model, scaled, y)
    assert coverage(pipeline, X, y) == coverage(model, scaled, y)


# ----------------------------------------------------------------------------------------
# Scorers
# ----------------------------------------------------------------------------------------


def test_scorers_by_name_are_ours_and_deterministic(linear):
    X, y, model = linear
    for name, scorer in SCORERS.items():
        assert type(get_scorer(name)) is type(scorer)
        assert get_scorer(name)(model, X, y) == scorer(model, X, y)
        assert pickle.loads(pickle.dumps(scorer))(model, X, y) == scorer(model, X, y)  # n_jobs
    assert SCORERS["neg_crps"](model, X, y) == -crps(model, X, y)
    assert SCORERS["log_predictive_density"](model, X, y) == log_predictive_density(model, X, y)
    assert SCORERS["coverage_error"](model, X, y) == -abs(coverage(model, X, y) - 0.9)
    weights = np.r_[np.zeros(100), np.ones(100)]
    weighted = SCORERS["neg_crps"](model, X, y, sample_weight=weights)
    assert weighted == pytest.approx(-crps(model, X[100:], y[100:]), rel=0.05)


def test_names_resolve_when_imported_before_model_selection():
    """Modules imported after skbayes_re.metrics copy our names with scikit-learn's own."""
    script = (
        "import skbayes_re.metrics\n"
        "from sklearn.model_selection import GridSearchCV, cross_val_score\n"
        "from sklearn.utils._param_validation import StrOptions\n"
        "[names] = [c.options for c in GridSearchCV._parameter_constraints['scoring']\n"
        "           if isinstance(c, StrOptions)]\n"
        "assert {'neg_crps', 'log_predictive_density', 'coverage_error'} <= names\n"
        "assert 'neg_crps' in cross_val_score._skl_parameter_constraints['scoring'][0].options\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)


def test_a_name_taken_in_scikit_learn_is_left_alone(monkeypatch):
    from sklearn.metrics import _scorer

    import skbayes_re.metrics as metrics

    theirs = get_scorer("r2")
    monkeypatch.setitem(_scorer._SCORERS, "neg_crps", theirs)
    with pytest.warns(UserWarning, match="already has a scorer named 'neg_crps'"):
        metrics._register_scorers()
    assert _scorer._SCORERS["neg_crps"] is theirs
    assert type(metrics.get_scorer("neg_crps")) is type(SCORERS["neg_crps"])


def test_grid_search_by_crps_picks_the_calibrated_prior():
    """prior_scale=0.01 (on the standardised scale) shrinks the slope and the group effects
    towards zero, so its 90% intervals are off-centre: about 0.55-0.7 of held-out rows
    inside, against 0.9 for the default 2.5 (measured on four seeds). neg_crps must prefer
    2.5, and the held-out coverages show why."""
    X, y = _grouped(seed=1, n_rows=600, n_groups=60)
    train, test = slice(0, 300), slice(300, None)
    grid = {"prior_scale": [0.01, 2.5]}
    search = GridSearchCV(RandomInterceptRegressor(random_state=0), grid, scoring="neg_crps", cv=3)
    search.fit(X.iloc[train], y[train])
    assert search.best_params_ == {"prior_scale": 2.5}
    tight, default = search.cv_results_["mean_test_score"]
    assert default > tight + 0.3  # CRPS lower by 0.3 (y has sd of about 2.3)
    covered = {
        scale: coverage(
            RandomInterceptRegressor(prior_scale=scale, random_state=0).fit(
                X.iloc[train], y[train]
            ),
            X.iloc[test],
            y[test],
        )
        for scale in grid["prior_scale"]
    }
    assert covered[0.01] < 0.75
    assert 0.85 <= covered[2.5] <= 0.95


@pytest.mark.filterwarnings("ignore:None of the labels of grouping column:UserWarning")
def test_grouped_cross_validation_covers_unseen_groups():
    """Every test row's group is unseen in its fold: the intervals must add the spread of a
    new group's effect to reach their nominal 90%."""
    X, y = _grouped(seed=0, n_rows=900, n_groups=150)
    scoring = {"coverage": coverage, "coverage_error": "coverage_error", "neg_crps": "neg_crps"}
    scores = cross_validate(
        RandomInterceptRegressor(random_state=0),
        X,
        y,
        groups=X["g"],
        cv=GroupKFold(3),
        scoring=scoring,
        return_indices=True,
    )
    for train, test in zip(*scores["indices"].values(), strict=True):
        assert not set(X["g"].iloc[train]) & set(X["g"].iloc[test])
    fold_coverage = scores["test_coverage"]
    assert_allclose(scores["test_coverage_error"], -np.abs(fold_coverage - 0.9))
    assert np.all((fold_coverage > 0.78) & (fold_coverage < 0.98)), fold_coverage
    assert 0.84 <= np.mean(fold_coverage) <= 0.95, fold_coverage
    assert np.all(scores["test_neg_crps"] < 0)
