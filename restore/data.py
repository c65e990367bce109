"""Training patches with 8-fold augmentation, the step-indexed batch sampler, validation images.

Training samples are a pure function of ``(seed, global sample index)``: the image, the patch
position, the flip/rotation and the noise are drawn from ``np.random.default_rng([seed, index])``.
So a run resumed at step ``s`` sees exactly the patches it would have seen, whatever the number of
worker processes or DDP ranks. Folders and image files are read by :mod:`restore.image_io`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .degrade import (
    Degradation,
    add_gaussian_noise,
    degrade,
    image_seed,
    mod_crop,
    to_float,
    to_uint8,
)
from .image_io import image_id, image_size, load_image, save_npy


def augment(arrays: list[np.ndarray], k: int) -> list[np.ndarray]:
    """One of the 8 dihedral transforms (k in 0..7): rotate by 90*(k % 4) degrees, then flip if k >= 4."""
    out = []
    for a in arrays:
        a = np.rot90(a, k % 4, axes=(0, 1))
        if k >= 4:
            a = a[:, ::-1]
        out.append(np.ascontiguousarray(a))
    return out


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float()


class PatchDataset(Dataset):
    """Random training patches (degraded input, clean target) as float32 CHW tensors in [0, 1].

    ``patch_size`` is the size of the clean (HR) patch: 96 for SR (Ledig et al.; Lim et al.),
    40-50 for DnCNN (Zhang et al.). Index ``g`` is a global sample index; sample ``g`` depends only on
    ``(seed, g)`` (see the module docstring). Deterministic degradations (bicubic, JPEG) are applied to
    the whole image, then aligned patches are cut, so patches match the saved test-set degradation;
    noise is drawn per patch. ``cache`` keeps decoded images in memory (per worker);
    ``cache_dir`` instead stores the decoded clean image and its deterministic degradation once as
    ``.npy`` files (written atomically, keyed by file path, size, mtime and degradation) and reads
    them memory-mapped, so DIV2K-size images are neither decoded nor resized again (EDSR's "bin"
    idea); all workers and ranks share them.
    """

    def __init__(
        self,
        paths: list[Path],
        degradation: Degradation,
        patch_size: int,
        channels: int = 3,
        augment: bool = True,
        seed: int = 0,
        cache: bool = True,
        cache_dir: str | Path | None = None,
    ) -> None:
        if not paths:
            raise ValueError("PatchDataset needs at least one image")
        s = degradation.out_scale
        if patch_size < 8 or patch_size % s:
            raise ValueError(
                f"patch_size must be >= 8 and a multiple of the scale {s}, got {patch_size}"
            )
        for p in paths:
            w, h = image_size(p)
            if min(w, h) < patch_size:
                raise ValueError(
                    f"image {p} ({w}x{h}) is smaller than the {patch_size}px patch size"
                )
        self.paths, self.deg, self.patch_size = list(paths), degradation, patch_size
        self.channels, self.augment, self.seed, self.cache = channels, augment, seed, cache
        self._cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self.cache_dir = Path(cache_dir) if cache_dir else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self.paths)  # number of source images; sample indices are unbounded

    def _cache_key(self, i: int) -> str:
        p = Path(self.paths[i]).resolve()
        st = p.stat()
        det = {"task": self.deg.task, "scale": self.deg.scale, "quality": self.deg.quality}
        if self.deg.task == "denoise":
            det = {"task": "denoise"}  # noise is drawn per patch, only the clean image is cached
        text = json.dumps([str(p), st.st_size, st.st_mtime_ns, self.channels, det], sort_keys=True)
        return f"{image_id(p)}-{hashlib.sha1(text.encode()).hexdigest()[:16]}"

    def _pair(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        if i in self._cache:
            return self._cache[i]
        if self.cache_dir is None:
            return self._compute_pair(i)
        key = self._cache_key(i)
        fc, fl = self.cache_dir / f"{key}.clean.npy", self.cache_dir / f"{key}.lq.npy"
        want_lq = self.deg.task != "denoise"
        if not (fc.is_file() and (fl.is_file() or not want_lq)):
            clean, lq = self._compute_pair(i)
            if want_lq:  # lq first: clean's presence marks a complete entry
                save_npy(lq, fl, fsync=False)
            save_npy(clean, fc, fsync=False)
        clean = np.load(fc, mmap_mode="r")
        lq = np.load(fl, mmap_mode="r") if want_lq else None
        return clean, lq

    def _compute_pair(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        clean = load_image(self.paths[i], self.channels)
        lq = None
        if self.deg.task == "sr":
            clean = mod_crop(clean, self.deg.scale)
            lq = to_uint8(degrade(clean, self.deg, np.random.default_rng(0)))  # exact: 8-bit LR
        elif self.deg.task == "jpeg":
            lq = to_uint8(degrade(clean, self.deg, np.random.default_rng(0)))  # exact: decoded JPEG
        if self.cache:
            self._cache[i] = (clean, lq)
        return clean, lq

    def __getitem__(self, g: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([int(self.seed), int(g)])
        i = int(rng.integers(len(self.paths)))
        clean, lq = self._pair(i)
        s, p = self.deg.out_scale, self.patch_size
        lp = p // s
        h, w = clean.shape[0] // s, clean.shape[1] // s  # in LQ pixels
        y, x = int(rng.integers(h - lp + 1)), int(rng.integers(w - lp + 1))
        hq = to_float(clean[y * s : y * s + p, x * s : x * s + p])
        if lq is None:  # denoise: noise per patch
            lqp = add_gaussian_noise(hq, self.deg.sigma, rng)
        else:
            lqp = to_float(lq[y : y + lp, x : x + lp])
        k = int(rng.integers(8)) if self.augment else 0
        lqp, hq = augment([lqp, hq], k)
        return _chw(lqp), _chw(hq)


class StepBatchSampler(Sampler[list[int]]):
    """Yields, for steps ``start..stop-1``, this rank's share of each global batch of sample indices.

    Step t of the run covers global samples ``[t * B, (t + 1) * B)`` with ``B = batch_size * world``;
    rank r takes ``[t * B + r * batch_size, t * B + (r + 1) * batch_size)``.
    """

    def __init__(
        self, start: int, stop: int, batch_size: int, rank: int = 0, world: int = 1
    ) -> None:
        self.start, self.stop, self.bs, self.rank, self.world = start, stop, batch_size, rank, world

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self):
        B = self.bs * self.world
        for t in range(self.start, self.stop):
            base = t * B + self.rank * self.bs
            yield list(range(base, base + self.bs))


def load_eval_images(
    paths: list[Path],
    degradation: Degradation,
    channels: int = 3,
    seed: int = 0,
    crop: int | None = None,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Validation/test images degraded once with a fixed seed: [(id, clean uint8, degraded float32)].

    ``crop`` (optional) takes a centre crop of the clean image (a multiple of the scale) first, to
    keep validation cheap. Noise depends only on (seed, image id), see :func:`restore.degrade.image_seed`.
    """
    out = []
    s = degradation.out_scale
    for p in paths:
        clean = load_image(p, channels)
        if crop:
            c = crop - crop % s
            h, w = clean.shape[:2]
            if min(h, w) >= c:
                y, x = (h - c) // 2, (w - c) // 2
                clean = clean[y : y + c, x : x + c]
        clean = mod_crop(clean, s)
        if min(clean.shape[:2]) < max(8, 2 * s):
            raise ValueError(f"image {p} is too small ({clean.shape[1]}x{clean.shape[0]})")
        iid = image_id(p)
        out.append((iid, clean, degrade(clean, degradation, image_seed(seed, iid))))
    return out


__all__ = ["PatchDataset", "StepBatchSampler", "augment", "load_eval_images"]
