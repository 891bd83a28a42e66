"""Each group's data and fitted line: the lattice of lme4's sleepstudy figure.

:func:`group_lines_table` computes the lines (posterior mean and credible band of each
group's mean, and the population line) on a grid of one feature; :func:`plot_group_lines`
draws one panel per group from it.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from sklearn.utils import check_consistent_length

from .._validation import validate_target
from ._common import (
    GLOBAL_COLOR,
    POSTERIOR_COLOR,
    check_fitted_model,
    feature_index,
    resolve_group,
)

__all__ = ["group_lines_table", "plot_group_lines"]

_GRID_POINTS = 50


def group_lines_table(estimator, X, y=None, group=None, feature=None, *, labels=None, coverage=0.9):
    """Fitted lines of each group against one feature, with credible bands.

    For each group label, the group's rows are taken from ``X``; the chosen feature runs over
    a grid spanning all rows of ``X``, the other fixed-effect features are held at the group's
    means, and every other grouping column is set to a missing label (population level) when
    ``X`` is a DataFrame (to the group's first row's label otherwise). The line is the
    posterior mean of the group's mean function on that grid, the band its equal-tailed
    ``coverage`` credible interval over posterior draws (parameter uncertainty, no noise),
    and the population line the fixed part alone.

    Parameters
    ----------
    estimator : fitted skbayes_re estimator with a grouping column
        The model to draw (it is not refitted).
    X : DataFrame or array-like of shape (n_samples, n_features)
        Rows laid out as in ``fit`` (usually the training data).
    y : array-like of shape (n_samples,), default=None
        Their targets (only checked for length here; drawn by :func:`plot_group_lines`).
    group : column name or position, default=None
        The grouping column; the first one when None.
    feature : str or int, default=None
        The fixed-effect feature on the x axis (name or position among the non-grouping
        columns); the group's first slope feature when None (the first feature when the
        column has no slopes).
    labels : list, default=None
        Which group labels; those present in ``X``, in the estimator's label order, when None.
    coverage : float in (0, 1), default=0.9
        Mass of the credible band.

    Returns
    -------
    table : pandas.DataFrame
        Columns ``group``, ``x``, ``mean``, ``lower``, ``upper`` and ``population``, one row
        per label and grid point. ``table.attrs`` holds ``feature`` and ``group_column``.
    """
    check_fitted_model(estimator)
    if not isinstance(coverage, numbers.Real) or not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must be a number in (0, 1); got {coverage!r}.")
    k = resolve_group(estimator, group)
    features, codes = estimator._validate_for_predict(X)
    if y is not None:
        check_consistent_length(features, validate_target(y))
    j, name = _line_feature(estimator, k, feature, features.shape[1])
    categories = list(estimator._encoders[k].categories_)
    chosen = _chosen_labels(categories, codes[k], labels)
    grid = np.linspace(features[:, j].min(), features[:, j].max(), _GRID_POINTS)
    tail = (1.0 - coverage) / 2.0
    pieces = []
    for label in chosen:
        rows = np.flatnonzero(codes[k] == categories.index(label))
        grid_X, grid_features = _grid_rows(estimator, X, rows, k, j, grid)
        loc = np.concatenate(
            [mixture.location_draws for _, mixture in estimator._predictive_chunks(grid_X)]
        )
        population = estimator._mean_function(grid_features).mean(axis=1)
        low, high = np.quantile(loc, [tail, 1.0 - tail], axis=1)
        pieces.append(
            pd.DataFrame(
                {
                    "group": [label] * len(grid),
                    "x": grid,
                    "mean": loc.mean(axis=1),
                    "lower": low,
                    "upper": high,
                    "population": population,
                }
            )
        )
    table = pd.concat(pieces, ignore_index=True)
    table.attrs.update(feature=name, group_column=estimator._group_names[k])
    return table


def plot_group_lines(
    estimator, X, y, group=None, feature=None, *, labels=None, coverage=0.9, ncols=6, ax=None
):
    """One panel per group: its data, its fitted line with a credible band, and the
    population line (dashed), as in lme4's sleepstudy lattice.

    The lines are those of :func:`group_lines_table`; with random slopes each group's line
    has its own slope, with random intercepts only the lines are parallel.

    Parameters
    ----------
    estimator : fitted skbayes_re estimator with a grouping column
        The model to draw (it is not refitted).
    X : DataFrame or array-like of shape (n_samples, n_features)
        Rows laid out as in ``fit``.
    y : array-like of shape (n_samples,)
        Their targets.
    group, feature, labels, coverage
        As in :func:`group_lines_table`.
    ncols : int, default=6
        Panels per row of a new figure.
    ax : array of matplotlib Axes, default=None
        One Axes per panel (at least as many as groups shown); a new figure when None.

    Returns
    -------
    axes : ndarray of matplotlib.axes.Axes
        The panels drawn, one per group in label order.
    """
    table = group_lines_table(
        estimator, X, y, group=group, feature=feature, labels=labels, coverage=coverage
    )
    features, codes = estimator._validate_for_predict(X)
    target = validate_target(y)
    k = resolve_group(estimator, group)
    j = _line_feature(estimator, k, feature, features.shape[1])[0]
    categories = list(estimator._encoders[k].categories_)
    labels_shown = list(dict.fromkeys(table["group"]))
    axes = _panels(ax, len(labels_shown), ncols)
    for panel, label in zip(axes, labels_shown, strict=False):
        rows = codes[k] == categories.index(label)
        line = table[table["group"] == label]
        panel.fill_between(line["x"], line["lower"], line["upper"], color="#fcbba1", alpha=0.6)
        panel.plot(line["x"], line["population"], color=GLOBAL_COLOR, linestyle="--", lw=1.0)
        panel.plot(line["x"], line["mean"], color=POSTERIOR_COLOR, lw=1.5)
        panel.scatter(features[rows, j], target[rows], s=10, color="#08519c", zorder=3)
        panel.set_title(str(label), fontsize=9)
        panel.tick_params(labelsize=7)
    figure = axes[0].figure
    if ax is None:
        figure.supxlabel(table.attrs["feature"])
        figure.supylabel(str(getattr(y, "name", None) or "y"))
        figure.suptitle(
            f"Fitted line of each {table.attrs['group_column']} group "
            f"({coverage:.0%} credible band; dashed: population line)"
        )
    return np.asarray(axes[: len(labels_shown)], dtype=object)


def _line_feature(estimator, k: int, feature, n_fixed: int) -> tuple[int, str]:
    if n_fixed == 0:
        raise ValueError("The estimator has no fixed-effect feature to draw lines against.")
    if feature is None:
        slopes = getattr(estimator, "_slope_features", None)
        feature = slopes[k][0] if slopes is not None and slopes[k] else 0
    return feature_index(estimator, feature, n_fixed)


def _chosen_labels(categories: list, code: np.ndarray, labels) -> list:
    if labels is None:
        present = np.unique(code[code >= 0])
        return [categories[c] for c in present]
    missing = [label for label in labels if label not in categories]
    if missing:
        raise ValueError(f"labels {missing!r} were not seen in fit.")
    return list(labels)


def _grid_rows(estimator, X, rows, k: int, j: int, grid):
    """Rows of ``X``'s layout for one group along the grid (see :func:`group_lines_table`);
    also their fixed-feature matrix."""
    fixed = [i for i in range(estimator.n_features_in_) if i not in estimator._group_positions]
    column = fixed[j]
    if isinstance(X, pd.DataFrame):
        block = X.iloc[np.repeat(rows[:1], len(grid))].reset_index(drop=True)
        for position in fixed:
            block.iloc[:, position] = X.iloc[rows, position].astype(float).mean()
        for m, position in enumerate(estimator._group_positions):
            if m != k:
                block.iloc[:, position] = None
        block.iloc[:, column] = grid
    else:
        values = np.asarray(X)
        block = np.repeat(values[rows[:1]], len(grid), axis=0).astype(values.dtype)
        block[:, fixed] = values[rows][:, fixed].astype(float).mean(axis=0)
        block[:, column] = grid
    return block, estimator._validate_for_predict(block)[0]


def _panels(ax, n_panels: int, ncols: int):
    if ax is not None:
        axes = list(np.ravel(ax))
        if len(axes) < n_panels:
            raise ValueError(f"ax holds {len(axes)} Axes; {n_panels} panels are needed.")
        return axes
    import matplotlib.pyplot as plt

    ncols = max(1, min(int(ncols), n_panels))
    nrows = -(-n_panels // ncols)
    figure, grid = plt.subplots(
        nrows, ncols, figsize=(2.2 * ncols, 2.0 * nrows + 0.8), sharex=True, sharey=True
    )
    axes = list(np.ravel(grid))
    for unused in axes[n_panels:]:
        unused.set_visible(False)
    figure.tight_layout(rect=(0.03, 0.03, 1.0, 0.95))
    return axes
