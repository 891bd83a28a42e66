"""Binary classification with random effects: a logistic mixed model fitted by ADVI."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .linear_model import LinearMixedBase

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
    classes_ : ndarray of shape (2,)
        The two class labels; probabilities are those of ``classes_[1]``.
    coef_ : ndarray of shape (n_features,)
        Posterior mean log-odds coefficients (grouping and offset columns excluded).
    intercept_ : float
        Posterior mean intercept (log-odds).
    group_effects_ : dict
        Grouping column -> posterior mean effects (a Series, or a DataFrame with slopes).
    group_sd_ : dict
        Grouping column -> posterior mean sd of its effects.
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
        return "bernoulli"

    def _group_selection(self):
        return self.groups

    def _slope_selection(self):
        return self.random_slopes if self.random_slopes is not None else {}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the logistic mixed model by ADVI.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Features and grouping columns.
        y : array-like of shape (n_samples,)
            Two class labels (any hashable values). More than two classes is a
            ``ValueError`` (multinomial models are not built yet), and so is one. Binomial
            data: floats in [0, 1], not all 0 or 1, are proportions of successes (``classes_``
            is then ``[0, 1]``); pass each row's number of trials as ``sample_weight``.
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
        if target_type != "binary":
            raise ValueError(
                "Only binary classification is supported. The type of the target is "
                f"{target_type} ({len(self.classes_)} classes); RandomEffectsClassifier fits a "
                "logistic model (multinomial models are not built yet)."
            )
        return super().fit(X, encoded.astype(np.float64), sample_weight)

    def predict_proba(self, X):
        """Posterior predictive class probabilities, shape (n_samples, 2)."""
        chunks = [mixture.mean_std()[0] for _, mixture in self._predictive_chunks(X)]
        positive = np.clip(np.concatenate(chunks), 0.0, 1.0)
        return np.column_stack([1.0 - positive, positive])

    def predict_log_proba(self, X):
        """Logarithm of ``predict_proba``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def decision_function(self, X):
        """Log-odds of ``classes_[1]`` under the posterior predictive probability."""
        probability = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(probability[:, 1]) - np.log(probability[:, 0])

    def predict(self, X):
        """The more probable class of each row."""
        check_is_fitted(self)
        return self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(int)]


def _are_proportions(y: np.ndarray) -> bool:
    """Floats in [0, 1] that are not all 0 or 1: binomial proportions."""
    if not np.issubdtype(y.dtype, np.floating) or not np.all(np.isfinite(y)):
        return False
    return bool(np.all((y >= 0.0) & (y <= 1.0)) and np.any((y > 0.0) & (y < 1.0)))
