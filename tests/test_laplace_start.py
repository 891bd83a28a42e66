"""The Laplace start of the per-row models: one factor's solver (its diagonal group block
eliminated) against the dense solve, and the scale it finds for many groups."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import expit

from skbayes_re._models import laplace_start


def _grouped(seed, n_rows, n_groups, link):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_rows, 3))
    code = rng.integers(0, n_groups, n_rows)
    eta = features @ np.array([0.3, -0.2, 0.1]) + rng.normal(0.0, 0.5, n_groups)[code]
    if link == "logit":
        target = (rng.random(n_rows) < expit(eta)).astype(float)
    else:
        target = rng.negative_binomial(5.0, 5.0 / (5.0 + np.exp(eta))).astype(float)
    return features, target, code


def _start(features, target, code, n_groups, link):
    shift = np.zeros(len(target))
    return laplace_start.laplace_start(
        features,
        target,
        shift,
        np.ones(len(target)),
        [code],
        [n_groups],
        2.5,
        laplace_start.first_predictor(link, target, shift),
        link == "log",  # the negative binomial's dispersion (and so the leverages) too
        link,
    )


@pytest.mark.parametrize("link", ["logit", "log"])
def test_one_factor_solver_equals_the_dense_solve(link, monkeypatch):
    features, target, code = _grouped(0, 3000, 200, link)
    dense = _start(features, target, code, 200, link)
    monkeypatch.setattr(laplace_start, "MAX_GROUPS", 10)  # 200 groups now take the other path
    monkeypatch.setattr(laplace_start, "BLOCK_ROWS", 700)  # and its products run in blocks
    eliminated = _start(features, target, code, 200, link)
    for position in (0, 1):  # means, then sds
        for name, value in dense[position].items():
            assert_allclose(eliminated[position][name], value, rtol=1e-9, atol=1e-12)
    if link == "log":
        assert_allclose(eliminated[2], dense[2], rtol=1e-9)


def test_many_groups_start_near_the_true_scale():
    """200,000 binary rows in 5,000 groups (sd 0.5): the start's group sd within 0.05 of the
    truth (penalised quasi-likelihood, used there before, started at half of it)."""
    features, target, code = _grouped(1, 200_000, 5000, "logit")
    means, _, _ = _start(features, target, code, 5000, "logit")
    assert abs(np.exp(means["sigma_group_0_log__"]) - 0.5) < 0.05
    assert_allclose(means["beta"], [0.3, -0.2, 0.1], atol=0.03)
