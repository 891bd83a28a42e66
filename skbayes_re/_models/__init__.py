"""Model specification: pure functions that build PyMC models from arrays.

Every model is stated on the standardised scale (features and target centred and scaled), so
its priors read the same whatever the user's units. Data enter through ``pm.Data`` containers;
the inference engine swaps their values between fits without rebuilding or recompiling.

One module per model family, each with its statistics, builder, initialiser and
back-transform together:

* ``statistics``: that model's sufficient statistics, in pieces that merge (NumPy only);
* ``gaussian``: the Gaussian linear mixed model on those statistics (random intercepts);
* ``gaussian_draws``: that model's draws in the user's units (NumPy only);
* ``linear``: its case without grouping factors, coefficients integrated out given the noise;
* ``linear_posterior``: that case's exact posterior given the noise and the noise's own on a
  grid (NumPy only);
* ``slopes``: correlated random slopes for that model (LKJ prior, non-centred);
* ``collapsed``: a factor with slopes integrated out of that model's likelihood;
* ``missing``: missing feature values as latent cells of that model (a Gaussian feature
  model; complete rows keep their statistics);
* ``missing_statistics``: such a fit's data (NumPy only);
* ``missing_gibbs``: its posterior with at most one factor of random intercepts, by a Gibbs
  sampler (NumPy only);
* ``feature_model``: that feature model's conditional distributions (NumPy only);
* ``few_rows``: that model's posterior from few rows, every coefficient integrated out;
* ``exact``: the posterior of its linear and one-factor random-intercept cases, every
  coefficient and effect integrated out, from any number of rows (NumPy only);
* ``network``: a neural-network mean function with random intercepts;
* ``network_start``: its starting perceptron (scikit-learn's L-BFGS; NumPy only);
* ``network_exact``: that model with point-estimated weights and its linear part exact
  (NumPy only);
* ``network_glmm``: the network mean function for any family but the Gaussian, per row;
* ``families``: the likelihood families (one module each: name, link, support, log density,
  predictive pieces);
* ``glmm``: the linear mixed model for any family but the Gaussian, written per row;
* ``laplace_start``: that model's start for count families (PIRLS and EM, NumPy only);
* ``merged_rows``: rows sharing a design point merged, for families linear in the target
  (NumPy only);
* ``multinomial``: the softmax model of three or more classes, per-class random intercepts;
* ``centring``: where a slope factor's stored intercept sits (NumPy only);
* ``constant``: any model's posterior for a constant target (every parameter at zero);
* ``_ops``: graph building blocks without BLAS ops (one C module per compiled step).

The names below are loaded on first use: ``statistics`` alone (what Dask workers run) does
not import PyMC.
"""

import importlib
import warnings

_EXPORTS = {
    "constant": ["zero_draws"],
    "gaussian": [
        "build_gaussian_re_model",
        "complete_draws",
        "gaussian_re_init",
        "gaussian_re_start",
        "gaussian_re_structure",
        "group_scale_move",
        "mark_centred",
        "mark_student_t",
        "rescale_group_scales",
        "rewrites_excluded",
        "student_t_factors",
    ],
    "families": ["FAMILIES", "family_named"],
    "gaussian_draws": ["gaussian_re_to_original", "group_effects_to_original"],
    "statistics": ["factor_sizes", "gaussian_re_statistics", "gaussian_re_statistics_chunked"],
    "feature_model": [
        "feature_model_to_original",
        "impute_cells",
        "integrate_missing_linear",
        "plug_in_feature_draws",
    ],
    "missing": [
        "build_missing_model",
        "missing_complete_draws",
        "missing_init",
        "missing_structure",
    ],
    "missing_statistics": ["MAX_FEATURES", "missing_data"],
    "missing_gibbs": ["missing_gibbs_draws", "missing_gibbs_zero_draws", "use_missing_gibbs"],
    "exact": ["MAX_FIXED", "exact_draws", "exact_zero_draws", "use_exact"],
    "few_rows": ["FEW_ROWS", "few_rows_draws", "few_rows_zero_draws", "use_few_rows"],
    "glmm": [
        "MINIBATCH_ROWS",
        "MINIBATCH_SIZE",
        "build_glmm",
        "family_loglik",
        "glmm_complete_draws",
        "glmm_data",
        "glmm_init",
        "glmm_linear_predictor",
        "glmm_start",
        "glmm_start_predictor",
        "mark_centred_glmm",
        "mark_student_t_glmm",
        "glmm_row_data",
        "glmm_structure",
        "glmm_to_original",
    ],
    "linear": ["build_linear_model", "linear_structure"],
    "merged_rows": ["merge_shared_rows", "random_row_order", "reorder"],
    "multinomial": [
        "MULTINOMIAL_REWRITES_EXCLUDED",
        "build_multinomial",
        "mark_centred_classes",
        "multinomial_complete_draws",
        "multinomial_data",
        "multinomial_init",
        "multinomial_row_data",
        "multinomial_start",
        "multinomial_structure",
        "multinomial_to_original",
    ],
    "linear_posterior": [
        "linear_complete_draws",
        "linear_data",
        "linear_exact_draws",
        "linear_init",
    ],
    "network_exact": ["network_exact_draws", "use_network_exact"],
    "network_glmm": [
        "build_mlp_glmm",
        "mlp_glmm_data",
        "mlp_glmm_start",
        "mlp_glmm_structure",
    ],
    "network": [
        "build_mlp_re_model",
        "mlp_few_rows_draws",
        "mlp_linear_reference",
        "mlp_re_data",
        "mlp_re_init",
        "mlp_re_structure",
        "mlp_re_to_original",
        "mlp_row_data",
        "mlp_weight_names",
    ],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


# ArviZ 0.2x prints a multi-line FutureWarning about its coming refactor on its first import
# of the day; PyMC imports ArviZ, and our users should see only our own messages.
_ARVIZ_NOTICE = r"\s*ArviZ is undergoing a major refactor"


def quiet_import(module: str, package: str | None = None):
    """``importlib.import_module`` with ArviZ's notice about its refactor silenced (the
    modules that import PyMC or ArviZ are loaded through this)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_ARVIZ_NOTICE, category=FutureWarning)
        return importlib.import_module(module, package)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(quiet_import(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value
