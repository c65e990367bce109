"""``mdf metrics train-mdf``: MDF Phase 1 from the command line (see :mod:`metrics.singan`)."""

from __future__ import annotations

from pathlib import Path

import click

from scaling.contracts.tasks import ALIASES, TASKS


@click.command("train-mdf")
@click.option(
    "--task",
    type=click.Choice([*TASKS, *ALIASES]),
    required=True,
    help="Restoration task whose distortion the discriminators learn to spot (sr = sisr).",
)
@click.option(
    "--seed-image",
    default="astronaut",
    show_default=True,
    help="Image file, a bundled natural image (astronaut, coffee, chelsea, rocket, ...) "
    "or a synthetic seed (pink-noise, contrast-rings, pyramid-permutation).",
)
@click.option(
    "--preset",
    "preset_name",
    type=click.Choice(["quick", "paper", "tiny"]),
    default="quick",
    show_default=True,
    help="quick: a 2-core CPU in minutes; paper: 3000 iterations per scale (GPU).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Weight file to write (read by metrics.create('mdf', weights=...)).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Checkpoint, CSV log and sample pictures (default: <out>_work).",
)
@click.option("--resume", is_flag=True, help="Continue from the last finished scale in --workdir.")
@click.option("--iterations", type=int, default=None, help="Override iterations per scale.")
@click.option("--max-size", type=int, default=None, help="Override the finest scale's longer side.")
@click.option(
    "--pyramid",
    type=click.Choice(["singan", "paper"]),
    default=None,
    help="SinGAN's pyramid (default) or the paper's (8 scales, factor 2).",
)
@click.option("--alpha", type=float, default=None, help="Reconstruction weight (paper: 100).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda.")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
def train_mdf_command(
    task,
    seed_image,
    preset_name,
    out,
    workdir,
    resume,
    iterations,
    max_size,
    pyramid,
    alpha,
    seed,
    device,
    threads,
):
    """Train MDF discriminators on one seed image (Phase 1) and write a weight file.

    Shows a progress bar per scale with the losses, writes a checkpoint after every scale
    (--resume continues from it), a CSV log of D/G losses and a picture of the seed, its
    reconstruction and random samples per scale, so you can see what the GAN learned.
    """
    import torch

    from metrics.singan import preset, train_mdf

    if threads:
        torch.set_num_threads(threads)
    given = {"iterations": iterations, "max_size": max_size, "pyramid": pyramid, "alpha": alpha}
    overrides = {k: v for k, v in given.items() if v is not None}
    try:
        cfg = preset(preset_name, task=task, seed=seed, device=device, **overrides)
        path = train_mdf(seed_image, cfg, out, workdir=workdir, resume=resume, progress=True)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {path}")
