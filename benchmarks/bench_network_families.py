"""The network with random intercepts for counts and heavy-tailed noise
(``RandomEffectsMLPRegressor(likelihood=...)``) against gpboost's tree boosting with grouped
random effects, scikit-learn's histogram gradient boosting (groups as a categorical feature)
and our linear model, on simulated non-linear grouped data.

Training and validation sets of 20,000 rows each, features a, b, c uniform on (-2, 2), 200
groups of sd 0.4 (validation groups are the training ones):

* counts: ``y ~ Poisson(exp(0.3 + sin(2 a) + 0.5 b c + 0.3 b + u[g]))``;
* heavy tails: ``y = 1 + sin(2 a) + 0.5 b c + 0.3 b + u[g] + 0.5 t_3``.

Scores on the validation rows: mean Poisson deviance (counts) or MAE (heavy tails), and the
share of rows inside each model's 90% predictive interval where the model gives one. Fit
times are warm and measured side by side in one run (ours: the second of two fits on the
training rows); the ratio is ours / gpboost's. The cold first fit of ours runs in a fresh process
with an empty PyTensor compile cache.

Run: ``python benchmarks/bench_network_families.py``; writes
``benchmarks/results/network_families.md``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from _common import markdown_table, run_in_fresh_process, timed, write_result
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, mean_poisson_deviance

from skbayes_re import RandomEffectsMLPRegressor, RandomInterceptRegressor

N_ROWS, N_GROUPS, GROUP_SD = 20_000, 200, 0.4
FEATURES = ["a", "b", "c"]
BOOSTING = {"learning_rate": 0.05, "max_depth": 4, "num_leaves": 15, "verbose": 0}
BOOSTING_ROUNDS = 300


def simulate(likelihood: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    effects = np.random.default_rng(1000).normal(scale=GROUP_SD, size=N_GROUPS)
    frame = pd.DataFrame(rng.uniform(-2, 2, size=(N_ROWS, 3)), columns=FEATURES)
    groups = rng.integers(0, N_GROUPS, size=N_ROWS)
    frame["g"] = pd.Categorical(groups, categories=range(N_GROUPS))
    signal = np.sin(2 * frame["a"]) + 0.5 * frame["b"] * frame["c"] + 0.3 * frame["b"]
    eta = signal.to_numpy() + effects[groups]
    if likelihood == "poisson":
        frame["y"] = rng.poisson(np.exp(0.3 + eta)).astype(float)
    else:
        frame["y"] = 1.0 + eta + 0.5 * rng.standard_t(3, size=N_ROWS)
    return frame


def ours(model, train, val):
    columns = [*FEATURES, "g"]
    # compile: on the same rows, as the structure (e.g. which factors are centred) depends on
    # the data
    model.fit(train[columns], train["y"])
    fitted, seconds = timed(model.fit, train[columns], train["y"])
    low, high = fitted.predict_interval(val[columns], coverage=0.9).T
    covered = float(np.mean((val["y"] >= low) & (val["y"] <= high)))
    return fitted.predict(val[columns]), seconds, covered


def gpboost(train, val, likelihood):
    import gpboost as gpb

    model = gpb.GPModel(
        group_data=train["g"].astype(int).to_numpy(),
        likelihood="poisson" if likelihood == "poisson" else "t",
    )
    dataset = gpb.Dataset(train[FEATURES].to_numpy(), train["y"].to_numpy())

    def fit():
        return gpb.train(
            params=BOOSTING, train_set=dataset, gp_model=model, num_boost_round=BOOSTING_ROUNDS
        )

    booster, seconds = timed(fit)
    predicted = booster.predict(
        data=val[FEATURES].to_numpy(),
        group_data_pred=val["g"].astype(int).to_numpy(),
        predict_var=False,
        pred_latent=False,
    )
    return np.asarray(predicted["response_mean"]), seconds, None


def histogram_boosting(train, val, likelihood):
    loss = "poisson" if likelihood == "poisson" else "absolute_error"
    model = HistGradientBoostingRegressor(
        loss=loss, categorical_features=[3], max_iter=BOOSTING_ROUNDS, random_state=0
    )
    columns = [*FEATURES, "g"]
    fitted, seconds = timed(model.fit, train[columns], train["y"])
    return fitted.predict(val[columns]), seconds, None


def cold_first_fit(likelihood: str) -> float:
    """Seconds of a first fit in a fresh process with an empty compile cache."""
    code = (
        "import time\n"
        "import sys\n"
        "sys.path.insert(0, 'benchmarks')\n"
        "from bench_network_families import simulate, FEATURES\n"
        "from skbayes_re import RandomEffectsMLPRegressor\n"
        f"train = simulate({likelihood!r}, 0)\n"
        "start = time.perf_counter()\n"
        f"RandomEffectsMLPRegressor(likelihood={likelihood!r}, random_state=0).fit(\n"
        "    train[[*FEATURES, 'g']], train['y'])\n"
        "print(time.perf_counter() - start)\n"
    )
    return float(run_in_fresh_process(code, empty_cache=True).strip().splitlines()[-1])


def section(likelihood: str) -> str:
    train, val = simulate(likelihood, 0), simulate(likelihood, 1)
    score = mean_poisson_deviance if likelihood == "poisson" else mean_absolute_error
    score_name = "Poisson deviance" if likelihood == "poisson" else "MAE"
    results = {
        "ours: RandomEffectsMLPRegressor": ours(
            RandomEffectsMLPRegressor(likelihood=likelihood, random_state=0), train, val
        ),
        "ours: RandomInterceptRegressor (linear)": ours(
            RandomInterceptRegressor(likelihood=likelihood, random_state=0), train, val
        ),
        "gpboost: trees + grouped random effects": gpboost(train, val, likelihood),
        "sklearn HistGradientBoostingRegressor, groups categorical": histogram_boosting(
            train, val, likelihood
        ),
    }
    reference = results["gpboost: trees + grouped random effects"][1]
    rows = []
    for name, (predicted, seconds, covered) in results.items():
        shown = "" if covered is None else f"{covered:.3f}"
        value = score(
            val["y"], np.maximum(predicted, 1e-9) if likelihood == "poisson" else predicted
        )
        rows.append([name, f"{value:.4f}", shown, f"{seconds:.2f}", f"{seconds / reference:.2f}"])
        print(rows[-1], flush=True)
    table = markdown_table(
        [
            "model",
            f"validation {score_name}",
            "90% interval coverage",
            "warm fit seconds",
            "time / gpboost",
        ],
        rows,
    )
    cold = cold_first_fit(likelihood)
    return (
        table
        + f"\nCold first fit of ours in a fresh process (empty compile cache): {cold:.1f} s.\n"
    )


def main():
    text = "# The network with random intercepts: counts and heavy-tailed noise\n\n"
    text += (
        f"`python benchmarks/bench_network_families.py`: {N_ROWS:,} training and {N_ROWS:,} "
        f"validation rows, 3 features, {N_GROUPS} groups (sd {GROUP_SD}); a non-linear "
        "mean (`sin(2a) + 0.5 bc + 0.3 b`). gpboost: "
        f"{BOOSTING_ROUNDS} boosting rounds, {BOOSTING}, random effects by group with its "
        "Poisson or t likelihood; scikit-learn's histogram gradient boosting with the same "
        "number of rounds, Poisson or absolute-error loss, the group as a categorical "
        "feature. All warm fits measured side by side in one run.\n\n"
    )
    for likelihood, title in (
        ("poisson", "Counts (Poisson)"),
        ("student_t", "Heavy tails (t, 3 df)"),
    ):
        print(title, flush=True)
        text += f"## {title}\n\n" + section(likelihood) + "\n"
    write_result("network_families.md", text)


if __name__ == "__main__":
    main()
