"""scikit-learn estimators for Bayesian regression with random effects, fitted by ADVI."""

from .classifier import RandomEffectsClassifier
from .linear_model import BayesianLinearRegressor
from .neural_network import RandomEffectsMLPRegressor
from .random_effects import RandomEffectsRegressor, RandomInterceptRegressor

__all__ = [
    "BayesianLinearRegressor",
    "RandomEffectsClassifier",
    "RandomEffectsMLPRegressor",
    "RandomEffectsRegressor",
    "RandomInterceptRegressor",
]
__version__ = "0.1.0"
