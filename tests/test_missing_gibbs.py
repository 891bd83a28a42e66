"""The Gibbs sampler of the linear models with missing feature values (``method="auto"``):
agreement with NUTS on the same model, weights, the ADVI route beside it, edge cases."""

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from test_missing import COEF, FEATURES
from test_missing import simulate as missing_data

import skbayes_re._models as models
from skbayes_re import BayesianLinearRegressor, RandomEffectsRegressor, RandomInterceptRegressor


def simulate(n_rows, n_groups=20, seed=0):
    """``test_missing``'s data (20% of cells missing completely at random): the masked
    frame, y, and the complete frame."""
    complete, masked, y, _ = missing_data(n_rows, n_groups=n_groups, seed=seed)
    return masked, y, complete


def sampled(monkeypatch, model, X, y):
    """Fit ``model`` and return the sampler's data and draws (standardised scale)."""
    seen = {}
    sampler = models.missing_gibbs_draws

    def spy(data, n_draws, seed, verbose=0):
        draws, n_iter = sampler(data, n_draws, seed, verbose)
        seen["data"], seen["draws"] = data, {k: np.copy(v) for k, v in draws.items()}
        return draws, n_iter

    monkeypatch.setattr(models, "missing_gibbs_draws", spy)
    model.fit(X, y)
    return seen["data"], seen["draws"]


@pytest.mark.slow
def test_agrees_with_nuts(monkeypatch):
    """400 rows, 10 groups, 20% of cells missing: ``missing.py``'s model (cells integrated
    out; effects centred, which NUTS samples well with 40 rows a group: non-centred, its
    tail effective sample sizes fell to 40) sampled by NUTS (2 x 2,000 draws) against
    4,000 sweeps of the sampler: the 10%, 50% and 90% quantiles of the intercept,
    coefficients, noise sd, group sd and the features' means within 0.2 of NUTS's
    posterior sd (measured: within 0.10). On 20,000 rows and 200 groups (not run here:
    six minutes of NUTS) the means agreed within 0.11 sd."""
    import pymc as pm

    X, y, _ = simulate(400, n_groups=10, seed=3)
    model = RandomInterceptRegressor(groups=["g"], n_posterior_samples=4000, random_state=0)
    data, ours = sampled(monkeypatch, model, X, y)
    with models.build_missing_model({**data, "centred_0": np.asarray(1.0)}):
        trace = pm.sample(2000, tune=1000, chains=2, random_seed=1, progressbar=False)
    posterior = trace.posterior
    for name in ["alpha", "beta", "sigma", "sigma_group_0", "feature_mean"]:
        reference = posterior[name].values.reshape(-1, *posterior[name].shape[2:])
        mine = ours[name].reshape(len(ours[name]), -1)
        reference = reference.reshape(len(reference), -1)
        for level in (0.1, 0.5, 0.9):
            gap = np.quantile(mine, level, axis=0) - np.quantile(reference, level, axis=0)
            assert np.all(np.abs(gap) < 0.2 * reference.std(axis=0)), (name, level, gap)


def test_masked_fit_is_wider_than_complete_fit():
    """The masked data carry less information than the complete data: each coefficient's
    posterior sd is larger (measured 0.0234-0.0248 against 0.0181-0.0205 on 4,000 rows;
    mean-field ADVI's were narrower than the complete fit's), and its mean lies within
    about ``sqrt(1 - sd_complete^2 / sd_masked^2)`` of an sd of the complete fit's."""
    X, y, complete = simulate(4_000, n_groups=50, seed=0)
    full = RandomInterceptRegressor(random_state=0).fit(complete, y)
    masked = RandomInterceptRegressor(random_state=0).fit(X, y)
    sd = masked.posterior_.posterior["coef"].std(("chain", "draw")).to_numpy()
    sd_full = full.posterior_.posterior["coef"].std(("chain", "draw")).to_numpy()
    assert np.all(sd > 1.05 * sd_full), (sd, sd_full)
    assert np.all(np.abs(masked.coef_ - full.coef_) < 1.0 * sd)
    assert masked.loss_curve_ == [] and masked.n_iter_ > masked.n_posterior_samples


def test_weight_two_is_the_row_twice():
    """Rows given weight 2 and the same rows twice: posterior means within 0.2 posterior sd
    (two chains on the same posterior, 2,000 draws each: about 0.5 effective draws per
    draw, so their means differ by about 0.03 sd by chance; measured within 0.03 with
    5,000 draws)."""
    X, y, _ = simulate(600, seed=5)
    weights = np.ones(len(y))
    weights[:200] = 2.0
    twice = pd.concat([X, X.iloc[:200]], ignore_index=True)
    y_twice = np.concatenate([y, y[:200]])
    fit_weighted = RandomInterceptRegressor(n_posterior_samples=2000, random_state=0)
    fit_weighted.fit(X, y, sample_weight=weights)
    fit_twice = RandomInterceptRegressor(n_posterior_samples=2000, random_state=1)
    fit_twice.fit(twice, y_twice)
    sd = fit_twice.posterior_.posterior["coef"].std(("chain", "draw")).to_numpy()
    assert np.all(np.abs(fit_weighted.coef_ - fit_twice.coef_) < 0.2 * sd)
    assert abs(fit_weighted.sigma_ - fit_twice.sigma_) < 0.02 * fit_twice.sigma_


def test_without_groups():
    """BayesianLinearRegressor: coefficients near the truth (2,000 rows), their sds wider
    than the complete data's, and each masked cell's draws centred near its true value."""
    X, y, complete = simulate(2_000, seed=7)
    masked = BayesianLinearRegressor(random_state=0).fit(X[FEATURES], y)
    full = BayesianLinearRegressor(random_state=0).fit(complete[FEATURES], y)
    sd = masked.posterior_.posterior["coef"].std(("chain", "draw")).to_numpy()
    sd_full = full.posterior_.posterior["coef"].std(("chain", "draw")).to_numpy()
    assert np.all(np.abs(masked.coef_ - COEF) < 4 * sd), masked.coef_
    assert np.all(sd > sd_full)
    imputed = masked.impute(X[FEATURES]).to_numpy()
    cells = X[FEATURES].isna().to_numpy()
    truth = complete[FEATURES].to_numpy()
    assert np.corrcoef(imputed[cells], truth[cells])[0, 1] > 0.4


def test_advi_route_remains_and_agrees():
    """``method="advi"`` fits ``missing.py``'s model by ADVI; its coefficients lie within
    one posterior sd of the sampler's."""
    X, y, _ = simulate(3_000, n_groups=30, seed=2)
    gibbs = RandomInterceptRegressor(random_state=0).fit(X, y)
    advi = RandomInterceptRegressor(method="advi", random_state=0).fit(X, y)
    sd = gibbs.posterior_.posterior["coef"].std(("chain", "draw")).to_numpy()
    assert len(advi.loss_curve_) > 0 and gibbs.loss_curve_ == []
    assert np.all(np.abs(advi.coef_ - gibbs.coef_) < sd), (advi.coef_, gibbs.coef_, sd)


def test_two_factors_use_advi():
    """Two grouping factors are beyond the sampler: ADVI fits them (a loss curve)."""
    X, y, _ = simulate(500, seed=4)
    X["h"] = pd.Categorical(np.arange(len(y)) % 7)
    model = RandomEffectsRegressor(groups=["g", "h"], max_iter=300, random_state=0).fit(X, y)
    assert len(model.loss_curve_) > 0


def test_verbose_shows_the_sweeps(capsys):
    """``verbose=1``: a status line on stderr with the sweeps run."""
    X, y, _ = simulate(300, seed=8)
    RandomInterceptRegressor(random_state=0, n_posterior_samples=100, verbose=1).fit(X, y)
    assert "Gibbs sweep 160/160 (kept)" in capsys.readouterr().err


def test_constant_target_and_every_row_incomplete():
    """A constant target predicts that constant exactly; with a cell missing in every row
    (no complete row) the feature model starts from pairwise moments and still fits."""
    X, y, _ = simulate(300, seed=6)
    constant = RandomInterceptRegressor(random_state=0).fit(X, np.full(len(y), 2.5))
    assert np.allclose(constant.predict(X), 2.5)
    every = X.copy()
    every.loc[every.index % 3 == 0, "a"] = np.nan
    every.loc[every.index % 3 == 1, "b"] = np.nan
    every.loc[every.index % 3 == 2, "c"] = np.nan
    model = RandomInterceptRegressor(random_state=0).fit(every, y)
    assert np.all(np.abs(model.coef_ - COEF) < 0.4), model.coef_


def test_fit_does_not_import_pymc():
    """The sampler is NumPy and SciPy only: a fit on data with missing cells, and its
    predictions, leave PyMC unimported."""
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from skbayes_re import RandomInterceptRegressor
        rng = np.random.default_rng(0)
        X = rng.normal(size=(200, 3))
        X[rng.random(X.shape) < 0.2] = np.nan
        groups = rng.integers(0, 5, size=200)
        y = rng.normal(size=200)
        data = np.column_stack([X, groups])
        model = RandomInterceptRegressor(groups=[3], random_state=0).fit(data, y)
        model.predict(data)
        model.impute(data)
        print("pymc" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
