"""MDF weight files: the project format (atomic, plain tensors), legacy-pickle loading through
the restricted unpickler, conversion, and the shipped files' metadata."""

from __future__ import annotations

import os
import pickle
import sys
import zipfile

import pytest
import torch
from torch import nn

from metrics import mdf_weights
from metrics.mdf import mdf
from metrics.mdf_weights import (
    convert_legacy,
    load_discriminators,
    load_legacy_discriminators,
    save_discriminators,
)


def test_save_load_roundtrip_plain_tensors(tmp_path, tiny_discriminators):
    path = tmp_path / "w" / "mdf.pt"
    save_discriminators(path, tiny_discriminators, {"task": "jpeg", "seed": "bricks.png"})
    raw = torch.load(path, weights_only=True)  # loadable without trusting code
    assert raw["format"] == "mdf-toolkit/discriminators" and len(raw["discriminators"]) == 4
    discs, meta = load_discriminators(path)
    assert meta == {"task": "jpeg", "seed": "bricks.png"}
    assert [d.channels for d in discs] == [4, 4, 8, 8]
    for a, b in zip(discs, tiny_discriminators):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and torch.equal(va, vb)
    assert os.listdir(path.parent) == ["mdf.pt"]  # no temporary file left


def test_save_rejects_bad_arguments(tmp_path, tiny_discriminators):
    with pytest.raises(ValueError, match="no discriminators"):
        save_discriminators(tmp_path / "a.pt", [])
    with pytest.raises(TypeError, match="Discriminator"):
        save_discriminators(tmp_path / "a.pt", [nn.Conv2d(3, 3, 3)])
    with pytest.raises(ValueError, match="task"):
        save_discriminators(tmp_path / "a.pt", tiny_discriminators, {"task": "deblur"})


def test_load_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_discriminators(tmp_path / "nope.pt")
    torch.save({"model": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an MDF discriminator file"):
        load_discriminators(tmp_path / "other.pt")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="not a legacy MDF discriminator file"):
        load_discriminators(tmp_path / "junk.pth")


# ----------------------------------------------------------------------- legacy pickles


def test_legacy_pickle_loads_without_singan_installed(tmp_path, write_legacy, monkeypatch):
    path = tmp_path / "Ds_FAKE.pth"
    originals = write_legacy(path)
    assert not zipfile.is_zipfile(path)
    monkeypatch.delitem(sys.modules, "SinGAN")
    monkeypatch.delitem(sys.modules, "SinGAN.models")
    with pytest.raises((ModuleNotFoundError, AttributeError, pickle.UnpicklingError)):
        torch.load(path, weights_only=False)  # plain torch.load needs the package
    discs = load_legacy_discriminators(path)
    assert [d.channels for d in discs] == [4, 8]
    x = torch.rand(2, 3, 23, 19)
    for d, o in zip(discs, originals):
        torch.testing.assert_close(d(x), o(x))
        h = o.head(x)
        torch.testing.assert_close(d.features(x)[0], h)
    assert int(discs[0].head.norm.num_batches_tracked) == 3000


def test_legacy_pickle_with_foreign_global_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save([Evil()], path, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="forbidden global"):
        load_legacy_discriminators(path)
    assert not marker.exists()


def test_convert_legacy_writes_project_format(tmp_path, write_legacy):
    src, dst = tmp_path / "Ds_FAKE.pth", tmp_path / "out" / "fake.pt"
    write_legacy(src)
    convert_legacy(src, dst, task="denoise")
    discs, meta = load_discriminators(dst)
    assert meta["task"] == "denoise" and meta["source"] == "Ds_FAKE.pth"
    legacy = load_legacy_discriminators(src)
    x, y = torch.rand(1, 3, 30, 30), torch.rand(1, 3, 30, 30)
    assert mdf(x, y, discs, num_scales=2).item() == mdf(x, y, legacy, num_scales=2).item()
    with pytest.raises(ValueError, match="task"):
        convert_legacy(src, dst, task="deblur")


def test_a_failed_save_leaves_the_previous_file(tmp_path, tiny_discriminators, monkeypatch):
    path = tmp_path / "w.pt"
    save_discriminators(path, tiny_discriminators, {"task": "jpeg"})
    before = path.read_bytes()

    def broken(obj, f):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(mdf_weights.torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_discriminators(path, tiny_discriminators[:2], {"task": "jpeg"})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["w.pt"]


def test_the_shipped_files_metadata_still_reads():
    for task in ("sisr", "denoise", "jpeg"):
        discs, meta = load_discriminators(mdf_weights.shipped_weights(task))
        assert meta["task"] == task and len(discs) == len(meta["pyramid"])
    assert mdf_weights.shipped_weights("sr") == mdf_weights.shipped_weights("sisr")
