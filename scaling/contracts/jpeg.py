"""The JPEG round trip (encode, then decode) with libjpeg through Pillow, defined once.

Used for the JPEG artefact-removal task (``restore``'s degradation, MDF Phase 1's distortion,
the demo's TID2013-layout distortions). Pillow's encoder with its defaults: baseline, 4:2:0 chroma
subsampling for colour below quality 90 (libjpeg's standard tables scaled by ``quality``).
"""

from __future__ import annotations

import io

import numpy as np

__all__ = ["jpeg_bytes", "jpeg_roundtrip"]


def _to_uint8(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype == np.uint8:
        return a
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"JPEG input must be uint8 or float in [0, 1], got {a.dtype}")
    return np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)


def jpeg_bytes(img: np.ndarray, quality: int) -> bytes:
    """The JPEG file (bytes) of an H x W, H x W x 1 or H x W x 3 image at ``quality`` (1-100)."""
    from PIL import Image

    q = int(quality)
    if not 1 <= q <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality!r}")
    u8 = _to_uint8(img)
    if u8.ndim == 3 and u8.shape[2] == 1:
        u8 = u8[:, :, 0]
    if u8.ndim not in (2, 3) or (u8.ndim == 3 and u8.shape[2] != 3):
        raise ValueError(f"JPEG input must be H x W, H x W x 1 or H x W x 3, got {u8.shape}")
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=q)
    return buf.getvalue()


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode ``img`` as JPEG at ``quality`` and decode it again; same shape as the input.

    ``uint8`` in, ``uint8`` out; a float image in [0, 1] is rounded to 8 bits first and comes back
    as float32 in [0, 1].
    """
    from PIL import Image

    a = np.asarray(img)
    with Image.open(io.BytesIO(jpeg_bytes(a, quality))) as dec:
        out = np.asarray(dec.convert("L" if a.ndim == 2 or a.shape[2] == 1 else "RGB"))
    out = out.reshape(a.shape) if a.ndim == 3 and a.shape[2] == 1 else out
    return out if a.dtype == np.uint8 else out.astype(np.float32) / 255.0
