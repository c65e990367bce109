"""Losses from metrics: name checks, grey-to-RGB, straight-through clamp."""

from __future__ import annotations

import pytest
import torch

from restore.losses import RestorationLoss, available_losses


def test_paper_losses_are_available_and_psnr_is_not_a_loss():
    names = available_losses()
    for n in ("l1", "l2", "ssim", "ms_ssim", "ms_ssim_l1", "vgg", "lpips", "pdl", "mdf"):
        assert n in names
    assert "psnr" not in names
    with pytest.raises(ValueError, match="quality metric, not a training loss"):
        RestorationLoss("psnr")
    with pytest.raises(ValueError, match="unknown loss 'l3'"):
        RestorationLoss("l3")


def test_grey_outputs_are_repeated_to_rgb():
    g = RestorationLoss("ssim", channels=1)
    c = RestorationLoss("ssim", channels=3)
    x, y = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    assert torch.allclose(g(x, y), c(x.repeat(1, 3, 1, 1), y.repeat(1, 3, 1, 1)))


def test_out_of_range_outputs_are_clamped_but_keep_gradients():
    loss = RestorationLoss("l1")
    y = torch.full((1, 3, 8, 8), 0.5)
    x = torch.full((1, 3, 8, 8), 1.5, requires_grad=True)
    val = loss(x, y)
    assert val.item() == pytest.approx(0.5)  # the loss saw 1.0, not 1.5
    val.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_straight_through_clamp_is_exact_for_diverging_outputs():
    from restore.losses import _st_clamp

    x = torch.tensor([-3e9, -1.5, 0.25, 1.0 + 1e-7, 7.5, 1e8, 3e9], requires_grad=True)
    out = _st_clamp(x)
    assert out.tolist() == x.detach().clamp(0, 1).tolist()  # the old x + (clamp(x) - x) gave 0.0 for 1e8
    out.sum().backward()
    assert x.grad.tolist() == [1.0] * 7
    # an MS-SSIM loss on a diverged output: a value, not a range error
    loss = RestorationLoss("ms_ssim_l1")
    big = torch.full((1, 3, 24, 24), 1e8)
    big[..., ::2, :] = -1e8
    assert torch.isfinite(loss(big, torch.rand(1, 3, 24, 24)))


def test_weighted_sums_and_shape_checks():
    loss = RestorationLoss("l2 + 0.5*l1")
    x, y = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    expect = ((x - y) ** 2).mean() + 0.5 * (x - y).abs().mean()
    assert loss(x, y).item() == pytest.approx(expect.item(), rel=1e-5)
    with pytest.raises(ValueError, match="differ"):
        loss(x, y[:, :, :4])


def test_mdf_gets_the_restore_task_unless_weights_or_task_are_given(random_mdf):
    from restore.losses import options_with_task

    assert options_with_task("mdf", {}, "sr") == {"task": "sisr"}  # MDF's name for SR
    assert options_with_task("mdf", {"num_scales": 4}, "denoise") == {"num_scales": 4, "task": "denoise"}
    assert options_with_task("mdf", {"weights": "w.pt"}, "sr") == {"weights": "w.pt"}
    assert options_with_task("mdf", {"task": "jpeg"}, "sr") == {"task": "jpeg"}
    assert options_with_task("l2 + 0.1*mdf", {}, "jpeg") == {"mdf": {"task": "jpeg"}}
    assert options_with_task("2*mdf", {"mdf": {"num_scales": 2}}, "sisr") == {
        "mdf": {"num_scales": 2, "task": "sisr"}
    }
    assert options_with_task("l1", {}, "sr") == {} and options_with_task("mdf", {}, None) == {}
    loss = RestorationLoss("mdf", restore_task="sisr")  # the shipped SR discriminators
    assert loss.metric.metadata.get("task") == "sisr" and loss.options == {"task": "sisr"}
    given = RestorationLoss("mdf", restore_task="jpeg", weights=str(random_mdf))
    assert given.options == {"weights": str(random_mdf)}  # given weights are not second-guessed
