"""The Multi-scale Discriminative Feature (MDF) loss and its discriminators.

Phase 2 of Mustafa et al. (WACV 2022): a set of frozen SinGAN-style discriminators, one per
scale of a SinGAN pyramid, each trained (Phase 1) to spot a restoration task's artefacts,
serve as feature extractors; the loss is the squared difference of their features.

This module provides:

* :class:`Discriminator`, SinGAN's "WDiscriminator" (reusable by a Phase-1 trainer), and
  :func:`init_singan_weights`;
* the project's weight format (:func:`save_discriminators`, :func:`load_discriminators`:
  state dicts + metadata, loadable with ``torch.load(weights_only=True)``);
* loading of the authors' legacy pickles without the ``SinGAN`` package, through a restricted
  unpickler (:func:`load_legacy_discriminators`, :func:`convert_legacy`);
* :func:`mdf` (fast form: one batched pass, reference branch without autograd, BatchNorm folded
  into the convolutions), :func:`mdf_straightforward` (each discriminator run separately on x
  and on y, BatchNorm as its own op; kept as the executable definition) and :class:`MDFLoss`.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.serialization import SourceChangeWarning

from metrics._utils import _check_reduction, _reduce, _to_rgb, _validate_input

logger = logging.getLogger(__name__)

FORMAT_NAME = "mdf-toolkit/discriminators"
FORMAT_VERSION = 1
TASKS = ("sisr", "denoise", "jpeg")
#: Folder of the discriminator weights shipped with the package (``mdf_<task>.pt``).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_NEG_SLOPE = 0.2
_BLOCK_NAMES = ("head", "body.block1", "body.block2", "body.block3")


# --------------------------------------------------------------------------- architecture
class ConvBlock(nn.Sequential):
    """Conv3x3 (no padding, bias) -> BatchNorm2d -> LeakyReLU(0.2): SinGAN's ``ConvBlock``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_channels, out_channels, kernel_size, padding=0))
        self.add_module("norm", nn.BatchNorm2d(out_channels))
        self.add_module("act", nn.LeakyReLU(_NEG_SLOPE))


class Discriminator(nn.Module):
    """SinGAN's ``WDiscriminator`` as used by MDF: head ConvBlock(3->N), body of
    ``num_layers - 2`` ConvBlocks (N->N), tail Conv3x3(N->1) without norm or activation.

    With the defaults (5 layers, 3x3, no padding) the receptive field is 11x11 and an H x W
    input gives an (H-10) x (W-10) map. State-dict keys follow the authors' files:
    ``head.conv.*``, ``head.norm.*``, ``body.block1..3.{conv,norm}.*``, ``tail.*``.

    Reference: Shaham, Dekel, Michaeli, "SinGAN: Learning a Generative Model from a Single
    Natural Image", ICCV 2019.
    """

    def __init__(
        self, channels: int = 32, *, num_layers: int = 5, kernel_size: int = 3, in_channels: int = 3
    ):
        super().__init__()
        if num_layers < 3:
            raise ValueError(f"num_layers must be >= 3 (head, body, tail), got {num_layers}")
        if channels < 1 or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"bad channels={channels} or kernel_size={kernel_size} (odd)")
        self.channels, self.num_layers = channels, num_layers
        self.kernel_size, self.in_channels = kernel_size, in_channels
        self.head = ConvBlock(in_channels, channels, kernel_size)
        self.body = nn.Sequential()
        for i in range(num_layers - 2):
            self.body.add_module(f"block{i + 1}", ConvBlock(channels, channels, kernel_size))
        self.tail = nn.Conv2d(channels, 1, kernel_size, padding=0)

    @property
    def receptive_field(self) -> int:
        """Side in pixels of the receptive field (11 with the defaults)."""
        return self.num_layers * (self.kernel_size - 1) + 1

    def config(self) -> dict[str, int]:
        """Shape-defining arguments, as stored in the weight file."""
        return {
            "channels": self.channels,
            "num_layers": self.num_layers,
            "kernel_size": self.kernel_size,
            "in_channels": self.in_channels,
        }

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The three MDF features: head output, body output (after their LeakyReLUs) and the
        raw tail output (the critic map)."""
        h = self.head(x)
        b = self.body(h)
        return [h, b, self.tail(b)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The critic map (N, 1, H - rf + 1, W - rf + 1)."""
        return self.tail(self.body(self.head(x)))


def init_singan_weights(module: nn.Module, *, generator: torch.Generator | None = None) -> None:
    """SinGAN's initialisation: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02), BN
    biases 0 (conv biases keep torch's default)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            with torch.no_grad():
                m.weight.normal_(0.0, 0.02, generator=generator)
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.normal_(1.0, 0.02, generator=generator)
                m.bias.zero_()


def singan_channels(scale: int, nfc: int = 32, max_channels: int = 128) -> int:
    """SinGAN's channel schedule: ``min(nfc * 2^floor(scale / 4), max_channels)``."""
    return min(nfc * 2 ** (scale // 4), max_channels)


# --------------------------------------------------------------------------- weight files
def _atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_discriminators(
    path: str | os.PathLike,
    discriminators: Sequence[Discriminator],
    metadata: dict[str, Any] | None = None,
) -> None:
    """Save discriminators (coarsest first) in the project's format, atomically.

    The file holds only tensors and plain types: ``{"format", "version", "metadata",
    "discriminators": [{"config": {...}, "state_dict": {...}}, ...]}``, so it loads with
    ``torch.load(path, weights_only=True)``. ``metadata`` (e.g. ``task``, ``source``, training
    settings) must itself be plain types.
    """
    if len(discriminators) == 0:
        raise ValueError("no discriminators to save")
    entries = []
    for d in discriminators:
        if not isinstance(d, Discriminator):
            raise TypeError(f"expected Discriminator instances, got {type(d).__name__}")
        sd = OrderedDict((k, v.detach().cpu().clone()) for k, v in d.state_dict().items())
        entries.append({"config": d.config(), "state_dict": dict(sd)})
    meta = dict(metadata or {})
    if meta.get("task") is not None and meta["task"] not in TASKS:
        raise ValueError(f"metadata task must be one of {TASKS}, got {meta['task']!r}")
    _atomic_torch_save(
        {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "metadata": meta,
            "discriminators": entries,
        },
        path,
    )


def load_discriminators(
    path: str | os.PathLike, *, map_location: str | torch.device = "cpu"
) -> tuple[list[Discriminator], dict[str, Any]]:
    """Load discriminators from the project's format (``torch.load(weights_only=True)``) or,
    for a legacy non-zip file, from the authors' pickles (see
    :func:`load_legacy_discriminators`). Returns ``(discriminators, metadata)``, coarsest
    first, in eval mode.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a discriminator file, or inconsistent contents.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MDF weight file not found: {path}")
    if not zipfile.is_zipfile(path):
        return load_legacy_discriminators(path), {"source": str(path.name), "legacy": True}
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path} is not a plain-tensor weight file: {e}") from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not an MDF discriminator file (format {FORMAT_NAME!r})")
    if obj.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format version {obj.get('version')!r}")
    discs = []
    for i, entry in enumerate(obj["discriminators"]):
        d = Discriminator(**entry["config"])
        try:
            d.load_state_dict(entry["state_dict"])
        except RuntimeError as e:
            raise ValueError(f"{path}: discriminator {i} does not match its config: {e}") from e
        discs.append(d.eval())
    return discs, dict(obj.get("metadata") or {})


class _LegacyModule:
    """Stand-in for any module class found in a legacy pickle: it only keeps the pickled
    attribute dictionary (``_modules``, ``_parameters``, ``_buffers``); no foreign code runs."""

    dump_patches = False  # read by torch's legacy loader when it compares class sources

    def __setstate__(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("unexpected module state in legacy MDF file")
        self.__dict__.update(state)


_LEGACY_MODULE_CLASSES = {
    ("SinGAN.models", "WDiscriminator"),
    ("SinGAN.models", "ConvBlock"),
    ("torch.nn.modules.conv", "Conv2d"),
    ("torch.nn.modules.batchnorm", "BatchNorm2d"),
    ("torch.nn.modules.activation", "LeakyReLU"),
    ("torch.nn.modules.container", "Sequential"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of the authors' files: the module classes map
    to :class:`_LegacyModule`, plus OrderedDict, torch storages and torch's tensor/parameter
    rebuild functions (and set/frozenset, found in files written by newer torch). Anything else
    is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in _LEGACY_MODULE_CLASSES:
            return _LegacyModule
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module in ("builtins", "__builtin__") and name in ("set", "frozenset"):
            return {"set": set, "frozenset": frozenset}[name]  # newer torch's module state
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_parameter"):
            return getattr(torch._utils, name)
        if module == "torch" and name.endswith("Storage") and hasattr(torch, name):
            return getattr(torch, name)
        raise pickle.UnpicklingError(
            f"legacy MDF file refers to a forbidden global {module}.{name}"
        )


class _RestrictedPickleModule:
    """A ``pickle_module`` for ``torch.load`` built on :class:`_RestrictedUnpickler`."""

    __name__ = "metrics.mdf._restricted_pickle"
    Unpickler = _RestrictedUnpickler

    @staticmethod
    def load(f, **kwargs):
        return _RestrictedUnpickler(f, **kwargs).load()


def _flatten_legacy(mod: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if not isinstance(mod, _LegacyModule):
        # bad file contents, not a bad argument type: reported as ValueError like the rest
        raise ValueError("legacy MDF file: expected module objects")  # noqa: TRY004
    for key in ("_parameters", "_buffers"):
        for n, t in (getattr(mod, key, None) or {}).items():
            if t is not None:
                out[prefix + n] = t.detach().clone() if isinstance(t, torch.Tensor) else t
    for n, child in (getattr(mod, "_modules", None) or {}).items():
        out.update(_flatten_legacy(child, f"{prefix}{n}."))
    return out


def load_legacy_discriminators(path: str | os.PathLike) -> list[Discriminator]:
    """Load the authors' ``Ds_*.pth`` (legacy torch pickle of a list of
    ``SinGAN.models.WDiscriminator``) without the SinGAN package and without running any code
    from the file: a restricted unpickler maps the classes to plain attribute holders, and the
    weights are copied into :class:`Discriminator` modules (coarsest first, eval mode)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"legacy MDF weight file not found: {path}")
    try:
        with warnings.catch_warnings():
            # The file embeds the source of the authors' classes; ours differ on purpose.
            warnings.simplefilter("ignore", SourceChangeWarning)
            warnings.filterwarnings("ignore", message="Couldn't retrieve source code")
            obj = torch.load(
                path, map_location="cpu", pickle_module=_RestrictedPickleModule, weights_only=False
            )
    except (pickle.UnpicklingError, EOFError, RuntimeError) as e:
        raise ValueError(f"{path} is not a legacy MDF discriminator file: {e}") from e
    if not isinstance(obj, (list, tuple)) or not obj:
        raise ValueError(f"{path}: expected a non-empty list of discriminators")
    discs = []
    for i, m in enumerate(obj):
        sd = _flatten_legacy(m)
        if "head.conv.weight" not in sd or "tail.weight" not in sd:
            raise ValueError(f"{path}: discriminator {i} lacks head.conv/tail weights")
        w = sd["head.conv.weight"]
        n_body = sum(1 for k in sd if k.startswith("body.") and k.endswith(".conv.weight"))
        d = Discriminator(
            int(w.shape[0]),
            num_layers=n_body + 2,
            kernel_size=int(w.shape[-1]),
            in_channels=int(w.shape[1]),
        )
        try:
            d.load_state_dict(sd)
        except RuntimeError as e:
            raise ValueError(f"{path}: discriminator {i} has unexpected weights: {e}") from e
        discs.append(d.eval())
    return discs


def convert_legacy(
    src: str | os.PathLike, dst: str | os.PathLike, *, task: str | None = None
) -> list[Discriminator]:
    """Convert an authors' legacy ``Ds_*.pth`` into the project's weight format at ``dst``."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    discs = load_legacy_discriminators(src)
    save_discriminators(
        dst,
        discs,
        {"task": task, "source": Path(src).name, "converted_from": "legacy SinGAN pickle"},
    )
    return discs


def shipped_weights(task: str | None) -> Path:
    """Path of the package's own weights for ``task`` (``metrics/weights/mdf_<task>.pt``,
    written by the Phase-1 trainer, :mod:`metrics.singan`).

    Raises:
        ValueError: no task given, or no weight file shipped for it (the message says how to
            pass one).
    """
    hint = (
        "Pass weights=: a file from `mdf metrics train-mdf`, the authors' legacy file "
        "(e.g. Ds_SISR.pth) or one converted with `mdf metrics convert-mdf Ds_SISR.pth out.pt`."
    )
    if task is None:
        raise ValueError(f"MDF needs task= or weights=. {hint}")
    path = WEIGHTS_DIR / f"mdf_{task}.pt"
    if not path.is_file():
        raise ValueError(
            f"MDF needs weights=: no trained discriminators ship with the toolkit for "
            f"task={task!r} (expected {path}). {hint}"
        )
    return path


# --------------------------------------------------------------------------- the loss
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


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float32 for half precisions, else the dtype itself."""
    return torch.promote_types(dtype, torch.float32)


def _sq_diff_mean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = (a - b).to(_acc_dtype(a.dtype))
    return (d * d).mean((1, 2, 3))


def mdf_straightforward(
    x: torch.Tensor,
    y: torch.Tensor,
    discriminators: Sequence[Discriminator],
    *,
    num_scales: int = 8,
    order: str = "ascending",
    map_to_pm1: bool = False,
    reduction: str = "none",
) -> torch.Tensor:
    """MDF computed the plain way (the definition; slower): each selected discriminator runs
    separately on x and on y with BatchNorm as a separate op. See :func:`mdf` for the formula."""
    x, y = _check_mdf_input(x, y, discriminators, map_to_pm1)
    total = torch.zeros(x.shape[0], device=x.device, dtype=_acc_dtype(x.dtype))
    for d in _select(discriminators, num_scales, order):
        for fx, fy in zip(d.features(x), d.features(y)):
            total = total + _sq_diff_mean(fx, fy)
    return _reduce(total.to(x.dtype), reduction)


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
            h, w, b, [0, 0], [1, 1], [1, 1], 1, "leaky_relu", [_NEG_SLOPE], ""
        )
    return F.leaky_relu(F.conv2d(h, w, b), _NEG_SLOPE)


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
    flat = flat.to(_acc_dtype(flat.dtype))  # accumulate half-precision squares in float32
    return torch.linalg.vecdot(flat, flat)


class _DiscriminatorDistance(torch.autograd.Function):
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
            grad = torch.ops.aten.leaky_relu_backward(grad, hs[i], _NEG_SLOPE, True)
            grad = F.conv_transpose2d(grad, ws[i])
        return (grad.to(ctx.x_dtype), None, None, None) + (None,) * (2 * len(ws))


#: On CPU the batch is processed in chunks whose largest activation stays under this many
#: bytes: larger tensors are mmap'ed afresh by glibc on every allocation, and the page faults
#: of touching them cost about a quarter of the loss's time at 4 x 3 x 256 x 256.
_CPU_CHUNK_BYTES = 16 * 2**20


def _chunk_size(x: torch.Tensor, params: list, hand_backward: bool) -> int:
    """Images per chunk (the whole batch off the CPU)."""
    if x.device.type != "cpu":
        return x.shape[0]
    width = max(w.shape[0] for p in params for w, _ in p)
    per_image = width * x.shape[-2] * x.shape[-1] * x.element_size()
    per_image *= 1 if hand_backward else 2  # x and y batched together without a gradient
    return max(1, min(x.shape[0], _CPU_CHUNK_BYTES // per_image))


def _mdf_chunk(xin, yin, params_sel, need_grad, ref_grad, cl) -> torch.Tensor:
    """Per-image MDF of one chunk of the batch (see :func:`mdf` for the three paths)."""
    n = xin.shape[0]
    total = torch.zeros(n, device=xin.device, dtype=_acc_dtype(xin.dtype))
    if not need_grad:
        both = torch.cat([xin, yin]).contiguous(memory_format=cl)
    elif not ref_grad:
        xin, yin = xin.contiguous(memory_format=cl), yin.contiguous(memory_format=cl)
    for params in params_sel:
        if need_grad and ref_grad:  # generic autograd graph (trainable discriminators, y grad)
            for fx, fy in zip(_fast_features(params, xin), _fast_features(params, yin)):
                total = total + _sq_diff_mean(fx, fy)
            continue
        params = [(w.contiguous(memory_format=cl), b) for w, b in params]
        if not need_grad:
            for f in _fast_features(params, both):
                total = total + _sq_sum(f[:n] - f[n:]) / f[0].numel()
            continue
        with torch.no_grad():
            hs, tail = _layer_outputs(params, yin)
        flat = [t for wb in params for t in wb]
        total = total + _DiscriminatorDistance.apply(xin, hs[0], hs[-1], tail, *flat)
    return total


def mdf(
    x: torch.Tensor,
    y: torch.Tensor,
    discriminators: Sequence[Discriminator],
    *,
    num_scales: int = 8,
    order: str = "ascending",
    map_to_pm1: bool = False,
    reduction: str = "none",
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

    Fast form: BatchNorm folded into the convolutions (eval mode), every pass in the
    channels-last layout (``channels_last``), convolution and LeakyReLU fused into one oneDNN
    primitive on CPU. Without a gradient, x and y go through each discriminator in one batched
    pass. When only the prediction needs a gradient (training), the reference runs without
    autograd and the prediction through :class:`_DiscriminatorDistance`, whose hand-written
    backward pass avoids the generic graph's extra passes over the activations. When the
    reference or the discriminators need gradients, plain autograd is used. On CPU the batch
    runs in chunks of at most 16 MiB per activation (fresh large allocations page-fault).
    Values equal
    :func:`mdf_straightforward` to float rounding (< 1e-5 relative); about 2x faster than it
    forward + backward on 4 x 3 x 256 x 256 on this project's AVX-512 CPU
    (``benchmarks/loss_cost.py``).

    Args:
        x, y: (N, 3, H, W) (or grey, repeated to RGB), values in [0, 1], H, W >= 11.
        discriminators: coarsest first (from :func:`load_discriminators`).
        map_to_pm1: map inputs to [-1, 1] (the discriminators' training range) first; the
            released loss does not (default False, as the reference values).
        folded: precomputed :func:`fold_discriminator` results for all ``discriminators``.

    Returns:
        Per-image values (N,) with ``reduction="none"``; lower is better.
    """
    x, y = _check_mdf_input(x, y, discriminators, map_to_pm1)
    idx = list(range(len(discriminators)))
    sel = _select(idx, num_scales, order)
    dtype = discriminators[0].tail.weight.dtype
    xin, yin = x.to(dtype), y.to(dtype)
    params_grad = any(p.requires_grad for i in sel for p in discriminators[i].parameters())
    need_grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad or params_grad)
    # the reference runs without autograd unless something on its path needs a gradient
    ref_grad = y.requires_grad or params_grad
    cl = torch.channels_last if channels_last else torch.contiguous_format
    params_sel = [
        folded[i] if folded is not None else fold_discriminator(discriminators[i]) for i in sel
    ]
    chunk = _chunk_size(xin, params_sel, need_grad and not ref_grad)
    totals = [
        _mdf_chunk(xc, yc, params_sel, need_grad, ref_grad, cl)
        for xc, yc in zip(xin.split(chunk), yin.split(chunk))
    ]
    total = totals[0] if len(totals) == 1 else torch.cat(totals)
    return _reduce(total.to(x.dtype), reduction)


class MDFLoss(nn.Module):
    """The MDF loss / metric module (lower is better).

    Discriminators are registered as an ``nn.ModuleList`` (so ``.to(device)``, ``.half()``,
    DataParallel and DDP replicas carry them), frozen, and kept in eval mode whatever
    ``train()`` says. Returns per-image values (``reduction="none"``) or their mean/sum.

    Args:
        task: ``"sisr"``, ``"denoise"`` or ``"jpeg"``; checked against the file's metadata.
            Without ``weights``, the package's own ``metrics/weights/mdf_<task>.pt`` is used
            when it exists (:func:`shipped_weights`), else a clear error is raised.
        weights: path to a weight file (project format or the authors' legacy ``Ds_*.pth``),
            or a sequence of :class:`Discriminator` modules.
        num_scales: number of discriminators used (default 8), counted per ``order``.
        order: ``"ascending"`` (from the coarsest, default) or ``"descending"``.
        map_to_pm1: feed [-1, 1] instead of [0, 1] (not the released behaviour).
        fast: use :func:`mdf` (default) instead of :func:`mdf_straightforward`.
        channels_last: activation layout of the fast form (default True).
        enable_grad: leave the discriminator parameters trainable.
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
        if task is not None and task not in TASKS:
            raise ValueError(f"task must be one of {TASKS} or None, got {task!r}")
        if weights is None:
            weights = shipped_weights(task)
        if isinstance(weights, (str, os.PathLike)):
            discs, meta = load_discriminators(weights)
        else:
            discs, meta = list(weights), {}
            if not discs or not all(isinstance(d, Discriminator) for d in discs):
                raise TypeError("weights must be a path or a non-empty sequence of Discriminator")
        if task is not None and meta.get("task") not in (None, task):
            raise ValueError(f"weights were trained for task {meta['task']!r}, not {task!r}")
        _select(discs, num_scales, order)  # fail now on a bad selection
        self.task, self.metadata = task or meta.get("task"), meta
        self.num_scales, self.order = num_scales, order
        self.reduction = _check_reduction(reduction)
        self.map_to_pm1, self.fast, self.channels_last = map_to_pm1, fast, channels_last
        self.discriminators = nn.ModuleList(discs)
        self.discriminators.requires_grad_(enable_grad)
        self.discriminators.eval()
        self._fold_cache: tuple[Any, list] | None = None

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
        discs = list(self.discriminators)
        if self.fast:
            return mdf(
                x,
                y,
                discs,
                num_scales=self.num_scales,
                order=self.order,
                map_to_pm1=self.map_to_pm1,
                reduction=self.reduction,
                folded=self._folded(),
                channels_last=self.channels_last,
            )
        return mdf_straightforward(
            x,
            y,
            discs,
            num_scales=self.num_scales,
            order=self.order,
            map_to_pm1=self.map_to_pm1,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"task={self.task!r}, num_scales={self.num_scales}, order={self.order!r}, "
            f"discriminators={len(self.discriminators)}"
        )
