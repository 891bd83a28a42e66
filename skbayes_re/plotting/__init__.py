"""Plots of fitted skbayes_re estimators, drawn with matplotlib.

Every plot takes a fitted estimator (plots never fit a model), draws on ``ax`` (a new figure
when ``ax=None``) and returns what it drew on. matplotlib is imported only when a plot is
drawn, and nothing here selects a backend or shows a window, so the functions work the same in
scripts, notebooks and on headless machines. Where a figure summarises numbers, a function
returns them as a DataFrame first (:func:`shrinkage_table`, :func:`group_lines_table`), so
they can be tested and reused.

* ``shrinkage``: the seed's figure, within-cluster against partial-pooling estimates;
* ``group_lines``: each group's data and fitted line (the sleepstudy lattice);
* ``diagnostics``: ELBO trace, posterior intervals, residuals, prior vs posterior lines.
"""

from .diagnostics import plot_loss, plot_posterior, plot_prior_posterior_fit, plot_residuals
from .group_lines import group_lines_table, plot_group_lines
from .shrinkage import plot_shrinkage, shrinkage_table

__all__ = [
    "group_lines_table",
    "plot_group_lines",
    "plot_loss",
    "plot_posterior",
    "plot_prior_posterior_fit",
    "plot_residuals",
    "plot_shrinkage",
    "shrinkage_table",
]
