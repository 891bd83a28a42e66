"""Plots and the shrinkage table, on one fit of simulated grouped data with known truth."""

import copy

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection, PolyCollection  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from skbayes_re import BayesianLinearRegressor, RandomInterceptRegressor  # noqa: E402
from skbayes_re.plotting import (  # noqa: E402
    plot_loss,
    plot_posterior,
    plot_prior_posterior_fit,
    plot_residuals,
    plot_shrinkage,
    shrinkage_table,
)

SIZES = np.unique(np.round(np.geomspace(2, 400, 30)).astype(int))
GROUP_SD, NOISE_SD, INTERCEPT, SLOPE = 1.0, 2.0, 3.0, 1.5


def _simulate(seed=42):
    rng = np.random.default_rng(seed)
    sizes = rng.permutation(SIZES)  # sizes not in label order
    code = np.repeat(np.arange(sizes.size), sizes)
    effect = rng.normal(0.0, GROUP_SD, sizes.size)
    x = rng.normal(size=code.size)
    y = INTERCEPT + SLOPE * x + effect[code] + rng.normal(0.0, NOISE_SD, code.size)
    labels = np.array([f"zip{i:02d}" for i in range(sizes.size)])
    X = pd.DataFrame({"x": x, "g": pd.Categorical(labels[code])})
    return X, y


@pytest.fixture(scope="module")
def data():
    return _simulate()


@pytest.fixture(scope="module")
def model(data):
    X, y = data
    return RandomInterceptRegressor(groups=["g"], random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def table(model, data):
    X, y = data
    return shrinkage_table(model, X, y)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _save(ax, tmp_path, name):
    path = tmp_path / f"{name}.png"
    ax.figure.savefig(path, dpi=80)
    assert path.stat().st_size > 5_000
    return path


# ------------------------------------------------------------------ shrinkage_table
def test_table_shape_and_columns(table, data, model):
    X, _ = data
    assert len(table) == SIZES.size
    expected = {
        "group",
        "n",
        "no_pooling",
        "partial_pooling",
        "global_intercept",
        "size_tercile",
        "shrinkage",
    }
    assert expected <= set(table.columns)
    assert table["n"].sum() == len(X)
    assert sorted(table["n"]) == sorted(SIZES.tolist())
    assert table.attrs["global_intercept"] == pytest.approx(model.intercept_)
    assert table.attrs["group_column"] == "g"
    assert np.allclose(table["global_intercept"], model.intercept_)
    assert list(table["group"]) == list(model.group_effects_["g"].index)


def test_no_pooling_matches_closed_form(table, data, model):
    X, y = data
    residual = pd.Series(y - X["x"].to_numpy() * model.coef_[0])
    within = residual.groupby(X["g"].astype(str).to_numpy()).mean()
    got = table.set_index("group")["no_pooling"]
    assert np.allclose(got.loc[within.index].to_numpy(), within.to_numpy(), rtol=0, atol=1e-10)


def test_partial_pooling_is_fitted_random_intercept(table, model):
    effects = model.group_effects_["g"]
    got = table.set_index("group")["partial_pooling"]
    assert np.allclose(got.loc[effects.index], model.intercept_ + effects.to_numpy())


def test_shrinkage_formula(table):
    a = table["global_intercept"]
    expected = 1 - (table["partial_pooling"] - a) / (table["no_pooling"] - a)
    assert np.allclose(table["shrinkage"], expected)


def test_small_clusters_shrink_more(table):
    by_tercile = table.groupby("size_tercile", observed=True)["shrinkage"].mean()
    assert by_tercile["small"] > by_tercile["large"] + 0.25
    assert by_tercile["small"] > by_tercile["medium"] > by_tercile["large"]
    # Shrinkage of the two smallest clusters beats that of the two largest.
    ordered = table.sort_values("n")["shrinkage"].to_numpy()
    assert ordered[:2].min() > ordered[-2:].max()


def test_partial_pooling_between_no_pooling_and_global(table):
    a = table["global_intercept"].to_numpy()
    no_pool = table["no_pooling"].to_numpy()
    partial = table["partial_pooling"].to_numpy()
    tol = 0.05
    assert np.all(partial >= np.minimum(no_pool, a) - tol)
    assert np.all(partial <= np.maximum(no_pool, a) + tol)


def test_size_terciles_follow_cluster_size(table):
    sizes = table.groupby("size_tercile", observed=True)["n"]
    assert sizes.max()["small"] < sizes.min()["medium"]
    assert sizes.max()["medium"] < sizes.min()["large"]
    counts = table["size_tercile"].value_counts()
    assert counts.max() - counts.min() <= 1


def test_table_from_plain_array_and_position(data, table):
    X, y = data
    codes = X["g"].cat.codes.to_numpy().astype(float)
    array = np.column_stack([X["x"].to_numpy(), codes])
    fitted = RandomInterceptRegressor(groups=[1], random_state=0).fit(array, y)
    from_array = shrinkage_table(fitted, array, y, group=1)
    assert from_array.attrs["group_column"] == 1
    assert from_array["n"].sum() == len(y)
    assert np.allclose(from_array["n"], table["n"])
    for column in ("no_pooling", "partial_pooling", "shrinkage"):
        assert np.allclose(from_array[column], table[column])


def test_absent_and_unseen_labels(model, data):
    X, y = data
    keep = (X["g"] != "zip00").to_numpy()
    X_part = X[keep].copy()
    X_part["g"] = X_part["g"].astype(object)
    X_part.iloc[:3, 1] = "never-seen"
    part = shrinkage_table(model, X_part, y[keep])
    row = part.set_index("group").loc["zip00"]
    assert row["n"] == 0
    assert np.isnan(row["no_pooling"]) and np.isnan(row["shrinkage"])
    assert np.isfinite(row["partial_pooling"])
    assert part["n"].sum() == keep.sum() - 3  # unseen labels belong to no cluster


def test_group_argument_and_errors(model, data):
    X, y = data
    assert shrinkage_table(model, X, y, group="g").equals(shrinkage_table(model, X, y))
    with pytest.raises(ValueError, match="not a grouping column"):
        shrinkage_table(model, X, y, group="x")
    with pytest.raises(ValueError, match="not a grouping column"):
        plot_shrinkage(model, X, y, group="nope")
    with pytest.raises(NotFittedError):
        shrinkage_table(RandomInterceptRegressor(groups=["g"]), X, y)
    with pytest.raises(ValueError):
        shrinkage_table(model, X, y[:-1])


@pytest.fixture(scope="module")
def linear(data):
    X, y = data
    return BayesianLinearRegressor(random_state=0).fit(X[["x"]], y)


def test_estimator_without_groups_is_refused(linear, data):
    X, y = data
    with pytest.raises(ValueError, match="without a grouping column"):
        shrinkage_table(linear, X[["x"]], y)
    with pytest.raises(ValueError, match="without a grouping column"):
        plot_shrinkage(linear, X[["x"]], y)


def test_crossed_groups_no_pooling_removes_other_column(data):
    X, y = data
    rng = np.random.default_rng(1)
    city = rng.choice(["a", "b", "c"], size=len(y))
    y2 = y + pd.Series(city).map({"a": -2.0, "b": 0.0, "c": 2.0}).to_numpy()
    X2 = X.assign(city=pd.Categorical(city))
    fitted = RandomInterceptRegressor(groups=["g", "city"], random_state=0).fit(X2, y2)
    by_zip = shrinkage_table(fitted, X2, y2)
    by_city = shrinkage_table(fitted, X2, y2, group="city")
    assert by_zip.attrs["group_column"] == "g" and by_city.attrs["group_column"] == "city"
    assert len(by_city) == 3 and by_city["n"].sum() == len(y2)
    city_effect = fitted.group_effects_["city"].loc[city].to_numpy()
    residual = pd.Series(y2 - X2["x"].to_numpy() * fitted.coef_[0] - city_effect)
    within = residual.groupby(X2["g"].astype(str).to_numpy()).mean()
    got = by_zip.set_index("group")["no_pooling"].loc[within.index]
    assert np.allclose(got.to_numpy(), within.to_numpy())


# ------------------------------------------------------------------ plots
def test_plot_shrinkage(model, data, table, tmp_path):
    X, y = data
    ax = plot_shrinkage(model, X, y)
    n_groups = len(table)
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points) == 2
    assert all(len(c.get_offsets()) == n_groups for c in points)
    segments = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(segments) == 1 and len(segments[0].get_segments()) == n_groups
    # x runs in order of increasing cluster size: the no-pooling points come from the table.
    ordered = table.sort_values("n", kind="stable")
    no_pool_points = np.asarray(points[0].get_offsets())
    assert np.allclose(no_pool_points[:, 1], ordered["no_pooling"])
    assert np.allclose(no_pool_points[:, 0], np.arange(n_groups))
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(dashed) == 1
    assert np.allclose(dashed[0].get_ydata(), model.intercept_)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(legend) == 6 and any("global intercept" in t for t in legend)
    assert {"small clusters", "medium clusters", "large clusters"} <= set(legend)
    assert "size" in ax.get_xlabel()
    _save(ax, tmp_path, "shrinkage")


def test_plot_shrinkage_uses_given_axes(model, data):
    X, y = data
    fig, axes = plt.subplots(1, 2)
    assert plot_shrinkage(model, X, y, ax=axes[1]) is axes[1]
    assert not axes[0].collections


def test_plot_loss(data, tmp_path):
    X, y = data
    model = RandomInterceptRegressor(groups=["g"], method="advi", random_state=0).fit(X, y)
    ax = plot_loss(model)
    assert len(ax.lines) == 1
    assert len(ax.lines[0].get_ydata()) == len(model.loss_curve_)
    assert np.allclose(ax.lines[0].get_xdata(), np.arange(1, len(model.loss_curve_) + 1))
    expected = "log" if np.all(np.asarray(model.loss_curve_) > 0) else "symlog"
    assert ax.get_yscale() == expected
    assert "ELBO" in ax.get_ylabel()
    _save(ax, tmp_path, "loss")


def test_plot_loss_of_an_exact_fit_says_there_is_none(model):
    assert model.loss_curve_ == []
    with pytest.raises(ValueError, match="no loss curve.*method='advi'"):
        plot_loss(model)


def test_plot_loss_symlog_for_negative_values(model):
    negative = copy.copy(model)
    negative.loss_curve_ = [5.0, 1.0, -2.0, -3.0]
    assert plot_loss(negative).get_yscale() == "symlog"


def test_plot_posterior(model, linear, tmp_path):
    ax = plot_posterior(model)
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names == ["intercept", "x", "sigma", "group_sd_g"]
    assert len(ax.lines) == 2 * len(names)
    means = np.asarray(ax.collections[0].get_offsets())[:, 0]
    draws = model._draws
    expected = [
        draws["intercept"].mean(),
        draws["coef"][:, 0].mean(),
        draws["sigma"].mean(),
        draws["group_sd"][0].mean(),
    ]
    assert np.allclose(means, expected)
    _save(ax, tmp_path, "posterior")

    ax = plot_posterior(model, var_names=["coef", "group_sd"])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "group_sd_g"]
    with pytest.raises(ValueError, match="Unknown parameter"):
        plot_posterior(model, var_names=["beta_z"])
    ax = plot_posterior(linear, var_names="sigma")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["sigma"]


def test_plot_residuals(model, data, tmp_path):
    X, y = data
    ax = plot_residuals(model, X, y)
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points) == 1 and len(points[0].get_offsets()) == len(y)
    assert np.allclose(points[0].get_offsets()[:, 1], y - model.predict(X))
    assert any(isinstance(c, PolyCollection) for c in ax.collections)
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "90% predictive band" in legend
    _save(ax, tmp_path, "residuals")


def test_plot_prior_posterior_fit(model, data, tmp_path):
    X, y = data
    ax = plot_prior_posterior_fit(model, X, y, n_lines=20, random_state=0)
    assert len(ax.lines) == 40
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["data", "prior draws", "posterior draws"]
    slopes = np.array([np.polyfit(line.get_xdata(), line.get_ydata(), 1)[0] for line in ax.lines])
    prior, posterior = slopes[:20], slopes[20:]
    draws = model._draws["coef"][:, 0]
    assert posterior.min() >= draws.min() - 1e-9 and posterior.max() <= draws.max() + 1e-9
    assert np.abs(posterior - SLOPE).max() < 0.5
    # prior slope sd on the original scale: prior_scale * sd(y) / sd(x)
    expected_sd = model.prior_scale * np.std(y) / np.std(X["x"])
    assert 0.5 * expected_sd < prior.std() < 1.6 * expected_sd
    assert prior.std() > 10 * posterior.std()
    _save(ax, tmp_path, "prior_posterior")

    same = plot_prior_posterior_fit(model, X, y, feature="x", n_lines=20, random_state=0)
    assert np.allclose(same.lines[0].get_ydata(), ax.lines[0].get_ydata())
    with pytest.raises(ValueError, match="not a fixed-effect feature"):
        plot_prior_posterior_fit(model, X, y, feature="g")
    with pytest.raises(ValueError, match="out of range"):
        plot_prior_posterior_fit(model, X, y, feature=3)
