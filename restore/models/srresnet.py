"""SRResNet, the generator of SRGAN trained without the adversarial term.

Reference: C. Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network", CVPR 2017 (figure 4): a 9x9 head convolution with PReLU, 16 residual blocks
(conv-BN-PReLU-conv-BN), a conv-BN with a long skip connection, two x2 pixel-shuffle stages with
PReLU, and a 9x9 tail convolution; about 1.55 M parameters at x4. Inputs and outputs are NCHW RGB
in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .edsr import pixel_shuffle_upsampler


@dataclass
class SRResNetConfig:
    """Shape-defining arguments of :class:`SRResNet` (stored in checkpoints)."""

    scale: int = 4  # upscaling factor: 2, 3 or 4 (the paper uses 4: two x2 stages)
    n_resblocks: int = 16  # residual blocks (Ledig et al.: 16)
    n_feats: int = 64  # feature channels (Ledig et al.: 64)
    in_channels: int = 3  # RGB

    def __post_init__(self) -> None:
        if self.scale not in (2, 3, 4):
            raise ValueError(f"SRResNet scale must be 2, 3 or 4, got {self.scale!r}")
        if self.n_resblocks < 1 or self.n_feats < 1:
            raise ValueError(
                f"SRResNet needs n_resblocks >= 1 and n_feats >= 1, "
                f"got {self.n_resblocks}, {self.n_feats}"
            )
        if self.in_channels != 3:
            raise ValueError(f"SRResNet works on RGB (in_channels=3), got {self.in_channels}")


class _ResBlock(nn.Module):
    def __init__(self, f: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(f, f, 3, padding=1), nn.BatchNorm2d(f), nn.PReLU(),
            nn.Conv2d(f, f, 3, padding=1), nn.BatchNorm2d(f),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """SRResNet (Ledig et al., CVPR 2017); ``forward`` maps (N,3,h,w) -> (N,3,sh,sw)."""

    def __init__(self, config: SRResNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SRResNetConfig()
        f = config.n_feats
        self.head = nn.Sequential(nn.Conv2d(config.in_channels, f, 9, padding=4), nn.PReLU())
        self.body = nn.Sequential(*[_ResBlock(f) for _ in range(config.n_resblocks)])
        self.body_tail = nn.Sequential(nn.Conv2d(f, f, 3, padding=1), nn.BatchNorm2d(f))
        self.upsample = pixel_shuffle_upsampler(config.scale, f, act=nn.PReLU)
        self.tail = nn.Conv2d(f, config.in_channels, 9, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Super-resolve (N, 3, h, w) in [0, 1] to (N, 3, scale*h, scale*w)."""
        h = self.head(x)
        h = h + self.body_tail(self.body(h))
        return self.tail(self.upsample(h))
