"""Input validation, reduction and the module form shared by every metric of the package."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

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


def bind_options(
    function: Callable[..., torch.Tensor], options: dict[str, Any], owner: str
) -> dict[str, Any]:
    """The keyword-only options of ``function`` (except ``reduction``) with their defaults,
    updated with ``options``: what a module form of ``function`` stores and passes on.

    Raises:
        TypeError: an option ``function`` does not take (the message lists those it takes).
    """
    known = {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.kind is p.KEYWORD_ONLY and name != "reduction"
    }
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"{owner}: unknown options {unknown}; it takes {sorted(known)}")
    return {**known, **options}


class FunctionModule(nn.Module):
    """The module form of a metric function ``function(x, y, *, reduction, **options)``.

    Subclasses set ``function`` (a ``staticmethod``) and ``lower_better``; the options are the
    function's keyword-only arguments, checked by name at construction (:func:`bind_options`)
    and kept in ``self.options``; ``forward(x, y)`` returns ``function(x, y, **options)``
    reduced by ``reduction`` (``"none"``: one value per image).
    """

    function: Callable[..., torch.Tensor]
    lower_better = True

    def __init__(self, *, reduction: str = "none", **options: Any):
        super().__init__()
        self.reduction = _check_reduction(reduction)
        self.options = bind_options(self.function, options, type(self).__name__)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-image values (or their mean/sum) of ``function`` on prediction x, reference y."""
        return self.function(x, y, reduction=self.reduction, **self.options)


def takes_options_of(
    base: Callable[..., Any], *, exclude: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for a function ``fn(x, y, *, own..., **options)`` whose ``options`` are the
    keyword-only options of ``base`` (less ``exclude``, ``reduction`` and ``fn``'s own): the
    defaults are stated once, in ``base``. The decorated function's signature lists them all
    (``help``, :func:`bind_options`), and each call binds them against it: an unknown name
    raises ``TypeError``, and ``fn`` receives every option, defaults filled in.
    """
    shared = [
        p
        for name, p in inspect.signature(base).parameters.items()
        if p.kind is p.KEYWORD_ONLY and name not in (*exclude, "reduction")
    ]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(fn)
        kept = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
        names = {p.name for p in kept}
        sig = own.replace(parameters=kept + [p for p in shared if p.name not in names])

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            return fn(*bound.args, **bound.kwargs)

        call.__signature__ = sig  # type: ignore[attr-defined]
        return call

    return decorate
