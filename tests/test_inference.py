"""The ADVI engine's minibatch feeder and the closed-form move along the non-centred ridge."""

import numpy as np
import pytensor

from skbayes_re._inference import _Minibatches
from skbayes_re._models import rescale_group_scales


class _FakeEngine:
    def __init__(self, n_rows):
        self.data_vars = {
            "rows": pytensor.shared(np.zeros(n_rows)),
            "batch_scale": pytensor.shared(np.float64(1.0)),
        }


def test_minibatches_visit_every_row_once_per_epoch():
    n_rows, batch = 1000, 100
    engine = _FakeEngine(n_rows)
    feed = _Minibatches(
        engine, {"rows": np.arange(n_rows, dtype=float)}, ("rows",), batch, np.random.default_rng(0)
    )
    assert engine.data_vars["batch_scale"].get_value() == n_rows / batch
    for _ in range(3):  # three epochs
        seen = []
        for _ in range(n_rows // batch):
            feed()
            seen.append(engine.data_vars["rows"].get_value().copy())
        epoch = np.concatenate(seen)
        assert len(epoch) == n_rows
        np.testing.assert_array_equal(np.sort(epoch), np.arange(n_rows))


def _ridge_elbo(z_mean, z_log_sd, log_sigma, log_sigma_sd, prior_scale):
    """The terms of the ELBO that change along the ridge (see rescale_group_scales)."""
    expected_sigma_sq = np.exp(2 * log_sigma + 2 * np.exp(2 * log_sigma_sd))
    return (
        -0.5 * np.sum(z_mean**2 + np.exp(2 * z_log_sd))
        + np.sum(z_log_sd)
        - expected_sigma_sq / (2 * prior_scale**2)
        + log_sigma
    )


def test_ridge_move_keeps_the_effects_and_maximises_the_elbo():
    rng = np.random.default_rng(0)
    means = {"z_group_0": rng.normal(scale=1.7, size=50), "sigma_group_0_log__": np.array(-1.0)}
    log_sds = {"z_group_0": np.full(50, np.log(0.3)), "sigma_group_0_log__": np.array(-3.0)}
    before = {k: np.copy(v) for k, v in means.items()}, {k: np.copy(v) for k, v in log_sds.items()}
    rescale_group_scales(means, log_sds, prior_scale=2.5)
    effects = np.exp(means["sigma_group_0_log__"]) * means["z_group_0"]
    effects_before = np.exp(before[0]["sigma_group_0_log__"]) * before[0]["z_group_0"]
    np.testing.assert_allclose(effects, effects_before)
    args = (log_sds["sigma_group_0_log__"], 2.5)

    def elbo_at(shift):
        return _ridge_elbo(
            means["z_group_0"] / np.exp(shift),
            log_sds["z_group_0"] - shift,
            means["sigma_group_0_log__"] + shift,
            *args,
        )

    best = elbo_at(0.0)
    assert all(elbo_at(shift) < best for shift in (-0.05, -0.001, 0.001, 0.05))
    assert best > _ridge_elbo(
        before[0]["z_group_0"], before[1]["z_group_0"], before[0]["sigma_group_0_log__"], *args
    )


def test_shuffled_rows_are_taken_as_contiguous_blocks_from_a_random_start():
    """Rows already in a random order: each batch is a run of consecutive rows (wrapping
    around the end), the batches of an epoch are disjoint, and epochs start at different
    rows."""
    n_rows, batch = 1000, 300
    engine = _FakeEngine(n_rows)
    feed = _Minibatches(
        engine,
        {"rows": np.arange(n_rows, dtype=float)},
        ("rows",),
        batch,
        np.random.default_rng(0),
        shuffled=True,
    )
    starts = []
    for _ in range(4):  # four epochs of three batches
        epoch = []
        for _ in range(n_rows // batch):
            feed()
            rows = engine.data_vars["rows"].get_value().astype(int)
            np.testing.assert_array_equal(np.diff(rows) % n_rows, 1)
            epoch.append(rows)
        starts.append(epoch[0][0])
        assert len(np.unique(np.concatenate(epoch))) == batch * (n_rows // batch)
    assert len(set(starts)) > 1
