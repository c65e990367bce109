"""MDF Phase 1: train task-specific multi-scale discriminators on one seed image (SinGAN-style).

Mustafa et al. (WACV 2022, section 3.1) train a pyramid of generators G_k and discriminators D_k
coarse to fine on a single seed image, as SinGAN (Shaham, Dekel, Michaeli, ICCV 2019) does, except
that at scale k the generator refines the upsampled output of scale k-1 *after a task distortion*
z_k: Gaussian noise (denoising), JPEG compression (artefact removal) or nothing (super-resolution,
where upsampling is the distortion). The discriminators so learn to spot what the generator fails
to undo: the task's artefacts. Phase 2 (:mod:`metrics.mdf`) uses them, frozen, as a feature loss.

Per scale: WGAN-GP (gradient-penalty weight 0.1) + alpha * MSE reconstruction (alpha = 100 per the
paper), Adam 5e-4 with betas (0.5, 0.999) for G and D, the learning rate x0.1 at 80% of the
iterations, 3 D-steps then 3 G-steps per iteration, warm start from the previous scale when the
channel count is unchanged. Every setting is a field of :class:`SinGANConfig`.

The images live in [-1, 1] during training (SinGAN), like the authors' discriminators. This
module holds the training loop; the pieces live in :mod:`metrics.singan_config` (settings,
presets), :mod:`metrics.distortions`, :mod:`metrics.pyramid`, :mod:`metrics.generator` and
:mod:`metrics.singan_state` (the checkpoint), and are re-exported here.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from metrics.discriminator import Discriminator, init_singan_weights, singan_channels
from metrics.distortions import DISTORTIONS, distort_jpeg, distort_noise, distort_none
from metrics.generator import Generator, Scale, generate, upsample
from metrics.mdf_weights import save_discriminators
from metrics.pyramid import build_pyramid, pyramid_sizes
from metrics.seeds import image_sha256, load_seed
from metrics.singan_config import PRESETS, SinGANConfig, preset
from metrics.singan_state import TrainState
from scaling.contracts.atomic import atomic_open
from scaling.contracts.tasks import mdf_task

__all__ = [
    "CODE_VERSION",
    "DISTORTIONS",
    "PRESETS",
    "Generator",
    "SinGANConfig",
    "TrainState",
    "build_pyramid",
    "distort_jpeg",
    "distort_noise",
    "distort_none",
    "preset",
    "pyramid_sizes",
    "train_mdf",
]

logger = logging.getLogger(__name__)

CODE_VERSION = "mdf-toolkit singan 1"
#: Columns of ``<workdir>/log.csv`` (one row every 10 iterations and at the last one).
LOG_COLUMNS = ("scale", "iteration", "d_loss", "g_adv", "rec_mse", "gp", "seconds")

#: ``on_scale_end(scale, state) -> bool``: called after every finished (and checkpointed) scale
#: with its index and the :class:`TrainState`; returning True stops the run there.
ScaleCallback = Callable[[int, TrainState], bool]


def train_mdf(
    seed_image: str | np.ndarray,
    cfg: SinGANConfig,
    out: str | os.PathLike,
    workdir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    *,
    on_scale_end: ScaleCallback | None = None,
) -> Path:
    """Train MDF discriminators on one seed image and write them in the project's weight format.

    Args:
        seed_image: an image path, a bundled/synthetic seed name (see :mod:`metrics.seeds`) or an
            H x W x 3 array in [0, 1].
        cfg: the settings (see :func:`preset`).
        out: the weight file to write (``metrics.create("mdf", weights=out)`` reads it).
        workdir: folder for the per-scale checkpoint (``state.pt``), the CSV log of losses
            (``log.csv``) and the sample pictures (``samples_scale<k>.png``). Default:
            ``<out without suffix>_work``.
        resume: continue from the checkpoint in ``workdir`` (settings must match).
        progress: show a progress bar per scale with the current losses.
        on_scale_end: ``callback(scale, state) -> bool``, called once a scale is finished and
            its checkpoint written (e.g. to report progress); True stops the run there, as an
            interruption would (after the last scale the weights are written regardless).

    Returns:
        The path of the weight file (or of the checkpoint when stopped early).

    Every scale's random numbers derive from ``(cfg.seed, scale)``, so a resumed run ends with the
    same weights as an uninterrupted one.
    """
    out = Path(out)
    workdir = Path(workdir) if workdir is not None else out.with_name(out.stem + "_work")
    workdir.mkdir(parents=True, exist_ok=True)
    state_path, log_path = workdir / "state.pt", workdir / "log.csv"
    img, seed_desc = _seed_array(seed_image)
    reals = build_pyramid(img, cfg)
    sizes = [tuple(r.shape[-2:]) for r in reals]
    reals = [r.to(torch.device(cfg.device)) for r in reals]
    meta = _initial_meta(cfg, img, seed_desc, sizes)
    state = _resumed(state_path, cfg, meta, len(sizes)) if resume else TrainState(cfg, meta)
    if not resume:
        log_path.unlink(missing_ok=True)
    new_log = not log_path.exists()
    with open(log_path, "a", newline="") as fh:
        writer = csv.writer(fh)
        if new_log:
            writer.writerow(LOG_COLUMNS)
        for k in range(len(state.scales), len(sizes)):
            t0 = time.time()
            run = _ScaleRun.start(k, state.scales, reals, sizes, cfg)
            state.scales.append(_train_scale(run, writer, progress, workdir))
            state.meta["seconds_per_scale"].append(round(time.time() - t0, 2))
            fh.flush()
            state.save(state_path)
            stop = on_scale_end is not None and on_scale_end(k, state)
            if stop and k < len(sizes) - 1:
                return state_path
    state.meta["seconds_total"] = round(sum(state.meta["seconds_per_scale"]), 2)
    save_discriminators(out, [s.D.cpu().eval() for s in state.scales], state.meta)
    return out


# --------------------------------------------------------------------------- set-up
def _seed_array(seed_image: str | np.ndarray) -> tuple[np.ndarray, str]:
    if not isinstance(seed_image, np.ndarray):
        return load_seed(str(seed_image))
    img = seed_image.astype(np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"seed_image array must be H x W x 3, got {img.shape}")
    return img, "array"


def _initial_meta(cfg: SinGANConfig, img: np.ndarray, seed_desc: str, sizes) -> dict:
    """The weight file's metadata, as far as it is known before training."""
    try:
        task = mdf_task(cfg.task)
    except ValueError:  # a distortion plugged into DISTORTIONS, not a restoration task
        task = None
    return {
        "task": task,
        "distortion": cfg.task,
        "seed_image": seed_desc,
        "seed_image_sha256": image_sha256(img),
        "pyramid": [list(s) for s in sizes],
        "iterations_per_scale": cfg.iterations,
        "code_version": CODE_VERSION,
        "config": asdict(cfg),
        "seconds_per_scale": [],
    }


def _resumed(state_path: Path, cfg: SinGANConfig, meta: dict, n_scales: int) -> TrainState:
    if not state_path.is_file():
        raise ValueError(f"--resume: no checkpoint at {state_path}")
    state = TrainState.load(state_path, cfg)
    if state.meta.get("seed_image_sha256") != meta["seed_image_sha256"]:
        raise ValueError(f"cannot resume {state_path}: it was trained on another seed image")
    logger.info("resuming after scale %d of %d", len(state.scales) - 1, n_scales)
    return state


# --------------------------------------------------------------------------- one scale
@dataclass
class _ScaleRun:
    """Scale ``k`` in training: the seed at this scale, the finished coarser scales and the
    random sources, all derived from ``(cfg.seed, k)``."""

    k: int
    cfg: SinGANConfig
    scales: list[Scale]
    sizes: list
    real: torch.Tensor
    gen: torch.Generator
    rng: np.random.Generator

    @classmethod
    def start(cls, k, scales, reals, sizes, cfg: SinGANConfig) -> _ScaleRun:
        torch.manual_seed(cfg.seed * 1000 + k)
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + k)
        return cls(k, cfg, scales, sizes, reals[k], gen, np.random.default_rng([cfg.seed, k]))

    @property
    def device(self) -> torch.device:
        return torch.device(self.cfg.device)

    def noise(self, hw) -> torch.Tensor:
        """Standard normal noise of size ``hw`` from this scale's generator, on the device."""
        return torch.randn(1, 3, *hw, generator=self.gen).to(self.device)

    def coarser(self, reconstruct: bool) -> torch.Tensor:
        """A sample (or the reconstruction) of the finished scales, upsampled to this scale."""
        x = generate(self.scales, self.sizes, self.cfg, self.rng, reconstruct, self.gen)
        return upsample(x, self.sizes[self.k])


def _train_scale(run: _ScaleRun, writer, progress: bool, workdir: Path) -> Scale:
    """Train G_k and D_k adversarially (the coarser scales frozen), log, save samples."""
    G, D = _new_networks(run)
    _freeze(*(s.G for s in run.scales))
    z_opt, noise_amp = _reconstruction_noise(run)
    steps = _AdversarialSteps(G, D, run)
    bar = _progress_bar(run) if progress else None
    t_start = time.time()
    for it in range(run.cfg.iterations):
        d_loss, g_adv, rec, gp = steps.iteration(*_fake_inputs(run, z_opt, noise_amp))
        if it % 10 == 0 or it == run.cfg.iterations - 1:
            losses = f"{d_loss.item():.5f}", f"{g_adv.item():.5f}", f"{rec.item():.6f}"
            writer.writerow(
                [run.k, it, *losses, f"{gp.item():.5f}", f"{time.time() - t_start:.2f}"]
            )
        if bar is not None:
            bar.set_postfix(
                d=f"{d_loss.item():.3f}", g=f"{g_adv.item():.3f}", rec=f"{rec.item():.4f}"
            )
            bar.update(1)
    if bar is not None:
        bar.close()
    _freeze(G, D)
    done = Scale(G, D, noise_amp, z_opt)
    _save_samples(workdir / f"samples_scale{run.k}.png", run, done)
    return done


def _new_networks(run: _ScaleRun) -> tuple[Generator, Discriminator]:
    """G_k and D_k: SinGAN-initialised, or the previous scale's weights when the channel count
    is unchanged (``warm_start``)."""
    cfg = run.cfg
    ch = singan_channels(run.k, cfg.nfc, cfg.max_channels)
    # built and initialised on the CPU (``gen`` is a CPU generator), then moved: the same
    # initial weights on every device
    G, D = Generator(ch, cfg.num_layers), Discriminator(ch, num_layers=cfg.num_layers)
    init_singan_weights(G, generator=run.gen)
    init_singan_weights(D, generator=run.gen)
    G, D = G.to(run.device), D.to(run.device)
    if cfg.warm_start and run.scales and run.scales[-1].D.channels == ch:
        G.load_state_dict(run.scales[-1].G.state_dict())
        D.load_state_dict(run.scales[-1].D.state_dict())
    return G, D


def _freeze(*modules: torch.nn.Module) -> None:
    for m in modules:
        m.eval()
        m.requires_grad_(False)


def _reconstruction_noise(run: _ScaleRun) -> tuple[torch.Tensor, float]:
    """The fixed noise of the reconstruction path (random at the coarsest scale, zero above)
    and the amplitude of the input noise (SinGAN: ``noise_amp_init`` x the RMSE of the
    upsampled reconstruction against the seed; 1 at the coarsest scale)."""
    if run.k == 0:
        return run.noise(run.sizes[0]), 1.0
    z_opt = torch.zeros(1, 3, *run.sizes[run.k], device=run.device)
    with torch.no_grad():
        base_rec = run.coarser(reconstruct=True)
    return z_opt, run.cfg.noise_amp_init * float(torch.sqrt(F.mse_loss(base_rec, run.real)))


def _fake_inputs(run: _ScaleRun, z_opt: torch.Tensor, noise_amp: float):
    """(noise, base) of a random sample and of the reconstruction at this scale."""
    if run.k == 0:
        zeros = torch.zeros(1, 3, *run.sizes[0], device=run.device)
        return run.noise(run.sizes[0]) * noise_amp, zeros, z_opt * noise_amp, zeros
    distort = DISTORTIONS[run.cfg.task]
    with torch.no_grad():
        base = distort(run.coarser(reconstruct=False), run.rng)
        base_rec = distort(run.coarser(reconstruct=True), run.rng)
    return torch.zeros_like(base), base, torch.zeros_like(base_rec), base_rec


class _AdversarialSteps:
    """One iteration of WGAN-GP: ``d_steps`` critic steps, then ``g_steps`` generator steps
    (adversarial term + alpha x reconstruction MSE); Adam, learning rate x0.1 at
    ``lr_decay_at`` of the iterations."""

    def __init__(self, G: Generator, D: Discriminator, run: _ScaleRun):
        cfg = run.cfg
        self.G, self.D, self.run, self.cfg = G, D, run, cfg
        betas = (cfg.beta1, cfg.beta2)
        self.opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=betas)
        self.opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=betas)
        milestone = [max(1, int(cfg.lr_decay_at * cfg.iterations))]
        self.schedulers = [
            torch.optim.lr_scheduler.MultiStepLR(opt, milestone, gamma=0.1)
            for opt in (self.opt_d, self.opt_g)
        ]

    def iteration(self, noise, base, noise_rec, base_rec) -> tuple[torch.Tensor, ...]:
        """Run one iteration; returns the last steps' (critic loss, generator adversarial term,
        reconstruction MSE, gradient penalty) as 0-d tensors."""
        G, D, real, cfg = self.G, self.D, self.run.real, self.cfg
        for _ in range(cfg.d_steps):
            self.opt_d.zero_grad(set_to_none=True)
            fake = G(noise, base).detach()
            gp = _gradient_penalty(D, real, fake, self.run.gen)
            d_loss = -D(real).mean() + D(fake).mean() + cfg.gp_weight * gp
            d_loss.backward()
            self.opt_d.step()
        for _ in range(cfg.g_steps):
            self.opt_g.zero_grad(set_to_none=True)
            g_adv = -D(G(noise, base)).mean()
            rec = F.mse_loss(G(noise_rec, base_rec), real)
            (g_adv + cfg.alpha * rec).backward()
            self.opt_g.step()
        for s in self.schedulers:
            s.step()
        return d_loss.detach(), g_adv.detach(), rec.detach(), gp.detach()


def _gradient_penalty(D: torch.nn.Module, real, fake, gen: torch.Generator) -> torch.Tensor:
    """WGAN-GP: ``(|grad D(mix)|_2 - 1)^2`` at a random mix of the real and the fake image."""
    a = torch.rand(1, 1, 1, 1, generator=gen).to(real.device)
    mix = (a * real + (1 - a) * fake).requires_grad_(True)
    out = D(mix)
    (grad,) = torch.autograd.grad(out.sum(), mix, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def _progress_bar(run: _ScaleRun):
    from tqdm.auto import tqdm

    h, w = run.sizes[run.k]
    desc = f"scale {run.k + 1}/{len(run.sizes)} {h}x{w}"
    return tqdm(total=run.cfg.iterations, desc=desc, unit="it", leave=True)


def _save_samples(path: Path, run: _ScaleRun, done: Scale) -> None:
    """A PNG strip, written atomically: seed at this scale | reconstruction | 3 random samples."""
    from PIL import Image

    scales = run.scales + [done]
    with torch.no_grad():
        rec = generate(scales, run.sizes, run.cfg, run.rng, True, run.gen)
        samples = [generate(scales, run.sizes, run.cfg, run.rng, False, run.gen) for _ in range(3)]
    tiles = [run.real, rec] + samples
    arr = torch.cat(
        [((t[0].detach().cpu().clamp(-1, 1) + 1) * 127.5).round() for t in tiles], dim=2
    )
    with atomic_open(path, fsync=False) as f:
        Image.fromarray(arr.permute(1, 2, 0).numpy().astype(np.uint8)).save(f, format="PNG")
