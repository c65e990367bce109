"""LPIPS (Zhang et al. 2018) as a loss (optionally + L2) and as a metric, through the
``lpips`` package, with the ImageNet trunk loaded from torch's cache (never downloaded)."""

from __future__ import annotations

import os

import torch
from torch import nn

from metrics._pretrained import build_features, quiet_lpips, warn_random_trunk
from metrics._utils import _check_reduction, _reduce, _to_rgb, _validate_input
from metrics.pixel import with_pixel_term

_TRUNKS = {"alex": "alexnet", "vgg": "vgg16"}


def _load_lpips_trunk(model: nn.Module, net: str, pretrained) -> None:
    """Copy torchvision ImageNet ``features`` weights into lpips' sliced trunk
    (``slice{k}.{index}.*`` keeps torchvision's layer index)."""
    features = build_features(_TRUNKS[net], pretrained).state_dict()
    own = model.net.state_dict()
    new = {}
    for key in own:
        _, idx, pname = key.split(".")
        src = f"{idx}.{pname}"
        if src not in features or features[src].shape != own[key].shape:
            raise ValueError(f"cannot map torchvision {net} weight {src} onto lpips {key}")
        new[key] = features[src]
    model.net.load_state_dict(new)


class LPIPSLoss(nn.Module):
    r"""LPIPS distance, plus an optional L2 term as a loss:

    .. math::
        \mathcal{L}(x, y) = w_2\,\mathrm{MSE}(x, y) + \lambda\,\mathrm{LPIPS}(x, y).

    Paper defaults (MDF, WACV 2022): lambda = ``weight`` = 0.1, ``l2_weight`` = 1 (the authors'
    script used LPIPS-alex x 1 + MSE). As a metric (``as_loss=False``) the L2 term defaults to
    0 and lambda to 1. The linear calibration layers ship in the ``lpips`` wheel; the trunk
    (``net="alex"`` or ``"vgg"``) is loaded from torch's cache (see
    :func:`metrics._pretrained.weights_path`), or random with ``pretrained=False`` (tests; warns
    with :class:`metrics._pretrained.RandomWeightsWarning`).
    Input [0, 1] RGB (grey is repeated), mapped to [-1, 1] for lpips. Lower is better.

    References:
        Zhang, Isola, Efros, Shechtman, Wang, "The Unreasonable Effectiveness of Deep Features
        as a Perceptual Metric", CVPR 2018.
    """

    lower_better = True

    def __init__(
        self,
        *,
        net: str = "alex",
        weight: float | None = None,
        l2_weight: float | None = None,
        as_loss: bool = True,
        pretrained: bool | str | os.PathLike = True,
        reduction: str = "none",
    ):
        super().__init__()
        if net not in _TRUNKS:
            raise ValueError(f"net must be one of {sorted(_TRUNKS)}, got {net!r}")
        self.reduction = _check_reduction(reduction)
        self.as_loss = as_loss
        self.weight = float(weight if weight is not None else (0.1 if as_loss else 1.0))
        self.l2_weight = float(l2_weight if l2_weight is not None else (1.0 if as_loss else 0.0))
        model = quiet_lpips(net=net, pretrained=True)
        if pretrained is False:
            warn_random_trunk(f"LPIPS ({net})")
        else:
            _load_lpips_trunk(model, net, pretrained)
        self.model = model.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> LPIPSLoss:
        """Kept in eval mode (lpips' dropout must stay off)."""
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _validate_input(x, y, name="lpips")
        val = self.model(_to_rgb(x), _to_rgb(y), normalize=True).reshape(x.shape[0]) * self.weight
        return _reduce(with_pixel_term(val, x, y, self.l2_weight, "l2"), self.reduction)
