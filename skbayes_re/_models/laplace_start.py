"""A start for the per-row models from the Laplace approximation, in NumPy.

For a log-link model with random intercepts, penalised iteratively reweighted least squares
(PIRLS) finds the joint mode of the coefficients and group effects given the group scales,
and EM steps on the Laplace approximation move the scales:

    W = w mu,   z = eta + (y - mu) / mu                    (working weights and response)
    [X'WX      X'WZ         ] [b]   [X'Wz]
    [Z'WX      Z'WZ + D^-1  ] [u] = [Z'Wz],   D = diag(sigma_k^2 per group of factor k)
    sigma_k^2 <- (|u_k|^2 + tr C_kk) / G_k,   C the inverse of the left-hand matrix

The equations are solved densely, so the start is exact where a coarser one would leave a
covariate that varies mostly between groups (a group-level covariate) on the wrong side of
its long ridge with the group effects (mlmRev ``Mmmec``, UV-B dose and region intercepts:
a moment-based start had the dose's coefficient of the wrong sign, and gradient steps did not
recover it). Cost: O(n (p + G)) per round for the cross-products and O((p + G)^3) for the
solve, so it is used up to ``MAX_GROUPS`` groups over all factors; beyond, for one factor,
the group block (diagonal) is eliminated first and the rest is O(n p^2 + G p^2) per round.
(Without it, a million binary rows in 10,000 groups started from penalised quasi-likelihood
at a group sd of 0.22 where the truth was 0.5, and minibatch ADVI ended at 0.41.)
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .._standardize import BLOCK_ROWS

__all__ = ["MAX_GROUPS", "first_predictor", "laplace_applies", "laplace_start", "working_response"]

MAX_GROUPS = 1_000
_ROUNDS = 60
_TOLERANCE = 1e-6
_MIN_GROUP_VAR = 1e-4
_MIN_INVERSE_DISPERSION = 1e-3


def laplace_applies(n_groups: list[int]) -> bool:
    """Whether :func:`laplace_start` takes these random-intercept factors: one factor of any
    size (its group block eliminated), or none or several with at most ``MAX_GROUPS`` groups
    in all (solved densely)."""
    return len(n_groups) == 1 or sum(n_groups) <= MAX_GROUPS


def first_predictor(link: str, target, shift) -> np.ndarray:
    """A first linear predictor (without ``shift``, the offset and centre): the link of the
    target nudged off the boundaries, ``log(y + 0.5)`` or ``logit((y + 0.5) / 2)``."""
    if link == "log":
        return np.log(target + 0.5) - shift
    return special.logit((target + 0.5) / 2.0) - shift


def working_response(link: str, eta, shift, target):
    """``(working response, curvature per unit weight, mean)`` of an IRLS step at ``eta``:
    ``eta + (y - mu) / mu`` and ``mu`` for the log link, ``eta + (y - p) / (p (1 - p))``
    and ``p (1 - p)`` for the logit link."""
    if link == "log":
        mean = np.exp(np.clip(eta + shift, -700.0, 700.0))
        curvature = np.maximum(mean, 1e-12)
    else:
        mean = special.expit(eta + shift)
        curvature = np.maximum(mean * (1.0 - mean), 1e-12)
    return eta + (target - mean) / curvature, curvature, mean


def laplace_start(
    features,
    target,
    offset,
    row_weight,
    codes,
    n_groups,
    prior_scale,
    eta_start,
    dispersion,
    link="log",
):
    """``(means, sds, dispersion)``: means and sds by value-variable name (``alpha``, ``beta``,
    ``z_group_<k>``, ``sigma_group_<k>_log__``) for a log- or logit-link model with random
    intercepts (``link``; for the logit link the weights are ``w p (1 - p)``);
    ``eta_start`` is a first linear predictor without the offset (e.g. ``log(y + 0.5) -
    offset``). With ``dispersion=True`` the counts are negative binomial: each round also
    takes the dispersion by moments given the means (``_dispersion_by_moments``), and the
    working weights are ``w mu / (1 + mu / dispersion)``; otherwise Poisson (the returned
    dispersion is None)."""
    if len(codes) == 1 and sum(n_groups) > MAX_GROUPS:  # see laplace_applies
        design, solve = _WithIntercept(features), _solve_one_factor
    else:
        design, solve = np.column_stack([np.ones(len(target)), features]), _solve_dense
    n_fixed = design.shape[1]
    group_var = np.full(len(codes), 0.25)
    eta = np.asarray(eta_start, dtype=float)
    solution = np.zeros(n_fixed + sum(n_groups))
    phi, leverage = None, np.zeros(len(target))
    for _ in range(_ROUNDS):
        working, curvature, mu = working_response(link, eta, offset, target)
        weight = row_weight * curvature
        if dispersion:
            phi = _dispersion_by_moments(target, mu, row_weight, leverage)
            weight = weight / (1.0 + mu / phi)
        new, variances, row_variances = solve(
            design, codes, n_groups, weight, working, prior_scale, group_var
        )
        if dispersion:
            leverage = weight * row_variances()
        group_var = _em_group_variances(new, variances, n_fixed, n_groups)
        eta = _linear_predictor(design, codes, new, n_fixed, n_groups)
        done = np.max(np.abs(new - solution)) < _TOLERANCE
        solution = new
        if done:
            break
    return (*_as_start(solution, variances, group_var, n_fixed, n_groups), phi)


def _solve_dense(design, codes, n_groups, weight, working, prior_scale, group_var):
    """``(solution, its variances, row variances on demand)`` of the penalised normal
    equations, solved densely: O((p + G)^3) for G groups over all factors."""
    n_fixed = design.shape[1]
    matrix, rhs = _normal_equations(design, codes, n_groups, weight, working)
    precision = np.concatenate(
        [np.full(n_fixed, 1.0 / prior_scale**2)]
        + [np.full(g, 1.0 / v) for g, v in zip(n_groups, group_var, strict=True)]
    )
    covariance = np.linalg.inv(matrix + np.diag(precision))
    return (
        covariance @ rhs,
        np.diag(covariance).copy(),
        lambda: _row_variances(design, codes, covariance, n_fixed, n_groups),
    )


class _WithIntercept:
    """The design ``(1, X)`` of one factor's solver, never built whole: its products run over
    blocks of ``BLOCK_ROWS`` rows, so the start adds no copy of a large ``X``."""

    def __init__(self, features):
        self.features = features
        self.shape = (features.shape[0], features.shape[1] + 1)

    def blocks(self):
        for start in range(0, self.shape[0], BLOCK_ROWS):
            rows = slice(start, start + BLOCK_ROWS)
            block = self.features[rows]
            yield rows, np.column_stack([np.ones(block.shape[0]), block])

    def __matmul__(self, coef):
        return coef[0] + self.features @ coef[1:]


def _solve_one_factor(design, codes, n_groups, weight, working, prior_scale, group_var):
    """The same for one factor of intercepts with any number of groups: its block of the
    matrix is diagonal, so eliminating it leaves a (p + 1)-square Schur complement, O(n p^2
    + G p^2) in all (the dense solve would need O(G^3): hours at 10,000 groups)."""
    (code,), (size,) = codes, n_groups
    width = design.shape[1]
    fixed, rhs_fixed = np.eye(width) / prior_scale**2, np.zeros(width)
    cross = np.zeros((width, size))
    for rows, block in design.blocks():
        weighted = block * weight[rows, None]
        fixed += weighted.T @ block
        rhs_fixed += weighted.T @ working[rows]
        for j in range(width):
            cross[j] += np.bincount(code[rows], weights=weighted[:, j], minlength=size)
    diagonal = cross[0] + 1.0 / group_var[0]  # the intercept's column: each group's weight
    rhs_groups = np.bincount(code, weights=weight * working, minlength=size)
    scaled = cross / diagonal
    schur_inverse = np.linalg.inv(fixed - scaled @ cross.T)
    b = schur_inverse @ (rhs_fixed - scaled @ rhs_groups)
    u = (rhs_groups - cross.T @ b) / diagonal
    effect_var = 1.0 / diagonal + np.einsum("pg,pq,qg->g", scaled, schur_inverse, scaled)

    def row_variances():
        variance = np.empty(design.shape[0])
        for rows, block in design.blocks():
            projected = block @ schur_inverse
            variance[rows] = (
                np.sum(projected * block, axis=1)
                - 2.0 * np.sum(projected * scaled[:, code[rows]].T, axis=1)
                + effect_var[code[rows]]
            )
        return variance

    variances = np.concatenate([np.diag(schur_inverse), effect_var])
    return np.concatenate([b, u]), variances, row_variances


def _dispersion_by_moments(target, mu, row_weight, leverage) -> float:
    """The negative binomial's dispersion by moments, ``sum((y - mu)^2 / (1 - h) - mu) =
    sum(mu^2) / dispersion``, the leverages ``h`` of the last fit correcting the residuals for
    what the effects absorbed (without them, fitted group effects take part of the
    overdispersion, and the dispersion starts far too high: MASS ``epil``, 12.5 where NUTS
    finds 7.2)."""
    spread = (target - mu) ** 2 / np.maximum(1.0 - leverage, 0.05) - mu
    inverse = np.sum(row_weight * spread) / max(float(np.sum(row_weight * mu**2)), 1e-300)
    return 1.0 / max(float(inverse), _MIN_INVERSE_DISPERSION)


def _row_variances(design, codes, covariance, n_fixed, n_groups) -> np.ndarray:
    """``a_i' C a_i`` for each row's full design ``a_i`` (features and group indicators)."""
    starts = np.cumsum([n_fixed, *n_groups])
    indices = [
        start - size + code for start, size, code in zip(starts[1:], n_groups, codes, strict=True)
    ]
    fixed = covariance[:n_fixed, :n_fixed]
    variance = np.einsum("ij,jk,ik->i", design, fixed, design)
    for index in indices:
        variance += 2.0 * np.einsum("ij,ji->i", design, covariance[:n_fixed, index])
        for other in indices:
            variance += covariance[index, other]
    return variance


def _normal_equations(design, codes, n_groups, weight, working):
    """Cross-products of ``(X, Z)`` weighted by ``weight``, and their product with the
    working response."""
    blocks_x = [(design * weight[:, None]).T @ design]
    sizes = [design.shape[1], *n_groups]
    total = sum(sizes)
    matrix = np.zeros((total, total))
    rhs = np.zeros(total)
    n_fixed = design.shape[1]
    matrix[:n_fixed, :n_fixed] = blocks_x[0]
    rhs[:n_fixed] = design.T @ (weight * working)
    starts = np.cumsum([0, *sizes])
    for k, (code, size) in enumerate(zip(codes, n_groups, strict=True)):
        rows = slice(starts[k + 1], starts[k + 2])
        cross = np.stack(
            [np.bincount(code, weights=weight * column, minlength=size) for column in design.T]
        )
        matrix[:n_fixed, rows], matrix[rows, :n_fixed] = cross, cross.T
        matrix[rows, rows] = np.diag(np.bincount(code, weights=weight, minlength=size))
        rhs[rows] = np.bincount(code, weights=weight * working, minlength=size)
        for m in range(k + 1, len(codes)):
            other = slice(starts[m + 1], starts[m + 2])
            pair = np.zeros((size, n_groups[m]))
            np.add.at(pair, (code, codes[m]), weight)
            matrix[rows, other], matrix[other, rows] = pair, pair.T
    return matrix, rhs


def _em_group_variances(solution, variances_of_solution, n_fixed, n_groups):
    variances, start = [], n_fixed
    for size in n_groups:
        rows = slice(start, start + size)
        second_moment = np.sum(solution[rows] ** 2) + np.sum(variances_of_solution[rows])
        variances.append(max(second_moment / size, _MIN_GROUP_VAR))
        start += size
    return np.asarray(variances)


def _linear_predictor(design, codes, solution, n_fixed, n_groups):
    eta = design @ solution[:n_fixed]
    start = n_fixed
    for code, size in zip(codes, n_groups, strict=True):
        eta = eta + solution[start : start + size][code]
        start += size
    return eta


def _as_start(solution, variances, group_var, n_fixed, n_groups):
    sd = np.sqrt(variances)
    means = {"alpha": np.asarray(solution[0]), "beta": solution[1:n_fixed]}
    sds = {"alpha": np.asarray(sd[0]), "beta": sd[1:n_fixed]}
    start = n_fixed
    for k, size in enumerate(n_groups):
        scale = np.sqrt(group_var[k])
        rows = slice(start, start + size)
        means[f"z_group_{k}"] = solution[rows] / scale
        sds[f"z_group_{k}"] = sd[rows] / scale
        means[f"sigma_group_{k}_log__"] = np.log(scale)
        sds[f"sigma_group_{k}_log__"] = 1.0 / np.sqrt(2.0 * size)
        start += size
    return means, sds
