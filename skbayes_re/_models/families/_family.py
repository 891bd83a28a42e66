"""The ``Family`` record every likelihood module fills in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
from scipy import special

__all__ = ["NUMPY", "Family", "check_finite_support", "non_negative_counts", "tensor"]

# The functions a log density is written with, so one formula serves the model (PyTensor,
# through ``tensor()``) and prediction (NumPy and SciPy).
NUMPY = SimpleNamespace(gammaln=special.gammaln, log=np.log, log1p=np.log1p, logaddexp=np.logaddexp)


def tensor():
    """PyTensor's tensor module (imported when a model is built, never to predict)."""
    import pytensor.tensor as pt

    return pt


@dataclass(frozen=True)
class Family:
    """One likelihood family.

    ``parameters`` names the family's own parameters (value variables of the model and keys
    of the fitted draws). ``add_priors(box, scale)`` creates them in a PyMC model and returns
    them by name; ``log_density(y, eta, params)`` is the per-row log density (PyTensor) given
    the linear predictor ``eta`` on the model's scale. ``start(target, fitted)`` gives their
    starting means and sds from a working fit. ``to_original(draws, y_scale)`` maps their
    draws to the user's units.

    The NumPy functions take ``eta`` of shape (n_rows, n_draws) in the user's units and
    ``params`` by name, each broadcastable to ``eta``: ``mean``, ``variance``, ``cdf(y, ...)``
    and ``log_pdf(y, ...)`` for ``y`` of shape (n_rows,) (a probability mass for discrete
    families), ``ppf(prob, ...)`` (each component's ``prob`` quantile) and ``sample(eta,
    params, rng)``, which draws one outcome per entry of ``eta``.
    """

    name: str
    link: str  # "identity", "log", "logit" or "softmax"
    discrete: bool
    standardise_target: bool
    check_target: Callable[[np.ndarray], None]
    parameters: tuple[str, ...] = ()
    add_priors: Callable | None = None
    log_density: Callable | None = None
    start: Callable | None = None
    to_original: Callable | None = None
    mean: Callable | None = None
    variance: Callable | None = None
    cdf: Callable | None = None
    log_pdf: Callable | None = None
    ppf: Callable | None = None
    sample: Callable | None = None
    tags: dict = field(default_factory=dict)
    # Whether the log density is linear in y given eta (``merged_rows.py``): rows sharing a
    # design point then merge into one, their weights summed and their targets averaged.
    merges_rows: bool = False


def check_finite_support(y: np.ndarray) -> None:
    """Any finite target (the Gaussian and Student-t families)."""


def non_negative_counts(name: str) -> Callable[[np.ndarray], None]:
    """A support check for count families: y >= 0 (non-integer values are accepted, as
    scikit-learn's ``PoissonRegressor`` accepts them), and not all zero (no rate is
    identified from zeros alone)."""

    def check(y: np.ndarray) -> None:
        negative = y[y < 0]
        if negative.size:
            shown = ", ".join(f"{v:g}" for v in np.unique(negative)[:5])
            raise ValueError(
                f"likelihood={name!r} needs non-negative counts in y; got {negative.size} "
                f"negative value(s): {shown}."
            )
        if y.size and not np.any(y > 0):
            raise ValueError(
                f"likelihood={name!r} cannot fit y that is zero in every row: no rate is "
                "identified (the log of the mean is minus infinity)."
            )

    return check
