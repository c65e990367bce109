"""Input checks shared by the scaling functions. Every failure is a ValueError naming the entry."""

from __future__ import annotations

import numpy as np


def _raise_at_first(mask: np.ndarray, arr: np.ndarray, what: str, problem: str, hint: str = ""):
    """Raise ValueError naming the first entry of ``arr`` where ``mask`` holds, if there is one."""
    hits = np.argwhere(mask)
    if len(hits):
        idx = tuple(int(i) for i in hits[0])
        at = ", ".join(map(str, idx))
        raise ValueError(f"{what} has {problem} {float(arr[idx])!r} at [{at}]{hint}")


def check_counts(values: np.ndarray, what: str) -> np.ndarray:
    """Check an array of comparison counts: finite, non-negative, integer or x.5 (ties).

    Returns the array as float64. Raises ValueError naming the first offending entry.
    """
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be numeric counts: {exc}") from None
    _raise_at_first(~np.isfinite(arr), arr, what, "a non-finite entry")
    _raise_at_first(arr < 0, arr, what, "a negative count")
    _raise_at_first(np.abs(arr * 2 - np.round(arr * 2)) > 1e-9, arr, what, "a non-integer count",
                    " (counts must be whole numbers, or x.5 for ties)")
    return arr


def _check_diagonal(arr: np.ndarray, what: str) -> None:
    """Refuse a non-zero diagonal in N x N counts, naming the entry."""
    diagonal = np.eye(arr.shape[0], dtype=bool)
    _raise_at_first(diagonal & (arr != 0), arr, what, "a non-zero diagonal entry",
                    " (a condition cannot be compared with itself)")


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
    _check_diagonal(arr, what)
    return arr


def check_stack(MM, what: str = "MM") -> np.ndarray:
    """Validate per-observer matrices and return them as a K x N x N float64 array.

    Accepts K x N x N, or pwcmp's K x N^2 layout (row k = observer k's matrix flattened
    column-major, MATLAB ``M(:)'``).
    """
    arr = np.asarray(MM)
    if arr.ndim == 2:
        K, n2 = arr.shape
        N = round(np.sqrt(n2))
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
    for k, M in enumerate(arr):
        _check_diagonal(M, f"{what} observer {k}")
    return arr
