"""Training on CUDA: mixed precision (bf16, and fp16 with a GradScaler), checkpoints portable to
the CPU, and MDF Phase 1 on the GPU. Skipped without a GPU (CI has none); run on a lent one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restore.checkpoint import model_from_checkpoint
from restore.train import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@pytest.mark.parametrize("amp_dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("loss", ["l1", "ms_ssim_l1", "mdf"])
def test_amp_training_on_cuda(make_cfg, image_dirs, tmp_path, random_mdf, amp_dtype, loss):
    opts = {"mdf": {"weights": str(random_mdf)}}.get(loss, {})
    cfg = make_cfg(image_dirs, tmp_path, "sr", "edsr", loss=loss, device="cuda", amp=True,
                   amp_dtype=amp_dtype, epochs=2, patches_per_epoch=16, loss_options=opts)  # fmt: skip
    out = train(cfg)
    for row in out["history"]:
        assert np.isfinite([row["train_loss"], row["val_loss"], row["val_psnr"]]).all()
    # the checkpoint holds float32 weights that load and run on the CPU
    net = model_from_checkpoint(out["last"])
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in net.parameters())
    with torch.no_grad():
        y = net(torch.rand(1, 3, 16, 16))
    assert y.shape == (1, 3, 64, 64) and torch.isfinite(y).all()


def test_cuda_and_cpu_training_agree_without_amp(make_cfg, image_dirs, tmp_path):
    """Same seed, same batches, float32: one epoch on the GPU ends near the CPU's weights."""
    nets = {}
    for dev in ("cpu", "cuda"):
        cfg = make_cfg(image_dirs, tmp_path / dev, "denoise", "dncnn", loss="l2", device=dev,
                       amp=False, epochs=1, patches_per_epoch=8)  # fmt: skip
        nets[dev] = model_from_checkpoint(train(cfg)["last"])
    for (name, a), b in zip(nets["cpu"].state_dict().items(), nets["cuda"].state_dict().values()):
        if a.is_floating_point():
            assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), name


def test_mdf_phase1_on_cuda_writes_weights_usable_on_cpu(tmp_path):
    from metrics.mdf import load_discriminators
    from metrics.seeds import natural_seed
    from metrics.singan import preset, train_mdf

    cfg = preset("tiny", task="jpeg", device="cuda")
    out = train_mdf(natural_seed("astronaut")[::8, ::8].copy(), cfg, tmp_path / "w.pt",
                    progress=False)  # fmt: skip
    discs, meta = load_discriminators(out)
    x = torch.rand(1, 3, 32, 32)
    assert all(torch.isfinite(d(x)).all() for d in discs)
    assert meta["task"] == "jpeg"
