"""``mdf experiments paper --config paper.toml``: the paper's full protocol on real data sets.

Stages, each skipped when its outputs exist (so an interrupted run continues where it stopped;
a training run continues from its ``last.pt``):

1. ``train``: every (task, model, loss) with ``restore`` (preset ``paper``, or ``tiny`` to test);
2. ``evaluate``: per-image PSNR/SSIM(/LPIPS) of every checkpoint on every test set;
3. ``triplets``: the study's image triplets per (task, model);
4. ``jnd``: scaling of each study export named in the config (the study itself needs people);
5. ``figures``: figures 4 and 6 per (task, model), figure 5 per study;
6. ``tid``: every loss as a metric on TID2013 (resumable scoring), SROCC with CIs, figure 9.

Config (TOML)::

    out = "paper_out"               # everything goes here
    preset = "paper"                # restore preset: paper (GPU) | tiny (a smoke test)
    device = "cuda"
    losses = ["l2", "l1", "ssim", "ms_ssim", "ms_ssim_l1", "vgg", "lpips", "pdl", "mdf"]
    reference = "mdf"               # loss tested against the others (figure 4)
    [loss_options.vgg]              # per-loss options (paper: VGG + 1 x L2, LPIPS + 0.1 x L2)
    l2_weight = 1.0
    [train_overrides]               # optional TrainConfig fields for every run, e.g. epochs = 500
    [tasks.sr]
    models = ["edsr", "srresnet"]
    train = "/data/DIV2K"           # training images (a DIV2K/BSD500/DPED root or a flat folder)
    val = ""                        # validation images ('' = the training root's valid split)
    test = { div2k = "/data/DIV2K_valid_HR", bsd = "/data/BSDS500/test" }
    study_images = "/data/BSDS500/test"
    study_limit = 50
    comparisons = { edsr = "study/sr_edsr.csv" }   # `mdf study export` results, when collected
    [tid2013]
    path = "/data/TID2013"
    metrics = ["l2", "ssim", "ms_ssim", "mdf"]

Task names are those of :mod:`scaling.contracts.tasks` (``sisr`` is accepted for ``sr``). MDF
gets ``task=`` from the restoration task (sr -> sisr) unless ``loss_options.mdf.weights`` is
given. Warnings of the scaling (stage ``jnd``) and of the correlations (stage ``tid``) are printed
on stderr and drawn under figures 5 and 9. The command is ``mdf experiments paper``
(:mod:`experiments.commands`).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from scaling.caveats import print_warnings
from scaling.contracts.tasks import canonical_task, mdf_task

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def load_config(path) -> dict:
    """Read and check a paper.toml; raises ValueError naming the problem."""
    path = Path(path)
    try:
        cfg = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read config {path}: {exc}") from None
    if not cfg.get("tasks"):
        raise ValueError(f"{path}: no [tasks.<sr|denoise|jpeg>] section")
    tasks = {}
    for name, t in cfg["tasks"].items():
        try:
            task = canonical_task(name)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        if task in tasks:
            raise ValueError(f"{path}: task {task!r} is configured twice ([tasks.{name}])")
        tasks[task] = t
        for key in ("models", "train", "test"):
            if key not in t:
                raise ValueError(f"{path}: [tasks.{name}] lacks {key!r}")
        if not isinstance(t["test"], dict) or not t["test"]:
            raise ValueError(f"{path}: [tasks.{name}] test must map data set names to folders")
    cfg["tasks"] = tasks
    losses = cfg.setdefault("losses", ["l2", "l1", "ssim", "ms_ssim", "ms_ssim_l1", "vgg",
                                       "lpips", "pdl", "mdf"])
    if not losses:
        raise ValueError(f"{path}: losses is empty")
    cfg.setdefault("out", "paper_out")
    cfg.setdefault("preset", "paper")
    cfg.setdefault("device", "auto")
    cfg.setdefault("reference", "mdf")
    cfg.setdefault("loss_options", {})
    cfg.setdefault("train_overrides", {})
    base = path.resolve().parent

    def rel(p):  # paths in the config are relative to the config file
        return p if not p or os.path.isabs(p) else str((base / p).resolve())

    cfg["out"] = rel(cfg["out"])
    for t in cfg["tasks"].values():
        for key in ("train", "val", "study_images"):
            if key in t:
                t[key] = rel(t[key])
        t["test"] = {name: rel(folder) for name, folder in t["test"].items()}
        t["comparisons"] = {m: rel(c) for m, c in (t.get("comparisons") or {}).items()}
    if cfg.get("tid2013"):
        cfg["tid2013"]["path"] = rel(cfg["tid2013"]["path"])
    return cfg


def _loss_options(cfg: dict, task: str, loss: str) -> dict:
    opts = dict(cfg["loss_options"].get(loss, {}))
    if loss == "mdf" and "weights" not in opts:
        opts["task"] = mdf_task(task)
    return opts


def _echo(msg: str) -> None:
    click.echo(msg)


def run_paper(config_path, stages=None, progress: bool = True) -> Path:
    """Run (or continue) the protocol of a paper.toml; returns the output folder."""
    import pandas as pd

    from restore import evaluate, export_triplets, preset, train

    cfg = load_config(config_path)
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    stages = set(stages or ("train", "evaluate", "triplets", "jnd", "figures", "tid"))
    runs: dict[tuple[str, str], dict[str, Path]] = {}

    for task, t in cfg["tasks"].items():
        for model in t["models"]:
            ck = {}
            for loss in cfg["losses"]:
                run_dir = out / "runs" / task / model / loss
                ck[loss] = run_dir / "best.pt"
                if "train" not in stages or (run_dir / "DONE").is_file():
                    continue
                _echo(f"train {task}/{model}/{loss} -> {run_dir}")
                tcfg = preset(cfg["preset"], task, model, data=t["train"], val_data=t.get("val", ""),
                              loss=loss, loss_options=_loss_options(cfg, task, loss),
                              out_dir=str(run_dir), resume=(run_dir / "last.pt").is_file(),
                              device=cfg["device"], progress=progress, **cfg["train_overrides"])
                train(tcfg)
                (run_dir / "DONE").write_text("finished\n")
            runs[(task, model)] = ck

    for (task, model), ck in runs.items():
        t = cfg["tasks"][task]
        tag = f"{task}_{model}"
        ev_csv = out / "results" / f"{tag}.csv"
        if "evaluate" in stages and not ev_csv.is_file():
            _echo(f"evaluate {tag} -> {ev_csv}")
            evaluate({k: str(v) for k, v in ck.items()}, t["test"], ev_csv,
                     device="cpu" if cfg["device"] == "auto" else cfg["device"], progress=progress)
        trip = out / "triplets" / tag / "manifest.json"
        if "triplets" in stages and t.get("study_images") and not trip.is_file():
            _echo(f"triplets {tag} -> {trip}")
            export_triplets({k: str(v) for k, v in ck.items()}, t["study_images"], trip.parent,
                            limit=t.get("study_limit"), progress=progress)
        comp = (t.get("comparisons") or {}).get(model)
        jnd_csv = out / "figures" / tag / "jnd.csv"
        if "jnd" in stages and comp and not jnd_csv.is_file():
            _echo(f"jnd {tag} <- {comp}")
            from experiments.figures import jnd_outputs

            print_warnings(jnd_outputs(Path(comp), "image", 500, jnd_csv.parent).warnings, tag)
        if "figures" in stages and ev_csv.is_file():
            _figures(pd.read_csv(ev_csv), cfg["reference"], jnd_csv, out / "figures" / tag)

    if "tid" in stages and cfg.get("tid2013"):
        _tid(cfg, out, [out / "figures" / f"{t}_{m}" / "jnd.csv" for t, m in runs], progress)
    return out


def _figures(ev, reference: str, jnd_csv: Path, folder: Path) -> None:
    import pandas as pd

    from experiments.figures import FIG4, FIG6, objective_outputs, perception_distortion_outputs

    ev = ev.assign(loss=ev["label"]) if "label" in ev.columns else ev
    for metric in ("psnr", "ssim", "lpips"):
        target = folder / FIG4.format(metric=metric)
        if target.is_file() or metric not in ev.columns or ev[metric].isna().all():
            continue
        objective_outputs(ev.dropna(subset=[metric]), metric, reference, folder)
    if jnd_csv.is_file() and not (folder / FIG6).is_file():
        perception_distortion_outputs(ev, pd.read_csv(jnd_csv), folder)


def _tid(cfg: dict, out: Path, jnd_files, progress: bool) -> None:
    import pandas as pd

    from experiments.figures import FIG9, srocc_outputs
    from metrics.iqa import correlations, load_tid2013, score_dataset
    from scaling.contracts.atomic import write_csv

    tcfg = cfg["tid2013"]
    folder = out / "tid2013"
    corr_csv = folder / "correlations.csv"
    if not corr_csv.is_file():
        data = load_tid2013(tcfg["path"])
        names = tcfg.get("metrics", cfg["losses"])
        opts = {n: {k: v for k, v in cfg["loss_options"].get(n, {}).items()} for n in names}
        if "mdf" in names and "weights" not in opts.get("mdf", {}):
            opts["mdf"]["task"] = mdf_task(tcfg.get("mdf_task", "sr"))
        _echo(f"tid2013: scoring {len(data)} images with {names}")
        scores = score_dataset(data, names, folder / "scores.csv", metric_options=opts,
                               device="cpu" if cfg["device"] == "auto" else cfg["device"],
                               progress=progress)
        write_csv(correlations(scores, data), corr_csv)
    corr = pd.read_csv(corr_csv)
    for jnd_csv in jnd_files:
        if jnd_csv.is_file() and not (jnd_csv.parent / FIG9).is_file():
            stats = srocc_outputs(corr, pd.read_csv(jnd_csv), jnd_csv.parent)
            print_warnings(stats.get("warnings", ()), f"figure 9 of {jnd_csv.parent.name}")
