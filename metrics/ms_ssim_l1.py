"""The mixed MS-SSIM + L1 loss of Zhao et al. (2017)."""

from __future__ import annotations

import torch

from metrics._utils import FunctionModule, _reduce, _validate_input, takes_options_of
from metrics.functional.filters import filter_valid, gaussian_kernel1d
from metrics.ssim import MS_SSIM_WEIGHTS, ms_ssim


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")


@takes_options_of(ms_ssim, exclude=("weights",))
def ms_ssim_l1(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    alpha: float = 0.84,
    l1_sigma: float | None = None,
    reduction: str = "none",
    **options,
) -> torch.Tensor:
    r"""Mixed loss :math:`\alpha (1 - \mathrm{MS\text{-}SSIM}) + (1 - \alpha)\, G_\sigma * |x - y|`.

    The L1 map is averaged over channels, weighted by a Gaussian window (the same
    ``kernel_size`` window as MS-SSIM, std ``l1_sigma``, by default ``sigma``) applied at every
    'valid' position, then averaged over positions: the fully convolutional form of Zhao et
    al.'s per-patch loss. Small images use fewer MS-SSIM scales (see
    :func:`metrics.ssim.ms_ssim_levels`). ``options``: those of :func:`metrics.ssim.ms_ssim`
    (``data_range``, ``kernel_size``, ``sigma``, ...; the published scale weights). Lower is
    better.

    References:
        Zhao, Gallo, Frosio, Kautz, "Loss Functions for Image Restoration with Neural
        Networks", IEEE TCI 3(1), 2017, doi:10.1109/TCI.2016.2644865.
    """
    _check_alpha(alpha)
    data_range, kernel_size = options["data_range"], options["kernel_size"]
    _validate_input(x, y, data_range=data_range, min_size=kernel_size, name="ms_ssim_l1")
    ms = ms_ssim(x, y, weights=MS_SSIM_WEIGHTS, **options)
    g = gaussian_kernel1d(kernel_size, l1_sigma or options["sigma"], dtype=x.dtype, device=x.device)
    l1_map = filter_valid((x - y).abs().mean(1, keepdim=True), g)
    l1 = l1_map.mean((1, 2, 3)) / data_range
    return _reduce(alpha * (1 - ms) + (1 - alpha) * l1, reduction)


class MSSSIML1Loss(FunctionModule):
    """MS-SSIM + L1 loss module (Zhao et al., alpha 0.84; lower is better); options as
    :func:`ms_ssim_l1`, checked at construction."""

    function = staticmethod(ms_ssim_l1)

    def __init__(self, *, reduction: str = "none", **options):
        super().__init__(reduction=reduction, **options)
        _check_alpha(self.options["alpha"])
        gaussian_kernel1d(self.options["kernel_size"], self.options["sigma"])
        if self.options["matlab"]:
            raise ValueError(
                "MSSSIML1Loss: matlab=True (8-bit rounding, zero gradient) is for reporting, "
                "not for a training loss"
            )
