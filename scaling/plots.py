"""Plots of scaling results: JND bars with confidence intervals and pwcmp's ranking triangles.

matplotlib is imported inside the functions (Agg backend unless one is already chosen), so importing
``scaling`` stays light. Every function returns a ``matplotlib.figure.Figure``; callers save it.
"""

from __future__ import annotations

import numpy as np


def _figure(figsize):
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        try:
            matplotlib.use("Agg")
        except Exception:  # pragma: no cover - backend already fixed by the caller
            pass
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def plot_jod(jod, low=None, high=None, labels=None, title: str | None = None, sort: bool = True):
    """Bar plot of JND scores with their confidence intervals.

    Args:
        jod: scores (N,), JND units.
        low, high: CI bounds (N,), or None for no error bars.
        labels: condition names (default "c0"...).
        title: plot title.
        sort: order the bars by score.

    Returns:
        matplotlib Figure.
    """
    q = np.asarray(jod, dtype=float)
    labels = list(labels) if labels is not None else [f"c{i}" for i in range(q.size)]
    order = np.argsort(q) if sort else np.arange(q.size)
    fig = _figure((max(4.0, 0.7 * q.size + 1.5), 3.6))
    ax = fig.add_subplot()
    x = np.arange(q.size)
    ax.bar(x, q[order], color="#4C72B0", alpha=0.85)
    if low is not None and high is not None:
        lo, hi = np.asarray(low)[order], np.asarray(high)[order]
        ax.errorbar(x, q[order], yerr=[q[order] - lo, hi - q[order]], fmt="none", ecolor="k",
                    capsize=4, lw=1.2, label="95% CI" if low is not None else None)
        ax.legend(loc="upper left")
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_xticks(x, [labels[i] for i in order], rotation=30, ha="right")
    ax.set_ylabel("quality [JND]")
    ax.set_xlabel("condition")
    if title:
        ax.set_title(title)
    return fig


def plot_ranking_triangle(jod, p_values, labels=None, alpha: float = 0.05, title: str | None = None):
    """pwcmp's ranking-triangle plot: conditions sorted by score, linked to their two predecessors.

    Conditions are placed left to right by increasing score in a zig-zag of two rows; each is joined
    to the next one and the one after in rank. Each link is labelled with the score difference in
    JND, solid when the difference is significant (p < alpha/2, see
    :func:`scaling.significance.significance`) and dashed otherwise.

    Returns:
        matplotlib Figure.
    """
    q = np.asarray(jod, dtype=float)
    P = np.asarray(p_values, dtype=float)
    N = q.size
    labels = list(labels) if labels is not None else [f"c{i}" for i in range(N)]
    order = np.argsort(q)
    fig = _figure((max(4.0, 1.1 * N + 1.0), 2.8))
    ax = fig.add_subplot()
    pos = {int(c): (r, 1.0 if r % 2 == 0 else 0.0) for r, c in enumerate(order)}
    for r, c in enumerate(order):
        for step in (1, 2):
            if r + step >= N:
                continue
            d = int(order[r + step])
            (x0, y0), (x1, y1) = pos[int(c)], pos[d]
            sig = P[c, d] < alpha / 2
            ax.plot([x0, x1], [y0, y1], color="k" if sig else "0.55", lw=1.4 if sig else 1.0,
                    ls="-" if sig else "--", zorder=1)
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + (0.07 if step == 2 else 0), f"{q[d] - q[c]:.2f}",
                    ha="center", va="center", fontsize=8,
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none"))
    for c, (x, y) in pos.items():
        ax.text(x, y, f"{labels[c]}\n{q[c]:.2f}", ha="center", va="center", fontsize=9, zorder=2,
                bbox=dict(boxstyle="round,pad=0.3", fc="#DDE6F5", ec="#4C72B0"))
    ax.set_xlim(-0.7, N - 0.3)
    ax.set_ylim(-0.5, 1.5)
    ax.axis("off")
    ax.set_title(title or "Ranking (JND); solid: significant difference, dashed: not significant",
                 fontsize=9)
    return fig
