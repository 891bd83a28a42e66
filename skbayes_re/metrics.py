"""Proper scores of predictive distributions, and scorers for scikit-learn model selection.

A fitted estimator predicts each row as a distribution (a mixture over its posterior draws),
not a number; these functions score that distribution against the observed target:

* ``crps`` (continuous ranked probability score, in the target's units, lower is better):
  ``E|Y - y| - E|Y - Y'| / 2`` for independent predictive draws ``Y, Y'``. It rewards a
  sharp distribution only where it is also right, and is the mean absolute error for a
  point forecast.
* ``log_predictive_density`` (higher is better): the mean over rows of the log of the
  posterior predictive density at the observed value, exact from the stored draws.
* ``coverage`` and ``interval_width`` of ``predict_interval``'s equal-tailed intervals:
  calibration (the share of rows inside, to compare with the nominal level) and sharpness.

``crps_ensemble``, ``interval_coverage`` and ``mean_interval_width`` compute the same scores
from arrays (draws or bounds from any model). Every score is a (weighted) mean over rows.

CRPS of draws, exactly: for draws sorted as ``x_(1) <= ... <= x_(m)``, the sum over all
pairs ``sum_ij |x_i - x_j|`` equals ``2 sum_i (2i - m - 1) x_(i)``, so a row costs one sort,
O(m log m), instead of the m^2 pairs. Divided by ``m^2`` it gives the CRPS of the draws'
empirical distribution (the draws are the forecast); by ``m (m - 1)`` the fair estimator,
unbiased for the CRPS of the distribution the draws are sampled from. Both agree with the
``scoringrules`` package's energy and fair estimators to rounding (``tests/test_metrics.py``
checks it); the identity is computed here, so scoring needs no dependency beyond NumPy.

Scorers: ``SCORERS`` maps ``"neg_crps"``, ``"log_predictive_density"`` and
``"coverage_error"`` (minus the distance of 90% interval coverage from 0.9) to scorers,
each ``scorer(estimator, X, y, sample_weight=None)`` with higher meaning better, so they go
straight into ``GridSearchCV(scoring=...)``, ``cross_validate`` and ``cross_val_score``.
Importing this module makes the names work as strings too:
``GridSearchCV(model, grid, scoring="neg_crps")``, ``cross_validate(..., scoring=[...])``.
scikit-learn looks a string up in its registry of scorers (``sklearn.metrics.get_scorer``
reads ``sklearn.metrics._scorer._SCORERS``), after checking it against a set of the names
that each validated function and estimator copied from that registry when its module was
imported. So the import adds our scorers to the registry and our names to the sets already
copied (modules imported later copy them with the rest). A name already taken in the
registry is left as it is, with a warning; ``SCORERS[name]`` and this module's
``get_scorer(name)`` always give ours. Scorers are deterministic: ``neg_crps`` draws with
a fixed seed.

Every function also takes a ``Pipeline`` ending in one of the estimators: the rows pass
through the pipeline's transformers first.

Examples
--------
>>> import numpy as np
>>> import pandas as pd
>>> from sklearn.model_selection import GridSearchCV
>>> import skbayes_re.metrics
>>> from skbayes_re import RandomInterceptRegressor
>>> rng = np.random.default_rng(0)
>>> school = rng.integers(0, 20, size=200)
>>> X = pd.DataFrame({"hours": rng.normal(size=200), "school": pd.Categorical(school)})
>>> y = 2.0 * X["hours"] + rng.normal(size=20)[school] + rng.normal(scale=0.5, size=200)
>>> search = GridSearchCV(RandomInterceptRegressor(random_state=0),
...                       {"prior_scale": [0.01, 2.5]}, scoring="neg_crps", cv=3)
>>> search.fit(X, y).best_params_  # priors too tight shrink the effects: worse CRPS
{'prior_scale': 2.5}
>>> round(skbayes_re.metrics.coverage(search.best_estimator_, X, y, level=0.9), 1)
0.9
"""

from __future__ import annotations

import copy
import sys
import warnings

import numpy as np
from sklearn.utils import check_array, check_consistent_length

__all__ = [
    "SCORERS",
    "coverage",
    "crps",
    "crps_ensemble",
    "get_scorer",
    "interval_coverage",
    "interval_width",
    "log_predictive_density",
    "mean_interval_width",
]

_NOMINAL_LEVEL = 0.9  # the coverage_error scorer's interval level
_SCORER_DRAWS = 500  # predictive draws per row of the neg_crps scorer
_SCORER_SEED = 0
_BUILTIN_SCORERS = {"r2", "neg_mean_absolute_error", "accuracy"}  # in every set of names


# ---------------------------------------------------------------------------- arrays
def crps_ensemble(y_true, y_draws, *, fair=False, sample_weight=None):
    """Continuous ranked probability score of predictive draws, averaged over rows.

    Per row, ``mean_i |x_i - y| - sum_ij |x_i - x_j| / (2 m^2)`` for draws ``x_1..x_m``,
    computed exactly from the sorted draws in O(m log m) (see the module docstring).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Observed values.
    y_draws : array-like of shape (n_samples, n_draws)
        Draws from each row's predictive distribution (``sample_y``'s shape).
    fair : bool, default=False
        False scores the draws' empirical distribution itself (the ensemble is the
        forecast). True divides the spread term by ``m (m - 1)`` instead: the fair
        estimator, unbiased for the CRPS of the distribution the draws are sampled from
        (needs two draws or more).
    sample_weight : array-like of shape (n_samples,), default=None
        Row weights of the mean.

    Returns
    -------
    score : float
        Mean CRPS, in the units of ``y``; lower is better, 0 for draws all equal to ``y``.

    Examples
    --------
    >>> from skbayes_re.metrics import crps_ensemble
    >>> crps_ensemble([1.0], [[1.0, 1.0]])  # every draw right: no loss
    0.0
    >>> crps_ensemble([0.0], [[-1.0, 1.0]])  # mean |x - y| = 1, minus half of |x - x'| = 1
    0.5
    >>> crps_ensemble([0.0], [[-1.0, 1.0]], fair=True)
    0.0
    """
    target = _as_target(y_true)
    draws = check_array(y_draws, ensure_min_features=2 if fair else 1, input_name="y_draws")
    check_consistent_length(target, draws)
    return _weighted_mean(_crps_of_draws(target, draws, fair), sample_weight)


def _crps_of_draws(target: np.ndarray, draws: np.ndarray, fair: bool) -> np.ndarray:
    """Per-row CRPS by the sorted-ensemble identity."""
    m = draws.shape[1]
    ranked = np.sort(draws, axis=1)
    rank_weights = 2.0 * np.arange(1, m + 1) - m - 1.0
    half_mean_pair_distance = ranked @ rank_weights / (m * (m - 1) if fair else m * m)
    mean_error = np.mean(np.abs(ranked - target[:, None]), axis=1)
    return mean_error - half_mean_pair_distance


def interval_coverage(y_true, bounds, *, sample_weight=None):
    """Share of rows whose value lies within its interval (bounds included).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Observed values.
    bounds : array-like of shape (n_samples, 2)
        Lower and upper bound of each row (``predict_interval``'s shape).
    sample_weight : array-like of shape (n_samples,), default=None
        Row weights.

    Returns
    -------
    coverage : float
        In [0, 1]; a calibrated 90% interval covers about 0.9.

    Examples
    --------
    >>> from skbayes_re.metrics import interval_coverage
    >>> interval_coverage([0.0, 5.0, 1.0, 2.0], [[-1, 1], [-1, 1], [1, 2], [3, 4]])
    0.5
    """
    target = _as_target(y_true)
    low, high = _as_bounds(bounds, len(target))
    inside = (low <= target) & (target <= high)
    return _weighted_mean(inside.astype(np.float64), sample_weight)


def mean_interval_width(bounds, *, sample_weight=None):
    """Mean width (upper minus lower bound) of the rows' intervals.

    Parameters
    ----------
    bounds : array-like of shape (n_samples, 2)
        Lower and upper bound of each row (``predict_interval``'s shape).
    sample_weight : array-like of shape (n_samples,), default=None
        Row weights.

    Returns
    -------
    width : float
        In the units of ``y``: at equal coverage, narrower is sharper.

    Examples
    --------
    >>> from skbayes_re.metrics import mean_interval_width
    >>> mean_interval_width([[-1.0, 1.0], [0.0, 4.0]])
    3.0
    """
    low, high = _as_bounds(bounds, None)
    return _weighted_mean(high - low, sample_weight)


# ------------------------------------------------------------------------ estimators
def crps(estimator, X, y, *, n_draws=500, random_state=0, sample_weight=None):
    """Mean CRPS of a fitted estimator's predictive distribution, from ``sample_y``.

    The draws are a sample of each row's predictive distribution, so they are scored by
    the fair estimator (``crps_ensemble(..., fair=True)``): unbiased whatever ``n_draws``,
    with a Monte Carlo error that shrinks as ``1 / sqrt(n_draws)``.

    Parameters
    ----------
    estimator : fitted estimator with ``sample_y``, or a ``Pipeline`` ending in one
        A skbayes_re estimator (or e.g. ``GaussianProcessRegressor``).
    X : array-like or DataFrame of shape (n_samples, n_features)
        Rows to score.
    y : array-like of shape (n_samples,)
        Their observed values.
    n_draws : int, default=500
        Predictive draws per row (memory: ``n_samples x n_draws`` floats).
    random_state : int, RandomState instance or None, default=0
        Seed of the draws; fixed by default, so a score is reproducible.
    sample_weight : array-like of shape (n_samples,), default=None
        Row weights.

    Returns
    -------
    score : float
        Mean CRPS in the units of ``y``; lower is better.

    Examples
    --------
    >>> import numpy as np
    >>> from skbayes_re import BayesianLinearRegressor
    >>> from skbayes_re.metrics import crps
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 1))
    >>> y = 1.0 + 2.0 * X[:, 0] + rng.normal(size=200)  # noise sd 1
    >>> model = BayesianLinearRegressor(random_state=0).fit(X, y)
    >>> round(crps(model, X, y), 1)  # N(mean, 1) scores 1 / sqrt(pi) = 0.56 on average
    0.6
    """
    model, X = _final_step(estimator, X)
    draws = model.sample_y(X, n_samples=n_draws, random_state=random_state)
    return crps_ensemble(y, draws, fair=True, sample_weight=sample_weight)


def log_predictive_density(estimator, X, y, *, sample_weight=None):
    """Mean log posterior predictive density of the observed values.

    Each row's density is the mean over the estimator's stored posterior draws of its
    likelihood's density at ``y`` (a Normal one for Gaussian models, a probability for
    counts), computed on the log scale (log-sum-exp), so a value far in a
    tail gives a large negative number rather than ``-inf``. No sampling: the result is
    exact for the stored draws.

    Parameters
    ----------
    estimator : fitted skbayes_re estimator, or a ``Pipeline`` ending in one
    X : array-like or DataFrame of shape (n_samples, n_features)
        Rows to score.
    y : array-like of shape (n_samples,)
        Their observed values.
    sample_weight : array-like of shape (n_samples,), default=None
        Row weights.

    Returns
    -------
    score : float
        Mean log density (natural log, per unit of ``y``); higher is better.

    Examples
    --------
    >>> import numpy as np
    >>> from skbayes_re import BayesianLinearRegressor
    >>> from skbayes_re.metrics import log_predictive_density
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 1))
    >>> y = 1.0 + 2.0 * X[:, 0] + rng.normal(size=200)  # noise sd 1
    >>> model = BayesianLinearRegressor(random_state=0).fit(X, y)
    >>> round(log_predictive_density(model, X, y), 1)  # N(mean, 1): -(1 + log 2 pi) / 2 = -1.42
    -1.4
    """
    model, X = _final_step(estimator, X)
    if not hasattr(model, "_log_predictive_density"):
        raise TypeError(
            f"log_predictive_density needs a skbayes_re estimator; got {type(model).__name__}."
        )
    return _weighted_mean(model._log_predictive_density(X, y), sample_weight)


def coverage(estimator, X, y, *, level=0.9, sample_weight=None):
    """Share of rows inside the estimator's equal-tailed ``level`` predictive interval.

    Parameters
    ----------
    estimator : fitted estimator with ``predict_interval``, or a ``Pipeline`` ending in one
    X : array-like or DataFrame of shape (n_samples, n_features)
        Rows to score.
    y : array-like of shape (n_samples,)
        Their observed values.
    level : float in (0, 1), default=0.9
        Nominal coverage of the intervals.
    sample_weight : array-like of shape (n_samples,), default=None
        Row weights.

    Returns
    -------
    coverage : float
        Calibrated intervals give about ``level``; less means overconfident.

    Examples
    --------
    >>> import numpy as np
    >>> from skbayes_re import BayesianLinearRegressor
    >>> from skbayes_re.metrics import coverage
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 1))
    >>> y = 1.0 + 2.0 * X[:, 0] + rng.normal(size=200)
    >>> model = BayesianLinearRegressor(random_state=0).fit(X, y)
    >>> bool(0.85 <= coverage(model, X, y, level=0.9) <= 0.95)
    True
    """
    model, X = _final_step(estimator, X)
    bounds = model.predict_interval(X, coverage=level)
    return interval_coverage(y, bounds, sample_weight=sample_weight)


def interval_width(estimator, X, y=None, *, level=0.9, sample_weight=None):
    """Mean width of the estimator's equal-tailed ``level`` predictive intervals.

    Parameters
    ----------
    estimator : fitted estimator with ``predict_interval``, or a ``Pipeline`` ending in one
    X : array-like or DataFrame of shape (n_samples, n_features)
        Rows to score.
    y : ignored
        Present so that the function has the scorers' signature.
    level : float in (0, 1), default=0.9
        Nominal coverage of the intervals.
    sample_weight : array-like of shape (n_samples,), default=None
        Row weights.

    Returns
    -------
    width : float
        In the units of ``y``; at equal coverage, narrower is sharper.

    Examples
    --------
    >>> import numpy as np
    >>> from skbayes_re import BayesianLinearRegressor
    >>> from skbayes_re.metrics import interval_width
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 1))
    >>> y = 1.0 + 2.0 * X[:, 0] + rng.normal(size=200)  # noise sd 1
    >>> model = BayesianLinearRegressor(random_state=0).fit(X, y)
    >>> round(interval_width(model, X, y), 1)  # N(mean, 1): 2 x 1.645 = 3.3
    3.4
    """
    model, X = _final_step(estimator, X)
    bounds = model.predict_interval(X, coverage=level)
    return mean_interval_width(bounds, sample_weight=sample_weight)


# --------------------------------------------------------------------------- scorers
class _PredictiveScorer:
    """``scorer(estimator, X, y, sample_weight=None)`` -> a score, higher is better."""

    def __init__(self, name: str, score):
        self.name = name
        self._score = score

    def __call__(self, estimator, X, y_true, sample_weight=None):
        return self._score(estimator, X, y_true, sample_weight=sample_weight)

    def _accept_sample_weight(self) -> bool:  # scikit-learn asks before passing weights
        return True

    def __repr__(self) -> str:
        return f"skbayes_re.metrics.SCORERS[{self.name!r}]"


def _neg_crps(estimator, X, y, sample_weight=None):
    draws = dict(n_draws=_SCORER_DRAWS, random_state=_SCORER_SEED)
    return -crps(estimator, X, y, sample_weight=sample_weight, **draws)


def _coverage_error(estimator, X, y, sample_weight=None):
    observed = coverage(estimator, X, y, level=_NOMINAL_LEVEL, sample_weight=sample_weight)
    return -abs(observed - _NOMINAL_LEVEL)


#: Our scorers by name: ``"neg_crps"`` (minus :func:`crps`), ``"log_predictive_density"``
#: and ``"coverage_error"`` (minus the distance of 90% interval coverage from 0.9). Each is
#: called as ``scorer(estimator, X, y, sample_weight=None)``, higher is better, and can be
#: passed as ``scoring=`` to ``GridSearchCV``, ``cross_validate`` or ``cross_val_score``.
SCORERS = {
    "neg_crps": _PredictiveScorer("neg_crps", _neg_crps),
    "log_predictive_density": _PredictiveScorer("log_predictive_density", log_predictive_density),
    "coverage_error": _PredictiveScorer("coverage_error", _coverage_error),
}


def get_scorer(name):
    """A copy of the scorer called ``name``: one of ``SCORERS``, else scikit-learn's.

    Parameters
    ----------
    name : str
        ``"neg_crps"``, ``"log_predictive_density"``, ``"coverage_error"``, or any name
        ``sklearn.metrics.get_scorer`` knows.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y)``, higher is better.

    Examples
    --------
    >>> from skbayes_re.metrics import get_scorer
    >>> get_scorer("neg_crps")
    skbayes_re.metrics.SCORERS['neg_crps']
    """
    if name in SCORERS:
        return copy.deepcopy(SCORERS[name])
    from sklearn.metrics import get_scorer as get_sklearn_scorer

    return get_sklearn_scorer(name)


def _register_scorers() -> None:
    """Add ``SCORERS`` to scikit-learn's registry of scorer names, overwriting nothing,
    and to the sets of names its imported modules check ``scoring`` against."""
    try:
        from sklearn.metrics._scorer import _SCORERS as registry
    except ImportError:  # the registry moved: the names then work through this module
        return
    for name, scorer in SCORERS.items():
        held = registry.setdefault(name, scorer)
        if type(held).__module__ != __name__:  # a name taken by another scorer
            warnings.warn(
                f"scikit-learn already has a scorer named {name!r}; scoring={name!r} keeps "
                f"meaning that one. Pass skbayes_re.metrics.SCORERS[{name!r}] for ours.",
                UserWarning,
                stacklevel=2,
            )
    ours = {name for name in SCORERS if type(registry[name]).__module__ == __name__}
    for names in _scorer_name_sets():
        names.update(ours)


def _scorer_name_sets():
    """The sets of scorer names that scikit-learn's parameter validation holds, in the
    modules imported so far: each was copied from the registry when its module was
    imported (modules imported later copy our names with the rest)."""
    from sklearn.utils._param_validation import StrOptions

    modules = [module for name, module in sys.modules.items() if name.startswith("sklearn.")]
    for owner in [owner for module in modules for owner in vars(module).values()]:
        for constraint in _scoring_constraints(owner):
            if isinstance(constraint, StrOptions) and isinstance(constraint.options, set):
                if _BUILTIN_SCORERS <= constraint.options:
                    yield constraint.options


def _scoring_constraints(owner) -> list:
    """What a validated function or estimator class accepts as ``scoring``."""
    is_class = isinstance(owner, type)
    attribute = "_parameter_constraints" if is_class else "_skl_parameter_constraints"
    constraints = getattr(owner, attribute, None)
    return constraints.get("scoring", []) if isinstance(constraints, dict) else []


_register_scorers()


# --------------------------------------------------------------------------- helpers
def _final_step(estimator, X):
    """The estimator that predicts and the rows it sees: a ``Pipeline``'s last step, with
    ``X`` passed through the steps before it."""
    if not hasattr(estimator, "steps"):
        return estimator, X
    if len(estimator.steps) > 1:
        X = estimator[:-1].transform(X)
    return estimator.steps[-1][1], X


def _as_target(y_true) -> np.ndarray:
    return check_array(y_true, ensure_2d=False, dtype=np.float64, input_name="y_true").ravel()


def _as_bounds(bounds, n_rows) -> tuple[np.ndarray, np.ndarray]:
    bounds = check_array(bounds, dtype=np.float64, input_name="bounds")
    if bounds.shape[1] != 2 or (n_rows is not None and bounds.shape[0] != n_rows):
        expected = f"({n_rows}, 2)" if n_rows is not None else "(n_samples, 2)"
        raise ValueError(f"bounds must have shape {expected}; got {bounds.shape}.")
    return bounds[:, 0], bounds[:, 1]


def _weighted_mean(values: np.ndarray, sample_weight) -> float:
    if sample_weight is not None:
        check_consistent_length(values, sample_weight)
    return float(np.average(values, weights=sample_weight))
