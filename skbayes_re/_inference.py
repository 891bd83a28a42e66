"""The ADVI engine shared by every estimator: the optimisation loop around the compiled step.

Automatic differentiation variational inference (Kucukelbir et al., 2017) on a PyMC model: a
Gaussian approximation (mean-field or full-rank) over the model's unconstrained parameters,
reparameterised Monte Carlo gradients of the ELBO, Adam updates. The step itself (one C
function per model structure, compiled once per process and reused by every fit) is built in
``_compiled_step``; this module runs it:

* :func:`fit_advi`, the entry point: fetch the structure's compiled step, swap the fit's data
  in, set the starting values, optimise, and draw from the averaged approximation.
* Stopping. Every ``window`` iterations the mean loss of the last window is compared with the
  previous one. When the change per observation is below ``tol`` (or within its Monte Carlo
  noise) the learning rate of the means is divided by ten, until it is small beside the
  posterior sds; the iterates averaged over that last phase are returned.
* Minibatches. With ``batch_size``, each step sees a random block of rows (every row once per
  epoch), the likelihood scaled up to the full data.
* Divergence. A fit whose loss ends above where it started, or becomes non-finite, is redone
  from the start at a tenth, then a hundredth of the learning rate, with a warning.
* Progress. ``verbose`` prints one status line on stderr: the step, the phase and its learning
  rate, the loss, and the stopping rule's measures.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from collections.abc import Callable, Hashable

import numpy as np
import pymc as pm
from sklearn.exceptions import ConvergenceWarning

from ._compiled_step import (
    _POINT_LOG_SD,
    _apply_move,
    _Block,
    _compiled,
    _split,
    compiled_structures,
)
from ._result import ADVIResult

__all__ = ["ADVIResult", "compiled_structures", "fit_advi", "fit_advi_from_point"]

_INIT_LOG_SD = float(np.log(0.1))
_MAX_FULLRANK_DIM = 3000
_LR_TO_SD = 0.25
_FLOAT32_BLOCK_SIZE = 4096
_MINIBATCH_WINDOW_FACTOR = 4
_DIVERGENCE_RESTARTS = 2  # at a tenth, then a hundredth of the learning rate


class _Progress:
    """One status line on stderr, refreshed at most 10 times a second: the step, the phase
    and its learning rate, the running loss, and the stopping rule's measures (the last
    window's fall in mean loss per observation beside ``tol`` and beside that fall's Monte
    Carlo noise). A phase ends when the fall is below either, the fit when that happens at a
    small enough learning rate, usually long before ``max_iter``, so a bar against
    ``max_iter`` would say nothing."""

    def __init__(self, max_iter: int, tol: float, enabled: bool):
        self.max_iter, self.tol, self.enabled = max_iter, tol, enabled
        self.phase, self.rate, self.change, self.noise = 1, None, None, None
        self.start = self.last = time.perf_counter()

    def new_phase(self, rate: float) -> None:
        self.phase, self.rate = (self.phase + 1 if self.rate is not None else 1), rate

    def window(self, change_per_obs: float, noise_per_obs: float) -> None:
        self.change, self.noise = change_per_obs, noise_per_obs

    def update(self, iteration: int, loss: float, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (not force and now - self.last < 0.1):
            return
        self.last = now
        change = "-"
        if self.change is not None:
            change = f"{self.change:.1e} (noise {self.noise:.0e}, tol {self.tol:.0e})"
        sys.stderr.write(
            f"\rADVI step {iteration}/{self.max_iter} | phase {self.phase} (lr {self.rate:.2g})"
            f" | loss {loss:.6g} | fall/obs {change}"
            f" | {now - self.start:.1f}s   "
        )
        sys.stderr.flush()

    def close(self, iteration: int, loss: float, converged: bool) -> None:
        if self.enabled:
            self.update(iteration, loss, force=True)
            sys.stderr.write(" | converged\n" if converged else " | stopped at max_iter\n")
            sys.stderr.flush()


def _window_converged(
    losses: np.ndarray, window: int, tol: float, n_obs: float, progress=None
) -> bool:
    """The loss has stopped falling: the last window's mean is not lower than the one before
    by more than ``tol`` per observation or than the noise of the difference. One-sided, as a
    window that is higher by chance (Adam's iterates wander at a fixed learning rate) says
    the phase has reached its noise floor, not that it is still moving."""
    previous, last = losses[-2 * window : -window], losses[-window:]
    improvement = previous.mean() - last.mean()
    noise = np.sqrt((previous.var() + last.var()) / window)
    if progress is not None:
        per_obs = 1.0 / max(n_obs, 1e-300)
        progress.window(improvement * per_obs, noise * per_obs)
    return improvement <= tol * n_obs or improvement <= noise


def _precise_enough(engine) -> bool:
    """Adam's steps on the means scale with the learning rate, not with the posterior sd:
    keep dividing it until it is small beside the narrowest posterior sds."""
    sd = engine.current_sd()
    random = sd > np.exp(_POINT_LOG_SD + 1.0)
    relative = sd[random] / engine.step_scale[random]
    return relative.size == 0 or engine.lr.get_value() <= _LR_TO_SD * np.quantile(relative, 0.1)


class _Minibatches:
    """Feeds a random block of rows of the per-row data to the model before each step.

    Rows are visited in a fresh random order every epoch, so each group's rows enter the
    batches in proportion to their share of the data; the model's ``batch_scale`` data scale
    the batch log-likelihood up to the full data. Rows already in a random order
    (``shuffled``) are visited in contiguous blocks from a random start each epoch: each
    block is still a uniform random set of rows, and is sliced, not gathered.
    """

    def __init__(self, engine, data, row_data, batch_size: int, rng, shuffled: bool = False):
        if "batch_scale" not in engine.data_vars:
            raise ValueError("Minibatch ADVI needs a model with a 'batch_scale' data variable.")
        self.targets = [engine.data_vars[name] for name in row_data]
        self.full = [
            np.asarray(data[name], dtype=v.dtype)
            for name, v in zip(row_data, self.targets, strict=True)
        ]
        self.n_rows = len(self.full[0])
        self.batch = min(int(batch_size), self.n_rows)
        self.rng = rng
        self.shuffled = shuffled
        self.order, self.start, self.position = np.arange(self.n_rows), 0, self.n_rows
        scale = engine.data_vars["batch_scale"]
        scale.set_value(np.asarray(self.n_rows / self.batch, dtype=scale.dtype))

    def __call__(self) -> None:
        if self.position + self.batch > self.n_rows:  # a new epoch
            self.position = 0
            if self.shuffled:  # a random start, the last block wrapping around the end
                self.start = int(self.rng.integers(self.n_rows))
            else:
                self.order = self.rng.permutation(self.n_rows)
        take = self._block() if self.shuffled else self._rows()
        self.position += self.batch
        for target, full in zip(self.targets, self.full, strict=True):
            target.set_value(take(full), borrow=True)

    def _rows(self):
        rows = np.sort(self.order[self.position : self.position + self.batch])
        return lambda full: full[rows]

    def _block(self):
        start = (self.start + self.position) % self.n_rows
        end = start + self.batch
        if end <= self.n_rows:
            return lambda full: full[start:end]
        return lambda full: np.concatenate([full[start:], full[: end - self.n_rows]])


def _optimise(
    engine, rng, max_iter, tol, n_obs, window, progress, before_step=None, move=None
) -> tuple[list, bool]:
    dim = engine.dim
    losses = np.empty(max_iter)
    converged, phase_start, iteration = False, 0, 0
    progress.new_phase(float(engine.lr.get_value()))
    while iteration < max_iter:
        if before_step is not None:
            before_step()
        losses[iteration] = engine.step(*engine.split_noise(rng.standard_normal(dim)))
        iteration += 1
        if not np.isfinite(losses[iteration - 1]):
            break  # diverged: see _diverged
        progress.update(iteration, losses[iteration - 1])
        in_phase = iteration - phase_start
        if in_phase < 2 * window or in_phase % window:
            continue
        if _window_converged(losses[phase_start:iteration], window, tol, n_obs, progress):
            if _precise_enough(engine):
                converged = True
                break
            engine.lr.set_value(engine.lr.get_value() / 10.0)
            progress.new_phase(float(engine.lr.get_value()))
            engine.restart_from_average(move)
            phase_start = iteration
    return losses[:iteration].tolist(), converged


def _diverged(losses: list[float], window: int) -> bool:
    """The optimisation failed: a non-finite loss, or a last window whose mean loss lies
    above the starting point's (every model starts near its posterior, and each phase only
    lowers the loss) by more than three of its step-to-step sds and 0.1%. A fit that
    converges never meets this, so it is unchanged by the check."""
    if not np.isfinite(losses[-1]):
        return True
    last = np.asarray(losses[-window:])
    margin = max(3.0 * float(np.std(last)), 1e-3 * abs(losses[0]))
    return float(np.mean(last)) > losses[0] + margin


def _constrain(blocks: list[_Block], unconstrained: dict[str, np.ndarray]):
    out = {}
    for block in blocks:
        value = unconstrained[block.name]
        if block.transform == "log":
            name = block.name.removesuffix("_log__")
            out[name] = np.exp(value)
        else:
            out[block.name] = value
    return out


def _draw(blocks, method, mean, scale, n_draws, rng) -> dict[str, np.ndarray]:
    """Draws from the approximation, by block (unconstrained scale). Mean-field draws are made
    one block at a time and in place, so each block is its own array, freed once used: with
    many groups the group block is by far the largest, and a block of more than
    ``_FLOAT32_BLOCK_SIZE`` parameters is drawn in float32 (its Monte Carlo error is far above
    float32's precision)."""
    if method != "advi":
        eps = rng.standard_normal((n_draws, mean.shape[0]))
        unit = np.tril(scale, -1) + np.eye(scale.shape[0])
        return _split(blocks, mean + eps @ (np.exp(np.diag(scale))[:, None] * unit).T)
    means, log_sds = _split(blocks, mean), _split(blocks, scale)
    draws = {}
    for block in blocks:
        dtype = np.float32 if block.size >= _FLOAT32_BLOCK_SIZE else np.float64
        eps = rng.standard_normal((n_draws, *block.shape), dtype=dtype)
        eps *= np.exp(log_sds[block.name])
        eps += means[block.name]
        draws[block.name] = eps
    return draws


def fit_advi(
    key: Hashable,
    build_model: Callable[[dict], pm.Model],
    data: dict[str, np.ndarray],
    *,
    n_obs: int,
    method: str = "advi",
    learning_rate: float = 0.05,
    max_iter: int = 10_000,
    tol: float = 1e-4,
    n_draws: int = 500,
    random_state: int = 0,
    verbose: int = 0,
    init: Callable[[dict[str, tuple], np.random.Generator], dict] | None = None,
    window: int = 100,
    point_blocks: frozenset = frozenset(),
    exclude_rewrites: tuple[str, ...] = (),
    row_data: tuple[str, ...] = (),
    batch_size: int | None = None,
    move: Callable[[dict, dict], None] | None = None,
    rows_shuffled: bool = False,
) -> ADVIResult:
    """Fit ``build_model(data)`` by ADVI and draw from the approximation.

    ``key`` names the model structure: fits with equal keys share one compiled step function,
    whatever their data sizes. ``init`` may return starting means for some parameter blocks
    (by value-variable name) given their shapes and a generator. Blocks named in
    ``point_blocks`` are optimised as point estimates inside the same objective. With
    ``batch_size`` smaller than the row count, each step sees a random block of that many rows
    of the ``row_data`` arrays (minibatch ADVI; the model scales its likelihood by its
    ``batch_scale`` data); with ``rows_shuffled`` (the spec put its rows in a random order)
    each block is contiguous. ``move(means, log_sds)``, for mean-field fits, may edit the
    parameters by block in place with a closed-form step that raises the ELBO (along a
    direction that gradient steps follow slowly); it is applied whenever the learning rate
    drops and to the final averaged parameters. ``exclude_rewrites`` names graph rewrites
    that the compiler should skip for this structure (their time on a large graph).
    """
    timings = {}
    start = time.perf_counter()
    engine, built = _compiled(
        key, build_model, data, method, frozenset(point_blocks), exclude_rewrites
    )
    timings["compile"] = time.perf_counter() - start if built else 0.0
    rng = np.random.default_rng(random_state)
    with engine.lock:
        engine.set_data(data)
        dim = engine.dim
        if method == "fullrank_advi" and dim > _MAX_FULLRANK_DIM:
            raise ValueError(
                f"method='fullrank_advi' needs a {dim}x{dim} covariance; above "
                f"{_MAX_FULLRANK_DIM} parameters use method='advi'."
            )
        start_params = _initial_params(engine.blocks, init, rng)
        progress = _Progress(max_iter, tol, verbose > 0)
        feed = None
        if batch_size is not None and row_data and batch_size < len(data[row_data[0]]):
            feed = _Minibatches(engine, data, row_data, batch_size, rng, rows_shuffled)
            window *= _MINIBATCH_WINDOW_FACTOR
        start = time.perf_counter()
        rate = learning_rate
        for restart in range(_DIVERGENCE_RESTARTS + 1):
            engine.reset(*start_params, rate)
            losses, converged = _optimise(
                engine, rng, max_iter, tol, n_obs, window, progress, before_step=feed, move=move
            )
            if not _diverged(losses, window):
                break
            if restart == _DIVERGENCE_RESTARTS:
                engine.release_data()
                raise FloatingPointError(
                    f"ADVI diverged at learning_rate={learning_rate} and again at {rate:g} "
                    "(the loss ended above where it started, or became non-finite); "
                    "use a smaller learning_rate."
                )
            rate /= 10.0
        timings["optimise"] = time.perf_counter() - start
        if rate != learning_rate:
            warnings.warn(
                f"ADVI diverged at learning_rate={learning_rate} (the loss ended above where it "
                f"started, or became non-finite) and was refitted from the start at {rate:g}; "
                "set learning_rate to that value to skip the failed attempt.",
                ConvergenceWarning,
                stacklevel=3,
            )
        progress.close(len(losses), losses[-1], converged)
        mean, scale = engine.averaged_params()
        blocks = [_Block(b.name, b.transform, b.shape) for b in engine.blocks]
        _apply_move(move, blocks, method, mean, scale)
        engine.release_data()
    if not converged:
        warnings.warn(
            f"ADVI stopped at max_iter={max_iter} before the ELBO converged (tol={tol}); "
            "increase max_iter or learning_rate.",
            ConvergenceWarning,
            stacklevel=3,
        )
    draws = _constrain(blocks, _draw(blocks, method, mean, scale, n_draws, rng))
    sd = np.exp(scale) if method == "advi" else np.exp(np.diag(scale))
    return ADVIResult(
        draws=draws,
        mean=_split(blocks, mean),
        sd=_split(blocks, sd),
        loss_curve=losses,
        n_iter=len(losses),
        converged=converged,
        timings=timings,
    )


def _initial_params(blocks, init, rng) -> tuple[np.ndarray, np.ndarray]:
    """Flat starting means and log-sds. ``init`` returns means by block name, or a pair
    (means, sds); blocks it leaves out start at 0 with sd 0.1."""
    starts = init({b.name: b.shape for b in blocks}, rng) if init is not None else {}
    means, sds = starts if isinstance(starts, tuple) else (starts, {})

    def flat(values, default):
        parts = [
            np.broadcast_to(np.asarray(values.get(b.name, default), float), b.shape).ravel()
            for b in blocks
        ]
        return np.concatenate(parts) if parts else np.zeros(0)

    return flat(means, 0.0), np.log(flat(sds, np.exp(_INIT_LOG_SD)))


def fit_advi_from_point(
    point_key: Hashable,
    key: Hashable,
    build_model: Callable[[dict], pm.Model],
    data: dict[str, np.ndarray],
    *,
    point_blocks: frozenset,
    point_sd: float,
    init,
    method: str,
    n_draws: int,
    random_state: int,
    **common,
) -> ADVIResult:
    """Two fits of one model: ``point_blocks`` as point estimates first (structure
    ``point_key``, mean-field), then every block variational (``key``, ``method``) from that
    fit's means, the former point blocks starting with sd ``point_sd``. The result is the
    second fit's, with both fits' losses, steps and timings. ``common``: ``fit_advi``'s other
    arguments, shared by both fits.

    Mean-field ADVI from random network weights often stalls with a near-constant network, its
    weight noise drowning the signal; started at the joint point estimate it does not.
    """
    seeds = np.random.default_rng(random_state).integers(np.iinfo(np.int32).max, size=2)
    first = fit_advi(
        point_key,
        build_model,
        data,
        method="advi",
        n_draws=1,
        random_state=int(seeds[0]),
        init=init,
        point_blocks=point_blocks,
        **common,
    )

    def warm_start(shapes, rng):
        sds = {
            name: np.full(shapes[name], point_sd) if name in point_blocks else sd
            for name, sd in first.sd.items()
        }
        return dict(first.mean), sds

    second = fit_advi(
        key,
        build_model,
        data,
        method=method,
        n_draws=n_draws,
        random_state=int(seeds[1]),
        init=warm_start,
        **common,
    )
    timings = {
        name: first.timings.get(name, 0.0) + second.timings.get(name, 0.0)
        for name in {**first.timings, **second.timings}
    }
    return dataclasses.replace(
        second,
        loss_curve=[*first.loss_curve, *second.loss_curve],
        n_iter=first.n_iter + second.n_iter,
        timings=timings,
    )
