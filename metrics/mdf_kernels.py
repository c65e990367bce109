"""The fast kernels of the MDF loss (used by :func:`metrics.mdf.mdf`; not a public API).

* BatchNorm folded into the convolutions (eval mode): :func:`fold_discriminator`;
* convolution + LeakyReLU as one oneDNN primitive on CPU (channels-last float32);
* :class:`DiscriminatorDistance`: one discriminator's MDF term with a hand-written backward pass
  (transposed convolutions, the LeakyReLU mask from the stored outputs), for the training path
  where only the prediction needs a gradient;
* :func:`fast_distance`: the per-image MDF of a batch, in chunks on CPU (:func:`chunk_size`,
  :data:`CPU_CHUNK_BYTES`); :func:`batch_distance`, that of one chunk, choosing between the
  batched no-gradient pass, the hand-written backward and plain autograd.

Values equal :func:`metrics.mdf.mdf_straightforward` to float rounding (< 1e-5 relative).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from metrics.discriminator import NEG_SLOPE, Discriminator


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float32 for half precisions, else the dtype itself."""
    return torch.promote_types(dtype, torch.float32)


def sq_diff_mean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image mean over (C, H, W) of ``(a - b)^2``, accumulated in :func:`acc_dtype`."""
    d = (a - b).to(acc_dtype(a.dtype))
    return (d * d).mean((1, 2, 3))


def fold_discriminator(
    d: Discriminator, dtype: torch.dtype | None = None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, bias) per conv layer with eval-mode BatchNorm folded in:
    ``w' = w * g / sqrt(v + eps)``, ``b' = (b - m) * g / sqrt(v + eps) + beta``; the tail
    last. Folding is done in float64, then cast to ``dtype`` (default: the weights' dtype)."""
    out = []
    blocks = [d.head, *d.body]
    for blk in blocks:
        conv, bn = blk.conv, blk.norm
        scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        w = conv.weight.double() * scale.view(-1, 1, 1, 1)
        b = (conv.bias.double() - bn.running_mean.double()) * scale + bn.bias.double()
        out.append((w, b))
    out.append((d.tail.weight.double(), d.tail.bias.double()))
    dt = dtype or d.tail.weight.dtype
    return [(w.to(dt), b.to(dt)) for w, b in out]


def _use_mkldnn_fusion(h: torch.Tensor) -> bool:
    """Whether oneDNN's fused convolution + LeakyReLU applies (float32 CPU tensors in the
    channels-last layout, outside autocast)."""
    return (
        h.device.type == "cpu"
        and h.dtype == torch.float32
        and h.is_contiguous(memory_format=torch.channels_last)
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and not _cpu_autocast()
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    )


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def _conv_lrelu(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``leaky_relu(conv2d(h, w, b), 0.2)``, as one oneDNN primitive where it applies."""
    if _use_mkldnn_fusion(h):
        return torch.ops.mkldnn._convolution_pointwise(
            h, w, b, [0, 0], [1, 1], [1, 1], 1, "leaky_relu", [NEG_SLOPE], ""
        )
    return F.leaky_relu(F.conv2d(h, w, b), NEG_SLOPE)


def _layer_outputs(params: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor):
    """Every block's output (after LeakyReLU) and the raw tail map of a folded discriminator."""
    hs, h = [], x
    for w, b in params[:-1]:
        h = _conv_lrelu(h, w, b)
        hs.append(h)
    return hs, F.conv2d(h, *params[-1])


def _fast_features(params: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor):
    hs, tail = _layer_outputs(params, x)
    return [hs[0], hs[-1], tail]


def _sq_sum(d: torch.Tensor) -> torch.Tensor:
    """Per-image sum of squares of an (N, C, H, W) tensor in either memory layout, one pass."""
    if d.is_contiguous(memory_format=torch.channels_last) and not d.is_contiguous():
        flat = d.permute(0, 2, 3, 1).reshape(d.shape[0], -1)
    else:
        flat = d.reshape(d.shape[0], -1)
    flat = flat.to(acc_dtype(flat.dtype))  # accumulate half-precision squares in float32
    return torch.linalg.vecdot(flat, flat)


class DiscriminatorDistance(torch.autograd.Function):
    """One folded discriminator's MDF term and its hand-written backward pass.

    Forward: the prediction's block outputs h_1..h_L (fused conv + LeakyReLU) and tail map t;
    returns, per image, ``|h_1 - y_1|^2 / n_1 + |h_L - y_L|^2 / n_L + |t - y_t|^2 / n_t``
    (y_* the reference's features, computed without autograd). Backward: transposed
    convolutions down the stack, the LeakyReLU mask taken from the stored outputs (h > 0 iff
    the pre-activation is > 0), the feature terms ``2 g (h - y) / n`` added where they enter.
    This keeps autograd's bookkeeping out (about a third fewer passes over the activations
    than the generic graph) and lets every pass run in the channels-last layout."""

    @staticmethod
    def forward(ctx, x, y_head, y_body, y_tail, *flat):
        params = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        hs, tail = _layer_outputs(params, x)
        diffs = (hs[0] - y_head, hs[-1] - y_body, tail - y_tail)
        ns = tuple(d[0].numel() for d in diffs)
        value = sum(_sq_sum(d) / n for d, n in zip(diffs, ns))
        ctx.save_for_backward(*hs, *diffs, *(w for w, _ in params))
        ctx.n_blocks, ctx.ns, ctx.x_dtype = len(hs), ns, x.dtype
        return value

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        saved = ctx.saved_tensors
        n_blocks = ctx.n_blocks
        hs, diffs, ws = saved[:n_blocks], saved[n_blocks : n_blocks + 3], saved[n_blocks + 3 :]
        # under autocast the forward ran in a lower precision: the backward runs in it too
        ws = [w.to(hs[0].dtype) for w in ws]
        scales = [(g * (2.0 / n)).to(d.dtype).view(-1, 1, 1, 1) for d, n in zip(diffs, ctx.ns)]
        extra = {0: [(diffs[0], scales[0])]}
        extra.setdefault(n_blocks - 1, []).append((diffs[1], scales[1]))
        grad = F.conv_transpose2d(diffs[2] * scales[2], ws[-1])  # d value / d h_L
        for i in range(n_blocks - 1, -1, -1):
            for d, s in extra.get(i, ()):
                grad.addcmul_(d, s)
            grad = torch.ops.aten.leaky_relu_backward(grad, hs[i], NEG_SLOPE, True)
            grad = F.conv_transpose2d(grad, ws[i])
        return (grad.to(ctx.x_dtype), None, None, None) + (None,) * (2 * len(ws))


#: On CPU the batch is processed in chunks whose largest activation stays under this many
#: bytes: larger tensors are mmap'ed afresh by glibc on every allocation, and the page faults
#: of touching them cost about a quarter of the loss's time at 4 x 3 x 256 x 256.
CPU_CHUNK_BYTES = 16 * 2**20


def chunk_size(x: torch.Tensor, params: list, hand_backward: bool) -> int:
    """Images per chunk (the whole batch off the CPU)."""
    if x.device.type != "cpu":
        return x.shape[0]
    width = max(w.shape[0] for p in params for w, _ in p)
    per_image = width * x.shape[-2] * x.shape[-1] * x.element_size()
    per_image *= 1 if hand_backward else 2  # x and y batched together without a gradient
    return max(1, min(x.shape[0], CPU_CHUNK_BYTES // per_image))


def batch_distance(xin, yin, params_sel, need_grad, ref_grad, cl) -> torch.Tensor:
    """Per-image MDF of one chunk of the batch (see :func:`metrics.mdf.mdf` for the three paths)."""
    n = xin.shape[0]
    total = torch.zeros(n, device=xin.device, dtype=acc_dtype(xin.dtype))
    if not need_grad:
        both = torch.cat([xin, yin]).contiguous(memory_format=cl)
    elif not ref_grad:
        xin, yin = xin.contiguous(memory_format=cl), yin.contiguous(memory_format=cl)
    for params in params_sel:
        if need_grad and ref_grad:  # generic autograd graph (trainable discriminators, y grad)
            for fx, fy in zip(_fast_features(params, xin), _fast_features(params, yin)):
                total = total + sq_diff_mean(fx, fy)
            continue
        params = [(w.contiguous(memory_format=cl), b) for w, b in params]
        if not need_grad:
            for f in _fast_features(params, both):
                total = total + _sq_sum(f[:n] - f[n:]) / f[0].numel()
            continue
        with torch.no_grad():
            hs, tail = _layer_outputs(params, yin)
        flat = [t for wb in params for t in wb]
        total = total + DiscriminatorDistance.apply(xin, hs[0], hs[-1], tail, *flat)
    return total


def fast_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    folded: list[list[tuple[torch.Tensor, torch.Tensor]]],
    *,
    need_grad: bool,
    ref_grad: bool,
    channels_last: bool = True,
) -> torch.Tensor:
    """Per-image MDF (unreduced, in :func:`acc_dtype`) over the folded discriminators
    ``folded``; on CPU the batch runs in chunks of :func:`chunk_size` images.

    ``need_grad``: something needs a gradient; ``ref_grad``: the reference or the
    discriminators do (then plain autograd runs, else the hand-written backward).
    """
    cl = torch.channels_last if channels_last else torch.contiguous_format
    chunk = chunk_size(x, folded, need_grad and not ref_grad)
    totals = [
        batch_distance(xc, yc, folded, need_grad, ref_grad, cl)
        for xc, yc in zip(x.split(chunk), y.split(chunk))
    ]
    return totals[0] if len(totals) == 1 else torch.cat(totals)
