"""The inter-package contracts of ``scaling.contracts``: atomic writes, the triplet manifest,
task names, the Thurstone constants and the JPEG round trip."""

from __future__ import annotations

import io
import json
import os
import stat
import threading

import numpy as np
import pytest
from PIL import Image
from scipy.special import ndtr

from scaling.contracts import (
    SIGMA,
    atomic_open,
    canonical_task,
    jpeg_roundtrip,
    mdf_task,
    preference_from_jnd,
    write_bytes,
    write_csv,
    write_json,
)  # fmt: skip
from scaling.contracts import manifest as mf

# ---------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "sub" / "a.bin"
    write_bytes(target, b"one")
    write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.bin"]


def test_atomic_write_error_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_open(target, binary=False) as f:
        f.write("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_write_gives_plain_permissions_or_the_mode_asked(tmp_path):
    old = os.umask(0o022)
    try:
        write_bytes(tmp_path / "plain", b"x")
        write_bytes(tmp_path / "secret", b"x", mode=0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600


def test_concurrent_writers_of_one_path_never_mix(tmp_path):
    target = tmp_path / "shared.json"
    payloads = [{"writer": k, "data": [k] * 5000} for k in range(8)]
    threads = [threading.Thread(target=write_json, args=(target, p)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert json.loads(target.read_text()) in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["shared.json"]


def test_write_csv_writes_the_frame_without_index(tmp_path):
    import pandas as pd

    write_csv(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text() == "a,b\n1,x\n2,y\n"


# ---------------------------------------------------------------- Thurstone constants and tasks


def test_one_jnd_is_75_percent_preference():
    assert preference_from_jnd(1.0) == pytest.approx(0.75, abs=1e-4)
    for d in (-3.0, -0.2, 0.0, 0.7, 4.0):
        assert preference_from_jnd(d) == pytest.approx(float(ndtr(d / SIGMA)), abs=1e-12)


def test_task_names_and_aliases():
    assert canonical_task("sisr") == canonical_task("SR") == "sr"
    assert mdf_task("sr") == "sisr" and mdf_task("jpeg") == "jpeg"
    with pytest.raises(ValueError, match="unknown task 'blur'.*sr, denoise, jpeg"):
        canonical_task("blur")


# ---------------------------------------------------------------- JPEG round trip


def test_jpeg_roundtrip_equals_pillow_and_keeps_shape_and_dtype():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=10)
    expected = np.asarray(Image.open(buf).convert("RGB"))
    np.testing.assert_array_equal(jpeg_roundtrip(rgb, 10), expected)
    f = jpeg_roundtrip(rgb.astype(np.float32) / 255, 10)
    assert f.dtype == np.float32 and np.allclose(f * 255, expected)
    grey = rgb[:, :, :1]
    assert jpeg_roundtrip(grey, 10).shape == (24, 32, 1)
    assert jpeg_roundtrip(grey[:, :, 0], 10).shape == (24, 32)
    with pytest.raises(ValueError, match="quality must be in 1..100"):
        jpeg_roundtrip(rgb, 0)


# ---------------------------------------------------------------- the triplet manifest


def _png(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "exp"
    images = []
    for iid in ("a", "b"):
        refs = {}
        for key in ("reference", "l2", "mdf"):
            _png(root / iid / f"{key}.png", rng.integers(0, 256, (8, 12, 3), dtype=np.uint8))
            refs[key] = mf.file_ref(root, f"{iid}/{key}.png")
        images.append(mf.ManifestImage(iid, 12, 8, refs["reference"],
                                       {"l2": refs["l2"], "mdf": refs["mdf"]}))  # fmt: skip
    m = mf.Manifest("denoise", ("l2", "mdf"), tuple(images), meta={"seed": 0})
    return mf.write_manifest(root / "manifest.json", m)


def test_manifest_written_then_read_back(folder):
    m = mf.read_manifest(folder)
    assert m.conditions == ("l2", "mdf") and [im.id for im in m.images] == ["a", "b"]
    assert m.created.endswith("Z") and m.root == folder.parent.resolve()
    assert m.path(m.images[0].outputs["mdf"]) == (folder.parent / "a" / "mdf.png").resolve()
    assert mf.parse_manifest(json.loads(folder.read_text())).to_dict()["images"] == json.loads(
        folder.read_text()
    )["images"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(version=2), "version 2, expected 1"),
        (lambda d: d.update(format="x"), "format 'x', expected 'mdf-triplets'"),
        (lambda d: d.update(conditions=["l2"]), "at least 2"),
        (lambda d: d.update(conditions=["l2", "__x"]), "invalid condition id '__x'"),
        (lambda d: d["images"][0]["outputs"].pop("l2"), "no output for condition"),
        (lambda d: d["images"][1].update(id="a"), "duplicate image id 'a'"),
        (lambda d: d["images"][0].update(width=0), "positive integers"),
        (lambda d: d["images"][0]["reference"].update(sha256="z"), "64 hex digits"),
        (lambda d: d["images"][0]["reference"].update(path="../x.png"), "'..'"),
        (lambda d: d["images"][0]["reference"].update(path="/etc/passwd"), "relative"),
        (lambda d: d["images"][0]["reference"].update(path="a/none.png"), "does not exist"),
        (lambda d: d["images"][0]["reference"].update(sha256="0" * 64), "checksum mismatch"),
        (lambda d: d["images"][0].update(width=13), "not 13x8"),
    ],
)
def test_bad_manifests_are_refused_naming_the_problem(folder, edit, message):
    data = json.loads(folder.read_text())
    edit(data)
    folder.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message):
        mf.read_manifest(folder)


def test_an_invalid_manifest_is_never_written(tmp_path):
    bad = mf.Manifest("sr", ("l2", "l2"), ())
    with pytest.raises(ValueError, match="duplicate condition ids"):
        mf.write_manifest(tmp_path / "manifest.json", bad)
    assert not (tmp_path / "manifest.json").exists()
