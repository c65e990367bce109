"""``mdf scale``: scale a pairwise-comparison table (or count matrix) into JND units."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from .contracts.atomic import save_figure, write_csv

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

    Prints a table of conditions with JND and CI, the scaling's warnings (disconnected designs,
    unanimous pairs, bootstrap resamples that warned) and outlier observers on stderr, and
    optionally writes the table (--out) and plots (--plot, --ranking; they carry the warnings).
    """
    from .caveats import print_warnings, record_warnings
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
    long_table = _is_long_table(source)
    if ranking and not (long_table and n_bootstrap):
        raise click.UsageError("--ranking needs a long table and --bootstrap > 0")
    if group and not long_table:
        raise click.UsageError("--group applies to long tables, not count matrices")

    with record_warnings() as caveats:
        try:
            if long_table:
                table, df = _scale_long_table(source, group, observer, n_bootstrap, alpha, seed,
                                              prior, regularization, per_group, jobs)
            else:
                table, df = None, _scale_matrix(source, prior, regularization)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    print_warnings(caveats)
    _echo_table(df, group, alpha)
    if table is not None and len(table.observers) >= 3:
        _outliers(table, prior, outliers_out)
    if out:
        write_csv(df, out)
        click.echo(f"wrote {out}")
    if plot:
        _plot(df, source, n_bootstrap, caveats, table is not None and table.groups != [ALL], plot)
    if ranking:
        _ranking(table, n_bootstrap, alpha, seed, prior, regularization, jobs, ranking)


def _scale_long_table(source, group, observer, n_bootstrap, alpha, seed, prior, regularization,
                      per_group, jobs):
    from .analysis import scale_table
    from .tables import read_table

    table = read_table(source, group=group, observer=observer)
    df = scale_table(table, n_bootstrap, alpha, seed, prior, regularization, per_group=per_group,
                     n_jobs=jobs, progress=n_bootstrap >= 200)
    return table, df


def _scale_matrix(source, prior, regularization):
    import pandas as pd

    from .tables import ALL, read_matrix
    from .thurstone import pw_scale

    D, conditions = read_matrix(source)
    res = pw_scale(D, prior, regularization, labels=conditions)
    return pd.DataFrame({"group": ALL, "condition": conditions, "jod": res.jod, "low": np.nan,
                         "high": np.nan, "se": np.nan, "n_comparisons": int(D.sum())})


def _echo_table(df, group, alpha) -> None:
    from .analysis import POOLED
    from .tables import ALL

    ci = f"{round(100 * (1 - alpha))}% CI"
    for g, part in df.groupby("group", sort=False):
        n = int(part["n_comparisons"].iloc[0])
        click.echo(f"\n{POOLED if g == ALL else f'{group} = {g}'} ({n} comparisons)")
        click.echo(f"  {'condition':<24} {'JND':>8}   {ci:>18}")
        for _, r in part.sort_values("jod", ascending=False).iterrows():
            ci_txt = f"[{r['low']:7.3f}, {r['high']:7.3f}]" if np.isfinite(r["low"]) else ""
            click.echo(f"  {r['condition']:<24} {r['jod']:8.3f}   {ci_txt:>18}")


def _outliers(table, prior, outliers_out) -> None:
    from .analysis import outlier_table
    from .caveats import print_warnings, record_warnings

    with record_warnings() as caveats:
        odf = outlier_table(table, prior=prior)
    print_warnings(caveats, "outlier analysis")
    for _, r in odf[odf["outlier"]].iterrows():
        click.echo(f"warning: observer {r['observer']!r} may be an outlier "
                   f"(dist_L = {r['dist_L']:.2f} > 1.5): check their answers", err=True)
    if outliers_out:
        write_csv(odf, outliers_out)
        click.echo(f"wrote {outliers_out}")


def _plot(df, source, n_bootstrap, caveats, grouped, path) -> None:
    from .analysis import POOLED
    from .plots import plot_jod
    from .tables import ALL

    pooled = df[df["group"] == ALL]
    about_pooled = [m for m in caveats if not grouped or m.startswith(POOLED)]
    fig = plot_jod(pooled["jod"].to_numpy(), pooled["low"].to_numpy() if n_bootstrap else None,
                   pooled["high"].to_numpy() if n_bootstrap else None, pooled["condition"],
                   title=f"JND scores ({source.name})", warnings=about_pooled)
    save_figure(fig, path)
    click.echo(f"wrote {path}")


def _ranking(table, n_bootstrap, alpha, seed, prior, regularization, jobs, path) -> None:
    from .bootstrap import pw_scale_bootstrap
    from .caveats import print_warnings, record_warnings
    from .plots import plot_ranking_triangle
    from .significance import significance

    with record_warnings() as caveats:
        res = pw_scale_bootstrap(table.stack(None), n_bootstrap, alpha, seed, prior,
                                 regularization, n_jobs=jobs, labels=table.conditions)
    print_warnings(caveats, "ranking")
    fig = plot_ranking_triangle(res.jod, significance(res.jod, res.cov), table.conditions, alpha,
                                warnings=caveats)
    save_figure(fig, path)
    click.echo(f"wrote {path}")
