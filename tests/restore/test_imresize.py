"""MATLAB-compatible bicubic imresize: kernel weights, agreement with Pillow, exact properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from restore.imresize import _resize_matrix, cubic, imresize


def test_cubic_kernel_is_keys_with_a_minus_half():
    assert cubic(np.array([0.0, 1.0, 2.0, 3.0])).tolist() == [1.0, 0.0, 0.0, 0.0]
    # values derived by hand from Keys (1981), a = -0.5
    np.testing.assert_allclose(cubic(np.array([0.25, 0.75, 1.25, 1.75])),
                               [0.8671875, 0.2265625, -0.0703125, -0.0234375])  # fmt: skip


def test_half_size_weights_are_matlabs_antialiased_bicubic():
    # MATLAB imresize(x, 0.5): 8 taps 0.5 * cubic(0.5 * d), d = +-0.5, +-1.5, +-2.5, +-3.5
    row = _resize_matrix(32, 16, 0.5, True)[8]
    taps = row[row != 0]
    np.testing.assert_allclose(
        taps, [-0.01171875, -0.03515625, 0.11328125, 0.43359375,
               0.43359375, 0.11328125, -0.03515625, -0.01171875], atol=1e-12,
    )  # fmt: skip
    assert np.flatnonzero(row).tolist() == list(range(13, 21))  # centred on x = 2u - 0.5 (1-based)


def test_double_size_weights_without_antialiasing_kernel_stretch():
    row = _resize_matrix(8, 16, 2.0, True)[5]  # u = 6 -> x = 3.25 (1-based)
    np.testing.assert_allclose(row, [0, -0.0703125, 0.8671875, 0.2265625, -0.0234375, 0, 0, 0])


def test_rows_sum_to_one_and_borders_mirror():
    m = _resize_matrix(10, 3, 0.25, True)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    assert (m != 0).any(axis=0).all()  # mirrored taps land inside the image


def test_interior_agrees_with_pillow_bicubic():
    # Pillow also uses Keys a = -0.5 with a stretched support when shrinking; it only differs at
    # the borders (it truncates the kernel instead of mirroring)
    a = np.random.default_rng(0).random((64, 48)).astype(np.float32)
    ours = imresize(a, 0.25)
    pil = np.asarray(Image.fromarray(a, mode="F").resize((12, 16), Image.Resampling.BICUBIC))
    np.testing.assert_allclose(ours[2:-2, 2:-2], pil[2:-2, 2:-2], atol=1e-5)
    assert np.abs(ours - pil).max() > 1e-3  # the borders do differ (mirroring)


def test_linear_ramp_and_constant_are_reproduced_exactly():
    ramp = np.add.outer(np.arange(64.0), 2 * np.arange(48.0))
    out = imresize(ramp, 0.25)
    expect = np.add.outer(4 * np.arange(16) + 1.5, 2 * (4 * np.arange(12) + 1.5))
    np.testing.assert_allclose(out[2:-2, 2:-2], expect[2:-2, 2:-2], atol=1e-9)
    np.testing.assert_allclose(imresize(np.full((20, 30, 3), 0.3), 0.25), 0.3, atol=1e-12)


def test_shapes_types_and_layouts():
    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, (50, 41, 3), dtype=np.uint8)
    out = imresize(u8, 0.25)
    assert out.dtype == np.uint8 and out.shape == (13, 11, 3)  # ceil(50/4), ceil(41/4)
    t = torch.from_numpy(u8.astype(np.float32)).permute(2, 0, 1)[None]
    tout = imresize(t, 0.25)
    assert tout.dtype == torch.float32 and tout.shape == (1, 3, 13, 11)
    np.testing.assert_allclose(
        tout[0].permute(1, 2, 0).numpy(), imresize(u8.astype(np.float64), 0.25), atol=1e-3
    )
    assert imresize(u8, output_shape=(20, 30)).shape == (20, 30, 3)


def test_bad_arguments_raise():
    a = np.zeros((8, 8))
    with pytest.raises(ValueError, match="exactly one"):
        imresize(a)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(a, 0.5, output_shape=(4, 4))
    with pytest.raises(ValueError, match="positive"):
        imresize(a, -1.0)
    with pytest.raises(TypeError):
        imresize([[1, 2], [3, 4]], 0.5)
