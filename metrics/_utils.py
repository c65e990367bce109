"""Input validation and reduction shared by every metric of the package."""

from __future__ import annotations

import torch

_REDUCTIONS = ("none", "mean", "sum")


def _validate_input(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float = 1.0,
    channels: tuple[int, ...] = (1, 3),
    min_size: int = 1,
    check_range: bool = True,
    name: str = "metric",
) -> None:
    """Check a (prediction, reference) pair and raise a clear error naming the problem.

    Rules (shared by every metric): both tensors are float NCHW tensors of the same shape,
    with a channel count in ``channels`` and spatial sides of at least ``min_size`` pixels;
    no NaN or infinity. With ``check_range`` the reference ``y`` must lie in
    ``[0, data_range]`` (1e-3 relative tolerance) and the prediction ``x`` in
    ``[-0.5, 1.5] * data_range``: a network's output may overshoot a little during training,
    but an image on the 0..255 or the [-1, 1] scale is refused.

    Raises:
        TypeError: not tensors, or not floating point.
        ValueError: wrong dimensions, shapes, channels, size, range, or non-finite values.
    """
    for label, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: {label} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name}: {label} must be a floating-point tensor, got {t.dtype}")
        if t.dim() != 4:
            raise ValueError(
                f"{name}: {label} must be a 4-D (N, C, H, W) tensor, got shape {tuple(t.shape)}"
            )
    if x.shape != y.shape:
        raise ValueError(f"{name}: x and y shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.shape[1] not in channels:
        raise ValueError(
            f"{name}: expected {' or '.join(map(str, channels))} channels, got {x.shape[1]} "
            f"(shape {tuple(x.shape)}; NCHW layout expected)"
        )
    if min(x.shape[-2:]) < min_size:
        raise ValueError(
            f"{name}: images must be at least {min_size}x{min_size} pixels, got "
            f"{x.shape[-2]}x{x.shape[-1]}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name}: empty batch")
    with torch.no_grad():
        for label, t in (("x", x), ("y", y)):
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name}: {label} contains NaN or infinite values")
        if check_range:
            tol = 1e-3 * data_range
            lo, hi = float(y.min()), float(y.max())
            if lo < -tol or hi > data_range + tol:
                raise ValueError(
                    f"{name}: reference y must lie in [0, {data_range:g}], got "
                    f"[{lo:.4g}, {hi:.4g}] (wrong scale? pass data_range or rescale)"
                )
            lo, hi = float(x.min()), float(x.max())
            if lo < -0.5 * data_range or hi > 1.5 * data_range:
                raise ValueError(
                    f"{name}: prediction x lies in [{lo:.4g}, {hi:.4g}], far outside "
                    f"[0, {data_range:g}] (wrong scale? pass data_range or rescale)"
                )


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-image values of shape (B,) by ``'none'`` (identity), ``'mean'`` or ``'sum'``."""
    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_reduction(reduction: str) -> str:
    """Fail fast at construction time on an unknown reduction string."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Repeat a single grey channel to three (for networks trained on RGB); RGB passes through."""
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
