"""Correlated random slopes: lme4's ``(1 + x | g)`` in the Gaussian mixed model.

A factor with slopes has a group design ``v = (1, x_s1, x_s2, ...)`` of ``q`` columns and one
effect vector per group, jointly normal:

    u_g = diag(tau) L z_g,   z_g ~ Normal(0, I_q)       (non-centred)
    tau ~ HalfNormal(s),     L L' = Omega ~ LKJ(eta=2)

``L`` is built from ``q (q - 1) / 2`` unconstrained reals through tanh-squashed canonical
partial correlations (the construction Stan uses), with the LKJ density and the log-Jacobian
added as a potential, so the engine sees only identity and log transforms.

Cost: the statistics add, per factor and group, ``V'y`` (q), ``W'V`` ((p + 1) x q) and
``V'V`` (q x q), one pass over the rows; per step the factor costs O(G q (p + q)), nothing
per row. Crossed factors add a q_k x q_m cross-product per pair of groups sharing rows.
"""

from __future__ import annotations

import itertools

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ._ops import dot, matmul, matrix_vector
from .centring import intercept_at_zero

__all__ = [
    "LKJ_ETA",
    "correlated_effects",
    "centred_factors",
    "lkj_cholesky",
    "lkj_cholesky_numpy",
    "pair_cross_term",
    "slope_effects_to_original",
    "slope_rss_terms",
    "slopes_start",
]

LKJ_ETA = 2.0


# ----------------------------------------------------------------------------- statistics
def _factor_block(data, k, size):
    """Factor k's statistics as (V'y (G, q), W'V (p + 1, G, q), V'V (G, q, q)), for a random
    intercept too (q = 1)."""
    if size == 1:
        wtz = data[f"wtz_{k}"]
        return data[f"ysum_{k}"][:, None], wtz[:, :, None], wtz[0][:, None, None]
    vty = data[f"vty_{k}"]
    wtv = data[f"wtv_{k}"].reshape(data["wtw"].shape[0], vty.shape[0], size)
    return vty, wtv, data[f"vtv_{k}"]


# ----------------------------------------------------------------------------- graph
def lkj_cholesky(raw, size: int, eta: float = LKJ_ETA):
    """Cholesky factor of a ``size`` x ``size`` correlation matrix from unconstrained reals,
    and the log density of the LKJ(eta) prior on it plus the log-Jacobian of the map.

    Row i of ``L`` takes ``L_ij = r_ij sqrt(1 - sum_{l<j} L_il^2)`` from partial correlations
    ``r_ij = tanh(raw)``, and ``L_ii`` the remainder. The LKJ density in ``L`` is
    ``prod_i L_ii^(size - i + 2 eta - 3)`` (rows i = 1 .. size-1, 0-based); the Jacobian is
    ``prod (1 - r_ij^2) sqrt(1 - sum_{l<j} L_il^2)``.
    """
    n_partial = size * (size - 1) // 2
    partials = pt.tanh(raw)
    # log(1 - tanh(v)^2) = -2 log cosh(v), written to stay finite for large |v|
    log_density = -2.0 * pt.sum(pt.abs(raw) + pt.log1p(pt.exp(-2.0 * pt.abs(raw))))
    # Elements are taken by one-hot products and L assembled as a sum of scalars times
    # one-hot matrices: indexing and stacking have gradients (IncSubtensor, Join of
    # constants) that PyTensor's single-module C linker cannot compile.
    chol = pt.constant(_unit(size, 0, 0))
    position = 0
    for i in range(1, size):
        remaining = pt.constant(1.0)
        for j in range(i):
            partial = pt.sum(partials * _unit(n_partial, position))
            position += 1
            element = partial * pt.sqrt(remaining)
            if j:
                log_density += 0.5 * pt.log(remaining)
            remaining = remaining - element**2
            chol = chol + element * _unit(size, i, j)
        log_density += 0.5 * (size - i + 2.0 * eta - 3.0) * pt.log(remaining)
        chol = chol + pt.sqrt(remaining) * _unit(size, i, i)
    return chol, log_density


def _unit(size: int, *index: int) -> np.ndarray:
    """A vector (one index) or square matrix (two) of zeros with a one at ``index``."""
    unit = np.zeros((size,) * len(index))
    unit[index] = 1.0
    return unit


def correlated_effects(box, scale, k: int, size: int, n_groups=None):
    """Effects ``u_g = diag(tau) L z_g`` of factor k, a groups x ``size`` matrix (``n_groups``
    rows: by default the length of the factor's statistics)."""
    tau = pm.HalfNormal(f"sigma_group_{k}", scale, shape=(size,))
    raw = pm.Flat(f"corr_group_{k}", shape=(size * (size - 1) // 2,))
    chol, log_density = lkj_cholesky(raw, size)
    pm.Potential(f"lkj_group_{k}", log_density)
    if n_groups is None:
        n_groups = box[f"vty_{k}"].shape[0]
    z = pm.Normal(f"z_group_{k}", 0.0, 1.0, shape=(n_groups, size))
    return matmul(z, (tau[:, None] * chol).T)


def slope_rss_terms(box, k: int, b, u):
    """Factor k's part of the residual sum of squares: ``-2 u'V'y + 2 b'W'V u + u'V'V u``
    summed over groups (cross-factor terms apart)."""
    return (
        -2.0 * pt.sum(u * box[f"vty_{k}"])
        + 2.0 * dot(b, matrix_vector(box[f"wtv_{k}"], u.flatten()))
        + pt.sum(box[f"vtv_{k}"] * u[:, :, None] * u[:, None, :])
    )


def pair_cross_term(cross, first, second):
    """``sum_pairs u_k[g]' C_gh u_m[h]`` for the pairs' effects ``first`` and ``second``."""
    first = first if first.ndim == 2 else first[:, None]
    second = second if second.ndim == 2 else second[:, None]
    return pt.sum(cross * first[:, :, None] * second[:, None, :])


# ----------------------------------------------------------------------------- start
def slopes_start(data: dict, sizes: list[int]) -> tuple[dict, dict]:
    """Starting means and sds for a model with correlated slopes (any mix of factors).

    Least squares for the coefficients; per factor, a method-of-moments covariance from
    per-group least-squares effects, refined by EM steps on the variance components (the
    effects and their conditional covariances from the mixed-model equations); the
    non-centred effects and their sds from the last step's conditional moments, the
    coefficients' sds from the equations' Schur complement.
    """
    means, sds, b, coef_var, effects, conditional, covs = _start_moments(data, sizes)
    means |= {"alpha": np.asarray(b[0]), "beta": b[1:]}
    sds |= {"alpha": np.sqrt(coef_var[0]), "beta": np.sqrt(coef_var[1:])}
    factors = zip(sizes, covs, effects, conditional, strict=True)
    for k, (size, cov, u, u_cov) in enumerate(factors):
        tau = np.sqrt(np.diag(cov))
        corr_chol = np.linalg.cholesky(cov / np.outer(tau, tau))
        to_z = np.linalg.inv(tau[:, None] * corr_chol)  # z = (diag(tau) L)^-1 u
        z_mean = u @ to_z.T
        z_sd = np.sqrt(np.einsum("ia,gab,ib->gi", to_z, u_cov, to_z))
        n_groups = u.shape[0]
        means[f"sigma_group_{k}_log__"] = np.log(tau if size > 1 else tau[0])
        sds[f"sigma_group_{k}_log__"] = np.full(np.shape(means[f"sigma_group_{k}_log__"]), 1.0)
        sds[f"sigma_group_{k}_log__"] /= np.sqrt(2.0 * max(n_groups, 1))
        means[f"z_group_{k}"] = z_mean if size > 1 else z_mean[:, 0]
        sds[f"z_group_{k}"] = z_sd if size > 1 else z_sd[:, 0]
        if size == 1:  # a centred intercept's start (see ``centred_factors``)
            means[f"u_group_{k}"] = u[:, 0]
            sds[f"u_group_{k}"] = np.sqrt(u_cov[:, 0, 0])
        if size > 1:
            means[f"corr_group_{k}"] = _unconstrained_correlation(corr_chol)
            sds[f"corr_group_{k}"] = 1.0 / np.sqrt(max(n_groups - 3.0, 1.0))
    return means, sds


def _start_moments(data: dict, sizes: list[int]):
    """Least squares, moments and EM steps (see :func:`slopes_start`): the fixed part's
    starting values, the coefficients and their variances, each factor's conditional
    effects and covariances, and each factor's covariance."""
    from .gaussian import least_squares_start

    b, total_var, means, sds = least_squares_start(data)
    blocks = [_factor_block(data, k, size) for k, size in enumerate(sizes)]
    n_obs = max(float(data["n_obs"]), 1.0)
    covs = [_moment_covariance(block, b, total_var) for block in blocks]
    explained = sum(
        float(np.sum(cov * block[2].sum(axis=0))) for cov, block in zip(covs, blocks, strict=True)
    )
    noise_var = max(total_var - explained / n_obs, 0.05 * total_var)
    covs = [_moment_covariance(block, b, noise_var) for block in blocks]
    b, coef_var, effects, conditional, noise_var, covs = _em_variance_components(
        data, blocks, sizes, noise_var, covs, floor=1e-4 * total_var
    )
    means["sigma_log__"] = 0.5 * np.log(noise_var)
    return means, sds, b, coef_var, effects, conditional, covs


def centred_factors(data: dict, sizes: list[int], integrated: int) -> list[int]:
    """The random-intercept factors to fit centred (``u ~ Normal(0, sigma_k)``) rather than
    non-centred: those whose groups the data inform well, i.e. where the start's conditional
    variance of a group's effect is on average under half its prior variance.

    With well-informed groups the non-centred posterior of ``(log sigma_k, z_k)`` is a
    narrow curved ridge, and a mean-field approximation over it shrinks ``sigma_k``'s
    uncertainty several-fold (40 groups of 1,250 rows: a 90% interval of +-0.025 around a
    group sd of 0.75, where +-0.13 is right); centred, ``sigma_k`` given the effects is as
    uncertain as 40 draws make it. With weakly informed groups the centred posterior is a
    funnel, and non-centred is the better of the two.
    """
    *_, conditional, covs = _start_moments(data, sizes)
    chosen = []
    for k, size in enumerate(sizes):
        if size != 1 or k == integrated:
            continue
        explained = 1.0 - np.mean(conditional[k][:, 0, 0]) / covs[k][0, 0]
        if explained > 0.5:
            chosen.append(k)
    return chosen


_EM_STEPS = 50
_EM_TOLERANCE = 1e-4
_MAX_START_CORRELATION = 0.9


def _em_variance_components(data, blocks, sizes, noise_var, covs, floor):
    """EM steps on the noise variance and each factor's covariance: given the current
    values, the mixed-model equations give the effects' conditional means ``m_g`` and
    covariances ``C_g``; then ``Sigma = mean_g(m_g m_g' + C_g)`` and ``sigma^2 = (residual
    sum of squares + sum_g tr(V_g'V_g C_g)) / n``. Exact EM for one factor; across crossed
    factors the cross covariances are left out (a start, not an estimate)."""
    n_obs = max(float(data["n_obs"]), 1.0)
    effects = None
    for _ in range(_EM_STEPS):
        b, effects, conditional, _ = _block_mixed_model_equations(
            data, blocks, sizes, noise_var, covs, effects, sweeps=2
        )
        rss = _residual_sum_of_squares(data, blocks, sizes, b, effects)
        spread = sum(
            float(np.einsum("gab,gba->", block[2], c))
            for block, c in zip(blocks, conditional, strict=True)
        )
        new_noise = max((rss + spread) / n_obs, floor)
        new_covs = [
            _bounded_covariance((u.T @ u + c.sum(axis=0)) / max(len(u), 1), floor)
            for u, c in zip(effects, conditional, strict=True)
        ]
        change = abs(new_noise / noise_var - 1.0) + sum(
            float(np.max(np.abs(np.diag(new) / np.diag(old) - 1.0)))
            for new, old in zip(new_covs, covs, strict=True)
        )
        noise_var, covs = new_noise, new_covs
        if change < _EM_TOLERANCE:
            break
    b, effects, conditional, coef_var = _block_mixed_model_equations(
        data, blocks, sizes, noise_var, covs, effects, sweeps=2
    )
    return b, coef_var, effects, conditional, noise_var, covs


def _bounded_covariance(cov: np.ndarray, floor: float) -> np.ndarray:
    """Variances at least ``floor`` and correlations within +-0.9: a start that keeps the
    Cholesky factor and its unconstrained partial correlations finite."""
    sd = np.sqrt(np.maximum(np.diag(cov), floor))
    corr = np.clip(cov / np.outer(sd, sd), -_MAX_START_CORRELATION, _MAX_START_CORRELATION)
    np.fill_diagonal(corr, 1.0)
    values, vectors = np.linalg.eigh(corr)
    corr = (vectors * np.maximum(values, 0.05)) @ vectors.T
    corr /= np.sqrt(np.outer(np.diag(corr), np.diag(corr)))
    return corr * np.outer(sd, sd)


def _unconstrained_correlation(corr_chol: np.ndarray) -> np.ndarray:
    """The reals that :func:`lkj_cholesky` maps to the correlation Cholesky factor
    ``corr_chol`` (its inverse: partial correlations, then atanh)."""
    size = corr_chol.shape[0]
    raw = []
    for i in range(1, size):
        remaining = 1.0
        for j in range(i):
            partial = corr_chol[i, j] / np.sqrt(remaining)
            raw.append(np.arctanh(np.clip(partial, -0.999, 0.999)))
            remaining -= corr_chol[i, j] ** 2
    return np.asarray(raw)


def _residual_sum_of_squares(data, blocks, sizes, b, effects) -> float:
    """``||y - W b - sum_k Z_k u_k||^2`` from the statistics."""
    wtw, wty = data["wtw"], data["wty"]
    rss = float(data["yty"] - 2.0 * b @ wty + b @ wtw @ b)
    for (vty, wtv, vtv), u in zip(blocks, effects, strict=True):
        fitted_scores = vty - np.einsum("pga,p->ga", wtv, b)
        rss += float(-2.0 * np.sum(u * fitted_scores) + np.einsum("ga,gab,gb->", u, vtv, u))
    for k, m in itertools.combinations(range(len(blocks)), 2):
        rss += 2.0 * float(np.sum(_pair_cross_product(data, sizes, k, m, effects[m]) * effects[k]))
    return rss


def _moment_covariance(block, b, noise_var) -> np.ndarray:
    """Diagonal group covariance from per-group least-squares effects, less their sampling
    noise; a floor keeps every variance positive."""
    vty, wtv, vtv = block
    size = vty.shape[1]
    residual = vty - np.einsum("pga,p->ga", wtv, b)
    floor = max(0.01 * noise_var, 1e-4)
    counts = vtv[:, 0, 0]
    usable = counts > size
    if size > 1 and usable.any():
        usable[usable] = np.linalg.cond(vtv[usable]) < 1e8
    if usable.sum() < 2:
        if size == 1:
            mean_residual = residual[:, 0] / np.maximum(counts, 1.0)
            excess = np.mean(mean_residual**2 - noise_var / np.maximum(counts, 1.0))
            return np.array([[max(excess, floor)]])
        return np.diag(np.full(size, 0.1 * noise_var + floor))
    inverse = np.linalg.inv(vtv[usable])
    effects = np.einsum("gab,gb->ga", inverse, residual[usable])
    excess = np.mean(effects**2, axis=0) - noise_var * np.mean(
        np.diagonal(inverse, axis1=1, axis2=2), axis=0
    )
    return np.diag(np.maximum(excess, floor))


def _block_mixed_model_equations(data, blocks, sizes, noise_var, covs, effects=None, sweeps=20):
    """Henderson's equations with a q x q block per group: exact for one factor (the effects
    eliminated through a Schur complement), block Gauss-Seidel across crossed factors
    (``sweeps`` of them, from ``effects`` when given). Returns the coefficients, the effects
    (G, q) and their conditional covariances."""
    wtw, wty = data["wtw"], data["wty"]
    if effects is None:
        effects = [np.zeros(block[0].shape) for block in blocks]
    effects = list(effects)
    conditional = [None] * len(blocks)
    ridge = 1e-9 * np.trace(wtw) * np.eye(wtw.shape[0])
    b = np.zeros(wty.shape[0])
    for _ in range(sweeps if len(blocks) > 1 else 1):
        for k, (vty, wtv, vtv) in enumerate(blocks):
            wty_k, vty_k = wty.copy(), vty.copy()
            for m, (_, wtv_m, _) in enumerate(blocks):
                if m != k:
                    wty_k -= np.einsum("pga,ga->p", wtv_m, effects[m])
                    vty_k -= _pair_cross_product(data, sizes, k, m, effects[m])
            inverse = np.linalg.inv(vtv + noise_var * np.linalg.inv(covs[k])[None])
            weighted = np.einsum("pga,gab->pgb", wtv, inverse)
            schur = wtw - np.einsum("pgb,rgb->pr", weighted, wtv) + ridge
            b = np.linalg.solve(schur, wty_k - np.einsum("pgb,gb->p", weighted, vty_k))
            coef_var = noise_var * np.diag(np.linalg.inv(schur))
            adjusted = vty_k - np.einsum("pga,p->ga", wtv, b)
            effects[k] = np.einsum("gab,gb->ga", inverse, adjusted)
            conditional[k] = noise_var * inverse
    return b, effects, conditional, coef_var


def _pair_cross_product(data, sizes, k, m, effects_m):
    """``Z_k' Z_m u_m`` per group of factor k (G_k, q_k), from the pair statistics."""
    low, high = min(k, m), max(k, m)
    if f"pair_cross_{low}_{high}" in data:
        cross = data[f"pair_cross_{low}_{high}"]
    else:
        cross = data[f"pair_count_{low}_{high}"][:, None, None]
    first, second = data[f"pair_first_{low}_{high}"], data[f"pair_second_{low}_{high}"]
    if k > m:
        first, second, cross = second, first, cross.transpose(0, 2, 1)
    contribution = np.einsum("pab,pb->pa", cross, effects_m[second])
    n_groups = data[f"ysum_{k}"].shape[0] if sizes[k] == 1 else data[f"vty_{k}"].shape[0]
    return np.stack(
        [np.bincount(first, weights=column, minlength=n_groups) for column in contribution.T],
        axis=1,
    )


# ----------------------------------------------------------------------------- back-transform
def lkj_cholesky_numpy(raw: np.ndarray, size: int) -> np.ndarray:
    """:func:`lkj_cholesky` over draws: ``raw`` (S, size (size - 1) / 2) -> (S, size, size)."""
    raw = np.asarray(raw, dtype=np.float64)
    chol = np.zeros((raw.shape[0], size, size))
    chol[:, 0, 0] = 1.0
    position = 0
    for i in range(1, size):
        remaining = np.ones(raw.shape[0])
        for j in range(i):
            chol[:, i, j] = np.tanh(raw[:, position]) * np.sqrt(remaining)
            remaining = remaining - chol[:, i, j] ** 2
            position += 1
        chol[:, i, i] = np.sqrt(np.maximum(remaining, 0.0))
    return chol


def slope_effects_to_original(draws, k, n_seen, y_scale, x_mean, x_scale):
    """Factor k's effect draws (S, G, q) and covariances (S, q, q) in the user's units, with
    the intercept effect taken at the slope features' means (``x_mean``), and the sds (S, q)
    with the intercept at 0, as reported.

    On the standardised scale ``u = diag(tau) L z`` and the intercept sits at the features'
    means; in the user's units a slope effect is ``c_s / s_s`` (times the target's scale) and
    the intercept effect stays at the means: ``u_c = D u`` with ``D = diag(1, 1 / s)``, and
    the covariance is ``D Sigma D'``. Prediction uses the design ``(1, x - mean)``. Moving
    the intercept to 0 (``a - sum_s c_s m_s / s_s``) would cancel catastrophically when a
    slope feature lies far from 0 beside its spread (``x = 1e6 + 0.01 z``: float32 effects
    lose every digit), so it is done only for reporting (:func:`intercept_at_zero`)."""
    size = len(x_mean) + 1
    change = y_scale * np.diag(np.r_[1.0, 1.0 / np.asarray(x_scale, dtype=float)])
    tau = draws[f"sigma_group_{k}"]
    chol = lkj_cholesky_numpy(draws.pop(f"corr_group_{k}"), size)
    factor = np.einsum("ij,sjl->sil", change, tau[:, :, None] * chol)  # D diag(tau) L
    if f"u_group_{k}" in draws:  # drawn given the rest (an integrated-out factor)
        effects = draws.pop(f"u_group_{k}")[:, :n_seen, :]
        effects *= np.diag(change).astype(effects.dtype)  # in place: no second copy
    else:
        z = draws.pop(f"z_group_{k}")[:, :n_seen, :]
        effects = np.einsum("sgl,sil->sgi", z, factor.astype(z.dtype, copy=False))
    cov = np.einsum("sil,sjl->sij", factor, factor)
    reported = intercept_at_zero(cov, np.asarray(x_mean, dtype=float), covariance=True)
    sd = np.sqrt(np.diagonal(reported, axis1=1, axis2=2))
    return effects.astype(np.float32, copy=False), sd, cov
