"""MDF Phase 1's task distortions z_k (Mustafa et al., WACV 2022, section 3.1).

At scale k the generator refines the upsampled output of scale k-1 after a task distortion:
Gaussian noise (denoising), JPEG compression (artefact removal) or nothing (super-resolution,
where the upsampling is the distortion). Images are in [-1, 1] (SinGAN's range).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from scaling.contracts.jpeg import jpeg_roundtrip


def distort_none(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """SISR: no distortion; the upsampling from the coarser scale is the degradation."""
    return x


def distort_noise(
    x: torch.Tensor, rng: np.random.Generator, max_sigma: float = 55.0
) -> torch.Tensor:
    """Denoising: additive Gaussian noise with sigma ~ U[0, max_sigma] on the 0..255 scale.

    ``x`` is in [-1, 1], so the standard deviation applied is ``2 * sigma / 255``.
    """
    sigma = rng.uniform(0.0, max_sigma)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    noise = torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
    return x + noise * (2.0 * sigma / 255.0)


def distort_jpeg(x: torch.Tensor, rng: np.random.Generator, qualities=(7, 10)) -> torch.Tensor:
    """JPEG artefact removal: JPEG-compress each image (real codec,
    :func:`scaling.contracts.jpeg.jpeg_roundtrip`) at quality ~ U{7..10}."""
    out = []
    for img in x.detach().cpu():
        q = int(rng.integers(qualities[0], qualities[1] + 1))
        arr = ((img.permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1)
        out.append(torch.from_numpy(jpeg_roundtrip(arr, q)).permute(2, 0, 1) * 2 - 1)
    return torch.stack(out).to(x.device, x.dtype)


#: Task name -> distortion function ``f(x in [-1, 1], numpy Generator) -> distorted x``.
#: New tasks plug in here (e.g. ``DISTORTIONS["blur"] = my_blur``), then ``SinGANConfig(task="blur")``.
#: The keys of the restoration tasks are MDF's names (:func:`scaling.contracts.tasks.mdf_task`).
DISTORTIONS: dict[str, Callable[[torch.Tensor, np.random.Generator], torch.Tensor]] = {
    "sisr": distort_none,
    "denoise": distort_noise,
    "jpeg": distort_jpeg,
}
