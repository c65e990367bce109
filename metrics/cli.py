"""``mdf metrics ...``: list the losses, convert the authors' MDF weights, evaluate losses as
quality metrics on a TID2013-layout data set, and time the losses."""

from __future__ import annotations

import json
from pathlib import Path

import click

from scaling.contracts.tasks import ALIASES, TASKS


def _parse_options(pairs: tuple[str, ...]) -> dict[str, dict]:
    """``("mdf.weights=Ds.pth", "ssim.matlab=false")`` -> ``{"mdf": {"weights": "Ds.pth"}, ...}``;
    values are parsed as JSON when they can be (numbers, true/false, lists), else kept as text."""
    out: dict[str, dict] = {}
    for pair in pairs:
        if "=" not in pair or "." not in pair.split("=", 1)[0]:
            raise click.BadParameter(f"expected METRIC.OPTION=VALUE, got {pair!r}")
        key, raw = pair.split("=", 1)
        metric, option = key.split(".", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if isinstance(value, list):
            value = tuple(value)
        out.setdefault(metric, {})[option] = value
    return out


#: Commands defined in other modules of the package, imported only when invoked.
_LAZY_COMMANDS = {"train-mdf": "metrics.train_cli:train_mdf_command"}


class _LazyGroup(click.Group):
    def _lazy(self, name: str) -> click.Command | None:
        import importlib

        module, attr = _LAZY_COMMANDS[name].split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None

    def list_commands(self, ctx: click.Context) -> list[str]:
        lazy = [n for n in _LAZY_COMMANDS if _module_exists(_LAZY_COMMANDS[n])]
        return sorted(set(super().list_commands(ctx)) | set(lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY_COMMANDS and cmd_name not in self.commands:
            return self._lazy(cmd_name)
        return super().get_command(ctx, cmd_name)


def _module_exists(path: str) -> bool:
    """Whether the module of ``"module:attr"`` exists (without importing it)."""
    import importlib.util

    return importlib.util.find_spec(path.split(":")[0]) is not None


@click.group(cls=_LazyGroup)
def cli() -> None:
    """Losses and quality metrics of the MDF study (see ``metrics.available()``)."""


@cli.command("list")
def list_metrics() -> None:
    """List the metric names accepted by ``metrics.create``."""
    import metrics

    for name, desc in metrics.available().items():
        click.echo(f"{name:12s} {desc}")


@cli.command("convert-mdf")
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--task",
    type=click.Choice([*TASKS, *ALIASES]),
    default=None,
    help="Task the discriminators were trained for (stored in the metadata as MDF names it: "
    "sisr, denoise, jpeg).",
)
def convert_mdf(src: Path, dst: Path, task: str | None) -> None:
    """Convert the authors' legacy MDF weights SRC into the project's format DST.

    SRC is e.g. Ds_JPEG.pth; DST loads with torch.load(weights_only=True). The SinGAN
    package is not needed: a restricted unpickler reads SRC."""
    from metrics.mdf_weights import checked_task, convert_legacy

    try:
        discs = convert_legacy(src, dst, task=task)
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    chans = ",".join(str(d.channels) for d in discs)
    stored = None if task is None else checked_task(task)
    click.echo(f"wrote {dst}: {len(discs)} discriminators (channels {chans}), task={stored}")


@cli.command("iqa")
@click.option(
    "--dataset",
    "dataset_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder in the TID2013 layout (reference_images/, distorted_images/, mos_with_names.txt).",
)
@click.option(
    "--metrics",
    "metric_list",
    default="l2,psnr,ssim,ms_ssim",
    help="Comma-separated metric names (see `mdf metrics list`).",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--scores",
    "scores_csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CSV of subjective scores (e.g. JND-scaled TID2013) used instead of mos_with_names.txt.",
)
@click.option("--image-col", default="image", show_default=True)
@click.option("--score-col", default="score", show_default=True)
@click.option("--reference-col", default=None, help="Column naming the reference (KADID-style).")
@click.option("--lower-better-scores", is_flag=True, help="Scores are distances (e.g. DMOS).")
@click.option(
    "--option",
    "options",
    multiple=True,
    help="METRIC.OPTION=VALUE, e.g. mdf.weights=Ds_JPEG.pth or ssim.matlab=false.",
)
@click.option("--batch-size", default=8, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--n-boot", default=1000, show_default=True, help="Bootstrap samples.")
@click.option("--seed", default=0, show_default=True)
def iqa(
    dataset_dir,
    metric_list,
    out_dir,
    scores_csv,
    image_col,
    score_col,
    reference_col,
    lower_better_scores,
    options,
    batch_size,
    device,
    n_boot,
    seed,
) -> None:
    """Score every distorted image with each metric (resumable: OUT/scores.csv), then
    SROCC/KROCC/PLCC with 95% bootstrap CIs over reference contents (OUT/correlations.csv),
    per-distortion SROCC (OUT/per_distortion.csv) and scatter plots (OUT/scatter.png)."""
    from metrics import iqa as iqa_mod
    from scaling.contracts.atomic import save_figure, write_csv

    names = [m.strip() for m in metric_list.split(",") if m.strip()]
    if not names:
        raise click.BadParameter("no metric given", param_hint="--metrics")
    opts = _parse_options(options)
    try:
        if scores_csv is not None:
            data = iqa_mod.load_score_csv(
                scores_csv,
                dataset_dir / "distorted_images",
                dataset_dir / "reference_images",
                image_col=image_col,
                score_col=score_col,
                reference_col=reference_col,
                higher_better=not lower_better_scores,
            )
        else:
            data = iqa_mod.load_tid2013(dataset_dir)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    out_dir.mkdir(parents=True, exist_ok=True)
    click.echo(f"{len(data)} images, {data['ref_id'].nunique()} reference contents")
    try:
        scores = iqa_mod.score_dataset(
            data,
            names,
            out_dir / "scores.csv",
            metric_options=opts,
            batch_size=batch_size,
            device=device,
        )
    except (FileNotFoundError, ValueError, TypeError) as e:
        raise click.ClickException(str(e)) from e
    scores = scores[scores["metric"].isin(names)]
    corr = iqa_mod.correlations(scores, data, n_boot=n_boot, seed=seed)
    write_csv(corr, out_dir / "correlations.csv")
    per = iqa_mod.per_distortion_srocc(scores, data)
    write_csv(per.reset_index(), out_dir / "per_distortion.csv")
    save_figure(iqa_mod.scatter_figure(scores, data, names), out_dir / "scatter.png", dpi=120)
    click.echo("\n| metric | SROCC [95% CI] | KROCC [95% CI] | PLCC [95% CI] |\n|---|---|---|---|")
    for _, r in corr.iterrows():
        cells = [
            f"{r[k]:.3f} [{r[k + '_lo']:.3f}, {r[k + '_hi']:.3f}]"
            for k in ("srocc", "krocc", "plcc")
        ]
        click.echo(f"| {r['metric']} | " + " | ".join(cells) + " |")
    click.echo(
        f"\nper-distortion SROCC: {out_dir / 'per_distortion.csv'}; "
        f"plots: {out_dir / 'scatter.png'}"
    )


@cli.command("bench")
@click.option("--losses", default=None, help="Comma-separated subset (default: all).")
@click.option("--batch", default=4, show_default=True)
@click.option("--size", default=256, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--repeats", default=5, show_default=True)
@click.option("--threads", default=1, show_default=True, help="torch CPU threads.")
@click.option(
    "--mdf-weights",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="MDF weight file (default: random discriminators shaped like Ds_JPEG).",
)
@click.option("--autocast", type=click.Choice(["none", "bf16", "fp16"]), default="none")
def bench(losses, mdf_weights, autocast, **timing) -> None:
    """Time each loss (forward, backward, parameter memory) on one batch; print Markdown."""
    # timing: --batch, --size, --device, --repeats, --threads, passed on to run_benchmark
    import torch

    from metrics.bench import DEFAULT_LOSSES, LOSS_NOTES, markdown_table, run_benchmark

    names = [n.strip() for n in losses.split(",")] if losses else list(DEFAULT_LOSSES)
    weights = None
    if mdf_weights:
        from metrics.mdf_weights import load_discriminators

        weights = load_discriminators(mdf_weights)[0]
    dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[autocast]

    def progress(name: str) -> None:
        click.echo(f"timing {name} ...", err=True)

    rows = run_benchmark(
        names, **timing, mdf_weights=weights, autocast_dtype=dtype, progress=progress
    )
    t = timing
    clock = "CPU time" if t["device"] == "cpu" else "wall time"
    title = (
        f"{t['batch']}x3x{t['size']}x{t['size']}, {t['device']}, {clock}, "
        f"{t['threads']} thread(s), autocast {autocast}"
    )
    click.echo(markdown_table(rows, title=title))
    for n in names:
        if n in LOSS_NOTES:
            click.echo(f"\n- {n}: {LOSS_NOTES[n]}")
