"""The Gaussian mixed model's draws in the user's units (NumPy only).

The model (``gaussian.py``) is stated on the standardised scale; these map its draws, and
those of the models that share its parameters (``exact.py``, ``few_rows.py``, ``glmm.py``),
back to the features' and target's units.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gaussian_re_to_original", "group_effects_to_original"]


def gaussian_re_to_original(draws, x_scaler, y_scaler, n_groups: list[int], slopes=None) -> dict:
    """Map standardised-scale draws to the user's units.

    Returns ``intercept`` (S,), ``coef`` (S, p), ``sigma`` (S,), and per factor ``effects``
    (S, G_k, or S, G_k, q_k with slopes; only the groups seen in fit), ``group_sd`` (S, or
    S, q_k), ``group_cov`` (None, or S, q_k, q_k with slopes), ``group_nu`` (None, or the
    degrees of freedom (S,) of Student-t groups) and ``centres`` (None, or the
    slope features' means, where a slope factor's effects and covariance put the intercept:
    see :func:`slopes.slope_effects_to_original`).
    """
    y_mean, y_scale = float(y_scaler.mean), float(y_scaler.scale)
    alpha = draws["alpha"]
    n_draws = alpha.shape[0]
    beta = draws.get("beta", np.zeros((n_draws, 0)))
    coef = y_scale * beta / x_scaler.scale
    intercept = y_mean + y_scale * (alpha - beta @ (x_scaler.mean / x_scaler.scale))
    effects, group_sd, group_cov = group_effects_to_original(
        draws, y_scale, n_groups, slopes, x_scaler
    )
    return {
        "intercept": intercept,
        "coef": coef,
        "sigma": y_scale * draws["sigma"],
        "effects": effects,
        "group_sd": group_sd,
        "group_cov": group_cov,
        "group_nu": [draws.get(f"nu_group_{k}") for k in range(len(n_groups))],
        "centres": [
            np.asarray(x_scaler.mean, dtype=float)[list(s)] if slopes is not None and s else None
            for s in (slopes if slopes is not None else [[] for _ in n_groups])
        ],
    }


def group_effects_to_original(
    draws: dict, y_scale: float, n_groups: list[int], slopes=None, x_scaler=None
):
    """Per grouping factor, the effect draws of the groups seen in fit, in the user's units,
    the group sd draws and (factors with slopes) the group covariance draws. The
    ``z_group_k`` draws are taken out of ``draws`` and scaled in place; the effects are kept
    as float32 (seven significant digits, far below their Monte Carlo error): with many
    groups they are the largest arrays a fitted model holds."""
    effects, group_sd, group_cov = [], [], []
    for k, size in enumerate(n_groups):
        if slopes is not None and slopes[k]:
            columns = list(slopes[k])
            from .slopes import slope_effects_to_original  # PyMC: only with slopes

            u, sd, cov = slope_effects_to_original(
                draws, k, size, y_scale, x_scaler.mean[columns], x_scaler.scale[columns]
            )
            effects.append(u)
            group_sd.append(sd)
            group_cov.append(cov)
            continue
        sigma_k = draws[f"sigma_group_{k}"]
        if f"u_group_{k}" in draws:  # a centred factor
            effect = draws.pop(f"u_group_{k}")[:, :size]
            effect *= y_scale
        else:
            effect = draws.pop(f"z_group_{k}")[:, :size]
            effect *= (y_scale * sigma_k)[:, None]
        effects.append(effect.astype(np.float32, copy=False))
        group_sd.append(y_scale * sigma_k)
        group_cov.append(None)
    return effects, group_sd, group_cov
