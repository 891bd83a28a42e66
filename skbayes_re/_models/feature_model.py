"""The Gaussian model of the features, in NumPy: what prediction and ``impute`` need of it.

A fitted linear Gaussian model keeps draws of the features' mean ``m`` (S, p) and covariance
``C`` (S, p, p) in the user's units: the posterior draws of ``missing.py``'s feature model
when the fit saw missing cells, otherwise one plug-in draw (the complete rows' weighted mean
and covariance, from the sufficient statistics the fit already has). Given a row's observed
cells ``o``, its missing cells ``m`` are, per draw, ``Normal(m_m + C_mo C_oo^-1 (x_o - m_o),
C_mm - C_mo C_oo^-1 C_om)``: rows are grouped by their pattern of missing cells, and each
pattern costs one batch of (S, |o|, |o|) solves, whatever its row count.

Cost: O(S p^3) per pattern of missing cells plus O(R S p) for R rows; nothing per row beyond
that. No PyMC: prediction stays NumPy only.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "covariance_from_regressions",
    "feature_model_to_original",
    "impute_cells",
    "integrate_missing_linear",
    "missing_patterns",
    "plug_in_feature_draws",
    "conditional_cells",
    "regressions_from_covariance",
]

_JITTER = 1e-9  # relative ridge of a conditioning block (a degenerate covariance stays finite)


def covariance_from_regressions(lower: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """``Sigma = T^-1 D^2 T^-T`` from the unit lower-triangular ``T`` (..., p, p) and the
    sds ``d`` (..., p) of the features' regressions on the ones before them."""
    factor = np.linalg.inv(lower) * sd[..., None, :]  # T^-1 D
    return factor @ np.swapaxes(factor, -1, -2)


def regressions_from_covariance(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse map: ``T = D L^-1`` (unit lower triangular) and ``d = diag(L)`` from the
    Cholesky factor ``L`` of ``cov`` (p, p)."""
    chol = np.linalg.cholesky(cov)
    sd = np.diag(chol).copy()
    return sd[:, None] * np.linalg.inv(chol), sd


def plug_in_feature_draws(wtw: np.ndarray) -> dict[str, np.ndarray]:
    """One draw of the feature model from complete rows' statistics ``W'W`` (standardised
    scale, ``w = (1, x)``): their weighted mean and covariance."""
    n_rows = max(float(wtw[0, 0]), 1.0)
    mean = wtw[1:, 0] / n_rows
    cov = wtw[1:, 1:] / n_rows - np.outer(mean, mean)
    return {"feature_mean": mean[None, :], "feature_cov": cov[None, :, :]}


def feature_model_to_original(draws: dict, x_scaler) -> dict[str, np.ndarray]:
    """The feature model's draws (taken out of ``draws``) in the user's units, and the
    training rows' imputed cells (``imputed``, (S, C) float32) when the fit had any."""
    centre, scale = np.asarray(x_scaler.mean, float), np.asarray(x_scaler.scale, float)
    out = {
        "feature_mean": centre + scale * draws.pop("feature_mean"),
        "feature_cov": draws.pop("feature_cov") * np.outer(scale, scale),
    }
    if "imputed" in draws:
        columns = draws.pop("imputed_columns")
        cells = draws.pop("imputed").astype(np.float32)  # stored in float32: scaled in it
        cells *= scale[columns].astype(np.float32)
        cells += centre[columns].astype(np.float32)
        out["imputed"] = cells
    return out


def missing_patterns(missing: np.ndarray):
    """Yield ``(rows, pattern)`` for each pattern of missing cells that has one (rows with
    no missing cell are skipped)."""
    patterns, inverse = np.unique(missing, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    for index, pattern in enumerate(patterns):
        if pattern.any():
            yield np.flatnonzero(inverse == index), pattern


def conditional_cells(values: np.ndarray, pattern: np.ndarray, mean, cov):
    """Conditional mean (r, S, |m|) and covariance (S, |m|, |m|) of the missing cells of
    rows ``values`` (r, p) that share ``pattern``, per draw of ``mean`` (S, p) and ``cov``
    (S, p, p)."""
    m, o = pattern, ~pattern
    s_mm = cov[:, m][:, :, m]
    if not o.any():
        return np.broadcast_to(mean[None, :, m], (len(values), *mean[:, m].shape)), s_mm
    s_oo = cov[:, o][:, :, o]
    s_mo = cov[:, m][:, :, o]
    ridge = _JITTER * (np.trace(s_oo, axis1=1, axis2=2)[:, None, None] + 1e-300)
    gain = np.linalg.solve(s_oo + ridge * np.eye(int(o.sum())), np.swapaxes(s_mo, 1, 2))
    gain = np.swapaxes(gain, 1, 2)  # (S, |m|, |o|) = C_mo C_oo^-1
    centred = values[:, None, o] - mean[None, :, o]  # (r, S, |o|)
    cond_mean = mean[None, :, m] + np.einsum("smo,rso->rsm", gain, centred)
    cond_cov = s_mm - gain @ np.swapaxes(s_mo, 1, 2)
    return cond_mean, cond_cov


def integrate_missing_linear(features: np.ndarray, coef: np.ndarray, mean, cov):
    """``x @ coef`` per row and draw, its missing cells integrated out: the mean (R, S) and
    the variance (R, S) it adds (``coef_m' C_m|o coef_m``). Rows without a missing cell get
    their exact product and zero variance."""
    missing = np.isnan(features)
    filled = np.where(missing, 0.0, features)
    loc = filled @ coef.T
    variance = np.zeros_like(loc)
    for rows, pattern in missing_patterns(missing):
        cond_mean, cond_cov = conditional_cells(features[rows], pattern, mean, cov)
        coef_m = coef[:, pattern]
        loc[rows] += np.einsum("rsm,sm->rs", cond_mean, coef_m)
        variance[rows] += np.einsum("sm,smn,sn->s", coef_m, cond_cov, coef_m)[None, :]
    return loc, variance


def impute_cells(features: np.ndarray, mean, cov) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and sd of each cell of ``features`` under the feature model's draws:
    the observed cells themselves (sd 0), the missing ones averaged over the draws of their
    conditional distribution (law of total variance)."""
    missing = np.isnan(features)
    out_mean = np.where(missing, 0.0, features)
    out_sd = np.zeros_like(out_mean)
    for rows, pattern in missing_patterns(missing):
        cond_mean, cond_cov = conditional_cells(features[rows], pattern, mean, cov)
        within = np.diagonal(cond_cov, axis1=1, axis2=2).mean(axis=0)  # (|m|,)
        block = np.ix_(rows, np.flatnonzero(pattern))
        out_mean[block] = cond_mean.mean(axis=1)
        out_sd[block] = np.sqrt(np.maximum(within[None, :] + cond_mean.var(axis=1), 0.0))
    return out_mean, out_sd
