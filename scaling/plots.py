"""Plots of scaling results: JND bars with confidence intervals and pwcmp's ranking triangles.

matplotlib is imported inside the functions, so importing ``scaling`` stays light. Every function
returns a ``matplotlib.figure.Figure`` (no pyplot, no GUI backend needed); callers save it, e.g.
with :func:`scaling.contracts.atomic.save_figure`.
"""

from __future__ import annotations

import textwrap

import numpy as np

#: At most this many warnings are printed under a figure; the rest are counted.
MAX_NOTES = 6


def new_figure(figsize):
    """An empty matplotlib Figure of ``figsize`` inches with constrained layout.

    A ``matplotlib.figure.Figure`` renders with ``savefig`` whatever backend pyplot uses (none
    needs to be set up, and a notebook's backend is left alone).
    """
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def add_warnings(fig, messages) -> None:
    """Print warning ``messages`` (e.g. the scaling's, see :mod:`scaling.caveats`) under a figure.

    Each message becomes a line "warning: ..." (wrapped to the figure's width) in small red type
    below the plot, so that a saved figure carries what changes its meaning; at most
    :data:`MAX_NOTES` are printed, the rest are counted. Nothing is added for no messages.
    """
    messages = [messages] if isinstance(messages, str) else list(messages or ())
    if not messages:
        return
    width = max(40, int(fig.get_figwidth() * 17))  # characters of 7-pt type per line
    lines = [textwrap.fill(f"warning: {m}", width) for m in messages[:MAX_NOTES]]
    if len(messages) > MAX_NOTES:
        lines.append(f"... and {len(messages) - MAX_NOTES} more warnings")
    fig.supxlabel("\n".join(lines), x=0.01, ha="left", fontsize=7, color="C3")


def plot_jod(jod, low=None, high=None, labels=None, title: str | None = None, sort: bool = True,
             warnings=()):
    """Bar plot of JND scores with their confidence intervals.

    Args:
        jod: scores (N,), JND units.
        low, high: CI bounds (N,), or None for no error bars.
        labels: condition names (default "c0"...).
        title: plot title.
        sort: order the bars by score.
        warnings: messages printed under the plot (:func:`add_warnings`), e.g. the scaling's.

    Returns:
        matplotlib Figure.
    """
    q = np.asarray(jod, dtype=float)
    labels = list(labels) if labels is not None else [f"c{i}" for i in range(q.size)]
    order = np.argsort(q) if sort else np.arange(q.size)
    fig = new_figure((max(4.0, 0.7 * q.size + 1.5), 3.6))
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
    add_warnings(fig, warnings)
    return fig


def plot_ranking_triangle(jod, p_values, labels=None, alpha: float = 0.05, title: str | None = None,
                          warnings=()):
    """pwcmp's ranking-triangle plot: conditions sorted by score, linked to their two predecessors.

    Conditions are placed left to right by increasing score in a zig-zag of two rows; each is joined
    to the next one and the one after in rank. Each link is labelled with the score difference in
    JND, solid when the difference is significant (p < alpha/2, see
    :func:`scaling.significance.significance`) and dashed otherwise. ``warnings`` are printed
    under the plot (:func:`add_warnings`).

    Returns:
        matplotlib Figure.
    """
    q = np.asarray(jod, dtype=float)
    P = np.asarray(p_values, dtype=float)
    N = q.size
    labels = list(labels) if labels is not None else [f"c{i}" for i in range(N)]
    order = np.argsort(q)
    fig = new_figure((max(4.0, 1.1 * N + 1.0), 2.8))
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
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"})
    for c, (x, y) in pos.items():
        ax.text(x, y, f"{labels[c]}\n{q[c]:.2f}", ha="center", va="center", fontsize=9, zorder=2,
                bbox={"boxstyle": "round,pad=0.3", "fc": "#DDE6F5", "ec": "#4C72B0"})
    ax.set_xlim(-0.7, N - 0.3)
    ax.set_ylim(-0.5, 1.5)
    ax.axis("off")
    ax.set_title(title or "Ranking (JND); solid: significant difference, dashed: not significant",
                 fontsize=9)
    add_warnings(fig, warnings)
    return fig
