"""Loading ImageNet trunks (VGG16/19, AlexNet) from torch's cache, never from the network.

The weights are torchvision's files. They must already be in ``torch.hub.get_dir()/checkpoints``
(``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``) or be given as
an explicit path. A missing file raises an error naming it and how to obtain it: a metric never
falls back silently to random weights (``pretrained=False`` is an explicit opt-in for tests).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torchvision
from torch import nn


class RandomWeightsWarning(UserWarning):
    """A loss was built on a randomly initialised ImageNet trunk (``pretrained=False``): its
    values mean nothing for quality assessment (fine for wiring tests and cost timings)."""


def warn_random_trunk(loss: str, stacklevel: int = 3) -> None:
    """Warn (:class:`RandomWeightsWarning`) that ``loss`` runs on a random trunk."""
    warnings.warn(
        f"{loss} with pretrained=False: the trunk has random weights, so its values are "
        "meaningless for quality assessment (use it for wiring tests or timings only)",
        RandomWeightsWarning,
        stacklevel=stacklevel,
    )


#: architecture -> (torchvision file name, download URL)
TORCHVISION_WEIGHTS = {
    "vgg16": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    "vgg19": ("vgg19-dcbb9e9d.pth", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"),
    "alexnet": (
        "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    ),
}


def weights_path(arch: str, path: str | os.PathLike | None = None) -> Path:
    """Path of the ImageNet weights of ``arch`` (explicit ``path``, else torch's hub cache).

    Raises:
        ValueError: unknown architecture.
        FileNotFoundError: the file is absent; the message names it and how to obtain it.
    """
    if arch not in TORCHVISION_WEIGHTS:
        raise ValueError(f"unknown trunk {arch!r}; expected one of {sorted(TORCHVISION_WEIGHTS)}")
    fname, url = TORCHVISION_WEIGHTS[arch]
    p = Path(path) if path is not None else Path(torch.hub.get_dir()) / "checkpoints" / fname
    if not p.is_file():
        raise FileNotFoundError(
            f"ImageNet weights for {arch} not found at {p}. They cannot be downloaded at run "
            f"time here: fetch {url} on a machine with internet access and copy it to "
            f"{Path(torch.hub.get_dir()) / 'checkpoints' / fname} (or set TORCH_HOME, or pass "
            f"an explicit path). pretrained=False gives random weights for wiring tests only."
        )
    return p


def _features_only(arch: str) -> nn.Sequential:
    if arch in ("vgg16", "vgg19"):
        from torchvision.models.vgg import cfgs, make_layers

        return make_layers(cfgs["D" if arch == "vgg16" else "E"], batch_norm=False)
    return torchvision.models.alexnet(weights=None).features


def build_features(arch: str, pretrained: bool | str | os.PathLike = True) -> nn.Sequential:
    """The convolutional ``features`` block of torchvision's ``arch`` (layer indices as in
    torchvision), with ImageNet weights from the cache (``pretrained=True``), from an explicit
    file (a path), or random (``pretrained=False``; tests of wiring only)."""
    if arch not in TORCHVISION_WEIGHTS:
        raise ValueError(f"unknown trunk {arch!r}; expected one of {sorted(TORCHVISION_WEIGHTS)}")
    if pretrained is True:
        p = weights_path(arch)
    elif pretrained is False:
        p = None
    elif isinstance(pretrained, (str, os.PathLike)):
        p = weights_path(arch, pretrained)
    else:
        raise TypeError(f"pretrained must be True, False or a path, got {pretrained!r}")
    features = _features_only(arch)
    if p is None:
        return features
    sd = torch.load(p, map_location="cpu", weights_only=True)
    sub = {k[len("features.") :]: v for k, v in sd.items() if k.startswith("features.")}
    try:
        features.load_state_dict(sub)
    except RuntimeError as e:
        raise ValueError(f"{p} does not hold torchvision {arch} weights: {e}") from e
    return features


def quiet_lpips(**kwargs):
    """``lpips.LPIPS`` with its trunk left random (``pnet_rand=True``, so nothing is
    downloaded) and without its stdout banner; the linear layers come from the lpips wheel."""
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's 'pretrained' deprecation
        return lpips.LPIPS(pnet_rand=True, verbose=False, **kwargs)
