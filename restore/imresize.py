"""MATLAB-compatible ``imresize`` (bicubic with antialiasing), as used to make DIV2K's LR images.

Reimplements the algorithm documented for MATLAB's ``imresize`` (Image Processing Toolbox): the
Keys cubic kernel with a = -0.5 (R. Keys, "Cubic convolution interpolation for digital image
processing", IEEE TASSP 29(6), 1981); output pixel u (1-based) maps to input coordinate
``x = u / s + 0.5 * (1 - 1 / s)``; when shrinking (s < 1) with antialiasing the kernel is stretched
to ``s * k(s * d)`` (width 4 / s); weights are normalised to sum to one; out-of-range taps are
mirrored symmetrically (``[1..n, n..1]``); dimensions are resized one after the other, the one
with the smaller scale first. Computation is in float64; unlike MATLAB on uint8 inputs the
intermediate result between the two passes is not rounded (differences are at most 1 grey level).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), unitless."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


@lru_cache(maxsize=64)
def _resize_taps(
    in_len: int, out_len: int, scale: float, antialiasing: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, weights), both (out_len, taps): output i = sum_k weights[i, k] * input[indices[i, k]]."""
    kernel_width = 4.0
    if scale < 1 and antialiasing:
        kernel_width /= scale
    u = np.arange(1, out_len + 1, dtype=np.float64)
    x = u / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(x - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input indices
    d = x[:, None] - idx
    w = scale * cubic(scale * d) if scale < 1 and antialiasing else cubic(d)
    w = w / w.sum(axis=1, keepdims=True)
    # symmetric boundary: index sequence 1..n, n..1 repeated
    aux = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    col = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    keep = np.any(w != 0, axis=0)  # MATLAB drops all-zero tap columns too
    return col[:, keep], w[:, keep]


@lru_cache(maxsize=64)
def _resize_matrix(in_len: int, out_len: int, scale: float, antialiasing: bool) -> np.ndarray:
    """(out_len, in_len) float64 matrix W so that ``W @ v`` resizes a signal v as MATLAB does."""
    col, w = _resize_taps(in_len, out_len, scale, antialiasing)
    mat = np.zeros((out_len, in_len))
    rows = np.repeat(np.arange(out_len), col.shape[1])
    np.add.at(mat, (rows, col.ravel()), w.ravel())
    return mat


def _resize_axis0(a: np.ndarray, col: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Resize along axis 0 with sparse taps (memory and time grow with taps, not input length)."""
    out = np.zeros((col.shape[0], *a.shape[1:]))
    extra = (slice(None),) + (None,) * (a.ndim - 1)
    for k in range(col.shape[1]):
        out += w[:, k][extra] * a[col[:, k]]
    return out


def _out_size(in_len: int, scale: float) -> int:
    return math.ceil(in_len * scale)


def imresize(
    image: np.ndarray | torch.Tensor,
    scale: float | None = None,
    output_shape: tuple[int, int] | None = None,
    antialiasing: bool = True,
) -> np.ndarray | torch.Tensor:
    """Resize like MATLAB's ``imresize(I, scale, 'bicubic')`` (antialiasing on by default).

    Args:
        image: a numpy array (H, W) or (H, W, C), or a torch tensor (..., H, W) (e.g. NCHW),
            floating point in any range (uint8 arrays are converted and the result rounded back).
        scale: resize factor (0.25 for x4 downsampling); the output size is ``ceil(H * scale)``.
        output_shape: (height, width) instead of ``scale``.
        antialiasing: stretch the kernel when shrinking (MATLAB's default).

    Returns:
        The resized image, same type/layout as the input (float64 math; float32 tensors stay float32).

    Reference: MATLAB ``imresize``; Keys 1981. DIV2K (Agustsson & Timofte, CVPR-W 2017) LR images
    were made with it, which is why SR papers use it rather than PIL/OpenCV resizing.
    """
    if (scale is None) == (output_shape is None):
        raise ValueError("imresize needs exactly one of scale or output_shape")
    is_tensor = isinstance(image, torch.Tensor)
    if not is_tensor and not isinstance(image, np.ndarray):
        raise TypeError(
            f"imresize expects a numpy array or torch tensor, got {type(image).__name__}"
        )
    if is_tensor:
        if image.ndim < 2:
            raise ValueError(
                f"imresize expects a tensor (..., H, W), got shape {tuple(image.shape)}"
            )
        h, w = image.shape[-2:]
    else:
        if image.ndim not in (2, 3):
            raise ValueError(
                f"imresize expects an array (H, W) or (H, W, C), got shape {image.shape}"
            )
        h, w = image.shape[:2]
    if scale is not None:
        if not (isinstance(scale, (int, float)) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        sh = sw = float(scale)
        oh, ow = _out_size(h, sh), _out_size(w, sw)
    else:
        oh, ow = (int(v) for v in output_shape)  # type: ignore[union-attr]
        if oh < 1 or ow < 1:
            raise ValueError(f"output_shape must be positive, got {output_shape!r}")
        sh, sw = oh / h, ow / w
    if h < 1 or w < 1:
        raise ValueError(f"cannot resize an empty image of size {h}x{w}")
    order = ("h", "w") if sh <= sw else ("w", "h")
    if is_tensor:
        mh, mw = _resize_matrix(h, oh, sh, antialiasing), _resize_matrix(w, ow, sw, antialiasing)
        t = image.to(torch.float64)
        th, tw = torch.from_numpy(mh).to(t.device), torch.from_numpy(mw).to(t.device)
        for dim in order:
            t = torch.matmul(th, t) if dim == "h" else torch.matmul(t, tw.T)
        if image.dtype == torch.uint8:
            return t.round().clamp(0, 255).to(torch.uint8)
        return t.to(image.dtype if image.is_floating_point() else torch.float64)
    a = image.astype(np.float64)
    a3 = a if a.ndim == 3 else a[:, :, None]
    th, tw = _resize_taps(h, oh, sh, antialiasing), _resize_taps(w, ow, sw, antialiasing)
    for dim in order:
        if dim == "h":
            a3 = _resize_axis0(a3, *th)
        else:
            a3 = _resize_axis0(a3.transpose(1, 0, 2), *tw).transpose(1, 0, 2)
    a = a3 if image.ndim == 3 else a3[:, :, 0]
    if image.dtype == np.uint8:
        return np.clip(np.round(a), 0, 255).astype(np.uint8)
    return a.astype(image.dtype) if np.issubdtype(image.dtype, np.floating) else a
