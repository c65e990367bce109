"""Data: patch errors, deterministic patches, augmentation, rank sharding, the .npy cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from restore.data import PatchDataset, StepBatchSampler, augment, load_eval_images
from restore.degrade import Degradation, bicubic_downsample
from restore.image_io import list_images


def _png(path, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(path)


def test_unreadable_and_too_small_images_raise_clear_errors(tmp_path):
    bad = tmp_path / "bad" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        PatchDataset([bad], Degradation(task="sr"), 32)
    _png(tmp_path / "small" / "tiny.png", (20, 20))
    with pytest.raises(ValueError, match=r"tiny.png \(20x20\) is smaller than the 32px patch"):
        PatchDataset(list_images(tmp_path / "small"), Degradation(task="sr"), 32)
    with pytest.raises(ValueError, match="multiple of the scale"):
        PatchDataset(list_images(tmp_path / "small"), Degradation(task="sr"), 18)


@pytest.mark.parametrize("task", ["sr", "denoise", "jpeg"])
def test_patches_are_deterministic_per_index_and_well_shaped(image_dirs, task):
    deg = Degradation(task=task, sigma=(0.0, 55.0))
    p = 32
    ds = PatchDataset(list_images(image_dirs["train"]), deg, p, seed=5)
    lq, hq = ds[17]
    s = deg.out_scale
    assert hq.shape == (3, p, p) and lq.shape == (3, p // s, p // s)
    assert hq.dtype == torch.float32 and 0 <= hq.min() and hq.max() <= 1
    lq2, hq2 = PatchDataset(list_images(image_dirs["train"]), deg, p, seed=5, cache=False)[17]
    assert torch.equal(lq, lq2) and torch.equal(hq, hq2)
    lq3, _ = ds[18]
    assert not torch.equal(lq, lq3)


def test_sr_patches_are_aligned_with_the_whole_image_downsampling(image_dirs):
    deg = Degradation(task="sr", scale=4)
    ds = PatchDataset(list_images(image_dirs["train"]), deg, 32, augment=False, seed=0)
    for g in range(5):
        lq, hq = ds[g]
        hq_u8 = np.round(hq.numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
        ref = bicubic_downsample(hq_u8, 4).astype(np.float32) / 255
        inner = (slice(2, -2), slice(2, -2))  # the patch's own downsampling differs at its borders
        got = lq.numpy().transpose(1, 2, 0)
        assert np.abs(got[inner] - ref[inner]).max() <= 1.5 / 255


def test_eight_augmentations_are_the_dihedral_group():
    a = np.arange(12).reshape(3, 4, 1)
    outs = {augment([a], k)[0].tobytes() + bytes(augment([a], k)[0].shape) for k in range(8)}
    assert len(outs) == 8
    assert np.array_equal(augment([a], 0)[0], a)


def test_step_batch_sampler_shards_global_batches_across_ranks():
    single = list(StepBatchSampler(2, 4, batch_size=4))
    r0 = list(StepBatchSampler(2, 4, batch_size=2, rank=0, world=2))
    r1 = list(StepBatchSampler(2, 4, batch_size=2, rank=1, world=2))
    assert single == [[8, 9, 10, 11], [12, 13, 14, 15]]
    assert [a + b for a, b in zip(r0, r1)] == single


def test_eval_images_are_seeded_by_image_id(image_dirs):
    deg = Degradation(task="denoise", sigma=25.0)
    paths = list_images(image_dirs["test"])
    a = load_eval_images(paths, deg, seed=1)
    b = load_eval_images(paths[::-1], deg, seed=1)
    assert np.array_equal(a[0][2], b[1][2])  # order does not change the noise
    c = load_eval_images(paths, Degradation(task="sr"), crop=48)
    assert c[0][1].shape == (48, 48, 3) and c[0][2].shape == (12, 12, 3)


def test_worker_processes_give_the_same_batches(image_dirs):
    from torch.utils.data import DataLoader

    ds = PatchDataset(list_images(image_dirs["train"]), Degradation(task="jpeg"), 32, seed=2)

    def batches(workers):
        loader = DataLoader(ds, batch_sampler=StepBatchSampler(3, 6, 4), num_workers=workers)
        return [lq for lq, _ in loader]

    for a, b in zip(batches(0), batches(2)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("task", ["sr", "jpeg", "denoise"])
def test_npy_cache_dir_gives_identical_patches(image_dirs, tmp_path, task):
    deg = Degradation(task=task)
    paths = list_images(image_dirs["train"])
    plain = PatchDataset(paths, deg, 32, seed=4, cache=False)
    cached = PatchDataset(paths, deg, 32, seed=4, cache=False, cache_dir=tmp_path)
    for g in range(6):
        for a, b in zip(plain[g], cached[g]):
            assert torch.equal(a, b)
    files = sorted(p.name for p in tmp_path.glob("*.npy"))
    assert len(files) == (3 if task == "denoise" else 6)  # clean (+ degraded) once per image
    again = PatchDataset(paths, deg, 32, seed=4, cache=False, cache_dir=tmp_path)
    assert torch.equal(again[3][0], plain[3][0])
    assert len(list(tmp_path.glob("*.npy"))) == len(files)  # reused, not rewritten under new names
