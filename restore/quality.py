"""Objective quality as SR/denoising papers report it: PSNR and SSIM, optionally on Y with a border crop.

* Y channel: ITU-R BT.601 luma as MATLAB's ``rgb2ycbcr`` computes it (range 16..235 on the 0..255
  scale), the convention of EDSR/SRResNet papers' tables.
* Border crop (``shave``): SR papers discard ``scale`` pixels at each border.
* SSIM: Wang et al., IEEE TIP 13(4), 2004: Gaussian window sigma 1.5, K1 = 0.01, K2 = 0.03, on
  data range 255, computed with scikit-image per channel and averaged.
Images are numpy arrays (H, W, C) uint8, or float in [0, 1] (rounded to 8 bits first, as saved
outputs would be).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from .degrade import to_uint8


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB image on the 0..255 scale (16..235), float64 (H, W, 1); grey passes through."""
    a = to_uint8(img).astype(np.float64)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] == 1:
        return a
    y = 16.0 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255.0
    return y[:, :, None]


def _prepare(
    a: np.ndarray, b: np.ndarray, y_channel: bool, shave: int
) -> tuple[np.ndarray, np.ndarray]:
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"images differ in size: {a.shape[:2]} vs {b.shape[:2]}")
    if y_channel:
        a, b = rgb_to_y(a), rgb_to_y(b)
    else:
        a, b = to_uint8(a).astype(np.float64), to_uint8(b).astype(np.float64)
        a = a[:, :, None] if a.ndim == 2 else a
        b = b[:, :, None] if b.ndim == 2 else b
    if a.shape[2] != b.shape[2]:
        raise ValueError(f"images differ in channels: {a.shape[2]} vs {b.shape[2]}")
    if shave:
        if min(a.shape[:2]) <= 2 * shave:
            raise ValueError(
                f"image {a.shape[1]}x{a.shape[0]} too small for a {shave}px border crop"
            )
        a, b = a[shave:-shave, shave:-shave], b[shave:-shave, shave:-shave]
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, y_channel: bool = False, shave: int = 0) -> float:
    """Peak signal-to-noise ratio in dB (peak 255) after 8-bit rounding; ``inf`` for identical images."""
    a, b = _prepare(a, b, y_channel, shave)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, y_channel: bool = False, shave: int = 0) -> float:
    """Mean SSIM (Wang et al. 2004; Gaussian window, sigma 1.5, data range 255), averaged over channels."""
    a, b = _prepare(a, b, y_channel, shave)
    vals = [
        structural_similarity(
            a[..., c],
            b[..., c],
            data_range=255.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for c in range(a.shape[2])
    ]
    return float(np.mean(vals))
