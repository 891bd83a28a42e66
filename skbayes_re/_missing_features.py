"""Missing feature values for the linear estimators: the spec of a fit whose features hold
NaN (``_models/missing.py``), the feature model kept for prediction, and a row's missing
cells integrated out of its mean function (``_models/feature_model.py``)."""

from __future__ import annotations

import numpy as np

from ._validation import seed_from_random_state

__all__ = ["MissingFeaturesMixin"]


class MissingFeaturesMixin:
    """Hooks of :class:`LinearMixedBase` for ``missing_features="model"``."""

    def _models_missing_features(self) -> bool:
        """The Gaussian models with normal random intercepts (no slopes) model missing
        feature values."""
        return (
            getattr(self, "missing_features", "error") == "model"
            and self._likelihood_name() == "gaussian"
            and not self._slope_selection()
            and getattr(self, "group_distribution", "normal") == "normal"
        )

    def _missing_spec(self, features, target, codes, n_groups, weights) -> dict:
        """Missing feature values: their cells latent under a Gaussian feature model, the
        complete rows on sufficient statistics (``_models/missing.py``); with
        ``method="auto"`` and at most one factor of random intercepts a Gibbs sampler draws
        the posterior, otherwise ADVI, at any row count."""
        from . import _models

        if features.shape[1] > _models.MAX_FEATURES:
            raise ValueError(
                f"Missing feature values are modelled for up to {_models.MAX_FEATURES} "
                f"feature columns; X has {features.shape[1]}. Pass missing_features='error' "
                "with an imputer in a Pipeline."
            )
        standardised = self._x_scaler.transform(features)
        complete = ~np.isnan(standardised).any(axis=1)
        rows = np.flatnonzero(complete)
        chunks = [(standardised[rows], target[rows], None if weights is None else weights[rows])]
        data = _models.missing_data(
            chunks, standardised, target, codes, n_groups, weights, self.prior_scale
        )
        incomplete = np.flatnonzero(~complete)
        missing = np.isnan(standardised[incomplete])
        self._missing_cells = (
            incomplete[np.nonzero(missing)[0]],
            np.nonzero(missing)[1],
        )
        if self.method == "auto" and _models.use_missing_gibbs(data):
            return self._missing_gibbs_spec(data)
        return {
            "key": _models.missing_structure(data),
            "build": _models.build_missing_model,
            "data": data,
            "init": _models.missing_init(data, standardised, target, codes, n_groups, weights),
            "move": _models.group_scale_move(self.prior_scale),
            "complete": _models.missing_complete_draws(
                data, seed_from_random_state(self.random_state)
            ),
        }

    def _missing_gibbs_spec(self, data: dict) -> dict:
        """At most one factor of random intercepts: the posterior drawn by a Gibbs sampler
        (``_models/missing_gibbs.py``), without ADVI."""
        from . import _models

        seed = seed_from_random_state(self.random_state)
        return {
            "data": data,
            "posterior": lambda n_draws: _models.missing_gibbs_draws(
                data, n_draws, seed, self.verbose
            ),
            "zero": lambda n_draws: _models.missing_gibbs_zero_draws(data, n_draws),
        }

    def _keeping_feature_model(self, spec: dict, data: dict) -> dict:
        """A statistics spec whose last step also stores the complete rows' feature model
        (one plug-in draw of their mean and covariance), so that rows with missing values
        can be predicted from a fit on complete data."""
        from . import _models

        if data["wtw"].shape[0] > 1:
            features = _models.plug_in_feature_draws(data["wtw"])
            spec["complete"] = _then(spec.get("complete"), lambda draws: draws.update(features))
        self._missing_cells = None
        return spec

    def _feature_model(self):
        """Draws of the features' mean (S, p) and covariance (S, p, p), or None."""
        if "feature_mean" not in getattr(self, "_draws", {}):
            return None
        return self._draws["feature_mean"], self._draws["feature_cov"]

    def _integrate_missing(self, features: np.ndarray):
        """The mean function of rows with missing cells, those integrated out under the
        feature model: (mean (R, S), the variance it adds (R, S))."""
        from ._models.feature_model import integrate_missing_linear

        if self._feature_model() is None:
            return super()._integrate_missing(features)
        slopes = sorted({i for factor in self._slope_features for i in factor})
        if slopes and np.isnan(features[:, slopes]).any():
            raise ValueError(
                "X has missing values (NaN) in a feature with random slopes; such cells "
                "are not modelled: impute them first."
            )
        loc, variance = integrate_missing_linear(
            features, self._draws["coef"], *self._feature_model()
        )
        return self._draws["intercept"][None, :] + loc, variance


def _then(first, second):
    """Two ``complete`` steps one after the other (the first may be None)."""
    if first is None:
        return second

    def both(draws: dict) -> None:
        first(draws)
        second(draws)

    return both
