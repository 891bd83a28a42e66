"""Missing feature values in the Gaussian linear mixed model, integrated out exactly.

On the standardised scale, with ``r_i = x_i - nu``:

    y_i ~ Normal(alpha + x_i beta + sum_k u_k[g_ki], sigma)        (``gaussian.py``)
    x_i ~ Normal(nu, Sigma),   Sigma^-1 = T' D^-2 T

``T`` is unit lower triangular and ``D = diag(d)``: ``z = T r`` has independent
``Normal(0, d_j)`` entries, i.e. each feature is regressed on the features before it (a
modified Cholesky factor of the full covariance, so correlated features inform each other's
missing cells). Priors: ``nu ~ Normal(0, s)``, ``d ~ HalfNormal(s)``, ``T_jl ~ Normal(0, s)``
for ``l < j`` (the block's entries on and above the diagonal are unused and keep their
prior).

A missing cell is a latent variable of this model; given the parameters, a row's missing
cells and its target are jointly Gaussian, so the cells are integrated out of the likelihood
in closed form rather than given one variational parameter each: a mean-field posterior
over the cells, independent of ``beta``, put the coefficients 1.4 to 4.0 posterior sds from
the complete-data fit (4,000 rows, 3 correlated features, 20% of cells missing), with the
complete-data fit's sds. Their posterior given a fitted model is ``feature_model.py``'s.

Cost: rows with no missing cell keep the Gaussian model's sufficient statistics (the
feature model reads their ``W'W``: per-column sums and cross-products); only the M rows with
a missing cell are evaluated per step, at O(M p^3) for p features (a p x p Cholesky factor
per row, unrolled in the graph) and O(M K) for K grouping factors. Row, group and cell
counts stay symbolic; the feature count fixes the graph, so one compiled step serves every
data set with the same number of features and grouping factors, and its size (compile time)
grows as p^3: ``MAX_FEATURES`` bounds p.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ._ops import LOG_2PI, matmul
from .feature_model import (
    conditional_cells,
    covariance_from_regressions,
    missing_patterns,
    regressions_from_covariance,
)
from .gaussian import build_gaussian_re_model, gaussian_re_start
from .missing_statistics import joint_em
from .slopes import _unit
from .statistics import factor_sizes, gaussian_re_statistics_chunked

__all__ = [
    "build_missing_model",
    "missing_complete_draws",
    "missing_init",
    "missing_structure",
]


def missing_structure(data: dict) -> tuple:
    """The compiled graph depends on the number of features (its p x p algebra is unrolled)
    and of grouping factors."""
    return ("gaussian_re_missing", int(data["miss_x"].shape[1]), len(factor_sizes(data)))


# ----------------------------------------------------------------------------- model
def build_missing_model(data: dict) -> pm.Model:
    """The Gaussian mixed model on the complete rows' statistics (``gaussian.py``), plus the
    feature model over every row and the incomplete rows' likelihood with their missing
    cells integrated out (see the module's docstring)."""
    model = build_gaussian_re_model(data)
    n_features = int(data["miss_x"].shape[1])
    with model:
        box = {var.name: var for var in model.data_vars}
        scale = box["prior_scale"]
        nu = pm.Normal("feature_mean", 0.0, scale, shape=(n_features,))
        d = pm.HalfNormal("feature_sd", scale, shape=(n_features,))
        raw = pm.Normal("feature_regression", 0.0, scale, shape=(n_features, n_features))
        lower = pt.eye(n_features) + box["feature_lower"] * raw
        weight = box["miss_weight"]
        complete = _complete_rows_loglik(box["wtw"], nu, d, lower)
        offset = model["alpha"]
        for k in range(len(factor_sizes(data))):
            offset = offset + _intercepts(model, k)[box[f"miss_group_{k}"]]
        rows = _IncompleteRows(box, n_features, nu, d, lower)
        x_loglik, y_loglik = rows.loglik(model["beta"], model["sigma"], offset)
        pm.Potential("feature_loglik", complete + pt.sum(weight * x_loglik))
        pm.Potential("missing_rows_loglik", pt.sum(weight * y_loglik))
    return model


def _intercepts(model, k: int):
    if f"u_group_{k}" in model.named_vars:
        return model[f"u_group_{k}"]
    return model[f"sigma_group_{k}"] * model[f"z_group_{k}"]


def _complete_rows_loglik(wtw, nu, d, lower):
    """``sum_i log Normal(x_i | nu, Sigma)`` over the complete rows, through ``W'W`` (the
    sum of ``r r'`` is ``X'X - nu s' - s nu' + n nu nu'``)."""
    n_rows, sums, cross = wtw[0, 0], wtw[1:, 0], wtw[1:, 1:]
    scatter = (
        cross
        - nu[:, None] * sums[None, :]
        - sums[:, None] * nu[None, :]
        + n_rows * nu[:, None] * nu[None, :]
    )
    quadratic = pt.sum(pt.sum(matmul(lower, scatter) * lower, axis=1) / d**2)
    p = pt.cast(wtw.shape[0] - 1, "float64")
    return -0.5 * n_rows * p * LOG_2PI - n_rows * pt.sum(pt.log(d)) - 0.5 * quadratic


class _IncompleteRows:
    """The incomplete rows' log densities with their missing cells ``m`` integrated out,
    each row's quantities as (M,) vectors, the p x p algebra unrolled (p is fixed by the
    structure). With the precision ``Lambda = T' D^-2 T`` and ``A`` the row's precision
    restricted to its missing cells (the identity on its observed ones): the cells'
    conditional mean is ``nu_m - A^-1 Lambda_mo (x_o - nu_o)`` and covariance ``A^-1``;
    ``log p(x_o)`` is the joint density at the row filled with that mean plus
    ``|m| log(2 pi) / 2 - log det A / 2``; ``y`` given ``x_o`` is Normal with mean
    ``eta`` at the filled row and variance ``sigma^2 + beta_m' A^-1 beta_m``."""

    def __init__(self, box, p: int, nu, d, lower):
        self.p = p
        self.x = [box["miss_x"][:, i] for i in range(p)]
        self.m = [box["miss_mask"][:, i] for i in range(p)]
        self.y = box["miss_y"]
        self.nu = [pt.sum(nu * _unit(p, i)) for i in range(p)]
        self.d, self.lower = d, lower
        precision = matmul(lower.T / d[None, :] ** 2, lower)
        self.lam = [[pt.sum(precision * _unit(p, i, j)) for j in range(p)] for i in range(p)]
        self.t = [[pt.sum(lower * _unit(p, k, i)) for i in range(p)] for k in range(p)]

    def _cholesky(self):
        """Per row, the Cholesky factor of ``A`` (lists of (M,) vectors)."""
        p, m, lam = self.p, self.m, self.lam
        chol = [[None] * p for _ in range(p)]
        for j in range(p):
            diagonal = m[j] * lam[j][j] + (1.0 - m[j])
            for k in range(j):
                diagonal = diagonal - chol[j][k] ** 2
            chol[j][j] = pt.sqrt(diagonal)
            for i in range(j + 1, p):
                entry = m[i] * m[j] * lam[i][j]
                for k in range(j):
                    entry = entry - chol[i][k] * chol[j][k]
                chol[i][j] = entry / chol[j][j]
        return chol

    def _forward(self, chol, vector):
        out = []
        for i in range(self.p):
            value = vector[i]
            for k in range(i):
                value = value - chol[i][k] * out[k]
            out.append(value / chol[i][i])
        return out

    def _backward(self, chol, vector):
        out = [None] * self.p
        for i in reversed(range(self.p)):
            value = vector[i]
            for k in range(i + 1, self.p):
                value = value - chol[k][i] * out[k]
            out[i] = value / chol[i][i]
        return out

    def loglik(self, beta, sigma, offset):
        """Per row: ``log p(x_o)`` and ``log p(y | x_o)`` ((M,) vectors each); ``offset``:
        the intercept plus the row's group effects."""
        p, m, lam = self.p, self.m, self.lam
        observed = [1.0 - m[i] for i in range(p)]
        centred = [(self.x[i] - self.nu[i]) * observed[i] for i in range(p)]
        pull = [m[i] * sum(lam[i][j] * centred[j] for j in range(p)) for i in range(p)]
        chol = self._cholesky()
        shift = self._backward(chol, self._forward(chol, pull))
        residual = [centred[i] - shift[i] for i in range(p)]  # filled row minus nu
        quadratic = 0.0
        for k in range(p):
            z_k = sum(self.t[k][i] * residual[i] for i in range(p))
            quadratic = quadratic + z_k**2 / pt.sum(self.d * _unit(p, k)) ** 2
        log_det = 2.0 * sum(pt.log(chol[j][j]) for j in range(p))
        n_observed = sum(observed)
        x_loglik = (
            -0.5 * n_observed * LOG_2PI - pt.sum(pt.log(self.d)) - 0.5 * quadratic - 0.5 * log_det
        )
        b = [pt.sum(beta * _unit(p, i)) for i in range(p)]  # one-hot: see lkj_cholesky
        spread = self._forward(chol, [m[i] * b[i] for i in range(p)])
        variance = sigma**2 + sum(v**2 for v in spread)
        eta = offset + sum(b[i] * (self.nu[i] + residual[i]) for i in range(p))
        y_loglik = -0.5 * LOG_2PI - 0.5 * pt.log(variance) - (self.y - eta) ** 2 / (2 * variance)
        return x_loglik, y_loglik


# ----------------------------------------------------------------------------- start
def missing_init(data: dict, features: np.ndarray, target, codes, n_groups, weights):
    """Starting values near the posterior mode: EM for the joint Gaussian of ``(x, y)``
    (groups left out) gives the feature model and, per incomplete row, the expectation and
    covariance of its missing cells given its observed cells and target; the regression part
    starts from the Gaussian model's start on the statistics those expectations give (the
    covariances added to ``X'X``, as EM's M-step does). Starting from cells filled in without
    the target left the coefficients to crawl to the mode over many steps (``features``
    standardised, NaN where missing)."""
    joint = np.column_stack([features, target])
    mean, cov, filled, correction = joint_em(joint)
    p = features.shape[1]
    filled = filled[:, :p]
    chunks = [(filled, target) if weights is None else (filled, target, weights)]
    statistics = gaussian_re_statistics_chunked(chunks, codes, n_groups, float(data["prior_scale"]))
    statistics["wtw"][1:, 1:] += correction[:p, :p]
    means, sds = gaussian_re_start(statistics)
    mean, cov = mean[:p], cov[:p, :p]
    lower, diagonal = regressions_from_covariance(cov)
    n_rows = max(float(len(features)), 1.0)
    prior_scale = float(data["prior_scale"])
    regression_sd = np.where(data["feature_lower"] > 0, 1.0 / np.sqrt(n_rows), prior_scale)
    means |= {
        "feature_mean": mean,
        "feature_sd_log__": np.log(diagonal),
        "feature_regression": np.where(data["feature_lower"] > 0, lower, 0.0),
    }
    sds |= {
        "feature_mean": np.sqrt(np.diag(cov) / n_rows),
        "feature_sd_log__": np.full(len(mean), 1.0 / np.sqrt(2.0 * n_rows)),
        "feature_regression": regression_sd,
    }

    def init(shapes: dict, rng: np.random.Generator):
        return (
            {name: value for name, value in means.items() if name in shapes},
            {name: value for name, value in sds.items() if name in shapes},
        )

    return init


# ----------------------------------------------------------------------------- draws
def missing_complete_draws(data: dict, seed: int):
    """The fit's last step: the feature model's draws as ``feature_mean`` and
    ``feature_cov`` (standardised scale), and one draw of the incomplete rows' missing cells
    per posterior draw (``imputed``, (S, C) in row-major cell order, with their columns),
    from their exact conditional given the row's observed cells, group effects and target
    (a Gaussian update of the feature model's conditional by the row's regression on them);
    ``draws`` is edited in place."""
    n_features = data["miss_x"].shape[1]
    missing = data["miss_mask"] > 0
    n_factors = len(factor_sizes(data))

    def complete(draws: dict) -> None:
        lower = np.eye(n_features) + data["feature_lower"] * draws.pop("feature_regression")
        draws["feature_cov"] = covariance_from_regressions(lower, draws.pop("feature_sd"))
        rng = np.random.default_rng((seed, 2))  # a stream apart from the engine's
        draws["imputed"] = _cell_draws(data, draws, missing, n_factors, rng)
        draws["imputed_columns"] = np.nonzero(missing)[1]

    return complete


def _cell_draws(data, draws, missing, n_factors, rng) -> np.ndarray:
    """Per posterior draw, one draw of every missing cell given its row's observed cells,
    groups and target."""
    values = np.where(missing, np.nan, data["miss_x"])
    beta, sigma = draws["beta"], draws["sigma"]  # (S, p), (S,)
    offset = np.broadcast_to(draws["alpha"], sigma.shape)[None, :] + np.zeros((len(values), 1))
    for k in range(n_factors):
        codes = data[f"miss_group_{k}"]
        if f"u_group_{k}" in draws:
            offset = offset + draws[f"u_group_{k}"][:, codes].T
        else:
            scale = np.asarray(draws[f"sigma_group_{k}"])[:, None]
            offset = offset + (scale * draws[f"z_group_{k}"][:, codes]).T
    observed_part = np.where(missing, 0.0, data["miss_x"]) @ beta.T  # (M, S)
    residual = data["miss_y"][:, None] - offset - observed_part
    cells = np.zeros((len(values), values.shape[1], beta.shape[0]))  # (M, p, S)
    for rows, pattern in missing_patterns(missing):
        mean, cov = conditional_cells(
            values[rows], pattern, draws["feature_mean"], draws["feature_cov"]
        )
        b = beta[:, pattern]  # (S, m)
        cov_b = np.einsum("smn,sn->sm", cov, b)
        gain = cov_b / (np.einsum("sm,sm->s", b, cov_b) + sigma**2 + 1e-300)[:, None]
        innovation = residual[rows] - np.einsum("rsm,sm->rs", mean, b)
        mean = mean + innovation[:, :, None] * gain[None, :, :]
        cov = cov - gain[:, :, None] * cov_b[:, None, :]
        chol = np.linalg.cholesky(cov + 1e-12 * np.eye(cov.shape[1]))
        noise = rng.standard_normal(mean.shape)
        drawn = mean + np.einsum("smn,rsn->rsm", chol, noise)  # (r, S, m)
        cells[np.ix_(rows, np.flatnonzero(pattern))] = np.swapaxes(drawn, 1, 2)
    return np.ascontiguousarray(cells[missing].T).astype(np.float32)
