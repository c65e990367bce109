"""scaling: Thurstonian scaling of pairwise comparisons into JND units, equal to pwcmp.

A Python implementation of the MATLAB toolbox pwcmp (Perez-Ortiz & Mantiuk, arXiv:1712.03686):
``pw_scale`` (count matrix -> JND scores), ``pw_scale_bootstrap`` (CIs by resampling observers),
``pw_outlier_analysis`` (observers who disagree with the rest), significance tests, plots, pwcmp's
long-table format and simulation. Never imports torch.

The public names load on first use (PEP 562), so that ``import scaling.contracts`` (the
project's inter-package contracts, see :mod:`scaling.contracts`) stays free of SciPy and pandas.
"""

from __future__ import annotations

from .contracts.lazy import lazy_package

#: public name -> the module of this package that defines it
_EXPORTS = {
    "outlier_table": "analysis", "scale_table": "analysis",
    "BootstrapResult": "bootstrap", "pw_scale_bootstrap": "bootstrap",
    "OutlierResult": "outliers", "pw_outlier_analysis": "outliers",
    "plot_jod": "plots", "plot_ranking_triangle": "plots",
    "is_significant": "significance", "significance": "significance",
    "power": "simulate", "simulate": "simulate", "simulate_table": "simulate",
    "ComparisonTable": "tables", "read_matrix": "tables", "read_table": "tables",
    "to_table": "tables",
    "SIGMA": "thurstone", "ScaleResult": "thurstone", "ScalingWarning": "thurstone",
    "preference_probability": "thurstone", "pw_scale": "thurstone", "residuals": "thurstone",
}  # fmt: skip

lazy_package(__name__, _EXPORTS)
