"""EDSR: Enhanced Deep Residual Networks for single-image super-resolution.

Reference: B. Lim, S. Son, H. Kim, S. Nah, K. M. Lee, "Enhanced Deep Residual Networks for Single
Image Super-Resolution", CVPR Workshops 2017. The baseline (16 blocks, 64 features, no residual
scaling) has 1,517,571 trainable parameters at x4; the full model has 32 blocks, 256 features and
residual scaling 0.1. Inputs and outputs are NCHW RGB in [0, 1]; the DIV2K mean is subtracted and
added back by fixed (non-trainable) buffers, as the reference "MeanShift" does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

#: RGB mean of DIV2K (in [0, 1]) used by the reference implementation's MeanShift.
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


@dataclass
class EDSRConfig:
    """Shape-defining arguments of :class:`EDSR` (stored in checkpoints)."""

    scale: int = 4  # upscaling factor: 2, 3 or 4
    n_resblocks: int = 16  # 16 for the baseline, 32 for the full model
    n_feats: int = 64  # 64 for the baseline, 256 for the full model
    res_scale: float = 1.0  # 1.0 for the baseline, 0.1 for the full model
    in_channels: int = 3  # RGB
    rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN

    def __post_init__(self) -> None:
        if self.scale not in (2, 3, 4):
            raise ValueError(f"EDSR scale must be 2, 3 or 4, got {self.scale!r}")
        if self.n_resblocks < 1 or self.n_feats < 1:
            raise ValueError(
                f"EDSR needs n_resblocks >= 1 and n_feats >= 1, got {self.n_resblocks}, {self.n_feats}"
            )
        if self.in_channels != 3:
            raise ValueError(f"EDSR works on RGB (in_channels=3), got {self.in_channels}")
        self.rgb_mean = tuple(float(v) for v in self.rgb_mean)


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class _ResBlock(nn.Module):
    def __init__(self, n_feats: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(n_feats, n_feats), nn.ReLU(inplace=True), _conv(n_feats, n_feats)
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


def pixel_shuffle_upsampler(
    scale: int, n_feats: int, act: nn.Module | None = None
) -> nn.Sequential:
    """Sub-pixel convolution upsampler (Shi et al., CVPR 2016): x2 stages for 2/4, one x3 stage for 3."""
    layers: list[nn.Module] = []
    if scale in (2, 4):
        for _ in range({2: 1, 4: 2}[scale]):
            layers += [_conv(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
            if act is not None:
                layers.append(act())
    elif scale == 3:
        layers += [_conv(n_feats, 9 * n_feats), nn.PixelShuffle(3)]
        if act is not None:
            layers.append(act())
    else:
        raise ValueError(f"pixel-shuffle upsampler supports scales 2, 3 and 4, got {scale!r}")
    return nn.Sequential(*layers)


class EDSR(nn.Module):
    """EDSR super-resolution network (Lim et al., CVPR-W 2017); ``forward`` maps (N,3,h,w) -> (N,3,sh,sw)."""

    def __init__(self, config: EDSRConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or EDSRConfig()
        f = config.n_feats
        self.register_buffer("rgb_mean", torch.tensor(config.rgb_mean).view(1, 3, 1, 1))
        self.head = _conv(config.in_channels, f)
        self.body = nn.Sequential(
            *[_ResBlock(f, config.res_scale) for _ in range(config.n_resblocks)], _conv(f, f)
        )
        self.upsample = pixel_shuffle_upsampler(config.scale, f)
        self.tail = _conv(f, config.in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Super-resolve (N, 3, h, w) in [0, 1] to (N, 3, scale*h, scale*w)."""
        x = self.head(x - self.rgb_mean)
        x = x + self.body(x)
        return self.tail(self.upsample(x)) + self.rgb_mean
