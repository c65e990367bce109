"""Screening of exported answers by how they were seen: shown 1:1, fast answers, tab switches,
ties.

The default analysis (``mdf study export``, the admin's download and live JND plot) keeps only
answers shown at one image pixel per device pixel (``native`` = 1, decided by the server from
the drawn sizes, :mod:`study.display`) and says how many it dropped; answers without viewing
conditions (an older database, or a client that reported none) are not known to be 1:1 and are
dropped with them, counted apart. Ties ("no visible difference") count as half a vote to each
side (``is_A_selected`` = 0.5, which ``scaling.read_table`` reads as pwcmp's tie) or are
dropped. The raw answers are never changed: screening happens at export time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["REASONS", "TIES", "Screening", "ScreeningReport", "ScreeningWarning", "screen"]

TIES = ("half", "drop")
#: why an answer is dropped, in the order the rules are applied (each answer counts once)
REASONS = {
    "no_conditions": "without viewing conditions (not known to be shown 1:1)",
    "not_native": "not shown 1:1",
    "too_fast": "faster than the minimum viewing time",
    "hidden": "with the page hidden (tab switch) during the trial",
    "tie": "ties (no visible difference), dropped",
}


class ScreeningWarning(UserWarning):
    """Answers were left out of an export by its screening (the message says how many)."""


@dataclass(frozen=True)
class Screening:
    """Which answers an export keeps (the defaults are the default analysis).

    ``require_native``: only answers shown 1:1; ``drop_fast``: leave out answers flagged
    too_fast; ``drop_hidden``: leave out answers during which the page was hidden; ``ties``:
    half (half a vote each side) or drop."""

    require_native: bool = True
    drop_fast: bool = False
    drop_hidden: bool = False
    ties: str = "half"

    def __post_init__(self):
        if self.ties not in TIES:
            raise ValueError(f"ties must be one of {', '.join(TIES)}, got {self.ties!r}")

    def reason(self, row: dict) -> str | None:
        """Why ``row`` (an export row) is dropped, or None when it is kept."""
        if self.require_native and row.get("native") != 1:
            return "no_conditions" if row.get("native") is None else "not_native"
        if self.drop_fast and row.get("too_fast") == 1:
            return "too_fast"
        if self.drop_hidden and (row.get("visibility_changes") or 0) > 0:
            return "hidden"
        if self.ties == "drop" and row.get("tie") == 1:
            return "tie"
        return None


@dataclass
class ScreeningReport:
    """What a screening kept and dropped (``dropped``: reason -> answers)."""

    total: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def message(self) -> str:
        """One sentence: "dropped 3 of 20 answers: 2 not shown 1:1, 1 ..." (or none)."""
        if not self.dropped:
            return f"kept all {self.total} answers"
        parts = [f"{n} {REASONS[k]}" for k, n in self.dropped.items()]
        return f"dropped {self.total - self.kept} of {self.total} answers: " + ", ".join(parts)


def screen(rows: list[dict], screening: Screening) -> tuple[list[dict], ScreeningReport]:
    """The rows ``screening`` keeps, in order, and the report of what it dropped."""
    report = ScreeningReport(total=len(rows))
    kept = []
    for row in rows:
        why = screening.reason(row)
        if why is None:
            kept.append(row)
        else:
            report.dropped[why] = report.dropped.get(why, 0) + 1
    report.kept = len(kept)
    report.dropped = {k: report.dropped[k] for k in REASONS if k in report.dropped}
    return kept, report
