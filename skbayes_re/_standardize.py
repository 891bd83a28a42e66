"""Standardisation: column means and scales of the features and target, in one pass over
row blocks (``Standardizer``) or merged over pieces of the data (``RunningMoments``). NumPy
only; re-exported by ``_validation``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BLOCK_ROWS", "RunningMoments", "Standardizer"]

# Rows per block when a pass over the data is made in pieces (standardising, sufficient
# statistics): bounds the temporaries of a pass, whatever the row count.
BLOCK_ROWS = 65_536


def _row_extremes(values: np.ndarray, block_rows: int):
    """Column minima and maxima (None for no rows), in row blocks."""
    if values.shape[0] == 0:
        return None, None
    blocks = [values[i : i + block_rows] for i in range(0, values.shape[0], block_rows)]
    low = np.min([np.min(block, axis=0) for block in blocks], axis=0)
    high = np.max([np.max(block, axis=0) for block in blocks], axis=0)
    return low, high


@dataclass(frozen=True)
class Standardizer:
    """Column means and scales. A constant column (sd below 1e-12 of its magnitude) gets
    scale 1 so it stays finite, is flagged in ``constant``, and when all its values are
    equal its mean is that value exactly, so it standardises to exact zeros."""

    mean: np.ndarray
    scale: np.ndarray
    constant: np.ndarray = False

    @classmethod
    def fit(
        cls, values: np.ndarray, weights: np.ndarray | None = None, block_rows: int = BLOCK_ROWS
    ) -> Standardizer:
        """Column means and standard deviations (weighted when ``weights`` are given), in
        row blocks (two passes), so no temporary as large as ``values`` is made. Missing
        values (NaN) are left out: each column's moments are those of its observed cells."""
        if values.ndim == 2 and np.isnan(values).any():
            return cls._fit_observed(values, weights)
        blocks = range(0, values.shape[0], block_rows)
        if weights is None:
            n_rows = max(values.shape[0], 1)
            mean = sum(np.sum(values[i : i + block_rows], axis=0) for i in blocks) / n_rows
            squares = sum(np.sum((values[i : i + block_rows] - mean) ** 2, axis=0) for i in blocks)
            total = values.shape[0]
        else:
            total = float(np.sum(weights))
            mean = sum(weights[i : i + block_rows] @ values[i : i + block_rows] for i in blocks)
            mean = mean / total
            squares = sum(
                weights[i : i + block_rows] @ (values[i : i + block_rows] - mean) ** 2
                for i in blocks
            )
        return cls.from_moments(total, mean, squares, *_row_extremes(values, block_rows))

    @classmethod
    def _fit_observed(cls, values: np.ndarray, weights) -> Standardizer:
        """``fit`` for a matrix with missing values: per column, over its observed cells."""
        observed = ~np.isnan(values)
        column_weights = observed if weights is None else observed * weights[:, None]
        totals = column_weights.sum(axis=0)
        if not np.all(totals > 0):
            raise ValueError(
                f"Feature column(s) {np.flatnonzero(totals <= 0).tolist()} have no observed "
                "value (every cell is NaN, or has weight 0): they cannot be modelled."
            )
        filled = np.where(observed, values, 0.0)
        mean = (column_weights * filled).sum(axis=0) / totals
        squares = (column_weights * np.where(observed, filled - mean, 0.0) ** 2).sum(axis=0)
        low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        exact = low == high
        mean = np.where(exact, low, mean)
        scale = np.sqrt(squares / totals)
        constant = exact | ~(scale > 1e-12 * np.maximum(1.0, np.abs(mean)))
        return cls(mean=mean, scale=np.where(constant, 1.0, scale), constant=np.asarray(constant))

    @classmethod
    def from_moments(cls, n_rows: float, mean, squares, low=None, high=None) -> Standardizer:
        """From the row count (or weight total), column means and centred sums of squares,
        and optionally the columns' minima and maxima (which make constant means exact)."""
        mean = np.asarray(mean, dtype=float)
        exact = np.zeros(np.shape(mean), dtype=bool)
        if low is not None:
            exact = np.asarray(low == high)
            mean = np.where(exact, low, mean)
        scale = np.sqrt(squares / n_rows) if n_rows else np.ones_like(mean)
        constant = exact | ~(scale > 1e-12 * np.maximum(1.0, np.abs(mean)))
        return cls(
            mean=np.asarray(mean, dtype=float),
            scale=np.asarray(np.where(constant, 1.0, scale), dtype=float),
            constant=np.asarray(constant),
        )

    def transform(self, values: np.ndarray, block_rows: int = BLOCK_ROWS, order=None):
        """Standardised copy of ``values`` (its rows taken in ``order`` when given), C-ordered,
        written in row blocks (no other temporary as large as ``values``)."""
        out = np.empty(np.shape(values), dtype=np.float64)
        for start in range(0, out.shape[0], block_rows):
            rows = slice(start, start + block_rows)
            np.subtract(values[rows if order is None else order[rows]], self.mean, out=out[rows])
            out[rows] /= self.scale
        return out


@dataclass
class RunningMoments:
    """Row count (or weight total), column means, centred sums of squares and extremes,
    merged across row blocks by Chan's pairwise update (as stable as two passes): the
    standardisation of data seen in pieces (Dask partitions, ``partial_fit`` batches)."""

    n: float
    mean: np.ndarray
    m2: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, weights: np.ndarray | None = None) -> RunningMoments:
        shape = values.shape[1:]
        low = np.min(values, axis=0) if len(values) else np.full(shape, np.inf)
        high = np.max(values, axis=0) if len(values) else np.full(shape, -np.inf)
        if weights is None:
            mean = values.mean(axis=0) if len(values) else np.zeros(shape)
            return cls(float(len(values)), mean, ((values - mean) ** 2).sum(axis=0), low, high)
        total = float(np.sum(weights))
        mean = weights @ values / total if total else np.zeros(shape)
        return cls(total, mean, weights @ (values - mean) ** 2, low, high)

    def merge(self, other: RunningMoments) -> RunningMoments:
        n = self.n + other.n
        if n == 0:
            return self
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.n * other.n / n)
        low, high = np.minimum(self.low, other.low), np.maximum(self.high, other.high)
        return RunningMoments(n, mean, m2, low, high)

    def standardizer(self) -> Standardizer:
        """The scaler ``Standardizer.fit`` would give on all the rows."""
        return Standardizer.from_moments(self.n, self.mean, self.m2, self.low, self.high)
