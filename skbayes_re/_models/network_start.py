"""The network's starting perceptron (NumPy and scikit-learn only).

Both routes of ``RandomEffectsMLPRegressor`` start from a perceptron fitted by scikit-learn's
L-BFGS to the residuals of the linear part: the ADVI route (``network.py``) refines it with
everything else, the exact route (``network_exact.py``) keeps it.
"""

from __future__ import annotations

import numpy as np

from .._validation import BLOCK_ROWS
from .statistics import count_prefixed, gaussian_re_statistics_chunked

__all__ = [
    "PRETRAIN_MIN_HELD_OUT",
    "PRETRAIN_ROWS",
    "pretrain",
    "pretrain_rows",
    "refit",
    "statistics_with_perceptron",
    "weights_of",
]

PRETRAIN_ROWS = 10_000  # rows the starting network is trained on (a random subset beyond)
_SCREEN_ITER = 200  # L-BFGS iterations of each start
_PRETRAIN_ITER = 800  # and of the best start, trained on
_PRETRAIN_STARTS = 3
PRETRAIN_MIN_HELD_OUT = 20  # fewer held-out rows say nothing: the perceptron starts at zero


def pretrain_rows(n_rows: int, rng: np.random.Generator, limit: int = PRETRAIN_ROWS) -> np.ndarray:
    """Every row, or a random ``limit`` of them in order."""
    if n_rows <= limit:
        return np.arange(n_rows)
    return np.sort(rng.choice(n_rows, size=limit, replace=False))


def pretrain(features, residual, weight, sizes, activation, alpha, rng):
    """A scikit-learn ``MLPRegressor`` (L-BFGS) fitted to ``residual`` on four fifths of the
    rows (:func:`_fifth_of`): the best on the other fifth of ``_PRETRAIN_STARTS`` short fits
    from different seeds (small networks have local optima that a single start often lands
    in), trained on.

    None where it predicts the held-out rows no better than their mean, by two standard errors
    of the paired difference (the data show no signal that a perceptron adds to the linear
    part: it then starts at zero, and the fit at the linear model), or where a perceptron has
    nothing to work with (no hidden layer, no feature, fewer than ``PRETRAIN_MIN_HELD_OUT``
    rows held out). Row weights weigh the
    fits and the held-out comparison.
    """
    if not sizes or features.shape[1] == 0:
        return None
    in_held_out_fifth = _fifth_of(features, residual)
    held, kept = np.flatnonzero(in_held_out_fifth), np.flatnonzero(~in_held_out_fifth)
    if len(held) < PRETRAIN_MIN_HELD_OUT:
        return None
    train = (features[kept], residual[kept], weight[kept])

    def held_out_errors(network):
        return (residual[held] - network.predict(features[held])) ** 2

    def mean(values):
        return np.average(values, weights=weight[held])

    starts = [_fit_network(*train, sizes, activation, alpha, rng) for _ in range(_PRETRAIN_STARTS)]
    best = min(starts, key=lambda network: mean(held_out_errors(network)))
    best.set_params(max_iter=_PRETRAIN_ITER, warm_start=True)
    _quietly(best.fit, *train)
    baseline = np.average(residual[kept], weights=weight[kept])
    gain = (residual[held] - baseline) ** 2 - held_out_errors(best)
    n_effective = weight[held].sum() ** 2 / np.sum(weight[held] ** 2)
    spread = np.sqrt(mean((gain - mean(gain)) ** 2) / n_effective)
    return best if mean(gain) > 2.0 * spread else None


def refit(network, features, target, weight, max_iter: int):
    """Continue training a fitted ``MLPRegressor`` on new targets, from its weights, for at
    most ``max_iter`` L-BFGS iterations."""
    network.set_params(max_iter=max_iter, warm_start=True)
    return _quietly(network.fit, features, target, weight)


def _fit_network(features, target, weight, sizes, activation, alpha, rng):
    """One seeded L-BFGS fit of ``_SCREEN_ITER`` iterations."""
    from sklearn.neural_network import MLPRegressor

    network = MLPRegressor(
        hidden_layer_sizes=sizes,
        activation=activation,
        alpha=float(alpha),
        solver="lbfgs",
        max_iter=_SCREEN_ITER,
        random_state=int(rng.integers(np.iinfo(np.int32).max)),
    )
    return _quietly(network.fit, features, target, weight)


def _quietly(fit, features, target, weight):
    """Fit without the ConvergenceWarning of an L-BFGS run cut at its iteration budget, on one
    BLAS thread: its products are small (at most ``_PRETRAIN_ROWS`` rows), and threads waiting
    on each other made L-BFGS's own tiny vector operations ten times slower."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit(features, target, sample_weight=weight)


def _fifth_of(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """About a fifth of the rows, chosen by their values (a fixed pseudo-random projection of
    each row, taken modulo 1): equal rows fall on the same side, so a row with weight 2 is
    held out exactly when both of its copies would be, whatever the rows' order."""
    weights = np.sqrt(np.arange(2, features.shape[1] + 3))  # irrational, fixed
    values = features @ weights[1:] + target * weights[0]
    return np.modf(np.abs(values) * 997.0)[0] < 0.2


def weights_of(network, n_layers: int) -> dict[str, np.ndarray]:
    """A fitted ``MLPRegressor``'s weights by value-variable name (its output bias is left
    to the linear part's intercept)."""
    weights = {"coef_out": network.coefs_[-1][:, 0]}
    for layer in range(n_layers):
        weights[f"coef_{layer}"] = network.coefs_[layer]
        weights[f"bias_{layer}"] = network.intercepts_[layer]
    return weights


def statistics_with_perceptron(data: dict, network, as_feature: bool) -> dict[str, np.ndarray]:
    """The linear model's sufficient statistics, in row blocks, with the perceptron's output
    (the network's prediction without its output bias) as one more feature
    (``as_feature``) or taken off the target."""
    features, target, weight = data["features"], data["target"], data["row_weight"]
    n_factors = count_prefixed(data, "ysum_")
    codes = [data[f"group_{k}"] for k in range(n_factors)]
    n_groups = [int(data[f"ysum_{k}"].shape[0]) for k in range(n_factors)]
    bias = float(network.intercepts_[-1][0])

    def chunks():
        for start in range(0, len(target), BLOCK_ROWS):
            rows = slice(start, start + BLOCK_ROWS)
            output = network.predict(features[rows]) - bias
            if as_feature:
                yield np.column_stack([features[rows], output]), target[rows], weight[rows]
            else:
                yield features[rows], target[rows] - output, weight[rows]

    return gaussian_re_statistics_chunked(chunks(), codes, n_groups, float(data["prior_scale"]))
