"""Atomic writers for tables and figures (a crash never leaves a half-written file)."""

from __future__ import annotations

import os
from pathlib import Path


def write_csv_atomic(df, path) -> None:
    """Write a DataFrame as CSV (no index) to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def save_figure_atomic(fig, path, dpi: int = 130) -> None:
    """Save a matplotlib Figure to ``path`` (format from the suffix) via a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=dpi)
    os.replace(tmp, path)
