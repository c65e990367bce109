"""The experiment definition: which images and which conditions (losses) a study compares.

An experiment is read either from the triplet manifest that ``restore`` exports (``manifest.json``,
format ``mdf-triplets`` version 1, read and validated by :mod:`scaling.contracts.manifest`, the
format's one home) or from the study's own plain folder layout (``<image>/reference.png`` and
``<image>/<condition>.png``). Every path is resolved inside the experiment folder; unsafe paths,
missing files, checksum mismatches and images that are not same-size 8-bit RGB PNGs raise
``ValueError`` naming the problem.

Reference: the crowd study of Mustafa et al., "Training a Task-Specific Image Reconstruction
Loss", WACV 2022, section 4.3 (reference image shown with two restorations of it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app

from scaling.contracts.manifest import (
    CONDITION_ID_RE,
    IMAGE_ID_RE,
    RESERVED_PREFIX,
    Manifest,
    read_manifest,
)

__all__ = [
    "CHECK_DISTORTED",
    "CHECK_REFERENCE",
    "Experiment",
    "ImageEntry",
    "current_experiment",
    "load_experiment",
    "load_folder",
    "load_manifest",
]

#: Condition ids of the attention checks (manifests may not use names starting with "__").
CHECK_REFERENCE = "__reference__"
CHECK_DISTORTED = "__distorted__"


@dataclass(frozen=True)
class ImageEntry:
    """One test image of an experiment, its files resolved to absolute paths and checked."""

    #: the manifest's image id, or the image's folder name
    id: str
    width: int
    height: int
    #: the reference shown in the middle of every trial of this image
    reference: Path
    #: condition id -> the restored image shown for that condition
    outputs: dict[str, Path]
    #: the degraded input the restorations started from (not shown), if there is one
    degraded: Path | None = None


@dataclass(frozen=True)
class Experiment:
    """A validated study definition: condition ids (in manifest order) and image entries."""

    root: Path
    task: str
    conditions: tuple[str, ...]
    images: tuple[ImageEntry, ...]
    fingerprint: str
    meta: dict = field(default_factory=dict)

    def image(self, image_id: str) -> ImageEntry:
        """Return the entry with id ``image_id``; raise ``KeyError`` if there is none."""
        for entry in self.images:
            if entry.id == image_id:
                return entry
        raise KeyError(image_id)

    def path_for(self, image_id: str, condition: str) -> Path:
        """Path of the image shown for ``condition`` (a loss id, or the reference)."""
        entry = self.image(image_id)
        if condition == CHECK_REFERENCE:
            return entry.reference
        return entry.outputs[condition]


def _fingerprint(task: str, conditions, images) -> str:
    """16 hex digits identifying the task, the conditions and each image's outputs (stored in
    the database: a database is only reused for the same experiment)."""
    payload = {
        "task": task,
        "conditions": list(conditions),
        "images": [[e.id, sorted(e.outputs)] for e in images],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _experiment(root: Path, task: str, conditions, images, meta=None) -> Experiment:
    return Experiment(
        root, task, tuple(conditions), tuple(images), _fingerprint(task, conditions, images),
        dict(meta or {}),
    )  # fmt: skip


def from_manifest(manifest: Manifest) -> Experiment:
    """The experiment of a manifest read from a file (``read_manifest``; absolute paths)."""
    images = [
        ImageEntry(
            im.id, im.width, im.height, manifest.path(im.reference),
            {c: manifest.path(ref) for c, ref in im.outputs.items()},
            None if im.degraded is None else manifest.path(im.degraded),
        )
        for im in manifest.images
    ]  # fmt: skip
    return _experiment(manifest.root, manifest.task, manifest.conditions, images, manifest.meta)


def load_manifest(path: str | Path, verify_checksums: bool = True) -> Experiment:
    """Read and validate a ``mdf-triplets`` v1 manifest written by ``restore``.

    ``scaling.contracts.manifest.read_manifest`` checks the format and version, id syntax, that
    every image has an output for every condition, that every path is safe and exists, that the
    SHA-256 checksums match (``verify_checksums``) and that all images of an entry are 8-bit RGB
    PNGs of the declared size. Raises ``ValueError`` naming the problem.
    """
    return from_manifest(read_manifest(path, verify_checksums))


def _png_size(path: Path, what: str) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.format != "PNG":
                raise ValueError(f"{what}: {path.name} is {im.format}, expected PNG")
            if im.mode != "RGB":
                raise ValueError(f"{what}: {path.name} has mode {im.mode}, expected 8-bit RGB")
            return im.size
    except OSError as exc:
        raise ValueError(f"{what}: {path.name} is not a readable image ({exc})") from exc


def load_folder(folder: str | Path) -> Experiment:
    """Read the plain folder layout ``<image>/reference.png`` + ``<image>/<condition>.png``.

    Conditions are the sorted file stems other than ``reference`` and ``degraded``; every image
    folder must have all of them, with the manifest's id rules. Raises ``ValueError`` on an
    empty or inconsistent folder.
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise ValueError(f"experiment folder {root} does not exist")
    images = []
    conditions: list[str] | None = None
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if not (sub / "reference.png").is_file():
            continue
        if not IMAGE_ID_RE.match(sub.name):
            raise ValueError(f"image folder name {sub.name!r} is not a valid id")
        stems = sorted(p.stem for p in sub.glob("*.png") if p.stem not in ("reference", "degraded"))
        for c in stems:
            if not CONDITION_ID_RE.match(c) or c.startswith(RESERVED_PREFIX):
                raise ValueError(f"{sub.name}: invalid condition file name {c!r}.png")
        if conditions is None:
            conditions = stems
        elif stems != conditions:
            raise ValueError(f"{sub.name}: conditions {stems} differ from {conditions}")
        ref = sub / "reference.png"
        width, height = _png_size(ref, sub.name)
        outputs = {c: sub / f"{c}.png" for c in stems}
        for p in outputs.values():
            if _png_size(p, sub.name) != (width, height):
                raise ValueError(f"{sub.name}: {p.name} is not {width}x{height}")
        degraded = sub / "degraded.png" if (sub / "degraded.png").is_file() else None
        images.append(ImageEntry(sub.name, width, height, ref, outputs, degraded))
    if not images:
        raise ValueError(f"{root}: no '<image>/reference.png' folders found")
    if conditions is None or len(conditions) < 2:
        raise ValueError(f"{root}: need at least 2 conditions per image, got {conditions}")
    return _experiment(root, "", conditions, images)


def load_experiment(path: str | Path, verify_checksums: bool = True) -> Experiment:
    """Load a manifest file, a folder holding ``manifest.json``, or a plain folder layout."""
    p = Path(path)
    if p.is_file():
        return load_manifest(p, verify_checksums)
    if (p / "manifest.json").is_file():
        return load_manifest(p / "manifest.json", verify_checksums)
    return load_folder(p)


def current_experiment() -> Experiment:
    """The experiment of the current Flask app (loaded once by ``create_app``)."""
    return current_app.extensions["study_experiment"]
