"""One checkpoint format and one loader, shared by training, resuming and inference.

A checkpoint is a dict of tensors and plain Python types only, so ``torch.load(path,
weights_only=True)`` reads it: the unwrapped model ``state_dict`` (never the DDP/compiled wrapper),
optimiser and AMP-scaler state, the step/epoch counters, the best validation loss, the RNG states
(torch CPU/CUDA, Python ``random``), ``model_name``/``model_args`` (shape-defining arguments, which win
over the command line on resume) and ``config`` (``TrainConfig.to_dict()``); see
:class:`restore.state.TrainState`, which makes and restores it. Files are written through
:func:`scaling.contracts.atomic.atomic_open` (unique temp file, fsync, rename), so a crash never
leaves a half-written checkpoint.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from torch import nn

from scaling.contracts.atomic import atomic_open

from .models import MODELS, build_model

FORMAT = "mdf-restore-checkpoint"
VERSION = 1


def unwrap(model: nn.Module) -> nn.Module:
    """The plain network inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def rng_state() -> dict[str, Any]:
    """RNG states as tensors/plain types: torch CPU, all CUDA devices, Python ``random``."""
    py = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [py[0], list(py[1]), py[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA only when available)."""
    torch.set_rng_state(state["torch"])
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus format/version tags) atomically: temp file, fsync, rename."""
    path = Path(path)
    with atomic_open(path) as f:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, f)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; ``ValueError`` if missing or not ours."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle/zip errors come in many types
        raise ValueError(f"cannot read checkpoint {path}: {e}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a restore checkpoint (format {FORMAT!r})")
    if ckpt.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {ckpt.get('version')!r}, expected {VERSION}")
    return ckpt


def model_from_checkpoint(
    ckpt: dict[str, Any] | str | Path, expect_model: str | None = None
) -> nn.Module:
    """Rebuild the network of a checkpoint (architecture from ``model_args``) and load its weights.

    ``expect_model`` (optional) must match the stored model name; a state dict that does not fit the
    architecture raises ``ValueError`` listing the mismatching keys.
    """
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    name = ckpt.get("model_name")
    if name not in MODELS:
        raise ValueError(f"checkpoint has unknown model {name!r}")
    if expect_model is not None and name != expect_model:
        raise ValueError(f"checkpoint holds a {name!r} network, expected {expect_model!r}")
    args = dict(ckpt["model_args"])
    if "rgb_mean" in args:
        args["rgb_mean"] = tuple(args["rgb_mean"])
    model = build_model(name, **args)
    load_state_into(model, ckpt["model"])
    return model


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """``load_state_dict`` with a clear ``ValueError`` when the weights belong to another architecture."""
    own = unwrap(model).state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or extra or shapes:
        raise ValueError(
            "checkpoint weights do not fit this architecture: "
            f"missing {missing[:5]}, unexpected {extra[:5]}, shape mismatch {shapes[:5]}"
        )
    unwrap(model).load_state_dict(state)
