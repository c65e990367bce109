"""Training throughput of the restore networks: patches per second for each model and loss.

Measures full optimiser steps (forward, loss, backward, Adam step) on random patches of the
paper's sizes (SR: 96 px HR / 24 px LR; DnCNN: 50 px), after warm-up steps, so data loading is
excluded; a separate row times the data pipeline (PatchDataset: crop, bicubic/JPEG/noise, 8-fold
augmentation) on scikit-image's bundled photos. VGG/LPIPS/PDL trunks are random (throughput does
not depend on the weights); MDF uses the authors' Ds_SISR.pth when ../shared has it, else 8 random
discriminators. On CUDA each configuration is timed with and without AMP (bfloat16).

    python benchmarks/train_throughput.py                 # CPU, all models x all losses
    python benchmarks/train_throughput.py --device cuda   # GPU: fp32 and AMP
    python benchmarks/train_throughput.py --models edsr --losses l1 mdf --steps 5

Prints a Markdown table (and writes it as CSV with --csv).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from restore.losses import RestorationLoss
from restore.models import build_model

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
MODELS = {  # name -> (build options, task, HR patch size)
    "edsr": ({"scale": 4}, "sr", 96),
    "srresnet": ({"scale": 4}, "sr", 96),
    "dncnn": ({"depth": 20, "channels": 3}, "denoise", 50),
}
LOSSES = ["l1", "l2", "ssim", "ms_ssim", "ms_ssim_l1", "vgg", "lpips", "pdl", "mdf"]


def _loss_options(name: str, tmp: Path) -> dict:
    if name in ("vgg", "lpips", "pdl"):
        return {"pretrained": False}
    if name == "mdf":
        w = SHARED / "reference" / "mdf" / "Ds_SISR.pth"
        if w.is_file():
            return {"weights": str(w)}
        import metrics

        path = tmp / "random_mdf.pt"
        if not path.exists():
            metrics.save_discriminators(path, [metrics.Discriminator() for _ in range(8)], {})
        return {"weights": str(path)}
    return {}


def time_training(model_name: str, loss_name: str, device: str, batch: int, steps: int, warmup: int,
                  amp: bool, tmp: Path) -> float:  # fmt: skip
    """Patches per second of full training steps (forward, loss, backward, Adam) on random data."""
    opts, task, p = MODELS[model_name]
    torch.manual_seed(0)
    net = build_model(model_name, **opts).to(device)
    loss = RestorationLoss(loss_name, 3, **_loss_options(loss_name, tmp)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    s = 4 if task == "sr" else 1
    lq = torch.rand(batch, 3, p // s, p // s, device=device)
    hq = torch.rand(batch, 3, p, p, device=device)
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext()

    def step() -> None:
        with ctx:
            out = net(lq)
        val = loss(out.float(), hq)
        opt.zero_grad(set_to_none=True)
        val.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def time_data(task: str, n: int, tmp: Path, mode: str = "memory") -> float:
    """Patches per second of the data pipeline (one process) on bundled photos.

    mode: ``memory`` (decoded images cached in RAM), ``npy`` (memory-mapped .npy cache_dir) or
    ``none`` (decode, and resize/JPEG-encode the whole image, for every patch).
    """
    from restore.data import PatchDataset
    from restore.degrade import Degradation
    from restore.image_io import list_images, write_bundled_images

    folder = tmp / "images"
    if not folder.exists():
        write_bundled_images(folder)
    p = 96 if task == "sr" else 50
    ds = PatchDataset(list_images(folder), Degradation(task=task, sigma=(0.0, 55.0)), p,
                      cache=mode == "memory", cache_dir=tmp / f"npy-{task}" if mode == "npy" else None)  # fmt: skip
    n = n if mode != "none" else max(5, n // 20)
    for i in range(len(ds) * 3):  # fill the cache (decode + degrade every image once)
        ds[i]
    t0 = time.perf_counter()
    for i in range(n):
        ds[10_000 + i]
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--losses", nargs="+", default=LOSSES)
    ap.add_argument("--batch", type=int, default=None, help="default: 4 on CPU, 16 on CUDA")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 3 CPU, 20 CUDA)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--csv", type=Path, default=None)
    a = ap.parse_args()
    cuda = a.device.startswith("cuda")
    batch = a.batch or (16 if cuda else 4)
    steps = a.steps or (20 if cuda else 3)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev_name = (
        torch.cuda.get_device_name(0)
        if cuda
        else f"{platform.processor() or 'CPU'}, {torch.get_num_threads()} threads"
    )
    print(f"# restore training throughput: {dev_name}, torch {torch.__version__}, batch {batch}, "
          f"{steps} timed steps after {a.warmup} warm-up; random patches (SR 96 px HR, DnCNN 50 px)\n")  # fmt: skip
    modes = [False, True] if cuda else [False]
    head = (
        "| model | loss | "
        + " | ".join("patches/s (AMP bf16)" if m else "patches/s (fp32)" for m in modes)
        + " |"
    )
    print(head)
    print("|" + "---|" * (2 + len(modes)))
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for model in a.models:
            for loss in a.losses:
                vals = []
                for amp in modes:
                    try:
                        vals.append(
                            f"{time_training(model, loss, a.device, batch, steps, a.warmup, amp, tmp):.1f}"
                        )
                    except (RuntimeError, ValueError, TypeError) as e:  # e.g. out of memory
                        vals.append(f"error: {str(e)[:40]}")
                print(f"| {model} | {loss} | " + " | ".join(vals) + " |", flush=True)
                rows.append((model, loss, *vals))
        print(
            "\n| data pipeline (1 process) | cache in RAM | .npy cache_dir | no cache |\n|---|---|---|---|"
        )
        for task in ("sr", "denoise", "jpeg"):
            vals = [f"{time_data(task, 200, tmp, mode):.0f}" for mode in ("memory", "npy", "none")]
            print(f"| {task} patches/s | " + " | ".join(vals) + " |", flush=True)
    if a.csv:
        import csv

        from scaling.contracts.atomic import atomic_open

        with atomic_open(a.csv, binary=False, newline="") as f:
            w = csv.writer(f)
            w.writerow(["model", "loss", *("amp" if m else "fp32" for m in modes)])
            w.writerows(rows)


if __name__ == "__main__":
    main()
