"""Which score differences pairwise-comparison data identify, and where only pwcmp's prior holds them.

The Thurstone likelihood has a finite maximum iff the "beats" digraph (i -> j when i was preferred
over j at least once) is strongly connected (Zermelo 1929; Ford 1957). Otherwise some group of
conditions won (or lost) every comparison with the others, and the likelihood keeps improving as the
group moves away from the rest. Only pwcmp's distance prior can then hold the group, and its tail
is nearly flat (a pair compared once contributes a prior column p or 1 - p, which never vanishes),
so the optimum along that direction is often at infinity, or so shallow that an optimiser stops
wherever its start point and tolerances leave it.

A group's distance to the rest counts as identified when moving the group infinitely far away (the
other scores held) raises the objective by at least :data:`IDENTIFIED_NATS`, the likelihood-ratio
cut of a 95% interval for one parameter: otherwise that interval is unbounded.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

#: Least rise (natural log) of the objective when a group moves infinitely far for its distance
#: to the rest to count as identified: chi^2_1(0.95) / 2, the 95% likelihood-ratio cut.
IDENTIFIED_NATS = 1.92
#: How far beyond the range of the scores a group is moved to evaluate "infinitely far", in JND.
_FAR = 50.0


def beats_components(D: np.ndarray) -> np.ndarray:
    """Label per condition of the strongly connected components of the "beats" digraph.

    Edge i -> j when ``D[i, j] > 0`` (i was preferred over j at least once). One component means the
    likelihood alone bounds every score difference.
    """
    _, labels = csgraph.connected_components(
        sparse.csr_matrix(np.asarray(D) > 0), directed=True, connection="strong"
    )
    return labels


def escape_groups(D: np.ndarray) -> list[tuple[list[int], int]]:
    """Groups of conditions the likelihood does not hold: ``(indices, sign)`` pairs.

    ``sign = +1``: the group won every comparison it had with the other conditions; ``-1``: it lost
    every one. For each strongly connected component c of the beats digraph, the group "c and every
    condition that beat it, directly or through others" is one (+1), and "c and every condition it
    beat" another (-1). Each group is given as the smaller of itself and its complement (the sign
    flips with it), without duplicates, sorted; empty when the digraph is strongly connected.
    """
    D = np.asarray(D)
    N = D.shape[0]
    labels = beats_components(D)
    if labels.max() == 0:
        return []
    reach = np.isfinite(csgraph.shortest_path(sparse.csr_matrix(D > 0), unweighted=True))
    seen, groups = set(), []
    for c in range(labels.max() + 1):
        members = labels == c
        for mask, sign in ((reach[:, members].any(axis=1), 1), (reach[members, :].any(axis=0), -1)):
            if mask.all():
                continue
            if 2 * mask.sum() > N or (2 * mask.sum() == N and not mask[0]):
                mask, sign = ~mask, -sign
            key = tuple(np.flatnonzero(mask))
            if key not in seen:
                seen.add(key)
                groups.append(([int(i) for i in key], sign))
    return sorted(groups)


def barrier(objective, q: np.ndarray, group: list[int], sign: int) -> float:
    """Rise of ``objective`` (a function of q[1:] - q[0] returning (F, grad)) when ``group`` moves
    infinitely far in the direction ``sign`` from the scores ``q``, the other scores held.

    "Infinitely far" is evaluated 50 JND beyond the range of q, where every comparison between the
    group and the rest has a probability within 1e-200 of 0 or 1.
    """
    q = np.asarray(q, dtype=float)
    moved = q.copy()
    moved[group] += sign * (np.ptp(q) + _FAR)
    return float(objective(moved[1:] - moved[0])[0] - objective(q[1:] - q[0])[0])


def link_pairs(D: np.ndarray, group: list[int]) -> list[tuple[int, int]]:
    """Compared pairs (i, j), i < j, with one condition in ``group`` and the other outside it."""
    inside = np.zeros(D.shape[0], dtype=bool)
    inside[group] = True
    S = np.asarray(D) + np.asarray(D).T
    iu = np.triu_indices(D.shape[0], 1)
    cross = (S[iu] > 0) & (inside[iu[0]] != inside[iu[1]])
    return [(int(i), int(j)) for i, j in zip(iu[0][cross], iu[1][cross])]
