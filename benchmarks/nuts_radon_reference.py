"""NUTS reference posterior for the radon random-intercept model.

Runs PyMC's NUTS sampler on exactly the model that ``RandomInterceptRegressor`` fits to
``skbayes_re.datasets.load_radon()`` (log radon ~ basement + uranium + county intercept),
and prints posterior means and standard deviations on the original scale, in a form that
can be pasted into ``tests/test_random_effects.py``.

The model replicates the estimator's: features and target standardised with their mean and
population standard deviation (``ddof=0``), then

    alpha, beta ~ Normal(0, 2.5)
    sigma, sigma_county ~ HalfNormal(2.5)
    z ~ Normal(0, 1)  (one per county, non-centred)
    y_std ~ Normal(alpha + X_std @ beta + sigma_county * z[county], sigma)

and the draws are mapped back to the original units as the estimator does:
``coef = sd_y * beta / sd_x``, ``intercept = mean_y + sd_y * (alpha - beta @ (mean_x / sd_x))``,
``sigma = sd_y * sigma``, ``group_sd = sd_y * sigma_county`` and
``effect = sd_y * sigma_county * z``. Counties are ordered by sorted label, as the estimator's
``group_effects_["county"]`` is.

Usage::

    python benchmarks/nuts_radon_reference.py [--draws 5000] [--tune 2000] [--chains 4]
                                               [--seed 20240601]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

PRIOR_SCALE = 2.5


def standardised_radon():
    """The radon data, standardised as the estimator does, plus what maps back."""
    from skbayes_re.datasets import load_radon

    X, y = load_radon()
    features = X[["basement", "uranium"]].to_numpy(float)
    target = y.to_numpy(float)
    counties = np.array(sorted(X["county"].astype(str).unique()), dtype=object)
    code = np.searchsorted(counties, X["county"].astype(str).to_numpy(object))
    x_mean, x_scale = features.mean(axis=0), features.std(axis=0)
    y_mean, y_scale = target.mean(), target.std()
    return {
        "features": (features - x_mean) / x_scale,
        "target": (target - y_mean) / y_scale,
        "code": code,
        "counties": counties,
        "x_mean": x_mean,
        "x_scale": x_scale,
        "y_mean": y_mean,
        "y_scale": y_scale,
    }


def sample(draws: int, tune: int, chains: int, seed: int, target_accept: float):
    import pymc as pm

    data = standardised_radon()
    n_counties = len(data["counties"])
    with pm.Model():
        alpha = pm.Normal("alpha", 0.0, PRIOR_SCALE)
        beta = pm.Normal("beta", 0.0, PRIOR_SCALE, shape=2)
        sigma = pm.HalfNormal("sigma", PRIOR_SCALE)
        sigma_county = pm.HalfNormal("sigma_county", PRIOR_SCALE)
        z = pm.Normal("z", 0.0, 1.0, shape=n_counties)
        mu = alpha + pm.math.dot(data["features"], beta) + sigma_county * z[data["code"]]
        pm.Normal("y", mu, sigma, observed=data["target"])
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=min(chains, 2),
            random_seed=seed,
            target_accept=target_accept,
            progressbar=False,
            compute_convergence_checks=True,
        )
    return idata, data


def to_original(idata, data) -> dict[str, np.ndarray]:
    post = idata.posterior
    alpha = post["alpha"].values.reshape(-1)
    beta = post["beta"].values.reshape(-1, 2)
    sigma = post["sigma"].values.reshape(-1)
    sigma_county = post["sigma_county"].values.reshape(-1)
    z = post["z"].values.reshape(alpha.size, -1)
    y_mean, y_scale = data["y_mean"], data["y_scale"]
    return {
        "intercept": y_mean + y_scale * (alpha - beta @ (data["x_mean"] / data["x_scale"])),
        "coef": y_scale * beta / data["x_scale"],
        "sigma": y_scale * sigma,
        "group_sd": y_scale * sigma_county,
        "effects": y_scale * sigma_county[:, None] * z,
    }


def _fmt(values) -> str:
    return ", ".join(f"{v:.5f}" for v in np.ravel(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=5000)
    parser.add_argument("--tune", type=int, default=2000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--target-accept", type=float, default=0.95)
    args = parser.parse_args()

    import arviz as az

    start = time.perf_counter()
    idata, data = sample(args.draws, args.tune, args.chains, args.seed, args.target_accept)
    elapsed = time.perf_counter() - start
    summary = az.summary(idata, var_names=["alpha", "beta", "sigma", "sigma_county", "z"])
    divergences = int(idata.sample_stats["diverging"].sum())
    print(
        f"# NUTS: {args.chains} chains x {args.draws} draws (tune {args.tune}), "
        f"seed {args.seed}, target_accept {args.target_accept}, {elapsed:.0f} s"
    )
    print(
        f"# divergences {divergences}, max r_hat {summary['r_hat'].max():.4f}, "
        f"min ess_bulk {summary['ess_bulk'].min():.0f}"
    )
    draws = to_original(idata, data)
    print(f"NUTS_INTERCEPT = ({draws['intercept'].mean():.5f}, {draws['intercept'].std():.5f})")
    print(f"NUTS_COEF_MEAN = np.array([{_fmt(draws['coef'].mean(axis=0))}])")
    print(f"NUTS_COEF_SD = np.array([{_fmt(draws['coef'].std(axis=0))}])")
    print(f"NUTS_SIGMA = ({draws['sigma'].mean():.5f}, {draws['sigma'].std():.5f})")
    print(f"NUTS_GROUP_SD = ({draws['group_sd'].mean():.5f}, {draws['group_sd'].std():.5f})")
    print("# county effects, counties in sorted label order:")
    print(f"# {list(data['counties'][:3])} ... {list(data['counties'][-2:])}")
    print(f"NUTS_EFFECT_MEAN = np.array([{_fmt(draws['effects'].mean(axis=0))}])")
    print(f"NUTS_EFFECT_SD = np.array([{_fmt(draws['effects'].std(axis=0))}])")


if __name__ == "__main__":
    main()
