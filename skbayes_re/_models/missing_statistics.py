"""The data of a Gaussian linear fit whose features hold missing cells, and moments of data
with missing cells (NumPy only: the sampler of ``missing_gibbs.py`` needs no PyMC)."""

from __future__ import annotations

import numpy as np

from .feature_model import conditional_cells, missing_patterns
from .statistics import gaussian_re_statistics_chunked

__all__ = ["MAX_FEATURES", "joint_em", "missing_data", "pairwise_moments"]

# Feature columns up to which missing cells are modelled: ADVI's compiled step unrolls the
# p x p algebra of each incomplete row, so its size (compile time) grows as p^3.
MAX_FEATURES = 12


def missing_data(chunks, features, target, codes, n_groups, weights, prior_scale) -> dict:
    """The model's data: the complete rows' sufficient statistics (from ``chunks``, their
    standardised row blocks) and the incomplete rows themselves (``features`` standardised,
    NaN where missing; ``target`` standardised; ``weights`` None for weight 1)."""
    incomplete = np.isnan(features).any(axis=1)
    rows = np.flatnonzero(incomplete)
    data = gaussian_re_statistics_chunked(
        chunks, [code[~incomplete] for code in codes], n_groups, prior_scale
    )
    values = features[rows]
    missing = np.isnan(values)
    p = values.shape[1]
    data["miss_x"] = np.where(missing, 0.0, values)
    data["miss_y"] = np.asarray(target[rows], dtype=float)
    data["miss_weight"] = np.ones(len(rows)) if weights is None else weights[rows].astype(float)
    data["miss_mask"] = missing.astype(float)
    data["feature_lower"] = np.tril(np.ones((p, p)), -1)
    for k, code in enumerate(codes):
        data[f"miss_group_{k}"] = code[rows].astype(np.int64)
    return data


def joint_em(values: np.ndarray, n_steps: int = 30):
    """EM for a Gaussian with missing cells (NaN): its mean and covariance, the cells'
    expectations given each row's observed ones (``filled``) and the sum over rows of their
    conditional covariances (``correction``, embedded in the full matrix)."""
    missing = np.isnan(values)
    mean, cov = pairwise_moments(values)
    n_rows = max(len(values), 1)
    for _ in range(n_steps):
        filled = np.where(missing, 0.0, values)
        correction = np.zeros_like(cov)
        for rows, pattern in missing_patterns(missing):
            cond_mean, cond_cov = conditional_cells(values[rows], pattern, mean[None], cov[None])
            columns = np.flatnonzero(pattern)
            filled[np.ix_(rows, columns)] = cond_mean[:, 0, :]
            correction[np.ix_(columns, columns)] += len(rows) * cond_cov[0]
        mean = filled.mean(axis=0)
        centred = filled - mean
        cov = (centred.T @ centred + correction) / n_rows
    return mean, cov, filled, correction


def pairwise_moments(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means over observed cells and the covariance of each pair over the rows where
    both are observed, made positive definite (eigenvalues floored)."""
    observed = ~np.isnan(features)
    filled = np.where(observed, features, 0.0)
    mean = filled.sum(axis=0) / np.maximum(observed.sum(axis=0), 1)
    centred = np.where(observed, features - mean, 0.0)
    counts = observed.T.astype(float) @ observed.astype(float)
    cov = (centred.T @ centred) / np.maximum(counts, 1.0)
    values, vectors = np.linalg.eigh(0.5 * (cov + cov.T))
    floor = 1e-3 * max(float(values.max()), 1e-12)
    cov = (vectors * np.maximum(values, floor)) @ vectors.T
    return mean, cov
