"""The experiment definition: which images and which conditions (losses) a study compares.

An experiment is read either from the triplet manifest that ``restore`` exports (``manifest.json``,
format ``mdf-triplets`` version 1, see the README) or from a plain folder layout
(``<image>/reference.png`` and ``<image>/<condition>.png``). Every path is resolved inside the
experiment folder; unsafe paths, missing files and checksum mismatches raise ``ValueError``.

Reference: the crowd study of Mustafa et al., "Training a Task-Specific Image Reconstruction
Loss", WACV 2022, section 4.3 (reference image shown with two restorations of it).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

__all__ = ["Experiment", "ImageEntry", "load_experiment", "load_folder", "load_manifest"]

MANIFEST_FORMAT = "mdf-triplets"
MANIFEST_VERSION = 1
IMAGE_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
CONDITION_ID_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
#: Condition ids reserved for attention checks; manifests may not use names starting with "__".
CHECK_REFERENCE = "__reference__"
CHECK_DISTORTED = "__distorted__"


@dataclass(frozen=True)
class ImageEntry:
    """One test image: its reference and one restored output per condition (absolute paths)."""

    id: str
    width: int
    height: int
    reference: Path
    outputs: dict[str, Path]
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _safe_path(root: Path, rel: object, what: str) -> Path:
    """Resolve a manifest path inside ``root``; reject absolute paths, ``..`` and backslashes."""
    if not isinstance(rel, str) or not rel:
        raise ValueError(f"{what}: expected a non-empty relative path string, got {rel!r}")
    if "\\" in rel or rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        raise ValueError(f"{what}: path {rel!r} must be relative with forward slashes")
    parts = PurePosixPath(rel).parts
    if any(p in ("..", ".") or p == "" for p in parts):
        raise ValueError(f"{what}: path {rel!r} must not contain '..' or '.' components")
    path = (root / Path(*parts)).resolve()
    if root.resolve() not in path.parents:
        raise ValueError(f"{what}: path {rel!r} escapes the manifest folder")
    if not path.is_file():
        raise ValueError(f"{what}: file {rel!r} does not exist in {root}")
    return path


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


def _fingerprint(task: str, conditions, images) -> str:
    payload = {
        "task": task,
        "conditions": list(conditions),
        "images": [[e.id, sorted(e.outputs)] for e in images],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _check_file(root: Path, spec: object, what: str, verify: bool) -> Path:
    if not isinstance(spec, dict):
        raise ValueError(f"{what}: expected an object with 'path' and 'sha256', got {spec!r}")  # noqa: TRY004 (malformed file content is a bad value)
    path = _safe_path(root, spec.get("path"), what)
    digest = spec.get("sha256")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
        raise ValueError(f"{what}: 'sha256' must be 64 hex digits, got {digest!r}")
    if verify and _sha256(path) != digest.lower():
        raise ValueError(f"{what}: checksum mismatch for {spec['path']!r} (file changed?)")
    return path


def load_manifest(path: str | Path, verify_checksums: bool = True) -> Experiment:
    """Read and validate a ``mdf-triplets`` v1 manifest written by ``restore``.

    Checks the format and version, id syntax, that every image has an output for every condition,
    that every path is safe and exists, that the SHA-256 checksums match and that all images of an
    entry are 8-bit RGB PNGs of the declared size. Raises ``ValueError`` naming the problem.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValueError(f"manifest {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"manifest {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"manifest {path}: expected a JSON object")  # noqa: TRY004 (malformed file content is a bad value)
    if data.get("format") != MANIFEST_FORMAT:
        raise ValueError(
            f"manifest {path}: format {data.get('format')!r}, expected {MANIFEST_FORMAT!r}"
        )
    if data.get("version") != MANIFEST_VERSION:
        raise ValueError(
            f"manifest {path}: version {data.get('version')!r}, expected {MANIFEST_VERSION}"
        )
    root = path.resolve().parent
    conditions = data.get("conditions")
    if not isinstance(conditions, list) or len(conditions) < 2:
        raise ValueError(f"manifest {path}: 'conditions' must list at least 2 condition ids")
    for c in conditions:
        if not isinstance(c, str) or not CONDITION_ID_RE.match(c) or c.startswith("__"):
            raise ValueError(f"manifest {path}: invalid condition id {c!r}")
    if len(set(conditions)) != len(conditions):
        raise ValueError(f"manifest {path}: duplicate condition ids in {conditions}")
    raw_images = data.get("images")
    if not isinstance(raw_images, list) or not raw_images:
        raise ValueError(f"manifest {path}: 'images' must be a non-empty list")
    images = []
    seen = set()
    for k, item in enumerate(raw_images):
        if not isinstance(item, dict):
            raise ValueError(f"manifest {path}: images[{k}] is not an object")  # noqa: TRY004 (malformed file content is a bad value)
        iid = item.get("id")
        if not isinstance(iid, str) or not IMAGE_ID_RE.match(iid):
            raise ValueError(f"manifest {path}: images[{k}] has invalid id {iid!r}")
        if iid in seen:
            raise ValueError(f"manifest {path}: duplicate image id {iid!r}")
        seen.add(iid)
        what = f"image {iid!r}"
        width, height = item.get("width"), item.get("height")
        if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
            raise ValueError(f"{what}: 'width' and 'height' must be positive integers")
        ref = _check_file(root, item.get("reference"), f"{what} reference", verify_checksums)
        degraded = None
        if item.get("degraded") is not None:
            degraded = _check_file(root, item["degraded"], f"{what} degraded", verify_checksums)
        outs = item.get("outputs")
        if not isinstance(outs, dict):
            raise ValueError(f"{what}: 'outputs' must be an object")  # noqa: TRY004 (malformed file content is a bad value)
        missing = [c for c in conditions if c not in outs]
        if missing:
            raise ValueError(f"{what}: no output for condition(s) {missing}")
        extra = [c for c in outs if c not in conditions]
        if extra:
            raise ValueError(f"{what}: outputs for unknown condition(s) {extra}")
        outputs = {
            c: _check_file(root, outs[c], f"{what} output {c!r}", verify_checksums)
            for c in conditions
        }
        for p in [ref, *outputs.values()]:
            if _png_size(p, what) != (width, height):
                raise ValueError(f"{what}: {p.name} is not {width}x{height}")
        images.append(ImageEntry(iid, width, height, ref, outputs, degraded))
    task = str(data.get("task", ""))
    return Experiment(
        root=root,
        task=task,
        conditions=tuple(conditions),
        images=tuple(images),
        fingerprint=_fingerprint(task, conditions, images),
        meta=dict(data.get("meta") or {}),
    )


def load_folder(folder: str | Path) -> Experiment:
    """Read the plain folder layout ``<image>/reference.png`` + ``<image>/<condition>.png``.

    Conditions are the sorted file stems other than ``reference`` and ``degraded``; every image
    folder must have all of them. Raises ``ValueError`` on an empty or inconsistent folder.
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
            if not CONDITION_ID_RE.match(c) or c.startswith("__"):
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
    return Experiment(
        root, "", tuple(conditions), tuple(images), _fingerprint("", conditions, images)
    )


def load_experiment(path: str | Path, verify_checksums: bool = True) -> Experiment:
    """Load a manifest file, a folder holding ``manifest.json``, or a plain folder layout."""
    p = Path(path)
    if p.is_file():
        return load_manifest(p, verify_checksums)
    if (p / "manifest.json").is_file():
        return load_manifest(p / "manifest.json", verify_checksums)
    return load_folder(p)
