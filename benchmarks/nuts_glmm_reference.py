"""NUTS on exactly the model a likelihood-family estimator fits, for accuracy checks of ADVI.

The estimator is fitted once (by ADVI) with its inference spec captured; PyMC's NUTS then
samples the same PyMC model (same data on the same scales, same priors, same
parametrisation), and the draws are mapped to the user's units by the estimator's own
back-transform. ``compare(advi, nuts)`` reports, per parameter, the distance between the two
posterior means in NUTS posterior sds.

Usage (prints the table for MASS ``epil``, Poisson)::

    python benchmarks/nuts_glmm_reference.py [--draws 1000] [--tune 1000] [--chains 2]
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.base import clone


def fit_and_sample(estimator, X, y, draws=1000, tune=1000, chains=2, seed=0):
    """``(ADVI draws, NUTS draws)`` in the user's units: dicts of ``coef`` (S, p),
    ``intercept`` (S,), ``group_sd`` (list of (S,)) and the family's parameters."""
    import pymc as pm

    fitted, captured = clone(estimator), {}
    run_engine = fitted._run_engine

    def capture(spec, n_obs):
        captured["spec"] = spec
        return run_engine(spec, n_obs=n_obs)

    fitted._run_engine = capture
    fitted.fit(X, y)
    del fitted._run_engine
    advi = dict(fitted._draws)
    spec = captured["spec"]
    with spec["build"](spec["data"]):
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=1,
            random_seed=seed,
            target_accept=0.95,
            progressbar=False,
            compute_convergence_checks=False,
        )
    posterior = idata.posterior
    raw = {
        name: posterior[name].to_numpy().reshape(-1, *posterior[name].shape[2:])
        for name in posterior.data_vars
    }
    if spec.get("complete") is not None:
        spec["complete"](raw)
    n_seen = [encoder.n_groups for encoder in fitted._encoders]
    return advi, fitted._store_fit(raw, n_seen)


def compare(advi: dict, nuts: dict, names: dict) -> list[tuple[str, float, float, float, float]]:
    """Rows ``(parameter, ADVI mean, NUTS mean, NUTS sd, |difference| / NUTS sd)``."""
    rows = []
    for label, pick in names.items():
        a, n = pick(advi), pick(nuts)
        sd = float(np.std(n))
        rows.append(
            (label, float(np.mean(a)), float(np.mean(n)), sd, abs(np.mean(a) - np.mean(n)) / sd)
        )
    return rows


def parameter_picks(feature_names, n_factors: int, family_parameters) -> dict:
    picks = {"intercept": lambda d: d["intercept"]}
    for j, name in enumerate(feature_names):
        picks[f"coef[{name}]"] = lambda d, j=j: d["coef"][:, j]
    for k in range(n_factors):
        picks[f"group_sd[{k}]"] = lambda d, k=k: d["group_sd"][k]
    for name in family_parameters:
        picks[name] = lambda d, name=name: d[name]
    return picks


def main() -> None:
    from skbayes_re import RandomInterceptRegressor
    from skbayes_re.datasets import load_epil

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--likelihood", default="poisson")
    parser.add_argument("--method", default="advi")
    args = parser.parse_args()
    X, y = load_epil()
    model = RandomInterceptRegressor(likelihood=args.likelihood, method=args.method, random_state=0)
    advi, nuts = fit_and_sample(model, X, y, args.draws, args.tune, args.chains)
    names = [c for c in X.columns if c != "subject"]
    own = ["dispersion"] if args.likelihood == "negative_binomial" else []
    for row in compare(advi, nuts, parameter_picks(names, 1, own)):
        print("{:<20} {:>9.4f} {:>9.4f} {:>8.4f} {:>6.2f}".format(*row))


if __name__ == "__main__":
    main()
