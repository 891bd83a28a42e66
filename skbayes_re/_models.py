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
