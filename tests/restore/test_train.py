"""train(cfg): every model with every loss, exact resume after a crash, best-model selection, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from restore.callbacks import Callback
from restore.checkpoint import load_checkpoint, load_state_into, model_from_checkpoint
from restore.config import TrainConfig, lr_at, paper_preset, tiny_preset
from restore.models import build_model
from restore.train import train

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"

LOSSES = ["l1", "l2", "ssim", "ms_ssim", "ms_ssim_l1", "vgg", "lpips", "pdl", "mdf"]


def _loss_options(loss, random_mdf):
    return {"vgg": {"pretrained": False}, "lpips": {"pretrained": False},
            "pdl": {"pretrained": False}, "mdf": {"weights": str(random_mdf)}}.get(loss, {})  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize(
    ("task", "model"), [("sr", "edsr"), ("sr", "srresnet"), ("denoise", "dncnn")]
)
def test_every_model_trains_with_every_loss(
    make_cfg, image_dirs, tmp_path, random_mdf, task, model, loss
):
    cfg = make_cfg(image_dirs, tmp_path, task, model, loss=loss, epochs=1, patches_per_epoch=4,
                    val_crop=48, loss_options=_loss_options(loss, random_mdf))  # fmt: skip
    before = build_model(model, **{**cfg.model_options, **({"scale": 4} if task == "sr" else {})})
    out = train(cfg)
    row = out["history"][0]
    assert torch.isfinite(torch.tensor([row["train_loss"], row["val_loss"], row["val_psnr"]])).all()
    after = model_from_checkpoint(out["last"])
    changed = any(
        not torch.equal(a, b)
        for a, b in zip(before.state_dict().values(), after.state_dict().values())
    )
    assert changed  # the optimiser really updated the weights


@pytest.mark.parametrize("loss", ["ssim", "mdf"])
def test_grey_dncnn_trains_with_rgb_losses(make_cfg, image_dirs, tmp_path, random_mdf, loss):
    cfg = make_cfg(image_dirs, tmp_path, "jpeg", "dncnn", loss=loss, channels=1, epochs=1,
                    patches_per_epoch=4, loss_options=_loss_options(loss, random_mdf))  # fmt: skip
    out = train(cfg)
    assert model_from_checkpoint(out["best"]).config.channels == 1


@pytest.mark.skipif(not (SHARED / "reference" / "mdf" / "Ds_SISR.pth").is_file(),
                    reason="authors' MDF weights (../shared/reference/mdf/Ds_SISR.pth) absent")  # fmt: skip
def test_edsr_trains_with_the_authors_mdf_weights(make_cfg, image_dirs, tmp_path):
    w = SHARED / "reference" / "mdf" / "Ds_SISR.pth"
    cfg = make_cfg(image_dirs, tmp_path, "sr", "edsr", loss="mdf", epochs=1, patches_per_epoch=2,
                    loss_options={"weights": str(w)})  # fmt: skip
    assert train(cfg)["steps"] == 1


class _SimulatedCrash(RuntimeError):
    """A process killed mid-epoch."""


class _CrashAfter(Callback):
    """Raises once ``step`` steps are done, before the run's own callbacks checkpoint that step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, state) -> None:
        if state.step >= self.step:
            raise _SimulatedCrash(f"simulated crash after step {state.step}")


def test_resume_after_a_crash_mid_epoch_is_exact(make_cfg, image_dirs, tmp_path):
    kw = {"epochs": 3, "patches_per_epoch": 8, "checkpoint_every": 1, "loss": "l2"}
    ref = train(make_cfg(image_dirs, tmp_path / "ref", "denoise", "dncnn", **kw))
    crashed = make_cfg(image_dirs, tmp_path / "cut", "denoise", "dncnn", **kw)
    with pytest.raises(_SimulatedCrash):
        train(crashed, callbacks=[_CrashAfter(6)])  # killed in the middle of epoch 2 (4 steps/epoch)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["step"] == 5  # nothing after step 5 saved
    resumed = train(make_cfg(image_dirs, tmp_path / "cut", "denoise", "dncnn", resume=True, **kw))
    a, b = load_checkpoint(ref["last"]), load_checkpoint(resumed["last"])
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [r["train_loss"] for r in ref["history"]] == pytest.approx(
        [r["train_loss"] for r in resumed["history"]]
    )
    with open(tmp_path / "cut" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]


def test_resume_takes_shape_arguments_from_the_checkpoint(make_cfg, image_dirs, tmp_path):
    train(make_cfg(image_dirs, tmp_path, "sr", "edsr", epochs=1))
    cfg = make_cfg(image_dirs, tmp_path, "sr", "edsr", epochs=2, resume=True,
                    model_options={"n_resblocks": 5, "n_feats": 8})  # fmt: skip
    out = train(cfg)
    assert out["steps"] == 8 and out["config"].model_options == {"n_resblocks": 2, "n_feats": 16}


def test_best_checkpoint_has_the_lowest_validation_loss(make_cfg, image_dirs, tmp_path):
    out = train(make_cfg(image_dirs, tmp_path, "sr", "edsr", epochs=3, lr=5e-3))
    losses = [r["val_loss"] for r in out["history"]]
    best = load_checkpoint(out["best"])
    assert best["best_epoch"] == losses.index(min(losses)) + 1 == out["best_epoch"]
    assert best["best_val_loss"] == pytest.approx(min(losses))
    assert (tmp_path / "curves.png").stat().st_size > 1000
    # weights_only loading works (plain types and tensors only)
    raw = torch.load(out["last"], weights_only=True)
    assert raw["format"] == "mdf-restore-checkpoint" and raw["model_name"] == "edsr"


def test_checkpoint_of_another_architecture_is_rejected(trained):
    with pytest.raises(ValueError, match="holds a 'edsr' network, expected 'dncnn'"):
        model_from_checkpoint(trained["sr_l1"], expect_model="dncnn")
    ckpt = load_checkpoint(trained["sr_l1"])
    with pytest.raises(ValueError, match="do not fit this architecture"):
        load_state_into(build_model("srresnet"), ckpt["model"])


def test_bad_configurations_raise_before_training(make_cfg, image_dirs, tmp_path):
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        train(make_cfg(image_dirs, tmp_path, loss="nope"))
    with pytest.raises(ValueError, match="does not fit task"):
        tiny_preset("sr", "dncnn")
    with pytest.raises(ValueError, match="unknown task"):
        TrainConfig(task="inpaint")
    with pytest.raises(ValueError, match="unknown task"):
        tiny_preset("inpaint")
    with pytest.raises(ValueError, match="multiple of scale"):
        tiny_preset("sr", patch_size=30)
    with pytest.raises(ValueError, match="no training data"):
        train(tiny_preset("sr", out_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="does not exist"):
        train(make_cfg(image_dirs, tmp_path, data=str(tmp_path / "missing")))


def test_tasks_take_their_aliases():
    assert TrainConfig(task="sisr").task == "sr"
    assert tiny_preset("SISR").task == "sr" and paper_preset("sisr").epochs == 500
    assert paper_preset("denoising").optimizer == "sgd"


def test_paper_schedules():
    sr = paper_preset("sr")
    assert (sr.optimizer, sr.lr, sr.epochs, sr.patch_size) == ("adam", 1e-3, 500, 96)
    assert lr_at(sr, 0) == 1e-3 and lr_at(sr, 100) == 5e-4 and lr_at(sr, 499) < lr_at(sr, 399)
    dn = paper_preset("denoise")
    assert (dn.optimizer, dn.momentum, dn.weight_decay, dn.sigma) == ("sgd", 0.9, 1e-4, (0.0, 55.0))
    assert lr_at(dn, 0) == pytest.approx(0.1) and lr_at(dn, 49) == pytest.approx(1e-4)
    assert lr_at(dn, 25) == pytest.approx(0.1 * (1e-3) ** (25 / 49))
    jp = paper_preset("jpeg")
    assert (jp.optimizer, jp.lr, jp.quality) == ("adam", 1e-4, 10) and lr_at(jp, 30) == 1e-4
    assert TrainConfig.from_dict(dn.to_dict()) == dn


def test_paper_preset_on_a_div2k_layout_validates_on_the_valid_split(image_dirs, tmp_path):
    import shutil

    root = tmp_path / "DIV2K"
    shutil.copytree(image_dirs["train"], root / "DIV2K_train_HR")
    shutil.copytree(image_dirs["valid"], root / "DIV2K_valid_HR")
    cfg = paper_preset("sr", "edsr", data=str(root), out_dir=str(tmp_path / "run"), epochs=1,
                       patches_per_epoch=2, batch_size=2, patch_size=32, num_workers=0,
                       model_options={"n_resblocks": 1, "n_feats": 8}, progress=False)  # fmt: skip
    out = train(cfg)
    assert out["history"][0]["val_psnr"] > 0  # validated on DIV2K_valid_HR
    assert model_from_checkpoint(out["best"]).config.n_resblocks == 1


def test_mismatched_scale_factors_raise(image_dirs, trained, tmp_path):
    from restore.degrade import Degradation
    from restore.evaluate import evaluate
    from restore.image_io import degrade_folder, list_images

    with pytest.raises(ValueError, match="does not match the task's scale"):
        tiny_preset("sr", model_options={"scale": 2})
    x2 = degrade_folder(
        list_images(image_dirs["test"]), tmp_path / "x2", Degradation(task="sr", scale=2)
    )
    with pytest.raises(ValueError, match="degraded for sr x2, but the model expects sr x4"):
        evaluate({"m": trained["sr_l1"]}, {"x2": x2}, lpips=False, progress=False)
