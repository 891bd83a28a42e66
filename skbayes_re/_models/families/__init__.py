"""Likelihood families: what each outcome type adds to the linear predictor's model.

A family is data, not a branch: its name, link, the target's support, whether the target is
standardised, its own parameters (priors, starting values, back-transform), the per-row log
density the per-row model sums (PyTensor), and the NumPy pieces prediction needs (mean,
variance, CDF, log density and draws of one component of the posterior predictive mixture).

* ``gaussian``: the default; its models run on sufficient statistics (``_models/gaussian.py``)
  and predict through the Gaussian mixture helpers in ``_predictive.py``; the entry here
  carries its name, link and support only.
* ``student_t``: identity link, scale and degrees of freedom learned (heavy-tailed noise).
* ``poisson``: log link, no parameter of its own.
* ``negative_binomial``: log link, ``Var(y) = mu + mu^2 / dispersion``, dispersion learned.
* ``bernoulli``: logit link, 0/1 outcomes or proportions (the classifier's).
* ``categorical``: softmax link, three or more classes (the multiclass classifier's; its
  predictions are class probabilities, made by the classifier, not by these NumPy pieces).

Every module imports PyTensor only inside the functions that build graphs, so a fitted model
predicts with NumPy and SciPy alone.
"""

from __future__ import annotations

from ._family import Family
from .bernoulli import BERNOULLI
from .categorical import CATEGORICAL
from .gaussian import GAUSSIAN
from .negative_binomial import NEGATIVE_BINOMIAL
from .poisson import POISSON
from .student_t import STUDENT_T

__all__ = ["FAMILIES", "Family", "family_named"]

FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        GAUSSIAN,
        STUDENT_T,
        POISSON,
        NEGATIVE_BINOMIAL,
        BERNOULLI,
        CATEGORICAL,
    )
}


def family_named(name: str) -> Family:
    """The family called ``name`` (estimators validate the name against ``FAMILIES``)."""
    return FAMILIES[name]
