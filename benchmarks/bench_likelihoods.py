"""Non-Gaussian likelihoods: accuracy against NUTS, predictive scores and fit time against
statsmodels' Bayesian mixed GLMs and gpboost, and Student-t noise on the Zillow-like data.

* NUTS agreement: posterior means of ``RandomInterceptRegressor(likelihood=...)`` and
  ``RandomEffectsClassifier`` (ADVI) against PyMC's NUTS on the same model
  (``nuts_glmm_reference.py``), in NUTS posterior sds: MASS ``epil`` (Poisson, negative
  binomial; subject intercepts), mlmRev ``Mmmec`` (Poisson with the log expected deaths as
  offset; nation and region intercepts) and ``Contraception`` (district intercepts).
* Five-fold cross-validation (shuffled rows, seed 0) on ``epil``: mean Poisson deviance of
  the predicted means on held-out rows, and fit time; statsmodels ``PoissonBayesMixedGLM``
  (variational Bayes; its predictions add the posterior-mean effects) and gpboost's
  ``GPModel`` with the same likelihood, all fitted on the same folds in the same run. Times are
  ratios, ours over theirs (ours warm: the compiled step reused across folds).
* A larger simulated Poisson problem (``--rows`` rows, 5 features, 1,000 groups): fit time
  ours / gpboost's, and the coefficients' error.
* mlmRev ``Contraception`` (binary): five-fold log-loss and Brier score of
  ``RandomEffectsClassifier`` against ``LogisticRegression`` with one-hot districts,
  statsmodels ``BinomialBayesMixedGLM`` and gpboost, fit time against gpboost's, and a
  calibration table.
* Zillow-like data (heavy-tailed log-errors): validation MAE and 90% coverage of the Gaussian
  and the Student-t random-intercept models.

Run: ``python benchmarks/bench_likelihoods.py [--quick]``; writes
``benchmarks/results/likelihoods.md``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from _common import markdown_table, write_result
from nuts_glmm_reference import compare, fit_and_sample, parameter_picks
from sklearn.metrics import (
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    mean_poisson_deviance,
)
from sklearn.model_selection import KFold, train_test_split

from skbayes_re import RandomEffectsClassifier, RandomInterceptRegressor
from skbayes_re.datasets import (
    SEED_FEATURES,
    clean_zillow,
    load_contraception,
    load_epil,
    load_mmmec,
    make_zillow_like,
)


# ----------------------------------------------------------------------------- NUTS
def nuts_section(draws: int, tune: int) -> str:
    X, y = load_epil()
    epil_features = [c for c in X.columns if c != "subject"]
    mmmec_X, mmmec_y = load_mmmec()
    mmmec_X = mmmec_X.drop(columns="county")
    mmmec = {"offset": "log_expected"}
    binary_X, binary_y = load_contraception()
    binary_features = [c for c in binary_X.columns if c != "district"]
    cases = [
        ("epil", "poisson", X, y, {}, epil_features, 1),
        ("epil", "negative_binomial", X, y, {}, epil_features, 1),
        ("Mmmec", "poisson", mmmec_X, mmmec_y, mmmec, ["uvb"], 2),
        ("Mmmec", "poisson", mmmec_X, mmmec_y, mmmec | {"method": "fullrank_advi"}, ["uvb"], 2),
        ("Contraception", "bernoulli", binary_X, binary_y, {}, binary_features, 1),
    ]
    rows, worst = [], []
    for name, likelihood, data, target, extra, features, n_factors in cases:
        if likelihood == "bernoulli":
            model = RandomEffectsClassifier(random_state=0, **extra)
        else:
            model = RandomInterceptRegressor(likelihood=likelihood, random_state=0, **extra)
        name = f"{name} ({extra.get('method', 'advi')})"
        advi, nuts = fit_and_sample(model, data, target, draws=draws, tune=tune)
        own = ["dispersion"] if likelihood == "negative_binomial" else []
        table = compare(advi, nuts, parameter_picks(features, n_factors, own))
        worst.append(max(row[-1] for row in table))
        for parameter, a, n, sd, distance in table:
            rows.append(
                [
                    name,
                    likelihood,
                    parameter,
                    f"{a:.4f}",
                    f"{n:.4f}",
                    f"{sd:.4f}",
                    f"{distance:.2f}",
                ]
            )
    header = ["data", "likelihood", "parameter", "ADVI mean", "NUTS mean", "NUTS sd", "|diff| / sd"]
    summary = ", ".join(f"{w:.2f}" for w in worst)
    return (
        "## Agreement with NUTS\n\n"
        f"NUTS: 2 chains x {draws} draws after {tune} tuning steps, on the estimator's own "
        f"PyMC model. Largest distance per case: {summary} posterior sds. Mmmec's groups: "
        "9 nations and 78 regions (county dropped: one row each).\n\n"
        + markdown_table(header, rows)
    )


# ----------------------------------------------------------------------------- peers
def _design(X: pd.DataFrame, features: list[str]) -> np.ndarray:
    return np.column_stack([np.ones(len(X)), X[features].to_numpy(float)])


def _statsmodels_glmm(X_train, y_train, X_test, features, group, family):
    """statsmodels' ``PoissonBayesMixedGLM`` or ``BinomialBayesMixedGLM`` (``family``) by
    variational Bayes, on standardised features (its VB does not converge on Contraception's
    raw age squared); predictions add the posterior-mean group effects. ``(mean, seconds)``."""
    from statsmodels.genmod import bayes_mixed_glm

    X_train, X_test = _standardised(X_train, X_test, features)
    levels = X_train[group].cat.categories
    onehot = pd.get_dummies(pd.Categorical(X_train[group], categories=levels)).to_numpy(float)
    model = getattr(bayes_mixed_glm, f"{family}BayesMixedGLM")(
        np.asarray(y_train, float), _design(X_train, features), onehot, np.zeros(len(levels), int)
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model.fit_vb()
    elapsed = time.perf_counter() - start
    test_onehot = pd.get_dummies(pd.Categorical(X_test[group], categories=levels)).to_numpy(float)
    eta = _design(X_test, features) @ result.fe_mean + test_onehot @ result.vc_mean
    mean = np.exp(eta) if family == "Poisson" else 1.0 / (1.0 + np.exp(-eta))
    return mean, elapsed


def _standardised(X_train, X_test, features):
    """Both frames with ``features`` standardised by the training rows."""
    mean, sd = X_train[features].mean(), X_train[features].std()
    return (
        X_train.assign(**((X_train[features] - mean) / sd)),
        X_test.assign(**((X_test[features] - mean) / sd)),
    )


def _gpboost(X_train, y_train, X_test, features, group, likelihood):
    import gpboost as gpb

    model = gpb.GPModel(group_data=X_train[group].astype(str).to_numpy(), likelihood=likelihood)
    start = time.perf_counter()
    model.fit(y=np.asarray(y_train, float), X=_design(X_train, features))
    elapsed = time.perf_counter() - start
    prediction = model.predict(
        X_pred=_design(X_test, features),
        group_data_pred=X_test[group].astype(str).to_numpy(),
        predict_var=False,
        predict_response=True,
    )
    return np.asarray(prediction["mu"]), elapsed


def _ours(X_train, y_train, X_test, likelihood):
    model = RandomInterceptRegressor(likelihood=likelihood, random_state=0)
    model.fit(X_train, y_train)  # compiles this fold's structure if it is new: time it warm
    start = time.perf_counter()
    model.fit(X_train, y_train)
    elapsed = time.perf_counter() - start
    return model.predict(X_test), elapsed


def epil_cv_section() -> str:
    X, y = load_epil()
    features = [c for c in X.columns if c != "subject"]
    folds = KFold(5, shuffle=True, random_state=0).split(X)
    scores: dict[str, list] = {}
    for train, test in folds:
        X_train, X_test, y_train, y_test = X.iloc[train], X.iloc[test], y.iloc[train], y.iloc[test]
        fits = {
            "skbayes_re poisson": _ours(X_train, y_train, X_test, "poisson"),
            "skbayes_re negative_binomial": _ours(X_train, y_train, X_test, "negative_binomial"),
            "statsmodels PoissonBayesMixedGLM (VB)": _statsmodels_glmm(
                X_train, y_train, X_test, features, "subject", "Poisson"
            ),
            "gpboost poisson": _gpboost(X_train, y_train, X_test, features, "subject", "poisson"),
            "gpboost negative_binomial": _gpboost(
                X_train, y_train, X_test, features, "subject", "negative_binomial"
            ),
        }
        for name, (mean, elapsed) in fits.items():
            deviance = mean_poisson_deviance(y_test, np.maximum(mean, 1e-12))
            scores.setdefault(name, []).append((deviance, elapsed))
    gpboost = {
        likelihood: np.mean([t for _, t in scores[f"gpboost {likelihood}"]])
        for likelihood in ("poisson", "negative_binomial")
    }
    rows = []
    for name, values in scores.items():
        deviance, elapsed = np.mean(values, axis=0)
        reference = gpboost["negative_binomial" if "negative_binomial" in name else "poisson"]
        rows.append([name, f"{deviance:.4f}", f"{elapsed / reference:.2f}"])
    header = ["model", "mean Poisson deviance (5-fold)", "fit time / gpboost's (same likelihood)"]
    return (
        "## MASS epil: five-fold cross-validation\n\n"
        "Rows shuffled (seed 0), so held-out rows belong to subjects seen in fit. Features "
        f"{', '.join(features)}; intercepts by subject. Fit times are means over the folds, "
        "ours warm (statsmodels' Poisson row is compared with gpboost's Poisson).\n\n"
        + markdown_table(header, rows)
    )


def _simulated_counts(n_rows: int, n_groups: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    coef = np.array([0.3, -0.2, 0.1, 0.0, 0.25])
    groups = rng.integers(0, n_groups, n_rows)
    features = rng.normal(size=(n_rows, len(coef)))
    effects = rng.normal(0.0, 0.5, n_groups)
    y = rng.poisson(np.exp(0.5 + features @ coef + effects[groups])).astype(float)
    X = pd.DataFrame(features, columns=[f"x{j}" for j in range(len(coef))])
    X["g"] = pd.Categorical(groups)
    return X, y, coef


def scale_section(n_rows: int) -> str:
    X, y, coef = _simulated_counts(n_rows, 1000)
    features = [c for c in X.columns if c != "g"]
    model = RandomInterceptRegressor(likelihood="poisson", random_state=0)
    model.fit(X, y)  # compiles this structure: the timed fit below is warm
    start = time.perf_counter()
    model.fit(X, y)
    ours = time.perf_counter() - start
    _, theirs = _gpboost(X, y, X[:10], features, "g", "poisson")
    error = np.max(np.abs(model.coef_ - coef))
    header = ["rows", "groups", "fit time ours / gpboost", "our max coef error", "our steps"]
    rows = [[f"{n_rows:,}", "1,000", f"{ours / theirs:.2f}", f"{error:.4f}", model.n_iter_]]
    return (
        "## Simulated Poisson counts: fit time against gpboost\n\n"
        "5 features, 1,000 groups (sd 0.5), both fitted in this process; ours warm (its "
        "compiled step reused from a first fit on the same data).\n\n"
        + markdown_table(header, rows)
    )


# ----------------------------------------------------------------------------- binary
def _one_hot_logistic(X_train, y_train, X_test, features, group):
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    model = make_pipeline(
        make_column_transformer(
            (StandardScaler(), features), (OneHotEncoder(handle_unknown="ignore"), [group])
        ),
        LogisticRegression(max_iter=2000),
    )
    start = time.perf_counter()
    model.fit(X_train, y_train)
    return model.predict_proba(X_test)[:, 1], time.perf_counter() - start


def _ours_binary(X_train, y_train, X_test, slopes):
    model = RandomEffectsClassifier(random_slopes=slopes, random_state=0)
    model.fit(X_train, y_train)  # compiles this fold's structure if it is new: time it warm
    start = time.perf_counter()
    model.fit(X_train, y_train)
    return model.predict_proba(X_test)[:, 1], time.perf_counter() - start


def contraception_section() -> str:
    X, y = load_contraception()
    features = [c for c in X.columns if c != "district"]
    scores: dict[str, list] = {}
    pooled = []
    for train, test in KFold(5, shuffle=True, random_state=0).split(X):
        X_train, X_test, y_train, y_test = X.iloc[train], X.iloc[test], y.iloc[train], y.iloc[test]
        fits = {
            "skbayes_re RandomEffectsClassifier (district intercepts)": _ours_binary(
                X_train, y_train, X_test, None
            ),
            "skbayes_re RandomEffectsClassifier (+ urban slope by district)": _ours_binary(
                X_train, y_train, X_test, {"district": ["urban"]}
            ),
            "LogisticRegression, one-hot districts": _one_hot_logistic(
                X_train, y_train, X_test, features, "district"
            ),
            "statsmodels BinomialBayesMixedGLM (VB)": _statsmodels_glmm(
                X_train, y_train, X_test, features, "district", "Binomial"
            ),
            "gpboost bernoulli_logit": _gpboost(
                X_train, y_train, X_test, features, "district", "bernoulli_logit"
            ),
        }
        pooled.append((fits[next(iter(fits))][0], y_test.to_numpy()))
        for name, (probability, elapsed) in fits.items():
            probability = np.clip(probability, 1e-12, 1 - 1e-12)
            scores.setdefault(name, []).append(
                (
                    log_loss(y_test, probability, labels=[0, 1]),
                    brier_score_loss(y_test, probability),
                    elapsed,
                )
            )
    reference = np.mean([t for *_, t in scores["gpboost bernoulli_logit"]])
    rows = []
    for name, values in scores.items():
        loss, brier, elapsed = np.mean(values, axis=0)
        rows.append([name, f"{loss:.4f}", f"{brier:.4f}", f"{elapsed / reference:.2f}"])
    header = ["model", "log-loss (5-fold)", "Brier score", "fit time / gpboost's"]
    return (
        "## mlmRev Contraception: binary outcomes\n\n"
        "`use ~ age + age^2 + urban + livch` with district intercepts (then an urban slope by "
        "district); rows shuffled (seed 0), five folds; fit times are fold means, ours warm.\n\n"
        + markdown_table(header, rows)
        + "\nCalibration of our district-intercept model (held-out rows of all folds, by "
        "decile of the predicted probability):\n\n" + _calibration_table(pooled)
    )


def _calibration_table(pooled) -> str:
    probability = np.concatenate([p for p, _ in pooled])
    observed = np.concatenate([y for _, y in pooled])
    edges = np.quantile(probability, np.linspace(0.0, 1.0, 11))
    bins = np.clip(np.searchsorted(edges, probability, side="right") - 1, 0, 9)
    rows = [
        [
            b + 1,
            f"{probability[bins == b].mean():.3f}",
            f"{observed[bins == b].mean():.3f}",
            int(np.sum(bins == b)),
        ]
        for b in range(10)
    ]
    return markdown_table(["decile", "mean predicted", "observed rate", "rows"], rows)


# ----------------------------------------------------------------------------- Student-t
def zillow_section(n_samples: int) -> str:
    frame = clean_zillow(make_zillow_like(n_samples=n_samples, random_state=0))
    X, y = frame[[*SEED_FEATURES, "region_zip"]], frame["logerror"]
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.2, random_state=0)
    rows = []
    for likelihood in ["gaussian", "student_t"]:
        model = RandomInterceptRegressor(likelihood=likelihood, random_state=0)
        model.fit(X_train, y_train)
        start = time.perf_counter()
        model.fit(X_train, y_train)
        elapsed = time.perf_counter() - start
        bounds = model.predict_interval(X_val)
        covered = np.mean((y_val >= bounds[:, 0]) & (y_val <= bounds[:, 1]))
        mae = mean_absolute_error(y_val, model.predict(X_val))
        extra = f"nu = {model.nu_:.2f}" if likelihood == "student_t" else ""
        rows.append([likelihood, f"{mae:.5f}", f"{covered:.3f}", f"{elapsed:.2f}", extra])
    header = ["likelihood", "validation MAE", "90% coverage", "warm fit (s)", "notes"]
    return (
        "## Zillow-like data: Student-t noise\n\n"
        f"`make_zillow_like(n_samples={n_samples:,})` cleaned as the seed study did, 80/20 "
        "split (seed 0), zip-code intercepts. The warm fit time is for comparison between the "
        "two rows only.\n\n" + markdown_table(header, rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, shorter NUTS runs")
    args = parser.parse_args()
    draws, rows, zillow = (300, 20_000, 20_000) if args.quick else (3000, 200_000, 73_972)
    sections = [
        "# Likelihood families\n\nWritten by `python benchmarks/bench_likelihoods.py`.\n",
        zillow_section(zillow),
        epil_cv_section(),
        contraception_section(),
        scale_section(rows),
        nuts_section(draws, draws // 2),
    ]
    write_result("likelihoods.md", "\n".join(sections))


if __name__ == "__main__":
    main()
