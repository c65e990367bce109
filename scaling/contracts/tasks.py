"""Restoration task names, defined once: ``sr``, ``denoise``, ``jpeg`` (and MDF's aliases).

``restore`` trains networks for these tasks, ``metrics`` trains and loads one set of MDF
discriminators per task, manifests record the task of their images. The paper's code calls
super-resolution ``SISR`` (its weight files are ``Ds_SISR.pth``), so ``sisr`` is accepted
everywhere as an alias of ``sr``; :func:`mdf_task` gives the name MDF's files use.
"""

from __future__ import annotations

__all__ = ["ALIASES", "TASKS", "canonical_task", "mdf_task"]

#: The restoration tasks: single-image super-resolution, denoising, JPEG artefact removal.
TASKS = ("sr", "denoise", "jpeg")
#: Other names accepted for a task (lower case) -> its canonical name.
ALIASES = {"sisr": "sr", "super-resolution": "sr", "denoising": "denoise", "dn": "denoise"}
_MDF_NAMES = {"sr": "sisr", "denoise": "denoise", "jpeg": "jpeg"}


def canonical_task(name: str) -> str:
    """The canonical task name (one of :data:`TASKS`) for ``name`` or one of its aliases.

    Raises ``ValueError`` naming the accepted names for anything else.
    """
    key = name.strip().lower() if isinstance(name, str) else name
    key = ALIASES.get(key, key)
    if key not in TASKS:
        accepted = ", ".join([*TASKS, *ALIASES])
        raise ValueError(f"unknown task {name!r}: expected one of {accepted}")
    return key


def mdf_task(name: str) -> str:
    """The name MDF weight files use for a task (``sisr``, ``denoise`` or ``jpeg``)."""
    return _MDF_NAMES[canonical_task(name)]
