"""Three or more classes: RandomEffectsClassifier's multinomial model against scikit-learn's
multinomial LogisticRegression (without groups, and with one-hot groups), on simulated
grouped data whose truth is known; with ``--nuts``, its agreement with NUTS on the same model.

Run: ``python benchmarks/bench_multiclass.py [--nuts]``; writes ``results/multiclass.md``.
Fit times are ratios measured side by side in this run (ours warm / theirs); the cold first
fit (a fresh process with an empty compile cache) is reported beside them.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
from _common import markdown_table, run_in_fresh_process, timed, write_result
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.preprocessing import StandardScaler

from skbayes_re import RandomEffectsClassifier
from skbayes_re._models.families.categorical import class_probabilities, one_hot

N_FEATURES = 5
GROUP_SD = np.array([0.8, 0.5, 0.3])  # classes 1, 2, 3 against class 0


def simulate(n_rows: int, n_groups: int, seed: int, group_offset: int = 0):
    """Four classes, ``N_FEATURES`` features, intercepts by group with a per-class sd."""
    rng = np.random.default_rng(seed)
    coef = np.random.default_rng(99).normal(scale=0.7, size=(3, N_FEATURES))
    groups = rng.integers(0, n_groups, n_rows)
    effects = rng.normal(size=(n_groups, 3)) * GROUP_SD
    X = pd.DataFrame(rng.normal(size=(n_rows, N_FEATURES)), columns=[f"x{i}" for i in range(5)])
    X["g"] = pd.Categorical(groups + group_offset)
    eta = np.array([0.2, -0.1, -0.4]) + X.iloc[:, :N_FEATURES].to_numpy() @ coef.T
    probability = class_probabilities(eta + effects[groups])
    index = np.sum(rng.random(n_rows)[:, None] > np.cumsum(probability, axis=1), axis=1)
    return X, np.minimum(index, 3), probability


def brier(y, probability) -> float:
    onehot = np.eye(probability.shape[1])[y]
    return float(np.mean(np.sum((probability - onehot) ** 2, axis=1)))


def max_calibration_gap(y, probability) -> float:
    """Largest |mean predicted - observed rate| over deciles of each class's probability."""
    gaps = []
    for c in range(probability.shape[1]):
        predicted, observed = probability[:, c], y == c
        edges = np.quantile(predicted, np.linspace(0, 1, 11))
        bins = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, 9)
        gaps += [abs(predicted[bins == b].mean() - observed[bins == b].mean()) for b in range(10)]
    return float(max(gaps))


def _one_hot(X_train, X_test):
    scaler = StandardScaler().fit(X_train.iloc[:, :N_FEATURES])
    categories = X_train["g"].cat.categories

    def design(X):
        dummies = pd.get_dummies(pd.Categorical(X["g"], categories=categories), dtype=float)
        return np.column_stack([scaler.transform(X.iloc[:, :N_FEATURES]), dummies.to_numpy()])

    return design(X_train), design(X_test), scaler


def accuracy_section(n_rows: int, n_groups: int) -> str:
    X, y, truth = simulate(n_rows, n_groups, seed=0)
    new_X, new_y, new_truth = simulate(n_rows // 5, 100, seed=1, group_offset=10_000)
    train = np.arange(n_rows) < int(0.8 * n_rows)
    X_train, y_train, X_seen, y_seen = X[train], y[train], X[~train], y[~train]
    ours = RandomEffectsClassifier(random_state=0)
    ours.fit(X_train, y_train)  # compiles the step: the timed fit below is warm
    _, our_time = timed(ours.fit, X_train, y_train)
    train_design, seen_design, scaler = _one_hot(X_train, X_seen)
    _, new_design, _ = _one_hot(X_train, new_X)
    one_hot = LogisticRegression(max_iter=2000)
    _, one_hot_time = timed(one_hot.fit, train_design, y_train)
    plain = LogisticRegression(max_iter=2000)
    plain_features = scaler.transform(X_train.iloc[:, :N_FEATURES])
    _, plain_time = timed(plain.fit, plain_features, y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the unseen groups, on purpose
        ours_new = ours.predict_proba(new_X)
    predictions = {
        "skbayes_re RandomEffectsClassifier": (
            ours.predict_proba(X_seen),
            ours_new,
            our_time / one_hot_time,
        ),
        "LogisticRegression, one-hot groups": (
            one_hot.predict_proba(seen_design),
            one_hot.predict_proba(new_design),
            1.0,
        ),
        "LogisticRegression, no groups": (
            plain.predict_proba(scaler.transform(X_seen.iloc[:, :N_FEATURES])),
            plain.predict_proba(scaler.transform(new_X.iloc[:, :N_FEATURES])),
            plain_time / one_hot_time,
        ),
        "true probabilities": (truth[~train], new_truth, float("nan")),
    }
    rows = []
    for name, (seen, new, ratio) in predictions.items():
        rows.append(
            [
                name,
                f"{log_loss(y_seen, seen, labels=range(4)):.4f}",
                f"{brier(y_seen, seen):.4f}",
                f"{accuracy_score(y_seen, np.argmax(seen, axis=1)):.3f}",
                f"{max_calibration_gap(y_seen, seen):.3f}",
                f"{log_loss(new_y, new, labels=range(4)):.4f}",
                f"{max_calibration_gap(new_y, new):.3f}",
                "" if np.isnan(ratio) else f"{ratio:.2f}",
            ]
        )
    header = [
        "model",
        "log-loss (seen groups)",
        "Brier",
        "accuracy",
        "max calibration gap",
        "log-loss (new groups)",
        "max calibration gap (new)",
        "fit time / one-hot LogisticRegression's",
    ]
    sds = ", ".join(f"{v:.2f}" for v in ours.group_sd_["g"])
    cold = _cold_fit_seconds(n_rows, n_groups)
    return (
        f"## Simulated: {n_rows:,} rows, 4 classes, {N_FEATURES} features, {n_groups} groups\n\n"
        f"80% to fit, 20% held out (groups seen in fit), and {n_rows // 5:,} rows of 100 groups "
        "never seen. Group sds (classes 1-3 against class 0): "
        f"{', '.join(f'{v:.1f}' for v in GROUP_SD)}; ours {sds}. Calibration gap: the "
        "largest |mean predicted - observed rate| over the deciles of each class's "
        f"probability. Our fit warm; the first fit in a fresh process with an empty compile "
        f"cache took {cold:.1f} s (warm {our_time:.2f} s).\n\n" + markdown_table(header, rows)
    )


def _cold_fit_seconds(n_rows: int, n_groups: int) -> float:
    code = f"""
import sys, time
sys.path.insert(0, {str(__file__.rsplit("/", 1)[0])!r})
from bench_multiclass import simulate
from skbayes_re import RandomEffectsClassifier
X, y, _ = simulate({n_rows}, {n_groups}, seed=0)
start = time.perf_counter()
RandomEffectsClassifier(random_state=0).fit(X[: {int(0.8 * n_rows)}], y[: {int(0.8 * n_rows)}])
print(time.perf_counter() - start)
"""
    return float(run_in_fresh_process(code, empty_cache=True).strip().splitlines()[-1])


def nuts_section(draws: int, tune: int) -> str:
    """The estimator's own PyMC model on 2,000 rows and 30 groups, sampled by NUTS."""
    import pymc as pm

    from skbayes_re import _models

    X, y, _ = simulate(2000, 30, seed=7)
    features = X.iloc[:, :N_FEATURES].to_numpy()
    standardised = (features - features.mean(axis=0)) / features.std(axis=0)
    codes = [X["g"].cat.codes.to_numpy()]
    data = _models.multinomial_data(standardised, one_hot(y, 4), codes, [30], None, 2.5)
    data["centred_0"] = np.zeros(3)  # every class non-centred: the same posterior
    with _models.build_multinomial(data):
        trace = pm.sample(draws, tune=tune, chains=2, random_seed=1, progressbar=False)
    beta = trace.posterior["beta"].values.reshape(-1, N_FEATURES, 3)
    nuts = {
        "coef": np.transpose(beta / features.std(axis=0)[None, :, None], (0, 2, 1)),
        "group_sd": trace.posterior["sigma_group_0"].values.reshape(-1, 3),
    }
    rows = []
    for method in ("advi", "fullrank_advi"):
        model = RandomEffectsClassifier(method=method, n_posterior_samples=4000, random_state=0)
        model.fit(X, y)
        ours = {"coef": model._draws["coef"], "group_sd": model._draws["group_sd"][0]}
        for name, reference in nuts.items():
            gap = (ours[name].mean(axis=0) - reference.mean(axis=0)) / reference.std(axis=0)
            ratio = ours[name].std(axis=0) / reference.std(axis=0)
            shown = ", ".join(f"{v:+.2f}" for v in gap.ravel()) if gap.size < 5 else ""
            rows.append(
                [
                    method,
                    name,
                    gap.size,
                    f"{np.max(np.abs(gap)):.2f}",
                    f"{np.mean(np.abs(gap)):.2f}",
                    shown,
                    f"{np.min(ratio):.2f}-{np.max(ratio):.2f}",
                ]
            )
    header = [
        "ours",
        "parameter",
        "entries",
        "max |diff| / NUTS sd",
        "mean",
        "each (ours - NUTS) / NUTS sd",
        "sd ratio (ours / NUTS)",
    ]
    return (
        f"## Agreement with NUTS\n\nNUTS: 2 chains x {draws} draws after {tune} tuning steps, "
        "on the estimator's own PyMC model (2,000 rows, 4 classes, 30 groups; group sds 0.8, "
        "0.5, 0.3), every class's effects non-centred for NUTS (the same posterior; no "
        "divergences).\n\n" + markdown_table(header, rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=300)
    parser.add_argument("--nuts", action="store_true", help="also sample the model by NUTS")
    args = parser.parse_args()
    parts = [
        "# Multiclass outcomes\n\nWritten by `python benchmarks/bench_multiclass.py"
        + (" --nuts" if args.nuts else "")
        + "`.\n",
        accuracy_section(args.rows, args.groups),
    ]
    if args.nuts:
        parts.append(nuts_section(2000, 1000))
    write_result("multiclass.md", "\n".join(parts))


if __name__ == "__main__":
    main()
