"""The base of the linear mixed models: Gaussian ones on sufficient statistics (exactly where
the model allows, by ADVI otherwise), other likelihood families per row."""

from __future__ import annotations

import functools
import numbers
import warnings

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils import check_consistent_length
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval

from ._base import BayesianMixedBase, LikelihoodMixin
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

__all__ = ["LinearMixedBase", "per_row_arrays"]

_GAUSSIAN_ONLY = (
    "{} needs likelihood='gaussian' without an offset (its rows are reduced to the Gaussian "
    "model's sufficient statistics); got likelihood={!r}, offset={!r}. Use fit on data in "
    "memory."
)


class LinearMixedBase(MissingFeaturesMixin, LikelihoodMixin, BayesianMixedBase):
    """Linear mean function plus random effects (none by default), any likelihood family."""

    _parameter_constraints: dict = {
        **BayesianMixedBase._parameter_constraints,
        **LikelihoodMixin._parameter_constraints,
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
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
        features, target, codes, offset, weights, minibatch = per_row_arrays(
            self, features, target, codes, offset, weights, _models.family_named(family).merges_rows
        )
        data = _models.glmm_data(
            features,
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
        if self._student_t_groups():
            data = _models.mark_student_t_glmm(data)
        data = _models.mark_centred_glmm(data, start)
        return {
            "key": _models.glmm_structure(data, family),
            "build": functools.partial(_models.build_glmm, family_name=family),
            "data": data,
            "init": _models.glmm_init(data, start),
            "move": _models.group_scale_move(self.prior_scale),
            "complete": _models.glmm_complete_draws(data),
            "row_data": _models.glmm_row_data(data) if minibatch else (),
            "rows_shuffled": minibatch,
            "batch_size": (self.batch_size or _models.MINIBATCH_SIZE) if minibatch else None,
        }

    def _student_t_groups(self) -> bool:
        """Whether the group effects are Student-t (``group_distribution``); a
        ``ValueError`` for what they do not cover yet."""
        if getattr(self, "group_distribution", "normal") == "normal":
            return False
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


def per_row_arrays(estimator, features, target, codes, offset, weights, merge: bool):
    """The per-row models' rows: those sharing a design point merged into one (``merge``, for
    families linear in the target: ``_models/merged_rows.py``), then, where the fit takes
    minibatches (beyond ``MINIBATCH_ROWS`` rows, or batches of the estimator's
    ``batch_size``), put in one random order (its batches are then contiguous blocks), the
    features standardised by the estimator's scaler as they are reordered. Returns the arrays
    and whether the fit takes minibatches."""
    from . import _models

    if merge:
        features, target, codes, offset, weights = _models.merge_shared_rows(
            features, target, codes, offset, weights
        )
    n_rows = len(target)
    batch_size = estimator.batch_size or n_rows
    minibatch = n_rows > _models.MINIBATCH_ROWS or batch_size < n_rows
    order = None
    if minibatch:
        seed = seed_from_random_state(estimator.random_state)
        order = _models.random_row_order(seed, n_rows)
        target, codes, offset, weights = _models.reorder(order, target, codes, offset, weights)
    features = estimator._x_scaler.transform(features, order=order)
    return features, target, codes, offset, weights, minibatch
