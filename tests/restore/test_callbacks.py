"""Callbacks: the hooks train() calls, their order against the run's own files, bad callbacks."""

from __future__ import annotations

import pytest

from restore.callbacks import Callback, CallbackList, plot_curves, write_log
from restore.checkpoint import load_checkpoint
from restore.train import train


class _Record(Callback):
    def __init__(self, out):
        self.out, self.calls = out, []

    def on_train_start(self, state):
        self.calls.append(("train_start", state.step))

    def on_epoch_start(self, state):
        self.calls.append(("epoch_start", state.step))

    def on_step_end(self, state):
        self.calls.append(("step", state.step))

    def on_epoch_end(self, state):
        last = self.out / "last.pt"
        saved = load_checkpoint(last)["step"] if last.is_file() else None
        self.calls.append(("epoch_end", state.step, state.history[-1]["epoch"], saved))

    def on_train_end(self, state):
        self.calls.append(("train_end", state.step))


def test_hooks_see_the_state_in_order_before_the_runs_own_files(make_cfg, image_dirs, tmp_path):
    rec = _Record(tmp_path)
    out = train(make_cfg(image_dirs, tmp_path, "denoise", "dncnn", loss="l2", epochs=2,
                         patches_per_epoch=4), callbacks=[rec])  # fmt: skip
    assert rec.calls == [
        ("train_start", 0), ("epoch_start", 0), ("step", 1), ("step", 2),
        ("epoch_end", 2, 1, None),  # called before this epoch's last.pt is written
        ("epoch_start", 2), ("step", 3), ("step", 4), ("epoch_end", 4, 2, 2), ("train_end", 4),
    ]  # fmt: skip
    assert out["steps"] == 4 and load_checkpoint(out["last"])["step"] == 4


def test_a_duck_typed_callback_needs_at_least_one_hook():
    class OnlyEnd:
        def __init__(self):
            self.seen = []

        def on_train_end(self, state):
            self.seen.append(state)

    cb = OnlyEnd()
    cbs = CallbackList([cb])
    cbs.emit("on_step_end", "s")  # hooks it lacks are skipped
    cbs.emit("on_train_end", "s")
    assert cb.seen == ["s"]
    with pytest.raises(TypeError, match="has none of the hooks"):
        CallbackList([object()])
    with pytest.raises(ValueError, match="unknown hook"):
        cbs.emit("on_batch", "s")


def test_log_and_curves_are_written(tmp_path):
    rows = [{"epoch": 1, "step": 4, "lr": 1e-3, "train_loss": 0.5, "val_loss": 0.4, "val_psnr": 20.0,
             "val_ssim": 0.5, "patches_per_s": 10.0, "elapsed_s": 1.0, "extra": 1},
            {"epoch": 2, "step": 8, "lr": 1e-3, "train_loss": 0.3, "patches_per_s": 10.0,
             "elapsed_s": 2.0}]  # fmt: skip
    write_log(rows, tmp_path / "log.csv")
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0].split(",")[:4] == ["epoch", "step", "lr", "train_loss"] and len(lines) == 3
    plot_curves(rows, tmp_path / "curves.png", "t")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "log.csv"]  # no temp files
