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

The images live in [-1, 1] during training (SinGAN), like the authors' discriminators.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .mdf import Discriminator, init_singan_weights, save_discriminators, singan_channels
from .seeds import image_sha256, load_seed

logger = logging.getLogger(__name__)

CODE_VERSION = "mdf-toolkit singan 1"


# --------------------------------------------------------------------------- task distortions
def distort_none(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """SISR: no distortion; the upsampling from the coarser scale is the degradation."""
    return x


def distort_noise(
    x: torch.Tensor, rng: np.random.Generator, max_sigma: float = 55.0
) -> torch.Tensor:
    """Denoising: additive Gaussian noise with sigma ~ U[0, max_sigma] on the 0..255 scale.

    ``x`` is in [-1, 1], so the standard deviation applied is ``2 * sigma / 255``.
    """
    sigma = rng.uniform(0.0, max_sigma)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    noise = torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
    return x + noise * (2.0 * sigma / 255.0)


def jpeg_roundtrip(x01: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode an H x W x 3 float image in [0, 1] with Pillow's JPEG codec (libjpeg)."""
    from PIL import Image

    img = Image.fromarray(np.clip(np.round(x01 * 255), 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as dec:
        return np.asarray(dec.convert("RGB"), dtype=np.float32) / 255.0


def distort_jpeg(x: torch.Tensor, rng: np.random.Generator, qualities=(7, 10)) -> torch.Tensor:
    """JPEG artefact removal: JPEG-compress each image (real codec) at quality ~ U{7..10}."""
    out = []
    for img in x.detach().cpu():
        q = int(rng.integers(qualities[0], qualities[1] + 1))
        arr = ((img.permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1)
        out.append(torch.from_numpy(jpeg_roundtrip(arr, q)).permute(2, 0, 1) * 2 - 1)
    return torch.stack(out).to(x.device, x.dtype)


#: Task name -> distortion function ``f(x in [-1, 1], numpy Generator) -> distorted x``.
#: New tasks plug in here (e.g. ``DISTORTIONS["blur"] = my_blur``), then ``SinGANConfig(task="blur")``.
DISTORTIONS: dict[str, Callable[[torch.Tensor, np.random.Generator], torch.Tensor]] = {
    "sisr": distort_none,
    "denoise": distort_noise,
    "jpeg": distort_jpeg,
}


# --------------------------------------------------------------------------- configuration
@dataclass
class SinGANConfig:
    """Every knob of Phase 1, with SinGAN's / the paper's defaults."""

    task: str = "denoise"  # a key of DISTORTIONS
    # pyramid: "singan" (factor ~0.75 between min_size and max_size, as the released weights show)
    # or "paper" (num_scales scales, factor 2)
    pyramid: str = "singan"
    scale_factor: float = 0.75  # SinGAN's nominal factor (adjusted to land on min_size)
    min_size: int = 25  # coarsest scale's shorter side (px)
    max_size: int = 250  # the seed is first resized so that its longer side is at most this
    num_scales: int = 8  # for pyramid="paper" only
    resize_filter: str = "lanczos"  # Pillow filter for the seed pyramid: lanczos|bicubic|bilinear
    nfc: int = 32  # channels at the coarsest scale; min(nfc * 2^floor(s/4), max_channels)
    max_channels: int = 128
    num_layers: int = 5  # conv layers in G and D (3x3)
    iterations: int = 3000  # per scale (paper: 3000; SinGAN: 2000)
    d_steps: int = 3
    g_steps: int = 3
    lr_g: float = 5e-4
    lr_d: float = 5e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_decay_at: float = 0.8  # fraction of iterations after which lr is multiplied by 0.1
    gp_weight: float = 0.1  # WGAN-GP gradient-penalty weight
    alpha: float = 100.0  # reconstruction weight (paper; SinGAN uses 10)
    noise_amp_init: float = 0.1  # SinGAN: noise amplitude relative to the reconstruction RMSE
    warm_start: bool = True  # start a scale from the previous one when the channels match
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        if self.task not in DISTORTIONS:
            raise ValueError(f"unknown task {self.task!r}; known: {sorted(DISTORTIONS)}")
        if self.pyramid not in ("singan", "paper"):
            raise ValueError(f"pyramid must be 'singan' or 'paper', got {self.pyramid!r}")
        if self.resize_filter not in ("lanczos", "bicubic", "bilinear"):
            raise ValueError(f"unknown resize_filter {self.resize_filter!r}")
        rf = self.num_layers * 2 + 1
        if self.min_size < rf:
            raise ValueError(f"min_size {self.min_size} is below the receptive field {rf}")
        if self.iterations < 1 or self.d_steps < 1 or self.g_steps < 1:
            raise ValueError("iterations, d_steps and g_steps must be >= 1")
        if not 0 < self.scale_factor < 1:
            raise ValueError(f"scale_factor must be in (0, 1), got {self.scale_factor}")


PRESETS: dict[str, dict] = {
    # the paper's schedule on SinGAN's pyramid: for a GPU
    "paper": dict(iterations=3000, max_size=250, min_size=25, alpha=100.0),
    # a useful loss on a 2-core CPU in well under 30 minutes per task
    # (9 scales between 25 and 80 px, 32 channels throughout)
    "quick": dict(
        iterations=200, max_size=80, min_size=25, scale_factor=0.85, max_channels=32, alpha=100.0
    ),
    # seconds; for tests only
    "tiny": dict(iterations=4, max_size=28, min_size=20, nfc=8, max_channels=8, alpha=100.0),
}


def preset(name: str, **overrides) -> SinGANConfig:
    """A :class:`SinGANConfig` from a named preset ("paper", "quick", "tiny") plus overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return SinGANConfig(**{**PRESETS[name], **overrides})


# --------------------------------------------------------------------------- pyramid
_FILTERS = {"lanczos": "LANCZOS", "bicubic": "BICUBIC", "bilinear": "BILINEAR"}


def _resize(img01: np.ndarray, size_hw: tuple[int, int], filt: str) -> np.ndarray:
    from PIL import Image

    out = []
    for c in range(3):  # float mode keeps full precision
        ch = Image.fromarray(img01[..., c].astype(np.float32), mode="F")
        ch = ch.resize((size_hw[1], size_hw[0]), getattr(Image.Resampling, _FILTERS[filt]))
        out.append(np.asarray(ch))
    return np.clip(np.stack(out, axis=2), 0, 1)


def pyramid_sizes(height: int, width: int, cfg: SinGANConfig) -> list[tuple[int, int]]:
    """(H, W) of every scale, coarsest first.

    "singan": the seed is shrunk so that its longer side is at most ``max_size``; the number of
    scales is ``ceil(log(min_size / short) / log(scale_factor)) + 1`` and the factor is adjusted so
    that the coarsest shorter side is ``min_size`` (SinGAN's rule). "paper": ``num_scales`` scales,
    each half the next.
    """
    s = min(1.0, cfg.max_size / max(height, width))
    H, W = max(1, round(height * s)), max(1, round(width * s))
    short = min(H, W)
    if cfg.pyramid == "paper":
        sizes = [(round(H / 2**k), round(W / 2**k)) for k in range(cfg.num_scales - 1, -1, -1)]
        if min(sizes[0]) < cfg.num_layers * 2 + 1:
            raise ValueError(
                f"the paper pyramid ({cfg.num_scales} scales, factor 2) needs a seed whose shorter "
                f"side is at least {(cfg.num_layers * 2 + 1) * 2 ** (cfg.num_scales - 1)} px after "
                f"max_size; got {short} px"
            )
        return sizes
    if short < cfg.min_size:
        raise ValueError(f"seed image too small: shorter side {short} px < min_size {cfg.min_size}")
    n = (
        math.ceil(math.log(cfg.min_size / short) / math.log(cfg.scale_factor)) + 1
        if short > cfg.min_size
        else 1
    )
    if n == 1:
        return [(H, W)]
    f = (cfg.min_size / short) ** (1 / (n - 1))
    return [(round(H * f ** (n - 1 - k)), round(W * f ** (n - 1 - k))) for k in range(n)]


def build_pyramid(img01: np.ndarray, cfg: SinGANConfig) -> list[torch.Tensor]:
    """The seed at every scale as 1 x 3 x H x W tensors in [-1, 1], coarsest first."""
    sizes = pyramid_sizes(img01.shape[0], img01.shape[1], cfg)
    out = []
    for hw in sizes:
        arr = img01 if hw == img01.shape[:2] else _resize(img01, hw, cfg.resize_filter)
        out.append(torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None] * 2 - 1)
    return out


# --------------------------------------------------------------------------- generator
class Generator(nn.Module):
    """SinGAN's generator: 5 conv layers 3x3 (BatchNorm, LeakyReLU 0.2), tail Conv(N->3) + Tanh,
    added to its (distorted, upsampled) input. The input is zero-padded by 5 px so that the output
    has the input's size."""

    def __init__(self, channels: int, num_layers: int = 5):
        super().__init__()
        self.pad = num_layers  # (3 - 1) / 2 per layer
        layers: list[nn.Module] = []
        c_in = 3
        for _ in range(num_layers - 1):
            layers += [nn.Conv2d(c_in, channels, 3), nn.BatchNorm2d(channels), nn.LeakyReLU(0.2)]
            c_in = channels
        layers += [nn.Conv2d(channels, 3, 3), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, noise: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """``net(pad(noise + base)) + base``."""
        return self.net(F.pad(noise + base, [self.pad] * 4)) + base


# --------------------------------------------------------------------------- training state
@dataclass
class _Scale:
    """What a finished scale leaves for the next ones."""

    G: Generator
    D: Discriminator
    noise_amp: float
    z_opt: torch.Tensor  # fixed noise of the reconstruction path


def _upsample(x: torch.Tensor, hw) -> torch.Tensor:
    return F.interpolate(x, size=tuple(hw), mode="bicubic", align_corners=False)


def _generate(
    scales: list[_Scale],
    sizes,
    cfg,
    rng: np.random.Generator,
    reconstruct: bool,
    gen: torch.Generator,
) -> torch.Tensor:
    """Run the finished scales: random sample (or the reconstruction) at the last finished scale."""
    device = torch.device(cfg.device)
    x = torch.zeros(1, 3, *sizes[0], device=device)
    distort = DISTORTIONS[cfg.task]
    for k, sc in enumerate(scales):
        if k == 0:
            base = torch.zeros(1, 3, *sizes[0], device=device)
            z = sc.z_opt if reconstruct else torch.randn(1, 3, *sizes[0], generator=gen).to(device)
            x = sc.G(z * sc.noise_amp, base)
        else:
            base = distort(_upsample(x, sizes[k]), rng)
            x = sc.G(torch.zeros_like(base), base)
    return x


def _gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen) -> torch.Tensor:
    a = torch.rand(1, 1, 1, 1, generator=gen).to(real.device)
    mix = (a * real + (1 - a) * fake).requires_grad_(True)
    out = D(mix)
    (grad,) = torch.autograd.grad(out.sum(), mix, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def _save_state(path: Path, scales: list[_Scale], cfg: SinGANConfig, meta: dict) -> None:
    state = {
        "config": asdict(cfg),
        "meta": meta,
        "scales": [
            {
                "G": s.G.state_dict(),
                "D": s.D.state_dict(),
                "noise_amp": float(s.noise_amp),
                "z_opt": s.z_opt.cpu(),
                "channels": s.D.channels,
            }
            for s in scales
        ],
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_state(path: Path, cfg: SinGANConfig) -> tuple[list[_Scale], dict]:
    state = torch.load(path, map_location=cfg.device, weights_only=True)
    saved = SinGANConfig(**state["config"])
    if replace(saved, device=cfg.device) != replace(cfg, device=cfg.device):
        diff = {
            k: (v, getattr(cfg, k))
            for k, v in asdict(saved).items()
            if k != "device" and getattr(cfg, k) != v
        }
        raise ValueError(f"cannot resume {path}: it was trained with other settings {diff}")
    scales = []
    for s in state["scales"]:
        G, D = (
            Generator(s["channels"], cfg.num_layers),
            Discriminator(s["channels"], num_layers=cfg.num_layers),
        )
        G.load_state_dict(s["G"])
        D.load_state_dict(s["D"])
        scales.append(
            _Scale(G.to(cfg.device), D.to(cfg.device), s["noise_amp"], s["z_opt"].to(cfg.device))
        )
    return scales, state["meta"]


def _save_samples(
    path: Path, real: torch.Tensor, rec: torch.Tensor, samples: list[torch.Tensor]
) -> None:
    """A PNG strip: seed at this scale | reconstruction | random samples."""
    from PIL import Image

    tiles = [real, rec] + samples
    arr = torch.cat(
        [((t[0].detach().cpu().clamp(-1, 1) + 1) * 127.5).round() for t in tiles], dim=2
    )
    Image.fromarray(arr.permute(1, 2, 0).numpy().astype(np.uint8)).save(path)


def train_mdf(
    seed_image: str | np.ndarray,
    cfg: SinGANConfig,
    out: str | os.PathLike,
    workdir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after_scale: int | None = None,
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
        stop_after_scale: stop (as if interrupted) once this scale is finished; for tests.

    Returns:
        The path of the weight file (or of the checkpoint when stopped early).

    Every scale's random numbers derive from ``(cfg.seed, scale)``, so a resumed run ends with the
    same weights as an uninterrupted one.
    """
    out = Path(out)
    workdir = Path(workdir) if workdir is not None else out.with_name(out.stem + "_work")
    workdir.mkdir(parents=True, exist_ok=True)
    state_path, log_path = workdir / "state.pt", workdir / "log.csv"

    if isinstance(seed_image, np.ndarray):
        img, seed_desc = seed_image.astype(np.float32), "array"
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"seed_image array must be H x W x 3, got {img.shape}")
    else:
        img, seed_desc = load_seed(str(seed_image))
    reals = build_pyramid(img, cfg)
    sizes = [tuple(r.shape[-2:]) for r in reals]
    device = torch.device(cfg.device)
    reals = [r.to(device) for r in reals]
    meta = {
        "task": cfg.task if cfg.task in ("sisr", "denoise", "jpeg") else None,
        "distortion": cfg.task,
        "seed_image": seed_desc,
        "seed_image_sha256": image_sha256(img),
        "pyramid": [list(s) for s in sizes],
        "iterations_per_scale": cfg.iterations,
        "code_version": CODE_VERSION,
        "config": asdict(cfg),
        "seconds_per_scale": [],
    }

    scales: list[_Scale] = []
    if resume:
        if not state_path.is_file():
            raise ValueError(f"--resume: no checkpoint at {state_path}")
        scales, saved_meta = _load_state(state_path, cfg)
        if saved_meta.get("seed_image_sha256") != meta["seed_image_sha256"]:
            raise ValueError(f"cannot resume {state_path}: it was trained on another seed image")
        meta = saved_meta
        logger.info("resuming after scale %d of %d", len(scales) - 1, len(sizes))
    elif log_path.exists():
        log_path.unlink()

    new_log = not log_path.exists()
    with open(log_path, "a", newline="") as fh:
        writer = csv.writer(fh)
        if new_log:
            writer.writerow(["scale", "iteration", "d_loss", "g_adv", "rec_mse", "gp", "seconds"])
        for k in range(len(scales), len(sizes)):
            t0 = time.time()
            scales.append(_train_scale(k, scales, reals, sizes, cfg, writer, progress, workdir))
            meta["seconds_per_scale"].append(round(time.time() - t0, 2))
            fh.flush()
            _save_state(state_path, scales, cfg, meta)
            if stop_after_scale is not None and k >= stop_after_scale and k < len(sizes) - 1:
                return state_path
    discs = [s.D.cpu().eval() for s in scales]
    meta["seconds_total"] = round(sum(meta["seconds_per_scale"]), 2)
    save_discriminators(out, discs, meta)
    return out


def _train_scale(k, scales, reals, sizes, cfg: SinGANConfig, writer, progress, workdir) -> _Scale:
    torch.manual_seed(cfg.seed * 1000 + k)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + k)
    rng = np.random.default_rng([cfg.seed, k])
    device = torch.device(cfg.device)
    real = reals[k]
    ch = singan_channels(k, cfg.nfc, cfg.max_channels)
    # built and initialised on the CPU (``gen`` is a CPU generator), then moved: the same
    # initial weights on every device
    G, D = Generator(ch, cfg.num_layers), Discriminator(ch, num_layers=cfg.num_layers)
    init_singan_weights(G, generator=gen)
    init_singan_weights(D, generator=gen)
    G, D = G.to(device), D.to(device)
    if cfg.warm_start and scales and scales[-1].D.channels == ch:
        G.load_state_dict(scales[-1].G.state_dict())
        D.load_state_dict(scales[-1].D.state_dict())
    for prev in scales:
        prev.G.eval()
        for p in prev.G.parameters():
            p.requires_grad_(False)

    z_opt = (
        torch.randn(1, 3, *sizes[0], generator=gen).to(device)
        if k == 0
        else torch.zeros(1, 3, *sizes[k], device=device)
    )
    if k == 0:
        noise_amp = 1.0
    else:
        with torch.no_grad():
            rec_prev = _generate(scales, sizes, cfg, rng, True, gen)
            base_rec = _upsample(rec_prev, sizes[k])
        noise_amp = cfg.noise_amp_init * float(torch.sqrt(F.mse_loss(base_rec, real)))

    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    milestone = [max(1, int(cfg.lr_decay_at * cfg.iterations))]
    sch_d = torch.optim.lr_scheduler.MultiStepLR(opt_d, milestone, gamma=0.1)
    sch_g = torch.optim.lr_scheduler.MultiStepLR(opt_g, milestone, gamma=0.1)
    distort = DISTORTIONS[cfg.task]
    zeros = torch.zeros(1, 3, *sizes[k], device=device)

    def fake_inputs():
        """(noise, base) of a random sample and of the reconstruction at this scale."""
        if k == 0:
            return (
                torch.randn(1, 3, *sizes[0], generator=gen).to(device) * noise_amp,
                zeros,
                z_opt * noise_amp,
                zeros,
            )
        with torch.no_grad():
            prev = _generate(scales, sizes, cfg, rng, False, gen)
            base = distort(_upsample(prev, sizes[k]), rng)
            base_rec = distort(
                _upsample(_generate(scales, sizes, cfg, rng, True, gen), sizes[k]), rng
            )
        return torch.zeros_like(base), base, torch.zeros_like(base_rec), base_rec

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=cfg.iterations,
            desc=f"scale {k + 1}/{len(sizes)} {sizes[k][0]}x{sizes[k][1]}",
            unit="it",
            leave=True,
        )
    t_start = time.time()
    for it in range(cfg.iterations):
        noise, base, noise_rec, base_rec = fake_inputs()
        for _ in range(cfg.d_steps):
            opt_d.zero_grad(set_to_none=True)
            fake = G(noise, base).detach()
            gp = _gradient_penalty(D, real, fake, gen)
            d_loss = -D(real).mean() + D(fake).mean() + cfg.gp_weight * gp
            d_loss.backward()
            opt_d.step()
        for _ in range(cfg.g_steps):
            opt_g.zero_grad(set_to_none=True)
            g_adv = -D(G(noise, base)).mean()
            rec = F.mse_loss(G(noise_rec, base_rec), real)
            (g_adv + cfg.alpha * rec).backward()
            opt_g.step()
        sch_d.step()
        sch_g.step()
        if it % 10 == 0 or it == cfg.iterations - 1:
            writer.writerow(
                [
                    k,
                    it,
                    f"{d_loss.item():.5f}",
                    f"{g_adv.item():.5f}",
                    f"{rec.item():.6f}",
                    f"{gp.item():.5f}",
                    f"{time.time() - t_start:.2f}",
                ]
            )
        if bar is not None:
            bar.set_postfix(
                d=f"{d_loss.item():.3f}", g=f"{g_adv.item():.3f}", rec=f"{rec.item():.4f}"
            )
            bar.update(1)
    if bar is not None:
        bar.close()
    G.eval()
    D.eval()
    for p in list(G.parameters()) + list(D.parameters()):
        p.requires_grad_(False)
    done = _Scale(G, D, noise_amp, z_opt)
    with torch.no_grad():
        rec = _generate(scales + [done], sizes, cfg, rng, True, gen)
        samples = [_generate(scales + [done], sizes, cfg, rng, False, gen) for _ in range(3)]
    _save_samples(workdir / f"samples_scale{k}.png", real, rec, samples)
    return done
