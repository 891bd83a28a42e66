"""The Gaussian family's entry: its models and prediction live apart, on sufficient
statistics (``_models/gaussian.py``) and Gaussian mixtures (``_predictive.py``)."""

from ._family import Family, check_finite_support

__all__ = ["GAUSSIAN"]

GAUSSIAN = Family(
    name="gaussian",
    link="identity",
    discrete=False,
    standardise_target=True,
    check_target=check_finite_support,
    parameters=("sigma",),
)
