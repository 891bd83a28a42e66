"""Neural network with random intercepts at the seed's size: both weight modes against
sklearn's MLPRegressor (which ignores groups) and our RandomInterceptRegressor.

Zillow-like data cleaned as in the original study, 50/50 split. Fit times are measured in one
run (each of ours after a compile-only warm-up fit); ratios are theirs / our MLP (map).

Run: ``python benchmarks/bench_mlp.py``; writes ``benchmarks/results/mlp.md``.
"""

from __future__ import annotations

from _common import markdown_table, timed, write_result
from sklearn.compose import TransformedTargetRegressor
from sklearn.metrics import mean_absolute_error
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbayes_re import RandomEffectsMLPRegressor, RandomInterceptRegressor
from skbayes_re.datasets import SEED_FEATURES, clean_zillow, make_zillow_like

GROUP = "region_zip"


def candidates():
    return {
        "ours: RandomEffectsMLPRegressor, weights='map'": (
            RandomEffectsMLPRegressor(groups=[GROUP], random_state=0),
            [*SEED_FEATURES, GROUP],
        ),
        "ours: RandomEffectsMLPRegressor, weights='bayesian'": (
            RandomEffectsMLPRegressor(groups=[GROUP], weights="bayesian", random_state=0),
            [*SEED_FEATURES, GROUP],
        ),
        "ours: RandomInterceptRegressor": (
            RandomInterceptRegressor(groups=[GROUP], random_state=0),
            [*SEED_FEATURES, GROUP],
        ),
        "sklearn MLPRegressor (5,), scaled X and y": (
            TransformedTargetRegressor(
                make_pipeline(
                    StandardScaler(),
                    MLPRegressor(hidden_layer_sizes=(5,), max_iter=1000, random_state=0),
                ),
                transformer=StandardScaler(),
            ),
            SEED_FEATURES,
        ),
    }


def main():
    data = clean_zillow(make_zillow_like(random_state=0))
    train = data.sample(frac=0.5, random_state=0)
    val = data.drop(train.index)
    small = train.iloc[:2000]
    results = {}
    for name, (model, columns) in candidates().items():
        if name.startswith("ours"):
            model.fit(small[columns], small["logerror"])  # compile outside the timing
        fitted, seconds = timed(model.fit, train[columns], train["logerror"])
        mae = mean_absolute_error(val["logerror"], fitted.predict(val[columns]))
        results[name] = (seconds, mae)
        print(name, seconds, mae, flush=True)
    base = results["ours: RandomEffectsMLPRegressor, weights='map'"][0]
    text = "# Neural network with zip random intercepts at the seed's size\n\n"
    text += (
        f"Zillow-like data, {len(train):,} training rows x {len(SEED_FEATURES)} features, "
        f"{train[GROUP].nunique()} zip codes; validation MAE on the other {len(val):,} rows. "
        "Warm fits measured in one run.\n\n"
    )
    text += markdown_table(
        ["model", "fit seconds", "time / ours (map)", "validation MAE"],
        [[n, f"{s:.2f}", f"{s / base:.2f}", f"{m:.5f}"] for n, (s, m) in results.items()],
    )
    write_result("mlp.md", text)


if __name__ == "__main__":
    main()
