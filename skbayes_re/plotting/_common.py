"""Helpers shared by the plotting modules: axes handling, fitted-model checks, group and
feature look-ups, and the colours of the seed's figures."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils.validation import check_is_fitted

TERCILE_LABELS = ("small", "medium", "large")
TERCILE_COLORS = {"small": "#377eb8", "medium": "#4daf4a", "large": "#ff7f00"}
GLOBAL_COLOR = "#A60628"
PRIOR_COLOR = "#7f7f7f"
POSTERIOR_COLOR = "#e41a1c"


# --------------------------------------------------------------------------- helpers
def get_ax(ax, figsize=(8.0, 5.0)):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def finish(ax, created: bool):
    """Tidy the layout of a figure this module created (a caller's figure is left alone)."""
    if created:
        ax.figure.tight_layout()
    return ax


def check_fitted_model(estimator):
    """NotFittedError when unfitted; ValueError when it is not a skbayes_re estimator."""
    check_is_fitted(estimator)
    if not hasattr(estimator, "_draws") or not hasattr(estimator, "_group_names"):
        raise ValueError(
            f"{type(estimator).__name__} is not a fitted skbayes_re estimator; these plots read "
            "the posterior draws that skbayes_re estimators store."
        )


def intercept_of(estimator) -> float:
    value = getattr(estimator, "intercept_", None)
    if value is None:
        value = np.mean(estimator._draws["intercept"])
    return float(value)


def fixed_part(estimator, features: np.ndarray) -> np.ndarray:
    """Posterior mean of the population-level mean minus the intercept, per row."""
    coef = getattr(estimator, "coef_", None)
    if coef is not None:
        return features @ np.asarray(coef, dtype=float)
    draws = estimator._mean_function(features) - estimator._draws["intercept"][None, :]
    return draws.mean(axis=1)


def resolve_group(estimator, group) -> int:
    names = list(estimator._group_names)
    if not names:
        raise ValueError(
            f"This {type(estimator).__name__} was fitted without a grouping column, so it has "
            "no random intercepts to compare; fit it with groups=[...] (or category columns)."
        )
    if group is None:
        return 0
    for k, name in enumerate(names):
        if same_name(name, group):
            return k
    raise ValueError(
        f"group={group!r} is not a grouping column of this estimator; its grouping columns "
        f"are {names!r}."
    )


def same_name(name, group) -> bool:
    if isinstance(group, (bool, np.bool_)):
        return False
    if isinstance(name, str) or isinstance(group, str):
        return str(name) == str(group)
    return name == group


def size_terciles(n: np.ndarray) -> np.ndarray:
    """'small' / 'medium' / 'large' by rank of cluster size (ties broken by position)."""
    order = np.argsort(n, kind="stable")
    rank = np.empty(len(n), dtype=np.int64)
    rank[order] = np.arange(len(n))
    bins = (3 * rank) // max(len(n), 1)
    return np.asarray(TERCILE_LABELS, dtype=object)[bins]


def feature_index(estimator, feature, n_fixed: int) -> tuple[int, str]:
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
