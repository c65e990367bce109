"""Peak signal-to-noise ratio (a quality metric; not offered as a loss)."""

from __future__ import annotations

import torch

from metrics._utils import FunctionModule, _reduce, _validate_input


def psnr(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float = 1.0,
    eps: float = 1e-10,
    reduction: str = "none",
) -> torch.Tensor:
    r"""PSNR in dB per image: :math:`10 \log_{10}(L^2 / \mathrm{MSE}(x, y))`, L = ``data_range``.

    The MSE is taken over all channels and pixels of each image; ``eps`` bounds the value of
    identical images (100 dB for L = 1). Higher is better.
    """
    _validate_input(x, y, data_range=data_range, name="psnr")
    m = ((x.double() - y.double()) ** 2).mean((1, 2, 3))
    val = 10 * torch.log10(data_range**2 / (m + eps))
    return _reduce(val.to(x.dtype), reduction)


class PSNR(FunctionModule):
    """PSNR metric module (dB, higher is better); options as :func:`psnr` (``data_range``,
    ``eps``)."""

    function = staticmethod(psnr)
    lower_better = False
    as_loss = False
