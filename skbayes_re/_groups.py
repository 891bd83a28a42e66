"""Group labels: checking them and encoding them as integer codes.

Part of data handling (``_validation.py`` re-exports these names): NumPy and pandas only.
A grouping column's labels become codes ``0 .. n_groups - 1``; unseen and missing labels
become ``-1`` when predicting, and a batch whose labels were none of them seen in fit warns.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable

import numpy as np
import pandas as pd

__all__ = ["GroupEncoder", "check_labels", "warn_if_no_label_seen"]


def check_labels(labels: pd.Series, name: str) -> None:
    """Labels must be hashable, and numeric ones finite (NaN means a missing label)."""
    if labels.dtype == object:
        try:
            pd.unique(labels)
        except TypeError:
            bad = next(v for v in labels if not isinstance(v, Hashable))
            raise TypeError(
                f"Grouping column {name!r} holds an unhashable label {bad!r}; each label "
                "argument must be a string or a number."
            ) from None
        numeric = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=float)
    elif pd.api.types.is_float_dtype(labels.dtype):
        numeric = labels.to_numpy(dtype=float)
    else:
        return
    if np.isinf(numeric).any():
        raise ValueError(f"Input X contains infinity in grouping column {name!r}.")


class GroupEncoder:
    """Map the labels of one grouping column (a pandas Series) to integer codes.

    Seen labels get codes ``0 .. n_groups-1`` in sorted order when sortable. Unseen or
    missing labels get ``-1`` at transform time. Vectorised through pandas' factorisation,
    so millions of rows of categorical, integer or string labels encode in well under a second.
    """

    def __init__(self, name: str):
        self.name = name

    def fit(self, labels: pd.Series) -> GroupEncoder:
        check_labels(labels, self.name)
        try:
            _, uniques = pd.factorize(labels, sort=True, use_na_sentinel=True)
        except TypeError:  # labels of mixed, unorderable types
            _, uniques = pd.factorize(labels, sort=False, use_na_sentinel=True)
        if len(uniques) == 0:
            raise ValueError(
                f"Grouping column {self.name!r} has no non-missing labels; it cannot define groups."
            )
        self.categories_ = pd.Index(np.asarray(uniques))
        return self

    def transform(self, labels: pd.Series) -> np.ndarray:
        check_labels(labels, self.name)
        try:
            codes = self.categories_.get_indexer(pd.Index(labels))
        except (TypeError, ValueError):  # labels not comparable with the categories
            codes = pd.Index(self.categories_, dtype=object).get_indexer(
                pd.Index(labels, dtype=object)
            )
        return np.asarray(codes, dtype=np.int64)

    @property
    def n_groups(self) -> int:
        return len(self.categories_)


def warn_if_no_label_seen(encoder: GroupEncoder, labels: pd.Series, codes: np.ndarray) -> None:
    """Warn when none of a batch's labels (missing ones aside) was seen in fit: often labels
    of another type than in fit (``1`` against ``"1"``), which match no group."""
    given = labels[~labels.isna().to_numpy()]
    if len(given) == 0 or np.any(codes >= 0):
        return
    warnings.warn(
        f"None of the labels of grouping column {encoder.name!r} was seen in fit, so every "
        "row gets the population-level prediction. Labels seen in fit: "
        f"{_preview(encoder.categories_)}; given: {_preview(pd.unique(given))}. If these are "
        "new groups, this is expected; otherwise make the labels match those of fit (the "
        "same type, e.g. 1 and not '1').",
        UserWarning,
        stacklevel=5,  # the caller of predict, predict_interval or sample_y
    )


def _preview(labels, shown: int = 3) -> str:
    """A few distinct labels and their types, e.g. ``[1, 2, 3, ...] (int)``."""
    values = [v.item() if isinstance(v, np.generic) else v for v in list(labels)[:shown]]
    more = ", ..." if len(labels) > shown else ""
    types = ", ".join(sorted({type(v).__name__ for v in values}))
    return f"[{', '.join(map(repr, values))}{more}] ({types})"
