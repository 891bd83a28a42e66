"""The shared estimator base: fit driver, group handling and the fitted posterior.

A subclass states its model through hooks:

* ``_inference_spec(features, target, codes, n_groups, weights, offset)``: what to hand the
  ADVI engine (structure key, model builder, data, initialiser, and optionally the per-row
  arrays and batch size of minibatch ADVI), given the features in the user's units
  (standardise them with ``self._x_scaler``, in blocks when the model allows, so large data
  are not copied whole), the target on the model's scale (standardised, or in its units for
  log-link families), the group codes, the rows' weights (None when every row has weight 1;
  rows of weight 0 are already dropped) and the offset column (None without one, or when
  an identity link has already taken it out of the target);
* ``_store_fit(draws, n_seen)``: turn the engine's standardised-scale draws into fitted
  attributes and the original-scale draws kept for prediction;
* ``_mean_function(features)``: the population-level mean of each row under each stored draw,
  shape ``(n_rows, n_draws)``, on the original scale (the linear predictor for log links);
* ``_likelihood_name()`` and ``_offset_selection()``: the likelihood family and the offset
  column, for estimators that take them.

Everything else (validation, sample weights, standardisation, group encoding, the offset
column, the family's target check, a constant target, ``posterior_``) is here, once;
``predict``, ``predict_interval`` and ``sample_y`` come from ``_prediction.PredictiveMixin``.
A constant target is fitted without the engine: its posterior is every parameter of the
standardised model at zero (no noise, no coefficients, no group effects), so predictions
equal the constant exactly, with zero spread. Prediction is NumPy only: the PyMC stack is
imported when a model is fitted, never when a fitted one predicts.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils import check_consistent_length
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._models.centring import intercept_at_zero
from ._models.families import family_named
from ._prediction import PredictiveMixin
from ._validation import (
    GroupEncoder,
    Standardizer,
    check_offset_observed,
    feature_index,
    is_dask_collection,
    keep_weighted_rows,
    offset_position,
    resolve_random_slopes,
    seed_from_random_state,
    split_features_and_groups,
    split_offset,
    validate_sample_weight,
    validate_target,
)

__all__ = ["MISSING_REFUSED", "BaseBayesianRegressor", "BayesianMixedBase", "LikelihoodMixin"]

MISSING_REFUSED = (
    "X has missing feature values (NaN). {} with likelihood {!r} does not model them: "
    "missing values are modelled by BayesianLinearRegressor, RandomInterceptRegressor and "
    "RandomEffectsRegressor (without random slopes, with normal groups) with "
    "likelihood='gaussian'. Pass "
    "missing_features='error' and put an imputer before this estimator in a Pipeline "
    "(e.g. make_pipeline(SimpleImputer(), estimator))."
)


class BayesianMixedBase(PredictiveMixin, BaseEstimator):
    """Common machinery of the skbayes_re estimators (not for direct use); regressors add
    ``RegressorMixin``, the classifier ``ClassifierMixin``."""

    _parameter_constraints: dict = {
        "method": [StrOptions({"auto", "advi", "fullrank_advi"})],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_posterior_samples": [Interval(numbers.Integral, 1, None, closed="left")],
        "prior_scale": [Interval(numbers.Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "missing_features": [StrOptions({"model", "error"})],
    }

    # ------------------------------------------------------------------ hooks
    def _group_selection(self):
        return None

    def _slope_selection(self):
        """The ``random_slopes`` dict of estimators that have correlated slopes; None for
        those that do not (their fitted models then have no ``group_cov_``)."""
        return None

    def _likelihood_name(self) -> str:
        """The likelihood family (``_models/families``) of estimators with ``likelihood``."""
        return "gaussian"

    def _offset_selection(self):
        """The ``offset`` column of estimators that take one; None for the others."""
        return None

    def _inference_spec(self, features, target, codes, n_groups, weights, offset) -> dict:
        raise NotImplementedError

    def _models_missing_features(self) -> bool:
        """Whether this estimator, as configured, models missing feature values (NaN)
        inside its model; the others refuse them with :data:`MISSING_REFUSED`."""
        return False

    def _check_missing_supported(self, X, positions) -> None:
        """NaN features under ``missing_features="model"``: refused where no model of the
        features exists (a ``ValueError`` that says what to do instead)."""
        if not self._models_missing_features():
            raise ValueError(MISSING_REFUSED.format(type(self).__name__, self._family_name))

    def _store_fit(self, draws: dict, n_seen: list[int]) -> dict:
        raise NotImplementedError

    def _mean_function(self, features: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model by ADVI.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Features; grouping columns (see ``groups``) may hold any hashable labels.
        y : array-like of shape (n_samples,)
            Target values. A constant target is fitted at once, without optimisation: the
            posterior is that value with no noise (``sigma_`` 0), zero coefficients and group
            effects, so predictions equal it exactly and intervals are degenerate; a
            ``UserWarning`` says so.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights, as in scikit-learn: a row of weight 2 counts as the row
            twice (in the likelihood and the standardisation), a row of weight 0 as absent
            (its group label is then not seen in fit). A row with a missing group label keeps
            one effect of its own whatever its weight. For Dask input, a Dask Series
            partitioned like ``X``.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        vars(self).pop("_stream", None)  # fit starts over: forget partial_fit's batches
        if any(map(is_dask_collection, (X, y, sample_weight))):
            self._fit_from_dask(X, y, sample_weight)
            return self
        features, labels, positions = split_features_and_groups(
            self, X, self._group_selection(), reset=True
        )
        target = validate_target(y)
        check_consistent_length(features, target)
        weights = validate_sample_weight(sample_weight, target)
        family = self._start_family(target)
        features, target, labels, weights = keep_weighted_rows(weights, features, target, labels)
        self._offset_position = offset_position(
            X, self._offset_selection(), positions, self.n_features_in_
        )
        features, offset = split_offset(features, self._offset_position, positions)
        check_offset_observed(offset)
        if np.isnan(features).any():
            self._check_missing_supported(X, positions)
        if offset is not None and family.link == "identity":
            target, offset = target - offset, None  # a location family: y - offset is modelled
        self._x_scaler = Standardizer.fit(features, weights)
        self._y_scaler = self._target_scaler(family, target, weights)
        self._remember_groups(X, positions)
        codes, n_groups, n_seen = self._encode_for_fit(labels)
        standardised = self._y_scaler.transform(target)
        spec = self._inference_spec(features, standardised, codes, n_groups, weights, offset)
        n_obs = len(target) if weights is None else float(np.sum(weights))
        del features, labels  # the spec holds what the fit needs: free a large X's copy
        self._finish_fit(spec, n_obs, n_seen)
        return self

    def _start_family(self, target):
        """The likelihood family, its target support checked (a ``ValueError`` naming the
        likelihood and the offending values)."""
        family = family_named(self._likelihood_name())
        family.check_target(target)
        self._family_name = family.name
        return family

    @staticmethod
    def _target_scaler(family, target, weights) -> Standardizer:
        """The target's standardisation; the identity for families that keep the target in
        its units (counts: the log link gives the coefficients their meaning)."""
        if family.standardise_target:
            return Standardizer.fit(target, weights)
        return Standardizer(mean=np.asarray(0.0), scale=np.asarray(1.0), constant=np.asarray(False))

    def _remember_groups(self, X, positions) -> None:
        """The grouping columns' positions and names, and each one's slope features (as
        positions among the fixed-effect features, the offset column taken out)."""
        self._group_positions = positions
        self._group_names = [self._column_name(X, i) for i in positions]
        slopes = resolve_random_slopes(X, self._slope_selection(), positions, self.n_features_in_)
        self._slope_features = self._slopes_without_offset(X, slopes)

    def _slopes_without_offset(self, X, slopes):
        position = getattr(self, "_offset_position", None)
        if position is None:
            return slopes
        index = feature_index(position, self._group_positions)
        if any(index in factor for factor in slopes):
            raise ValueError(
                f"The offset column {self._column_name(X, position)!r} cannot have a random "
                "slope: its coefficient is fixed at 1."
            )
        return [[i - (i > index) for i in factor] for factor in slopes]

    def _fit_from_dask(self, X, y, sample_weight):
        raise TypeError(
            f"{type(self).__name__} does not fit Dask collections. BayesianLinearRegressor, "
            "RandomInterceptRegressor and RandomEffectsRegressor do (their sufficient "
            "statistics are computed on the workers); for this estimator, fit on a sample "
            "brought into memory with .compute()."
        )

    def _finish_fit(self, spec: dict, n_obs: float, n_seen: list[int]) -> None:
        """Run the engine on a spec (or, for a constant target, take the zero posterior) and
        store the fitted attributes. ``n_obs``: the row count, or the total weight."""
        self._check_distinct_groupings(spec["data"])
        if np.all(self._y_scaler.constant):
            result = self._constant_target_result(spec)
        elif "posterior" in spec:  # drawn directly, without the engine
            result = _direct_result(*spec["posterior"](self.n_posterior_samples))
        else:
            result = self._run_engine(spec, n_obs=n_obs)
        if spec.get("complete") is not None:  # e.g. draws of integrated-out effects
            spec["complete"](result.draws)
        del spec
        self._draws = self._store_fit(result.draws, n_seen)
        for name in family_named(self._family_name).parameters:  # sigma_, nu_, dispersion_
            setattr(self, f"{name}_", float(np.mean(self._draws[name])))
        self._store_groups(n_seen)
        self.loss_curve_ = result.loss_curve
        self.n_iter_ = result.n_iter
        self.fit_timings_ = dict(result.timings)

    def _check_distinct_groupings(self, data: dict) -> None:
        """Two grouping columns that split the rows into the same groups (a copy, or a
        relabelling) would give one effect twice: refuse them."""
        from ._models.statistics import aliased_factors

        for k, m in aliased_factors(data):
            first, second = self._group_names[k], self._group_names[m]
            raise ValueError(
                f"The grouping columns {first!r} and {second!r} define the same groups (each "
                "is a relabelling of the other), so their effects could not be told apart; "
                "keep one of them in groups."
            )

    def _constant_target_result(self, spec: dict):
        """The engine's result for a constant target, without running it: every parameter
        at zero on the standardised scale (see ``_models/constant.py``)."""
        from ._models import zero_draws

        warnings.warn(
            f"y is constant ({float(self._y_scaler.mean):.10g} in every row): the fit is that "
            "value with no noise and no effects (sigma_ = 0, zero coefficients and group "
            "effects), made without optimisation; predictions equal it exactly and "
            "predictive intervals have zero width.",
            UserWarning,
            stacklevel=5,  # the caller of fit or partial_fit
        )
        n_draws = self.n_posterior_samples
        if "zero" in spec:  # a spec drawn without the engine names its own zero draws
            return _direct_result(spec["zero"](n_draws))
        return _direct_result(zero_draws(spec["build"], spec["data"], n_draws))

    def _engine_method(self) -> str:
        """The engine's approximation: ``"auto"`` means mean-field where the engine runs."""
        return "advi" if self.method == "auto" else self.method

    def _run_engine(self, spec: dict, n_obs: float):
        from ._inference import fit_advi  # after the spec, whose modules imported PyMC quietly

        return fit_advi(
            spec["key"],
            spec["build"],
            spec["data"],
            n_obs=n_obs,
            method=spec.get("method", self._engine_method()),
            learning_rate=self.learning_rate,
            max_iter=self.max_iter,
            tol=self.tol,
            n_draws=self.n_posterior_samples,
            random_state=seed_from_random_state(self.random_state),
            verbose=self.verbose,
            init=spec.get("init"),
            point_blocks=spec.get("point", frozenset()),
            exclude_rewrites=spec.get("exclude_rewrites", ()),
            row_data=spec.get("row_data", ()),
            batch_size=spec.get("batch_size"),
            rows_shuffled=spec.get("rows_shuffled", False),
            move=spec.get("move"),
        )

    @staticmethod
    def _column_name(X, position: int):
        if hasattr(X, "columns"):
            return X.columns[position]
        return position

    def _encode_for_fit(self, labels):
        """Codes per grouping column; rows with a missing label become singleton groups
        appended after the seen ones (each its own draw from the population)."""
        self._encoders, codes, n_groups, n_seen = [], [], [], []
        for name, column in zip(self._group_names, labels, strict=True):
            encoder = GroupEncoder(str(name)).fit(column)
            code = encoder.transform(column)
            missing = code < 0
            code[missing] = encoder.n_groups + np.arange(int(missing.sum()))
            self._encoders.append(encoder)
            codes.append(code)
            n_seen.append(encoder.n_groups)
            n_groups.append(encoder.n_groups + int(missing.sum()))
        return codes, n_groups, n_seen

    def _store_groups(self, n_seen) -> None:
        self.group_effects_, self.group_sd_ = {}, {}
        vars(self).pop("group_nu_", None)
        with_slopes = self._slope_selection() is not None
        if with_slopes:
            self.group_cov_, self.group_corr_ = {}, {}
        for k, name in enumerate(self._group_names):
            self.group_effects_[name] = self._group_effects_table(k)
            sd = np.mean(self._draws["group_sd"][k], axis=0)
            terms = self._group_terms(k)
            self.group_sd_[name] = float(sd) if sd.ndim == 0 else pd.Series(sd, index=terms)
            nu = self._group_nu_draws(k)
            if nu is not None:
                vars(self).setdefault("group_nu_", {})[name] = float(np.mean(nu))
            if with_slopes:
                cov = self._group_covariance_draws(k)
                corr = _correlation(cov).mean(axis=0)  # per draw, then averaged
                self.group_cov_[name] = pd.DataFrame(cov.mean(axis=0), index=terms, columns=terms)
                self.group_corr_[name] = pd.DataFrame(corr, index=terms, columns=terms)

    def _group_effects_table(self, k: int):
        """Posterior-mean effects of factor k: a Series (intercepts) or a DataFrame with one
        column per term (intercept and slopes), indexed by group label."""
        effects = self._draws["effects"][k].mean(axis=0, dtype=np.float64)
        index = pd.Index(self._encoders[k].categories_, name=self._group_names[k])
        if effects.ndim == 1:
            return pd.Series(effects, index=index, name="effect")
        effects = self._design_at_zero(k, effects)
        return pd.DataFrame(effects, index=index, columns=self._group_terms(k))

    def _slope_centre(self, k: int) -> np.ndarray:
        """Where factor k's stored effects put the intercept: its slope features' means
        (see ``_models/slopes.py``; zeros for a model stored before that)."""
        centres = self._draws.get("centres")
        if centres is None or centres[k] is None:
            return np.zeros(len(self._slope_features[k]))
        return centres[k]

    def _group_terms(self, k: int) -> list[str]:
        """Names of factor k's group-design columns: ``intercept``, then its slope features."""
        names = self._fixed_feature_names()
        return ["intercept", *(names[i] for i in self._slope_features[k])]

    def _group_covariance_draws(self, k: int) -> np.ndarray:
        """Draws of factor k's group covariance (S, q, q), a random intercept's too."""
        cov = self._draws["group_cov"][k]
        if cov is None:
            return (self._draws["group_sd"][k] ** 2)[:, None, None]
        return self._design_at_zero(k, cov, covariance=True)

    def _design_at_zero(self, k: int, values, covariance: bool = False) -> np.ndarray:
        """Factor k's effects or covariances for the design ``(1, x)``: re-expressed where
        the factor has slopes (see :meth:`_slope_centre`), as they are where its columns are
        not slopes (the multiclass classifier's per-class intercepts)."""
        if not self._slope_features[k]:
            return np.asarray(values, dtype=np.float64)
        return intercept_at_zero(values, self._slope_centre(k), covariance)

    def _fixed_feature_names(self) -> list[str]:
        """Names of the non-grouping columns (``x<i>`` for arrays), in column order."""
        grouped = {*self._group_positions, getattr(self, "_offset_position", None)}
        if hasattr(self, "feature_names_in_"):
            all_names = list(map(str, self.feature_names_in_))
        else:
            all_names = [f"x{i}" for i in range(self.n_features_in_)]
        return [name for i, name in enumerate(all_names) if i not in grouped]

    # -------------------------------------------------------------- posterior
    def _posterior_variables(self) -> tuple[dict, dict, dict]:
        """Subclass part of ``posterior_``: (draws by name, dims by name, coords)."""
        return {}, {}, {}

    @property
    def posterior_(self):
        """``arviz.InferenceData`` of the stored draws, on the original scale, with named dims.

        Built on access from the draws the estimator keeps for prediction.
        """
        check_is_fitted(self, "_draws")
        values, dims, coords = self._posterior_variables()
        for name in family_named(getattr(self, "_family_name", "gaussian")).parameters:
            values[name] = self._draws[name]
        for k, name in enumerate(self._group_names):
            dim = f"group_{name}"
            values[f"effect_{name}"] = self._draws["effects"][k]
            values[f"group_sd_{name}"] = self._draws["group_sd"][k]
            nu = self._group_nu_draws(k)
            if nu is not None:
                values[f"group_nu_{name}"] = nu
            dims[f"effect_{name}"] = [dim]
            coords[dim] = list(self._encoders[k].categories_)
            if self._draws["effects"][k].ndim == 3:
                term, other = f"term_{name}", f"term_{name}_other"
                coords[term] = coords[other] = self._group_terms(k)
                values[f"effect_{name}"] = self._design_at_zero(k, values[f"effect_{name}"])
                dims[f"effect_{name}"].append(term)
                dims[f"group_sd_{name}"] = [term]
                values[f"group_corr_{name}"] = _correlation(self._group_covariance_draws(k))
                dims[f"group_corr_{name}"] = [term, other]
        return _inference_data(values, dims, coords)


class BaseBayesianRegressor(RegressorMixin, BayesianMixedBase):
    """The base of the regressors: ``BayesianMixedBase`` scored by R^2."""


class LikelihoodMixin:
    """The ``likelihood`` and ``offset`` parameters of the estimators that take them (their
    validation, hooks and tags: count families take non-negative targets only)."""

    _parameter_constraints: dict = {
        "likelihood": [StrOptions({"gaussian", "student_t", "poisson", "negative_binomial"})],
        "offset": [str, Interval(numbers.Integral, None, None, closed="neither"), None],
    }

    def _likelihood_name(self) -> str:
        return self.likelihood

    def _offset_selection(self):
        return self.offset

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = self._likelihood_name() in ("poisson", "negative_binomial")
        return tags


def _direct_result(draws: dict, n_iter: int = 0):
    """The engine's result for draws made without it: no ELBO trace, and ``n_iter`` the
    iterations of the search for the variance parameters' mode (0 for a constant target)."""
    from ._result import ADVIResult

    return ADVIResult(
        draws=draws,
        mean={},
        sd={},
        loss_curve=[],
        n_iter=n_iter,
        converged=True,
        timings={"compile": 0.0, "optimise": 0.0},
    )


def _correlation(cov: np.ndarray) -> np.ndarray:
    """Correlation matrices of covariance draws (S, q, q); a term without variance (a
    constant target's fit) is uncorrelated with the others."""
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    sd = np.where(sd > 0.0, sd, 1.0)
    corr = cov / (sd[:, :, None] * sd[:, None, :])
    diagonal = np.arange(cov.shape[1])
    corr[:, diagonal, diagonal] = 1.0
    return corr


def _inference_data(values: dict, dims: dict, coords: dict):
    """Wrap draws (leading axis = draw) as an ArviZ object with one chain."""
    from ._models import quiet_import

    az = quiet_import("arviz")

    posterior = {name: np.asarray(draws)[None, ...] for name, draws in values.items()}
    try:
        return az.from_dict(posterior=posterior, coords=coords, dims=dims)
    except TypeError:  # ArviZ 1.x takes the groups as one mapping
        return az.from_dict({"posterior": posterior}, coords=coords, dims=dims)
