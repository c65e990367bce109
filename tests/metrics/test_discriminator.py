"""SinGAN's discriminator: shapes, receptive field, state-dict keys, channel schedule."""

from __future__ import annotations

import torch

from metrics.discriminator import Discriminator, singan_channels


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
