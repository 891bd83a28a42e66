"""The data layer: grouping columns, sample weights, standardisation, label checks at predict."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skbayes_re._validation import (
    GroupEncoder,
    RunningMoments,
    Standardizer,
    keep_weighted_rows,
    resolve_group_columns,
    validate_sample_weight,
    warn_if_no_label_seen,
)


@pytest.fixture
def frame():
    return pd.DataFrame({"x0": [0.1, 0.2, 0.3], "x1": [1.0, 2.0, 3.0], "g": ["a", "b", "a"]})


@pytest.mark.parametrize("groups", [["g", "g"], [2, 2], [2, -1]], ids=["names", "positions", "neg"])
def test_grouping_column_named_twice_is_refused(frame, groups):
    with pytest.raises(ValueError, match="grouping column 'g' twice"):
        resolve_group_columns(frame, groups, 3)


def test_position_named_twice_in_an_array_is_refused():
    with pytest.raises(ValueError, match="grouping column 1 twice"):
        resolve_group_columns(np.zeros((3, 2)), [1, -1], 2)


def test_weighted_standardisation_equals_repeated_rows():
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, size=(40, 3))
    weights = rng.integers(1, 4, size=40).astype(float)
    repeated = Standardizer.fit(np.repeat(values, weights.astype(int), axis=0))
    weighted = Standardizer.fit(values, weights, block_rows=7)
    assert_allclose(weighted.mean, repeated.mean, rtol=1e-13)
    assert_allclose(weighted.scale, repeated.scale, rtol=1e-13)

    halves = RunningMoments.of(values[:25], weights[:25]).merge(
        RunningMoments.of(values[25:], weights[25:])
    )
    merged = halves.standardizer()
    assert halves.n == weights.sum()
    assert_allclose(merged.mean, repeated.mean, rtol=1e-13)
    assert_allclose(merged.scale, repeated.scale, rtol=1e-13)


@pytest.mark.parametrize("value", [3.7, -2.9, 1e5 + 0.3, 1.0 / 3.0])
def test_constant_column_standardises_to_exact_zeros(value):
    values = np.column_stack([np.full(7, value), np.arange(7.0)])
    for scaler in (
        Standardizer.fit(values, block_rows=3),
        Standardizer.fit(values, np.arange(1.0, 8.0)),
        RunningMoments.of(values[:3]).merge(RunningMoments.of(values[3:])).standardizer(),
    ):
        assert_array_equal(scaler.constant, [True, False])
        assert scaler.mean[0] == value and scaler.scale[0] == 1.0
        assert_array_equal(scaler.transform(values)[:, 0], 0.0)
    target = Standardizer.fit(np.full(5, value))
    assert bool(target.constant) and float(target.mean) == value


def test_sample_weight_validation():
    target = np.zeros(4)
    assert validate_sample_weight(None, target) is None
    assert validate_sample_weight([1, 1, 1, 1], target) is None  # the unweighted path
    assert_array_equal(validate_sample_weight([0, 2, 1, 0.5], target), [0.0, 2.0, 1.0, 0.5])
    for bad, message in [
        ([1, -1, 1, 1], "Negative values"),
        ([1, np.nan, 1, 1], "NaN"),
        ([1, np.inf, 1, 1], "infinity"),
        ([0, 0, 0, 0], "at least one non-zero"),
        ([1, 1, 1], r"shape"),
    ]:
        with pytest.raises(ValueError, match=message):
            validate_sample_weight(bad, target)


def test_rows_of_weight_zero_are_dropped():
    features = np.arange(8.0).reshape(4, 2)
    labels = [pd.Series(["a", "b", "c", "d"])]
    kept = keep_weighted_rows(np.array([1.0, 0.0, 2.0, 0.0]), features, np.arange(4.0), labels)
    features_kept, target_kept, labels_kept, weights_kept = kept
    assert_array_equal(features_kept, [[0.0, 1.0], [4.0, 5.0]])
    assert_array_equal(target_kept, [0.0, 2.0])
    assert list(labels_kept[0]) == ["a", "c"] and list(labels_kept[0].index) == [0, 1]
    assert_array_equal(weights_kept, [1.0, 2.0])


def _encoded(labels, seen):
    encoder = GroupEncoder("g").fit(pd.Series(seen))
    column = pd.Series(labels)
    return encoder, column, encoder.transform(column)


def test_labels_of_another_type_warn_with_examples():
    encoder, column, codes = _encoded(["1", "2", "3", "4"], [1, 2, 3, 4, 5])
    with pytest.warns(UserWarning, match="grouping column 'g'") as record:
        warn_if_no_label_seen(encoder, column, codes)
    message = str(record[0].message)
    assert "seen in fit: [1, 2, 3, ...] (int)" in message
    assert "given: ['1', '2', '3', ...] (str)" in message


@pytest.mark.parametrize(
    "labels",
    [[None, np.nan], ["a", None], ["zz", "a"]],
    ids=["all missing", "seen and missing", "seen and new"],
)
def test_no_warning_when_a_label_is_seen_or_all_are_missing(labels):
    encoder, column, codes = _encoded(labels, ["a", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_no_label_seen(encoder, column, codes)
