"""The posterior of a model fitted to a constant target.

A constant target standardises to exact zeros. Its likelihood then sharpens without bound as
the noise sd goes to 0 with every coefficient and group effect at 0, so the posterior is the
point where every parameter of the standardised model is 0: the fit needs no optimisation.
:func:`zero_draws` gives each of a model's parameters draws at that point, shaped as the
engine's draws are, so an estimator stores its fitted attributes as after any other fit.

Cost: building the model once and evaluating its parameters' shapes (no compilation, no
pass over the rows).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pymc as pm
import pytensor
from pytensor.compile.mode import Mode
from pytensor.graph.rewriting.utils import rewrite_graph

__all__ = ["zero_draws"]


def zero_draws(
    build_model: Callable[[dict], pm.Model], data: dict[str, np.ndarray], n_draws: int
) -> dict[str, np.ndarray]:
    """``n_draws`` draws, all zero, of every free parameter of ``build_model(data)``, by name
    (the names and shapes the engine's draws have, on the constrained scale)."""
    model = build_model(data)
    # Shapes as graphs of the data only (no random draws), evaluated without compiling C.
    shapes = [
        rewrite_graph(rv.shape, include=("canonicalize", "ShapeOpt")) for rv in model.free_RVs
    ]
    evaluate = pytensor.function([], shapes, mode=Mode(linker="py", optimizer="fast_compile"))
    return {
        rv.name: np.zeros((n_draws, *(int(size) for size in shape)))
        for rv, shape in zip(model.free_RVs, evaluate(), strict=True)
    }
