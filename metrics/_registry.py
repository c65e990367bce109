"""``create(name, **options)`` and ``available()``: every loss of the study by name."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from metrics._utils import _check_reduction, _reduce


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., nn.Module]
    description: str
    takes_as_loss: bool  # similarity metrics: as_loss switches 1 - value / value
    metric_only: bool = False


def _lazy(module: str, cls: str) -> Callable[..., nn.Module]:
    def make(**options):
        import importlib

        return getattr(importlib.import_module(module), cls)(**options)

    return make


_REGISTRY: dict[str, _Entry] = {
    "l1": _Entry(_lazy("metrics.pixel", "L1Loss"), "mean absolute error (L1)", False),
    "l2": _Entry(_lazy("metrics.pixel", "L2Loss"), "mean squared error (L2, alias mse)", False),
    "psnr": _Entry(
        _lazy("metrics.psnr", "PSNR"),
        "peak signal-to-noise ratio, dB (metric only)",
        False,
        metric_only=True,
    ),
    "ssim": _Entry(
        _lazy("metrics.ssim", "SSIMLoss"),
        "SSIM (Wang et al. 2004); loss 1 - SSIM; matlab=True for reporting",
        True,
    ),
    "ms_ssim": _Entry(
        _lazy("metrics.ssim", "MSSSIMLoss"),
        "multi-scale SSIM (Wang et al. 2003); loss 1 - MS-SSIM",
        True,
    ),
    "ms_ssim_l1": _Entry(
        _lazy("metrics.ms_ssim_l1", "MSSSIML1Loss"),
        "0.84 (1 - MS-SSIM) + 0.16 Gaussian-weighted L1 (Zhao et al. 2017)",
        False,
    ),
    "vgg": _Entry(
        _lazy("metrics.vgg", "VGGLoss"),
        "VGG16/19 feature distance + l2_weight * L2 (lambda 1, paper)",
        True,
    ),
    "lpips": _Entry(
        _lazy("metrics.lpips_loss", "LPIPSLoss"),
        "LPIPS alex/vgg (Zhang et al. 2018) + L2 (lambda 0.1, paper)",
        True,
    ),
    "pdl": _Entry(
        _lazy("metrics.pdl", "PDLLoss"),
        "projected distribution loss on VGG features + pixel L1 (Delbracio et al.)",
        False,
    ),
    "mdf": _Entry(
        _lazy("metrics.mdf", "MDFLoss"),
        "multi-scale discriminative features (Mustafa et al. 2022); task= and/or weights=",
        False,
    ),
}
_ALIASES = {"mse": "l2"}


def available() -> dict[str, str]:
    """Names accepted by :func:`create`, each with a one-line description."""
    out = {name: e.description for name, e in _REGISTRY.items()}
    out.update({a: f"alias of {t}" for a, t in _ALIASES.items()})
    return out


def _create_one(name: str, options: dict, *, in_expression: bool = False) -> nn.Module:
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(sorted(available()))}")
    entry = _REGISTRY[key]
    options = dict(options)
    if in_expression and key in ("vgg", "lpips"):
        # the expression states the weights: the term is the bare feature distance
        options.setdefault("weight", 1.0)
        options.setdefault("l2_weight", 0.0)
    as_loss = options.pop("as_loss", None)
    if entry.metric_only and as_loss:
        raise ValueError(f"{key} is a metric only; it cannot be created with as_loss=True")
    if entry.takes_as_loss and as_loss is not None:
        options["as_loss"] = bool(as_loss)
    module = entry.factory(**options)
    module.metric_name = key
    return module


_TERM = re.compile(r"^\s*(?:([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*\*\s*)?([a-z_0-9]+)\s*$")


class WeightedSum(nn.Module):
    """Sum of weighted losses, e.g. ``create("l2 + 0.1*lpips")``; lower is better."""

    lower_better = True

    def __init__(self, terms: list[tuple[float, nn.Module]], reduction: str = "none"):
        super().__init__()
        self.weights = [w for w, _ in terms]
        self.terms = nn.ModuleList([m for _, m in terms])
        self.reduction = _check_reduction(reduction)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        val = sum(w * m(x, y) for w, m in zip(self.weights, self.terms))
        return _reduce(val, self.reduction)


def create(name: str, **options) -> nn.Module:
    """Create a loss/metric module by name (see :func:`available`).

    ``m(x, y)`` takes NCHW float tensors (RGB or, where the metric allows, grey) in [0, 1]
    and returns one value per image, shape (N,) (``reduction="mean"`` for training). Each
    module has ``lower_better``. Similarity metrics (ssim, ms_ssim, vgg, lpips) take
    ``as_loss``: True (default) gives the loss form (e.g. 1 - SSIM), False the familiar metric
    value. ``name`` may also be a weighted sum such as ``"l2 + 0.1*lpips"``: each term is built
    as a loss with default options, except that vgg and lpips terms are the bare feature
    distance (``weight=1``, ``l2_weight=0``: the expression states the weights), and options
    given as a dict under the term's name, e.g. ``create("l2 + 0.1*lpips", lpips={"net":
    "vgg"})``.

    Raises:
        ValueError: unknown name or option values; TypeError: unknown option names.
    """
    if not isinstance(name, str):
        raise TypeError(f"metric name must be a string, got {type(name).__name__}")
    if "+" not in name and "*" not in name:
        return _create_one(name.strip().lower(), options)
    reduction = options.pop("reduction", "none")
    terms = []
    for part in name.lower().split("+"):
        m = _TERM.match(part)
        if not m:
            raise ValueError(f"cannot parse term {part!r} of {name!r}; expected [weight*]name")
        weight, term = float(m.group(1) or 1.0), m.group(2)
        sub = options.pop(term, {})
        if not isinstance(sub, dict):
            raise TypeError(f"options for term {term!r} must be a dict, got {type(sub).__name__}")
        terms.append((weight, _create_one(term, sub, in_expression=True)))
    if options:
        raise TypeError(f"unused options {sorted(options)} for expression {name!r}")
    return WeightedSum(terms, reduction)
