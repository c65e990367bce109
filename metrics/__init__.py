"""Losses and full-reference quality metrics of the MDF study (Mustafa et al., WACV 2022).

Every loss exists once, usable both as a differentiable training loss and as a quality metric:
``metrics.create(name, **options)`` returns an ``nn.Module``; ``metrics.available()`` lists the
names. Heavy modules (VGG, LPIPS, PDL, MDF) are imported on first use.
"""

from metrics._pretrained import RandomWeightsWarning
from metrics._registry import WeightedSum, available, create
from metrics.discriminator import Discriminator
from metrics.mdf import MDFLoss, mdf, mdf_straightforward
from metrics.mdf_weights import (
    convert_legacy,
    load_discriminators,
    load_legacy_discriminators,
    save_discriminators,
)
from metrics.ms_ssim_l1 import MSSSIML1Loss, ms_ssim_l1
from metrics.pixel import L1Loss, L2Loss, l1, mse
from metrics.psnr import PSNR, psnr
from metrics.ssim import MSSSIMLoss, SSIMLoss, ms_ssim, ms_ssim_levels, ssim

__all__ = [
    "PSNR",
    "Discriminator",
    "L1Loss",
    "L2Loss",
    "MDFLoss",
    "MSSSIML1Loss",
    "MSSSIMLoss",
    "RandomWeightsWarning",
    "SSIMLoss",
    "WeightedSum",
    "available",
    "convert_legacy",
    "create",
    "l1",
    "load_discriminators",
    "load_legacy_discriminators",
    "mdf",
    "mdf_straightforward",
    "ms_ssim",
    "ms_ssim_l1",
    "ms_ssim_levels",
    "mse",
    "psnr",
    "save_discriminators",
    "ssim",
]
