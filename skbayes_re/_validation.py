"""Data handling: input validation and grouping columns (label encoding is in ``_groups.py``
and standardisation in ``_standardize.py``, both re-exported here).

Nothing here knows about PyMC. The estimators call these helpers to turn user input into
float arrays of fixed effects plus integer group codes, and to put data on the standardised
scale the priors are stated on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import _check_sample_weight, validate_data

from ._groups import GroupEncoder, check_labels, warn_if_no_label_seen
from ._standardize import BLOCK_ROWS, RunningMoments, Standardizer

__all__ = [
    "BLOCK_ROWS",
    "GroupEncoder",
    "check_labels",
    "check_offset_observed",
    "RunningMoments",
    "is_dask_collection",
    "Standardizer",
    "feature_index",
    "keep_weighted_rows",
    "offset_position",
    "resolve_group_columns",
    "resolve_random_slopes",
    "seed_from_random_state",
    "split_features_and_groups",
    "split_offset",
    "validate_sample_weight",
    "validate_target",
    "warn_if_no_label_seen",
]


def is_dask_collection(value) -> bool:
    """Whether ``value`` is a Dask collection (DataFrame, Series, array), without importing
    Dask: Dask is an optional dependency, loaded only when such a collection arrives."""
    return type(value).__module__.split(".")[0] == "dask"


def seed_from_random_state(random_state) -> int:
    """Turn a scikit-learn ``random_state`` into one integer seed for NumPy's Generator."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def validate_target(y) -> np.ndarray:
    """Return ``y`` as a finite 1-D float array (a column vector is accepted with a warning)."""
    from sklearn.utils.validation import column_or_1d

    if y is None:
        raise ValueError("This estimator requires y to be passed, but the target y is None.")
    y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
    return column_or_1d(y, warn=True).astype(np.float64, copy=False)


def validate_sample_weight(sample_weight, target: np.ndarray) -> np.ndarray | None:
    """Non-negative finite weights, one per row, not all zero (scikit-learn's checks); None
    when there are none or all are 1, so an unweighted fit takes the unweighted path."""
    if sample_weight is None:
        return None
    weights = _check_sample_weight(
        sample_weight, target, dtype=np.float64, ensure_non_negative=True
    )
    return None if np.all(weights == 1.0) else weights


def keep_weighted_rows(weights, features, target, labels):
    """The rows of positive weight: a weight of 0 means the row is absent, so its group
    label is not seen in fit either. Returns ``(features, target, labels, weights)``."""
    if weights is None or np.all(weights > 0):
        return features, target, labels, weights
    keep = weights > 0
    kept_labels = [column[keep].reset_index(drop=True) for column in labels]
    return features[keep], target[keep], kept_labels, weights[keep]


def _is_group_dtype(dtype) -> bool:
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
    )


def resolve_group_columns(X, groups, n_features: int) -> list[int]:
    """Positions of the grouping columns named by ``groups`` (see the estimators' docs); a
    column named twice (by name or position) is an error."""
    positions = _group_positions(X, groups, n_features)
    for i, position in enumerate(positions):
        if position in positions[:i]:
            raise ValueError(
                f"groups names the grouping column {_column_label(X, position)!r} twice; "
                "name each grouping column once."
            )
    return positions


def _column_label(X, position: int):
    """A column's name (its position for arrays)."""
    return X.columns[position] if isinstance(X, pd.DataFrame) else position


def _group_positions(X, groups, n_features: int) -> list[int]:
    is_frame = isinstance(X, pd.DataFrame)
    if groups is None:
        return []
    if isinstance(groups, str):
        if groups == "from_dtype":
            if not is_frame:
                return []
            return [i for i, dtype in enumerate(X.dtypes) if _is_group_dtype(dtype)]
        groups = [groups]
    groups = list(groups)
    if not groups:
        return []
    if all(isinstance(g, (bool, np.bool_)) for g in groups):
        if len(groups) != n_features:
            raise ValueError(
                f"groups is a boolean mask of length {len(groups)}, but X has {n_features} columns."
            )
        return [i for i, flag in enumerate(groups) if flag]
    if all(isinstance(g, (int, np.integer)) for g in groups):
        return [_check_position(int(g), n_features) for g in groups]
    if all(isinstance(g, str) for g in groups):
        return [_position_of_name(X, name) for name in groups]
    raise ValueError(
        "groups must be 'from_dtype', a list of column names, a list of integer positions "
        f"or a boolean mask; got {groups!r}."
    )


def _check_position(position: int, n_features: int) -> int:
    if not -n_features <= position < n_features:
        raise ValueError(
            f"Grouping column position {position} is out of range for X with {n_features} columns."
        )
    return position % n_features


def _position_of_name(X, name: str) -> int:
    if not isinstance(X, pd.DataFrame):
        raise ValueError(
            f"Grouping column {name!r} is given by name, but X is not a pandas DataFrame "
            "with column names; pass integer positions or a boolean mask instead."
        )
    columns = list(map(str, X.columns))
    if name not in columns:
        raise ValueError(
            f"Grouping column {name!r} is not a column of X (columns: {_shown(columns)})."
        )
    return columns.index(name)


def resolve_random_slopes(X, random_slopes, group_positions, n_features) -> list[list[int]]:
    """Per grouping column (in ``group_positions`` order), the positions among the fixed
    features of the columns whose coefficients vary by it (see ``random_slopes``)."""
    slopes = [[] for _ in group_positions]
    if random_slopes is None:
        return slopes
    if not isinstance(random_slopes, dict):
        raise ValueError(
            "random_slopes must be a dict from a grouping column to the feature columns whose "
            f"coefficients vary by it, e.g. {{'subject': ['days']}}; got {random_slopes!r}."
        )
    fixed = [i for i in range(n_features) if i not in set(group_positions)]
    for key, columns in random_slopes.items():
        factor = _slope_factor(X, key, group_positions, n_features)
        if slopes[factor]:
            raise ValueError(f"random_slopes names grouping column {key!r} twice.")
        columns = [columns] if isinstance(columns, (str, int, np.integer)) else list(columns)
        positions = [
            _slope_column(X, key, column, group_positions, n_features) for column in columns
        ]
        if len(set(positions)) < len(positions):
            raise ValueError(f"random_slopes[{key!r}] names a column twice: {columns!r}.")
        slopes[factor] = [fixed.index(position) for position in positions]
    return slopes


def _slope_factor(X, key, group_positions, n_features) -> int:
    """Which grouping factor a ``random_slopes`` key names."""
    position = _column_position(X, key, n_features, what="random_slopes key")
    if position not in group_positions:
        raise ValueError(
            f"random_slopes key {key!r} is not a grouping column; slopes vary by a grouping "
            f"column (the grouping columns are {_describe_columns(X, group_positions)})."
        )
    return group_positions.index(position)


def _slope_column(X, key, column, group_positions, n_features) -> int:
    position = _column_position(X, column, n_features, what=f"random_slopes[{key!r}] column")
    if position in group_positions:
        raise ValueError(
            f"random_slopes[{key!r}] names {column!r}, a grouping column; a random slope varies "
            "the coefficient of a feature column."
        )
    return position


def _column_position(X, column, n_features: int, what: str) -> int:
    if isinstance(column, (bool, np.bool_)):
        raise ValueError(f"{what} {column!r} must be a column name or an integer position.")
    if isinstance(column, (int, np.integer)):
        if not -n_features <= int(column) < n_features:
            raise ValueError(
                f"{what} {int(column)} is out of range: X has {n_features} feature(s)."
            )
        return int(column) % n_features
    if not isinstance(X, pd.DataFrame):
        raise ValueError(
            f"{what} {column!r} is given by name, but X is not a pandas DataFrame with column "
            "names; use integer positions."
        )
    names = list(map(str, X.columns))
    if str(column) not in names:
        raise ValueError(f"{what} {column!r} is not a column of X (columns: {_shown(names)}).")
    return names.index(str(column))


def _describe_columns(X, positions) -> str:
    if isinstance(X, pd.DataFrame):
        return repr([str(X.columns[i]) for i in positions])
    return repr(list(positions))


def _shown(names: list[str]) -> str:
    return ", ".join(repr(c) for c in names[:10]) + (", ..." if len(names) > 10 else "")


def _as_2d_input(X, allow_nan: bool = False):
    """Check shape/sparsity/complexity without forcing a numeric dtype (labels may be text);
    a plain array may hold NaN (not inf) when ``allow_nan``."""
    if isinstance(X, pd.DataFrame):
        if X.shape[0] == 0:
            raise ValueError(
                f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required."
            )
        if X.shape[1] == 0:
            raise ValueError(f"X has no columns (shape={X.shape}); at least one is required.")
        return X
    # A plain array is validated like any scikit-learn input: finite everywhere, or finite
    # where observed when missing feature values are modelled.
    finite = "allow-nan" if allow_nan else True
    return check_array(X, dtype=None, accept_sparse=False, input_name="X", ensure_all_finite=finite)


def _check_numeric(feature_part, feature_positions: list[int]) -> None:
    """A feature column that does not convert to numbers is named, with what to do (numeric
    columns are not looked at: no pass over the data)."""
    if isinstance(feature_part, pd.DataFrame):
        columns = (
            (name, values)
            for name, values in feature_part.items()
            if not pd.api.types.is_numeric_dtype(values.dtype)
        )
    elif feature_part.dtype.kind in "biuf":
        return
    else:
        columns = ((position, feature_part[:, i]) for i, position in enumerate(feature_positions))
    for name, values in columns:
        try:
            np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:  # the same type, with the column named
            raise type(error)(
                f"Column {name!r} of X is not numeric ({error}). If it holds group labels, "
                "name it in groups=; otherwise encode it (e.g. with OneHotEncoder)."
            ) from None


def split_features_and_groups(estimator, X, groups, *, reset: bool):
    """Validate ``X`` and split it into a float feature matrix and raw group-label columns.

    Returns ``(features, labels, group_positions)`` where ``features`` is a float64 array of
    the non-grouping columns and ``labels`` a list of 1-D object arrays. ``features`` is
    finite, or holds NaN for missing values when the estimator's ``missing_features`` is
    ``"model"``; otherwise a NaN is a ``ValueError`` naming its columns. inf is always one.
    """
    allow_nan = getattr(estimator, "missing_features", "error") == "model"
    X = _as_2d_input(X, allow_nan)
    validate_data(estimator, X, skip_check_array=True, reset=reset)
    n_features = X.shape[1]
    positions = resolve_group_columns(X, groups, n_features)
    feature_positions = [i for i in range(n_features) if i not in set(positions)]
    if isinstance(X, pd.DataFrame):
        feature_part = X.iloc[:, feature_positions]
        label_columns = [X.iloc[:, i].reset_index(drop=True) for i in positions]
    else:
        feature_part = X[:, feature_positions]
        label_columns = [pd.Series(X[:, i]) for i in positions]
        models_missing = getattr(estimator, "_models_missing_features", lambda: False)()
        if allow_nan and not models_missing and any(c.isna().any() for c in label_columns):
            raise ValueError(
                "Input X contains NaN in a grouping column; a plain array must have every "
                "group label here (missing labels are accepted in DataFrame columns, and in "
                "arrays by the estimators that model missing values)."
            )
    if positions and not feature_positions:  # grouping columns only: intercepts alone
        return np.empty((X.shape[0], 0)), label_columns, positions
    _check_numeric(feature_part, feature_positions)
    features = check_array(
        feature_part,
        dtype=np.float64,
        ensure_min_features=0 if positions else 1,
        input_name="X",
        ensure_all_finite="allow-nan",
    )
    if not allow_nan:
        _refuse_missing(X, features, feature_positions)
    return features, label_columns, positions


def _refuse_missing(X, features: np.ndarray, feature_positions: list[int]) -> None:
    """A NaN feature under ``missing_features="error"``: a ``ValueError`` naming the columns."""
    columns = np.flatnonzero(np.isnan(features).any(axis=0))
    if columns.size:
        names = [_column_label(X, feature_positions[i]) for i in columns]
        raise ValueError(
            f"Input X contains NaN in feature column(s) {_shown(names)}. With "
            "missing_features='error' missing feature values are refused; set "
            "missing_features='model' to model them, or impute them first (e.g. in a Pipeline)."
        )


def offset_position(X, offset, group_positions: list[int], n_features: int) -> int | None:
    """The position in ``X`` of the ``offset`` column (None when there is none); it may not
    be a grouping column."""
    if offset is None:
        return None
    position = _column_position(X, offset, n_features, "offset")
    if position in group_positions:
        raise ValueError(
            f"offset {offset!r} is also a grouping column; the offset must be a numeric "
            "column of X (for example a log exposure)."
        )
    return position


def split_offset(features: np.ndarray, position, group_positions: list[int]):
    """``(features without the offset column, the offset)``: ``position`` is the offset's
    column in ``X``, whose grouping columns ``features`` already lacks."""
    if position is None:
        return features, None
    index = feature_index(position, group_positions)
    return np.delete(features, index, axis=1), np.ascontiguousarray(features[:, index])


def check_offset_observed(offset) -> None:
    """An offset column is never missing: NaN in it is a ``ValueError``."""
    if offset is not None and np.isnan(offset).any():
        raise ValueError(
            "Input X contains NaN in the offset column; the offset must be observed in every "
            "row (missing_features models feature columns only)."
        )


def feature_index(position: int, group_positions: list[int]) -> int:
    """The column of the feature matrix (grouping columns taken out) that holds column
    ``position`` of ``X``."""
    return position - sum(1 for g in group_positions if g < position)
