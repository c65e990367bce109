"""The mixed MS-SSIM + L1 loss of Zhao et al. (2017)."""

from __future__ import annotations

import torch
from torch import nn

from metrics._utils import _check_reduction, _reduce, _validate_input
from metrics.functional.filters import filter_valid, gaussian_kernel1d
from metrics.ssim import MS_SSIM_WEIGHTS, ms_ssim


def ms_ssim_l1(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    alpha: float = 0.84,
    data_range: float = 1.0,
    kernel_size: int = 11,
    sigma: float = 1.5,
    l1_sigma: float | None = None,
    reduction: str = "none",
) -> torch.Tensor:
    r"""Mixed loss :math:`\alpha (1 - \mathrm{MS\text{-}SSIM}) + (1 - \alpha)\, G_\sigma * |x - y|`.

    The L1 map is averaged over channels, weighted by a Gaussian window (the same
    ``kernel_size`` window as MS-SSIM, std ``l1_sigma``, by default ``sigma``) applied at every
    'valid' position, then averaged over positions: the fully convolutional form of Zhao et
    al.'s per-patch loss. Small images use fewer MS-SSIM scales (see
    :func:`metrics.ssim.ms_ssim_levels`). Lower is better.

    References:
        Zhao, Gallo, Frosio, Kautz, "Loss Functions for Image Restoration with Neural
        Networks", IEEE TCI 3(1), 2017, doi:10.1109/TCI.2016.2644865.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    _validate_input(x, y, data_range=data_range, min_size=kernel_size, name="ms_ssim_l1")
    ms = ms_ssim(
        x, y, data_range=data_range, kernel_size=kernel_size, sigma=sigma, weights=MS_SSIM_WEIGHTS
    )
    g = gaussian_kernel1d(kernel_size, l1_sigma or sigma, dtype=x.dtype, device=x.device)
    l1_map = filter_valid((x - y).abs().mean(1, keepdim=True), g)
    l1 = l1_map.mean((1, 2, 3)) / data_range
    return _reduce(alpha * (1 - ms) + (1 - alpha) * l1, reduction)


class MSSSIML1Loss(nn.Module):
    """MS-SSIM + L1 loss module (Zhao et al., alpha 0.84; lower is better); see
    :func:`ms_ssim_l1`."""

    lower_better = True

    def __init__(
        self,
        *,
        alpha: float = 0.84,
        reduction: str = "none",
        data_range: float = 1.0,
        kernel_size: int = 11,
        sigma: float = 1.5,
        l1_sigma: float | None = None,
    ):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        gaussian_kernel1d(kernel_size, sigma)
        self.reduction = _check_reduction(reduction)
        self.options = {
            "alpha": alpha,
            "data_range": data_range,
            "kernel_size": kernel_size,
            "sigma": sigma,
            "l1_sigma": l1_sigma,
        }

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ms_ssim_l1(x, y, reduction=self.reduction, **self.options)
