"""The compiled step of the ADVI engine: one C function per model structure, kept for reuse.

For a PyMC model, :class:`_CompiledADVI` builds the graph of one ADVI step (the negative ELBO
at an antithetic pair of draws, its gradient, the Adam updates and the running average of
the iterates) and compiles it; :func:`_compiled` keeps one such engine per model structure in
a process-wide cache. The optimisation loop that drives the step lives in ``_inference``.

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

What it costs: the first fit of a structure in a process builds its graph and compiles it
(about 1 MB of generated C for a random-intercept step, see ``_COMPILER_FLAGS``) or loads the
compiled module from PyTensor's on-disk cache: for a random-intercept model about 12 s on a
machine's very first fit, about 4 s in a later process. Every later fit of the structure in
the process only swaps its data in. A cached engine keeps its compiled function and its shared
parameter arrays for the life of the process, but no user data between fits
(``release_data``), and serves one fit at a time (its ``lock``).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import Mode
from pytensor.graph.replace import graph_replace
from pytensor.graph.rewriting.utils import rewrite_graph

__all__ = ["compiled_structures"]

_ADAM_BETA1 = 0.9
_ADAM_BETA2 = 0.99
_ADAM_EPS = 1e-8
_POINT_LOG_SD = -50.0  # a point-estimated block: sd exp(-50), i.e. no spread

# Compiler flags for the step's C module, given after PyTensor's own "-O3" and "-g" (the last
# ones win). The module is about 1 MB of generated C for a random-intercept step; g++ takes
# 29 s over it at -O3 with debug information, 15 s at -O2, 9 s at -O2 without debug
# information, and the steps are no slower (300 steps at 50,000 groups: 2.16 s either way).
_COMPILER_FLAGS = "-O2 -g0"


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
