"""Posterior predictive methods shared by every estimator: ``predict``,
``predict_interval`` and ``sample_y``, in NumPy over the stored draws.

Each row's predictive distribution is a mixture over posterior draws (``_predictive.py``).
Its linear predictor per draw is the estimator's mean function, plus the offset column, plus
the effect of the row's group for every grouping factor. A group not seen in fit (or a missing
label) has no effect of its own: for Gaussian models the spread of a new group's effect adds
to each draw's variance in closed form (Student-t groups take one draw of the new effect per
posterior draw, as below); for the other families it is integrated over by
drawing that effect once per posterior draw, from a fixed stream, so predictions are
deterministic (for ``n_posterior_samples`` draws, the Monte Carlo error of that integral is
the posterior's own).
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils import check_consistent_length
from sklearn.utils.validation import check_is_fitted

from ._models.families import family_named
from ._predictive import FamilyMixture, GaussianMixture
from ._validation import (
    check_offset_observed,
    is_dask_collection,
    seed_from_random_state,
    split_features_and_groups,
    split_offset,
    validate_target,
    warn_if_no_label_seen,
)

__all__ = ["PredictiveMixin"]

CHUNK_CELLS = 2_000_000  # rows x draws evaluated at once when predicting
UNSEEN_GROUP_SEED = 20_150_901  # the stream of new groups' effects (one per draw)


class PredictiveMixin:
    """``predict``, ``predict_interval`` and ``sample_y`` from ``_mean_function``, the
    stored draws (``_draws``) and the grouping factors' encoders."""

    def _validate_for_predict(self, X):
        """``(features, codes)``: the fixed-effect features and each factor's group codes
        (-1 for labels not seen in fit)."""
        features, codes, _ = self._prediction_inputs(X)
        return features, codes

    def _prediction_inputs(self, X):
        """``(features, codes, offset)``, the offset None when the model has none."""
        check_is_fitted(self)
        features, labels, _ = split_features_and_groups(self, X, self._group_positions, reset=False)
        features, offset = split_offset(
            features, getattr(self, "_offset_position", None), self._group_positions
        )
        check_offset_observed(offset)
        codes = []
        for encoder, column in zip(self._encoders, labels, strict=True):
            code = encoder.transform(column)
            warn_if_no_label_seen(encoder, column, code)
            codes.append(code)
        return features, codes, offset

    def _predictive_chunks(self, X):
        """Yield ``(rows, mixture)``: each row's predictive mixture over the stored draws
        (a ``GaussianMixture`` or a ``FamilyMixture``)."""
        features, codes, offset = self._prediction_inputs(X)
        family = family_named(getattr(self, "_family_name", "gaussian"))
        n_draws = self._draws["coef"].shape[0]
        chunk = max(1, CHUNK_CELLS // n_draws)
        gaussian = family.name == "gaussian"
        new_group = np.random.default_rng(UNSEEN_GROUP_SEED).standard_normal(n_draws)
        params = {name: self._draws[name] for name in family.parameters}
        for start in range(0, features.shape[0], chunk):
            rows = slice(start, start + chunk)
            block = features[rows]
            missing = np.isnan(block).any(axis=1) if block.size else np.zeros(0, bool)
            if missing.any():  # the missing cells integrated out under the feature model
                loc, spread = self._integrate_missing(block)
            else:
                loc, spread = self._mean_function(block), None
            if offset is not None:
                loc = loc + offset[rows, None]
            variance = np.broadcast_to(
                self._draws["sigma"] ** 2 if gaussian else np.zeros(n_draws), loc.shape
            ).copy()
            if spread is not None:
                variance += spread
            for k, code in enumerate(codes):
                loc, variance = self._add_group(k, code[rows], features[rows], loc, variance)
            if gaussian:
                yield rows, GaussianMixture(loc, np.sqrt(variance))
            else:
                eta = loc + np.sqrt(variance) * new_group[None, :]
                yield rows, FamilyMixture(family, eta, params)

    def _add_group(self, k, code, features, loc, variance):
        """Add factor k's effect of each row's group (seen groups) or the spread of a new
        group's effect (unseen or missing labels) to the draws of each row's mean and
        variance."""
        seen = code >= 0
        effects = self._draws["effects"][k]  # (n_draws, n_groups) or (n_draws, n_groups, q)
        safe = np.where(seen, code, 0)
        nu = self._group_nu_draws(k)
        if effects.ndim == 2 and nu is not None:  # Student-t groups: one new effect per draw
            new_effect = self._draws["group_sd"][k] * _student_t_draws(nu, k)
            loc = loc + np.where(seen[:, None], effects.T[safe], new_effect[None, :])
            unseen_variance = 0.0
        elif effects.ndim == 2:
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

    def _group_nu_draws(self, k: int):
        """Draws of factor k's degrees of freedom (Student-t groups), or None (normal groups,
        and models stored before Student-t groups existed)."""
        nus = self._draws.get("group_nu")
        return None if nus is None else nus[k]

    def _integrate_missing(self, features):
        """The mean function of rows with missing cells (see ``LinearMixedBase``); an
        estimator without a model of its features refuses them."""
        raise ValueError(
            f"X has missing feature values (NaN), which {type(self).__name__} does not "
            "model; impute them first (e.g. a Pipeline with an imputer)."
        )

    def _feature_model(self):
        return None

    def impute(self, X, return_std=False):
        """Posterior mean (and sd) of the missing feature values of ``X``.

        Each row's missing cells given its observed ones under the fitted Gaussian model of
        the features, averaged over its posterior draws; observed cells are returned
        unchanged (sd 0). The target is not used: for the training rows the fit's own
        imputations, which also condition on the target, are in ``posterior_``
        (``imputed``).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows laid out as in ``fit``; NaN marks a missing value.
        return_std : bool, default=False
            Also return the posterior sd of each cell.

        Returns
        -------
        X_imputed : ndarray or DataFrame of shape (n_samples, n_fixed_features)
            The feature columns (grouping and offset columns left out), a DataFrame with
            their names and ``X``'s index when ``X`` is one.
        X_std : ndarray or DataFrame of shape (n_samples, n_fixed_features)
            Their posterior sds, only if ``return_std``.
        """
        from ._models.feature_model import impute_cells

        features, _, _ = self._prediction_inputs(X)
        model = self._feature_model()
        if model is None:
            raise ValueError(
                f"{type(self).__name__} has no model of its features; impute needs a "
                "Gaussian linear model (likelihood='gaussian') with feature columns."
            )
        mean, sd = impute_cells(features, *model)
        if hasattr(X, "columns"):
            import pandas as pd

            names = self._fixed_feature_names()
            mean = pd.DataFrame(mean, index=X.index, columns=names)
            sd = pd.DataFrame(sd, index=X.index, columns=names)
        return (mean, sd) if return_std else mean

    def predict(self, X, return_std=False):
        """Posterior predictive mean (and standard deviation).

        Rows whose group label was not seen in ``fit`` (or is missing) get the
        population-level prediction, with the spread of a new group's effect added. When
        none of the labels of a grouping column in ``X`` was seen in ``fit`` (missing ones
        aside), a ``UserWarning`` shows some of each: often the labels have another type
        than in ``fit`` (``1`` and ``"1"`` are different groups). ``predict_interval`` and
        ``sample_y`` warn alike. For count likelihoods the mean is the expected count.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows to predict.
        return_std : bool, default=False
            Also return the predictive standard deviation (parameter uncertainty + noise;
            infinite where a Student-t draw has at most 2 degrees of freedom).

        Returns
        -------
        y_mean : ndarray of shape (n_samples,)
        y_std : ndarray of shape (n_samples,), only if ``return_std``
        """
        if is_dask_collection(X):
            return self._lazy("predict", X, return_std=return_std)
        means, stds = [], []
        for _, mixture in self._predictive_chunks(X):
            mean, std = mixture.mean_std()
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
            Probability mass between the bounds (at least that much for counts, whose
            bounds are integers).

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
        for _, mixture in self._predictive_chunks(X):
            low, high = mixture.quantile(tail), mixture.quantile(1.0 - tail)
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
        pieces = [mixture.sample(int(n_samples), rng) for _, mixture in self._predictive_chunks(X)]
        return np.concatenate(pieces)

    def _log_predictive_density(self, X, y):
        """Log posterior predictive density (a probability for counts) of each row's target,
        shape (n_samples,): the log of the mean over the stored draws of the row's density
        at ``y`` (``skbayes_re.metrics.log_predictive_density`` averages it over rows)."""
        target = validate_target(y)
        check_consistent_length(X, target)
        pieces = [mixture.log_density(target[rows]) for rows, mixture in self._predictive_chunks(X)]
        return np.concatenate(pieces)

    def _lazy(self, method: str, X, **kwargs):
        """A prediction method over a Dask collection's partitions, as Dask arrays."""
        from ._distributed import lazy_prediction

        check_is_fitted(self)
        return lazy_prediction(self, X, method, **kwargs)


def _student_t_draws(nu: np.ndarray, k: int) -> np.ndarray:
    """One standard Student-t draw per posterior draw of the degrees of freedom ``nu``, from
    a fixed stream per grouping factor (so predictions are deterministic): a new group's
    effect over its scale."""
    rng = np.random.default_rng((UNSEEN_GROUP_SEED, k))
    normal = rng.standard_normal(len(nu))
    return normal / np.sqrt(rng.gamma(nu / 2.0, 2.0 / nu))
