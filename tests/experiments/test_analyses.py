"""The paper's analyses on small synthetic inputs (figures 4, 5, 6, 9) and their commands."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from experiments.analyses import (
    bootstrap_ci,
    jnd_per_loss,
    objective_summary,
    plot_jnd,
    plot_objective,
    plot_perception_distortion,
    plot_srocc_vs_jnd,
    srocc_vs_jnd,
)
from experiments.cli import main
from scaling import simulate_table

LOSSES = {"l2": 27.0, "l1": 27.1, "vgg": 26.5, "mdf": 27.6}


def evaluation(seed=0, n=30):
    rng = np.random.default_rng(seed)
    rows = []
    base = rng.normal(0, 2.0, n)  # image difficulty shared by all losses (paired design)
    for ds in ("bsd", "div2k"):
        for loss, mu in LOSSES.items():
            for i in range(n):
                rows.append({"model": "dncnn", "loss": loss, "dataset": ds, "image": f"im{i}",
                             "psnr": mu + base[i] + rng.normal(0, 0.2),
                             "lpips": 0.3 - 0.01 * mu + rng.normal(0, 0.01)})
    return pd.DataFrame(rows)


def test_bootstrap_ci_brackets_the_estimate():
    v = np.random.default_rng(0).normal(5, 1, 200)
    est, lo, hi = bootstrap_ci(v)
    assert lo < est < hi and hi - lo < 0.5
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_ci([1.0])


def test_objective_summary_finds_the_better_loss():
    df = evaluation()
    s = objective_summary(df, "psnr", "mdf", n_boot=300)
    assert set(s["loss"]) == set(LOSSES) and set(s["dataset"]) == {"bsd", "div2k"}
    row = s[(s.dataset == "bsd") & (s.loss == "l2")].iloc[0]
    assert row["mean_lo"] < row["mean"] < row["mean_hi"] and row["p5_lo"] <= row["p5"] <= row["p5_hi"]
    # paired one-tailed test: mdf (+0.5 dB on every image) beats l2; it does not "beat" itself
    assert row["p_vs_reference"] < 1e-6 and row["reference_significantly_better"]
    assert np.isnan(s[(s.loss == "mdf")]["p_vs_reference"]).all()
    # LPIPS is lower-better: mdf has the lowest LPIPS, so it is significantly better again
    s2 = objective_summary(df, "lpips", "mdf", n_boot=100)
    assert s2[(s2.dataset == "bsd") & (s2.loss == "vgg")]["reference_significantly_better"].iloc[0]
    with pytest.raises(ValueError, match="no column 'niqe'"):
        objective_summary(df, "niqe")


def test_figures_have_labels(tmp_path):
    df = evaluation(n=12)
    s = objective_summary(df, "psnr", "mdf", n_boot=100)
    fig = plot_objective(df, s, "psnr", "mdf")
    assert len(fig.axes) == 2 and "PSNR [dB]" in fig.axes[0].get_ylabel()
    fig.savefig(tmp_path / "f4.png")
    jnd = pd.DataFrame({"loss": list(LOSSES), "jod": [0, 0.1, 0.4, 0.8], "low": [-0.2, -0.1, 0.2, 0.5],
                        "high": [0.2, 0.3, 0.6, 1.1]})
    pooled = objective_summary(df, "psnr", "", by=(), n_boot=100)
    fig6 = plot_perception_distortion(pooled, jnd)
    ax = fig6.axes[0]
    assert ax.xaxis_inverted() and ax.yaxis_inverted() and "JND" in ax.get_ylabel()
    corr = pd.DataFrame({"metric": list(LOSSES), "srocc": [0.68, 0.66, 0.72, 0.70],
                         "srocc_lo": [0.6] * 4, "srocc_hi": [0.8] * 4})
    joined, stats = srocc_vs_jnd(corr, jnd)
    assert len(joined) == 4 and -1 <= stats["pearson_r"] <= 1
    plot_srocc_vs_jnd(joined, stats).savefig(tmp_path / "f9.png")
    with pytest.raises(ValueError, match="no loss is common"):
        srocc_vs_jnd(corr.assign(metric=["a", "b", "c", "d"]), jnd)


def test_jnd_per_loss_recovers_the_order(tmp_path):
    df = simulate_table({"l2": 0.0, "vgg": 0.5, "mdf": 1.5}, 20, groups=["i1", "i2", "i3"],
                        group_column="image", seed=1)
    p = tmp_path / "c.csv"
    df.to_csv(p, index=False)
    table, pv, conds = jnd_per_loss(p, "image", n_boot=50)
    t = table.set_index("loss")
    assert t.loc["mdf", "jod"] > t.loc["vgg", "jod"] > t.loc["l2", "jod"]
    assert pv.shape == (3, 3) and pv[conds.index("mdf"), conds.index("l2")] < 0.025


def test_commands_end_to_end(tmp_path):
    ev = tmp_path / "eval.csv"
    evaluation(n=10).to_csv(ev, index=False)
    comp = tmp_path / "comp.csv"
    simulate_table({k: v / 2 - 13 for k, v in LOSSES.items()}, 10, groups=["a", "b"],
                   group_column="image", seed=2).to_csv(comp, index=False)
    run = CliRunner().invoke
    r = run(main, ["experiments", "objective", "--evaluation", str(ev), "--bootstrap", "100",
                   "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    r = run(main, ["experiments", "jnd", "--comparisons", str(comp), "--bootstrap", "30",
                   "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    r = run(main, ["experiments", "pd", "--evaluation", str(ev), "--jnd",
                   str(tmp_path / "o" / "jnd.csv"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    corr = tmp_path / "corr.csv"
    pd.DataFrame({"metric": list(LOSSES), "srocc": [0.6, 0.7, 0.65, 0.72]}).to_csv(corr, index=False)
    r = run(main, ["experiments", "srocc", "--correlations", str(corr), "--jnd",
                   str(tmp_path / "o" / "jnd.csv"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    names = {p.name for p in (tmp_path / "o").iterdir()}
    assert {"objective_psnr.csv", "fig4_psnr.png", "jnd.csv", "fig5_jnd.png", "fig5_ranking.png",
            "fig6_perception_distortion.png", "fig9_srocc_vs_jnd.png"} <= names
    bad = tmp_path / "bad.csv"
    bad.write_text("loss,image\nl2,a\n")
    r = run(main, ["experiments", "objective", "--evaluation", str(bad), "--out", str(tmp_path)])
    assert r.exit_code != 0 and "no column 'psnr'" in r.output


def _texts(fig) -> list[str]:
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text)]


def disconnected_study(path):
    """o0-o3 compare l2 with mdf, o4-o7 pdl with vgg: the design falls into two components."""
    rows = []
    for k in range(8):
        a, b = ("l2", "mdf") if k < 4 else ("vgg", "pdl")
        rows += [(f"o{k}", "i1", a, b, k % 2), (f"o{k}", "i1", b, a, 1)]
    pd.DataFrame(rows, columns=["observer", "image", "condition_A", "condition_B",
                                "is_A_selected"]).to_csv(path, index=False)
    return path


def test_jnd_per_loss_keeps_the_scaling_warnings_and_draws_them(tmp_path):
    res = jnd_per_loss(disconnected_study(tmp_path / "c.csv"), "image", n_boot=20)
    table, pv, conds = res  # unpacks as before
    assert conds == ["l2", "mdf", "pdl", "vgg"] and pv.shape == (4, 4) and len(table) == 4
    assert any("disconnected into 2 components: {l2, mdf}; {pdl, vgg}" in w for w in res.warnings)
    assert res.n_warned == 20 and res.n_boot == 20
    assert any(w.startswith("20 of 20 bootstrap resamples") for w in res.warnings)
    for fig in plot_jnd(res):
        assert any(t.startswith("warning: The comparison graph is disconnected")
                   for t in _texts(fig))


def test_a_connected_study_has_no_warnings(tmp_path):
    df = simulate_table({"l2": 0.0, "vgg": 0.3, "mdf": 0.6}, 20, groups=["i1", "i2"],
                        group_column="image", seed=0)
    df.to_csv(tmp_path / "c.csv", index=False)
    res = jnd_per_loss(tmp_path / "c.csv", "image", n_boot=20)
    assert res.warnings == () and res.n_warned == 0
    assert not any("warning:" in t for fig in plot_jnd(res) for t in _texts(fig))


def test_jnd_command_prints_the_warnings_on_stderr(tmp_path):
    comp = disconnected_study(tmp_path / "c.csv")
    r = CliRunner().invoke(main, ["experiments", "jnd", "--comparisons", str(comp),
                                  "--bootstrap", "20", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    err = r.stderr.splitlines()
    assert err and all(ln.startswith("warning: ") for ln in err), err
    assert any("{l2, mdf}; {pdl, vgg}" in ln for ln in err)
    assert "bootstrap: 20 resamples of observers, 20 of them warned" in r.stdout
    assert (tmp_path / "o" / "jnd.csv").is_file()


def test_degenerate_correlations_warn_under_figure_9(tmp_path):
    jnd = pd.DataFrame({"loss": list(LOSSES), "jod": [0, 0.1, 0.4, 0.8],
                        "low": [-0.2, -0.1, 0.2, 0.5], "high": [0.2, 0.3, 0.6, 1.1]})
    corr = pd.DataFrame({"metric": list(LOSSES), "srocc": [0.7] * 4})  # constant: r undefined
    joined, stats = srocc_vs_jnd(corr, jnd)
    assert np.isnan(stats["pearson_r"]) and any("constant" in w for w in stats["warnings"])
    assert any(t.startswith("warning: ") for t in _texts(plot_srocc_vs_jnd(joined, stats)))
    corr.to_csv(tmp_path / "corr.csv", index=False)
    jnd.to_csv(tmp_path / "jnd.csv", index=False)
    r = CliRunner().invoke(main, ["experiments", "srocc", "--correlations",
                                  str(tmp_path / "corr.csv"), "--jnd", str(tmp_path / "jnd.csv"),
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "warning: " in r.stderr and "constant" in r.stderr and "warnings:" not in r.stdout
