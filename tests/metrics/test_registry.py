"""metrics.create / available, and the behaviour every loss shares: shapes, reductions,
gradients (a few optimisation steps reduce the loss) and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

import metrics
from metrics import l1, mse, psnr

ALL = ["l1", "l2", "mse", "psnr", "ssim", "ms_ssim", "ms_ssim_l1", "vgg", "lpips", "pdl", "mdf"]
LOSSES = [n for n in ALL if n not in ("psnr", "mse")]


@pytest.fixture(scope="module")
def pair():
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, 48, 48, generator=g)
    x = (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    return x, y


def test_available_lists_every_name_with_a_description():
    names = metrics.available()
    assert set(ALL) <= set(names)
    assert all(isinstance(v, str) and v for v in names.values())


def test_create_unknown_name_raises_with_the_list():
    with pytest.raises(ValueError, match="unknown metric 'l3'.*available"):
        metrics.create("l3")
    with pytest.raises(TypeError):
        metrics.create(3)


@pytest.mark.parametrize("name", ALL)
def test_every_metric_returns_one_value_per_image(name, pair, make_metric):
    x, y = pair
    m = make_metric(name)
    assert isinstance(m, torch.nn.Module)
    v = m(x, y)
    assert v.shape == (2,) and torch.isfinite(v).all()
    assert isinstance(m.lower_better, bool)


@pytest.mark.parametrize("name", ALL)
def test_reductions(name, pair, make_metric):
    x, y = pair
    per_image = make_metric(name)(x, y)
    assert make_metric(name, reduction="mean")(x, y).item() == pytest.approx(
        per_image.mean().item(), rel=1e-5
    )
    assert make_metric(name, reduction="sum")(x, y).item() == pytest.approx(
        per_image.sum().item(), rel=1e-5
    )
    with pytest.raises(ValueError, match="reduction"):
        make_metric(name, reduction="avg")


@pytest.mark.parametrize("name", [n for n in ALL if n not in ("psnr",)])
def test_identical_images_give_zero_loss(name, pair, make_metric):
    _, y = pair
    assert make_metric(name)(y, y).abs().max().item() < 1e-5


@pytest.mark.parametrize("name", LOSSES)
def test_a_few_optimisation_steps_reduce_the_loss(name, pair, make_metric):
    x0, y = pair
    loss_fn = make_metric(name, reduction="mean")
    assert loss_fn.lower_better
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.01)
    first = None
    for _ in range(5):
        opt.zero_grad()
        loss = loss_fn(x, y)
        loss.backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        first = loss.item() if first is None else first
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    assert loss_fn(x, y).item() < first


@pytest.mark.parametrize("name", ["ssim", "ms_ssim", "vgg", "lpips"])
def test_similarity_metrics_as_metric_and_as_loss(name, pair, make_metric):
    x, y = pair
    loss, metric = make_metric(name), make_metric(name, as_loss=False)
    assert loss.lower_better
    if name in ("ssim", "ms_ssim"):
        assert not metric.lower_better
        assert torch.allclose(loss(x, y), 1 - metric(x, y), atol=1e-6)
    else:  # distances: the metric form is the feature distance alone (lambda 1, no L2)
        lam = 1.0 if name == "vgg" else 0.1  # paper defaults
        assert metric.lower_better
        assert torch.allclose(loss(x, y), lam * metric(x, y) + mse(x, y), atol=1e-6)


def test_psnr_is_metric_only_and_matches_skimage(pair):
    x, y = pair
    m = metrics.create("psnr")
    assert not m.lower_better
    for b in range(2):
        expected = peak_signal_noise_ratio(
            y[b].double().numpy(), x[b].double().numpy(), data_range=1.0
        )
        assert m(x, y)[b].item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="metric only"):
        metrics.create("psnr", as_loss=True)


def test_l1_l2_match_numpy(pair):
    x, y = pair
    xn, yn = x.double().numpy(), y.double().numpy()
    np.testing.assert_allclose(l1(x, y).numpy(), np.abs(xn - yn).mean((1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(mse(x, y).numpy(), ((xn - yn) ** 2).mean((1, 2, 3)), rtol=1e-5)
    assert psnr(y, y).tolist() == pytest.approx([100.0, 100.0], rel=1e-4)


def test_weighted_sum_expression(pair, make_metric):
    x, y = pair
    torch.manual_seed(0)  # the random trunk of make_metric
    with pytest.warns(metrics.RandomWeightsWarning):
        m = metrics.create("l2 + 0.1*lpips", lpips={"pretrained": False})
    direct = mse(x, y) + 0.1 * make_metric("lpips", as_loss=False)(x, y)
    assert torch.allclose(m(x, y), direct, atol=1e-6)
    paper = make_metric("lpips")  # paper default: L2 + 0.1 LPIPS
    assert torch.allclose(paper(x, y), direct, atol=1e-6)
    with pytest.raises(ValueError, match="cannot parse"):
        metrics.create("l2 + 0.1 lpips")
    with pytest.raises(TypeError, match="unused options"):
        metrics.create("l2 + l1", foo=1)


def test_vgg_default_combines_l2_with_lambda_one(pair, make_metric):
    x, y = pair
    feat = make_metric("vgg", l2_weight=0.0)(x, y)
    assert torch.allclose(make_metric("vgg")(x, y), feat + mse(x, y), atol=1e-6)
    assert torch.allclose(make_metric("vgg", weight=0.01)(x, y), 0.01 * feat + mse(x, y), atol=1e-6)


# ----------------------------------------------------------------------- bad input
BAD = {
    "shape mismatch": (lambda y: y[:, :, :40], ValueError, "shapes differ"),
    "wrong range": (lambda y: y * 255, ValueError, "wrong scale"),
    "nan": (lambda y: y.masked_fill(y > 0.9, float("nan")), ValueError, "NaN"),
    "channels": (lambda y: torch.cat([y, y[:, :1]], 1), ValueError, "channels"),
    "3-d": (lambda y: y[0], ValueError, "4-D"),
    "integer": (lambda y: (y * 255).to(torch.uint8), TypeError, "floating-point"),
    "numpy": (lambda y: y.numpy(), TypeError, "torch.Tensor"),
}


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_raises_a_clear_error(name, case, pair, make_metric):
    x, y = pair
    transform, exc, msg = BAD[case]
    m = make_metric(name)
    with pytest.raises(exc, match=msg):
        if case in ("channels", "3-d", "integer", "numpy"):
            m(transform(x), transform(y))
        else:
            m(transform(x), y)


@pytest.mark.parametrize("name", ALL)
def test_grey_input_works(name, pair, make_metric):
    x, y = pair
    v = make_metric(name)(x[:, :1], y[:, :1])
    assert v.shape == (2,) and torch.isfinite(v).all()


@pytest.mark.parametrize("name", ["l2", "ssim", "ms_ssim_l1", "mdf"])
def test_reference_out_of_range_is_refused_even_slightly(name, pair, make_metric):
    x, y = pair
    with pytest.raises(ValueError, match=r"reference y must lie in \[0, 1\]"):
        make_metric(name)(x, y * 1.05 + 0.01)
