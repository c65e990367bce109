"""Training configuration: every knob in one dataclass with its default, plus named presets.

The paper's settings (Mustafa et al., WACV 2022, section 4; ``shared/specs/paper-protocol.md``):
SR x4 with EDSR/SRResNet on 96 px patches, Adam 1e-3 with gradual decay, 500 epochs; denoising
with DnCNN, sigma ~ U[0, 55], SGD Nesterov 0.9, weight decay 1e-4, lr 0.1 -> 1e-4 exponentially over
50 epochs; JPEG (q = 10) with DnCNN and Adam 1e-4. Where the paper is silent (batch size, epoch
length, the SR decay steps) the values below follow the networks' own papers and are marked.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from scaling.contracts.tasks import TASKS, canonical_task

from .degrade import Degradation


@dataclass
class TrainConfig:
    """All settings of one training run; ``asdict(cfg)`` is stored in every checkpoint."""

    # --- task and data
    task: str = "sr"  # sr | denoise | jpeg (aliases such as "sisr" are accepted)
    data: str = ""  # training images: a flat folder or a DIV2K/BSD500/DPED root
    layout: str = "auto"  # auto | flat | div2k | bsd500 | dped
    val_data: str = ""  # validation images ('' = the 'valid' split of `data` if it has one)
    val_layout: str = "auto"
    val_crop: int = 0  # centre-crop validation images to this size (0 = whole image)
    scale: int = 4  # SR factor
    sigma: tuple[float, float] = (0.0, 55.0)  # training noise std range on 0..255 (DnCNN-B)
    val_sigma: float = 25.0  # fixed noise std for validation (0..255)
    quality: int = 10  # JPEG quality of training/validation inputs
    channels: int = 3  # 3 = RGB; 1 = grey (denoise/jpeg only; losses see grey repeated to RGB)
    patch_size: int = 96  # clean patch size (SR: 96 HR px; DnCNN: 40-50)
    augment: bool = True  # 8-fold flips/rotations
    cache_images: bool = True  # keep decoded (and bicubic/JPEG-degraded) images in memory
    cache_dir: str = ""  # or store them once as memory-mapped .npy files here (DIV2K: ~7 GB)
    num_workers: int = 0  # DataLoader worker processes
    # --- model and loss
    model: str = "edsr"  # edsr | edsr_full | srresnet | dncnn
    model_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"depth": 20}
    loss: str = "l1"  # any name of metrics.available()
    loss_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"l2_weight": 1.0} for vgg
    # --- optimisation
    epochs: int = 500
    patches_per_epoch: int = (
        16000  # an epoch is this many patches over all ranks (not stated in paper)
    )
    batch_size: int = 16  # per rank (EDSR/SRResNet: 16)
    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-3  # initial learning rate
    schedule: str = "step"  # step | exp | constant
    lr_decay_every: int = 100  # step schedule: epochs between decays (paper: "gradual"; our choice)
    lr_decay_gamma: float = 0.5  # step schedule: multiplier at each decay
    lr_end: float = 1e-4  # exp schedule: learning rate of the last epoch
    momentum: float = 0.9  # SGD momentum (Nesterov)
    weight_decay: float = 0.0  # L2 weight decay
    adam_betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 0.0  # max gradient norm (0 = off)
    # --- validation, logging, checkpoints
    val_every: int = 1  # epochs between validations
    y_channel: bool = True  # PSNR/SSIM on luma (SR papers) instead of RGB
    checkpoint_every: int = 0  # also checkpoint every this many steps (0 = at epoch ends only)
    out_dir: str = "runs/restore"  # checkpoints, CSV log, plots
    resume: bool = False  # continue from out_dir/last.pt if it exists
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision on CUDA only
    amp_dtype: str = "bfloat16"  # bfloat16 | float16 (with a GradScaler)
    progress: bool = True  # tqdm progress bars (main process only)
    tensorboard: bool = True  # also log to TensorBoard when it is installed

    def __post_init__(self) -> None:
        self.task = canonical_task(self.task)  # ValueError naming the accepted names
        self.sigma = tuple(float(s) for s in self.sigma)  # type: ignore[assignment]
        self.adam_betas = tuple(float(b) for b in self.adam_betas)  # type: ignore[assignment]
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent setting."""
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; expected one of {TASKS}")
        from .models import MODELS, SR_MODELS

        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; expected one of {sorted(MODELS)}")
        if (self.task == "sr") != (self.model in SR_MODELS):
            raise ValueError(f"model {self.model!r} does not fit task {self.task!r}")
        if self.task == "sr" and self.channels != 3:
            raise ValueError("SR models work on RGB (channels=3)")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; expected adam or sgd")
        if self.schedule not in ("step", "exp", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}; expected step, exp or constant")
        if self.amp_dtype not in ("bfloat16", "float16"):
            raise ValueError(f"amp_dtype must be bfloat16 or float16, got {self.amp_dtype!r}")
        for name in ("epochs", "patches_per_epoch", "batch_size", "val_every", "scale"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        s = self.scale if self.task == "sr" else 1
        if self.model_options.get("scale", s) != s:
            raise ValueError(
                f"model_options scale {self.model_options['scale']} does not match the task's scale {s}"
            )
        if self.patch_size % s or self.patch_size < 8:
            raise ValueError(
                f"patch_size {self.patch_size} must be >= 8 and a multiple of scale {s}"
            )

    def steps_per_epoch(self, world_size: int = 1) -> int:
        """Optimiser steps per epoch: ceil(patches_per_epoch / (batch_size * world_size))."""
        return -(-self.patches_per_epoch // (self.batch_size * world_size))

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (tuples become lists): safe for JSON and ``weights_only`` checkpoints."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - valid)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {unknown}")
        return cls(**d)


def _task_defaults(task: str, model: str | None) -> dict[str, Any]:
    task = canonical_task(task)
    if task == "sr":
        return {"task": "sr", "model": model or "edsr", "scale": 4, "patch_size": 96, "batch_size": 16,
                    "optimizer": "adam", "lr": 1e-3, "schedule": "step", "weight_decay": 0.0}  # fmt: skip
    if task == "denoise":
        # DnCNN-B colour (blind, sigma ~ U[0, 55]): depth 20, 50 px patches, batch 128 (Zhang et al.)
        return {"task": "denoise", "model": model or "dncnn", "model_options": {"depth": 20},
                    "sigma": (0.0, 55.0), "patch_size": 50, "batch_size": 128, "optimizer": "sgd", "lr": 0.1,
                    "schedule": "exp", "lr_end": 1e-4, "momentum": 0.9, "weight_decay": 1e-4}  # fmt: skip
    return {"task": "jpeg", "model": model or "dncnn", "model_options": {"depth": 20}, "quality": 10,
                    "patch_size": 50, "batch_size": 128, "optimizer": "adam", "lr": 1e-4,
                    "schedule": "constant"}  # fmt: skip


def paper_preset(task: str = "sr", model: str | None = None, **overrides: Any) -> TrainConfig:
    """The paper's settings for ``task`` (DIV2K scale; meant for a GPU), with overrides.

    Unless ``cache_dir`` is given, decoded and degraded training images are cached as .npy files in
    ``$XDG_CACHE_HOME/mdf-restore`` (``~/.cache/mdf-restore``; about 7 GB for DIV2K train), shared
    by the nine runs of one task.
    """
    d = _task_defaults(task, model)
    d.update(epochs={"sr": 500, "denoise": 50, "jpeg": 50}[d["task"]], layout="div2k",
             patches_per_epoch=16000, cache_images=False, num_workers=4)  # fmt: skip
    d.update(overrides)
    if "cache_dir" not in overrides:  # DIV2K: decode and degrade each image once, shared by runs
        d["cache_dir"] = str(_default_cache_dir())
    return TrainConfig(**d)


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mdf-restore"


def tiny_preset(task: str = "sr", model: str | None = None, **overrides: Any) -> TrainConfig:
    """A few minutes on a CPU with scikit-image's bundled photos: small nets, few patches, same recipe.

    Networks are shrunk (EDSR/SRResNet 2 blocks x 16 features, DnCNN 5 layers x 16) and patches are
    48 px (SR) / 32 px (DnCNN) so that every loss, including multi-scale ones, can run. Every task
    trains with Adam here: the paper's SGD for denoising (at the 1e-2 this preset used before)
    diverged for the MS-SSIM losses, whose pixel gradients are far larger than L2's, within the
    first epoch (outputs in [-1, 2.3]), while Adam's steps do not depend on the loss's scale.
    """
    d = _task_defaults(task, model)
    m = d["model"]
    small = {"edsr": {"n_resblocks": 2, "n_feats": 16}, "edsr_baseline": {"n_resblocks": 2, "n_feats": 16},
             "edsr_full": {"n_resblocks": 2, "n_feats": 16},
             "srresnet": {"n_resblocks": 2, "n_feats": 16},
             "dncnn": {"depth": 5, "n_feats": 16}}[m]  # fmt: skip
    if d["task"] == "sr":
        d.update(patch_size=48, lr=1e-3)
    else:
        d.update(patch_size=32, optimizer="adam", lr=1e-3, lr_end=1e-4, weight_decay=0.0)
    d.update(model_options=small, epochs=4, patches_per_epoch=256, batch_size=8, val_crop=96,
             lr_decay_every=1, cache_images=True, num_workers=0, progress=False)  # fmt: skip
    d.update(overrides)
    return TrainConfig(**d)


PRESETS = {"paper": paper_preset, "tiny": tiny_preset}


def preset(name: str, task: str = "sr", model: str | None = None, **overrides: Any) -> TrainConfig:
    """Look up a named preset (paper | tiny) and apply overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name](task, model, **overrides)


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate during (0-based) ``epoch``: a pure function, so resumed runs match exactly.

    step: ``lr * gamma ** (epoch // lr_decay_every)``; exp: geometric from ``lr`` (first epoch) to
    ``lr_end`` (last epoch), as the paper's denoising schedule 0.1 -> 1e-4; constant: ``lr``.
    """
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "step":
        return cfg.lr * cfg.lr_decay_gamma ** (epoch // max(1, cfg.lr_decay_every))
    if cfg.epochs <= 1:
        return cfg.lr
    return cfg.lr * (cfg.lr_end / cfg.lr) ** (min(epoch, cfg.epochs - 1) / (cfg.epochs - 1))


def degradation_of(cfg: TrainConfig, validation: bool = False) -> Degradation:
    """The degradation of the run's training inputs (``validation``: fixed ``val_sigma`` noise)."""
    sigma: Any = cfg.val_sigma if validation else tuple(cfg.sigma)
    return Degradation(task=cfg.task, scale=cfg.scale, sigma=sigma, quality=cfg.quality)


__all__ = ["PRESETS", "TrainConfig", "degradation_of", "lr_at", "paper_preset", "preset", "replace",
           "tiny_preset"]  # fmt: skip
