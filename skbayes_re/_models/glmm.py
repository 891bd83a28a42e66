"""Generalised linear mixed models: any family's likelihood, written per row.

    y_i ~ Family(eta_i, theta),   eta_i = c + alpha + x_i beta + offset_i + sum_k v_ki u_k[g_ki]

with the priors of the Gaussian model (``gaussian.py``): ``alpha, beta ~ Normal(0, s)``,
non-centred random intercepts ``u_k = sigma_k z_k`` or correlated slopes (``slopes.py``), and
the family's own parameters ``theta`` (``families/``). Features are standardised; the target
is standardised for identity-link families and kept in its units for the log link, where
``c`` (the link of the target's mean, less the offset's) puts the intercept's prior around
the data.

Cost: no family but the Gaussian has a closed form over the rows, so a step evaluates the
log density of every row it sees: O(n (p + q)) per draw for n rows, p features and q
group-design columns, plus O(G q) for the groups. Full-batch steps up to
``MINIBATCH_ROWS`` rows; beyond, each step sees a random block (minibatch ADVI, the
likelihood scaled by ``batch_scale``). The start is the Laplace approximation's mode for
count families with random intercepts (``laplace_start.py``), and otherwise the Gaussian
mixed model fitted in closed form to a working response on its sufficient statistics, so the
per-row steps begin near the answer.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ._ops import count_prefixed, matmul, rows_of
from .families import family_named
from .gaussian import NU_PRIOR, gaussian_re_start
from .gaussian_draws import gaussian_re_to_original
from .laplace_start import first_predictor, laplace_applies, laplace_start, working_response
from .slopes import correlated_effects, lkj_cholesky_numpy
from .statistics import gaussian_re_statistics_chunked

__all__ = [
    "MINIBATCH_ROWS",
    "MINIBATCH_SIZE",
    "build_glmm",
    "family_loglik",
    "glmm_complete_draws",
    "glmm_data",
    "glmm_init",
    "glmm_linear_predictor",
    "glmm_start",
    "glmm_start_predictor",
    "mark_centred_glmm",
    "mark_student_t_glmm",
    "glmm_row_data",
    "glmm_structure",
    "glmm_to_original",
]

MINIBATCH_ROWS = 200_000  # full-batch steps up to this many rows
MINIBATCH_SIZE = 50_000
_PQL_ROUNDS = 4
_DRAW_BLOCK = 50  # draws of a swept factor's effects completed at once


def glmm_data(features, target, codes, n_groups, offset, weights, prior_scale, slopes, family):
    """The arrays behind the per-row model (every size enters as an array shape).

    ``features`` are standardised; ``target`` and ``offset`` are on the model's scale (the
    standardised target and the offset divided by the target's scale for identity links; the
    raw counts and offset for the log link). ``slopes[k]`` lists factor k's slope features;
    its group design ``(1, x_s)`` is stored per row as ``design_<k>``.
    """
    features = np.asarray(features, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    weight = np.ones(len(target)) if weights is None else np.asarray(weights, np.float64)
    offset = np.zeros(len(target)) if offset is None else np.asarray(offset, np.float64)
    data = {
        "features": features,
        "target": target,
        "row_weight": weight,
        "offset": offset,
        "link_centre": np.asarray(_link_centre(target, offset, weight, family)),
        "prior_scale": np.asarray(float(prior_scale)),
        "batch_scale": np.asarray(1.0),
    }
    for k, (code, size) in enumerate(zip(codes, n_groups, strict=True)):
        data[f"group_{k}"] = np.asarray(code, dtype=np.int64)
        data[f"groups_{k}"] = np.zeros(int(size))
        if slopes[k]:
            data[f"design_{k}"] = np.column_stack([np.ones(len(target)), features[:, slopes[k]]])
    return data


def _link_centre(target, offset, weight, family) -> float:
    if family.link == "identity":
        return 0.0
    total = float(np.sum(weight))
    mean = np.sum(weight * target) / total
    if family.link == "logit":
        mean = np.clip(mean, 1e-6, 1.0 - 1e-6)
        return float(np.log(mean / (1.0 - mean)) - np.sum(weight * offset) / total)
    return float(np.log(mean) - np.sum(weight * offset) / total)


def glmm_row_data(data: dict) -> tuple[str, ...]:
    """Names of the arrays holding one entry per row (swapped by minibatch ADVI)."""
    names = ["features", "target", "row_weight", "offset"]
    for k in range(count_prefixed(data, "groups_")):
        names.append(f"group_{k}")
        if f"design_{k}" in data:
            names.append(f"design_{k}")
    return tuple(names)


def _factor_sizes(data: dict) -> tuple[int, ...]:
    n_factors = count_prefixed(data, "groups_")
    return tuple(
        int(data[f"design_{k}"].shape[1]) if f"design_{k}" in data else 1 for k in range(n_factors)
    )


def glmm_structure(data: dict, family_name: str) -> tuple:
    """What fixes the compiled graph: the family, whether there are features, and each
    factor's group-design width (row, feature and group counts stay symbolic)."""
    has_features = data["features"].shape[1] > 0
    centred = tuple(k for k in range(len(_factor_sizes(data))) if f"centred_{k}" in data)
    sweeping = _sweeping_factor(data)
    key = ("glmm", family_name, has_features, _factor_sizes(data), centred, sweeping)
    heavy = tuple(k for k in range(len(_factor_sizes(data))) if f"student_t_{k}" in data)
    return (*key, "student_t", heavy) if heavy else key


def build_glmm(data: dict, family_name: str) -> pm.Model:
    """Build the per-row model of the module docstring on ``pm.Data``."""
    with pm.Model(check_bounds=False) as model:
        box = {name: pm.Data(name, value) for name, value in data.items()}
        family_loglik(box, glmm_linear_predictor(box, data), family_name)
    return model


def glmm_linear_predictor(box: dict, data: dict):
    """The linear predictor ``eta`` of every row present, its priors created in the model
    being built: offset, ``c``, fixed part and each factor's effects (the per-row models of
    other mean functions add their own terms to it)."""
    scale = box["prior_scale"]
    alpha = pm.Normal("alpha", 0.0, scale)
    eta = box["link_centre"] + box["offset"]
    beta = None
    if data["features"].shape[1] > 0:
        beta = pm.Normal("beta", 0.0, scale, shape=(box["features"].shape[1],))
        eta = eta + pt.sum(matmul(box["features"], beta[:, None]), axis=1)
    sweeping = _sweeping_factor(data)
    if sweeping is None:
        eta = eta + alpha
    for k, size in enumerate(_factor_sizes(data)):
        if k == sweeping:
            eta = eta + _swept_intercepts(box, scale, k, alpha, beta)
        else:
            eta = eta + _factor_term(box, scale, k, size)
    return eta


def family_loglik(box: dict, eta, family_name: str) -> None:
    """The family's own parameters and its log likelihood of the rows present (weighted,
    scaled by ``batch_scale``), in the model being built."""
    family = family_named(family_name)
    params = family.add_priors(box, box["prior_scale"])
    log_density = family.log_density(box["target"], eta, params)
    pm.Potential("loglik", box["batch_scale"] * pt.sum(box["row_weight"] * log_density))


def _sweeping_factor(data: dict) -> int | None:
    """The factor whose intercepts carry the fixed part in their prior mean (see
    :func:`_swept_intercepts`), if any."""
    return next((k for k in range(len(_factor_sizes(data))) if f"group_means_{k}" in data), None)


def _swept_intercepts(box, scale, k: int, alpha, beta):
    """Factor k's intercepts hierarchically centred: ``v_g = alpha + xbar_g beta + u_g`` with
    ``xbar_g`` the group's mean features, so ``v_g ~ Normal(alpha + xbar_g beta, sigma_k)`` and
    each row adds ``v_g - xbar_g beta`` (the model is unchanged). Where features vary mostly
    between groups (a group-level covariate), ``beta`` and the ``u_g`` lie on a long ridge that
    gradient steps follow slowly; ``beta`` and the ``v_g`` are nearly independent (Gelfand,
    Sahu and Carlin, 1995). :func:`glmm_complete_draws` maps the draws back to ``u_g``."""
    sigma_k = pm.HalfNormal(f"sigma_group_{k}", scale)
    swept = alpha + pt.zeros((box[f"groups_{k}"].shape[0],))
    if beta is not None:
        swept = pt.sum(matmul(box[f"group_means_{k}"], beta[:, None]), axis=1) + alpha
    v = pm.Normal(f"u_group_{k}", swept, sigma_k, shape=(box[f"groups_{k}"].shape[0],))
    return (v - swept + alpha)[box[f"group_{k}"]]


def _factor_term(box, scale, k: int, size: int):
    """Each row's effect of factor k: its group's intercept (centred where the data mark it
    so, see :func:`mark_centred_glmm`), or the group design times its group's effects."""
    code, n_groups = box[f"group_{k}"], box[f"groups_{k}"].shape[0]
    if size == 1:
        sigma_k = pm.HalfNormal(f"sigma_group_{k}", scale)
        if f"student_t_{k}" in box:  # centred, as the Gaussian model's (``gaussian.py``)
            nu_k = pm.Gamma(f"nu_group_{k}", alpha=NU_PRIOR[0], beta=NU_PRIOR[1])
            u_k = pm.StudentT(f"u_group_{k}", nu=nu_k, mu=0.0, sigma=sigma_k, shape=(n_groups,))
            return u_k[code]
        if f"centred_{k}" in box:
            return pm.Normal(f"u_group_{k}", 0.0, sigma_k, shape=(n_groups,))[code]
        return (sigma_k * pm.Normal(f"z_group_{k}", 0.0, 1.0, shape=(n_groups,)))[code]
    effects = correlated_effects(box, scale, k, size, n_groups=n_groups)
    return pt.sum(box[f"design_{k}"] * rows_of(effects, code), axis=1)


# ----------------------------------------------------------------------------- start
def glmm_start(data: dict, family_name: str, slopes: list[list[int]]) -> tuple[dict, dict]:
    """Starting means and sds of the coefficients, effects and scales, then the family's own
    parameters from that fit's linear predictor.

    Identity link: the Gaussian mixed model's closed-form start on the target. Log and logit
    links with random intercepts (one factor, or at most ``MAX_GROUPS`` groups over all
    factors): the Laplace approximation's mode and EM scales (``laplace_start``). Otherwise:
    penalised quasi-likelihood, the Gaussian start refitted to the working response (``eta +
    (y - mu) / mu`` with weights ``mu`` for the log link) from ``log(y + 0.5)`` (or its
    logit counterpart).
    """
    family = family_named(family_name)
    codes = [data[f"group_{k}"] for k in range(count_prefixed(data, "groups_"))]
    n_groups = [len(data[f"groups_{k}"]) for k in range(len(codes))]
    shift = data["offset"] + data["link_centre"]

    def gaussian_start(working, weights):
        weights = None if np.all(weights == 1.0) else weights
        statistics = gaussian_re_statistics_chunked(
            [(data["features"], working, weights)],
            codes,
            n_groups,
            float(data["prior_scale"]),
            slopes,
        )
        means, sds = gaussian_re_start(statistics)
        return means, sds, _start_predictor(data, means, codes, slopes)

    target, dispersion = data["target"], None
    curved = family.link != "identity"
    if curved and not any(slopes) and laplace_applies(n_groups):
        first = first_predictor(family.link, target, shift)
        means, sds, dispersion = laplace_start(
            data["features"],
            target,
            shift,
            data["row_weight"],
            codes,
            n_groups,
            float(data["prior_scale"]),
            first,
            "dispersion" in family.parameters,
            family.link,
        )
        fitted = _start_predictor(data, means, codes, slopes)
    elif curved:
        first = first_predictor(family.link, target, shift)
        means, sds, fitted = gaussian_start(first, data["row_weight"])
        for _ in range(_PQL_ROUNDS):
            working, curvature, _ = working_response(family.link, fitted, shift, target)
            means, sds, fitted = gaussian_start(working, data["row_weight"] * curvature)
    else:
        means, sds, fitted = gaussian_start(target - shift, data["row_weight"])
    own_means, own_sds = family.start(target, fitted + shift, data["row_weight"])
    if dispersion is not None:  # the Laplace start's, corrected
        own_means["inverse_dispersion_log__"] = -np.log(dispersion)
    return means | own_means, sds | own_sds


def mark_student_t_glmm(data: dict) -> dict:
    """Give every random-intercept factor Student-t group effects (``student_t_<k>``; see
    :func:`_factor_term`): centred, ``u_k ~ StudentT(nu_k, 0, sigma_k)``, the degrees of
    freedom learned with the Gaussian model's prior (``gaussian.NU_PRIOR``)."""
    marked = dict(data)
    for k, size in enumerate(_factor_sizes(data)):
        if size == 1:
            marked[f"student_t_{k}"] = np.asarray(1.0)
    return marked


def mark_centred_glmm(data: dict, start: tuple[dict, dict]) -> dict:
    """Mark (``centred_<k>``) the random-intercept factors whose groups the data inform well:
    where the start's conditional variance of a group's effect is on average under half its
    prior variance (``slopes.centred_factors`` gives the reasons). Non-centred,
    a mean-field fit of such a factor shrinks its scale (MASS ``epil``, Poisson: the subject
    sd 0.35 NUTS posterior sds below NUTS's mean; centred, within 0.1)."""
    means, sds = start
    marked = dict(data)
    for k, size in enumerate(_factor_sizes(data)):
        if size == 1 and np.mean(np.square(sds.get(f"z_group_{k}", 1.0))) < 0.5:
            marked[f"centred_{k}"] = np.asarray(1.0)
    centred = [
        k
        for k in range(len(_factor_sizes(data)))
        if f"centred_{k}" in marked and f"student_t_{k}" not in marked  # normal groups only
    ]
    if centred:  # the one with most groups carries the fixed part (``_swept_intercepts``)
        k = max(centred, key=lambda k: len(data[f"groups_{k}"]))
        marked[f"group_means_{k}"] = _group_means(data, k)
    return marked


def _group_means(data: dict, k: int) -> np.ndarray:
    """Each group's weighted mean of the standardised features, (G_k, p)."""
    code, weight = data[f"group_{k}"], data["row_weight"]
    n_groups = len(data[f"groups_{k}"])
    total = np.bincount(code, weights=weight, minlength=n_groups)
    sums = np.stack(
        [
            np.bincount(code, weights=weight * column, minlength=n_groups)
            for column in data["features"].T
        ],
        axis=1,
    ).reshape(n_groups, data["features"].shape[1])
    return sums / np.maximum(total, np.finfo(float).tiny)[:, None]


def glmm_init(data: dict, start: tuple[dict, dict]):
    """The engine's initialiser from :func:`glmm_start`: centred factors start at the
    effects ``u = sigma z`` (means and sds)."""
    means, sds = dict(start[0]), dict(start[1])
    for k in range(len(_factor_sizes(data))):
        if f"student_t_{k}" in data:
            means[f"nu_group_{k}_log__"] = np.log(NU_PRIOR[0] / NU_PRIOR[1])
            sds[f"nu_group_{k}_log__"] = 0.5
        if f"centred_{k}" in data or f"student_t_{k}" in data:
            sigma_k = np.exp(means[f"sigma_group_{k}_log__"])
            means[f"u_group_{k}"] = sigma_k * means.pop(f"z_group_{k}")
            sds[f"u_group_{k}"] = sigma_k * np.asarray(sds.pop(f"z_group_{k}"))
        if f"group_means_{k}" in data:  # swept: v = alpha + xbar beta + u
            swept = float(means.get("alpha", 0.0))
            if "beta" in means:
                swept = swept + data[f"group_means_{k}"] @ np.asarray(means["beta"])
            means[f"u_group_{k}"] = means[f"u_group_{k}"] + swept

    def init(shapes: dict, rng: np.random.Generator):
        start_means = {name: value for name, value in means.items() if name in shapes}
        start_sds = {name: value for name, value in sds.items() if name in shapes}
        return start_means, start_sds

    return init


def glmm_start_predictor(data: dict, means: dict) -> np.ndarray:
    """The linear predictor (without offset and ``c``) at a start's means, random
    intercepts only."""
    codes = [data[f"group_{k}"] for k in range(count_prefixed(data, "groups_"))]
    return _start_predictor(data, means, codes, [[] for _ in codes])


def _start_predictor(data, means, codes, slopes) -> np.ndarray:
    """The start's linear predictor (without offset and ``c``): fixed part and effects."""
    fitted = np.full(len(data["target"]), float(means.get("alpha", 0.0)))
    if "beta" in means and data["features"].shape[1]:
        fitted = fitted + data["features"] @ means["beta"]
    for k, code in enumerate(codes):
        tau, z = np.exp(means[f"sigma_group_{k}_log__"]), means[f"z_group_{k}"]
        if not slopes[k]:
            fitted = fitted + tau * z[code]
            continue
        raw = np.asarray(means.get(f"corr_group_{k}", np.zeros(z.shape[1] * (z.shape[1] - 1) // 2)))
        chol = lkj_cholesky_numpy(raw[None, :], z.shape[1])[0]
        effects = z @ (tau[:, None] * chol).T
        fitted = fitted + np.sum(data[f"design_{k}"] * effects[code], axis=1)
    return fitted


# ----------------------------------------------------------------------------- back-transform
def glmm_complete_draws(data: dict):
    """The fit's last step (draws edited in place): a swept factor's draws ``v_g`` back to
    its effects ``u_g = v_g - alpha - xbar_g beta``, then ``c`` added to the intercept. The
    effects are edited in place, a block of draws at a time (with many groups they are the
    largest array of the fit, float32: a float64 temporary of their size would double it)."""
    centre, k = float(data["link_centre"]), _sweeping_factor(data)

    def complete(draws: dict) -> None:
        if k is not None:
            effects, means = draws[f"u_group_{k}"], data[f"group_means_{k}"]
            for start in range(0, len(effects), _DRAW_BLOCK):
                rows = slice(start, start + _DRAW_BLOCK)
                swept = draws["alpha"][rows, None]
                if "beta" in draws:
                    swept = swept + draws["beta"][rows] @ means.T
                effects[rows] -= swept.astype(effects.dtype, copy=False)
        draws["alpha"] = draws["alpha"] + centre

    return complete


def glmm_to_original(draws, x_scaler, y_scaler, n_seen, slopes, family_name) -> dict:
    """Draws in the user's units: the Gaussian model's back-transform for the coefficients
    and effects, the family's for its own parameters (``alpha`` holds ``c`` already: see
    :func:`glmm_complete_draws`)."""
    family = family_named(family_name)
    y_scale = float(y_scaler.scale)
    own = family.to_original(draws, y_scale)
    draws = dict(draws)
    draws["sigma"] = np.zeros_like(draws["alpha"])
    kept = gaussian_re_to_original(draws, x_scaler, y_scaler, n_seen, slopes)
    del kept["sigma"]
    return kept | own
