"""The TID2013 pipeline on a small synthetic data set in the TID2013 layout, built from
scikit-image images with real distortions (Gaussian noise, Gaussian blur, PIL's JPEG codec,
contrast reduction)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import skimage.data
from click.testing import CliRunner
from PIL import Image
from scipy import ndimage

from metrics import iqa

REFS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry"]
H, W = 64, 96


def _distort(img: np.ndarray, kind: int, level: int, rng) -> np.ndarray:
    f = img.astype(np.float64)
    if kind == 1:  # additive Gaussian noise
        f = f + rng.normal(0, 6 * level, f.shape)
    elif kind == 2:  # Gaussian blur
        f = ndimage.gaussian_filter(f, sigma=(0.5 * level, 0.5 * level, 0))
    elif kind == 3:  # JPEG, real codec
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=[60, 30, 15, 5][level - 1])
        f = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float64)
    elif kind == 4:  # contrast reduction
        f = (f - f.mean()) * (1 - 0.15 * level) + f.mean()
    return np.clip(np.round(f), 0, 255).astype(np.uint8)


def build_synthetic_tid(root, seed=0):
    """A TID2013-layout folder: 6 contents x 4 distortion types x 4 levels, 96x64 px, with
    mixed-case file names and a synthetic MOS that falls with the distortion level."""
    rng = np.random.default_rng(seed)
    (root / "reference_images").mkdir(parents=True)
    (root / "distorted_images").mkdir()
    lines, stds = [], []
    for r, name in enumerate(REFS, 1):
        img = getattr(skimage.data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        img = np.asarray(Image.fromarray(img[..., :3]).resize((W, H), Image.LANCZOS))
        ref_name = f"I{r:02d}.BMP" if r < len(REFS) else f"i{r:02d}.bmp"
        Image.fromarray(img).save(root / "reference_images" / ref_name)
        for d in range(1, 5):
            for lev in range(1, 5):
                fname = f"i{r:02d}_{d:02d}_{lev}.bmp"
                disk = fname.upper() if (r + d) % 3 == 0 else fname
                Image.fromarray(_distort(img, d, lev, rng)).save(root / "distorted_images" / disk)
                mos = 7.0 - (0.9 + 0.1 * d) * lev + 0.3 * rng.normal()
                lines.append(f"{mos:.5f} {fname}")
                stds.append(f"{0.5 + 0.1 * rng.random():.5f}")
    (root / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    (root / "mos_std.txt").write_text("\n".join(stds) + "\n")
    return root


@pytest.fixture(scope="module")
def tid(tmp_path_factory):
    return build_synthetic_tid(tmp_path_factory.mktemp("tid") / "tid2013")


def test_loader_reads_the_layout_case_insensitively(tid):
    df = iqa.load_tid2013(tid)
    assert len(df) == 6 * 4 * 4
    assert set(df["ref_id"]) == set(range(1, 7)) and set(df["distortion"]) == {1, 2, 3, 4}
    upper = df[df["image"] == "i02_01_1.bmp"].iloc[0]
    assert upper["path"].name == "I02_01_1.BMP" and upper["reference"].name == "I02.BMP"
    assert df[df["ref_id"] == 6]["reference"].iloc[0].name == "i06.bmp"
    assert df["score_std"].notna().all()


def test_loader_errors_name_the_problem(tmp_path, tid):
    with pytest.raises(FileNotFoundError, match="reference_images"):
        iqa.load_tid2013(tmp_path)
    bad = build_synthetic_tid(tmp_path / "bad")
    (bad / "mos_std.txt").write_text("1.0\n2.0\n")
    with pytest.raises(ValueError, match="2 values for 96 images"):
        iqa.load_tid2013(bad)
    (bad / "mos_with_names.txt").write_text("5.1 picture.bmp\n")
    with pytest.raises(ValueError, match="not iXX_YY_Z"):
        iqa.load_tid2013(bad)
    (bad / "mos_with_names.txt").write_text("5.1 i01_01_9.bmp\n")
    with pytest.raises(FileNotFoundError, match="i01_01_9.bmp"):
        iqa.load_tid2013(bad)


def test_score_csv_loaders_tid_and_kadid_style(tmp_path, tid):
    df = iqa.load_tid2013(tid)
    jnd = tmp_path / "jnd.csv"
    pd.DataFrame({"image": df["image"], "score": -df["score"]}).to_csv(jnd, index=False)
    got = iqa.load_score_csv(
        jnd, tid / "distorted_images", tid / "reference_images", higher_better=False
    )
    np.testing.assert_allclose(got["score"], df["score"])
    assert list(got["ref_id"]) == list(df["ref_id"])
    kadid = tmp_path / "dmos.csv"
    pd.DataFrame(
        {
            "dist_img": df["image"],
            "ref_img": [p.name.lower() for p in df["reference"]],
            "dmos": df["score"],
        }
    ).to_csv(kadid, index=False)
    got = iqa.load_score_csv(
        kadid,
        tid / "distorted_images",
        tid / "reference_images",
        image_col="dist_img",
        score_col="dmos",
        reference_col="ref_img",
    )
    assert got["ref_id"].nunique() == 6 and set(got["distortion"]) == {1, 2, 3, 4}
    with pytest.raises(ValueError, match="column .image. missing"):
        iqa.load_score_csv(
            kadid, tid / "distorted_images", tid / "reference_images", score_col="mos"
        )


def test_scoring_is_resumable(tmp_path, tid, monkeypatch):
    df = iqa.load_tid2013(tid)
    out = tmp_path / "scores.csv"
    full = iqa.score_dataset(df, ["l2", "ssim"], out, batch_size=8, progress=False)
    assert len(full) == 2 * len(df) and set(full["metric"]) == {"l2", "ssim"}
    # interrupted run: only part of the ssim rows made it to disk
    partial = pd.concat([full[full["metric"] == "l2"], full[full["metric"] == "ssim"].head(30)])
    partial.to_csv(out, index=False)
    calls = []
    original = iqa.read_image
    monkeypatch.setattr(iqa, "read_image", lambda p: calls.append(p) or original(p))
    resumed = iqa.score_dataset(df, ["l2", "ssim"], out, batch_size=8, progress=False)
    distorted_reads = [p for p in calls if p.parent.name == "distorted_images"]
    assert len(distorted_reads) == len(df) - 30  # only the missing pairs were scored
    merged = full.merge(resumed, on=["image", "metric"], suffixes=("_a", "_b"))
    assert len(merged) == len(full)
    np.testing.assert_allclose(merged["value_a"], merged["value_b"], rtol=1e-6)
    assert not list(tmp_path.glob(".*.tmp"))


def test_scoring_uses_reporting_values(tmp_path, tid):
    df = iqa.load_tid2013(tid).head(8)
    s = iqa.score_dataset(df, ["ssim", "psnr"], tmp_path / "s.csv", progress=False)
    ssim_vals = s[s["metric"] == "ssim"]["value"]
    assert (ssim_vals > 0.2).all() and (ssim_vals <= 1).all()  # SSIM, not 1 - SSIM
    assert (s[s["metric"] == "psnr"]["value"] > 10).all()


def test_correlations_bootstrap_over_contents(tmp_path, tid):
    df = iqa.load_tid2013(tid)
    scores = iqa.score_dataset(df, ["psnr", "l2", "ssim"], tmp_path / "s.csv", progress=False)
    corr = iqa.correlations(scores, df, n_boot=200, seed=1).set_index("metric")
    for name in ("psnr", "l2", "ssim"):
        r = corr.loc[name]
        assert r["contents"] == 6 and r["n"] == 96
        for k in ("srocc", "krocc", "plcc"):
            assert r[f"{k}_lo"] <= r[k] <= r[f"{k}_hi"]
        assert r["srocc"] > 0.3  # the synthetic MOS falls with the distortion level
    # L2 and PSNR are monotonic transforms of each other per image: same oriented SROCC
    assert corr.loc["l2", "srocc"] == pytest.approx(corr.loc["psnr", "srocc"], abs=1e-12)
    again = iqa.correlations(scores, df, n_boot=200, seed=1).set_index("metric")
    pd.testing.assert_frame_equal(corr, again)
    with pytest.raises(ValueError, match="ci must lie"):
        iqa.correlations(scores, df, ci=95)


def test_bootstrap_resamples_contents_not_images(tid):
    """With one content only, every bootstrap sample is that content: a zero-width CI."""
    df = iqa.load_tid2013(tid)
    one = df[df["ref_id"] == 1]
    scores = pd.DataFrame(
        {
            "image": one["image"],
            "metric": "psnr",
            "value": -one["level"] + 0.01 * np.arange(len(one)),
        }
    )
    r = iqa.correlations(scores, one, n_boot=50).iloc[0]
    assert r["srocc_lo"] == r["srocc_hi"] == pytest.approx(r["srocc"])


def test_per_distortion_table_and_scatter(tmp_path, tid):
    df = iqa.load_tid2013(tid)
    scores = iqa.score_dataset(df, ["l2", "ms_ssim"], tmp_path / "s.csv", progress=False)
    table = iqa.per_distortion_srocc(scores, df)
    assert list(table.columns) == ["l2", "ms_ssim"] and list(table.index) == [1, 2, 3, 4, "all"]
    assert table.loc[1, "l2"] > 0.8  # noise level is exactly what L2 measures
    fig = iqa.scatter_figure(scores, df)
    assert len(fig.axes) == 3  # two panels and the colour bar
    fig.savefig(tmp_path / "scatter.png")
    assert (tmp_path / "scatter.png").stat().st_size > 1000


def test_cli_iqa_end_to_end(tmp_path, tid):
    from experiments.cli import main

    out = tmp_path / "out"
    args = [
        "metrics",
        "iqa",
        "--dataset",
        str(tid),
        "--metrics",
        "l2,ssim,psnr",
        "--out",
        str(out),
        "--n-boot",
        "50",
        "--option",
        "ssim.matlab=false",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "| ssim |" in res.output and "96 images, 6 reference contents" in res.output
    for f in ("scores.csv", "correlations.csv", "per_distortion.csv", "scatter.png"):
        assert (out / f).is_file()
    assert len(pd.read_csv(out / "scores.csv")) == 3 * 96
    res = CliRunner().invoke(main, args[:-2] + ["--option", "ssim"])
    assert res.exit_code != 0 and "METRIC.OPTION=VALUE" in res.output
    res = CliRunner().invoke(
        main, ["metrics", "iqa", "--dataset", str(tmp_path), "--out", str(out)]
    )
    assert res.exit_code != 0 and "reference_images" in res.output
