"""``mdf metrics ...`` through the project's entry point (click's CliRunner)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from experiments.cli import main
from metrics.mdf_weights import load_discriminators
from scaling.contracts.tasks import ALIASES, TASKS

MDF_REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "mdf"


def test_list_shows_every_metric():
    res = CliRunner().invoke(main, ["metrics", "list"])
    assert res.exit_code == 0, res.output
    for name in ("l2", "ms_ssim_l1", "lpips", "pdl", "mdf"):
        assert f"\n{name} " in "\n" + res.output


def test_convert_mdf_refuses_a_foreign_file(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x80\x02}q\x00.")  # a pickled empty dict, not a legacy torch file
    res = CliRunner().invoke(main, ["metrics", "convert-mdf", str(bad), str(tmp_path / "o.pt")])
    assert res.exit_code != 0 and "not a legacy MDF discriminator file" in res.output
    assert not (tmp_path / "o.pt").exists()


@pytest.mark.parametrize("name", ["sr", "sisr"])
def test_convert_mdf_accepts_the_task_contract_names(name, tmp_path, write_legacy):
    src, dst = tmp_path / "Ds_FAKE.pth", tmp_path / "fake.pt"
    write_legacy(src)
    res = CliRunner().invoke(main, ["metrics", "convert-mdf", str(src), str(dst), "--task", name])
    assert res.exit_code == 0, res.output
    assert "2 discriminators (channels 4,8), task=sisr" in res.output
    assert load_discriminators(dst)[1]["task"] == "sisr"


@pytest.mark.parametrize("command", ["convert-mdf", "train-mdf"])
def test_task_choices_come_from_the_task_contract(command, tmp_path):
    (tmp_path / "a.pth").write_bytes(b"x")
    args = [str(tmp_path / "a.pth"), str(tmp_path / "o.pt")] if command == "convert-mdf" else []
    res = CliRunner().invoke(main, ["metrics", command, *args, "--task", "deblur"])
    assert res.exit_code == 2 and "'deblur' is not one of" in res.output
    assert all(f"'{name}'" in res.output for name in (*TASKS, *ALIASES))


@pytest.mark.skipif(not MDF_REFERENCE.is_dir(), reason=f"no authors' weights in {MDF_REFERENCE}")
def test_convert_mdf_authors_file(tmp_path):
    out = tmp_path / "jpeg.pt"
    res = CliRunner().invoke(
        main,
        ["metrics", "convert-mdf", str(MDF_REFERENCE / "Ds_JPEG.pth"), str(out), "--task", "jpeg"],
    )
    assert res.exit_code == 0, res.output
    assert "8 discriminators (channels 32,32,32,32,64,64,64,64), task=jpeg" in res.output
    assert torch.load(out, weights_only=True)["metadata"]["task"] == "jpeg"
    assert len(load_discriminators(out)[0]) == 8


def test_bench_prints_a_markdown_table():
    res = CliRunner().invoke(
        main,
        [
            "metrics",
            "bench",
            "--losses",
            "l2,vgg,mdf,mdf_straightforward",
            "--batch",
            "1",
            "--size",
            "32",
            "--repeats",
            "1",
            "--threads",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("| ")]
    assert lines[0].startswith("| loss | forward ms")
    rows = {ln.split("|")[1].strip(): ln for ln in lines[1:]}
    assert set(rows) == {"l2", "vgg", "mdf", "mdf_straightforward"}
    assert rows["l2"].split("|")[5].strip() == "1.0"  # ratio of L2 to itself
    assert rows["vgg"].split("|")[6].strip() == "1.00"
    assert "mdf_straightforward: each discriminator" in res.output


def test_benchmark_script_runs(tmp_path):
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "loss_cost.py"
    res = subprocess.run(
        [
            sys.executable,
            str(script),
            "--losses",
            "l2,ssim",
            "--batch",
            "1",
            "--size",
            "24",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "| ssim |" in res.stdout and "1x3x24x24, cpu, CPU time" in res.stdout
