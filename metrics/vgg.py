"""VGG feature (perceptual) loss, optionally combined with L2."""

from __future__ import annotations

import os

import torch
from torch import nn

from metrics._pretrained import build_features, warn_random_trunk
from metrics._utils import _check_reduction, _reduce, _to_rgb, _validate_input
from metrics.pixel import with_pixel_term

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg_layer_names(features: nn.Sequential) -> list[str]:
    """Names of the layers of a torchvision VGG ``features`` block: ``conv1_1``, ``relu1_1``,
    ..., ``pool1``, ``conv2_1``, ... (block index, then layer index within the block)."""
    names, block, i = [], 1, 1
    for m in features:
        if isinstance(m, nn.Conv2d):
            names.append(f"conv{block}_{i}")
        elif isinstance(m, nn.ReLU):
            names.append(f"relu{block}_{i}")
            i += 1
        elif isinstance(m, nn.MaxPool2d):
            names.append(f"pool{block}")
            block, i = block + 1, 1
        else:  # pragma: no cover - torchvision VGG has nothing else
            names.append(type(m).__name__.lower())
    return names


class VGGFeatures(nn.Module):
    """Frozen VGG16/19 trunk up to the deepest requested layer, returning the requested
    activations of ImageNet-normalised [0, 1] RGB input (grey is repeated to RGB).
    ``pretrained=False`` (random weights) warns with
    :class:`metrics._pretrained.RandomWeightsWarning`."""

    def __init__(
        self,
        arch: str = "vgg16",
        layers: tuple[str, ...] = ("relu2_2",),
        pretrained: bool | str | os.PathLike = True,
    ):
        super().__init__()
        if arch not in ("vgg16", "vgg19"):
            raise ValueError(f"arch must be 'vgg16' or 'vgg19', got {arch!r}")
        features = build_features(arch, pretrained)
        if pretrained is False:
            warn_random_trunk(f"{arch} features")
        names = vgg_layer_names(features)
        layers = tuple(layers)
        if not layers:
            raise ValueError("at least one VGG layer is needed")
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise ValueError(f"unknown {arch} layers {unknown}; known: {', '.join(names)}")
        last = max(names.index(n) for n in layers)
        for m in features:
            if isinstance(m, nn.ReLU):
                m.inplace = False  # keep every requested activation intact
        self.features = features[: last + 1]
        self.names, self.layers = names[: last + 1], layers
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:
        """The trunk has no train-mode behaviour to switch; kept in eval mode."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (_to_rgb(x) - self.mean) / self.std
        out = {}
        for name, m in zip(self.names, self.features):
            h = m(h)
            if name in self.layers:
                out[name] = h
        return [out[n] for n in self.layers]


class VGGLoss(nn.Module):
    r"""VGG feature loss (Johnson et al.) plus an optional L2 term:

    .. math::
        \mathcal{L}(x, y) = w_{2}\,\mathrm{MSE}(x, y) + \lambda \sum_{l}
        \operatorname{mean}_{c,h,w}\bigl(\phi_l(x) - \phi_l(y)\bigr)^2,

    with :math:`\phi_l` the VGG activations of the chosen layers of ImageNet-normalised input.
    Paper defaults (MDF, WACV 2022): lambda = ``weight`` = 1, ``l2_weight`` = 1; the authors'
    script used VGG16 x 0.01 + MSE. Lower is better. As a metric (``as_loss=False``) the L2
    term defaults to 0.

    Args:
        arch: ``"vgg16"`` or ``"vgg19"``. layers: e.g. ``("relu2_2",)`` (default) or
        ``("relu5_4",)`` for VGG19 as in SRGAN. pretrained: True (torch cache), a path, or
        False (random; tests only).

    References:
        Johnson, Alahi, Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
        Super-Resolution", ECCV 2016; Simonyan & Zisserman, "Very Deep Convolutional Networks
        for Large-Scale Image Recognition", ICLR 2015.
    """

    lower_better = True

    def __init__(
        self,
        *,
        arch: str = "vgg16",
        layers: tuple[str, ...] = ("relu2_2",),
        weight: float = 1.0,
        l2_weight: float | None = None,
        as_loss: bool = True,
        pretrained: bool | str | os.PathLike = True,
        reduction: str = "none",
    ):
        super().__init__()
        self.reduction = _check_reduction(reduction)
        self.weight = float(weight)
        self.l2_weight = float(l2_weight if l2_weight is not None else (1.0 if as_loss else 0.0))
        self.as_loss = as_loss
        self.trunk = VGGFeatures(arch, layers, pretrained)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _validate_input(x, y, name="vgg")
        with torch.no_grad():
            fys = self.trunk(y)
        fxs = self.trunk(x)
        val = sum(((fx - fy) ** 2).mean((1, 2, 3)) for fx, fy in zip(fxs, fys)) * self.weight
        return _reduce(with_pixel_term(val, x, y, self.l2_weight, "l2"), self.reduction)
