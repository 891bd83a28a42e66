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
from scipy import optimize, stats

from ._family import NUMPY, Family, check_finite_support, tensor

__all__ = ["STUDENT_T"]

_START_ROWS = 20_000
_NU_BOUNDS = (1.0, 100.0)


def _add_priors(box, scale) -> dict:
    import pymc as pm

    return {
        "sigma": pm.HalfNormal("sigma", scale),
        "nu": pm.Gamma("nu", alpha=2.0, beta=0.1),
    }


def t_log_density(residual, sigma, nu, ops=NUMPY):
    """Student-t log density of ``residual`` with scale ``sigma`` and ``nu`` degrees of
    freedom, written with ``ops`` (``NUMPY``, or ``tensor()`` in the model)."""
    z = residual / sigma
    return (
        ops.gammaln(0.5 * (nu + 1.0))
        - ops.gammaln(0.5 * nu)
        - 0.5 * ops.log(nu * np.pi)
        - ops.log(sigma)
        - 0.5 * (nu + 1.0) * ops.log1p(z**2 / nu)
    )


def _log_density(y, eta, params):
    return t_log_density(y - eta, params["sigma"], params["nu"], tensor())


def _start(target, fitted, weights) -> tuple[dict, dict]:
    """Weighted maximum likelihood of the scale and degrees of freedom given the working
    fit's residuals (at most ``_START_ROWS`` of them, every k-th), so that the slow joint
    direction of the two starts near the answer (from ``nu = 10`` and the Gaussian residual
    sd, a fit to t(3) noise of scale 0.5 stopped at 0.63 and 4.8)."""
    step = max(1, len(target) // _START_ROWS)
    residual = (np.asarray(target) - fitted)[::step]
    weight = np.ones(len(residual)) if weights is None else np.asarray(weights)[::step]
    log_sigma, log_nu = _weighted_t_fit(residual, weight)
    means = {"sigma_log__": log_sigma, "nu_log__": log_nu}
    return means, {"sigma_log__": 0.1, "nu_log__": 0.1}


def _weighted_t_fit(residual: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """``(log sigma, log nu)`` maximising the weighted Student-t log likelihood of
    ``residual`` around 0 (``nu`` in ``_NU_BOUNDS``), from the MAD scale and ``nu = 10``."""
    scale = max(1.4826 * float(np.median(np.abs(residual))), 1e-3)

    def negative_log_likelihood(params):
        sigma, nu = np.exp(params)
        return -float(np.sum(weight * t_log_density(residual, sigma, nu)))

    best = optimize.minimize(
        negative_log_likelihood,
        x0=[np.log(scale), np.log(10.0)],
        method="L-BFGS-B",
        bounds=[(np.log(scale) - 5.0, np.log(scale) + 5.0), tuple(np.log(_NU_BOUNDS))],
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 1000},  # weights = repeated rows
    )
    return float(best.x[0]), float(best.x[1])


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
    return t_log_density(np.asarray(y)[:, None] - eta, params["sigma"], params["nu"])


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
