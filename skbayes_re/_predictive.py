"""Posterior predictive summaries of per-row mixtures over posterior draws, in NumPy.

Every estimator predicts a row as an equal-weight mixture over posterior draws ``s``: of
``Normal(loc[s], scale[s])`` for Gaussian models (the functions below, given ``loc`` and
``scale`` arrays of shape ``(n_rows, n_draws)``), of the family's distribution at the linear
predictor ``eta[s]`` for the others (``FamilyMixture``). ``GaussianMixture`` and
``FamilyMixture`` answer the same questions (mean and sd, quantile, draws, log density), so
the estimators' predict methods do not know the family.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, ndtr, ndtri

__all__ = [
    "FamilyMixture",
    "GaussianMixture",
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


class GaussianMixture:
    """Each row's mixture over draws of ``Normal(loc[s], scale[s])``."""

    def __init__(self, loc: np.ndarray, scale: np.ndarray):
        self.loc, self.scale = loc, scale

    @property
    def location_draws(self) -> np.ndarray:
        """Each draw's mean, (n_rows, n_draws)."""
        return self.loc

    def mean_std(self):
        return mixture_mean_std(self.loc, self.scale)

    def quantile(self, prob: float) -> np.ndarray:
        return mixture_quantile(self.loc, self.scale, prob)

    def sample(self, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        return mixture_sample(self.loc, self.scale, n_samples, rng)

    def log_density(self, y: np.ndarray) -> np.ndarray:
        return mixture_log_density(self.loc, self.scale, np.asarray(y))


class FamilyMixture:
    """Each row's mixture over draws of a likelihood family's distribution at ``eta[s]`` (the
    linear predictor in the user's units, unseen groups' effects drawn once per draw), with
    the family's own parameters ``params`` (each of shape (n_draws,))."""

    def __init__(self, family, eta: np.ndarray, params: dict):
        self.family, self.eta = family, eta
        self.params = {name: np.asarray(value)[None, :] for name, value in params.items()}

    @property
    def location_draws(self) -> np.ndarray:
        """Each draw's mean, (n_rows, n_draws)."""
        return self.family.mean(self.eta, self.params)

    def mean_std(self):
        means = self.family.mean(self.eta, self.params)
        variance = np.mean(self.family.variance(self.eta, self.params), axis=1)
        return means.mean(axis=1), np.sqrt(variance + means.var(axis=1))

    def quantile(self, prob: float) -> np.ndarray:
        """The smallest value whose mixture CDF reaches ``prob``: bisection between the
        components' extreme quantiles (the mixture's lies between them), over the integers
        for count families; continuous families stop at a relative 1e-8 of the bracket."""
        bounds = self.family.ppf(prob, self.eta, self.params)
        low, high = np.min(bounds, axis=1), np.max(bounds, axis=1)
        if self.family.discrete:
            return self._integer_quantile(prob, low - 1.0, high)
        return self._continuous_quantile(prob, low, high)

    def _cdf(self, rows, y):
        return np.mean(self.family.cdf(y, self.eta[rows], self.params), axis=1)

    def _pdf(self, rows, y):
        return np.mean(np.exp(self.family.log_pdf(y, self.eta[rows], self.params)), axis=1)

    def _integer_quantile(self, prob, low, high):
        """``low`` has CDF below ``prob``, ``high`` at or above it."""
        active = np.flatnonzero(high - low > 1.0)
        while active.size:
            middle = np.floor(0.5 * (low[active] + high[active]))
            reached = self._cdf(active, middle) >= prob
            high[active] = np.where(reached, middle, high[active])
            low[active] = np.where(reached, low[active], middle)
            active = active[high[active] - low[active] > 1.0]
        return high

    def _continuous_quantile(self, prob, low, high):
        """Newton's method on the mixture CDF inside a bracket that shrinks every step (a
        bisection step replaces a Newton step that leaves it), as ``mixture_quantile``."""
        tolerance = _RELATIVE_TOLERANCE * np.maximum(high - low, 1e-300)
        guess = 0.5 * (low + high)
        active = np.flatnonzero(high > low)
        for _ in range(_NEWTON_STEPS):
            if active.size == 0:
                break
            x = guess[active]
            excess = self._cdf(active, x) - prob
            lo = np.where(excess < 0, x, low[active])
            hi = np.where(excess > 0, x, high[active])
            with np.errstate(divide="ignore", invalid="ignore"):
                newton = x - excess / self._pdf(active, x)
            new = np.where((newton > lo) & (newton < hi), newton, 0.5 * (lo + hi))
            guess[active], low[active], high[active] = new, lo, hi
            active = active[np.abs(new - x) > tolerance[active]]
        return guess

    def sample(self, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Pick a posterior draw per sample, then an outcome from its distribution."""
        n_rows, n_draws = self.eta.shape
        which = rng.integers(n_draws, size=(n_rows, n_samples))
        eta = self.eta[np.arange(n_rows)[:, None], which]
        params = {name: value[0][which] for name, value in self.params.items()}
        return self.family.sample(eta, params, rng)

    def log_density(self, y: np.ndarray) -> np.ndarray:
        log_components = self.family.log_pdf(np.asarray(y), self.eta, self.params)
        return logsumexp(log_components, axis=1) - np.log(self.eta.shape[1])
