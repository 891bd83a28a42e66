"""Correlated random slopes: ours against NUTS, statsmodels MixedLM, gpboost and a known truth.

Five checks of ``RandomEffectsRegressor``, each measured side by side in one run:

1. sleepstudy, ``reaction ~ days + (1 + days | subject)``: our posterior means against the
   NUTS posterior of the same model (constants from ``nuts_sleepstudy_reference.py``);
2. sleepstudy five-fold MAE: ours with and without slopes against MixedLM with and without
   ``re_formula="~days"``;
3. sleepstudy warm fit time (best of 5) against MixedLM's;
4. scale: 1M rows x 10 features x 10,000 groups with an intercept and two slopes varying by
   group, ours against gpboost (independent slopes), each tool in its own fresh process with
   ours warmed up first by a 3,000-row fit; time, recovered sds and fit memory;
5. a simulated truth with crossed factors (schools with correlated slopes, regions with
   intercepts): interval coverage of the true sds and correlations, and predictive coverage
   on seen and unseen schools.

The scale section runs first, while this process is still small: a child process's
``ru_maxrss`` starts at its parent's peak, which would otherwise hide the child's own.

Run: ``python benchmarks/bench_random_slopes.py [--quick]`` (``--quick``: 100,000 rows and
2,000 groups in the scale section); writes ``benchmarks/results/random_slopes.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
from _common import markdown_table, run_in_fresh_process, timed, write_result
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import KFold

from skbayes_re import RandomEffectsRegressor, RandomInterceptRegressor
from skbayes_re.datasets import load_sleepstudy

SLOPES = {"subject": ["days"]}

# NUTS posterior (mean, sd) in original units, as printed by
# benchmarks/nuts_sleepstudy_reference.py (the estimator's own model and priors).
NUTS = {
    "fixed intercept": (251.58289, 8.39343),
    "days coefficient": (10.51846, 1.65305),
    "noise sd": (25.80662, 1.53700),
    "sd of intercepts": (31.50031, 7.71872),
    "sd of slopes": (6.26207, 1.39191),
    "intercept-slope correlation": (-0.10180, 0.28116),
}

LME4_NOTE = (
    "For orientation, lme4's REML fit (no priors): fixed effects 251.4 and 10.47, group sds "
    "24.7 (intercepts) and 5.9 (slopes), correlation 0.07, residual sd 25.6.\n"
)


# ----------------------------------------------------------------- 1. sleepstudy vs NUTS
def fit_ours(X, y):
    return RandomEffectsRegressor(random_slopes=SLOPES, random_state=0).fit(X, y)


def our_sleepstudy_values(model) -> list[float]:
    sd, corr = model.group_sd_["subject"], model.group_corr_["subject"]
    return [
        model.intercept_,
        model.coef_[0],
        model.sigma_,
        sd["intercept"],
        sd["days"],
        corr.loc["intercept", "days"],
    ]


def nuts_section(X, y) -> str:
    model = fit_ours(X, y)
    rows = []
    for (name, (mean, sd)), ours in zip(NUTS.items(), our_sleepstudy_values(model), strict=True):
        digits = 3 if "correlation" in name else 2
        nuts = f"{mean:.{digits}f} +- {sd:.{digits}f}"
        rows.append([name, nuts, f"{ours:.{digits}f}", f"{(ours - mean) / sd:+.2f}"])
    text = "## Sleepstudy: posterior means against NUTS\n\n"
    text += (
        "`reaction ~ days + (1 + days | subject)`, 180 rows, 18 subjects, original units. "
        "NUTS: posterior mean +- sd of the same model and priors. Ours: posterior mean, "
        "`random_state=0`. Last column: (ours - NUTS mean) / NUTS sd.\n\n"
    )
    text += markdown_table(["quantity", "NUTS", "ours", "difference in NUTS sds"], rows)
    return text + "\n" + LME4_NOTE


# ------------------------------------------------------------------ 2. five-fold MAE
def mixedlm_frame(X, y):
    return X.assign(reaction=np.asarray(y, dtype=float), subject=X["subject"].astype(str))


def fit_mixedlm(frame, re_formula=None):
    import statsmodels.formula.api as smf

    model = smf.mixedlm("reaction ~ days", frame, groups="subject", re_formula=re_formula)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit()


def predict_mixedlm(result, frame):
    """Fixed part plus the subject's BLUP (intercept, and slope when fitted); 0 if unseen."""
    blups = {label: np.ravel(effect) for label, effect in result.random_effects.items()}
    zero = np.zeros(len(next(iter(blups.values()))))
    effects = np.array([blups.get(label, zero) for label in frame["subject"]])
    design = np.column_stack([np.ones(len(frame)), frame["days"]])[:, : effects.shape[1]]
    return np.asarray(result.predict(frame)) + (design * effects).sum(axis=1)


def cv_predictions(X, y, train, test) -> dict[str, np.ndarray]:
    frame = mixedlm_frame(X, y)
    Xtr, ytr, Xte = X.iloc[train], y.iloc[train], X.iloc[test]
    slopes = fit_mixedlm(frame.iloc[train], re_formula="~days")
    intercepts = fit_mixedlm(frame.iloc[train])
    return {
        "ours, random slopes": fit_ours(Xtr, ytr).predict(Xte),
        "ours, RandomInterceptRegressor": RandomInterceptRegressor(random_state=0)
        .fit(Xtr, ytr)
        .predict(Xte),
        'MixedLM, re_formula="~days"': predict_mixedlm(slopes, frame.iloc[test]),
        "MixedLM, intercepts only": predict_mixedlm(intercepts, frame.iloc[test]),
    }


def cv_section(X, y) -> str:
    errors: dict[str, list[float]] = {}
    for train, test in KFold(5, shuffle=True, random_state=0).split(X):
        for tool, pred in cv_predictions(X, y, train, test).items():
            errors.setdefault(tool, []).append(mean_absolute_error(y.iloc[test], pred))
    mae = {tool: float(np.mean(values)) for tool, values in errors.items()}
    reference = mae['MixedLM, re_formula="~days"']
    rows = [[tool, f"{value:.2f}", f"{value / reference:.3f}"] for tool, value in mae.items()]
    text = "\n## Sleepstudy: five-fold MAE\n\n"
    text += (
        "`KFold(5, shuffle=True, random_state=0)`; MAE averaged over the folds. MixedLM "
        "predicts its fixed part plus the subject's BLUP (0 for an unseen subject).\n\n"
    )
    return text + markdown_table(["model", "MAE", 'MAE / MixedLM(re_formula="~days")'], rows)


# ------------------------------------------------------------------ 3. warm fit time
def timing_section(X, y) -> str:
    fit_ours(X, y)  # warm-up: compiles (or loads) this model structure
    ours, ours_s = timed(fit_ours, X, y, repeat=5)
    _, theirs_s = timed(fit_mixedlm, mixedlm_frame(X, y), "~days", repeat=5)
    text = "\n## Sleepstudy: warm fit time\n\n"
    text += (
        f"Best of 5 fits each, ours after a warm-up fit in the same process "
        f"({ours.n_iter_} ADVI steps).\n\n"
    )
    return text + markdown_table(
        ["ours s", 'MixedLM(re_formula="~days") s', "ours / MixedLM"],
        [[f"{ours_s:.3f}", f"{theirs_s:.3f}", f"{ours_s / theirs_s:.2f}"]],
    )


# ------------------------------------------------------------------------- 4. scale
SCALE_SD = [0.8, 0.4, 0.3]
SCALE_CORR = [[1.0, 0.3, 0.0], [0.3, 1.0, -0.2], [0.0, -0.2, 1.0]]
TERMS = ["intercept", "x0", "x1"]
PAIRS = [(0, 1), (0, 2), (1, 2)]  # off-diagonal correlations reported, in this order
SCALE_CASES = {"full": (1_000_000, 10, 10_000), "quick": (100_000, 10, 2_000)}
WARM_UP_ROWS = 3_000

# Data (intercept and slopes on x0, x1 varying by group) and fit-memory measurement.
SCALE_SETUP = """
import gc, json, os, resource, time
import numpy as np

def simulate(n, p, n_groups, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    code = rng.integers(0, n_groups, size=n)
    cov = np.outer(SD, SD) * np.array(CORR)
    u = rng.multivariate_normal(np.zeros(3), cov, size=n_groups)[code]
    y = 0.3 + X @ np.linspace(-1, 1, p) + rng.normal(size=n)
    y += u[:, 0] + u[:, 1] * X[:, 0] + u[:, 2] * X[:, 1]
    return X, y, code

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def measured(fit):
    # Reset the peak-RSS mark (Linux clear_refs), so ru_maxrss afterwards is the fit's own peak.
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before, peak_before = rss_mb(), peak_mb()
    start = time.perf_counter()
    model = fit()
    seconds = time.perf_counter() - start
    return model, dict(seconds=seconds, fit_mb=peak_mb() - before, rss_before_mb=before,
                       peak_before_mb=peak_before)

X, y, code = simulate(N, P, G)
"""

SCALE_OURS = """
import pandas as pd
from skbayes_re import RandomEffectsRegressor

def frame(X, code):
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    df["g"] = pd.Categorical(code)
    return df

def fit(df, y):
    model = RandomEffectsRegressor(random_slopes={"g": ["x0", "x1"]}, random_state=0)
    return model.fit(df, y)

fit(frame(X[:WARM_UP], code[:WARM_UP]), y[:WARM_UP])
df = frame(X, code)
model, out = measured(lambda: fit(df, y))
corr = model.group_corr_["g"].to_numpy()
out.update(x_mb=X.nbytes / 2**20, sd=model.group_sd_["g"].tolist(), noise=model.sigma_,
           corr=[corr[i, j] for i, j in PAIRS], n_iter=model.n_iter_,
           compile=model.fit_timings_["compile"])
print(json.dumps(out))
"""

SCALE_GPBOOST = """
import gpboost as gpb

def fit():
    model = gpb.GPModel(group_data=code, group_rand_coef_data=X[:, :2],
                        ind_effect_group_rand_coef=[1, 1], likelihood="gaussian")
    model.fit(y=y, X=np.column_stack([np.ones(len(y)), X]))
    return model

model, out = measured(fit)
cov = np.asarray(model.get_cov_pars()).ravel()
out.update(x_mb=X.nbytes / 2**20, sd=np.sqrt(cov[1:]).tolist(), noise=float(np.sqrt(cov[0])))
print(json.dumps(out))
"""

# One PyTensor compile cache for the run, filled by the first warm-up fit (as in bench_scale:
# a cache holding many old modules is read whole at start-up and would inflate memory).
CACHE = tempfile.TemporaryDirectory()


def run_scale(template: str, n: int, p: int, n_groups: int) -> dict:
    header = (
        f"N, P, G, WARM_UP = {n}, {p}, {n_groups}, {WARM_UP_ROWS}\n"
        f"SD, CORR, PAIRS = {SCALE_SD}, {SCALE_CORR}, {PAIRS}\n"
    )
    code = header + SCALE_SETUP + template
    try:
        out = run_in_fresh_process(code, empty_cache=False, compiledir=CACHE.name)
    except subprocess.CalledProcessError as error:
        print(error.stderr)  # the child's traceback
        raise
    result = json.loads(out.strip().splitlines()[-1])
    print(result, flush=True)
    return result


def scale_rows(ours: dict, theirs: dict) -> list[list]:
    both = (ours, theirs)
    rows = [
        ["fit seconds", "", *(f"{r['seconds']:.2f}" for r in both)],
        ["time ours / gpboost", "", f"{ours['seconds'] / theirs['seconds']:.2f}", ""],
    ]
    for k, term in enumerate(TERMS):
        rows.append([f"sd {term}", SCALE_SD[k], *(f"{r['sd'][k]:.3f}" for r in both)])
    for k, (i, j) in enumerate(PAIRS):
        name = f"correlation {TERMS[i]}-{TERMS[j]}"
        rows.append([name, SCALE_CORR[i][j], f"{ours['corr'][k]:.3f}", "not modelled"])
    return rows + [
        ["noise sd", 1.0, *(f"{r['noise']:.3f}" for r in both)],
        ["fit memory MB", "", *(f"{r['fit_mb']:.0f}" for r in both)],
        ["fit memory / X", "", *(f"{r['fit_mb'] / r['x_mb']:.2f}" for r in both)],
    ]


def scale_section(quick: bool) -> str:
    n, p, n_groups = SCALE_CASES["quick" if quick else "full"]
    ours = run_scale(SCALE_OURS, n, p, n_groups)
    theirs = run_scale(SCALE_GPBOOST, n, p, n_groups)
    text = f"\n## Scale: {n:,} rows x {p} features x {n_groups:,} groups\n\n"
    text += (
        "Intercept and slopes on x0, x1 varying by group, true correlation matrix "
        f"{SCALE_CORR}; fixed effects linspace(-1, 1, 10), intercept 0.3. Each tool in its own "
        f"fresh process; ours warmed up by a {WARM_UP_ROWS:,}-row fit of the same structure "
        f"(timed fit: {ours['n_iter']} ADVI steps, {ours['compile']:.1f} s compiling). "
        "gpboost fits independent slopes (it has no correlated ones). Fit memory: peak "
        "resident set during the fit minus the resident set just before it, also as a "
        f"multiple of X's {ours['x_mb']:.0f} MB of float64 features.\n\n"
    )
    return text + markdown_table(["quantity", "truth", "ours", "gpboost"], scale_rows(ours, theirs))


# ------------------------------------------------------------ 5. crossed, known truth
SCHOOL_SD = np.array([1.0, 0.5, 0.3])
SCHOOL_CORR = np.array([[1.0, 0.3, -0.2], [0.3, 1.0, 0.1], [-0.2, 0.1, 1.0]])
REGION_SD = 0.7
CROSSED_BETA = np.array([0.5, -0.3, 0.8])
N_SEEN, N_SCHOOLS, N_REGIONS = 500, 600, 40


def crossed_rows(rng, n, schools, school_effects, region_effects):
    """n rows of the crossed design, schools drawn from ``schools`` (a range)."""
    X = rng.normal(size=(n, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -1.0]
    school = rng.integers(schools.start, schools.stop, size=n)
    region = rng.integers(0, N_REGIONS, size=n)
    u = school_effects[school]
    y = 1.0 + X @ CROSSED_BETA + u[:, 0] + u[:, 1] * X[:, 0] + u[:, 2] * X[:, 1]
    y += region_effects[region] + rng.normal(size=n)
    frame = pd.DataFrame(X, columns=["x0", "x1", "x2"])
    frame["school"] = pd.Categorical(school)
    frame["region"] = pd.Categorical(region)
    return frame, y


def simulate_crossed(seed=0):
    rng = np.random.default_rng(seed)
    cov = np.outer(SCHOOL_SD, SCHOOL_SD) * SCHOOL_CORR
    school_effects = rng.multivariate_normal(np.zeros(3), cov, size=N_SCHOOLS)
    region_effects = rng.normal(scale=REGION_SD, size=N_REGIONS)
    effects = (school_effects, region_effects)
    seen, unseen = range(N_SEEN), range(N_SEEN, N_SCHOOLS)
    return {
        "train": crossed_rows(rng, 50_000, seen, *effects),
        "seen schools": crossed_rows(rng, 5_000, seen, *effects),
        "unseen schools": crossed_rows(rng, 5_000, unseen, *effects),
        "realised": realised(school_effects[:N_SEEN], region_effects),
    }


def realised(school_effects, region_effects) -> list[float]:
    """Sample sds and correlations of the simulated training groups, in the table's order."""
    corr = np.corrcoef(school_effects, rowvar=False)
    return [
        *school_effects.std(axis=0, ddof=1),
        *(corr[i, j] for i, j in PAIRS),
        region_effects.std(ddof=1),
    ]


def truth_rows(model, sample: list[float]) -> list[list]:
    post = model.posterior_.posterior
    sd = post["group_sd_school"].values.reshape(-1, 3)
    corr = post["group_corr_school"].values.reshape(-1, 3, 3)
    quantities = [(f"school sd {t}", SCHOOL_SD[k], sd[:, k]) for k, t in enumerate(TERMS)]
    quantities += [
        (f"school corr {TERMS[i]}-{TERMS[j]}", SCHOOL_CORR[i, j], corr[:, i, j]) for i, j in PAIRS
    ]
    quantities.append(("region sd", REGION_SD, post["group_sd_region"].values.ravel()))
    rows = []
    for (name, truth, draws), value in zip(quantities, sample, strict=True):
        low, high = np.quantile(draws, [0.05, 0.95])
        covers = "yes" if low <= truth <= high else "no"
        interval = f"[{low:.3f}, {high:.3f}]"
        rows.append([name, f"{truth:.2f}", f"{value:.3f}", f"{draws.mean():.3f}", interval, covers])
    return rows


def coverage_rows(model, data) -> list[list]:
    rows = []
    for name in ["seen schools", "unseen schools"]:
        frame, y = data[name]
        bounds = model.predict_interval(frame, coverage=0.9)
        inside = (bounds[:, 0] <= y) & (y <= bounds[:, 1])
        rows.append([name, f"{inside.mean():.3f}", f"{np.mean(bounds[:, 1] - bounds[:, 0]):.2f}"])
    return rows


def crossed_section() -> str:
    data = simulate_crossed()
    model = RandomEffectsRegressor(random_slopes={"school": ["x0", "x1"]}, random_state=0)
    start = time.perf_counter()
    model.fit(*data["train"])
    seconds = time.perf_counter() - start
    text = "\n## Simulated truth: correlated school slopes crossed with region intercepts\n\n"
    text += (
        "50,000 training rows, 3 features; 500 schools with intercept and slopes on x0, x1 "
        "(true correlation matrix below), crossed with 40 regions (intercepts), noise sd 1. "
        "Posterior mean and 90% equal-tailed interval of each group sd and correlation, from "
        "the stored draws; beside the truth, the value realised in the simulated training "
        "groups (sample sd or correlation of their effects).\n\n"
    )
    header = ["quantity", "truth", "realised", "posterior mean", "90% interval", "covers truth"]
    text += markdown_table(header, truth_rows(model, data["realised"]))
    text += (
        "\nPosterior predictive 90% intervals on 5,000 new rows of seen schools and 5,000 rows "
        "of 100 unseen schools (target coverage 0.87-0.93):\n\n"
    )
    text += markdown_table(["test rows", "coverage", "mean width"], coverage_rows(model, data))
    timings = model.fit_timings_
    return text + (
        f"\nFit: {seconds:.1f} s in all, of which {timings['compile']:.1f} s compiling (the "
        "process's first model of this structure; a refit reuses it) and "
        f"{timings['optimise']:.1f} s optimising ({model.n_iter_} ADVI steps).\n"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100,000 rows in the scale section")
    args = parser.parse_args()
    scale = scale_section(args.quick)  # first, while this process is small (see docstring)
    X, y = load_sleepstudy()
    text = "# Correlated random slopes\n\n"
    text += (
        "`RandomEffectsRegressor` against a NUTS posterior, statsmodels MixedLM, gpboost and a "
        "simulated truth; every comparison measured side by side in one run of "
        f"`python benchmarks/bench_random_slopes.py{' --quick' if args.quick else ''}`.\n\n"
    )
    text += nuts_section(X, y) + cv_section(X, y) + timing_section(X, y)
    text += scale + crossed_section()
    write_result("random_slopes.md", text)


if __name__ == "__main__":
    main()
