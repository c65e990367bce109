"""Projected Distribution Loss (Delbracio, Talebi, Milanfar 2021) on VGG features + pixel L1."""

from __future__ import annotations

import os

import torch
from torch import nn

from metrics._utils import _check_reduction, _reduce, _validate_input
from metrics.pixel import with_pixel_term
from metrics.vgg import VGGFeatures


def sorted_wasserstein1d(fx: torch.Tensor, fy: torch.Tensor) -> torch.Tensor:
    r"""Mean over channels of the 1-D Wasserstein-1 distance between the spatial distributions
    of each feature channel: :math:`\frac{1}{C}\sum_c \frac{1}{HW}\sum_i
    |\mathrm{sort}(f_x^c)_i - \mathrm{sort}(f_y^c)_i|`. (N, C, H, W) -> (N,). Differentiable
    almost everywhere (gradients follow the sorting permutation)."""
    if fx.shape != fy.shape:
        raise ValueError(f"feature shapes differ: {tuple(fx.shape)} vs {tuple(fy.shape)}")
    sx = fx.flatten(2).sort(dim=-1).values
    sy = fy.flatten(2).sort(dim=-1).values
    return (sx - sy).abs().mean((1, 2))


class PDLLoss(nn.Module):
    r"""PDL: identity projections (each VGG channel compared as a 1-D distribution), summed over
    layers, plus a pixel L1 term:

    .. math::
        \mathcal{L}(x, y) = \lambda \sum_l W_1\bigl(\phi_l(x), \phi_l(y)\bigr)
        + w_1 \lVert x - y \rVert_1 / (CHW).

    Defaults: VGG16 ``relu4_3`` (the PDL paper's "VGG16 conv4" features), lambda = 1,
    ``l1_weight`` = 1. Lower is better.

    References:
        Delbracio, Talebi, Milanfar, "Projected Distribution Loss for Image Enhancement",
        ICCP 2021, arXiv:2012.09289.
    """

    lower_better = True

    def __init__(
        self,
        *,
        arch: str = "vgg16",
        layers: tuple[str, ...] = ("relu4_3",),
        weight: float = 1.0,
        l1_weight: float = 1.0,
        pretrained: bool | str | os.PathLike = True,
        reduction: str = "none",
    ):
        super().__init__()
        self.reduction = _check_reduction(reduction)
        self.weight, self.l1_weight = float(weight), float(l1_weight)
        self.trunk = VGGFeatures(arch, layers, pretrained)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _validate_input(x, y, name="pdl")
        with torch.no_grad():
            fys = self.trunk(y)
        fxs = self.trunk(x)
        val = sum(sorted_wasserstein1d(fx, fy) for fx, fy in zip(fxs, fys)) * self.weight
        return _reduce(with_pixel_term(val, x, y, self.l1_weight, "l1"), self.reduction)
