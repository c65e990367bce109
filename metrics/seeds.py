"""Seed images for MDF Phase 1: bundled natural images and the paper's synthetic seeds.

The MDF paper (Mustafa et al., WACV 2022, section 5 and figure 7) trains its discriminators on a
single seed image and compares natural seeds with three synthetic ones: a pyramid permutation
(pixels permuted within each Laplacian-pyramid level of a natural image), pink noise (1/f^2 power
spectrum) and contrast rings (concentric rings whose contrast falls towards the centre). All
functions return float32 RGB arrays of shape (H, W, 3) in [0, 1].
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

#: Natural images bundled in scikit-image's wheel that work as seeds.
NATURAL = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "camera")
SYNTHETIC = ("pink-noise", "contrast-rings", "pyramid-permutation")


def _as_rgb01(img: np.ndarray) -> np.ndarray:
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    else:
        arr = arr.astype(np.float32)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"a seed image must be H x W (grey) or H x W x 3 (RGB), got {arr.shape}")
    return np.clip(arr[..., :3], 0.0, 1.0)


def natural_seed(name: str = "astronaut") -> np.ndarray:
    """A natural seed image shipped with scikit-image (``skimage.data.<name>``), RGB in [0, 1]."""
    if name not in NATURAL:
        raise ValueError(f"unknown natural seed {name!r}; choose one of {NATURAL}")
    from skimage import data

    return _as_rgb01(getattr(data, name)())


def pink_noise(size: int = 256, seed: int = 0) -> np.ndarray:
    """Pink noise: random phases with power spectrum 1/f^2 (amplitude 1/f), per RGB channel,
    each channel rescaled to [0, 1]."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    out = np.empty((size, size, 3), np.float32)
    for c in range(3):
        spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f
        spec[0, 0] = 0
        img = np.fft.irfft2(spec, s=(size, size))
        out[..., c] = (img - img.min()) / (np.ptp(img) + 1e-12)
    return out


def contrast_rings(size: int = 256, period: float = 8.0) -> np.ndarray:
    """Concentric grey rings (sinusoidal in the radius) whose contrast grows from 0 at the centre
    to 1 at the border, RGB in [0, 1]."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2
    r = np.hypot(x - c, y - c)
    contrast = np.clip(r / r.max(), 0, 1)
    img = 0.5 + 0.5 * contrast * np.sin(2 * np.pi * r / period)
    return np.repeat(img[..., None], 3, axis=2).astype(np.float32)


def pyramid_permutation(
    image: np.ndarray | None = None, levels: int = 5, seed: int = 0
) -> np.ndarray:
    """Permute the pixels of each Laplacian-pyramid level of a natural image, then collapse it.

    Keeps the image's per-band energy (its spectrum on average) while destroying its structure.
    Uses a Gaussian pyramid (sigma 1, factor 2) per channel; output rescaled to [0, 1].
    """
    from scipy.ndimage import gaussian_filter, zoom

    img = natural_seed("astronaut") if image is None else _as_rgb01(image)
    rng = np.random.default_rng(seed)
    out = np.empty_like(img)
    for ch in range(3):
        g = img[..., ch].astype(np.float64)
        bands, cur = [], g
        for _ in range(levels - 1):
            low = gaussian_filter(cur, 1.0)[::2, ::2]
            up = zoom(low, (cur.shape[0] / low.shape[0], cur.shape[1] / low.shape[1]), order=1)
            bands.append(cur - up)
            cur = low
        bands.append(cur)
        rec = rng.permutation(bands[-1].ravel()).reshape(bands[-1].shape)
        for band in reversed(bands[:-1]):
            rec = zoom(rec, (band.shape[0] / rec.shape[0], band.shape[1] / rec.shape[1]), order=1)
            rec = rec + rng.permutation(band.ravel()).reshape(band.shape)
        out[..., ch] = rec
    out -= out.min()
    return (out / (out.max() + 1e-12)).astype(np.float32)


def load_seed(spec: str) -> tuple[np.ndarray, str]:
    """Resolve a seed specification to (RGB image in [0, 1], description).

    ``spec`` is an image file path, a bundled natural image name (:data:`NATURAL`) or a synthetic
    seed name (:data:`SYNTHETIC`).
    """
    if spec in NATURAL:
        return natural_seed(spec), f"skimage.data.{spec}"
    if spec == "pink-noise":
        return pink_noise(), "pink-noise(size=256, seed=0)"
    if spec == "contrast-rings":
        return contrast_rings(), "contrast-rings(size=256, period=8)"
    if spec == "pyramid-permutation":
        return pyramid_permutation(), "pyramid-permutation(astronaut, levels=5, seed=0)"
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"seed image {spec!r} is neither a file nor one of {NATURAL + SYNTHETIC}")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return _as_rgb01(np.asarray(im.convert("RGB"))), str(path.name)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read seed image {path}: {exc}") from None


def image_sha256(img: np.ndarray) -> str:
    """SHA-256 of an image's float32 pixels and shape (provenance of trained weights)."""
    arr = np.ascontiguousarray(img, dtype=np.float32)
    h = hashlib.sha256(str(arr.shape).encode())
    h.update(arr.tobytes())
    return h.hexdigest()
