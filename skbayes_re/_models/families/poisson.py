"""Poisson counts with a log link.

    y ~ Poisson(exp(eta))

The target is not standardised (the log link gives the coefficients their meaning); the
features are. No parameter of its own. A row costs an exponential; rows sharing every
feature, group and offset are merged into one with their mean count and summed weight
(``merged_rows.py``), which the per-row model takes as they are.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from ._family import Family, non_negative_counts

__all__ = ["POISSON", "poisson_log_pmf"]


def _log_density(y, eta, params):
    import pytensor.tensor as pt

    return y * eta - pt.exp(eta) - pt.gammaln(y + 1.0)


def poisson_log_pmf(y, eta):
    """``log P(y)`` for ``eta = log(mean)`` (also for non-integer y, as a density in y)."""
    y = np.asarray(y)[:, None]
    return y * eta - np.exp(eta) - special.gammaln(y + 1.0)


def _cdf(y, eta, params):
    count = np.floor(np.asarray(y))[:, None]
    return np.where(count < 0, 0.0, special.pdtr(np.maximum(count, 0.0), np.exp(eta)))


POISSON = Family(
    name="poisson",
    link="log",
    discrete=True,
    standardise_target=False,
    check_target=non_negative_counts("poisson"),
    add_priors=lambda box, scale: {},
    log_density=_log_density,
    start=lambda target, fitted, weights: ({}, {}),
    to_original=lambda draws, y_scale: {},
    mean=lambda eta, params: np.exp(eta),
    variance=lambda eta, params: np.exp(eta),
    cdf=_cdf,
    log_pdf=lambda y, eta, params: poisson_log_pmf(y, eta),
    ppf=lambda prob, eta, params: stats.poisson.ppf(prob, np.exp(eta)),
    sample=lambda eta, params, rng: rng.poisson(np.exp(eta)).astype(np.float64),
    merges_rows=True,
)
