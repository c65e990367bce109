"""DDP through torchrun: two CPU processes on gloo train the same model as one process would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from restore.checkpoint import load_checkpoint
from restore.config import tiny_preset
from restore.train import train


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_global_batch(image_dirs, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MDF_DDP_BACKEND": "gloo",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).with_name("ddp_worker.py")), str(image_dirs["train"]),
           str(image_dirs["valid"]), str(out)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(out / "rank0.pt", weights_only=True)
    r1 = torch.load(out / "rank1.pt", weights_only=True)
    assert r0["world"] == r1["world"] == 2
    # 8 patches per epoch / (2 per rank x 2 ranks) = 2 steps per epoch, 2 epochs
    assert r0["steps"] == r1["steps"] == 4
    assert not (out / "rank1").exists() and (out / "best.pt").is_file()  # only rank 0 writes
    # one process with batch 4 sees the same global batches (EDSR has no BatchNorm, L1 is a mean)
    single = train(tiny_preset("sr", "edsr", data=str(image_dirs["train"]), val_data=str(image_dirs["valid"]),
                               out_dir=str(tmp_path / "single"), epochs=2, patches_per_epoch=8,
                               batch_size=4, patch_size=32, val_crop=48, loss="l1",
                               device="cpu"))  # fmt: skip  (the gloo workers run on the CPU)
    ref = load_checkpoint(single["last"])["model"]
    for k, v in r0["rank0_ckpt"].items():
        torch.testing.assert_close(v, ref[k], rtol=1e-4, atol=1e-5)
