"""A small TID2013-layout data set built from bundled images, with synthetic "subjective" scores.

The demo (and the paper protocol's test) score every loss as a quality metric on it, to check the
loss-as-metric pipeline (:mod:`metrics.iqa`) end to end without the real TID2013. The scores come
from a made-up observer, not from people: they show the plumbing working, nothing about the losses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scaling.contracts.jpeg import jpeg_roundtrip

#: distortion type -> the made-up observer's sensitivity (noise, blur, JPEG, contrast)
SENSITIVITY = {1: 1.0, 2: 0.7, 3: 0.9, 4: 0.5}
#: JPEG quality of the three levels of distortion 3
JPEG_QUALITY = (40, 15, 5)


def _distort(img: np.ndarray, kind: int, level: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageFilter

    arr = img.astype(np.float32)
    if kind == 1:
        arr = arr + rng.normal(0, 8 * level, arr.shape)
    elif kind == 2:
        blurred = Image.fromarray(img).filter(ImageFilter.GaussianBlur(0.8 * level))
        arr = np.asarray(blurred, np.float32)
    elif kind == 3:
        arr = jpeg_roundtrip(img, JPEG_QUALITY[level - 1]).astype(np.float32)
    else:
        arr = 128 + (arr - 128) * (1 - 0.25 * level)
    return np.clip(arr, 0, 255).astype(np.uint8)


def make_tid_like(folder, names=("astronaut", "coffee", "chelsea", "rocket"),
                  seed: int = 0) -> Path:
    """Write a TID2013-layout set into ``folder`` and return it.

    Layout: ``reference_images/I01.BMP``..., ``distorted_images/i01_<type>_<level>.bmp`` and
    ``mos_with_names.txt``; ``len(names)`` references (192 x 192 crops of scikit-image's bundled
    images) x 4 distortions (noise, blur, JPEG, contrast) x 3 levels. The "MOS" is
    ``7 - 1.5 * sensitivity * level`` plus Gaussian noise (sd 0.3), from ``seed``.
    """
    from PIL import Image
    from skimage import data

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    (folder / "reference_images").mkdir(parents=True, exist_ok=True)
    (folder / "distorted_images").mkdir(exist_ok=True)
    lines = []
    for r, name in enumerate(names, 1):
        img = np.ascontiguousarray(getattr(data, name)()[:192, :192, :3])
        Image.fromarray(img).save(folder / "reference_images" / f"I{r:02d}.BMP")
        for kind, sensitivity in SENSITIVITY.items():
            for level in (1, 2, 3):
                fname = f"i{r:02d}_{kind:02d}_{level}.bmp"
                Image.fromarray(_distort(img, kind, level, rng)).save(
                    folder / "distorted_images" / fname)
                mos = 7 - sensitivity * 1.5 * level + rng.normal(0, 0.3)
                lines.append(f"{mos:.4f} {fname}")
    (folder / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    return folder
