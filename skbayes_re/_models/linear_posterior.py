"""The Gaussian linear model's posterior given the noise, and the noise's exact posterior
(NumPy only): the formulas of ``linear.py``, whose ADVI route fits ``log sigma`` and whose
exact route (``exact.py``, ``method="auto"``) centres the noise's grid at the least-squares
start instead. Nothing here imports PyMC.
"""

from __future__ import annotations

import numpy as np

from .statistics import LOG_2PI

__all__ = [
    "MODEL_DATA",
    "exact_noise_draws",
    "integrated_loglik",
    "linear_complete_draws",
    "linear_data",
    "linear_exact_draws",
    "linear_init",
]

_NULL_EIGENVALUE = 1e-12  # relative to the largest: directions the rows do not inform


def linear_data(statistics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's data from the Gaussian model's sufficient statistics (``n_obs``, ``yty``,
    ``wty``, ``wtw``, ``prior_scale``; see ``statistics.py``): the eigenvalues of ``W'W``,
    the projections ``c`` of ``W'y`` on its eigenvectors, the eigenvectors, and the
    least-squares residual sum of squares."""
    eigenvalues, vectors = np.linalg.eigh(statistics["wtw"])
    informed = eigenvalues > _NULL_EIGENVALUE * max(float(eigenvalues[-1]), 1e-300)
    eigenvalues = np.where(informed, eigenvalues, 0.0)
    projections = np.where(informed, vectors.T @ statistics["wty"], 0.0)
    explained = np.sum(projections[informed] ** 2 / eigenvalues[informed])
    rss_min = max(float(statistics["yty"]) - float(explained), 0.0)
    return {
        "n_obs": np.asarray(float(statistics["n_obs"])),
        "prior_scale": np.asarray(float(statistics["prior_scale"])),
        "eigenvalues": eigenvalues,
        "inverse_eigenvalues": np.divide(
            1.0, eigenvalues, out=np.zeros_like(eigenvalues), where=informed
        ),
        "projections": projections,
        "eigenvectors": vectors,
        "rss_min": np.asarray(rss_min),
    }


MODEL_DATA = (
    "n_obs",
    "prior_scale",
    "eigenvalues",
    "inverse_eigenvalues",
    "projections",
    "rss_min",
)


def integrated_loglik(xp, sigma, data):
    """``log p(y | sigma)`` with the coefficients integrated out, written once for NumPy and
    PyTensor (``xp``: ``numpy`` or ``pytensor.tensor``; ``sigma`` a scalar, or a column of
    values for NumPy; sums over the eigenvalues keep their axis). A direction the rows do not
    inform (eigenvalue 0, projection 0) adds nothing."""
    eigenvalues, projections = data["eigenvalues"], data["projections"]
    delta = sigma**2 / data["prior_scale"] ** 2
    shrunk = projections**2 * data["inverse_eigenvalues"] * delta / (eigenvalues + delta)
    rss = data["rss_min"] + xp.sum(shrunk, axis=-1, keepdims=True)
    n_obs = data["n_obs"]
    return (
        -0.5 * n_obs * LOG_2PI
        - n_obs * xp.log(sigma)
        - 0.5 * xp.sum(xp.log1p(eigenvalues / delta), axis=-1, keepdims=True)
        - rss / (2.0 * sigma**2)
    )


def exact_noise_draws(data, log_sigma_draws: np.ndarray, rng) -> np.ndarray:
    """Draws of ``sigma`` from its exact posterior, by inverse CDF on a grid of ``log sigma``
    laid around the variational fit (its draws) and widened until the density at both
    ends is below ``exp(-40)`` of its peak.

    With few rows the posterior of ``log sigma`` is skewed, with a long right tail (from five
    rows and two features, its 95% quantile lies 1.2 above a Gaussian fit's), so a Gaussian
    approximation, even of this one parameter, would give intervals too narrow; in one
    dimension the exact posterior costs a few thousand evaluations of a closed form.
    """
    return noise_draws_around(
        data,
        float(np.mean(log_sigma_draws)),
        float(np.std(log_sigma_draws)),
        len(log_sigma_draws),
        rng,
    )


def noise_draws_around(data, centre: float, spread: float, n_draws: int, rng) -> np.ndarray:
    """:func:`exact_noise_draws` from a grid laid ten ``spread`` either side of ``centre``."""
    half_width = 10.0 * max(spread, 1e-3)
    low, high = centre - half_width, centre + half_width
    for _ in range(12):
        grid = np.linspace(low, high, 2049)
        log_density = _log_posterior(data, grid)
        peak = np.max(log_density)
        widen_low, widen_high = log_density[0] > peak - 40.0, log_density[-1] > peak - 40.0
        if not (widen_low or widen_high):
            break
        width = high - low
        low, high = low - width * widen_low, high + width * widen_high
    grid = np.linspace(low, high, 20_001)
    log_density = _log_posterior(data, grid)
    density = np.exp(log_density - np.max(log_density))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]))])
    return np.exp(np.interp(rng.uniform(size=n_draws) * cdf[-1], cdf, grid))


def _log_posterior(data, log_sigma: np.ndarray) -> np.ndarray:
    """Log posterior density of ``log sigma`` up to a constant: likelihood, HalfNormal prior
    and the log transform's Jacobian."""
    sigma = np.exp(log_sigma)
    data = {name: np.asarray(data[name], dtype=float) for name in MODEL_DATA}
    loglik = integrated_loglik(np, sigma[:, None], data)[:, 0]
    return loglik - sigma**2 / (2.0 * data["prior_scale"] ** 2) + log_sigma


def linear_start(data: dict[str, np.ndarray]) -> tuple[float, float]:
    """``log sigma`` at the least-squares residual variance on the residual degrees of
    freedom (the prior's scale when the rows fit exactly), and the curvature's sd."""
    n_obs = float(data["n_obs"])
    n_coefs = int(np.count_nonzero(data["eigenvalues"]))
    dof = n_obs - n_coefs
    noise_var = float(data["rss_min"]) / dof if dof >= 1 else 1.0
    mean = 0.5 * np.log(max(noise_var, 1e-4))
    return float(mean), float(1.0 / np.sqrt(2.0 * max(dof, 1.0)))


def linear_exact_draws(statistics: dict, n_draws: int, seed: int) -> tuple[dict, int]:
    """The linear model's posterior without ADVI: the noise's grid (:func:`exact_noise_draws`)
    laid around the least-squares start instead of a variational fit, then each draw of the
    coefficients from its exact conditional. Also returns 1 (one pass, no iterations)."""
    data = linear_data(statistics)
    centre, spread = linear_start(data)
    rng = np.random.default_rng((seed, 1))
    draws = {"sigma": noise_draws_around(data, centre, spread, n_draws, rng)}
    _add_coefficient_draws(data, draws, rng)
    return draws, 1


def linear_init(data: dict[str, np.ndarray]):
    """The engine's initialiser: :func:`linear_start`'s mean and sd."""
    mean, sd = linear_start(data)

    def init(shapes: dict, rng: np.random.Generator):
        return {"sigma_log__": np.asarray(mean)}, {"sigma_log__": np.asarray(sd)}

    return init


def linear_complete_draws(data: dict[str, np.ndarray], seed: int):
    """The fit's last step: each draw of the coefficients from its exact conditional given
    that draw of ``sigma`` (``alpha`` and, with features, ``beta`` added to ``draws``)."""

    def complete(draws: dict) -> None:
        rng = np.random.default_rng((seed, 1))  # a stream apart from the engine's
        sigma = np.asarray(draws["sigma"], dtype=float)
        if np.all(sigma > 0):  # (a constant target's fit has sigma 0 and nothing to draw)
            sigma = draws["sigma"] = exact_noise_draws(data, np.log(sigma), rng)
        _add_coefficient_draws(data, draws, rng)

    return complete


def _add_coefficient_draws(data: dict, draws: dict, rng) -> None:
    """Each draw of the coefficients from its exact conditional given that of ``sigma``."""
    sigma = draws["sigma"]
    eigenvalues, projections = data["eigenvalues"], data["projections"]
    delta = (sigma**2 / float(data["prior_scale"]) ** 2)[:, None]
    precision = eigenvalues[None, :] + delta  # of the rotated coefficients, times sigma^-2
    fitted = np.divide(projections, precision, out=np.zeros_like(precision), where=precision > 0)
    variance = np.divide(
        sigma[:, None] ** 2, precision, out=np.zeros_like(precision), where=precision > 0
    )
    # Mean and noise through Q f(lambda) Q', a function of W'W alone: rounding that
    # rotates the eigenvectors of (near) equal eigenvalues leaves the draws unchanged.
    vectors = data["eigenvectors"]
    noise = rng.standard_normal(precision.shape) @ vectors
    coefs = (fitted + np.sqrt(variance) * noise) @ vectors.T
    draws["alpha"] = coefs[:, 0]
    if coefs.shape[1] > 1:
        draws["beta"] = coefs[:, 1:]
