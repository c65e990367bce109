"""DnCNN: a residual denoiser (also used for JPEG artefact removal).

Reference: K. Zhang, W. Zuo, Y. Chen, D. Meng, L. Zhang, "Beyond a Gaussian Denoiser: Residual
Learning of Deep CNN for Image Denoising", IEEE TIP 26(7), 2017. ``depth`` convolutions of 64
channels: conv+ReLU, (depth-2) x conv+BN+ReLU (no bias), conv (no bias); the network predicts the
residual (the noise) and returns ``x - residual``. 17 layers on grey images: 556,096 parameters.
Colour (CDnCNN) uses 3 channels (the paper uses depth 20 for blind colour denoising and JPEG).
Inputs and outputs are NCHW in [0, 1] (1 or 3 channels).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class DnCNNConfig:
    """Shape-defining arguments of :class:`DnCNN` (stored in checkpoints)."""

    depth: int = 17  # number of convolution layers (17 or 20 in Zhang et al.)
    n_feats: int = 64  # feature channels
    channels: int = 3  # 1 = grey, 3 = colour (CDnCNN)
    scale: int = 1  # always 1 (same-size restoration); kept so every model has a scale

    def __post_init__(self) -> None:
        if self.depth < 3:
            raise ValueError(f"DnCNN depth must be >= 3, got {self.depth!r}")
        if self.channels not in (1, 3):
            raise ValueError(
                f"DnCNN channels must be 1 (grey) or 3 (colour), got {self.channels!r}"
            )
        if self.scale != 1:
            raise ValueError(f"DnCNN restores at the same size (scale=1), got scale={self.scale!r}")


class DnCNN(nn.Module):
    """DnCNN (Zhang et al., TIP 2017) with residual learning; ``forward`` maps (N,C,H,W) -> (N,C,H,W)."""

    def __init__(self, config: DnCNNConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DnCNNConfig()
        c, f = config.channels, config.n_feats
        layers: list[nn.Module] = [nn.Conv2d(c, f, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(config.depth - 2):
            layers += [
                nn.Conv2d(f, f, 3, padding=1, bias=False),
                nn.BatchNorm2d(f),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(f, c, 3, padding=1, bias=False))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore (N, C, H, W) in [0, 1]: input minus the predicted residual (noise)."""
        return x - self.body(x)
