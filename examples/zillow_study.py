"""The seed study end to end, offline: Zillow-like data -> three models -> MAE table -> figures.

A Bayesian linear regression, the same with zip-code random intercepts, and a neural network
with zip-code random intercepts, compared by validation MAE on a 50/50 split, as in the
original write-up. Figures (prior vs posterior fit, shrinkage, ELBO curves) are saved as PNG.

Run: ``python examples/zillow_study.py [--output-dir DIR]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import mean_absolute_error  # noqa: E402

from skbayes_re import (  # noqa: E402
    BayesianLinearRegressor,
    RandomEffectsMLPRegressor,
    RandomInterceptRegressor,
)
from skbayes_re.datasets import SEED_FEATURES, clean_zillow, make_zillow_like  # noqa: E402
from skbayes_re.plotting import plot_loss, plot_prior_posterior_fit, plot_shrinkage  # noqa: E402

FEATURES = SEED_FEATURES
GROUP = "region_zip"


def split_half(frame: pd.DataFrame, seed: int = 0):
    train = frame.sample(frac=0.5, random_state=seed)
    return train, frame.drop(train.index)


def models() -> dict:
    return {
        "Bayesian linear regression": BayesianLinearRegressor(random_state=0),
        "+ zip random intercepts": RandomInterceptRegressor(groups=[GROUP], random_state=0),
        "MLP + zip random intercepts": RandomEffectsMLPRegressor(
            groups=[GROUP], hidden_layer_sizes=(5,), random_state=0
        ),
    }


def fit_all(train: pd.DataFrame, val: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    fitted, rows = {}, []
    baseline = mean_absolute_error(val["logerror"], np.full(len(val), train["logerror"].mean()))
    rows.append(["training mean (constant)", baseline, 0.0, "-"])
    for name, model in models().items():
        columns = FEATURES if isinstance(model, BayesianLinearRegressor) else [*FEATURES, GROUP]
        print(f"fitting {name} ...", flush=True)
        model.set_params(verbose=1)
        start = time.perf_counter()
        model.fit(train[columns], train["logerror"])
        seconds = time.perf_counter() - start
        mae = mean_absolute_error(val["logerror"], model.predict(val[columns]))
        rows.append([name, mae, seconds, model.n_iter_])
        fitted[name] = (model, columns)
    table = pd.DataFrame(rows, columns=["model", "validation MAE", "fit seconds", "ADVI steps"])
    return fitted, table


def save_figures(fitted: dict, train: pd.DataFrame, output: Path) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    paths = []
    linear, columns = fitted["Bayesian linear regression"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_prior_posterior_fit(linear, train[columns], train["logerror"], feature=0, ax=ax)
    paths.append(_save(fig, output / "prior_posterior_fit.png"))
    intercepts, columns = fitted["+ zip random intercepts"]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    plot_shrinkage(intercepts, train[columns], train["logerror"], ax=ax)
    paths.append(_save(fig, output / "shrinkage.png"))
    fig, axes = plt.subplots(1, len(fitted), figsize=(5 * len(fitted), 3.5))
    for ax, (name, (model, _)) in zip(axes, fitted.items(), strict=True):
        plot_loss(model, ax=ax)
        ax.set_title(name)
    paths.append(_save(fig, output / "elbo_curves.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path("examples/output"))
    args = parser.parse_args(argv)
    print("simulating Zillow-like data ...", flush=True)
    data = clean_zillow(make_zillow_like(random_state=0))
    train, val = split_half(data)
    print(f"train {train.shape}, validation {val.shape}, {data[GROUP].nunique()} zip codes")
    fitted, table = fit_all(train, val)
    print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.5f}"))
    for path in save_figures(fitted, train, args.output_dir):
        print(f"saved {path}")
    return table


if __name__ == "__main__":
    main()
