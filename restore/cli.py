"""``mdf restore``: train, run, evaluate, degrade, triplets, models (click group ``cli``)."""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from scaling.contracts.tasks import ALIASES, TASKS, canonical_task

#: --task accepts the task names and their aliases (``sisr`` for ``sr``, ...)
_TASK = click.Choice([*TASKS, *ALIASES], case_sensitive=False)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pairs(items: tuple[str, ...], what: str) -> dict[str, Any]:
    """KEY=VALUE options -> dict (values parsed as JSON when possible: numbers, booleans, lists)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=what)
        k, v = item.split("=", 1)
        out[k.strip()] = _parse_value(v)
    return out


def _labelled(items: tuple[str, ...], what: str) -> dict[str, str]:
    """LABEL=PATH (or PATH, labelled by the checkpoint's loss later) -> ordered dict."""
    out: dict[str, str] = {}
    for item in items:
        label, _, path = item.rpartition("=")
        if not label:
            label = Path(path).parent.name or Path(path).stem
        if label in out:
            raise click.BadParameter(f"label {label!r} given twice", param_hint=what)
        out[label] = path
    return out


@contextmanager
def _user_errors(*extra: type[Exception]):
    """Bad input (``ValueError``, ``TypeError``, ``extra``) ends the command with its message."""
    try:
        yield
    except (ValueError, TypeError, *extra) as e:
        raise click.ClickException(str(e)) from e


def _checkpoints_option(help: str):
    return click.option("--checkpoint", "checkpoints", multiple=True, required=True, help=help)


def _test_set_options(f):
    """--seed, --set, --limit, --tile, --device: how evaluate and triplets degrade and restore."""
    options = [
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--set", "sets", multiple=True, help="Degradation override, e.g. quality=7."),
        click.option("--limit", type=int, default=None, help="At most this many images per folder."),
        click.option("--tile", type=int, default=0, help="Tile size in input px (0: off)."),
        click.option("--device", default="cpu", show_default=True),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log progress (INFO).")
def cli(verbose: bool) -> None:
    """Train EDSR, SRResNet and DnCNN with any loss; restore, evaluate, export study triplets."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")


@cli.command()
@click.option("--preset", type=click.Choice(["tiny", "paper"]), default="tiny", show_default=True)
@click.option("--task", type=_TASK, default="sr", show_default=True, help="sr | denoise | jpeg.")
@click.option(
    "--model", default=None, help="edsr | edsr_full | srresnet | dncnn (default per task)."
)
@click.option("--loss", default="l1", show_default=True, help="Any name of metrics.available().")
@click.option("--loss-opt", multiple=True, help="Loss option KEY=VALUE, e.g. l2_weight=1.0.")
@click.option("--model-opt", multiple=True, help="Model option KEY=VALUE, e.g. depth=17.")
@click.option("--data", type=click.Path(), default=None, help="Training images (tiny: bundled).")
@click.option("--val-data", type=click.Path(), default=None, help="Validation images.")
@click.option("--layout", default=None, help="auto | flat | div2k | bsd500 | dped.")
@click.option("--out", "out_dir", type=click.Path(), required=True, help="Run folder.")
@click.option(
    "--set", "sets", multiple=True, help="Any TrainConfig field KEY=VALUE (e.g. epochs=3)."
)
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
@click.option("--seed", type=int, default=None)
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N.")
def train(preset, task, model, loss, loss_opt, model_opt, data, val_data, layout, out_dir, sets,
          resume, seed, device) -> None:  # fmt: skip
    """Train a restoration network (torchrun-compatible: launch under torchrun for DDP)."""
    from .config import preset as make_preset
    from .image_io import BUNDLED_VALID, write_bundled_images
    from .train import train as run_train

    overrides: dict[str, Any] = {"loss": loss, "out_dir": out_dir, "resume": resume}
    overrides.update(_pairs(sets, "--set"))
    if loss_opt:
        overrides["loss_options"] = _pairs(loss_opt, "--loss-opt")
    for key, val in (
        ("val_data", val_data),
        ("layout", layout),
        ("seed", seed),
        ("device", device),
    ):
        if val is not None:
            overrides[key] = val
    with _user_errors(RuntimeError):
        cfg = make_preset(preset, canonical_task(task), model, **overrides)
        if model_opt:
            cfg.model_options = {**cfg.model_options, **_pairs(model_opt, "--model-opt")}
        if data is None:
            if preset != "tiny":
                raise click.UsageError("--data is required with --preset paper")
            base = Path(out_dir) / "data"
            write_bundled_images(base / "train")
            write_bundled_images(base / "valid", BUNDLED_VALID)
            data, cfg.val_data = str(base / "train"), cfg.val_data or str(base / "valid")
        cfg.data = str(data)
        cfg.validate()
        summary = run_train(cfg)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only rank 0 reports
    last = summary["history"][-1] if summary["history"] else {}
    click.echo(
        f"trained {summary['steps']} steps; best epoch {summary['best_epoch']} "
        f"(validation loss {summary['best_val_loss']:.5g}); last: "
        + ", ".join(f"{k}={v:.4g}" for k, v in last.items() if isinstance(v, float))
    )
    click.echo(f"checkpoints: {summary['best']} {summary['last']}")


@cli.command()
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--input", "in_dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="Folder of degraded images.")  # fmt: skip
@click.option("--out", "out_dir", type=click.Path(), required=True)
@click.option(
    "--tile", type=int, default=0, show_default=True, help="Tile size in input px (0: off)."
)
@click.option("--overlap", type=int, default=16, show_default=True)
@click.option("--device", default="cpu", show_default=True)
def run(checkpoint, in_dir, out_dir, tile, overlap, device) -> None:
    """Restore a folder of degraded images with a checkpoint (tiled for large images)."""
    from .inference import run_folder

    with _user_errors():
        paths = run_folder(checkpoint, in_dir, out_dir, device, tile, overlap)
    click.echo(f"wrote {len(paths)} images to {out_dir}")


@cli.command()
@_checkpoints_option("[LABEL=]PATH, repeatable (one per loss).")
@click.option("--dataset", "datasets", multiple=True, required=True, help="NAME=DIR, repeatable.")
@click.option("--out", "out_csv", type=click.Path(), required=True, help="CSV file to write.")
@click.option("--no-lpips", is_flag=True, help="Skip LPIPS.")
@_test_set_options
def evaluate(checkpoints, datasets, out_csv, no_lpips, seed, sets, limit, tile, device) -> None:
    """Per-image PSNR, SSIM, LPIPS for each (model, loss, data set) into one tidy CSV."""
    from .evaluate import evaluate as run_eval

    with _user_errors():
        df = run_eval(_labelled(checkpoints, "--checkpoint"), _labelled(datasets, "--dataset"),
                      out_csv, seed=seed, device=device, tile=tile,
                      overrides=_pairs(sets, "--set"), lpips=not no_lpips, limit=limit)  # fmt: skip
    summary = df.groupby(["label", "dataset"])[["psnr", "ssim", "lpips"]].mean()
    click.echo(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    click.echo(f"wrote {len(df)} rows to {out_csv}")


@cli.command()
@click.option("--task", type=_TASK, required=True, help="sr | denoise | jpeg.")
@click.option("--images", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--out", "out_dir", type=click.Path(), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--scale", type=int, default=4, show_default=True)
@click.option("--sigma", type=float, default=25.0, show_default=True, help="Noise std (0..255).")
@click.option("--quality", type=int, default=10, show_default=True, help="JPEG quality.")
@click.option("--channels", type=click.Choice(["1", "3"]), default="3", show_default=True)
def degrade(task, images, out_dir, seed, scale, sigma, quality, channels) -> None:
    """Degrade test images once with a fixed seed and save them (every model sees the same inputs)."""
    from .degrade import Degradation
    from .image_io import degrade_folder, list_images

    with _user_errors():
        deg = Degradation(task=task, scale=scale, sigma=sigma, quality=quality)
        paths = list_images(images, "auto", "test")
        degrade_folder(paths, out_dir, deg, seed, int(channels))
    click.echo(f"degraded {len(paths)} images into {out_dir}")


@cli.command()
@_checkpoints_option("CONDITION=PATH, repeatable (one per loss).")
@click.option("--images", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--out", "out_dir", type=click.Path(), required=True)
@click.option("--crop", type=int, default=256, show_default=True, help="Square crop (0: whole).")
@click.option("--task-name", default=None, help="Manifest task (default: the models' task).")
@_test_set_options
def triplets(
    checkpoints, images, out_dir, crop, task_name, seed, sets, limit, tile, device
) -> None:
    """Export reference/degraded/output crops for each loss plus manifest.json for the study."""
    from .triplets import export_triplets, load_manifest

    with _user_errors():
        path = export_triplets(_labelled(checkpoints, "--checkpoint"), images, out_dir,
                               crop or None, seed, device, tile, limit, _pairs(sets, "--set"),
                               task_name)  # fmt: skip
        m = load_manifest(path)
    click.echo(f"wrote {path}: {len(m['images'])} images x {len(m['conditions'])} conditions")


@cli.command()
def models() -> None:
    """List the networks and their parameter counts at default settings."""
    from .models import MODELS, build_model, count_parameters

    for name in MODELS:
        opts = {"channels": 3} if name == "dncnn" else {}
        click.echo(f"{name:14s} {count_parameters(build_model(name, **opts)):>12,d} parameters")
