"""Every setting of MDF Phase 1 (:class:`SinGANConfig`) and the named presets.

Defaults are SinGAN's (Shaham, Dekel, Michaeli, ICCV 2019) and the MDF paper's (Mustafa et al.,
WACV 2022): WGAN-GP (gradient-penalty weight 0.1) + alpha * MSE reconstruction (alpha = 100),
Adam 5e-4 with betas (0.5, 0.999), the learning rate x0.1 at 80% of the iterations, 3 D-steps then
3 G-steps per iteration, 3000 iterations per scale, warm start when the channel count is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from metrics.distortions import DISTORTIONS
from scaling.contracts.tasks import mdf_task

#: Settings that say what and where to train, not how: not part of a preset.
_NOT_PRESET = ("task", "seed", "device")


@dataclass
class SinGANConfig:
    """Every knob of Phase 1, with SinGAN's / the paper's defaults."""

    task: str = "denoise"  # a key of DISTORTIONS, or any name of scaling.contracts.tasks
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
            self.task = _distortion_name(self.task)
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
    "paper": {"iterations": 3000, "max_size": 250, "min_size": 25, "alpha": 100.0},
    # a useful loss on a 2-core CPU in well under 30 minutes per task
    # (9 scales between 25 and 80 px, 32 channels throughout)
    "quick": {
        "iterations": 200,
        "max_size": 80,
        "min_size": 25,
        "scale_factor": 0.85,
        "max_channels": 32,
        "alpha": 100.0,
    },
    # seconds; for tests only
    "tiny": {
        "iterations": 4,
        "max_size": 28,
        "min_size": 20,
        "nfc": 8,
        "max_channels": 8,
        "alpha": 100.0,
    },
}


def preset(name: str, **overrides) -> SinGANConfig:
    """A :class:`SinGANConfig` from a named preset ("paper", "quick", "tiny") plus overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return SinGANConfig(**{**PRESETS[name], **overrides})


def _distortion_name(task: str) -> str:
    """MDF's name of a restoration task (``"sr"`` -> ``"sisr"``), else ``task`` unchanged."""
    try:
        return mdf_task(task)
    except ValueError:
        return task


def preset_name(config: dict[str, Any] | None) -> str | None:
    """The preset ("paper", "quick", "tiny") whose settings a recorded configuration (a weight
    file's ``metadata["config"]``) has, ``"custom"`` when it matches none, None without one.

    Task, seed and device do not count; settings missing from ``config`` take their defaults.
    """
    if not isinstance(config, dict):
        return None
    defaults = {f.name: f.default for f in fields(SinGANConfig) if f.name not in _NOT_PRESET}
    recorded = {k: config.get(k, v) for k, v in defaults.items()}
    for name, overrides in PRESETS.items():
        if recorded == {**defaults, **overrides}:
            return name
    return "custom"
