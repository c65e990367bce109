"""Does our Phase-1 MDF train restorers as well as the authors' weights? (issue: MDF Phase 1)

1. Trains a small DnCNN denoiser (sigma 25) for a fixed budget on bundled scikit-image images with
   (a) L2, (b) MDF from the authors' weights (../shared/reference/mdf/Ds_SISR.pth; their
   Ds_Denoising.pth is byte-identical), (c) MDF from our weights (--ours, default the shipped
   denoise weights), and reports PSNR / SSIM on held-out images.
2. Task specificity (the paper's ablation): every MDF weight file's loss for each task's distortion
   (noise sigma 25, JPEG quality 10, bicubic x4 down-up) on held-out images, normalised per column.

Run: ``python benchmarks/mdf_quality.py [--steps 300] [--ours path.pt]``; prints Markdown tables.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

TRAIN = ["astronaut", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"]
TEST = ["coffee", "camera", "cat"]
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "mdf"
SHIPPED = Path(__file__).resolve().parents[1] / "metrics" / "weights"


def images(names):
    from skimage import data

    out = []
    for n in names:
        img = getattr(data, n)()
        img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
        out.append(torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1))
    return out


def patches(imgs, n, size, gen):
    out = []
    for _ in range(n):
        img = imgs[int(torch.randint(len(imgs), (1,), generator=gen))]
        y = int(torch.randint(img.shape[1] - size, (1,), generator=gen))
        x = int(torch.randint(img.shape[2] - size, (1,), generator=gen))
        out.append(img[:, y : y + size, x : x + size])
    return torch.stack(out)


def dncnn(depth=8, ch=32):
    layers = [torch.nn.Conv2d(3, ch, 3, padding=1), torch.nn.ReLU(inplace=True)]
    for _ in range(depth - 2):
        layers += [
            torch.nn.Conv2d(ch, ch, 3, padding=1),
            torch.nn.BatchNorm2d(ch),
            torch.nn.ReLU(inplace=True),
        ]
    layers += [torch.nn.Conv2d(ch, 3, 3, padding=1)]
    net = torch.nn.Sequential(*layers)
    return net


def train_denoiser(loss_fn, steps, seed=0, sigma=25 / 255):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = dncnn()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    imgs = images(TRAIN)
    for step in range(steps):
        clean = patches(imgs, 8, 48, gen)
        noisy = clean + torch.randn(clean.shape, generator=gen) * sigma
        out = noisy - net(noisy)
        loss = loss_fn(out.clamp(0, 1), clean).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def evaluate(net, sigma=25 / 255):
    from metrics import psnr, ssim

    gen = torch.Generator().manual_seed(123)
    ps, ss = [], []
    for img in images(TEST):
        img = img[:, :256, :256][None]
        noisy = img + torch.randn(img.shape, generator=gen) * sigma
        out = (noisy - net(noisy)).clamp(0, 1)
        ps.append(float(psnr(out, img)))
        ss.append(float(ssim(out, img)))
    return np.mean(ps), np.mean(ss)


def distortions(img):
    from scaling.contracts.jpeg import jpeg_roundtrip

    gen = torch.Generator().manual_seed(7)
    noisy = (img + torch.randn(img.shape, generator=gen) * 25 / 255).clamp(0, 1)
    arr = img[0].permute(1, 2, 0).numpy()
    jpeg = torch.from_numpy(jpeg_roundtrip(arr, 10)).permute(2, 0, 1)[None]
    h, w = img.shape[-2:]
    down = F.interpolate(img, scale_factor=0.25, mode="bicubic", antialias=True)
    sr = F.interpolate(down, size=(h, w), mode="bicubic").clamp(0, 1)
    return {"noise s=25": noisy, "JPEG q=10": jpeg, "bicubic x4": sr}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--ours", type=Path, default=SHIPPED / "mdf_denoise.pt")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from metrics import MDFLoss, create

    losses = {"L2": create("l2")}
    authors = SHARED / "Ds_SISR.pth"
    if authors.is_file():
        losses["MDF (authors' weights)"] = MDFLoss(weights=authors)
    else:
        print(f"(skipping the authors' MDF: {authors} absent)")
    if args.ours.is_file():
        from metrics.mdf_weights import load_discriminators

        n = len(load_discriminators(args.ours)[0])
        losses[f"MDF (ours: {args.ours.name})"] = MDFLoss(weights=args.ours, num_scales=min(8, n))
    else:
        print(f"(skipping our MDF: {args.ours} absent)")

    rows = []
    for name, fn in losses.items():
        t = time.time()
        net = train_denoiser(fn, args.steps)
        p, s = evaluate(net)
        rows.append((name, p, s, time.time() - t))
    print(
        f"\n### DnCNN-8 denoising (sigma 25), {args.steps} steps of 8 x 48px patches, "
        f"held-out {TEST}\n"
    )
    print("| loss | PSNR (dB) | SSIM | train time (s) |\n|---|---|---|---|")
    for name, p, s, t in rows:
        print(f"| {name} | {p:.2f} | {s:.4f} | {t:.0f} |")

    files = {}
    if authors.is_file():
        files["authors SISR/denoise"] = (authors, 8)
        if (SHARED / "Ds_JPEG.pth").is_file():
            files["authors JPEG"] = (SHARED / "Ds_JPEG.pth", 8)
    for task in ("denoise", "jpeg", "sisr"):
        p = SHIPPED / f"mdf_{task}.pt"
        if p.is_file():
            from metrics.mdf_weights import load_discriminators

            files[f"ours {task}"] = (p, min(8, len(load_discriminators(p)[0])))
    if not files:
        return
    test = [img[:, :256, :256][None] for img in images(TEST)]
    print(
        "\n### Task specificity: loss(distorted, clean), mean over held-out images, "
        "each row divided by its largest entry\n"
    )
    print("| weights | noise s=25 | JPEG q=10 | bicubic x4 |\n|---|---|---|---|")
    for name, (path, n) in files.items():
        m = MDFLoss(weights=path, num_scales=n)
        vals = {}
        for img in test:
            for k, d in distortions(img).items():
                vals.setdefault(k, []).append(float(m(d, img)))
        v = np.array([np.mean(vals[k]) for k in ("noise s=25", "JPEG q=10", "bicubic x4")])
        print(f"| {name} | " + " | ".join(f"{x / v.max():.2f}" for x in v) + " |")


if __name__ == "__main__":
    main()
