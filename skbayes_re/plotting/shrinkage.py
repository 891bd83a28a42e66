"""The seed's shrinkage figure, and the table behind it.

:func:`shrinkage_table` computes the numbers from one fitted model: the partial-pooling
estimate of each cluster is the fitted random-effects posterior mean, and its no-pooling
counterpart is the closed-form within-cluster estimate with the population slopes held at
their fitted values (the seed refitted one model per cluster instead). :func:`plot_shrinkage`
draws them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils import check_consistent_length

from .._validation import validate_target
from ._common import (
    GLOBAL_COLOR,
    TERCILE_COLORS,
    TERCILE_LABELS,
    check_fitted_model,
    finish,
    fixed_part,
    get_ax,
    intercept_of,
    resolve_group,
    size_terciles,
)

__all__ = ["plot_shrinkage", "shrinkage_table"]


# --------------------------------------------------------------------------- shrinkage
def shrinkage_table(estimator, X, y, group=None, term="intercept"):
    """Per-cluster no-pooling vs partial-pooling estimates of a fitted random-effects model.

    For each group label seen in ``fit``, the *no-pooling* intercept is the within-cluster
    estimate with the population slopes held at their fitted values: the mean, over the
    cluster's rows of ``X``, of ``y`` minus the fixed-effect part (``X_fixed @ coef_``) and
    minus the fitted effects of any other grouping columns. The *partial-pooling* intercept is
    the random-effects posterior mean ``intercept_ + group_effects_[group][label]``. Both are
    in the units of ``y``. The model is fitted once; nothing is refitted per cluster.

    For a grouping column with random slopes, the no-pooling estimates are the cluster's own
    least-squares line on ``(1, slope features)`` fitted to that same residual, and ``term``
    picks what the table shows: ``"intercept"`` or a slope feature, whose partial-pooling
    value is ``coef_[feature] + group_effects_[group].loc[label, feature]`` and whose global
    value is ``coef_[feature]``. A cluster with fewer rows than line terms, or whose slope
    features do not vary, has no no-pooling estimate (NaN).

    Parameters
    ----------
    estimator : fitted RandomInterceptRegressor (or another skbayes_re estimator with groups)
        The model whose random intercepts are summarised.
    X : array-like or DataFrame of shape (n_samples, n_features)
        Rows laid out as in ``fit`` (usually the training data).
    y : array-like of shape (n_samples,)
        Targets of those rows.
    group : column name or position, default=None
        Which grouping column to summarise; the first one when None.
    term : str, default="intercept"
        ``"intercept"``, or a slope feature of a grouping column with random slopes.

    Returns
    -------
    table : pandas.DataFrame
        One row per group label seen in ``fit``, in the estimator's label order, with columns
        ``group`` (label), ``n`` (rows of that label in ``X``), ``no_pooling``,
        ``partial_pooling``, ``global_intercept``, ``size_tercile`` ("small", "medium",
        "large" by rank of ``n``) and ``shrinkage`` =
        ``1 - (partial_pooling - global_intercept) / (no_pooling - global_intercept)``:
        0 keeps the within-cluster estimate, 1 pools it fully into the global intercept
        (NaN when a label has no rows in ``X`` or the denominator is zero). The columns keep
        these names for a slope term (``global_intercept`` then holds the population slope).
        ``table.attrs`` holds ``global_intercept``, ``group_column`` and ``term``. Rows with a
        label unseen in ``fit`` (or missing) belong to no cluster and are left out.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.
    ValueError
        If the estimator has no grouping column, ``group`` is not one of them, or ``term`` is
        not one of its terms.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skbayes_re import RandomInterceptRegressor
    >>> from skbayes_re.plotting import shrinkage_table
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(6), [2, 4, 8, 16, 32, 64])
    >>> X = pd.DataFrame({"x": rng.normal(size=g.size), "g": pd.Categorical(g)})
    >>> y = 1.0 + 2.0 * X["x"] + rng.normal(size=6)[g] + rng.normal(size=g.size)
    >>> model = RandomInterceptRegressor(groups=["g"], random_state=0).fit(X, y)
    >>> table = shrinkage_table(model, X, y)
    >>> print(table[["group", "n", "size_tercile"]].to_string(index=False))
    group  n size_tercile
        0  2        small
        1  4        small
        2  8       medium
        3 16       medium
        4 32        large
        5 64        large
    >>> shrinkage = table.groupby("size_tercile", observed=True)["shrinkage"].mean()
    >>> bool(shrinkage["small"] > shrinkage["large"])  # small clusters are pulled in more
    True
    >>> int(table["n"].sum()) == len(X)
    True
    """
    check_fitted_model(estimator)
    k = resolve_group(estimator, group)
    features, codes = estimator._validate_for_predict(X)
    target = validate_target(y)
    check_consistent_length(features, target)
    terms = _terms(estimator, k)
    if term not in terms:
        raise ValueError(
            f"term={term!r} is not a term of grouping column {estimator._group_names[k]!r}; "
            f"its terms are {terms!r}."
        )
    j = terms.index(term)
    name = estimator._group_names[k]
    effects = estimator.group_effects_[name]
    partial = effects.to_numpy(dtype=float).reshape(len(effects), -1)[:, j]
    # Residual after the fixed part and every *other* grouping column's fitted effects.
    residual = target - fixed_part(estimator, features)
    for m, code in enumerate(codes):
        if m != k:
            residual = residual - _fitted_effects(estimator, m, code, features)
    design = _group_design(estimator, k, features)
    n, no_pooling = _within_cluster_lines(design, residual, codes[k], len(effects))
    if j == 0:  # the residual keeps the intercept
        global_value = intercept_of(estimator)
    else:  # the residual has lost the population slope: add it back
        global_value = float(estimator.coef_[estimator._slope_features[k][j - 1]])
        no_pooling[:, j] += global_value
    partial = global_value + partial
    denominator = no_pooling[:, j] - global_value
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (partial - global_value) / denominator
    shrinkage = np.where(np.isfinite(ratio) & (denominator != 0), 1.0 - ratio, np.nan)

    table = pd.DataFrame(
        {
            "group": effects.index.to_numpy(dtype=object),
            "n": n.astype(np.int64),
            "no_pooling": no_pooling[:, j],
            "partial_pooling": partial,
            "global_intercept": np.full(len(effects), global_value),
            "size_tercile": pd.Categorical(
                size_terciles(n), categories=list(TERCILE_LABELS), ordered=True
            ),
            "shrinkage": shrinkage,
        }
    )
    table.attrs.update(global_intercept=global_value, group_column=name, term=term)
    return table


def _terms(estimator, k: int) -> list[str]:
    """The terms of grouping factor k: ``intercept``, then its slope features (if any)."""
    terms_of = getattr(estimator, "_group_terms", None)
    return list(terms_of(k)) if terms_of is not None else ["intercept"]


def _group_design(estimator, k: int, features: np.ndarray) -> np.ndarray:
    """Each row's group design for factor k: ``(1, slope features)``."""
    slopes = getattr(estimator, "_slope_features", None)
    columns = list(slopes[k]) if slopes is not None else []
    return np.column_stack([np.ones(len(features)), features[:, columns]])


def _fitted_effects(estimator, m: int, code: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Each row's posterior-mean effect of factor m (0 for unseen or missing labels)."""
    effects = estimator.group_effects_[estimator._group_names[m]].to_numpy(dtype=float)
    effects = effects.reshape(len(effects), -1)
    rows = np.sum(effects[np.maximum(code, 0)] * _group_design(estimator, m, features), axis=1)
    return np.where(code >= 0, rows, 0.0)


def _within_cluster_lines(design, residual, code, n_groups):
    """Per cluster, its row count and the least-squares coefficients of ``residual`` on
    ``design`` (NaN for a cluster with too few rows or no spread in a slope feature)."""
    seen = code >= 0
    code, design, residual = code[seen], design[seen], residual[seen]
    n = np.bincount(code, minlength=n_groups)
    size = design.shape[1]
    gram = np.zeros((n_groups, size, size))
    moment = np.zeros((n_groups, size))
    for a in range(size):
        moment[:, a] = np.bincount(code, weights=design[:, a] * residual, minlength=n_groups)
        for b in range(size):
            gram[:, a, b] = np.bincount(
                code, weights=design[:, a] * design[:, b], minlength=n_groups
            )
    lines = np.full((n_groups, size), np.nan)
    usable = n >= size
    if size > 1:
        usable[usable] = np.linalg.cond(gram[usable]) < 1e10
    if usable.any():
        lines[usable] = np.linalg.solve(gram[usable], moment[usable][..., None])[..., 0]
    return n, lines


def plot_shrinkage(estimator, X, y, group=None, ax=None, *, term="intercept"):
    """The shrinkage figure: no-pooling vs partial-pooling intercept (or slope) per cluster.

    Clusters run along the x axis in order of increasing size. Each has a filled point at its
    within-cluster (no-pooling) intercept and a hollow point at its random-effects
    (partial-pooling) posterior mean, joined by a line that shows how far the model pulled it
    towards the global intercept (dashed). Colours mark the size terciles; small clusters are
    pulled most. The numbers are those of :func:`shrinkage_table`.

    Parameters
    ----------
    estimator : fitted RandomInterceptRegressor
        The model to inspect (it is not refitted).
    X : array-like or DataFrame of shape (n_samples, n_features)
        Rows laid out as in ``fit``.
    y : array-like of shape (n_samples,)
        Their targets.
    group : column name or position, default=None
        Grouping column to show; the first one when None.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    term : str, default="intercept"
        ``"intercept"``, or a slope feature of a grouping column with random slopes.

    Returns
    -------
    ax : matplotlib.axes.Axes
    """
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    table = shrinkage_table(estimator, X, y, group=group, term=term)
    table = table.sort_values("n", kind="stable").reset_index(drop=True)
    created = ax is None
    ax = get_ax(ax, figsize=(11.0, 6.5))
    position = np.arange(len(table), dtype=float)
    colors = [TERCILE_COLORS[str(t)] for t in table["size_tercile"]]
    no_pool = table["no_pooling"].to_numpy(dtype=float)
    partial = table["partial_pooling"].to_numpy(dtype=float)

    segments = [
        [(x, a), (x, b)]
        for x, a, b in zip(position, no_pool, partial, strict=True)
        if np.isfinite(a) and np.isfinite(b)
    ]
    segment_colors = [
        c for c, a, b in zip(colors, no_pool, partial, strict=True) if np.isfinite(a + b)
    ]
    ax.add_collection(
        LineCollection(segments, colors=segment_colors, linewidths=1.0, alpha=0.6, zorder=1)
    )
    ax.scatter(position, no_pool, c=colors, s=70, alpha=0.75, zorder=2, label="no pooling")
    ax.scatter(
        position,
        partial,
        facecolors="white",
        edgecolors=colors,
        s=45,
        linewidths=1.5,
        zorder=3,
        label="partial pooling",
    )
    global_intercept = table.attrs["global_intercept"]
    ax.axhline(global_intercept, color=GLOBAL_COLOR, linestyle="--", linewidth=1.2, zorder=0)
    ax.set_xlim(-1.0, len(table))

    name = table.attrs["group_column"]
    if len(table) <= 40:
        ax.set_xticks(position)
        ax.set_xticklabels([str(label) for label in table["group"]], rotation=90, fontsize=8)
    else:
        ax.set_xticks([])
    ax.set_xlabel(f"{name} cluster (in order of increasing cluster size)")
    what = "intercept" if term == "intercept" else f"slope of {term}"
    ax.set_ylabel(what)
    plural = "intercepts" if term == "intercept" else f"slopes of {term}"
    ax.set_title(f"Shrinkage of cluster {plural}: within-cluster vs random effects")

    handles = [
        Line2D([], [], marker="o", linestyle="", color="#555555", alpha=0.75, markersize=8),
        Line2D(
            [], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor="#555555"
        ),
        Line2D([], [], color=GLOBAL_COLOR, linestyle="--"),
    ]
    labels = [
        f"within-cluster (no pooling) {what}",
        "random-effects (partial pooling) posterior mean",
        f"global {what} ({global_intercept:.3g})",
    ]
    for tercile in TERCILE_LABELS:
        handles.append(Line2D([], [], marker="s", linestyle="", color=TERCILE_COLORS[tercile]))
        labels.append(f"{tercile} clusters")
    ax.legend(handles, labels, loc="best", fontsize=8, framealpha=0.85)
    return finish(ax, created)
