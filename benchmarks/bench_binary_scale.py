"""Binary outcomes at scale: RandomEffectsClassifier against gpboost's ``bernoulli_logit``
on 1,000,000 simulated rows x 10 features x 10,000 groups, fitted in one process; then
1,000,000 rows of 3 binary features and 1,000 groups (8,000 design points), binary and
Poisson, where rows sharing a design point merge (``_models/merged_rows.py``).

Run: ``python benchmarks/bench_binary_scale.py [--rows N]``; writes
``results/binary_scale.md``. Our fits are warm (the compiled step reused from a first fit of
the same structure); our fit's memory is the peak of the allocations traced during it
(NumPy's and PyTensor's arrays), against the bytes of X.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import pandas as pd
from _common import markdown_table, write_result
from scipy.special import expit

from skbayes_re import RandomEffectsClassifier

N_FEATURES = 10


def simulate(n_rows: int, n_groups: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    coef = np.linspace(-0.5, 0.5, N_FEATURES)
    groups = rng.integers(0, n_groups, n_rows)
    features = rng.normal(size=(n_rows, N_FEATURES))
    effects = rng.normal(0.0, 0.5, n_groups)
    y = (rng.random(n_rows) < expit(-0.3 + features @ coef + effects[groups])).astype(int)
    X = pd.DataFrame(features, columns=[f"x{j}" for j in range(N_FEATURES)])
    X["g"] = pd.Categorical(groups)
    return X, y, coef


def ours(X, y):
    model = RandomEffectsClassifier(random_state=0)
    quarter = len(y) // 4
    model.fit(X[:quarter], y[:quarter])  # compiles the structure
    tracemalloc.start()
    start = time.perf_counter()
    model.fit(X, y)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return model, elapsed, peak


def gpboost(X, y):
    model, elapsed = _gpboost_fit(X, y, "bernoulli_logit")
    return np.asarray(model.get_coef()).ravel()[1:], elapsed


def merged_section(n_rows: int) -> str:
    from skbayes_re import RandomInterceptRegressor
    from skbayes_re._models import merged_rows

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.integers(0, 2, size=(n_rows, 3)).astype(float), columns=["a", "b", "c"])
    groups = rng.integers(0, 1000, n_rows)
    X["g"] = pd.Categorical(groups)
    eta = 0.3 + X[["a", "b", "c"]].to_numpy() @ np.array([0.5, -0.3, 0.2])
    eta = eta + rng.normal(scale=0.4, size=1000)[groups]
    cases = {
        "binary": ((rng.random(n_rows) < expit(eta)).astype(int), "bernoulli_logit"),
        "poisson": (rng.poisson(np.exp(eta)).astype(float), "poisson"),
    }
    rows = []
    for name, (y, their_likelihood) in cases.items():
        times = {}
        for label, share in (("merged", merged_rows.MAX_SHARE), ("every row", 0.0)):
            default, merged_rows.MAX_SHARE = merged_rows.MAX_SHARE, share
            try:
                model = (
                    RandomEffectsClassifier(random_state=0)
                    if name == "binary"
                    else RandomInterceptRegressor(likelihood="poisson", random_state=0)
                )
                model.fit(X, y)  # compiles the structure
                start = time.perf_counter()
                model.fit(X, y)
                times[label] = time.perf_counter() - start
            finally:
                merged_rows.MAX_SHARE = default
        _, their_time = _gpboost_fit(X, y, their_likelihood)
        rows.append(
            [
                name,
                f"{times['merged'] / their_time:.2f}",
                f"{times['every row'] / their_time:.2f}",
                f"{times['every row'] / times['merged']:.1f}",
            ]
        )
    header = [
        "outcome",
        "ours merged / gpboost",
        "ours on every row / gpboost",
        "speed-up from merging",
    ]
    return (
        f"## Merged rows: {n_rows:,} rows, 3 binary features, 1,000 groups\n\n"
        "At most 8,000 design points (features x group); every fit in this process, ours "
        "warm.\n\n" + markdown_table(header, rows)
    )


def _gpboost_fit(X, y, likelihood):
    import gpboost as gpb

    design = np.column_stack([np.ones(len(y)), X.drop(columns="g").to_numpy()])
    model = gpb.GPModel(group_data=X["g"].cat.codes.to_numpy(), likelihood=likelihood)
    start = time.perf_counter()
    model.fit(y=np.asarray(y, float), X=design)
    return model, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=10_000)
    args = parser.parse_args()
    X, y, coef = simulate(args.rows, args.groups)
    model, our_time, peak = ours(X, y)
    their_coef, their_time = gpboost(X, y)
    x_bytes = X.drop(columns="g").to_numpy().nbytes
    header = [
        "rows",
        "groups",
        "fit time ours / gpboost",
        "our fit memory / X's bytes",
        "max coef error ours",
        "max coef error gpboost",
        "our steps",
        "our group sd (truth 0.5)",
    ]
    rows = [
        [
            f"{args.rows:,}",
            f"{args.groups:,}",
            f"{our_time / their_time:.2f}",
            f"{peak / x_bytes:.2f}",
            f"{np.max(np.abs(model.coef_ - coef)):.4f}",
            f"{np.max(np.abs(their_coef - coef)):.4f}",
            model.n_iter_,
            f"{model.group_sd_['g']:.3f}",
        ]
    ]
    text = (
        "# Binary outcomes at scale\n\nWritten by `python benchmarks/bench_binary_scale.py`. "
        f"{N_FEATURES} features, intercepts by group (sd 0.5), both fitted in this process; "
        "ours warm (minibatch ADVI beyond 200,000 rows), gpboost's Laplace approximation. "
        f"Our fit took {our_time:.1f} s here and gpboost's {their_time:.1f} s (for the "
        "ratio only).\n\n" + markdown_table(header, rows)
    )
    write_result("binary_scale.md", text + "\n" + merged_section(args.rows))


if __name__ == "__main__":
    main()
