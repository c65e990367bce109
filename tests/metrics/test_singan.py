"""MDF Phase 1 (SinGAN-style trainer): tiny end-to-end runs, resume, distortions, seeds."""

import itertools
from dataclasses import asdict

import numpy as np
import pytest
import torch

from metrics.mdf_weights import load_discriminators
from metrics.seeds import (
    contrast_rings,
    image_sha256,
    load_seed,
    natural_seed,
    pink_noise,
    pyramid_permutation,
)
from metrics.singan import (
    DISTORTIONS,
    PRESETS,
    SinGANConfig,
    TrainState,
    build_pyramid,
    distort_jpeg,
    distort_noise,
    preset,
    pyramid_sizes,
    train_mdf,
)
from metrics.singan_config import preset_name
from scaling.contracts.jpeg import jpeg_roundtrip


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def small_seed():
    return natural_seed("astronaut")[::8, ::8].copy()  # 64 x 64


def test_tiny_training_end_to_end_writes_loadable_weights(tmp_path):
    cfg = preset("tiny", task="denoise")
    out = train_mdf(small_seed(), cfg, tmp_path / "w.pt", progress=False)
    discs, meta = load_discriminators(out)
    assert len(discs) == len(meta["pyramid"]) == len(pyramid_sizes(64, 64, cfg))
    assert meta["task"] == "denoise" and meta["iterations_per_scale"] == cfg.iterations
    assert meta["seed_image_sha256"] == image_sha256(small_seed())
    assert all(not d.training for d in discs)
    work = tmp_path / "w_work"
    log = (work / "log.csv").read_text().splitlines()
    assert log[0].startswith("scale,iteration,d_loss") and len(log) > len(discs)
    assert all((work / f"samples_scale{k}.png").is_file() for k in range(len(discs)))
    # loaded with weights_only, as the metric does
    obj = torch.load(out, weights_only=True)
    assert obj["metadata"]["code_version"]


def test_resume_after_interruption_continues_exactly(tmp_path):
    cfg = preset("tiny", task="jpeg")
    full = train_mdf(small_seed(), cfg, tmp_path / "full.pt", progress=False)
    seen = []

    def stop_after_first(scale, state):
        seen.append((scale, len(state.scales), state.meta["task"]))
        return True

    part = train_mdf(
        small_seed(), cfg, tmp_path / "part.pt", progress=False, on_scale_end=stop_after_first
    )
    assert part.name == "state.pt" and not (tmp_path / "part.pt").exists()
    assert seen == [(0, 1, "jpeg")]
    state = TrainState.load(part, cfg)  # what the callback saw is what the checkpoint holds
    assert len(state.scales) == 1 and state.meta["seconds_per_scale"]
    resumed = train_mdf(small_seed(), cfg, tmp_path / "part.pt", resume=True, progress=False)
    a, _ = load_discriminators(full)
    b, _ = load_discriminators(resumed)
    for da, db in zip(a, b):
        for (ka, va), (kb, vb) in zip(da.state_dict().items(), db.state_dict().items()):
            assert ka == kb
            torch.testing.assert_close(va, vb, rtol=0, atol=1e-6)


def test_resume_refuses_other_settings_or_seed(tmp_path):
    cfg = preset("tiny", task="sisr")
    train_mdf(small_seed(), cfg, tmp_path / "w.pt", progress=False, on_scale_end=lambda k, s: True)
    with pytest.raises(ValueError, match="other settings"):
        train_mdf(
            small_seed(),
            preset("tiny", task="sisr", alpha=10.0),
            tmp_path / "w.pt",
            resume=True,
            progress=False,
        )
    with pytest.raises(ValueError, match="another seed image"):
        train_mdf(small_seed()[::-1].copy(), cfg, tmp_path / "w.pt", resume=True, progress=False)
    with pytest.raises(ValueError, match="no checkpoint"):
        train_mdf(small_seed(), cfg, tmp_path / "other.pt", resume=True, progress=False)


def test_scale_callback_sees_every_scale_and_cannot_skip_the_weights(tmp_path):
    cfg = preset("tiny", task="sr")  # the task contract's name; files use MDF's ("sisr")
    seen = []
    out = train_mdf(
        small_seed(), cfg, tmp_path / "w.pt", progress=False,
        on_scale_end=lambda k, state: seen.append(k) or k == len(state.meta["pyramid"]) - 1,
    )  # fmt: skip
    n = len(pyramid_sizes(64, 64, cfg))
    assert seen == list(range(n)) and out == tmp_path / "w.pt"  # True after the last: written
    assert load_discriminators(out)[1]["task"] == "sisr" and cfg.task == "sisr"
    assert not list((tmp_path / "w_work").glob(".*.tmp"))  # atomic writes left no temp file


def test_presets_are_recognised_from_a_recorded_configuration():
    for name in PRESETS:
        assert preset_name(asdict(preset(name, task="jpeg", seed=3, device="cuda"))) == name
    assert preset_name(asdict(preset("quick", iterations=201))) == "custom"
    assert preset_name(asdict(SinGANConfig())) == "paper"  # the paper's preset is the defaults
    assert preset_name(None) is None


def test_noise_distortion_has_the_requested_level():
    x = torch.zeros(1, 3, 128, 128)
    sigmas = []
    for s in range(200):
        y = distort_noise(x, np.random.default_rng(s))
        sigmas.append(float(y.std()) * 255 / 2)  # [-1, 1] -> 0..255 scale
    assert 0 <= min(sigmas) and max(sigmas) <= 55.5
    assert abs(np.mean(sigmas) - 27.5) < 3  # sigma ~ U[0, 55]


def test_jpeg_distortion_really_compresses_at_low_quality():
    img = natural_seed("astronaut")[:128, :128]
    q10 = jpeg_roundtrip(img, 10)
    q95 = jpeg_roundtrip(img, 95)
    err10, err95 = np.abs(q10 - img).mean(), np.abs(q95 - img).mean()
    assert err10 > 3 * err95 > 0
    # 8x8 blocking: at quality 10 the jumps across block borders exceed those inside blocks
    d = np.abs(np.diff(q10.mean(axis=2), axis=1))
    border, inner = d[:, 7::8].mean(), np.delete(d, np.s_[7::8], axis=1).mean()
    assert border > 1.2 * inner
    x = torch.from_numpy(img).permute(2, 0, 1)[None] * 2 - 1
    y = distort_jpeg(x, np.random.default_rng(0))
    assert y.shape == x.shape and float((y - x).abs().mean()) > 0.01
    assert set(DISTORTIONS) >= {"sisr", "denoise", "jpeg"}


def test_pyramids():
    cfg = SinGANConfig()
    sizes = pyramid_sizes(512, 768, cfg)
    assert max(sizes[-1]) == 250 and min(sizes[0]) == 25
    ratios = [sizes[i][0] / sizes[i + 1][0] for i in range(len(sizes) - 1)]
    assert all(0.7 < r < 0.8 for r in ratios)
    paper = SinGANConfig(pyramid="paper", max_size=2048)
    p = pyramid_sizes(2048, 2048, paper)
    assert len(p) == 8 and p[-1] == (2048, 2048) and p[0] == (16, 16)
    with pytest.raises(ValueError, match="paper pyramid"):
        pyramid_sizes(512, 512, SinGANConfig(pyramid="paper"))
    pyr = build_pyramid(small_seed(), preset("tiny"))
    assert pyr[-1].shape[-2:] == (28, 28) and pyr[0].min() >= -1 and pyr[0].max() <= 1


def test_synthetic_and_file_seeds(tmp_path):
    for img in (pink_noise(64), contrast_rings(64), pyramid_permutation(small_seed(), levels=3)):
        assert img.shape[2] == 3 and img.min() >= 0 and img.max() <= 1 and img.std() > 0.05
    rings = contrast_rings(65)[..., 0]
    assert rings[28:37, 28:37].std() < rings[:9, :].std()  # contrast falls towards the centre
    from PIL import Image

    Image.fromarray((small_seed() * 255).astype(np.uint8)).save(tmp_path / "s.png")
    img, desc = load_seed(str(tmp_path / "s.png"))
    assert img.shape == (64, 64, 3) and desc == "s.png"
    with pytest.raises(ValueError, match="neither a file"):
        load_seed("no-such-seed")
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(ValueError, match="cannot read"):
        load_seed(str(tmp_path / "bad.png"))


def test_bad_config():
    with pytest.raises(ValueError, match="unknown task"):
        SinGANConfig(task="deblur")
    with pytest.raises(ValueError, match="receptive field"):
        SinGANConfig(min_size=8)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")


def test_trained_loss_is_zero_for_identical_images_and_grows_with_its_distortion(tmp_path):
    from metrics.mdf import MDFLoss

    out = train_mdf(
        small_seed(),
        preset("tiny", task="denoise", iterations=8),
        tmp_path / "w.pt",
        progress=False,
    )
    loss = MDFLoss(weights=out, num_scales=3)
    x = torch.from_numpy(natural_seed("coffee")[::6, ::6].copy()).permute(2, 0, 1)[None]
    assert float(loss(x, x)) == 0.0
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=gen)
    values = [float(loss((x + noise * s / 255).clamp(0, 1), x)) for s in (5, 15, 30, 50)]
    assert all(a < b for a, b in itertools.pairwise(values)), values
