"""RandomEffectsClassifier with three or more classes (the multinomial model): recovery of a
simulated multinomial mixed model, agreement with statsmodels' MNLogit where there are no
groups and with NUTS on the same model, calibrated probabilities for seen and new groups,
sample weights, and its input errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skbayes_re import RandomEffectsClassifier
from skbayes_re._models.families.categorical import class_probabilities, one_hot

COEF = np.array([[1.0, -0.5], [-1.0, 0.8]])  # classes "b" and "c" against "a"
INTERCEPT = np.array([0.3, -0.2])
GROUP_SD = np.array([0.8, 0.4])
LABELS = np.array(["a", "b", "c"])


def _grouped_classes(seed, n_rows=6000, n_groups=60, label_shift=0):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, n_rows)
    effects = rng.normal(size=(n_groups, 2))
    effects = GROUP_SD * (effects - effects.mean(axis=0)) / effects.std(axis=0)
    X = pd.DataFrame({"x1": rng.normal(size=n_rows), "x2": rng.normal(size=n_rows)})
    X["g"] = pd.Categorical(groups + label_shift)
    eta = INTERCEPT + X[["x1", "x2"]].to_numpy() @ COEF.T + effects[groups]
    probability = class_probabilities(eta)
    index = np.sum(rng.random(n_rows)[:, None] > np.cumsum(probability, axis=1), axis=1)
    return X, LABELS[np.minimum(index, 2)], probability


@pytest.fixture(scope="module")
def fitted():
    X, y, probability = _grouped_classes(0)
    model = RandomEffectsClassifier(random_state=0).fit(X[:3000], y[:3000])
    return model, X, y, probability


def test_recovers_the_coefficients_and_group_spreads(fitted):
    model, *_ = fitted
    assert_array_equal(model.classes_, LABELS)
    assert model.coef_.shape == (3, 2) and model.intercept_.shape == (3,)
    assert_array_equal(model.coef_[0], 0.0)
    sd = model.posterior_.posterior["coef"].std(dim=("chain", "draw")).to_numpy()
    assert np.all(np.abs(model.coef_[1:] - COEF) < 3.0 * sd)
    assert np.all(np.abs(model.intercept_[1:] - INTERCEPT) < 0.4)
    assert 0.55 < model.group_sd_["g"]["b"] < 1.1
    assert 0.15 < model.group_sd_["g"]["c"] < 0.65
    assert list(model.group_effects_["g"].columns) == ["b", "c"]


def test_probabilities_are_calibrated_for_seen_and_new_groups(fitted):
    """Each class's predicted probability against its observed rate, by decile, on held-out
    rows of the fitted groups and on 300 groups never seen."""
    model, X, y, _ = fitted
    new_X, new_y, _ = _grouped_classes(1, n_rows=3000, n_groups=300, label_shift=1000)
    for rows, labels in [(X[3000:], y[3000:]), (new_X, new_y)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # no label seen in fit, on purpose
            probability = model.predict_proba(rows)
        assert_allclose(probability.sum(axis=1), 1.0)
        for c, label in enumerate(LABELS):
            predicted, observed = probability[:, c], labels == label
            deciles = np.quantile(predicted, np.linspace(0, 1, 11))
            bins = np.clip(np.searchsorted(deciles, predicted, side="right") - 1, 0, 9)
            gaps = [
                abs(predicted[bins == b].mean() - observed[bins == b].mean()) for b in range(10)
            ]
            assert max(gaps) < 0.09, (label, gaps)


def test_log_loss_near_the_true_model_and_below_one_hot_logistic_regression(fitted):
    """Held-out log-loss within 0.03 of the true probabilities' and below scikit-learn's
    multinomial LogisticRegression with one-hot groups (unpenalised groups overfit)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    model, X, y, probability = fitted
    ours = log_loss(y[3000:], model.predict_proba(X[3000:]))
    dummies = pd.get_dummies(X, columns=["g"], dtype=float)
    reference = LogisticRegression(C=1e4, max_iter=5000).fit(dummies[:3000], y[:3000])
    theirs = log_loss(y[3000:], reference.predict_proba(dummies[3000:]))
    truth = log_loss(y[3000:], probability[3000:])
    assert ours < truth + 0.03, (ours, truth)
    assert ours < theirs, (ours, theirs)


def test_decisions_and_draws_agree_with_the_probabilities(fitted):
    model, X, *_ = fitted
    rows = X.head(200)
    probability = model.predict_proba(rows)
    assert_array_equal(model.predict(rows), LABELS[np.argmax(probability, axis=1)])
    decision = model.decision_function(rows)
    assert decision.shape == (200, 3)
    assert_allclose(decision, np.log(probability) - np.log(probability[:, :1]))
    assert_allclose(model.predict_log_proba(rows), np.log(probability))
    draws = model.sample_y(rows.head(3), n_samples=20_000, random_state=0)
    frequencies = np.stack([(draws == label).mean(axis=1) for label in LABELS], axis=1)
    assert np.max(np.abs(frequencies - probability[:3])) < 0.015


def test_same_seed_same_fit():
    X, y, _ = _grouped_classes(3, n_rows=800, n_groups=10)
    first = RandomEffectsClassifier(random_state=4).fit(X, y).predict_proba(X.head(50))
    second = RandomEffectsClassifier(random_state=4).fit(X, y).predict_proba(X.head(50))
    assert_array_equal(first, second)


def test_without_groups_it_matches_statsmodels_mnlogit():
    """No grouping column: the multinomial logit with class "a" as reference, as statsmodels'
    MNLogit fits it; the weak prior moves the posterior means by far less than their sd."""
    sm = pytest.importorskip("statsmodels.api")
    X, y, _ = _grouped_classes(2, n_rows=3000)
    X = X[["x1", "x2"]]
    model = RandomEffectsClassifier(groups=None, random_state=0).fit(X, y)
    codes = np.searchsorted(LABELS, y)
    reference = sm.MNLogit(codes, sm.add_constant(X.to_numpy())).fit(disp=0)
    posterior = model.posterior_.posterior
    intercept_sd = posterior["intercept"].std(dim=("chain", "draw")).to_numpy()
    coef_sd = posterior["coef"].std(dim=("chain", "draw")).to_numpy()
    assert np.all(np.abs(model.intercept_[1:] - reference.params[0]) < 0.25 * intercept_sd)
    assert np.all(np.abs(model.coef_[1:] - reference.params[1:].T) < 0.25 * coef_sd)
    assert_allclose(coef_sd, reference.bse[1:].T, rtol=0.25)


def test_weight_two_counts_a_row_twice():
    X, y, _ = _grouped_classes(4, n_rows=1500, n_groups=20)
    weights = np.where(np.arange(1500) % 3 == 0, 2.0, 1.0)
    repeated = np.repeat(np.arange(1500), weights.astype(int))
    weighted = RandomEffectsClassifier(random_state=0).fit(X, y, sample_weight=weights)
    copies = RandomEffectsClassifier(random_state=0).fit(X.iloc[repeated], y[repeated])
    sd = copies.posterior_.posterior["coef"].std(dim=("chain", "draw")).to_numpy()
    assert np.all(np.abs(weighted.coef_[1:] - copies.coef_[1:]) < 0.3 * sd)


def test_two_classes_keep_the_logistic_model():
    X, y, _ = _grouped_classes(5, n_rows=1000, n_groups=10)
    binary = np.where(y == "a", "a", "other")
    model = RandomEffectsClassifier(random_state=0).fit(X, binary)
    assert model.coef_.shape == (2,) and isinstance(model.intercept_, float)
    assert model.decision_function(X.head(3)).shape == (3,)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"random_slopes": {"g": ["x1"]}}, "random_slopes is for two classes"),
        ({"offset": "x2"}, "offset is for two classes"),
    ],
)
def test_options_for_two_classes_only(options, message):
    X, y, _ = _grouped_classes(6, n_rows=300, n_groups=5)
    with pytest.raises(ValueError, match=message):
        RandomEffectsClassifier(**options).fit(X, y)


def test_intervals_need_an_ordered_outcome(fitted):
    model, X, *_ = fitted
    with pytest.raises(ValueError, match="ordered outcome"):
        model.predict_interval(X.head(2))


def test_posterior_names_classes_and_features(fitted):
    model, *_ = fitted
    posterior = model.posterior_.posterior
    assert posterior["coef"].dims[2:] == ("class", "feature")
    assert list(posterior["class"].values) == ["b", "c"]
    assert posterior["effect_g"].shape[2:] == (60, 2)


@pytest.mark.slow
def test_agrees_with_nuts():
    """2,000 rows, 30 groups: ADVI's posterior means of the coefficients and group sds within
    0.3 NUTS posterior sd of NUTS on the estimator's own PyMC model (measured: 0.05 and
    0.13 at most)."""
    import pymc as pm

    from skbayes_re import _models

    X, y, _ = _grouped_classes(7, n_rows=2000, n_groups=30)
    model = RandomEffectsClassifier(n_posterior_samples=2000, random_state=0).fit(X, y)
    features = X[["x1", "x2"]].to_numpy()
    standardised = (features - features.mean(axis=0)) / features.std(axis=0)
    codes = [X["g"].cat.codes.to_numpy()]
    data = _models.multinomial_data(
        standardised, one_hot(np.searchsorted(LABELS, y), 3), codes, [30], None, 2.5
    )
    data = _models.mark_centred_classes(data, _models.multinomial_start(data, 0))
    with _models.build_multinomial(data):
        trace = pm.sample(1000, tune=1000, chains=4, random_seed=1, progressbar=False)
    posterior = trace.posterior
    nuts_beta = posterior["beta"].values.reshape(-1, 2, 2) / features.std(axis=0)[None, :, None]
    nuts = {
        "coef": np.transpose(nuts_beta, (0, 2, 1)),
        "group_sd": posterior["sigma_group_0"].values.reshape(-1, 2),
    }
    ours = {"coef": model._draws["coef"], "group_sd": model._draws["group_sd"][0]}
    for name, reference in nuts.items():
        gap = np.abs(ours[name].mean(axis=0) - reference.mean(axis=0)) / reference.std(axis=0)
        assert np.all(gap < 0.3), (name, gap)


def test_minibatch_fit_agrees_with_the_full_batch_fit(fitted):
    """The fixture's 3,000 rows in batches of 500: coefficients within 0.5 posterior sd of
    the full-batch fit, group sds within 15%."""
    model, X, y, _ = fitted
    batched = RandomEffectsClassifier(batch_size=500, random_state=0).fit(X[:3000], y[:3000])
    sd = model.posterior_.posterior["coef"].std(dim=("chain", "draw")).to_numpy()
    assert np.all(np.abs(batched.coef_[1:] - model.coef_[1:]) < 0.5 * sd)
    ratio = batched.group_sd_["g"].to_numpy() / model.group_sd_["g"].to_numpy()
    assert np.all(np.abs(ratio - 1.0) < 0.15), ratio
