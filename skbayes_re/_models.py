"""Model specification: pure functions that build PyMC models from arrays.

Every model is stated on the standardised scale (features and target centred and scaled), so
its priors read the same whatever the user's units. Data enter through ``pm.Data`` containers;
the inference engine swaps their values between fits without rebuilding or recompiling.

The Gaussian random-intercept model (and the linear model, its special case with no grouping
factor) writes its likelihood through sufficient statistics: cross-products of the design and
per-group sums. It is the same likelihood as the row-by-row one, but evaluating it costs
O(p^2 + p G) per draw instead of O(n p), so an ADVI step does not grow with the row count.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.link.c.op import COp

from ._validation import BLOCK_ROWS

__all__ = [
    "build_gaussian_re_model",
    "build_mlp_re_model",
    "gaussian_re_init",
    "gaussian_re_statistics",
    "gaussian_re_statistics_chunked",
    "gaussian_re_structure",
    "gaussian_re_to_original",
    "mlp_re_data",
    "mlp_re_init",
    "mlp_re_structure",
    "mlp_re_to_original",
    "mlp_weight_names",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


def gaussian_re_statistics(features, target, codes, n_groups, prior_scale):
    """Sufficient statistics of the Gaussian random-intercept likelihood, from standardised
    ``features`` and ``target`` and group ``codes`` (see
    :func:`gaussian_re_statistics_chunked`)."""
    return gaussian_re_statistics_chunked([(features, target)], codes, n_groups, prior_scale)


def gaussian_re_statistics_chunked(
    chunks,
    codes: list[np.ndarray],
    n_groups: list[int],
    prior_scale: float,
) -> dict[str, np.ndarray]:
    """Sufficient statistics of the Gaussian random-intercept likelihood.

    ``chunks`` yields ``(features, target)`` row blocks, already standardised, in row order
    (one block, or many to bound memory: only one block's design matrix exists at a time);
    ``codes[k]`` holds values in ``0 .. n_groups[k]-1`` for every row.
    """
    data, start = None, 0
    for features, target in chunks:
        rows = slice(start, start + len(target))
        part = _dense_statistics(features, target, [code[rows] for code in codes], n_groups)
        data = part if data is None else {key: data[key] + part[key] for key in data}
        start += len(target)
    data["prior_scale"] = np.asarray(float(prior_scale))
    for k, m in itertools.combinations(range(len(codes)), 2):
        pairs, counts = np.unique(codes[k] * n_groups[m] + codes[m], return_counts=True)
        data[f"pair_first_{k}_{m}"] = (pairs // n_groups[m]).astype(np.int64)
        data[f"pair_second_{k}_{m}"] = (pairs % n_groups[m]).astype(np.int64)
        data[f"pair_count_{k}_{m}"] = counts.astype(np.float64)
    return data


def _dense_statistics(features, target, codes, n_groups) -> dict[str, np.ndarray]:
    design = np.column_stack([np.ones(len(target)), features])
    data = {
        "n_obs": np.asarray(float(len(target))),
        "yty": np.asarray(float(target @ target)),
        "wty": design.T @ target,
        "wtw": design.T @ design,
    }
    for k, (code, size) in enumerate(zip(codes, n_groups, strict=True)):
        data[f"ysum_{k}"] = np.bincount(code, weights=target, minlength=size)
        data[f"wtz_{k}"] = np.stack(
            [np.bincount(code, weights=column, minlength=size) for column in design.T]
        )
    return data


def _count_prefixed(data: dict, prefix: str) -> int:
    """How many arrays are named ``prefix<i>`` (grouping factors, hidden layers)."""
    return sum(1 for name in data if name.startswith(prefix))


def gaussian_re_structure(data: dict[str, np.ndarray]) -> tuple:
    """What fixes the compiled graph: whether there are features, and how many grouping
    factors (row, feature and group counts stay symbolic)."""
    n_factors = _count_prefixed(data, "ysum_")
    return ("gaussian_re", int(data["wty"].shape[0]) > 1, n_factors)


def _dot(a, b):
    """Vector inner product as an elementwise product and a sum.

    Written without BLAS ops so that the whole ELBO graph has C code and compiles into a
    single module (no optimised BLAS is assumed); these products are tiny (features x groups).
    """
    return pt.sum(a * b)


def _quadratic(matrix, left, right):
    """``left @ matrix @ right`` without BLAS ops (see ``_dot``)."""
    return pt.sum(matrix * left[:, None] * right[None, :])


def _matrix_vector(matrix, vector):
    """``matrix @ vector`` by ``_MatMul``: for a (features + 1) x groups matrix, a broadcast
    product and a row sum (and the same again in the gradient) would write and reread a
    temporary of that size several times per step, most of a step's cost with many groups."""
    return pt.sum(_matmul(matrix, vector[:, None]), axis=1)


def build_gaussian_re_model(data: dict[str, np.ndarray]) -> pm.Model:
    """Build ``y ~ Normal(alpha + X beta + sum_k sigma_k z_k[g_k], sigma)`` on ``pm.Data``.

    Priors (standardised scale, ``s = prior_scale``): ``alpha, beta ~ Normal(0, s)``,
    ``sigma, sigma_k ~ HalfNormal(s)``, ``z_k ~ Normal(0, 1)`` (non-centred intercepts).
    """
    _, has_features, n_factors = gaussian_re_structure(data)
    with pm.Model(check_bounds=False) as model:
        box = {name: pm.Data(name, value) for name, value in data.items()}
        scale = box["prior_scale"]
        alpha = pm.Normal("alpha", 0.0, scale)
        coefs = [alpha[None]]
        if has_features:
            coefs.append(pm.Normal("beta", 0.0, scale, shape=(box["wty"].shape[0] - 1,)))
        b = pt.concatenate(coefs)
        sigma = pm.HalfNormal("sigma", scale)
        effects = _random_intercepts(box, scale, n_factors)
        _gaussian_loglik(box, sigma, _linear_rss(box, b, effects))
    return model


def _random_intercepts(box, scale, n_factors: int) -> list:
    """Non-centred intercepts ``u_k = sigma_k * z_k``, one vector per grouping factor."""
    effects = []
    for k in range(n_factors):
        sigma_k = pm.HalfNormal(f"sigma_group_{k}", scale)
        z_k = pm.Normal(f"z_group_{k}", 0.0, 1.0, shape=(box[f"ysum_{k}"].shape[0],))
        effects.append(sigma_k * z_k)
    return effects


def _linear_rss(box, b, effects):
    """``sum_i (y_i - w_i b - sum_k u_k[g_ki])^2`` from the sufficient statistics
    (``w_i = (1, x_i)``; see :func:`gaussian_re_statistics_chunked`)."""
    rss = box["yty"] - 2.0 * _dot(b, box["wty"]) + _quadratic(box["wtw"], b, b)
    for k, u_k in enumerate(effects):
        rss += (
            -2.0 * _dot(u_k, box[f"ysum_{k}"])
            + 2.0 * _dot(b, _matrix_vector(box[f"wtz_{k}"], u_k))
            + pt.sum(box[f"wtz_{k}"][0] * u_k**2)
        )
    for k, m in itertools.combinations(range(len(effects)), 2):
        first = effects[k][box[f"pair_first_{k}_{m}"]]
        second = effects[m][box[f"pair_second_{k}_{m}"]]
        rss += 2.0 * pt.sum(box[f"pair_count_{k}_{m}"] * first * second)
    return rss


def _gaussian_loglik(box, sigma, rss) -> None:
    n_obs = box["n_obs"]
    pm.Potential("loglik", -0.5 * n_obs * _LOG_2PI - n_obs * pt.log(sigma) - rss / (2.0 * sigma**2))


def rescale_group_scales(means: dict, log_sds: dict, prior_scale: float) -> None:
    """The best move of a mean-field posterior along each factor's non-centred ridge.

    Scaling ``sigma_k`` by ``c`` and ``z_k`` (means and sds) by ``1 / c`` leaves every
    ``u_k = sigma_k z_k``, hence the likelihood, unchanged; the ELBO changes only through
    ``z_k``'s standard-normal prior, its entropy, ``sigma_k``'s HalfNormal prior and the log
    transform. With ``A = sum(m^2 + s^2)`` over the ``G`` groups and ``B = E[sigma_k^2] /
    prior_scale^2``, the ELBO is ``-A / (2 c^2) - (G - 1) log c - B c^2 / 2`` plus constants,
    maximised at ``c^2 = (sqrt((G - 1)^2 + 4 A B) - (G - 1)) / (2 B)``. Gradient steps follow
    this direction slowly (its gradient is the prior's alone, small beside noisy likelihood
    terms), so the fit takes it in closed form. Edits the arrays in place.
    """
    for k in range(_count_prefixed(means, "z_group_")):
        z_mean, z_log_sd = means[f"z_group_{k}"], log_sds[f"z_group_{k}"]
        log_sigma, log_sigma_sd = means[f"sigma_group_{k}_log__"], log_sds[f"sigma_group_{k}_log__"]
        a = float(np.sum(z_mean**2) + np.sum(np.exp(2.0 * z_log_sd)))
        b = float(np.exp(2.0 * log_sigma + 2.0 * np.exp(2.0 * log_sigma_sd))) / prior_scale**2
        dof = z_mean.size - 1.0
        c_squared = 2.0 * a / (np.sqrt(dof**2 + 4.0 * a * b) + dof)  # the root, stably
        log_c = 0.5 * np.log(c_squared)
        z_mean /= np.exp(log_c)
        z_log_sd -= log_c
        log_sigma += log_c


def group_scale_move(prior_scale: float):
    """The engine's ``move`` for models with random intercepts: :func:`rescale_group_scales`
    with the priors' scale fixed."""
    return functools.partial(rescale_group_scales, prior_scale=float(prior_scale))


def gaussian_re_to_original(draws, x_scaler, y_scaler, n_groups: list[int]) -> dict:
    """Map standardised-scale draws to the user's units.

    Returns ``intercept`` (S,), ``coef`` (S, p), ``sigma`` (S,), and per factor
    ``effects`` (S, G_k; only the groups seen in fit) and ``group_sd`` (S,).
    """
    y_mean, y_scale = float(y_scaler.mean), float(y_scaler.scale)
    alpha = draws["alpha"]
    n_draws = alpha.shape[0]
    beta = draws.get("beta", np.zeros((n_draws, 0)))
    coef = y_scale * beta / x_scaler.scale
    intercept = y_mean + y_scale * (alpha - beta @ (x_scaler.mean / x_scaler.scale))
    effects, group_sd = group_effects_to_original(draws, y_scale, n_groups)
    return {
        "intercept": intercept,
        "coef": coef,
        "sigma": y_scale * draws["sigma"],
        "effects": effects,
        "group_sd": group_sd,
    }


def group_effects_to_original(draws: dict, y_scale: float, n_groups: list[int]):
    """Per grouping factor, the effect draws ``sigma_k * z_k`` of the groups seen in fit, in
    the user's units, and the group sd draws. The ``z_group_k`` draws are taken out of
    ``draws`` and scaled in place; the effects are kept as float32 (seven significant
    digits, far below their Monte Carlo error): with many groups they are the largest
    arrays a fitted model holds."""
    effects, group_sd = [], []
    for k, size in enumerate(n_groups):
        sigma_k = draws[f"sigma_group_{k}"]
        effect = draws.pop(f"z_group_{k}")[:, :size]
        effect *= (y_scale * sigma_k)[:, None]
        effects.append(effect.astype(np.float32, copy=False))
        group_sd.append(y_scale * sigma_k)
    return effects, group_sd


def gaussian_re_start(data: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Starting means and sds for ADVI, close to the posterior so that few steps are needed.

    Least squares for the coefficients and noise; per grouping factor, a method-of-moments
    group sd from the groups' mean residuals and shrunken (BLUP-like) group offsets; sds from
    the curvature of the log density at that point. All on the unconstrained, standardised
    scale.
    """
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
    return means, sds


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
    means[f"z_group_{k}"] = shrink * mean_residual / group_sd
    sds[f"z_group_{k}"] = 1.0 / np.sqrt(1.0 + counts * group_var / noise_var)
    return group_var


# --------------------------------------------------------------------------------------------
# Neural-network mean function with random intercepts
# --------------------------------------------------------------------------------------------


def mlp_re_data(
    features: np.ndarray,
    target: np.ndarray,
    codes: list[np.ndarray],
    n_groups: list[int],
    hidden_layer_sizes: tuple[int, ...],
    prior_scale: float,
    alpha: float,
) -> dict[str, np.ndarray]:
    """The arrays behind the MLP random-intercept model (all sizes enter as array shapes).

    ``features`` and ``target`` are already standardised; ``codes[k]`` holds values in
    ``0 .. n_groups[k]-1`` for every row. Each hidden layer's width is the length of a
    placeholder array ``width_l``, so networks of other widths reuse one compiled graph.
    The per-row arrays are ``mlp_row_data(...)``; minibatch ADVI swaps blocks of their rows in
    and sets ``batch_scale``.

    The network is fitted around a linear control ``X c``, ``c`` the random-intercept linear
    model's coefficients (see ``build_mlp_re_model``): ``target`` holds ``y - X c`` and the
    sufficient statistics are those of that residual target, without features.
    """
    features = np.asarray(features, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    # row blocks: no copy of the design matrix at any data size
    rows = [slice(i, i + BLOCK_ROWS) for i in range(0, len(target), BLOCK_ROWS)]
    linear = gaussian_re_statistics_chunked(
        ((features[r], target[r]) for r in rows), codes, n_groups, prior_scale
    )
    control = gaussian_re_start(linear)[0]["beta"]
    residual = np.empty_like(target)
    for r in rows:
        np.subtract(target[r], features[r] @ control, out=residual[r])
    data = _residual_statistics(linear, control)
    data |= {
        "control_coef": control,
        "features": features,
        "target": residual,
        "weight_scale": np.asarray(1.0 / np.sqrt(float(alpha))),
        "batch_scale": np.asarray(1.0),
    }
    for layer, width in enumerate(hidden_layer_sizes):
        data[f"width_{layer}"] = np.zeros(int(width))
    for k, code in enumerate(codes):
        data[f"group_{k}"] = np.asarray(code, dtype=np.int64)
    return data


def _residual_statistics(statistics: dict, control: np.ndarray) -> dict[str, np.ndarray]:
    """The sufficient statistics of the target ``y - X c`` without features, from those of
    ``y`` with features (``gaussian_re_statistics_chunked``): no second pass over the rows."""
    wtw, wty = statistics["wtw"], statistics["wty"]
    b = np.concatenate([[0.0], control])  # the design's first column is the intercept
    out = dict(statistics)
    out["yty"] = np.asarray(float(statistics["yty"] - 2.0 * b @ wty + b @ wtw @ b))
    out["wty"] = np.array([wty[0] - wtw[0] @ b])
    out["wtw"] = wtw[:1, :1].copy()
    for k in range(_count_prefixed(statistics, "ysum_")):
        wtz = statistics[f"wtz_{k}"]
        out[f"ysum_{k}"] = statistics[f"ysum_{k}"] - b @ wtz
        out[f"wtz_{k}"] = wtz[:1].copy()
    return out


def mlp_row_data(data: dict[str, np.ndarray]) -> tuple[str, ...]:
    """Names of the arrays of ``mlp_re_data`` that hold one entry per row."""
    n_factors = _count_prefixed(data, "ysum_")
    return ("features", "target", *(f"group_{k}" for k in range(n_factors)))


def mlp_re_structure(data: dict[str, np.ndarray], activation: str, weights: str) -> tuple:
    """What fixes the compiled graph: depth, activation, grouping factors and whether the
    weights are point-estimated (row, feature, width and group counts stay symbolic)."""
    n_layers = _count_prefixed(data, "width_")
    n_factors = _count_prefixed(data, "ysum_")
    return ("mlp_re", n_layers, activation, n_factors, weights)


def mlp_weight_names(n_layers: int) -> list[str]:
    """Value-variable names of the network weights and hidden biases (not ``alpha``)."""
    names = []
    for layer in range(n_layers):
        names += [f"coef_{layer}", f"bias_{layer}"]
    return [*names, "coef_out"]


def _activate(values, activation: str):
    if activation == "tanh":
        return pt.tanh(values)
    if activation == "relu":
        return pt.maximum(values, 0.0)
    if activation == "logistic":
        return pt.sigmoid(values)
    if activation == "identity":
        return values
    raise ValueError(f"Unknown activation {activation!r}.")


class _MatMul(COp):
    """``a @ b`` for float64 matrices by plain C loops, without BLAS (see ``_dot``).

    PyTensor's own matrix products become BLAS ops, which have no C code when no optimised
    BLAS is linked; one such op sends the whole ELBO step from the single-module C linker to
    one module per op (a much slower cold compile). A broadcast product and a sum would stay in
    C but materialise an ``(n, fan_in, fan_out)`` temporary and cost several times more per
    step; these loops make one pass over the rows, within a small factor of a BLAS call for
    the narrow layers of this model.
    """

    __props__ = ()

    def make_node(self, a, b):
        a, b = pt.as_tensor_variable(a), pt.as_tensor_variable(b)
        if a.ndim != 2 or b.ndim != 2 or a.dtype != "float64" or b.dtype != "float64":
            raise TypeError("_MatMul takes two float64 matrices.")
        out = pt.matrix(dtype="float64", shape=(a.type.shape[0], b.type.shape[1]))
        return Apply(self, [a, b], [out])

    def perform(self, node, inputs, outputs):
        a, b = inputs
        outputs[0][0] = np.asarray(a @ b, dtype=np.float64)

    def infer_shape(self, *args):
        # ``(node, input_shapes)``; PyTensor before 3 passes ``fgraph`` first (PyTensor 3 warns
        # on a signature that still names it), so the shapes are read as the last argument.
        shapes = args[-1]
        return [(shapes[0][0], shapes[1][1])]

    def pullback(self, inputs, outputs, cotangents):
        a, b = inputs
        (g,) = cotangents
        return [_matmul(g, b.T), _matmul(a.T, g)]

    # PyTensor 3 differentiates through `pullback` (overriding `grad`/`L_op` is deprecated
    # there); earlier versions call `L_op`, which takes the same arguments.
    if not hasattr(COp, "pullback"):
        L_op = pullback

    def c_code_cache_version(self):
        return (4,)

    def c_code(self, node, name, inputs, outputs, sub):
        a, b = inputs
        (z,) = outputs
        fail = sub["fail"]
        return f"""
        {{
        const npy_intp m = PyArray_DIMS({a})[0], k = PyArray_DIMS({a})[1];
        const npy_intp n = PyArray_DIMS({b})[1];
        if (PyArray_DIMS({b})[0] != k) {{
            PyErr_SetString(PyExc_ValueError, "_MatMul: shapes do not align.");
            {fail}
        }}
        if ({z} == NULL || PyArray_DIMS({z})[0] != m || PyArray_DIMS({z})[1] != n
            || !PyArray_IS_C_CONTIGUOUS({z})) {{
            npy_intp dims[2] = {{m, n}};
            Py_XDECREF({z});
            {z} = (PyArrayObject*)PyArray_EMPTY(2, dims, NPY_FLOAT64, 0);
            if (!{z}) {{ {fail} }}
        }}
        {{
        const npy_intp w = (npy_intp)sizeof(double);
        /* The stride of an axis of length one is never used (and may be anything). */
        const npy_intp sa0 = m > 1 ? PyArray_STRIDES({a})[0] : 0;
        const npy_intp sa1 = k > 1 ? PyArray_STRIDES({a})[1] : 0;
        const npy_intp sb0 = k > 1 ? PyArray_STRIDES({b})[0] : 0;
        const npy_intp sb1 = n > 1 ? PyArray_STRIDES({b})[1] : 0;
        if (sa0 % w || sa1 % w || sb0 % w || sb1 % w
            || !PyArray_ISALIGNED({a}) || !PyArray_ISALIGNED({b})) {{
            PyErr_SetString(PyExc_ValueError, "_MatMul: unaligned input.");
            {fail}
        }}
        {{
        const double* A = (const double*)PyArray_DATA({a});
        const double* B = (const double*)PyArray_DATA({b});
        const npy_intp a0 = sa0 / w, a1 = sa1 / w, b0 = sb0 / w, b1 = sb1 / w;
        double* Z = (double*)PyArray_DATA({z});
        for (npy_intp i = 0; i < m * n; ++i) Z[i] = 0.0;
        if (m >= k) {{
            /* Many rows, short contraction (forward pass, input gradients): blocks of
               rows, the row loop innermost so that it is long and vectorises. */
            const npy_intp block = 64;
            for (npy_intp start = 0; start < m; start += block) {{
                const npy_intp stop = start + block < m ? start + block : m;
                for (npy_intp l = 0; l < k; ++l) {{
                    const double* acol = A + l * a1;
                    for (npy_intp j = 0; j < n; ++j) {{
                        const double bv = B[l * b0 + j * b1];
                        double* zcol = Z + j;
                        for (npy_intp i = start; i < stop; ++i)
                            zcol[i * n] += acol[i * a0] * bv;
                    }}
                }}
            }}
        }} else if (n == 1) {{
            /* Long contraction into a column (gradient of the output weights): dots. */
            for (npy_intp i = 0; i < m; ++i) {{
                const double* arow = A + i * a0;
                double total = 0.0;
                for (npy_intp l = 0; l < k; ++l) total += arow[l * a1] * B[l * b0];
                Z[i] = total;
            }}
        }} else {{
            /* Long contraction (weight gradients x.T @ g): one pass over the rows. */
            for (npy_intp l = 0; l < k; ++l) {{
                const double* brow = B + l * b0;
                const double* acol = A + l * a1;
                for (npy_intp i = 0; i < m; ++i) {{
                    const double av = acol[i * a0];
                    double* zrow = Z + i * n;
                    for (npy_intp j = 0; j < n; ++j) zrow[j] += av * brow[j * b1];
                }}
            }}
        }}
        }}
        }}
        }}
        """


_MATMUL = _MatMul()


def _matmul(a, b):
    """``a @ b`` without BLAS ops (see ``_MatMul``)."""
    return _MATMUL(pt.cast(a, "float64"), pt.cast(b, "float64"))


def build_mlp_re_model(data: dict[str, np.ndarray], activation: str = "tanh") -> pm.Model:
    """Build ``y ~ Normal(alpha + MLP(X) + sum_k sigma_k z_k[g_k], sigma)`` on ``pm.Data``.

    ``MLP(X) = act(... act(X W_0 + b_0) ...) w_out``: hidden layers with biases, a linear
    output without bias (``alpha`` is the output bias). Priors (standardised scale,
    ``s = prior_scale``): weights ``W_l, w_out ~ Normal(0, weight_scale)`` with
    ``weight_scale = 1 / sqrt(l2 strength)``, hidden biases and ``alpha ~ Normal(0, s)``,
    ``sigma, sigma_k ~ HalfNormal(s)``, ``z_k ~ Normal(0, 1)`` (non-centred intercepts).
    """
    _, n_layers, _, n_factors, _ = mlp_re_structure(data, activation, "")
    with pm.Model(check_bounds=False) as model:
        box = {name: pm.Data(name, value) for name, value in data.items()}
        scale, weight_scale = box["prior_scale"], box["weight_scale"]
        hidden = box["features"]
        width = box["features"].shape[1]
        for layer in range(n_layers):
            out = box[f"width_{layer}"].shape[0]
            coef = pm.Normal(f"coef_{layer}", 0.0, weight_scale, shape=(width, out))
            bias = pm.Normal(f"bias_{layer}", 0.0, scale, shape=(out,))
            hidden = _activate(_matmul(hidden, coef) + bias[None, :], activation)
            width = out
        coef_out = pm.Normal("coef_out", 0.0, weight_scale, shape=(width,))
        alpha = pm.Normal("alpha", 0.0, scale)
        # A sum over the one output column, not ``[:, 0]``: the gradient of a column slice
        # (an IncSubtensor on an Alloc) breaks PyTensor's single-module C linker.
        network = pt.sum(_matmul(hidden, coef_out[:, None]), axis=1)
        sigma = pm.HalfNormal("sigma", scale)
        effects = _random_intercepts(box, scale, n_factors)
        # The residual sum of squares around a fixed linear control ``X c`` (``c`` the
        # random-intercept linear model's coefficients), with ``g = f - X c`` and
        # ``r = y - a - u - X c``:  sum (y - a - u - f)^2 = sum r^2 + sum g (g - 2 r).
        # ``sum r^2`` is exact from the full data's sufficient statistics; only the second sum,
        # small where the network is near linear, is taken over the rows present, scaled by
        # ``batch_scale`` (rows in the data / rows present; 1 in a full-batch fit). Minibatch
        # noise thus stays off the intercepts' own curvature, which keeps the group scales from
        # shrinking under noisy steps.
        # (``mlp_re_data`` stores ``y - X c`` as the target, with its sufficient statistics.)
        offset = alpha
        for k, u_k in enumerate(effects):
            offset = offset + u_k[box[f"group_{k}"]]
        departure = network - pt.sum(box["features"] * box["control_coef"][None, :], axis=1)
        present = pt.sum(departure * (departure - 2.0 * (box["target"] - offset)))
        rss = _linear_rss(box, alpha[None], effects) + box["batch_scale"] * present
        _gaussian_loglik(box, sigma, rss)
    return model


_START_SD_FACTOR = 10.0


def mlp_re_init(data: dict[str, np.ndarray], activation: str):
    """Starting means and sds for ADVI.

    Network weights and hidden biases: Glorot-uniform draws from the fit's seeded generator,
    as scikit-learn's ``MLPRegressor`` makes them. Output bias, noise and random intercepts:
    the random-intercept linear model's starting point (``gaussian_re_init``), so the group
    offsets start near their values and the network only has to learn the rest.
    """
    factor = 2.0 if activation == "logistic" else 6.0
    linear = gaussian_re_init(data)
    n_layers = _count_prefixed(data, "width_")

    def init(shapes: dict, rng: np.random.Generator) -> tuple[dict, dict]:
        weight_names = mlp_weight_names(n_layers)
        known = {name: shape for name, shape in shapes.items() if name not in weight_names}
        starts = linear(known, rng)
        means, sds = starts if isinstance(starts, tuple) else (starts, {})
        means = {name: value for name, value in means.items() if name in known}
        sds = {name: value for name, value in sds.items() if name in known}
        # The means' steps scale with their starting sds, and the engine lowers its learning
        # rate until it is small beside the posterior sds relative to those, averaging the
        # iterates of the last phase only. Starting ten times wider than the linear model's
        # posterior sds lets the offsets and the noise follow the network as it learns, and
        # makes the fit end in a slower phase whose average leaves out that transient.
        sds = {name: _START_SD_FACTOR * np.asarray(value) for name, value in sds.items()}
        sds["sigma_log__"] = np.maximum(sds.get("sigma_log__", 0.0), 0.1)
        for name in weight_names:
            shape = shapes[name.replace("bias_", "coef_")]
            fan_in, fan_out = (shape[0], 1) if len(shape) == 1 else shape
            bound = np.sqrt(factor / max(fan_in + fan_out, 1))
            means[name] = rng.uniform(-bound, bound, size=shapes[name])
        return means, sds

    return init


def mlp_re_to_original(draws, x_scaler, y_scaler, n_layers: int, n_groups: list[int]) -> dict:
    """Map standardised-scale draws to the user's units.

    The feature standardisation is folded into the first layer and the target's into the
    output layer, so ``MLP`` evaluated on raw features gives the original-scale mean. Returns
    ``coefs`` and ``intercepts`` (lists over layers, output layer last, each with a leading
    draw axis), ``sigma`` (S,), and per factor ``effects`` (S, G_k; seen groups only) and
    ``group_sd`` (S,).
    """
    y_mean, y_scale = float(y_scaler.mean), float(y_scaler.scale)
    coefs = [draws[f"coef_{layer}"] for layer in range(n_layers)] + [draws["coef_out"][..., None]]
    intercepts = [draws[f"bias_{layer}"] for layer in range(n_layers)]
    first = coefs[0]
    shift = np.einsum("p,spq->sq", x_scaler.mean / x_scaler.scale, first)
    coefs[0] = first / x_scaler.scale[None, :, None]
    if n_layers:
        intercepts[0] = intercepts[0] - shift
        coefs[-1] = y_scale * coefs[-1]
        output_bias = y_mean + y_scale * draws["alpha"]
    else:  # a linear network: the input shift lands on the output bias
        coefs[-1] = y_scale * coefs[-1]
        output_bias = y_mean + y_scale * (draws["alpha"] - shift[:, 0])
    intercepts.append(output_bias[:, None])
    effects, group_sd = group_effects_to_original(draws, y_scale, n_groups)
    return {
        "coefs": coefs,
        "intercepts": intercepts,
        "sigma": y_scale * draws["sigma"],
        "effects": effects,
        "group_sd": group_sd,
    }
