"""``mdf demo``: the whole study pipeline on bundled images, CPU only, offline.

1. MDF weights for denoising: the shipped ones (``metrics/weights/mdf_denoise.pt``), or a tiny
   Phase-1 training when they are absent or ``--train-mdf`` is given.
2. A small DnCNN (the ``tiny`` preset of :mod:`restore`) trained with four losses: L2,
   MS-SSIM+L1, PDL on a *randomly initialised* VGG trunk (ImageNet weights cannot be downloaded
   here; marked "pdl_randvgg") and MDF.
3. Per-image PSNR/SSIM on held-out images; the study triplets (manifest.json).
4. The real study app (gunicorn on 127.0.0.1) with simulated participants over HTTP, some of them
   careless; the export of the comparisons that passed their attention checks.
   The bots do not look at the images: their preferences follow a made-up mapping of each loss's
   measured mean PSNR (1 JND per 0.5 dB), so the demo checks the plumbing, not the paper's claim.
5. JND per loss with bootstrap CIs, ranking triangles, outlier observers; what the scaling warned
   about (disconnected design, unanimous pairs, resamples that warned) is printed on stderr,
   drawn under figure 5 and written into the report.
6. Loss-as-metric SROCC on a TID2013-layout set built from bundled images with synthetic
   "subjective" scores (a made-up observer; again a plumbing check).
7. ``report.md`` (:mod:`experiments.report`) with every figure and table, and the CSVs behind
   them (written by :mod:`experiments.figures`).

The command is ``mdf demo`` (:mod:`experiments.commands`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click
import pandas as pd

LOSSES = {  # condition id -> (metrics name, options)
    "l2": ("l2", {}),
    "ms_ssim_l1": ("ms_ssim_l1", {}),
    "pdl_randvgg": ("pdl", {"pretrained": False}),
    "mdf": ("mdf", {}),
}
TEST_IMAGES = ("cat", "colorwheel", "camera", "coffee", "chelsea", "rocket")
PER_PAIR = 6  # comparisons of each pair on each image
SHIPPED = Path(__file__).resolve().parents[1] / "metrics" / "weights" / "mdf_denoise.pt"


class _Steps:
    def __init__(self, total: int):
        self.total, self.k, self.t0 = total, 0, time.time()

    def __call__(self, text: str) -> None:
        self.k += 1
        click.echo(f"\n[{self.k}/{self.total}] {text}   (elapsed {time.time() - self.t0:.0f} s)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    t_end = time.time() + timeout
    while time.time() < t_end:
        if proc.poll() is not None:
            raise RuntimeError(f"the study server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the study server did not answer {url} within {timeout:.0f} s")


def _mdf_weights(out: Path, train: bool, quick: bool) -> tuple[Path, str]:
    if SHIPPED.is_file() and not train:
        return SHIPPED, f"shipped ({SHIPPED.name})"
    from metrics.singan import preset, train_mdf

    cfg = preset("tiny", task="denoise", iterations=20 if quick else 60, max_size=40, nfc=16,
                 max_channels=16)
    path = train_mdf("astronaut", cfg, out / "mdf_denoise_tiny.pt", progress=True)
    return path, "trained now with the tiny preset (not a useful loss; for the pipeline only)"


def run_demo(out: Path, quick: bool = False, train_mdf: bool = False, participants=None,
             seed: int = 0) -> Path:
    """Run the demo into ``out`` and return the report path (see the module docstring).

    The warnings of the scaling (figure 5), of the outlier analysis and of the correlations
    (figure 9) are printed on stderr as they come and written into the report.
    """
    import torch

    from experiments.figures import (
        jnd_outputs,
        objective_outputs,
        perception_distortion_outputs,
        srocc_outputs,
    )
    from experiments.report import demo_report
    from experiments.tid_like import make_tid_like
    from restore import evaluate, export_triplets, tiny_preset, train, write_bundled_images
    from scaling import outlier_table, read_table
    from scaling.caveats import print_warnings, record_warnings
    from scaling.contracts.atomic import write_csv, write_text

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    out.mkdir(parents=True, exist_ok=True)
    step = _Steps(7)
    notes: list[str] = []

    step("MDF weights (denoising)")
    weights, how = _mdf_weights(out, train_mdf, quick)
    from metrics.mdf import load_discriminators

    n_scales = min(8, len(load_discriminators(weights)[0]))
    notes.append(f"MDF weights: {how}.")

    step(f"training DnCNN (tiny preset) with {len(LOSSES)} losses")
    train_dir = out / "images" / "train"
    test_dir = out / "images" / "test"
    write_bundled_images(train_dir)
    write_bundled_images(test_dir, TEST_IMAGES if not quick else TEST_IMAGES[:3])
    ckpts = {}
    for cond, (name, opts) in LOSSES.items():
        opts = dict(opts)
        if name == "mdf":
            opts.update(weights=str(weights), num_scales=n_scales)
        cfg = tiny_preset("denoise", data=str(train_dir), val_data=str(test_dir),
                          out_dir=str(out / "runs" / cond), loss=name, loss_options=opts,
                          epochs=1 if quick else 3, seed=seed, progress=True)
        click.echo(f"  {cond}: {name} {opts or ''}")
        train(cfg)
        ckpts[cond] = out / "runs" / cond / "best.pt"

    step("objective evaluation and study triplets")
    ev = evaluate({c: str(p) for c, p in ckpts.items()}, {"bundled": str(test_dir)},
                  out / "evaluation.csv", seed=seed, lpips=False, progress=True)
    ev["loss"] = ev["label"] if "label" in ev.columns else ev["loss"]
    manifest = export_triplets({c: str(p) for c, p in ckpts.items()}, test_dir, out / "triplets",
                               crop=128, seed=seed, progress=True)
    summ = objective_outputs(ev, "psnr", "mdf", out, n_boot=500 if quick else 2000)

    step("crowd study: the real app on loopback with simulated participants")
    comparisons = _run_study(out, manifest, ev, participants, seed, notes)

    step("JND scaling with bootstrap CIs and outlier observers")
    jnd = jnd_outputs(comparisons, "image", 200 if quick else 500, out, seed=seed,
                      title="JND per loss (simulated study)")
    print_warnings(jnd.warnings, "figure 5")
    with record_warnings() as outlier_warnings:
        outl = outlier_table(read_table(comparisons, group="image"))
    print_warnings(outlier_warnings, "outlier analysis")
    write_csv(outl, out / "outliers.csv")
    perception_distortion_outputs(ev, jnd.table, out)

    step("loss as a quality metric: SROCC on a TID2013-layout set")
    from metrics.iqa import correlations, load_tid2013, score_dataset

    tid = load_tid2013(make_tid_like(out / "tid_like"))
    metric_names = ["l2", "ms_ssim_l1", "pdl", "mdf"]
    scores = score_dataset(tid, metric_names, out / "tid_scores.csv",
                           metric_options={"pdl": {"pretrained": False},
                                           "mdf": {"weights": str(weights),
                                                   "num_scales": n_scales}},
                           progress=True)
    corr = correlations(scores, tid, n_boot=300)
    corr["metric"] = corr["metric"].replace({"pdl": "pdl_randvgg"})
    write_csv(corr, out / "srocc.csv")
    stats = srocc_outputs(corr, jnd.table, out)
    print_warnings(stats.get("warnings", ()), "figure 9")

    step("report (with the loss-cost table, paper table 1)")
    from metrics.bench import markdown_table, run_benchmark

    size = 96 if quick else 192
    rows = run_benchmark(["l2", "l1", "ms_ssim_l1", "vgg", "lpips", "pdl", "mdf"], batch=2,
                         size=size, repeats=1 if quick else 3, threads=None,
                         mdf_weights=str(weights))
    cost = markdown_table(rows)
    write_text(out / "loss_cost.md", cost + "\n")
    report = out / "report.md"
    write_text(report, demo_report(summ, jnd, outl, corr, stats, notes, cost, size,
                                   outlier_warnings))
    return report


def _run_study(out: Path, manifest: Path, ev: pd.DataFrame, participants, seed: int,
               notes: list[str]) -> Path:
    from study.db import make_engine
    from study.experiment import load_experiment
    from study.export import export_rows, write_csv
    from study.simulate import simulate

    mean_psnr = ev.groupby("loss")["psnr"].mean()
    bot_jod = ((mean_psnr - mean_psnr.median()) / 0.5).clip(-2, 2).round(3).to_dict()
    notes.append("Simulated participants prefer losses by a made-up mapping of mean PSNR "
                 f"(1 JND per 0.5 dB from the median, clipped to +-2 JND): {json.dumps(bot_jod)}.")
    inst = out / "study_instance"
    port = _free_port()
    # the demo's own study only: no MDF_STUDY_* settings of the caller's shell (a DATABASE there
    # would send the demo's answers to the caller's study)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDF_STUDY_")}
    env.update(MDF_STUDY_SECRET_KEY=os.urandom(24).hex(), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "experiments.cli", "study", "serve", "--manifest", str(manifest),
           "--instance", str(inst), "--port", str(port), "--workers", "1",
           "--per-pair", str(PER_PAIR), "--seed", str(seed)]
    with open(out / "study_server.log", "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            _wait_http(f"http://127.0.0.1:{port}/healthz", proc)
            exp = load_experiment(str(manifest))
            if participants is None:  # one participant per HIT of the full design
                n_pairs = len(exp.conditions) * (len(exp.conditions) - 1) // 2
                participants = -(-len(exp.images) * n_pairs * PER_PAIR // 9)
            results = simulate(f"http://127.0.0.1:{port}", participants, bot_jod, 0.1, exp,
                               concurrency=4, seed=seed, progress=True)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    errors = [e for r in results for e in r.errors]
    notes.append(f"{sum(r.completed for r in results)}/{participants} simulated participants "
                 f"completed a HIT; {sum(r.answers for r in results)} answers; "
                 f"{len(errors)} errors.")
    engine = make_engine(f"sqlite:///{inst / 'study.sqlite3'}")
    all_rows = export_rows(engine)
    passed = export_rows(engine, passed_only=True)
    write_csv(all_rows, out / "comparisons_all.csv")
    path = write_csv(passed, out / "comparisons.csv")
    notes.append(f"Comparisons: {len(all_rows)} stored, {len(passed)} from HITs whose attention "
                 "checks all passed (used for scaling).")
    engine.dispose()
    return Path(path)
