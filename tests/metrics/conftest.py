"""Fixtures of the metrics tests: devices, natural test images, small random discriminators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch

from metrics.mdf import Discriminator, init_singan_weights

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
MDF_REFERENCE = SHARED / "reference" / "mdf"


def _devices():
    out = ["cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    return out


@pytest.fixture(params=_devices())
def device(request):
    """CPU, and CUDA when present."""
    return torch.device(request.param)


def to_tensor(img: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    """HxWx3 uint8 (or HxW) -> 1x3xHxW (or 1x1xHxW) float in [0, 1]."""
    a = img.astype(np.float64) / 255.0
    t = torch.from_numpy(a)
    t = t.permute(2, 0, 1) if t.dim() == 3 else t[None]
    return t[None].to(dtype)


@pytest.fixture(scope="session")
def natural_pair():
    """(distorted, reference) crops of scikit-image's astronaut, 1x3x96x128, float64."""
    ref = skimage.data.astronaut()[40:136, 150:278]
    rng = np.random.default_rng(0)
    dist = np.clip(ref.astype(np.float64) + rng.normal(0, 12, ref.shape), 0, 255).round()
    return to_tensor(dist.astype(np.uint8), torch.float64), to_tensor(ref, torch.float64)


def random_discriminators(channels=(4, 4, 8, 8), seed=0) -> list[Discriminator]:
    """Small SinGAN-initialised discriminators with non-trivial BatchNorm statistics."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for c in channels:
        with torch.no_grad():
            d = _random_discriminator(c, g)
        out.append(d.eval())
    return out


def _random_discriminator(c: int, g: torch.Generator) -> Discriminator:
    d = Discriminator(c)
    init_singan_weights(d, generator=g)
    for m in d.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
            m.bias.normal_(0, 0.1, generator=g)
        if isinstance(m, torch.nn.Conv2d):
            # N(0, 0.02) weights give tiny features; scale up so differences are visible
            m.weight.mul_(10)
            m.bias.normal_(0, 0.02, generator=g)
    return d


@pytest.fixture
def tiny_discriminators():
    """Four small random discriminators (4, 4, 8, 8 channels)."""
    return random_discriminators()


@pytest.fixture
def make_discriminators():
    """The factory ``random_discriminators(channels, seed)``."""
    return random_discriminators


@pytest.fixture
def make_metric():
    """``metrics.create`` with what offline tests need: random trunks, tiny discriminators."""

    def make(name, **options):
        import metrics

        if name in ("vgg", "lpips", "pdl"):
            options.setdefault("pretrained", False)
            torch.manual_seed(0)  # the same random trunk every time
        if name == "mdf":
            options.setdefault("weights", random_discriminators())
            options.setdefault("num_scales", 4)
        return metrics.create(name, **options)

    return make


@pytest.fixture
def mdf_reference_pair():
    """The factory ``reference_pair(dtype)``."""
    return reference_pair


def reference_pair(dtype=torch.float32):
    """The pair of specs/mdf.md: B=2, H=37, W=45, built in float64 then cast."""
    B, H, W = 2, 37, 45
    i = torch.arange(H, dtype=torch.float64).view(1, 1, H, 1)
    j = torch.arange(W, dtype=torch.float64).view(1, 1, 1, W)
    c = torch.arange(3, dtype=torch.float64).view(1, 3, 1, 1)
    b = torch.arange(B, dtype=torch.float64).view(B, 1, 1, 1)
    x = 0.5 + 0.4 * torch.sin(0.3 * i + 0.2 * j + c + b)
    y = x + 0.1 * torch.cos(0.7 * i - 0.5 * j + 2 * c + b)
    return x.to(dtype), y.to(dtype)
