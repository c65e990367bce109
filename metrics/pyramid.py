"""The seed-image pyramid of MDF Phase 1: SinGAN's scales (or the paper's), Lanczos resizing.

Mustafa et al. (WACV 2022) build the seed pyramid by Lanczos downsampling; SinGAN (Shaham et al.,
ICCV 2019) fixes the scales: the shorter side of the coarsest is ``min_size``, the longer side of
the finest at most ``max_size``, a factor of about 0.75 between them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from metrics.singan_config import SinGANConfig

_FILTERS = {"lanczos": "LANCZOS", "bicubic": "BICUBIC", "bilinear": "BILINEAR"}


def _resize(img01: np.ndarray, size_hw: tuple[int, int], filt: str) -> np.ndarray:
    from PIL import Image

    out = []
    for c in range(3):  # float mode keeps full precision
        ch = Image.fromarray(img01[..., c].astype(np.float32), mode="F")
        ch = ch.resize((size_hw[1], size_hw[0]), getattr(Image.Resampling, _FILTERS[filt]))
        out.append(np.asarray(ch))
    return np.clip(np.stack(out, axis=2), 0, 1)


def pyramid_sizes(height: int, width: int, cfg: SinGANConfig) -> list[tuple[int, int]]:
    """(H, W) of every scale, coarsest first.

    "singan": the seed is shrunk so that its longer side is at most ``max_size``; the number of
    scales is ``ceil(log(min_size / short) / log(scale_factor)) + 1`` and the factor is adjusted so
    that the coarsest shorter side is ``min_size`` (SinGAN's rule). "paper": ``num_scales`` scales,
    each half the next.
    """
    s = min(1.0, cfg.max_size / max(height, width))
    H, W = max(1, round(height * s)), max(1, round(width * s))
    short = min(H, W)
    if cfg.pyramid == "paper":
        sizes = [(round(H / 2**k), round(W / 2**k)) for k in range(cfg.num_scales - 1, -1, -1)]
        if min(sizes[0]) < cfg.num_layers * 2 + 1:
            raise ValueError(
                f"the paper pyramid ({cfg.num_scales} scales, factor 2) needs a seed whose shorter "
                f"side is at least {(cfg.num_layers * 2 + 1) * 2 ** (cfg.num_scales - 1)} px after "
                f"max_size; got {short} px"
            )
        return sizes
    if short < cfg.min_size:
        raise ValueError(f"seed image too small: shorter side {short} px < min_size {cfg.min_size}")
    n = (
        math.ceil(math.log(cfg.min_size / short) / math.log(cfg.scale_factor)) + 1
        if short > cfg.min_size
        else 1
    )
    if n == 1:
        return [(H, W)]
    f = (cfg.min_size / short) ** (1 / (n - 1))
    return [(round(H * f ** (n - 1 - k)), round(W * f ** (n - 1 - k))) for k in range(n)]


def build_pyramid(img01: np.ndarray, cfg: SinGANConfig) -> list[torch.Tensor]:
    """The seed at every scale as 1 x 3 x H x W tensors in [-1, 1], coarsest first."""
    sizes = pyramid_sizes(img01.shape[0], img01.shape[1], cfg)
    out = []
    for hw in sizes:
        arr = img01 if hw == img01.shape[:2] else _resize(img01, hw, cfg.resize_filter)
        out.append(torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None] * 2 - 1)
    return out
