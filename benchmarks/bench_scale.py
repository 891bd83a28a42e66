"""Scale benchmark: ours against gpboost on crossed effects and on millions of rows.

Each (tool, size) runs in its own fresh process so that peak memory (max RSS) is its own. Ours
is warmed up first in that process (a small fit of the same structure compiles it), so the
timed fit is a warm one; the warm-up is not counted in the fit time but is in peak memory.

Run: ``python benchmarks/bench_scale.py [--quick]``; writes ``benchmarks/results/scale.md``.
"""

from __future__ import annotations

import argparse
import json
import tempfile

from _common import markdown_table, run_in_fresh_process, write_result

SIMULATE = """
import numpy as np
def simulate(n, p, sizes, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    beta = np.linspace(-1, 1, p)
    codes = [rng.integers(0, g, size=n) for g in sizes]
    truth_sd = [0.5 + 0.25 * k for k in range(len(sizes))]
    y = 0.3 + X @ beta + rng.normal(scale=1.0, size=n)
    for code, g, sd in zip(codes, sizes, truth_sd):
        y += rng.normal(scale=sd, size=g)[code]
    return X, y, codes, beta, truth_sd
"""

FRAME = """
import pandas as pd
def frame(X, codes):
    df = pd.DataFrame(X, columns=[f"x{{i}}" for i in range(X.shape[1])])
    for k, c in enumerate(codes):
        df[f"g{{k}}"] = pd.Categorical(c)
    return df
"""

# Simulated data and a 2,000-row slice for the warm-up fit, for either of our estimators.
SETUP = (
    SIMULATE
    + FRAME
    + """
import json, resource, time
import pandas as pd
from skbayes_re import RandomEffectsMLPRegressor, RandomInterceptRegressor
X, y, codes, beta, truth_sd = simulate({n}, {p}, {sizes})
small = frame(X[:2000], [c[:2000] for c in codes])
"""
)

OURS = (
    SETUP
    + """
RandomInterceptRegressor(random_state=0).fit(small, y[:2000])
df = frame(X, codes)
start = time.perf_counter()
model = RandomInterceptRegressor(random_state=0).fit(df, y)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(dict(seconds=seconds, peak_mb=peak,
    coef_error=float(abs(model.coef_ - beta).max()),
    sd_ratio=[model.group_sd_[f"g{{k}}"] / s for k, s in enumerate(truth_sd)],
    n_iter=model.n_iter_)))
"""
)

MLP = (
    SETUP
    + """
RandomEffectsMLPRegressor(batch_size=500, max_iter=200, random_state=0).fit(small, y[:2000])
df = frame(X, codes)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
model = RandomEffectsMLPRegressor(batch_size={batch_size}, random_state=0).fit(df, y)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(dict(seconds=seconds, peak_mb=peak, before_mb=before, x_mb=X.nbytes / 2**20,
    sd_ratio=[model.group_sd_[f"g{{k}}"] / s for k, s in enumerate(truth_sd)],
    sigma=model.sigma_, n_iter=model.n_iter_)))
"""
)

MLP_BATCH_SIZE = 16_384

GPBOOST = (
    SIMULATE
    + """
import json, resource, time
import numpy as np
import gpboost as gpb
X, y, codes, beta, truth_sd = simulate({n}, {p}, {sizes})
start = time.perf_counter()
model = gpb.GPModel(group_data=np.column_stack(codes), likelihood="gaussian")
model.fit(y=y, X=np.column_stack([np.ones(len(y)), X]))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
cov = np.asarray(model.get_cov_pars()).ravel()
coef = np.asarray(model.get_coef()).ravel()[1:]
print(json.dumps(dict(seconds=seconds, peak_mb=peak,
    coef_error=float(abs(coef - beta).max()),
    sd_ratio=[float(np.sqrt(c)) / s for c, s in zip(cov[1:], truth_sd)])))
"""
)

CASES = {
    "crossed survey: 73,000 rows, 3,000 students x 1,100 lecturers, 4 features": (
        73_000,
        4,
        [3000, 1100],
    ),
    "0.2M rows, 10 features, 50,000 groups": (200_000, 10, [50_000]),
    "1M rows, 10 features, 50,000 groups": (1_000_000, 10, [50_000]),
    "2M rows, 10 features, 50,000 groups": (2_000_000, 10, [50_000]),
}


# One PyTensor compile cache for the run, filled by its first warm-up: a cache holding many
# old modules is read whole when PyTensor starts, which would add its size to our peak memory
# (~170 MB with a few hundred modules) and make the figure depend on the machine's history.
CACHE = tempfile.TemporaryDirectory()


def run(template: str, n: int, p: int, sizes: list[int]) -> dict:
    code = template.format(n=n, p=p, sizes=sizes, batch_size=MLP_BATCH_SIZE)
    out = run_in_fresh_process(code, empty_cache=False, compiledir=CACHE.name)
    return json.loads(out.strip().splitlines()[-1])


def mlp_section(cases: dict) -> str:
    """RandomEffectsMLPRegressor with minibatches on the cases with 10 features."""
    rows = []
    for name, (n, p, sizes) in cases.items():
        if p != 10:
            continue
        result = run(MLP, n, p, sizes)
        print(name, result, flush=True)
        extra = result["peak_mb"] - result["before_mb"]
        rows.append(
            [
                name,
                f"{result['seconds']:.1f}",
                result["n_iter"],
                f"{result['x_mb']:.0f}",
                f"{extra:.0f}",
                f"{extra / result['x_mb']:.2f}",
                " ".join(f"{r:.3f}" for r in result["sd_ratio"]),
                f"{result['sigma']:.3f}",
            ]
        )
    text = (
        f"\n## RandomEffectsMLPRegressor, batch_size={MLP_BATCH_SIZE:,}\n\n"
        "The same data, network (5,) tanh with MAP weights, minibatch ADVI (warmed up by a "
        "small fit first). Memory is the growth of the process's peak resident set during the "
        "fit, beside the size of X's float64 features. True noise sd is 1.\n\n"
    )
    return text + markdown_table(
        [
            "case",
            "fit s",
            "steps",
            "X MB",
            "fit memory MB",
            "fit memory / X",
            "group sd / truth",
            "noise sd",
        ],
        rows,
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="only the crossed case")
    args = parser.parse_args()
    cases = dict(list(CASES.items())[:1]) if args.quick else CASES
    rows = []
    for name, (n, p, sizes) in cases.items():
        ours, theirs = run(OURS, n, p, sizes), run(GPBOOST, n, p, sizes)
        print(name, ours, theirs, flush=True)
        rows.append(
            [
                name,
                f"{ours['seconds']:.2f}",
                f"{theirs['seconds']:.2f}",
                f"{ours['seconds'] / theirs['seconds']:.2f}",
                f"{ours['peak_mb']:.0f} / {theirs['peak_mb']:.0f}",
                f"{ours['coef_error']:.4f} / {theirs['coef_error']:.4f}",
                " ".join(f"{r:.3f}" for r in ours["sd_ratio"])
                + " / "
                + " ".join(f"{r:.3f}" for r in theirs["sd_ratio"]),
            ]
        )
    text = "# Scale: RandomInterceptRegressor against gpboost\n\n"
    text += (
        "Each fit in its own fresh process (ours warmed up by a 2,000-row fit of the same "
        "structure first, with a PyTensor compile cache of the run's own). Time ratio is "
        "ours / gpboost. Memory is peak resident set size of the whole process (data "
        "included). Accuracy: largest absolute error of the fixed "
        "effects, and estimated / true group sd per grouping factor.\n\n"
    )
    text += markdown_table(
        [
            "case",
            "ours s",
            "gpboost s",
            "ours / gpboost",
            "peak MB ours / gpboost",
            "max coef error ours / gpboost",
            "group sd / truth ours / gpboost",
        ],
        rows,
    )
    if not args.quick:
        text += mlp_section(cases)
    write_result("scale.md", text)


if __name__ == "__main__":
    main()
