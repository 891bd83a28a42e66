"""Past one machine: a RandomInterceptRegressor fitted from a Dask DataFrame on a LocalCluster.

20,000,000 rows x 10 features x 100,000 groups, each partition generated on its worker from
its own seed (the data are never whole in any process), fitted by a two-worker LocalCluster
(one thread each): statistics computed on the workers and merged in a tree, the posterior
in the client.
Beside it, in a fresh process of its own, the in-memory fit of 2,000,000 rows of the same
generator; the throughput ratio (rows per second, ours on Dask / ours in memory) is measured
in the same run. Both fits are warm (each process first fits a small sample of the same model
structure). Client peak memory is the benchmark process's own peak RSS (the workers are other
processes). Prediction on the Dask DataFrame is lazy: the time to build it is reported, and a
partition's predictions are compared with the in-memory ones.

Run: ``python benchmarks/bench_distributed.py [--quick]`` (``--quick``: 2,000,000 rows);
writes ``benchmarks/results/distributed.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import pandas as pd
from _common import markdown_table, run_in_fresh_process, write_result
from scipy import stats

N_FEATURES, N_GROUPS, ROWS_PER_PARTITION = 10, 100_000, 500_000
BETA = np.linspace(-1.0, 1.0, N_FEATURES)
GROUP_SD, NOISE_SD, INTERCEPT = 0.5, 1.0, 0.3

GENERATOR = """
import numpy as np
import pandas as pd

N_FEATURES, N_GROUPS = {n_features}, {n_groups}
BETA = np.linspace(-1.0, 1.0, N_FEATURES)

def group_effects():
    return np.random.default_rng(12345).normal(0.0, {group_sd}, N_GROUPS)

def partition(index, rows):
    rng = np.random.default_rng([{data_seed}, index])
    X = rng.normal(size=(rows, N_FEATURES))
    code = rng.integers(0, N_GROUPS, rows)
    y = {intercept} + X @ BETA + group_effects()[code] + rng.normal(0.0, {noise_sd}, rows)
    frame = pd.DataFrame(X, columns=[f"x{{i}}" for i in range(N_FEATURES)])
    frame["g"] = pd.Categorical(code, categories=np.arange(N_GROUPS))
    frame["y"] = y
    return frame
"""

IN_MEMORY = """
import json, time
import pandas as pd
from skbayes_re import RandomInterceptRegressor

frame = pd.concat([partition(i, {rows_per_partition}) for i in range({n_partitions})],
                  ignore_index=True)
X, y = frame.drop(columns="y"), frame["y"]
RandomInterceptRegressor(random_state=0).fit(X.iloc[:20000], y.iloc[:20000])  # warm
start = time.perf_counter()
RandomInterceptRegressor(random_state=0).fit(X, y)
print(json.dumps(dict(seconds=time.perf_counter() - start, rows=len(X))))
"""


DATA_SEED = 2024  # the partitions' seeds are (DATA_SEED, partition index)


def generator_code(data_seed: int = DATA_SEED) -> str:
    return GENERATOR.format(
        data_seed=data_seed,
        n_features=N_FEATURES,
        n_groups=N_GROUPS,
        group_sd=GROUP_SD,
        intercept=INTERCEPT,
        noise_sd=NOISE_SD,
    )


def in_memory_throughput(rows: int, data_seed: int) -> dict:
    code = generator_code(data_seed) + IN_MEMORY.format(
        rows_per_partition=ROWS_PER_PARTITION, n_partitions=rows // ROWS_PER_PARTITION
    )
    result = json.loads(run_in_fresh_process(code, empty_cache=False).strip().splitlines()[-1])
    result["rows_per_second"] = result["rows"] / result["seconds"]
    return result


def lazy_frame(n_partitions: int, namespace: dict):
    import dask.dataframe as dd

    meta = namespace["partition"](0, 2).iloc[:0]
    return dd.from_map(
        namespace["partition"],
        range(n_partitions),
        rows=ROWS_PER_PARTITION,
        meta=meta,
        enforce_metadata=False,
    )


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def distributed_fit(rows: int, data_seed: int) -> dict:
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from skbayes_re import RandomInterceptRegressor

    namespace: dict = {}
    exec(generator_code(data_seed), namespace)
    warm = namespace["partition"](99, 20_000)  # compiles the structure in the client
    RandomInterceptRegressor(random_state=0).fit(warm.drop(columns="y"), warm["y"])
    frame = lazy_frame(rows // ROWS_PER_PARTITION, namespace)
    X, y = frame.drop(columns="y"), frame["y"]
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        start = time.perf_counter()
        model = RandomInterceptRegressor(random_state=0).fit(X, y)
        seconds = time.perf_counter() - start
        fit_peak = peak_mb()  # before the checks below add their own arrays
        start = time.perf_counter()
        lazy = model.predict(X)
        build = time.perf_counter() - start
        sample = X.partitions[0].compute().iloc[:20_000]
        on_dask = model.predict(dd.from_pandas(sample, npartitions=2)).compute()
        in_memory = model.predict(sample)
    coef_sd = model.posterior_.posterior["coef"].values.reshape(-1, N_FEATURES).std(axis=0)
    # The least-squares sd of each coefficient (independent features, variance 1): the
    # posterior's should match it, so that the errors below are read in honest units.
    theory_sd = model.sigma_ / np.sqrt(rows)
    return {
        "seconds": seconds,
        "rows_per_second": rows / seconds,
        "client_peak_mb": fit_peak,
        "coef_errors_in_sd": ((model.coef_ - BETA) / coef_sd).round(2).tolist(),
        "coef_sd_ratio": float(np.mean(coef_sd) / theory_sd),
        "intercept": model.intercept_,
        "group_sd": model.group_sd_["g"],
        "realised_group_sd": float(namespace["group_effects"]().std()),
        "sigma": model.sigma_,
        "n_iter": model.n_iter_,
        "predict_build_seconds": build,
        "lazy_type": type(lazy).__name__,
        "prediction_gap": float(np.max(np.abs(on_dask - in_memory))),
        "n_groups_seen": len(model.group_effects_["g"]),
    }


def report(rows: int, ours: dict, memory: dict) -> str:
    ratio = ours["rows_per_second"] / memory["rows_per_second"]
    text = "# Fitting from Dask: a LocalCluster of two workers\n\n"
    text += (
        f"`python benchmarks/bench_distributed.py`: {rows:,} rows x {N_FEATURES} features x "
        f"{N_GROUPS:,} groups generated lazily, {ROWS_PER_PARTITION:,} rows per partition, "
        "each partition made on its worker from its own seed; `RandomInterceptRegressor` fitted "
        "from the Dask DataFrame (two passes over the partitions on the workers; the posterior "
        "computed from the merged statistics in the client, exactly with the default "
        f"`method='auto'`, no ADVI). In-memory reference: {memory['rows']:,} rows of the "
        "same generator, fitted in a fresh process; both warm.\n\n"
    )
    text += markdown_table(
        ["fit", "rows", "seconds", "rows per second", "ratio to in-memory"],
        [
            [
                "Dask, 2 workers",
                f"{rows:,}",
                f"{ours['seconds']:.1f}",
                f"{ours['rows_per_second']:,.0f}",
                f"{ratio:.2f}",
            ],
            [
                "in memory",
                f"{memory['rows']:,}",
                f"{memory['seconds']:.1f}",
                f"{memory['rows_per_second']:,.0f}",
                "1",
            ],
        ],
    )
    text += "\n" + markdown_table(
        ["quantity", "truth", "Dask fit"],
        [
            [
                "coefficient errors, in posterior sds (x0 ... x9)",
                "0",
                " ".join(f"{e:+.2f}" for e in ours["coef_errors_in_sd"]),
            ],
            [
                "posterior sd of a coefficient / its least-squares sd",
                "1",
                f"{ours['coef_sd_ratio']:.3f}",
            ],
            ["intercept", INTERCEPT, f"{ours['intercept']:.4f}"],
            [
                "group sd (realised sd of the 100,000 effects)",
                f"{GROUP_SD} ({ours['realised_group_sd']:.4f})",
                f"{ours['group_sd']:.4f}",
            ],
            ["group sd / truth", "1", f"{ours['group_sd'] / GROUP_SD:.4f}"],
            ["noise sd", NOISE_SD, f"{ours['sigma']:.4f}"],
            ["groups seen", f"{N_GROUPS:,}", f"{ours['n_groups_seen']:,}"],
            ["client peak memory during the fit, MB", "", f"{ours['client_peak_mb']:.0f}"],
        ],
    )
    errors = np.asarray(ours["coef_errors_in_sd"])
    chi2 = float(np.sum(errors**2))
    text += (
        f"\nThe ten coefficient errors, in posterior sds, have squares summing to {chi2:.1f} "
        f"(chi-squared with 10 degrees of freedom: p = {stats.chi2.sf(chi2, 10):.2f}); for ten "
        "calibrated coefficients the largest |error| exceeds 2 sds with probability "
        f"{1 - (1 - 2 * stats.norm.sf(2.0)) ** 10:.2f}.\n"
    )
    text += (
        f"\nPrediction on the Dask DataFrame returns a `{ours['lazy_type']}` in "
        f"{ours['predict_build_seconds']:.3f} s (nothing computed); on 20,000 rows of the first "
        f"partition it matches the in-memory prediction to {ours['prediction_gap']:.1e}. The "
        f"search for the noise and group sds' posterior mode took {ours['n_iter']} steps.\n"
    )
    return text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="2,000,000 rows instead of 20M")
    parser.add_argument(
        "--data-seed",
        type=int,
        default=DATA_SEED,
        help="seed of the rows (the group effects stay fixed); the table is written to "
        "distributed_seed<N>.md unless it is the default",
    )
    args = parser.parse_args()
    rows = 2_000_000 if args.quick else 20_000_000
    memory = in_memory_throughput(2_000_000, args.data_seed)  # first: before this one grows
    print(memory, flush=True)
    ours = distributed_fit(rows, args.data_seed)
    print(ours, flush=True)
    seed = args.data_seed
    name = "distributed.md" if seed == DATA_SEED else f"distributed_seed{seed}.md"
    write_result(name, report(rows, ours, memory))


if __name__ == "__main__":
    pd.set_option("display.width", 120)
    main()
