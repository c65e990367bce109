"""Separable Gaussian filtering and MATLAB-compatible colour conversions."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_kernel1d(size: int, sigma: float, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian window of odd ``size`` and std ``sigma`` (pixels).

    The outer product of two such windows equals MATLAB's ``fspecial('gaussian', size, sigma)``
    used by Wang et al.'s ``ssim_index.m``.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"Gaussian window size must be odd and positive, got {size}")
    if sigma <= 0:
        raise ValueError(f"Gaussian sigma must be positive, got {sigma}")
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def filter_valid(x: torch.Tensor, kernel1d: torch.Tensor) -> torch.Tensor:
    """Correlate every channel of ``x`` (N, C, H, W) with the separable 2-D ``kernel1d``
    outer product, keeping only the 'valid' part: output (N, C, H-k+1, W-k+1)."""
    c = x.shape[1]
    k = kernel1d.to(dtype=x.dtype, device=x.device)
    kh = k.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    kw = k.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    return F.conv2d(F.conv2d(x, kh, groups=c), kw, groups=c)


def rgb_to_grey_matlab(x: torch.Tensor, *, data_range: float = 1.0, quantize: bool = True):
    """MATLAB ``rgb2gray``: 0.2989 R + 0.5870 G + 0.1140 B (N, 3, H, W) -> (N, 1, H, W).

    With ``quantize`` the input is taken as 8-bit (rounded to integers on the 0..255 scale) and
    the result rounded half away from zero to 8 bits, as MATLAB does for uint8 images, which
    is what reproduces the published SSIM values of TID2013 (Wang et al., ``ssim_index.m``).
    The output stays on the input scale ``[0, data_range]``.
    """
    if x.shape[1] == 1:
        return x
    if not quantize:
        w = torch.tensor([0.2989, 0.5870, 0.1140], dtype=x.dtype, device=x.device)
        return (x * w.view(1, 3, 1, 1)).sum(1, keepdim=True)
    # MATLAB on uint8: integer inputs, weighted sum in double, round half away from zero.
    v = torch.round(x.double() * (255.0 / data_range))
    g = 0.2989 * v[:, 0:1] + 0.5870 * v[:, 1:2] + 0.1140 * v[:, 2:3]
    g = torch.floor(g + 0.5).clamp(0, 255)
    return (g * (data_range / 255.0)).to(x.dtype)


def rgb_to_y(x: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Luma Y of ITU-R BT.601 as MATLAB's ``rgb2ycbcr`` (range 16..235 of 255), on the input
    scale: (N, 3, H, W) -> (N, 1, H, W)."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor([65.481, 128.553, 24.966], dtype=x.dtype, device=x.device) / 255.0
    return (x * w.view(1, 3, 1, 1)).sum(1, keepdim=True) + 16.0 / 255.0 * data_range


def matlab_downsample2(x: torch.Tensor) -> torch.Tensor:
    """MS-SSIM's downsampling: MATLAB ``imfilter(img, ones(2)/4, 'symmetric', 'same')`` then
    ``img(1:2:end, 1:2:end)``.

    MATLAB centres a 2x2 kernel on its top-left element, so output pixel (i, j) averages
    pixels (i..i+1, j..j+1), with the last row/column mirrored when a side is odd. Hence:
    replicate-pad one pixel at the bottom/right of odd sides, then 2x2 average pooling.
    Output size ceil(H/2) x ceil(W/2).
    """
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(x, 2)
