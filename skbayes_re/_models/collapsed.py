"""A grouping factor with correlated slopes, integrated out of the Gaussian likelihood.

Given the coefficients ``b``, the noise ``sigma``, the covariance ``Sigma = C C'`` of factor
k's effects and the other factors' effects, the effects ``u_g`` of factor k are Gaussian a
priori and in the likelihood, so they integrate out group by group:

    log p(y | ...) = -n/2 log(2 pi) - n log sigma - 1/2 sum_g log|M_g|
                     - r'r / (2 sigma^2) + sum_g t_g' M_g^-1 t_g / (2 sigma^4)

with ``r`` the residual without factor k, ``s_g = V_g' r_g`` its per-group score,
``t_g = C' s_g`` and ``M_g = I + C' V_g'V_g C / sigma^2`` (q x q). ADVI then approximates only
the few remaining parameters, and each posterior draw of the effects comes from their exact
conditional Gaussian given that draw of the rest. A Gaussian approximation over the
non-centred effects and their scales cannot follow the curved posterior of few, informative
groups (on sleepstudy it put the slope sd half a posterior sd below NUTS however long it
ran); integrated out, the effects leave nothing curved behind.

Cost: O(G q^3 + G q p) per step from the same per-group statistics, nothing per row. The
q x q Cholesky factorisations are unrolled over the static q into elementwise operations
on group vectors, in the graph and in NumPy.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ._ops import LOG_2PI, matmul
from .slopes import lkj_cholesky, lkj_cholesky_numpy

__all__ = [
    "REWRITES_EXCLUDED",
    "collapsed_factor",
    "collapsed_loglik",
    "conditional_effect_draws",
]

_DRAW_CHUNK = 25  # posterior draws whose group effects are drawn at once
# PyTensor's distributive rewrite (a*b + a*c -> a*(b+c)) revisits this graph's many sums of
# products for seconds without making the step faster: sleepstudy's first fit with a filled
# compile cache took 16 s with it, 9 s without, and warm fits were no slower.
REWRITES_EXCLUDED = ("local_greedy_distributor",)


def collapsed_factor(sizes: list[int]) -> int | None:
    """The factor integrated out: the first one with slopes (None when none has)."""
    return next((k for k, size in enumerate(sizes) if size > 1), None)


# ----------------------------------------------------------------------------- graph
# The graph works on one vector per matrix entry (each of length G): elementwise operations
# on vectors fuse into a few loops that compile quickly and run at memory speed, where
# (G, q, q) tensors with broadcasting would not. Entries of parameter matrices are taken by
# one-hot products: indexing has gradients (IncSubtensor) that PyTensor's single-module C
# linker cannot compile. Data arrays, which need no gradient, are sliced freely.


def collapsed_loglik(box, scale, k: int, sizes, b, effects, sigma, rss) -> None:
    """Add factor k's scale and correlation priors and the likelihood with its effects
    integrated out (``rss`` is the residual sum of squares without factor k; ``sizes`` the
    group-design widths of all factors)."""
    size = sizes[k]
    tau = pm.HalfNormal(f"sigma_group_{k}", scale, shape=(size,))
    raw = pm.Flat(f"corr_group_{k}", shape=(size * (size - 1) // 2,))
    corr_chol, log_density = lkj_cholesky(raw, size)
    pm.Potential(f"lkj_group_{k}", log_density)
    chol = _entries(tau[:, None] * corr_chol, size)  # C, Sigma = C C'
    scores = _group_scores(box, k, sizes, b, effects)  # s_g = V_g' r_g
    t = [sum(chol[i][a] * scores[i] for i in range(size)) for a in range(size)]  # C' s
    vtv = box[f"vtv_{k}"]
    half = [  # (V'V C)_ib
        [sum(chol[j][c] * vtv[:, i, j] for j in range(size)) for c in range(size)]
        for i in range(size)
    ]
    inverse_var = 1.0 / sigma**2

    def entry(a, c):  # of M = I + C' V'V C / sigma^2
        gram = sum(chol[i][a] * half[i][c] for i in range(size))
        return (1.0 if a == c else 0.0) + gram * inverse_var

    log_det, quadratic = _logdet_and_quadratic(entry, t, size)
    n_obs = box["n_obs"]
    pm.Potential(
        "loglik",
        -0.5 * n_obs * LOG_2PI
        - n_obs * pt.log(sigma)
        - 0.5 * pt.sum(log_det)
        - rss * (0.5 * inverse_var)
        + pt.sum(quadratic) * (0.5 * inverse_var**2),
    )


def _entries(matrix, size: int) -> list[list]:
    """The scalar entries of a small symbolic matrix, by one-hot products."""
    unit = np.eye(size)
    return [[pt.sum(matrix * np.outer(unit[i], unit[j])) for j in range(size)] for i in range(size)]


def _group_scores(box, k: int, sizes, b, effects) -> list:
    """``V_g' r_g`` per group of factor k, one vector per column of ``V``: the residual
    without factor k."""
    size = sizes[k]
    wtv = box[f"wtv_{k}"]  # (p + 1, G q), columns group-major
    scores = [
        box[f"vty_{k}"][:, a] - pt.sum(matmul(b[None, :], wtv[:, a::size]), axis=0)
        for a in range(size)
    ]
    for m, u_m in enumerate(effects):
        if m == k or u_m is None:
            continue
        first, second, cross = _pair_view(box, k, m)
        paired = u_m[second]
        unit = np.eye(sizes[m])
        columns = (
            [paired]
            if sizes[m] == 1
            else [pt.sum(paired * unit[c][None, :], axis=1) for c in range(sizes[m])]
        )
        for a in range(size):
            contribution = sum(cross[:, a, c] * column for c, column in enumerate(columns))
            scores[a] = scores[a] - pt.inc_subtensor(pt.zeros_like(scores[a])[first], contribution)
    return scores


def _pair_view(data, k: int, m: int):
    """Pairs of factors k and m seen from k: k's group, m's group, and ``sum v_k v_m'``
    (pairs, q_k, q_m); works on ``pm.Data`` boxes and on NumPy statistics alike."""
    low, high = min(k, m), max(k, m)
    first, second = data[f"pair_first_{low}_{high}"], data[f"pair_second_{low}_{high}"]
    cross = data[f"pair_cross_{low}_{high}"]
    if k > m:
        return second, first, cross.transpose(0, 2, 1)
    return first, second, cross


def _logdet_and_quadratic(entry, t, size: int):
    """``log|M|`` and ``t' M^-1 t`` per group for the symmetric q x q matrix with entries
    ``entry(i, j)``: through the adjugate for q <= 3 (products and one division, whose
    gradients stay short), by an unrolled Cholesky factorisation beyond."""
    if size > 3:
        factor, log_det = _unrolled_cholesky(entry, size, pt.log)
        return log_det, sum(v**2 for v in _forward_solve(factor, t))
    m = {(i, j): entry(i, j) for i in range(size) for j in range(i + 1)}
    for i, j in list(m):
        m[(j, i)] = m[(i, j)]
    if size == 1:
        adjugate = {(0, 0): 1.0}
    elif size == 2:
        adjugate = {(0, 0): m[(1, 1)], (1, 1): m[(0, 0)], (0, 1): -m[(0, 1)]}
    else:
        adjugate = {(a, c): _cofactor(m, a, c) for a in range(size) for c in range(a, size)}
    determinant = sum(m[(0, c)] * adjugate[(0, c)] for c in range(size))
    form = sum(
        (1.0 if a == c else 2.0) * adjugate[(a, c)] * t[a] * t[c]
        for a in range(size)
        for c in range(a, size)
    )
    return pt.log(determinant), form / determinant


def _cofactor(m, a: int, c: int):
    """Cofactor ``(a, c)`` of a symmetric 3 x 3 matrix (= entry of its adjugate)."""
    rows = [i for i in range(3) if i != a]
    cols = [j for j in range(3) if j != c]
    minor = (
        m[(rows[0], cols[0])] * m[(rows[1], cols[1])]
        - m[(rows[0], cols[1])] * m[(rows[1], cols[0])]
    )
    return minor if (a + c) % 2 == 0 else -minor


def _unrolled_cholesky(entry, size: int, log):
    """Lower Cholesky factor of a batch of q x q matrices as a dict of element vectors
    ``(i, j) -> (G,)``, and the log-determinant, from ``entry(i, j)``."""
    factor, log_det = {}, 0.0
    for j in range(size):
        diagonal = entry(j, j) - sum(factor[(j, m)] ** 2 for m in range(j))
        log_det = log_det + log(diagonal)
        factor[(j, j)] = diagonal**0.5
        for i in range(j + 1, size):
            below = entry(i, j) - sum(factor[(i, m)] * factor[(j, m)] for m in range(j))
            factor[(i, j)] = below / factor[(j, j)]
    return factor, log_det


def _forward_solve(factor, rhs):
    """``L^-1 rhs`` for the unrolled lower factor ``L`` and a list of element vectors."""
    solved = []
    for i, value in enumerate(rhs):
        solved.append((value - sum(factor[(i, m)] * solved[m] for m in range(i))) / factor[(i, i)])
    return solved


def _backward_solve(factor, rhs):
    """``L'^-1 rhs`` (the transpose's solve)."""
    size = len(rhs)
    solved = [None] * size
    for i in reversed(range(size)):
        rest = sum(factor[(m, i)] * solved[m] for m in range(i + 1, size))
        solved[i] = (rhs[i] - rest) / factor[(i, i)]
    return solved


# ----------------------------------------------------------------------------- draws
def conditional_effect_draws(data, draws, k: int, size: int, sizes, rng) -> None:
    """Draw factor k's effects from their conditional Gaussian given each posterior draw of
    everything else (standardised scale), into ``draws[f"u_group_{k}"]`` (S, G, q),
    float32. Per group, ``u = C w`` with ``w ~ Normal(M^-1 t / sigma^2, M^-1)``."""
    n_draws = draws["alpha"].shape[0]
    n_groups = data[f"vty_{k}"].shape[0]
    out = np.empty((n_draws, n_groups, size), dtype=np.float32)
    for start in range(0, n_draws, _DRAW_CHUNK):
        part = slice(start, min(start + _DRAW_CHUNK, n_draws))
        out[part] = _effects_for_draws(data, draws, part, k, size, sizes, rng)
    draws[f"u_group_{k}"] = out


def _effects_for_draws(data, draws, part, k, size, sizes, rng) -> np.ndarray:
    alpha = draws["alpha"][part]
    beta = draws.get("beta", np.zeros((alpha.shape[0], 0)))[part]
    b = np.column_stack([alpha, beta])
    # A noise-free draw (a constant target's fit: sigma and the scales all 0) has no spread
    # to divide by; the smallest positive variance keeps its effects at exactly C w = 0.
    sigma2 = np.maximum(draws["sigma"][part] ** 2, np.finfo(np.float64).tiny)[:, None]
    chol = draws[f"sigma_group_{k}"][part][:, :, None] * lkj_cholesky_numpy(
        draws[f"corr_group_{k}"][part], size
    )
    scores = _numpy_scores(data, draws, part, k, size, sizes, b)  # (s, G, q)
    t = np.einsum("sgi,sia->sga", scores, chol) / sigma2[:, :, None]
    gram = np.einsum("sia,gij,sjb->sgab", chol, data[f"vtv_{k}"], chol, optimize=True)
    gram /= sigma2[:, :, None, None]
    factor, _ = _unrolled_cholesky(
        lambda i, j: gram[:, :, i, j] + (1.0 if i == j else 0.0), size, np.log
    )
    noise = rng.standard_normal(t.shape)
    solved = _forward_solve(factor, [t[..., i] for i in range(size)])
    w = np.stack(_backward_solve(factor, [solved[i] + noise[..., i] for i in range(size)]), -1)
    return np.einsum("sij,sgj->sgi", chol, w)


def _numpy_scores(data, draws, part, k, size, sizes, b) -> np.ndarray:
    """:func:`_group_scores` for a block of posterior draws (standardised scale)."""
    n_groups = data[f"vty_{k}"].shape[0]
    wtv = data[f"wtv_{k}"].reshape(b.shape[1], n_groups, size)
    scores = data[f"vty_{k}"][None] - np.einsum("sp,pga->sga", b, wtv)
    for m, size_m in enumerate(sizes):
        if m == k:
            continue
        first, second, cross = _pair_view(data, k, m)
        u_m = _other_effects(draws, m, size_m, part)[:, second, :]  # (s, pairs, q_m)
        contribution = np.einsum("pab,spb->spa", cross, u_m)
        for s in range(contribution.shape[0]):
            for a in range(size):
                scores[s, :, a] -= np.bincount(
                    first, weights=contribution[s, :, a], minlength=n_groups
                )
    return scores


def _other_effects(draws, m, size_m, part) -> np.ndarray:
    """Standardised effects of another factor for a block of draws (s, G, q)."""
    if f"u_group_{m}" in draws:  # a centred random intercept
        return draws[f"u_group_{m}"][part][:, :, None]
    z = draws[f"z_group_{m}"][part]
    if size_m == 1:
        return (draws[f"sigma_group_{m}"][part][:, None] * z)[:, :, None]
    chol = draws[f"sigma_group_{m}"][part][:, :, None] * lkj_cholesky_numpy(
        draws[f"corr_group_{m}"][part], size_m
    )
    return np.einsum("sgl,sil->sgi", z, chol)
