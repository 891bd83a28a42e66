"""The Gaussian random-intercept model's posterior, exact up to Monte Carlo error, without ADVI.

For the linear model and random intercepts of one grouping factor, every coefficient and
group effect integrates out given the noise sd ``sigma`` and the group sd ``tau``: with the
design ``w = (1, x)``, per-group sums ``S_g = sum_g w`` (``n_g`` its first entry) and
``Y_g = sum_g y``, and priors ``N(0, s^2)`` on the coefficients, ``N(0, tau^2)`` on the
effects, the posterior precision of ``(b, u)`` is an arrowhead matrix: a small dense block
for ``b``, a diagonal ``d_g = n_g / sigma^2 + 1 / tau^2`` for the effects. Eliminating the
effects leaves a ``(1 + p) x (1 + p)`` system,

    R = W'W / sigma^2 + I / s^2 - sum_g S_g S_g' / (sigma^4 d_g),
    r = W'y / sigma^2 - sum_g Y_g S_g / (sigma^4 d_g),

whose solution is the posterior mean of ``b``; ``log p(y | sigma, tau)`` follows from ``R``'s
Cholesky factor, ``sum_g log d_g`` and ``sum_g Y_g^2 / d_g`` (``few_rows.py`` writes the same
likelihood with every coefficient stacked densely). ``d_g`` depends on the group only through
``n_g``, so every sum over groups is a sum over the distinct group sizes of sums precomputed
once: one evaluation costs ``O(U p^2 + p^3)`` for ``U`` distinct sizes, whatever the rows and
groups. ``(log sigma, log tau)`` are drawn by ``few_rows.py``'s importance sampling; each draw
of ``b`` comes from its exact conditional, then each group's effect from its own given ``b``.
Without groups the one parameter ``sigma`` is drawn from its posterior on a grid
(``linear_posterior.py``), whose formula has no cancellation when the rows fit exactly.

Why: ADVI approximates a posterior that is here known up to two parameters, and its first
fit in a process waits for a compiled step; this needs NumPy only (no PyMC import, nothing
compiled), is exact where mean-field ADVI narrows, and costs little with many groups.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .few_rows import _MIN_ESS, _Model, derivatives_at
from .linear_posterior import linear_exact_draws
from .statistics import LOG_2PI

__all__ = ["MAX_FIXED", "exact_draws", "exact_mode_means", "exact_zero_draws", "use_exact"]

MAX_FIXED = 64  # fixed coefficients (1 + features) up to which the posterior is computed here
_DRAW_CELLS = 2_000_000  # posterior draws x groups whose effects are drawn at once
_FLOAT32_GROUPS = 4096  # from this many groups the effect draws are kept in float32
_NEWTON_STEPS = 50  # at most, in the search for the mode
_NEWTON_TOLERANCE = 1e-7  # a step this small (in log scale) ends the search
_MAX_STEP = 2.0  # the longest Newton step (in log scale)


def use_exact(data: dict, sizes: list[int]) -> bool:
    """Whether the statistics' model is the linear model or random intercepts of one factor
    with at most :data:`MAX_FIXED` fixed coefficients."""
    return sizes in ([], [1]) and data["wtw"].shape[0] <= MAX_FIXED


def exact_draws(data: dict, sizes: list[int], n_draws: int, seed: int) -> tuple[dict, int]:
    """``n_draws`` posterior draws named as the ADVI fit's (``alpha``, ``beta``, ``sigma``,
    with a factor ``sigma_group_0`` and centred ``u_group_0``), on the standardised scale,
    and the iterations of the search for the noise and group sds' mode."""
    if not sizes:  # one parameter: its exact posterior on a grid
        return linear_exact_draws(data, n_draws, seed)
    rng = np.random.default_rng((seed, 3))
    model = _Intercepts(data, sizes)
    theta, ess = model.importance_draws(n_draws, rng)
    if ess < _MIN_ESS:
        warnings.warn(
            "The noise and group sds were drawn by importance sampling with an effective "
            f"sample size of {ess:.0f} (of {model.proposals}): intervals carry more Monte "
            "Carlo error than usual; method='advi' fits the model by ADVI instead.",
            UserWarning,
            stacklevel=6,
        )
    return model.coefficient_draws(theta, rng), model.n_iter


def exact_mode_means(data: dict, sizes: list[int]):
    """The posterior means of the coefficients ``(1 + p,)`` and of the effects ``(G,)``
    (None without a factor) given the scales at their posterior mode."""
    model = _Intercepts(data, sizes)
    mode, _ = model._mode()
    sigma, _, d, _, _, mean = model._system(mode[None])
    if not sizes:
        return mean[0], None
    effects = (model.group_y - mean[0] @ model.group_sums) / (
        sigma[0] ** 2 * d[0, model.size_of_group]
    )
    return mean[0], effects


def exact_zero_draws(data: dict, sizes: list[int], n_draws: int) -> dict:
    """:func:`exact_draws`' names and shapes with every value 0 (a constant target)."""
    model = _Intercepts(data, sizes)
    n_groups = model.group_sums.shape[1]
    draws = model.named(
        np.zeros((n_draws, model.dim)),
        np.zeros((n_draws, model.n_fixed)),
        np.zeros((n_draws, n_groups)) if sizes else None,
    )
    return {name: np.zeros_like(value) for name, value in draws.items()}


class _Intercepts(_Model):
    """The integrated likelihood over batches of ``theta = (log sigma[, log tau])``; priors,
    bounds, mode and importance sampling are ``few_rows._Model``'s."""

    # Two parameters with a near-Gaussian posterior: effective sample sizes of 2,200-2,500
    # of 4,000 proposals were measured from 2 to 390 groups (950-1,300 of 2,000), so half as
    # many leave more than the 500 draws kept by default, in half the time.
    proposals = 2000
    # Up to two more rounds where the posterior is far from Gaussian (groups of one row
    # confound the noise with the group sd: a curved ridge).
    rounds, enough_ess = 4, 500.0

    def __init__(self, data: dict, sizes: list[int]):
        self.sizes = list(sizes)
        self.scale = float(data["prior_scale"])
        self.n_obs, self.yty = float(data["n_obs"]), float(data["yty"])
        self.wtw, self.wty = np.asarray(data["wtw"]), np.asarray(data["wty"])
        self.n_fixed = self.wtw.shape[0]
        self.dim = 1 + len(self.sizes)
        self.centre_decimals = _centre_decimals(self.n_obs)
        if self.sizes:
            self.group_sums, self.group_y = np.asarray(data["wtz_0"]), np.asarray(data["ysum_0"])
        else:
            self.group_sums, self.group_y = np.zeros((self.n_fixed, 0)), np.zeros(0)
        self.n_groups = [self.group_sums.shape[1]] if self.sizes else []
        self._by_size()

    def _by_size(self) -> None:
        """Group counts and sums of ``Y_g^2`` over the groups of each distinct size, and
        the groups sorted by size (sums by size are then one ``reduceat``)."""
        sizes, self.size_of_group = np.unique(self.group_sums[0], return_inverse=True)
        self.size_of_group = self.size_of_group.ravel()
        self.distinct_sizes = sizes
        self._by_size_order = np.argsort(self.size_of_group, kind="stable")
        self._size_starts = np.searchsorted(
            self.size_of_group[self._by_size_order], np.arange(len(sizes))
        )
        self.groups_by_size = np.bincount(self.size_of_group, minlength=len(sizes)).astype(float)
        self._group_y_sorted = self.group_y[self._by_size_order]
        self.square_by_size = self._sum_by_size(self._group_y_sorted[:, None] ** 2)[:, 0]
        self.set_design(self.wtw, self.wty, self.group_sums)

    def _sum_by_size(self, sorted_by_size: np.ndarray) -> np.ndarray:
        """(G, k) values of the groups sorted by size, summed over each distinct size."""
        if not len(sorted_by_size):
            return np.zeros((0, sorted_by_size.shape[1]))
        return np.add.reduceat(sorted_by_size, self._size_starts, axis=0)

    def set_design(self, wtw: np.ndarray, wty: np.ndarray, group_sums: np.ndarray) -> None:
        """New ``W'W``, ``W'y`` and per-group sums ``S_g`` (the same rows, groups and
        targets; the features changed): ``S_g S_g'`` and ``Y_g S_g`` summed by size."""
        self.wtw, self.wty, self.group_sums = wtw, wty, group_sums
        sums, n_fixed = group_sums.T[self._by_size_order], self.n_fixed
        outer = np.einsum("gi,gj->gij", sums, sums).reshape(-1, n_fixed**2)
        self.outer_by_size = self._sum_by_size(outer)
        self.score_by_size = self._sum_by_size(sums * self._group_y_sorted[:, None])

    def _search(self, start: np.ndarray) -> tuple[np.ndarray, int]:
        """Newton's method with backtracking within the box (the log posterior of two
        scales is smooth and nearly quadratic in the logs: a few steps, each one batch of
        points; L-BFGS-B's own overhead was a third of a warm fit); L-BFGS-B from where a
        step's finite differences leave the box."""
        low, high = self.bounds().T
        theta, value = start, self.log_posterior(start[None])[0]
        for iteration in range(1, _NEWTON_STEPS + 1):
            gradient, hessian = derivatives_at(self.log_posterior, theta)
            if gradient is None:
                found, more = super()._search(theta)
                return found, iteration + more
            step = _ascent_step(gradient, hessian)
            for _ in range(30):
                candidate = np.clip(theta + step, low, high)
                new_value = self.log_posterior(candidate[None])[0]
                if new_value >= value:
                    break
                step = 0.5 * step
            else:
                return theta, iteration
            moved = float(np.max(np.abs(candidate - theta)))
            theta, value = candidate, new_value
            if moved < _NEWTON_TOLERANCE:
                break
        return theta, iteration

    def _system(self, theta: np.ndarray):
        """Per ``theta``: ``sigma``, ``tau``, ``d`` by distinct size, the Cholesky factor of
        ``R``, ``r`` and ``R^-1 r`` (the posterior mean of ``b``)."""
        sigma, factors = self._unpack(theta)
        tau = factors[0][0][:, 0] if factors else np.full(len(theta), np.inf)
        precision = 1.0 / sigma**2
        d = self.distinct_sizes * precision[:, None] + 1.0 / tau[:, None] ** 2
        weight = precision[:, None] ** 2 / d
        n_fixed = self.n_fixed
        reduced = precision[:, None, None] * self.wtw + np.eye(n_fixed) / self.scale**2
        reduced -= (weight @ self.outer_by_size).reshape(-1, n_fixed, n_fixed)
        score = precision[:, None] * self.wty - weight @ self.score_by_size
        chol = np.linalg.cholesky(reduced)
        mean = np.linalg.solve(reduced, score[:, :, None])[:, :, 0]
        return sigma, tau, d, chol, score, mean

    def log_likelihood(self, theta: np.ndarray) -> np.ndarray:
        sigma, tau, d, chol, score, mean = self._system(theta)
        weight = 1.0 / (sigma[:, None] ** 4 * d)
        explained = np.sum(score * mean, axis=1) + weight @ self.square_by_size
        rss = np.maximum(self.yty - explained * sigma**2, 0.0)
        log_det = np.log(d) @ self.groups_by_size + 2.0 * np.sum(
            np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1
        )
        n_groups = float(np.sum(self.groups_by_size))
        log_prior_det = -2.0 * self.n_fixed * math.log(self.scale)
        if self.sizes:
            log_prior_det = log_prior_det - 2.0 * n_groups * np.log(tau)
        return (
            -0.5 * self.n_obs * LOG_2PI
            - self.n_obs * np.log(sigma)
            - rss / (2.0 * sigma**2)
            + 0.5 * (log_prior_det - log_det)
        )

    def coefficient_draws(self, theta: np.ndarray, rng) -> dict:
        """Each draw of ``b`` from its conditional given that draw's ``theta``, then each
        group's effect from its conditional given ``b``: ``N((Y_g - S_g'b) / (sigma^2 d_g),
        1 / d_g)``, in float32 from :data:`_FLOAT32_GROUPS` groups (as the engine keeps
        large blocks)."""
        fixed = np.empty((len(theta), self.n_fixed))
        effects = self._empty_effects(len(theta))
        chunk = max(1, min(self.batch, _DRAW_CELLS // max(len(self.group_y), 1)))
        for start in range(0, len(theta), chunk):
            part = slice(start, start + chunk)
            sigma, _, d, chol, _, mean = self._system(theta[part])
            fixed[part] = mean + _solve_transposed(chol, rng.standard_normal(mean.shape))
            if effects is not None:
                self._draw_effects(effects[part], fixed[part], sigma, d, rng)
        return self.named(theta, fixed, effects)

    def _empty_effects(self, n_draws: int):
        if not self.sizes:
            return None
        dtype = np.float32 if len(self.group_y) >= _FLOAT32_GROUPS else np.float64
        return np.empty((n_draws, len(self.group_y)), dtype=dtype)

    def _draw_effects(self, out, fixed, sigma, d, rng) -> None:
        """Fill ``out`` (draws, groups) in place; per-size factors are gathered by group."""
        dtype, by_group = out.dtype, self.size_of_group
        rng.standard_normal(out=out, dtype=dtype)
        out *= np.take((1.0 / np.sqrt(d)).astype(dtype), by_group, axis=1)
        centre = (self.group_y - fixed @ self.group_sums).astype(dtype, copy=False)
        centre *= np.take((1.0 / (sigma[:, None] ** 2 * d)).astype(dtype), by_group, axis=1)
        out += centre

    def named(self, theta: np.ndarray, fixed: np.ndarray, effects) -> dict:
        sigma, factors = self._unpack(theta)
        draws = {"alpha": fixed[:, 0], "sigma": sigma}
        if self.n_fixed > 1:
            draws["beta"] = fixed[:, 1:]
        if effects is not None:
            draws["sigma_group_0"] = factors[0][0][:, 0]
            draws["u_group_0"] = effects
        return draws


def _ascent_step(gradient: np.ndarray, hessian: np.ndarray) -> np.ndarray:
    """Newton's step, with the curvature of directions that are not concave floored (so
    that each step climbs) and its length capped at :data:`_MAX_STEP`."""
    eigenvalues, vectors = np.linalg.eigh(-hessian)
    step = vectors @ ((vectors.T @ gradient) / np.maximum(eigenvalues, 1e-3))
    length = float(np.max(np.abs(step)))
    return step if length <= _MAX_STEP else step * (_MAX_STEP / length)


def _centre_decimals(n_obs: float) -> int:
    """Decimals that proposal centres are rounded to: about a tenth of the posterior sd of
    ``log sigma`` (``1 / sqrt(2 n)``), at least 2 (``few_rows.py``'s), at most 8."""
    sd = 1.0 / math.sqrt(2.0 * max(n_obs, 1.0))
    return int(min(max(math.ceil(-math.log10(0.1 * sd)), 2), 8))


def _solve_transposed(chol: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``L'^-1 rhs``: a draw with covariance ``(L L')^-1`` from standard normal ``rhs``."""
    return np.linalg.solve(np.swapaxes(chol, 1, 2), rhs[:, :, None])[:, :, 0]
