"""Training loop: ``train(cfg)`` for any model, task and ``metrics`` loss, single process or DDP.

Each epoch is ``cfg.patches_per_epoch`` patches. After every ``cfg.val_every`` epochs the main
process validates (loss, PSNR, SSIM on the validation images degraded once with the run's seed),
keeps ``best.pt`` by lowest validation loss (Mustafa et al., WACV 2022: "the best model is selected
based on the validation loss"), writes ``last.pt``, ``log.csv`` and ``curves.png``. With
``cfg.checkpoint_every`` it also checkpoints mid-epoch, and because the data stream and the learning
rate are pure functions of the step, ``resume=True`` continues exactly where ``last.pt`` left off.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import distributed
from .checkpoint import (
    load_checkpoint,
    load_state_into,
    rng_state,
    save_checkpoint,
    set_rng_state,
    unwrap,
)
from .config import TrainConfig, lr_at
from .data import PatchDataset, StepBatchSampler, list_images, load_eval_images
from .degrade import Degradation, _atomic_write_bytes
from .inference import restore_tensor
from .losses import RestorationLoss
from .models import build_model, model_args
from .quality import psnr, ssim

log = logging.getLogger(__name__)

LOG_FIELDS = ("epoch", "step", "lr", "train_loss", "val_loss", "val_psnr", "val_ssim",
              "patches_per_s", "elapsed_s")  # fmt: skip
#: settings a resumed run may change; everything else comes from the checkpoint
RESUME_OVERRIDABLE = ("epochs", "out_dir", "resume", "progress", "num_workers", "device",
                      "checkpoint_every", "tensorboard", "data", "val_data")  # fmt: skip


class _SimulatedCrash(RuntimeError):
    """Raised by the test hook ``_crash_after_step`` to emulate a process killed mid-epoch."""


def degradation_of(cfg: TrainConfig, validation: bool = False) -> Degradation:
    """The degradation of the run's training inputs (``validation``: fixed ``val_sigma`` noise)."""
    sigma: Any = cfg.val_sigma if validation else tuple(cfg.sigma)
    return Degradation(task=cfg.task, scale=cfg.scale, sigma=sigma, quality=cfg.quality)


def _validation_paths(cfg: TrainConfig) -> list[Path]:
    if cfg.val_data:
        return list_images(cfg.val_data, cfg.val_layout, "valid")
    if cfg.layout in ("div2k", "bsd500", "dped"):
        return list_images(cfg.data, cfg.layout, "valid")
    return []


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    """Adam (SR, JPEG) or SGD with Nesterov momentum (denoising), as in the paper's protocol."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(
            params, lr=cfg.lr, betas=tuple(cfg.adam_betas), weight_decay=cfg.weight_decay
        )
    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
    )


@torch.no_grad()
def validate(
    model: nn.Module, loss_fn: nn.Module, items: list, deg: Degradation, device: str,
    y_channel: bool = True,
) -> dict[str, float]:  # fmt: skip
    """Mean loss, PSNR (dB) and SSIM over validation images [(id, clean uint8, degraded float32)].

    PSNR/SSIM follow SR papers: luma when ``y_channel`` and a border of ``scale`` pixels removed for SR.
    """
    net = unwrap(model)
    was_training = net.training
    net.eval()
    losses, psnrs, ssims = [], [], []
    shave = deg.out_scale if deg.task == "sr" else 0
    try:
        for _, clean, lq in items:
            x = torch.from_numpy(np.ascontiguousarray(lq.transpose(2, 0, 1)))[None].to(device)
            tgt = torch.from_numpy(np.ascontiguousarray(clean.transpose(2, 0, 1)))[None].to(device)
            out = restore_tensor(net, x, deg.out_scale)
            losses.append(float(loss_fn(out, tgt.float() / 255.0)))
            res = out[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()
            psnrs.append(psnr(res, clean, y_channel, shave))
            ssims.append(ssim(res, clean, y_channel, shave))
    finally:
        net.train(was_training)
    return {"val_loss": float(np.mean(losses)), "val_psnr": float(np.mean(psnrs)),
            "val_ssim": float(np.mean(ssims))}  # fmt: skip


def _write_log(out: Path, history: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LOG_FIELDS, extrasaction="ignore")
    w.writeheader()
    for row in history:
        w.writerow(row)
    _atomic_write_bytes(out / "log.csv", buf.getvalue().encode())


def plot_curves(history: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Training/validation loss and validation PSNR per epoch, saved as a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    a1.plot(ep, [r["train_loss"] for r in history], "o-", label="train")
    vl = [(r["epoch"], r["val_loss"]) for r in history if r.get("val_loss") not in (None, "")]
    if vl:
        a1.plot(*zip(*vl), "s-", label="validation")
        a2.plot(
            *zip(
                *[
                    (r["epoch"], r["val_psnr"])
                    for r in history
                    if r.get("val_psnr") not in (None, "")
                ]
            ),
            "s-",
        )
    a1.set(xlabel="epoch", ylabel="loss", title="loss")
    a1.legend()
    a2.set(xlabel="epoch", ylabel="PSNR (dB)", title="validation PSNR")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    _atomic_write_bytes(Path(path), buf.getvalue())


def _resolve_resume(cfg: TrainConfig) -> tuple[TrainConfig, dict[str, Any] | None]:
    last = Path(cfg.out_dir) / "last.pt"
    if not (cfg.resume and last.is_file()):
        if cfg.resume:
            log.warning("resume requested but %s does not exist: starting from scratch", last)
        return cfg, None
    ckpt = load_checkpoint(last)
    stored = dict(ckpt["config"])
    for k in RESUME_OVERRIDABLE:
        stored[k] = getattr(cfg, k)
    mine = cfg.to_dict()
    changed = sorted(k for k in stored if k not in RESUME_OVERRIDABLE and stored[k] != mine[k])
    if changed:
        log.warning(
            "resuming: settings %s come from the checkpoint, not from the command line", changed
        )
    return TrainConfig.from_dict(stored), ckpt


def train(cfg: TrainConfig, *, _crash_after_step: int | None = None) -> dict[str, Any]:
    """Train a restoration network as ``cfg`` says; returns a summary dict.

    Writes into ``cfg.out_dir``: ``last.pt`` (resumable), ``best.pt`` (lowest validation loss),
    ``log.csv`` and ``curves.png``. Under torchrun (``RANK`` set) it runs DDP; only rank 0 writes.
    Summary keys: ``best_val_loss``, ``best_epoch``, ``steps``, ``history``, ``last``, ``best``.
    """
    info = distributed.setup(cfg.device)
    try:
        return _train(cfg, info, _crash_after_step)
    finally:
        distributed.cleanup(info)


def _train(cfg: TrainConfig, info: distributed.DistInfo, crash_after: int | None) -> dict[str, Any]:
    cfg, ckpt = _resolve_resume(cfg)
    if not cfg.data:
        raise ValueError("no training data: set cfg.data (a folder of images)")
    out = Path(cfg.out_dir)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    device = info.device
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    net = build_model(
        cfg.model,
        **{
            **cfg.model_options,
            **({"scale": cfg.scale} if cfg.task == "sr" else {}),
            **({"channels": cfg.channels} if cfg.model == "dncnn" else {}),
        },
    )
    if ckpt is not None:
        load_state_into(net, ckpt["model"])
    net.to(device)
    loss_fn = RestorationLoss(cfg.loss, cfg.channels, **cfg.loss_options).to(device)

    deg = degradation_of(cfg)
    dataset = PatchDataset(
        list_images(cfg.data, cfg.layout, "train"), deg, cfg.patch_size, cfg.channels,
        cfg.augment, cfg.seed, cfg.cache_images, cfg.cache_dir or None,
    )  # fmt: skip
    val_items = []
    if info.is_main:
        vpaths = _validation_paths(cfg)
        if vpaths:
            val_items = load_eval_images(vpaths, degradation_of(cfg, True), cfg.channels, cfg.seed,
                                         cfg.val_crop or None)  # fmt: skip
        else:
            log.warning("no validation images: best.pt will be the last epoch's model")

    opt = make_optimizer(cfg, net.parameters())
    use_amp = cfg.amp and device.startswith("cuda")
    amp_dtype = torch.bfloat16 if cfg.amp_dtype == "bfloat16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    ctx = torch.autocast("cuda", dtype=amp_dtype) if use_amp else nullcontext()

    spe = cfg.steps_per_epoch(info.world_size)
    total = cfg.epochs * spe
    step, best, best_epoch, history = 0, math.inf, -1, []
    loss_sum, loss_n = 0.0, 0
    if ckpt is not None:
        opt.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        step, best, best_epoch = (
            int(ckpt["step"]),
            float(ckpt["best_val_loss"]),
            int(ckpt["best_epoch"]),
        )
        history = list(ckpt["history"])
        loss_sum, loss_n = float(ckpt["epoch_loss_sum"]), int(ckpt["epoch_loss_n"])
        set_rng_state(ckpt["rng"])
        log.info("resumed from %s at step %d (epoch %d)", out / "last.pt", step, step // spe)

    model: nn.Module = net
    if info.enabled:
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[info.local_rank] if device.startswith("cuda") else None
        )

    writer = None
    if cfg.tensorboard and info.is_main:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tb"))
        except ImportError:
            log.info("tensorboard is not installed: logging to log.csv only")

    def _payload(epoch_done: bool) -> dict[str, Any]:
        return {
            "model": unwrap(model).state_dict(), "model_name": cfg.model,
            "model_args": model_args(unwrap(model)), "optimizer": opt.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "schedule": {"kind": cfg.schedule, "epoch": step // spe, "lr": lr_at(cfg, min(step // spe, cfg.epochs - 1))},
            "step": step, "epoch": step // spe, "best_val_loss": best, "best_epoch": best_epoch,
            "history": history, "epoch_loss_sum": 0.0 if epoch_done else loss_sum,
            "epoch_loss_n": 0 if epoch_done else loss_n, "rng": rng_state(),
            "config": cfg.to_dict(), "degradation": deg.to_dict(),
            "val_degradation": degradation_of(cfg, True).to_dict(),
        }  # fmt: skip

    t0 = time.perf_counter()
    model.train()
    while step < total:
        epoch = step // spe
        end = (epoch + 1) * spe
        lr = lr_at(cfg, epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        loader = DataLoader(
            dataset, batch_sampler=StepBatchSampler(step, end, cfg.batch_size, info.rank, info.world_size),
            num_workers=cfg.num_workers, pin_memory=device.startswith("cuda"),
            persistent_workers=False,
        )  # fmt: skip
        bar = tqdm(total=end - step, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not (cfg.progress and info.is_main), leave=False)  # fmt: skip
        t_epoch, n_epoch = time.perf_counter(), 0
        for lq, hq in loader:
            lq, hq = lq.to(device, non_blocking=True), hq.to(device, non_blocking=True)
            with ctx:
                pred = model(lq)
            loss = loss_fn(pred.float(), hq)
            if not torch.isfinite(loss):
                raise RuntimeError(
                    f"loss became {loss.item()} at step {step} (lr {lr}); lower the lr"
                )
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            step += 1
            n_epoch += lq.shape[0]
            loss_sum += float(loss.detach())
            loss_n += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / loss_n:.4g}", lr=f"{lr:.3g}")
            if crash_after is not None and step >= crash_after:
                raise _SimulatedCrash(f"simulated crash after step {step}")
            if (
                cfg.checkpoint_every
                and step % cfg.checkpoint_every == 0
                and step < end
                and info.is_main
            ):
                save_checkpoint(out / "last.pt", _payload(False))
        bar.close()
        # --- end of epoch: average over ranks, validate, checkpoint, log
        train_loss = distributed.all_reduce_mean(loss_sum / max(1, loss_n), info)
        rate = n_epoch * info.world_size / max(1e-9, time.perf_counter() - t_epoch)
        loss_sum, loss_n = 0.0, 0
        row: dict[str, Any] = {"epoch": epoch + 1, "step": step, "lr": lr, "train_loss": train_loss,
                               "patches_per_s": rate, "elapsed_s": time.perf_counter() - t0}  # fmt: skip
        if info.is_main:
            is_last = step >= total
            if val_items and ((epoch + 1) % cfg.val_every == 0 or is_last):
                row.update(
                    validate(
                        model, loss_fn, val_items, degradation_of(cfg, True), device, cfg.y_channel
                    )
                )
            history.append(row)
            score = row.get("val_loss", train_loss if not val_items else None)
            if score is not None and score < best:
                best, best_epoch = float(score), epoch + 1
                save_checkpoint(out / "best.pt", _payload(True))
            save_checkpoint(out / "last.pt", _payload(True))
            _write_log(out, history)
            plot_curves(history, out / "curves.png", f"{cfg.model} / {cfg.loss} / {cfg.task}")
            if writer is not None:
                for k, v in row.items():
                    if k not in ("epoch", "step"):
                        writer.add_scalar(k, v, epoch + 1)
            log.info(
                "epoch %d: %s",
                epoch + 1,
                {k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()},
            )
        distributed.barrier(info)
    if writer is not None:
        writer.close()
    return {"best_val_loss": best, "best_epoch": best_epoch, "steps": step, "history": history,
            "last": out / "last.pt", "best": out / "best.pt", "config": cfg}  # fmt: skip
