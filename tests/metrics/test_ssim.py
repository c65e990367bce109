"""SSIM / MS-SSIM: against scikit-image and an independent NumPy transcription of Wang's
MATLAB scripts (ssim_index.m, msssim.m, ssim.m's downsampling)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from metrics import MSSSIMLoss, SSIMLoss, ms_ssim, ms_ssim_levels, ssim
from metrics.ssim import ms_ssim_min_side


def to_tensor(img: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    """HxWx3 uint8 (or HxW) -> 1x3xHxW (or 1x1xHxW) float in [0, 1]."""
    t = torch.from_numpy(img.astype(np.float64) / 255.0)
    t = t.permute(2, 0, 1) if t.dim() == 3 else t[None]
    return t[None].to(dtype)


WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])


# ----------------------------------------------------------------------- independent reference
def _fspecial_gaussian(size=11, sigma=1.5):
    ax = np.arange(size) - (size - 1) / 2
    xx, yy = np.meshgrid(ax, ax)
    h = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    return h / h.sum()


def _filter2_valid(w, img):
    # MATLAB filter2(w, img, 'valid'): correlation, output (H-k+1, W-k+1)
    k = w.shape[0]
    full = ndimage.correlate(img, w, mode="constant")
    r = k // 2
    return full[r : img.shape[0] - r, r : img.shape[1] - r]


def _ssim_index_m(img1, img2, L=255.0):
    """Transcription of ssim_index.m (returns mssim and mean cs)."""
    w = _fspecial_gaussian()
    C1, C2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    mu1, mu2 = _filter2_valid(w, img1), _filter2_valid(w, img2)
    s11 = _filter2_valid(w, img1 * img1) - mu1**2
    s22 = _filter2_valid(w, img2 * img2) - mu2**2
    s12 = _filter2_valid(w, img1 * img2) - mu1 * mu2
    cs = (2 * s12 + C2) / (s11 + s22 + C2)
    m = ((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1**2 + mu2**2 + C1) * (s11 + s22 + C2))
    return m.mean(), cs.mean()


def _imfilter_symmetric_same_box2(img):
    # imfilter(img, ones(2)/4, 'symmetric', 'same'): out(i,j) = mean(img(i:i+1, j:j+1)), mirrored
    p = np.pad(img, ((0, 1), (0, 1)), mode="symmetric")
    return (p[:-1, :-1] + p[1:, :-1] + p[:-1, 1:] + p[1:, 1:]) / 4


def _msssim_m(img1, img2):
    mssim, mcs = [], []
    for level in range(5):
        s, cs = _ssim_index_m(img1, img2)
        mssim.append(s)
        mcs.append(cs)
        img1 = _imfilter_symmetric_same_box2(img1)[::2, ::2]
        img2 = _imfilter_symmetric_same_box2(img2)[::2, ::2]
    return np.prod(np.array(mcs[:4]) ** WEIGHTS[:4]) * mssim[4] ** WEIGHTS[4]


def _rgb2gray_uint8(rgb):
    g = 0.2989 * rgb[..., 0] + 0.5870 * rgb[..., 1] + 0.1140 * rgb[..., 2]
    return np.clip(np.floor(g + 0.5), 0, 255)  # MATLAB rounds half away from zero


def _distort(img, kind, seed=0):
    rng = np.random.default_rng(seed)
    f = img.astype(np.float64)
    if kind == "noise":
        f = f + rng.normal(0, 15, f.shape)
    elif kind == "blur":
        f = ndimage.gaussian_filter(f, sigma=(2, 2, 0))
    elif kind == "shift":
        f = f * 0.8 + 30
    return np.clip(np.round(f), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------- ssim function
@pytest.mark.parametrize("kind", ["noise", "blur", "shift"])
def test_ssim_matches_skimage_per_channel(kind):
    ref = skimage.data.coffee()[50:250, 100:340]
    dist = _distort(ref, kind)
    expected = structural_similarity(
        dist.astype(np.float64) / 255,
        ref.astype(np.float64) / 255,
        channel_axis=2,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
    )
    got = ssim(to_tensor(dist, torch.float64), to_tensor(ref, torch.float64))
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected, abs=1e-10)


def test_ssim_matches_skimage_on_grey_and_255_range():
    ref = skimage.data.camera()[100:300, 100:300]
    dist = _distort(ref[..., None], "noise")[..., 0]
    expected = structural_similarity(
        dist.astype(np.float64),
        ref.astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    x = to_tensor(dist, torch.float64) * 255
    y = to_tensor(ref, torch.float64) * 255
    assert ssim(x, y, data_range=255).item() == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("kind", ["noise", "blur"])
def test_ssim_matlab_mode_matches_ssim_index_m(kind):
    ref = skimage.data.astronaut()[:384, :512]  # TID2013's 512x384 size
    dist = _distort(ref, kind, seed=3)
    expected, _ = _ssim_index_m(
        _rgb2gray_uint8(dist.astype(np.float64)), _rgb2gray_uint8(ref.astype(np.float64))
    )
    got = ssim(to_tensor(dist, torch.float64), to_tensor(ref, torch.float64), matlab=True)
    assert got.item() == pytest.approx(expected, abs=1e-9)


def test_ssim_auto_downsampling_follows_ssim_m():
    ref = skimage.data.astronaut()  # 512x512: f = round(512/256) = 2
    dist = _distort(ref, "noise")
    g1, g2 = (_rgb2gray_uint8(a.astype(np.float64)) for a in (dist, ref))
    g1, g2 = (_imfilter_symmetric_same_box2(g)[::2, ::2] for g in (g1, g2))
    expected, _ = _ssim_index_m(g1, g2)
    got = ssim(
        to_tensor(dist, torch.float64),
        to_tensor(ref, torch.float64),
        matlab=True,
        downsample="auto",
    )
    assert got.item() == pytest.approx(expected, abs=1e-9)
    plain = ssim(to_tensor(dist, torch.float64), to_tensor(ref, torch.float64), matlab=True)
    assert abs(plain.item() - got.item()) > 1e-3  # the option changes the value


def test_ssim_y_channel_differs_from_rgb2gray():
    ref = skimage.data.chelsea()[:200, :200]
    x, y = to_tensor(_distort(ref, "noise"), torch.float64), to_tensor(ref, torch.float64)
    v_y = ssim(x, y, color="y").item()
    v_g = ssim(x, y, color="grey").item()
    assert 0 < v_y < 1 and 0 < v_g < 1 and v_y != v_g


def test_ssim_of_identical_images_is_one_and_symmetric(natural_pair):
    x, y = natural_pair
    assert ssim(y, y).item() == pytest.approx(1.0, abs=1e-12)
    assert ssim(x, y).item() == pytest.approx(ssim(y, x).item(), abs=1e-12)


def test_ssim_batch_values_equal_single_image_values(natural_pair):
    x, y = natural_pair
    xb = torch.cat([x, y, x.flip(-1)])
    yb = torch.cat([y, y, y.flip(-1)])
    vals = ssim(xb, yb)
    assert vals.shape == (3,)
    assert vals[0].item() == pytest.approx(ssim(x, y).item(), abs=1e-12)
    assert vals[1].item() == pytest.approx(1.0)


def test_ssim_raises_if_image_smaller_than_window():
    x = torch.rand(1, 3, 10, 30)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(x, x)


def test_ssim_rejects_unknown_color_and_downsample():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="color"):
        ssim(x, x, color="lab")
    with pytest.raises(ValueError, match="downsample"):
        ssim(x, x, downsample=3)


def test_ssim_half_precision_close_to_float(natural_pair):
    x, y = (t.float() for t in natural_pair)
    v32 = ssim(x, y).item()
    v16 = ssim(x.half(), y.half())
    assert v16.dtype == torch.float16
    assert v16.item() == pytest.approx(v32, abs=2e-3)


# ----------------------------------------------------------------------- ms-ssim
@pytest.mark.parametrize("shape", [(384, 512), (383, 511), (177, 190)])
def test_ms_ssim_matlab_mode_matches_msssim_m(shape):
    h, w = shape
    ref = skimage.data.astronaut()[:h, :w]
    dist = _distort(ref, "blur")
    expected = _msssim_m(
        _rgb2gray_uint8(dist.astype(np.float64)), _rgb2gray_uint8(ref.astype(np.float64))
    )
    got = ms_ssim(to_tensor(dist, torch.float64), to_tensor(ref, torch.float64), matlab=True)
    assert got.item() == pytest.approx(expected, abs=1e-9)


def test_ms_ssim_levels_rule():
    assert ms_ssim_levels(512, 384) == 5
    assert ms_ssim_levels(176, 176) == 5
    assert ms_ssim_levels(161, 161) == 5
    assert ms_ssim_levels(160, 200) == 4
    assert ms_ssim_levels(96, 96) == 4
    assert ms_ssim_levels(48, 48) == 3
    assert ms_ssim_levels(40, 50) == 2
    assert ms_ssim_levels(11, 20) == 1
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        ms_ssim_levels(10, 100)


@pytest.mark.parametrize("side", [40, 50, 96])
def test_ms_ssim_on_training_patches_does_not_crash_and_has_gradients(side):
    torch.manual_seed(0)
    y = torch.rand(4, 3, side, side)
    x = (y + 0.1 * torch.randn_like(y)).clamp(0, 1).requires_grad_(True)
    loss = MSSSIMLoss(reduction="mean")(x, y)
    loss.backward()
    assert torch.isfinite(loss) and 0 < loss.item() < 1
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_ms_ssim_small_images_error_mode():
    x = torch.rand(1, 3, 96, 96)
    with pytest.raises(ValueError, match="5 scales need images of at least 161 px"):
        ms_ssim(x, x, small_images="error")


@pytest.mark.parametrize("kernel_size", [11, 7])
def test_ms_ssim_size_thresholds_are_the_stated_ones(kernel_size):
    """The documented rule, side >= (k - 1) * 2^(m - 1) + 1 for m scales, at every boundary."""
    for m in range(1, 6):
        side = ms_ssim_min_side(m, kernel_size)
        assert ms_ssim_levels(side, side + 7, kernel_size) == m
        if m > 1:
            assert ms_ssim_levels(side - 1, side + 7, kernel_size) == m - 1
    assert [ms_ssim_min_side(m) for m in range(1, 6)] == [11, 21, 41, 81, 161]
    g = torch.Generator().manual_seed(0)
    y = torch.rand(1, 1, 161, 170, generator=g, dtype=torch.float64)
    x = (y + 0.05 * torch.randn(y.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    ms_ssim(x, y, small_images="error")  # 161 px: all five scales, no error
    with pytest.raises(ValueError, match="at least 161 px on the shorter side, got 160x170"):
        ms_ssim(x[..., :160, :], y[..., :160, :], small_images="error")
    # the scales are really used: the value at 161 px differs from a 4-scale one
    four = ms_ssim(x, y, weights=tuple(WEIGHTS[:4] / WEIGHTS[:4].sum()))
    assert abs(ms_ssim(x, y).item() - four.item()) > 1e-6


@pytest.mark.parametrize("fn", [ssim, ms_ssim])
def test_matlab_mode_refuses_gradients_instead_of_giving_zeros(fn, natural_pair):
    x, y = (t.float() for t in natural_pair)
    x = torch.nn.functional.interpolate(x, size=(176, 176)).requires_grad_(True)
    y = torch.nn.functional.interpolate(y, size=(176, 176))
    with pytest.raises(ValueError, match="matlab=True rounds the images to 8 bits"):
        fn(x, y, matlab=True)
    with torch.no_grad():  # the reporting use: fine
        value = fn(x, y, matlab=True)
    assert 0 < value.item() < 1
    fn(x, y).sum().backward()  # the training mode keeps its gradient
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("module", [SSIMLoss, MSSSIMLoss])
def test_matlab_mode_is_refused_as_a_loss(module):
    with pytest.raises(ValueError, match="matlab=True .* is for reporting"):
        module(matlab=True)
    assert not module(matlab=True, as_loss=False).lower_better
    with pytest.raises(TypeError, match="unknown options \\['gamma'\\]"):
        module(gamma=2)


def test_ms_ssim_reduced_scales_use_renormalised_weights():
    """On 40 px (2 scales) MS-SSIM = CS_1^(w1/(w1+w2)) * SSIM_2^(w2/(w1+w2))."""
    torch.manual_seed(1)
    y = torch.rand(1, 1, 40, 40, dtype=torch.float64)
    x = (y + 0.05 * torch.randn_like(y)).clamp(0, 1)
    g = lambda a: a[0, 0].numpy() * 255
    _, cs1 = _ssim_index_m(g(x), g(y))
    x2 = _imfilter_symmetric_same_box2(g(x))[::2, ::2]
    y2 = _imfilter_symmetric_same_box2(g(y))[::2, ::2]
    s2, _ = _ssim_index_m(x2, y2)
    w = WEIGHTS[:2] / WEIGHTS[:2].sum()
    assert ms_ssim(x, y).item() == pytest.approx(cs1 ** w[0] * s2 ** w[1], abs=1e-10)


# ----------------------------------------------------------------------- modules
def test_ssim_loss_is_one_minus_ssim_and_metric_is_ssim(natural_pair):
    x, y = natural_pair
    s = ssim(x, y)
    assert SSIMLoss()(x, y).item() == pytest.approx(1 - s.item())
    metric = SSIMLoss(as_loss=False)
    assert metric(x, y).item() == pytest.approx(s.item())
    assert SSIMLoss().lower_better and not metric.lower_better


def test_ssim_modules_fail_at_construction_on_bad_options():
    with pytest.raises(ValueError, match="odd"):
        SSIMLoss(kernel_size=10)
    with pytest.raises(ValueError, match="reduction"):
        MSSSIMLoss(reduction="avg")
    with pytest.raises(ValueError, match="color"):
        MSSSIMLoss(color="xyz")
