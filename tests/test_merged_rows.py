"""Rows sharing a design point merged for the families linear in the target: the merged
likelihood equals the rows' as a function of the parameters, continuous features leave the
rows alone, and merged fits agree with fits on every row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import expit, logsumexp

from skbayes_re import RandomEffectsClassifier, RandomInterceptRegressor
from skbayes_re._models import merged_rows
from skbayes_re._models.families.categorical import one_hot
from skbayes_re._models.families.poisson import poisson_log_pmf
from skbayes_re._models.merged_rows import merge_shared_rows


def _categorical_design(seed, n_rows=5000, n_groups=20):
    rng = np.random.default_rng(seed)
    features = rng.integers(0, 2, size=(n_rows, 3)).astype(float)
    codes = rng.integers(0, n_groups, n_rows)
    weights = rng.integers(1, 4, n_rows).astype(float)
    return rng, features, codes, weights


def _bernoulli(y, eta):
    return y * eta - np.logaddexp(0.0, eta)


def _categorical(shares, eta):
    logits = np.column_stack([np.zeros(len(eta)), eta])
    return np.sum(shares[:, 1:] * eta, axis=1) - logsumexp(logits, axis=1)


@pytest.mark.parametrize("family", ["bernoulli", "poisson", "categorical"])
def test_merged_likelihood_moves_with_the_parameters_as_the_rows_do(family):
    """For two parameter values, the log-likelihood difference of the merged rows equals
    that of every row (the merged likelihood differs by a constant at most)."""
    rng, features, codes, weights = _categorical_design(0)
    n_rows = len(codes)
    if family == "bernoulli":
        target, density = rng.integers(0, 2, n_rows).astype(float), _bernoulli
    elif family == "poisson":
        target = rng.poisson(2.0, n_rows).astype(float)
        density = lambda y, eta: poisson_log_pmf(y, eta[:, None])[:, 0]  # noqa: E731
    else:
        target, density = one_hot(rng.integers(0, 3, n_rows), 3), _categorical
    merged = merge_shared_rows(features, target, [codes], None, weights)
    kept_features, kept_target, (kept_codes,), _, kept_weights = merged
    assert len(kept_codes) <= 8 * 20 < n_rows
    assert_allclose(kept_weights.sum(), weights.sum())
    differences = []
    width = 2 if family == "categorical" else 1
    for seed in (1, 2):
        draw = np.random.default_rng(seed)
        coef = draw.normal(size=(3, width))
        effects = draw.normal(size=(20, width))

        def log_likelihood(x, y, g, w, coef=coef, effects=effects):
            eta = x @ coef + effects[g]
            return np.sum(w * density(y, eta if eta.shape[1] > 1 else eta[:, 0]))

        differences.append(
            (
                log_likelihood(features, target, codes, weights),
                log_likelihood(kept_features, kept_target, kept_codes, kept_weights),
            )
        )
    (rows_1, merged_1), (rows_2, merged_2) = differences
    assert_allclose(merged_1 - merged_2, rows_1 - rows_2, rtol=1e-10)
    if family != "poisson":  # no term of the target alone: equal, not only up to a constant
        assert_allclose(merged_1, rows_1, rtol=1e-10)


def test_a_continuous_feature_leaves_the_rows_alone():
    rng, features, codes, weights = _categorical_design(1)
    features[:, 0] = rng.normal(size=len(codes))
    target = rng.integers(0, 2, len(codes)).astype(float)
    kept = merge_shared_rows(features, target, [codes], None, None)
    assert kept[0] is features and kept[4] is None


def test_rows_differing_in_offset_or_group_stay_apart():
    features = np.zeros((6, 1))
    codes = [np.array([0, 0, 1, 1, 0, 0])]
    offset = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    target = np.array([1.0, 3.0, 2.0, 2.0, 5.0, 7.0])
    _, merged, (kept_codes,), kept_offset, weight = merge_shared_rows(
        features, target, codes, offset, None
    )
    assert_array_equal(np.column_stack([kept_codes, kept_offset]), [[0, 0], [0, 1], [1, 0]])
    assert_array_equal(merged, [2.0, 6.0, 2.0])
    assert_array_equal(weight, [2.0, 2.0, 2.0])


def _grouped_counts(seed, n_rows=20_000, n_groups=40):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.integers(0, 2, size=(n_rows, 3)).astype(float), columns=["a", "b", "c"])
    groups = rng.integers(0, n_groups, n_rows)
    X["g"] = pd.Categorical(groups)
    eta = 0.3 + X[["a", "b", "c"]].to_numpy() @ np.array([0.5, -0.3, 0.2])
    eta = eta + rng.normal(scale=0.4, size=n_groups)[groups]
    return X, eta, rng


def _posterior_gap(merged, every_row):
    sd = every_row.posterior_.posterior["coef"].std(dim=("chain", "draw")).to_numpy()
    gap = np.abs(merged.coef_ - every_row.coef_)
    return np.max((gap[1:] if gap.ndim == 2 else gap) / sd)  # multiclass: class 0's row is 0


@pytest.mark.parametrize("kind", ["poisson", "binary", "three classes"])
def test_merged_fit_agrees_with_the_fit_on_every_row(kind, monkeypatch):
    """20,000 rows of 3 binary features and 40 groups (at most 320 design points): the fit on
    the merged rows and the fit on every row (merging switched off) agree within 0.1
    posterior sd on every coefficient, and within 3% on the group sd."""
    X, eta, rng = _grouped_counts(3)
    if kind == "poisson":
        y = rng.poisson(np.exp(eta)).astype(float)
        make = lambda: RandomInterceptRegressor(likelihood="poisson", random_state=0)  # noqa: E731
    elif kind == "binary":
        y = (rng.random(len(eta)) < expit(eta)).astype(int)
        make = lambda: RandomEffectsClassifier(random_state=0)  # noqa: E731
    else:
        y = np.where(rng.random(len(eta)) < expit(eta), "b", np.where(X["a"] > 0, "a", "c"))
        make = lambda: RandomEffectsClassifier(random_state=0)  # noqa: E731
    merged = make().fit(X, y)
    monkeypatch.setattr(merged_rows, "MAX_SHARE", 0.0)  # nothing merges
    every_row = make().fit(X, y)
    assert _posterior_gap(merged, every_row) < 0.1
    for a, b in [(merged.group_sd_["g"], every_row.group_sd_["g"])]:
        assert_allclose(np.asarray(a), np.asarray(b), rtol=0.03)
