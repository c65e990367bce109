"""Degradations: bicubic x4 (DIV2K recipe), Gaussian noise, real JPEG (pure functions on arrays)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from restore.degrade import (
    Degradation,
    add_gaussian_noise,
    bicubic_downsample,
    jpeg_compress,
    mod_crop,
)
from restore.imresize import imresize
from restore.quality import psnr


@pytest.fixture
def photo():
    from skimage import data

    return data.astronaut()[100:228, 150:278]  # 128 x 128 uint8 RGB


def test_bicubic_downsample_is_mod_cropped_matlab_imresize_rounded(photo):
    img = photo[:126, :127]
    lr = bicubic_downsample(img, 4)
    assert lr.shape == (31, 31, 3) and lr.dtype == np.uint8
    ref = np.clip(np.round(imresize(mod_crop(img, 4).astype(np.float64), 0.25)), 0, 255)
    np.testing.assert_array_equal(lr, ref)


def test_gaussian_noise_has_requested_std_and_is_seeded(photo):
    clean = np.full((256, 256, 3), 128, np.uint8)
    noisy = add_gaussian_noise(clean, 25.0, np.random.default_rng(3))
    assert noisy.dtype == np.float32
    assert abs(float(np.std(noisy - 128 / 255)) * 255 - 25.0) < 0.5
    again = add_gaussian_noise(clean, 25.0, np.random.default_rng(3))
    np.testing.assert_array_equal(noisy, again)
    # sigma ~ U[0, 55]: different draws give different stds within the range
    stds = [np.std(add_gaussian_noise(clean, (0.0, 55.0), np.random.default_rng(s)) - 128 / 255) * 255
            for s in range(20)]  # fmt: skip
    assert 0 <= min(stds) and max(stds) <= 56 and np.ptp(stds) > 10


def test_jpeg_uses_a_real_codec_and_quality_matters(photo):
    q10, q90 = jpeg_compress(photo, 10), jpeg_compress(photo, 90)
    assert q10.shape == photo.shape and q10.dtype == np.uint8
    assert psnr(q10, photo) < psnr(q90, photo) - 5
    # identical to a libjpeg round trip through Pillow at the same quality
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JPEG", quality=10)
    np.testing.assert_array_equal(q10, np.asarray(Image.open(io.BytesIO(buf.getvalue()))))
    grey = jpeg_compress(photo[:, :, :1], 10)
    assert grey.shape == (128, 128, 1)


def test_degradation_validates_its_fields():
    with pytest.raises(ValueError, match="unknown task"):
        Degradation(task="deblur")
    with pytest.raises(ValueError, match="scale"):
        Degradation(task="sr", scale=5)
    with pytest.raises(ValueError, match="quality"):
        Degradation(task="jpeg", quality=0)
    with pytest.raises(ValueError, match="sigma"):
        Degradation(task="denoise", sigma=(10.0, 5.0))
    d = Degradation(task="denoise", sigma=(0.0, 55.0))
    assert Degradation.from_dict(d.to_dict()) == d
    assert Degradation(task="sisr") == Degradation(task="sr")  # MDF's name for the task
