"""Loading the triplet manifest and the plain folder layout, and rejecting bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from study.experiment import load_experiment, load_folder, load_manifest


def _copy(h, tmp_path):
    man = h.make_experiment(tmp_path / "exp")
    return man, json.loads(man.read_text())


def test_manifest_is_loaded_with_conditions_images_and_absolute_paths(h, tmp_path):
    man, _ = _copy(h, tmp_path)
    exp = load_manifest(man)
    assert exp.conditions == ("l2", "ms_ssim_l1", "mdf")
    assert [e.id for e in exp.images] == ["astronaut", "coffee"]
    assert exp.images[0].outputs["mdf"] == (tmp_path / "exp" / "astronaut" / "mdf.png").resolve()
    assert exp.path_for("coffee", "__reference__").name == "reference.png"
    assert load_experiment(man.parent).fingerprint == exp.fingerprint


@pytest.mark.parametrize(
    "desc,mutate,message",
    [
        ("wrong format", lambda d: d.update(format="other"), "format"),
        ("wrong version", lambda d: d.update(version=2), "version"),
        ("one condition", lambda d: d.update(conditions=["l2"]), "at least 2"),
        (
            "bad condition id",
            lambda d: d.update(conditions=["l2", "a b", "mdf"]),
            "invalid condition",
        ),
        ("parent path", lambda d: d["images"][0]["outputs"]["l2"].update(path="../x.png"), "'..'"),
        (
            "absolute path",
            lambda d: d["images"][0]["reference"].update(path="/etc/passwd"),
            "relative",
        ),
        ("backslash", lambda d: d["images"][0]["reference"].update(path="a\\\\b.png"), "relative"),
        (
            "missing file",
            lambda d: d["images"][0]["outputs"]["l2"].update(path="astronaut/nope.png"),
            "does not exist",
        ),
        ("checksum", lambda d: d["images"][0]["outputs"]["l2"].update(sha256="0" * 64), "checksum"),
        ("missing output", lambda d: d["images"][0]["outputs"].pop("mdf"), "no output"),
        ("duplicate id", lambda d: d["images"][1].update(id="astronaut"), "duplicate image id"),
        ("bad image id", lambda d: d["images"][1].update(id="../x"), "invalid id"),
        ("wrong size", lambda d: d["images"][0].update(width=50), "not 50x48"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_manifests_are_rejected_with_a_clear_error(h, tmp_path, desc, mutate, message):
    man, data = _copy(h, tmp_path)
    mutate(data)
    man.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message):
        load_manifest(man)


def test_not_json_and_missing_manifest_raise_value_error(tmp_path):
    (tmp_path / "m.json").write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_manifest(tmp_path / "m.json")
    with pytest.raises(ValueError, match="does not exist"):
        load_manifest(tmp_path / "absent.json")


def test_symlink_escaping_the_folder_is_rejected(h, tmp_path):
    man, data = _copy(h, tmp_path)
    outside = tmp_path / "outside.png"
    shutil.copy(man.parent / "astronaut" / "l2.png", outside)
    (man.parent / "astronaut" / "link.png").symlink_to(outside)
    data["images"][0]["outputs"]["l2"]["path"] = "astronaut/link.png"
    man.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="escapes"):
        load_manifest(man)


def test_folder_layout_is_loaded_and_inconsistent_folders_rejected(h, tmp_path):
    man, _ = _copy(h, tmp_path)
    man.unlink()
    exp = load_folder(man.parent)
    assert exp.conditions == ("l2", "mdf", "ms_ssim_l1")  # sorted file stems
    (man.parent / "coffee" / "mdf.png").unlink()
    with pytest.raises(ValueError, match="differ"):
        load_folder(man.parent)
    with pytest.raises(ValueError, match="no '<image>/reference.png'"):
        load_folder(tmp_path / "exp" / "astronaut")
