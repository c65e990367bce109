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

from .lazy import lazy_package

#: public name -> the module of this subpackage that defines it (loaded on first use, PEP 562,
#: so that ``import scaling.contracts.manifest`` in a web worker does not load numpy)
_EXPORTS = {
    "atomic_open": "atomic", "save_figure": "atomic", "write_bytes": "atomic",
    "write_csv": "atomic", "write_json": "atomic", "write_text": "atomic",
    "jpeg_roundtrip": "jpeg", "TASKS": "tasks", "canonical_task": "tasks", "mdf_task": "tasks",
    "JND_PREFERENCE": "units", "SIGMA": "units", "preference_from_jnd": "units",
}  # fmt: skip

lazy_package(__name__, _EXPORTS)
