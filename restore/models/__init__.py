"""Restoration networks, each with a config dataclass, and one factory :func:`build_model`."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from torch import nn

from .dncnn import DnCNN, DnCNNConfig
from .edsr import EDSR, EDSRConfig
from .srresnet import SRResNet, SRResNetConfig

#: model name -> (network class, config class, preset overrides)
MODELS: dict[str, tuple[type[nn.Module], type, dict[str, Any]]] = {
    "edsr": (EDSR, EDSRConfig, {}),  # baseline: 16 blocks, 64 features
    "edsr_baseline": (EDSR, EDSRConfig, {}),
    "edsr_full": (EDSR, EDSRConfig, {"n_resblocks": 32, "n_feats": 256, "res_scale": 0.1}),
    "srresnet": (SRResNet, SRResNetConfig, {}),
    "dncnn": (DnCNN, DnCNNConfig, {}),
}

#: models that upscale (their inputs are the low-resolution images)
SR_MODELS = ("edsr", "edsr_baseline", "edsr_full", "srresnet")


def model_config(name: str, **opts: Any) -> Any:
    """Return the config dataclass of model ``name`` with preset defaults overridden by ``opts``.

    Raises ``ValueError`` for an unknown model or option, naming the valid ones.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    _, cfg_cls, preset = MODELS[name]
    valid = {f.name for f in fields(cfg_cls)}
    unknown = sorted(set(opts) - valid)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for model {name!r}; valid: {sorted(valid)}")
    return cfg_cls(**{**preset, **opts})


def build_model(name: str, **opts: Any) -> nn.Module:
    """Build restoration network ``name`` (edsr, edsr_full, srresnet, dncnn) with config options.

    Example: ``build_model("edsr", scale=4)`` is the EDSR baseline x4 (1,517,571 parameters,
    Lim et al. 2017); ``build_model("dncnn", channels=1, depth=17)`` has 556,096.
    """
    cfg = model_config(name, **opts)  # raises ValueError for an unknown name or option
    return MODELS[name][0](cfg)


def model_args(model: nn.Module) -> dict[str, Any]:
    """The shape-defining arguments of a network built by :func:`build_model`, as plain types."""
    cfg = getattr(model, "config", None)
    if cfg is None:
        raise TypeError(f"{type(model).__name__} has no config dataclass")
    out = asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "EDSR",
    "MODELS",
    "SR_MODELS",
    "DnCNN",
    "DnCNNConfig",
    "EDSRConfig",
    "SRResNet",
    "SRResNetConfig",
    "build_model",
    "count_parameters",
    "model_args",
    "model_config",
]  # fmt: skip
