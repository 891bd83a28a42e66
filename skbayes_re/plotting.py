"""Diagnostic plots of fitted skbayes_re estimators, drawn with matplotlib.

Every plot takes a fitted estimator (plots never fit a model), draws on ``ax`` (a new figure
when ``ax=None``) and returns the ``matplotlib.axes.Axes``. matplotlib is imported only when a
plot is drawn, and nothing here selects a backend or shows a window, so the functions work the
same in scripts, notebooks and on headless machines.

The numbers behind the shrinkage figure come from :func:`shrinkage_table`, a plain DataFrame
computed from one fitted model: the partial-pooling intercept of each cluster is the fitted
random-effects posterior mean, and its no-pooling counterpart is the closed-form within-cluster
intercept with the slopes held at their fitted values (the seed refitted one model per cluster
instead).
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from sklearn.utils import check_consistent_length
from sklearn.utils.validation import check_is_fitted

from ._validation import seed_from_random_state, validate_target

__all__ = [
    "plot_loss",
    "plot_posterior",
    "plot_prior_posterior_fit",
    "plot_residuals",
    "plot_shrinkage",
    "shrinkage_table",
]

TERCILE_LABELS = ("small", "medium", "large")
TERCILE_COLORS = {"small": "#377eb8", "medium": "#4daf4a", "large": "#ff7f00"}
_GLOBAL_COLOR = "#A60628"
_PRIOR_COLOR = "#7f7f7f"
_POSTERIOR_COLOR = "#e41a1c"


# --------------------------------------------------------------------------- helpers
def _get_ax(ax, figsize=(8.0, 5.0)):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def _finish(ax, created: bool):
    """Tidy the layout of a figure this module created (a caller's figure is left alone)."""
    if created:
        ax.figure.tight_layout()
    return ax


def _check_fitted_model(estimator):
    """NotFittedError when unfitted; ValueError when it is not a skbayes_re estimator."""
    check_is_fitted(estimator)
    if not hasattr(estimator, "_draws") or not hasattr(estimator, "_group_names"):
        raise ValueError(
            f"{type(estimator).__name__} is not a fitted skbayes_re estimator; these plots read "
            "the posterior draws that skbayes_re estimators store."
        )


def _intercept(estimator) -> float:
    value = getattr(estimator, "intercept_", None)
    if value is None:
        value = np.mean(estimator._draws["intercept"])
    return float(value)


def _fixed_part(estimator, features: np.ndarray) -> np.ndarray:
    """Posterior mean of the population-level mean minus the intercept, per row."""
    coef = getattr(estimator, "coef_", None)
    if coef is not None:
        return features @ np.asarray(coef, dtype=float)
    draws = estimator._mean_function(features) - estimator._draws["intercept"][None, :]
    return draws.mean(axis=1)


def _resolve_group(estimator, group) -> int:
    names = list(estimator._group_names)
    if not names:
        raise ValueError(
            f"This {type(estimator).__name__} was fitted without a grouping column, so it has "
            "no random intercepts to compare; fit it with groups=[...] (or category columns)."
        )
    if group is None:
        return 0
    for k, name in enumerate(names):
        if _same_name(name, group):
            return k
    raise ValueError(
        f"group={group!r} is not a grouping column of this estimator; its grouping columns "
        f"are {names!r}."
    )


def _same_name(name, group) -> bool:
    if isinstance(group, (bool, np.bool_)):
        return False
    if isinstance(name, str) or isinstance(group, str):
        return str(name) == str(group)
    return name == group


def _size_terciles(n: np.ndarray) -> np.ndarray:
    """'small' / 'medium' / 'large' by rank of cluster size (ties broken by position)."""
    order = np.argsort(n, kind="stable")
    rank = np.empty(len(n), dtype=np.int64)
    rank[order] = np.arange(len(n))
    bins = (3 * rank) // max(len(n), 1)
    return np.asarray(TERCILE_LABELS, dtype=object)[bins]


# --------------------------------------------------------------------------- shrinkage
def shrinkage_table(estimator, X, y, group=None):
    """Per-cluster no-pooling vs partial-pooling intercepts of a fitted random-effects model.

    For each group label seen in ``fit``, the *no-pooling* intercept is the within-cluster
    estimate with the slopes held at their fitted values: the mean, over the cluster's rows of
    ``X``, of ``y`` minus the fixed-effect part (``X_fixed @ coef_``) and minus the fitted
    offsets of any other grouping columns. The *partial-pooling* intercept is the random-effects
    posterior mean ``intercept_ + group_effects_[group][label]``. Both are in the units of
    ``y``. The model is fitted once; nothing is refitted per cluster.

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

    Returns
    -------
    table : pandas.DataFrame
        One row per group label seen in ``fit``, in the estimator's label order, with columns
        ``group`` (label), ``n`` (rows of that label in ``X``), ``no_pooling``,
        ``partial_pooling``, ``global_intercept``, ``size_tercile`` ("small", "medium",
        "large" by rank of ``n``) and ``shrinkage`` =
        ``1 - (partial_pooling - global_intercept) / (no_pooling - global_intercept)``:
        0 keeps the within-cluster estimate, 1 pools it fully into the global intercept
        (NaN when a label has no rows in ``X`` or the denominator is zero). ``table.attrs``
        holds ``global_intercept`` and ``group_column``. Rows with a label unseen in ``fit``
        (or missing) belong to no cluster and are left out.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.
    ValueError
        If the estimator has no grouping column or ``group`` is not one of them.

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
    _check_fitted_model(estimator)
    k = _resolve_group(estimator, group)
    features, codes = estimator._validate_for_predict(X)
    target = validate_target(y)
    check_consistent_length(features, target)

    name = estimator._group_names[k]
    effects = estimator.group_effects_[name]
    n_groups = len(effects)
    intercept = _intercept(estimator)

    # Residual after the fixed part and every *other* grouping column's fitted offsets.
    residual = target - _fixed_part(estimator, features)
    for m, code in enumerate(codes):
        if m == k:
            continue
        other = estimator.group_effects_[estimator._group_names[m]].to_numpy(dtype=float)
        residual = residual - np.where(code >= 0, other[np.maximum(code, 0)], 0.0)

    seen = codes[k] >= 0
    n = np.bincount(codes[k][seen], minlength=n_groups)
    sums = np.bincount(codes[k][seen], weights=residual[seen], minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        no_pooling = np.where(n > 0, sums / np.maximum(n, 1), np.nan)
    partial = intercept + effects.to_numpy(dtype=float)
    denominator = no_pooling - intercept
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (partial - intercept) / denominator
    shrinkage = np.where(np.isfinite(ratio) & (denominator != 0), 1.0 - ratio, np.nan)

    table = pd.DataFrame(
        {
            "group": effects.index.to_numpy(dtype=object),
            "n": n.astype(np.int64),
            "no_pooling": no_pooling,
            "partial_pooling": partial,
            "global_intercept": np.full(n_groups, intercept),
            "size_tercile": pd.Categorical(
                _size_terciles(n), categories=list(TERCILE_LABELS), ordered=True
            ),
            "shrinkage": shrinkage,
        }
    )
    table.attrs["global_intercept"] = intercept
    table.attrs["group_column"] = name
    return table


def plot_shrinkage(estimator, X, y, group=None, ax=None):
    """The shrinkage figure: no-pooling vs partial-pooling intercept of every cluster.

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

    Returns
    -------
    ax : matplotlib.axes.Axes
    """
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    table = shrinkage_table(estimator, X, y, group=group)
    table = table.sort_values("n", kind="stable").reset_index(drop=True)
    created = ax is None
    ax = _get_ax(ax, figsize=(11.0, 6.5))
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
    ax.axhline(global_intercept, color=_GLOBAL_COLOR, linestyle="--", linewidth=1.2, zorder=0)
    ax.set_xlim(-1.0, len(table))

    name = table.attrs["group_column"]
    if len(table) <= 40:
        ax.set_xticks(position)
        ax.set_xticklabels([str(label) for label in table["group"]], rotation=90, fontsize=8)
    else:
        ax.set_xticks([])
    ax.set_xlabel(f"{name} cluster (in order of increasing cluster size)")
    ax.set_ylabel("intercept")
    ax.set_title("Shrinkage of cluster intercepts: within-cluster vs random effects")

    handles = [
        Line2D([], [], marker="o", linestyle="", color="#555555", alpha=0.75, markersize=8),
        Line2D(
            [], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor="#555555"
        ),
        Line2D([], [], color=_GLOBAL_COLOR, linestyle="--"),
    ]
    labels = [
        "within-cluster (no pooling) intercept",
        "random-effects (partial pooling) posterior mean",
        f"global intercept ({global_intercept:.3g})",
    ]
    for tercile in TERCILE_LABELS:
        handles.append(Line2D([], [], marker="s", linestyle="", color=TERCILE_COLORS[tercile]))
        labels.append(f"{tercile} clusters")
    ax.legend(handles, labels, loc="best", fontsize=8, framealpha=0.85)
    return _finish(ax, created)


# --------------------------------------------------------------------------- loss
def plot_loss(estimator, ax=None):
    """The optimisation trace: negative ELBO against iteration.

    The y axis is logarithmic when every loss is positive and symmetric-logarithmic otherwise.

    Parameters
    ----------
    estimator : fitted skbayes_re estimator
        Its ``loss_curve_`` is drawn.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    ax : matplotlib.axes.Axes
    """
    check_is_fitted(estimator, "loss_curve_")
    loss = np.asarray(estimator.loss_curve_, dtype=float)
    created = ax is None
    ax = _get_ax(ax)
    iteration = np.arange(1, loss.size + 1)
    ax.plot(iteration, loss, color="#377eb8", linewidth=1.0, label="negative ELBO")
    finite = loss[np.isfinite(loss)]
    if finite.size and np.all(finite > 0):
        ax.set_yscale("log")
    else:
        spread = np.abs(finite[finite != 0]) if finite.size else np.array([])
        linthresh = float(np.min(spread)) if spread.size else 1.0
        ax.set_yscale("symlog", linthresh=linthresh)
    ax.set_xlabel("iteration")
    ax.set_ylabel("negative ELBO")
    ax.set_title(f"ADVI loss ({loss.size} iterations)")
    return _finish(ax, created)


# --------------------------------------------------------------------------- posterior
def _posterior_summaries(estimator) -> dict[str, np.ndarray]:
    """Named one-dimensional draws: intercept, coefficients by feature, sigma, group sds."""
    draws = estimator._draws
    named: dict[str, np.ndarray] = {}
    if "intercept" in draws:
        named["intercept"] = np.asarray(draws["intercept"], dtype=float)
    coef = draws.get("coef")
    if coef is not None and np.ndim(coef) == 2 and np.shape(coef)[1] > 0:
        names_of = getattr(estimator, "_fixed_feature_names", None)
        names = list(names_of()) if names_of is not None else []
        if len(names) != np.shape(coef)[1]:
            names = [f"x{i}" for i in range(np.shape(coef)[1])]
        for j, feature in enumerate(names):
            named[str(feature)] = np.asarray(coef[:, j], dtype=float)
    named["sigma"] = np.asarray(draws["sigma"], dtype=float)
    for k, name in enumerate(estimator._group_names):
        named[f"group_sd_{name}"] = np.asarray(draws["group_sd"][k], dtype=float)
    return named


def plot_posterior(estimator, var_names=None, ax=None):
    """Posterior intervals of the named parameters (a forest plot).

    Each parameter gets a row with its 90% (thin) and 50% (thick) equal-tailed posterior
    intervals and its posterior mean (dot), computed from the draws the estimator stores.

    Parameters
    ----------
    estimator : fitted skbayes_re estimator
        The model to summarise.
    var_names : str or list of str, default=None
        Which parameters: ``"intercept"``, a fixed-effect feature name (``"x0"``, ... for
        arrays), ``"sigma"`` (noise sd) and ``"group_sd_<column>"`` for each grouping column.
        ``"coef"`` stands for every coefficient and ``"group_sd"`` for every group sd.
        All of them when None.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If a name is not one of the estimator's parameters.
    """
    _check_fitted_model(estimator)
    named = _posterior_summaries(estimator)
    if var_names is None:
        chosen = list(named)
    else:
        if isinstance(var_names, str):
            var_names = [var_names]
        coefficient_names = [
            v for v in named if v not in ("intercept", "sigma") and not v.startswith("group_sd_")
        ]
        chosen = []
        for var in var_names:
            key = str(var)
            if key in named:
                chosen.append(key)
            elif key == "coef":
                chosen.extend(coefficient_names)
            elif key == "group_sd":
                chosen.extend(v for v in named if v.startswith("group_sd_"))
            else:
                raise ValueError(
                    f"Unknown parameter {var!r}; this estimator has {list(named)!r} "
                    "(plus 'coef' and 'group_sd' for all of a kind)."
                )
        if not chosen:
            raise ValueError("var_names selects no parameter to plot.")

    created = ax is None
    ax = _get_ax(ax, figsize=(7.0, max(3.0, 1.4 + 0.45 * len(chosen))))
    rows = np.arange(len(chosen))[::-1].astype(float)
    means = []
    for row, var in zip(rows, chosen, strict=True):
        values = named[var]
        low90, low50, high50, high90 = np.quantile(values, [0.05, 0.25, 0.75, 0.95])
        ax.plot([low90, high90], [row, row], color="#377eb8", linewidth=1.2, solid_capstyle="butt")
        ax.plot([low50, high50], [row, row], color="#377eb8", linewidth=4.0, solid_capstyle="butt")
        means.append(float(np.mean(values)))
    ax.scatter(means, rows, color="white", edgecolors="#08306b", s=30, zorder=3)
    ax.set_yticks(rows)
    ax.set_yticklabels(chosen)
    ax.set_ylim(-0.7, len(chosen) - 0.3)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel("value (original units)")
    ax.set_title("Posterior means with 50% and 90% intervals")
    return _finish(ax, created)


# --------------------------------------------------------------------------- residuals
def plot_residuals(estimator, X, y, ax=None, *, coverage=0.9):
    """Residuals against predictions, with the posterior predictive band.

    Points are ``y - predict(X)`` against ``predict(X)``; the shaded band is the equal-tailed
    predictive interval of ``predict_interval(X, coverage)`` around each prediction, so about
    ``coverage`` of the points should fall inside it when the model is calibrated.

    Parameters
    ----------
    estimator : fitted skbayes_re estimator
        The model to check.
    X : array-like or DataFrame of shape (n_samples, n_features)
        Rows to predict.
    y : array-like of shape (n_samples,)
        Their observed targets.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    coverage : float in (0, 1), default=0.9
        Probability mass of the band.

    Returns
    -------
    ax : matplotlib.axes.Axes
    """
    check_is_fitted(estimator)
    target = validate_target(y)
    predicted = np.asarray(estimator.predict(X), dtype=float)
    check_consistent_length(predicted, target)
    bounds = np.asarray(estimator.predict_interval(X, coverage=coverage), dtype=float)
    residual = target - predicted
    order = np.argsort(predicted, kind="stable")
    low = bounds[order, 0] - predicted[order]
    high = bounds[order, 1] - predicted[order]
    inside = float(np.mean((target >= bounds[:, 0]) & (target <= bounds[:, 1])))

    created = ax is None
    ax = _get_ax(ax)
    ax.fill_between(
        predicted[order],
        low,
        high,
        color="#9ecae1",
        alpha=0.5,
        linewidth=0,
        label=f"{coverage:.0%} predictive band ({inside:.0%} of points inside)",
    )
    ax.scatter(predicted, residual, s=10, alpha=0.5, color="#08519c", label="residual")
    ax.axhline(0.0, color=_GLOBAL_COLOR, linestyle="--", linewidth=1.0)
    ax.set_xlabel("predicted (posterior predictive mean)")
    ax.set_ylabel("residual (observed - predicted)")
    ax.set_title("Residuals vs predicted")
    ax.legend(loc="best", fontsize=8)
    return _finish(ax, created)


# --------------------------------------------------------------------------- prior vs posterior
def _feature_index(estimator, feature, n_fixed: int) -> tuple[int, str]:
    names_of = getattr(estimator, "_fixed_feature_names", None)
    names = list(map(str, names_of())) if names_of is not None else []
    if len(names) != n_fixed:
        names = [f"x{i}" for i in range(n_fixed)]
    if isinstance(feature, str):
        if feature not in names:
            raise ValueError(
                f"feature {feature!r} is not a fixed-effect feature; use one of {names}."
            )
        index = names.index(feature)
    elif isinstance(feature, numbers.Integral) and not isinstance(feature, bool):
        if not -n_fixed <= int(feature) < n_fixed:
            raise ValueError(
                f"feature={feature} is out of range for {n_fixed} fixed-effect feature(s)."
            )
        index = int(feature) % n_fixed
    else:
        raise ValueError(f"feature must be a feature name or an integer position; got {feature!r}.")
    return index, names[index]


def plot_prior_posterior_fit(estimator, X, y, feature=0, n_lines=50, random_state=None, ax=None):
    """Regression lines drawn from the prior and from the posterior, over the data.

    The data are shown as ``y`` against one fixed-effect feature. Each line is the
    population-level mean as that feature varies, the other features held at their training
    means and random effects at zero. Prior lines draw ``alpha, beta ~ Normal(0, prior_scale)``
    on the standardised scale the priors are stated on and map them back to the original units
    through the training means and scales of ``X`` and ``y``; posterior lines use the stored
    posterior draws. The y range is that of the data, so steep prior lines run off the panel,
    which is the point: the data pin the lines down.

    Parameters
    ----------
    estimator : fitted BayesianLinearRegressor or RandomInterceptRegressor
        A model with a linear fixed part.
    X : array-like or DataFrame of shape (n_samples, n_features)
        Rows laid out as in ``fit``.
    y : array-like of shape (n_samples,)
        Their targets.
    feature : int or str, default=0
        The fixed-effect feature on the x axis: a position among the non-grouping columns or
        its name.
    n_lines : int, default=50
        Lines drawn from each of prior and posterior.
    random_state : int, RandomState instance or None, default=None
        Seed of the prior draws and of the choice of posterior draws.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    ax : matplotlib.axes.Axes
    """
    _check_fitted_model(estimator)
    draws = estimator._draws
    coef = draws.get("coef")
    if coef is None or np.ndim(coef) != 2:
        raise ValueError(
            f"{type(estimator).__name__} has no linear coefficients to draw regression lines from."
        )
    n_fixed = np.shape(coef)[1]
    if n_fixed == 0:
        raise ValueError("The estimator has no fixed-effect feature to draw lines against.")
    if not isinstance(n_lines, numbers.Integral) or n_lines < 1:
        raise ValueError(f"n_lines must be a positive integer; got {n_lines!r}.")
    j, name = _feature_index(estimator, feature, n_fixed)
    features, _ = estimator._validate_for_predict(X)
    target = validate_target(y)
    check_consistent_length(features, target)

    rng = np.random.default_rng(seed_from_random_state(random_state))
    x_mean = np.asarray(estimator._x_scaler.mean, dtype=float).reshape(-1)
    x_scale = np.asarray(estimator._x_scaler.scale, dtype=float).reshape(-1)
    y_mean = float(np.asarray(estimator._y_scaler.mean).reshape(-1)[0])
    y_scale = float(np.asarray(estimator._y_scaler.scale).reshape(-1)[0])

    x_values = features[:, j]
    grid = np.linspace(np.min(x_values), np.max(x_values), 100)

    # Prior: standardised-scale alpha, beta_j; other standardised features at 0 (their means).
    scale = float(estimator.prior_scale)
    alpha = rng.normal(0.0, scale, size=n_lines)
    beta = rng.normal(0.0, scale, size=n_lines)
    prior_lines = y_mean + y_scale * (
        alpha[:, None] + beta[:, None] * (grid[None, :] - x_mean[j]) / x_scale[j]
    )

    # Posterior: stored original-scale draws, other features at their training means.
    n_draws = np.shape(coef)[0]
    pick = rng.choice(n_draws, size=min(n_lines, n_draws), replace=False)
    others = np.delete(np.arange(n_fixed), j)
    offset = draws["intercept"][pick] + coef[pick][:, others] @ x_mean[others]
    posterior_lines = offset[:, None] + coef[pick, j][:, None] * grid[None, :]

    created = ax is None
    ax = _get_ax(ax)
    ax.scatter(x_values, target, s=8, alpha=0.35, color="#525252", label="data", zorder=1)
    for i, line in enumerate(prior_lines):
        ax.plot(
            grid,
            line,
            color=_PRIOR_COLOR,
            alpha=0.35,
            linewidth=0.8,
            linestyle="--",
            label="prior draws" if i == 0 else None,
            zorder=2,
        )
    for i, line in enumerate(posterior_lines):
        ax.plot(
            grid,
            line,
            color=_POSTERIOR_COLOR,
            alpha=0.3,
            linewidth=0.8,
            label="posterior draws" if i == 0 else None,
            zorder=3,
        )
    low, high = float(np.min(target)), float(np.max(target))
    pad = 0.1 * (high - low) if high > low else 1.0
    ax.set_ylim(low - pad, high + pad)
    if grid[-1] > grid[0]:
        ax.set_xlim(grid[0], grid[-1])
    ax.set_xlabel(name)
    ax.set_ylabel("y")
    ax.set_title(f"Regression lines from prior vs posterior draws ({name})")
    legend = ax.legend(loc="best", fontsize=8)
    for handle in getattr(legend, "legend_handles", []):
        handle.set_alpha(1.0)
    return _finish(ax, created)
