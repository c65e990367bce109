"""Training losses: any loss of the ``metrics`` package, adapted to restoration outputs.

``metrics.create(name, **options)`` returns a module comparing NCHW RGB images in [0, 1] (one value
per image). :class:`RestorationLoss` wraps it for training:

* grey networks (DnCNN with ``channels=1``): output and target are repeated to 3 channels before
  the loss, so RGB losses (SSIM on RGB, VGG, LPIPS, MDF) see a neutral grey image;
* network outputs may leave [0, 1]; they are clamped with a straight-through estimator (the loss
  sees clamped values, the gradient passes as if unclamped), so no gradient is lost at the bounds;
* the per-image values are averaged over the batch;
* ``restore_task`` (the network's task) reaches MDF, alone or as a term of a sum, when its options
  name neither ``weights`` nor ``task``, so it loads the discriminators trained for that task.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from scaling.contracts.tasks import mdf_task


def available_losses() -> list[str]:
    """Names of the losses the installed ``metrics`` package offers."""
    import metrics

    if not hasattr(metrics, "available"):
        raise RuntimeError(
            "the metrics package does not provide available()/create() (not installed?)"
        )
    return [n for n in metrics.available() if n not in METRIC_ONLY]


#: names ``metrics`` offers that are quality metrics (higher is better), not training losses
METRIC_ONLY = ("psnr",)


def _st_clamp(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] in value, identity in gradient. Written as ``clamp(x) + (x - x)`` (the
    second term exactly 0, with gradient 1): ``x + (clamp(x) - x)`` rounds for large ``|x|``
    (a diverging output of 1e8 came out as 0.0, not 1.0)."""
    return x.clamp(0.0, 1.0).detach() + (x - x.detach())


def options_with_task(name: str, options: dict[str, Any], task: str | None) -> dict[str, Any]:
    """``options`` for ``metrics.create(name, ...)`` with ``task`` given to the MDF term, if any.

    Only when the MDF options name neither ``weights`` nor ``task``; the task goes by MDF's own
    name (:func:`scaling.contracts.tasks.mdf_task`: ``sr`` -> ``sisr``). A sum such as
    ``"l2 + 0.1*mdf"`` takes the term's options as a dict under ``"mdf"``.
    """
    terms = [t.split("*")[-1].strip().lower() for t in name.split("+")]
    if task is None or "mdf" not in terms:
        return dict(options)
    if "+" not in name and "*" not in name:  # a single loss, as metrics.create reads it
        if "weights" in options or "task" in options:
            return dict(options)
        return {**options, "task": mdf_task(task)}
    sub = options.get("mdf", {})
    if not isinstance(sub, dict) or "weights" in sub or "task" in sub:
        return dict(options)
    return {**options, "mdf": {**sub, "task": mdf_task(task)}}


class RestorationLoss(nn.Module):
    """Scalar training loss ``mean_b loss(clamp(out_b), target_b)`` built on a ``metrics`` module.

    ``restore_task`` (sr | denoise | jpeg) is the network's task, passed to MDF (see
    :func:`options_with_task`); ``options`` go to ``metrics.create``.
    """

    def __init__(
        self, name: str, channels: int = 3, *, restore_task: str | None = None, **options: Any
    ) -> None:
        super().__init__()
        names = available_losses()
        if name in METRIC_ONLY:
            raise ValueError(f"{name!r} is a quality metric, not a training loss (use l2 instead)")
        if name not in names and not any(c in name for c in "+*"):  # sums go to metrics.create
            raise ValueError(f"unknown loss {name!r}; the metrics package offers {sorted(names)}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        import metrics

        options = options_with_task(name, options, restore_task)
        self.name, self.channels, self.options = name, channels, dict(options)
        self.metric = metrics.create(name, **options)
        self.metric.requires_grad_(False)  # losses are fixed; only the restoration net learns
        self.metric.eval()

    def train(self, mode: bool = True) -> RestorationLoss:
        """Set the mode; the wrapped metric always stays in eval mode (frozen BatchNorm etc.)."""
        super().train(mode)
        self.metric.eval()
        return self

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss (unitless, lower is better) between network ``output`` and clean ``target`` (NCHW)."""
        if output.shape != target.shape:
            raise ValueError(
                f"output {tuple(output.shape)} and target {tuple(target.shape)} differ"
            )
        out = _st_clamp(output.float())
        tgt = target.float()
        if self.channels == 1:
            out, tgt = out.repeat(1, 3, 1, 1), tgt.repeat(1, 3, 1, 1)
        return self.metric(out, tgt).mean()
