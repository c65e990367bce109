"""Inference: restore images with a trained network, tile by tile for large images."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .checkpoint import load_checkpoint, model_from_checkpoint
from .degrade import Degradation, to_float
from .image_io import image_id, list_images, load_image, save_png


def _spans(n: int, tile: int, overlap: int) -> list[tuple[int, int, int]]:
    """Tiles along one axis as (start, own_from, own_to): each tile owns the part of the axis up to
    the middle of its overlaps with its neighbours, so seams fall where both tiles see context."""
    if tile >= n:
        return [(0, 0, n)]
    step = max(1, tile - overlap)
    starts = [*range(0, n - tile, step), n - tile]
    spans = []
    for i, s in enumerate(starts):
        lo = 0 if i == 0 else (s + starts[i - 1] + tile) // 2
        hi = n if i == len(starts) - 1 else (starts[i + 1] + s + tile) // 2
        spans.append((s, lo, hi))
    return spans


@torch.no_grad()
def restore_tensor(
    model: nn.Module, lq: torch.Tensor, scale: int = 1, tile: int = 0, overlap: int = 16,
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:  # fmt: skip
    """Run ``model`` on ``lq`` (N, C, h, w) -> (N, C, scale*h, scale*w), unclamped.

    With ``tile > 0`` the input is cut into ``tile`` x ``tile`` pieces (in input pixels) overlapping
    by ``overlap`` pixels; each piece contributes only its part up to the middle of each overlap, so
    the result equals the whole-image run exactly when ``overlap / 2`` is at least the network's
    receptive-field radius (in input pixels). Memory grows with the tile, not the image.
    ``amp_dtype`` runs under CUDA autocast.
    """
    if lq.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(lq.shape)}")
    if tile < 0 or overlap < 0 or (tile and overlap >= tile):
        raise ValueError(
            f"need tile >= 0 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}"
        )
    ctx = (
        torch.autocast(lq.device.type, dtype=amp_dtype)
        if amp_dtype is not None and lq.device.type == "cuda"
        else nullcontext()
    )
    n, c, h, w = lq.shape
    if not tile or (tile >= h and tile >= w):
        with ctx:
            return model(lq).float()
    out = torch.zeros(n, c, h * scale, w * scale, device=lq.device)
    for y, y0, y1 in _spans(h, tile, overlap):
        for x, x0, x1 in _spans(w, tile, overlap):
            with ctx:
                res = model(lq[:, :, y : y + tile, x : x + tile]).float()
            out[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = res[
                :, :, (y0 - y) * scale : (y1 - y) * scale, (x0 - x) * scale : (x1 - x) * scale
            ]
    return out


def restore_image(
    model: nn.Module, lq: np.ndarray, scale: int = 1, device: str = "cpu", tile: int = 0,
    overlap: int = 16,
) -> np.ndarray:  # fmt: skip
    """Restore one image: (h, w, C) float32 in [0, 1] (or uint8) -> (s*h, s*w, C) float32 clipped to [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(to_float(lq).transpose(2, 0, 1)))[None].to(device)
    was_training = model.training
    model.eval()
    try:
        y = restore_tensor(model, x, scale, tile, overlap)
    finally:
        model.train(was_training)
    return y[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def run_folder(
    checkpoint: str | Path, in_dir: str | Path, out_dir: str | Path, device: str = "cpu",
    tile: int = 0, overlap: int = 16, progress: bool = True,
) -> list[Path]:  # fmt: skip
    """Restore every image of ``in_dir`` (already degraded inputs) with ``checkpoint``; PNGs into ``out_dir``.

    Grey networks read images as luma and write grey PNGs. Returns the written paths.
    """
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt).to(device)
    deg = Degradation.from_dict(ckpt["degradation"])
    channels = int(ckpt["config"]["channels"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for p in tqdm(list_images(in_dir, "flat"), desc="restore", disable=not progress):
        img = load_image(p, channels)
        res = restore_image(model, img, deg.out_scale, device, tile, overlap)
        dst = out / f"{image_id(p)}.png"
        save_png(res, dst)
        written.append(dst)
    return written
