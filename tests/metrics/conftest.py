"""Fixtures of the metrics tests: devices, natural test images, small random discriminators."""

from __future__ import annotations

import sys
import types
import warnings

import numpy as np
import pytest
import skimage.data
import torch
from torch import nn

from metrics import RandomWeightsWarning
from metrics.discriminator import Discriminator, init_singan_weights


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
    """``metrics.create`` with what offline tests need: random trunks (checking that they warn),
    tiny discriminators."""

    def make(name, **options):
        import metrics

        if name in ("vgg", "lpips", "pdl"):
            options.setdefault("pretrained", False)
            torch.manual_seed(0)  # the same random trunk every time
            if options["pretrained"] is False:
                return _expecting_random_weights_warning(metrics.create, name, **options)
        if name == "mdf":
            options.setdefault("weights", random_discriminators())
            options.setdefault("num_scales", 4)
        return metrics.create(name, **options)

    return make


def _expecting_random_weights_warning(create, name, **options):
    """``create(name, **options)``, checking that it warns about its random trunk (an error in
    ``create`` propagates; other warnings pass through)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = create(name, **options)
    assert any(issubclass(w.category, RandomWeightsWarning) for w in caught), name
    for w in caught:
        if not issubclass(w.category, RandomWeightsWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return module


@pytest.fixture
def mdf_reference_pair():
    """The factory ``reference_pair(dtype)``."""
    return reference_pair


def reference_pair(dtype=torch.float32):
    """The pair of the authors' reference values (tests/metrics/data/mdf_reference.json):
    B=2, H=37, W=45, built in float64 then cast."""
    B, H, W = 2, 37, 45
    i = torch.arange(H, dtype=torch.float64).view(1, 1, H, 1)
    j = torch.arange(W, dtype=torch.float64).view(1, 1, 1, W)
    c = torch.arange(3, dtype=torch.float64).view(1, 3, 1, 1)
    b = torch.arange(B, dtype=torch.float64).view(B, 1, 1, 1)
    x = 0.5 + 0.4 * torch.sin(0.3 * i + 0.2 * j + c + b)
    y = x + 0.1 * torch.cos(0.7 * i - 0.5 * j + 2 * c + b)
    return x.to(dtype), y.to(dtype)


# ----------------------------------------------------------------------- legacy pickles
@pytest.fixture
def fake_singan(monkeypatch):
    """A stand-in ``SinGAN.models`` with the authors' class layout, importable only while the
    legacy file is written."""
    mod = types.ModuleType("SinGAN.models")

    class ConvBlock(nn.Sequential):
        def __init__(self, cin, cout):
            super().__init__()
            self.add_module("conv", nn.Conv2d(cin, cout, 3, 1, 0))
            self.add_module("norm", nn.BatchNorm2d(cout))
            self.add_module("LeakyRelu", nn.LeakyReLU(0.2, inplace=True))

    class WDiscriminator(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.is_cuda = False
            self.head = ConvBlock(3, n)
            self.body = nn.Sequential()
            for i in range(3):
                self.body.add_module(f"block{i + 1}", ConvBlock(n, n))
            self.tail = nn.Conv2d(n, 1, 3, 1, 0)

        def forward(self, x):
            return self.tail(self.body(self.head(x)))

    for cls in (ConvBlock, WDiscriminator):
        cls.__module__, cls.__qualname__ = "SinGAN.models", cls.__name__
        setattr(mod, cls.__name__, cls)
    pkg = types.ModuleType("SinGAN")
    pkg.models = mod
    monkeypatch.setitem(sys.modules, "SinGAN", pkg)
    monkeypatch.setitem(sys.modules, "SinGAN.models", mod)
    return mod


@pytest.fixture
def write_legacy(fake_singan):
    """``write(path, channels=(4, 8))``: write a legacy (non-zip) pickle of authors'-layout
    discriminators with non-trivial BatchNorm statistics; returns the original modules."""
    return lambda path, channels=(4, 8): _write_legacy(path, fake_singan, channels)


def _write_legacy(path, fake_singan, channels):
    torch.manual_seed(0)
    ds = []
    for c in channels:
        d = fake_singan.WDiscriminator(c)
        with torch.no_grad():
            for m in d.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.normal_(0, 0.1)
                    m.running_var.uniform_(0.5, 2)
                    m.num_batches_tracked.fill_(3000)
        ds.append(d.eval())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(ds, path, _use_new_zipfile_serialization=False)
    return ds
