"""Restoration networks trained with any loss of ``metrics``, and the study's image triplets.

EDSR, SRResNet and DnCNN (:mod:`restore.models`) for the three tasks of Mustafa et al., "Training
a Task-Specific Image Reconstruction Loss" (WACV 2022): x4 super-resolution, blind Gaussian
denoising and JPEG artefact removal. ``train(cfg)`` trains one network with one loss (presets
``tiny`` and ``paper``; ``callbacks=[...]`` hook into its loop), :func:`evaluate` writes per-image
PSNR/SSIM/LPIPS, and :func:`export_triplets` writes the crops and ``manifest.json`` that the crowd
study loads.
"""

from .callbacks import Callback
from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from .config import TrainConfig, lr_at, paper_preset, preset, tiny_preset
from .data import PatchDataset
from .degrade import Degradation, add_gaussian_noise, bicubic_downsample, degrade, jpeg_compress
from .evaluate import evaluate
from .image_io import degrade_folder, list_images, load_image, write_bundled_images
from .imresize import imresize
from .inference import restore_image, restore_tensor, run_folder
from .losses import RestorationLoss, available_losses
from .models import MODELS, build_model, count_parameters
from .quality import psnr, ssim
from .state import TrainState
from .train import train
from .triplets import export_triplets, load_manifest

__all__ = [
    "MODELS", "Callback", "Degradation", "PatchDataset", "RestorationLoss", "TrainConfig",
    "TrainState", "add_gaussian_noise", "available_losses", "bicubic_downsample", "build_model",
    "count_parameters", "degrade", "degrade_folder", "evaluate", "export_triplets", "imresize",
    "jpeg_compress", "list_images", "load_checkpoint", "load_image", "load_manifest", "lr_at",
    "model_from_checkpoint", "paper_preset", "preset", "psnr", "restore_image", "restore_tensor",
    "run_folder", "save_checkpoint", "ssim", "tiny_preset", "train", "write_bundled_images",
]  # fmt: skip
