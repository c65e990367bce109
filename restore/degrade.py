"""Degradations of the paper's three tasks: bicubic x4 downsampling, Gaussian noise, JPEG.

* SR: MATLAB-compatible bicubic downsampling with antialiasing (:mod:`restore.imresize`), as DIV2K's
  LR images were made (Agustsson & Timofte, CVPR-W 2017); the HR image is first cropped to a
  multiple of the scale ("mod crop") so that LR and HR stay aligned; LR is rounded to 8 bits.
* Denoising: additive white Gaussian noise, sigma on the 0..255 scale, fixed or drawn from
  U[lo, hi] per image/patch (DnCNN-B: U[0, 55], Zhang et al., TIP 2017); not clipped.
* JPEG: a real codec (libjpeg through Pillow) at quality q (the paper trains at 10, tests 10 and 7).

All images here are numpy arrays (H, W, C) with C = 1 or 3, uint8 or float32 in [0, 1]; the
functions are pure (no file access). Test sets are degraded once with a fixed seed and saved by
:func:`restore.image_io.degrade_folder`, so every model sees the same inputs.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import numpy as np

from scaling.contracts.jpeg import jpeg_roundtrip
from scaling.contracts.tasks import canonical_task

from .imresize import imresize


@dataclass(frozen=True)
class Degradation:
    """What turns a clean image into a network input for one task (stored in checkpoints)."""

    task: str = "sr"  # sr | denoise | jpeg (aliases such as "sisr" are accepted)
    scale: int = 4  # SR downsampling factor
    sigma: float | tuple[float, float] = 25.0  # noise std (0..255 scale), or (lo, hi) for U[lo, hi]
    quality: int = 10  # JPEG quality (1..100)

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", canonical_task(self.task))  # ValueError if unknown
        if self.task == "sr" and self.scale not in (2, 3, 4):
            raise ValueError(f"SR scale must be 2, 3 or 4, got {self.scale!r}")
        if self.task == "jpeg" and not (1 <= int(self.quality) <= 100):
            raise ValueError(f"JPEG quality must be in 1..100, got {self.quality!r}")
        if self.task == "denoise":
            lo, hi = _sigma_range(self.sigma)
            if lo < 0 or hi < lo:
                raise ValueError(f"noise sigma must be >= 0 (or lo <= hi), got {self.sigma!r}")

    @property
    def out_scale(self) -> int:
        """Size ratio between clean and degraded image (the SR scale, else 1)."""
        return self.scale if self.task == "sr" else 1

    def to_dict(self) -> dict:
        """Plain-type dict (JSON/checkpoint friendly)."""
        d = asdict(self)
        if isinstance(d["sigma"], tuple):
            d["sigma"] = list(d["sigma"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Degradation:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        if isinstance(d.get("sigma"), list):
            d["sigma"] = tuple(d["sigma"])
        return cls(**d)


def _sigma_range(sigma: float | tuple[float, float] | list[float]) -> tuple[float, float]:
    if isinstance(sigma, (tuple, list)):
        if len(sigma) != 2:
            raise ValueError(f"sigma range must be (lo, hi), got {sigma!r}")
        return float(sigma[0]), float(sigma[1])
    return float(sigma), float(sigma)


def to_float(img: np.ndarray) -> np.ndarray:
    """uint8 (0..255) -> float32 in [0, 1]; float arrays are returned as float32 unchanged."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    return img.astype(np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8 with rounding and clipping."""
    if img.dtype == np.uint8:
        return img
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so height and width are multiples of ``scale`` (SR convention)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def bicubic_downsample(hr: np.ndarray, scale: int) -> np.ndarray:
    """LR = MATLAB ``imresize(modcrop(HR), 1/scale, 'bicubic')`` rounded to 8 bits (DIV2K's recipe).

    ``hr`` is uint8 (H, W, C); returns uint8 (H // scale, W // scale, C).
    """
    hr = mod_crop(hr, scale)
    if hr.shape[0] < scale or hr.shape[1] < scale:
        raise ValueError(f"image of size {hr.shape[1]}x{hr.shape[0]} is too small for x{scale}")
    lr = imresize(hr.astype(np.float64), 1.0 / scale)
    return np.clip(np.round(lr), 0, 255).astype(np.uint8)


def add_gaussian_noise(
    img: np.ndarray, sigma: float | tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """Clean image (uint8 or float in [0, 1]) + N(0, (sigma/255)^2), float32, not clipped.

    ``sigma`` is on the 0..255 scale; a pair (lo, hi) draws sigma ~ U[lo, hi] once per call.
    """
    lo, hi = _sigma_range(sigma)
    s = lo if hi == lo else float(rng.uniform(lo, hi))
    x = to_float(img)
    return (x + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(s / 255.0)).astype(
        np.float32
    )


def jpeg_compress(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode with libjpeg at ``quality``; uint8 (or float in [0, 1]) in, uint8 out.

    The round trip of :func:`scaling.contracts.jpeg.jpeg_roundtrip` (Pillow's encoder, 4:2:0 chroma
    subsampling for colour below quality 90); same shape as the input.
    """
    return jpeg_roundtrip(to_uint8(img), quality)


def degrade(clean: np.ndarray, deg: Degradation, rng: np.random.Generator) -> np.ndarray:
    """Degrade a whole clean uint8 image for ``deg.task``; returns float32 in [0, 1] (noise: unclipped).

    For SR the clean image must first be mod-cropped by the caller to stay aligned (see
    :func:`mod_crop`); this function crops anyway.
    """
    if deg.task == "sr":
        return to_float(bicubic_downsample(clean, deg.scale))
    if deg.task == "jpeg":
        return to_float(jpeg_compress(clean, deg.quality))
    return add_gaussian_noise(clean, deg.sigma, rng)


def image_seed(seed: int, image_id: str) -> np.random.Generator:
    """A generator that depends only on (seed, image id): subsets and orderings do not change noise."""
    return np.random.default_rng([int(seed), zlib.crc32(image_id.encode("utf-8"))])
