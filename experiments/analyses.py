"""The paper's analyses (Mustafa et al., WACV 2022, figures 4, 5, 6 and 9) on tidy CSV inputs.

Inputs are the files the other packages write:

* objective results: ``mdf restore evaluate`` (columns model, loss, dataset, image, psnr, ssim,
  lpips; one row per restored image);
* comparisons: ``mdf study export`` (pwcmp's long table), scaled here with :mod:`scaling`;
* correlations: ``mdf metrics iqa`` (metric, srocc, srocc_lo, srocc_hi, ...).

Each analysis is a function returning tables and matplotlib Figures and writing nothing;
:mod:`experiments.figures` writes them into a folder, :mod:`experiments.commands` makes them
sub-commands of ``mdf experiments``. Warnings that change what a result means (the scaling's, and
degenerate correlations) travel with the result and are drawn under its figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaling.caveats import record_warnings
from scaling.plots import add_warnings, new_figure

#: metric -> True when higher is better
HIGHER_BETTER = {"psnr": True, "ssim": True, "lpips": False}


def bootstrap_ci(values, stat=np.mean, n_boot: int = 2000, alpha: float = 0.05, seed=0):
    """Percentile bootstrap CI of ``stat`` over ``values`` (resampling values with replacement).

    Returns (estimate, low, high) in the units of ``values``.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        raise ValueError(f"a bootstrap CI needs at least 2 finite values, got {v.size}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    boots = np.apply_along_axis(stat, 1, v[idx])
    lo, hi = np.percentile(boots, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(stat(v)), float(lo), float(hi)


def _p5(x):
    return np.percentile(x, 5, axis=-1) if np.ndim(x) > 1 else np.percentile(x, 5)


def objective_summary(
    df: pd.DataFrame,
    metric: str = "psnr",
    reference: str = "mdf",
    by=("model", "dataset"),
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Figure 4's statistics: per group and loss, the mean and 5th percentile of a metric with
    bootstrap CIs, and a one-tailed t-test of ``reference`` against each other loss.

    The test asks whether ``reference`` is better (higher PSNR/SSIM, lower LPIPS). When both losses
    were evaluated on the same images it is a paired test on the per-image differences
    (``statsmodels`` ``DescrStatsW.ttest_mean``), otherwise Welch's two-sample test
    (``statsmodels.stats.weightstats.ttest_ind``, unequal variances).

    Returns:
        DataFrame: *by, loss, n, mean, mean_lo, mean_hi, p5, p5_lo, p5_hi, p_vs_reference,
        better_than_reference_significant (reference significantly better at ``alpha``).
    """
    from statsmodels.stats.weightstats import DescrStatsW, ttest_ind

    if metric not in df.columns:
        raise ValueError(f"no column {metric!r} in the results; columns: {list(df.columns)}")
    by = [b for b in by if b in df.columns]
    needed = {"loss", "image"} - set(df.columns)
    if needed:
        raise ValueError(f"the results lack column(s) {sorted(needed)}")
    higher = HIGHER_BETTER.get(metric, True)
    rows = []
    for key, part in (df.groupby(by, sort=True) if by else [((), df)]):
        key = key if isinstance(key, tuple) else (key,)
        ref = part[part["loss"] == reference].set_index("image")[metric].dropna()
        for loss, sub in part.groupby("loss", sort=True):
            vals = sub[metric].dropna().to_numpy(float)
            if vals.size < 2:
                continue
            m, mlo, mhi = bootstrap_ci(vals, np.mean, n_boot, alpha, seed)
            p5, plo, phi = bootstrap_ci(vals, _p5, n_boot, alpha, seed)
            p = np.nan
            if loss != reference and ref.size >= 2:
                other = sub.set_index("image")[metric].dropna()
                common = ref.index.intersection(other.index)
                alt = "larger" if higher else "smaller"
                if len(common) >= 2 and len(common) == len(ref) == len(other):
                    diff = ref.loc[common].to_numpy(float) - other.loc[common].to_numpy(float)
                    if np.ptp(diff) == 0:
                        p = 0.0 if (diff[0] > 0) == higher and diff[0] != 0 else 1.0
                    else:
                        p = float(DescrStatsW(diff).ttest_mean(0, alternative=alt)[1])
                else:
                    p = float(ttest_ind(ref.to_numpy(float), other.to_numpy(float),
                                        alternative=alt, usevar="unequal")[1])
            rows.append({**dict(zip(by, key)), "loss": loss, "n": vals.size, "mean": m,
                         "mean_lo": mlo, "mean_hi": mhi, "p5": p5, "p5_lo": plo, "p5_hi": phi,
                         "p_vs_reference": p,
                         "reference_significantly_better": bool(p < alpha) if np.isfinite(p) else False})
    return pd.DataFrame(rows)


def plot_objective(df: pd.DataFrame, summary: pd.DataFrame, metric: str = "psnr",
                   reference: str = "mdf", dataset_col: str = "dataset"):
    """Figure 4: violin plots of a metric per loss (one panel per data set), the mean with its
    95% CI, and a star over each loss that ``reference`` beats significantly (one-tailed t-test)."""
    datasets = sorted(df[dataset_col].unique()) if dataset_col in df.columns else [None]
    losses = sorted(df["loss"].unique())
    fig = new_figure((max(4.5, 0.9 * len(losses) + 1.5) * len(datasets), 3.8))
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, ds in zip(axes, datasets):
        part = df if ds is None else df[df[dataset_col] == ds]
        data = [part[part["loss"] == lo][metric].dropna().to_numpy(float) for lo in losses]
        pos = [i for i, d in enumerate(data) if d.size]
        ax.violinplot([data[i] for i in pos], positions=pos, showextrema=False)
        summ = summary if ds is None or dataset_col not in summary.columns else summary[summary[dataset_col] == ds]
        for i, lo in enumerate(losses):
            s = summ[summ["loss"] == lo]
            if s.empty:
                continue
            s = s.iloc[0]
            ax.errorbar(i, s["mean"], yerr=[[s["mean"] - s["mean_lo"]], [s["mean_hi"] - s["mean"]]],
                        fmt="o", color="k", ms=4, capsize=3,
                        label="mean, 95% CI" if i == 0 else None)
            if s["reference_significantly_better"]:
                top = np.nanmax(data[i]) if data[i].size else s["mean"]
                ax.text(i, top, "*", ha="center", va="bottom", fontsize=14, color="C3")
        ax.set_xticks(range(len(losses)), losses, rotation=30, ha="right")
        arrow = "higher is better" if HIGHER_BETTER.get(metric, True) else "lower is better"
        unit = " [dB]" if metric == "psnr" else ""
        ax.set_ylabel(f"{metric.upper()}{unit} ({arrow})")
        ax.set_xlabel("training loss")
        ax.set_title(f"{ds}  (* {reference} significantly better, one-tailed t-test)" if ds
                     else f"* {reference} significantly better")
        ax.legend(loc="lower right", fontsize=8)
    return fig


@dataclass(frozen=True)
class JndPerLoss:
    """Figure 5's numbers (:func:`jnd_per_loss`); unpacks as ``table, p_values, conditions``.

    Attributes:
        table: one row per loss: loss, jod, low, high, se (JND; 95% bootstrap CI).
        p_values: N x N p-values of the pairwise differences (:func:`scaling.significance`).
        conditions: the losses in the order of ``p_values``.
        warnings: what the scaling warned about (disconnected design, unanimous pairs, bootstrap
            resamples that warned), one line each, naming the losses; empty when nothing.
        n_warned: bootstrap resamples whose scaling warned (``BootstrapResult.n_warned``).
        n_boot: bootstrap resamples drawn.
    """

    table: pd.DataFrame
    p_values: np.ndarray
    conditions: list
    warnings: tuple[str, ...] = ()
    n_warned: int = 0
    n_boot: int = 0

    def __iter__(self):
        return iter((self.table, self.p_values, self.conditions))


def jnd_per_loss(comparisons, group: str | None = "image", n_boot: int = 500,
                 seed: int = 0) -> JndPerLoss:
    """Figure 5's numbers: pooled JND per loss with bootstrap CIs and the pairwise p-values.

    ``comparisons`` is pwcmp's long table (``mdf study export``, a CSV path or DataFrame); all
    groups are pooled and observers are resampled ``n_boot`` times
    (:func:`scaling.pw_scale_bootstrap`). The scaling's warnings are recorded in the result
    instead of being printed.
    """
    from scaling import pw_scale_bootstrap, read_table, significance

    table = read_table(comparisons, group=group)
    with record_warnings() as caveats:
        res = pw_scale_bootstrap(table.stack(None), n_boot, seed=seed, labels=table.conditions)
    out = pd.DataFrame({"loss": table.conditions, "jod": res.jod, "low": res.low,
                        "high": res.high, "se": res.se})
    return JndPerLoss(out, significance(res.jod, res.cov), table.conditions, tuple(caveats),
                      res.n_warned, n_boot)


def plot_jnd(result: JndPerLoss, title: str = "JND per loss"):
    """Figure 5: JND per loss with 95% CIs, and pwcmp's ranking triangles with significance.

    Returns (bars, ranking) Figures; both carry ``result.warnings`` under the plot.
    """
    from scaling import plot_jod, plot_ranking_triangle

    t = result.table
    bars = plot_jod(t["jod"], t["low"], t["high"], result.conditions, title=title,
                    warnings=result.warnings)
    ranking = plot_ranking_triangle(t["jod"].to_numpy(), result.p_values, result.conditions,
                                    warnings=result.warnings)
    return bars, ranking


def _join(left: pd.DataFrame, right: pd.DataFrame, what: str) -> pd.DataFrame:
    merged = left.merge(right, on="loss", how="inner")
    if merged.empty:
        raise ValueError(
            f"no loss is common to the {what}: {sorted(left['loss'])} vs {sorted(right['loss'])}"
        )
    return merged


def plot_perception_distortion(objective: pd.DataFrame, jnd: pd.DataFrame, metric: str = "psnr"):
    """Figure 6 (after Blau & Michaeli, CVPR 2018): mean PSNR (x) against JND quality (y) per loss,
    with 95% CIs on both axes. Both axes are reversed so that the best loss is bottom-left
    (high PSNR to the left, high JND at the bottom)."""
    m = _join(objective, jnd, "objective results and the JND table")
    fig = new_figure((5.2, 4.2))
    ax = fig.add_subplot()
    for i, r in m.reset_index(drop=True).iterrows():
        ax.errorbar(r["mean"], r["jod"], xerr=[[r["mean"] - r["mean_lo"]], [r["mean_hi"] - r["mean"]]],
                    yerr=[[r["jod"] - r["low"]], [r["high"] - r["jod"]]], fmt="o", capsize=3,
                    color=f"C{i % 10}", label=r["loss"])
    ax.invert_xaxis()
    ax.invert_yaxis()
    unit = " [dB]" if metric == "psnr" else ""
    ax.set_xlabel(f"distortion: mean {metric.upper()}{unit} (axis reversed)")
    ax.set_ylabel("perceived quality [JND] (axis reversed)")
    ax.set_title("perception-distortion: best is bottom-left", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def srocc_vs_jnd(correlations: pd.DataFrame, jnd: pd.DataFrame):
    """Figure 9: each loss's SROCC as a quality metric (TID2013) against its JND as a training loss.

    Returns (joined table, stats) with Pearson r and Spearman rho (and their p-values) between the
    two over losses: the paper finds little correlation. ``stats["warnings"]`` lists what SciPy
    warned about (e.g. a constant column, which makes the correlations NaN); it is drawn under
    figure 9.
    """
    from scipy.stats import pearsonr, spearmanr

    corr = correlations.rename(columns={"metric": "loss"})
    m = _join(corr, jnd, "SROCC table and the JND table")
    stats = {"n_losses": len(m)}
    with record_warnings() as caveats:
        if len(m) >= 3:
            r, p = pearsonr(m["jod"], m["srocc"])
            rho, prho = spearmanr(m["jod"], m["srocc"])
            stats.update(pearson_r=float(r), pearson_p=float(p), spearman_rho=float(rho),
                         spearman_p=float(prho))
    if caveats:
        stats["warnings"] = tuple(caveats)
    return m, stats


def plot_srocc_vs_jnd(joined: pd.DataFrame, stats: dict):
    """Figure 9's plot: SROCC (y) against JND (x) per loss, with their 95% CIs (and the warnings
    of :func:`srocc_vs_jnd` under it)."""
    fig = new_figure((5.2, 4.2))
    ax = fig.add_subplot()
    for i, r in joined.reset_index(drop=True).iterrows():
        yerr = None
        if {"srocc_lo", "srocc_hi"} <= set(joined.columns):
            yerr = [[r["srocc"] - r["srocc_lo"]], [r["srocc_hi"] - r["srocc"]]]
        ax.errorbar(r["jod"], r["srocc"], xerr=[[r["jod"] - r["low"]], [r["high"] - r["jod"]]],
                    yerr=yerr, fmt="o", capsize=3, color=f"C{i % 10}", label=r["loss"])
    ax.set_xlabel("quality as a training loss [JND] (higher is better)")
    ax.set_ylabel("SROCC as a quality metric (higher is better)")
    title = "loss as metric vs loss for training"
    if "pearson_r" in stats:
        title += f"\nPearson r = {stats['pearson_r']:.2f} (p = {stats['pearson_p']:.2f})"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    add_warnings(fig, stats.get("warnings", ()))
    return fig
