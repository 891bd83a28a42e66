"""A fitted network's draws (NumPy only): the mean function of
``RandomEffectsMLPRegressor``, its draws laid out for ``posterior_``, and the check of a fit
against the random-intercept linear model it contains."""

from __future__ import annotations

import numpy as np

__all__ = ["implausible_beside_linear_model", "network_mean", "network_posterior_variables"]

_CHUNK_CELLS = 4_000_000  # rows x weight draws x layer width evaluated at once
_NOISE_TOLERANCE = 1.25  # a fitted noise sd this far above the linear model's warns
_GROUP_SD_FACTOR = 3.0  # and a group sd this many times off the linear model's


def _activate(values: np.ndarray, activation: str) -> np.ndarray:
    if activation == "tanh":
        return np.tanh(values, out=values)
    if activation == "relu":
        return np.maximum(values, 0.0, out=values)
    if activation == "logistic":
        from scipy.special import expit

        return expit(values, out=values)
    return values


def network_mean(draws: dict, features: np.ndarray, activation: str) -> np.ndarray:
    """The population-level mean (the linear predictor for log links) of each row under each
    draw, ``(n_rows, n_draws)``: the linear part plus the perceptron plus the output bias."""
    coefs, intercepts = draws["coefs"], draws["intercepts"]
    n_weight_draws = coefs[0].shape[0]
    widest = max(coef.shape[-1] for coef in coefs)
    step = max(1, _CHUNK_CELLS // (n_weight_draws * max(widest, features.shape[1], 1)))
    pieces = []
    for start in range(0, features.shape[0], step):
        hidden = features[None, start : start + step, :]
        for coef, bias in zip(coefs[:-1], intercepts[:-1], strict=True):
            hidden = _activate(hidden @ coef + bias[:, None, :], activation)
        pieces.append((hidden @ coefs[-1])[..., 0].T)  # (rows, weight draws)
    network = np.concatenate(pieces) if pieces else np.zeros((0, n_weight_draws))
    linear = features @ draws["coef"].T  # (rows, draws)
    return linear + network + intercepts[-1][:, 0][None, :]


def network_posterior_variables(draws: dict, names: list[str]):
    """``(values, dims, coords)`` of the network's draws for ``posterior_``: each layer's
    weights and biases, the linear part (``feature``: ``names``) and the intercept."""
    coefs, intercepts = draws["coefs"], draws["intercepts"]
    n_draws = draws["intercepts"][-1].shape[0]
    values, dims, coords = {}, {}, {"feature": names}
    previous = "feature"
    for layer, (coef, bias) in enumerate(zip(coefs[:-1], intercepts[:-1], strict=True)):
        dim = f"hidden_{layer}"
        coords[dim] = list(range(coef.shape[-1]))
        values[f"coef_{layer}"] = _with_draws(coef, n_draws)
        values[f"bias_{layer}"] = _with_draws(bias, n_draws)
        dims[f"coef_{layer}"] = [previous, dim]
        dims[f"bias_{layer}"] = [dim]
        previous = dim
    values["coef_out"] = _with_draws(coefs[-1][..., 0], n_draws)
    dims["coef_out"] = [previous]
    values["coef"] = draws["coef"]
    dims["coef"] = ["feature"]
    values["intercept"] = intercepts[-1][:, 0]
    return values, dims, coords


def _with_draws(values: np.ndarray, n_draws: int) -> np.ndarray:
    """Repeat a point estimate (draw axis of length 1) over the posterior draws."""
    return np.broadcast_to(values, (n_draws, *values.shape[1:])).copy()


def implausible_beside_linear_model(reference, draws: dict, names, n_seen) -> list[str]:
    """What makes a fit implausible beside the random-intercept linear model that the network
    contains (standardised-scale draws): a noise sd well above that model's (the network
    explains less than its own linear part could), or a group sd off by a factor of three.
    ``reference``: that model's noise sd (None for families without one) and group sds."""
    noise, group_sds = reference
    problems = []
    fitted = float(np.mean(draws["sigma"])) if noise is not None else 0.0
    if noise is not None and fitted > _NOISE_TOLERANCE * noise:
        problems.append(f"noise sd {fitted:.3g} against {noise:.3g}")
    for k, (name, expected) in enumerate(zip(names, group_sds, strict=True)):
        group_sd = float(np.mean(draws[f"sigma_group_{k}"]))
        informative = n_seen[k] >= 5 and expected > 0.05 * (noise or 1.0)
        if informative and not 1 / _GROUP_SD_FACTOR < group_sd / expected < _GROUP_SD_FACTOR:
            problems.append(f"group sd of {name!r} {group_sd:.3g} against {expected:.3g}")
    return problems
