"""Categorical outcomes with a softmax link (the classifier with three or more classes).

    P(y = c) = exp(eta_c) / sum_j exp(eta_j),   eta_0 = 0

``y`` holds class codes 0..K-1 (the positions in ``classes_``). Class 0 is the reference: its
linear predictor is fixed at 0, so ``eta`` has one column per other class and each column is
the log-odds of that class against class 0. The target is not standardised. No parameter of
its own. A row costs a log-sum-exp over the K classes.

The model sums ``log_density(shares, eta)`` with ``shares`` the (n, K-1) indicators of the
non-reference classes (or, for merged rows, their shares); prediction averages
:func:`class_probabilities` over the draws.
"""

from __future__ import annotations

import numpy as np

from ._family import Family

__all__ = ["CATEGORICAL", "class_probabilities", "one_hot"]


def _check_target(y: np.ndarray) -> None:
    bad = y[(y < 0) | (y != np.round(y))]
    if bad.size:
        shown = ", ".join(f"{v:g}" for v in np.unique(bad)[:5])
        raise ValueError(
            f"likelihood='categorical' needs class codes 0, 1, ... in y; got {bad.size} "
            f"value(s) that are not: {shown}."
        )


def one_hot(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Class indicators (n, K) of class codes 0..K-1."""
    codes = np.asarray(codes, dtype=np.int64)
    onehot = np.zeros((len(codes), n_classes))
    onehot[np.arange(len(codes)), codes] = 1.0
    return onehot


def _log_density(onehot, eta, params):
    import pytensor.tensor as pt

    logits = pt.concatenate([pt.zeros_like(eta[:, :1]), eta], axis=1)
    return pt.sum(onehot * eta, axis=1) - pt.logsumexp(logits, axis=1)


def class_probabilities(eta: np.ndarray) -> np.ndarray:
    """Softmax over the classes of ``eta`` (..., K-1) with the reference class's 0 put
    first: probabilities (..., K), computed without overflow."""
    top = np.maximum(np.max(eta, axis=-1, keepdims=True), 0.0)
    weights = np.exp(eta - top)
    reference = np.exp(-top)
    total = reference + np.sum(weights, axis=-1, keepdims=True)
    return np.concatenate([reference, weights], axis=-1) / total


CATEGORICAL = Family(
    name="categorical",
    link="softmax",
    discrete=True,
    standardise_target=False,
    check_target=_check_target,
    add_priors=lambda box, scale: {},
    log_density=_log_density,
    start=lambda target, fitted, weights: ({}, {}),
    to_original=lambda draws, y_scale: {},
    merges_rows=True,
)
