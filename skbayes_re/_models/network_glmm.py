"""The network mean function for any family but the Gaussian, written per row.

    y_i ~ Family(eta_i, theta),   eta_i = c + alpha + x_i beta + MLP(x_i) + offset_i
                                          + sum_k u_k[g_ki]

The linear part, its random intercepts (centred where the data inform them), ``c``, the
offset and the family's own parameters are the per-row linear model's (``glmm.py``); the
perceptron is the Gaussian network's (``network.py``: hidden layers with an L2 prior, a
linear output without bias). Nothing is pre-summed: a step evaluates the network and the
family's log density on every row it sees, in minibatches beyond ``MINIBATCH_ROWS`` rows.

The start: the linear model's (the Laplace mode for log and logit links with random
intercepts), a perceptron fitted by L-BFGS to its working residuals (``(y - mu) / mu`` with
weights ``mu`` for the log link, ``y - eta`` for the identity link), kept only if it predicts
held-out rows better (``network_start.pretrain``), and the linear model's start again with
the perceptron's output in the offset, so the coefficients, effects and the family's own
parameters match the network. For log and logit links one working-residual fit is far from
the network the likelihood wants: ``_IRLS_ROUNDS`` more rounds refit the perceptron (from its
weights) to the new working response and the linear start around it. On 20,000 Poisson rows
(``benchmarks/bench_network_families.py``) ADVI then took 400 steps instead of 2,400 and
ended at a lower loss (warm fit 5.5 s against 16 s).
"""

from __future__ import annotations

import numpy as np
import pymc as pm

from ._ops import count_prefixed
from .families import family_named
from .glmm import (
    family_loglik,
    glmm_data,
    glmm_linear_predictor,
    glmm_start,
    glmm_start_predictor,
    glmm_structure,
)
from .laplace_start import working_response
from .network import _perceptron, mlp_weight_names
from .network_start import pretrain, pretrain_rows, refit, weights_of

__all__ = ["build_mlp_glmm", "mlp_glmm_data", "mlp_glmm_start", "mlp_glmm_structure"]

_WEIGHT_STEP = 0.03  # the network weights' step scale (as network.py's)
_IRLS_ROUNDS = 5  # log and logit links: the perceptron refitted to IRLS's working response
_REFIT_ITER = 300  # L-BFGS iterations of each refit


def mlp_glmm_data(
    features, target, codes, n_groups, offset, weights, prior_scale, family, sizes, alpha
) -> dict:
    """``glmm_data``'s arrays (random intercepts only) plus the network's: each hidden
    layer's width as the length of ``width_<l>`` (so other widths share the compiled graph)
    and the weights' prior sd ``weight_scale = 1 / sqrt(alpha)``."""
    no_slopes = [[] for _ in codes]
    data = glmm_data(
        features, target, codes, n_groups, offset, weights, prior_scale, no_slopes, family
    )
    data["weight_scale"] = np.asarray(1.0 / np.sqrt(float(alpha)))
    for layer, width in enumerate(sizes):
        data[f"width_{layer}"] = np.zeros(int(width))
    return data


def mlp_glmm_structure(data: dict, family_name: str, activation: str, weights: str) -> tuple:
    """What fixes the compiled graph: the per-row linear model's structure, the depth, the
    activation and whether the weights are point-estimated (last, as ``mlp_re_structure``)."""
    n_layers = count_prefixed(data, "width_")
    return ("mlp_glmm", glmm_structure(data, family_name), n_layers, activation, weights)


def build_mlp_glmm(data: dict, family_name: str, activation: str = "tanh") -> pm.Model:
    """Build the model of the module docstring on ``pm.Data``."""
    n_layers = count_prefixed(data, "width_")
    with pm.Model(check_bounds=False) as model:
        box = {name: pm.Data(name, value) for name, value in data.items()}
        eta = glmm_linear_predictor(box, data) + _perceptron(box, n_layers, activation)
        family_loglik(box, eta, family_name)
    return model


def mlp_glmm_start(data: dict, family_name: str, activation: str, alpha: float, seed: int):
    """``(means, sds)``: the start of the module docstring, by value-variable name."""
    family = family_named(family_name)
    n_layers = count_prefixed(data, "width_")
    sizes = tuple(int(data[f"width_{layer}"].shape[0]) for layer in range(n_layers))
    slopes = [[] for _ in range(count_prefixed(data, "groups_"))]
    means, sds = glmm_start(data, family_name, slopes)
    rng = np.random.default_rng(seed)
    rows = pretrain_rows(len(data["target"]), rng)
    residual, weight = _working_residual(data, means, family.link, rows)
    features = data["features"][rows]
    network = pretrain(features, residual, weight, sizes, activation, alpha, rng)
    weights = {name: np.zeros(_weight_shape(data, name)) for name in mlp_weight_names(n_layers)}
    if network is not None:
        rounds = _IRLS_ROUNDS if family.link != "identity" else 0
        for round_ in range(rounds + 1):
            moved = dict(data, offset=data["offset"] + _output(network, data["features"]))
            means, sds = glmm_start(moved, family_name, slopes)
            if round_ < rounds:  # the perceptron refitted to the new working response
                residual, weight = _working_residual(moved, means, family.link, rows)
                target = _output(network, features) + residual
                refit(network, features, target, weight, _REFIT_ITER)
        weights = weights_of(network, n_layers)
    sds = sds | {name: np.full(np.shape(value), _WEIGHT_STEP) for name, value in weights.items()}
    return means | weights, sds


def _output(network, features: np.ndarray) -> np.ndarray:
    """The perceptron's output without its output bias (the intercept's part)."""
    return network.predict(features) - float(network.intercepts_[-1][0])


def _working_residual(data: dict, means: dict, link: str, rows: np.ndarray):
    """What the perceptron is first fitted to on ``rows``, and the rows' weights: the
    linear start's working residual (an IRLS step's) and curvature."""
    eta = glmm_start_predictor(data, means)[rows]
    shift = (data["offset"] + data["link_centre"])[rows]
    target, weight = data["target"][rows], data["row_weight"][rows]
    if link == "identity":
        return target - shift - eta, weight
    working, curvature, _ = working_response(link, eta, shift, target)
    return working - eta, weight * curvature


def _weight_shape(data: dict, name: str) -> tuple[int, ...]:
    """The shape of a network weight or hidden bias (the perceptron's layout)."""
    n_layers = count_prefixed(data, "width_")
    widths = [data["features"].shape[1]]
    widths += [data[f"width_{layer}"].shape[0] for layer in range(n_layers)]
    if name == "coef_out":
        return (widths[-1],)
    layer = int(name.rsplit("_", 1)[1])
    return (widths[layer], widths[layer + 1]) if name.startswith("coef") else (widths[layer + 1],)
