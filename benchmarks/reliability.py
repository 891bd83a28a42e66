"""Reliability: what each estimator does with the unusual inputs of "Never silently wrong".

The ten cases the issue reported, and six more (NaN in X, inf in y, a text column that is
not a grouping column, predict with a column missing, one row, bad sample weights, and a
random-slope feature far from zero), each run against every estimator. A cell is the
measured outcome, never an expectation: the error and whether its message names the column
or parameter at fault, the warning, or the fit's held-out R^2 / interval coverage / time.
Every library call is guarded, so a case that starts raising (or stops raising) after a fix
is reported as such.

Data are small simulated random-intercept problems (``y = 1 + x0 - 0.5 x1 + u[g] + e``);
"truth" is the held-out R^2 of the true mean function. Everything is measured in one run;
method="fullrank_advi" is also timed in a fresh process with an empty compile cache.

Run: ``python benchmarks/reliability.py``; writes ``benchmarks/results/reliability.md``.
"""

from __future__ import annotations

import contextlib
import io
import platform
import re
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from _common import markdown_table, run_in_fresh_process, write_result
from sklearn.metrics import r2_score

from skbayes_re import (
    BayesianLinearRegressor,
    RandomEffectsMLPRegressor,
    RandomEffectsRegressor,
    RandomInterceptRegressor,
)

ESTIMATORS = [
    "BayesianLinearRegressor",
    "RandomInterceptRegressor",
    "RandomEffectsRegressor",
    "RandomEffectsMLPRegressor",
]
LINEAR = "BayesianLinearRegressor"
NOT_APPLICABLE = "n/a (no grouping columns)"
FEATURES = ["x0", "x1"]


def make(name: str, **params):
    """An estimator as the issue's user set it up: defaults, grouping column ``g``, a random
    slope on ``x0`` for RandomEffectsRegressor; ``params`` override."""
    if name == LINEAR:
        return BayesianLinearRegressor(**{"random_state": 0, **params})
    grouped = {"groups": ["g"], "random_state": 0}
    if name == "RandomEffectsRegressor":
        return RandomEffectsRegressor(**{**grouped, "random_slopes": {"g": ["x0"]}, **params})
    if name == "RandomInterceptRegressor":
        return RandomInterceptRegressor(**{**grouped, **params})
    return RandomEffectsMLPRegressor(**{**grouped, **params})


def columns_for(name: str, X: pd.DataFrame) -> pd.DataFrame:
    """The linear model sees the features only (it has no grouping columns)."""
    return X[[c for c in X.columns if c != "g"]] if name == LINEAR else X


def grouped_data(n_rows: int, n_groups: int, seed: int, truth: int = 0, group_sd: float = 1.0):
    """``(X, y, mean)``: a random-intercept problem (noise sd 0.5); the group effects depend
    on ``truth`` only, so a held-out draw (another ``seed``) has the same groups."""
    effects = np.random.default_rng(truth).normal(0.0, group_sd, n_groups)
    rng = np.random.default_rng(seed)
    group = np.arange(n_rows) % n_groups if n_rows <= 2 * n_groups else None
    if group is None:
        group = rng.integers(0, n_groups, n_rows)
    x = rng.normal(size=(n_rows, 2))
    mean = 1.0 + x @ np.array([1.0, -0.5]) + effects[group]
    X = pd.DataFrame(x, columns=FEATURES)
    X["g"] = pd.Categorical(group, categories=range(n_groups))
    return X, mean + rng.normal(0.0, 0.5, n_rows), mean


# ----------------------------------------------------------------------------------------
# Measuring an outcome
# ----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    value: object = None
    error: Exception | None = None
    warnings: list = field(default_factory=list)
    seconds: float = 0.0


def attempt(function, *args, **kwargs) -> Outcome:
    """Call ``function``, recording its result or exception, its warnings and its time."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value, error = function(*args, **kwargs), None
        except Exception as exc:  # an exception is an outcome to report
            value, error = None, exc
    seconds = time.perf_counter() - start
    kept = [w for w in caught if not issubclass(w.category, DeprecationWarning)]
    return Outcome(value, error, kept, seconds)


def short(text: str, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_error(error: Exception, culprits: dict[str, str]) -> str:
    """``ValueError: names 'g'`` when the message matches a culprit's pattern, else the
    message itself."""
    message = str(error)
    found = [label for label, pattern in culprits.items() if re.search(pattern, message)]
    kind = type(error).__name__
    if found:
        return f"{kind}: names {', '.join(found)}"
    return f'{kind}: names nothing ("{short(message)}")'


def describe_warnings(outcome: Outcome) -> str:
    """The first warning (category and opening words), or "no warning"."""
    if not outcome.warnings:
        return "no warning"
    first = outcome.warnings[0]
    more = f" (+{len(outcome.warnings) - 1} more)" if len(outcome.warnings) > 1 else ""
    return f"warns {first.category.__name__}: {short(first.message, 75)}{more}"


COLUMN = {"'g'": r"'g'", "X": r"\bX\b"}


# ----------------------------------------------------------------------------------------
# The cases: each returns the cell text of one estimator
# ----------------------------------------------------------------------------------------


def one_or_two_levels(name: str) -> str:
    if name == LINEAR:
        return NOT_APPLICABLE
    scores, truths = [], []
    for levels in (1, 2):
        X, y, _ = grouped_data(200, levels, seed=1)
        X_test, y_test, mean_test = grouped_data(2000, levels, seed=2)
        fitted = attempt(make(name).fit, columns_for(name, X), y)
        if fitted.error is not None:
            return f"{levels} level(s): {describe_error(fitted.error, COLUMN)}"
        scores.append(fitted.value.score(columns_for(name, X_test), y_test))
        truths.append(r2_score(y_test, mean_test))
    return "R^2 {:.2f}, {:.2f} (truth {:.2f}, {:.2f})".format(*scores, *truths)


def reference_problem():
    """200 training rows and 2,000 held-out rows of 8 groups."""
    X, y, _ = grouped_data(200, 8, seed=3)
    X_test, y_test, mean_test = grouped_data(2000, 8, seed=4)
    return X, y, X_test, y_test, r2_score(y_test, mean_test)


def seed_dependence(name: str) -> str:
    X, y, X_test, y_test, truth = reference_problem()
    scores = []
    for seed in range(5):
        fitted = attempt(make(name, random_state=seed).fit, columns_for(name, X), y)
        if fitted.error is not None:
            return f"seed {seed}: {describe_error(fitted.error, COLUMN)}"
        scores.append(fitted.value.score(columns_for(name, X_test), y_test))
    return f"R^2 {min(scores):.3f} to {max(scores):.3f} over seeds 0-4 (truth {truth:.3f})"


def large_learning_rate(name: str) -> str:
    X, y, X_test, y_test, _ = reference_problem()
    default = make(name).fit(columns_for(name, X), y).score(columns_for(name, X_test), y_test)
    fitted = attempt(make(name, learning_rate=5.0).fit, columns_for(name, X), y)
    if fitted.error is not None:
        return describe_error(fitted.error, {"learning_rate": "learning.rate"})
    score = fitted.value.score(columns_for(name, X_test), y_test)
    return (
        f"R^2 {score:.2f} (default rate: {default:.2f}) after {fitted.value.n_iter_} steps; "
        + describe_warnings(fitted)
    )


def repeated_grouping(name: str) -> str:
    if name == LINEAR:
        return NOT_APPLICABLE
    X, y, _ = grouped_data(200, 8, seed=3)
    twice = attempt(make(name, groups=["g", "g"]).fit, X, y)
    copied = attempt(make(name, groups=["g", "g2"]).fit, X.assign(g2=X["g"]), y)
    parts = []
    for label, outcome in (("['g', 'g']", twice), ("copied column g2", copied)):
        if outcome.error is None:
            parts.append(f"{label}: fits, {describe_warnings(outcome)}")
        else:
            culprits = {"'g'": "'g'", "'g2'": "'g2'"}
            parts.append(f"{label}: {describe_error(outcome.error, culprits)}")
    return "; ".join(parts)


def small_data_coverage(name: str, n_rows: int, n_problems: int = 8) -> float | str:
    """Mean 90% coverage of 200 fresh rows over problems of ``n_rows`` rows (2 groups; no
    group effects for the linear model, which does not see them)."""
    covered = []
    group_sd = 0.0 if name == LINEAR else 1.0
    for seed in range(n_problems):
        X, y, _ = grouped_data(n_rows, 2, seed=100 + seed, truth=seed, group_sd=group_sd)
        X_new, y_new, _ = grouped_data(200, 2, seed=200 + seed, truth=seed, group_sd=group_sd)
        fitted = attempt(make(name).fit, columns_for(name, X), y)
        if fitted.error is not None:
            return describe_error(fitted.error, COLUMN)
        bounds = fitted.value.predict_interval(columns_for(name, X_new), coverage=0.9)
        covered.append(np.mean((bounds[:, 0] <= y_new) & (y_new <= bounds[:, 1])))
    return float(np.mean(covered))


def few_rows(name: str) -> str:
    values = [small_data_coverage(name, n) for n in (3, 4, 5, 6, 30)]
    if any(isinstance(v, str) for v in values):
        return next(v for v in values if isinstance(v, str))
    return "coverage {:.2f}, {:.2f}, {:.2f}, {:.2f}; 30 rows: {:.2f}".format(*values)


def grouping_column_only(name: str) -> str:
    X, y, _ = grouped_data(200, 8, seed=3)
    X_test, y_test, _ = grouped_data(2000, 8, seed=4)
    y, y_test = y - X[FEATURES] @ [1.0, -0.5], y_test - X_test[FEATURES] @ [1.0, -0.5]
    frame = pd.DataFrame({"g": X["g"].astype(str).map("s{}".format).astype("category")})
    frame_test = pd.DataFrame({"g": X_test["g"].astype(str).map("s{}".format)})
    params = {"random_slopes": None} if name == "RandomEffectsRegressor" else {}
    fitted = attempt(make(name, **params).fit, frame, y)
    if fitted.error is not None:
        return describe_error(fitted.error, COLUMN)
    group_means = pd.Series(y).groupby(frame["g"].to_numpy()).mean()
    reference = r2_score(y_test, group_means.reindex(frame_test["g"]).to_numpy())
    score = fitted.value.score(frame_test, y_test)
    return f"fits; R^2 {score:.2f} (group means {reference:.2f}); {describe_warnings(fitted)}"


def labels_of_another_type(name: str) -> str:
    if name == LINEAR:
        return NOT_APPLICABLE
    X, y, _ = grouped_data(200, 8, seed=3)
    model = make(name).fit(X, y)
    as_text = X.assign(g=X["g"].astype(int).astype(str))
    predicted = attempt(model.predict, as_text)
    if predicted.error is not None:
        return describe_error(predicted.error, COLUMN)
    return describe_warnings(predicted)


def constant_target(name: str) -> str:
    X, _, _ = grouped_data(200, 8, seed=3)
    fitted = attempt(make(name).fit, columns_for(name, X), np.full(200, 3.7))
    if fitted.error is not None:
        return describe_error(fitted.error, {"y": r"\by\b"})
    model = fitted.value
    bounds = model.predict_interval(columns_for(name, X))
    exact = np.all(model.predict(columns_for(name, X)) == 3.7) and np.all(bounds == 3.7)
    return (
        f"{describe_warnings(fitted)}; fits in {fitted.seconds:.2f} s ({model.n_iter_} steps); "
        + ("predicts 3.7 exactly, zero width" if exact else "predictions not exactly 3.7")
    )


COLD_FULLRANK = """
import time
import warnings
warnings.simplefilter("ignore")
import numpy as np
import pandas as pd
from skbayes_re import RandomInterceptRegressor
rng = np.random.default_rng(0)
X = pd.DataFrame({"x0": rng.normal(size=200), "g": pd.Categorical(rng.integers(0, 8, 200))})
y = X["x0"].to_numpy() + rng.normal(size=200)
start = time.perf_counter()
RandomInterceptRegressor(groups=["g"], method="{method}", random_state=0).fit(X, y)
print(time.perf_counter() - start)
"""


def cold_first_fit(method: str) -> float:
    """Seconds of a first fit in a fresh process with an empty PyTensor compile cache."""
    code = COLD_FULLRANK.replace("{method}", method)
    return float(run_in_fresh_process(code, empty_cache=True).split()[-1])


def fullrank_first_fit(name: str) -> str:
    X, y, _ = grouped_data(200, 8, seed=3)
    prefix = ""
    params = {"method": "fullrank_advi"}
    if name == "RandomEffectsMLPRegressor":
        refused = attempt(make(name, **params).fit, X, y)  # weights="map" by default
        if refused.error is not None:
            culprits = {"method": "method", "weights": "weights"}
            prefix = f"weights='map': {describe_error(refused.error, culprits)}; 'bayesian': "
        params["weights"] = "bayesian"
    fitted = attempt(make(name, **params).fit, columns_for(name, X), y)
    if fitted.error is not None:
        return prefix + describe_error(fitted.error, {"method": "method"})
    compile_seconds = fitted.value.fit_timings_.get("compile", float("nan"))
    text = f"{prefix}first fit {fitted.seconds:.1f} s (compile {compile_seconds:.1f} s)"
    if name == "RandomInterceptRegressor":
        cold, cold_advi = cold_first_fit("fullrank_advi"), cold_first_fit("advi")
        text += f"; empty cache: {cold:.0f} s (method='advi': {cold_advi:.0f} s)"
    return text


IMPORT_WARNINGS = """
import sys
sys.stderr = sys.stdout  # what the user's terminal shows, warnings included
import numpy as np
import skbayes_re
from skbayes_re import BayesianLinearRegressor
rng = np.random.default_rng(0)
X = rng.normal(size=(100, 2))
model = BayesianLinearRegressor(random_state=0).fit(X, X @ [1.0, 2.0] + rng.normal(size=100))
model.posterior_
"""


def import_output() -> str:
    """What a fresh process prints when importing the package, fitting and building
    ``posterior_``."""
    printed = run_in_fresh_process(IMPORT_WARNINGS, empty_cache=False)
    lines = [line for line in printed.splitlines() if "Warning" in line]
    if not lines:
        return "import, fit and posterior_ print nothing"
    return f"import prints {short(lines[0], 50)}"


def progress_bar(name: str, printed_on_import: str) -> str:
    X, y, _ = grouped_data(200, 8, seed=3)
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        fitted = attempt(make(name, verbose=1).fit, columns_for(name, X), y)
    if fitted.error is not None:
        return describe_error(fitted.error, {"verbose": "verbose"})
    lines = re.split(r"[\r\n]", buffer.getvalue())
    ends = [line.strip() for line in lines if "converged" in line or "max_iter" in line]
    if not ends:
        return f"{printed_on_import}; no status line shown"
    return f"{printed_on_import}; last status line: `{ends[-1]}`"


def nan_in_x(name: str) -> str:
    X, y, _ = grouped_data(200, 8, seed=3)
    X = columns_for(name, X).copy()
    X.loc[5, "x1"] = np.nan
    frame = attempt(make(name).fit, X, y)
    array = X[FEATURES].to_numpy()
    params = {} if name == LINEAR else {"groups": None}  # an array has no grouping column
    if name == "RandomEffectsRegressor":
        params["random_slopes"] = None
    plain = attempt(make(name, **params).fit, array, y)
    culprits = {"X": r"\bX\b", "'x1'": "'x1'"}
    parts = []
    for label, outcome in (("frame", frame), ("array", plain)):
        text = "fits" if outcome.error is None else describe_error(outcome.error, culprits)
        parts.append(f"{label}: {text}")
    return "; ".join(parts)


def inf_in_y(name: str) -> str:
    X, y, _ = grouped_data(200, 8, seed=3)
    y = y.copy()
    y[7] = np.inf
    fitted = attempt(make(name).fit, columns_for(name, X), y)
    return "fits" if fitted.error is None else describe_error(fitted.error, {"y": r"\by\b"})


def text_feature_column(name: str) -> str:
    X, y, _ = grouped_data(200, 8, seed=3)
    X = columns_for(name, X).assign(colour=np.where(np.arange(200) % 2, "red", "blue"))
    fitted = attempt(make(name).fit, X, y)
    if fitted.error is None:
        return f"fits; {describe_warnings(fitted)}"
    return describe_error(fitted.error, {"'colour'": "colour", "X": r"\bX\b"})


def predict_without_a_column(name: str) -> str:
    X, y, _ = grouped_data(200, 8, seed=3)
    model = make(name).fit(columns_for(name, X), y)
    predicted = attempt(model.predict, columns_for(name, X).drop(columns="x1"))
    if predicted.error is None:
        return f"predicts; {describe_warnings(predicted)}"
    return describe_error(predicted.error, {"x1": r"\bx1\b"})


def one_row(name: str) -> str:
    X, y, _ = grouped_data(200, 8, seed=3)
    X = columns_for(name, X)
    fitted = attempt(make(name).fit, X.iloc[:1], y[:1])
    if fitted.error is not None:
        return describe_error(fitted.error, {"X": r"\bX\b", "y": r"\by\b"})
    bounds = fitted.value.predict_interval(X.iloc[:50])
    width = float(np.mean(bounds[:, 1] - bounds[:, 0]))
    return f"{describe_warnings(fitted)}; interval width {width:.2g} (y's sd {np.std(y):.2f})"


def bad_sample_weight(name: str) -> str:
    X, y, _ = grouped_data(200, 8, seed=3)
    X = columns_for(name, X)
    culprits = {"sample_weight": r"(?i)sample.weight"}
    parts = []
    for label, weights in (
        ("one negative", np.r_[-1.0, np.ones(199)]),
        ("all 0", np.zeros(200)),
        ("some 0", np.r_[np.zeros(20), np.ones(180)]),
    ):
        fitted = attempt(make(name).fit, X, y, sample_weight=weights)
        text = "fits" if fitted.error is None else describe_error(fitted.error, culprits)
        parts.append(f"{label}: {text}")
    return "; ".join(parts)


def shifted_feature(name: str) -> str:
    """Predictions (mean and sd) with x0 = 1e6 + 0.01 z against x0 = 0.01 z: the model
    standardises its features, so they should agree to rounding."""
    X, y, _ = grouped_data(200, 8, seed=3)
    z = X["x0"].to_numpy()
    new = pd.concat([X.iloc[:20], X.iloc[:20].assign(g=pd.Categorical([99] * 20))])
    new = new.reset_index(drop=True)
    predictions = []
    for shift in (0.0, 1e6):
        model = make(name).fit(columns_for(name, X.assign(x0=shift + 0.01 * z)), y)
        moved = columns_for(name, new.assign(x0=shift + 0.01 * new["x0"].to_numpy()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predictions.append(np.concatenate(model.predict(moved, return_std=True)))
    shifted, centred = predictions[1], predictions[0]
    finite = np.isfinite(shifted)
    change = np.max(np.abs(shifted - centred)[finite] / np.abs(centred[finite]))
    text = f"predictions move by up to {change:.1g} (relative)"
    if not np.all(finite):
        text = f"{np.sum(~finite)} of {shifted.size} predictions NaN or inf; the others {text[12:]}"
    return text


CASES = [
    ("(1) one, two group levels: held-out R^2", one_or_two_levels),
    ("(2) random_state 0-4: held-out R^2", seed_dependence),
    ("(3) learning_rate=5.0 (defaults otherwise)", large_learning_rate),
    ("(4) a grouping column named twice, or copied", repeated_grouping),
    ("(5) 3, 4, 5, 6 rows: 90% coverage of fresh data", few_rows),
    ("(6) a DataFrame of the grouping column only", grouping_column_only),
    ("(7) labels of another type at predict (str for int)", labels_of_another_type),
    ("(8) constant y", constant_target),
    ('(9) method="fullrank_advi": first fit in this process', fullrank_first_fit),
    ("(10) import; verbose=1", progress_bar),
    ("NaN in X", nan_in_x),
    ("inf in y", inf_in_y),
    ("a text column that is not a grouping column", text_feature_column),
    ("predict with column x1 missing", predict_without_a_column),
    ("1 row", one_row),
    ("sample_weight", bad_sample_weight),
    ("x0 = 1e6 + 0.01 z (slope feature for RandomEffectsRegressor)", shifted_feature),
]


def cell(case, name: str, *args) -> str:
    """A case's outcome for one estimator; a case that breaks is reported, not raised."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = case(name, *args)
    except Exception as exc:  # the measurement itself failed: say how
        text = f"case failed: {type(exc).__name__}: {short(exc)}"
    return text.replace("|", "\\|")


def main():
    start = time.perf_counter()
    printed_on_import = import_output()
    rows = []
    for label, case in CASES:
        extra = (printed_on_import,) if case is progress_bar else ()
        row = [label]
        for name in ESTIMATORS:
            row.append(cell(case, name, *extra))
            print(label, name, row[-1], flush=True)
        rows.append(row)
    text = "# Reliability: unusual inputs, per estimator\n\n"
    text += "Produced by `python benchmarks/reliability.py`.\n\n"
    text += (
        "Each cell is the measured outcome of one case for one estimator, in one run "
        f"({platform.machine()}, Python {platform.python_version()}, "
        f"{time.perf_counter() - start:.0f} s in all). Cases (1)-(10) are those of the issue "
        '"Never silently wrong". Data: simulated `y = 1 + x0 - 0.5 x1 + u[g] + e`, '
        "noise sd 0.5, group sd 1; 200 training rows and 2,000 held-out rows unless the case "
        'says otherwise; "truth" is the held-out R^2 of the true mean function. '
        "BayesianLinearRegressor sees `x0, x1` only; RandomEffectsRegressor has a random "
        "slope on `x0` by `g`. \"names 'g'\" means the error message names that column or "
        "parameter. Defaults otherwise, `random_state=0`. (5): mean coverage of 200 fresh "
        "rows over 8 problems per size, 2 groups (no group effects for the linear model). "
        "(9): the first fit loads the step from PyTensor's compile cache when an earlier "
        'run left it there and compiles it otherwise; "empty cache" is a fresh process '
        "with an empty compile cache. (10): what a fresh process prints on import, a fit "
        "and `posterior_`, and the last status line of `verbose=1` (step, phase and its "
        "learning rate, loss, the stopping rule's loss fall per observation against tol).\n\n"
    )
    text += markdown_table(["case", *ESTIMATORS], rows)
    write_result("reliability.md", text)


if __name__ == "__main__":
    main()
