"""Posterior predictive summaries of per-row Gaussian mixtures, in NumPy.

Every estimator predicts a row as an equal-weight mixture over posterior draws ``s`` of
``Normal(loc[s], scale[s])``. These helpers summarise such mixtures, given ``loc`` and
``scale`` arrays of shape ``(n_rows, n_draws)``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, ndtr, ndtri

__all__ = [
    "mean_over_draws",
    "mixture_log_density",
    "mixture_mean_std",
    "mixture_quantile",
    "mixture_sample",
]

_NEWTON_STEPS = 60
_RELATIVE_TOLERANCE = 1e-8
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


def mean_over_draws(draws: np.ndarray) -> np.ndarray:
    """Mean over the leading (draw) axis, as offsets from the first draw, so that equal
    draws give their value exactly (a float mean of equal values may round away from it)."""
    first = draws[:1]
    return first[0] + (draws - first).mean(axis=0)


def mixture_mean_std(loc: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each row's mixture (law of total variance). Averaged
    as offsets from the first draw, so a row whose draws are all equal gets that value
    exactly (a float mean of equal values may round away from it)."""
    first = loc[:, :1]
    offsets = loc - first
    mean = first[:, 0] + offsets.mean(axis=1)
    variance = np.mean(scale**2, axis=1) + offsets.var(axis=1)
    return mean, np.sqrt(variance)


def mixture_quantile(loc: np.ndarray, scale: np.ndarray, prob: float) -> np.ndarray:
    """The ``prob`` quantile of each row's mixture.

    Newton's method on the mixture CDF from the normal approximation, kept inside a bracket
    that shrinks with every step (a bisection step replaces any Newton step that leaves it).
    Only rows not yet converged are iterated; most converge in three or four steps. A row
    whose components all have zero scale (a noise-free fit) is a discrete distribution over
    its draws and gets their quantile.
    """
    mean, std = mixture_mean_std(loc, scale)
    lower = np.min(loc - 40.0 * scale, axis=1)
    upper = np.max(loc + 40.0 * scale, axis=1)
    guess = np.clip(mean + std * ndtri(prob), lower, upper)
    discrete = np.all(scale == 0.0, axis=1)
    if discrete.any():
        guess[discrete] = np.quantile(loc[discrete], prob, axis=1, method="inverted_cdf")
    active = np.flatnonzero(~discrete)
    for _ in range(_NEWTON_STEPS):
        if active.size == 0:
            break
        new, low, high = _newton_step(
            loc[active], scale[active], prob, guess[active], lower[active], upper[active]
        )
        done = np.abs(new - guess[active]) <= _RELATIVE_TOLERANCE * std[active]
        guess[active], lower[active], upper[active] = new, low, high
        active = active[~done]
    return guess


def _newton_step(loc, scale, prob, guess, lower, upper):
    z = (guess[:, None] - loc) / scale
    excess = ndtr(z).mean(axis=1) - prob
    density = np.mean(np.exp(-0.5 * z**2) / scale, axis=1) * _INV_SQRT_2PI
    lower = np.where(excess < 0, guess, lower)
    upper = np.where(excess > 0, guess, upper)
    with np.errstate(divide="ignore", invalid="ignore"):
        newton = guess - excess / density
    inside = (newton > lower) & (newton < upper)
    return np.where(inside, newton, 0.5 * (lower + upper)), lower, upper


def mixture_sample(loc, scale, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``n_samples`` draws per row: pick a posterior draw, then a Gaussian around it."""
    n_rows, n_draws = loc.shape
    which = rng.integers(n_draws, size=(n_rows, n_samples))
    rows = np.arange(n_rows)[:, None]
    noise = rng.standard_normal((n_rows, n_samples))
    return loc[rows, which] + scale[rows, which] * noise


def mixture_log_density(loc: np.ndarray, scale: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Log density of each row's mixture at its ``y`` (shape ``(n_rows,)``): the log of the
    mean over draws of ``Normal(y | loc, scale)``, by log-sum-exp of the components' log
    densities, so a ``y`` far in a tail gets a finite value where the density itself would
    underflow to 0. A component of zero scale (a noise-free fit) is a point mass: +inf at
    its ``loc``, -inf elsewhere."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (y[:, None] - loc) / scale
        log_components = -0.5 * z**2 - np.log(scale) - _HALF_LOG_2PI
    point_mass = np.where(y[:, None] == loc, np.inf, -np.inf)
    log_components = np.where(scale > 0.0, log_components, point_mass)
    return logsumexp(log_components, axis=1) - np.log(loc.shape[1])
