"""Fixtures for the restore tests: small crops of scikit-image's bundled photos, tiny trained runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from restore.config import tiny_preset

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


def _write(folder: Path, names: dict[str, tuple[int, int]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (h, w) in names.items():
        img = getattr(skdata, name)()
        y, x = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        Image.fromarray(np.ascontiguousarray(img[y : y + h, x : x + w, :3])).save(
            folder / f"{name}.png"
        )
    return folder


@pytest.fixture(scope="session")
def image_dirs(tmp_path_factory) -> dict[str, Path]:
    """train: 3 crops (~128-160 px); valid: 1 crop (64 px); test: 2 crops of other photos."""
    root = tmp_path_factory.mktemp("images")
    return {
        "train": _write(
            root / "train", {"astronaut": (128, 160), "coffee": (128, 128), "chelsea": (144, 128)}
        ),
        "valid": _write(root / "valid", {"cat": (64, 64)}),
        "test": _write(root / "test", {"rocket": (72, 80), "immunohistochemistry": (64, 64)}),
    }


def small_cfg(image_dirs, out: Path, task: str = "sr", model: str | None = None, **kw):
    """A seconds-long tiny-preset config (2 epochs x 4 steps x batch 2)."""
    base = {"data": str(image_dirs["train"]), "val_data": str(image_dirs["valid"]), "out_dir": str(out),
                "epochs": 2, "patches_per_epoch": 8, "batch_size": 2, "val_crop": 64}  # fmt: skip
    if task == "sr":
        base["patch_size"] = 32
    base.update(kw)
    return tiny_preset(task, model, **base)


@pytest.fixture
def make_cfg():
    """``small_cfg`` as a fixture, so test modules need not import conftest."""
    return small_cfg


@pytest.fixture(scope="session")
def trained(image_dirs, tmp_path_factory) -> dict[str, Path]:
    """Tiny checkpoints: sr/edsr with l1 and l2, sr/srresnet l1, denoise/dncnn l1 and l2."""
    from restore.train import train

    root = tmp_path_factory.mktemp("runs")
    out = {}
    for key, task, model, loss in [("sr_l1", "sr", "edsr", "l1"), ("sr_l2", "sr", "edsr", "l2"),
                                   ("srres_l1", "sr", "srresnet", "l1"),
                                   ("dn_l1", "denoise", "dncnn", "l1"),
                                   ("dn_l2", "denoise", "dncnn", "l2")]:  # fmt: skip
        train(small_cfg(image_dirs, root / key, task, model, loss=loss, epochs=1))
        out[key] = root / key / "best.pt"
    return out


@pytest.fixture(scope="session")
def random_mdf(tmp_path_factory):
    """A weight file of 8 randomly initialised MDF discriminators (CI never downloads weights)."""
    import torch

    import metrics

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("mdf") / "random_mdf.pt"
    metrics.save_discriminators(path, [metrics.Discriminator() for _ in range(8)], {"task": "sisr"})
    return path
