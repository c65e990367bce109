"""`mdf experiments paper --config`: the full protocol on a tiny config, resumable and skipping."""

import pytest
from click.testing import CliRunner

from experiments.cli import main
from experiments.paper import load_config
from experiments.tid_like import make_tid_like
from restore import write_bundled_images
from scaling import simulate_table

CONFIG = """
out = "out"
preset = "tiny"
device = "cpu"
losses = ["l2", "mdf"]
reference = "mdf"
[train_overrides]
epochs = 1
patches_per_epoch = 64
[tasks.denoise]
models = ["dncnn"]
train = "train"
test = {{ bundled = "test" }}
study_images = "test"
study_limit = 2
comparisons = {{ dncnn = "comparisons.csv" }}
[tid2013]
path = "tid"
metrics = ["l2", "mdf"]
mdf_task = "denoise"
"""


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:LPIPS unavailable:RuntimeWarning")  # no ImageNet AlexNet here
def test_paper_protocol_runs_every_stage_then_skips_them(tmp_path):
    write_bundled_images(tmp_path / "train", ("astronaut", "rocket"))
    write_bundled_images(tmp_path / "test", ("cat", "colorwheel"))
    make_tid_like(tmp_path / "tid", names=("astronaut", "coffee"))
    simulate_table({"l2": 0.0, "mdf": 0.8}, 12, groups=["cat", "colorwheel"],
                   group_column="image", seed=0).to_csv(tmp_path / "comparisons.csv", index=False)
    cfg = tmp_path / "paper.toml"
    cfg.write_text(CONFIG.format())
    res = CliRunner().invoke(main, ["experiments", "paper", "--config", str(cfg)])
    assert res.exit_code == 0, res.output[-3000:]
    out = tmp_path / "out"
    for rel in ("runs/denoise/dncnn/l2/DONE", "runs/denoise/dncnn/mdf/best.pt",
                "results/denoise_dncnn.csv", "triplets/denoise_dncnn/manifest.json",
                "figures/denoise_dncnn/jnd.csv", "figures/denoise_dncnn/fig4_psnr.png",
                "figures/denoise_dncnn/fig5_ranking.png",
                "figures/denoise_dncnn/fig6_perception_distortion.png",
                "figures/denoise_dncnn/fig9_srocc_vs_jnd.png", "tid2013/correlations.csv"):
        assert (out / rel).is_file(), rel
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    res = CliRunner().invoke(main, ["experiments", "paper", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "train denoise" not in res.output and "evaluate" not in res.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing recomputed


def test_bad_configs_are_named(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("out = 'x'\n")
    with pytest.raises(ValueError, match="no \\[tasks"):
        load_config(p)
    p.write_text("[tasks.deblur]\nmodels=['dncnn']\ntrain='a'\ntest={a='b'}\n")
    with pytest.raises(ValueError, match="unknown task 'deblur'"):
        load_config(p)
    p.write_text("[tasks.sr]\nmodels=['edsr']\ntest={a='b'}\n")
    with pytest.raises(ValueError, match="lacks 'train'"):
        load_config(p)
    p.write_text("not toml [")
    res = CliRunner().invoke(main, ["experiments", "paper", "--config", str(p)])
    assert res.exit_code != 0 and "cannot read config" in res.output


def test_task_names_are_the_contract_s(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[tasks.sisr]\nmodels=['edsr']\ntrain='a'\ntest={a='b'}\n")
    cfg = load_config(p)
    assert list(cfg["tasks"]) == ["sr"]  # MDF's name for super-resolution is an alias
    p.write_text("[tasks.sr]\nmodels=['edsr']\ntrain='a'\ntest={a='b'}\n"
                 "[tasks.sisr]\nmodels=['edsr']\ntrain='a'\ntest={a='b'}\n")
    with pytest.raises(ValueError, match="task 'sr' is configured twice"):
        load_config(p)
