"""The state of an MDF Phase-1 run: exactly what its per-scale checkpoint stores.

A checkpoint (``<workdir>/state.pt``) is written atomically after every scale
(:mod:`scaling.contracts.atomic`) and loads with ``torch.load(weights_only=True)``:
``{"config": asdict(SinGANConfig), "meta": {...}, "scales": [{"G", "D", "noise_amp", "z_opt",
"channels"}, ...]}``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from metrics.discriminator import Discriminator
from metrics.generator import Generator, Scale
from metrics.singan_config import SinGANConfig
from scaling.contracts.atomic import atomic_open


@dataclass
class TrainState:
    """The settings, the metadata of the weight file to come (task, seed, pyramid, timings) and
    the finished scales, coarsest first."""

    config: SinGANConfig
    meta: dict
    scales: list[Scale] = field(default_factory=list)

    def save(self, path: str | os.PathLike) -> None:
        """Write the checkpoint atomically (a reader sees the previous one or this one)."""
        state = {
            "config": asdict(self.config),
            "meta": self.meta,
            "scales": [
                {
                    "G": s.G.state_dict(),
                    "D": s.D.state_dict(),
                    "noise_amp": float(s.noise_amp),
                    "z_opt": s.z_opt.cpu(),
                    "channels": s.D.channels,
                }
                for s in self.scales
            ],
        }
        with atomic_open(path) as f:
            torch.save(state, f)

    @classmethod
    def load(cls, path: str | os.PathLike, cfg: SinGANConfig) -> TrainState:
        """Read a checkpoint written with the settings ``cfg`` (the device may differ) onto
        ``cfg.device``.

        Raises:
            ValueError: the checkpoint was trained with other settings (the message lists them).
        """
        path = Path(path)
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
            G = Generator(s["channels"], cfg.num_layers)
            D = Discriminator(s["channels"], num_layers=cfg.num_layers)
            G.load_state_dict(s["G"])
            D.load_state_dict(s["D"])
            scales.append(
                Scale(G.to(cfg.device), D.to(cfg.device), s["noise_amp"], s["z_opt"].to(cfg.device))
            )
        return cls(cfg, state["meta"], scales)
