"""Building blocks shared by the metrics: filters and colour conversions."""

from metrics.functional.filters import (
    filter_valid,
    gaussian_kernel1d,
    matlab_downsample2,
    rgb_to_grey_matlab,
    rgb_to_y,
)

__all__ = [
    "filter_valid",
    "gaussian_kernel1d",
    "matlab_downsample2",
    "rgb_to_grey_matlab",
    "rgb_to_y",
]
