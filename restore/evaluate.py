"""Objective evaluation: per-image PSNR, SSIM and LPIPS for each (model, loss, data set), one tidy CSV.

Test images are degraded once with a fixed seed (the same per-image noise as
:func:`restore.image_io.degrade_folder`), or read from a folder written by it. PSNR/SSIM follow
:mod:`restore.quality` (luma and a ``scale``-pixel border crop for SR, as SR papers report); LPIPS
(Zhang et al., CVPR 2018, AlexNet trunk) comes from ``metrics`` and is left empty, with a warning,
when its ImageNet trunk is not available offline. This is the data of the paper's figure 4.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from scaling.contracts.atomic import save_figure, write_csv

from .checkpoint import load_checkpoint, model_from_checkpoint
from .degrade import Degradation, degrade, image_seed, mod_crop
from .image_io import image_id, list_images, load_degraded_folder, load_image
from .inference import restore_image
from .quality import psnr, ssim

COLUMNS = ("model", "loss", "label", "task", "dataset", "image", "psnr", "ssim", "lpips")


def test_items(
    folder: str | Path, deg: Degradation, channels: int, seed: int = 0, layout: str = "auto",
    split: str = "test", limit: int | None = None,
) -> list[tuple[str, np.ndarray, np.ndarray]]:  # fmt: skip
    """[(id, clean uint8, degraded float32)] of a test folder, degraded once with ``seed``.

    A folder written by :func:`restore.image_io.degrade_folder` (it has ``degradation.json``) is read
    as is; its degradation must then match ``deg`` (task and scale), else ``ValueError``.
    """
    folder = Path(folder)
    if (folder / "degradation.json").is_file():
        meta, items = load_degraded_folder(folder)
        stored = Degradation.from_dict(meta["degradation"])
        if (stored.task, stored.out_scale) != (deg.task, deg.out_scale):
            raise ValueError(
                f"{folder} was degraded for {stored.task} x{stored.out_scale}, "
                f"but the model expects {deg.task} x{deg.out_scale}"
            )
        return items[:limit] if limit else items
    paths = list_images(folder, layout, split)[: limit or None]
    out = []
    for p in paths:
        clean = mod_crop(load_image(p, channels), deg.out_scale)
        iid = image_id(p)
        out.append((iid, clean, degrade(clean, deg, image_seed(seed, iid))))
    return out


def _lpips_metric(options: dict[str, Any] | None, device: str):
    import metrics

    try:
        return metrics.create("lpips", as_loss=False, **(options or {})).to(device).eval()
    except Exception as e:  # noqa: BLE001  (no ImageNet trunk offline, lpips missing, ...)
        warnings.warn(
            f"LPIPS unavailable ({e}); its column stays empty", RuntimeWarning, stacklevel=3
        )
        return None


def _to_rgb_tensor(a: np.ndarray, device: str) -> torch.Tensor:
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None].to(device)
    return t.repeat(1, 3, 1, 1) if t.shape[1] == 1 else t


def evaluate(
    checkpoints: dict[str, str | Path], datasets: dict[str, str | Path], out_csv: str | Path | None = None,
    seed: int = 0, device: str = "cpu", tile: int = 0, y_channel: bool = True,
    overrides: dict[str, Any] | None = None, lpips: bool = True,
    lpips_options: dict[str, Any] | None = None, limit: int | None = None, progress: bool = True,
) -> pd.DataFrame:  # fmt: skip
    """Evaluate every checkpoint on every data set; one row per (checkpoint, data set, image).

    Args:
        checkpoints: label -> checkpoint path (labels are free, e.g. the loss name).
        datasets: data set name -> folder of clean images (or a degraded folder).
        out_csv: where to write the CSV (atomically); also writes ``<stem>.png`` (PSNR box plots).
        seed: degradation seed (noise); the test degradation is the checkpoint's validation one.
        overrides: degradation fields to change, e.g. ``{"quality": 7}`` (JPEG at q = 7).
        lpips, lpips_options: compute LPIPS (``{"pretrained": False}`` only for tests).
    Returns: a DataFrame with columns ``COLUMNS`` (PSNR in dB; SSIM, LPIPS unitless).
    """
    rows = []
    lp = _lpips_metric(lpips_options, device) if lpips else None
    for label, path in checkpoints.items():
        ckpt = load_checkpoint(path)
        model = model_from_checkpoint(ckpt).to(device).eval()
        cfg = ckpt["config"]
        deg_d = {**ckpt["val_degradation"], **(overrides or {})}
        deg = Degradation.from_dict(deg_d)
        shave = deg.out_scale if deg.task == "sr" else 0
        for dname, folder in datasets.items():
            items = test_items(folder, deg, int(cfg["channels"]), seed, limit=limit)
            for iid, clean, lq in tqdm(items, desc=f"{label}/{dname}", disable=not progress):
                res = restore_image(model, lq, deg.out_scale, device, tile)
                row = {"model": cfg["model"], "loss": cfg["loss"], "label": label, "task": deg.task,
                       "dataset": dname, "image": iid,
                       "psnr": psnr(res, clean, y_channel, shave),
                       "ssim": ssim(res, clean, y_channel, shave), "lpips": np.nan}  # fmt: skip
                if lp is not None:
                    with torch.no_grad():
                        val = lp(_to_rgb_tensor(res, device), _to_rgb_tensor(clean, device))
                    row["lpips"] = float(val.reshape(-1)[0])
                rows.append(row)
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    if out_csv is not None:
        out_csv = Path(out_csv)
        write_csv(df, out_csv)
        if len(df):
            plot_psnr(df, out_csv.with_suffix(".png"))
    return df


def plot_psnr(df: pd.DataFrame, path: str | Path) -> None:
    """Box plots of per-image PSNR (dB) by checkpoint label, one panel per data set (Agg, PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(df["dataset"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        sub = df[df["dataset"] == name]
        labels = list(dict.fromkeys(sub["label"]))
        ax.boxplot([sub[sub["label"] == lab]["psnr"].to_numpy() for lab in labels])
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30)
        ax.set(title=name, ylabel="PSNR (dB)")
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=100)
    finally:
        plt.close(fig)
