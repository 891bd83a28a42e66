"""Linear mixed models for grouped data, fitted by ADVI: random intercepts, and intercepts
with correlated random slopes."""

from __future__ import annotations

from sklearn.base import RegressorMixin
from sklearn.utils._param_validation import StrOptions

from ._linear_base import LinearMixedBase

__all__ = ["RandomEffectsRegressor", "RandomInterceptRegressor"]


class RandomInterceptRegressor(RegressorMixin, LinearMixedBase):
    """Linear regression with random intercepts for one or more grouping columns.

    The model, on internally standardised features and target, is
    ``y ~ Normal(alpha + X @ beta + sum_k u_k[g_k], sigma)`` with non-centred intercepts
    ``u_k = sigma_k * z_k``, ``z_k ~ Normal(0, 1)``, and ``alpha, beta ~ Normal(0, s)``,
    ``sigma, sigma_k ~ HalfNormal(s)`` for ``s = prior_scale``. Every parameter, the group
    scales ``sigma_k`` included, gets a posterior (full Bayes, no point estimates). With a
    Gaussian likelihood and one grouping column (``method="auto"``), or from fewer than 30
    rows, the posterior is exact up to Monte Carlo error: every coefficient and intercept is
    integrated out given the scales, which are drawn by importance sampling, and nothing is
    compiled; other models are fitted by ADVI (a variational posterior). From so few rows a
    mean-field fit would let the rows collapse the noise.

    Several grouping columns give crossed random intercepts. A group label not seen in ``fit``,
    or a missing one, gets the population-level prediction with the spread of a new group's
    intercept ``Normal(0, sigma_k)`` added to its predictive distribution.

    Parameters
    ----------
    groups : "from_dtype", list of str, list of int, boolean mask or None, default="from_dtype"
        The grouping columns of ``X``; every other column is a fixed-effect feature.
        ``"from_dtype"`` takes the category, object and string columns of a DataFrame
        (a plain array has none, and the model is then the linear one). Missing labels
        (None or NaN) are accepted in DataFrame columns; a plain array must be finite.
        Each column may be named once, and no two may split the rows into the same groups
        (a copy or relabelling of another column): both are a ``ValueError``. ``X`` may hold
        grouping columns only (intercepts alone).
    group_distribution : {"normal", "student_t"}, default="normal"
        The distribution of the random intercepts around 0. ``"student_t"``:
        ``u_k = sigma_k * z_k`` with ``z_k ~ StudentT(nu_k, 0, 1)`` and the degrees of freedom
        learned (``nu_k ~ Gamma(2, 0.1)``, ``group_nu_``), for groups of which a few sit far
        out: normal groups then inflate ``sigma_k``, and intervals for new groups come out too
        wide for the typical group. A new group's effect is then drawn once per posterior
        draw. Random intercepts only (a ``ValueError`` with random slopes), under any
        likelihood (with the others than the Gaussian the effects are centred
        ``StudentT(nu_k, 0, sigma_k)`` in the per-row model); with fewer than 30 rows a
        Gaussian model's groups are fitted as normal, with a warning.
    likelihood : {"gaussian", "student_t", "poisson", "negative_binomial"}, \
            default="gaussian"
        The target's distribution given the linear predictor ``eta``. ``"gaussian"``:
        ``Normal(eta, sigma)``, fitted on sufficient statistics (a step costs the same at any
        row count). ``"student_t"``: ``StudentT(nu, eta, sigma)`` with the degrees of freedom
        learned (heavy-tailed noise; ``sigma_`` and ``nu_``). ``"poisson"``: counts,
        ``Poisson(exp(eta))``. ``"negative_binomial"``: overdispersed counts with mean
        ``mu = exp(eta)`` and variance ``mu + mu**2 / dispersion_``, the dispersion learned.
        Counts must be non-negative (non-integer values are accepted); for the two count
        likelihoods the coefficients and group effects are on the log scale and ``predict``
        returns expected counts. Every likelihood but the Gaussian evaluates each row at each
        step (minibatches of 50,000 rows beyond 200,000 rows, or of ``batch_size`` rows when
        it is set); ``partial_fit`` and Dask input need ``"gaussian"``.
    offset : str, int or None, default=None
        A column of ``X`` added to the linear predictor with coefficient 1 (for counts, the
        log of the exposure or of the expected count), named like ``groups``. It is not a
        feature: ``coef_`` has no entry for it.
    method : {"auto", "advi", "fullrank_advi"}, default="auto"
        How the posterior is computed. ``"auto"``: exactly (up to Monte Carlo error) where
        the model allows it, the Gaussian linear model and random intercepts of one grouping
        column with normal groups and complete features: every coefficient and group effect
        is integrated out given the noise and group sds, those two are drawn by importance
        sampling, nothing is compiled and ``loss_curve_`` is empty (``_models/exact.py``);
        with missing feature values, the same models' posterior is drawn by a Gibbs
        sampler that fills the missing cells in (``_models/missing_gibbs.py``; whole-number
        sample weights; ``n_iter_`` counts its sweeps); ``"advi"`` elsewhere. ``"advi"``: a
        mean-field Gaussian approximation, always.
        ``"fullrank_advi"``: a full-rank one, which also learns the posterior correlations
        between parameters, at a cost: its step is compiled apart and takes
        about five times as long to compile the first time (sleepstudy's random intercepts:
        33 s against 7 s with an empty PyTensor compile cache, 4 s against 1.6 s with a
        filled one), a step costs O(d^2) for d parameters, group effects included (four
        times mean-field's there), and it is refused above 3,000 parameters. It pays on
        small models whose parameters are strongly correlated a posteriori; compare its
        ``posterior_`` with the default fit's.
    learning_rate : float, default=0.05
        Initial Adam step size on the standardised scale.
    max_iter : int, default=10000
        Maximum number of optimisation steps.
    tol : float, default=1e-4
        Convergence tolerance on the windowed negative ELBO, per observation.
    n_posterior_samples : int, default=500
        Posterior draws kept for prediction.
    prior_scale : float, default=2.5
        Scale of the weakly-informative priors on the standardised scale.
    random_state : int, RandomState instance or None, default=None
        Seed of initialisation, optimisation noise and posterior draws.
    verbose : int, default=0
        0 prints nothing; 1 shows a progress bar with the running loss.
    missing_features : {"model", "error"}, default="model"
        What a NaN in a feature column means. ``"model"``: a missing value, a latent
        variable under a Gaussian model of the features (their mean and full covariance
        learned from every row's observed cells); its posterior conditions on the row's
        observed features, groups and target, rows with no missing cell keep the
        sufficient statistics, and ``predict`` integrates a row's missing cells out
        (``impute`` returns their posterior mean and sd; ``posterior_["imputed"]`` holds
        draws of the training rows' missing cells, dim ``missing_cell`` labelled
        ``"row:column"``). Gaussian likelihood only (and no
        NaN in random-slope features); ``partial_fit`` and Dask input refuse NaN.
        ``"error"``: a ``ValueError`` naming the column. NaN in a grouping column is a
        missing label either way; NaN in the offset column, and inf anywhere, are errors.
    batch_size : int or None, default=None
        Rows per block when the data are reduced to the model's sufficient statistics
        (cross-products and per-group sums), bounding working memory for very large ``X``.
        The ELBO and its gradients always use all rows exactly: for this Gaussian model,
        minibatch noise would buy nothing, since a step costs the same whatever the row count.

    Attributes
    ----------
    coef_ : ndarray of shape (n_fixed_features,)
        Posterior mean coefficients of the non-grouping columns.
    intercept_ : float
        Posterior mean population intercept.
    sigma_ : float
        Posterior mean noise standard deviation (Gaussian and Student-t likelihoods).
    nu_ : float
        Posterior mean degrees of freedom of the Student-t likelihood (only with it).
    dispersion_ : float
        Posterior mean dispersion of the negative binomial likelihood (only with it).
    group_effects_ : dict
        Grouping column (name, or position for arrays) -> ``pandas.Series`` of posterior mean
        intercept offsets indexed by group label.
    group_sd_ : dict
        Grouping column -> posterior mean of that column's group standard deviation.
    group_nu_ : dict
        Grouping column -> posterior mean degrees of freedom of its Student-t group effects
        (only with ``group_distribution="student_t"``).
    loss_curve_ : list of float
        Negative ELBO per ADVI step (empty when the posterior was computed without ADVI).
    n_iter_ : int
        Number of optimisation steps taken: ADVI's, or without ADVI those of the search
        for the variance parameters' posterior mode (the Gibbs sampler's sweeps, with
        missing feature values).
    posterior_ : arviz.InferenceData
        Stored draws with named dimensions (feature names and group labels as coordinates).
    fit_timings_ : dict
        Seconds spent compiling (0 when a compiled model was reused) and optimising.
    n_features_in_ : int
        Number of columns seen during fit, grouping columns included.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of columns seen during fit, when ``X`` has string column names.

    See Also
    --------
    BayesianLinearRegressor : The same model without groups.
    statsmodels.regression.mixed_linear_model.MixedLM : REML point estimates of the variances.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skbayes_re import RandomInterceptRegressor
    >>> rng = np.random.default_rng(0)
    >>> school = rng.integers(0, 20, size=1000)
    >>> effect = rng.normal(scale=1.0, size=20)
    >>> X = pd.DataFrame({"hours": rng.normal(size=1000),
    ...                   "school": pd.Categorical(school)})
    >>> y = 2.0 * X["hours"] + effect[school] + rng.normal(scale=0.5, size=1000)
    >>> model = RandomInterceptRegressor(random_state=0).fit(X, y)
    >>> round(float(model.coef_[0]), 1)
    2.0
    >>> sorted(model.group_effects_)
    ['school']
    >>> new = pd.DataFrame({"hours": [0.0, 0.0], "school": pd.Categorical([3, 99])})
    >>> mean, std = model.predict(new, return_std=True)
    >>> bool(std[1] > std[0])  # an unseen school gets the population prediction, wider
    True

    Counts with a log link, each row observed for ``exposure`` units of time:

    >>> X["log_exposure"] = np.log(rng.uniform(1.0, 3.0, size=1000))
    >>> rate = np.exp(0.5 + 0.3 * X["hours"] + 0.4 * effect[school] + X["log_exposure"])
    >>> counts = rng.poisson(rate)
    >>> poisson = RandomInterceptRegressor(
    ...     likelihood="poisson", offset="log_exposure", random_state=0
    ... ).fit(X, counts)
    >>> round(float(poisson.coef_[0]), 1)
    0.3
    """

    _parameter_constraints: dict = {
        **LinearMixedBase._parameter_constraints,
        "groups": [str, "array-like", None],
        "group_distribution": [StrOptions({"normal", "student_t"})],
    }

    def __init__(
        self,
        *,
        groups="from_dtype",
        group_distribution="normal",
        likelihood="gaussian",
        offset=None,
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
        self.likelihood = likelihood
        self.offset = offset
        self.groups = groups
        self.group_distribution = group_distribution
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


class RandomEffectsRegressor(RegressorMixin, LinearMixedBase):
    """Linear mixed model with random intercepts and correlated random slopes.

    ``random_slopes={"subject": ["days"]}`` is lme4's ``y ~ days + (1 + days | subject)``:
    the intercept and the ``days`` coefficient vary by subject, jointly normal with a learned
    correlation. The model, on internally standardised features and target, is
    ``y ~ Normal(alpha + X @ beta + sum_k V_k u_k[g_k], sigma)``, where ``V_k`` is ``1`` and
    the slope features of grouping column k. Per grouping column, the effects are
    non-centred: ``u_kg = diag(tau_k) L_k z_kg``, ``z_kg ~ Normal(0, I)``, with
    ``tau_k ~ HalfNormal(s)`` (one scale per term) and ``L_k L_k'`` the correlation matrix,
    ``LKJ(eta=2)``; ``alpha, beta ~ Normal(0, s)`` and ``sigma ~ HalfNormal(s)`` for
    ``s = prior_scale``. A grouping column without slopes gets random intercepts, as in
    :class:`RandomInterceptRegressor` (with no slopes at all the two estimators fit the same
    model). Everything, scales and correlations included, gets a variational posterior.

    The statistics behind the likelihood are per-group cross-products of ``(1, slope
    features)`` with themselves, with the fixed-effect design and with ``y``, computed in one
    pass over the rows: an ADVI step costs the same for a thousand rows or millions.

    Inference: the effects of the first grouping column with slopes are integrated out of
    the likelihood exactly (they are Gaussian given everything else); ADVI approximates the
    coefficients, scales, correlations, noise and any other column's effects, and each
    posterior draw of the integrated effects comes from their exact conditional given that
    draw. Beside it, a random-intercept column whose groups the data inform well is fitted
    centred (``u ~ Normal(0, sigma_k)``), one whose groups they inform weakly non-centred,
    so that its scale's uncertainty is not understated. On sleepstudy every posterior mean
    lies within 0.11 posterior sd of NUTS (``benchmarks/results/random_slopes.md``). From
    fewer than 30 rows every coefficient and effect is integrated out and the scales and
    correlations are drawn by importance sampling, without ADVI (``loss_curve_`` empty).

    A group not seen in ``fit`` (or a missing label) gets the population-level prediction,
    integrated over a new group's intercept and slopes, so its predictive spread grows with
    ``|x|`` of the slope features.

    Parameters
    ----------
    groups : "from_dtype", list of str, list of int, boolean mask or None, default="from_dtype"
        The grouping columns of ``X``; every other column is a fixed-effect feature.
        ``"from_dtype"`` takes the category, object and string columns of a DataFrame. As
        for :class:`RandomInterceptRegressor`, each column may be named once and no two may
        split the rows into the same groups.
    random_slopes : dict or None, default=None
        Grouping column (name, or position for arrays) -> the feature columns (names or
        positions; one column or a list) whose coefficients vary by it. A slope feature is
        also a fixed effect: its population coefficient is in ``coef_``.
    group_distribution : {"normal", "student_t"}, default="normal"
        The distribution of the random intercepts around 0. ``"student_t"``:
        ``u_k = sigma_k * z_k`` with ``z_k ~ StudentT(nu_k, 0, 1)`` and the degrees of freedom
        learned (``nu_k ~ Gamma(2, 0.1)``, ``group_nu_``), for groups of which a few sit far
        out: normal groups then inflate ``sigma_k``, and intervals for new groups come out too
        wide for the typical group. A new group's effect is then drawn once per posterior
        draw. Random intercepts only (a ``ValueError`` with random slopes), under any
        likelihood (with the others than the Gaussian the effects are centred
        ``StudentT(nu_k, 0, sigma_k)`` in the per-row model); with fewer than 30 rows a
        Gaussian model's groups are fitted as normal, with a warning.
    likelihood : {"gaussian", "student_t", "poisson", "negative_binomial"}, \
            default="gaussian"
        The target's distribution given the linear predictor ``eta``. ``"gaussian"``:
        ``Normal(eta, sigma)``, fitted on sufficient statistics (a step costs the same at any
        row count). ``"student_t"``: ``StudentT(nu, eta, sigma)`` with the degrees of freedom
        learned (heavy-tailed noise; ``sigma_`` and ``nu_``). ``"poisson"``: counts,
        ``Poisson(exp(eta))``. ``"negative_binomial"``: overdispersed counts with mean
        ``mu = exp(eta)`` and variance ``mu + mu**2 / dispersion_``, the dispersion learned.
        Counts must be non-negative (non-integer values are accepted); for the two count
        likelihoods the coefficients and group effects are on the log scale and ``predict``
        returns expected counts. Every likelihood but the Gaussian evaluates each row at each
        step (minibatches of 50,000 rows beyond 200,000 rows, or of ``batch_size`` rows when
        it is set); ``partial_fit`` and Dask input need ``"gaussian"``.
    offset : str, int or None, default=None
        A column of ``X`` added to the linear predictor with coefficient 1 (for counts, the
        log of the exposure or of the expected count), named like ``groups``. It is not a
        feature: ``coef_`` has no entry for it.
    method : {"auto", "advi", "fullrank_advi"}, default="auto"
        How the posterior is computed. ``"auto"``: exactly (up to Monte Carlo error) where
        the model allows it, the Gaussian linear model and random intercepts of one grouping
        column with normal groups and complete features: every coefficient and group effect
        is integrated out given the noise and group sds, those two are drawn by importance
        sampling, nothing is compiled and ``loss_curve_`` is empty (``_models/exact.py``);
        with missing feature values, the same models' posterior is drawn by a Gibbs
        sampler that fills the missing cells in (``_models/missing_gibbs.py``; whole-number
        sample weights; ``n_iter_`` counts its sweeps); ``"advi"`` elsewhere. ``"advi"``: a
        mean-field Gaussian approximation, always.
        ``"fullrank_advi"``: a full-rank one, which also learns the posterior correlations
        between parameters, at a cost: its step is compiled apart and takes
        about five times as long to compile the first time (sleepstudy's random intercepts:
        33 s against 7 s with an empty PyTensor compile cache, 4 s against 1.6 s with a
        filled one), a step costs O(d^2) for d parameters, group effects included (four
        times mean-field's there), and it is refused above 3,000 parameters. It pays on
        small models whose parameters are strongly correlated a posteriori; compare its
        ``posterior_`` with the default fit's.
    learning_rate : float, default=0.05
        Initial Adam step size on the standardised scale.
    max_iter : int, default=10000
        Maximum number of optimisation steps.
    tol : float, default=1e-4
        Convergence tolerance on the windowed negative ELBO, per observation.
    n_posterior_samples : int, default=500
        Posterior draws kept for prediction.
    prior_scale : float, default=2.5
        Scale of the weakly-informative priors on the standardised scale.
    random_state : int, RandomState instance or None, default=None
        Seed of initialisation, optimisation noise and posterior draws.
    verbose : int, default=0
        0 prints nothing; 1 shows a progress bar with the running loss.
    missing_features : {"model", "error"}, default="model"
        What a NaN in a feature column means. ``"model"``: a missing value, a latent
        variable under a Gaussian model of the features (their mean and full covariance
        learned from every row's observed cells); its posterior conditions on the row's
        observed features, groups and target, rows with no missing cell keep the
        sufficient statistics, and ``predict`` integrates a row's missing cells out
        (``impute`` returns their posterior mean and sd; ``posterior_["imputed"]`` holds
        draws of the training rows' missing cells, dim ``missing_cell`` labelled
        ``"row:column"``). Gaussian likelihood only (and no
        NaN in random-slope features); ``partial_fit`` and Dask input refuse NaN.
        ``"error"``: a ``ValueError`` naming the column. NaN in a grouping column is a
        missing label either way; NaN in the offset column, and inf anywhere, are errors.
    batch_size : int or None, default=None
        Rows per block when the data are reduced to sufficient statistics, bounding working
        memory for very large ``X``; the fit always uses all rows exactly.

    Attributes
    ----------
    coef_ : ndarray of shape (n_fixed_features,)
        Posterior mean population coefficients of the non-grouping columns.
    intercept_ : float
        Posterior mean population intercept.
    sigma_ : float
        Posterior mean noise standard deviation (Gaussian and Student-t likelihoods).
    nu_ : float
        Posterior mean degrees of freedom of the Student-t likelihood (only with it).
    dispersion_ : float
        Posterior mean dispersion of the negative binomial likelihood (only with it).
    group_effects_ : dict
        Grouping column -> posterior mean effects by group label: a ``pandas.DataFrame`` with
        columns ``intercept`` and the slope features for a column with slopes, a
        ``pandas.Series`` of intercept offsets otherwise. Effects are offsets from
        ``intercept_`` and ``coef_``.
    group_sd_ : dict
        Grouping column -> posterior mean group standard deviation: a ``pandas.Series`` by
        term for a column with slopes, a float otherwise.
    group_nu_ : dict
        Grouping column -> posterior mean degrees of freedom of its Student-t intercepts
        (only with ``group_distribution="student_t"``, for columns without slopes).
    group_cov_ : dict
        Grouping column -> posterior mean covariance of the group effects (DataFrame, terms
        by terms), in the user's units.
    group_corr_ : dict
        Grouping column -> posterior mean correlation of the group effects (DataFrame).
    loss_curve_ : list of float
        Negative ELBO per ADVI step (empty when the posterior was computed without ADVI).
    n_iter_ : int
        Number of optimisation steps taken: ADVI's, or without ADVI those of the search
        for the variance parameters' posterior mode (the Gibbs sampler's sweeps, with
        missing feature values).
    posterior_ : arviz.InferenceData
        Stored draws with named dimensions (features, group labels and terms as coordinates).
    fit_timings_ : dict
        Seconds spent compiling (0 when a compiled model was reused) and optimising.
    n_features_in_ : int
        Number of columns seen during fit, grouping columns included.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of columns seen during fit, when ``X`` has string column names.

    See Also
    --------
    RandomInterceptRegressor : Random intercepts only.
    statsmodels.regression.mixed_linear_model.MixedLM : REML point estimates, one grouping
        column.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skbayes_re import RandomEffectsRegressor
    >>> rng = np.random.default_rng(0)
    >>> subject = np.repeat(np.arange(30), 10)
    >>> days = np.tile(np.arange(10.0), 30)
    >>> intercepts = rng.normal(250.0, 25.0, size=30)
    >>> slopes = rng.normal(10.0, 6.0, size=30)
    >>> X = pd.DataFrame({"days": days, "subject": pd.Categorical(subject)})
    >>> y = intercepts[subject] + slopes[subject] * days + rng.normal(scale=25.0, size=300)
    >>> model = RandomEffectsRegressor(random_slopes={"subject": ["days"]}, random_state=0)
    >>> model = model.fit(X, y)
    >>> list(model.group_effects_["subject"].columns)
    ['intercept', 'days']
    >>> model.group_corr_["subject"].shape
    (2, 2)
    >>> new = pd.DataFrame({"days": [0.0, 9.0, 9.0], "subject": pd.Categorical([99, 99, 0])})
    >>> std = model.predict(new, return_std=True)[1]
    >>> bool(std[1] > std[0])  # an unseen subject (99): the slope's spread grows with days
    True
    """

    _parameter_constraints: dict = {
        **RandomInterceptRegressor._parameter_constraints,
        "random_slopes": [dict, None],
    }

    def __init__(
        self,
        *,
        groups="from_dtype",
        random_slopes=None,
        group_distribution="normal",
        likelihood="gaussian",
        offset=None,
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
        self.likelihood = likelihood
        self.offset = offset
        self.groups = groups
        self.group_distribution = group_distribution
        self.random_slopes = random_slopes
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

    def _slope_selection(self):
        return self.random_slopes if self.random_slopes is not None else {}
