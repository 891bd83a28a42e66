"""Statistics accumulated over batches: the state behind ``partial_fit``.

Each batch is standardised with the *first* batch's mean and scale and reduced to partial
statistics (``_models/statistics.py``), which add up over batches. Running column moments
(Chan's update) track the mean and scale of all rows seen; when the model is refitted the
summed statistics are mapped exactly to that standardisation (an affine change of the
design) and the groups put in the order ``fit`` gives them (sorted labels, then one
singleton group per row with a missing label, in arrival order). The result equals what
``fit`` computes on all batches together, up to rounding, so ``partial_fit`` over any
batches and ``fit`` on their concatenation fit the same model to the same statistics.

Row weights (``sample_weight``) enter the moments and statistics as in ``fit``.

Cost per batch: one pass over its rows; memory: the statistics only (features x groups).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._models.statistics import (
    finish_statistics,
    merge_statistics,
    partial_statistics,
    regroup,
    restandardise,
)
from ._validation import BLOCK_ROWS, GroupEncoder, RunningMoments, Standardizer, check_labels

__all__ = ["StatisticsStream"]


class _GroupRegistry:
    """One grouping column's groups in the order batches revealed them: labels (first seen
    first) and missing-label singletons, each with its slot in the summed statistics."""

    def __init__(self, name: str, dtype):
        self.name, self.dtype = name, dtype
        self.labels = pd.Index([], dtype=object)
        self.label_slots = np.zeros(0, dtype=np.int64)
        self.missing_slots = np.zeros(0, dtype=np.int64)

    @property
    def size(self) -> int:
        return len(self.label_slots) + len(self.missing_slots)

    def codes(self, column: pd.Series) -> np.ndarray:
        """Slots of a batch's labels, registering new labels and missing ones."""
        check_labels(column, self.name)
        missing = column.isna().to_numpy()
        position = _positions(self.labels, column)
        new = pd.unique(column[(position < 0) & ~missing].to_numpy())
        if len(new):
            self.labels = self.labels.append(pd.Index(new, dtype=object))
            slots = self.size + np.arange(len(new))
            self.label_slots = np.concatenate([self.label_slots, slots])
            position = _positions(self.labels, column)
        codes = np.where(position >= 0, self.label_slots[np.maximum(position, 0)], -1)
        singles = self.size + np.arange(int(missing.sum()))
        self.missing_slots = np.concatenate([self.missing_slots, singles])
        codes[missing] = singles
        return codes

    def encoder_and_order(self) -> tuple[GroupEncoder, np.ndarray]:
        """The encoder ``fit`` would build on all batches, and each of its groups' slot."""
        labels = pd.Series(self.labels.to_numpy())
        categorical = isinstance(self.dtype, pd.CategoricalDtype)
        if categorical and labels.isin(self.dtype.categories).all():  # category order, as fit
            labels = pd.Series(pd.Categorical(labels, dtype=self.dtype))
        encoder = GroupEncoder(self.name).fit(labels)
        slots = self.label_slots[_positions(self.labels, pd.Series(encoder.categories_))]
        return encoder, np.concatenate([slots, self.missing_slots])


def _positions(index: pd.Index, column: pd.Series) -> np.ndarray:
    try:
        return index.get_indexer(pd.Index(column))
    except (TypeError, ValueError):  # labels not comparable with the index
        return pd.Index(index, dtype=object).get_indexer(pd.Index(column, dtype=object))


class StatisticsStream:
    """Accumulates the statistics of a Gaussian mixed model over batches (``slopes[k]``: the
    slope features of grouping factor k, empty for a random intercept)."""

    def __init__(self, features, target, label_columns, names, weights=None, slopes=None):
        self.x_reference = Standardizer.fit(features, weights)
        self.y_reference = Standardizer.fit(target, weights)
        self.x_moments = RunningMoments.of(features[:0])
        self.y_moments = RunningMoments.of(target[:0])
        self.groups = [
            _GroupRegistry(str(name), column.dtype)
            for name, column in zip(names, label_columns, strict=True)
        ]
        self.slopes = [list(s) for s in slopes] if slopes else [[] for _ in self.groups]
        self.partial = None

    def add(self, features, target, label_columns, weights=None) -> None:
        """Add one batch (features in the user's units, the target, the label columns, and
        the rows' positive weights or None for weight 1)."""
        self.x_moments = self.x_moments.merge(RunningMoments.of(features, weights))
        self.y_moments = self.y_moments.merge(RunningMoments.of(target, weights))
        columns = zip(self.groups, label_columns, strict=True)
        codes = [group.codes(column) for group, column in columns]
        sizes = [group.size for group in self.groups]
        for start in range(0, max(len(target), 1), BLOCK_ROWS):
            rows = slice(start, start + BLOCK_ROWS)
            piece = partial_statistics(
                self.x_reference.transform(features[rows]),
                self.y_reference.transform(target[rows]),
                [code[rows] for code in codes],
                sizes,
                self.slopes,
                None if weights is None else weights[rows],
            )
            self.partial = merge_statistics(self.partial, piece)

    def finished(self, prior_scale: float):
        """The model's data for all batches so far, with the scalers and encoders ``fit``
        would have made: ``(data, x_scaler, y_scaler, encoders, n_seen, n_obs)``, ``n_obs``
        the row count or, with weights, their total."""
        x_scaler, y_scaler = self.x_moments.standardizer(), self.y_moments.standardizer()
        partial = restandardise(
            self.partial, self.x_reference, x_scaler, self.y_reference, y_scaler, self.slopes
        )
        encoders, orders = [], []
        for group in self.groups:
            encoder, order = group.encoder_and_order()
            encoders.append(encoder)
            orders.append(order)
        partial = regroup(partial, orders)
        data = finish_statistics(partial, prior_scale, self.slopes)
        n_seen = [encoder.n_groups for encoder in encoders]
        return data, x_scaler, y_scaler, encoders, n_seen, self.y_moments.n
