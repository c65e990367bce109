"""Run by torchrun from test_distributed.py: one tiny DDP training; each rank saves its weights."""

from __future__ import annotations

import os
import sys

import torch

from restore.config import tiny_preset
from restore.train import train


def main(train_dir: str, val_dir: str, out: str) -> None:
    cfg = tiny_preset("sr", "edsr", data=train_dir, val_data=val_dir, out_dir=out, epochs=2,
                      patches_per_epoch=8, batch_size=2, patch_size=32, val_crop=48, loss="l1",
                      device="cpu")  # fmt: skip
    summary = train(cfg)
    rank = int(os.environ["RANK"])
    from restore.checkpoint import load_checkpoint

    state = load_checkpoint(summary["last"])["model"] if rank == 0 else None
    torch.save({"steps": summary["steps"], "world": int(os.environ["WORLD_SIZE"]),
                "rank0_ckpt": state}, os.path.join(out, f"rank{rank}.pt"))  # fmt: skip


if __name__ == "__main__":
    main(*sys.argv[1:4])
