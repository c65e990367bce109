"""The contracts between the project's packages, each defined once (no torch, no project imports).

``scaling.contracts`` is the bottom layer of the project: every package may import it, and it
imports nothing of ours. It lives inside ``scaling`` because ``scaling`` is the one package that
every other one may depend on without pulling in torch (the design card fixes the top level).

========================  ===========================================================
module                    contract
========================  ===========================================================
:mod:`.atomic`            atomic file writes: unique temp name, fsync, replace, cleanup
:mod:`.manifest`          the ``mdf-triplets`` manifest (restore writes, study reads)
:mod:`.tasks`             restoration task names (``sr``, ``denoise``, ``jpeg``), MDF's aliases
:mod:`.units`             the Thurstone Case V constants of the JND scale (pwcmp's sigma)
:mod:`.jpeg`              the JPEG encode-decode round trip (libjpeg through Pillow)
========================  ===========================================================
"""

from __future__ import annotations

import importlib

#: public name -> the module of this subpackage that defines it (loaded on first use, PEP 562,
#: so that ``import scaling.contracts.manifest`` in a web worker does not load numpy)
_EXPORTS = {
    "atomic_open": "atomic", "save_figure": "atomic", "write_bytes": "atomic",
    "write_csv": "atomic", "write_json": "atomic", "write_text": "atomic",
    "jpeg_roundtrip": "jpeg", "TASKS": "tasks", "canonical_task": "tasks", "mdf_task": "tasks",
    "JND_PREFERENCE": "units", "SIGMA": "units", "preference_from_jnd": "units",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scaling.contracts' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
