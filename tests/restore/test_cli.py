"""`mdf restore ...` through the project's click entry point (experiments.cli.main)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from experiments.cli import main


@pytest.fixture
def runner():
    return CliRunner()


def test_models_lists_parameter_counts(runner):
    res = runner.invoke(main, ["restore", "models"])
    assert res.exit_code == 0, res.output
    assert "1,517,571" in res.output and "srresnet" in res.output


def test_train_tiny_then_resume(runner, image_dirs, tmp_path):
    args = ["restore", "train", "--preset", "tiny", "--task", "denoise", "--loss", "l2",
            "--data", str(image_dirs["train"]), "--val-data", str(image_dirs["valid"]),
            "--out", str(tmp_path), "--set", "epochs=1", "--set", "patches_per_epoch=8",
            "--set", "batch_size=2", "--model-opt", "depth=4"]  # fmt: skip
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "trained 4 steps" in res.output and (tmp_path / "best.pt").is_file()
    res = runner.invoke(main, [*args[:-6], "--set", "epochs=2", "--set", "patches_per_epoch=8",
                               "--set", "batch_size=2", "--resume"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "trained 8 steps" in res.output


def test_tiny_preset_without_data_uses_bundled_images(runner, tmp_path):
    res = runner.invoke(main, ["restore", "train", "--out", str(tmp_path), "--set", "epochs=1",
                               "--set", "patches_per_epoch=2", "--set", "batch_size=2",
                               "--set", "val_crop=32"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "data" / "train").glob("*.png"))) == 5


def test_clear_errors_for_bad_input(runner, image_dirs, tmp_path):
    res = runner.invoke(main, ["restore", "train", "--loss", "nope", "--data", str(image_dirs["train"]),
                               "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code != 0 and "unknown loss 'nope'" in res.output
    res = runner.invoke(
        main, ["restore", "train", "--task", "sr", "--model", "dncnn", "--out", str(tmp_path)]
    )
    assert res.exit_code != 0 and "does not fit task" in res.output
    res = runner.invoke(main, ["restore", "train", "--preset", "paper", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "--data is required" in res.output


def test_degrade_run_evaluate_triplets(runner, trained, image_dirs, tmp_path):
    res = runner.invoke(main, ["restore", "degrade", "--task", "sisr", "--images", str(image_dirs["test"]),
                               "--out", str(tmp_path / "deg")])  # fmt: skip  (MDF's name for sr)
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "deg" / "degradation.json").read_text())["degradation"]["task"] == "sr"
    assert json.loads((tmp_path / "deg" / "degradation.json").read_text())["ids"] == [
        "immunohistochemistry",
        "rocket",
    ]
    res = runner.invoke(main, ["restore", "run", "--checkpoint", str(trained["sr_l1"]),
                               "--input", str(tmp_path / "deg" / "degraded"), "--out", str(tmp_path / "run"),
                               "--tile", "12", "--overlap", "4"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "run").glob("*.png"))) == 2
    res = runner.invoke(main, ["restore", "evaluate", "--checkpoint", f"l1={trained['sr_l1']}",
                               "--checkpoint", f"l2={trained['sr_l2']}", "--dataset", f"deg={tmp_path / 'deg'}",
                               "--out", str(tmp_path / "eval.csv"), "--no-lpips"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "wrote 4 rows" in res.output
    res = runner.invoke(main, ["restore", "triplets", "--checkpoint", f"l1={trained['sr_l1']}",
                               "--checkpoint", f"l2={trained['sr_l2']}", "--images", str(image_dirs["test"]),
                               "--out", str(tmp_path / "tri"), "--crop", "32"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "2 images x 2 conditions" in res.output
    res = runner.invoke(main, ["restore", "triplets", "--checkpoint", f"a={trained['sr_l1']}",
                               "--checkpoint", f"b={trained['dn_l1']}", "--images", str(image_dirs["test"]),
                               "--out", str(tmp_path / "bad")])  # fmt: skip
    assert res.exit_code != 0 and "network" in res.output
