"""SinGAN's generator and the pyramid of finished scales that MDF Phase 1 samples from.

Reference: Shaham, Dekel, Michaeli, "SinGAN: Learning a Generative Model from a Single Natural
Image", ICCV 2019; the task distortion between scales is MDF's (Mustafa et al., WACV 2022).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metrics.discriminator import NEG_SLOPE, Discriminator
from metrics.distortions import DISTORTIONS
from metrics.singan_config import SinGANConfig


class Generator(nn.Module):
    """SinGAN's generator: 5 conv layers 3x3 (BatchNorm, LeakyReLU 0.2), tail Conv(N->3) + Tanh,
    added to its (distorted, upsampled) input. The input is zero-padded by 5 px so that the output
    has the input's size."""

    def __init__(self, channels: int, num_layers: int = 5):
        super().__init__()
        self.pad = num_layers  # (3 - 1) / 2 per layer
        layers: list[nn.Module] = []
        c_in = 3
        for _ in range(num_layers - 1):
            layers += [
                nn.Conv2d(c_in, channels, 3),
                nn.BatchNorm2d(channels),
                nn.LeakyReLU(NEG_SLOPE),
            ]
            c_in = channels
        layers += [nn.Conv2d(channels, 3, 3), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, noise: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """``net(pad(noise + base)) + base``."""
        return self.net(F.pad(noise + base, [self.pad] * 4)) + base


@dataclass
class Scale:
    """What a finished scale leaves for the next ones: its generator and discriminator (frozen),
    the amplitude of its input noise and the fixed noise of the reconstruction path."""

    G: Generator
    D: Discriminator
    noise_amp: float
    z_opt: torch.Tensor


def upsample(x: torch.Tensor, hw) -> torch.Tensor:
    """Bicubic resize of an NCHW batch to ``hw`` = (H, W) (SinGAN's upsampling between scales)."""
    return F.interpolate(x, size=tuple(hw), mode="bicubic", align_corners=False)


def generate(
    scales: list[Scale],
    sizes,
    cfg: SinGANConfig,
    rng: np.random.Generator,
    reconstruct: bool,
    gen: torch.Generator,
) -> torch.Tensor:
    """Run the finished scales, coarse to fine: a random sample (noise drawn from ``gen``) or,
    with ``reconstruct``, the reconstruction of the seed (the fixed noise ``z_opt``), at the last
    finished scale; between scales the upsampled image gets the task's distortion (``rng``)."""
    device = torch.device(cfg.device)
    x = torch.zeros(1, 3, *sizes[0], device=device)
    distort = DISTORTIONS[cfg.task]
    for k, sc in enumerate(scales):
        if k == 0:
            base = torch.zeros(1, 3, *sizes[0], device=device)
            z = sc.z_opt if reconstruct else torch.randn(1, 3, *sizes[0], generator=gen).to(device)
            x = sc.G(z * sc.noise_amp, base)
        else:
            base = distort(upsample(x, sizes[k]), rng)
            x = sc.G(torch.zeros_like(base), base)
    return x
