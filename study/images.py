"""Images for attention checks: a heavily distorted copy of a reference image, and a twin of it.

An attention check shows the reference on one side and this distorted copy on the other, so any
attentive participant picks the reference (the paper's "comparisons with an obvious answer",
Mustafa et al. WACV 2022 section 4.3). The distortion is a Gaussian blur of radius
``max(2, min(w, h) / 30)`` pixels plus Gaussian noise of standard deviation 40 (0..255 scale),
deterministic for a given file.

Checks are blind: the "reference" side of a check is served as a twin of the reference
(:func:`reference_twin_png`: one in eight colour values moved by one level, invisible), so a
script cannot spot a check, or its right side, by finding the reference's bytes among the
candidates. (A program that measures pixel differences can still tell, as it can answer any
trial.)
"""

from __future__ import annotations

import functools
import io
import zlib
from pathlib import Path

__all__ = ["closer_to_reference", "distorted_png", "reference_twin_png"]


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


@functools.lru_cache(maxsize=256)
def reference_twin_png(path: Path) -> bytes:
    """PNG bytes of the image at ``path`` with one colour value in eight moved by one level
    (+1, or -1 at 255; deterministic per file): pixel-different from the file, invisibly so."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.int16)
    rng = np.random.default_rng(zlib.crc32(b"twin:" + str(path).encode()))
    step = np.where(arr == 255, -1, 1) * (rng.random(arr.shape) < 0.125)
    out = Image.fromarray((arr + step).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()


def closer_to_reference(pngs: dict[str, bytes]) -> str:
    """The side (left/right) whose PNG (``pngs``: slot -> bytes) differs least from the
    reference's, by mean absolute pixel difference: how a simulated participant tells the
    reference's twin from the distorted copy in a check."""
    import numpy as np
    from PIL import Image

    arr = {k: np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), float) for k, b in pngs.items()}
    d = {s: np.abs(arr[s] - arr["reference"]).mean() for s in ("left", "right")}
    return "left" if d["left"] <= d["right"] else "right"
