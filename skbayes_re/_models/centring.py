"""Where a random-slope factor's intercept sits: at the slope features' means, or at 0.

A factor with slopes has the group design ``(1, x_s)``. Its effects and covariance are kept
with the intercept at the slope features' means, design ``(1, x_s - mean)``: predictions
then never subtract two large numbers, however far the features lie from 0. Users read the
intercept at 0, as lme4 reports it; that change is made here, in float64, for reporting
only. NumPy only: fitted models predict and report without PyMC.
"""

from __future__ import annotations

import numpy as np

__all__ = ["intercept_at_zero"]


def intercept_at_zero(values: np.ndarray, centre: np.ndarray, covariance: bool = False):
    """Effects (..., q) or covariances (..., q, q) of a group design ``(1, x - centre)``
    re-expressed for the design ``(1, x)``: the intercept at 0, slopes unchanged."""
    shift = np.eye(len(centre) + 1)
    shift[0, 1:] = -centre
    values = np.asarray(values, dtype=np.float64)
    if covariance:
        return np.einsum("ij,...jl,rl->...ir", shift, values, shift)
    return values @ shift.T
