"""The ``mdf experiments ...`` commands (figures 4, 5, 6, 9, the paper protocol) and ``mdf demo``.

Only the command line lives here: options, reading the inputs, printing. The analyses are in
:mod:`experiments.analyses`, the files they write in :mod:`experiments.figures`, the protocol in
:mod:`experiments.paper` and the demo in :mod:`experiments.demo`; each is imported when its
command runs, so ``mdf experiments --help`` stays fast. Warnings that change what a result means
are printed on stderr, one line each (``warning: ...``), and drawn under the figure.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

_in_file = click.Path(exists=True, dir_okay=False, path_type=Path)
_out = click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
                    help="Output folder.")
_evaluation = click.option("--evaluation", type=_in_file, required=True,
                           help="CSV of `mdf restore evaluate`.")
_jnd = click.option("--jnd", "jnd_csv", type=_in_file, required=True,
                    help="jnd.csv of `mdf experiments jnd`.")


def _read_csv(path: Path, what: str):
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise click.ClickException(f"cannot read the {what} {path}: {exc}") from None


def _table(df) -> str:
    return df.to_string(index=False, float_format=lambda v: f"{v:.3f}")


@click.group("experiments")
def cli():
    """The paper's analyses on real data (figures 4, 5, 6 and 9); each writes CSVs and PNGs."""


@cli.command("objective")
@_evaluation
@click.option("--metric", default="psnr", show_default=True, help="Column to analyse.")
@click.option("--reference", default="mdf", show_default=True,
              help="Loss tested against the others.")
@click.option("--bootstrap", "n_boot", default=2000, show_default=True)
@_out
def objective_cmd(evaluation, metric, reference, n_boot, out):
    """Figure 4: violins, CIs of the mean and 5th percentile, one-tailed t-tests."""
    from experiments.figures import objective_outputs

    df = _read_csv(evaluation, "evaluation")
    try:
        summ = objective_outputs(df, metric, reference, out, n_boot)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(_table(summ))
    click.echo(f"wrote {out}/objective_{metric}.csv and fig4_{metric}.png")


@cli.command("jnd")
@click.option("--comparisons", type=_in_file, required=True,
              help="Long table of `mdf study export`.")
@click.option("--group", default="image", show_default=True, help="Group column ('' for none).")
@click.option("--bootstrap", "n_boot", default=500, show_default=True)
@_out
def jnd_cmd(comparisons, group, n_boot, out):
    """Figure 5: JND per loss with 95% CIs, and ranking triangles with significance."""
    from experiments.figures import jnd_outputs
    from scaling.caveats import print_warnings

    try:
        result = jnd_outputs(comparisons, group or None, n_boot, out)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    print_warnings(result.warnings)
    click.echo(_table(result.table))
    see = " (see the warnings; also under the figures)" if result.n_warned else ""
    click.echo(f"bootstrap: {result.n_boot} resamples of observers, {result.n_warned} of them "
               f"warned{see}")
    click.echo(f"wrote {out}/jnd.csv, fig5_jnd.png, fig5_ranking.png")


@cli.command("pd")
@_evaluation
@_jnd
@click.option("--metric", default="psnr", show_default=True)
@_out
def pd_cmd(evaluation, jnd_csv, metric, out):
    """Figure 6: the perception-distortion plot (PSNR against JND, CIs on both axes)."""
    from experiments.figures import perception_distortion_outputs

    df = _read_csv(evaluation, "evaluation")
    try:
        path = perception_distortion_outputs(df, _read_csv(jnd_csv, "JND table"), out, metric)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {path}")


@cli.command("srocc")
@click.option("--correlations", type=_in_file, required=True,
              help="Correlation table of `mdf metrics iqa`.")
@_jnd
@_out
def srocc_cmd(correlations, jnd_csv, out):
    """Figure 9: SROCC of each loss as a metric against its JND as a training loss."""
    from experiments.figures import srocc_outputs
    from scaling.caveats import print_warnings

    try:
        stats = srocc_outputs(_read_csv(correlations, "correlations"),
                              _read_csv(jnd_csv, "JND table"), out)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    print_warnings(stats.pop("warnings", ()))
    for k, v in stats.items():
        click.echo(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    click.echo(f"wrote {out}/srocc_vs_jnd.csv and fig9_srocc_vs_jnd.png")


@cli.command("paper")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              required=True, help="paper.toml (see `python -c 'import experiments.paper as p; "
                                  "print(p.__doc__)'`).")
@click.option("--stage", "stages", multiple=True,
              type=click.Choice(["train", "evaluate", "triplets", "jnd", "figures", "tid"]),
              help="Run only these stages (repeatable; default: all).")
def paper_cmd(config_path, stages):
    """The paper's full protocol on real data sets; every stage resumable and skipped when done."""
    from experiments.paper import run_paper

    try:
        out = run_paper(config_path, stages)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"outputs in {out}")


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo_out"),
              show_default=True, help="Output folder (report.md and everything behind it).")
@click.option("--quick", is_flag=True, help="Fewer epochs and images (for CI).")
@click.option("--train-mdf", is_flag=True,
              help="Train tiny MDF weights instead of the shipped ones.")
@click.option("--participants", type=int, default=None,
              help="Simulated participants (default: one per HIT of the design).")
@click.option("--seed", default=0, show_default=True)
def demo(out, quick, train_mdf, participants, seed):
    """Run the whole pipeline on bundled images (CPU, offline) and write a report."""
    from experiments.demo import run_demo

    t0 = time.time()
    try:
        report = run_demo(out, quick, train_mdf, participants, seed)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"\nwrote {report} in {time.time() - t0:.0f} s")
