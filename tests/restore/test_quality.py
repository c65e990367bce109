"""PSNR/SSIM as SR papers report them."""

from __future__ import annotations

import numpy as np
import pytest

from restore.quality import psnr, rgb_to_y, ssim


def test_psnr_known_values():
    a = np.full((16, 16, 3), 100, np.uint8)
    assert psnr(a, a) == float("inf")
    b = a + 1  # MSE = 1 -> 20 log10(255) = 48.1308 dB
    assert psnr(a, b) == pytest.approx(48.130803608679, abs=1e-9)
    assert psnr(a.astype(np.float32) / 255, b) == pytest.approx(48.130803608679, abs=1e-9)


def test_y_channel_matches_matlab_rgb2ycbcr_range():
    white, black = np.full((1, 1, 3), 255, np.uint8), np.zeros((1, 1, 3), np.uint8)
    assert rgb_to_y(white)[0, 0, 0] == pytest.approx(235.0)
    assert rgb_to_y(black)[0, 0, 0] == pytest.approx(16.0)


def test_border_crop_and_ssim():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    b = a.copy()
    b[:2] = 0  # damage only the border
    assert psnr(a, b, shave=2) == float("inf") and psnr(a, b) < 30
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, b, y_channel=True) < 1.0
    with pytest.raises(ValueError, match="differ in size"):
        psnr(a, a[:10])
    with pytest.raises(ValueError, match="too small"):
        psnr(a, a, shave=16)
