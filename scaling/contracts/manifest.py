"""The ``mdf-triplets`` manifest: the images of a pairwise study, written by ``restore``, read by ``study``.

One schema, one validator. A manifest (``manifest.json``, format ``mdf-triplets``, version 1) lists
for each test image the reference, optionally the degraded input, and one output per condition
(loss), each a same-size 8-bit RGB PNG with its SHA-256:

.. code-block:: json

    {"format": "mdf-triplets", "version": 1, "task": "denoise", "created": "2026-11-22T10:00:00Z",
     "conditions": ["l2", "mdf"],
     "images": [{"id": "astronaut", "width": 256, "height": 256,
                 "reference": {"path": "astronaut/reference.png", "sha256": "..."},
                 "degraded": {"path": "astronaut/degraded.png", "sha256": "..."},
                 "outputs": {"l2": {"path": "astronaut/l2.png", "sha256": "..."}, ...}}],
     "meta": {...}}

Rules: at least two conditions; condition ids match :data:`CONDITION_ID_RE` and do not start with
``__`` (reserved for the study's attention checks); image ids match :data:`IMAGE_ID_RE` and are
unique; every image has exactly one output per condition; paths are relative, with forward
slashes, no ``.``/``..`` parts, and resolve (symlinks followed) inside the manifest's folder; the
files exist, match their checksums and are 8-bit RGB PNGs of the declared width and height.
:func:`parse_manifest` checks the structure, :func:`read_manifest` also the files;
:func:`write_manifest` refuses to write a manifest that would not parse.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from .atomic import write_json

__all__ = [
    "CONDITION_ID_RE", "FORMAT", "IMAGE_ID_RE", "VERSION", "FileRef", "Manifest", "ManifestImage",
    "file_ref", "parse_manifest", "read_manifest", "sha256_file", "write_manifest",
]

FORMAT = "mdf-triplets"
VERSION = 1
IMAGE_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
CONDITION_ID_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
RESERVED_PREFIX = "__"
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class FileRef:
    """One image file of a manifest: its path relative to the manifest's folder and its SHA-256."""

    path: str
    sha256: str


@dataclass(frozen=True)
class ManifestImage:
    """One test image: reference, optional degraded input, one output per condition."""

    id: str
    width: int
    height: int
    reference: FileRef
    outputs: dict[str, FileRef]
    degraded: FileRef | None = None


@dataclass(frozen=True)
class Manifest:
    """A parsed ``mdf-triplets`` manifest; ``root`` is the folder its paths are relative to."""

    task: str
    conditions: tuple[str, ...]
    images: tuple[ManifestImage, ...]
    created: str = ""
    meta: dict = field(default_factory=dict)
    root: Path | None = None

    def path(self, ref: FileRef) -> Path:
        """The absolute path of ``ref`` (checked to lie inside :attr:`root`)."""
        if self.root is None:
            raise ValueError("this manifest has no root folder (it was not read from a file)")
        return safe_path(self.root, ref.path, ref.path)

    def to_dict(self) -> dict[str, Any]:
        """The manifest as the JSON object :func:`write_manifest` writes."""

        def rec(r: FileRef) -> dict[str, str]:
            return {"path": r.path, "sha256": r.sha256}

        images = []
        for im in self.images:
            entry: dict[str, Any] = {"id": im.id, "width": im.width, "height": im.height,
                                     "reference": rec(im.reference)}  # fmt: skip
            if im.degraded is not None:
                entry["degraded"] = rec(im.degraded)
            entry["outputs"] = {c: rec(im.outputs[c]) for c in self.conditions}
            images.append(entry)
        return {"format": FORMAT, "version": VERSION, "task": self.task, "created": self.created,
                "conditions": list(self.conditions), "images": images, "meta": self.meta}  # fmt: skip


def safe_path(root: Path, rel: object, what: str) -> Path:
    """Resolve the manifest path ``rel`` inside ``root``; ``ValueError`` if it is unsafe."""
    if not isinstance(rel, str) or not rel:
        raise ValueError(f"{what}: expected a non-empty relative path string, got {rel!r}")
    if "\\" in rel or rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        raise ValueError(f"{what}: path {rel!r} must be relative with forward slashes")
    parts = PurePosixPath(rel).parts
    if any(p in ("..", ".", "") for p in parts):
        raise ValueError(f"{what}: path {rel!r} must not contain '..' or '.' components")
    path = (root / Path(*parts)).resolve()
    if root.resolve() not in path.parents:
        raise ValueError(f"{what}: path {rel!r} escapes the manifest folder")
    return path


def _file_ref(spec: object, what: str) -> FileRef:
    if not isinstance(spec, dict):
        raise ValueError(f"{what}: expected an object with 'path' and 'sha256', got {spec!r}")  # noqa: TRY004 (malformed content is a bad value)
    rel, digest = spec.get("path"), spec.get("sha256")
    if not isinstance(rel, str) or not rel:
        raise ValueError(f"{what}: expected a non-empty relative path string, got {rel!r}")
    if not isinstance(digest, str) or not _SHA256_RE.match(digest):
        raise ValueError(f"{what}: 'sha256' must be 64 hex digits, got {digest!r}")
    return FileRef(rel, digest.lower())


def parse_manifest(data: object, where: str = "manifest") -> Manifest:
    """Check the structure of a manifest's JSON object and return it parsed (no file access).

    Raises ``ValueError`` naming ``where`` and the first problem found.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object")  # noqa: TRY004 (malformed content is a bad value)
    if data.get("format") != FORMAT:
        raise ValueError(f"{where}: format {data.get('format')!r}, expected {FORMAT!r}")
    if data.get("version") != VERSION:
        raise ValueError(f"{where}: version {data.get('version')!r}, expected {VERSION}")
    conditions = data.get("conditions")
    if not isinstance(conditions, list) or len(conditions) < 2:
        raise ValueError(f"{where}: 'conditions' must list at least 2 condition ids")
    for c in conditions:
        if not isinstance(c, str) or not CONDITION_ID_RE.match(c) or c.startswith(RESERVED_PREFIX):
            raise ValueError(
                f"{where}: invalid condition id {c!r} (letters, digits and _.+-, not starting "
                f"with {RESERVED_PREFIX!r})"
            )
    if len(set(conditions)) != len(conditions):
        raise ValueError(f"{where}: duplicate condition ids in {conditions}")
    task = data.get("task", "")
    if not isinstance(task, str):
        raise ValueError(f"{where}: 'task' must be a string, got {task!r}")  # noqa: TRY004
    meta = data.get("meta") or {}
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: 'meta' must be an object, got {type(meta).__name__}")  # noqa: TRY004
    raw = data.get("images")
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: 'images' must be a non-empty list")
    images, seen = [], set()
    for k, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"{where}: images[{k}] is not an object")  # noqa: TRY004
        iid = item.get("id")
        if not isinstance(iid, str) or not IMAGE_ID_RE.match(iid):
            raise ValueError(f"{where}: images[{k}] has invalid id {iid!r}")
        if iid in seen:
            raise ValueError(f"{where}: duplicate image id {iid!r}")
        seen.add(iid)
        what = f"{where}: image {iid!r}"
        w, h = item.get("width"), item.get("height")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (w, h)):
            raise ValueError(f"{what}: 'width' and 'height' must be positive integers")
        outs = item.get("outputs")
        if not isinstance(outs, dict):
            raise ValueError(f"{what}: 'outputs' must be an object")  # noqa: TRY004
        missing = [c for c in conditions if c not in outs]
        if missing:
            raise ValueError(f"{what}: no output for condition(s) {missing}")
        extra = [c for c in outs if c not in conditions]
        if extra:
            raise ValueError(f"{what}: outputs for unknown condition(s) {extra}")
        degraded = item.get("degraded")
        images.append(ManifestImage(
            iid, w, h, _file_ref(item.get("reference"), f"{what} reference"),
            {c: _file_ref(outs[c], f"{what} output {c!r}") for c in conditions},
            None if degraded is None else _file_ref(degraded, f"{what} degraded"),
        ))  # fmt: skip
    created = data.get("created", "")
    return Manifest(task, tuple(conditions), tuple(images), str(created or ""), dict(meta))


def _check_png(path: Path, size: tuple[int, int], what: str) -> None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            fmt, mode, got = im.format, im.mode, im.size
    except OSError as exc:
        raise ValueError(f"{what}: {path.name} is not a readable image ({exc})") from exc
    if fmt != "PNG":
        raise ValueError(f"{what}: {path.name} is {fmt}, expected PNG")
    if mode != "RGB":
        raise ValueError(f"{what}: {path.name} has mode {mode}, expected 8-bit RGB")
    if got != size:
        raise ValueError(f"{what}: {path.name} is {got[0]}x{got[1]}, not {size[0]}x{size[1]}")


def read_manifest(path: str | Path, verify_checksums: bool = True) -> Manifest:
    """Read, parse and check a manifest file and the files it names.

    Beyond :func:`parse_manifest`: every path resolves inside the manifest's folder and exists,
    (``verify_checksums``) every file matches its SHA-256, and every image is an 8-bit RGB PNG of
    its entry's size. Raises ``ValueError`` naming the problem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ValueError(f"manifest {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"manifest {path} cannot be read: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"manifest {path} is not valid JSON: {exc}") from exc
    m = parse_manifest(data, f"manifest {path}")
    root = path.resolve().parent
    for im in m.images:
        what = f"manifest {path}: image {im.id!r}"
        refs = {"reference": im.reference, **({"degraded": im.degraded} if im.degraded else {}),
                **{f"output {c!r}": r for c, r in im.outputs.items()}}  # fmt: skip
        for key, ref in refs.items():
            f = safe_path(root, ref.path, f"{what} {key}")
            if not f.is_file():
                raise ValueError(f"{what} {key}: file {ref.path!r} does not exist in {root}")
            if verify_checksums and sha256_file(f) != ref.sha256:
                raise ValueError(f"{what} {key}: checksum mismatch for {ref.path!r} (file changed?)")
            _check_png(f, (im.width, im.height), f"{what} {key}")
    return Manifest(m.task, m.conditions, m.images, m.created, m.meta, root)


def file_ref(root: str | Path, rel: str) -> FileRef:
    """A :class:`FileRef` for the file ``root/rel`` with its checksum computed now."""
    return FileRef(rel, sha256_file(Path(root) / Path(*PurePosixPath(rel).parts)))


def write_manifest(path: str | Path, manifest: Manifest) -> Path:
    """Write ``manifest`` to ``path`` atomically, after checking that it parses.

    A manifest without ``created`` gets the current UTC time.
    """
    data = manifest.to_dict()
    if not data["created"]:
        data["created"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    parse_manifest(data, f"manifest {path}")
    return write_json(path, data)
