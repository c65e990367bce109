"""``mdf scale``: scale a pairwise-comparison table (or count matrix) into JND units."""

from __future__ import annotations

import warnings
from pathlib import Path

import click
import numpy as np

from ._io import save_figure_atomic, write_csv_atomic

EXAMPLE = Path(__file__).parent / "data" / "example_study.csv"


def _is_long_table(path: Path) -> bool:
    with open(path, encoding="utf-8") as fh:
        header = fh.readline()
    return "condition_A" in header or "is_A_selected" in header


@click.command("scale")
@click.argument("source", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--example", is_flag=True, help="Scale the bundled simulated study (scaling/data).")
@click.option("--group", default=None, help="Group column of the long table (e.g. scene, image).")
@click.option("--observer", default="observer", show_default=True, help="Observer column.")
@click.option("--bootstrap", "n_bootstrap", default=500, show_default=True,
              help="Bootstrap resamples of observers for CIs (0: no CIs).")
@click.option("--alpha", default=0.05, show_default=True, help="1 - confidence level.")
@click.option("--seed", default=0, show_default=True, help="Random seed of the bootstrap.")
@click.option("--prior", type=click.Choice(["gaussian", "none"]), default="gaussian",
              show_default=True, help="pwcmp's distance prior, or none.")
@click.option("--regularization", type=click.Choice(["mean0", "fix0"]), default="mean0",
              show_default=True, help="Scores with mean 0, or first condition at 0.")
@click.option("--per-group/--pooled-only", default=True, show_default=True,
              help="Also scale each group on its own.")
@click.option("--jobs", default=None, type=int, help="Worker processes (default: all cores).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the JND table (CSV).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a bar plot of the pooled JND with CIs (PNG/PDF/SVG).")
@click.option("--ranking", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the ranking-triangle plot with significance (needs --bootstrap).")
@click.option("--outliers", "outliers_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the per-observer outlier analysis (CSV).")
def scale(source, example, group, observer, n_bootstrap, alpha, seed, prior, regularization,
          per_group, jobs, out, plot, ranking, outliers_out):
    """Scale pairwise comparisons in SOURCE into JND units (pwcmp-compatible).

    SOURCE is pwcmp's long table as CSV (observer, [group], condition_A, condition_B,
    is_A_selected), e.g. the export of `mdf study export`, or an N x N count matrix as CSV
    (optionally with a header of condition names; D[i, j] = times i was preferred over j).

    Prints a table of conditions with JND and CI, warns about outlier observers, and optionally
    writes the table (--out) and plots (--plot, --ranking).
    """
    from . import (outlier_table, plot_jod, plot_ranking_triangle, pw_scale, pw_scale_bootstrap,
                   read_matrix, read_table, scale_table, significance)
    from .tables import ALL

    if example:
        if source is not None:
            raise click.UsageError("give either SOURCE or --example, not both")
        source, group = EXAMPLE, group or "scene"
    if source is None:
        raise click.UsageError("missing SOURCE (a CSV file), or use --example")
    if not source.exists():
        raise click.BadParameter(f"{source} does not exist", param_hint="SOURCE")
    if n_bootstrap < 0 or (0 < n_bootstrap < 2):
        raise click.BadParameter("must be 0 or >= 2", param_hint="--bootstrap")

    caught_msgs: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if _is_long_table(source):
                table = read_table(source, group=group, observer=observer)
                df = scale_table(table, n_bootstrap, alpha, seed, prior, regularization,
                                 per_group=per_group, n_jobs=jobs, progress=n_bootstrap >= 200)
                conditions = table.conditions
                MM = table.stack(None)
            else:
                if group:
                    raise click.UsageError("--group applies to long tables, not count matrices")
                D, conditions = read_matrix(source)
                table = None
                MM = None
                res = pw_scale(D, prior, regularization, labels=conditions)
                import pandas as pd

                df = pd.DataFrame({"group": ALL, "condition": conditions, "jod": res.jod,
                                   "low": np.nan, "high": np.nan, "se": np.nan,
                                   "n_comparisons": int(D.sum())})
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    caught_msgs = [str(w.message) for w in caught]

    for msg in dict.fromkeys(caught_msgs):
        click.echo(f"warning: {msg}", err=True)

    for g, part in df.groupby("group", sort=False):
        n = int(part["n_comparisons"].iloc[0])
        click.echo(f"\n{('pooled over all groups' if g == ALL else group + ' = ' + str(g))}"
                   f" ({n} comparisons)")
        ci = f"{int(round(100 * (1 - alpha)))}% CI"
        click.echo(f"  {'condition':<24} {'JND':>8}   {ci:>18}")
        for _, r in part.sort_values("jod", ascending=False).iterrows():
            ci_txt = (f"[{r['low']:7.3f}, {r['high']:7.3f}]" if np.isfinite(r["low"]) else "")
            click.echo(f"  {r['condition']:<24} {r['jod']:8.3f}   {ci_txt:>18}")

    if table is not None and len(table.observers) >= 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            odf = outlier_table(table, prior=prior)
        flagged = odf[odf["outlier"]]
        for _, r in flagged.iterrows():
            click.echo(f"warning: observer {r['observer']!r} may be an outlier "
                       f"(dist_L = {r['dist_L']:.2f} > 1.5): check their answers", err=True)
        if outliers_out:
            write_csv_atomic(odf, outliers_out)
            click.echo(f"wrote {outliers_out}")

    if out:
        write_csv_atomic(df, out)
        click.echo(f"wrote {out}")
    pooled = df[df["group"] == ALL]
    if plot:
        fig = plot_jod(pooled["jod"].to_numpy(), pooled["low"].to_numpy() if n_bootstrap else None,
                       pooled["high"].to_numpy() if n_bootstrap else None, conditions,
                       title=f"JND scores ({source.name})")
        save_figure_atomic(fig, plot)
        click.echo(f"wrote {plot}")
    if ranking:
        if MM is None or not n_bootstrap:
            raise click.UsageError("--ranking needs a long table and --bootstrap > 0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = pw_scale_bootstrap(MM, n_bootstrap, alpha, seed, prior, regularization, n_jobs=jobs)
        fig = plot_ranking_triangle(res.jod, significance(res.jod, res.cov), conditions, alpha)
        save_figure_atomic(fig, ranking)
        click.echo(f"wrote {ranking}")
