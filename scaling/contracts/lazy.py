"""Packages whose public names load on first use (PEP 562), so that importing them stays cheap.

``scaling`` and ``scaling.contracts`` re-export names from their submodules without importing
those at package import time: ``import scaling.contracts.manifest`` in a web worker does not load
numpy, SciPy or pandas. A submodule whose name equals one of its public functions
(``scaling/simulate.py`` defines ``simulate``) never hides that function once it is imported.
"""

from __future__ import annotations

import importlib
import sys
import types

__all__ = ["lazy_package"]


def lazy_package(name: str, exports: dict[str, str]) -> None:
    """Make the package ``name`` serve ``exports`` (public name -> submodule) lazily.

    Call it at the end of the package's ``__init__``; sets ``__all__`` to the sorted names.
    Unknown names raise ``AttributeError`` as usual.
    """
    package = sys.modules[name]

    class _LazyPackage(types.ModuleType):
        def __getattr__(self, attr: str):
            module = exports.get(attr)
            if module is None:
                raise AttributeError(f"module {name!r} has no attribute {attr!r}")
            value = getattr(importlib.import_module(f".{module}", name), attr)
            types.ModuleType.__setattr__(self, attr, value)
            return value

        def __dir__(self) -> list[str]:
            return sorted(set(vars(self)) | set(exports))

        def __setattr__(self, attr: str, value) -> None:
            # importing submodule `simulate` sets package.simulate = <module>: keep the function
            if isinstance(value, types.ModuleType) and exports.get(attr) == attr:
                value = getattr(value, attr, value)
            types.ModuleType.__setattr__(self, attr, value)

    package.__all__ = sorted(exports)
    package.__class__ = _LazyPackage
