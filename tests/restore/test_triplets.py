"""Triplet export: the manifest contract with the study app, and the checks of load_manifest."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from restore.triplets import export_triplets, load_manifest
from scaling.contracts.manifest import read_manifest, sha256_file


@pytest.fixture(scope="module")
def sr_manifest(trained, image_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp("triplets")
    return export_triplets({"l1": trained["sr_l1"], "l2": trained["sr_l2"]}, image_dirs["test"], out,
                           crop=48, seed=0, progress=False)  # fmt: skip


def test_manifest_follows_the_contract(sr_manifest):
    m = json.loads(sr_manifest.read_text())
    assert m["format"] == "mdf-triplets" and m["version"] == 1 and m["task"] == "sr"
    assert m["conditions"] == ["l1", "l2"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m["created"])
    assert [e["id"] for e in m["images"]] == ["immunohistochemistry", "rocket"]
    root = sr_manifest.parent
    for e in m["images"]:
        assert (e["width"], e["height"]) == (48, 48)
        recs = [e["reference"], e["degraded"], *e["outputs"].values()]
        assert set(e["outputs"]) == {"l1", "l2"}
        for r in recs:
            assert not r["path"].startswith("/") and ".." not in r["path"] and "\\" not in r["path"]
            f = root / r["path"]
            assert sha256_file(f) == r["sha256"]
            with Image.open(f) as im:
                assert (im.format, im.mode, im.size) == ("PNG", "RGB", (48, 48))
    assert load_manifest(sr_manifest)["conditions"] == ["l1", "l2"]
    assert load_manifest(sr_manifest) == read_manifest(sr_manifest).to_dict() == m  # the contract's


def test_outputs_differ_between_conditions_and_reference_is_the_clean_crop(sr_manifest, image_dirs):
    root = sr_manifest.parent
    l1 = np.asarray(Image.open(root / "rocket" / "l1.png"))
    l2 = np.asarray(Image.open(root / "rocket" / "l2.png"))
    assert not np.array_equal(l1, l2)
    ref = np.asarray(Image.open(root / "rocket" / "reference.png"))
    clean = np.asarray(Image.open(image_dirs["test"] / "rocket.png"))  # 72 x 80: crop at (12, 16)
    np.testing.assert_array_equal(ref, clean[12:60, 16:64])


def _tamper(manifest, tmp_path, edit):
    m = json.loads(manifest.read_text())
    edit(m)
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(manifest.parent, dst)
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst / "manifest.json"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(version=2), "version 2, expected 1"),
        (lambda m: m.update(format="other"), "format 'other', expected 'mdf-triplets'"),
        (lambda m: m["images"][0]["outputs"].pop("l2"), "no output for"),
        (lambda m: m["images"][0]["reference"].update(path="../x.png"), "must not contain '..'"),
        (lambda m: m["images"][0]["reference"].update(path="/etc/passwd"), "must be relative"),
        (lambda m: m["images"][0]["reference"].update(sha256="0" * 64), "checksum mismatch"),
        (lambda m: m["images"][0]["reference"].update(path="nope.png"), "does not exist"),
        (lambda m: m["images"][1].update(id=m["images"][0]["id"]), "duplicate image id"),
        (lambda m: m["images"][0].update(width=50), "is 48x48, not 50x48"),
    ],
    ids=["version", "format", "missing-output", "dotdot", "absolute", "checksum", "missing-file",
         "duplicate-id", "size"],
)  # fmt: skip
def test_load_manifest_rejects_bad_manifests(sr_manifest, tmp_path, edit, message):
    with pytest.raises(ValueError, match=message):
        load_manifest(_tamper(sr_manifest, tmp_path, edit))


def test_denoise_triplets_and_mixed_architectures(trained, image_dirs, tmp_path):
    path = export_triplets({"l1": trained["dn_l1"], "l2": trained["dn_l2"]}, image_dirs["test"],
                           tmp_path / "dn", crop=None, progress=False)  # fmt: skip
    m = load_manifest(path)
    assert m["task"] == "denoise" and m["images"][1]["width"] == 80  # whole rocket crop (72 x 80)
    with pytest.raises(ValueError, match="holds a 'srresnet' network"):
        export_triplets(
            {"a": trained["sr_l1"], "b": trained["srres_l1"]}, image_dirs["test"], tmp_path / "x"
        )
    with pytest.raises(ValueError, match="condition id"):
        export_triplets({"a b": trained["sr_l1"]}, image_dirs["test"], tmp_path / "y")
    with pytest.raises(ValueError, match="condition id '__x'"):  # reserved for attention checks
        export_triplets({"__x": trained["sr_l1"], "b": trained["sr_l2"]}, image_dirs["test"],
                        tmp_path / "z")  # fmt: skip
    with pytest.raises(ValueError, match="at least 2 conditions, got 1"):
        export_triplets({"a": trained["sr_l1"]}, image_dirs["test"], tmp_path / "w")
    assert not (tmp_path / "w").exists()  # refused before anything is written
