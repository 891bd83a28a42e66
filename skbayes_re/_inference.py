"""The ADVI engine shared by every estimator.

Automatic differentiation variational inference (Kucukelbir et al., 2017) on a PyMC model: a
Gaussian approximation (mean-field or full-rank) over the model's unconstrained parameters,
reparameterised Monte Carlo gradients of the ELBO, Adam updates.

Cost design:

* One compiled step per model *structure*. The step function is compiled once per structure
  key (e.g. number of grouping factors) and reused for every later fit: new data of any row,
  feature or group count are swapped into the model's ``pm.Data`` containers, whose shapes
  stay symbolic, so nothing is recompiled.
* One C module per structure. Mean-field parameters are kept per block (one mean and one
  log-sd array per value variable), so the whole step (ELBO, gradient, Adam, averaging) has C
  code and PyTensor's C linker compiles it with a single compiler call; graphs with an op that
  lacks C code fall back to one cached module per op.
* One Python call per iteration. The step draws nothing and returns only the loss; Adam moments
  and the running average of the iterates live in shared variables updated inside the compiled
  graph. The Monte Carlo noise is drawn by NumPy from the fit's own seeded generator, so a fit
  is reproducible bit for bit.
* Antithetic draws: each step evaluates the log density at ``mu + L eps`` and ``mu - L eps``,
  which removes most gradient noise for near-Gaussian posteriors.
* Stopping. Every ``window`` iterations the mean loss of the last window is compared with the
  previous one. When the change per observation is below ``tol`` (or within its Monte Carlo
  noise) the learning rate of the means is divided by ten, until it is small beside the
  posterior sds; the iterates averaged over that last phase are returned.
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import Mode
from pytensor.graph.replace import graph_replace
from pytensor.graph.rewriting.utils import rewrite_graph
from sklearn.exceptions import ConvergenceWarning

__all__ = ["ADVIResult", "compiled_structures", "fit_advi"]

_ADAM_BETA1 = 0.9
_ADAM_BETA2 = 0.99
_ADAM_EPS = 1e-8
_INIT_LOG_SD = float(np.log(0.1))
_MAX_FULLRANK_DIM = 3000
_LR_TO_SD = 0.25
_POINT_LOG_SD = -50.0  # a point-estimated block: sd exp(-50), i.e. no spread
_FLOAT32_BLOCK_SIZE = 4096
_MINIBATCH_WINDOW_FACTOR = 4
_DIVERGENCE_RESTARTS = 2  # at a tenth, then a hundredth of the learning rate
# Compiler flags for the step's C module, given after PyTensor's own "-O3" and "-g" (the last
# ones win). The module is about 1 MB of generated C for a random-intercept step; g++ takes
# 29 s over it at -O3 with debug information, 15 s at -O2, 9 s at -O2 without debug
# information, and the steps are no slower (300 steps at 50,000 groups: 2.16 s either way).
_COMPILER_FLAGS = "-O2 -g0"


@dataclass
class ADVIResult:
    """What a fit produced: posterior draws and the optimisation trace."""

    draws: dict[str, np.ndarray]
    mean: dict[str, np.ndarray]
    sd: dict[str, np.ndarray]
    loss_curve: list[float]
    n_iter: int
    converged: bool
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Block:
    """One unconstrained parameter block of the model (a value variable)."""

    name: str
    transform: str  # "identity" or "log"
    shape: tuple = ()

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def _transform_kind(model: pm.Model, value_var) -> str:
    transform = model.rvs_to_transforms[model.values_to_rvs[value_var]]
    if transform is None:
        return "identity"
    if type(transform).__name__ == "LogTransform":
        return "log"
    raise NotImplementedError(f"Unsupported transform {transform!r} for {value_var.name}.")


def _data_only_shape(rv):
    """The shape of a random variable as a graph of the model's data only (no RNG inputs)."""
    return rewrite_graph(rv.shape, include=("canonicalize", "ShapeOpt"))


def _adam(param, grad, lr, t, precondition=None):
    first = pytensor.shared(np.zeros((1,) * param.ndim), name=f"{param.name}_m")
    second = pytensor.shared(np.zeros((1,) * param.ndim), name=f"{param.name}_v")
    first_new = _ADAM_BETA1 * first + (1 - _ADAM_BETA1) * grad
    second_new = _ADAM_BETA2 * second + (1 - _ADAM_BETA2) * grad**2
    step = (
        lr
        * (first_new / (1 - _ADAM_BETA1**t))
        / (pt.sqrt(second_new / (1 - _ADAM_BETA2**t)) + _ADAM_EPS)
    )
    if precondition is not None:
        step = step * precondition
    return [first, second], [(first, first_new), (second, second_new)], param - step


def _antithetic_logp(model, value_vars, centres, shifts):
    """Mean of the model's log density at ``centre + shift`` and ``centre - shift``.

    Antithetic pairs cancel the odd terms of the integrand: for a near-Gaussian posterior the
    gradient noise on the means nearly vanishes and that on the scales drops sharply, so the
    scales converge in far fewer steps than with independent draws.
    """
    logp = model.logp()
    pair = []
    for sign in (1.0, -1.0):
        draws = {
            v: centre + sign * shift
            for v, centre, shift in zip(value_vars, centres, shifts, strict=True)
        }
        pair.append(graph_replace([logp], draws, strict=False)[0])
    return 0.5 * (pair[0] + pair[1])


def _compile(inputs, output, updates, single_module: bool, exclude: tuple = ()):
    """Compile the step. When every op has C code the whole graph becomes one C module (one
    compiler call, the fastest cold start and the fewest calls per step); otherwise each op
    gets its own (cached) module. ``exclude`` names graph rewrites to skip (a model whose
    graph makes them slow says which)."""
    flags = f"{pytensor.config.gcc__cxxflags} {_COMPILER_FLAGS}".strip()
    with warnings.catch_warnings(), pytensor.config.change_flags(gcc__cxxflags=flags):
        # The step has no BLAS ops (see the model specifications), so PyTensor's notice that
        # no optimised BLAS is linked does not concern it.
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
        return _compile_with_linker(inputs, output, updates, single_module, exclude)


def _compile_with_linker(inputs, output, updates, single_module: bool, exclude: tuple):
    def mode(linker):
        chosen = Mode(linker=linker, optimizer="fast_run")
        return chosen.excluding(*exclude) if exclude else chosen

    if single_module:
        try:
            return pytensor.function(inputs, output, updates=updates, mode=mode("c"))
        except NotImplementedError:
            pass
    return pytensor.function(inputs, output, updates=updates, mode=mode("cvm"))


class _CompiledADVI:
    """A model's ELBO step function, compiled once and reused across fits.

    Mean-field ADVI keeps a mean and a log-sd per parameter block (one per value variable,
    each with the block's own shape); full-rank ADVI keeps one flat mean and a Cholesky factor.
    """

    def __init__(
        self,
        model: pm.Model,
        method: str,
        point_blocks: frozenset = frozenset(),
        exclude_rewrites: tuple = (),
    ):
        self.model = model
        self.method = method
        self.point_blocks = point_blocks
        self.lock = threading.Lock()
        self.data_vars = {var.name: var for var in model.data_vars}
        value_vars = list(model.value_vars)
        self.blocks = [_Block(v.name, _transform_kind(model, v)) for v in value_vars]
        rv_shapes = [_data_only_shape(model.values_to_rvs[v]) for v in value_vars]
        self._shape_fn = pytensor.function(
            [], rv_shapes, mode=Mode(linker="py", optimizer="fast_compile")
        )
        if method == "advi":
            family = self._mean_field(value_vars, point_blocks)
        elif point_blocks:
            raise ValueError("Point-estimated parameters need method='advi'.")
        else:
            family = self._full_rank(value_vars, rv_shapes)
        self.means, self.scales, centres, shifts, entropy, self.eps_inputs = family
        logp = _antithetic_logp(model, value_vars, centres, shifts)
        self._compile_step(-(logp + entropy), method == "advi", tuple(exclude_rewrites))

    @staticmethod
    def _mean_field(value_vars, point_blocks):
        """Per-block means and log-sds. Blocks named in ``point_blocks`` are point estimates
        optimised inside the same objective: no noise, no entropy, their sd pinned at ~0."""
        means = [pytensor.shared(np.zeros((1,) * v.ndim), name=f"{v.name}_mu") for v in value_vars]
        scales = [
            pytensor.shared(np.zeros((1,) * v.ndim), name=f"{v.name}_log_sd") for v in value_vars
        ]
        eps = [v.type(name=f"{v.name}_eps") for v in value_vars]
        random = [v.name not in point_blocks for v in value_vars]
        shifts = [
            pt.exp(log_sd) * e if is_random else pt.zeros_like(e)
            for log_sd, e, is_random in zip(scales, eps, random, strict=True)
        ]
        entropy = pt.add(
            pt.constant(0.0),
            *[
                pt.sum(log_sd)
                for log_sd, is_random in zip(scales, random, strict=True)
                if is_random
            ],
        )
        return means, scales, means, shifts, entropy, eps

    @staticmethod
    def _full_rank(value_vars, rv_shapes):
        # Row-scaled Cholesky factor: L = diag(exp(d)) (I + strictly-lower N), so the
        # off-diagonal parameters are dimensionless and share one learning rate with d.
        mu = pytensor.shared(np.zeros(1), name="mu")
        chol = pytensor.shared(np.zeros((1, 1)), name="chol")
        eps = pt.vector("eps")
        diag = pt.diagonal(chol)
        unit = pt.tril(chol, -1) + pt.eye(diag.shape[0])
        shift = (pt.exp(diag)[:, None] * unit) @ eps
        means, shifts, offset = [], [], 0
        for value_var, shape in zip(value_vars, rv_shapes, strict=True):
            size = pt.prod(shape)
            part = slice(offset, offset + size)
            means.append(mu[part].reshape(shape, ndim=value_var.ndim))
            shifts.append(shift[part].reshape(shape, ndim=value_var.ndim))
            offset = offset + size
        return [mu], [chol], means, shifts, pt.sum(diag), [eps]

    def _compile_step(self, loss, single_module: bool, exclude_rewrites: tuple):
        params = self.means + self.scales
        grads = pytensor.grad(loss, params, disconnected_inputs="ignore")
        self.lr = pytensor.shared(np.float64(0.01), name="learning_rate_mean")
        self.lr_scale = pytensor.shared(np.float64(0.01), name="learning_rate_scale")
        self.t = pytensor.shared(np.float64(0.0), name="t")
        self.n_averaged = pytensor.shared(np.float64(0.0), name="n_averaged")
        t_new, n_new = self.t + 1.0, self.n_averaged + 1.0
        updates = [(self.t, t_new), (self.n_averaged, n_new)]
        learning_rates = [self.lr] * len(self.means) + [self.lr_scale] * len(self.scales)
        self.averages, self._companions = [], []
        # Adam moves every coordinate by about the learning rate per step; the means' steps
        # are scaled per coordinate by the starting sd (1 unless the model supplies one), so
        # that the learning rate is relative to each parameter's posterior scale.
        self.preconditions = [
            pytensor.shared(np.ones((1,) * mean.ndim), name=f"{mean.name}_step_scale")
            for mean in self.means
        ]
        step_scales = self.preconditions + [None] * len(self.scales)
        for param, grad, lr, step_scale in zip(
            params, grads, learning_rates, step_scales, strict=True
        ):
            state, moment_updates, param_new = _adam(param, grad, lr, t_new, step_scale)
            average = pytensor.shared(np.zeros((1,) * param.ndim), name=f"{param.name}_avg")
            self.averages.append(average)
            self._companions.append((param, [*state, average]))
            updates += moment_updates
            updates += [(param, param_new), (average, average + (param_new - average) / n_new)]
        self.step = _compile(self.eps_inputs, loss, updates, single_module, exclude_rewrites)
        self.step.trust_input = True

    def set_data(self, data: dict[str, np.ndarray]) -> None:
        missing = set(self.data_vars) - set(data)
        if missing:
            raise KeyError(f"Model data not supplied: {sorted(missing)}")
        for name, var in self.data_vars.items():
            # Borrowed, not copied: the step only reads its data, and a copy of a large
            # design matrix would double the fit's memory.
            var.set_value(np.asarray(data[name], dtype=var.dtype), borrow=True)
        for block, shape in zip(self.blocks, self._shape_fn(), strict=True):
            block.shape = tuple(int(s) for s in np.atleast_1d(shape)) if np.ndim(shape) else ()
        bounds = np.cumsum([0] + [block.size for block in self.blocks])
        self._layout = [
            (int(start), int(stop), block.shape)
            for start, stop, block in zip(bounds[:-1], bounds[1:], self.blocks, strict=True)
        ]

    def release_data(self) -> None:
        """Drop the references to a fit's arrays, so a cached engine holds no user data."""
        for var in self.data_vars.values():
            value = var.get_value(borrow=True)
            if value.ndim:
                var.set_value(np.zeros((0,) * value.ndim, dtype=value.dtype), borrow=True)

    @property
    def dim(self) -> int:
        return sum(block.size for block in self.blocks)

    def _assign(self, variables, flat_values) -> None:
        if self.method == "advi":
            for var, value in zip(
                variables, _split(self.blocks, flat_values).values(), strict=True
            ):
                var.set_value(np.asarray(value, dtype=np.float64))
        else:
            variables[0].set_value(np.asarray(flat_values, dtype=np.float64))

    def _collect(self, variables) -> np.ndarray:
        if self.method == "advi":
            parts = [np.ravel(var.get_value()) for var in variables]
            return np.concatenate(parts) if parts else np.zeros(0)
        return variables[0].get_value()

    def reset(self, init_mean: np.ndarray, init_log_sd: np.ndarray, learning_rate: float):
        """Start a fit. Every block's mean steps scale with its starting sd, a point block's
        too (the sd it is given stands for the scale of its moves; it keeps no spread)."""
        dim = self.dim
        step_scale = np.exp(init_log_sd)
        if self.method == "advi":
            scale0 = init_log_sd.copy()
            point = _split(self.blocks, np.arange(dim))
            for name in self.point_blocks:
                scale0[np.ravel(point[name])] = _POINT_LOG_SD
        else:
            scale0 = np.diag(init_log_sd)
        self._assign(self.means, init_mean)
        self._assign(self.scales, scale0)
        self._assign(self.preconditions, step_scale)
        self.step_scale = step_scale
        for param, companions in self._companions:
            for var in companions:
                var.set_value(np.zeros_like(param.get_value()))
        self.t.set_value(np.float64(0.0))
        self.n_averaged.set_value(np.float64(0.0))
        self.lr.set_value(np.float64(learning_rate))
        self.lr_scale.set_value(np.float64(learning_rate))

    def restart_average(self) -> None:
        self.n_averaged.set_value(np.float64(0.0))

    def current_sd(self) -> np.ndarray:
        scale = self._collect(self.scales)
        return np.exp(scale if self.method == "advi" else np.diag(scale))

    def averaged_params(self) -> tuple[np.ndarray, np.ndarray]:
        """Averages of the iterates since the last learning-rate change (mean, scale)."""
        if self.n_averaged.get_value() == 0:
            return self._collect(self.means), self._collect(self.scales)
        n_means = len(self.means)
        return (
            self._collect(self.averages[:n_means]),
            self._collect(self.averages[n_means:]),
        )

    def restart_from_average(self, move=None) -> None:
        """Start a new phase from the average of the last one's iterates (far less noisy than
        the last iterate when the gradients are noisy, as with minibatches), after
        ``move(means, log_sds)`` (by block name, edited in place) for mean-field fits."""
        mean, scale = self.averaged_params()
        _apply_move(move, self.blocks, self.method, mean, scale)
        self._assign(self.means, mean)
        self._assign(self.scales, scale)
        self.restart_average()

    def split_noise(self, eps: np.ndarray) -> list[np.ndarray]:
        """Per-block views of one flat standard-normal draw, as the step function takes."""
        if self.method != "advi":
            return [eps]
        return [eps[start:stop].reshape(shape) for start, stop, shape in self._layout]


_CACHE: dict[Hashable, _CompiledADVI] = {}
_CACHE_LOCK = threading.Lock()


def compiled_structures() -> int:
    """How many model structures have a compiled step function in this process."""
    return len(_CACHE)


def _compiled(key, build_model, data, method, point_blocks, exclude_rewrites=()):
    """The compiled engine of a structure (built on first use) and whether it was built."""
    full_key = (key, method, point_blocks)
    with _CACHE_LOCK:
        engine = _CACHE.get(full_key)
        if engine is None:
            engine = _CompiledADVI(build_model(data), method, point_blocks, exclude_rewrites)
            _CACHE[full_key] = engine
            return engine, True
    return engine, False


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
    the batch log-likelihood up to the full data.
    """

    def __init__(self, engine, data, row_data, batch_size: int, rng):
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
        self.order, self.position = np.arange(self.n_rows), self.n_rows
        scale = engine.data_vars["batch_scale"]
        scale.set_value(np.asarray(self.n_rows / self.batch, dtype=scale.dtype))

    def __call__(self) -> None:
        if self.position + self.batch > self.n_rows:
            self.order, self.position = self.rng.permutation(self.n_rows), 0
        rows = np.sort(self.order[self.position : self.position + self.batch])
        self.position += self.batch
        for target, full in zip(self.targets, self.full, strict=True):
            target.set_value(full[rows], borrow=True)


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


def _split(blocks: list[_Block], flat: np.ndarray) -> dict[str, np.ndarray]:
    out, offset = {}, 0
    for block in blocks:
        part = flat[..., offset : offset + block.size]
        out[block.name] = part.reshape(flat.shape[:-1] + block.shape)
        offset += block.size
    return out


def _apply_move(move, blocks, method, mean, scale) -> None:
    """Edit flat mean-field parameters in place with ``move(means, log_sds)`` (by block)."""
    if method == "advi" and move is not None:
        move(_split(blocks, mean), _split(blocks, scale))


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
) -> ADVIResult:
    """Fit ``build_model(data)`` by ADVI and draw from the approximation.

    ``key`` names the model structure: fits with equal keys share one compiled step function,
    whatever their data sizes. ``init`` may return starting means for some parameter blocks
    (by value-variable name) given their shapes and a generator. Blocks named in
    ``point_blocks`` are optimised as point estimates inside the same objective. With
    ``batch_size`` smaller than the row count, each step sees a random block of that many rows
    of the ``row_data`` arrays (minibatch ADVI; the model scales its likelihood by its
    ``batch_scale`` data). ``move(means, log_sds)``, for mean-field fits, may edit the
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
            feed = _Minibatches(engine, data, row_data, batch_size, rng)
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
