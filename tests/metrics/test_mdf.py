"""MDF: the discriminator module, the project weight format, legacy-pickle loading through the
restricted unpickler, the fast form against the straightforward one, module behaviour, and the
reference values of specs/mdf.md (these last need ../shared and skip without it)."""

from __future__ import annotations

import copy
import os
import pickle
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

import metrics
from metrics.mdf import (
    Discriminator,
    MDFLoss,
    convert_legacy,
    fold_discriminator,
    load_discriminators,
    load_legacy_discriminators,
    mdf,
    mdf_straightforward,
    save_discriminators,
    singan_channels,
)

MDF_REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "mdf"

# ----------------------------------------------------------------------- architecture


def test_discriminator_shapes_receptive_field_and_state_dict_keys():
    d = Discriminator(32)
    assert d.receptive_field == 11
    out = d(torch.rand(2, 3, 37, 45))
    assert out.shape == (2, 1, 27, 35)
    feats = d.features(torch.rand(1, 3, 20, 20))
    assert [tuple(f.shape) for f in feats] == [(1, 32, 18, 18), (1, 32, 12, 12), (1, 1, 10, 10)]
    keys = set(d.state_dict())
    assert {
        "head.conv.weight",
        "head.norm.running_var",
        "body.block3.conv.bias",
        "body.block1.norm.num_batches_tracked",
        "tail.weight",
        "tail.bias",
    } <= keys
    assert not any("act" in k for k in keys)


def test_singan_channel_schedule():
    assert [singan_channels(s) for s in range(10)] == [32] * 4 + [64] * 4 + [128] * 2


def test_fold_discriminator_matches_batchnorm(make_discriminators):
    d = make_discriminators((8,))[0]
    x = torch.rand(2, 3, 15, 15, dtype=torch.float64)
    d = d.double()
    w, b = fold_discriminator(d)[0]
    expected = d.head.norm(d.head.conv(x))
    torch.testing.assert_close(torch.nn.functional.conv2d(x, w, b), expected)


# ----------------------------------------------------------------------- weight format


def test_save_load_roundtrip_plain_tensors(tmp_path, tiny_discriminators):
    path = tmp_path / "w" / "mdf.pt"
    save_discriminators(path, tiny_discriminators, {"task": "jpeg", "seed": "bricks.png"})
    raw = torch.load(path, weights_only=True)  # loadable without trusting code
    assert raw["format"] == "mdf-toolkit/discriminators" and len(raw["discriminators"]) == 4
    discs, meta = load_discriminators(path)
    assert meta == {"task": "jpeg", "seed": "bricks.png"}
    assert [d.channels for d in discs] == [4, 4, 8, 8]
    for a, b in zip(discs, tiny_discriminators):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and torch.equal(va, vb)
    assert os.listdir(path.parent) == ["mdf.pt"]  # no temporary file left


def test_save_rejects_bad_arguments(tmp_path, tiny_discriminators):
    with pytest.raises(ValueError, match="no discriminators"):
        save_discriminators(tmp_path / "a.pt", [])
    with pytest.raises(TypeError, match="Discriminator"):
        save_discriminators(tmp_path / "a.pt", [nn.Conv2d(3, 3, 3)])
    with pytest.raises(ValueError, match="task"):
        save_discriminators(tmp_path / "a.pt", tiny_discriminators, {"task": "deblur"})


def test_load_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_discriminators(tmp_path / "nope.pt")
    torch.save({"model": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an MDF discriminator file"):
        load_discriminators(tmp_path / "other.pt")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="not a legacy MDF discriminator file"):
        load_discriminators(tmp_path / "junk.pth")


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


def _write_legacy(path, fake_singan, channels=(4, 8)):
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
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(ds, path, _use_new_zipfile_serialization=False)
    return ds


def test_legacy_pickle_loads_without_singan_installed(tmp_path, fake_singan, monkeypatch):
    path = tmp_path / "Ds_FAKE.pth"
    originals = _write_legacy(path, fake_singan)
    assert not zipfile.is_zipfile(path)
    monkeypatch.delitem(sys.modules, "SinGAN")
    monkeypatch.delitem(sys.modules, "SinGAN.models")
    with pytest.raises((ModuleNotFoundError, AttributeError, pickle.UnpicklingError)):
        torch.load(path, weights_only=False)  # plain torch.load needs the package
    discs = load_legacy_discriminators(path)
    assert [d.channels for d in discs] == [4, 8]
    x = torch.rand(2, 3, 23, 19)
    for d, o in zip(discs, originals):
        torch.testing.assert_close(d(x), o(x))
        h = o.head(x)
        torch.testing.assert_close(d.features(x)[0], h)
    assert int(discs[0].head.norm.num_batches_tracked) == 3000


def test_legacy_pickle_with_foreign_global_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save([Evil()], path, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="forbidden global"):
        load_legacy_discriminators(path)
    assert not marker.exists()


def test_convert_legacy_writes_project_format(tmp_path, fake_singan):
    src, dst = tmp_path / "Ds_FAKE.pth", tmp_path / "out" / "fake.pt"
    _write_legacy(src, fake_singan)
    convert_legacy(src, dst, task="denoise")
    discs, meta = load_discriminators(dst)
    assert meta["task"] == "denoise" and meta["source"] == "Ds_FAKE.pth"
    legacy = load_legacy_discriminators(src)
    x, y = torch.rand(1, 3, 30, 30), torch.rand(1, 3, 30, 30)
    assert mdf(x, y, discs, num_scales=2).item() == mdf(x, y, legacy, num_scales=2).item()
    with pytest.raises(ValueError, match="task"):
        convert_legacy(src, dst, task="deblur")


# ----------------------------------------------------------------------- fast vs straightforward


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"order": "descending"},
        {"num_scales": 1},
        {"num_scales": 3, "order": "descending"},
        {"map_to_pm1": True},
        {"channels_last": False},
    ],
)
def test_fast_form_equals_straightforward_form(kw, tiny_discriminators):
    g = torch.Generator().manual_seed(1)
    y = torch.rand(3, 3, 29, 41, generator=g)
    x = (y + 0.2 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    kw = {"num_scales": 4, **kw}
    layout = {"channels_last": kw.pop("channels_last", True)}
    ref = mdf_straightforward(x, y, tiny_discriminators, **kw)
    fast = mdf(x, y, tiny_discriminators, **kw, **layout)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=0)
    assert ref.min() > 0


def test_fast_form_gradients_equal_straightforward_gradients(tiny_discriminators):
    g = torch.Generator().manual_seed(2)
    y = torch.rand(2, 3, 24, 24, generator=g)
    x0 = (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    grads = []
    for fn in (mdf, mdf_straightforward):
        x = x0.clone().requires_grad_(True)
        fn(x, y, tiny_discriminators, num_scales=4, reduction="sum").backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def _frozen(discs):
    return [d.requires_grad_(False) for d in discs]


def _count_custom_backward(monkeypatch):
    """Count calls of the hand-written-backward path."""
    import importlib

    mdf_module = importlib.import_module("metrics.mdf")

    calls = []
    original = mdf_module._DiscriminatorDistance.apply

    def spy(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(mdf_module._DiscriminatorDistance, "apply", spy)
    return calls


@pytest.mark.parametrize("channels_last", [True, False])
def test_training_values_and_gradients_equal_straightforward(
    channels_last, tiny_discriminators, monkeypatch
):
    """The training path (prediction through the hand-written backward of
    _DiscriminatorDistance, reference without autograd) against plain autograd."""
    tiny_discriminators = _frozen(tiny_discriminators)
    calls = _count_custom_backward(monkeypatch)
    g = torch.Generator().manual_seed(5)
    y = torch.rand(3, 3, 33, 27, generator=g)
    x0 = (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    w = torch.tensor([0.5, 2.0, 1.0])  # per-image upstream gradients differ
    x = x0.clone().requires_grad_(True)
    fast = mdf(x, y, tiny_discriminators, num_scales=4, channels_last=channels_last)
    (fast * w).sum().backward()
    x2 = x0.clone().requires_grad_(True)
    ref = mdf_straightforward(x2, y, tiny_discriminators, num_scales=4)
    (ref * w).sum().backward()
    assert len(calls) == 4  # one per selected discriminator
    torch.testing.assert_close(fast.detach(), ref.detach(), rtol=1e-5, atol=0)
    # a LeakyReLU kink crossed by float rounding changes one element: compare norms
    err = (x.grad - x2.grad).norm() / x2.grad.norm()
    assert err < 1e-5, err
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("with_grad", [False, True])
def test_cpu_chunking_gives_the_unchunked_values(with_grad, tiny_discriminators, monkeypatch):
    import importlib

    mdf_module = importlib.import_module("metrics.mdf")
    tiny_discriminators = _frozen(tiny_discriminators)
    g = torch.Generator().manual_seed(9)
    y = torch.rand(5, 3, 21, 23, generator=g)
    x0 = (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    results = []
    for limit in (mdf_module._CPU_CHUNK_BYTES, 1, 3 * 8 * 21 * 23 * 4):  # whole, 1, 3 images
        monkeypatch.setattr(mdf_module, "_CPU_CHUNK_BYTES", limit)
        x = x0.clone().requires_grad_(with_grad)
        val = mdf(x, y, tiny_discriminators, num_scales=4)
        if with_grad:
            val.sum().backward()
        results.append((val.detach(), x.grad))
    for val, grad in results[1:]:
        torch.testing.assert_close(val, results[0][0], rtol=1e-6, atol=0)
        if with_grad:  # batch size changes the convolutions' summation order: norms
            assert (grad - results[0][1]).norm() / results[0][1].norm() < 1e-5


def test_training_path_under_cpu_autocast(tiny_discriminators):
    discs = _frozen(tiny_discriminators)
    g = torch.Generator().manual_seed(11)
    y = torch.rand(2, 3, 24, 24, generator=g)
    x0 = (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    x = x0.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        val = mdf(x, y, discs, num_scales=4)
    val.sum().backward()
    x2 = x0.clone().requires_grad_(True)
    ref = mdf_straightforward(x2, y, discs, num_scales=4)
    ref.sum().backward()
    assert val.dtype == torch.float32 and x.grad.dtype == torch.float32
    torch.testing.assert_close(val.detach(), ref.detach(), rtol=0.05, atol=0)  # bf16 features
    cos = torch.nn.functional.cosine_similarity(x.grad.flatten(), x2.grad.flatten(), dim=0)
    assert cos > 0.95, cos


def test_training_path_passes_gradcheck_in_float64(make_discriminators, monkeypatch):
    discs = _frozen([d.double() for d in make_discriminators([3, 4], seed=7)])
    calls = _count_custom_backward(monkeypatch)
    g = torch.Generator().manual_seed(8)
    y = torch.rand(2, 3, 13, 14, generator=g, dtype=torch.float64)
    x = (y + 0.1 * torch.randn(y.shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda t: mdf(t, y, discs, num_scales=2), (x,), eps=1e-6, atol=1e-8
    )
    assert calls


def test_gradient_reaches_the_reference_when_it_asks_for_one(tiny_discriminators):
    x = torch.rand(1, 3, 16, 16)
    y = torch.rand(1, 3, 16, 16, requires_grad=True)
    mdf(x, y, tiny_discriminators, num_scales=4).sum().backward()
    y2 = y.detach().clone().requires_grad_(True)
    mdf_straightforward(x, y2, tiny_discriminators, num_scales=4).sum().backward()
    torch.testing.assert_close(y.grad, y2.grad, rtol=1e-4, atol=1e-7)


def test_per_image_values_do_not_depend_on_the_batch(tiny_discriminators):
    g = torch.Generator().manual_seed(3)
    y = torch.rand(3, 3, 20, 20, generator=g)
    x = torch.rand(3, 3, 20, 20, generator=g)
    batch = mdf(x, y, tiny_discriminators, num_scales=4)
    for b in range(3):
        single = mdf(x[b : b + 1], y[b : b + 1], tiny_discriminators, num_scales=4)
        torch.testing.assert_close(single[0], batch[b], rtol=1e-5, atol=0)


# ----------------------------------------------------------------------- the module


def test_module_is_frozen_and_stays_in_eval_mode(tiny_discriminators):
    m = MDFLoss(weights=tiny_discriminators, num_scales=4)
    assert isinstance(m.discriminators, nn.ModuleList)
    assert not any(p.requires_grad for p in m.parameters())
    m.train()
    assert m.training and not any(mod.training for mod in m.discriminators.modules())
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    before = [b.clone() for b in m.buffers()]
    m(x, y)
    assert all(torch.equal(a, b) for a, b in zip(before, m.buffers()))  # BN stats untouched


def test_module_dtype_moves_and_dataparallel(tiny_discriminators):
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    m = MDFLoss(weights=tiny_discriminators, num_scales=4)
    ref = m(x, y)
    m64 = copy.deepcopy(m).to(torch.float64)
    torch.testing.assert_close(m64(x.double(), y.double()).float(), ref, rtol=1e-5, atol=0)
    mh = copy.deepcopy(m).to(torch.bfloat16)
    vh = mh(x, y)
    assert vh.dtype == torch.float32
    torch.testing.assert_close(vh, ref, rtol=5e-2, atol=0)
    m16 = copy.deepcopy(m).half()
    torch.testing.assert_close(m16(x, y), ref, rtol=2e-2, atol=0)
    dp = nn.DataParallel(copy.deepcopy(m))
    if torch.cuda.is_available():  # DataParallel then runs on cuda:0 (TF32 convolutions allowed)
        torch.testing.assert_close(dp(x, y).cpu(), ref, rtol=1e-2, atol=0)
        with pytest.raises(ValueError, match="images are on cpu but the discriminators are on cuda"):
            dp.module(x, y)  # DataParallel moved its module: a clear error, not a kernel's
    else:
        torch.testing.assert_close(dp(x, y), ref)
    # weights changed in place invalidate the cached folded convolutions
    with torch.no_grad():
        m.discriminators[0].head.conv.weight.mul_(2)
    assert not torch.allclose(m(x, y), ref)
    m_slow = MDFLoss(weights=list(m.discriminators), num_scales=4, fast=False)
    torch.testing.assert_close(m(x, y), m_slow(x, y), rtol=1e-5, atol=0)


def test_module_in_a_ddp_training_step(tiny_discriminators, tmp_path):
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        torch.manual_seed(0)
        net = nn.parallel.DistributedDataParallel(nn.Conv2d(3, 3, 3, padding=1))
        loss_fn = MDFLoss(weights=tiny_discriminators, num_scales=4, reduction="mean")
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        y = torch.rand(2, 3, 20, 20)
        losses = []
        for _ in range(3):
            opt.zero_grad()
            loss = loss_fn(net(y).clamp(0, 1), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert all(torch.isfinite(p.grad).all() for p in net.parameters())
        assert losses[-1] < losses[0]
    finally:
        dist.destroy_process_group()


def test_enable_grad_lets_the_discriminators_train(tiny_discriminators):
    m = MDFLoss(weights=copy.deepcopy(tiny_discriminators), num_scales=2, enable_grad=True)
    x, y = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    m(x, y).sum().backward()
    assert m.discriminators[0].head.conv.weight.grad is not None


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    """An empty stand-in for metrics/weights/."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(sys.modules[MDFLoss.__module__], "WEIGHTS_DIR", folder)
    return folder


def test_task_without_weights_raises_a_clear_error_when_none_ship(weights_dir):
    with pytest.raises(ValueError, match="needs weights=.*task='sisr'"):
        metrics.create("mdf", task="sisr")
    with pytest.raises(ValueError, match="needs task= or weights="):
        metrics.create("mdf")
    with pytest.raises(ValueError, match="task must be one of"):
        MDFLoss(task="deblur", weights=[Discriminator(4)])


def test_task_without_weights_uses_the_shipped_file(weights_dir, tiny_discriminators):
    save_discriminators(weights_dir / "mdf_denoise.pt", tiny_discriminators, {"task": "denoise"})
    m = metrics.create("mdf", task="denoise", num_scales=4)
    assert m.task == "denoise" and len(m.discriminators) == 4
    x, y = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(m(x, y), mdf(x, y, tiny_discriminators, num_scales=4))


def test_task_is_checked_against_the_file(tmp_path, tiny_discriminators):
    path = tmp_path / "jpeg.pt"
    save_discriminators(path, tiny_discriminators, {"task": "jpeg"})
    m = metrics.create("mdf", task="jpeg", weights=str(path), num_scales=4)
    assert m.task == "jpeg"
    with pytest.raises(ValueError, match="trained for task 'jpeg', not 'sisr'"):
        metrics.create("mdf", task="sisr", weights=path, num_scales=4)


def test_bad_selection_and_small_images_raise(tiny_discriminators):
    with pytest.raises(ValueError, match="num_scales must lie in 1..4"):
        MDFLoss(weights=tiny_discriminators, num_scales=8)
    with pytest.raises(ValueError, match="order"):
        MDFLoss(weights=tiny_discriminators, num_scales=4, order="random")
    m = MDFLoss(weights=tiny_discriminators, num_scales=4)
    x = torch.rand(1, 3, 10, 40)
    with pytest.raises(ValueError, match="at least 11x11"):
        m(x, x)
    with pytest.raises(TypeError, match="weights must be"):
        MDFLoss(weights=[nn.Conv2d(3, 3, 3)])


# ----------------------------------------------------------------------- reference values

REFERENCE = {  # specs/mdf.md
    "Ds_SISR.pth": {
        "default": 2.868021,
        "descending": 2.770305,
        "one": 0.131407,
        "per_image": (2.870203, 2.865839),
        "pm1": 5.527247,
    },
    "Ds_JPEG.pth": {
        "default": 1.832790,
        "descending": 1.832790,
        "one": 0.321554,
        "per_image": (1.839831, 1.825749),
        "pm1": 7.903788,
    },
}
needs_shared = pytest.mark.skipif(
    not MDF_REFERENCE.is_dir(), reason=f"authors' MDF weights not found in {MDF_REFERENCE}"
)


@needs_shared
@pytest.mark.parametrize("fname", sorted(REFERENCE))
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "straightforward"])
def test_reference_values_of_the_authors_weights(fname, fast, mdf_reference_pair):
    x, y = mdf_reference_pair()
    ref = REFERENCE[fname]
    path = MDF_REFERENCE / fname
    cases = {
        "default": {},
        "descending": {"order": "descending"},
        "one": {"num_scales": 1},
        "pm1": {"map_to_pm1": True},
    }
    for key, kw in cases.items():
        m = metrics.create("mdf", weights=path, reduction="mean", fast=fast, **kw)
        assert m(x, y).item() == pytest.approx(ref[key], rel=1e-5), key
        # the training path (prediction needs a gradient) gives the same value
        assert m(x.clone().requires_grad_(True), y).item() == pytest.approx(ref[key], rel=1e-5)
    per_image = metrics.create("mdf", weights=path, fast=fast)(x, y)
    assert per_image.tolist() == pytest.approx(list(ref["per_image"]), rel=1e-5)


@needs_shared
def test_authors_files_layout_and_conversion(tmp_path, mdf_reference_pair):
    sisr = load_legacy_discriminators(MDF_REFERENCE / "Ds_SISR.pth")
    jpeg = load_legacy_discriminators(MDF_REFERENCE / "Ds_JPEG.pth")
    assert [d.channels for d in sisr] == [32] * 4 + [64] * 4 + [128]
    assert [d.channels for d in jpeg] == [32] * 4 + [64] * 4
    out = tmp_path / "jpeg.pt"
    convert_legacy(MDF_REFERENCE / "Ds_JPEG.pth", out, task="jpeg")
    x, y = mdf_reference_pair()
    m = metrics.create("mdf", task="jpeg", weights=out, reduction="mean")
    assert m(x, y).item() == pytest.approx(REFERENCE["Ds_JPEG.pth"]["default"], rel=1e-5)


def test_images_on_another_device_than_the_discriminators_are_refused(tiny_discriminators):
    m = MDFLoss(weights=tiny_discriminators, num_scales=4).to("meta")
    with pytest.raises(ValueError, match="images are on cpu but the discriminators are on meta"):
        m(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
