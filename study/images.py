"""Images for attention checks: a heavily distorted copy of a reference image.

An attention check shows the reference itself on one side and this distorted copy on the other,
so any attentive participant picks the reference (the paper's "comparisons with an obvious
answer", Mustafa et al. WACV 2022 section 4.3). The distortion is a Gaussian blur of radius
``max(2, min(w, h) / 30)`` pixels plus Gaussian noise of standard deviation 40 (0..255 scale),
deterministic for a given file.
"""

from __future__ import annotations

import functools
import io
import zlib
from pathlib import Path

__all__ = ["distorted_png"]


@functools.lru_cache(maxsize=256)
def distorted_png(path: Path) -> bytes:
    """PNG bytes of a heavily blurred and noisy copy of the image at ``path`` (same size)."""
    import numpy as np
    from PIL import Image, ImageFilter

    with Image.open(path) as im:
        rgb = im.convert("RGB")
    w, h = rgb.size
    blurred = rgb.filter(ImageFilter.GaussianBlur(radius=max(2.0, min(w, h) / 30.0)))
    rng = np.random.default_rng(zlib.crc32(str(path).encode()))
    arr = np.asarray(blurred, dtype=np.float32) + rng.normal(0.0, 40.0, size=(h, w, 3))
    out = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()
