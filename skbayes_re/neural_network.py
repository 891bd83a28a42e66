"""A neural-network mean function with random intercepts, fitted jointly by ADVI."""

from __future__ import annotations

import functools
import numbers
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseBayesianRegressor, LikelihoodMixin
from ._linear_base import per_row_arrays
from ._network_draws import (
    implausible_beside_linear_model,
    network_mean,
    network_posterior_variables,
)
from ._validation import seed_from_random_state

__all__ = ["RandomEffectsMLPRegressor"]

_WARM_WEIGHT_SD = 0.05  # starting sd of the network weights after the MAP stage


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


class RandomEffectsMLPRegressor(LikelihoodMixin, BaseBayesianRegressor):
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

    With ``likelihood`` other than ``"gaussian"`` the same mean function is the linear
    predictor of that family, ``y ~ Family(eta, theta)`` with ``eta = alpha + X beta +
    MLP(X) + offset + sum_k u_k[g_k]`` (the log of the mean for counts; the location for
    Student-t noise, whose scale and degrees of freedom are learned), as in
    :class:`RandomInterceptRegressor`: written per row (``_models/network_glmm.py``), in
    minibatches beyond 200,000 rows, and started from the linear model's fit (the Laplace
    mode for counts) and a perceptron fitted by L-BFGS to its working residuals. There is
    no exact route: ``method="auto"`` is mean-field ADVI. ``predict`` is the posterior mean
    of ``y`` (for counts, of ``exp(eta)``), and intervals and ``sample_y`` come from the
    family.

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
        ``None`` uses every row at every step, the better choice below ~100,000 rows
        (beyond 200,000 rows a non-Gaussian likelihood takes batches of 50,000).
    likelihood : {"gaussian", "student_t", "poisson", "negative_binomial"}, \
            default="gaussian"
        The family of ``y`` given its mean: Gaussian noise, Student-t noise (heavy tails,
        degrees of freedom learned), or counts with a log link (negative binomial:
        dispersion learned). Count families need non-negative ``y``.
    offset : str, int or None, default=None
        A column of ``X`` added to the linear predictor with coefficient 1 (log exposure
        for counts), not a network input, as in :class:`RandomInterceptRegressor`.

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
        Posterior mean noise standard deviation (Gaussian and Student-t likelihoods).
    nu_ : float
        Posterior mean degrees of freedom (``likelihood="student_t"``).
    dispersion_ : float
        Posterior mean dispersion (``likelihood="negative_binomial"``: variance
        ``mu + mu^2 / dispersion``).
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
        **LikelihoodMixin._parameter_constraints,
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
        likelihood="gaussian",
        offset=None,
    ):
        self.batch_size = batch_size
        self.likelihood = likelihood
        self.offset = offset
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
        if self.likelihood != "gaussian":
            return self._per_row_spec(features, target, codes, n_groups, weights, offset)
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

    def _per_row_spec(self, features, target, codes, n_groups, weights, offset) -> dict:
        """A likelihood without sufficient statistics: the network's per-row model
        (``_models/network_glmm.py``), in minibatches beyond ``MINIBATCH_ROWS`` rows (of
        ``batch_size`` rows when given)."""
        from . import _models

        family = _models.family_named(self.likelihood)
        if offset is not None:
            offset = offset / float(self._y_scaler.scale)
        features, target, codes, offset, weights, minibatch = per_row_arrays(
            self, features, target, codes, offset, weights, family.merges_rows
        )
        np.round(features, 10, out=features)  # as the Gaussian route's (see above)
        data = _models.mlp_glmm_data(
            *(features, target, codes, n_groups, offset, weights),
            *(self.prior_scale, family, self._hidden_sizes, self.alpha),
        )
        seed = seed_from_random_state(self.random_state)
        start = _models.mlp_glmm_start(data, family.name, self.activation, self.alpha, seed)
        data = _models.mark_centred_glmm(data, start)
        self._linear_reference = (None, _start_group_sds(start[0], len(codes)))
        point = _models.mlp_weight_names(len(self._hidden_sizes)) if self.weights == "map" else ()
        return {
            "key": _models.mlp_glmm_structure(data, family.name, self.activation, self.weights),
            "build": functools.partial(
                _models.build_mlp_glmm, family_name=family.name, activation=self.activation
            ),
            "data": data,
            "init": _models.glmm_init(data, start),
            "point": frozenset(point),
            "move": _models.group_scale_move(self.prior_scale),
            "complete": _models.glmm_complete_draws(data),
            "row_data": _models.glmm_row_data(data) if minibatch else (),
            "rows_shuffled": minibatch,
            "batch_size": (self.batch_size or _models.MINIBATCH_SIZE) if minibatch else None,
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
        from ._inference import fit_advi_from_point
        from ._models import mlp_weight_names

        return fit_advi_from_point(
            (*spec["key"][:-1], "map"),
            spec["key"],
            spec["build"],
            spec["data"],
            point_blocks=frozenset(mlp_weight_names(len(self._hidden_sizes))),
            point_sd=_WARM_WEIGHT_SD,
            init=spec["init"],
            method=self._engine_method(),
            n_draws=self.n_posterior_samples,
            random_state=seed_from_random_state(self.random_state),
            n_obs=n_obs,
            learning_rate=self.learning_rate,
            max_iter=self.max_iter,
            tol=self.tol,
            verbose=self.verbose,
            row_data=spec["row_data"],
            batch_size=spec["batch_size"],
            rows_shuffled=spec.get("rows_shuffled", False),
            move=spec["move"],
        )

    def _store_fit(self, draws: dict, n_seen: list[int]) -> dict:
        from ._models import mlp_re_to_original, mlp_weight_names

        n_layers = len(self._hidden_sizes)
        self._check_against_linear_model(draws, n_seen)
        if self.weights == "map":  # one point estimate, kept with a draw axis of length 1
            for name in mlp_weight_names(n_layers):
                draws[name] = draws[name].mean(axis=0, keepdims=True)
        scalers = (self._x_scaler, self._y_scaler)
        kept = mlp_re_to_original(draws, *scalers, n_layers, n_seen, self._family_name)
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
        names = self._group_names
        problems = implausible_beside_linear_model(reference, draws, names, n_seen)
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
        return network_mean(self._draws, features, self.activation)

    def _posterior_variables(self):
        return network_posterior_variables(self._draws, self._fixed_feature_names())


def _start_group_sds(means: dict, n_factors: int) -> list[float]:
    """The group sds of a per-row start (standardised scale)."""
    return [float(np.exp(means[f"sigma_group_{k}_log__"])) for k in range(n_factors)]
