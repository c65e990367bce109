"""Input checks shared by the scaling functions. Every failure is a ValueError naming the entry."""

from __future__ import annotations

import numpy as np


def _fmt_index(idx: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def check_counts(values: np.ndarray, what: str) -> np.ndarray:
    """Check an array of comparison counts: finite, non-negative, integer or x.5 (ties).

    Returns the array as float64. Raises ValueError naming the first offending entry.
    """
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be numeric counts: {exc}") from None
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(np.argwhere(bad)[0])
        raise ValueError(f"{what} has a non-finite entry {float(arr[idx])!r} at {_fmt_index(idx)}")
    neg = arr < 0
    if neg.any():
        idx = tuple(np.argwhere(neg)[0])
        raise ValueError(f"{what} has a negative count {float(arr[idx])!r} at {_fmt_index(idx)}")
    frac = np.abs(arr * 2 - np.round(arr * 2)) > 1e-9
    if frac.any():
        idx = tuple(np.argwhere(frac)[0])
        raise ValueError(
            f"{what} has a non-integer count {float(arr[idx])!r} at {_fmt_index(idx)} "
            "(counts must be whole numbers, or x.5 for ties)"
        )
    return arr


def check_matrix(D, what: str = "D") -> np.ndarray:
    """Validate an N x N comparison count matrix and return it as float64.

    D[i, j] is the number of times condition i was preferred over condition j.
    """
    arr = np.asarray(D)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{what} must be a square N x N count matrix, got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"{what} must compare at least 2 conditions, got N = {arr.shape[0]}")
    arr = check_counts(arr, what)
    diag = np.diag(arr)
    if np.any(diag != 0):
        i = int(np.flatnonzero(diag)[0])
        raise ValueError(
            f"{what} has a non-zero diagonal entry {float(diag[i])!r} at [{i}, {i}] "
            "(a condition cannot be compared with itself)"
        )
    return arr


def check_stack(MM, what: str = "MM") -> np.ndarray:
    """Validate per-observer matrices and return them as a K x N x N float64 array.

    Accepts K x N x N, or pwcmp's K x N^2 layout (row k = observer k's matrix flattened
    column-major, MATLAB ``M(:)'``).
    """
    arr = np.asarray(MM)
    if arr.ndim == 2:
        K, n2 = arr.shape
        N = int(round(np.sqrt(n2)))
        if N * N != n2:
            raise ValueError(
                f"{what} in pwcmp's K x N^2 layout needs N^2 columns, got {n2} (not a square number)"
            )
        arr = arr.reshape(K, N, N, order="C").transpose(0, 2, 1)  # column-major rows
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise ValueError(
            f"{what} must be K x N x N per-observer matrices (or K x N^2), got shape {np.shape(MM)}"
        )
    if arr.shape[0] < 1:
        raise ValueError(f"{what} holds no observer")
    arr = check_counts(arr, what)
    for k in range(arr.shape[0]):
        diag = np.diag(arr[k])
        if np.any(diag != 0):
            i = int(np.flatnonzero(diag)[0])
            raise ValueError(f"{what} observer {k} has a non-zero diagonal entry at [{i}, {i}]")
    return arr
