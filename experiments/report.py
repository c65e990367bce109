"""The demo's ``report.md``: every figure and table of the run, and the warnings behind them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .analyses import JndPerLoss


def markdown_table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    """A DataFrame as a Markdown table (floats with ``floatfmt``)."""
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        out.append("| " + " | ".join(floatfmt.format(v) if isinstance(v, (float, np.floating))
                                     else str(v) for v in r) + " |")
    return "\n".join(out)


def warning_lines(messages, what: str) -> list[str]:
    """Markdown lines that put the warnings about ``what`` in front of the reader (none: [])."""
    if not messages:
        return []
    return [f"**Warnings** (they change what {what} means):", "",
            *[f"- warning: {m}" for m in messages], ""]


def jnd_lines(jnd: JndPerLoss) -> list[str]:
    """Figure 5's caveats: the scaling's warnings and how many bootstrap resamples warned."""
    count = (f"Bootstrap: {jnd.n_boot} resamples of observers, {jnd.n_warned} of them warned "
             "(disconnected or without a finite optimum).")
    if not jnd.warnings:
        return [f"Scaling: no warnings. {count}", ""]
    return [*warning_lines(jnd.warnings, "figure 5; they are also printed under it"), count, ""]


def demo_report(summary: pd.DataFrame, jnd: JndPerLoss, outliers: pd.DataFrame,
                correlations: pd.DataFrame, stats: dict, notes, cost: str, cost_size: int,
                outlier_warnings=()) -> str:
    """The Markdown text of the demo's report (figures 4, 5, 6, 9, table 1 and the notes).

    ``jnd`` is figure 5's result with its warnings, ``stats`` figure 9's (``"warnings"`` too);
    ``outlier_warnings`` are what the outlier analysis warned about.
    """
    corr_cols = [c for c in correlations.columns
                 if c in ("metric", "n", "srocc", "srocc_lo", "srocc_hi", "plcc")]
    numbers = {k: v for k, v in stats.items() if k != "warnings"}
    flagged = ", ".join(outliers.loc[outliers["outlier"], "observer"]) or "none"
    parts = [
        "# MDF toolkit demo report",
        "",
        "Everything below ran on bundled scikit-image photographs, on a CPU, offline. Networks",
        "are tiny and the study participants are simulated: the figures show that the pipeline",
        "works end to end, not the paper's results.",
        "",
        *[f"- {n}" for n in notes],
        "",
        "## Figure 4: objective quality per loss (PSNR)",
        "![fig4](fig4_psnr.png)",
        "",
        markdown_table(summary[["loss", "n", "mean", "mean_lo", "mean_hi", "p5",
                                "p_vs_reference"]]),
        "",
        "## Figure 5: JND per loss (simulated crowd study) and ranking",
        "![fig5](fig5_jnd.png)",
        "![ranking](fig5_ranking.png)",
        "",
        markdown_table(jnd.table),
        "",
        *jnd_lines(jnd),
        f"Outlier observers (dist_L > 1.5): {flagged}",
        "",
        *warning_lines(outlier_warnings, "the outlier analysis"),
        "## Figure 6: perception-distortion",
        "![fig6](fig6_perception_distortion.png)",
        "",
        "## Figure 9: loss as a metric (SROCC, TID2013-layout set) vs JND",
        "![fig9](fig9_srocc_vs_jnd.png)",
        "",
        markdown_table(correlations[corr_cols]),
        "",
        "Correlation over losses: " + ", ".join(f"{k} = {v:.3f}" if isinstance(v, float)
                                                 else f"{k} = {v}" for k, v in numbers.items()),
        "",
        *warning_lines(stats.get("warnings", ()), "figure 9"),
        f"## Table 1: cost of each loss (batch 2 x 3 x {cost_size} x {cost_size}, this CPU; VGG,",
        "LPIPS and PDL timed with random trunks, which cost the same as ImageNet ones)",
        "",
        cost,
        "",
        "CSV files: evaluation.csv, objective_psnr.csv, comparisons.csv (passed checks),",
        "comparisons_all.csv, jnd.csv, outliers.csv, tid_scores.csv, srocc.csv, srocc_vs_jnd.csv.",
        "",
    ]
    return "\n".join(parts)
