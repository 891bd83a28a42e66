"""scikit-learn estimators for Bayesian regression with random effects, fitted by ADVI."""

from .linear_model import BayesianLinearRegressor
from .neural_network import RandomEffectsMLPRegressor
from .random_effects import RandomInterceptRegressor

__all__ = ["BayesianLinearRegressor", "RandomEffectsMLPRegressor", "RandomInterceptRegressor"]
__version__ = "0.1.0"
