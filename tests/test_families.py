"""The likelihood families' NumPy parts against SciPy, and the predictive mixtures built on
them (quantiles, means, draws) against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from skbayes_re._models.families import FAMILIES
from skbayes_re._predictive import FamilyMixture, GaussianMixture

RNG = np.random.default_rng(0)
ETA = RNG.normal(1.0, 0.7, size=(5, 3))
Y = np.array([0.0, 1.0, 3.0, 7.0, 2.0])


def _scipy(name, eta, params):
    """SciPy's frozen distribution of each entry of ``eta``."""
    if name == "poisson":
        return stats.poisson(np.exp(eta))
    if name == "negative_binomial":
        phi = params["dispersion"]
        return stats.nbinom(phi, phi / (phi + np.exp(eta)))
    return stats.t(params["nu"], loc=eta, scale=params["sigma"])


PARAMS = {
    "poisson": {},
    "negative_binomial": {"dispersion": np.array([[0.5, 2.0, 9.0]])},
    "student_t": {"sigma": np.array([[0.5, 1.0, 2.0]]), "nu": np.array([[2.5, 4.0, 30.0]])},
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_family_functions_match_scipy(name):
    family, params = FAMILIES[name], PARAMS[name]
    reference = _scipy(name, ETA, params)
    log_pdf = reference.logpmf(Y[:, None]) if family.discrete else reference.logpdf(Y[:, None])
    assert_allclose(family.log_pdf(Y, ETA, params), log_pdf, rtol=1e-10)
    assert_allclose(family.cdf(Y, ETA, params), reference.cdf(Y[:, None]), rtol=1e-10)
    assert_allclose(family.mean(ETA, params), reference.mean(), rtol=1e-12)
    assert_allclose(family.variance(ETA, params), reference.var(), rtol=1e-10)
    assert_allclose(family.ppf(0.8, ETA, params), reference.ppf(0.8), rtol=1e-10)


@pytest.mark.parametrize("name", ["poisson", "negative_binomial"])
def test_count_support_check_names_the_likelihood_and_values(name):
    with pytest.raises(ValueError, match=rf"likelihood='{name}'.*negative.*-2, -1"):
        FAMILIES[name].check_target(np.array([1.0, -1.0, 2.0, -2.0]))
    with pytest.raises(ValueError, match="zero in every row"):
        FAMILIES[name].check_target(np.zeros(4))
    FAMILIES[name].check_target(np.array([0.5, 2.0]))  # non-integer counts are accepted


def _mixture(name, n_draws=400):
    rng = np.random.default_rng(1)
    eta = rng.normal(1.5, 0.3, size=(4, n_draws))
    draws = {
        "poisson": {},
        "negative_binomial": {"dispersion": rng.uniform(1.0, 3.0, n_draws)},
        "student_t": {
            "sigma": rng.uniform(0.5, 1.0, n_draws),
            "nu": rng.uniform(3.0, 8.0, n_draws),
        },
    }[name]
    return FamilyMixture(FAMILIES[name], eta, draws)


@pytest.mark.parametrize("name", sorted(PARAMS))
@pytest.mark.parametrize("prob", [0.05, 0.5, 0.95])
def test_mixture_quantile_is_where_the_mixture_cdf_crosses(name, prob):
    mixture = _mixture(name)
    quantile = mixture.quantile(prob)
    rows = np.arange(4)
    at = mixture._cdf(rows, quantile)
    assert np.all(at >= prob - 1e-9)
    if mixture.family.discrete:  # the smallest integer reaching prob
        assert_allclose(quantile, np.round(quantile))
        assert np.all(mixture._cdf(rows, quantile - 1.0) < prob)
    else:
        assert_allclose(at, prob, atol=1e-7)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_mixture_moments_and_draws_agree(name):
    mixture = _mixture(name)
    mean, std = mixture.mean_std()
    draws = mixture.sample(20_000, np.random.default_rng(2))
    assert_allclose(draws.mean(axis=1), mean, rtol=0.03)
    assert_allclose(draws.std(axis=1), std, rtol=0.06)
    low, high = mixture.quantile(0.05), mixture.quantile(0.95)
    inside = np.mean((draws >= low[:, None]) & (draws <= high[:, None]), axis=1)
    assert np.all(inside >= 0.88) and np.all(inside <= (0.97 if mixture.family.discrete else 0.92))


def test_log_density_of_a_single_draw_is_the_component_density():
    loc, scale, y = np.array([[0.3]]), np.array([[1.7]]), np.array([1.1])
    expected = stats.norm(0.3, 1.7).logpdf(1.1)
    assert_allclose(GaussianMixture(loc, scale).log_density(y), [expected], rtol=1e-12)
    mixture = FamilyMixture(FAMILIES["poisson"], np.log([[2.5]]), {})
    assert_allclose(mixture.log_density(np.array([4.0])), [stats.poisson(2.5).logpmf(4)])
