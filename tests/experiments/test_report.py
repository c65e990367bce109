"""The demo report: every figure's section, with the warnings that change what it means."""

import numpy as np
import pandas as pd

from experiments.analyses import JndPerLoss
from experiments.report import demo_report, markdown_table

DISCONNECTED = "The comparison graph is disconnected into 2 components: {l2}; {mdf}."


def report(warnings=(), n_warned=0, stats=None, outlier_warnings=()):
    table = pd.DataFrame({"loss": ["l2", "mdf"], "jod": [-0.5, 0.5], "low": [-0.9, 0.1],
                          "high": [-0.1, 0.9], "se": [0.2, 0.2]})
    jnd = JndPerLoss(table, np.eye(2), ["l2", "mdf"], tuple(warnings), n_warned, 500)
    summary = pd.DataFrame({"loss": ["l2", "mdf"], "n": [3, 3], "mean": [27.0, 27.5],
                            "mean_lo": [26.0, 26.5], "mean_hi": [28.0, 28.5], "p5": [25.0, 25.5],
                            "p_vs_reference": [0.01, np.nan]})
    outliers = pd.DataFrame({"observer": ["o1", "o2"], "outlier": [True, False]})
    corr = pd.DataFrame({"metric": ["l2", "mdf"], "srocc": [0.6, 0.7]})
    return demo_report(summary, jnd, outliers, corr, stats or {"n_losses": 2}, ["a note"],
                       "| cost |", 96, outlier_warnings)


def section(text: str, title: str) -> str:
    return text.split(f"## {title}")[1].split("\n## ")[0]


def test_figure_5_section_shows_the_scaling_warnings_and_the_warned_resamples():
    fig5 = section(report([DISCONNECTED], n_warned=7), "Figure 5")
    assert f"- warning: {DISCONNECTED}" in fig5
    assert "500 resamples of observers, 7 of them warned" in fig5
    assert "Outlier observers (dist_L > 1.5): o1" in fig5


def test_no_warnings_is_said_too():
    fig5 = section(report(), "Figure 5")
    assert "Scaling: no warnings." in fig5 and "0 of them warned" in fig5
    assert "warning:" not in report()


def test_outlier_and_figure_9_warnings_have_their_lines():
    text = report(stats={"n_losses": 2, "warnings": ("An input array is constant",)},
                  outlier_warnings=["a leave-one-out scaling did not converge"])
    assert "- warning: a leave-one-out scaling did not converge" in section(text, "Figure 5")
    fig9 = section(text, "Figure 9")
    assert "- warning: An input array is constant" in fig9 and "warnings =" not in fig9


def test_markdown_table_formats_floats():
    md = markdown_table(pd.DataFrame({"a": ["x"], "b": [0.12345]}))
    assert md.splitlines() == ["| a | b |", "|---|---|", "| x | 0.123 |"]
