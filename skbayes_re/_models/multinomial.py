"""The multinomial logistic mixed model (the classifier with three or more classes).

    P(y_i = c) = softmax(eta_i)_c,   eta_i0 = 0,
    eta_ic = a_c + alpha_c + x_i beta_c + sum_k u_kc[g_ki]        (c = 1, ..., K-1)

Class 0 is the reference (``families/categorical.py``). The priors are the binary model's,
class by class: ``alpha_c, beta_c ~ Normal(0, s)``, and per grouping factor and class
random intercepts ``u_kc ~ Normal(0, sigma_kc)``, ``sigma_kc ~ HalfNormal(s)``,
independent across classes (centred or not class by class: :func:`mark_centred_classes`).
``a_c = log(n_c / n_0)`` (weighted class counts) centres each intercept's prior on the data.
Features are standardised.

Cost: O(n p (K-1)) per draw for n rows and p features, plus O(G (K-1)) for the groups;
full-batch steps up to ``glmm.MINIBATCH_ROWS`` rows, minibatches beyond, as the binary
model. The start is each class's logistic mixed model against the reference (see
:func:`multinomial_start`).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ._ops import count_prefixed, matmul, rows_of
from .families.categorical import CATEGORICAL
from .laplace_start import first_predictor, laplace_applies, laplace_start

__all__ = [
    "MULTINOMIAL_REWRITES_EXCLUDED",
    "START_ROWS",
    "build_multinomial",
    "multinomial_complete_draws",
    "multinomial_data",
    "mark_centred_classes",
    "multinomial_init",
    "multinomial_start",
    "multinomial_row_data",
    "multinomial_structure",
    "multinomial_to_original",
]

START_ROWS = 100_000
# PyTensor's elemwise fusion fails on the full-rank step of this graph (a ``KeyError`` it
# logs as an error, then skips the rewrite): skip it there without the log.
MULTINOMIAL_REWRITES_EXCLUDED = {"fullrank_advi": ("fusion",)}
_START_GROUP_SD = 0.5


def multinomial_data(features, shares, codes, n_groups, weights, prior_scale):
    """The arrays behind the model: standardised ``features``; ``shares`` (n, K), each row's
    class indicators (``families.categorical.one_hot``) or, for rows merged by
    ``merged_rows.py``, its classes' weighted shares, stored for the classes 1..K-1; row
    weights and each factor's codes."""
    features = np.asarray(features, dtype=np.float64)
    shares = np.asarray(shares, dtype=np.float64)
    weight = np.ones(len(shares)) if weights is None else np.asarray(weights, np.float64)
    counts = np.maximum(weight @ shares, 0.5)  # 0.5: a class whose rows all have weight 0
    data = {
        "features": features,
        "target": shares[:, 1:],
        "row_weight": weight,
        "class_centre": np.log(counts[1:] / counts[0]),
        "prior_scale": np.asarray(float(prior_scale)),
        "batch_scale": np.asarray(1.0),
    }
    for k, (code, size) in enumerate(zip(codes, n_groups, strict=True)):
        data[f"group_{k}"] = np.asarray(code, dtype=np.int64)
        data[f"groups_{k}"] = np.zeros(int(size))
    return data


def multinomial_row_data(data: dict) -> tuple[str, ...]:
    """Names of the arrays holding one entry per row (swapped by minibatch ADVI)."""
    factors = (f"group_{k}" for k in range(count_prefixed(data, "groups_")))
    return ("features", "target", "row_weight", *factors)


def multinomial_structure(data: dict) -> tuple:
    """What fixes the compiled graph: whether there are features and the number of grouping
    factors (rows, classes, features and groups stay symbolic)."""
    has_features = data["features"].shape[1] > 0
    n_factors = count_prefixed(data, "groups_")
    return ("multinomial", has_features, n_factors)


def build_multinomial(data: dict) -> pm.Model:
    """Build the model of the module docstring on ``pm.Data``."""
    with pm.Model(check_bounds=False) as model:
        box = {name: pm.Data(name, value) for name, value in data.items()}
        scale, n_other = box["prior_scale"], box["target"].shape[1]
        eta = box["class_centre"][None, :] + pm.Normal("alpha", 0.0, scale, shape=(n_other,))
        if data["features"].shape[1] > 0:
            beta = pm.Normal("beta", 0.0, scale, shape=(box["features"].shape[1], n_other))
            eta = eta + matmul(box["features"], beta)
        for k in range(count_prefixed(data, "groups_")):
            eta = eta + rows_of(_class_effects(box, scale, k, n_other), box[f"group_{k}"])
        log_density = CATEGORICAL.log_density(box["target"], eta, {})
        pm.Potential("loglik", box["batch_scale"] * pt.sum(box["row_weight"] * log_density))
    return model


def _class_effects(box, scale, k: int, n_other):
    """Factor k's effects (G_k, K-1), each class's column centred or not as ``centred_k``
    marks it: ``v ~ Normal(0, sigma_kc)`` and ``u = v`` where the groups inform the class's
    effects well, ``v ~ Normal(0, 1)`` and ``u = sigma_kc v`` where they do not (one block,
    so which classes are centred is data, not structure; see :func:`mark_centred_classes`)."""
    sigma_k = pm.HalfNormal(f"sigma_group_{k}", scale, shape=(n_other,))
    centred = box[f"centred_{k}"][None, :]
    prior_sd = centred * sigma_k[None, :] + (1.0 - centred)
    shape = (box[f"groups_{k}"].shape[0], n_other)
    v_k = pm.Normal(f"v_group_{k}", 0.0, prior_sd, shape=shape)
    return v_k * (centred + (1.0 - centred) * sigma_k[None, :])


def mark_centred_classes(data: dict, start: tuple[dict, dict]) -> dict:
    """Mark (``centred_k``, one 0/1 per class) the classes whose effects the groups inform
    well: where the start's conditional variance of an effect is on average under half its
    prior variance (as ``glmm.mark_centred_glmm`` does per factor). Centred, a mean-field
    fit keeps such a class's group sd (simulated, three classes, 30 groups: NUTS sds
    -0.4 away non-centred, -0.1 centred); non-centred, it keeps a weakly informed one
    (+0.5 centred, 0.0 non-centred)."""
    marked = dict(data)
    for k in range(count_prefixed(data, "groups_")):
        z_sd = start[1].get(f"z_group_{k}")
        informed = np.zeros(data["target"].shape[1])
        if z_sd is not None:
            informed = (np.mean(np.square(z_sd), axis=0) < 0.5).astype(np.float64)
        marked[f"centred_{k}"] = informed
    return marked


def multinomial_init(data: dict, start: tuple[dict, dict]):
    """The engine's initialiser from a start (:func:`multinomial_start`): each factor's
    effects ``v`` as :func:`mark_centred_classes` marked them."""
    means, sds = dict(start[0]), dict(start[1])
    for k in range(count_prefixed(data, "groups_")):
        z_mean, z_sd = means.pop(f"z_group_{k}", None), sds.pop(f"z_group_{k}", None)
        if z_mean is None:
            continue
        centred = data[f"centred_{k}"][None, :]
        sigma = np.exp(means[f"sigma_group_{k}_log__"])[None, :]
        factor = centred * sigma + (1.0 - centred)
        means[f"v_group_{k}"], sds[f"v_group_{k}"] = z_mean * factor, z_sd * factor

    def init(shapes: dict, rng: np.random.Generator):
        return (
            {name: value for name, value in means.items() if name in shapes},
            {name: value for name, value in sds.items() if name in shapes},
        )

    return init


def multinomial_start(data: dict, seed: int) -> tuple[dict, dict]:
    """Starting means and sds. Each class c against the reference alone is a logistic mixed
    model with the same parameters (``P(y = c | y in {0, c}) = sigmoid(eta_c)``), so with
    one factor, or at most ``laplace_start.MAX_GROUPS`` groups over all factors, each class
    starts at that model's Laplace mode and EM scales on the rows of classes 0 and c.
    Otherwise: a multinomial logistic regression without groups, effects at 0 and scales
    at ``_START_GROUP_SD``. (From the regression without groups alone, whose coefficients
    are attenuated by the groups' spread, mean-field steps stopped 0.5-0.7 NUTS sds short on
    a coefficient and a group sd of a simulated three-class model.)"""
    n_factors = count_prefixed(data, "groups_")
    n_groups = [len(data[f"groups_{k}"]) for k in range(n_factors)]
    if n_factors and laplace_applies(n_groups):
        pairs = [_pair_start(data, c, n_groups) for c in range(1, data["target"].shape[1] + 1)]
        names = pairs[0][0].keys()
        means = {name: np.stack([m[name] for m, _ in pairs], axis=-1) for name in names}
        sds = {name: np.stack([sd[name] for _, sd in pairs], axis=-1) for name in names}
        return means, sds
    alpha, beta = _ungrouped_start(data, seed)
    means = {"alpha": alpha, "beta": beta}
    for k in range(n_factors):
        means[f"sigma_group_{k}_log__"] = np.log(_START_GROUP_SD)
    return means, {}


def _pair_start(data, c: int, n_groups) -> tuple[dict, dict]:
    """The Laplace start of class c against class 0 on their rows (``laplace_start``): a
    row's share of class c among the two is its binomial target, weighted by the two's
    share of the row."""
    share_c = data["target"][:, c - 1]
    pair = share_c + (1.0 - np.sum(data["target"], axis=1))
    rows = np.flatnonzero(pair > 1e-12)
    target = share_c[rows] / pair[rows]
    shift = np.full(len(rows), float(data["class_centre"][c - 1]))
    group_codes = [data[f"group_{k}"][rows] for k in range(len(n_groups))]
    means, sds, _ = laplace_start(
        data["features"][rows],
        target,
        shift,
        data["row_weight"][rows] * pair[rows],
        group_codes,
        n_groups,
        float(data["prior_scale"]),
        first_predictor("logit", target, shift),
        False,
        "logit",
    )
    return means, sds


def _ungrouped_start(data: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression on the standardised features, its L2 penalty the
    Normal(0, s) prior's, as contrasts against class 0 with ``a_c`` taken out (on at most
    ``START_ROWS`` rows; a merged row enters once per class it holds, weighted by its
    share)."""
    from sklearn.linear_model import LogisticRegression

    shares = np.column_stack([1.0 - np.sum(data["target"], axis=1), data["target"]])
    n_rows, n_classes = shares.shape
    rows = np.arange(n_rows)
    if n_rows > START_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, START_ROWS, replace=False))
    row, label = np.nonzero(shares[rows] > 1e-12)
    alpha, beta = np.zeros(n_classes - 1), np.zeros((data["features"].shape[1], n_classes - 1))
    if len(np.unique(label)) < n_classes:  # the sample misses a class: start at 0
        return alpha, beta
    weight = data["row_weight"][rows][row] * shares[rows][row, label]
    fit = LogisticRegression(C=len(rows) / n_rows * float(data["prior_scale"]) ** 2, max_iter=200)
    features = data["features"][rows][row] if beta.size else np.zeros((len(row), 1))
    fit.fit(features, label, sample_weight=weight)
    alpha = fit.intercept_[1:] - fit.intercept_[0] - data["class_centre"]
    if beta.size:
        beta = (fit.coef_[1:] - fit.coef_[0]).T
    return alpha, beta


def multinomial_complete_draws(data: dict):
    """The fit's last step (draws edited in place): ``a`` added to the intercepts, and each
    factor's draws ``v`` mapped to its effects ``u_group_k`` (see :func:`_class_effects`)."""
    centre = np.asarray(data["class_centre"], dtype=np.float64)
    n_factors = count_prefixed(data, "groups_")

    def complete(draws: dict) -> None:
        draws["alpha"] = draws["alpha"] + centre[None, :]
        for k in range(n_factors):
            centred = data[f"centred_{k}"][None, None, :]
            scaled = centred + (1.0 - centred) * draws[f"sigma_group_{k}"][:, None, :]
            draws[f"u_group_{k}"] = scaled * draws.pop(f"v_group_{k}")

    return complete


def multinomial_to_original(draws: dict, x_scaler, n_seen: list[int]) -> dict:
    """Draws in the user's units: ``intercept`` (S, K-1), ``coef`` (S, K-1, p) and per
    factor ``effects`` (S, G_k, K-1, the groups seen in fit, float32), ``group_sd``
    (S, K-1) and ``group_cov`` (S, K-1, K-1: diagonal, the classes' effects independent)."""
    alpha = draws["alpha"]  # ``a`` added (see :func:`multinomial_complete_draws`)
    n_draws, n_other = alpha.shape
    beta = draws.get("beta", np.zeros((n_draws, 0, n_other)))
    scale, mean = np.asarray(x_scaler.scale, float), np.asarray(x_scaler.mean, float)
    coef = np.transpose(beta / scale[None, :, None], (0, 2, 1))
    intercept = alpha - coef @ mean
    effects, group_sd, group_cov = [], [], []
    for k, size in enumerate(n_seen):
        sigma_k = draws[f"sigma_group_{k}"]
        effects.append(draws.pop(f"u_group_{k}")[:, :size].astype(np.float32))
        group_sd.append(sigma_k)
        group_cov.append(sigma_k[:, :, None] ** 2 * np.eye(n_other)[None])
    return {
        "intercept": intercept,
        "coef": coef,
        "effects": effects,
        "group_sd": group_sd,
        "group_cov": group_cov,
        "group_nu": [None] * len(n_seen),
        "centres": [None] * len(n_seen),
    }
