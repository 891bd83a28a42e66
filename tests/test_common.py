"""scikit-learn's estimator checks, over every estimator and a grouped instance."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skbayes_re import (
    BayesianLinearRegressor,
    RandomEffectsMLPRegressor,
    RandomEffectsRegressor,
    RandomInterceptRegressor,
)

ESTIMATORS = [
    BayesianLinearRegressor(random_state=0),
    RandomInterceptRegressor(random_state=0),
    RandomInterceptRegressor(groups=[0], random_state=0),
    RandomEffectsRegressor(random_state=0),
    RandomEffectsRegressor(groups=[0], random_slopes={0: [1]}, random_state=0),
    RandomEffectsMLPRegressor(random_state=0),
    RandomEffectsMLPRegressor(weights="bayesian", random_state=0),
    RandomEffectsMLPRegressor(groups=[0], random_state=0),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
