"""The Gaussian linear mixed model, written on sufficient statistics.

    y ~ Normal(alpha + X beta + sum_k V_k u_k[g_k], sigma)

``V_k`` is factor k's group design: ``(1,)`` for a random intercept, ``(1, x_s, ...)`` for an
intercept with correlated slopes (``slopes.py``). The linear model is the case with no factor.

Cost: the likelihood is evaluated through cross-products of the design ``w = (1, x)`` and
per-group sums, computed in one pass over the rows (in row blocks, so memory stays bounded).
An ELBO step then costs O(p^2 + p G q) per draw for p features, G groups and q group-design
columns, whatever the row count. Crossed factors add one term per pair of groups that share
rows. Everything here is stated on the standardised scale; ``gaussian_re_to_original`` maps
draws back to the user's units.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from . import collapsed as _collapsed
from . import slopes as _slopes
from ._ops import LOG_2PI, dot, matrix_vector, quadratic
from .statistics import factor_sizes

__all__ = [
    "build_gaussian_re_model",
    "complete_draws",
    "gaussian_re_init",
    "gaussian_re_start",
    "gaussian_re_structure",
    "group_scale_move",
    "mark_centred",
    "mark_student_t",
    "rescale_group_scales",
    "rewrites_excluded",
    "student_t_factors",
]


NU_PRIOR = (2.0, 0.1)  # Gamma(alpha, beta) prior of Student-t groups' degrees of freedom


# ----------------------------------------------------------------------------- statistics
def complete_draws(data: dict[str, np.ndarray], seed: int):
    """The fit's last step for a model with an integrated-out factor: draw its effects given
    each posterior draw of the rest (``draws`` edited in place); None when there is none."""
    sizes = factor_sizes(data)
    k = _collapsed.collapsed_factor(sizes)
    if k is None:
        return None

    def complete(draws: dict) -> None:
        rng = np.random.default_rng((seed, 1))  # a stream apart from the engine's
        _collapsed.conditional_effect_draws(data, draws, k, sizes[k], sizes, rng)

    return complete


def mark_student_t(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Give every random-intercept factor Student-t group effects (``student_t_<k>``
    entries; see :func:`_random_intercept`)."""
    for k, size in enumerate(factor_sizes(data)):
        if size == 1:
            data[f"student_t_{k}"] = np.asarray(1.0)
    return data


def student_t_factors(data: dict) -> tuple[int, ...]:
    """The factors whose group effects are Student-t (marked by :func:`mark_student_t`)."""
    return tuple(k for k in range(len(factor_sizes(data))) if f"student_t_{k}" in data)


def mark_centred(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """In a model with an integrated-out factor, mark the random-intercept factors that are
    better fitted centred (``centred_<k>`` entries; see ``slopes.centred_factors``). Models
    without slopes keep every factor non-centred, as they always have."""
    sizes = factor_sizes(data)
    integrated = _collapsed.collapsed_factor(sizes)
    if integrated is not None:
        for k in _slopes.centred_factors(data, sizes, integrated):
            data[f"centred_{k}"] = np.asarray(1.0)
    return data


def rewrites_excluded(data: dict[str, np.ndarray]) -> tuple[str, ...]:
    """Graph rewrites the compiler should skip for this model (see ``collapsed.py``)."""
    has_collapsed = _collapsed.collapsed_factor(factor_sizes(data)) is not None
    return _collapsed.REWRITES_EXCLUDED if has_collapsed else ()


def gaussian_re_structure(data: dict[str, np.ndarray]) -> tuple:
    """What fixes the compiled graph: whether there are features, how many grouping factors,
    and (when any factor has slopes) each factor's group-design width. Row, feature and
    group counts stay symbolic."""
    sizes = factor_sizes(data)
    key = ("gaussian_re", int(data["wty"].shape[0]) > 1, len(sizes))
    heavy = student_t_factors(data)
    if heavy:
        key = (*key, "student_t", heavy)
    if all(size == 1 for size in sizes):
        return key
    centred = tuple(k for k in range(len(sizes)) if f"centred_{k}" in data)
    return (*key, tuple(sizes), centred)


# ----------------------------------------------------------------------------- model
def build_gaussian_re_model(data: dict[str, np.ndarray]) -> pm.Model:
    """Build ``y ~ Normal(alpha + X beta + sum_k V_k u_k[g_k], sigma)`` on ``pm.Data``.

    Priors (standardised scale, ``s = prior_scale``): ``alpha, beta ~ Normal(0, s)``,
    ``sigma ~ HalfNormal(s)``; random intercepts non-centred, ``u_k = sigma_k z_k`` with
    ``sigma_k ~ HalfNormal(s)``, ``z_k ~ Normal(0, 1)``; correlated slopes as in
    :func:`skbayes_re._models.slopes.correlated_effects`. The first factor with slopes is
    integrated out of the likelihood (``collapsed.py``); its effects are drawn afterwards by
    :func:`complete_draws`.
    """
    has_features = int(data["wty"].shape[0]) > 1
    sizes = factor_sizes(data)
    with pm.Model(check_bounds=False) as model:
        box = {name: pm.Data(name, value) for name, value in data.items()}
        scale = box["prior_scale"]
        alpha = pm.Normal("alpha", 0.0, scale)
        coefs = [alpha[None]]
        if has_features:
            coefs.append(pm.Normal("beta", 0.0, scale, shape=(box["wty"].shape[0] - 1,)))
        b = pt.concatenate(coefs)
        sigma = pm.HalfNormal("sigma", scale)
        integrated = _collapsed.collapsed_factor(sizes)
        effects = [
            None
            if k == integrated
            else _random_intercept(box, scale, k)
            if size == 1
            else _slopes.correlated_effects(box, scale, k, size)
            for k, size in enumerate(sizes)
        ]
        rss = linear_rss(box, b, effects)
        if integrated is None:
            gaussian_loglik(box, sigma, rss)
        else:
            _collapsed.collapsed_loglik(box, scale, integrated, sizes, b, effects, sigma, rss)
    return model


def _random_intercept(box, scale, k: int):
    """Intercepts of grouping factor k: non-centred, ``u_k = sigma_k * z_k``, unless the
    data mark the factor centred (``u_k ~ Normal(0, sigma_k)``; see :func:`mark_centred`).
    Student-t groups (:func:`mark_student_t`): centred, ``u_k ~ StudentT(nu_k, 0, sigma_k)``
    with the degrees of freedom learned, ``nu_k ~ Gamma(2, 0.1)`` (mean 20: near-normal
    groups unless the data say otherwise; the prior of Juarez and Steel, 2010). Non-centred
    (``sigma_k`` times Student-t ``z_k``), mean-field ADVI stayed near the normal start along
    the scale ridge: on 200 groups of t(2) effects it put ``nu_k`` at 5-7 and ``sigma_k``
    at twice the truth; centred, at 3-4 and 1.2-1.7 times (the effects' own spread, which
    the rows inform, fixes the scale)."""
    sigma_k = pm.HalfNormal(f"sigma_group_{k}", scale)
    shape = (box[f"ysum_{k}"].shape[0],)
    if f"centred_{k}" in box:
        return pm.Normal(f"u_group_{k}", 0.0, sigma_k, shape=shape)
    if f"student_t_{k}" in box:
        nu_k = pm.Gamma(f"nu_group_{k}", alpha=NU_PRIOR[0], beta=NU_PRIOR[1])
        return pm.StudentT(f"u_group_{k}", nu=nu_k, mu=0.0, sigma=sigma_k, shape=shape)
    return sigma_k * pm.Normal(f"z_group_{k}", 0.0, 1.0, shape=shape)


def random_intercepts(box, scale, n_factors: int) -> list:
    """Non-centred intercepts, one vector per grouping factor."""
    return [_random_intercept(box, scale, k) for k in range(n_factors)]


def linear_rss(box, b, effects):
    """``sum_i (y_i - w_i b - sum_k v_ki u_k[g_ki])^2`` from the sufficient statistics
    (``w_i = (1, x_i)``; see :func:`gaussian_re_statistics_chunked`). An effect is a vector
    (random intercepts) or a groups x columns matrix (correlated slopes)."""
    rss = box["yty"] - 2.0 * dot(b, box["wty"]) + quadratic(box["wtw"], b, b)
    for k, u_k in enumerate(effects):
        if u_k is None:  # integrated out: its terms are the caller's
            continue
        if u_k.ndim == 2:
            rss += _slopes.slope_rss_terms(box, k, b, u_k)
            continue
        rss += (
            -2.0 * dot(u_k, box[f"ysum_{k}"])
            + 2.0 * dot(b, matrix_vector(box[f"wtz_{k}"], u_k))
            + pt.sum(box[f"wtz_{k}"][0] * u_k**2)
        )
    for k, m in itertools.combinations(range(len(effects)), 2):
        if effects[k] is None or effects[m] is None:
            continue
        first = effects[k][box[f"pair_first_{k}_{m}"]]
        second = effects[m][box[f"pair_second_{k}_{m}"]]
        if effects[k].ndim == 1 and effects[m].ndim == 1:
            rss += 2.0 * pt.sum(box[f"pair_count_{k}_{m}"] * first * second)
        else:
            rss += 2.0 * _slopes.pair_cross_term(box[f"pair_cross_{k}_{m}"], first, second)
    return rss


def gaussian_loglik(box, sigma, rss) -> None:
    n_obs = box["n_obs"]
    pm.Potential("loglik", -0.5 * n_obs * LOG_2PI - n_obs * pt.log(sigma) - rss / (2.0 * sigma**2))


# ----------------------------------------------------------------------------- ridge move
def rescale_group_scales(means: dict, log_sds: dict, prior_scale: float) -> None:
    """The best move of a mean-field posterior along each factor's non-centred ridge.

    Scaling ``sigma_k`` (all of a factor's scales) by ``c`` and ``z_k`` (means and sds) by
    ``1 / c`` leaves every ``u_k``, hence the likelihood, unchanged; the ELBO changes only
    through ``z_k``'s standard-normal prior, its entropy, ``sigma_k``'s HalfNormal prior and the
    log transform. With ``A = sum(m^2 + s^2)`` over the ``N`` entries of ``z_k``, ``Q`` scales
    and ``B = sum E[sigma_kj^2] / prior_scale^2``, the ELBO is
    ``-A / (2 c^2) - (N - Q) log c - B c^2 / 2`` plus constants, maximised at
    ``c^2 = (sqrt((N - Q)^2 + 4 A B) - (N - Q)) / (2 B)``. Gradient steps follow this
    direction slowly (its gradient is the prior's alone, small beside noisy likelihood
    terms), so the fit takes it in closed form. Edits the arrays in place.
    """
    for name in [name for name in means if name.startswith("z_group_")]:
        k = name.removeprefix("z_group_")
        z_mean, z_log_sd = means[name], log_sds[name]
        log_sigma, log_sigma_sd = means[f"sigma_group_{k}_log__"], log_sds[f"sigma_group_{k}_log__"]
        a = float(np.sum(z_mean**2) + np.sum(np.exp(2.0 * z_log_sd)))
        b = float(np.sum(np.exp(2.0 * log_sigma + 2.0 * np.exp(2.0 * log_sigma_sd))))
        b /= prior_scale**2
        dof = z_mean.size - np.size(log_sigma)
        c_squared = 2.0 * a / (np.sqrt(dof**2 + 4.0 * a * b) + dof)  # the root, stably
        log_c = 0.5 * np.log(c_squared)
        z_mean /= np.exp(log_c)
        z_log_sd -= log_c
        log_sigma += log_c


def group_scale_move(prior_scale: float):
    """The engine's ``move`` for models with random effects: :func:`rescale_group_scales`
    with the priors' scale fixed."""
    return functools.partial(rescale_group_scales, prior_scale=float(prior_scale))


# ----------------------------------------------------------------------------- back-transform
# ----------------------------------------------------------------------------- start
def gaussian_re_start(data: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Starting means and sds for ADVI, close to the posterior so that few steps are needed.

    Least squares for the coefficients and noise; per grouping factor, a method-of-moments
    group sd from the groups' mean residuals and shrunken (BLUP-like) group offsets; sds from
    the curvature of the log density at that point. All on the unconstrained, standardised
    scale. Models with correlated slopes start from :func:`slopes.slopes_start`.
    """
    if any(size > 1 for size in factor_sizes(data)):
        return _slopes.slopes_start(data, factor_sizes(data))
    b, noise_var, means, sds = least_squares_start(data)
    total_var, k = noise_var, 0
    while f"ysum_{k}" in data:
        noise_var -= _init_factor(data, k, b, total_var, means, sds)
        k += 1
    # The residual variance of the least-squares fit holds the group variances too.
    noise_var = max(noise_var, 0.05 * total_var)
    means["sigma_log__"] = 0.5 * np.log(noise_var)
    group_vars, k = [], 0
    while f"ysum_{k}" in data:
        group_vars.append(_init_factor(data, k, b, noise_var, means, sds))
        k += 1
    if group_vars:
        b, effects = _mixed_model_equations(data, noise_var, group_vars)
        means["alpha"], means["beta"] = np.asarray(b[0]), b[1:]
        for k, (u, group_var) in enumerate(zip(effects, group_vars, strict=True)):
            means[f"z_group_{k}"] = u / np.sqrt(group_var)
            means[f"u_group_{k}"] = u  # a centred factor's (Student-t groups)
            sds[f"u_group_{k}"] = sds[f"z_group_{k}"] * np.sqrt(group_var)
    return means, sds


def least_squares_start(data) -> tuple[np.ndarray, float, dict, dict]:
    """Least-squares coefficients, residual variance, and the fixed part's starting values."""
    wtw, wty = data["wtw"], data["wty"]
    ridge = 1e-6 * np.trace(wtw) / max(1, wtw.shape[0]) + 1e-12
    b = np.linalg.solve(wtw + ridge * np.eye(wtw.shape[0]), wty)
    n_obs = max(float(data["n_obs"]), 1.0)
    rss = float(data["yty"] - 2.0 * b @ wty + b @ wtw @ b)
    noise_var = max(rss / n_obs, 1e-4)
    means = {"alpha": np.asarray(b[0]), "beta": b[1:], "sigma_log__": 0.5 * np.log(noise_var)}
    sds = {
        "alpha": np.sqrt(noise_var / max(wtw[0, 0], 1.0)),
        "beta": np.sqrt(noise_var / np.maximum(np.diag(wtw)[1:], 1.0)),
        "sigma_log__": 1.0 / np.sqrt(2.0 * n_obs),
    }
    return b, noise_var, means, sds


def gaussian_re_init(data: dict[str, np.ndarray]):
    """The engine's initialiser: :func:`gaussian_re_start` restricted to the model's blocks."""
    means, sds = gaussian_re_start(data)

    def init(shapes: dict, rng: np.random.Generator):
        return (
            {name: value for name, value in means.items() if name in shapes},
            {name: value for name, value in sds.items() if name in shapes},
        )

    return init


def _mixed_model_equations(data, noise_var, group_vars, sweeps=20):
    """Henderson's mixed-model equations for the coefficients and group offsets given the
    variances, from the sufficient statistics: exact for one grouping factor (the offsets are
    eliminated through a Schur complement), block Gauss-Seidel across crossed factors."""
    wtw, wty = data["wtw"], data["wty"]
    n_factors = len(group_vars)
    effects = [np.zeros(data[f"ysum_{k}"].shape[0]) for k in range(n_factors)]
    b = np.zeros(wty.shape[0])
    ridge = 1e-9 * np.trace(wtw) * np.eye(wtw.shape[0])
    for _ in range(sweeps if n_factors > 1 else 1):
        for k in range(n_factors):
            wty_k, ysum_k = wty.copy(), data[f"ysum_{k}"].copy()
            for m in range(n_factors):
                if m != k:
                    wty_k -= data[f"wtz_{m}"] @ effects[m]
                    ysum_k -= _cross_product(data, k, m, effects[m])
            wtz = data[f"wtz_{k}"]
            diagonal = wtz[0] + noise_var / group_vars[k]
            schur = wtw - (wtz / diagonal) @ wtz.T + ridge
            b = np.linalg.solve(schur, wty_k - wtz @ (ysum_k / diagonal))
            effects[k] = (ysum_k - b @ wtz) / diagonal
    return b, effects


def _cross_product(data, k, m, effects_m):
    """``Z_k^T Z_m u_m`` from the pair counts of factors k and m."""
    if k < m:
        first, second = data[f"pair_first_{k}_{m}"], data[f"pair_second_{k}_{m}"]
        counts = data[f"pair_count_{k}_{m}"]
    else:
        second, first = data[f"pair_first_{m}_{k}"], data[f"pair_second_{m}_{k}"]
        counts = data[f"pair_count_{m}_{k}"]
    size = data[f"ysum_{k}"].shape[0]
    return np.bincount(first, weights=counts * effects_m[second], minlength=size)


def _init_factor(data, k, b, noise_var, means, sds) -> float:
    counts = data[f"wtz_{k}"][0]
    size = np.maximum(counts, 1.0)
    mean_residual = (data[f"ysum_{k}"] - b @ data[f"wtz_{k}"]) / size
    group_var = max(np.mean(mean_residual**2 - noise_var / size), 0.01 * noise_var, 1e-4)
    shrink = counts / (counts + noise_var / group_var)
    group_sd = np.sqrt(group_var)
    means[f"sigma_group_{k}_log__"] = np.log(group_sd)
    sds[f"sigma_group_{k}_log__"] = 1.0 / np.sqrt(2.0 * max(len(counts), 1))
    means[f"nu_group_{k}_log__"] = np.log(NU_PRIOR[0] / NU_PRIOR[1])  # Student-t groups only
    sds[f"nu_group_{k}_log__"] = 0.5
    means[f"z_group_{k}"] = shrink * mean_residual / group_sd
    sds[f"z_group_{k}"] = 1.0 / np.sqrt(1.0 + counts * group_var / noise_var)
    return group_var
