"""SinGAN's discriminator ("WDiscriminator"), the architecture behind MDF.

One module serves both phases of Mustafa et al. (WACV 2022): Phase 1 (:mod:`metrics.singan`)
trains one :class:`Discriminator` per pyramid scale, Phase 2 (:mod:`metrics.mdf`) uses them,
frozen, as feature extractors. Weight files: :mod:`metrics.mdf_weights`.

Reference: Shaham, Dekel, Michaeli, "SinGAN: Learning a Generative Model from a Single Natural
Image", ICCV 2019.
"""

from __future__ import annotations

import torch
from torch import nn

#: Negative slope of every LeakyReLU of SinGAN's networks.
NEG_SLOPE = 0.2


class ConvBlock(nn.Sequential):
    """Conv3x3 (no padding, bias) -> BatchNorm2d -> LeakyReLU(0.2): SinGAN's ``ConvBlock``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_channels, out_channels, kernel_size, padding=0))
        self.add_module("norm", nn.BatchNorm2d(out_channels))
        self.add_module("act", nn.LeakyReLU(NEG_SLOPE))


class Discriminator(nn.Module):
    """SinGAN's ``WDiscriminator`` as used by MDF: head ConvBlock(3->N), body of
    ``num_layers - 2`` ConvBlocks (N->N), tail Conv3x3(N->1) without norm or activation.

    With the defaults (5 layers, 3x3, no padding) the receptive field is 11x11 and an H x W
    input gives an (H-10) x (W-10) map. State-dict keys follow the authors' files:
    ``head.conv.*``, ``head.norm.*``, ``body.block1..3.{conv,norm}.*``, ``tail.*``.

    Reference: Shaham, Dekel, Michaeli, "SinGAN: Learning a Generative Model from a Single
    Natural Image", ICCV 2019.
    """

    def __init__(
        self, channels: int = 32, *, num_layers: int = 5, kernel_size: int = 3, in_channels: int = 3
    ):
        super().__init__()
        if num_layers < 3:
            raise ValueError(f"num_layers must be >= 3 (head, body, tail), got {num_layers}")
        if channels < 1 or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"bad channels={channels} or kernel_size={kernel_size} (odd)")
        self.channels, self.num_layers = channels, num_layers
        self.kernel_size, self.in_channels = kernel_size, in_channels
        self.head = ConvBlock(in_channels, channels, kernel_size)
        self.body = nn.Sequential()
        for i in range(num_layers - 2):
            self.body.add_module(f"block{i + 1}", ConvBlock(channels, channels, kernel_size))
        self.tail = nn.Conv2d(channels, 1, kernel_size, padding=0)

    @property
    def receptive_field(self) -> int:
        """Side in pixels of the receptive field (11 with the defaults)."""
        return self.num_layers * (self.kernel_size - 1) + 1

    def config(self) -> dict[str, int]:
        """Shape-defining arguments, as stored in the weight file."""
        return {
            "channels": self.channels,
            "num_layers": self.num_layers,
            "kernel_size": self.kernel_size,
            "in_channels": self.in_channels,
        }

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The three MDF features: head output, body output (after their LeakyReLUs) and the
        raw tail output (the critic map)."""
        h = self.head(x)
        b = self.body(h)
        return [h, b, self.tail(b)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The critic map (N, 1, H - rf + 1, W - rf + 1)."""
        return self.tail(self.body(self.head(x)))


def init_singan_weights(module: nn.Module, *, generator: torch.Generator | None = None) -> None:
    """SinGAN's initialisation: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02), BN
    biases 0 (conv biases keep torch's default)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            with torch.no_grad():
                m.weight.normal_(0.0, 0.02, generator=generator)
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.normal_(1.0, 0.02, generator=generator)
                m.bias.zero_()


def singan_channels(scale: int, nfc: int = 32, max_channels: int = 128) -> int:
    """SinGAN's channel schedule: ``min(nfc * 2^floor(scale / 4), max_channels)``."""
    return min(nfc * 2 ** (scale // 4), max_channels)
