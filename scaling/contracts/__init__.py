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

from .atomic import atomic_open, save_figure, write_bytes, write_csv, write_json, write_text
from .jpeg import jpeg_roundtrip
from .tasks import TASKS, canonical_task, mdf_task
from .units import JND_PREFERENCE, SIGMA, preference_from_jnd

__all__ = [
    "JND_PREFERENCE", "SIGMA", "TASKS", "atomic_open", "canonical_task", "jpeg_roundtrip",
    "mdf_task", "preference_from_jnd", "save_figure", "write_bytes", "write_csv", "write_json",
    "write_text",
]
