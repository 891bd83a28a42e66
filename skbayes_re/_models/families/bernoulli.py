"""Binary outcomes with a logit link (the classifier's likelihood).

    y ~ Bernoulli(sigmoid(eta))

``y`` is 0/1, or a proportion in [0, 1] weighted by its number of trials (binomial data, as
``LogisticRegression`` users pass them). The target is not standardised. No parameter of its
own. A row costs a ``softplus``; rows sharing every feature, group and offset are merged into
one, a proportion with their summed weight (``merged_rows.py``).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ._family import Family

__all__ = ["BERNOULLI"]


def _check_target(y: np.ndarray) -> None:
    outside = y[(y < 0) | (y > 1)]
    if outside.size:
        shown = ", ".join(f"{v:g}" for v in np.unique(outside)[:5])
        raise ValueError(
            f"likelihood='bernoulli' needs y in [0, 1] (classes 0/1, or proportions weighted "
            f"by their trials); got {outside.size} value(s) outside: {shown}."
        )


def _log_density(y, eta, params):
    import pytensor.tensor as pt

    return y * eta - pt.softplus(eta)


def _log_pdf(y, eta, params):
    y = np.asarray(y)[:, None]
    return y * eta - np.logaddexp(0.0, eta)


def _cdf(y, eta, params):
    y = np.asarray(y)[:, None]
    return np.where(y < 0.0, 0.0, np.where(y < 1.0, special.expit(-eta), 1.0))


def _ppf(prob, eta, params):
    return (special.expit(-eta) < prob).astype(np.float64)


BERNOULLI = Family(
    name="bernoulli",
    link="logit",
    discrete=True,
    standardise_target=False,
    check_target=_check_target,
    add_priors=lambda box, scale: {},
    log_density=_log_density,
    start=lambda target, fitted, weights: ({}, {}),
    to_original=lambda draws, y_scale: {},
    mean=lambda eta, params: special.expit(eta),
    variance=lambda eta, params: special.expit(eta) * special.expit(-eta),
    cdf=_cdf,
    log_pdf=_log_pdf,
    ppf=_ppf,
    sample=lambda eta, params, rng: (rng.random(eta.shape) < special.expit(eta)).astype(float),
    merges_rows=True,
)
