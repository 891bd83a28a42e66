"""Bayesian linear regression with learned noise: the linear model of ``LinearMixedBase``
without grouping columns."""

from __future__ import annotations

from sklearn.base import RegressorMixin

from ._linear_base import LinearMixedBase

__all__ = ["BayesianLinearRegressor"]


class BayesianLinearRegressor(RegressorMixin, LinearMixedBase):
    """Bayesian linear regression with learned noise, fitted by variational inference.

    The model, on internally standardised features and target, is
    ``y ~ Normal(alpha + X @ beta, sigma)`` with ``alpha, beta ~ Normal(0, prior_scale)`` and
    ``sigma ~ HalfNormal(prior_scale)``. The posterior is approximated by ADVI; fitted
    attributes and predictions are on the original scale.

    Parameters
    ----------
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
        How the posterior is computed. With Gaussian noise and complete features the
        coefficients are integrated out given the noise sd and each coefficient draw comes
        from its exact conditional; ``"auto"`` draws the noise sd from its exact posterior on
        a grid laid around the least-squares fit (nothing compiled, ``loss_curve_`` empty;
        ``_models/linear_posterior.py``), ``"advi"`` and
        ``"fullrank_advi"`` (the same for this one parameter) fit its posterior by ADVI and
        then compute it exactly around that fit. With missing feature values ``"auto"``
        draws the posterior by a Gibbs sampler that fills the missing cells in
        (``_models/missing_gibbs.py``; whole-number sample weights; ``n_iter_`` counts its
        sweeps). Other likelihoods use mean-field ADVI under ``"auto"``.
    learning_rate : float, default=0.05
        Initial Adam step size on the standardised scale; it is reduced automatically
        as the fit converges.
    max_iter : int, default=10000
        Maximum number of optimisation steps.
    tol : float, default=1e-4
        Stop when the windowed mean negative ELBO changes by less than ``tol`` per
        observation between consecutive windows (or by less than its Monte Carlo noise).
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
        (cross-products), bounding working memory for very large ``X``. The ELBO and its
        gradients always use all rows exactly: for this Gaussian model, minibatch noise would
        buy nothing, since a step costs the same whatever the row count.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Posterior mean coefficients.
    intercept_ : float
        Posterior mean intercept.
    sigma_ : float
        Posterior mean noise standard deviation (Gaussian and Student-t likelihoods).
    nu_ : float
        Posterior mean degrees of freedom of the Student-t likelihood (only with it).
    dispersion_ : float
        Posterior mean dispersion of the negative binomial likelihood (only with it).
    loss_curve_ : list of float
        Negative ELBO per ADVI step (empty when the posterior was computed without ADVI).
    n_iter_ : int
        Number of optimisation steps taken: ADVI's, or without ADVI those of the search
        for the variance parameters' posterior mode (the Gibbs sampler's sweeps, with
        missing feature values).
    posterior_ : arviz.InferenceData
        Stored draws with named dimensions (feature names as coordinates).
    fit_timings_ : dict
        Seconds spent compiling (0 when a compiled model was reused) and optimising.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    RandomInterceptRegressor : The same model with random intercepts for grouped data.
    sklearn.linear_model.BayesianRidge : Point-estimated noise and prior precisions.

    Examples
    --------
    >>> import numpy as np
    >>> from skbayes_re import BayesianLinearRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(1000, 2))
    >>> y = 1.0 + X @ np.array([2.0, -1.0]) + rng.normal(scale=0.5, size=1000)
    >>> model = BayesianLinearRegressor(random_state=0).fit(X, y)
    >>> np.round(model.coef_, 1)
    array([ 2., -1.])
    >>> model.predict_interval(X[:1], coverage=0.9).shape
    (1, 2)
    """

    def __init__(
        self,
        *,
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
        self.method = method
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.n_posterior_samples = n_posterior_samples
        self.prior_scale = prior_scale
        self.random_state = random_state
        self.verbose = verbose
        self.missing_features = missing_features
