"""Export the images people compare in the crowd study, with their ``mdf-triplets`` manifest.

For each test image: the reference, the degraded input and every condition's (loss's) output, as
aligned, same-size 8-bit RGB PNG crops, plus ``manifest.json``; its schema and validator are the
contract :mod:`scaling.contracts.manifest` (restore writes it, the study reads it). Networks run on
the whole degraded image (tiled if asked) and the crops are cut afterwards, so no crop has border
artefacts the full output would not have. For SR the degraded crop is the LR crop enlarged with
MATLAB bicubic (:func:`restore.imresize.imresize`) to the reference size; for denoising it is the
noisy image clipped to [0, 1]. Grey networks' images are written as RGB with equal channels.
This matches the paper's study (Mustafa et al., WACV 2022, section 4.3): reference plus two
restorations by the same network trained with different losses.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from scaling.contracts.manifest import (
    CONDITION_ID_RE,
    IMAGE_ID_RE,
    RESERVED_PREFIX,
    Manifest,
    ManifestImage,
    file_ref,
    read_manifest,
    sha256_file,
    write_manifest,
)

from .checkpoint import load_checkpoint, model_from_checkpoint
from .degrade import Degradation, to_uint8
from .evaluate import test_items
from .image_io import image_id, save_png
from .imresize import imresize
from .inference import restore_image

log = logging.getLogger(__name__)


def _crop_box(h: int, w: int, crop: int | None, s: int) -> tuple[int, int, int, int]:
    """Centred crop (y, x, ch, cw) in reference pixels, with corners and size multiples of ``s``."""
    ch = min(h, crop or h)
    cw = min(w, crop or w)
    ch, cw = ch - ch % s, cw - cw % s
    y = ((h - ch) // 2) // s * s
    x = ((w - cw) // 2) // s * s
    return y, x, ch, cw


def export_triplets(
    checkpoints: dict[str, str | Path], images: str | Path, out_dir: str | Path,
    crop: int | None = 256, seed: int = 0, device: str = "cpu", tile: int = 0, limit: int | None = None,
    overrides: dict[str, Any] | None = None, task_name: str | None = None, progress: bool = True,
) -> Path:  # fmt: skip
    """Write reference/degraded/output crops for every image and condition, and ``manifest.json``.

    Args:
        checkpoints: condition id (e.g. the loss name) -> checkpoint; at least two, all holding
            the same network type for the same task and degradation, else ``ValueError``.
        images: folder of clean test images (or a folder written by ``degrade_folder``).
        crop: size of the centred square crop in reference pixels (None: whole image).
        seed: degradation seed, as for evaluation.
        overrides: degradation fields to change, e.g. ``{"quality": 7}``.
        task_name: the manifest's task (default: the checkpoints' task).
    Returns: the manifest path (written last, with :func:`scaling.contracts.manifest.write_manifest`).
    """
    _check_conditions(list(checkpoints))
    loaded = {c: load_checkpoint(p) for c, p in checkpoints.items()}
    first = _same_network(loaded)
    deg = Degradation.from_dict({**first["val_degradation"], **(overrides or {})})
    s = deg.out_scale
    models = {c: model_from_checkpoint(ck).to(device).eval() for c, ck in loaded.items()}
    items = test_items(images, deg, int(first["config"]["channels"]), seed, limit=limit)
    ids = [iid if IMAGE_ID_RE.match(iid) else image_id(iid) for iid, _, _ in items]
    if len(set(ids)) != len(ids):
        raise ValueError(
            f"image ids are not unique: {sorted({i for i in ids if ids.count(i) > 1})}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for iid, (_, clean, lq) in tqdm(zip(ids, items), total=len(items), desc="triplets",
                                    disable=not progress):  # fmt: skip
        h, w = clean.shape[:2]
        y, x, ch, cw = _crop_box(h, w, crop, s)
        lq_crop = lq[y // s : (y + ch) // s, x // s : (x + cw) // s]
        shown = imresize(lq_crop.astype(np.float64), output_shape=(ch, cw)) if s > 1 else lq_crop
        files = {"reference": clean[y : y + ch, x : x + cw], "degraded": np.clip(shown, 0, 1)}
        for c, m in models.items():
            files[c] = restore_image(m, lq, s, device, tile)[y : y + ch, x : x + cw]
        refs = {}
        for key, img in files.items():
            save_png(to_uint8(img), out / iid / f"{key}.png", rgb=True)
            refs[key] = file_ref(out, f"{iid}/{key}.png")
        outputs = {c: refs[c] for c in checkpoints}
        entries.append(ManifestImage(iid, int(cw), int(ch), refs["reference"], outputs,
                                     refs["degraded"]))  # fmt: skip
    meta = {"model": first["model_name"], "degradation": deg.to_dict(), "seed": int(seed),
            "crop": crop,
            "checkpoints": {c: {"file": Path(p).name, "sha256": sha256_file(p),
                                "loss": loaded[c]["config"]["loss"]}
                            for c, p in checkpoints.items()}}  # fmt: skip
    manifest = Manifest(task_name or deg.task, tuple(checkpoints), tuple(entries), meta=meta)
    path = write_manifest(out / "manifest.json", manifest)
    log.info("wrote %d triplet images x %d conditions to %s", len(entries), len(checkpoints), out)
    return path


def _check_conditions(conditions: list[str]) -> None:
    """Condition ids as the manifest contract wants them, checked before anything is written."""
    for cond in conditions:
        if not CONDITION_ID_RE.match(cond) or cond.startswith(RESERVED_PREFIX):
            raise ValueError(f"condition id {cond!r} must match {CONDITION_ID_RE.pattern} and "
                             f"not start with {RESERVED_PREFIX!r}")  # fmt: skip
    if len(conditions) < 2:
        raise ValueError(
            f"a study compares at least 2 conditions, got {len(conditions)}: give one checkpoint "
            "per condition"
        )


def _same_network(loaded: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The first checkpoint, after checking that all hold the same network for the same task."""
    first_c, first = next(iter(loaded.items()))
    for c, ck in loaded.items():
        if ck["model_name"] != first["model_name"]:
            raise ValueError(f"condition {c!r} holds a {ck['model_name']!r} network, "
                             f"{first_c!r} a {first['model_name']!r}")  # fmt: skip
        d1, d2 = Degradation.from_dict(ck["val_degradation"]), Degradation.from_dict(first["val_degradation"])
        if (d1.task, d1.out_scale) != (d2.task, d2.out_scale):
            raise ValueError(
                f"condition {c!r} was trained for {d1.task}, {first_c!r} for {d2.task}"
            )
    return first


def load_manifest(path: str | Path, verify: bool = True) -> dict[str, Any]:
    """Read and check a triplet manifest; the JSON object as a dict, ``ValueError`` naming the problem.

    The checks are the contract's (:func:`scaling.contracts.manifest.read_manifest`): format and
    version, ids, one output per condition, safe relative paths, files that exist and are 8-bit RGB
    PNGs of the entry's size, and (``verify``) their SHA-256.
    """
    return read_manifest(path, verify_checksums=verify).to_dict()
