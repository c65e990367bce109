"""Inference: tiling agrees with whole-image runs; run_folder writes restored PNGs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restore.checkpoint import model_from_checkpoint
from restore.inference import restore_image, restore_tensor, run_folder


def test_tiled_inference_matches_whole_image(trained):
    torch.manual_seed(0)
    for key, s in (("sr_l1", 4), ("dn_l1", 1)):
        m = model_from_checkpoint(trained[key]).eval()
        x = torch.rand(1, 3, 40, 52)
        full = restore_tensor(m, x, s)
        # overlap/2 = 10 px >= receptive-field radius (tiny EDSR ~8 px, DnCNN depth 5: 5 px)
        tiled = restore_tensor(m, x, s, tile=32, overlap=20)
        assert tiled.shape == full.shape == (1, 3, 40 * s, 52 * s)
        torch.testing.assert_close(tiled, full, rtol=1e-4, atol=1e-5)
        rough = restore_tensor(m, x, s, tile=16, overlap=2)  # too little context: seams show
        assert (rough - full).abs().max() > 1e-3
        assert torch.equal(restore_tensor(m, x, s, tile=64), full)  # one tile = whole image


def test_bad_tiling_raises(trained):
    m = model_from_checkpoint(trained["dn_l1"])
    with pytest.raises(ValueError, match="overlap < tile"):
        restore_tensor(m, torch.rand(1, 3, 8, 8), tile=8, overlap=8)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        restore_tensor(m, torch.rand(3, 8, 8))


def test_restore_image_clips_and_upscales(trained):
    m = model_from_checkpoint(trained["sr_l1"])
    out = restore_image(m, np.random.default_rng(0).random((10, 12, 3)).astype(np.float32), 4)
    assert out.shape == (40, 48, 3) and out.min() >= 0 and out.max() <= 1
    assert m.training  # mode restored


def test_run_folder_writes_one_png_per_input(trained, image_dirs, tmp_path):
    paths = run_folder(trained["dn_l1"], image_dirs["test"], tmp_path, tile=32, progress=False)
    assert sorted(p.name for p in paths) == ["immunohistochemistry.png", "rocket.png"]
