"""TrainState: exactly what a checkpoint stores, restored and made again unchanged."""

from __future__ import annotations

import torch

from restore.checkpoint import load_checkpoint
from restore.config import TrainConfig, lr_at
from restore.models import build_model
from restore.state import TrainState
from restore.train import make_optimizer


def _fresh_state(ckpt) -> TrainState:
    cfg = TrainConfig.from_dict(ckpt["config"])
    net = build_model(ckpt["model_name"], **ckpt["model_args"])
    return TrainState(cfg, net, make_optimizer(cfg, net.parameters()),
                      torch.amp.GradScaler("cuda", enabled=False))  # fmt: skip


def test_a_loaded_state_makes_the_same_checkpoint(trained):
    ckpt = load_checkpoint(trained["dn_l1"].with_name("last.pt"))
    state = _fresh_state(ckpt)
    assert state.step == 0 and state.best_epoch == -1
    state.load(ckpt)
    again = state.checkpoint()
    assert set(again) == set(ckpt) - {"format", "version"}
    for key in ("step", "epoch", "best_val_loss", "best_epoch", "history", "epoch_loss_sum",
                "epoch_loss_n", "schedule", "scaler", "config", "model_name", "model_args",
                "degradation", "val_degradation"):  # fmt: skip
        assert again[key] == ckpt[key], key
    for k, v in ckpt["model"].items():
        assert torch.equal(again["model"][k], v), k
    assert again["optimizer"]["param_groups"] == ckpt["optimizer"]["param_groups"]
    for i, s in ckpt["optimizer"]["state"].items():
        assert all(torch.equal(again["optimizer"]["state"][i][n], t) for n, t in s.items())
    assert torch.equal(again["rng"]["torch"], ckpt["rng"]["torch"])  # RNG states are restored too
    assert again["rng"]["python"] == ckpt["rng"]["python"]


def test_epoch_and_learning_rate_follow_the_step(trained):
    state = _fresh_state(load_checkpoint(trained["dn_l1"]))
    state.config.epochs = 3
    spe = state.config.steps_per_epoch()
    assert state.steps_per_epoch == spe and state.total_steps == state.config.epochs * spe
    state.step = spe + 1
    assert (state.epoch, state.epoch_end) == (1, 2 * spe)
    state.step = state.total_steps  # done: the last epoch's rate
    assert state.lr == lr_at(state.config, state.config.epochs - 1)
    state.step = spe  # start of the second epoch
    assert state.lr == lr_at(state.config, 1)
    two = TrainState(state.config, state.model, state.optimizer, state.scaler, world_size=2)
    assert two.steps_per_epoch == state.config.steps_per_epoch(2)
