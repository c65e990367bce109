"""Input formats: pwcmp's long comparison table (``pw_scale_table``) <-> per-observer count stacks."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Column names of pwcmp's long table.
OBSERVER, CONDITION_A, CONDITION_B, SELECTED = "observer", "condition_A", "condition_B", "is_A_selected"
#: Group name used when the table has no group column.
ALL = "all"

_TRUE = {"1", "1.0", "true", "t", "yes", "y", "a"}
_FALSE = {"0", "0.0", "false", "f", "no", "n", "b"}
#: a tie ("no visible difference"): half a vote to each side
_TIE = {"0.5", ".5", "tie"}


@dataclass(frozen=True)
class ComparisonTable:
    """Pairwise comparisons as per-observer count matrices, one stack per group.

    Attributes:
        conditions: condition names (sorted union over the whole table, as pwcmp), length N.
        observers: observer ids, length K.
        groups: group names (e.g. scenes), length G; ``["all"]`` when there is no group column.
        stacks: G x K x N x N counts; ``stacks[g, k, i, j]`` = times observer k preferred condition i
            over j in group g.
        group_column: the name of the group column, or None.
    """

    conditions: list
    observers: list
    groups: list
    stacks: np.ndarray
    group_column: str | None = None

    def counts(self, group=None) -> np.ndarray:
        """N x N count matrix of one group (by name), or of all groups pooled when ``group`` is None."""
        return self.stack(group).sum(axis=0)

    def stack(self, group=None) -> np.ndarray:
        """K x N x N per-observer counts of one group, or of all groups pooled (None)."""
        if group is None:
            return self.stacks.sum(axis=0)
        if group not in self.groups:
            raise ValueError(f"unknown group {group!r}; the table has {self.groups}")
        return self.stacks[self.groups.index(group)]

    @property
    def n_comparisons(self) -> int:
        """Total number of comparisons (trials) in the table."""
        return round(self.stacks.sum())


def _selection(series: pd.Series) -> np.ndarray:
    """The votes for A: 1 (A selected), 0 (B selected) or 0.5 (a tie)."""
    out = np.empty(len(series), dtype=float)
    for pos, v in enumerate(series.tolist()):
        s = str(v).strip().lower()
        if s in _TRUE:
            out[pos] = 1.0
        elif s in _FALSE:
            out[pos] = 0.0
        elif s in _TIE:
            out[pos] = 0.5
        else:
            raise ValueError(
                f"{SELECTED} must be 1/0 (or true/false), or 0.5 for a tie, got {v!r} in row "
                f"{series.index[pos]}"
            )
    return out


def read_table(
    source,
    group: str | None = None,
    *,
    observer: str = OBSERVER,
    condition_a: str = CONDITION_A,
    condition_b: str = CONDITION_B,
    selected: str = SELECTED,
    conditions=None,
) -> ComparisonTable:
    """Read pwcmp's long table of pairwise comparisons (one row per trial).

    Each row has an observer, optionally a group (e.g. scene or image), ``condition_A``,
    ``condition_B`` and ``is_A_selected`` (1: A preferred, so ``D[A, B] += 1``; 0: ``D[B, A] += 1``;
    0.5 or "tie": no preference, half a vote to each side, ``D[A, B]`` and ``D[B, A]`` += 0.5, as
    pwcmp counts a tie; the bootstrap rounds such x.5 counts per resample).
    Conditions are the sorted union over the whole table, so every group has the same N (pwcmp's
    ``pw_scale_table``), unless ``conditions`` lists them explicitly, in which case any other name
    is an error.

    Args:
        source: a pandas DataFrame or the path of a CSV file.
        group: name of the group column (None: all rows form one group, "all").
        observer, condition_a, condition_b, selected: column names.
        conditions: optional explicit list of condition names (their order is kept).

    Returns:
        :class:`ComparisonTable`.

    Raises:
        ValueError: empty table, missing column, unknown condition, A == B, bad selection value.
    """
    if isinstance(source, (str, os.PathLike)):
        if not os.path.exists(source):
            raise ValueError(f"comparison table {os.fspath(source)!r} does not exist")
        try:
            df = pd.read_csv(source, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise ValueError(f"comparison table {os.fspath(source)!r} is empty") from None
    elif isinstance(source, pd.DataFrame):
        df = source.astype(str)
    else:
        raise TypeError(f"source must be a DataFrame or a CSV path, got {type(source).__name__}")
    needed = [observer, condition_a, condition_b, selected] + ([group] if group else [])
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"the table lacks column(s) {missing}; it has {list(df.columns)}")
    if len(df) == 0:
        raise ValueError("the comparison table is empty (no rows)")
    for col in needed:
        blank = df[col].str.strip() == ""
        if blank.any():
            raise ValueError(f"column {col!r} is empty in row {int(np.flatnonzero(blank)[0])}")
    a = df[condition_a].str.strip()
    b = df[condition_b].str.strip()
    same = a == b
    if same.any():
        r = int(np.flatnonzero(same)[0])
        raise ValueError(f"row {r} compares condition {a.iloc[r]!r} with itself")
    sel = _selection(df[selected])
    if conditions is None:
        conds = sorted(set(a) | set(b))
    else:
        conds = [str(c) for c in conditions]
        if len(set(conds)) != len(conds):
            raise ValueError("conditions has duplicate names")
        known = set(conds)
        for col, vals in ((condition_a, a), (condition_b, b)):
            bad = ~vals.isin(known)
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"unknown condition {vals.iloc[r]!r} in column {col!r}, row {r}; "
                    f"expected one of {conds}"
                )
    obs = df[observer].str.strip()
    observers = sorted(set(obs), key=_natural_key)
    if group:
        grp = df[group].str.strip()
        groups = sorted(set(grp), key=_natural_key)
    else:
        grp = pd.Series([ALL] * len(df))
        groups = [ALL]
    ci = {c: i for i, c in enumerate(conds)}
    oi = {o: i for i, o in enumerate(observers)}
    gi = {g: i for i, g in enumerate(groups)}
    N = len(conds)
    stacks = np.zeros((len(groups), len(observers), N, N))
    ia = a.map(ci).to_numpy()
    ib = b.map(ci).to_numpy()
    g, k = grp.map(gi).to_numpy(), obs.map(oi).to_numpy()
    np.add.at(stacks, (g, k, ia, ib), sel)
    np.add.at(stacks, (g, k, ib, ia), 1.0 - sel)
    return ComparisonTable(conds, observers, groups, stacks, group)


def _natural_key(s: str):
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def to_table(stacks, conditions=None, observers=None, groups=None, group_column: str = "group"):
    """Expand per-observer counts back into pwcmp's long table (one row per comparison).

    Args:
        stacks: K x N x N (one group) or G x K x N x N integer counts.
        conditions, observers, groups: names (defaults: "c0".., "o0".., "g0"..).
        group_column: name of the group column (omitted for a single K x N x N stack).

    Returns:
        DataFrame with columns observer, [group_column], condition_A, condition_B, is_A_selected,
        where condition_A is always the lower-indexed condition of the pair.
    """
    arr = np.asarray(stacks)
    single = arr.ndim == 3
    if single:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[2] != arr.shape[3]:
        raise ValueError(f"stacks must be K x N x N or G x K x N x N, got shape {np.shape(stacks)}")
    if np.any(arr != np.round(arr)) or np.any(arr < 0):
        raise ValueError("to_table needs non-negative integer counts (no x.5 ties)")
    G, K, N, _ = arr.shape
    conditions = list(conditions) if conditions is not None else [f"c{i}" for i in range(N)]
    observers = list(observers) if observers is not None else [f"o{i}" for i in range(K)]
    groups = list(groups) if groups is not None else [f"g{i}" for i in range(G)]
    rows = []
    for g in range(G):
        for k in range(K):
            for i in range(N):
                for j in range(i + 1, N):
                    for chosen, n in ((1, int(arr[g, k, i, j])), (0, int(arr[g, k, j, i]))):
                        rows.extend([(observers[k], groups[g], conditions[i], conditions[j], chosen)] * n)
    df = pd.DataFrame(rows, columns=[OBSERVER, group_column, CONDITION_A, CONDITION_B, SELECTED])
    return df.drop(columns=[group_column]) if single else df


def read_matrix(path) -> tuple[np.ndarray, list]:
    """Read an N x N count matrix from a CSV file, with or without a header row of condition names.

    Returns (D, conditions). Raises ValueError if the file is not a square numeric matrix.
    """
    raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
    first = raw.iloc[0].tolist()
    try:
        [float(x) for x in first]
        header = None
    except ValueError:
        header = [str(x).strip() for x in first]
        raw = raw.iloc[1:]
    try:
        D = raw.to_numpy(dtype=float)
    except ValueError as exc:
        raise ValueError(f"{os.fspath(path)!r} is not a numeric count matrix: {exc}") from None
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"{os.fspath(path)!r} holds a {D.shape[0]} x {D.shape[1]} matrix, not N x N")
    names = header if header is not None else [f"c{i}" for i in range(D.shape[0])]
    if len(names) != D.shape[0]:
        raise ValueError(f"{os.fspath(path)!r}: {len(names)} header names for {D.shape[0]} columns")
    return D, names
