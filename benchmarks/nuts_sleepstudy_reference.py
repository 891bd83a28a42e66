"""NUTS reference posterior for the sleepstudy correlated random-slopes model.

Runs PyMC's NUTS sampler on the model ``Reaction ~ Days + (1 + Days | Subject)`` fitted to
``skbayes_re.datasets.load_sleepstudy()`` (lme4's sleepstudy: 18 subjects, 10 days each),
exactly as the library's random-slopes estimator specifies it, and prints posterior means and
standard deviations on the original scale, in a form that can be pasted into a test file.

The model replicates the estimator's: feature and target standardised with their mean and
population standard deviation (``ddof=0``), then

    alpha, beta ~ Normal(0, 2.5)
    sigma ~ HalfNormal(2.5)
    tau ~ HalfNormal(2.5)  (two independent sds: group intercept, group slope)
    Omega ~ LKJ(eta=2)  (2 x 2 correlation, L its Cholesky factor)
    z ~ Normal(0, I_2)  (one pair per subject, non-centred)
    u = z @ (diag(tau) @ L).T  (u[g] = (a_g, c_g), intercept and slope offsets)
    y_std ~ Normal(alpha + beta * x_std + a[subject] + c[subject] * x_std, sigma)

``diag(tau) @ L`` is the Cholesky factor returned by ``pm.LKJCholeskyCov`` with
``sd_dist=pm.HalfNormal.dist(2.5, shape=2)``, which puts independent HalfNormal(2.5) priors
on the two standard deviations. The draws are mapped back to the original units as the
estimator does: ``coef = sd_y * beta / sd_x``,
``intercept = mean_y + sd_y * (alpha - beta * mean_x / sd_x)``, ``sigma = sd_y * sigma``,
per-subject ``intercept_effect = sd_y * (a_g - c_g * mean_x / sd_x)`` and
``slope_effect = sd_y * c_g / sd_x``, and per draw the group covariance
``Sigma_orig = T @ Sigma_std @ T.T`` with ``Sigma_std = diag(tau) Omega diag(tau)`` and
``T = sd_y * [[1, -mean_x / sd_x], [0, 1 / sd_x]]``, from which ``sd_intercept``,
``sd_slope`` and ``corr`` are read. Subjects are ordered by sorted label, as the estimator's
``group_effects_["subject"]`` is.

Usage::

    python benchmarks/nuts_sleepstudy_reference.py [--draws 5000] [--tune 2000] [--chains 4]
                                                    [--seed 20240601] [--target-accept 0.95]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

PRIOR_SCALE = 2.5
LKJ_ETA = 2.0


def standardised_sleepstudy():
    """The sleepstudy data, standardised as the estimator does, plus what maps back."""
    from skbayes_re.datasets import load_sleepstudy

    X, y = load_sleepstudy()
    days = X["days"].to_numpy(float)
    target = y.to_numpy(float)
    subjects = np.array(sorted(X["subject"].astype(str).unique()), dtype=object)
    code = np.searchsorted(subjects, X["subject"].astype(str).to_numpy(object))
    x_mean, x_scale = days.mean(), days.std()
    y_mean, y_scale = target.mean(), target.std()
    return {
        "feature": (days - x_mean) / x_scale,
        "target": (target - y_mean) / y_scale,
        "code": code,
        "subjects": subjects,
        "x_mean": x_mean,
        "x_scale": x_scale,
        "y_mean": y_mean,
        "y_scale": y_scale,
    }


def sample(draws: int, tune: int, chains: int, seed: int, target_accept: float):
    import pymc as pm

    data = standardised_sleepstudy()
    n_subjects = len(data["subjects"])
    x, code = data["feature"], data["code"]
    with pm.Model():
        alpha = pm.Normal("alpha", 0.0, PRIOR_SCALE)
        beta = pm.Normal("beta", 0.0, PRIOR_SCALE)
        sigma = pm.HalfNormal("sigma", PRIOR_SCALE)
        chol, _corr, _stds = pm.LKJCholeskyCov(
            "chol",
            n=2,
            eta=LKJ_ETA,
            sd_dist=pm.HalfNormal.dist(PRIOR_SCALE, shape=2),
            compute_corr=True,
        )
        z = pm.Normal("z", 0.0, 1.0, shape=(n_subjects, 2))
        u = pm.Deterministic("u", z @ chol.T)
        mu = alpha + beta * x + u[code, 0] + u[code, 1] * x
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


def standardised_group(idata) -> dict[str, np.ndarray]:
    """Draws of the group sds ``tau`` and correlation ``Omega[0, 1]``, standardised scale."""
    post = idata.posterior
    tau = post["chol_stds"].values.reshape(-1, 2)
    corr = post["chol_corr"].values.reshape(-1, 2, 2)[:, 0, 1]
    return {"tau": tau, "corr": corr}


def to_original(idata, data) -> dict[str, np.ndarray]:
    post = idata.posterior
    alpha = post["alpha"].values.reshape(-1)
    beta = post["beta"].values.reshape(-1)
    sigma = post["sigma"].values.reshape(-1)
    u = post["u"].values.reshape(alpha.size, -1, 2)
    tau = post["chol_stds"].values.reshape(-1, 2)
    omega = post["chol_corr"].values.reshape(-1, 2, 2)
    x_mean, x_scale = data["x_mean"], data["x_scale"]
    y_mean, y_scale = data["y_mean"], data["y_scale"]
    cov_std = tau[:, :, None] * omega * tau[:, None, :]
    T = y_scale * np.array([[1.0, -x_mean / x_scale], [0.0, 1.0 / x_scale]])
    cov = T @ cov_std @ T.T
    sd_intercept = np.sqrt(cov[:, 0, 0])
    sd_slope = np.sqrt(cov[:, 1, 1])
    return {
        "intercept": y_mean + y_scale * (alpha - beta * x_mean / x_scale),
        "coef": y_scale * beta / x_scale,
        "sigma": y_scale * sigma,
        "sd_intercept": sd_intercept,
        "sd_slope": sd_slope,
        "corr": cov[:, 0, 1] / (sd_intercept * sd_slope),
        "intercept_effects": y_scale * (u[..., 0] - u[..., 1] * x_mean / x_scale),
        "slope_effects": y_scale * u[..., 1] / x_scale,
    }


def _fmt(values) -> str:
    return ", ".join(f"{v:.5f}" for v in np.ravel(values))


def _pair(values) -> str:
    return f"({values.mean():.5f}, {values.std():.5f})"


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
    summary = az.summary(
        idata,
        var_names=["alpha", "beta", "sigma", "chol", "chol_stds", "chol_corr", "z"],
        coords={"chol_corr_dim_0": [0], "chol_corr_dim_1": [1]},  # the off-diagonal only
    )
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
    print(f"NUTS_INTERCEPT = {_pair(draws['intercept'])}")
    print(f"NUTS_COEF = {_pair(draws['coef'])}")
    print(f"NUTS_SIGMA = {_pair(draws['sigma'])}")
    print(f"NUTS_SD_INTERCEPT = {_pair(draws['sd_intercept'])}")
    print(f"NUTS_SD_SLOPE = {_pair(draws['sd_slope'])}")
    print(f"NUTS_CORR = {_pair(draws['corr'])}")
    group = standardised_group(idata)
    print("# standardised scale: group sds tau (intercept, slope) and correlation Omega[0, 1]")
    print(f"NUTS_TAU_STD_MEAN = np.array([{_fmt(group['tau'].mean(axis=0))}])")
    print(f"NUTS_TAU_STD_SD = np.array([{_fmt(group['tau'].std(axis=0))}])")
    print(f"NUTS_CORR_STD = {_pair(group['corr'])}")
    print("# subject effects (original scale), subjects in sorted label order:")
    print(f"# {list(data['subjects'][:3])} ... {list(data['subjects'][-2:])}")
    effects = draws["intercept_effects"]
    print(f"NUTS_INTERCEPT_EFFECT_MEAN = np.array([{_fmt(effects.mean(axis=0))}])")
    print(f"NUTS_INTERCEPT_EFFECT_SD = np.array([{_fmt(effects.std(axis=0))}])")
    effects = draws["slope_effects"]
    print(f"NUTS_SLOPE_EFFECT_MEAN = np.array([{_fmt(effects.mean(axis=0))}])")
    print(f"NUTS_SLOPE_EFFECT_SD = np.array([{_fmt(effects.std(axis=0))}])")


if __name__ == "__main__":
    main()
