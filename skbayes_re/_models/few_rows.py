"""The Gaussian mixed model's posterior from few rows, without ADVI.

Stack every linear coefficient, fixed and random, into ``b = L v`` with ``v ~ Normal(0, I)``:
``L`` is block diagonal, ``s`` (the prior scale) for the intercept and slopes of the fixed
part, ``sigma_k`` for each random intercept, ``diag(tau_k) C_k`` (LKJ factor) for each group's
correlated effects. With the full design ``Phi = (W, V_1, ..., V_K)``, ``A = L' Phi'Phi L``,
``c = L' Phi'y`` and ``M = I + A / sigma^2``, the coefficients integrate out exactly:

    log p(y | theta) = -n/2 log(2 pi) - n log sigma - 1/2 log|M|
                       - (y'y - c' M^-1 c / sigma^2) / (2 sigma^2)

and given ``theta`` (the noise, group scales and correlations) ``v`` is Gaussian with mean
``M^-1 c / sigma^2`` and covariance ``M^-1``. The few variance parameters are drawn by
importance sampling: a Student-t proposal at the posterior mode with the inverse Hessian's
shape, refined once from the weighted draws, then resampled; each draw of ``b`` comes from its
exact conditional. The result is the posterior up to Monte Carlo error.

Why: with a handful of rows the data hardly inform the noise, while a mean-field
approximation over coefficients, effects and ``log sigma`` together lets the coefficients
absorb the rows and collapses the noise (random intercepts from three rows: 90% intervals
covered 4% of fresh data, 21% from four, 71% from six). Integrated out, the noise posterior
sees what the exact one sees.

Cost: ``P = 1 + p + sum_k G_k q_k`` coefficients; one P x P Cholesky factorisation per
proposal (a few thousand, in batches), nothing per row and nothing compiled. Used below
:data:`FEW_ROWS` rows, where P is small; the ADVI path serves everything else.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
from scipy import optimize, special

from .statistics import LOG_2PI

__all__ = ["FEW_ROWS", "MAX_COEFFICIENTS", "few_rows_draws", "few_rows_zero_draws", "use_few_rows"]

FEW_ROWS = 30  # below this many rows (total weight), the posterior is computed here
MAX_COEFFICIENTS = 150  # and when the stacked coefficients are at most this many
_PROPOSAL_DF = 4.0
_PROPOSALS = 4000  # per importance-sampling round
_MIN_ESS = 200.0  # below this, a warning
_STEP = 1e-4  # of the finite differences in theta
_BATCH = 500  # proposals whose P x P systems are solved at once


def use_few_rows(data: dict, sizes: list[int]) -> bool:
    """Whether a Gaussian mixed model's statistics call for this module's posterior."""
    n_coefficients = data["wtw"].shape[0] + sum(
        _n_groups(data, k, size) * size for k, size in enumerate(sizes)
    )
    return float(data["n_obs"]) < FEW_ROWS and n_coefficients <= MAX_COEFFICIENTS


def few_rows_draws(data: dict, sizes: list[int], n_draws: int, seed: int) -> tuple[dict, int]:
    """``n_draws`` posterior draws named as the ADVI fit's (``alpha``, ``beta``, ``sigma``,
    ``sigma_group_k``, ``corr_group_k`` with slopes) with every factor's effects drawn
    centred (``u_group_k``), on the standardised scale, and the iterations of the search
    for the variance parameters' mode."""
    rng = np.random.default_rng((seed, 2))
    model = _Model(data, sizes)
    theta, ess = model.importance_draws(n_draws, rng)
    if ess < _MIN_ESS:
        warnings.warn(
            f"The posterior from {float(data['n_obs']):g} rows was drawn by importance "
            f"sampling with an effective sample size of {ess:.0f} (of {_PROPOSALS}): its "
            "intervals carry more Monte Carlo error than usual.",
            UserWarning,
            stacklevel=6,
        )
    return model.coefficient_draws(theta, rng), model.n_iter


def few_rows_zero_draws(data: dict, sizes: list[int], n_draws: int) -> dict:
    """:func:`few_rows_draws`' names and shapes with every value 0: a constant target's
    posterior (see ``constant.py``)."""
    model = _Model(data, sizes)
    draws = model._named(np.zeros((n_draws, model.dim)), np.zeros((n_draws, model.gram.shape[0])))
    return {name: np.zeros_like(value) for name, value in draws.items()}


def _n_groups(data: dict, k: int, size: int) -> int:
    return int(data[f"ysum_{k}"].shape[0] if size == 1 else data[f"vty_{k}"].shape[0])


class _Model:
    """The integrated likelihood and priors of one data set, over batches of ``theta``.

    ``theta`` (unconstrained): ``log sigma``, then per factor its ``log tau`` (q_k values) and,
    with slopes, the LKJ factor's unconstrained reals (q_k (q_k - 1) / 2).
    """

    def __init__(self, data: dict, sizes: list[int]):
        self.sizes = sizes
        self.scale = float(data["prior_scale"])
        self.n_obs, self.yty = float(data["n_obs"]), float(data["yty"])
        self.n_fixed = data["wtw"].shape[0]
        self.n_groups = [_n_groups(data, k, size) for k, size in enumerate(sizes)]
        self.gram, self.score = _stacked_statistics(data, sizes, self.n_groups)
        self.dim = 1 + sum(size + size * (size - 1) // 2 for size in sizes)

    # Proposals per importance-sampling round, proposals evaluated at once, the decimals
    # that proposal centres are rounded to, and the rounds (see :meth:`importance_draws`).
    proposals, batch, centre_decimals = _PROPOSALS, _BATCH, 2
    rounds, enough_ess = 2, 0.0

    # ------------------------------------------------------------------ theta
    def _scale_positions(self) -> list[int]:
        """Where ``theta`` holds log scales (the rest are correlation reals)."""
        positions, at = [0], 1
        for size in self.sizes:
            positions.extend(range(at, at + size))
            at += size + size * (size - 1) // 2
        return positions

    def _unpack(self, theta: np.ndarray):
        """``sigma`` (B,) and per factor (tau (B, q), the correlation factor's unconstrained
        reals (B, q (q - 1) / 2))."""
        sigma, factors, at = np.exp(theta[:, 0]), [], 1
        for size in self.sizes:
            tau = np.exp(theta[:, at : at + size])
            at += size
            n_raw = size * (size - 1) // 2
            raw = theta[:, at : at + n_raw]
            at += n_raw
            factors.append((tau, raw))
        return sigma, factors

    def log_prior(self, theta: np.ndarray) -> np.ndarray:
        """HalfNormal(s) on every scale (with the log transform's Jacobian) and LKJ(eta)
        on each correlation (with its map's Jacobian), as the ADVI models state them."""
        sigma, factors = self._unpack(theta)
        scales = np.column_stack([sigma, *(tau for tau, _ in factors)])
        log_density = np.sum(np.log(scales) - 0.5 * (scales / self.scale) ** 2, axis=1)
        for size, (_, raw) in zip(self.sizes, factors, strict=True):
            if size > 1:
                log_density += _lkj_log_density(raw, size)
        return log_density

    def _prior_factor(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``sigma`` (B,) and the block-diagonal ``L`` (B, P, P)."""
        from .slopes import lkj_cholesky_numpy

        sigma, factors = self._unpack(theta)
        n_coefs = self.gram.shape[0]
        factor = np.zeros((len(theta), n_coefs, n_coefs))
        index = np.arange(self.n_fixed)
        factor[:, index, index] = self.scale
        at = self.n_fixed
        for size, n_groups, (tau, raw) in zip(self.sizes, self.n_groups, factors, strict=True):
            block = tau[:, :, None] * (lkj_cholesky_numpy(raw, size) if size > 1 else 1.0)
            for _ in range(n_groups):
                factor[:, at : at + size, at : at + size] = block
                at += size
        return sigma, factor

    def _solve(self, theta: np.ndarray):
        """Per ``theta``: ``sigma``, ``L``, the Cholesky factor of ``M`` and ``M^-1 c``."""
        sigma, factor = self._prior_factor(theta)
        sigma2 = sigma[:, None, None] ** 2
        system = np.einsum("bji,jk,bkl->bil", factor, self.gram, factor, optimize=True) / sigma2
        system[:, np.arange(system.shape[1]), np.arange(system.shape[1])] += 1.0
        projected = np.einsum("bji,j->bi", factor, self.score)
        chol = np.linalg.cholesky(system)
        solved = np.linalg.solve(system, projected[:, :, None])[:, :, 0]
        return sigma, factor, chol, projected, solved

    def log_likelihood(self, theta: np.ndarray) -> np.ndarray:
        sigma, _, chol, projected, solved = self._solve(theta)
        log_det = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
        explained = np.sum(projected * solved, axis=1) / sigma**2
        rss = np.maximum(self.yty - explained, 0.0)
        return (
            -0.5 * self.n_obs * LOG_2PI
            - self.n_obs * np.log(sigma)
            - 0.5 * log_det
            - rss / (2.0 * sigma**2)
        )

    def log_posterior(self, theta: np.ndarray) -> np.ndarray:
        """Up to a constant, over the box of :meth:`bounds` (``-inf`` outside it)."""
        theta = np.atleast_2d(theta)
        low, high = self.bounds().T
        inside = np.all((theta >= low) & (theta <= high), axis=1)
        values = np.full(len(theta), -np.inf)
        kept = theta[inside]
        positions = np.flatnonzero(inside)
        for start in range(0, len(kept), self.batch):
            rows = slice(start, start + self.batch)
            values[positions[rows]] = self._batch_log_posterior(kept[rows])
        return np.where(np.isfinite(values), values, -np.inf)

    def _batch_log_posterior(self, theta: np.ndarray) -> np.ndarray:
        try:
            return self.log_likelihood(theta) + self.log_prior(theta)
        except np.linalg.LinAlgError:  # one ill-conditioned system: take them one by one
            if len(theta) == 1:
                return np.array([-np.inf])
            return np.concatenate([self._batch_log_posterior(row[None]) for row in theta])

    def bounds(self) -> np.ndarray:
        """Where ``theta`` may lie: log scales within ``[log s - 8, log s + 6]``, correlation
        reals within ``[-6, 6]`` (partial correlations up to 0.99999). Below a noise sd of
        ``s e^-8`` (0.08% of the target's sd for the default ``s``) the likelihood of rows
        fitted almost exactly is dominated by the rounding of ``y'y - c'M^-1 c``; such rows
        put the noise at that floor, which errs on the side of wider intervals."""
        box = np.tile([-6.0, 6.0], (self.dim, 1))
        box[self._scale_positions()] = math.log(self.scale) + np.array([-8.0, 6.0])
        return box

    # ------------------------------------------------------------------ sampling
    def _mode(self) -> tuple[np.ndarray, np.ndarray]:
        """The posterior mode of ``theta`` and the covariance of a Gaussian fitted there
        (``n_iter``: the search's iterations)."""
        start = np.zeros(self.dim)
        start[self._scale_positions()] = math.log(0.5 * self.scale)
        found, self.n_iter = self._search(start)
        mode = self._round_centre(found)
        return mode, _rounded(_covariance_at(self.log_posterior, mode))

    def _search(self, start: np.ndarray) -> tuple[np.ndarray, int]:
        """L-BFGS-B within the box, on central-difference gradients."""

        def loss_and_gradient(theta):
            # Central differences with a step well above the log density's rounding noise,
            # all points in one batch.
            shifted = theta + np.concatenate([[np.zeros(self.dim)], steps, -steps])
            values = self.log_posterior(np.clip(shifted, *self.bounds().T))
            gradient = (values[1 : 1 + self.dim] - values[1 + self.dim :]) / (2 * _STEP)
            return -values[0], -gradient

        steps = np.eye(self.dim) * _STEP
        found = optimize.minimize(
            loss_and_gradient,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=self.bounds(),
            options={"ftol": 1e-13, "gtol": 1e-7},
        )
        return found.x, int(found.nit)

    def importance_draws(self, n_draws: int, rng) -> tuple[np.ndarray, float]:
        """``n_draws`` draws of ``theta`` and the last round's effective sample size.

        The first round's proposal is the Laplace approximation widened by 1.5; each next
        round's the last one's weighted mean and covariance (widened alike), or, where it
        left too few effective draws to estimate them, the last proposal widened again; up
        to ``rounds`` rounds, ending early (after the second) once the effective sample
        size reaches ``enough_ess``.
        Proposals are rounded (centres to ``centre_decimals``, covariances to two
        significant digits), and log weights to 1e-6: any proposal serves importance
        sampling, and a rounded one does not move with the last digits of the statistics, so
        rows given weight 2 and the same rows twice give the same draws."""
        centre, covariance = self._mode()
        covariance = covariance * 1.5**2
        for round_ in range(self.rounds):
            proposals, log_proposal = _student_t_draws(centre, covariance, self.proposals, rng)
            log_weights = self.log_posterior(proposals) - log_proposal
            # to 1e-6: resampling is discontinuous in the weights, so weights that moved with
            # the last digits of the statistics would let one draw jump
            weights = np.exp(np.round(log_weights - np.max(log_weights), 6))
            weights /= np.sum(weights)
            ess = float(1.0 / np.sum(weights**2))
            if round_ == self.rounds - 1 or (round_ >= 1 and ess >= self.enough_ess):
                break
            if ess >= _MIN_ESS:
                centre = self._round_centre(weights @ proposals)
                spread = proposals - centre
                covariance = _rounded(1.5**2 * (weights[:, None] * spread).T @ spread)
            else:
                covariance = covariance * 2.0**2
        return proposals[_systematic_resample(weights, n_draws, rng)], ess

    def _round_centre(self, centre: np.ndarray) -> np.ndarray:
        return np.round(centre, self.centre_decimals)

    def coefficient_draws(self, theta: np.ndarray, rng) -> dict:
        """Each draw of ``b = L v`` from its conditional Gaussian given that draw of theta."""
        coefs = np.empty((len(theta), self.gram.shape[0]))
        for start in range(0, len(theta), _BATCH):
            part = slice(start, start + _BATCH)
            sigma, factor, chol, _, solved = self._solve(theta[part])
            noise = rng.standard_normal(solved.shape)
            # v = M^-1 c / sigma^2 + C^-T e, with M = C C'
            spread = np.linalg.solve(np.swapaxes(chol, 1, 2), noise[:, :, None])[:, :, 0]
            v = solved / sigma[:, None] ** 2 + spread
            coefs[part] = np.einsum("bij,bj->bi", factor, v)
        return self._named(theta, coefs)

    def _named(self, theta: np.ndarray, coefs: np.ndarray) -> dict:
        sigma, factors = self._unpack(theta)
        draws = {"alpha": coefs[:, 0], "sigma": sigma}
        if self.n_fixed > 1:
            draws["beta"] = coefs[:, 1 : self.n_fixed]
        at = self.n_fixed
        for k, (size, n_groups, (tau, raw)) in enumerate(
            zip(self.sizes, self.n_groups, factors, strict=True)
        ):
            effects = coefs[:, at : at + n_groups * size]
            at += n_groups * size
            if size == 1:
                draws[f"sigma_group_{k}"] = tau[:, 0]
                draws[f"u_group_{k}"] = effects
            else:
                draws[f"sigma_group_{k}"] = tau
                draws[f"corr_group_{k}"] = raw
                draws[f"u_group_{k}"] = effects.reshape(len(theta), n_groups, size)
        return draws


# ----------------------------------------------------------------------------- statistics
def _stacked_statistics(data: dict, sizes: list[int], n_groups: list[int]):
    """``Phi'Phi`` (P, P) and ``Phi'y`` (P) of the full design, from the model's statistics
    (groups in order, each group's q columns together)."""
    blocks = [data["wtw"].shape[0], *(g * q for g, q in zip(n_groups, sizes, strict=True))]
    offsets = np.r_[0, np.cumsum(blocks)]
    gram = np.zeros((offsets[-1], offsets[-1]))
    score = np.zeros(offsets[-1])
    fixed = slice(0, offsets[1])
    gram[fixed, fixed] = data["wtw"]
    score[fixed] = data["wty"]
    for k, size in enumerate(sizes):
        own = slice(offsets[k + 1], offsets[k + 2])
        if size == 1:
            gram[fixed, own] = data[f"wtz_{k}"]
            gram[own, own] = np.diag(data[f"wtz_{k}"][0])
            score[own] = data[f"ysum_{k}"]
        else:
            gram[fixed, own] = data[f"wtv_{k}"]
            gram[own, own] = _block_diagonal(data[f"vtv_{k}"])
            score[own] = data[f"vty_{k}"].ravel()
        gram[own, fixed] = gram[fixed, own].T
    for k, m in itertools.combinations(range(len(sizes)), 2):
        first, second = data[f"pair_first_{k}_{m}"], data[f"pair_second_{k}_{m}"]
        cross = data.get(f"pair_cross_{k}_{m}")
        if cross is None:
            cross = data[f"pair_count_{k}_{m}"][:, None, None]
        for pair, (g, h) in enumerate(zip(first, second, strict=True)):
            rows = offsets[k + 1] + g * sizes[k] + np.arange(sizes[k])
            columns = offsets[m + 1] + h * sizes[m] + np.arange(sizes[m])
            gram[np.ix_(rows, columns)] += cross[pair]
            gram[np.ix_(columns, rows)] += cross[pair].T
    return gram, score


def _block_diagonal(blocks: np.ndarray) -> np.ndarray:
    n_blocks, size, _ = blocks.shape
    out = np.zeros((n_blocks * size, n_blocks * size))
    for g in range(n_blocks):
        out[g * size : (g + 1) * size, g * size : (g + 1) * size] = blocks[g]
    return out


# ----------------------------------------------------------------------------- helpers
def _lkj_log_density(raw: np.ndarray, size: int) -> np.ndarray:
    """The LKJ(eta) log density of the correlation factor built from ``raw`` (B, n) plus the
    map's log-Jacobian, as ``slopes.lkj_cholesky`` adds it to the ADVI model."""
    from .slopes import LKJ_ETA as eta

    log_density = -2.0 * np.sum(np.logaddexp(raw, -raw) - math.log(2.0), axis=1)
    position = 0
    for i in range(1, size):
        remaining = np.ones(len(raw))
        for j in range(i):
            element = np.tanh(raw[:, position]) * np.sqrt(remaining)
            position += 1
            if j:
                log_density += 0.5 * np.log(remaining)
            remaining = remaining - element**2
        log_density += 0.5 * (size - i + 2.0 * eta - 3.0) * np.log(remaining)
    return log_density


def _covariance_at(log_density, point: np.ndarray, step: float = 1e-3) -> np.ndarray:
    """Inverse of the negative Hessian of ``log_density`` at ``point`` by central
    differences (eigenvalues floored, so a flat direction gets a wide, not infinite,
    spread)."""
    _, hessian = derivatives_at(log_density, point, step)
    if hessian is None:  # at the box's edge: a prior-like spread
        return np.eye(len(point))
    eigenvalues, vectors = np.linalg.eigh(-hessian)
    eigenvalues = np.maximum(eigenvalues, 0.25)  # a prior-like spread at most 2 on log scales
    return (vectors / eigenvalues) @ vectors.T


def derivatives_at(log_density, point: np.ndarray, step: float = 1e-3):
    """Gradient and Hessian of ``log_density`` at ``point`` by central differences, from one
    batch of points (``None, None`` where one of them has no finite value)."""
    dim = len(point)
    shifts = np.eye(dim) * step
    pairs = [(i, j) for i in range(dim) for j in range(i, dim)]
    points = [point]
    for i, j in pairs:
        for a, b in itertools.product((1, -1), repeat=2):
            points.append(point + a * shifts[i] + b * shifts[j])
    values = log_density(np.array(points))
    if not np.all(np.isfinite(values)):
        return None, None
    hessian, gradient = np.empty((dim, dim)), np.empty(dim)
    for n, (i, j) in enumerate(pairs):
        pp, pm_, mp, mm = values[1 + 4 * n : 5 + 4 * n]
        hessian[i, j] = hessian[j, i] = (pp - pm_ - mp + mm) / (4.0 * step**2)
        if i == j:  # the points at +-2 step along axis i
            gradient[i] = (pp - mm) / (4.0 * step)
    return gradient, hessian


def _rounded(covariance: np.ndarray) -> np.ndarray:
    """Each sd to two significant digits, each correlation to two decimals (within 0.99):
    parameters whose posterior sds differ by orders of magnitude (the noise's from a million
    rows beside a group sd's from a few groups) each keep theirs."""
    sd = np.sqrt(np.maximum(np.diag(covariance), 1e-300))
    unit = 10.0 ** (np.floor(np.log10(sd)) - 1)
    rounded_sd = np.round(sd / unit) * unit
    correlation = np.clip(np.round(covariance / np.outer(sd, sd), 2), -0.99, 0.99)
    np.fill_diagonal(correlation, 1.0)
    return correlation * np.outer(rounded_sd, rounded_sd)


def _well_conditioned(covariance: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """A symmetric positive-definite copy (eigenvalues at least ``floor``): weighted draws
    that put their weight on few points leave a covariance of low rank."""
    eigenvalues, vectors = np.linalg.eigh(0.5 * (covariance + covariance.T))
    return (vectors * np.maximum(eigenvalues, floor)) @ vectors.T


def _student_t_draws(centre, covariance, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Multivariate Student-t draws and their log density."""
    dim, df = len(centre), _PROPOSAL_DF
    chol = np.linalg.cholesky(_well_conditioned(covariance))
    normal = rng.standard_normal((n, dim))
    mixing = rng.chisquare(df, size=n) / df
    draws = centre + (normal @ chol.T) / np.sqrt(mixing)[:, None]
    standardised = np.linalg.solve(chol, (draws - centre).T).T
    log_density = (
        special.gammaln(0.5 * (df + dim))
        - special.gammaln(0.5 * df)
        - 0.5 * dim * math.log(df * math.pi)
        - np.sum(np.log(np.diag(chol)))
        - 0.5 * (df + dim) * np.log1p(np.sum(standardised**2, axis=1) / df)
    )
    return draws, log_density


def _systematic_resample(weights: np.ndarray, n: int, rng) -> np.ndarray:
    positions = (rng.uniform() + np.arange(n)) / n
    cumulative = np.cumsum(weights)
    cumulative[-1] = 1.0
    return rng.permutation(np.searchsorted(cumulative, positions))
