"""SSIM and MS-SSIM, as quality metrics and as differentiable losses (1 - value).

One implementation serves both uses. Two preprocessing conventions:

* ``matlab=False`` (default, for training): SSIM of every colour channel on the input scale,
  averaged over channels.
* ``matlab=True`` (for reporting): Wang's original ``ssim_index.m``/``msssim.m`` recipe, grey by
  MATLAB ``rgb2gray`` rounded to 8 bits, which reproduces the published TID2013 values. The later
  ``ssim.m`` automatic downsampling (``downsample="auto"``) and the BT.601 luma (``color="y"``) are
  options, not the default.

Both use a Gaussian 11x11 window (sigma 1.5), K = (0.01, 0.03), an explicit ``data_range`` and
the mean over the 'valid' SSIM map (no padding).
"""

from __future__ import annotations

import torch

from metrics._utils import FunctionModule, _reduce, _validate_input, takes_options_of
from metrics.functional.filters import (
    filter_valid,
    gaussian_kernel1d,
    matlab_downsample2,
    rgb_to_grey_matlab,
    rgb_to_y,
)

#: MS-SSIM scale weights of Wang, Simoncelli & Bovik (2003).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_COLORS = ("rgb", "grey", "y")


def _symmetric_index(n: int, before: int, after: int, device) -> torch.Tensor:
    idx = torch.arange(-before, n + after, device=device)
    idx = torch.where(idx < 0, -idx - 1, idx)
    return torch.where(idx >= n, 2 * n - idx - 1, idx)


def _matlab_box_downsample(x: torch.Tensor, f: int) -> torch.Tensor:
    """``ssim.m`` automatic downsampling: ``imfilter(img, ones(f)/f^2, 'symmetric', 'same')``
    then ``img(1:f:end, 1:f:end)``."""
    if f <= 1:
        return x
    c = (f + 1) // 2  # MATLAB's kernel centre, 1-based
    before, after = c - 1, f - c
    h, w = x.shape[-2:]
    x = x.index_select(-2, _symmetric_index(h, before, after, x.device))
    x = x.index_select(-1, _symmetric_index(w, before, after, x.device))
    x = torch.nn.functional.avg_pool2d(x, f, stride=1)
    return x[..., ::f, ::f]


def _check_color(color: str) -> None:
    if color not in _COLORS:
        raise ValueError(f"color must be one of {_COLORS}, got {color!r}")


def _prepare(x, y, name, *, data_range, kernel_size, matlab, color, downsample, **_window):
    """Validate the pair, refuse gradients through the 8-bit MATLAB mode, convert half
    precisions to float32 and apply the colour conversion and downsampling."""
    _validate_input(x, y, data_range=data_range, min_size=kernel_size, name=name)
    if matlab and torch.is_grad_enabled() and (x.requires_grad or y.requires_grad):
        raise ValueError(
            f"{name}: matlab=True rounds the images to 8 bits (Wang's recipe, for reporting), "
            "so its gradient is zero everywhere; use matlab=False as a training loss, or "
            "compute the reporting value under torch.no_grad()"
        )
    _check_color(color)
    x, y = x.to(_work_dtype(x)), y.to(_work_dtype(y))
    if matlab and color == "rgb":
        color = "grey"
    if x.shape[1] == 3 and color == "grey":
        x = rgb_to_grey_matlab(x, data_range=data_range, quantize=matlab)
        y = rgb_to_grey_matlab(y, data_range=data_range, quantize=matlab)
    elif x.shape[1] == 3 and color == "y":
        x, y = rgb_to_y(x, data_range=data_range), rgb_to_y(y, data_range=data_range)
    if downsample == "auto":
        f = max(1, round(min(x.shape[-2:]) / 256))
        x, y = _matlab_box_downsample(x, f), _matlab_box_downsample(y, f)
    elif downsample not in (False, None):
        raise ValueError(f"downsample must be False or 'auto', got {downsample!r}")
    return x, y


def _ssim_cs(x, y, kernel, data_range, k1, k2):
    """Per-image, per-channel means of the SSIM map and of the contrast-structure map."""
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_x, mu_y = filter_valid(x, kernel), filter_valid(y, kernel)
    sxx = filter_valid(x * x, kernel) - mu_x**2
    syy = filter_valid(y * y, kernel) - mu_y**2
    sxy = filter_valid(x * y, kernel) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (lum * cs).mean((-2, -1)), cs.mean((-2, -1))


def _work_dtype(x):
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float = 1.0,
    kernel_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    matlab: bool = False,
    color: str = "rgb",
    downsample: bool | str = False,
    reduction: str = "none",
) -> torch.Tensor:
    r"""Structural similarity index (SSIM) of ``x`` against the reference ``y``.

    .. math::
        \mathrm{SSIM}(x, y) = \operatorname{mean}_{p}
        \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
             {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},
        \quad C_i = (K_i L)^2,

    with Gaussian-weighted local statistics (window ``kernel_size``, std ``sigma``), averaged
    over the 'valid' positions p and over colour channels.

    Args:
        x, y: (N, C, H, W) tensors with C = 1 or 3, values in ``[0, data_range]``.
        data_range: L, the dynamic range of the images (1 for [0, 1] images).
        matlab: Wang's ``ssim_index.m`` recipe: grey by ``rgb2gray`` rounded to 8 bits. For
            reporting only: the rounding has a zero gradient, so an input that requires a
            gradient (with autograd on) raises ``ValueError``.
        color: ``"rgb"`` (per channel), ``"grey"`` (``rgb2gray``) or ``"y"`` (BT.601 luma).
        downsample: ``"auto"`` for ``ssim.m``'s ``max(1, round(min(H, W) / 256))`` box
            downsampling; ``False`` (default) for none.
        reduction: ``"none"`` (one value per image), ``"mean"`` or ``"sum"``.

    Returns:
        SSIM in [-1, 1], higher is better; shape (N,) with ``reduction="none"``.

    References:
        Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to
        structural similarity", IEEE TIP 13(4), 2004, doi:10.1109/TIP.2003.819861.

    >>> x = torch.rand(2, 3, 32, 32)
    >>> ssim(x, x).tolist()
    [1.0, 1.0]
    """
    dt = x.dtype
    x, y = _prepare(
        x, y, "ssim", data_range=data_range, kernel_size=kernel_size, matlab=matlab,
        color=color, downsample=downsample,
    )  # fmt: skip
    if min(x.shape[-2:]) < kernel_size:
        raise ValueError(
            f"ssim: image of {x.shape[-2]}x{x.shape[-1]} after downsampling is smaller than the "
            f"{kernel_size}x{kernel_size} window"
        )
    kernel = gaussian_kernel1d(kernel_size, sigma, dtype=x.dtype, device=x.device)
    s, _ = _ssim_cs(x, y, kernel, data_range, k1, k2)
    return _reduce(s.mean(1).to(dt), reduction)


def ms_ssim_min_side(scales: int, kernel_size: int = 11) -> int:
    """Shortest image side (px) on which MS-SSIM can use ``scales`` scales.

    Each scale halves the previous one, rounding up (``msssim.m``'s 'same' filtering, then every
    second pixel), so scale m (1-based) has side ``ceil(side / 2^(m-1))``, and the coarsest must
    hold the ``kernel_size`` window: ``side >= (kernel_size - 1) * 2^(scales-1) + 1``. With
    window 11: 161 px for 5 scales, 81 for 4, 41 for 3, 21 for 2, 11 for 1.
    """
    return (kernel_size - 1) * 2 ** (scales - 1) + 1


def ms_ssim_levels(height: int, width: int, kernel_size: int = 11, scales: int = 5) -> int:
    """Number of MS-SSIM scales usable on an image of ``height`` x ``width`` pixels.

    Rule for small images (documented, never a crash mid-training): the largest
    ``m <= scales`` such that the coarsest scale (side ``ceil(side / 2^(m-1))``) still holds the
    ``kernel_size`` window, i.e. ``min(height, width) >= ms_ssim_min_side(m, kernel_size)``;
    the first ``m`` weights are then renormalised to sum to 1. With window 11: >= 161 px -> 5
    scales, 81..160 px -> 4, 41..80 px -> 3, 21..40 px -> 2, 11..20 px -> 1.

    Raises:
        ValueError: the image is smaller than one window.
    """
    side = min(height, width)
    if side < kernel_size:
        raise ValueError(
            f"ms_ssim: image of {height}x{width} is smaller than the {kernel_size}x{kernel_size} "
            f"window; use a smaller kernel_size or larger patches"
        )
    m = 1
    while m < scales and -(-side // 2**m) >= kernel_size:
        m += 1
    return m


@takes_options_of(ssim, exclude=("downsample",))
def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
    small_images: str = "reduce",
    reduction: str = "none",
    **options,
) -> torch.Tensor:
    r"""Multi-scale SSIM of ``x`` against the reference ``y``.

    .. math::
        \mathrm{MS\text{-}SSIM} = \mathrm{SSIM}_M^{w_M} \prod_{j=1}^{M-1} \mathrm{CS}_j^{w_j},

    where scale j+1 is scale j averaged over 2x2 blocks and subsampled by 2 (``msssim.m``:
    ``imfilter(ones(2)/4, 'symmetric')`` then every second pixel), M = 5, weights
    (0.0448, 0.2856, 0.3001, 0.2363, 0.1333). Negative CS/SSIM terms are clamped to 0 (they
    would give complex values in MATLAB and NaN here).

    Args:
        weights: the scale weights w_1..w_M.
        small_images: ``"reduce"`` (default) uses fewer scales on small images, see
            :func:`ms_ssim_levels`; ``"error"`` raises instead.
        options: those of :func:`ssim` (``data_range``, ``kernel_size``, ``sigma``, ``k1``,
            ``k2``, ``matlab``, ``color``) with its defaults; no ``downsample``.

    Returns:
        MS-SSIM in [0, 1], higher is better; shape (N,) with ``reduction="none"``.

    References:
        Wang, Simoncelli, Bovik, "Multiscale structural similarity for image quality
        assessment", 37th Asilomar Conference on Signals, Systems and Computers, 2003,
        doi:10.1109/ACSSC.2003.1292216.
    """
    if small_images not in ("reduce", "error"):
        raise ValueError(f"small_images must be 'reduce' or 'error', got {small_images!r}")
    dt, kernel_size = x.dtype, options["kernel_size"]
    x, y = _prepare(x, y, "ms_ssim", downsample=False, **options)
    levels = ms_ssim_levels(x.shape[-2], x.shape[-1], kernel_size, len(weights))
    if levels < len(weights) and small_images == "error":
        raise ValueError(
            f"ms_ssim: {len(weights)} scales need images of at least "
            f"{ms_ssim_min_side(len(weights), kernel_size)} px on the shorter side, "
            f"got {x.shape[-2]}x{x.shape[-1]}"
        )
    w = torch.tensor(weights[:levels], dtype=x.dtype, device=x.device)
    if levels < len(weights):
        w = w / w.sum()  # the published 5 weights sum to 1.0001 and are used as they are
    kernel = gaussian_kernel1d(kernel_size, options["sigma"], dtype=x.dtype, device=x.device)
    out = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)
    for j in range(levels):
        if j > 0:
            x, y = matlab_downsample2(x), matlab_downsample2(y)
        s, cs = _ssim_cs(x, y, kernel, options["data_range"], options["k1"], options["k2"])
        term = s if j == levels - 1 else cs
        out = out * term.clamp(min=0) ** w[j]
    return _reduce(out.mean(1).to(dt), reduction)


class _SimilarityModule(FunctionModule):
    """Module form of a similarity (SSIM, MS-SSIM): ``1 - value`` as a loss (``as_loss``, lower
    is better) or the value as a metric (higher is better). Options are checked at
    construction, not at the first training step."""

    def __init__(self, *, as_loss: bool = True, reduction: str = "none", **options):
        super().__init__(reduction=reduction, **options)
        opts = self.options
        gaussian_kernel1d(opts["kernel_size"], opts["sigma"])
        _check_color(opts["color"])
        if as_loss and opts["matlab"]:
            raise ValueError(
                f"{type(self).__name__}: matlab=True (8-bit rounding, zero gradient) is for "
                "reporting: use as_loss=False, or matlab=False for a training loss"
            )
        self.as_loss = as_loss
        self.lower_better = as_loss

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``1 - value`` (loss) or the value (metric) per image, then reduced."""
        s = self.function(x, y, **self.options)
        return _reduce(1 - s if self.as_loss else s, self.reduction)


class SSIMLoss(_SimilarityModule):
    """SSIM as a loss (``1 - SSIM``, lower is better) or, with ``as_loss=False``, as a metric
    (SSIM, higher is better). Options as :func:`ssim`; ``matlab=True`` needs
    ``as_loss=False``."""

    function = staticmethod(ssim)


class MSSSIMLoss(_SimilarityModule):
    """MS-SSIM as a loss (``1 - MS-SSIM``) or, with ``as_loss=False``, as a metric.
    Options as :func:`ms_ssim`; small images use fewer scales (:func:`ms_ssim_levels`);
    ``matlab=True`` needs ``as_loss=False``."""

    function = staticmethod(ms_ssim)

    def __init__(self, *, as_loss: bool = True, reduction: str = "none", **options):
        super().__init__(as_loss=as_loss, reduction=reduction, **options)
        self.options["weights"] = tuple(self.options["weights"])
