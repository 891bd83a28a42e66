"""Model specification: pure functions that build PyMC models from arrays.

Every model is stated on the standardised scale (features and target centred and scaled), so
its priors read the same whatever the user's units. Data enter through ``pm.Data`` containers;
the inference engine swaps their values between fits without rebuilding or recompiling.

The Gaussian random-intercept model (and the linear model, its special case with no grouping
factor) writes its likelihood through sufficient statistics: cross-products of the design and
per-group sums. It is the same likelihood as the row-by-row one, but evaluating it costs
O(p^2 + p G) per draw instead of O(n p), so an ADVI step does not grow with the row count.
"""

from __future__ import annotations

import itertools

import numpy as np
import pymc as pm
import pytensor.tensor as pt

__all__ = [
    "build_gaussian_re_model",
    "gaussian_re_init",
    "gaussian_re_statistics",
    "gaussian_re_structure",
    "gaussian_re_to_original",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


def gaussian_re_statistics(
    features: np.ndarray,
    target: np.ndarray,
    codes: list[np.ndarray],
    n_groups: list[int],
    prior_scale: float,
) -> dict[str, np.ndarray]:
    """Sufficient statistics of the Gaussian random-intercept likelihood.

    ``features`` and ``target`` are already standardised; ``codes[k]`` holds values in
    ``0 .. n_groups[k]-1`` for every row.
    """
    design = np.column_stack([np.ones(len(target)), features])
    data = {
        "n_obs": np.asarray(float(len(target))),
        "prior_scale": np.asarray(float(prior_scale)),
        "yty": np.asarray(float(target @ target)),
        "wty": design.T @ target,
        "wtw": design.T @ design,
    }
    for k, (code, size) in enumerate(zip(codes, n_groups, strict=True)):
        data[f"ysum_{k}"] = np.bincount(code, weights=target, minlength=size)
        data[f"wtz_{k}"] = np.stack(
            [np.bincount(code, weights=column, minlength=size) for column in design.T]
        )
    for k, m in itertools.combinations(range(len(codes)), 2):
        pairs, counts = np.unique(codes[k] * n_groups[m] + codes[m], return_counts=True)
        data[f"pair_first_{k}_{m}"] = (pairs // n_groups[m]).astype(np.int64)
        data[f"pair_second_{k}_{m}"] = (pairs % n_groups[m]).astype(np.int64)
        data[f"pair_count_{k}_{m}"] = counts.astype(np.float64)
    return data


def gaussian_re_structure(data: dict[str, np.ndarray]) -> tuple:
    """What fixes the compiled graph: whether there are features, and how many grouping
    factors (row, feature and group counts stay symbolic)."""
    n_factors = sum(1 for name in data if name.startswith("ysum_"))
    return ("gaussian_re", int(data["wty"].shape[0]) > 1, n_factors)


def _dot(a, b):
    """Vector inner product as an elementwise product and a sum.

    Written without BLAS ops so that the whole ELBO graph has C code and compiles into a
    single module (no optimised BLAS is assumed); these products are tiny (features x groups).
    """
    return pt.sum(a * b)


def _quadratic(matrix, left, right):
    """``left @ matrix @ right`` without BLAS ops (see ``_dot``)."""
    return pt.sum(matrix * left[:, None] * right[None, :])


def build_gaussian_re_model(data: dict[str, np.ndarray]) -> pm.Model:
    """Build ``y ~ Normal(alpha + X beta + sum_k sigma_k z_k[g_k], sigma)`` on ``pm.Data``.

    Priors (standardised scale, ``s = prior_scale``): ``alpha, beta ~ Normal(0, s)``,
    ``sigma, sigma_k ~ HalfNormal(s)``, ``z_k ~ Normal(0, 1)`` (non-centred intercepts).
    """
    _, has_features, n_factors = gaussian_re_structure(data)
    with pm.Model(check_bounds=False) as model:
        box = {name: pm.Data(name, value) for name, value in data.items()}
        scale = box["prior_scale"]
        alpha = pm.Normal("alpha", 0.0, scale)
        coefs = [alpha[None]]
        if has_features:
            coefs.append(pm.Normal("beta", 0.0, scale, shape=(box["wty"].shape[0] - 1,)))
        b = pt.concatenate(coefs)
        sigma = pm.HalfNormal("sigma", scale)
        rss = box["yty"] - 2.0 * _dot(b, box["wty"]) + _quadratic(box["wtw"], b, b)
        effects = []
        for k in range(n_factors):
            counts = box[f"wtz_{k}"][0]
            sigma_k = pm.HalfNormal(f"sigma_group_{k}", scale)
            z_k = pm.Normal(f"z_group_{k}", 0.0, 1.0, shape=(counts.shape[0],))
            u_k = sigma_k * z_k
            effects.append(u_k)
            rss += (
                -2.0 * _dot(u_k, box[f"ysum_{k}"])
                + 2.0 * _quadratic(box[f"wtz_{k}"], b, u_k)
                + pt.sum(counts * u_k**2)
            )
        for k, m in itertools.combinations(range(n_factors), 2):
            first = effects[k][box[f"pair_first_{k}_{m}"]]
            second = effects[m][box[f"pair_second_{k}_{m}"]]
            rss += 2.0 * pt.sum(box[f"pair_count_{k}_{m}"] * first * second)
        n_obs = box["n_obs"]
        pm.Potential(
            "loglik", -0.5 * n_obs * _LOG_2PI - n_obs * pt.log(sigma) - rss / (2.0 * sigma**2)
        )
    return model


def gaussian_re_to_original(draws, x_scaler, y_scaler, n_groups: list[int]) -> dict:
    """Map standardised-scale draws to the user's units.

    Returns ``intercept`` (S,), ``coef`` (S, p), ``sigma`` (S,), and per factor
    ``effects`` (S, G_k; only the groups seen in fit) and ``group_sd`` (S,).
    """
    y_mean, y_scale = float(y_scaler.mean), float(y_scaler.scale)
    alpha = draws["alpha"]
    n_draws = alpha.shape[0]
    beta = draws.get("beta", np.zeros((n_draws, 0)))
    coef = y_scale * beta / x_scaler.scale
    intercept = y_mean + y_scale * (alpha - beta @ (x_scaler.mean / x_scaler.scale))
    effects, group_sd = [], []
    for k, size in enumerate(n_groups):
        sigma_k = draws[f"sigma_group_{k}"]
        effects.append(y_scale * sigma_k[:, None] * draws[f"z_group_{k}"][:, :size])
        group_sd.append(y_scale * sigma_k)
    return {
        "intercept": intercept,
        "coef": coef,
        "sigma": y_scale * draws["sigma"],
        "effects": effects,
        "group_sd": group_sd,
    }


def gaussian_re_init(data: dict[str, np.ndarray]):
    """Starting means for ADVI: the least-squares fit for the coefficients and noise, small
    group scales and zero group offsets (all on the unconstrained, standardised scale)."""
    wtw, wty = data["wtw"], data["wty"]
    ridge = 1e-6 * np.trace(wtw) / max(1, wtw.shape[0]) + 1e-12
    b = np.linalg.solve(wtw + ridge * np.eye(wtw.shape[0]), wty)
    n_obs = max(float(data["n_obs"]), 1.0)
    rss = float(data["yty"] - 2.0 * b @ wty + b @ wtw @ b)
    noise_sd = np.sqrt(max(rss / n_obs, 1e-4))

    def init(shapes: dict, rng: np.random.Generator) -> dict:
        start = {"alpha": np.asarray(b[0]), "sigma_log__": np.asarray(np.log(noise_sd))}
        if "beta" in shapes:
            start["beta"] = b[1:]
        for name in shapes:
            if name.startswith("sigma_group_"):
                start[name] = np.asarray(np.log(0.1))
        return start

    return init


# --------------------------------------------------------------------------------------------
# Neural-network mean function with random intercepts
# --------------------------------------------------------------------------------------------

MLP_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")


def mlp_re_data(
    features: np.ndarray,
    target: np.ndarray,
    codes: list[np.ndarray],
    n_groups: list[int],
    hidden_layer_sizes: tuple[int, ...],
    prior_scale: float,
    alpha: float,
) -> dict[str, np.ndarray]:
    """The arrays behind the MLP random-intercept model (all sizes enter as array shapes).

    ``features`` and ``target`` are already standardised; ``codes[k]`` holds values in
    ``0 .. n_groups[k]-1`` for every row. Each hidden layer's width is the length of a
    placeholder array ``width_l``, so networks of other widths reuse one compiled graph.
    """
    data = {
        "features": np.asarray(features, dtype=np.float64),
        "target": np.asarray(target, dtype=np.float64),
        "prior_scale": np.asarray(float(prior_scale)),
        "weight_scale": np.asarray(1.0 / np.sqrt(float(alpha))),
    }
    for layer, width in enumerate(hidden_layer_sizes):
        data[f"width_{layer}"] = np.zeros(int(width))
    for k, (code, size) in enumerate(zip(codes, n_groups, strict=True)):
        data[f"group_{k}"] = np.asarray(code, dtype=np.int64)
        data[f"group_count_{k}"] = np.bincount(code, minlength=size).astype(np.float64)
    return data


def mlp_re_structure(data: dict[str, np.ndarray], activation: str, weights: str) -> tuple:
    """What fixes the compiled graph: depth, activation, grouping factors and whether the
    weights are point-estimated (row, feature, width and group counts stay symbolic)."""
    n_layers = sum(1 for name in data if name.startswith("width_"))
    n_factors = sum(1 for name in data if name.startswith("group_count_"))
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


def _matmul(rows, matrix):
    """``rows @ matrix`` as a broadcast product and a sum, without BLAS ops (see ``_dot``).

    It materialises an ``(n, fan_in, fan_out)`` temporary, which for the small networks
    this model is meant for costs less than leaving the single-module C linker.
    """
    return pt.sum(rows[:, :, None] * matrix[None, :, :], axis=1)


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
            hidden = _activate(_matmul(hidden, coef) + bias[None, :], activation)
            width = out
        coef_out = pm.Normal("coef_out", 0.0, weight_scale, shape=(width,))
        alpha = pm.Normal("alpha", 0.0, scale)
        mean = alpha + pt.sum(hidden * coef_out[None, :], axis=1)
        sigma = pm.HalfNormal("sigma", scale)
        for k in range(n_factors):
            sigma_k = pm.HalfNormal(f"sigma_group_{k}", scale)
            z_k = pm.Normal(f"z_group_{k}", 0.0, 1.0, shape=(box[f"group_count_{k}"].shape[0],))
            mean = mean + (sigma_k * z_k)[box[f"group_{k}"]]
        residual = box["target"] - mean
        n_obs = pt.cast(residual.shape[0], "float64")
        pm.Potential(
            "loglik",
            -0.5 * n_obs * _LOG_2PI
            - n_obs * pt.log(sigma)
            - pt.sum(residual**2) / (2.0 * sigma**2),
        )
    return model


def mlp_re_init(data: dict[str, np.ndarray], activation: str):
    """Starting means for ADVI: Glorot-uniform weights and biases (as scikit-learn's
    ``MLPRegressor`` draws them, from the fit's seeded generator), the output bias at the
    target mean (zero), unit noise, small group scales and zero group offsets."""
    factor = 2.0 if activation == "logistic" else 6.0

    def init(shapes: dict, rng: np.random.Generator) -> dict:
        start = {
            "alpha": np.asarray(0.0),
            "sigma_log__": np.asarray(np.log(0.5)),
        }
        n_layers = sum(1 for name in shapes if name.startswith("bias_"))
        for name in mlp_weight_names(n_layers):
            if name == "coef_out":
                fan_in, fan_out = shapes[name][0], 1
            else:
                layer = name.rsplit("_", 1)[1]
                fan_in, fan_out = shapes[f"coef_{layer}"]
            bound = np.sqrt(factor / max(fan_in + fan_out, 1))
            start[name] = rng.uniform(-bound, bound, size=shapes[name])
        for name in shapes:
            if name.startswith("sigma_group_"):
                start[name] = np.asarray(np.log(0.1))
        return start

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
    effects, group_sd = [], []
    for k, size in enumerate(n_groups):
        sigma_k = draws[f"sigma_group_{k}"]
        effects.append(y_scale * sigma_k[:, None] * draws[f"z_group_{k}"][:, :size])
        group_sd.append(y_scale * sigma_k)
    return {
        "coefs": coefs,
        "intercepts": intercepts,
        "sigma": y_scale * draws["sigma"],
        "effects": effects,
        "group_sd": group_sd,
    }
