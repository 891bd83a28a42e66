"""Classification with random effects: a logistic mixed model (two classes) or a multinomial
one (three or more), fitted by ADVI."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ._linear_base import LinearMixedBase, per_row_arrays
from ._models.families.categorical import class_probabilities, one_hot
from ._prediction import CHUNK_CELLS, UNSEEN_GROUP_SEED
from ._validation import seed_from_random_state

__all__ = ["RandomEffectsClassifier"]


class RandomEffectsClassifier(ClassifierMixin, LinearMixedBase):
    """Logistic regression with random intercepts and correlated random slopes.

    The model, on internally standardised features, is
    ``P(y = classes_[1]) = sigmoid(alpha + X @ beta + sum_k V_k u_k[g_k])`` with the priors of
    ``RandomEffectsRegressor`` (``alpha, beta ~ Normal(0, s)``, group effects normal with
    HalfNormal scales, LKJ correlations for slopes, ``s = prior_scale``). Every parameter gets
    a variational posterior. ``predict_proba`` is the posterior predictive probability: it
    averages over the posterior draws and, for a group not seen in fit (or a missing label),
    over a new group's effect, so unseen groups get the population's spread.

    With three or more classes the model is multinomial (softmax) with ``classes_[0]`` as the
    reference: ``P(y = c)`` is proportional to ``exp(eta_c)``, ``eta_0 = 0`` and
    ``eta_c = alpha_c + X @ beta_c + sum_k u_kc[g_k]``, each class with its own random
    intercepts per grouping column (independent across classes, each class its own sd).
    Random slopes and an offset are for two classes only.

    Parameters
    ----------
    groups : "from_dtype", list of str, list of int, boolean mask or None, default="from_dtype"
        The grouping columns of ``X``, as for ``RandomEffectsRegressor``.
    random_slopes : dict or None, default=None
        Grouping column -> feature columns whose coefficients vary by it (lme4's
        ``(1 + x | g)``), as for ``RandomEffectsRegressor``.
    offset : str, int or None, default=None
        A column of ``X`` added to the log-odds with coefficient 1, named like ``groups``.
    method : {"advi", "fullrank_advi", "auto"}, default="advi"
        Mean-field or full-rank Gaussian approximation (``"auto"``, which the linear
        estimators compute exactly where they can, is ``"advi"`` here).
    learning_rate : float, default=0.05
        Initial Adam step size.
    max_iter : int, default=10000
        Maximum number of optimisation steps.
    tol : float, default=1e-4
        Convergence tolerance on the windowed negative ELBO, per observation.
    n_posterior_samples : int, default=500
        Posterior draws kept for prediction.
    prior_scale : float, default=2.5
        Scale of the weakly-informative priors on the standardised scale.
    random_state : int, RandomState instance or None, default=None
        Seed of initialisation, optimisation noise and posterior draws.
    verbose : int, default=0
        0 prints nothing; 1 shows a status line.
    missing_features : {"model", "error"}, default="model"
        What a NaN in a feature column means. This estimator does not model missing
        values: with ``"model"`` they are a ``ValueError`` that says so (use
        ``"error"`` and an imputer in a Pipeline, or a Gaussian linear estimator, which
        models them); ``"error"``: a ``ValueError`` naming the column. NaN in a grouping
        column is a missing label either way; inf is always an error.
    batch_size : int or None, default=None
        Rows per minibatch step (every row each step when None, up to 200,000 rows).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels; with two, probabilities and log-odds are those of ``classes_[1]``.
    coef_ : ndarray of shape (n_features,) or (n_classes, n_features)
        Posterior mean log-odds coefficients (grouping and offset columns excluded); with
        three or more classes one row per class, log-odds against ``classes_[0]`` (whose row
        is zero).
    intercept_ : float or ndarray of shape (n_classes,)
        Posterior mean intercept (log-odds), one per class with three or more (the first 0).
    group_effects_ : dict
        Grouping column -> posterior mean effects: a Series, or a DataFrame with slopes (one
        column per term) or with three or more classes (one column per class but the first).
    group_sd_ : dict
        Grouping column -> posterior mean sd of its effects (a Series by term or class where
        there are several).
    loss_curve_ : list of float
        Negative ELBO per iteration.
    n_iter_ : int
        Number of optimisation steps taken.
    n_features_in_ : int
        Number of columns of ``X`` seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the columns of ``X``, when they are all strings.

    See Also
    --------
    RandomEffectsRegressor : The same effects for a continuous or count target.
    sklearn.linear_model.LogisticRegression : No group effects, point estimates.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skbayes_re import RandomEffectsClassifier
    >>> rng = np.random.default_rng(0)
    >>> school = rng.integers(0, 30, size=2000)
    >>> X = pd.DataFrame({"hours": rng.normal(size=2000), "school": pd.Categorical(school)})
    >>> logit = 1.5 * X["hours"] + rng.normal(scale=1.0, size=30)[school]
    >>> y = np.where(rng.random(2000) < 1 / (1 + np.exp(-logit)), "pass", "fail")
    >>> model = RandomEffectsClassifier(random_state=0).fit(X, y)
    >>> model.classes_
    array(['fail', 'pass'], dtype='<U4')
    >>> bool(abs(model.coef_[0] - 1.5) < 0.2)  # the true log-odds slope
    True
    >>> model.predict_proba(X.head(2)).shape
    (2, 2)

    Three classes: the coefficients are log-odds against the first class.

    >>> z = 1.5 * X["hours"].to_numpy()
    >>> u = rng.random(2000)
    >>> grade = np.where(u < 1 / (1 + np.exp(z) + np.exp(2 * z)), "C", "B")
    >>> grade[u > 1 - np.exp(2 * z) / (1 + np.exp(z) + np.exp(2 * z))] = "A"
    >>> model = RandomEffectsClassifier(random_state=0).fit(X, grade)
    >>> model.classes_
    array(['A', 'B', 'C'], dtype='<U1')
    >>> model.coef_.shape, model.predict_proba(X.head(2)).shape
    ((3, 1), (2, 3))
    """

    _parameter_constraints: dict = {
        **{
            name: rule
            for name, rule in LinearMixedBase._parameter_constraints.items()
            if name != "likelihood"
        },
        "groups": [str, "array-like", None],
        "random_slopes": [dict, None],
    }

    def __init__(
        self,
        *,
        groups="from_dtype",
        random_slopes=None,
        offset=None,
        method="advi",
        learning_rate=0.05,
        max_iter=10_000,
        tol=1e-4,
        n_posterior_samples=500,
        prior_scale=2.5,
        random_state=None,
        verbose=0,
        missing_features="model",
        batch_size=None,
    ):
        self.groups = groups
        self.random_slopes = random_slopes
        self.offset = offset
        self.method = method
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.n_posterior_samples = n_posterior_samples
        self.prior_scale = prior_scale
        self.random_state = random_state
        self.verbose = verbose
        self.missing_features = missing_features
        self.batch_size = batch_size

    def _likelihood_name(self) -> str:
        return "categorical" if self._is_multiclass() else "bernoulli"

    def _is_multiclass(self) -> bool:
        return len(getattr(self, "classes_", ())) > 2

    def _group_selection(self):
        return self.groups

    def _slope_selection(self):
        return self.random_slopes if self.random_slopes is not None else {}

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the logistic mixed model by ADVI.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Features and grouping columns.
        y : array-like of shape (n_samples,)
            Class labels (any hashable values): two for the logistic model, three or more
            for the multinomial one; a single class is a ``ValueError``. Binomial data:
            floats in [0, 1], not all 0 or 1, are proportions of successes (``classes_`` is
            then ``[0, 1]``); pass each row's number of trials as ``sample_weight``.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights, as in scikit-learn (2 = the row twice); the trials of proportions.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        if y is None:
            raise ValueError(
                "RandomEffectsClassifier requires y to be passed, but the target y is None."
            )
        y = column_or_1d(y, warn=True)
        if _are_proportions(y):  # binomial data: successes / trials, trials as weights
            self.classes_, encoded = np.array([0, 1]), np.asarray(y, dtype=np.float64)
            return super().fit(X, encoded, sample_weight)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) == 1:
            raise ValueError(
                f"y has one class ({self.classes_[0]!r}): RandomEffectsClassifier needs two."
            )
        target_type = type_of_target(y, input_name="y")
        if target_type not in ("binary", "multiclass"):
            raise ValueError(
                f"RandomEffectsClassifier needs class labels; the type of the target is "
                f"{target_type}."
            )
        if self._is_multiclass():
            self._check_multiclass_options()
        return super().fit(X, encoded.astype(np.float64), sample_weight)

    def _check_multiclass_options(self) -> None:
        """Slopes and an offset are for two classes only: a ``ValueError`` before any work."""
        if self.random_slopes:
            raise ValueError(
                f"random_slopes is for two classes; y has {len(self.classes_)} "
                "(the multinomial model has per-class random intercepts only)."
            )
        if self.offset is not None:
            raise ValueError(
                f"offset is for two classes; y has {len(self.classes_)} (the multinomial "
                "model has no single linear predictor to add it to)."
            )

    def predict_proba(self, X):
        """Posterior predictive class probabilities, shape (n_samples, n_classes)."""
        check_is_fitted(self)
        if self._is_multiclass():
            return np.concatenate(list(self._multiclass_chunks(X)))
        chunks = [mixture.mean_std()[0] for _, mixture in self._predictive_chunks(X)]
        positive = np.clip(np.concatenate(chunks), 0.0, 1.0)
        return np.column_stack([1.0 - positive, positive])

    def predict_log_proba(self, X):
        """Logarithm of ``predict_proba``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def decision_function(self, X):
        """Log-odds under the posterior predictive probabilities: of ``classes_[1]``, shape
        (n_samples,), with two classes; of each class against ``classes_[0]``, shape
        (n_samples, n_classes), with more."""
        probability = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            log_odds = np.log(probability) - np.log(probability[:, :1])
        return log_odds if self._is_multiclass() else log_odds[:, 1]

    def predict(self, X):
        """The most probable class of each row."""
        check_is_fitted(self)
        probability = self.predict_proba(X)
        if not self._is_multiclass():
            return self.classes_[(probability[:, 1] > 0.5).astype(int)]
        return self.classes_[np.argmax(probability, axis=1)]

    def predict_interval(self, X, coverage=0.9):
        """Equal-tailed predictive intervals of the 0/1 outcome (two classes only)."""
        if self._is_multiclass():
            raise ValueError(
                f"predict_interval needs an ordered outcome; these {len(self.classes_)} "
                "classes have none. Use predict_proba (or sample_y for draws)."
            )
        return super().predict_interval(X, coverage=coverage)

    def sample_y(self, X, n_samples=1, random_state=None):
        """Draws from each row's posterior predictive distribution, shape (n_samples_X,
        n_samples): 0/1 outcomes with two classes (1 = ``classes_[1]``), class labels with
        more."""
        if not self._is_multiclass():
            return super().sample_y(X, n_samples=n_samples, random_state=random_state)
        if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}.")
        probability = self.predict_proba(X)
        rng = np.random.default_rng(seed_from_random_state(random_state))
        uniform = rng.random((len(probability), n_samples, 1))
        cumulative = np.cumsum(probability, axis=1)[:, None, :]
        index = np.minimum(np.sum(uniform > cumulative, axis=2), len(self.classes_) - 1)
        return self.classes_[index]

    def _log_predictive_density(self, X, y):
        """Log posterior predictive probability of each row's class (multiclass; see
        ``skbayes_re.metrics.log_predictive_density``)."""
        if not self._is_multiclass():
            return super()._log_predictive_density(X, y)
        y = column_or_1d(y)
        index = np.searchsorted(self.classes_, y)
        known = (index < len(self.classes_)) & (
            self.classes_[np.minimum(index, len(self.classes_) - 1)] == y
        )
        if not np.all(known):
            raise ValueError(f"y has labels not seen in fit: {np.unique(y[~known])[:5]!r}.")
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X)[np.arange(len(y)), index])

    # ------------------------------------------------------------- multiclass
    def _per_row_spec(self, features, target, codes, n_groups, weights, offset) -> dict:
        """Three or more classes: the multinomial model (``_models/multinomial.py``), in
        minibatches as the binary model's."""
        if not self._is_multiclass():
            return super()._per_row_spec(features, target, codes, n_groups, weights, offset)
        from . import _models

        features, shares, codes, _, weights, minibatch = per_row_arrays(
            self, features, one_hot(target, len(self.classes_)), codes, None, weights, merge=True
        )
        seed = seed_from_random_state(self.random_state)
        data = _models.multinomial_data(
            features, shares, codes, n_groups, weights, self.prior_scale
        )
        start = _models.multinomial_start(data, seed)
        data = _models.mark_centred_classes(data, start)
        return {
            "key": _models.multinomial_structure(data),
            "build": _models.build_multinomial,
            "data": data,
            "init": _models.multinomial_init(data, start),
            "exclude_rewrites": _models.MULTINOMIAL_REWRITES_EXCLUDED.get(self.method, ()),
            "complete": _models.multinomial_complete_draws(data),
            "row_data": _models.multinomial_row_data(data) if minibatch else (),
            "rows_shuffled": minibatch,
            "batch_size": (self.batch_size or _models.MINIBATCH_SIZE) if minibatch else None,
        }

    def _store_fit(self, draws: dict, n_seen: list[int]) -> dict:
        if not self._is_multiclass():
            return super()._store_fit(draws, n_seen)
        from . import _models

        kept = _models.multinomial_to_original(draws, self._x_scaler, n_seen)
        n_features = kept["coef"].shape[2]
        self.coef_ = np.vstack([np.zeros((1, n_features)), kept["coef"].mean(axis=0)])
        self.intercept_ = np.concatenate([[0.0], kept["intercept"].mean(axis=0)])
        return kept

    def _group_terms(self, k: int) -> list:
        if self._is_multiclass():  # one effect per class but the reference
            return list(self.classes_[1:])
        return super()._group_terms(k)

    def _posterior_variables(self):
        if not self._is_multiclass():
            return super()._posterior_variables()
        values = {"intercept": self._draws["intercept"], "coef": self._draws["coef"]}
        dims = {"intercept": ["class"], "coef": ["class", "feature"]}
        coords = {"class": list(self.classes_[1:]), "feature": self._fixed_feature_names()}
        return values, dims, coords

    def _multiclass_chunks(self, X):
        """Posterior predictive probabilities of blocks of rows: the softmax of each draw's
        linear predictors averaged over the draws, a new group's effects drawn per draw
        (and class) for labels not seen in fit."""
        features, codes, _ = self._prediction_inputs(X)
        if features.size and np.isnan(features).any():
            self._integrate_missing(features)  # a ValueError: not modelled here
        intercept, coef = self._draws["intercept"], self._draws["coef"]
        n_draws, n_other = intercept.shape
        new_group = np.random.default_rng(UNSEEN_GROUP_SEED).standard_normal((n_draws, n_other))
        chunk = max(1, CHUNK_CELLS // (n_draws * n_other))
        for start in range(0, features.shape[0], chunk):
            rows = slice(start, start + chunk)
            eta = intercept[None] + np.einsum("rp,scp->rsc", features[rows], coef)
            for k, code in enumerate(codes):
                seen = code[rows] >= 0
                effects = self._draws["effects"][k][:, np.where(seen, code[rows], 0)]
                new_effect = self._draws["group_sd"][k] * new_group
                eta += np.where(seen[:, None, None], effects.transpose(1, 0, 2), new_effect)
            yield class_probabilities(eta).mean(axis=1)


def _are_proportions(y: np.ndarray) -> bool:
    """Floats in [0, 1] that are not all 0 or 1: binomial proportions."""
    if not np.issubdtype(y.dtype, np.floating) or not np.all(np.isfinite(y)):
        return False
    return bool(np.all((y >= 0.0) & (y <= 1.0)) and np.any((y > 0.0) & (y < 1.0)))
