"""The state of a training run, :class:`TrainState`: exactly what a checkpoint stores.

A run is resumable because everything that decides what happens next is here: the network's
weights, the optimiser's and AMP scaler's states, the step counter (the epoch, the learning rate of
the pure schedule :func:`restore.config.lr_at` and the data stream :class:`restore.data.PatchDataset`
follow from it), the best validation loss so far, the per-epoch history, this epoch's running
training loss and the process's RNG states. :meth:`TrainState.checkpoint` turns it into the
checkpoint dict of :mod:`restore.checkpoint`; :meth:`TrainState.load` puts one back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .checkpoint import load_state_into, rng_state, set_rng_state, unwrap
from .config import TrainConfig, degradation_of, lr_at
from .models import model_args


@dataclass
class TrainState:
    """Live training state, the one thing callbacks receive (see :mod:`restore.callbacks`).

    ``model`` is the plain network (never the DDP wrapper); ``world_size`` only sets how many
    steps an epoch has (:meth:`TrainConfig.steps_per_epoch`) and is not stored. ``history`` and the
    best validation loss are kept by the main process only.
    """

    config: TrainConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    world_size: int = 1
    step: int = 0  #: optimiser steps done
    best_val_loss: float = math.inf  #: lowest validation loss (train loss without validation images)
    best_epoch: int = -1  #: 1-based epoch that reached it (-1: none yet)
    history: list[dict[str, Any]] = field(default_factory=list)  #: one row per finished epoch
    epoch_loss_sum: float = 0.0  #: training loss summed over this epoch's steps so far (this rank)
    epoch_loss_n: int = 0  #: number of steps in ``epoch_loss_sum``

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch for this run's world size."""
        return self.config.steps_per_epoch(self.world_size)

    @property
    def total_steps(self) -> int:
        """Steps of the whole run (``epochs`` epochs)."""
        return self.config.epochs * self.steps_per_epoch

    @property
    def epoch(self) -> int:
        """Epochs finished; during an epoch, its 0-based index."""
        return self.step // self.steps_per_epoch

    @property
    def epoch_end(self) -> int:
        """The step at which the current epoch ends."""
        return (self.epoch + 1) * self.steps_per_epoch

    @property
    def lr(self) -> float:
        """Learning rate of the current epoch (the last epoch's once training is done)."""
        return lr_at(self.config, min(self.epoch, self.config.epochs - 1))

    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint dict (tensors and plain types only; :func:`restore.checkpoint.save_checkpoint`).

        Captures the process's RNG states now.
        """
        cfg, net = self.config, unwrap(self.model)
        return {
            "model": net.state_dict(), "model_name": cfg.model, "model_args": model_args(net),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "schedule": {"kind": cfg.schedule, "epoch": self.epoch, "lr": self.lr},
            "step": self.step, "epoch": self.epoch, "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch, "history": self.history,
            "epoch_loss_sum": self.epoch_loss_sum, "epoch_loss_n": self.epoch_loss_n,
            "rng": rng_state(), "config": cfg.to_dict(), "degradation": degradation_of(cfg).to_dict(),
            "val_degradation": degradation_of(cfg, True).to_dict(),
        }  # fmt: skip

    def load(self, ckpt: dict[str, Any]) -> None:
        """Restore weights, optimiser, scaler, counters and RNG states from a checkpoint dict.

        Call it after everything that draws random numbers has been built, so the RNG states stay
        as they were saved.
        """
        load_state_into(self.model, ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        self.best_val_loss, self.best_epoch = float(ckpt["best_val_loss"]), int(ckpt["best_epoch"])
        self.history = list(ckpt["history"])
        self.epoch_loss_sum, self.epoch_loss_n = float(ckpt["epoch_loss_sum"]), int(ckpt["epoch_loss_n"])
        set_rng_state(ckpt["rng"])


__all__ = ["TrainState"]
