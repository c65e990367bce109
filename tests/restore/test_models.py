"""Networks: parameter counts of the reference implementations, shapes, config errors."""

from __future__ import annotations

import pytest
import torch

from restore.models import build_model, count_parameters, model_args, model_config


@pytest.mark.parametrize(
    ("name", "opts", "expected"),
    [
        ("edsr", {"scale": 4}, 1_517_571),  # EDSR baseline x4 (Lim et al. reference code)
        ("edsr_full", {"scale": 4}, 43_089_923),  # EDSR 32 blocks x 256 features x4
        ("srresnet", {}, 1_549_462),  # Ledig et al. SRResNet x4 (~1.55 M)
        ("dncnn", {"channels": 1, "depth": 17}, 556_096),  # DnCNN-S grey (~556 K)
    ],
    ids=["edsr_baseline_x4", "edsr_full_x4", "srresnet_x4", "dncnn17_grey"],
)
def test_parameter_counts_match_references(name, opts, expected):
    assert count_parameters(build_model(name, **opts)) == expected


def test_edsr_mean_shift_is_not_trainable():
    m = build_model("edsr")
    assert "rgb_mean" in dict(m.named_buffers())
    assert all(n != "rgb_mean" for n, _ in m.named_parameters())


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", ["edsr", "srresnet"])
def test_sr_models_upscale_by_their_scale(name, scale):
    m = build_model(name, scale=scale, n_resblocks=1, n_feats=8)
    assert m(torch.rand(2, 3, 10, 12)).shape == (2, 3, 10 * scale, 12 * scale)


@pytest.mark.parametrize("channels", [1, 3])
def test_dncnn_keeps_size_and_learns_a_residual(channels):
    m = build_model("dncnn", channels=channels, depth=5, n_feats=8)
    x = torch.rand(2, channels, 20, 24)
    torch.nn.init.zeros_(m.body[-1].weight)  # zero residual -> identity
    assert torch.equal(m(x), x)


def test_unknown_model_and_option_raise_value_error():
    with pytest.raises(ValueError, match="unknown model 'unet'"):
        build_model("unet")
    with pytest.raises(ValueError, match="unknown option"):
        build_model("edsr", depth=3)
    with pytest.raises(ValueError, match="scale must be 2, 3 or 4"):
        build_model("edsr", scale=5)
    with pytest.raises(ValueError, match="channels"):
        build_model("dncnn", channels=2)


def test_model_args_round_trip_rebuilds_same_architecture():
    m = build_model("edsr", scale=2, n_resblocks=3, n_feats=8)
    args = model_args(m)
    assert args["scale"] == 2 and args["n_resblocks"] == 3
    args["rgb_mean"] = tuple(args["rgb_mean"])
    m2 = build_model("edsr", **args)
    m2.load_state_dict(m.state_dict())
    assert model_config("edsr", **args) == m.config
