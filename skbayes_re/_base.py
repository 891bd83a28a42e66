"""The shared estimator base: fit driver, group handling and posterior predictive methods.

A subclass states its model through three hooks:

* ``_inference_spec(features, target, codes, n_groups, weights)``: what to hand the ADVI
  engine (structure key, model builder, data, initialiser, and optionally the per-row arrays
  and batch size of minibatch ADVI), given the features in the user's units (standardise
  them with ``self._x_scaler``, in blocks when the model allows, so large data are not copied
  whole), the standardised target, the group codes and the rows' weights (None when every
  row has weight 1; rows of weight 0 are already dropped);
* ``_store_fit(draws, n_seen)``: turn the engine's standardised-scale draws into fitted
  attributes and the original-scale draws kept for prediction;
* ``_mean_function(features)``: the population-level mean of each row under each stored draw,
  shape ``(n_rows, n_draws)``, on the original scale.

Everything else (validation, sample weights, standardisation, group encoding, unseen groups,
a constant target, ``predict``, ``predict_interval``, ``sample_y``, ``posterior_``) is here,
once. A constant target is fitted without the engine: its posterior is every parameter of
the standardised model at zero (no noise, no coefficients, no group effects), so
predictions equal the constant exactly, with zero spread. Prediction is NumPy only:
the PyMC stack is imported when a model is fitted, never when a fitted one predicts.
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
from ._predictive import mixture_log_density, mixture_mean_std, mixture_quantile, mixture_sample
from ._validation import (
    GroupEncoder,
    Standardizer,
    is_dask_collection,
    keep_weighted_rows,
    resolve_random_slopes,
    seed_from_random_state,
    split_features_and_groups,
    validate_sample_weight,
    validate_target,
    warn_if_no_label_seen,
)

__all__ = ["BaseBayesianRegressor"]

_CHUNK_CELLS = 2_000_000  # rows x draws evaluated at once when predicting


class BaseBayesianRegressor(RegressorMixin, BaseEstimator):
    """Common machinery of the skbayes_re estimators (not for direct use)."""

    _parameter_constraints: dict = {
        "method": [StrOptions({"advi", "fullrank_advi"})],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_posterior_samples": [Interval(numbers.Integral, 1, None, closed="left")],
        "prior_scale": [Interval(numbers.Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # ------------------------------------------------------------------ hooks
    def _group_selection(self):
        return None

    def _slope_selection(self):
        """The ``random_slopes`` dict of estimators that have correlated slopes; None for
        those that do not (their fitted models then have no ``group_cov_``)."""
        return None

    def _inference_spec(self, features, target, codes, n_groups, weights) -> dict:
        raise NotImplementedError

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
        features, target, labels, weights = keep_weighted_rows(weights, features, target, labels)
        self._x_scaler = Standardizer.fit(features, weights)
        self._y_scaler = Standardizer.fit(target, weights)
        self._remember_groups(X, positions)
        codes, n_groups, n_seen = self._encode_for_fit(labels)
        standardised = self._y_scaler.transform(target)
        spec = self._inference_spec(features, standardised, codes, n_groups, weights)
        n_obs = len(target) if weights is None else float(np.sum(weights))
        del features, labels  # the spec holds what the fit needs: free a large X's copy
        self._finish_fit(spec, n_obs, n_seen)
        return self

    def _remember_groups(self, X, positions) -> None:
        """The grouping columns' positions and names, and each one's slope features."""
        self._group_positions = positions
        self._group_names = [self._column_name(X, i) for i in positions]
        self._slope_features = resolve_random_slopes(
            X, self._slope_selection(), positions, self.n_features_in_
        )

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
        else:
            result = self._run_engine(spec, n_obs=n_obs)
        if spec.get("complete") is not None:  # e.g. draws of integrated-out effects
            spec["complete"](result.draws)
        del spec
        self._draws = self._store_fit(result.draws, n_seen)
        self.sigma_ = float(np.mean(self._draws["sigma"]))
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
        from ._inference import ADVIResult
        from ._models import zero_draws

        warnings.warn(
            f"y is constant ({float(self._y_scaler.mean):.10g} in every row): the fit is that "
            "value with no noise and no effects (sigma_ = 0, zero coefficients and group "
            "effects), made without optimisation; predictions equal it exactly and "
            "predictive intervals have zero width.",
            UserWarning,
            stacklevel=5,  # the caller of fit or partial_fit
        )
        draws = zero_draws(spec["build"], spec["data"], self.n_posterior_samples)
        return ADVIResult(
            draws=draws,
            mean={},
            sd={},
            loss_curve=[],
            n_iter=0,
            converged=True,
            timings={"compile": 0.0, "optimise": 0.0},
        )

    def _run_engine(self, spec: dict, n_obs: float):
        from ._inference import fit_advi  # after the spec, whose modules imported PyMC quietly

        return fit_advi(
            spec["key"],
            spec["build"],
            spec["data"],
            n_obs=n_obs,
            method=spec.get("method", self.method),
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
        with_slopes = self._slope_selection() is not None
        if with_slopes:
            self.group_cov_, self.group_corr_ = {}, {}
        for k, name in enumerate(self._group_names):
            self.group_effects_[name] = self._group_effects_table(k)
            sd = np.mean(self._draws["group_sd"][k], axis=0)
            terms = self._group_terms(k)
            self.group_sd_[name] = float(sd) if sd.ndim == 0 else pd.Series(sd, index=terms)
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
        effects = intercept_at_zero(effects, self._slope_centre(k))
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
        return intercept_at_zero(cov, self._slope_centre(k), covariance=True)

    def _fixed_feature_names(self) -> list[str]:
        """Names of the non-grouping columns (``x<i>`` for arrays), in column order."""
        grouped = set(self._group_positions)
        if hasattr(self, "feature_names_in_"):
            all_names = list(map(str, self.feature_names_in_))
        else:
            all_names = [f"x{i}" for i in range(self.n_features_in_)]
        return [name for i, name in enumerate(all_names) if i not in grouped]

    # ---------------------------------------------------------------- predict
    def _validate_for_predict(self, X):
        check_is_fitted(self)
        features, labels, _ = split_features_and_groups(self, X, self._group_positions, reset=False)
        codes = []
        for encoder, column in zip(self._encoders, labels, strict=True):
            code = encoder.transform(column)
            warn_if_no_label_seen(encoder, column, code)
            codes.append(code)
        return features, codes

    def _predictive_chunks(self, X):
        """Yield ``(rows, loc, scale)``: each row's mixture over the stored draws."""
        features, codes = self._validate_for_predict(X)
        n_draws = self._draws["sigma"].shape[0]
        chunk = max(1, _CHUNK_CELLS // n_draws)
        for start in range(0, features.shape[0], chunk):
            rows = slice(start, start + chunk)
            loc = self._mean_function(features[rows])
            variance = np.broadcast_to(self._draws["sigma"] ** 2, loc.shape).copy()
            for k, code in enumerate(codes):
                loc, variance = self._add_group(k, code[rows], features[rows], loc, variance)
            yield rows, loc, np.sqrt(variance)

    def _add_group(self, k, code, features, loc, variance):
        """Add factor k's effect of each row's group (seen groups) or the spread of a new
        group's effect (unseen or missing labels) to the draws of each row's mean and
        variance."""
        seen = code >= 0
        effects = self._draws["effects"][k]  # (n_draws, n_groups) or (n_draws, n_groups, q)
        safe = np.where(seen, code, 0)
        if effects.ndim == 2:
            loc = loc + np.where(seen[:, None], effects.T[safe], 0.0)
            unseen_variance = (self._draws["group_sd"][k] ** 2)[None, :]
        else:  # intercept and slopes: the group design (1, x_s - centre) of each row
            centred = features[:, self._slope_features[k]] - self._slope_centre(k)
            design = np.column_stack([np.ones(len(code)), centred])
            effect = np.einsum("srq,rq->rs", effects[:, safe, :], design)
            loc = loc + np.where(seen[:, None], effect, 0.0)
            spread = np.einsum("rq,sqj->rsj", design, self._draws["group_cov"][k])
            unseen_variance = np.einsum("rsj,rj->rs", spread, design)
        variance = variance + np.where(seen[:, None], 0.0, unseen_variance)
        return loc, variance

    def predict(self, X, return_std=False):
        """Posterior predictive mean (and standard deviation).

        Rows whose group label was not seen in ``fit`` (or is missing) get the
        population-level prediction, with the spread of a new group's effect added. When
        none of the labels of a grouping column in ``X`` was seen in ``fit`` (missing ones
        aside), a ``UserWarning`` shows some of each: often the labels have another type
        than in ``fit`` (``1`` and ``"1"`` are different groups). ``predict_interval`` and
        ``sample_y`` warn alike.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows to predict.
        return_std : bool, default=False
            Also return the predictive standard deviation (parameter uncertainty + noise).

        Returns
        -------
        y_mean : ndarray of shape (n_samples,)
        y_std : ndarray of shape (n_samples,), only if ``return_std``
        """
        if is_dask_collection(X):
            return self._lazy("predict", X, return_std=return_std)
        means, stds = [], []
        for _, loc, scale in self._predictive_chunks(X):
            mean, std = mixture_mean_std(loc, scale)
            means.append(mean)
            stds.append(std)
        mean = np.concatenate(means)
        return (mean, np.concatenate(stds)) if return_std else mean

    def predict_interval(self, X, coverage=0.9):
        """Equal-tailed posterior predictive interval.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows to predict.
        coverage : float in (0, 1), default=0.9
            Probability mass between the bounds.

        Returns
        -------
        bounds : ndarray of shape (n_samples, 2)
            Lower and upper bounds.
        """
        if not isinstance(coverage, numbers.Real) or not 0.0 < coverage < 1.0:
            raise ValueError(f"coverage must be a number in (0, 1); got {coverage!r}.")
        if is_dask_collection(X):
            return self._lazy("predict_interval", X, coverage=coverage)
        tail = (1.0 - coverage) / 2.0
        pieces = []
        for _, loc, scale in self._predictive_chunks(X):
            low = mixture_quantile(loc, scale, tail)
            high = mixture_quantile(loc, scale, 1.0 - tail)
            pieces.append(np.column_stack([low, high]))
        return np.concatenate(pieces)

    def sample_y(self, X, n_samples=1, random_state=None):
        """Draw from the posterior predictive distribution.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples_X, n_features)
            Rows to simulate.
        n_samples : int, default=1
            Draws per row.
        random_state : int, RandomState instance or None, default=None
            Seed of the draws.

        Returns
        -------
        y_samples : ndarray of shape (n_samples_X, n_samples)
        """
        if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}.")
        if is_dask_collection(X):
            return self._lazy("sample_y", X, n_samples=n_samples, random_state=random_state)
        rng = np.random.default_rng(seed_from_random_state(random_state))
        pieces = [
            mixture_sample(loc, scale, int(n_samples), rng)
            for _, loc, scale in self._predictive_chunks(X)
        ]
        return np.concatenate(pieces)

    def _log_predictive_density(self, X, y):
        """Log posterior predictive density of each row's target, shape (n_samples,): the
        log of the mean over the stored draws of the row's Normal density at ``y``
        (``skbayes_re.metrics.log_predictive_density`` averages it over rows)."""
        target = validate_target(y)
        check_consistent_length(X, target)
        pieces = [
            mixture_log_density(loc, scale, target[rows])
            for rows, loc, scale in self._predictive_chunks(X)
        ]
        return np.concatenate(pieces)

    def _lazy(self, method: str, X, **kwargs):
        """A prediction method over a Dask collection's partitions, as Dask arrays."""
        from ._distributed import lazy_prediction

        check_is_fitted(self)
        return lazy_prediction(self, X, method, **kwargs)

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
        values["sigma"] = self._draws["sigma"]
        for k, name in enumerate(self._group_names):
            dim = f"group_{name}"
            values[f"effect_{name}"] = self._draws["effects"][k]
            values[f"group_sd_{name}"] = self._draws["group_sd"][k]
            dims[f"effect_{name}"] = [dim]
            coords[dim] = list(self._encoders[k].categories_)
            if self._draws["effects"][k].ndim == 3:
                term, other = f"term_{name}", f"term_{name}_other"
                coords[term] = coords[other] = self._group_terms(k)
                centre = self._slope_centre(k)
                values[f"effect_{name}"] = intercept_at_zero(values[f"effect_{name}"], centre)
                dims[f"effect_{name}"].append(term)
                dims[f"group_sd_{name}"] = [term]
                values[f"group_corr_{name}"] = _correlation(self._group_covariance_draws(k))
                dims[f"group_corr_{name}"] = [term, other]
        return _inference_data(values, dims, coords)


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
