"""Missing feature values in the linear model and random intercepts of one factor: the
posterior by data augmentation, in NumPy (no ADVI, nothing compiled).

The model is ``missing.py``'s, priors included: ``y_i ~ Normal(alpha + x_i beta + u[g_i],
sigma)``, ``x_i ~ Normal(nu, Sigma)`` with ``Sigma^-1 = T' D^-2 T`` (``T`` unit lower
triangular: each feature regressed on the ones before it). A Gibbs sampler fills each
missing cell in, then draws the parameters given the filled-in rows, where everything is
conjugate or exact; each sweep draws, in turn:

1. the coefficients given the noise and group sds, the effects integrated out, then the
   effects given them (their exact Gaussian conditionals, ``exact.py``'s draws);
2. the noise sd given the coefficients and effects (its residual sum of squares from the
   filled-in rows' statistics), then the group sd given the effects: inverse-gamma draws
   of the variances, kept by a Metropolis step for the half-normal priors;
3. the feature model: ``nu`` given ``T`` and ``D`` (Gaussian), then per feature its row of
   ``T`` (Gaussian) and ``d_j`` (inverse-gamma, a Metropolis step for its half-normal prior)
   given ``nu``, all from the filled-in rows' ``W'W``;
4. each missing cell given its row's observed cells, target, group effect and the
   parameters: per pattern of missing cells, one precision ``Lambda_mm + beta_m beta_m' /
   sigma^2`` and its Cholesky factor serve every row.

Row weights are integer copies here: a row of weight 2 is two rows, each with its own
missing cells, as ``missing.py`` weights each row's likelihood with its cells integrated
out (one cell shared by both copies would be another model). Incomplete rows with
fractional weights, or so heavy that their copies would crowd memory, are left to ADVI.

Complete rows enter through their sufficient statistics; only the M incomplete rows are
visited. A sweep costs ``O(M p + G p^2 + P p^3)`` for p features, G groups and P patterns
of missing cells. Kept: one draw per sweep after the burn-in, each with one draw of every
missing cell (the training rows' imputed cells).

Why: ADVI of ``missing.py``'s model needed thousands of steps (seconds to tens of seconds)
and its mean-field family narrowed the coefficients below even the complete data's sds;
here each step draws from an exact conditional (the scales' up to a Metropolis step), the
draws are a Markov chain on the exact posterior, and the PyMC stack is never imported.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from scipy import sparse

from .exact import _Intercepts
from .feature_model import (
    conditional_cells,
    covariance_from_regressions,
    regressions_from_covariance,
)
from .few_rows import _well_conditioned
from .missing_statistics import pairwise_moments
from .statistics import factor_sizes

__all__ = ["missing_gibbs_draws", "missing_gibbs_zero_draws", "use_missing_gibbs"]

BURN_IN = 60  # sweeps discarded before the kept ones
MAX_COPIES = 4  # incomplete rows copied for their weights, per row on average


def use_missing_gibbs(data: dict) -> bool:
    """The linear model or random intercepts of one factor, the incomplete rows' weights
    whole numbers that add up to at most :data:`MAX_COPIES` per row (and 10,000 more)."""
    weights = data["miss_weight"]
    whole = bool(np.all(weights == np.round(weights)))
    return (
        factor_sizes(data) in ([], [1])
        and whole
        and float(np.sum(weights)) <= MAX_COPIES * len(weights) + 10_000
    )


def _copies(weights: np.ndarray) -> np.ndarray:
    return np.round(weights).astype(np.int64)


def missing_gibbs_draws(data: dict, n_draws: int, seed: int, verbose: int = 0):
    """``n_draws`` posterior draws (standardised scale) named as ``missing.py``'s completed
    ADVI draws (``alpha``, ``beta``, ``sigma``[, ``sigma_group_0``, ``u_group_0``],
    ``feature_mean``, ``feature_cov``, ``imputed``, ``imputed_columns``), and the sweeps
    run; ``verbose``: a status line on stderr, updated every 50 sweeps."""
    sampler = _Sampler(data, np.random.default_rng((seed, 4)))
    sampler.verbose = verbose > 0
    return sampler.run(n_draws), BURN_IN + n_draws


def missing_gibbs_zero_draws(data: dict, n_draws: int) -> dict:
    """The draws of a constant target: every regression parameter 0, the feature model and
    the cells at the sampler's start (their moments given the observed cells)."""
    sampler = _Sampler(data, np.random.default_rng(0))
    zeros = np.zeros(n_draws)
    draws = {"alpha": zeros, "sigma": zeros, "beta": np.zeros((n_draws, sampler.p))}
    if sampler.sizes:
        draws["sigma_group_0"] = zeros
        draws["u_group_0"] = np.zeros((n_draws, sampler.model.group_sums.shape[1]))
    draws["feature_mean"] = np.repeat(sampler.nu[None], n_draws, axis=0)
    covariance = covariance_from_regressions(sampler.lower, sampler.d)
    draws["feature_cov"] = np.repeat(covariance[None], n_draws, axis=0)
    mask = sampler.data_mask()
    cells = sampler.x[sampler.first_copies()][mask].astype(np.float32)
    draws["imputed"] = np.repeat(cells[None], n_draws, axis=0)
    draws["imputed_columns"] = np.nonzero(mask)[1]
    return draws


class _Sampler:
    """The sampler's state: the incomplete rows filled in (``x``, rows sorted by their
    pattern of missing cells, so that each pattern is a slice), ``theta``, and the feature
    model (``nu``, ``lower`` = T, ``d``)."""

    def __init__(self, data: dict, rng: np.random.Generator):
        self.rng, self.sizes = rng, factor_sizes(data)
        self.scale = float(data["prior_scale"])
        copies = np.repeat(np.arange(len(data["miss_y"])), _copies(data["miss_weight"]))
        mask = data["miss_mask"][copies] > 0
        patterns, inverse = np.unique(mask, axis=0, return_inverse=True)
        self.order = np.argsort(inverse.ravel(), kind="stable")
        self.source = copies[self.order]  # each row's incomplete row in the data
        self.mask = mask[self.order]
        self.design = np.column_stack([np.ones(len(mask)), data["miss_x"][self.source]])
        self.x = self.design[:, 1:]  # a view: filling cells in updates the design
        self.observed = self.x.copy()  # zero at the missing cells
        self.y = data["miss_y"][self.source]
        self.p = self.x.shape[1]
        self.blocks = _pattern_blocks(patterns, np.bincount(inverse.ravel()), self)
        self.n_cells = int(self.mask.sum())
        self.cells = np.empty(self.n_cells)
        self.codes = data["miss_group_0"][self.source] if self.sizes else None
        self.base = data
        self.group_matrix = self._group_matrix(data)
        self._start_features()
        self.model = _Intercepts(self._statistics(), self.sizes)

    def _group_matrix(self, data: dict):
        """The (G, M) sparse indicator matrix of the rows' groups (None without groups)."""
        if not self.sizes:
            return None
        n_groups = data["ysum_0"].shape[0]
        rows = np.arange(len(self.codes))
        ones = np.ones(len(rows))
        return sparse.csr_matrix((ones, (self.codes, rows)), shape=(n_groups, len(rows)))

    def first_copies(self) -> np.ndarray:
        """Per incomplete row of the data, the sampler's row of its first copy."""
        _, first = np.unique(self.source, return_index=True)  # every row has a copy
        return first

    def data_mask(self) -> np.ndarray:
        """The missing cells of the data's incomplete rows, in their order."""
        return self.mask[self.first_copies()]

    def cell_ids(self) -> np.ndarray:
        """Per cell in the sampler's order (pattern blocks, rows, columns), its position
        among the data's missing cells in row-major order, or -1 for a later copy's."""
        mask = self.data_mask()
        ids = np.full(mask.shape, -1, dtype=np.int64)
        ids[mask] = np.arange(int(mask.sum()))
        per_row = np.full(self.mask.shape, -1, dtype=np.int64)
        first = self.first_copies()
        per_row[first] = ids
        return np.concatenate([per_row[block.rows][:, block.m].ravel() for block in self.blocks])

    # ------------------------------------------------------------------ statistics
    def _statistics(self) -> dict:
        """The statistics of every row: the complete rows' plus the filled-in rows'."""
        wtw, wty, group_sums = self._design_sums()
        data = {
            "prior_scale": self.scale,
            "n_obs": float(self.base["n_obs"]) + float(len(self.y)),
            "yty": float(self.base["yty"]) + float(self.y @ self.y),
            "wtw": wtw,
            "wty": wty,
        }
        if self.sizes:
            data["wtz_0"] = group_sums
            data["ysum_0"] = self.base["ysum_0"] + self.group_matrix @ self.y
        return data

    def _design_sums(self):
        """``W'W``, ``W'y`` and the per-group sums (None without groups) of every row."""
        wtw = self.base["wtw"] + self.design.T @ self.design
        wty = self.base["wty"] + self.design.T @ self.y
        if not self.sizes:
            return wtw, wty, None
        return wtw, wty, self.base["wtz_0"] + (self.group_matrix @ self.design).T

    def _refresh_design(self) -> None:
        """The model's ``W'W``, ``W'y`` and group sums after the cells changed."""
        wtw, wty, group_sums = self._design_sums()
        self.model.set_design(wtw, wty, self.model.group_sums if group_sums is None else group_sums)

    # ------------------------------------------------------------------ start
    def _start_features(self) -> None:
        """The feature model at the complete rows' moments (or the pairwise ones, with few
        complete rows), and the cells filled in with their conditional means given the
        row's observed cells and target under the joint Gaussian of ``(x, y)``."""
        joint_mean, joint_cov = self._joint_moments()
        values = np.column_stack([np.where(self.mask, np.nan, self.x), self.y])
        for block in self.blocks:
            joint_pattern = np.append(block.pattern, False)
            mean, _ = conditional_cells(values[block.rows], joint_pattern, joint_mean, joint_cov)
            self.x[block.rows, block.m] = mean[:, 0, :]
        self.nu = joint_mean[0, : self.p].copy()
        self.lower, self.d = regressions_from_covariance(joint_cov[0, : self.p, : self.p])

    def _joint_moments(self):
        """Mean (1, p + 1) and covariance (1, p + 1, p + 1) of ``(x, y)``: the complete
        rows' weighted moments, or the pairwise moments of the incomplete rows where fewer
        than ``2 (p + 2)`` rows are complete."""
        n_rows = float(self.base["n_obs"])
        if n_rows >= 2 * (self.p + 2):
            wtw, wty = self.base["wtw"], self.base["wty"]
            second = np.block(
                [[wtw, wty[:, None]], [wty[None, :], np.array([[float(self.base["yty"])]])]]
            )
            mean = second[0, 1:] / n_rows
            cov = second[1:, 1:] / n_rows - np.outer(mean, mean)
        else:
            values = np.column_stack([np.where(self.mask, np.nan, self.x), self.y])
            mean, cov = pairwise_moments(values)
        cov = _well_conditioned(cov, 1e-6 * max(float(np.max(np.diag(cov))), 1e-12))
        return mean[None], cov[None]

    # ------------------------------------------------------------------ sweeps
    verbose = False

    def run(self, n_draws: int) -> dict:
        self.theta, _ = self.model._mode()  # at the start's filled-in rows
        total = BURN_IN + n_draws
        for sweep in range(BURN_IN):
            self._sweep()
            self._report(sweep + 1, total)
        kept = _Kept(n_draws, self)
        for index in range(n_draws):
            kept.add(index, self, *self._sweep())
            self._report(BURN_IN + index + 1, total)
        return kept.named(self)

    def _report(self, sweep: int, total: int) -> None:
        if self.verbose and (sweep % 50 == 0 or sweep == total):
            phase = "burn-in" if sweep <= BURN_IN else "kept"
            end = "\n" if sweep == total else ""
            print(f"\rGibbs sweep {sweep}/{total} ({phase})", end=end, file=sys.stderr, flush=True)

    def _sweep(self):
        """One sweep (see the module's docstring); returns the coefficients, effects and
        cells."""
        drawn = self.model.coefficient_draws(self.theta[None], self.rng)
        fixed = np.concatenate([drawn["alpha"], drawn["beta"][0]])
        effects = drawn["u_group_0"][0].astype(float) if self.sizes else None
        self._step_scales(fixed, effects)
        self._step_features()
        cells = self._step_cells(fixed, effects, math.exp(self.theta[0]))
        self._refresh_design()
        return fixed, effects, cells

    def _step_scales(self, fixed: np.ndarray, effects) -> None:
        """The noise sd given the coefficients and effects (from the residual sum of
        squares, through the statistics), then the group sd given the effects."""
        model = self.model
        rss = model.yty - 2.0 * fixed @ model.wty + fixed @ model.wtw @ fixed
        if effects is not None:
            sums, sizes = model.group_sums, model.group_sums[0]
            rss += effects @ (2.0 * (fixed @ sums - model.group_y) + sizes * effects)
        self.theta[0] = self._scale_draw(self.theta[0], max(float(rss), 1e-300), model.n_obs)
        if effects is not None:
            self.theta[1] = self._scale_draw(self.theta[1], float(effects @ effects), len(effects))

    def _scale_draw(self, log_scale: float, squares: float, count: float) -> float:
        """A scale with likelihood ``scale^-count exp(-squares / (2 scale^2))`` and prior
        ``HalfNormal(s)``: an inverse-gamma draw for its variance (the likelihood's part),
        kept by a Metropolis step for the prior's factor ``exp(-scale^2 / (2 s^2))``; within
        ``few_rows``' bounds of the log scale."""
        shape = 0.5 * max(count - 1.0, 1.0)
        proposal = 0.5 * math.log(0.5 * squares / self.rng.gamma(shape))
        low, high = math.log(self.scale) - 8.0, math.log(self.scale) + 6.0
        log_ratio = -(math.exp(2 * proposal) - math.exp(2 * log_scale)) / (2.0 * self.scale**2)
        accept = math.log(self.rng.uniform()) < log_ratio and low <= proposal <= high
        return proposal if accept else log_scale

    def _step_features(self) -> None:
        """``nu`` given ``T, D``; then per feature its regression on the ones before it and
        its sd given ``nu`` (priors ``N(0, s)`` and ``HalfNormal(s)``, as ``missing.py``)."""
        wtw, s2 = self.model.wtw, self.scale**2
        n_rows, sums, cross = float(wtw[0, 0]), wtw[1:, 0], wtw[1:, 1:]
        precision_x = (self.lower.T / self.d[None, :] ** 2) @ self.lower
        self.nu = _gaussian_draw(
            n_rows * precision_x + np.eye(self.p) / s2, precision_x @ sums, self.rng
        )
        outer = np.outer(self.nu, sums)
        scatter = cross - outer - outer.T + n_rows * np.outer(self.nu, self.nu)
        for j in range(self.p):
            before = scatter[:j, :j]
            phi = np.zeros(0)
            if j:
                phi = _gaussian_draw(
                    before / self.d[j] ** 2 + np.eye(j) / s2,
                    scatter[:j, j] / self.d[j] ** 2,
                    self.rng,
                )
                self.lower[j, :j] = -phi
            rss = scatter[j, j] - 2.0 * phi @ scatter[:j, j] + phi @ before @ phi
            self._step_sd(j, max(float(rss), 1e-300), n_rows)

    def _step_sd(self, j: int, rss: float, n_rows: float) -> None:
        """``d_j`` given its feature's regression (``rss``: its residual sum of squares)."""
        self.d[j] = math.exp(self._scale_draw(math.log(self.d[j]), rss, n_rows))

    def _step_cells(self, fixed: np.ndarray, effects, sigma: float) -> np.ndarray:
        """Every missing cell from its Gaussian conditional (the module's step 4); returns
        them in the sampler's order."""
        beta = fixed[1:]
        residual = self.y - fixed[0] - self.observed @ beta
        if effects is not None:
            residual -= effects[self.codes]
        precision_x = (self.lower.T / self.d[None, :] ** 2) @ self.lower
        noise = self.rng.standard_normal(self.n_cells)
        at = 0
        for block in self.blocks:
            b = beta[block.m]
            covariance = np.linalg.inv(precision_x[block.mm] + np.outer(b, b) / sigma**2)
            gain = precision_x[block.om]  # (|o|, |m|)
            constant = precision_x[block.mm] @ self.nu[block.m] + self.nu[block.o] @ gain
            linear = constant - block.observed @ gain + residual[block.rows, None] * (b / sigma**2)
            count = block.n_rows * len(block.m)
            spread = noise[at : at + count].reshape(block.n_rows, -1)
            drawn = self.cells[at : at + count].reshape(block.n_rows, -1)
            np.matmul(linear, covariance, out=drawn)
            drawn += spread @ np.linalg.cholesky(covariance).T
            for k, column in enumerate(block.m):  # a strided copy per column
                self.x[block.rows, column] = drawn[:, k]
            at += count
        return self.cells


class _Block:
    """The rows (a slice) that share one pattern of missing cells, its missing (``m``) and
    observed (``o``) columns, their index pairs and the rows' observed cells."""

    def __init__(self, pattern: np.ndarray, rows: slice, sampler: _Sampler):
        self.pattern, self.rows = pattern, rows
        self.m, self.o = np.flatnonzero(pattern), np.flatnonzero(~pattern)
        self.mm, self.om = np.ix_(self.m, self.m), np.ix_(self.o, self.m)
        self.n_rows = rows.stop - rows.start
        self.observed = sampler.observed[rows][:, self.o]


def _pattern_blocks(patterns: np.ndarray, counts: np.ndarray, sampler: _Sampler):
    """One :class:`_Block` per pattern that has a missing cell (rows sorted by pattern)."""
    blocks, start = [], 0
    for pattern, count in zip(patterns, counts, strict=True):
        if pattern.any():
            blocks.append(_Block(pattern, slice(start, start + int(count)), sampler))
        start += int(count)
    return blocks


class _Kept:
    """The kept sweeps' draws."""

    def __init__(self, n_draws: int, sampler: _Sampler):
        model, p = sampler.model, sampler.p
        self.theta = np.empty((n_draws, model.dim))
        self.fixed = np.empty((n_draws, p + 1))
        self.effects = model._empty_effects(n_draws)
        self.nu = np.empty((n_draws, p))
        self.lower, self.d = np.empty((n_draws, p, p)), np.empty((n_draws, p))
        self.cells = np.empty((n_draws, sampler.n_cells), dtype=np.float32)

    def add(self, index: int, sampler: _Sampler, fixed, effects, cells) -> None:
        self.theta[index], self.fixed[index] = sampler.theta, fixed
        if self.effects is not None:
            self.effects[index] = effects
        self.nu[index], self.lower[index], self.d[index] = sampler.nu, sampler.lower, sampler.d
        self.cells[index] = cells

    def named(self, sampler: _Sampler) -> dict:
        draws = sampler.model.named(self.theta, self.fixed, self.effects)
        draws["feature_mean"] = self.nu
        draws["feature_cov"] = covariance_from_regressions(self.lower, self.d)
        ids = sampler.cell_ids()
        kept = ids >= 0
        imputed = np.empty((len(self.cells), int(kept.sum())), dtype=np.float32)
        imputed[:, ids[kept]] = self.cells[:, kept]
        draws["imputed"] = imputed
        draws["imputed_columns"] = np.nonzero(sampler.data_mask())[1]
        return draws


def _gaussian_draw(precision: np.ndarray, linear: np.ndarray, rng) -> np.ndarray:
    """A draw from ``Normal(precision^-1 linear, precision^-1)``."""
    covariance = np.linalg.inv(precision)
    return covariance @ linear + np.linalg.cholesky(covariance) @ rng.standard_normal(len(linear))
