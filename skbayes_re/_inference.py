"""The ADVI engine shared by every estimator.

Automatic differentiation variational inference (Kucukelbir et al., 2017) on a PyMC model: a
Gaussian approximation (mean-field or full-rank) over the model's unconstrained parameters,
reparameterised Monte Carlo gradients of the ELBO, Adam updates.

Cost design:

* One compiled step per model *structure*. The step function is compiled once per structure
  key (e.g. number of features and grouping factors) and reused for every later fit: new data
  of any row or group count are swapped into the model's ``pm.Data`` containers, whose shapes
  stay symbolic, so nothing is recompiled.
* One Python call per iteration. The step function draws nothing and returns only the loss;
  Adam moments and an exponential moving average of the iterates live in shared variables
  updated inside the compiled graph. The Monte Carlo noise is drawn by NumPy from the fit's
  own seeded generator, so a fit is reproducible bit for bit.
* Stopping. Every ``window`` iterations the mean loss of the last window is compared with the
  previous one; the fit has converged when the change per observation is below ``tol``, or
  when it is within its own Monte Carlo noise. A short polishing phase at a tenth of the
  learning rate follows, and the averaged iterates are returned.
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
from pytensor.graph.replace import graph_replace, vectorize_graph
from sklearn.exceptions import ConvergenceWarning

__all__ = ["ADVIResult", "compiled_structures", "fit_advi"]

_ADAM_BETA1 = 0.9
_ADAM_BETA2 = 0.999
_ADAM_EPS = 1e-8
_INIT_LOG_SD = float(np.log(0.1))
_MAX_FULLRANK_DIM = 3000
_LR_TO_SD = 0.25


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


def _adam(param, grad, lr, t):
    first = pytensor.shared(np.zeros((1,) * param.ndim), name=f"{param.name}_m")
    second = pytensor.shared(np.zeros((1,) * param.ndim), name=f"{param.name}_v")
    first_new = _ADAM_BETA1 * first + (1 - _ADAM_BETA1) * grad
    second_new = _ADAM_BETA2 * second + (1 - _ADAM_BETA2) * grad**2
    step = lr * (first_new / (1 - _ADAM_BETA1**t)) / (
        pt.sqrt(second_new / (1 - _ADAM_BETA2**t)) + _ADAM_EPS
    )
    return [first, second], [(first, first_new), (second, second_new)], param - step


class _CompiledADVI:
    """A model's ELBO step function, compiled once and reused across fits."""

    def __init__(self, model: pm.Model, method: str, n_mc: int):
        self.model = model
        self.method = method
        self.n_mc = n_mc
        self.lock = threading.Lock()
        self.data_vars = {var.name: var for var in model.data_vars}
        value_vars = list(model.value_vars)
        self.blocks = [_Block(v.name, _transform_kind(model, v)) for v in value_vars]
        rv_shapes = [model.values_to_rvs[v].shape for v in value_vars]
        self._shape_fn = pytensor.function([], rv_shapes, on_unused_input="ignore")
        theta = pt.vector("theta")
        logp = self._logp_of_flat(model, value_vars, rv_shapes, theta)
        self._compile_step(theta, logp)

    @staticmethod
    def _logp_of_flat(model, value_vars, rv_shapes, theta):
        replacements, offset = {}, 0
        for value_var, shape in zip(value_vars, rv_shapes, strict=True):
            size = pt.prod(shape)
            replacements[value_var] = theta[offset : offset + size].reshape(
                shape, ndim=value_var.ndim
            )
            offset = offset + size
        return graph_replace([model.logp()], replacements, strict=False)[0]

    def _compile_step(self, theta, logp):
        self.mu = pytensor.shared(np.zeros(1), name="mu")
        eps = pt.matrix("eps")
        if self.method == "advi":
            self.scale_param = pytensor.shared(np.zeros(1), name="log_sd")
            draws = self.mu + pt.exp(self.scale_param) * eps
            entropy = pt.sum(self.scale_param)
            params = [self.mu, self.scale_param]
        else:
            # Row-scaled Cholesky factor: L = diag(exp(d)) (I + strictly-lower N), so the
            # off-diagonal parameters are dimensionless and share one learning rate with d.
            self.scale_param = pytensor.shared(np.zeros((1, 1)), name="chol")
            diag = pt.diagonal(self.scale_param)
            unit = pt.tril(self.scale_param, -1) + pt.eye(diag.shape[0])
            draws = self.mu + eps @ (pt.exp(diag)[:, None] * unit).T
            entropy = pt.sum(diag)
            params = [self.mu, self.scale_param]
        logp_draws = vectorize_graph(logp, {theta: draws})
        loss = -(pt.mean(logp_draws) + entropy)
        grads = pytensor.grad(loss, params)
        self.lr = pytensor.shared(np.float64(0.01), name="learning_rate_mean")
        self.lr_scale = pytensor.shared(np.float64(0.01), name="learning_rate_scale")
        self.ema_decay = pytensor.shared(np.float64(0.99), name="ema_decay")
        self.t = pytensor.shared(np.float64(0.0), name="t")
        t_new = self.t + 1.0
        updates = [(self.t, t_new)]
        self.state, self.ema = [], []
        for param, grad, lr in zip(params, grads, [self.lr, self.lr_scale], strict=True):
            state, moment_updates, param_new = _adam(param, grad, lr, t_new)
            ema = pytensor.shared(np.zeros((1,) * param.ndim), name=f"{param.name}_ema")
            self.state += state
            self.ema.append(ema)
            updates += moment_updates
            updates += [
                (param, param_new),
                (ema, self.ema_decay * ema + (1 - self.ema_decay) * param_new),
            ]
        self.step = pytensor.function([eps], loss, updates=updates)
        self.step.trust_input = True

    def set_data(self, data: dict[str, np.ndarray]) -> None:
        missing = set(self.data_vars) - set(data)
        if missing:
            raise KeyError(f"Model data not supplied: {sorted(missing)}")
        for name, var in self.data_vars.items():
            var.set_value(np.asarray(data[name], dtype=var.dtype))
        for block, shape in zip(self.blocks, self._shape_fn(), strict=True):
            block.shape = tuple(int(s) for s in shape)

    @property
    def dim(self) -> int:
        return sum(block.size for block in self.blocks)

    def reset(self, init_mean: np.ndarray, learning_rate: float) -> None:
        dim = self.dim
        self.mu.set_value(init_mean.astype(np.float64))
        if self.method == "advi":
            scale0 = np.full(dim, _INIT_LOG_SD)
        else:
            scale0 = np.diag(np.full(dim, _INIT_LOG_SD))
        self.scale_param.set_value(scale0)
        zero_like = [init_mean, init_mean, scale0, scale0]
        for var, template in zip(self.state, zero_like, strict=True):
            var.set_value(np.zeros_like(template, dtype=np.float64))
        for var, template in zip(self.ema, [init_mean, scale0], strict=True):
            var.set_value(np.zeros_like(template, dtype=np.float64))
        self.t.set_value(np.float64(0.0))
        self.lr.set_value(np.float64(learning_rate))
        self.lr_scale.set_value(np.float64(learning_rate))

    def current_sd(self) -> np.ndarray:
        scale = self.scale_param.get_value()
        return np.exp(scale if self.method == "advi" else np.diag(scale))

    def averaged_params(self) -> tuple[np.ndarray, np.ndarray]:
        """Bias-corrected moving averages of the iterates (mean, scale parameter)."""
        n_steps = float(self.t.get_value())
        mu, scale = (var.get_value() for var in self.ema)
        correction = 1.0 - float(self.ema_decay.get_value()) ** n_steps
        if correction <= 0:
            return self.mu.get_value(), self.scale_param.get_value()
        return mu / correction, scale / correction


_CACHE: dict[Hashable, _CompiledADVI] = {}
_CACHE_LOCK = threading.Lock()


def compiled_structures() -> int:
    """How many model structures have a compiled step function in this process."""
    return len(_CACHE)


def _compiled(key, build_model, data, method, n_mc) -> tuple[_CompiledADVI, bool]:
    full_key = (key, method, n_mc)
    with _CACHE_LOCK:
        engine = _CACHE.get(full_key)
        if engine is None:
            engine = _CompiledADVI(build_model(data), method, n_mc)
            _CACHE[full_key] = engine
            return engine, True
    return engine, False


class _Progress:
    """A one-line progress bar on stderr with the running loss, refreshed at most 10 Hz."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled
        self.start = self.last = time.perf_counter()

    def update(self, iteration: int, loss: float, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (not force and now - self.last < 0.1):
            return
        self.last = now
        done = int(30 * iteration / self.total)
        bar = "#" * done + "-" * (30 - done)
        sys.stderr.write(
            f"\rADVI [{bar}] {iteration}/{self.total} | loss {loss:.4g} | {now - self.start:.1f}s"
        )
        sys.stderr.flush()

    def close(self, iteration: int, loss: float, converged: bool) -> None:
        if self.enabled:
            self.update(iteration, loss, force=True)
            sys.stderr.write(" | converged\n" if converged else " | stopped at max_iter\n")
            sys.stderr.flush()


def _window_converged(losses: np.ndarray, window: int, tol: float, n_obs: float) -> bool:
    previous, last = losses[-2 * window : -window], losses[-window:]
    change = abs(previous.mean() - last.mean())
    noise = np.sqrt((previous.var() + last.var()) / window)
    return change <= tol * n_obs or change <= noise


def _precise_enough(engine) -> bool:
    """Adam's steps on the means scale with the learning rate, not with the posterior sd:
    keep dividing it until it is small beside the narrowest posterior sds."""
    sd = engine.current_sd()
    return sd.size == 0 or engine.lr.get_value() <= _LR_TO_SD * np.quantile(sd, 0.1)


def _optimise(engine, rng, max_iter, tol, n_obs, window, progress) -> tuple[list, bool]:
    dim = engine.dim
    losses = np.empty(max_iter)
    converged, phase_start, iteration = False, 0, 0
    while iteration < max_iter:
        losses[iteration] = engine.step(rng.standard_normal((engine.n_mc, dim)))
        iteration += 1
        progress.update(iteration, losses[iteration - 1])
        in_phase = iteration - phase_start
        if in_phase < 2 * window or in_phase % window:
            continue
        if _window_converged(losses[phase_start:iteration], window, tol, n_obs):
            if _precise_enough(engine):
                converged = True
                break
            engine.lr.set_value(engine.lr.get_value() / 10.0)
            phase_start = iteration
    if not np.all(np.isfinite(losses[:iteration])):
        raise FloatingPointError(
            "The ELBO became non-finite during optimisation; try a smaller learning_rate."
        )
    return losses[:iteration].tolist(), converged


def _split(blocks: list[_Block], flat: np.ndarray) -> dict[str, np.ndarray]:
    out, offset = {}, 0
    for block in blocks:
        part = flat[..., offset : offset + block.size]
        out[block.name] = part.reshape(flat.shape[:-1] + block.shape)
        offset += block.size
    return out


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


def _draw(engine, mean, scale, n_draws, rng) -> np.ndarray:
    eps = rng.standard_normal((n_draws, mean.shape[0]))
    if engine.method == "advi":
        return mean + np.exp(scale) * eps
    unit = np.tril(scale, -1) + np.eye(scale.shape[0])
    return mean + eps @ (np.exp(np.diag(scale))[:, None] * unit).T


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
    n_mc: int = 1,
    window: int = 100,
) -> ADVIResult:
    """Fit ``build_model(data)`` by ADVI and draw from the approximation.

    ``key`` names the model structure: fits with equal keys share one compiled step function,
    whatever their data sizes. ``init`` may return starting means for some parameter blocks
    (by value-variable name) given their shapes and a generator.
    """
    timings = {}
    start = time.perf_counter()
    engine, built = _compiled(key, build_model, data, method, n_mc)
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
        engine.reset(_initial_mean(engine.blocks, init, rng), learning_rate)
        progress = _Progress(max_iter, verbose > 0)
        start = time.perf_counter()
        losses, converged = _optimise(engine, rng, max_iter, tol, n_obs, window, progress)
        timings["optimise"] = time.perf_counter() - start
        progress.close(len(losses), losses[-1], converged)
        mean, scale = engine.averaged_params()
        blocks = [_Block(b.name, b.transform, b.shape) for b in engine.blocks]
    if not converged:
        warnings.warn(
            f"ADVI stopped at max_iter={max_iter} before the ELBO converged (tol={tol}); "
            "increase max_iter or learning_rate.",
            ConvergenceWarning,
            stacklevel=3,
        )
    draws = _constrain(blocks, _split(blocks, _draw(engine, mean, scale, n_draws, rng)))
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


def _initial_mean(blocks, init, rng) -> np.ndarray:
    starts = init({b.name: b.shape for b in blocks}, rng) if init is not None else {}
    parts = [np.asarray(starts.get(b.name, np.zeros(b.shape)), float).ravel() for b in blocks]
    return np.concatenate(parts) if parts else np.zeros(0)
