"""Export the images people compare in the crowd study, with a versioned manifest.

For each test image: the reference, the degraded input and every condition's (loss's) output, as
aligned, same-size 8-bit RGB PNG crops, plus ``manifest.json`` (format ``mdf-triplets``, version 1):

.. code-block:: json

    {"format": "mdf-triplets", "version": 1, "task": "denoise", "created": "2026-11-22T10:00:00Z",
     "conditions": ["l2", "mdf"],
     "images": [{"id": "astronaut", "width": 256, "height": 256,
                 "reference": {"path": "astronaut/reference.png", "sha256": "..."},
                 "degraded": {"path": "astronaut/degraded.png", "sha256": "..."},
                 "outputs": {"l2": {"path": "astronaut/l2.png", "sha256": "..."}, ...}}],
     "meta": {...}}

Paths are relative to the manifest's folder with forward slashes. Networks run on the whole
degraded image (tiled if asked) and the crops are cut afterwards, so no crop has border artefacts
the full output would not have. For SR the degraded crop is the LR crop enlarged with MATLAB
bicubic (:func:`restore.imresize.imresize`) to the reference size; for denoising it is the noisy
image clipped to [0, 1]. Grey networks' images are written as RGB with equal channels.
This matches the paper's study (Mustafa et al., WACV 2022, section 4.3): reference plus two
restorations by the same network trained with different losses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from .checkpoint import load_checkpoint, model_from_checkpoint
from .data import image_id
from .degrade import Degradation, _atomic_write_bytes, save_png, to_uint8
from .evaluate import test_items
from .imresize import imresize
from .inference import restore_image

log = logging.getLogger(__name__)

FORMAT, VERSION = "mdf-triplets", 1
CONDITION_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
        checkpoints: condition id (e.g. the loss name) -> checkpoint; all must hold the same
            network type for the same task and degradation, else ``ValueError``.
        images: folder of clean test images (or a folder written by ``degrade_folder``).
        crop: size of the centred square crop in reference pixels (None: whole image).
        seed: degradation seed, as for evaluation.
        overrides: degradation fields to change, e.g. ``{"quality": 7}``.
        task_name: the manifest's task (default: the checkpoints' task).
    Returns: the manifest path.
    """
    if not checkpoints:
        raise ValueError("no checkpoints given: need one per condition")
    for cond in checkpoints:
        if not CONDITION_RE.match(cond):
            raise ValueError(f"condition id {cond!r} must match {CONDITION_RE.pattern}")
    loaded = {c: load_checkpoint(p) for c, p in checkpoints.items()}
    first_c, first = next(iter(loaded.items()))
    for c, ck in loaded.items():
        for key in ("model_name",):
            if ck[key] != first[key]:
                raise ValueError(
                    f"condition {c!r} holds a {ck[key]!r} network, {first_c!r} a {first[key]!r}"
                )
        d1, d2 = ck["val_degradation"], first["val_degradation"]
        if (d1["task"], d1["scale"] if d1["task"] == "sr" else 1) != (
            d2["task"],
            d2["scale"] if d2["task"] == "sr" else 1,
        ):
            raise ValueError(
                f"condition {c!r} was trained for {d1['task']}, {first_c!r} for {d2['task']}"
            )
    deg = Degradation.from_dict({**first["val_degradation"], **(overrides or {})})
    channels = int(first["config"]["channels"])
    s = deg.out_scale
    models = {c: model_from_checkpoint(ck).to(device).eval() for c, ck in loaded.items()}
    items = test_items(images, deg, channels, seed, limit=limit)
    ids = [iid for iid, _, _ in items]
    if len(set(ids)) != len(ids):
        raise ValueError(
            f"image ids are not unique: {sorted({i for i in ids if ids.count(i) > 1})}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for iid, clean, lq in tqdm(items, desc="triplets", disable=not progress):
        if not ID_RE.match(iid):
            iid = image_id(iid)
        h, w = clean.shape[:2]
        y, x, ch, cw = _crop_box(h, w, crop, s)
        (out / iid).mkdir(exist_ok=True)
        ref = clean[y : y + ch, x : x + cw]
        lq_crop = lq[y // s : (y + ch) // s, x // s : (x + cw) // s]
        shown = imresize(lq_crop.astype(np.float64), output_shape=(ch, cw)) if s > 1 else lq_crop
        files = {"reference": ref, "degraded": np.clip(shown, 0, 1)}
        for c, m in models.items():
            res = restore_image(m, lq, s, device, tile)
            files[c] = res[y : y + ch, x : x + cw]
        entry: dict[str, Any] = {"id": iid, "width": int(cw), "height": int(ch), "outputs": {}}
        for key, img in files.items():
            rel = f"{iid}/{key}.png"
            save_png(to_uint8(img), out / rel, rgb=True)
            rec = {"path": rel, "sha256": sha256_file(out / rel)}
            if key in ("reference", "degraded"):
                entry[key] = rec
            else:
                entry["outputs"][key] = rec
        entries.append(entry)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "task": task_name or deg.task,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "conditions": list(checkpoints),
        "images": entries,
        "meta": {
            "model": first["model_name"],
            "degradation": deg.to_dict(),
            "seed": int(seed),
            "crop": crop,
            "checkpoints": {
                c: {
                    "file": Path(p).name,
                    "sha256": sha256_file(p),
                    "loss": loaded[c]["config"]["loss"],
                }
                for c, p in checkpoints.items()
            },
        },
    }
    path = out / "manifest.json"
    _atomic_write_bytes(path, (json.dumps(manifest, indent=2) + "\n").encode())
    log.info("wrote %d triplet images x %d conditions to %s", len(entries), len(checkpoints), out)
    return path


def _safe_rel(root: Path, rel: Any, where: str) -> Path:
    if not isinstance(rel, str) or not rel:
        raise ValueError(f"{where}: path must be a non-empty string, got {rel!r}")
    p = PurePosixPath(rel)
    if "\\" in rel or p.is_absolute() or ".." in p.parts or re.match(r"^[A-Za-z]:", rel):
        raise ValueError(
            f"{where}: unsafe path {rel!r} (must be relative, forward slashes, no '..')"
        )
    return root / Path(*p.parts)


def load_manifest(path: str | Path, verify: bool = True) -> dict[str, Any]:
    """Read and check a triplet manifest; ``ValueError`` naming the first problem.

    Checks the format and version, ids, that every image has an output per condition, safe relative
    paths, and (``verify``) that files exist, match their SHA-256, are 8-bit RGB PNGs and share the
    entry's size.
    """
    path = Path(path)
    try:
        m = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read manifest {path}: {e}") from e
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise ValueError(
            f"{path}: not an {FORMAT!r} manifest (format {m.get('format') if isinstance(m, dict) else None!r})"
        )
    if m.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported version {m.get('version')!r}, expected {VERSION}")
    conds = m.get("conditions")
    if (
        not isinstance(conds, list)
        or not conds
        or not all(isinstance(c, str) and CONDITION_RE.match(c) for c in conds)
    ):
        raise ValueError(
            f"{path}: conditions must be a non-empty list of ids matching {CONDITION_RE.pattern}"
        )
    if len(set(conds)) != len(conds):
        raise ValueError(f"{path}: duplicate conditions")
    images = m.get("images")
    if not isinstance(images, list) or not images:
        raise ValueError(f"{path}: images must be a non-empty list")
    root, seen = path.parent, set()
    for e in images:
        iid = e.get("id")
        if not isinstance(iid, str) or not ID_RE.match(iid) or iid in seen:
            raise ValueError(f"{path}: bad or duplicate image id {iid!r}")
        seen.add(iid)
        outs = e.get("outputs", {})
        missing = [c for c in conds if c not in outs]
        if missing:
            raise ValueError(f"{path}: image {iid!r} has no output for {missing}")
        recs = {"reference": e.get("reference"), **({"degraded": e["degraded"]} if "degraded" in e else {}),
                **{f"outputs.{c}": outs[c] for c in conds}}  # fmt: skip
        for key, rec in recs.items():
            where = f"{path}: image {iid!r} {key}"
            if not isinstance(rec, dict):
                raise ValueError(f"{where}: missing entry")  # noqa: TRY004 (malformed data)
            f = _safe_rel(root, rec.get("path"), where)
            if not verify:
                continue
            if not f.is_file():
                raise ValueError(f"{where}: file {rec['path']!r} does not exist")
            if sha256_file(f) != rec.get("sha256"):
                raise ValueError(f"{where}: checksum mismatch for {rec['path']!r}")
            with Image.open(f) as im:
                if im.format != "PNG" or im.mode != "RGB":
                    raise ValueError(
                        f"{where}: {rec['path']!r} is {im.format} {im.mode}, expected PNG RGB"
                    )
                if im.size != (e.get("width"), e.get("height")):
                    raise ValueError(
                        f"{where}: size {im.size} differs from {(e.get('width'), e.get('height'))}"
                    )
    return m
