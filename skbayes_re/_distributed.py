"""Dask collections in and out: statistics on the workers, predictions as lazy collections.

The Gaussian models need only sufficient statistics, whose size depends on the features and
groups, never on the rows; so a Dask DataFrame (or array) of any length is fitted in two
passes over its partitions, each partition's result merged with its neighbour's in a tree:

1. moments and labels: per partition, row count, column means and centred sums of squares
   (merged exactly, by Chan's pairwise update) and the group labels seen, in order;
2. statistics: per partition, standardised with the pass-1 mean and scale and encoded with
   the pass-1 labels, the partial statistics of ``_models/statistics.py``.

Row weights (a Dask Series partitioned like ``X``) weight the moments and statistics; rows of
weight 0 are dropped in each partition before either pass, as ``fit`` drops them.

Only the merged moments and statistics reach the client; no partition's rows do. The result
equals the in-memory fit's statistics to rounding: same standardisation, same group order
(sorted labels; for categoricals, category order), same statistics.

Predictions map the fitted estimator over the partitions (it enters the task graph once and
is shipped to each worker once) and return Dask arrays, lazily.

Dask is imported here only, and this module only when a Dask collection arrives.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask.dataframe.utils import has_known_categories
from sklearn.utils.validation import validate_data

from ._models.statistics import PAIRS, merge_statistics, partial_statistics
from ._validation import (
    BLOCK_ROWS,
    GroupEncoder,
    RunningMoments,
    Standardizer,
    resolve_group_columns,
    resolve_random_slopes,
    seed_from_random_state,
)

__all__ = ["DaskFit", "dask_fit_statistics", "lazy_prediction"]


@dataclass
class _FirstPass:
    features: RunningMoments
    target: RunningMoments
    labels: list = field(default_factory=list)  # per grouping column, labels in order seen
    missing: list = field(default_factory=list)  # per partition, per column, missing labels

    def merge(self, other: _FirstPass) -> _FirstPass:
        labels = [
            pd.unique(np.concatenate([a, b])) if len(b) else a
            for a, b in zip(self.labels, other.labels, strict=True)
        ]
        return _FirstPass(
            self.features.merge(other.features),
            self.target.merge(other.target),
            labels,
            self.missing + other.missing,
        )


@dataclass
class DaskFit:
    """What a fit from a Dask collection learnt from its two passes."""

    x_scaler: Standardizer
    y_scaler: Standardizer
    positions: list[int]
    names: list
    slopes: list[list[int]]
    encoders: list[GroupEncoder]
    n_groups: list[int]
    n_seen: list[int]
    statistics: dict
    n_obs: float


# ----------------------------------------------------------------------------- inputs
def _as_frame(X) -> dd.DataFrame:
    if isinstance(X, dd.DataFrame):
        return X
    if isinstance(X, da.Array):
        if X.ndim != 2:
            raise ValueError(f"Expected a 2-D Dask array for X; got {X.ndim} dimension(s).")
        return dd.from_dask_array(X.rechunk({1: -1}))
    raise TypeError(
        "X must be a Dask DataFrame or a 2-D Dask array when y is a Dask collection; "
        f"got {type(X).__name__}."
    )


def _as_series(y, frame: dd.DataFrame, name: str = "y"):
    """``y`` (or the weights, ``name``) as a Dask Series partitioned like ``frame``."""
    if isinstance(y, dd.DataFrame) and len(y.columns) == 1:
        y = y[y.columns[0]]
    if isinstance(y, da.Array):
        if y.ndim != 1:
            raise ValueError(f"Expected a 1-D Dask array for {name}; got {y.ndim} dimension(s).")
        y = dd.from_dask_array(y)
    if not isinstance(y, dd.Series):
        raise TypeError(
            f"{name} must be a Dask Series or a 1-D Dask array when X is a Dask collection "
            f"(both are partitioned alike); got {type(y).__name__}."
        )
    if y.npartitions != frame.npartitions:
        raise ValueError(
            f"X has {frame.npartitions} partitions but {name} has {y.npartitions}; take both "
            "from the same Dask DataFrame (e.g. X = df[features], y = df[target])."
        )
    return y


def _columns(estimator, meta: pd.DataFrame, group_selection, slope_selection):
    """Grouping and feature columns from the collection's metadata (no data read)."""
    validate_data(estimator, meta, skip_check_array=True, reset=True)
    n_features = meta.shape[1]
    positions = resolve_group_columns(meta, group_selection, n_features)
    slopes = resolve_random_slopes(meta, slope_selection, positions, n_features)
    features = [i for i in range(n_features) if i not in set(positions)]
    for i in features:
        if not pd.api.types.is_numeric_dtype(meta.dtypes.iloc[i]):
            raise ValueError(
                f"Feature column {meta.columns[i]!r} has dtype {meta.dtypes.iloc[i]}; features "
                "must be numeric (make it a grouping column with groups=[...] if it is a label)."
            )
    return positions, features, slopes


# ----------------------------------------------------------------------------- passes
def _partition_arrays(part: pd.DataFrame, target: pd.Series, weight, features, positions):
    """A partition's features, target, labels and weights (None for weight 1), its rows of
    weight 0 dropped."""
    values = part.iloc[:, features].to_numpy(dtype=np.float64)
    y = target.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(
            "Input X contains NaN or infinity in a feature column. Dask input is reduced to "
            "sufficient statistics, which cannot hold missing values: fit in memory "
            "(missing_features='model'), or impute them first."
        )
    if not np.all(np.isfinite(y)):
        raise ValueError("Input y contains NaN or infinity.")
    labels = [part.iloc[:, i].reset_index(drop=True) for i in positions]
    if weight is None:
        return values, y, labels, None
    weights = _partition_weights(weight, len(y))
    keep = weights > 0
    labels = [column[keep].reset_index(drop=True) for column in labels]
    return values[keep], y[keep], labels, weights[keep]


def _partition_weights(weight: pd.Series, n_rows: int) -> np.ndarray:
    weights = weight.to_numpy(dtype=np.float64)
    if len(weights) != n_rows:
        raise ValueError(
            f"A partition of sample_weight has {len(weights)} rows but X's has {n_rows}; take "
            "both from the same Dask DataFrame."
        )
    if not np.all(np.isfinite(weights)):
        raise ValueError("Input sample_weight contains NaN or infinity.")
    if np.any(weights < 0):
        raise ValueError("Negative values in data passed to `sample_weight`.")
    return weights


def _first_pass(part, target, weight, features, positions) -> _FirstPass:
    values, y, labels, weights = _partition_arrays(part, target, weight, features, positions)
    return _FirstPass(
        RunningMoments.of(values, weights),
        RunningMoments.of(y, weights),
        [_labels_present(column) for column in labels],
        [[int(column.isna().sum()) for column in labels]],
    )


def _labels_present(column: pd.Series) -> np.ndarray:
    """A partition's distinct labels: in order of appearance (what orders unsortable labels
    in memory), or for a categorical in category order (what orders them then)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = np.unique(column.cat.codes.to_numpy())
        return np.asarray(column.cat.categories[codes[codes >= 0]], dtype=object)
    return pd.unique(column.dropna().to_numpy())


def _second_pass(part, target, weight, features, positions, fitted: DaskFit, offsets) -> dict:
    values, y, labels, weights = _partition_arrays(part, target, weight, features, positions)
    codes = []
    for k, (encoder, column) in enumerate(zip(fitted.encoders, labels, strict=True)):
        code = encoder.transform(column)
        missing = code < 0
        code[missing] = fitted.n_seen[k] + offsets[k] + np.arange(int(missing.sum()))
        codes.append(code)
    total = None
    for start in range(0, max(len(y), 1), BLOCK_ROWS):
        rows = slice(start, start + BLOCK_ROWS)
        block = fitted.x_scaler.transform(values[rows])
        part_codes = [code[rows] for code in codes]
        piece = partial_statistics(
            block,
            fitted.y_scaler.transform(y[rows]),
            part_codes,
            fitted.n_groups,
            fitted.slopes,
            None if weights is None else weights[rows],
        )
        total = merge_statistics(total, piece)
    return total


def _tree(items: list, merge):
    """Merge delayed results pairwise, neighbours first, keeping their order."""
    while len(items) > 1:
        merged = [merge(a, b) for a, b in zip(items[0::2], items[1::2], strict=False)]
        items = merged + (items[-1:] if len(items) % 2 else [])
    return items[0]


def _encoders(names, frame: dd.DataFrame, first: _FirstPass, positions) -> list[GroupEncoder]:
    """Each grouping column's encoder, as ``fit`` would build it on all rows in memory:
    labels sorted, a categorical's in its category order (when Dask knows the categories;
    otherwise partitions may order them differently, and the labels are sorted)."""
    encoders = []
    for name, position, labels in zip(names, positions, first.labels, strict=True):
        column = frame.iloc[:, position]
        if isinstance(column.dtype, pd.CategoricalDtype) and has_known_categories(column):
            labels = pd.Categorical(labels, dtype=column.dtype)
        encoders.append(GroupEncoder(str(name)).fit(pd.Series(labels)))
    return encoders


def dask_fit_statistics(
    estimator, X, y, sample_weight, group_selection, slope_selection
) -> DaskFit:
    """Validate a Dask ``X``, ``y`` and ``sample_weight`` (or None), run the two passes on
    the workers (or the local scheduler when no client is active), and return the merged
    statistics."""
    frame = _as_frame(X)
    target = _as_series(y, frame)
    meta = frame._meta
    positions, features, slopes = _columns(estimator, meta, group_selection, slope_selection)
    names = [meta.columns[i] for i in positions]
    weight_parts = [None] * frame.npartitions
    if sample_weight is not None:
        weight_parts = _as_series(sample_weight, frame, "sample_weight").to_delayed()
    parts = list(zip(frame.to_delayed(), target.to_delayed(), weight_parts, strict=True))
    first_pass = dask.delayed(_first_pass)
    first = _tree(
        [first_pass(p, t, w, features, positions) for p, t, w in parts],
        dask.delayed(_FirstPass.merge),
    ).compute()
    if first.target.n == 0:
        if sample_weight is not None:
            raise ValueError("Sample weights must contain at least one non-zero number.")
        raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
    encoders = _encoders(names, frame, first, positions)
    n_seen = [encoder.n_groups for encoder in encoders]
    missing = np.asarray(first.missing, dtype=np.int64).reshape(len(parts), len(positions))
    offsets = np.vstack([np.zeros((1, len(positions)), np.int64), np.cumsum(missing, axis=0)])
    fitted = DaskFit(
        x_scaler=first.features.standardizer(),
        y_scaler=first.target.standardizer(),
        positions=positions,
        names=names,
        slopes=slopes,
        encoders=encoders,
        n_groups=[seen + int(total) for seen, total in zip(n_seen, offsets[-1], strict=True)],
        n_seen=n_seen,
        statistics={},
        n_obs=first.target.n,
    )
    second_pass = dask.delayed(_second_pass)
    shared = dask.delayed(fitted, pure=True)  # enters the graph, and each worker, once
    statistics = _tree(
        [
            second_pass(p, t, w, features, positions, shared, offsets[i])
            for i, (p, t, w) in enumerate(parts)
        ],
        dask.delayed(merge_statistics),
    ).compute()
    fitted.statistics = _own_copies(statistics)
    return fitted


def _own_copies(statistics: dict) -> dict:
    """Aligned copies of arrays received from workers (deserialised buffers may be
    unaligned, which PyTensor's C code refuses)."""
    copies = {name: np.array(value) for name, value in statistics.items() if name != PAIRS}
    copies[PAIRS] = {
        pair: (np.array(keys), np.array(values))
        for pair, (keys, values) in statistics[PAIRS].items()
    }
    return copies


# ----------------------------------------------------------------------------- predict
_OUTPUT_SHAPES = {"predict": (), "predict_interval": (2,), "sample_y": None}


def _predict_part(estimator, part, method: str, kwargs: dict):
    return getattr(estimator, method)(part, **kwargs)


def _shared_estimator(estimator):
    """The fitted estimator as one input of every partition's task: with a distributed
    client running, scattered to every worker once now (a model with many groups and draws
    weighs hundreds of megabytes, which would otherwise travel inside the task graph and be
    refused as too large a graph); otherwise one key of the graph."""
    try:
        from distributed import get_client

        client = get_client()
    except (ImportError, ValueError):  # no distributed, or no client running
        return dask.delayed(estimator, pure=True)
    return client.scatter(estimator, broadcast=True)


def lazy_prediction(estimator, X, method: str, **kwargs):
    """``estimator.<method>`` over the partitions of a Dask DataFrame or array, as Dask
    arrays (unknown chunk lengths until computed); nothing is computed here."""
    if isinstance(X, da.Array):
        blocks = list(X.rechunk({1: -1}).to_delayed().ravel())
    else:
        blocks = list(X.to_delayed())
    shared = _shared_estimator(estimator)
    run = dask.delayed(_predict_part, pure=True)
    if method == "sample_y":
        seed = seed_from_random_state(kwargs.pop("random_state"))
        seeds = np.random.SeedSequence(seed).generate_state(len(blocks))
        results = [
            run(shared, block, method, {**kwargs, "random_state": int(seed)})
            for block, seed in zip(blocks, seeds, strict=True)
        ]
        return _stack(results, (kwargs["n_samples"],))
    results = [run(shared, block, method, kwargs) for block in blocks]
    if method == "predict" and kwargs.get("return_std"):
        pick = dask.delayed(operator.getitem, pure=True)
        return (
            _stack([pick(r, 0) for r in results], ()),
            _stack([pick(r, 1) for r in results], ()),
        )
    return _stack(results, _OUTPUT_SHAPES[method])


def _stack(delayed_arrays, trailing: tuple):
    pieces = [
        da.from_delayed(d, shape=(np.nan, *trailing), dtype=np.float64) for d in delayed_arrays
    ]
    return da.concatenate(pieces, axis=0)
