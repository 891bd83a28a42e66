"""Neural network with random intercepts at the seed's size: its routes and weight modes
against sklearn's MLPRegressor (which ignores groups) and our RandomInterceptRegressor.

Two data sets of 34,816 training and 34,816 validation rows, 3 features:

* Zillow-like data cleaned as in the original study (random 50/50 split, 390 zip codes);
* a non-linear grouped problem, ``1 + sin(2 x0) + x1 x2 + x1 / 2 + u[g] + N(0, 0.3)`` with
  x uniform on (-2, 2) and 50 groups of sd 0.7.

Ours: ``method="auto"`` (the default: the perceptron by L-BFGS, the rest exact, nothing
compiled) and ``method="advi"`` (ADVI from that start), MAP weights, and Bayesian weights.
Fit times are warm (each of ours after a compile-only fit of 2,000 rows), measured in one
run; ratios are ours / sklearn's MLPRegressor ((5,) tanh as ours, on scaled X and y).

Run: ``python benchmarks/bench_mlp.py``; writes ``benchmarks/results/mlp.md``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from _common import markdown_table, timed, write_result
from sklearn.compose import TransformedTargetRegressor
from sklearn.metrics import mean_absolute_error
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbayes_re import RandomEffectsMLPRegressor, RandomInterceptRegressor
from skbayes_re.datasets import SEED_FEATURES, clean_zillow, make_zillow_like

SKLEARN = "sklearn MLPRegressor (5,) tanh, scaled X and y"


def candidates(group: str) -> dict:
    return {
        "ours: RandomEffectsMLPRegressor, map, method='auto'": RandomEffectsMLPRegressor(
            groups=[group], random_state=0
        ),
        "ours: RandomEffectsMLPRegressor, map, method='advi'": RandomEffectsMLPRegressor(
            groups=[group], method="advi", random_state=0
        ),
        "ours: RandomEffectsMLPRegressor, weights='bayesian'": RandomEffectsMLPRegressor(
            groups=[group], weights="bayesian", random_state=0
        ),
        "ours: RandomInterceptRegressor": RandomInterceptRegressor(groups=[group], random_state=0),
        SKLEARN: TransformedTargetRegressor(
            make_pipeline(
                StandardScaler(),
                MLPRegressor(
                    hidden_layer_sizes=(5,), activation="tanh", max_iter=1000, random_state=0
                ),
            ),
            transformer=StandardScaler(),
        ),
    }


def zillow_like():
    data = clean_zillow(make_zillow_like(random_state=0))
    train = data.sample(frac=0.5, random_state=0)
    val = data.drop(train.index)
    return train, val, list(SEED_FEATURES), "region_zip", "logerror"


def non_linear(n_rows: int = 34_816, seed: int = 0):
    rng = np.random.default_rng(seed)
    effects = rng.normal(scale=0.7, size=50)
    frames = []
    for _ in range(2):
        X = rng.uniform(-2.0, 2.0, size=(n_rows, 3))
        groups = rng.integers(0, 50, size=n_rows)
        signal = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.5 * X[:, 1]
        frame = pd.DataFrame(X, columns=["x0", "x1", "x2"])
        frame["g"] = pd.Categorical(groups, categories=range(50))
        frame["y"] = 1.0 + signal + effects[groups] + rng.normal(scale=0.3, size=n_rows)
        frames.append(frame)
    return frames[0], frames[1], ["x0", "x1", "x2"], "g", "y"


def measure(train, val, features, group, target) -> dict:
    results = {}
    for name, model in candidates(group).items():
        columns = features if name == SKLEARN else [*features, group]
        if name != SKLEARN:
            model.fit(train[columns].iloc[:2000], train[target].iloc[:2000])  # compile
        fitted, seconds = timed(model.fit, train[columns], train[target])
        mae = mean_absolute_error(val[target], fitted.predict(val[columns]))
        results[name] = (seconds, mae)
        print(name, f"{seconds:.2f} s", f"MAE {mae:.5f}", flush=True)
    return results


def table(results: dict) -> str:
    base_seconds, base_mae = results[SKLEARN]
    return markdown_table(
        ["model", "fit seconds", "time ours / sklearn", "validation MAE", "MAE ours / sklearn"],
        [
            [name, f"{s:.2f}", f"{s / base_seconds:.2f}", f"{m:.5f}", f"{m / base_mae:.3f}"]
            for name, (s, m) in results.items()
        ],
    )


def main():
    text = "# Neural network with random intercepts at the seed's size\n\n"
    text += (
        "Warm fits measured in one run; 34,816 training rows x 3 features, validation MAE on "
        "34,816 other rows. `method='auto'` fits the perceptron by L-BFGS and the rest "
        "exactly (nothing compiled), `method='advi'` refines everything by ADVI from there.\n\n"
    )
    for title, data in (
        ("Zillow-like data, 390 zip codes", zillow_like()),
        ("Non-linear grouped problem, 50 groups (sin and interaction terms)", non_linear()),
    ):
        print(title, flush=True)
        text += f"## {title}\n\n" + table(measure(*data)) + "\n"
    write_result("mlp.md", text)


if __name__ == "__main__":
    main()
