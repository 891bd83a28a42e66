"""Negative-binomial counts with a log link: Poisson counts whose rate varies beyond the
model's effects.

    y ~ NegativeBinomial(mean = exp(eta), Var = mu + mu^2 / dispersion)
    1 / dispersion ~ HalfNormal(1)

The prior sits on the inverse dispersion, so it shrinks towards the Poisson model
(``1 / dispersion = 0``) and needs the data to show overdispersion. As for the Poisson family,
the target is not standardised and a row costs an exponential and three ``gammaln``.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from ._family import NUMPY, Family, non_negative_counts, tensor

__all__ = ["NEGATIVE_BINOMIAL"]

_MIN_INVERSE_DISPERSION = 0.05


def _add_priors(box, scale) -> dict:
    import pymc as pm

    inverse = pm.HalfNormal("inverse_dispersion", 1.0)
    return {"dispersion": 1.0 / inverse}


def nb_log_density(y, eta, phi, ops=NUMPY):
    """Negative-binomial log probability of ``y`` with log mean ``eta`` and dispersion
    ``phi`` (also for non-integer ``y``), written with ``ops`` (``NUMPY`` or ``tensor()``)."""
    log_total = ops.logaddexp(ops.log(phi), eta)  # log(phi + mu)
    return (
        ops.gammaln(y + phi)
        - ops.gammaln(phi)
        - ops.gammaln(y + 1.0)
        + phi * (ops.log(phi) - log_total)
        + y * (eta - log_total)
    )


def _log_density(y, eta, params):
    return nb_log_density(y, eta, params["dispersion"], tensor())


def _start(target, fitted, weights) -> tuple[dict, dict]:
    """The inverse dispersion by moments from the working fit's means: the excess of the
    squared residuals over the Poisson variance, relative to the squared mean."""
    mu = np.exp(fitted)
    excess = np.sum((np.asarray(target) - mu) ** 2 - mu) / max(np.sum(mu**2), 1e-12)
    inverse = max(float(excess), _MIN_INVERSE_DISPERSION)
    return {"inverse_dispersion_log__": np.log(inverse)}, {"inverse_dispersion_log__": 0.1}


def _dispersion(params):
    return params["dispersion"]


def _log_pdf(y, eta, params):
    return nb_log_density(np.asarray(y)[:, None], eta, _dispersion(params))


def _cdf(y, eta, params):
    count = np.floor(np.asarray(y))[:, None]
    phi = _dispersion(params)
    success = phi / (phi + np.exp(eta))
    return np.where(count < 0, 0.0, special.betainc(phi, np.maximum(count, 0.0) + 1.0, success))


def _ppf(prob, eta, params):
    phi = _dispersion(params)
    return stats.nbinom.ppf(prob, phi, phi / (phi + np.exp(eta)))


def _sample(eta, params, rng):
    phi = np.broadcast_to(_dispersion(params), eta.shape)
    rate = rng.gamma(phi, np.exp(eta) / phi)
    return rng.poisson(rate).astype(np.float64)


NEGATIVE_BINOMIAL = Family(
    name="negative_binomial",
    link="log",
    discrete=True,
    standardise_target=False,
    check_target=non_negative_counts("negative_binomial"),
    parameters=("dispersion",),
    add_priors=_add_priors,
    log_density=_log_density,
    start=_start,
    to_original=lambda draws, y_scale: {"dispersion": 1.0 / draws["inverse_dispersion"]},
    mean=lambda eta, params: np.exp(eta),
    variance=lambda eta, params: np.exp(eta) + np.exp(2.0 * eta) / _dispersion(params),
    cdf=_cdf,
    log_pdf=_log_pdf,
    ppf=_ppf,
    sample=_sample,
)
