"""MDF weight files: the project's format, the authors' legacy pickles, the shipped weights.

* The project's format (:func:`save_discriminators`, :func:`load_discriminators`): state dicts,
  shape configs and plain-type metadata, loadable with ``torch.load(weights_only=True)``, written
  atomically (:mod:`scaling.contracts.atomic`).
* The authors' ``Ds_*.pth`` (legacy torch pickles of ``SinGAN.models.WDiscriminator`` modules),
  read without the ``SinGAN`` package through a restricted unpickler
  (:func:`load_legacy_discriminators`, :func:`convert_legacy`).
* The weights shipped in ``metrics/weights/mdf_<task>.pt`` (:func:`shipped_weights`).

Task names follow :mod:`scaling.contracts.tasks`: any name :func:`canonical_task` accepts
(``"sr"``, ``"sisr"``, ...); files store MDF's name (:func:`mdf_task`: ``sisr``, ``denoise``,
``jpeg``), as the authors' and the shipped files do.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.serialization import SourceChangeWarning

from metrics.discriminator import Discriminator
from scaling.contracts.atomic import atomic_open
from scaling.contracts.tasks import ALIASES, TASKS, mdf_task

FORMAT_NAME = "mdf-toolkit/discriminators"
FORMAT_VERSION = 1
#: Folder of the discriminator weights shipped with the package (``mdf_<task>.pt``).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def save_discriminators(
    path: str | os.PathLike,
    discriminators: Sequence[Discriminator],
    metadata: dict[str, Any] | None = None,
) -> None:
    """Save discriminators (coarsest first) in the project's format, atomically.

    The file holds only tensors and plain types: ``{"format", "version", "metadata",
    "discriminators": [{"config": {...}, "state_dict": {...}}, ...]}``, so it loads with
    ``torch.load(path, weights_only=True)``. ``metadata`` (e.g. ``task``, ``source``, training
    settings) must itself be plain types.
    """
    if len(discriminators) == 0:
        raise ValueError("no discriminators to save")
    entries = []
    for d in discriminators:
        if not isinstance(d, Discriminator):
            raise TypeError(f"expected Discriminator instances, got {type(d).__name__}")
        sd = OrderedDict((k, v.detach().cpu().clone()) for k, v in d.state_dict().items())
        entries.append({"config": d.config(), "state_dict": dict(sd)})
    meta = dict(metadata or {})
    if meta.get("task") is not None:
        meta["task"] = checked_task(meta["task"], "metadata task")
    with atomic_open(path) as f:
        torch.save(
            {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "metadata": meta,
                "discriminators": entries,
            },
            f,
        )


def checked_task(task: str, what: str = "task") -> str:
    """MDF's file name of ``task`` (``sisr``, ``denoise`` or ``jpeg``) for any name that
    :func:`scaling.contracts.tasks.canonical_task` accepts.

    Raises:
        ValueError: an unknown task; the message (starting with ``what``) lists the names.
    """
    try:
        return mdf_task(task)
    except ValueError:
        accepted = ", ".join([*TASKS, *ALIASES])
        raise ValueError(f"{what} must be one of {accepted}, got {task!r}") from None


def load_discriminators(
    path: str | os.PathLike, *, map_location: str | torch.device = "cpu"
) -> tuple[list[Discriminator], dict[str, Any]]:
    """Load discriminators from the project's format (``torch.load(weights_only=True)``) or,
    for a legacy non-zip file, from the authors' pickles (see
    :func:`load_legacy_discriminators`). Returns ``(discriminators, metadata)``, coarsest
    first, in eval mode.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a discriminator file, or inconsistent contents.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MDF weight file not found: {path}")
    if not zipfile.is_zipfile(path):
        return load_legacy_discriminators(path), {"source": str(path.name), "legacy": True}
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path} is not a plain-tensor weight file: {e}") from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not an MDF discriminator file (format {FORMAT_NAME!r})")
    if obj.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format version {obj.get('version')!r}")
    discs = []
    for i, entry in enumerate(obj["discriminators"]):
        d = Discriminator(**entry["config"])
        try:
            d.load_state_dict(entry["state_dict"])
        except RuntimeError as e:
            raise ValueError(f"{path}: discriminator {i} does not match its config: {e}") from e
        discs.append(d.eval())
    return discs, dict(obj.get("metadata") or {})


class _LegacyModule:
    """Stand-in for any module class found in a legacy pickle: it only keeps the pickled
    attribute dictionary (``_modules``, ``_parameters``, ``_buffers``); no foreign code runs."""

    dump_patches = False  # read by torch's legacy loader when it compares class sources

    def __setstate__(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("unexpected module state in legacy MDF file")
        self.__dict__.update(state)


_LEGACY_MODULE_CLASSES = {
    ("SinGAN.models", "WDiscriminator"),
    ("SinGAN.models", "ConvBlock"),
    ("torch.nn.modules.conv", "Conv2d"),
    ("torch.nn.modules.batchnorm", "BatchNorm2d"),
    ("torch.nn.modules.activation", "LeakyReLU"),
    ("torch.nn.modules.container", "Sequential"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of the authors' files: the module classes map
    to :class:`_LegacyModule`, plus OrderedDict, torch storages and torch's tensor/parameter
    rebuild functions (and set/frozenset, found in files written by newer torch). Anything else
    is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in _LEGACY_MODULE_CLASSES:
            return _LegacyModule
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module in ("builtins", "__builtin__") and name in ("set", "frozenset"):
            return {"set": set, "frozenset": frozenset}[name]  # newer torch's module state
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_parameter"):
            return getattr(torch._utils, name)
        if module == "torch" and name.endswith("Storage") and hasattr(torch, name):
            return getattr(torch, name)
        raise pickle.UnpicklingError(
            f"legacy MDF file refers to a forbidden global {module}.{name}"
        )


class _RestrictedPickleModule:
    """A ``pickle_module`` for ``torch.load`` built on :class:`_RestrictedUnpickler`."""

    __name__ = "metrics.mdf_weights._restricted_pickle"
    Unpickler = _RestrictedUnpickler

    @staticmethod
    def load(f, **kwargs):
        return _RestrictedUnpickler(f, **kwargs).load()


def _flatten_legacy(mod: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if not isinstance(mod, _LegacyModule):
        # bad file contents, not a bad argument type: reported as ValueError like the rest
        raise ValueError("legacy MDF file: expected module objects")  # noqa: TRY004
    for key in ("_parameters", "_buffers"):
        for n, t in (getattr(mod, key, None) or {}).items():
            if t is not None:
                out[prefix + n] = t.detach().clone() if isinstance(t, torch.Tensor) else t
    for n, child in (getattr(mod, "_modules", None) or {}).items():
        out.update(_flatten_legacy(child, f"{prefix}{n}."))
    return out


def load_legacy_discriminators(path: str | os.PathLike) -> list[Discriminator]:
    """Load the authors' ``Ds_*.pth`` (legacy torch pickle of a list of
    ``SinGAN.models.WDiscriminator``) without the SinGAN package and without running any code
    from the file: a restricted unpickler maps the classes to plain attribute holders, and the
    weights are copied into :class:`Discriminator` modules (coarsest first, eval mode)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"legacy MDF weight file not found: {path}")
    try:
        with warnings.catch_warnings():
            # The file embeds the source of the authors' classes; ours differ on purpose.
            warnings.simplefilter("ignore", SourceChangeWarning)
            warnings.filterwarnings("ignore", message="Couldn't retrieve source code")
            obj = torch.load(
                path, map_location="cpu", pickle_module=_RestrictedPickleModule, weights_only=False
            )
    except (pickle.UnpicklingError, EOFError, RuntimeError) as e:
        raise ValueError(f"{path} is not a legacy MDF discriminator file: {e}") from e
    if not isinstance(obj, (list, tuple)) or not obj:
        raise ValueError(f"{path}: expected a non-empty list of discriminators")
    discs = []
    for i, m in enumerate(obj):
        sd = _flatten_legacy(m)
        if "head.conv.weight" not in sd or "tail.weight" not in sd:
            raise ValueError(f"{path}: discriminator {i} lacks head.conv/tail weights")
        w = sd["head.conv.weight"]
        n_body = sum(1 for k in sd if k.startswith("body.") and k.endswith(".conv.weight"))
        d = Discriminator(
            int(w.shape[0]),
            num_layers=n_body + 2,
            kernel_size=int(w.shape[-1]),
            in_channels=int(w.shape[1]),
        )
        try:
            d.load_state_dict(sd)
        except RuntimeError as e:
            raise ValueError(f"{path}: discriminator {i} has unexpected weights: {e}") from e
        discs.append(d.eval())
    return discs


def convert_legacy(
    src: str | os.PathLike, dst: str | os.PathLike, *, task: str | None = None
) -> list[Discriminator]:
    """Convert an authors' legacy ``Ds_*.pth`` into the project's weight format at ``dst``.

    ``task`` (any name :func:`scaling.contracts.tasks.canonical_task` accepts) is stored in the
    metadata under MDF's name (``sisr``, ``denoise`` or ``jpeg``)."""
    if task is not None:
        task = checked_task(task)
    discs = load_legacy_discriminators(src)
    save_discriminators(
        dst,
        discs,
        {"task": task, "source": Path(src).name, "converted_from": "legacy SinGAN pickle"},
    )
    return discs


def shipped_weights(task: str | None) -> Path:
    """Path of the package's own weights for ``task`` (``metrics/weights/mdf_<task>.pt``,
    written by the Phase-1 trainer, :mod:`metrics.singan`); ``task`` is any name
    :func:`scaling.contracts.tasks.canonical_task` accepts (``"sr"`` and ``"sisr"`` alike).

    Raises:
        ValueError: no task given, or no weight file shipped for it (the message says how to
            pass one).
    """
    hint = (
        "Pass weights=: a file from `mdf metrics train-mdf`, the authors' legacy file "
        "(e.g. Ds_SISR.pth) or one converted with `mdf metrics convert-mdf Ds_SISR.pth out.pt`."
    )
    if task is None:
        raise ValueError(f"MDF needs task= or weights=. {hint}")
    task = checked_task(task)
    path = WEIGHTS_DIR / f"mdf_{task}.pt"
    if not path.is_file():
        raise ValueError(
            f"MDF needs weights=: no trained discriminators ship with the toolkit for "
            f"task={task!r} (expected {path}). {hint}"
        )
    return path
