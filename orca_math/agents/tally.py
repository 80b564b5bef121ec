"""What a teacher backend made of its seeds: kept rows, quarantined rows and counts per flow.

Kept apart from ``backend.py`` so backends without an LLM (the procedural world teacher) use
the same accounting without importing AutoGen.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class FlowTally:
    """Problem rows kept, quarantine rows, and per flow ``candidates``, ``kept`` and each reason.

    ``by_flow`` lets the manifest say what each flow yielded without re-parsing rows.
    """

    problems: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    by_flow: dict[str, Counter] = field(default_factory=dict)

    @property
    def candidates(self) -> int:
        return sum(c["candidates"] for c in self.by_flow.values())

    def keep(self, flow: str, row: dict) -> None:
        self.problems.append(row)
        self.by_flow.setdefault(flow, Counter()).update(candidates=1, kept=1)

    def reject(self, flow: str, row: dict) -> None:
        self.quarantined.append(row)
        self.by_flow.setdefault(flow, Counter()).update({"candidates": 1, row["reason"]: 1})

    def add(self, other: "FlowTally") -> "FlowTally":
        """Merge ``other``'s rows and counts into this one (in place)."""
        self.problems += other.problems
        self.quarantined += other.quarantined
        for flow, counts in other.by_flow.items():
            self.by_flow.setdefault(flow, Counter()).update(counts)
        return self
