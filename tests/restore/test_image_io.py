"""Image files: folder layouts, reading and writing images, degraded test-set folders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from restore.degrade import Degradation, degrade, image_seed
from restore.image_io import (
    degrade_folder,
    image_id,
    list_images,
    load_degraded_folder,
    load_image,
    save_png,
)


def _png(path, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(path)


def test_layouts_find_the_right_split(tmp_path):
    _png(tmp_path / "div" / "DIV2K_train_HR" / "0001.png")
    _png(tmp_path / "div" / "DIV2K_valid_HR" / "0801.png")
    _png(tmp_path / "bsd" / "BSDS500" / "data" / "images" / "train" / "2092.jpg")
    _png(tmp_path / "bsd" / "BSDS500" / "data" / "images" / "test" / "100007.jpg")
    _png(tmp_path / "dped" / "iphone" / "training_data" / "canon" / "0.jpg")
    _png(tmp_path / "dped" / "iphone" / "test_data" / "patches" / "canon" / "5.jpg")
    _png(tmp_path / "flat" / "a" / "x.png")
    (tmp_path / "flat" / "notes.txt").write_text("not an image")
    assert [p.name for p in list_images(tmp_path / "div", "auto", "train")] == ["0001.png"]
    assert [p.name for p in list_images(tmp_path / "div", "div2k", "valid")] == ["0801.png"]
    assert [p.name for p in list_images(tmp_path / "bsd", "auto", "test")] == ["100007.jpg"]
    assert [p.name for p in list_images(tmp_path / "dped", "auto", "train")] == ["0.jpg"]
    assert [p.name for p in list_images(tmp_path / "dped", "dped", "test")] == ["5.jpg"]
    assert [p.name for p in list_images(tmp_path / "flat")] == ["x.png"]
    with pytest.raises(ValueError, match="no images found"):
        list_images(tmp_path / "div", "bsd500")
    with pytest.raises(ValueError, match="does not exist"):
        list_images(tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown layout"):
        list_images(tmp_path / "flat", "imagenet")


def test_unreadable_images_raise_clear_errors(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        load_image(bad)


def test_load_image_converts_grey_and_alpha(tmp_path):
    Image.fromarray(np.full((5, 6, 4), 200, np.uint8)).save(tmp_path / "rgba.png")
    assert load_image(tmp_path / "rgba.png").shape == (5, 6, 3)
    assert load_image(tmp_path / "rgba.png", 1).shape == (5, 6, 1)
    assert image_id("a b/c d.png") == "c_d"
    assert image_id("caf\u00e9 1.png") == "caf__1"  # ASCII only: a valid manifest image id


def test_save_png_is_atomic_and_writes_8_bit(tmp_path):
    path = tmp_path / "sub" / "x.png"
    save_png(np.full((4, 5, 1), 0.5, np.float32), path, rgb=True)
    with Image.open(path) as im:
        assert (im.mode, im.size) == ("RGB", (5, 4)) and im.getpixel((0, 0)) == (128, 128, 128)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save_png(np.zeros((4, 5, 2, 2), np.uint8), path)  # not an image: nothing replaced
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["x.png"]


def test_degrade_folder_is_reproducible_and_readable(image_dirs, tmp_path):
    paths = list_images(image_dirs["test"])
    deg = Degradation(task="denoise", sigma=25.0)
    a = degrade_folder(paths, tmp_path / "a", deg, seed=7)
    b = degrade_folder(paths, tmp_path / "b", deg, seed=7)
    c = degrade_folder(paths, tmp_path / "c", deg, seed=8)
    (ma, ia), (_, ib), (_, ic) = (
        load_degraded_folder(a),
        load_degraded_folder(b),
        load_degraded_folder(c),
    )
    assert ma["seed"] == 7 and [i for i, _, _ in ia] == ["immunohistochemistry", "rocket"]
    np.testing.assert_array_equal(ia[0][2], ib[0][2])
    assert not np.array_equal(ia[0][2], ic[0][2])
    assert ia[0][2].dtype == np.float32  # noise kept unquantised and unclipped
    # same noise as on-the-fly degradation with the per-image seed
    np.testing.assert_array_equal(ia[1][2], degrade(ia[1][1], deg, image_seed(7, "rocket")))
    sr = load_degraded_folder(
        degrade_folder(paths, tmp_path / "sr", Degradation(task="sr"), seed=0)
    )[1]
    assert sr[0][2].shape[0] * 4 == sr[0][1].shape[0]


def test_load_degraded_folder_rejects_other_folders(tmp_path):
    with pytest.raises(ValueError, match="not a degraded test set"):
        load_degraded_folder(tmp_path)
