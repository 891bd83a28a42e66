"""Student-t noise: a heavy-tailed likelihood whose degrees of freedom are learned.

    y ~ StudentT(nu, eta, sigma),   sigma ~ HalfNormal(s),   nu ~ Gamma(2, 0.1)

on the standardised target (``s = prior_scale``); ``Gamma(2, 0.1)`` is the usual weakly
informative prior on the degrees of freedom (mean 20, 5% below 3.6). With ``nu`` large the
model is the Gaussian one; small ``nu`` lets a few far-out rows sit in the tails instead of
inflating ``sigma``. A row costs a logarithm and nothing is pre-summed: the per-row model
sums this density over the rows it sees.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from ._family import Family, check_finite_support

__all__ = ["STUDENT_T"]

_START_ROWS = 20_000
_NU_BOUNDS = (1.0, 100.0)


def _add_priors(box, scale) -> dict:
    import pymc as pm

    return {
        "sigma": pm.HalfNormal("sigma", scale),
        "nu": pm.Gamma("nu", alpha=2.0, beta=0.1),
    }


def _log_density(y, eta, params):
    import pytensor.tensor as pt

    nu, sigma = params["nu"], params["sigma"]
    z = (y - eta) / sigma
    return (
        pt.gammaln(0.5 * (nu + 1.0))
        - pt.gammaln(0.5 * nu)
        - 0.5 * pt.log(nu * np.pi)
        - pt.log(sigma)
        - 0.5 * (nu + 1.0) * pt.log1p(z**2 / nu)
    )


def _start(target, fitted, weights) -> tuple[dict, dict]:
    """Maximum likelihood of the scale and degrees of freedom given the working fit's
    residuals (at most ``_START_ROWS`` of them, every k-th), so that the slow joint direction
    of the two starts near the answer (from ``nu = 10`` and the Gaussian residual sd, a fit
    to t(3) noise of scale 0.5 stopped at 0.63 and 4.8)."""
    residual = np.asarray(target) - fitted
    residual = residual[:: max(1, len(residual) // _START_ROWS)]
    nu, _, sigma = stats.t.fit(residual, floc=0.0)
    nu = float(np.clip(nu, _NU_BOUNDS[0], _NU_BOUNDS[1]))
    means = {"sigma_log__": np.log(max(sigma, 1e-3)), "nu_log__": np.log(nu)}
    return means, {"sigma_log__": 0.1, "nu_log__": 0.1}


def _to_original(draws: dict, y_scale: float) -> dict:
    """A constant target's fit has every parameter at 0 (no noise): its degrees of freedom
    are then infinite (the noise-free limit of either family)."""
    return {"sigma": y_scale * draws["sigma"], "nu": np.where(draws["nu"] > 0, draws["nu"], np.inf)}


def _variance(eta, params):
    nu = params["nu"]
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = params["sigma"] ** 2 / (1.0 - 2.0 / nu)
    return np.broadcast_to(np.where(nu > 2.0, spread, np.inf), eta.shape)


def _z(y, eta, params):
    return (np.asarray(y)[:, None] - eta) / params["sigma"]


def _cdf(y, eta, params):
    return stats.t.cdf(_z(y, eta, params), params["nu"])


def _log_pdf(y, eta, params):
    nu, sigma = params["nu"], params["sigma"]
    z = _z(y, eta, params)
    return (
        special.gammaln(0.5 * (nu + 1.0))
        - special.gammaln(0.5 * nu)
        - 0.5 * np.log(nu * np.pi)
        - np.log(sigma)
        - 0.5 * (nu + 1.0) * np.log1p(z**2 / nu)
    )


def _sample(eta, params, rng):
    nu = np.broadcast_to(params["nu"], eta.shape)
    draws = np.where(np.isfinite(nu), rng.standard_t(np.where(np.isfinite(nu), nu, 1.0)), 0.0)
    gaussian = rng.standard_normal(eta.shape)  # the infinite-df limit
    return eta + params["sigma"] * np.where(np.isfinite(nu), draws, gaussian)


STUDENT_T = Family(
    name="student_t",
    link="identity",
    discrete=False,
    standardise_target=True,
    check_target=check_finite_support,
    parameters=("sigma", "nu"),
    add_priors=_add_priors,
    log_density=_log_density,
    start=_start,
    to_original=_to_original,
    mean=lambda eta, params: eta,
    variance=_variance,
    cdf=_cdf,
    log_pdf=_log_pdf,
    ppf=lambda prob, eta, params: eta + params["sigma"] * stats.t.ppf(prob, params["nu"]),
    sample=_sample,
)
