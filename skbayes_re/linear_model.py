"""Bayesian linear regression with learned noise, fitted by ADVI, and the base of the linear
mixed models: Gaussian ones on sufficient statistics, other likelihood families per row."""

from __future__ import annotations

import functools
import numbers
import warnings

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils import check_consistent_length
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BayesianMixedBase
from ._missing_features import MissingFeaturesMixin
from ._predictive import mean_over_draws
from ._validation import (
    BLOCK_ROWS,
    is_dask_collection,
    keep_weighted_rows,
    seed_from_random_state,
    split_features_and_groups,
    validate_sample_weight,
    validate_target,
)

__all__ = ["BayesianLinearRegressor"]

_GAUSSIAN_ONLY = (
    "{} needs likelihood='gaussian' without an offset (its rows are reduced to the Gaussian "
    "model's sufficient statistics); got likelihood={!r}, offset={!r}. Use fit on data in "
    "memory."
)


class LinearMixedBase(MissingFeaturesMixin, BayesianMixedBase):
    """Linear mean function plus random effects (none by default), any likelihood family."""

    _parameter_constraints: dict = {
        **BayesianMixedBase._parameter_constraints,
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "likelihood": [StrOptions({"gaussian", "student_t", "poisson", "negative_binomial"})],
        "offset": [str, Interval(numbers.Integral, None, None, closed="neither"), None],
    }

    def _likelihood_name(self) -> str:
        return self.likelihood

    def _offset_selection(self):
        return self.offset

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if self._likelihood_name() in ("poisson", "negative_binomial"):
            tags.target_tags.positive_only = True
        tags.input_tags.allow_nan = self._models_missing_features()
        return tags

    def _inference_spec(self, features, target, codes, n_groups, weights, offset) -> dict:
        from . import _models

        self._student_t_groups()  # refuses what Student-t groups do not cover, before work
        if self._likelihood_name() != "gaussian":
            return self._per_row_spec(features, target, codes, n_groups, weights, offset)
        if np.isnan(features).any():
            return self._missing_spec(features, target, codes, n_groups, weights)
        data = _models.gaussian_re_statistics_chunked(
            self._row_chunks(features, target, weights),
            codes,
            n_groups,
            self.prior_scale,
            self._slope_features,
        )
        return self._spec_from_statistics(data)

    def _per_row_spec(self, features, target, codes, n_groups, weights, offset) -> dict:
        """A likelihood without sufficient statistics: the per-row model (``_models/glmm.py``),
        in minibatches beyond ``MINIBATCH_ROWS`` rows (of ``batch_size`` rows when given)."""
        from . import _models

        family = self._likelihood_name()
        if offset is not None:
            offset = offset / float(self._y_scaler.scale)
        data = _models.glmm_data(
            self._x_scaler.transform(features),
            target,
            codes,
            n_groups,
            offset,
            weights,
            self.prior_scale,
            self._slope_features,
            _models.family_named(family),
        )
        start = _models.glmm_start(data, family, self._slope_features)
        data = _models.mark_centred_glmm(data, start)
        n_rows = len(target)
        minibatch = n_rows > _models.MINIBATCH_ROWS or (self.batch_size or n_rows) < n_rows
        return {
            "key": _models.glmm_structure(data, family),
            "build": functools.partial(_models.build_glmm, family_name=family),
            "data": data,
            "init": _models.glmm_init(data, start),
            "move": _models.group_scale_move(self.prior_scale),
            "complete": _models.glmm_complete_draws(data),
            "row_data": _models.glmm_row_data(data) if minibatch else (),
            "batch_size": (self.batch_size or _models.MINIBATCH_SIZE) if minibatch else None,
        }

    def _student_t_groups(self) -> bool:
        """Whether the group effects are Student-t (``group_distribution``); a
        ``ValueError`` for what they do not cover yet."""
        if getattr(self, "group_distribution", "normal") == "normal":
            return False
        if self._likelihood_name() != "gaussian":
            raise ValueError(
                "group_distribution='student_t' needs likelihood='gaussian'; got "
                f"likelihood={self._likelihood_name()!r}."
            )
        if any(self._slope_features or []):
            raise ValueError(
                "group_distribution='student_t' gives random intercepts Student-t effects; "
                "it does not cover random_slopes yet (their effects stay jointly normal)."
            )
        return True

    def _gaussian_only(self, route: str) -> None:
        """Sufficient statistics carry partial_fit and Dask input: Gaussian models only."""
        if self._likelihood_name() != "gaussian" or self.offset is not None:
            raise ValueError(_GAUSSIAN_ONLY.format(route, self._likelihood_name(), self.offset))
        self._family_name, self._offset_position = "gaussian", None

    def _has_statistics(self) -> bool:
        """``partial_fit`` exists for Gaussian models without an offset (an
        ``AttributeError`` that says so for the others)."""
        if self._likelihood_name() != "gaussian" or self.offset is not None:
            raise AttributeError(
                _GAUSSIAN_ONLY.format("partial_fit", self._likelihood_name(), self.offset)
            )
        return True

    @available_if(_has_statistics)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Add a batch of rows and refit the posterior on every row seen so far.

        Statistics accumulate over calls (their size depends on the features and groups, not
        on the rows); each call refits on all batches so far and gives the fit that ``fit``
        would give on their concatenation: the standardisation is exact (statistics are kept
        on the first batch's scale and mapped, without loss, to the mean and scale of all
        rows seen), and groups first seen in a later batch are added. Where ``fit`` would
        compute the posterior exactly (``method="auto"``), so does each call, from the
        statistics of all rows seen; otherwise the optimisation starts, as ``fit``'s does,
        from the mixed-model solution of all rows seen, which is closer to the new posterior
        than the last one. ``fit`` discards the batches.
        Random slopes are supported: their per-group statistics map to a new
        standardisation exactly too.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            A batch, laid out as the first one.
        y : array-like of shape (n_samples,)
            Its targets. When every row seen so far has the same target, the fit is that
            constant, made without optimisation (see ``fit``).
        sample_weight : array-like of shape (n_samples,), default=None
            The batch's row weights, with ``fit``'s meaning (2 = the row twice, 0 = absent).

        Returns
        -------
        self : object
            The estimator, fitted to all batches so far.
        """
        from ._streaming import StatisticsStream

        if any(map(is_dask_collection, (X, y, sample_weight))):
            raise TypeError("partial_fit takes in-memory batches; fit takes Dask collections.")
        self._gaussian_only("partial_fit")  # for calls through the class
        first = not hasattr(self, "_stream")
        groups = self._group_selection() if first else self._group_positions
        features, labels, positions = split_features_and_groups(self, X, groups, reset=first)
        target = validate_target(y)
        check_consistent_length(features, target)
        weights = validate_sample_weight(sample_weight, target)
        features, target, labels, weights = keep_weighted_rows(weights, features, target, labels)
        if np.isnan(features).any():
            raise ValueError(
                "X has missing feature values (NaN); partial_fit accumulates sufficient "
                "statistics, which cannot hold them. Use fit (missing_features='model'), or "
                "pass missing_features='error' with an imputer in a Pipeline."
            )
        if first:
            self._remember_groups(X, positions)
            self._stream = StatisticsStream(
                features, target, labels, self._group_names, weights, self._slope_features
            )
        self._stream.add(features, target, labels, weights)
        data, self._x_scaler, self._y_scaler, self._encoders, n_seen, n_obs = self._stream.finished(
            self.prior_scale
        )
        self._finish_fit(self._spec_from_statistics(data), n_obs, n_seen)
        return self

    def _fit_from_dask(self, X, y, sample_weight):
        """Fit from a Dask DataFrame or array: statistics computed on the workers."""
        self._gaussian_only("Dask input")
        from ._distributed import dask_fit_statistics
        from ._models.statistics import finish_statistics

        fitted = dask_fit_statistics(
            self, X, y, sample_weight, self._group_selection(), self._slope_selection()
        )
        self._x_scaler, self._y_scaler = fitted.x_scaler, fitted.y_scaler
        self._group_positions, self._group_names = fitted.positions, fitted.names
        self._slope_features, self._encoders = fitted.slopes, fitted.encoders
        data = finish_statistics(fitted.statistics, self.prior_scale, fitted.slopes)
        self._finish_fit(self._spec_from_statistics(data), fitted.n_obs, fitted.n_seen)

    def _spec_from_statistics(self, data: dict) -> dict:
        """The spec of a fit on sufficient statistics, its last step also keeping the
        complete rows' feature model (for predicting rows with missing values)."""
        return self._keeping_feature_model(self._statistics_spec(data), data)

    def _statistics_spec(self, data: dict) -> dict:
        from . import _models

        sizes = _models.factor_sizes(data)
        heavy = self._student_t_groups()
        few_rows = bool(sizes) and _models.use_few_rows(data, sizes)
        if self.method == "auto" and not (heavy or few_rows) and _models.use_exact(data, sizes):
            return self._exact_spec(data, sizes)
        if not sizes:
            return self._linear_spec(data)
        if few_rows:
            if heavy:
                warnings.warn(
                    f"With {float(data['n_obs']):g} rows (fewer than {_models.FEW_ROWS}) the "
                    "degrees of freedom of Student-t groups cannot be learned: the groups "
                    "are fitted as normal (group_distribution='normal'), exactly.",
                    UserWarning,
                    stacklevel=5,
                )
            return self._few_rows_spec(data, sizes)
        data = _models.mark_student_t(data) if heavy else _models.mark_centred(data)
        return {
            "key": _models.gaussian_re_structure(data),
            "build": _models.build_gaussian_re_model,
            "data": data,
            "init": _models.gaussian_re_init(data),
            "move": _models.group_scale_move(self.prior_scale),
            "complete": _models.complete_draws(data, seed_from_random_state(self.random_state)),
            "exclude_rewrites": _models.rewrites_excluded(data),
        }

    def _few_rows_spec(self, data: dict, sizes: list[int]) -> dict:
        """Few rows: the posterior with every coefficient and effect integrated out given
        the variance parameters, drawn without ADVI (``_models/few_rows.py``)."""
        from . import _models

        seed = seed_from_random_state(self.random_state)
        return {
            "data": data,
            "posterior": lambda n_draws: _models.few_rows_draws(data, sizes, n_draws, seed),
            "zero": lambda n_draws: _models.few_rows_zero_draws(data, sizes, n_draws),
        }

    def _exact_spec(self, data: dict, sizes: list[int]) -> dict:
        """The linear model or random intercepts of one factor: the posterior with every
        coefficient and effect integrated out given the noise and group sds, drawn without
        ADVI (``_models/exact.py``)."""
        from . import _models

        seed = seed_from_random_state(self.random_state)
        return {
            "data": data,
            "posterior": lambda n_draws: _models.exact_draws(data, sizes, n_draws, seed),
            "zero": lambda n_draws: _models.exact_zero_draws(data, sizes, n_draws),
        }

    def _linear_spec(self, statistics: dict) -> dict:
        """No grouping factor: the linear model with its coefficients integrated out given
        the noise (``_models/linear.py``)."""
        from . import _models

        data = _models.linear_data(statistics)
        seed = seed_from_random_state(self.random_state)
        return {
            "key": _models.linear_structure(data),
            "build": _models.build_linear_model,
            "data": data,
            "init": _models.linear_init(data),
            "method": "advi",  # one parameter: mean-field and full-rank are the same
            "move": None,
            "complete": _models.linear_complete_draws(data, seed),
            "exclude_rewrites": (),
        }

    def _row_chunks(self, features, target, weights):
        """Standardised row blocks of at most ``batch_size`` rows (65,536 when it is None),
        with their weights (None for weight 1)."""
        size = BLOCK_ROWS if self.batch_size is None else self.batch_size
        for start in range(0, max(len(target), 1), size):
            rows = slice(start, start + size)
            block_weights = None if weights is None else weights[rows]
            yield self._x_scaler.transform(features[rows]), target[rows], block_weights

    def _store_fit(self, draws: dict, n_seen: list[int]) -> dict:
        from . import _models

        scalers = (self._x_scaler, self._y_scaler)
        if self._family_name == "gaussian":
            kept = _models.gaussian_re_to_original(draws, *scalers, n_seen, self._slope_features)
        else:
            kept = _models.glmm_to_original(
                draws, *scalers, n_seen, self._slope_features, self._family_name
            )
        if "feature_mean" in draws:
            kept |= _models.feature_model_to_original(draws, self._x_scaler)
        self.coef_ = kept["coef"].mean(axis=0)
        self.intercept_ = float(mean_over_draws(kept["intercept"]))
        return kept

    def _mean_function(self, features: np.ndarray) -> np.ndarray:
        return self._draws["intercept"][None, :] + features @ self._draws["coef"].T

    def _posterior_variables(self):
        names = self._fixed_feature_names()
        values = {"intercept": self._draws["intercept"], "coef": self._draws["coef"]}
        dims, coords = {"coef": ["feature"]}, {"feature": names}
        if "imputed" in self._draws:
            rows, columns = self._missing_cells
            values["imputed"] = self._draws["imputed"]
            dims["imputed"] = ["missing_cell"]
            coords["missing_cell"] = [f"{r}:{names[c]}" for r, c in zip(rows, columns, strict=True)]
        return values, dims, coords


class BayesianLinearRegressor(RegressorMixin, LinearMixedBase):
    """Bayesian linear regression with learned noise, fitted by variational inference.

    The model, on internally standardised features and target, is
    ``y ~ Normal(alpha + X @ beta, sigma)`` with ``alpha, beta ~ Normal(0, prior_scale)`` and
    ``sigma ~ HalfNormal(prior_scale)``. The posterior is approximated by ADVI; fitted
    attributes and predictions are on the original scale.

    Parameters
    ----------
    likelihood : {"gaussian", "student_t", "poisson", "negative_binomial"}, \
            default="gaussian"
        The target's distribution given the linear predictor ``eta``. ``"gaussian"``:
        ``Normal(eta, sigma)``, fitted on sufficient statistics (a step costs the same at any
        row count). ``"student_t"``: ``StudentT(nu, eta, sigma)`` with the degrees of freedom
        learned (heavy-tailed noise; ``sigma_`` and ``nu_``). ``"poisson"``: counts,
        ``Poisson(exp(eta))``. ``"negative_binomial"``: overdispersed counts with mean
        ``mu = exp(eta)`` and variance ``mu + mu**2 / dispersion_``, the dispersion learned.
        Counts must be non-negative (non-integer values are accepted); for the two count
        likelihoods the coefficients and group effects are on the log scale and ``predict``
        returns expected counts. Every likelihood but the Gaussian evaluates each row at each
        step (minibatches of 50,000 rows beyond 200,000 rows, or of ``batch_size`` rows when
        it is set); ``partial_fit`` and Dask input need ``"gaussian"``.
    offset : str, int or None, default=None
        A column of ``X`` added to the linear predictor with coefficient 1 (for counts, the
        log of the exposure or of the expected count), named like ``groups``. It is not a
        feature: ``coef_`` has no entry for it.
    method : {"auto", "advi", "fullrank_advi"}, default="auto"
        How the posterior is computed. With Gaussian noise and complete features the
        coefficients are integrated out given the noise sd and each coefficient draw comes
        from its exact conditional; ``"auto"`` draws the noise sd from its exact posterior on
        a grid laid around the least-squares fit (nothing compiled, ``loss_curve_`` empty;
        ``_models/linear_posterior.py``), ``"advi"`` and
        ``"fullrank_advi"`` (the same for this one parameter) fit its posterior by ADVI and
        then compute it exactly around that fit. With missing feature values ``"auto"``
        draws the posterior by a Gibbs sampler that fills the missing cells in
        (``_models/missing_gibbs.py``; whole-number sample weights; ``n_iter_`` counts its
        sweeps). Other likelihoods use mean-field ADVI under ``"auto"``.
    learning_rate : float, default=0.05
        Initial Adam step size on the standardised scale; it is reduced automatically
        as the fit converges.
    max_iter : int, default=10000
        Maximum number of optimisation steps.
    tol : float, default=1e-4
        Stop when the windowed mean negative ELBO changes by less than ``tol`` per
        observation between consecutive windows (or by less than its Monte Carlo noise).
    n_posterior_samples : int, default=500
        Posterior draws kept for prediction.
    prior_scale : float, default=2.5
        Scale of the weakly-informative priors on the standardised scale.
    random_state : int, RandomState instance or None, default=None
        Seed of initialisation, optimisation noise and posterior draws.
    verbose : int, default=0
        0 prints nothing; 1 shows a progress bar with the running loss.
    missing_features : {"model", "error"}, default="model"
        What a NaN in a feature column means. ``"model"``: a missing value, a latent
        variable under a Gaussian model of the features (their mean and full covariance
        learned from every row's observed cells); its posterior conditions on the row's
        observed features, groups and target, rows with no missing cell keep the
        sufficient statistics, and ``predict`` integrates a row's missing cells out
        (``impute`` returns their posterior mean and sd; ``posterior_["imputed"]`` holds
        draws of the training rows' missing cells, dim ``missing_cell`` labelled
        ``"row:column"``). Gaussian likelihood only (and no
        NaN in random-slope features); ``partial_fit`` and Dask input refuse NaN.
        ``"error"``: a ``ValueError`` naming the column. NaN in a grouping column is a
        missing label either way; NaN in the offset column, and inf anywhere, are errors.
    batch_size : int or None, default=None
        Rows per block when the data are reduced to the model's sufficient statistics
        (cross-products), bounding working memory for very large ``X``. The ELBO and its
        gradients always use all rows exactly: for this Gaussian model, minibatch noise would
        buy nothing, since a step costs the same whatever the row count.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Posterior mean coefficients.
    intercept_ : float
        Posterior mean intercept.
    sigma_ : float
        Posterior mean noise standard deviation (Gaussian and Student-t likelihoods).
    nu_ : float
        Posterior mean degrees of freedom of the Student-t likelihood (only with it).
    dispersion_ : float
        Posterior mean dispersion of the negative binomial likelihood (only with it).
    loss_curve_ : list of float
        Negative ELBO per ADVI step (empty when the posterior was computed without ADVI).
    n_iter_ : int
        Number of optimisation steps taken: ADVI's, or without ADVI those of the search
        for the variance parameters' posterior mode (the Gibbs sampler's sweeps, with
        missing feature values).
    posterior_ : arviz.InferenceData
        Stored draws with named dimensions (feature names as coordinates).
    fit_timings_ : dict
        Seconds spent compiling (0 when a compiled model was reused) and optimising.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    RandomInterceptRegressor : The same model with random intercepts for grouped data.
    sklearn.linear_model.BayesianRidge : Point-estimated noise and prior precisions.

    Examples
    --------
    >>> import numpy as np
    >>> from skbayes_re import BayesianLinearRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(1000, 2))
    >>> y = 1.0 + X @ np.array([2.0, -1.0]) + rng.normal(scale=0.5, size=1000)
    >>> model = BayesianLinearRegressor(random_state=0).fit(X, y)
    >>> np.round(model.coef_, 1)
    array([ 2., -1.])
    >>> model.predict_interval(X[:1], coverage=0.9).shape
    (1, 2)
    """

    def __init__(
        self,
        *,
        likelihood="gaussian",
        offset=None,
        method="auto",
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
        self.batch_size = batch_size
        self.likelihood = likelihood
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
