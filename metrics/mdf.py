"""The Multi-scale Discriminative Feature (MDF) loss.

Phase 2 of Mustafa et al. (WACV 2022): a set of frozen SinGAN-style discriminators
(:class:`metrics.discriminator.Discriminator`), one per scale of a SinGAN pyramid, each trained
(Phase 1, :mod:`metrics.singan`) to spot a restoration task's artefacts, serve as feature
extractors; the loss is the squared difference of their features.

This module holds the loss: :func:`mdf` (fast form, kernels in :mod:`metrics.mdf_kernels`),
:func:`mdf_straightforward` (the executable definition) and :class:`MDFLoss`. Weight files
(the project's format, the authors' legacy pickles, the shipped weights) are read by
:mod:`metrics.mdf_weights`; their loaders are re-exported here for convenience.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metrics._utils import _check_reduction, _reduce, _to_rgb, _validate_input
from metrics.discriminator import Discriminator
from metrics.mdf_kernels import acc_dtype, fast_distance, fold_discriminator, sq_diff_mean
from metrics.mdf_weights import (
    WEIGHTS_DIR,
    checked_task,
    convert_legacy,
    load_discriminators,
    load_legacy_discriminators,
    save_discriminators,
    shipped_weights,
)
from metrics.singan_config import preset_name

__all__ = [
    "WEIGHTS_DIR",
    "Discriminator",
    "MDFLoss",
    "convert_legacy",
    "fold_discriminator",
    "load_discriminators",
    "load_legacy_discriminators",
    "mdf",
    "mdf_straightforward",
    "save_discriminators",
]

logger = logging.getLogger(__name__)
#: Shipped weight files already announced in the log (once per file and process).
_ANNOUNCED: set[str] = set()


def _select(discs: Sequence[nn.Module], num_scales: int, order: str) -> list[nn.Module]:
    if order not in ("ascending", "descending"):
        raise ValueError(f"order must be 'ascending' or 'descending', got {order!r}")
    if not 1 <= num_scales <= len(discs):
        raise ValueError(
            f"num_scales must lie in 1..{len(discs)} (discriminators available), got {num_scales}"
        )
    seq = list(discs) if order == "ascending" else list(discs)[::-1]
    return seq[:num_scales]


def _check_mdf_input(x, y, discs, map_to_pm1, name="mdf"):
    rf = max(d.receptive_field for d in discs)
    _validate_input(x, y, min_size=1, name=name)
    if min(x.shape[-2:]) < rf:
        raise ValueError(
            f"{name}: images must be at least {rf}x{rf} pixels (the discriminators' "
            f"receptive field), got {x.shape[-2]}x{x.shape[-1]}"
        )
    wdev = discs[0].tail.weight.device
    if x.device != wdev:
        raise ValueError(
            f"{name}: images are on {x.device} but the discriminators are on {wdev}; "
            "move the loss (.to(device)) or the images"
        )
    x, y = _to_rgb(x), _to_rgb(y)
    if map_to_pm1:
        x, y = 2 * x - 1, 2 * y - 1
    return x, y


def _straightforward_total(x, y, selected) -> torch.Tensor:
    """Each selected discriminator on x and on y separately, BatchNorm as its own op."""
    total = torch.zeros(x.shape[0], device=x.device, dtype=acc_dtype(x.dtype))
    for d in selected:
        for fx, fy in zip(d.features(x), d.features(y)):
            total = total + sq_diff_mean(fx, fy)
    return total


def _fast_total(x, y, discriminators, sel, folded, channels_last) -> torch.Tensor:
    dtype = discriminators[0].tail.weight.dtype
    params_grad = any(p.requires_grad for i in sel for p in discriminators[i].parameters())
    need_grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad or params_grad)
    # the reference runs without autograd unless something on its path needs a gradient
    ref_grad = y.requires_grad or params_grad
    params_sel = [
        folded[i] if folded is not None else fold_discriminator(discriminators[i]) for i in sel
    ]
    return fast_distance(
        x.to(dtype),
        y.to(dtype),
        params_sel,
        need_grad=need_grad,
        ref_grad=ref_grad,
        channels_last=channels_last,
    )


def mdf(
    x: torch.Tensor,
    y: torch.Tensor,
    discriminators: Sequence[Discriminator],
    *,
    num_scales: int = 8,
    order: str = "ascending",
    map_to_pm1: bool = False,
    reduction: str = "none",
    fast: bool = True,
    folded: Sequence[list] | None = None,
    channels_last: bool = True,
) -> torch.Tensor:
    r"""MDF loss of prediction ``x`` against reference ``y`` (Mustafa et al., WACV 2022, eq. 2).

    .. math::
        \mathrm{MDF}(x, y)_b = \sum_{k \in K} \sum_{l=1}^{3}
        \operatorname{mean}_{c,h,w}\bigl(\phi^k_l(x)_b - \phi^k_l(y)_b\bigr)^2,

    with :math:`\phi^k_1, \phi^k_2, \phi^k_3` the head output, the body output and the raw
    critic map of discriminator k, K the ``num_scales`` discriminators counted from the
    coarsest (``order="ascending"``) or from the finest (``"descending"``). All weights 1, no
    square root, no resizing (every discriminator sees the full-resolution images).

    Fast form (``fast=True``, :mod:`metrics.mdf_kernels`): BatchNorm folded into the
    convolutions (eval mode), every pass in the channels-last layout (``channels_last``),
    convolution and LeakyReLU fused into one oneDNN primitive on CPU. Without a gradient, x and
    y go through each discriminator in one batched pass. When only the prediction needs a
    gradient (training), the reference runs without autograd and the prediction through
    :class:`metrics.mdf_kernels.DiscriminatorDistance`, whose hand-written backward pass avoids
    the generic graph's extra passes over the activations. When the reference or the
    discriminators need gradients, plain autograd is used. On CPU the batch runs in chunks of
    at most 16 MiB per activation (fresh large allocations page-fault). Values equal the
    straightforward form (``fast=False``, :func:`mdf_straightforward`) to float rounding
    (< 1e-5 relative); about 2x faster than it forward + backward on 4 x 3 x 256 x 256 on this
    project's AVX-512 CPU (``benchmarks/loss_cost.py``).

    Args:
        x, y: (N, 3, H, W) (or grey, repeated to RGB), values in [0, 1], H, W >= 11.
        discriminators: coarsest first (from :func:`load_discriminators`).
        map_to_pm1: map inputs to [-1, 1] (the discriminators' training range) first; the
            released loss does not (default False, as the reference values).
        fast: the fast form (default) or the straightforward one.
        folded: precomputed :func:`fold_discriminator` results for all ``discriminators``
            (fast form only).
        channels_last: activation layout of the fast form (default True).

    Returns:
        Per-image values (N,) with ``reduction="none"``; lower is better.
    """
    x, y = _check_mdf_input(x, y, discriminators, map_to_pm1)
    sel = _select(list(range(len(discriminators))), num_scales, order)
    if fast:
        total = _fast_total(x, y, discriminators, sel, folded, channels_last)
    else:
        total = _straightforward_total(x, y, [discriminators[i] for i in sel])
    return _reduce(total.to(x.dtype), reduction)


def mdf_straightforward(
    x: torch.Tensor, y: torch.Tensor, discriminators: Sequence[Discriminator], **options: Any
) -> torch.Tensor:
    """MDF computed the plain way (the definition; slower): each selected discriminator runs
    separately on x and on y with BatchNorm as a separate op. Same formula and options
    (``num_scales``, ``order``, ``map_to_pm1``, ``reduction``) as :func:`mdf` with
    ``fast=False``."""
    return mdf(x, y, discriminators, **options, fast=False)


def _same_task(a: str, b: str) -> bool:
    """Whether two task names mean the same task (``"sr"`` and ``"sisr"`` do)."""
    try:
        return checked_task(a) == checked_task(b)
    except ValueError:
        return a == b


class MDFLoss(nn.Module):
    """The MDF loss / metric module (lower is better).

    Discriminators are registered as an ``nn.ModuleList`` (so ``.to(device)``, ``.half()``,
    DataParallel and DDP replicas carry them), frozen, and kept in eval mode whatever
    ``train()`` says. Returns per-image values (``reduction="none"``) or their mean/sum.

    Args:
        task: any task name of :mod:`scaling.contracts.tasks` (``"sr"`` or ``"sisr"``,
            ``"denoise"``, ``"jpeg"``); checked against the file's metadata. Without
            ``weights``, the package's own ``metrics/weights/mdf_<task>.pt`` is used when it
            exists (:func:`metrics.mdf_weights.shipped_weights`; trained with the ``quick``
            preset: the ``repr`` and an INFO log line, once per file, say so), else a clear
            error is raised.
        weights: path to a weight file (project format or the authors' legacy ``Ds_*.pth``),
            or a sequence of :class:`Discriminator` modules.
        num_scales: number of discriminators used (default 8), counted per ``order``.
        order: ``"ascending"`` (from the coarsest, default) or ``"descending"``.
        map_to_pm1: feed [-1, 1] instead of [0, 1] (not the released behaviour).
        fast: use the fast form of :func:`mdf` (default) instead of the straightforward one.
        channels_last: activation layout of the fast form (default True).
        enable_grad: leave the discriminator parameters trainable.

    Attributes:
        task: MDF's name of the task (``sisr``, ``denoise``, ``jpeg``) or None.
        weights_file: the weight file read (None for modules); ``shipped`` whether it is the
            package's own; ``preset``: the Phase-1 preset its metadata records (``"quick"``,
            ``"paper"``, ``"tiny"``, ``"custom"``), None when unknown (legacy files, modules).
    """

    lower_better = True

    def __init__(
        self,
        task: str | None = None,
        weights: Any = None,
        *,
        num_scales: int = 8,
        order: str = "ascending",
        reduction: str = "none",
        map_to_pm1: bool = False,
        fast: bool = True,
        enable_grad: bool = False,
        channels_last: bool = True,
    ):
        super().__init__()
        task = None if task is None else checked_task(task)
        self.shipped = weights is None
        if weights is None:
            weights = shipped_weights(task)
        self.weights_file: str | None = None
        if isinstance(weights, (str, os.PathLike)):
            discs, meta = load_discriminators(weights)
            self.weights_file = str(weights)
        else:
            discs, meta = list(weights), {}
            if not discs or not all(isinstance(d, Discriminator) for d in discs):
                raise TypeError("weights must be a path or a non-empty sequence of Discriminator")
        trained_for = meta.get("task")
        if task is not None and trained_for is not None and not _same_task(trained_for, task):
            raise ValueError(f"weights were trained for task {trained_for!r}, not {task!r}")
        _select(discs, num_scales, order)  # fail now on a bad selection
        self.task, self.metadata = task or meta.get("task"), meta
        self.preset = preset_name(meta.get("config"))
        self.num_scales, self.order = num_scales, order
        self.reduction = _check_reduction(reduction)
        self.map_to_pm1, self.fast, self.channels_last = map_to_pm1, fast, channels_last
        self.discriminators = nn.ModuleList(discs)
        self.discriminators.requires_grad_(enable_grad)
        self.discriminators.eval()
        self._fold_cache: tuple[Any, list] | None = None
        if self.shipped:
            self._announce()

    def _announce(self) -> None:
        """Log, once per file and process, that the shipped weights are in use."""
        if self.weights_file in _ANNOUNCED:
            return
        _ANNOUNCED.add(self.weights_file)
        note = (
            " (a smaller pyramid and fewer iterations than the paper's)"
            if self.preset == "quick"
            else ""
        )
        logger.info(
            "MDF task=%r without weights=: using the shipped %s, %d discriminators trained with "
            "the Phase-1 preset %r%s; pass weights= to use others",
            self.task,
            Path(self.weights_file).name,
            len(self.discriminators),
            self.preset,
            note,
        )

    def train(self, mode: bool = True) -> MDFLoss:
        """Set the module's mode; the discriminators stay in eval mode (BatchNorm uses its
        stored statistics)."""
        super().train(mode)
        self.discriminators.eval()
        return self

    def _folded(self) -> list:
        key = tuple((p.data_ptr(), p._version, p.dtype) for p in self.discriminators.parameters())
        key += tuple((b.data_ptr(), b._version) for b in self.discriminators.buffers())
        if any(p.requires_grad for p in self.discriminators.parameters()):
            return [fold_discriminator(d) for d in self.discriminators]
        if self._fold_cache is None or self._fold_cache[0] != key:
            with torch.no_grad():
                self._fold_cache = (key, [fold_discriminator(d) for d in self.discriminators])
        return self._fold_cache[1]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-image MDF of prediction ``x`` against reference ``y`` (see :func:`mdf`)."""
        return mdf(
            x,
            y,
            list(self.discriminators),
            num_scales=self.num_scales,
            order=self.order,
            map_to_pm1=self.map_to_pm1,
            reduction=self.reduction,
            fast=self.fast,
            folded=self._folded() if self.fast else None,
            channels_last=self.channels_last,
        )

    def extra_repr(self) -> str:
        """Task, weights (file, whether shipped, Phase-1 preset) and the selection."""
        where = "shipped" if self.shipped else "given"
        weights = f"{self.weights_file!r} ({where})" if self.weights_file else "modules"
        return (
            f"task={self.task!r}, weights={weights}, preset={self.preset!r}, "
            f"num_scales={self.num_scales}, order={self.order!r}, "
            f"discriminators={len(self.discriminators)}"
        )
