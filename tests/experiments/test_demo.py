"""`mdf demo --quick` end to end (a reduced run of the README's main job)."""

import pandas as pd
import pytest
from click.testing import CliRunner

from experiments.cli import main


@pytest.mark.slow
def test_quick_demo_writes_a_complete_report(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(main, ["demo", "--quick", "--out", str(out)])
    assert res.exit_code == 0, res.output[-3000:]
    report = (out / "report.md").read_text()
    assert "Table 1: cost of each loss" in report and "| mdf |" in report
    for fig in ("fig4_psnr.png", "fig5_jnd.png", "fig5_ranking.png",
                "fig6_perception_distortion.png", "fig9_srocc_vs_jnd.png"):
        assert f"({fig})" in report
        assert (out / fig).stat().st_size > 5000
    jnd = pd.read_csv(out / "jnd.csv")
    assert sorted(jnd["loss"]) == ["l2", "mdf", "ms_ssim_l1", "pdl_randvgg"]
    assert abs(jnd["jod"].sum()) < 1e-6 and (jnd["low"] <= jnd["high"]).all()
    comp = pd.read_csv(out / "comparisons.csv")
    assert {"observer", "image", "condition_A", "condition_B", "is_A_selected"} <= set(comp.columns)
    assert len(comp) > 50
    ev = pd.read_csv(out / "evaluation.csv")
    assert set(ev["label"]) == set(jnd["loss"]) and ev["psnr"].notna().all()
    assert "0 errors" in report
    srocc = pd.read_csv(out / "srocc.csv")
    assert set(srocc["metric"]) == {"l2", "ms_ssim_l1", "pdl_randvgg", "mdf"}
