"""evaluate(): one tidy row per (checkpoint, data set, image), values consistent with quality.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from restore.checkpoint import model_from_checkpoint
from restore.data import load_image
from restore.degrade import Degradation, degrade, image_seed, mod_crop
from restore.evaluate import COLUMNS, evaluate
from restore.inference import restore_image
from restore.quality import psnr


def test_tidy_csv_with_psnr_ssim_lpips(trained, image_dirs, tmp_path):
    out = tmp_path / "eval.csv"
    df = evaluate({"l1": trained["sr_l1"], "l2": trained["sr_l2"]},
                  {"test": image_dirs["test"], "valid": image_dirs["valid"]}, out, seed=3,
                  lpips_options={"pretrained": False}, progress=False)  # fmt: skip
    assert list(df.columns) == list(COLUMNS) and len(df) == 2 * 3
    assert set(df["loss"]) == {"l1", "l2"} and set(df["task"]) == {"sr"}
    assert df[["psnr", "ssim", "lpips"]].notna().all().all()
    assert pd.read_csv(out).shape == df.shape and out.with_suffix(".png").is_file()
    # recompute one PSNR by hand: Y channel, 4-pixel border crop
    row = df[(df.label == "l1") & (df.image == "rocket")].iloc[0]
    clean = mod_crop(load_image(image_dirs["test"] / "rocket.png"), 4)
    lq = degrade(clean, Degradation(task="sr"), image_seed(3, "rocket"))
    res = restore_image(model_from_checkpoint(trained["sr_l1"]), lq, 4)
    assert row.psnr == pytest.approx(psnr(res, clean, True, 4))


def test_noise_seed_and_overrides_change_inputs(trained, image_dirs):
    kw = {"lpips": False, "progress": False}
    a = evaluate({"m": trained["dn_l1"]}, {"t": image_dirs["test"]}, seed=0, **kw)
    b = evaluate({"m": trained["dn_l1"]}, {"t": image_dirs["test"]}, seed=0, **kw)
    c = evaluate(
        {"m": trained["dn_l1"]}, {"t": image_dirs["test"]}, seed=0, overrides={"sigma": 50.0}, **kw
    )
    np.testing.assert_array_equal(a.psnr, b.psnr)
    assert (c.psnr.to_numpy() < a.psnr.to_numpy()).all()  # sigma 50 is harder than the default 25
    assert np.isnan(a.lpips).all()
