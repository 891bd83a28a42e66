"""Plots of random-slope models: shrinkage of a slope term and the group-lines lattice."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from skbayes_re import RandomEffectsRegressor, RandomInterceptRegressor
from skbayes_re.plotting import group_lines_table, plot_group_lines, shrinkage_table


@pytest.fixture(scope="module")
def data():
    """Groups of 3 to 60 rows with their own intercepts and slopes on ``x``."""
    rng = np.random.default_rng(5)
    sizes = np.repeat([3, 6, 15, 30, 60], 4)
    group = np.repeat(np.arange(len(sizes)), sizes)
    x = rng.uniform(0, 10, size=group.size)
    other = rng.normal(size=group.size)
    lines = rng.multivariate_normal([0.0, 0.0], [[4.0, 0.5], [0.5, 1.0]], size=len(sizes))
    y = 2.0 + 1.5 * x - 0.7 * other + lines[group, 0] + lines[group, 1] * x
    y += rng.normal(scale=1.5, size=group.size)
    X = pd.DataFrame({"x": x, "other": other, "g": pd.Categorical(group)})
    return X, y


@pytest.fixture(scope="module")
def model(data):
    X, y = data
    return RandomEffectsRegressor(random_slopes={"g": ["x"]}, random_state=0).fit(X, y)


def test_no_pooling_slope_is_each_groups_least_squares_line(model, data):
    X, y = data
    table = shrinkage_table(model, X, y, term="x")
    assert table.attrs["term"] == "x"
    residual = y - X[["x", "other"]].to_numpy() @ model.coef_
    codes = X["g"].cat.codes.to_numpy()
    for g in range(len(table)):
        rows = codes == g
        design = np.column_stack([np.ones(rows.sum()), X["x"].to_numpy()[rows]])
        line = np.linalg.lstsq(design, residual[rows], rcond=None)[0]
        assert_allclose(table["no_pooling"].iloc[g], model.coef_[0] + line[1], rtol=1e-8)
    effects = model.group_effects_["g"]["x"].to_numpy()
    assert_allclose(table["partial_pooling"], model.coef_[0] + effects)
    assert_allclose(table["global_intercept"], model.coef_[0])


def test_small_groups_slopes_are_pulled_in_more(model, data):
    X, y = data
    table = shrinkage_table(model, X, y, term="x")
    distance = np.abs(table["partial_pooling"] - table["global_intercept"])
    raw = np.abs(table["no_pooling"] - table["global_intercept"])
    ratio = (distance / raw).groupby(table["n"]).median()
    assert ratio.iloc[0] < ratio.iloc[-1]  # 3-row groups keep less of their own slope


def test_unknown_term_is_a_value_error(model, data):
    X, y = data
    with pytest.raises(ValueError, match=r"term='other' is not a term .* \['intercept', 'x'\]"):
        shrinkage_table(model, X, y, term="other")
    intercepts = RandomInterceptRegressor(random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="its terms are \\['intercept'\\]"):
        shrinkage_table(intercepts, X, y, term="x")


def test_group_lines_are_the_posterior_mean_lines(model, data):
    X, y = data
    table = group_lines_table(model, X, y, labels=[0, 19])
    assert list(table.columns) == ["group", "x", "mean", "lower", "upper", "population"]
    assert table.attrs["feature"] == "x"
    for label in (0, 19):
        line = table[table["group"] == label]
        other = X.loc[X["g"] == label, "other"].mean()
        effect = model.group_effects_["g"].loc[label]
        expected = (
            model.intercept_
            + effect["intercept"]
            + model.coef_[1] * other
            + (model.coef_[0] + effect["x"]) * line["x"]
        )
        assert_allclose(line["mean"], expected, rtol=1e-4, atol=1e-4)
        population = model.intercept_ + model.coef_[1] * other + model.coef_[0] * line["x"]
        assert_allclose(line["population"], population, rtol=1e-6)
        assert np.all(line["lower"] < line["mean"]) and np.all(line["mean"] < line["upper"])
    small = table[table["group"] == 0]
    large = table[table["group"] == 19]
    width = (small["upper"] - small["lower"]).mean(), (large["upper"] - large["lower"]).mean()
    assert width[0] > width[1]  # 3 rows leave the line less certain than 60


def test_plot_group_lines_draws_one_panel_per_group(model, data):
    X, y = data
    axes = plot_group_lines(model, X, y)
    assert len(axes) == 20
    assert [ax.get_title() for ax in axes[:3]] == ["0", "1", "2"]
    assert len(axes[0].collections) == 2  # band and data points
    plt.close("all")
    _, given = plt.subplots(1, 2)
    drawn = plot_group_lines(model, X, y, labels=[4, 7], ax=given)
    assert list(drawn) == list(given)
    with pytest.raises(ValueError, match="2 Axes; 3 panels"):
        plot_group_lines(model, X, y, labels=[1, 2, 3], ax=given)
    with pytest.raises(ValueError, match="not seen in fit"):
        plot_group_lines(model, X, y, labels=[99], ax=given)
    plt.close("all")


def test_group_lines_of_a_random_intercept_model_are_parallel(data):
    X, y = data
    intercepts = RandomInterceptRegressor(random_state=0).fit(X, y)
    table = group_lines_table(intercepts, X, y, feature="x", labels=[0, 1])
    slopes = [np.polyfit(part["x"], part["mean"], 1)[0] for _, part in table.groupby("group")]
    assert_allclose(slopes, intercepts.coef_[0], rtol=1e-5)
