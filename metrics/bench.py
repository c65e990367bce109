"""Cost of each loss (MDF paper, table 1): forward and backward time, parameter memory."""

from __future__ import annotations

import gc
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

#: Losses timed by default, with the options that make them buildable offline. Random trunk
#: weights cost exactly as much as ImageNet ones; MDF uses the authors' file when given.
DEFAULT_LOSSES = (
    "l2",
    "l1",
    "ssim",
    "ms_ssim",
    "ms_ssim_l1",
    "vgg",
    "lpips",
    "pdl",
    "mdf",
    "mdf_straightforward",
    "mdf_authors",
)

#: What each timed loss is, where the name alone does not say (printed under the table).
LOSS_NOTES = {
    "vgg": "VGG16 features up to relu5_3 (the whole VGG16 trunk, random weights) + L2",
    "lpips": "LPIPS with the AlexNet trunk (random trunk weights) + 0.1 x L2",
    "pdl": "sorted 1-D Wasserstein on VGG16 relu4_3 + pixel L1",
    "mdf": "ours: BN folded into the convs, channels-last, y without autograd, a hand-written "
    "backward pass for x, x and y batched when no gradient is needed, frozen discriminators; "
    "on the CPU also conv+LeakyReLU fused (oneDNN) and the batch chunked to <= 16 MiB "
    "activations",
    "mdf_straightforward": "each discriminator on x and on y separately, BN as its own op, "
    "frozen discriminators",
    "mdf_authors": "as the authors' mdfloss.py runs it: the straightforward form with the "
    "discriminators' parameters left trainable (torch.load'ed modules), so "
    "autograd also records the y branch and computes weight gradients",
}


@dataclass
class CostRow:
    """One loss: median forward/backward milliseconds and parameter + buffer memory (MB)."""

    name: str
    forward_ms: float
    backward_ms: float
    param_mb: float


def singan_shaped_discriminators(channels: Sequence[int] = (32,) * 4 + (64,) * 4, seed: int = 0):
    """Random SinGAN-initialised discriminators shaped like the authors' JPEG set (the default),
    for timing when no weight file is at hand."""
    from metrics.discriminator import Discriminator, init_singan_weights

    g = torch.Generator().manual_seed(seed)
    out = []
    for c in channels:
        d = Discriminator(c)
        init_singan_weights(d, generator=g)
        out.append(d.eval())
    return out


def build_loss(name: str, *, mdf_weights=None, vgg_layers=("relu5_3",)) -> nn.Module:
    """A loss as timed by the benchmark: VGG16 features up to ``vgg_layers`` (the paper's
    full-VGG16 comparison), LPIPS-alex, PDL on VGG16 relu4_3, MDF 8 scales."""
    import metrics

    weights = mdf_weights if mdf_weights is not None else singan_shaped_discriminators()
    if name in ("vgg", "lpips", "pdl"):
        options = {"layers": tuple(vgg_layers)} if name == "vgg" else {}
        with warnings.catch_warnings():
            # random trunks on purpose: a cost does not depend on the weights (LOSS_NOTES and
            # the printed notes say "random weights"); no value of these losses is reported
            warnings.simplefilter("ignore", metrics.RandomWeightsWarning)
            return metrics.create(name, pretrained=False, reduction="mean", **options)
    if name == "mdf":
        return metrics.create("mdf", weights=weights, reduction="mean")
    if name == "mdf_straightforward":
        return metrics.create("mdf", weights=weights, reduction="mean", fast=False)
    if name == "mdf_authors":
        return metrics.create(
            "mdf", weights=weights, reduction="mean", fast=False, enable_grad=True
        )
    return metrics.create(name, reduction="mean")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_loss(
    loss: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    repeats: int = 5,
    warmup: int = 1,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[float, float]:
    """Median forward and backward times (ms) of ``loss(x, y)`` with ``x`` requiring a
    gradient, as in training. On CPU the clock is the process CPU time (robust to other
    processes sharing the cores; equal to wall time with one thread on an idle machine); on
    CUDA it is wall time between synchronisations."""
    dev = x.device
    clock = time.perf_counter if dev.type == "cuda" else time.process_time
    fwd, bwd = [], []
    for i in range(warmup + repeats):
        xr = x.detach().clone().requires_grad_(True)
        _sync(dev)
        t0 = clock()
        if autocast_dtype is not None:
            with torch.autocast(dev.type, dtype=autocast_dtype):
                val = loss(xr, y)
        else:
            val = loss(xr, y)
        _sync(dev)
        t1 = clock()
        val.backward()
        _sync(dev)
        loss.zero_grad(set_to_none=True)
        t2 = clock()
        if i >= warmup:
            fwd.append((t1 - t0) * 1e3)
            bwd.append((t2 - t1) * 1e3)
    return statistics.median(fwd), statistics.median(bwd)


def param_mb(module: nn.Module) -> float:
    """Parameters + buffers of ``module``, in MB (1e6 bytes)."""
    n = sum(
        t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers())
    )
    return n / 1e6


def run_benchmark(
    names: Sequence[str] = DEFAULT_LOSSES,
    *,
    batch: int = 4,
    size: int = 256,
    device: str = "cpu",
    repeats: int = 5,
    threads: int | None = 1,
    mdf_weights=None,
    autocast_dtype: torch.dtype | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[CostRow]:
    """Time every loss in ``names`` on one ``batch x 3 x size x size`` batch in [0, 1]."""
    if threads is not None:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    g = torch.Generator().manual_seed(0)
    y = torch.rand(batch, 3, size, size, generator=g)
    x = (y + 0.05 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    x, y = x.to(dev), y.to(dev)
    rows = []
    for name in names:
        if progress:
            progress(name)
        loss = build_loss(name, mdf_weights=mdf_weights).to(dev)
        f, b = time_loss(loss, x, y, repeats=repeats, autocast_dtype=autocast_dtype)
        rows.append(CostRow(name, f, b, param_mb(loss)))
        del loss
        gc.collect()
    return rows


def markdown_table(rows: Sequence[CostRow], *, title: str | None = None) -> str:
    """The cost table in Markdown, with forward+backward ratios to L2 and to VGG16."""
    by = {r.name: r for r in rows}
    total = {r.name: r.forward_ms + r.backward_ms for r in rows}
    lines = [f"**{title}**", ""] if title else []
    lines += [
        "| loss | forward ms | backward ms | fwd+bwd ms | x L2 | x VGG16 | params MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t = total[r.name]
        vs_l2 = f"{t / total['l2']:.1f}" if "l2" in by else "-"
        vs_vgg = f"{t / total['vgg']:.2f}" if "vgg" in by else "-"
        lines.append(
            f"| {r.name} | {r.forward_ms:.1f} | {r.backward_ms:.1f} | {t:.1f} | "
            f"{vs_l2} | {vs_vgg} | {r.param_mb:.2f} |"
        )
    return "\n".join(lines)
