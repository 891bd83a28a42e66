"""RandomEffectsClassifier: recovery of a simulated logistic mixed model, agreement with
statsmodels' logistic regression where the groups carry nothing, calibrated probabilities for
seen and new groups, binomial proportions (lme4's cbpp), and its input errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import expit

from skbayes_re import RandomEffectsClassifier
from skbayes_re.datasets import load_cbpp

COEF = np.array([1.5, -0.5])


def _grouped_binary(seed, n_rows=6000, n_groups=60, group_sd=1.0, label_shift=0):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, n_rows)
    effects = rng.normal(size=n_groups)
    effects = group_sd * (effects - effects.mean()) / effects.std()
    X = pd.DataFrame({"x1": rng.normal(size=n_rows), "x2": rng.normal(size=n_rows)})
    X["g"] = pd.Categorical(groups + label_shift)
    probability = expit(-0.5 + X[["x1", "x2"]].to_numpy() @ COEF + effects[groups])
    y = np.where(rng.random(n_rows) < probability, "yes", "no")
    return X, y, probability


@pytest.fixture(scope="module")
def fitted():
    X, y, probability = _grouped_binary(0)
    model = RandomEffectsClassifier(random_state=0).fit(X[:3000], y[:3000])
    return model, X, y, probability


def test_recovers_the_coefficients_and_group_spread(fitted):
    model, *_ = fitted
    assert_array_equal(model.classes_, ["no", "yes"])
    sd = model.posterior_.posterior["coef"].std(dim=("chain", "draw")).to_numpy()
    assert np.all(np.abs(model.coef_ - COEF) < 3.0 * sd)
    assert abs(model.intercept_ + 0.5) < 0.4
    assert 0.75 < model.group_sd_["g"] < 1.3


def test_probabilities_are_calibrated_on_held_out_rows_and_new_groups(fitted):
    model, X, y, _ = fitted
    new_X, new_y, _ = _grouped_binary(1, n_rows=3000, n_groups=300, label_shift=1000)
    for rows, labels in [(X[3000:], y[3000:]), (new_X, new_y)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # no label seen in fit, on purpose
            predicted = model.predict_proba(rows)[:, 1]
        observed = labels == "yes"
        deciles = np.quantile(predicted, np.linspace(0, 1, 11))
        bins = np.clip(np.searchsorted(deciles, predicted, side="right") - 1, 0, 9)
        gaps = [abs(predicted[bins == b].mean() - observed[bins == b].mean()) for b in range(10)]
        assert max(gaps) < 0.08, gaps


def test_new_groups_average_over_the_group_spread(fitted):
    """For a new group the probability is E[sigmoid(eta + u)], u ~ Normal(0, sigma_g): pulled
    towards 1/2 from the population's sigmoid(eta)."""
    model, X, *_ = fitted
    row = X.iloc[:1].copy()
    row["g"] = pd.Categorical([999])
    with pytest.warns(UserWarning, match="None of the labels"):
        unseen = model.predict_proba(row)[0, 1]
    eta = model.intercept_ + row[["x1", "x2"]].to_numpy()[0] @ model.coef_
    z = np.random.default_rng(0).standard_normal(200_000)
    expected = expit(eta + model.group_sd_["g"] * z).mean()
    assert abs(unseen - expected) < 0.03
    assert abs(unseen - 0.5) < abs(expit(eta) - 0.5)


def test_without_group_effects_it_matches_statsmodels_logit():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"x1": rng.normal(size=4000), "x2": rng.normal(size=4000)})
    y = (rng.random(4000) < expit(0.3 + X.to_numpy() @ COEF)).astype(int)
    model = RandomEffectsClassifier(groups=None, random_state=0).fit(X, y)
    logit = sm.Logit(y, sm.add_constant(X)).fit(disp=0)
    assert_allclose(model.coef_, logit.params.iloc[1:], atol=0.25 * logit.bse.iloc[1:].min())
    assert_allclose(model.predict_proba(X)[:, 1], logit.predict(sm.add_constant(X)), atol=0.01)


def test_binomial_proportions_with_trials_match_lme4_on_cbpp():
    """lme4's cbpp fit (Laplace): intercept -1.398, periods -0.992, -1.128, -1.580; the
    posterior means lie within 0.1 of it (posterior sds 0.3-0.4); the herd sd's posterior
    mean sits above lme4's maximum-likelihood 0.642, as with 15 herds it should."""
    X, y, size = load_cbpp()
    model = RandomEffectsClassifier(random_state=0).fit(X, y, sample_weight=size)
    assert_array_equal(model.classes_, [0, 1])
    assert abs(model.intercept_ + 1.398) < 0.1
    assert_allclose(model.coef_, [-0.992, -1.128, -1.580], atol=0.1)
    assert 0.6 < model.group_sd_["herd"] < 1.0


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (["a"] * 6, "one class"),
        ([0.5, 1.5, 0.2, 0.1, 0.0, 1.0], "Unknown label type"),
    ],
)
def test_bad_targets_are_clear_errors(y, message):
    X = pd.DataFrame({"x": np.arange(6.0), "g": pd.Categorical([0, 0, 1, 1, 2, 2])})
    with pytest.raises(ValueError, match=message):
        RandomEffectsClassifier(max_iter=5).fit(X, y)


def test_decision_function_and_log_proba_agree_with_predict_proba(fitted):
    model, X, *_ = fitted
    probability = model.predict_proba(X[:50])
    assert_allclose(model.predict_log_proba(X[:50]), np.log(probability))
    decision = model.decision_function(X[:50])
    assert_allclose(decision, np.log(probability[:, 1] / probability[:, 0]))
    assert_array_equal(model.predict(X[:50]), np.where(decision > 0, "yes", "no"))
    assert not hasattr(model, "partial_fit")
