"""A neural-network mean function with random intercepts.

    y ~ Normal(alpha + X beta + MLP(X) + sum_k sigma_k z_k[g_k], sigma)

The network is a linear part plus a multi-layer perceptron (a linear skip connection, as in
wide-and-deep networks): with the perceptron's output at zero the model is exactly the
random-intercept linear model, and that is where the fit starts. The perceptron's weights
carry an L2 prior, so it learns only what the linear part cannot.

Unlike the linear models, the likelihood has no closed form over the rows, so a step costs
O(n x width) for the rows it sees (all of them, or a minibatch). Only the perceptron's part of
the residual sum of squares is summed over rows: the linear part comes exactly from the
sufficient statistics, so the coefficients, intercepts, their scales and the noise see no
minibatch noise in their own curvature.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .._validation import BLOCK_ROWS
from ._ops import count_prefixed, matmul
from .families import family_named
from .few_rows import few_rows_draws
from .gaussian import (
    gaussian_loglik,
    gaussian_re_init,
    gaussian_re_start,
    linear_rss,
    random_intercepts,
)
from .gaussian_draws import group_effects_to_original
from .network_start import pretrain, pretrain_rows, statistics_with_perceptron, weights_of
from .statistics import gaussian_re_statistics_chunked

__all__ = [
    "build_mlp_re_model",
    "mlp_few_rows_draws",
    "mlp_re_data",
    "mlp_re_init",
    "mlp_linear_reference",
    "mlp_re_structure",
    "mlp_re_to_original",
    "mlp_row_data",
    "mlp_weight_names",
]


def mlp_re_data(
    features: np.ndarray,
    target: np.ndarray,
    codes: list[np.ndarray],
    n_groups: list[int],
    hidden_layer_sizes: tuple[int, ...],
    prior_scale: float,
    alpha: float,
    weights: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The arrays behind the MLP random-intercept model (all sizes enter as array shapes).

    ``features`` and ``target`` are already standardised; ``codes[k]`` holds values in
    ``0 .. n_groups[k]-1`` for every row; ``weights`` are the rows' weights (None: all 1), in
    the sufficient statistics and, as ``row_weight``, in the per-row term. Each hidden layer's
    width is the length of a
    placeholder array ``width_l``, so networks of other widths reuse one compiled graph.
    The sufficient statistics are the random-intercept linear model's (the linear part's
    likelihood, exactly); the per-row arrays are ``mlp_row_data(...)``, and minibatch ADVI
    swaps blocks of their rows in and sets ``batch_scale``.
    """
    features = np.asarray(features, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    # row blocks: no copy of the design matrix at any data size
    rows = [slice(i, i + BLOCK_ROWS) for i in range(0, len(target), BLOCK_ROWS)]
    row_weight = np.ones(len(target)) if weights is None else np.asarray(weights, np.float64)
    data = gaussian_re_statistics_chunked(
        ((features[r], target[r], None if weights is None else row_weight[r]) for r in rows),
        codes,
        n_groups,
        prior_scale,
    )
    data |= {
        "features": features,
        "target": target,
        "row_weight": row_weight,
        "weight_scale": np.asarray(1.0 / np.sqrt(float(alpha))),
        "batch_scale": np.asarray(1.0),
    }
    for layer, width in enumerate(hidden_layer_sizes):
        data[f"width_{layer}"] = np.zeros(int(width))
    for k, code in enumerate(codes):
        data[f"group_{k}"] = np.asarray(code, dtype=np.int64)
    return data


def mlp_row_data(data: dict[str, np.ndarray]) -> tuple[str, ...]:
    """Names of the arrays of ``mlp_re_data`` that hold one entry per row."""
    n_factors = count_prefixed(data, "ysum_")
    return ("features", "target", "row_weight", *(f"group_{k}" for k in range(n_factors)))


def mlp_re_structure(data: dict[str, np.ndarray], activation: str, weights: str) -> tuple:
    """What fixes the compiled graph: depth, activation, grouping factors and whether the
    weights are point-estimated (row, feature, width and group counts stay symbolic)."""
    n_layers = count_prefixed(data, "width_")
    n_factors = count_prefixed(data, "ysum_")
    return ("mlp_re", n_layers, activation, n_factors, weights)


def mlp_weight_names(n_layers: int) -> list[str]:
    """Value-variable names of the network weights and hidden biases (not ``alpha``)."""
    names = []
    for layer in range(n_layers):
        names += [f"coef_{layer}", f"bias_{layer}"]
    return [*names, "coef_out"]


def _activate(values, activation: str):
    if activation == "tanh":
        return pt.tanh(values)
    if activation == "relu":
        return pt.maximum(values, 0.0)
    if activation == "logistic":
        return pt.sigmoid(values)
    if activation == "identity":
        return values
    raise ValueError(f"Unknown activation {activation!r}.")


def build_mlp_re_model(data: dict[str, np.ndarray], activation: str = "tanh") -> pm.Model:
    """Build ``y ~ Normal(alpha + X beta + MLP(X) + sum_k sigma_k z_k[g_k], sigma)``.

    ``MLP(X) = act(... act(X W_0 + b_0) ...) w_out``: hidden layers with biases, a linear
    output without bias. Priors (standardised scale, ``s = prior_scale``): ``alpha, beta ~
    Normal(0, s)`` as in the linear model; weights ``W_l, w_out ~ Normal(0, weight_scale)``
    with ``weight_scale = 1 / sqrt(l2 strength)``, hidden biases ``~ Normal(0, s)``,
    ``sigma, sigma_k ~ HalfNormal(s)``, ``z_k ~ Normal(0, 1)`` (non-centred intercepts).
    """
    _, n_layers, _, n_factors, _ = mlp_re_structure(data, activation, "")
    with pm.Model(check_bounds=False) as model:
        box = {name: pm.Data(name, value) for name, value in data.items()}
        scale = box["prior_scale"]
        alpha = pm.Normal("alpha", 0.0, scale)
        beta = pm.Normal("beta", 0.0, scale, shape=(box["wty"].shape[0] - 1,))
        network = _perceptron(box, n_layers, activation)
        sigma = pm.HalfNormal("sigma", scale)
        effects = random_intercepts(box, scale, n_factors)
        # With ``r = y - alpha - X beta - u`` the linear model's residual and ``m`` the
        # perceptron's output, sum (r - m)^2 = sum r^2 + sum m (m - 2 r). ``sum r^2`` is exact
        # from the full data's sufficient statistics; only the second sum, zero where the
        # perceptron is, is taken over the rows present, scaled by ``batch_scale`` (rows in
        # the data / rows present; 1 in a full-batch fit). Minibatch noise thus stays off the
        # linear part's own curvature, which keeps the group scales from shrinking under
        # noisy steps.
        fitted = alpha + pt.sum(box["features"] * beta[None, :], axis=1)
        for k, u_k in enumerate(effects):
            fitted = fitted + u_k[box[f"group_{k}"]]
        present = pt.sum(box["row_weight"] * network * (network - 2.0 * (box["target"] - fitted)))
        coefs = pt.concatenate([alpha[None], beta])
        rss = linear_rss(box, coefs, effects) + box["batch_scale"] * present
        gaussian_loglik(box, sigma, rss)
    return model


def _perceptron(box: dict, n_layers: int, activation: str):
    """The perceptron's output per row: hidden layers with biases, a linear output."""
    scale, weight_scale = box["prior_scale"], box["weight_scale"]
    hidden = box["features"]
    width = box["features"].shape[1]
    for layer in range(n_layers):
        out = box[f"width_{layer}"].shape[0]
        coef = pm.Normal(f"coef_{layer}", 0.0, weight_scale, shape=(width, out))
        bias = pm.Normal(f"bias_{layer}", 0.0, scale, shape=(out,))
        hidden = _activate(matmul(hidden, coef) + bias[None, :], activation)
        width = out
    coef_out = pm.Normal("coef_out", 0.0, weight_scale, shape=(width,))
    # A sum over the one output column, not ``[:, 0]``: the gradient of a column slice
    # (an IncSubtensor on an Alloc) breaks PyTensor's single-module C linker.
    return pt.sum(matmul(hidden, coef_out[:, None]), axis=1)


_NOISE_START_SD = 0.1  # the noise's starting sd, at least (its steps scale with it)
_WEIGHT_STEP = 0.03  # the network weights' step scale (point estimates have no sd)


def mlp_re_init(data: dict[str, np.ndarray], activation: str, alpha: float):
    """Starting means and sds for ADVI: a network trained on the residuals of the
    random-intercept linear model, and that linear model refitted around the network.

    1. The linear model's closed-form start (``gaussian_re_init``: least squares and shrunken
       group offsets).
    2. scikit-learn's ``MLPRegressor`` (L-BFGS; the same architecture and L2 strength; seeded
       from the fit's generator) on the residuals of step 1, on at most ``PRETRAIN_ROWS``
       rows: a deterministic second-order optimiser reaches in a second what stochastic
       steps take thousands of iterations for.
    3. The linear model's start again, on the target minus the network's output: the
       coefficients, offsets, noise and all their sds then match the network.

    The ADVI steps refine everything jointly from there.
    """
    n_layers = count_prefixed(data, "width_")
    sizes = tuple(int(data[f"width_{layer}"].shape[0]) for layer in range(n_layers))

    def init(shapes: dict, rng: np.random.Generator) -> tuple[dict, dict]:
        weight_names = mlp_weight_names(n_layers)
        known = {name: shape for name, shape in shapes.items() if name not in weight_names}
        means, sds = gaussian_re_init(data)(known, rng)
        rows = pretrain_rows(len(data["target"]), rng)
        residual = data["target"][rows] - _linear_fit(data, means, rows)
        weight = data["row_weight"][rows]
        network = pretrain(data["features"][rows], residual, weight, sizes, activation, alpha, rng)
        weights = {name: np.zeros(shapes[name]) for name in weight_names}
        if network is not None:
            weights |= weights_of(network, n_layers)
            refit = statistics_with_perceptron(data, network, as_feature=False)
            means, sds = gaussian_re_init(refit)(known, rng)
        sds["sigma_log__"] = np.maximum(sds["sigma_log__"], _NOISE_START_SD)
        sds |= {name: np.full(shapes[name], _WEIGHT_STEP) for name in weight_names}
        return means | weights, sds

    return init


def _linear_fit(data: dict, means: dict, rows: np.ndarray) -> np.ndarray:
    """The linear start's fitted values (fixed part and group offsets) on ``rows``."""
    fitted = means["alpha"] + data["features"][rows] @ means["beta"]
    for k in range(count_prefixed(data, "ysum_")):
        offsets = means[f"z_group_{k}"] * np.exp(means[f"sigma_group_{k}_log__"])
        fitted = fitted + offsets[data[f"group_{k}"][rows]]
    return fitted


def mlp_few_rows_draws(data: dict[str, np.ndarray], n_draws: int, seed: int) -> tuple[dict, int]:
    """Draws for a data set of few rows (``few_rows.use_few_rows``): the perceptron at zero,
    where the fit's start leaves it whenever fewer than ``PRETRAIN_MIN_HELD_OUT`` rows could
    be held out to show that it helps, and the random-intercept linear part's exact posterior
    given that (``few_rows.py``). Named and shaped as the engine's draws; with the
    iterations of that posterior's mode search."""
    n_layers = count_prefixed(data, "width_")
    n_factors = count_prefixed(data, "ysum_")
    draws, n_iter = few_rows_draws(data, [1] * n_factors, n_draws, seed)
    width = data["features"].shape[1]
    draws.setdefault("beta", np.zeros((n_draws, width)))  # no feature: an empty linear part
    for layer in range(n_layers):
        out = data[f"width_{layer}"].shape[0]
        draws[f"coef_{layer}"] = np.zeros((n_draws, width, out))
        draws[f"bias_{layer}"] = np.zeros((n_draws, out))
        width = out
    draws["coef_out"] = np.zeros((n_draws, width))
    return draws, n_iter


def mlp_linear_reference(data: dict[str, np.ndarray]) -> tuple[float, list[float]]:
    """The random-intercept linear model's noise sd and group sds (standardised scale; the
    closed-form start of ``gaussian_re_init``): what a network that contains that model
    should match or beat."""
    start, _ = gaussian_re_start(data)
    n_factors = count_prefixed(data, "ysum_")
    group_sds = [float(np.exp(start[f"sigma_group_{k}_log__"])) for k in range(n_factors)]
    return float(np.exp(start["sigma_log__"])), group_sds


def mlp_re_to_original(
    draws, x_scaler, y_scaler, n_layers: int, n_groups: list[int], family_name="gaussian"
) -> dict:
    """Map standardised-scale draws to the user's units (of either network model: the
    per-row one's ``alpha`` holds ``c`` already, see ``glmm.glmm_complete_draws``).

    The feature standardisation is folded into the first layer and the target's into the
    output layer, so ``X coef + MLP(X)`` evaluated on raw features gives the original-scale
    mean. Returns ``coef`` (S, p; the linear part), ``coefs`` and ``intercepts`` (lists over
    layers, output layer last, each with a leading draw axis; the output bias holds the
    intercept of the linear part too), the family's own parameters (``sigma`` (S,) for the
    Gaussian), and per factor ``effects`` (S, G_k; seen groups only) and ``group_sd`` (S,).
    """
    y_mean, y_scale = float(y_scaler.mean), float(y_scaler.scale)
    coefs = [draws[f"coef_{layer}"] for layer in range(n_layers)] + [draws["coef_out"][..., None]]
    intercepts = [draws[f"bias_{layer}"] for layer in range(n_layers)]
    first = coefs[0]
    shift = np.einsum("p,spq->sq", x_scaler.mean / x_scaler.scale, first)
    coefs[0] = first / x_scaler.scale[None, :, None]
    coefs[-1] = y_scale * coefs[-1]
    beta = draws.get("beta", np.zeros((len(draws["alpha"]), 0)))  # no feature: no linear part
    linear_shift = beta @ (x_scaler.mean / x_scaler.scale)
    if n_layers:
        intercepts[0] = intercepts[0] - shift
    else:  # no hidden layer: the input shift lands on the output bias
        linear_shift = linear_shift + shift[:, 0]
    output_bias = y_mean + y_scale * (draws["alpha"] - linear_shift)
    intercepts.append(output_bias[:, None])
    effects, group_sd, _ = group_effects_to_original(draws, y_scale, n_groups)
    if family_name == "gaussian":
        own = {"sigma": y_scale * draws["sigma"]}
    else:
        own = family_named(family_name).to_original(draws, y_scale)
    return {
        "coef": y_scale * beta / x_scaler.scale,
        "coefs": coefs,
        "intercepts": intercepts,
        "effects": effects,
        "group_sd": group_sd,
    } | own
