"""Pixel-wise losses: L1 (mean absolute error) and L2 (mean squared error), also as the pixel
term that the feature losses (VGG, LPIPS, PDL) add to their distance."""

from __future__ import annotations

import torch

from metrics._utils import FunctionModule, _reduce, _validate_input


def _abs_error(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).abs().mean((1, 2, 3))


def _sq_error(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((x - y) ** 2).mean((1, 2, 3))


_PIXEL_ERRORS = {"l1": _abs_error, "l2": _sq_error}


def l1(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, reduction: str = "none"
) -> torch.Tensor:
    r"""Mean absolute error per image, :math:`\frac{1}{CHW}\sum |x - y|`, on the input scale.

    Args:
        x, y: (N, C, H, W) prediction and reference in ``[0, data_range]``.
        reduction: ``"none"`` (shape (N,)), ``"mean"`` or ``"sum"``.
    """
    _validate_input(x, y, data_range=data_range, name="l1")
    return _reduce(_abs_error(x, y), reduction)


def mse(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, reduction: str = "none"
) -> torch.Tensor:
    r"""Mean squared error per image, :math:`\frac{1}{CHW}\sum (x - y)^2` (the "L2" loss of
    the MDF paper, no square root), on the input scale."""
    _validate_input(x, y, data_range=data_range, name="l2")
    return _reduce(_sq_error(x, y), reduction)


def with_pixel_term(
    value: torch.Tensor, x: torch.Tensor, y: torch.Tensor, weight: float, kind: str = "l2"
) -> torch.Tensor:
    """``value + weight * L(x, y)`` per image, L the mean absolute (``kind="l1"``) or squared
    (``"l2"``) error over (C, H, W); ``value`` itself when ``weight`` is 0. For losses that
    add a pixel term to a feature distance (VGG, LPIPS: L2; PDL: L1); the inputs are taken as
    already validated."""
    if not weight:
        return value
    return value + weight * _PIXEL_ERRORS[kind](x, y)


class L1Loss(FunctionModule):
    """L1 loss module (lower is better); options as :func:`l1` (``data_range``)."""

    function = staticmethod(l1)


class L2Loss(FunctionModule):
    """L2 (MSE) loss module (lower is better); options as :func:`mse` (``data_range``)."""

    function = staticmethod(mse)
