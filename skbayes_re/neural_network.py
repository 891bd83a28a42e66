"""A neural-network mean function with random intercepts, fitted jointly by ADVI."""

from __future__ import annotations

import functools
import numbers
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseBayesianRegressor
from ._validation import seed_from_random_state

__all__ = ["RandomEffectsMLPRegressor"]

_CHUNK_CELLS = 4_000_000  # rows x weight draws x layer width evaluated at once
_WARM_WEIGHT_SD = 0.05  # starting sd of the network weights after the MAP stage
_NOISE_TOLERANCE = 1.25  # a fitted noise sd this far above the linear model's warns
_GROUP_SD_FACTOR = 3.0  # and a group sd this many times off the linear model's


def _activate(values: np.ndarray, activation: str) -> np.ndarray:
    if activation == "tanh":
        return np.tanh(values, out=values)
    if activation == "relu":
        return np.maximum(values, 0.0, out=values)
    if activation == "logistic":
        from scipy.special import expit

        return expit(values, out=values)
    return values


def _check_hidden_layer_sizes(hidden_layer_sizes) -> tuple[int, ...]:
    sizes = (
        [hidden_layer_sizes]
        if isinstance(hidden_layer_sizes, numbers.Integral)
        else list(hidden_layer_sizes)
    )
    for size in sizes:
        if isinstance(size, (bool, np.bool_)) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(
                "hidden_layer_sizes must be a positive integer or a sequence of positive "
                f"integers (one per hidden layer); got {hidden_layer_sizes!r}."
            )
    return tuple(int(size) for size in sizes)


class RandomEffectsMLPRegressor(BaseBayesianRegressor):
    """Multi-layer perceptron plus random intercepts for grouped data, fitted jointly.

    The model, on internally standardised features and target, is
    ``y ~ Normal(alpha + X beta + MLP(X) + sum_k u_k[g_k], sigma)``: a linear part plus a
    perceptron (a linear skip connection, as in wide-and-deep networks), where ``MLP`` has the
    hidden layers ``hidden_layer_sizes`` (each ``act(h @ W_l + b_l)``) and a linear output
    ``h @ w_out``, and the random intercepts are non-centred, ``u_k = sigma_k * z_k``,
    ``z_k ~ Normal(0, 1)``. Priors: ``alpha, beta ~ Normal(0, s)`` as in
    :class:`RandomInterceptRegressor`; ``W_l, w_out ~ Normal(0, 1 / sqrt(alpha_l2))`` where
    ``alpha_l2`` is the ``alpha`` hyperparameter (the L2 penalty ``alpha / 2 * ||W||^2`` of
    :class:`~sklearn.neural_network.MLPRegressor`, read as a Gaussian prior on the
    standardised scale); hidden biases ``~ Normal(0, s)``, ``sigma, sigma_k ~ HalfNormal(s)``
    for ``s = prior_scale``. With the perceptron's output at zero the model is the
    random-intercept linear model, so the network never has to relearn what a linear model
    gets for free, and on data with no non-linear signal it predicts as that model does.

    The fit starts from the random-intercept linear model's closed-form solution and a
    perceptron trained on its residuals by scikit-learn's L-BFGS (the best of three seeded
    starts on four fifths of at most 10,000 rows, kept only if it predicts the other fifth
    better by two standard errors; otherwise the perceptron starts at zero), then refines
    everything jointly by ADVI. From fewer than 30 rows, too few to hold out the rows that
    would show a perceptron helps, the perceptron stays at zero and the fit is the
    random-intercept linear model's exact posterior (with a ``UserWarning``).

    The intercept, the linear part, the group intercepts and scales and the noise always get
    a variational posterior. With ``weights="map"`` (the default, as in a Keras network
    trained inside a variational objective) the perceptron's weights and hidden biases are
    point estimates, optimised in the same ELBO as the variational parameters; with
    ``weights="bayesian"`` they get a mean-field Gaussian posterior too, so predictions carry
    the network's parameter uncertainty (wider away from the training data).

    A group label not seen in ``fit``, or a missing one, gets the population-level prediction
    with the spread of a new group's intercept ``Normal(0, sigma_k)`` added.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(5,)
        Width of each hidden layer. The widths enter the compiled model as data, so networks
        of the same depth share one compiled graph.
    activation : {"identity", "logistic", "tanh", "relu"}, default="tanh"
        Hidden-layer activation (scikit-learn's ``MLPRegressor`` names).
    alpha : float, default=1e-3
        Strength of the L2 penalty on the weights (not on the biases): a
        ``Normal(0, 1 / sqrt(alpha))`` prior on each weight, on the standardised scale.
    weights : {"map", "bayesian"}, default="map"
        Point-estimate the network weights and hidden biases, or give them a variational
        posterior.
    groups : "from_dtype", list of str, list of int, boolean mask or None, default="from_dtype"
        The grouping columns of ``X``; every other column is a network input.
        ``"from_dtype"`` takes the category, object and string columns of a DataFrame
        (a plain array has none, and the model is then a network without random effects).
    method : {"auto", "advi", "fullrank_advi"}, default="auto"
        How the posterior is computed. ``"auto"``: with ``weights="map"``, no
        ``batch_size`` and at most one grouping column, without ADVI: the perceptron is
        fitted by L-BFGS to the residuals of the linear part (the ADVI route's start), then
        the linear part, group intercepts and scales are computed exactly given its output
        (``_models/network_exact.py``; nothing compiled, ``loss_curve_`` empty);
        ``"advi"`` elsewhere. ``"advi"``: mean-field ADVI over everything from that start.
        ``"fullrank_advi"``: a full-rank approximation, which also learns the posterior
        correlations between parameters, at a cost: its step is compiled apart and takes
        about five times as long to compile the first time (sleepstudy's random intercepts:
        33 s against 7 s with an empty PyTensor compile cache, 4 s against 1.6 s with a
        filled one), a step costs O(d^2) for d parameters, group effects included (four
        times mean-field's there), and it is refused above 3,000 parameters. It pays on
        small models whose parameters are strongly correlated a posteriori; compare its
        ``posterior_`` with the default fit's. ``weights="map"`` needs
        ``"advi"``.
    learning_rate : float, default=0.05
        Initial Adam step size on the standardised scale; it is reduced automatically
        as the fit converges.
    max_iter : int, default=10000
        Maximum number of optimisation steps (each uses every row, or ``batch_size`` rows).
    tol : float, default=1e-4
        Convergence tolerance on the windowed negative ELBO, per observation.
    n_posterior_samples : int, default=500
        Posterior draws kept for prediction.
    prior_scale : float, default=2.5
        Scale of the weakly-informative priors on the standardised scale.
    random_state : int, RandomState instance or None, default=None
        Seed of the weight initialisation, optimisation noise and posterior draws.
    verbose : int, default=0
        0 prints nothing; 1 shows a progress bar with the running loss.
    missing_features : {"model", "error"}, default="model"
        What a NaN in a feature column means. This estimator does not model missing
        values: with ``"model"`` they are a ``ValueError`` that says so (use
        ``"error"`` and an imputer in a Pipeline, or a Gaussian linear estimator, which
        models them); ``"error"``: a ``ValueError`` naming the column. NaN in a grouping
        column is a missing label either way; inf is always an error.
    batch_size : int or None, default=None
        Rows per optimisation step (minibatch ADVI): each step evaluates the network on a
        random block of ``batch_size`` rows, its log-likelihood scaled up to the full data,
        so a step's cost no longer grows with the row count. Every row is visited once per
        epoch in a fresh random order, so each group's rows enter the batches in proportion.
        ``None`` uses every row at every step, the better choice below ~100,000 rows.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Posterior-mean coefficients of the linear part on the original scale (the grouping
        columns excluded).
    coefs_ : list of ndarray
        Posterior-mean weight matrices of the perceptron on the original scale:
        ``coefs_[i]`` has shape ``(n_inputs_i, n_outputs_i)``, the last one
        ``(last_hidden_width, 1)``, as in ``MLPRegressor`` (the first layer absorbs the
        feature standardisation).
    intercepts_ : list of ndarray
        Posterior-mean biases on the original scale, the output bias last.
    intercept_ : float
        Posterior mean of the output bias on the original scale (the intercept of the linear
        part and the perceptron together).
    sigma_ : float
        Posterior mean noise standard deviation.
    group_effects_ : dict
        Grouping column (name, or position for arrays) -> ``pandas.Series`` of posterior mean
        intercept offsets indexed by group label.
    group_sd_ : dict
        Grouping column -> posterior mean of that column's group standard deviation.
    loss_curve_ : list of float
        Negative ELBO per iteration.
    n_iter_ : int
        Number of optimisation steps taken.
    posterior_ : arviz.InferenceData
        Stored draws with named dimensions: ``coef`` (the linear part, ``feature``),
        ``coef_<l>`` (``feature`` or ``hidden_<l-1>`` x ``hidden_<l>``), ``bias_<l>``,
        ``coef_out``, ``intercept``, ``sigma`` and the group effects (group labels as
        coordinates). With ``weights="map"`` the perceptron's draws are all equal to the point
        estimate.
    fit_timings_ : dict
        Seconds spent compiling (0 when a compiled model was reused) and optimising.
    n_features_in_ : int
        Number of columns seen during fit, grouping columns included.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of columns seen during fit, when ``X`` has string column names.

    See Also
    --------
    RandomInterceptRegressor : The same random intercepts around a linear mean.
    sklearn.neural_network.MLPRegressor : A point-estimated network without groups.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skbayes_re import RandomEffectsMLPRegressor
    >>> rng = np.random.default_rng(0)
    >>> store = rng.integers(0, 20, size=1000)
    >>> effect = rng.normal(scale=0.5, size=20)
    >>> X = pd.DataFrame({"price": rng.uniform(-2, 2, size=1000),
    ...                   "store": pd.Categorical(store)})
    >>> y = np.sin(2 * X["price"]) + effect[store] + rng.normal(scale=0.2, size=1000)
    >>> model = RandomEffectsMLPRegressor(hidden_layer_sizes=(8,), random_state=0).fit(X, y)
    >>> bool(model.score(X, y) > 0.9)
    True
    >>> effects = model.group_effects_["store"]
    >>> bool(np.corrcoef(effects, effect[effects.index.astype(int)])[0, 1] > 0.95)
    True
    >>> new = pd.DataFrame({"price": [0.5, 0.5], "store": pd.Categorical([3, 99])})
    >>> mean, std = model.predict(new, return_std=True)
    >>> bool(std[1] > std[0])  # an unseen store gets the population prediction, wider
    True
    """

    _parameter_constraints: dict = {
        **BaseBayesianRegressor._parameter_constraints,
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="neither")],
        "weights": [StrOptions({"map", "bayesian"})],
        "groups": [str, "array-like", None],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        *,
        hidden_layer_sizes=(5,),
        activation="tanh",
        alpha=1e-3,
        weights="map",
        groups="from_dtype",
        method="auto",
        learning_rate=0.05,
        max_iter=10_000,
        tol=1e-4,
        n_posterior_samples=500,
        prior_scale=2.5,
        random_state=None,
        verbose=0,
        missing_features="model",
        batch_size=None,
    ):
        self.batch_size = batch_size
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.weights = weights
        self.groups = groups
        self.method = method
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.n_posterior_samples = n_posterior_samples
        self.prior_scale = prior_scale
        self.random_state = random_state
        self.verbose = verbose
        self.missing_features = missing_features

    def _group_selection(self):
        return self.groups

    # ------------------------------------------------------------------ hooks
    def _inference_spec(self, features, target, codes, n_groups, weights, offset) -> dict:
        from . import _models

        sizes = _check_hidden_layer_sizes(self.hidden_layer_sizes)
        if self.weights == "map" and self._engine_method() != "advi":
            raise ValueError(
                "weights='map' point-estimates the network inside mean-field ADVI; use "
                "method='advi', or weights='bayesian' with method='fullrank_advi'."
            )
        self._hidden_sizes = sizes
        # NumPy's column means round differently for C- and Fortran-ordered input (a
        # DataFrame gives the latter), and a network's optimisation amplifies last-bit
        # differences in its data. Rounding the standardised features to 1e-10 (far below any
        # statistical precision) makes a fit independent of the input's memory layout.
        features = self._x_scaler.transform(features)  # a new C-ordered array: round in place
        np.round(features, 10, out=features)
        data = _models.mlp_re_data(
            features, target, codes, n_groups, sizes, self.prior_scale, self.alpha, weights
        )
        point = frozenset(_models.mlp_weight_names(len(sizes))) if self.weights == "map" else None
        self._linear_reference = _models.mlp_linear_reference(data)
        if _models.use_few_rows(data, [1] * len(n_groups)):
            return self._few_rows_spec(data)
        if self._exact_route(data):
            return self._exact_spec(data)
        return {
            "key": _models.mlp_re_structure(data, self.activation, self.weights),
            "build": functools.partial(_models.build_mlp_re_model, activation=self.activation),
            "data": data,
            "init": _models.mlp_re_init(data, self.activation, self.alpha),
            "point": point or frozenset(),
            "row_data": _models.mlp_row_data(data),
            "batch_size": self.batch_size,
            "move": _models.group_scale_move(self.prior_scale),
        }

    def _exact_route(self, data: dict) -> bool:
        """``method="auto"`` with point-estimated weights, no minibatches and at most one
        grouping column: the perceptron by L-BFGS, the rest exactly (``network_exact.py``)."""
        from . import _models

        return (
            self.method == "auto"
            and self.weights == "map"
            and self.batch_size is None
            and _models.use_network_exact(data)
        )

    def _exact_spec(self, data: dict) -> dict:
        from . import _models

        seed = seed_from_random_state(self.random_state)
        return {
            "data": data,
            "build": functools.partial(_models.build_mlp_re_model, activation=self.activation),
            "posterior": lambda n_draws: _models.network_exact_draws(
                data, self.activation, self.alpha, n_draws, seed
            ),
        }

    def _few_rows_spec(self, data: dict) -> dict:
        """Fewer rows than a perceptron can be checked on: the random-intercept linear
        model's exact posterior, the perceptron at zero (``mlp_few_rows_draws``)."""
        from . import _models

        warnings.warn(
            f"With {float(data['n_obs']):g} rows (fewer than {_models.FEW_ROWS}) the network "
            "cannot be told apart from its linear part: its perceptron stays at zero and the "
            "fit is the random-intercept linear model's exact posterior, as "
            "RandomInterceptRegressor gives.",
            UserWarning,
            stacklevel=5,  # the caller of fit
        )
        self._linear_reference = None  # the fit is that model's: nothing to check
        seed = seed_from_random_state(self.random_state)
        return {
            "data": data,
            "build": functools.partial(_models.build_mlp_re_model, activation=self.activation),
            "posterior": lambda n_draws: _models.mlp_few_rows_draws(data, n_draws, seed),
        }

    def _run_engine(self, spec: dict, n_obs: int):
        """``weights="bayesian"``: fit ``weights="map"`` first, then the full variational
        posterior from that point (the network weights starting with sd ``_WARM_WEIGHT_SD``).

        Mean-field ADVI from random weights often stalls with a near-constant network, its
        weight noise drowning the signal; started at the joint MAP network it does not.
        """
        if self.weights != "bayesian":
            return super()._run_engine(spec, n_obs)
        from dataclasses import replace

        from ._inference import fit_advi
        from ._models import mlp_weight_names

        names = frozenset(mlp_weight_names(len(self._hidden_sizes)))
        seeds = np.random.default_rng(seed_from_random_state(self.random_state)).integers(
            np.iinfo(np.int32).max, size=2
        )
        common = {
            "n_obs": n_obs,
            "learning_rate": self.learning_rate,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "verbose": self.verbose,
            "row_data": spec["row_data"],
            "batch_size": spec["batch_size"],
            "move": spec["move"],
        }
        first = fit_advi(
            (*spec["key"][:-1], "map"),
            spec["build"],
            spec["data"],
            method="advi",
            n_draws=1,
            random_state=int(seeds[0]),
            init=spec["init"],
            point_blocks=names,
            **common,
        )

        def warm_start(shapes, rng):
            sds = {
                name: np.full(shapes[name], _WARM_WEIGHT_SD) if name in names else sd
                for name, sd in first.sd.items()
            }
            return dict(first.mean), sds

        second = fit_advi(
            spec["key"],
            spec["build"],
            spec["data"],
            method=self._engine_method(),
            n_draws=self.n_posterior_samples,
            random_state=int(seeds[1]),
            init=warm_start,
            **common,
        )
        timings = {
            name: first.timings.get(name, 0.0) + second.timings.get(name, 0.0)
            for name in {**first.timings, **second.timings}
        }
        return replace(
            second,
            loss_curve=[*first.loss_curve, *second.loss_curve],
            n_iter=first.n_iter + second.n_iter,
            timings=timings,
        )

    def _store_fit(self, draws: dict, n_seen: list[int]) -> dict:
        from ._models import mlp_re_to_original, mlp_weight_names

        n_layers = len(self._hidden_sizes)
        self._check_against_linear_model(draws, n_seen)
        if self.weights == "map":  # one point estimate, kept with a draw axis of length 1
            for name in mlp_weight_names(n_layers):
                draws[name] = draws[name].mean(axis=0, keepdims=True)
        kept = mlp_re_to_original(draws, self._x_scaler, self._y_scaler, n_layers, n_seen)
        self.coef_ = kept["coef"].mean(axis=0)
        self.coefs_ = [coef.mean(axis=0) for coef in kept["coefs"]]
        self.intercepts_ = [bias.mean(axis=0) for bias in kept["intercepts"]]
        self.intercept_ = float(self.intercepts_[-1][0])
        return kept

    def _check_against_linear_model(self, draws: dict, n_seen: list[int]) -> None:
        """Warn when the fit is implausible beside the random-intercept linear model that the
        network contains: a noise sd well above that model's (the network explains less than
        its own linear part could), or a group sd off by a factor of three."""
        reference = vars(self).pop("_linear_reference")
        if reference is None or np.all(self._y_scaler.constant):  # fitted at once, exactly
            return
        noise, group_sds = reference
        fitted = float(np.mean(draws["sigma"]))
        problems = []
        if fitted > _NOISE_TOLERANCE * noise:
            problems.append(f"noise sd {fitted:.3g} against {noise:.3g}")
        for k, (name, reference) in enumerate(zip(self._group_names, group_sds, strict=True)):
            group_sd = float(np.mean(draws[f"sigma_group_{k}"]))
            informative = n_seen[k] >= 5 and reference > 0.05 * noise
            if informative and not 1 / _GROUP_SD_FACTOR < group_sd / reference < _GROUP_SD_FACTOR:
                problems.append(f"group sd of {name!r} {group_sd:.3g} against {reference:.3g}")
        if problems:
            warnings.warn(
                "The network's fit is implausible beside the random-intercept linear model it "
                f"contains (standardised scale: {'; '.join(problems)}). The optimisation may "
                "have diverged or stalled: try a smaller learning_rate or another "
                "random_state, or compare with RandomInterceptRegressor.",
                ConvergenceWarning,
                stacklevel=6,  # the caller of fit
            )

    def _mean_function(self, features: np.ndarray) -> np.ndarray:
        coefs, intercepts = self._draws["coefs"], self._draws["intercepts"]
        n_weight_draws = coefs[0].shape[0]
        widest = max(coef.shape[-1] for coef in coefs)
        step = max(1, _CHUNK_CELLS // (n_weight_draws * max(widest, features.shape[1], 1)))
        pieces = []
        for start in range(0, features.shape[0], step):
            hidden = features[None, start : start + step, :]
            for coef, bias in zip(coefs[:-1], intercepts[:-1], strict=True):
                hidden = _activate(hidden @ coef + bias[:, None, :], self.activation)
            pieces.append((hidden @ coefs[-1])[..., 0].T)  # (rows, weight draws)
        network = np.concatenate(pieces) if pieces else np.zeros((0, n_weight_draws))
        linear = features @ self._draws["coef"].T  # (rows, draws)
        return linear + network + intercepts[-1][:, 0][None, :]

    def _posterior_variables(self):
        names = self._fixed_feature_names()
        coefs, intercepts = self._draws["coefs"], self._draws["intercepts"]
        n_draws = self._draws["sigma"].shape[0]
        values, dims, coords = {}, {}, {"feature": names}
        previous = "feature"
        for layer, (coef, bias) in enumerate(zip(coefs[:-1], intercepts[:-1], strict=True)):
            dim = f"hidden_{layer}"
            coords[dim] = list(range(coef.shape[-1]))
            values[f"coef_{layer}"] = _with_draws(coef, n_draws)
            values[f"bias_{layer}"] = _with_draws(bias, n_draws)
            dims[f"coef_{layer}"] = [previous, dim]
            dims[f"bias_{layer}"] = [dim]
            previous = dim
        values["coef_out"] = _with_draws(coefs[-1][..., 0], n_draws)
        dims["coef_out"] = [previous]
        values["coef"] = self._draws["coef"]
        dims["coef"] = ["feature"]
        values["intercept"] = intercepts[-1][:, 0]
        return values, dims, coords


def _with_draws(values: np.ndarray, n_draws: int) -> np.ndarray:
    """Repeat a point estimate (draw axis of length 1) over the posterior draws."""
    return np.broadcast_to(values, (n_draws, *values.shape[1:])).copy()
