"""The paper's analyses (Mustafa et al., WACV 2022, figures 4, 5, 6 and 9) on tidy CSV inputs.

Inputs are the files the other packages write:

* objective results: ``mdf restore evaluate`` (columns model, loss, dataset, image, psnr, ssim,
  lpips; one row per restored image);
* comparisons: ``mdf study export`` (pwcmp's long table), scaled here with :mod:`scaling`;
* correlations: ``mdf metrics iqa`` (metric, srocc, srocc_lo, srocc_hi, ...).

Each analysis is a function returning tables and matplotlib Figures, and a sub-command of
``mdf experiments`` that writes them to ``--out``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import click
import numpy as np
import pandas as pd

from scaling._io import save_figure_atomic as _save  # one atomic writer for scaling and us
from scaling._io import write_csv_atomic as _write

#: metric -> True when higher is better
HIGHER_BETTER = {"psnr": True, "ssim": True, "lpips": False}


def _figure(figsize):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


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
    fig = _figure((max(4.5, 0.9 * len(losses) + 1.5) * len(datasets), 3.8))
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


def jnd_per_loss(comparisons, group: str | None = "image", n_boot: int = 500, seed: int = 0):
    """Figure 5's numbers: pooled JND per loss with bootstrap CIs and the pairwise p-values.

    Returns (table, p_values, conditions): the pooled rows of :func:`scaling.scale_table`
    (condition, jod, low, high, se), the N x N p-value matrix of :func:`scaling.significance`.
    """
    from scaling import pw_scale_bootstrap, read_table, significance

    table = read_table(comparisons, group=group)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = pw_scale_bootstrap(table.stack(None), n_boot, seed=seed, labels=table.conditions)
    out = pd.DataFrame({"loss": table.conditions, "jod": res.jod, "low": res.low,
                        "high": res.high, "se": res.se})
    return out, significance(res.jod, res.cov), table.conditions


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
    fig = _figure((5.2, 4.2))
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
    two over losses: the paper finds little correlation.
    """
    from scipy.stats import pearsonr, spearmanr

    corr = correlations.rename(columns={"metric": "loss"})
    m = _join(corr, jnd, "SROCC table and the JND table")
    stats = {"n_losses": len(m)}
    if len(m) >= 3:
        r, p = pearsonr(m["jod"], m["srocc"])
        rho, prho = spearmanr(m["jod"], m["srocc"])
        stats.update(pearson_r=float(r), pearson_p=float(p), spearman_rho=float(rho),
                     spearman_p=float(prho))
    return m, stats


def plot_srocc_vs_jnd(joined: pd.DataFrame, stats: dict):
    """Figure 9's plot: SROCC (y) against JND (x) per loss, with their 95% CIs."""
    fig = _figure((5.2, 4.2))
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
    return fig


# --------------------------------------------------------------------------- command line
def jnd_outputs(comparisons, group: str | None, n_boot: int, folder: Path) -> pd.DataFrame:
    """Figure 5 into ``folder``: fig5_jnd.png, fig5_ranking.png, then jnd.csv (written last, so
    its presence means the step finished). Returns the JND table."""
    from scaling import plot_jod, plot_ranking_triangle

    table, p, conds = jnd_per_loss(comparisons, group, n_boot)
    _save(plot_jod(table["jod"], table["low"], table["high"], conds, title="JND per loss"),
          folder / "fig5_jnd.png")
    _save(plot_ranking_triangle(table["jod"].to_numpy(), p, conds), folder / "fig5_ranking.png")
    _write(table, folder / "jnd.csv")
    return table


def srocc_outputs(correlations: pd.DataFrame, jnd: pd.DataFrame, folder: Path) -> dict:
    """Figure 9 into ``folder``: srocc_vs_jnd.csv and fig9_srocc_vs_jnd.png. Returns the stats."""
    joined, stats = srocc_vs_jnd(correlations, jnd)
    _write(joined, folder / "srocc_vs_jnd.csv")
    _save(plot_srocc_vs_jnd(joined, stats), folder / "fig9_srocc_vs_jnd.png")
    return stats


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise click.ClickException(f"cannot read the {what} {path}: {exc}") from None


@click.group("experiments")
def cli():
    """The paper's analyses on real data (figures 4, 5, 6 and 9); each writes CSVs and PNGs."""


_out = click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
                    help="Output folder.")


@cli.command("objective")
@click.option("--evaluation", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="CSV of `mdf restore evaluate`.")
@click.option("--metric", default="psnr", show_default=True, help="Column to analyse.")
@click.option("--reference", default="mdf", show_default=True, help="Loss tested against the others.")
@click.option("--bootstrap", "n_boot", default=2000, show_default=True)
@_out
def objective_cmd(evaluation, metric, reference, n_boot, out):
    """Figure 4: violins, CIs of the mean and 5th percentile, one-tailed t-tests."""
    df = _read_csv(evaluation, "evaluation")
    try:
        summ = objective_summary(df, metric, reference, n_boot=n_boot)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    _write(summ, out / f"objective_{metric}.csv")
    _save(plot_objective(df, summ, metric, reference), out / f"fig4_{metric}.png")
    click.echo(summ.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    click.echo(f"wrote {out}/objective_{metric}.csv and fig4_{metric}.png")


@cli.command("jnd")
@click.option("--comparisons", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="Long table of `mdf study export`.")
@click.option("--group", default="image", show_default=True, help="Group column ('' for none).")
@click.option("--bootstrap", "n_boot", default=500, show_default=True)
@_out
def jnd_cmd(comparisons, group, n_boot, out):
    """Figure 5: JND per loss with 95% CIs, and ranking triangles with significance."""
    try:
        table = jnd_outputs(comparisons, group or None, n_boot, out)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    click.echo(f"wrote {out}/jnd.csv, fig5_jnd.png, fig5_ranking.png")


@cli.command("pd")
@click.option("--evaluation", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="CSV of `mdf restore evaluate`.")
@click.option("--jnd", "jnd_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="jnd.csv of `mdf experiments jnd`.")
@click.option("--metric", default="psnr", show_default=True)
@_out
def pd_cmd(evaluation, jnd_csv, metric, out):
    """Figure 6: the perception-distortion plot (PSNR against JND, CIs on both axes)."""
    df = _read_csv(evaluation, "evaluation")
    try:
        summ = objective_summary(df, metric, reference="", by=())
        fig = plot_perception_distortion(summ, _read_csv(jnd_csv, "JND table"), metric)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    _save(fig, out / "fig6_perception_distortion.png")
    click.echo(f"wrote {out}/fig6_perception_distortion.png")


@cli.command("srocc")
@click.option("--correlations", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="Correlation table of `mdf metrics iqa`.")
@click.option("--jnd", "jnd_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="jnd.csv of `mdf experiments jnd`.")
@_out
def srocc_cmd(correlations, jnd_csv, out):
    """Figure 9: SROCC of each loss as a metric against its JND as a training loss."""
    try:
        stats = srocc_outputs(_read_csv(correlations, "correlations"),
                              _read_csv(jnd_csv, "JND table"), out)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    for k, v in stats.items():
        click.echo(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    click.echo(f"wrote {out}/srocc_vs_jnd.csv and fig9_srocc_vs_jnd.png")


def _register_paper() -> None:
    from experiments.paper import paper_cmd

    cli.add_command(paper_cmd)


_register_paper()
