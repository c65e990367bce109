"""`mdf scale` end to end, and the import-weight rule."""

import subprocess
import sys

import numpy as np
import pandas as pd
from click.testing import CliRunner

from experiments.cli import main
from scaling import simulate_table


def test_scale_example_end_to_end(tmp_path):
    out, plot, rank, outl = (tmp_path / n for n in ("jod.csv", "jod.png", "rank.png", "out.csv"))
    res = CliRunner().invoke(main, ["scale", "--example", "--bootstrap", "30", "--jobs", "1",
                                    "--out", str(out), "--plot", str(plot), "--ranking", str(rank),
                                    "--outliers", str(outl)])
    assert res.exit_code == 0, res.output
    assert "pooled over all groups (1500 comparisons)" in res.output
    assert "95% CI" in res.output and "mdf" in res.output
    assert "may be an outlier" in res.output
    df = pd.read_csv(out)
    assert set(df["group"]) == {"all", "astronaut", "coffee", "chelsea", "camera", "rocket"}
    pooled = df[df.group == "all"].set_index("condition")
    assert abs(pooled["jod"].sum()) < 1e-6
    assert (pooled["low"] <= pooled["jod"]).all() and (pooled["jod"] <= pooled["high"]).all()
    assert pooled["jod"].idxmax() in {"mdf", "vgg"} and pooled["jod"].idxmin() == "ssim"
    assert plot.stat().st_size > 1000 and rank.stat().st_size > 1000
    assert pd.read_csv(outl)["outlier"].any()


def test_scale_a_study_export_and_a_matrix(tmp_path):
    df = simulate_table({"l2": 0, "mdf": 1.0, "vgg": 0.5}, 8, groups=["i1", "i2"], seed=5)
    df = df.rename(columns={"scene": "image"})
    df["hit"] = 1  # extra columns are ignored
    p = tmp_path / "comparisons.csv"
    df.to_csv(p, index=False)
    res = CliRunner().invoke(main, ["scale", str(p), "--group", "image", "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    assert "image = i2" in res.output
    m = tmp_path / "m.csv"
    m.write_text("a,b\n0,30\n10,0\n")
    res = CliRunner().invoke(main, ["scale", str(m), "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.strip().startswith("a "))
    assert float(line.split()[1]) > 0


def test_scale_bad_input_fails_cleanly(tmp_path):
    res = CliRunner().invoke(main, ["scale", str(tmp_path / "missing.csv")])
    assert res.exit_code != 0 and "does not exist" in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text("observer,condition_A,condition_B,is_A_selected\no1,a,a,1\n")
    out = tmp_path / "o.csv"
    res = CliRunner().invoke(main, ["scale", str(bad), "--out", str(out)])
    assert res.exit_code != 0 and "with itself" in res.output
    assert not out.exists()
    res = CliRunner().invoke(main, ["scale"])
    assert res.exit_code != 0 and "missing SOURCE" in res.output


def test_help_everywhere():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0 and "scale" in r.output
    r = CliRunner().invoke(main, ["scale", "--help"])
    assert r.exit_code == 0 and "--bootstrap" in r.output


def test_scaling_never_imports_torch():
    code = "import sys, scaling, scaling.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_example_data_is_what_the_generator_makes():
    from scaling.cli import EXAMPLE
    from scaling.data.make_example import IMAGES, TRUE_JOD

    df = pd.read_csv(EXAMPLE)
    regenerated = simulate_table(TRUE_JOD, 20, groups=IMAGES, careless=2, seed=2022)
    pd.testing.assert_frame_equal(df, regenerated, check_dtype=False)
    assert np.isin(df["is_A_selected"], [0, 1]).all()


def test_scale_prints_the_scaling_warnings_one_line_each(tmp_path):
    # two observers compare (a, b), two (c, d): the design is disconnected
    rows = ["o1,a,b,1", "o2,a,b,0", "o3,c,d,1", "o4,c,d,0", "o1,b,a,1", "o3,d,c,1"]
    p = tmp_path / "c.csv"
    p.write_text("observer,condition_A,condition_B,is_A_selected\n" + "\n".join(rows) + "\n")
    plot, rank = tmp_path / "jod.png", tmp_path / "rank.png"
    res = CliRunner().invoke(main, ["scale", str(p), "--bootstrap", "20", "--jobs", "1",
                                    "--plot", str(plot), "--ranking", str(rank)])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("warning: ") for ln in lines), lines
    disconnected = [ln for ln in lines if "disconnected into 2 components: {a, b}; {c, d}" in ln]
    assert len(disconnected) == 2  # the scaling's, and the ranking's own bootstrap
    assert any(ln.startswith("warning: ranking: ") for ln in disconnected)
    assert "pooled over all groups" not in res.stderr  # the table has no groups
    assert plot.stat().st_size > 1000 and rank.stat().st_size > 1000
