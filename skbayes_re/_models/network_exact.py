"""The network with point-estimated weights and an exact linear part, without ADVI.

With ``weights="map"`` the perceptron is a point estimate. Given its hidden layers, its
output ``o(x)`` (before the output bias) is one more feature of a Gaussian model whose
every other part is linear: the coefficients, the random intercepts of one grouping column,
the noise and the group sd, whose posterior ``exact.py`` computes exactly. So:

1. the linear model's exact posterior means (at the scales' mode) give the residuals;
2. the perceptron is fitted to them by L-BFGS as the ADVI route starts it
   (``network_start.pretrain``: seeded starts, the best on held-out rows, and none at all
   when it predicts them no better than their mean), on up to 100,000 rows;
3. the exact posterior of the linear model on ``(x, o(x))``: its coefficient ``c`` on
   ``o(x)`` scales the output layer, whose point estimate is ``c`` at its posterior mean
   times the fitted output weights.

Why: at the study's size ADVI spent 400 steps of 11 ms refining what this start already
held, after compiling its step (9 s with a filled compile cache, 21 s with an empty one);
this route compiles nothing, imports no PyMC, and its validation MAE was no worse.
"""

from __future__ import annotations

import numpy as np

from .exact import MAX_FIXED, exact_draws, exact_mode_means
from .network_start import pretrain, pretrain_rows, statistics_with_perceptron, weights_of
from .statistics import count_prefixed

__all__ = ["network_exact_draws", "use_network_exact"]

# Rows the perceptron is fitted on (a random subset beyond). It is final here, not a start
# that ADVI refines: on the study's data, fitted on 10,000 of its 34,816 rows it was judged
# no better than the linear part on held-out rows for two seeds of four (validation MAE
# 0.0857, the linear model's), on all of them it helped for every seed (0.0820-0.0821).
_PERCEPTRON_ROWS = 100_000


def use_network_exact(data: dict) -> bool:
    """One grouping column at most, and room for the output as one more feature."""
    return count_prefixed(data, "ysum_") <= 1 and data["wtw"].shape[0] + 1 <= MAX_FIXED


def network_exact_draws(
    data: dict, activation: str, alpha: float, n_draws: int, seed: int
) -> tuple[dict, int]:
    """Draws named as the engine's for ``mlp_re_data``'s model with point-estimated
    weights (each weight with a draw axis of length 1), and the iterations taken (L-BFGS's
    on the perceptron, plus the exact route's mode search)."""
    rng = np.random.default_rng((seed, 4))
    n_layers = count_prefixed(data, "width_")
    sizes = [1] * count_prefixed(data, "ysum_")
    widths = tuple(int(data[f"width_{layer}"].shape[0]) for layer in range(n_layers))
    network = _perceptron(data, sizes, widths, activation, alpha, rng)
    if network is None:
        draws, n_iter = exact_draws(data, sizes, n_draws, seed)
        weights = _zero_weights(data["features"].shape[1], widths)
    else:
        extended = statistics_with_perceptron(data, network, as_feature=True)
        draws, n_iter = exact_draws(extended, sizes, n_draws, seed)
        scale = float(np.mean(draws["beta"][:, -1]))  # the output's coefficient
        draws["beta"] = draws["beta"][:, :-1]
        weights = weights_of(network, n_layers)
        weights["coef_out"] = scale * weights["coef_out"]
        n_iter += int(network.n_iter_)
    draws.setdefault("beta", np.zeros((n_draws, data["features"].shape[1])))
    return draws | {name: value[None] for name, value in weights.items()}, n_iter


def _perceptron(data, sizes, widths, activation, alpha, rng):
    """The perceptron fitted to the residuals of the linear part's exact posterior means
    (``network.pretrain``), or None (no hidden layer, or no signal beyond the linear part)."""
    coefficients, effects = exact_mode_means(data, sizes)
    rows = pretrain_rows(len(data["target"]), rng, _PERCEPTRON_ROWS)
    design = data["features"][rows]
    fitted = coefficients[0] + design @ coefficients[1:]
    if effects is not None:
        fitted = fitted + effects[data["group_0"][rows]]
    residual = data["target"][rows] - fitted
    weight = data["row_weight"][rows]
    return pretrain(design, residual, weight, widths, activation, alpha, rng)


def _zero_weights(n_features: int, widths: tuple[int, ...]) -> dict:
    weights, width = {}, n_features
    for layer, out in enumerate(widths):
        weights[f"coef_{layer}"] = np.zeros((width, out))
        weights[f"bias_{layer}"] = np.zeros(out)
        width = out
    weights["coef_out"] = np.zeros(width)
    return weights
