"""scaling: Thurstonian scaling of pairwise comparisons into JND units, equal to pwcmp.

A Python implementation of the MATLAB toolbox pwcmp (Perez-Ortiz & Mantiuk, arXiv:1712.03686):
``pw_scale`` (count matrix -> JND scores), ``pw_scale_bootstrap`` (CIs by resampling observers),
``pw_outlier_analysis`` (observers who disagree with the rest), significance tests, plots, pwcmp's
long-table format and simulation. Never imports torch.
"""

from .analysis import outlier_table, scale_table
from .bootstrap import BootstrapResult, pw_scale_bootstrap
from .outliers import OutlierResult, pw_outlier_analysis
from .plots import plot_jod, plot_ranking_triangle
from .significance import is_significant, significance
from .simulate import power, simulate, simulate_table
from .tables import ComparisonTable, read_matrix, read_table, to_table
from .thurstone import (
    SIGMA,
    ScaleResult,
    ScalingWarning,
    preference_probability,
    pw_scale,
    residuals,
)

__all__ = [
    "SIGMA", "ScaleResult", "ScalingWarning", "pw_scale", "residuals", "preference_probability",
    "BootstrapResult", "pw_scale_bootstrap", "OutlierResult", "pw_outlier_analysis",
    "significance", "is_significant", "plot_jod", "plot_ranking_triangle",
    "simulate", "simulate_table", "power",
    "ComparisonTable", "read_table", "read_matrix", "to_table", "scale_table", "outlier_table",
]
