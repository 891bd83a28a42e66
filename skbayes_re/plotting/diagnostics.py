"""Diagnostic plots: the ELBO trace, posterior intervals, residuals, and regression lines
drawn from prior vs posterior."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils import check_consistent_length
from sklearn.utils.validation import check_is_fitted

from .._validation import seed_from_random_state, validate_target
from ._common import (
    GLOBAL_COLOR,
    POSTERIOR_COLOR,
    PRIOR_COLOR,
    check_fitted_model,
    feature_index,
    finish,
    get_ax,
)

__all__ = ["plot_loss", "plot_posterior", "plot_prior_posterior_fit", "plot_residuals"]


# --------------------------------------------------------------------------- loss
def plot_loss(estimator, ax=None):
    """The optimisation trace: negative ELBO against iteration.

    The y axis is logarithmic when every loss is positive and symmetric-logarithmic otherwise.
    A model whose posterior was computed without ADVI (the exact route of
    ``method="auto"``, a fit from few rows, a constant target) has no trace: a
    ``ValueError``.

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
    if loss.size == 0:
        raise ValueError(
            f"{type(estimator).__name__} computed its posterior without ADVI, so there "
            "is no loss curve to plot; fit with method='advi' to see ADVI's."
        )
    created = ax is None
    ax = get_ax(ax)
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
    return finish(ax, created)


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
        sd = np.asarray(draws["group_sd"][k], dtype=float)
        if sd.ndim == 1:
            named[f"group_sd_{name}"] = sd
            continue
        for j, term in enumerate(estimator._group_terms(k)):  # intercept and slopes
            named[f"group_sd_{name}[{term}]"] = sd[:, j]
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
        arrays), ``"sigma"`` (noise sd) and ``"group_sd_<column>"`` for each grouping column
        (``"group_sd_<column>[<term>]"`` per term of a column with random slopes).
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
    check_fitted_model(estimator)
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
    ax = get_ax(ax, figsize=(7.0, max(3.0, 1.4 + 0.45 * len(chosen))))
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
    return finish(ax, created)


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
    ax = get_ax(ax)
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
    ax.axhline(0.0, color=GLOBAL_COLOR, linestyle="--", linewidth=1.0)
    ax.set_xlabel("predicted (posterior predictive mean)")
    ax.set_ylabel("residual (observed - predicted)")
    ax.set_title("Residuals vs predicted")
    ax.legend(loc="best", fontsize=8)
    return finish(ax, created)


# --------------------------------------------------------------------------- prior vs posterior
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
    check_fitted_model(estimator)
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
    j, name = feature_index(estimator, feature, n_fixed)
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
    ax = get_ax(ax)
    ax.scatter(x_values, target, s=8, alpha=0.35, color="#525252", label="data", zorder=1)
    for i, line in enumerate(prior_lines):
        ax.plot(
            grid,
            line,
            color=PRIOR_COLOR,
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
            color=POSTERIOR_COLOR,
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
    return finish(ax, created)
