"""Zillow Prize data: a synthetic Zillow-like generator and the blog post's preprocessing.

The library rebuilds a blog post that predicted Zillow's ``logerror`` (the log of the
Zestimate over the sale price) from house metadata with zip-code random intercepts.

* :func:`make_zillow_like` simulates data with the shape of the post's cleaned Kaggle frame
  and a known truth (zip effects, a mildly non-linear signal, heavy-tailed noise);
  :func:`zillow_signal` is that truth's effect of the house features.
* :func:`load_zillow` applies the post's preprocessing to the real Kaggle "Zillow Prize"
  files (``properties_2016.csv`` and ``train_2016_v2.csv``), which must be downloaded by hand;
  :func:`clean_zillow` is the study's cleaning of either frame.

Only NumPy and pandas are needed.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

#: Renaming of the Kaggle ``properties_2016.csv`` columns used by the blog post.
PROPERTY_COLUMNS = {
    "parcelid": "id_parcel",
    "yearbuilt": "build_year",
    "basementsqft": "area_basement",
    "yardbuildingsqft17": "area_patio",
    "yardbuildingsqft26": "area_shed",
    "poolsizesum": "area_pool",
    "lotsizesquarefeet": "area_lot",
    "garagetotalsqft": "area_garage",
    "finishedfloor1squarefeet": "area_firstfloor_finished",
    "calculatedfinishedsquarefeet": "area_total_calc",
    "finishedsquarefeet6": "area_base",
    "finishedsquarefeet12": "area_live_finished",
    "finishedsquarefeet13": "area_liveperi_finished",
    "finishedsquarefeet15": "area_total_finished",
    "finishedsquarefeet50": "area_unknown",
    "unitcnt": "num_unit",
    "numberofstories": "num_story",
    "roomcnt": "num_room",
    "bathroomcnt": "num_bathroom",
    "bedroomcnt": "num_bedroom",
    "calculatedbathnbr": "num_bathroom_calc",
    "fullbathcnt": "num_bath",
    "threequarterbathnbr": "num_75_bath",
    "fireplacecnt": "num_fireplace",
    "poolcnt": "num_pool",
    "garagecarcnt": "num_garage",
    "regionidcounty": "region_county",
    "regionidcity": "region_city",
    "regionidzip": "region_zip",
    "regionidneighborhood": "region_neighbor",
    "taxvaluedollarcnt": "tax_total",
    "structuretaxvaluedollarcnt": "tax_building",
    "landtaxvaluedollarcnt": "tax_land",
    "taxamount": "tax_property",
    "assessmentyear": "tax_year",
    "taxdelinquencyflag": "tax_delinquency",
    "taxdelinquencyyear": "tax_delinquency_year",
    "propertyzoningdesc": "zoning_property",
    "propertylandusetypeid": "zoning_landuse",
    "propertycountylandusecode": "zoning_landuse_county",
    "fireplaceflag": "flag_fireplace",
    "hashottuborspa": "flag_tub",
    "buildingqualitytypeid": "quality",
    "buildingclasstypeid": "framing",
    "typeconstructiontypeid": "material",
    "decktypeid": "deck",
    "storytypeid": "story",
    "heatingorsystemtypeid": "heating",
    "airconditioningtypeid": "aircon",
    "architecturalstyletypeid": "architectural_style",
}

#: Renaming of the Kaggle ``train_2016_v2.csv`` columns used by the blog post.
TRANSACTION_COLUMNS = {"parcelid": "id_parcel", "transactiondate": "date"}

# --------------------------------------------------------------------------------------
# Synthetic Zillow-like data
# --------------------------------------------------------------------------------------

_LOGERROR_MEAN = 0.013  # validation mean of logerror in the post: 0.01299
_ZIP_SD = 0.03  # sd of the true zip intercepts (logerror units)
_FIRST_ZIP = 95982  # Zillow's region_zip codes run from about 95982 to 97344
_ZIP_CODE_SPAN = 97344 - 95982 + 1
_CITIES_PER_ZIP = 170 / 390  # the post's data: about 170 cities for 390 zip codes
_ZIP_SIZE_SIGMA = 1.25  # log-normal spread of zip sizes: a few rows up to thousands

# Heavy-tailed noise: a Laplace core plus a rare wide normal component (bad Zestimates).
_NOISE = {
    "family": "mixture: Laplace core + wide normal outliers, both centred at 0",
    "core_laplace_scale": 0.059,
    "outlier_share": 0.06,
    "outlier_normal_sd": 0.54,
}

# Share of rows with a missing value, by column (mostly-null columns get most rows null).
# The four feature columns get 2-4% (bathrooms and bedrooms are complete, as in the Kaggle
# files); ``quality`` (36%), ``num_pool`` (80%) and ``area_basement`` (97%) exceed the post's
# 25% threshold and are dropped by its cleaning.
_MISSING_SHARE = {
    "area_live_finished": 0.04,
    "area_total_calc": 0.02,
    "build_year": 0.02,
    "tax_building": 0.02,
    "quality": 0.36,
    "area_basement": 0.97,
    "num_pool": 0.80,
}


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _as_generator(random_state) -> np.random.Generator:
    """Accept None, an int, a numpy ``Generator`` or a legacy ``RandomState``."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    if random_state is None or (
        isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)
    ):
        return np.random.default_rng(random_state)
    raise ValueError(
        "random_state must be None, an int, a numpy Generator or a RandomState, "
        f"got {random_state!r}."
    )


def zillow_signal(frame: pd.DataFrame) -> np.ndarray:
    """True non-linear effect of the house features on ``logerror`` (mean about 0).

    A U-shape in standardised log living area and in build year plus their interaction,
    and a tiny bathroom slope: a linear model gains almost nothing from these features,
    a flexible model gains a little, as in the blog post.

    Parameters
    ----------
    frame : DataFrame
        Columns ``area_live_finished``, ``build_year`` and ``num_bathroom``.

    Returns
    -------
    ndarray of shape (n_rows,)
        The signal in ``logerror`` units (NaN where a feature is missing).

    Examples
    --------
    >>> import pandas as pd
    >>> houses = pd.DataFrame(
    ...     {"area_live_finished": [1600.0, 3000.0], "build_year": [1960.0, 2005.0],
    ...      "num_bathroom": [2.0, 4.0]}
    ... )
    >>> zillow_signal(houses).round(3)
    array([-0.027,  0.082])
    """
    log_area = (np.log(frame["area_live_finished"].to_numpy(float)) - np.log(1600.0)) / 0.45
    year = (frame["build_year"].to_numpy(float) - 1960.0) / 25.0
    bath = frame["num_bathroom"].to_numpy(float) - 2.2
    return (
        0.015 * (log_area**2 - 1.0)
        + 0.012 * (year**2 - 1.0)
        + 0.015 * log_area * year
        + 0.002 * bath
    )


def _zip_sizes(n_samples: int, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """Rows per zip: one each, the rest spread by log-normal weights (tiny to thousands)."""
    weights = rng.lognormal(0.0, _ZIP_SIZE_SIGMA, size=n_groups)
    return 1 + rng.multinomial(n_samples - n_groups, weights / weights.sum())


def _zip_and_city_codes(n_groups: int, rng: np.random.Generator):
    """Distinct zip-like codes and, for each zip, the code of the one city it lies in."""
    span = max(_ZIP_CODE_SPAN, 3 * n_groups)
    zips = np.sort(_FIRST_ZIP + rng.choice(span, size=n_groups, replace=False))
    n_cities = max(1, round(n_groups * _CITIES_PER_ZIP))
    city_span = max(397_000, 3 * n_cities)
    city_codes = np.sort(3_000 + rng.choice(city_span, size=n_cities, replace=False))
    # every city gets at least one zip, the remaining zips go to random cities
    city_of_zip = np.concatenate(
        [np.arange(n_cities), rng.integers(0, n_cities, size=n_groups - n_cities)]
    )
    return zips, city_codes[rng.permutation(city_of_zip)]


def _heavy_tailed_noise(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    core = rng.laplace(0.0, _NOISE["core_laplace_scale"], size=n_samples)
    outliers = rng.normal(0.0, _NOISE["outlier_normal_sd"], size=n_samples)
    is_outlier = rng.random(n_samples) < _NOISE["outlier_share"]
    return np.where(is_outlier, outliers, core)


def _house_features(zip_index: np.ndarray, n_groups: int, rng: np.random.Generator) -> dict:
    """Areas, rooms, build year and building tax value; neighbourhoods differ by zip."""
    n = zip_index.size
    zip_log_area = rng.normal(0.0, 0.15, size=n_groups)[zip_index]
    zip_year = rng.uniform(1925.0, 1995.0, size=n_groups)[zip_index]
    zip_log_price = rng.normal(0.0, 0.3, size=n_groups)[zip_index]

    log_size = zip_log_area + rng.normal(0.0, 0.42, size=n)  # log(area / 1600)
    area_live = np.round(1600.0 * np.exp(log_size))
    area_total = np.round(area_live * np.exp(np.abs(rng.normal(0.0, 0.03, size=n))))
    bath = np.clip(np.round(2 * (2.2 + 1.8 * log_size + rng.normal(0.0, 0.5, n))) / 2, 1, 6)
    bedrooms = np.clip(np.round(3.0 + 2.0 * log_size + rng.normal(0.0, 0.8, n)), 0, 8)
    year = np.clip(np.round(zip_year + rng.normal(0.0, 15.0, size=n)), 1900, 2016)
    log_value_per_sqft = np.log(90.0) + 0.004 * (year - 1960) + zip_log_price
    tax_building = np.round(area_live * np.exp(log_value_per_sqft + rng.normal(0, 0.35, n)))
    return {
        "area_live_finished": area_live,
        "area_total_calc": area_total,
        "area_basement": np.round(rng.lognormal(np.log(600.0), 0.5, size=n)),
        "num_bathroom": bath,
        "num_bedroom": bedrooms,
        "num_pool": np.ones(n),
        "build_year": year,
        "tax_building": tax_building,
        "quality": np.clip(np.round(rng.normal(6.5, 2.0, size=n)), 1, 12),
    }


def _blank_out(frame: pd.DataFrame, rng: np.random.Generator) -> None:
    """Set a share of each column in ``_MISSING_SHARE`` to NaN, in place."""
    for column, share in _MISSING_SHARE.items():
        frame.loc[rng.random(len(frame)) < share, column] = np.nan


def make_zillow_like(n_samples=73_972, n_groups=390, *, random_state=None, return_truth=False):
    """Simulate a frame shaped like the blog post's cleaned Zillow Prize data.

    One row per sale. ``logerror`` is ``0.013 + zip effect + signal(features) + noise``:
    normal zip intercepts with sd 0.03 (centred so that their average over rows is 0), a
    mildly non-linear signal of living area, build year and bathrooms
    (:func:`zillow_signal`, sd about 0.03, nearly invisible to a linear model), and
    heavy-tailed noise (a Laplace core with 6% wide normal outliers). At the default size
    the mean is about 0.013, the sd about 0.16 and the mean absolute error of predicting
    the mean (or the median) about 0.09, as in the post. Zip sizes follow a log-normal
    spread, from one to a few rows up to a few thousand; each zip lies in one of about
    ``0.44 * n_groups`` cities.

    Missing values: ``area_live_finished`` (4%), ``area_total_calc``, ``build_year`` and
    ``tax_building`` (2% each) have a few, ``num_bathroom`` and ``num_bedroom`` none, as in
    the Kaggle files; ``quality`` (36%), ``num_pool`` (80%) and ``area_basement`` (97%)
    are mostly missing. The post's cleaning (keep the columns less than 25% null, then
    drop the rows with a null) therefore removes those three columns and about 10% of
    the rows.

    Parameters
    ----------
    n_samples : int, default=73_972
        Number of rows (the size of the post's data after its cleaning).
    n_groups : int, default=390
        Number of zip codes; each gets at least one row, so ``n_groups <= n_samples``.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Seed or generator for reproducible output: the same int gives the same frame.
    return_truth : bool, default=False
        Whether to also return the simulation truth.

    Returns
    -------
    frame : DataFrame of shape (n_samples, 13)
        Columns ``id_parcel``, ``logerror``, ``area_live_finished``, ``area_total_calc``,
        ``area_basement``, ``num_bathroom``, ``num_bedroom``, ``num_pool``, ``build_year``,
        ``tax_building``, ``quality``, ``region_city`` and ``region_zip``. The two region
        columns hold integer codes like Zillow's ids; pass ``groups=["region_zip"]`` to
        the estimators or cast the column to ``category``.
    truth : dict
        Only with ``return_truth=True``. Keys ``"intercept"`` (0.013), ``"zip_effects"``
        (Series of true additive zip offsets indexed by zip code), ``"zip_sd"`` (0.03, the
        sd they were drawn with), ``"signal"`` (the function :func:`zillow_signal`),
        ``"signal_values"`` (its value per row, computed before values were blanked out),
        ``"noise"`` (a dict describing the noise) and ``"noise_values"`` (the noise per
        row). Row by row, ``logerror`` equals ``intercept + zip effect + signal + noise``.

    Examples
    --------
    >>> frame, truth = make_zillow_like(2_000, 20, random_state=0, return_truth=True)
    >>> frame.shape
    (2000, 13)
    >>> frame["region_zip"].nunique(), len(truth["zip_effects"])
    (20, 20)
    >>> bool(frame.groupby("region_zip")["region_city"].nunique().eq(1).all())
    True

    The post's cleaning keeps the columns with less than 25% nulls and the complete rows:

    >>> cleaned = frame[frame.columns[frame.isna().mean() < 0.25]].dropna()
    >>> sorted(set(frame.columns) - set(cleaned.columns))
    ['area_basement', 'num_pool', 'quality']
    >>> 0.85 < len(cleaned) / len(frame) < 0.95
    True
    """
    n_samples = _check_positive_int(n_samples, "n_samples")
    n_groups = _check_positive_int(n_groups, "n_groups")
    if n_groups > n_samples:
        raise ValueError(f"n_groups ({n_groups}) must not exceed n_samples ({n_samples}).")
    rng = _as_generator(random_state)

    zips, city_of_zip = _zip_and_city_codes(n_groups, rng)
    zip_sizes = _zip_sizes(n_samples, n_groups, rng)
    zip_index = rng.permutation(np.repeat(np.arange(n_groups), zip_sizes))
    zip_effects = rng.normal(0.0, _ZIP_SD, size=n_groups)
    # centre on the row average, so that the mean logerror stays near the intercept even
    # when a few thousand-row zips happen to draw large effects
    zip_effects -= np.average(zip_effects, weights=zip_sizes)

    frame = pd.DataFrame(_house_features(zip_index, n_groups, rng))
    signal = zillow_signal(frame)
    noise = _heavy_tailed_noise(n_samples, rng)
    frame.insert(0, "logerror", _LOGERROR_MEAN + zip_effects[zip_index] + signal + noise)
    parcel_ids = 10_711_738 + np.cumsum(rng.integers(1, 60, size=n_samples))
    frame.insert(0, "id_parcel", rng.permutation(parcel_ids))
    frame["region_city"] = city_of_zip[zip_index]
    frame["region_zip"] = zips[zip_index]
    _blank_out(frame, rng)

    if not return_truth:
        return frame
    truth = {
        "intercept": _LOGERROR_MEAN,
        "zip_effects": pd.Series(zip_effects, index=pd.Index(zips, name="region_zip")),
        "zip_sd": _ZIP_SD,
        "signal": zillow_signal,
        "signal_values": signal,
        "noise": dict(_NOISE),
        "noise_values": noise,
    }
    return frame, truth


# --------------------------------------------------------------------------------------
# Real Zillow Prize data (Kaggle files)
# --------------------------------------------------------------------------------------


def _read_renamed(source, renaming: dict, required: list[str], label: str) -> pd.DataFrame:
    frame = pd.read_csv(source, low_memory=False).rename(columns=renaming)
    missing = [raw for raw in required if renaming.get(raw, raw) not in frame.columns]
    if missing:
        raise ValueError(f"The {label} file is missing required column(s): {missing}.")
    return frame


#: The three fixed-effect predictors of the original study's models.
SEED_FEATURES = ["area_live_finished", "num_bathroom", "build_year"]


def clean_zillow(frame: pd.DataFrame, features=SEED_FEATURES, group="region_zip", dropna=True):
    """The study's cleaning: drop columns over 25% null, keep ``features``, ``group`` and
    ``logerror``, drop rows with nulls (unless ``dropna=False``); ``group`` becomes a
    category column.

    Parameters
    ----------
    frame : DataFrame
        Output of :func:`make_zillow_like` or :func:`load_zillow`.
    features : list of str, default=SEED_FEATURES
        Fixed-effect predictors to keep.
    group : str, default="region_zip"
        Grouping column.
    dropna : bool, default=True
        Drop the rows with a null, as the study did. ``False`` keeps them (only rows without
        a ``logerror`` are dropped), for the estimators' in-model treatment of missing
        feature values.

    Returns
    -------
    DataFrame
        Columns ``features + [group, "logerror"]``; no missing values with ``dropna=True``.

    Examples
    --------
    >>> from skbayes_re.datasets import clean_zillow, make_zillow_like
    >>> clean = clean_zillow(make_zillow_like(n_samples=2_000, n_groups=30, random_state=0))
    >>> list(clean.columns)
    ['area_live_finished', 'num_bathroom', 'build_year', 'region_zip', 'logerror']
    >>> str(clean["region_zip"].dtype), bool(clean.notna().all().all())
    ('category', True)
    """
    kept = frame.loc[:, frame.isnull().mean() < 0.25]
    missing = [c for c in [*features, group, "logerror"] if c not in kept.columns]
    if missing:
        raise ValueError(f"Columns missing or over 25% null: {missing}.")
    clean = kept[[*features, group, "logerror"]]
    clean = clean.dropna() if dropna else clean.dropna(subset=["logerror"])
    return clean.assign(**{group: clean[group].astype("category")})


def load_zillow(properties_csv, transactions_csv, dropna=True) -> pd.DataFrame:
    """Read and clean the Kaggle Zillow Prize 2016 files as the blog post did.

    Steps: read both files, rename the columns (:data:`PROPERTY_COLUMNS`,
    :data:`TRANSACTION_COLUMNS`), left-join the transactions with the properties on
    ``id_parcel``, keep the columns whose share of nulls is below 25%, drop every row that
    still has a null (unless ``dropna=False``), and reset the index. On the real files this
    leaves 73,972 sales.

    Parameters
    ----------
    properties_csv : str, path or file-like
        ``properties_2016.csv`` (raw Kaggle column names; needs ``parcelid``).
    transactions_csv : str, path or file-like
        ``train_2016_v2.csv`` (needs ``parcelid`` and ``logerror``).
    dropna : bool, default=True
        Drop the rows that still have a null, as the blog post did. ``False`` keeps every
        sale: the estimators model missing feature values (``missing_features="model"``).

    Returns
    -------
    DataFrame
        The cleaned sales, with the renamed columns (``id_parcel``, ``logerror``, ``date``,
        ``region_zip``, ``area_live_finished``, ...).

    Raises
    ------
    ValueError
        If a required column is missing from one of the files.

    Examples
    --------
    >>> import io
    >>> properties = io.StringIO(
    ...     "parcelid,regionidzip,bathroomcnt,poolcnt\\n"
    ...     "1,96000,2.0,\\n2,96001,,1\\n3,96001,1.5,\\n4,96002,3.0,\\n5,96002,2.5,"
    ... )
    >>> sales = io.StringIO(
    ...     "parcelid,logerror,transactiondate\\n"
    ...     "1,0.1,2016-01-01\\n2,-0.2,2016-01-02\\n3,0.0,2016-01-03\\n"
    ...     "4,0.05,2016-01-04\\n5,0.02,2016-01-05"
    ... )
    >>> cleaned = load_zillow(properties, sales)  # poolcnt is 80% null: dropped
    >>> cleaned.shape  # parcel 2 lacks bathroomcnt: dropped
    (4, 5)
    >>> cleaned.columns.tolist()
    ['id_parcel', 'logerror', 'date', 'region_zip', 'num_bathroom']
    >>> _ = properties.seek(0), sales.seek(0)
    >>> load_zillow(properties, sales, dropna=False).shape  # every sale kept
    (5, 5)
    """
    properties = _read_renamed(properties_csv, PROPERTY_COLUMNS, ["parcelid"], "properties")
    transactions = _read_renamed(
        transactions_csv, TRANSACTION_COLUMNS, ["parcelid", "logerror"], "transactions"
    )
    merged = transactions.merge(properties, how="left", on="id_parcel")
    kept = merged[merged.columns[merged.isna().mean() < 0.25]]
    return (kept.dropna() if dropna else kept).reset_index(drop=True)
