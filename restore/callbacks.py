"""Callbacks of the training loop, and the ones every run uses: checkpoints, the run log, progress.

``restore.train(cfg, callbacks=[...])`` calls, on each callback that has them, the hooks

========================  ===================================================================
hook                      called
========================  ===================================================================
``on_train_start(s)``     once, before the first step (after a resume: with the loaded state)
``on_epoch_start(s)``     before the first step of each epoch (or of its rest, after a resume)
``on_step_end(s)``        after each optimiser step (``s.step`` counts it)
``on_epoch_end(s)``       after the epoch's loss is averaged and validated (``s.history[-1]``)
``on_train_end(s)``       once, after the last epoch
========================  ===================================================================

with the run's :class:`restore.state.TrainState` ``s``. The caller's callbacks run first, in the
order given, then the run's own (:class:`Checkpointer`, :class:`RunLog`, :class:`ProgressBar`),
so a callback that raises in ``on_step_end`` stops the run before that step is checkpointed.
Under DDP the caller's callbacks run in every process, the run's own on the main one only;
``history`` and the best validation loss are kept on the main process only.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from tqdm import tqdm

from scaling.contracts.atomic import atomic_open, save_figure

from .checkpoint import save_checkpoint
from .state import TrainState

log = logging.getLogger(__name__)

HOOKS = ("on_train_start", "on_epoch_start", "on_step_end", "on_epoch_end", "on_train_end")
LOG_FIELDS = ("epoch", "step", "lr", "train_loss", "val_loss", "val_psnr", "val_ssim",
              "patches_per_s", "elapsed_s")  # fmt: skip


class Callback:
    """Base class with every hook doing nothing; any object with some of :data:`HOOKS` will do."""

    def on_train_start(self, state: TrainState) -> None:
        """Before the first step."""

    def on_epoch_start(self, state: TrainState) -> None:
        """Before each epoch's first step."""

    def on_step_end(self, state: TrainState) -> None:
        """After each optimiser step."""

    def on_epoch_end(self, state: TrainState) -> None:
        """After each epoch (averaged, validated, best model updated)."""

    def on_train_end(self, state: TrainState) -> None:
        """After the last epoch."""


class CallbackList:
    """The callbacks of a run; :meth:`emit` calls one hook on each that has it, in order."""

    def __init__(self, callbacks: list[Any]) -> None:
        for cb in callbacks:
            if not any(callable(getattr(cb, h, None)) for h in HOOKS):
                raise TypeError(f"callback {cb!r} has none of the hooks {', '.join(HOOKS)}")
        self.callbacks = list(callbacks)

    def emit(self, hook: str, state: TrainState) -> None:
        """Call ``hook`` (one of :data:`HOOKS`) with ``state`` on every callback that has it."""
        if hook not in HOOKS:
            raise ValueError(f"unknown hook {hook!r}; expected one of {HOOKS}")
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(state)


class Checkpointer(Callback):
    """``last.pt`` every ``every`` steps (0: at epoch ends only) and at each epoch end; ``best.pt``
    when the epoch reached the lowest validation loss so far."""

    def __init__(self, out_dir: str | Path, every: int = 0) -> None:
        self.out, self.every = Path(out_dir), int(every)

    def on_step_end(self, state: TrainState) -> None:
        """Mid-epoch checkpoint (the epoch's end writes its own)."""
        if self.every and state.step % self.every == 0 and state.step % state.steps_per_epoch:
            save_checkpoint(self.out / "last.pt", state.checkpoint())

    def on_epoch_end(self, state: TrainState) -> None:
        """``best.pt`` if this epoch is the best one, then ``last.pt``."""
        payload = state.checkpoint()
        if state.best_epoch == state.epoch:
            save_checkpoint(self.out / "best.pt", payload)
        save_checkpoint(self.out / "last.pt", payload)


def write_log(history: list[dict[str, Any]], path: str | Path) -> None:
    """The per-epoch rows as a CSV file (columns :data:`LOG_FIELDS`), written atomically."""
    with atomic_open(path, binary=False, newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(history)


def plot_curves(history: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Training/validation loss and validation PSNR per epoch, saved as a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    a1.plot(ep, [r["train_loss"] for r in history], "o-", label="train")
    val = [r for r in history if r.get("val_loss") not in (None, "")]
    if val:
        a1.plot([r["epoch"] for r in val], [r["val_loss"] for r in val], "s-", label="validation")
        a2.plot([r["epoch"] for r in val], [r["val_psnr"] for r in val], "s-")
    a1.set(xlabel="epoch", ylabel="loss", title="loss")
    a1.legend()
    a2.set(xlabel="epoch", ylabel="PSNR (dB)", title="validation PSNR")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=100)
    finally:
        plt.close(fig)


class RunLog(Callback):
    """``log.csv``, ``curves.png``, TensorBoard scalars (when installed) and a log line per epoch."""

    def __init__(self, out_dir: str | Path, title: str = "", tensorboard: bool = True) -> None:
        self.out, self.title, self.tensorboard = Path(out_dir), title, tensorboard
        self.writer = None

    def on_train_start(self, state: TrainState) -> None:
        """Open the TensorBoard writer (``out_dir/tb``)."""
        if not self.tensorboard:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("tensorboard is not installed: logging to log.csv only")
            return
        self.writer = SummaryWriter(str(self.out / "tb"))

    def on_epoch_end(self, state: TrainState) -> None:
        """Rewrite the CSV and the curves, add the epoch's scalars, log the row."""
        row = state.history[-1]
        write_log(state.history, self.out / "log.csv")
        plot_curves(state.history, self.out / "curves.png", self.title)
        if self.writer is not None:
            for k, v in row.items():
                if k not in ("epoch", "step"):
                    self.writer.add_scalar(k, v, row["epoch"])
        shown = {k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}
        log.info("epoch %d: %s", row["epoch"], shown)

    def on_train_end(self, state: TrainState) -> None:
        """Close the TensorBoard writer."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class ProgressBar(Callback):
    """A tqdm bar per epoch showing the running training loss and the learning rate."""

    def __init__(self) -> None:
        self.bar, self.lr = None, 0.0

    def on_epoch_start(self, state: TrainState) -> None:
        """Open the epoch's bar."""
        self.lr = state.lr
        self.bar = tqdm(total=state.epoch_end - state.step, leave=False,
                        desc=f"epoch {state.epoch + 1}/{state.config.epochs}")  # fmt: skip

    def on_step_end(self, state: TrainState) -> None:
        """Advance by one step."""
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{state.epoch_loss_sum / state.epoch_loss_n:.4g}",
                             lr=f"{self.lr:.3g}")  # fmt: skip

    def on_epoch_end(self, state: TrainState) -> None:
        """Close the epoch's bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


__all__ = ["HOOKS", "LOG_FIELDS", "Callback", "CallbackList", "Checkpointer", "ProgressBar",
           "RunLog", "plot_curves", "write_log"]  # fmt: skip
