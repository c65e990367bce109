"""Pixel-wise losses: L1 (mean absolute error) and L2 (mean squared error)."""

from __future__ import annotations

import torch
from torch import nn

from metrics._utils import _check_reduction, _reduce, _validate_input


def l1(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, reduction: str = "none"
) -> torch.Tensor:
    r"""Mean absolute error per image, :math:`\frac{1}{CHW}\sum |x - y|`, on the input scale.

    Args:
        x, y: (N, C, H, W) prediction and reference in ``[0, data_range]``.
        reduction: ``"none"`` (shape (N,)), ``"mean"`` or ``"sum"``.
    """
    _validate_input(x, y, data_range=data_range, name="l1")
    return _reduce((x - y).abs().mean((1, 2, 3)), reduction)


def mse(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, reduction: str = "none"
) -> torch.Tensor:
    r"""Mean squared error per image, :math:`\frac{1}{CHW}\sum (x - y)^2` (the "L2" loss of
    the MDF paper, no square root), on the input scale."""
    _validate_input(x, y, data_range=data_range, name="l2")
    return _reduce(((x - y) ** 2).mean((1, 2, 3)), reduction)


class L1Loss(nn.Module):
    """L1 loss module (lower is better); see :func:`l1`."""

    lower_better = True

    def __init__(self, *, reduction: str = "none", data_range: float = 1.0):
        super().__init__()
        self.reduction = _check_reduction(reduction)
        self.data_range = data_range

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return l1(x, y, data_range=self.data_range, reduction=self.reduction)


class L2Loss(nn.Module):
    """L2 (MSE) loss module (lower is better); see :func:`mse`."""

    lower_better = True

    def __init__(self, *, reduction: str = "none", data_range: float = 1.0):
        super().__init__()
        self.reduction = _check_reduction(reduction)
        self.data_range = data_range

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return mse(x, y, data_range=self.data_range, reduction=self.reduction)
