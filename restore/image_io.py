"""Image files: listing data set folders, reading and writing images, degraded test-set folders.

Layouts understood by :func:`list_images` (``layout="auto"`` guesses):

* ``flat``: every image file under a folder (recursively), e.g. a folder of PNGs;
* ``div2k``: ``DIV2K_train_HR/`` (split ``train``) and ``DIV2K_valid_HR/`` (split ``valid``/``test``),
  either directly under the root or one level down (Agustsson & Timofte, CVPR-W 2017);
* ``bsd500``: ``[BSDS500/data/]images/{train,val,test}/*.jpg`` (Arbelaez et al., TPAMI 2011);
* ``dped``: ``<phone>/{training_data,test_data/patches}/canon/*.jpg``, the DSLR (clean) side of
  DPED (Ignatov et al., ICCV 2017).

Images in memory are numpy arrays (H, W, C), uint8 or float32 in [0, 1] (see :mod:`restore.degrade`,
which only computes on such arrays). Every file is written atomically through
:mod:`scaling.contracts.atomic`, so a reader never sees half an image.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from scaling.contracts.atomic import atomic_open, write_json

from .degrade import Degradation, degrade, image_seed, mod_crop, to_float, to_uint8

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")
LAYOUTS = ("auto", "flat", "div2k", "bsd500", "dped")
#: scikit-image's bundled photographs (inside its wheel, no download) used by the tiny preset
BUNDLED_TRAIN = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
BUNDLED_VALID = ("cat", "colorwheel")


def _images_in(folder: Path, recursive: bool = True) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _guess_layout(root: Path) -> str:
    if list(root.glob("DIV2K_*_HR")) or list(root.glob("*/DIV2K_*_HR")):
        return "div2k"
    if list(root.glob("**/images/train"))[:1]:
        return "bsd500"
    if list(root.glob("*/training_data/canon"))[:1]:
        return "dped"
    return "flat"


def list_images(root: str | Path, layout: str = "auto", split: str = "train") -> list[Path]:
    """Image files of a data set folder for ``split`` (train | valid | test), sorted by path.

    Raises ``ValueError`` if the folder does not exist, the layout is unknown, or no image is found.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data folder {root} does not exist or is not a folder")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    if split not in ("train", "valid", "val", "test"):
        raise ValueError(f"unknown split {split!r}; expected train, valid or test")
    if layout == "auto":
        layout = _guess_layout(root)
    if layout == "flat":
        found = _images_in(root)
    elif layout == "div2k":
        name = "DIV2K_train_HR" if split == "train" else "DIV2K_valid_HR"
        dirs = [d for d in (root / name, *root.glob(f"*/{name}")) if d.is_dir()]
        found = _images_in(dirs[0], recursive=False) if dirs else []
    elif layout == "bsd500":
        sub = {"train": "train", "valid": "val", "val": "val", "test": "test"}[split]
        dirs = [d for d in root.glob(f"**/images/{sub}") if d.is_dir()]
        found = _images_in(dirs[0], recursive=False) if dirs else []
    else:  # dped
        pattern = "*/training_data/canon" if split == "train" else "*/test_data/patches/canon"
        found = [p for d in sorted(root.glob(pattern)) for p in _images_in(d, recursive=False)]
    if not found:
        raise ValueError(f"no images found in {root} (layout {layout!r}, split {split!r})")
    return found


def image_id(path: str | Path) -> str:
    """The id of an image file: its stem, with characters outside [A-Za-z0-9_.-] replaced by '_'.

    The result always matches :data:`scaling.contracts.manifest.IMAGE_ID_RE`.
    """
    stem = Path(path).stem
    return "".join(c if (c.isascii() and c.isalnum()) or c in "_.-" else "_" for c in stem) or "image"


def load_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """Read an image as uint8 (H, W, channels): RGB for 3, ITU-R 601 luma ('L') for 1.

    Raises ``ValueError`` naming the file if it cannot be read as an image.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")  # palette/alpha/16-bit -> 8-bit RGB first
            if channels == 1:
                im = im.convert("L")
            arr = np.array(im)  # writable copy
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e
    return arr[:, :, None] if arr.ndim == 2 else arr


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file header; ``ValueError`` if unreadable."""
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e


def save_png(img: np.ndarray, path: str | Path, rgb: bool = False) -> None:
    """Write an 8-bit PNG atomically; floats in [0, 1] are rounded; ``rgb`` repeats grey to 3 channels."""
    u8 = to_uint8(img)
    if u8.ndim == 3 and u8.shape[2] == 1:
        u8 = u8[:, :, 0]
    if rgb and u8.ndim == 2:
        u8 = np.repeat(u8[:, :, None], 3, axis=2)
    with atomic_open(path) as f:
        Image.fromarray(u8).save(f, format="PNG")


def save_npy(a: np.ndarray, path: str | Path, fsync: bool = True) -> None:
    """Write an array as a ``.npy`` file atomically (``fsync=False`` for caches)."""
    with atomic_open(path, fsync=fsync) as f:
        np.save(f, np.ascontiguousarray(a))


def write_bundled_images(folder: str | Path, names: tuple[str, ...] = BUNDLED_TRAIN) -> list[Path]:
    """Write scikit-image's bundled photographs as PNGs into ``folder`` (offline); returns the paths."""
    from skimage import data as skdata

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        img = getattr(skdata, name)()
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        path = folder / f"{name}.png"
        save_png(img[:, :, :3], path)
        paths.append(path)
    return paths


def degrade_folder(
    images: list[Path], out_dir: str | Path, deg: Degradation, seed: int = 0, channels: int = 3
) -> Path:
    """Degrade test images once with a fixed seed and save them, so every model sees the same inputs.

    Writes ``out_dir/reference/<id>.png`` (mod-cropped for SR), ``out_dir/degraded/<id>.png`` (SR
    and JPEG: 8-bit, lossless) or ``<id>.npy`` (noise: float32, unclipped) and
    ``out_dir/degradation.json`` (task, parameters, seed, ids), the last file written, so its
    presence marks a complete folder. The noise of an image depends only on (seed, image id)
    (:func:`restore.degrade.image_seed`). Returns ``out_dir``.
    """
    out = Path(out_dir)
    (out / "reference").mkdir(parents=True, exist_ok=True)
    (out / "degraded").mkdir(parents=True, exist_ok=True)
    ids = []
    for path in images:
        iid = image_id(path)
        clean = load_image(path, channels)
        if deg.task == "sr":
            clean = mod_crop(clean, deg.scale)
        lq = degrade(clean, deg, image_seed(seed, iid))
        save_png(clean, out / "reference" / f"{iid}.png")
        if deg.task == "denoise":
            save_npy(lq, out / "degraded" / f"{iid}.npy")
        else:
            save_png(to_uint8(lq), out / "degraded" / f"{iid}.png")
        ids.append(iid)
    meta = {"degradation": deg.to_dict(), "seed": int(seed), "channels": channels, "ids": ids}
    write_json(out / "degradation.json", meta)
    log.info("degraded %d images into %s", len(ids), out)
    return out


def load_degraded_folder(
    folder: str | Path,
) -> tuple[dict, list[tuple[str, np.ndarray, np.ndarray]]]:
    """Read a folder written by :func:`degrade_folder`: (metadata, [(id, clean uint8, degraded float32)])."""
    folder = Path(folder)
    meta_path = folder / "degradation.json"
    if not meta_path.is_file():
        raise ValueError(f"{folder} is not a degraded test set (no degradation.json)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {meta_path}: {e}") from e
    items = []
    for iid in meta["ids"]:
        clean = load_image(folder / "reference" / f"{iid}.png", meta["channels"])
        npy = folder / "degraded" / f"{iid}.npy"
        lq = (
            np.load(npy)
            if npy.is_file()
            else to_float(load_image(folder / "degraded" / f"{iid}.png", meta["channels"]))
        )
        items.append((iid, clean, lq))
    return meta, items


__all__ = [
    "BUNDLED_TRAIN", "BUNDLED_VALID", "IMAGE_SUFFIXES", "LAYOUTS", "degrade_folder", "image_id",
    "image_size", "list_images", "load_degraded_folder", "load_image", "save_npy", "save_png",
    "write_bundled_images",
]  # fmt: skip
