"""What a fit produced, whichever way its posterior was computed (NumPy only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ADVIResult"]


@dataclass
class ADVIResult:
    """What a fit produced: posterior draws and the optimisation trace."""

    draws: dict[str, np.ndarray]
    mean: dict[str, np.ndarray]
    sd: dict[str, np.ndarray]
    loss_curve: list[float]
    n_iter: int
    converged: bool
    timings: dict[str, float] = field(default_factory=dict)
