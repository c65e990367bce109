"""The fast MDF kernels (folded BatchNorm, fused conv + LeakyReLU, hand-written backward, CPU
chunking) against the straightforward form."""

from __future__ import annotations

import pytest
import torch

from metrics import mdf_kernels
from metrics.mdf import mdf, mdf_straightforward
from metrics.mdf_kernels import fold_discriminator


def test_fold_discriminator_matches_batchnorm(make_discriminators):
    d = make_discriminators((8,))[0]
    x = torch.rand(2, 3, 15, 15, dtype=torch.float64)
    d = d.double()
    w, b = fold_discriminator(d)[0]
    expected = d.head.norm(d.head.conv(x))
    torch.testing.assert_close(torch.nn.functional.conv2d(x, w, b), expected)


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
    calls = []
    original = mdf_kernels.DiscriminatorDistance.apply

    def spy(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(mdf_kernels.DiscriminatorDistance, "apply", spy)
    return calls


@pytest.mark.parametrize("channels_last", [True, False])
def test_training_values_and_gradients_equal_straightforward(
    channels_last, tiny_discriminators, monkeypatch
):
    """The training path (prediction through the hand-written backward of
    DiscriminatorDistance, reference without autograd) against plain autograd."""
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
    tiny_discriminators = _frozen(tiny_discriminators)
    g = torch.Generator().manual_seed(9)
    y = torch.rand(5, 3, 21, 23, generator=g)
    x0 = (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    results = []
    for limit in (mdf_kernels.CPU_CHUNK_BYTES, 1, 3 * 8 * 21 * 23 * 4):  # whole, 1, 3 images
        monkeypatch.setattr(mdf_kernels, "CPU_CHUNK_BYTES", limit)
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
