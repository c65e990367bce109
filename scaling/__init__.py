"""scaling: Thurstonian scaling of pairwise comparisons into JND units, equal to pwcmp.

A Python implementation of the MATLAB toolbox pwcmp (Perez-Ortiz & Mantiuk, arXiv:1712.03686):
``pw_scale`` (count matrix -> JND scores), ``pw_scale_bootstrap`` (CIs by resampling observers),
``pw_outlier_analysis`` (observers who disagree with the rest), significance tests, plots, pwcmp's
long-table format and simulation. Never imports torch.

The public names load on first use (PEP 562), so that ``import scaling.contracts`` (the
project's inter-package contracts, see :mod:`scaling.contracts`) stays free of SciPy and pandas.
"""

from __future__ import annotations

import importlib
import sys
import types

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

__all__ = [
    "SIGMA", "BootstrapResult", "ComparisonTable", "OutlierResult", "ScaleResult",
    "ScalingWarning", "is_significant", "outlier_table", "plot_jod", "plot_ranking_triangle",
    "power", "preference_probability", "pw_outlier_analysis", "pw_scale", "pw_scale_bootstrap",
    "read_matrix", "read_table", "residuals", "scale_table", "significance", "simulate",
    "simulate_table", "to_table",
]  # fmt: skip


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scaling' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """This package's module object: importing a submodule never hides the public function of
    the same name (``scaling.significance`` and ``scaling.simulate`` stay the functions after
    ``scaling/significance.py`` or ``scaling/simulate.py`` is imported, as ``import scaling`` gave
    them when it imported everything eagerly)."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name:
            value = getattr(value, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
