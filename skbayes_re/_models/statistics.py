"""Sufficient statistics of the Gaussian mixed model, computed in pieces and merged.

With the design ``w = (1, x)`` and factor k's group design ``v`` (``(1,)``, or ``(1, x_s, ...)``
with slopes), the likelihood needs ``n``, ``y'y``, ``W'y``, ``W'W`` and, per group, ``sum y``
and ``W'1`` (random intercepts) or ``V'y``, ``W'V`` and ``V'V`` (slopes); crossed factors add,
per pair of groups that share rows, their row count (or ``sum v_k v_m'`` with slopes).

With row weights (``sample_weight``), every statistic is a weighted sum over rows, ``n`` the
total weight: a row of weight 2 adds what two copies of it add.

Every statistic is a sum over rows, so any row blocks (one array in blocks, the partitions of
a Dask collection, the batches of ``partial_fit``) give *partial* statistics that add up:
:func:`partial_statistics` computes a block's, :func:`merge_statistics` adds two (groups and
group pairs first seen in one block included), :func:`finish_statistics` lays the sum out as
the model's data. Pairs are kept sparse, keyed by ``code_k * 2**32 + code_m``, so their keys do
not depend on how many groups exist yet.

Cost: one pass over the rows, ``O(n (p + 1) q)`` for the per-group sums (bincounts).
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = [
    "LOG_2PI",
    "PAIRS",
    "aliased_factors",
    "count_prefixed",
    "factor_sizes",
    "finish_statistics",
    "gaussian_re_statistics",
    "gaussian_re_statistics_chunked",
    "group_columns",
    "merge_statistics",
    "partial_statistics",
    "regroup",
    "restandardise",
]

LOG_2PI = float(np.log(2.0 * np.pi))
PAIRS = "pairs"  # the key of a partial's sparse pair statistics
_PAIR_BASE = np.int64(2**32)


def group_columns(slope: list[int]) -> list[int]:
    """Columns of ``w = (1, x)`` that make a factor's group design ``v``."""
    return [0, *(1 + s for s in slope)]


def partial_statistics(features, target, codes, n_groups, slopes, weights=None) -> dict:
    """The statistics of one row block (standardised ``features`` and ``target``; ``codes[k]``
    in ``0 .. n_groups[k]-1``; ``slopes[k]`` the slope features of factor k; ``weights``
    the rows' weights, or None for weight 1)."""
    design = np.column_stack([np.ones(len(target)), features])
    weighted = target if weights is None else weights * target
    data = {
        "n_obs": np.asarray(float(len(target) if weights is None else np.sum(weights))),
        "yty": np.asarray(float(target @ weighted)),
        "wty": design.T @ weighted,
        "wtw": design.T @ design if weights is None else (design.T * weights) @ design,
    }
    for k, (code, size, slope) in enumerate(zip(codes, n_groups, slopes, strict=True)):
        if slope:
            data |= _slope_factor_sums(k, design, target, code, size, slope, weights)
            continue
        data[f"ysum_{k}"] = np.bincount(code, weights=weighted, minlength=size)
        data[f"wtz_{k}"] = np.stack(
            [
                np.bincount(code, weights=_times(column, weights), minlength=size)
                for column in design.T
            ]
        )
    data[PAIRS] = {
        (k, m): _pair_sums(design, codes[k], codes[m], slopes[k], slopes[m], weights)
        for k, m in itertools.combinations(range(len(codes)), 2)
    }
    return data


def _times(column: np.ndarray, weights) -> np.ndarray:
    """A per-row array times the rows' weights (itself when there are none)."""
    return column if weights is None else column * weights


def _slope_factor_sums(k, design, target, code, size, slope, weights) -> dict[str, np.ndarray]:
    """Per-group ``V'y`` (G, q) and ``W'V`` (p + 1, G, q) of factor k over one row block."""
    group_design = design[:, group_columns(slope)]
    weighted = _times(target, weights)
    vty = np.stack(
        [np.bincount(code, weights=column * weighted, minlength=size) for column in group_design.T],
        axis=1,
    )
    wtv = np.empty((design.shape[1], size, group_design.shape[1]))
    for j, column in enumerate(design.T):
        weighted_column = _times(column, weights)
        for c, other in enumerate(group_design.T):
            wtv[j, :, c] = np.bincount(code, weights=weighted_column * other, minlength=size)
    return {f"vty_{k}": vty, f"wtv_{k}": wtv}


def _pair_sums(design, code_k, code_m, slope_k, slope_m, weights=None):
    """The distinct group pairs of factors k and m in a block, and per pair its row count
    (two random intercepts) or ``sum v_k v_m'`` (pairs, q_k, q_m), weighted."""
    keys, pair = np.unique(code_k * _PAIR_BASE + code_m, return_inverse=True)
    pair = pair.ravel()
    if not slope_k and not slope_m:
        counts = np.bincount(pair, weights=weights, minlength=len(keys))
        return keys, counts.astype(np.float64)
    left = design[:, group_columns(slope_k)]
    right = design[:, group_columns(slope_m)]
    cross = np.empty((len(keys), left.shape[1], right.shape[1]))
    for a, c in itertools.product(range(left.shape[1]), range(right.shape[1])):
        products = _times(left[:, a] * right[:, c], weights)
        cross[:, a, c] = np.bincount(pair, weights=products, minlength=len(keys))
    return keys, cross


def aliased_factors(data: dict) -> list[tuple[int, int]]:
    """Pairs of grouping factors that split the rows into the same groups (one a relabelling
    of the other), from finished statistics: every group has rows, so two factors do when as
    many distinct pairs of their groups share rows as each factor has groups."""
    if "groups_0" in data:  # per-row data (``glmm.py``): from the rows' codes
        return _aliased_codes(data)
    aliased = []
    for name, first in data.items():
        if not name.startswith("pair_first_"):
            continue
        k, m = (int(i) for i in name.removeprefix("pair_first_").split("_"))
        if len(first) == _n_groups(data, k) == _n_groups(data, m):
            aliased.append((k, m))
    return aliased


def _aliased_codes(data: dict) -> list[tuple[int, int]]:
    """``aliased_factors`` for per-row data: ``group_<k>`` codes, ``groups_<k>`` sizes."""
    n_factors = sum(1 for name in data if name.startswith("groups_"))
    aliased = []
    for k in range(n_factors):
        for m in range(k + 1, n_factors):
            size_k, size_m = len(data[f"groups_{k}"]), len(data[f"groups_{m}"])
            if size_k != size_m:
                continue
            pairs = data[f"group_{k}"].astype(np.int64) * size_m + data[f"group_{m}"]
            if len(np.unique(pairs)) == size_k:
                aliased.append((k, m))
    return aliased


def _n_groups(data: dict, k: int) -> int:
    """Groups of factor k in finished statistics (random intercept or slopes)."""
    return len(data[f"ysum_{k}"]) if f"ysum_{k}" in data else len(data[f"vty_{k}"])


def merge_statistics(first: dict | None, second: dict) -> dict:
    """The statistics of two row blocks together. Per-group arrays of different lengths (a
    later block that saw more groups) are added on their common groups and the longer kept."""
    if first is None:
        return second
    merged = {name: _add(first[name], second[name]) for name in first if name != PAIRS}
    merged[PAIRS] = {
        pair: _merge_pairs(first[PAIRS][pair], second[PAIRS][pair]) for pair in first[PAIRS]
    }
    return merged


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape == b.shape:
        return a + b
    axis = _group_axis(a, b)
    size = max(a.shape[axis], b.shape[axis])
    return _pad(a, axis, size) + _pad(b, axis, size)


def _group_axis(a: np.ndarray, b: np.ndarray) -> int:
    """The axis along which two per-group arrays differ in length."""
    differs = [i for i, (x, y) in enumerate(zip(a.shape, b.shape, strict=True)) if x != y]
    if len(differs) != 1:
        raise ValueError(f"Statistics of shapes {a.shape} and {b.shape} cannot be merged.")
    return differs[0]


def _pad(values: np.ndarray, axis: int, size: int) -> np.ndarray:
    widths = [(0, 0)] * values.ndim
    widths[axis] = (0, size - values.shape[axis])
    return np.pad(values, widths)


def _merge_pairs(first, second):
    keys, where = np.unique(np.concatenate([first[0], second[0]]), return_inverse=True)
    values = np.concatenate([first[1], second[1]])
    summed = np.zeros((len(keys), *values.shape[1:]))
    np.add.at(summed, where.ravel(), values)
    return keys, summed


def finish_statistics(partial: dict, prior_scale: float, slopes) -> dict[str, np.ndarray]:
    """The model's data from summed statistics: each slope factor's ``V'V`` (G, q, q) and its
    ``W'V`` flattened to (p + 1, G q) for the step's matrix-vector product, and the pairs'
    group labels and counts (or cross-products)."""
    data = {name: value for name, value in partial.items() if name != PAIRS}
    data["prior_scale"] = np.asarray(float(prior_scale))
    for k, slope in enumerate(slopes):
        if slope:
            wtv = data[f"wtv_{k}"]
            data[f"vtv_{k}"] = np.ascontiguousarray(wtv[group_columns(slope)].transpose(1, 0, 2))
            data[f"wtv_{k}"] = wtv.reshape(wtv.shape[0], -1)
    for (k, m), (keys, values) in partial[PAIRS].items():
        data[f"pair_first_{k}_{m}"] = (keys // _PAIR_BASE).astype(np.int64)
        data[f"pair_second_{k}_{m}"] = (keys % _PAIR_BASE).astype(np.int64)
        kind = "count" if values.ndim == 1 else "cross"
        data[f"pair_{kind}_{k}_{m}"] = values
    return data


def restandardise(partial: dict, x_from, x_to, y_from, y_to, slopes=None) -> dict:
    """Statistics computed on one standardisation (``x_from``, ``y_from``: ``Standardizer``s),
    re-expressed exactly on another. Standardising is affine, so the design of the new one is
    ``w_to = A w_from`` with ``A = [[1, 0], [d, diag(r)]]``, ``r = s_from / s_to``,
    ``d = (m_from - m_to) / s_to``, and the target ``a y + c``; every statistic follows
    (``W'1`` is ``W'W``'s first column, ``sum y`` is ``W'y``'s first entry). A factor with
    slopes (``slopes[k]`` its slope features) has the group design ``v = w[cols]``, so
    ``v_to = B v_from`` with ``B = A[cols][:, cols]`` (a row of ``A`` has entries only in
    column 0 and its own): ``W'V -> A W'V B'``, ``V'y -> B (a V'y + c V'1)``, and a pair's
    ``sum v_k v_m' -> B_k (...) B_m'``. Close standardisations (a first batch's and all
    batches') keep it well conditioned."""
    ratio = np.atleast_1d(x_from.scale / x_to.scale)
    shift = np.atleast_1d((x_from.mean - x_to.mean) / x_to.scale)
    change = np.eye(len(ratio) + 1)
    change[1:, 0] = shift
    change[1:, 1:] = np.diag(ratio)
    a = float(y_from.scale / y_to.scale)
    c = float((y_from.mean - y_to.mean) / y_to.scale)
    wtw, wty, n_obs = partial["wtw"], partial["wty"], partial["n_obs"]
    out = dict(partial)
    out["wtw"] = change @ wtw @ change.T
    out["wty"] = change @ (a * wty + c * wtw[:, 0])
    out["yty"] = np.asarray(a * a * partial["yty"] + 2.0 * a * c * wty[0] + c * c * n_obs)
    for name in partial:
        if name.startswith("ysum_"):
            k = name.removeprefix("ysum_")
            wtz = partial[f"wtz_{k}"]
            out[name] = a * partial[name] + c * wtz[0]
            out[f"wtz_{k}"] = change @ wtz
    slopes = slopes or []
    group_changes = [change[np.ix_(group_columns(s), group_columns(s))] for s in slopes]
    for k, slope in enumerate(slopes):
        if slope:
            wtv, group_change = partial[f"wtv_{k}"], group_changes[k]
            scores = a * partial[f"vty_{k}"] + c * wtv[0]  # (G, q)
            out[f"vty_{k}"] = scores @ group_change.T
            out[f"wtv_{k}"] = np.einsum("ij,jgq,rq->igr", change, wtv, group_change)
    out[PAIRS] = {
        (k, m): _restandardised_pair(keys, values, group_changes, k, m)
        for (k, m), (keys, values) in partial[PAIRS].items()
    }
    return out


def _restandardised_pair(keys, values, group_changes, k: int, m: int):
    """A pair's statistics on the new standardisation: counts do not change; cross-products
    of group designs do (``B_k cross B_m'``)."""
    if values.ndim == 1:
        return keys, values
    return keys, np.einsum("ij,pjl,rl->pir", group_changes[k], values, group_changes[m])


def regroup(partial: dict, orders: list[np.ndarray]) -> dict:
    """Statistics with each factor's groups put in a new order (``orders[k][i]``: the old
    index of new group i), pairs relabelled to match."""
    out = dict(partial)
    for k, order in enumerate(orders):
        if f"ysum_{k}" in partial:
            out[f"ysum_{k}"] = partial[f"ysum_{k}"][order]
            out[f"wtz_{k}"] = partial[f"wtz_{k}"][:, order]
        else:  # a factor with slopes
            out[f"vty_{k}"] = partial[f"vty_{k}"][order]
            out[f"wtv_{k}"] = partial[f"wtv_{k}"][:, order]
    new_index = [np.argsort(order) for order in orders]
    out[PAIRS] = {}
    for (k, m), (keys, values) in partial[PAIRS].items():
        first = new_index[k][keys // _PAIR_BASE]
        second = new_index[m][keys % _PAIR_BASE]
        relabelled = first * _PAIR_BASE + second
        sort = np.argsort(relabelled)
        out[PAIRS][(k, m)] = relabelled[sort], values[sort]
    return out


def gaussian_re_statistics(features, target, codes, n_groups, prior_scale, slopes=None):
    """Sufficient statistics of the Gaussian mixed model from standardised ``features`` and
    ``target`` and group ``codes`` (see :func:`gaussian_re_statistics_chunked`)."""
    return gaussian_re_statistics_chunked(
        [(features, target)], codes, n_groups, prior_scale, slopes
    )


def gaussian_re_statistics_chunked(
    chunks,
    codes: list[np.ndarray],
    n_groups: list[int],
    prior_scale: float,
    slopes: list[list[int]] | None = None,
) -> dict[str, np.ndarray]:
    """Sufficient statistics of the Gaussian mixed model.

    ``chunks`` yields ``(features, target)`` row blocks, or ``(features, target, weights)``
    with the rows' weights (None for weight 1), already standardised, in row order (one block,
    or many to bound memory: only one block's design matrix exists at a time); ``codes[k]``
    holds values in ``0 .. n_groups[k]-1`` for every row. ``slopes[k]`` lists the feature
    columns whose coefficients vary by factor k (empty: a random intercept only). See
    ``statistics.py`` for the statistics and how pieces merge.
    """
    slopes = [list(s) for s in slopes] if slopes is not None else [[] for _ in codes]
    total, start = None, 0
    for features, target, *weights in chunks:
        rows = slice(start, start + len(target))
        part = partial_statistics(
            features, target, [c[rows] for c in codes], n_groups, slopes, *weights
        )
        total = merge_statistics(total, part)
        start += len(target)
    return finish_statistics(total, prior_scale, slopes)


def factor_sizes(data: dict) -> list[int]:
    """Columns of each grouping factor's group design: 1 for a random intercept, 1 + the
    number of slopes for a factor with correlated slopes (works on statistics or on
    starting values, which name their blocks the same way)."""
    sizes, k = [], 0
    while True:
        if f"ysum_{k}" in data:
            sizes.append(1)
        elif f"vty_{k}" in data:
            sizes.append(int(data[f"vty_{k}"].shape[1]))
        else:
            return sizes
        k += 1


def count_prefixed(data: dict, prefix: str) -> int:
    """How many arrays are named ``prefix<i>`` (grouping factors, hidden layers)."""
    return sum(1 for name in data if name.startswith(prefix))
