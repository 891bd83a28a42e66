"""A neural-network mean function with random intercepts.

    y ~ Normal(alpha + MLP(X) + sum_k sigma_k z_k[g_k], sigma)

Unlike the linear models, the likelihood has no closed form over the rows, so a step costs
O(n x width) for the rows it sees (all of them, or a minibatch). The network is fitted around
a fixed linear control ``X c`` (``c`` from the random-intercept linear model): the part of the
residual sum of squares that the linear model explains comes exactly from the sufficient
statistics, and only the network's departure from the control is summed over rows. The
intercepts, their scales and the noise therefore see no minibatch noise in their own
curvature.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .._validation import BLOCK_ROWS
from ._ops import count_prefixed, matmul
from .gaussian import (
    gaussian_loglik,
    gaussian_re_init,
    gaussian_re_start,
    gaussian_re_statistics_chunked,
    group_effects_to_original,
    linear_rss,
    random_intercepts,
)

__all__ = [
    "build_mlp_re_model",
    "mlp_re_data",
    "mlp_re_init",
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
    ``0 .. n_groups[k]-1`` for every row; ``weights`` are the rows' weights (None: all 1),
    in the sufficient statistics and, as ``row_weight``, in the per-row term. Each hidden
    layer's width is the length of a placeholder array ``width_l``, so networks of other
    widths reuse one compiled graph. The per-row arrays are ``mlp_row_data(...)``; minibatch
    ADVI swaps blocks of their rows in and sets ``batch_scale``.

    The network is fitted around a linear control ``X c``, ``c`` the random-intercept linear
    model's coefficients (see ``build_mlp_re_model``): ``target`` holds ``y - X c`` and the
    sufficient statistics are those of that residual target, without features.
    """
    features = np.asarray(features, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    # row blocks: no copy of the design matrix at any data size
    rows = [slice(i, i + BLOCK_ROWS) for i in range(0, len(target), BLOCK_ROWS)]
    row_weight = np.ones(len(target)) if weights is None else np.asarray(weights, np.float64)
    linear = gaussian_re_statistics_chunked(
        ((features[r], target[r], None if weights is None else row_weight[r]) for r in rows),
        codes,
        n_groups,
        prior_scale,
    )
    control = gaussian_re_start(linear)[0]["beta"]
    residual = np.empty_like(target)
    for r in rows:
        np.subtract(target[r], features[r] @ control, out=residual[r])
    data = _residual_statistics(linear, control)
    data |= {
        "control_coef": control,
        "features": features,
        "target": residual,
        "row_weight": row_weight,
        "weight_scale": np.asarray(1.0 / np.sqrt(float(alpha))),
        "batch_scale": np.asarray(1.0),
    }
    for layer, width in enumerate(hidden_layer_sizes):
        data[f"width_{layer}"] = np.zeros(int(width))
    for k, code in enumerate(codes):
        data[f"group_{k}"] = np.asarray(code, dtype=np.int64)
    return data


def _residual_statistics(statistics: dict, control: np.ndarray) -> dict[str, np.ndarray]:
    """The sufficient statistics of the target ``y - X c`` without features, from those of
    ``y`` with features (``gaussian_re_statistics_chunked``): no second pass over the rows."""
    wtw, wty = statistics["wtw"], statistics["wty"]
    b = np.concatenate([[0.0], control])  # the design's first column is the intercept
    out = dict(statistics)
    out["yty"] = np.asarray(float(statistics["yty"] - 2.0 * b @ wty + b @ wtw @ b))
    out["wty"] = np.array([wty[0] - wtw[0] @ b])
    out["wtw"] = wtw[:1, :1].copy()
    for k in range(count_prefixed(statistics, "ysum_")):
        wtz = statistics[f"wtz_{k}"]
        out[f"ysum_{k}"] = statistics[f"ysum_{k}"] - b @ wtz
        out[f"wtz_{k}"] = wtz[:1].copy()
    return out


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
    """Build ``y ~ Normal(alpha + MLP(X) + sum_k sigma_k z_k[g_k], sigma)`` on ``pm.Data``.

    ``MLP(X) = act(... act(X W_0 + b_0) ...) w_out``: hidden layers with biases, a linear
    output without bias (``alpha`` is the output bias). Priors (standardised scale,
    ``s = prior_scale``): weights ``W_l, w_out ~ Normal(0, weight_scale)`` with
    ``weight_scale = 1 / sqrt(l2 strength)``, hidden biases and ``alpha ~ Normal(0, s)``,
    ``sigma, sigma_k ~ HalfNormal(s)``, ``z_k ~ Normal(0, 1)`` (non-centred intercepts).
    """
    _, n_layers, _, n_factors, _ = mlp_re_structure(data, activation, "")
    with pm.Model(check_bounds=False) as model:
        box = {name: pm.Data(name, value) for name, value in data.items()}
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
        alpha = pm.Normal("alpha", 0.0, scale)
        # A sum over the one output column, not ``[:, 0]``: the gradient of a column slice
        # (an IncSubtensor on an Alloc) breaks PyTensor's single-module C linker.
        network = pt.sum(matmul(hidden, coef_out[:, None]), axis=1)
        sigma = pm.HalfNormal("sigma", scale)
        effects = random_intercepts(box, scale, n_factors)
        # The residual sum of squares around a fixed linear control ``X c`` (``c`` the
        # random-intercept linear model's coefficients), with ``g = f - X c`` and
        # ``r = y - a - u - X c``:  sum (y - a - u - f)^2 = sum r^2 + sum g (g - 2 r).
        # ``sum r^2`` is exact from the full data's sufficient statistics; only the second sum,
        # small where the network is near linear, is taken over the rows present, scaled by
        # ``batch_scale`` (rows in the data / rows present; 1 in a full-batch fit). Minibatch
        # noise thus stays off the intercepts' own curvature, which keeps the group scales from
        # shrinking under noisy steps.
        # (``mlp_re_data`` stores ``y - X c`` as the target, with its sufficient statistics.)
        offset = alpha
        for k, u_k in enumerate(effects):
            offset = offset + u_k[box[f"group_{k}"]]
        departure = network - pt.sum(box["features"] * box["control_coef"][None, :], axis=1)
        present = pt.sum(
            box["row_weight"] * departure * (departure - 2.0 * (box["target"] - offset))
        )
        rss = linear_rss(box, alpha[None], effects) + box["batch_scale"] * present
        gaussian_loglik(box, sigma, rss)
    return model


_START_SD_FACTOR = 10.0


def mlp_re_init(data: dict[str, np.ndarray], activation: str):
    """Starting means and sds for ADVI.

    Network weights and hidden biases: Glorot-uniform draws from the fit's seeded generator,
    as scikit-learn's ``MLPRegressor`` makes them. Output bias, noise and random intercepts:
    the random-intercept linear model's starting point (``gaussian_re_init``), so the group
    offsets start near their values and the network only has to learn the rest.
    """
    factor = 2.0 if activation == "logistic" else 6.0
    linear = gaussian_re_init(data)
    n_layers = count_prefixed(data, "width_")

    def init(shapes: dict, rng: np.random.Generator) -> tuple[dict, dict]:
        weight_names = mlp_weight_names(n_layers)
        known = {name: shape for name, shape in shapes.items() if name not in weight_names}
        starts = linear(known, rng)
        means, sds = starts if isinstance(starts, tuple) else (starts, {})
        means = {name: value for name, value in means.items() if name in known}
        sds = {name: value for name, value in sds.items() if name in known}
        # The means' steps scale with their starting sds, and the engine lowers its learning
        # rate until it is small beside the posterior sds relative to those, averaging the
        # iterates of the last phase only. Starting ten times wider than the linear model's
        # posterior sds lets the offsets and the noise follow the network as it learns, and
        # makes the fit end in a slower phase whose average leaves out that transient.
        sds = {name: _START_SD_FACTOR * np.asarray(value) for name, value in sds.items()}
        sds["sigma_log__"] = np.maximum(sds.get("sigma_log__", 0.0), 0.1)
        for name in weight_names:
            shape = shapes[name.replace("bias_", "coef_")]
            fan_in, fan_out = (shape[0], 1) if len(shape) == 1 else shape
            bound = np.sqrt(factor / max(fan_in + fan_out, 1))
            means[name] = rng.uniform(-bound, bound, size=shapes[name])
        return means, sds

    return init


def mlp_re_to_original(draws, x_scaler, y_scaler, n_layers: int, n_groups: list[int]) -> dict:
    """Map standardised-scale draws to the user's units.

    The feature standardisation is folded into the first layer and the target's into the
    output layer, so ``MLP`` evaluated on raw features gives the original-scale mean. Returns
    ``coefs`` and ``intercepts`` (lists over layers, output layer last, each with a leading
    draw axis), ``sigma`` (S,), and per factor ``effects`` (S, G_k; seen groups only) and
    ``group_sd`` (S,).
    """
    y_mean, y_scale = float(y_scaler.mean), float(y_scaler.scale)
    coefs = [draws[f"coef_{layer}"] for layer in range(n_layers)] + [draws["coef_out"][..., None]]
    intercepts = [draws[f"bias_{layer}"] for layer in range(n_layers)]
    first = coefs[0]
    shift = np.einsum("p,spq->sq", x_scaler.mean / x_scaler.scale, first)
    coefs[0] = first / x_scaler.scale[None, :, None]
    if n_layers:
        intercepts[0] = intercepts[0] - shift
        coefs[-1] = y_scale * coefs[-1]
        output_bias = y_mean + y_scale * draws["alpha"]
    else:  # a linear network: the input shift lands on the output bias
        coefs[-1] = y_scale * coefs[-1]
        output_bias = y_mean + y_scale * (draws["alpha"] - shift[:, 0])
    intercepts.append(output_bias[:, None])
    effects, group_sd, _ = group_effects_to_original(draws, y_scale, n_groups)
    return {
        "coefs": coefs,
        "intercepts": intercepts,
        "sigma": y_scale * draws["sigma"],
        "effects": effects,
        "group_sd": group_sd,
    }
