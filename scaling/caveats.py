"""Warnings that change what a scaling result means, recorded so that they are shown with it.

``pw_scale`` warns about disconnected designs and data without a finite optimum (unanimous
pairs), ``pw_scale_bootstrap`` about resamples that did, and SciPy about degenerate correlations.
A command or report that prints a table or draws a figure records them with
:func:`record_warnings` and shows them next to the result (the ``mdf`` commands print them on
stderr, figure 5 and the demo report carry them), instead of letting them scroll past or
silencing them.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterable, Iterator

from .thurstone import ScalingWarning

__all__ = ["CAVEATS", "one_line", "print_warnings", "record_warnings"]

#: Warning categories recorded as caveats of a result: the scaling's own warnings, and runtime
#: warnings (no convergence, degenerate input to a correlation, empty slices).
CAVEATS: tuple[type[Warning], ...] = (ScalingWarning, RuntimeWarning)


def one_line(message) -> str:
    """A warning message on one line (inner line breaks and runs of spaces become one space)."""
    return " ".join(str(message).split())


@contextlib.contextmanager
def record_warnings(categories: tuple[type[Warning], ...] = CAVEATS) -> Iterator[list[str]]:
    """Record the warnings of ``categories`` raised in the block instead of printing them.

    Yields a list that, once the block has ended (normally or by an exception), holds each
    distinct message once, in the order first raised, on one line (:func:`one_line`). Warnings of
    other categories are re-issued unchanged after the block (they go where they would have gone).
    """
    messages: list[str] = []
    others = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield messages
    finally:  # also when the block raised: what it warned before is still reported
        for w in caught:
            if issubclass(w.category, categories):
                messages.append(one_line(w.message))
            else:
                others.append(w)
        messages[:] = list(dict.fromkeys(messages))
        for w in others:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def print_warnings(messages: Iterable[str], where: str = "", file=None) -> None:
    """Print warnings one line each as ``warning: [<where>: ]<message>`` on stderr (or ``file``)."""
    prefix = f"{where}: " if where else ""
    for msg in messages:
        print(f"warning: {prefix}{one_line(msg)}", file=file or sys.stderr)
