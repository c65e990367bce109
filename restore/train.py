"""Training loop: ``train(cfg)`` for any model, task and ``metrics`` loss, single process or DDP.

Each epoch is ``cfg.patches_per_epoch`` patches. After every ``cfg.val_every`` epochs the main
process validates (loss, PSNR, SSIM on the validation images degraded once with the run's seed),
keeps ``best.pt`` by lowest validation loss (Mustafa et al., WACV 2022: "the best model is selected
based on the validation loss"), writes ``last.pt``, ``log.csv`` and ``curves.png``. With
``cfg.checkpoint_every`` it also checkpoints mid-epoch, and because the data stream and the learning
rate are pure functions of the step, ``resume=True`` continues exactly where ``last.pt`` left off.

The loop (:func:`_train`) moves a :class:`restore.state.TrainState` (what a checkpoint stores)
forward; the files are written by callbacks (:mod:`restore.callbacks`), and the caller may add its
own with ``train(cfg, callbacks=[...])``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from . import distributed
from .callbacks import Callback, CallbackList, Checkpointer, ProgressBar, RunLog
from .checkpoint import load_checkpoint, unwrap
from .config import TrainConfig, degradation_of
from .data import PatchDataset, StepBatchSampler, load_eval_images
from .degrade import Degradation
from .image_io import list_images
from .inference import restore_tensor
from .losses import RestorationLoss
from .models import build_model
from .quality import psnr, ssim
from .state import TrainState

log = logging.getLogger(__name__)

#: settings a resumed run may change; everything else comes from the checkpoint
RESUME_OVERRIDABLE = ("epochs", "out_dir", "resume", "progress", "num_workers", "device",
                      "checkpoint_every", "tensorboard", "data", "val_data")  # fmt: skip


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


def train(cfg: TrainConfig, *, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Train a restoration network as ``cfg`` says; returns a summary dict.

    Writes into ``cfg.out_dir``: ``last.pt`` (resumable), ``best.pt`` (lowest validation loss),
    ``log.csv`` and ``curves.png``. Under torchrun (``RANK`` set) it runs DDP; only rank 0 writes.
    ``callbacks``: objects with some of the hooks of :mod:`restore.callbacks` (``on_step_end(state)``
    etc.), called before the run's own. Summary keys: ``best_val_loss``, ``best_epoch``, ``steps``,
    ``history``, ``last``, ``best``, ``config``.
    """
    info = distributed.setup(cfg.device)
    try:
        return _train(cfg, info, list(callbacks))
    finally:
        distributed.cleanup(info)


@dataclass
class _Run:
    """What the loop needs besides its :class:`TrainState`."""

    info: distributed.DistInfo
    model: nn.Module  # the network, or its DDP wrapper
    loss_fn: nn.Module
    dataset: PatchDataset
    val_items: list  # [(id, clean uint8, degraded float32)], main process only
    autocast: AbstractContextManager


def _train(cfg: TrainConfig, info: distributed.DistInfo, callbacks: list) -> dict[str, Any]:
    cfg, ckpt = _resolve_resume(cfg)
    cbs = CallbackList([*callbacks, *_own_callbacks(cfg, info)])  # TypeError before any work
    run, state = _setup(cfg, info, ckpt)
    t0 = time.perf_counter()
    run.model.train()
    cbs.emit("on_train_start", state)
    while state.step < state.total_steps:
        for g in state.optimizer.param_groups:
            g["lr"] = state.lr
        cbs.emit("on_epoch_start", state)
        t_epoch, n_epoch = time.perf_counter(), 0
        for lq, hq in _epoch_batches(run, state):
            _train_step(run, state, lq, hq)
            n_epoch += lq.shape[0]
            cbs.emit("on_step_end", state)
        rate = n_epoch * info.world_size / max(1e-9, time.perf_counter() - t_epoch)
        _end_epoch(run, state, rate, time.perf_counter() - t0)
        cbs.emit("on_epoch_end", state)
        distributed.barrier(info)
    cbs.emit("on_train_end", state)
    out = Path(cfg.out_dir)
    return {"best_val_loss": state.best_val_loss, "best_epoch": state.best_epoch,
            "steps": state.step, "history": state.history, "last": out / "last.pt",
            "best": out / "best.pt", "config": cfg}  # fmt: skip


def _own_callbacks(cfg: TrainConfig, info: distributed.DistInfo) -> list[Callback]:
    """The run's files and progress bar, on the main process only."""
    if not info.is_main:
        return []
    title = f"{cfg.model} / {cfg.loss} / {cfg.task}"
    own: list[Callback] = [Checkpointer(cfg.out_dir, cfg.checkpoint_every),
                           RunLog(cfg.out_dir, title, cfg.tensorboard)]  # fmt: skip
    return [*own, ProgressBar()] if cfg.progress else own


def _setup(
    cfg: TrainConfig, info: distributed.DistInfo, ckpt: dict[str, Any] | None
) -> tuple[_Run, TrainState]:
    """Build the network, loss, data, optimiser and AMP scaler; restore ``ckpt`` if given."""
    if not cfg.data:
        raise ValueError("no training data: set cfg.data (a folder of images)")
    if info.is_main:
        Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    device = info.device
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    shape = {**({"scale": cfg.scale} if cfg.task == "sr" else {}),
             **({"channels": cfg.channels} if cfg.model == "dncnn" else {})}  # fmt: skip
    net = build_model(cfg.model, **{**cfg.model_options, **shape}).to(device)
    loss_fn = RestorationLoss(cfg.loss, cfg.channels, restore_task=cfg.task,
                              **cfg.loss_options).to(device)  # fmt: skip
    dataset = PatchDataset(
        list_images(cfg.data, cfg.layout, "train"), degradation_of(cfg), cfg.patch_size,
        cfg.channels, cfg.augment, cfg.seed, cfg.cache_images, cfg.cache_dir or None,
    )  # fmt: skip
    val_items = _validation_items(cfg) if info.is_main else []
    use_amp = cfg.amp and device.startswith("cuda")
    amp_dtype = torch.bfloat16 if cfg.amp_dtype == "bfloat16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    state = TrainState(cfg, net, make_optimizer(cfg, net.parameters()), scaler, info.world_size)
    if ckpt is not None:  # after everything above, so the restored RNG states stay as saved
        state.load(ckpt)
        log.info("resumed from %s at step %d (epoch %d)", Path(cfg.out_dir) / "last.pt",
                 state.step, state.epoch)  # fmt: skip
    model: nn.Module = net
    if info.enabled:
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[info.local_rank] if device.startswith("cuda") else None
        )
    ctx = torch.autocast("cuda", dtype=amp_dtype) if use_amp else nullcontext()
    return _Run(info, model, loss_fn, dataset, val_items, ctx), state


def _validation_items(cfg: TrainConfig) -> list:
    paths = _validation_paths(cfg)
    if not paths:
        log.warning("no validation images: best.pt will be the last epoch's model")
        return []
    return load_eval_images(paths, degradation_of(cfg, True), cfg.channels, cfg.seed,
                            cfg.val_crop or None)  # fmt: skip


def _epoch_batches(run: _Run, state: TrainState) -> DataLoader:
    """This rank's batches for the rest of the current epoch."""
    cfg, info = state.config, run.info
    sampler = StepBatchSampler(state.step, state.epoch_end, cfg.batch_size, info.rank,
                               info.world_size)  # fmt: skip
    return DataLoader(run.dataset, batch_sampler=sampler, num_workers=cfg.num_workers,
                      pin_memory=info.device.startswith("cuda"), persistent_workers=False)  # fmt: skip


def _train_step(run: _Run, state: TrainState, lq: torch.Tensor, hq: torch.Tensor) -> None:
    """One optimiser step on a batch; counts it and adds its loss to the epoch's running sum."""
    device, opt, scaler = run.info.device, state.optimizer, state.scaler
    lq, hq = lq.to(device, non_blocking=True), hq.to(device, non_blocking=True)
    with run.autocast:
        pred = run.model(lq)
    loss = run.loss_fn(pred.float(), hq)
    if not torch.isfinite(loss):
        raise RuntimeError(
            f"loss became {loss.item()} at step {state.step} (lr {state.lr}); lower the lr"
        )
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if state.config.grad_clip > 0:
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(run.model.parameters(), state.config.grad_clip)
    scaler.step(opt)
    scaler.update()
    state.step += 1
    state.epoch_loss_sum += float(loss.detach())
    state.epoch_loss_n += 1


def _end_epoch(run: _Run, state: TrainState, rate: float, elapsed: float) -> None:
    """Average the epoch's loss over ranks; on the main process validate, add the history row and
    update the best validation loss."""
    cfg, info = state.config, run.info
    train_loss = distributed.all_reduce_mean(state.epoch_loss_sum / max(1, state.epoch_loss_n), info)
    state.epoch_loss_sum, state.epoch_loss_n = 0.0, 0
    if not info.is_main:
        return
    lr = state.optimizer.param_groups[0]["lr"]  # this epoch's (state.lr has moved on to the next)
    row: dict[str, Any] = {"epoch": state.epoch, "step": state.step, "lr": lr, "train_loss": train_loss,
                           "patches_per_s": rate, "elapsed_s": elapsed}  # fmt: skip
    if run.val_items and (state.epoch % cfg.val_every == 0 or state.step >= state.total_steps):
        row.update(validate(run.model, run.loss_fn, run.val_items, degradation_of(cfg, True),
                            info.device, cfg.y_channel))  # fmt: skip
    state.history.append(row)
    score = row.get("val_loss", train_loss if not run.val_items else None)
    if score is not None and score < state.best_val_loss:
        state.best_val_loss, state.best_epoch = float(score), state.epoch


