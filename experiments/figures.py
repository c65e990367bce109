"""The paper's figures 4, 5, 6 and 9 written into a folder, with the CSVs behind them.

Each writer runs one analysis of :mod:`experiments.analyses`, writes its files atomically
(:mod:`scaling.contracts.atomic`: a reader never sees half a file) and returns what it computed.
``mdf experiments ...`` (:mod:`experiments.commands`) and the paper protocol
(:mod:`experiments.paper`) both write through them, so the file names are defined here once.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scaling.contracts.atomic import save_figure, write_csv

from . import analyses
from .analyses import JndPerLoss

#: file names, by figure
OBJECTIVE_CSV, FIG4 = "objective_{metric}.csv", "fig4_{metric}.png"
JND_CSV, FIG5_JND, FIG5_RANKING = "jnd.csv", "fig5_jnd.png", "fig5_ranking.png"
FIG6 = "fig6_perception_distortion.png"
SROCC_CSV, FIG9 = "srocc_vs_jnd.csv", "fig9_srocc_vs_jnd.png"


def objective_outputs(evaluation: pd.DataFrame, metric: str, reference: str, folder: Path,
                      n_boot: int = 2000) -> pd.DataFrame:
    """Figure 4 into ``folder``: objective_<metric>.csv and fig4_<metric>.png (see
    :func:`~experiments.analyses.objective_summary`). Returns the summary table."""
    summary = analyses.objective_summary(evaluation, metric, reference, n_boot=n_boot)
    write_csv(summary, Path(folder) / OBJECTIVE_CSV.format(metric=metric))
    save_figure(analyses.plot_objective(evaluation, summary, metric, reference),
                Path(folder) / FIG4.format(metric=metric))
    return summary


def jnd_outputs(comparisons, group: str | None, n_boot: int, folder: Path, seed: int = 0,
                title: str = "JND per loss") -> JndPerLoss:
    """Figure 5 into ``folder``: fig5_jnd.png, fig5_ranking.png (both with the scaling's warnings
    under the plot), then jnd.csv (written last, so its presence means the step finished).
    Returns the :class:`~experiments.analyses.JndPerLoss` result (``.warnings``, ``.n_warned``)."""
    result = analyses.jnd_per_loss(comparisons, group, n_boot, seed)
    bars, ranking = analyses.plot_jnd(result, title)
    save_figure(bars, Path(folder) / FIG5_JND)
    save_figure(ranking, Path(folder) / FIG5_RANKING)
    write_csv(result.table, Path(folder) / JND_CSV)
    return result


def perception_distortion_outputs(evaluation: pd.DataFrame, jnd: pd.DataFrame, folder: Path,
                                  metric: str = "psnr") -> Path:
    """Figure 6 into ``folder`` (fig6_perception_distortion.png): the mean ``metric`` over all
    images per loss against its JND. Returns the figure's path."""
    pooled = analyses.objective_summary(evaluation, metric, reference="", by=())
    fig = analyses.plot_perception_distortion(pooled, jnd, metric)
    return save_figure(fig, Path(folder) / FIG6)


def srocc_outputs(correlations: pd.DataFrame, jnd: pd.DataFrame, folder: Path) -> dict:
    """Figure 9 into ``folder``: srocc_vs_jnd.csv and fig9_srocc_vs_jnd.png. Returns the stats
    of :func:`~experiments.analyses.srocc_vs_jnd` (with ``"warnings"`` when SciPy warned)."""
    joined, stats = analyses.srocc_vs_jnd(correlations, jnd)
    write_csv(joined, Path(folder) / SROCC_CSV)
    save_figure(analyses.plot_srocc_vs_jnd(joined, stats), Path(folder) / FIG9)
    return stats
