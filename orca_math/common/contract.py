"""The generation contract: what every teacher backend of ``generate`` / ``solve`` returns.

Two teachers honour it: the LLM flows on an endpoint (``orca_math/generate/``) and the symbolic
world teacher (``orca_math/world/teacher.py``). Both import it from here, so one report reads
both and the pipeline (Ray Data, commits, resume, dedup) never asks which teacher ran:

- :class:`Flow` names the flows (``provenance.flow``, the manifest's per-flow counts and usage);
  :class:`Reason` names why a candidate was quarantined. Both are ``str`` enums: the strings in
  Parquet files and manifests are their values.
- :class:`SeedOutput` is what a backend made of one seed: kept problem rows, quarantine rows
  (built by :func:`flow_quarantine`), counts per flow, and the teacher usage it cost.
- :class:`SeedBackend` is the backend protocol: ``teacher_model`` and ``async expand(seed)``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from orca_math.common.records import quarantine_row
from orca_math.common.schema import stable_id
from orca_math.teacher.client import TeacherUsage, merge_usage

STAGE = "generate"  # quarantine rows' stage
GENERATED_SOURCE = "agent-instruct"  # the source of every generated problem


class Flow(StrEnum):
    """Where a candidate came from, as written to ``provenance.flow`` and to the manifest."""

    SEED = "seed"
    EXISTING = "existing"  # a problem from an existing set, only (re-)solved by `orca-math solve`
    ASK_ME_ANYTHING = "ask_me_anything"
    SUGGESTER_EDITOR = "suggester_editor"
    SOLVE_AND_VERIFY = "solve_and_verify"  # a usage key only: it solves the other flows' candidates


# Seeds first, then by flow: of two duplicates the earlier one is kept.
FLOW_ORDER = {Flow.SEED: 0, Flow.ASK_ME_ANYTHING: 1, Flow.SUGGESTER_EDITOR: 2}


class Reason(StrEnum):
    """Why a candidate was quarantined, as written to the quarantine's ``reason``."""

    PARSE_FAILURE = "parse failure"  # a reply (or a seed's program) that could not be read
    UNSOLVABLE = "unsolvable"  # the solver gave up, or the Suggester found nothing to make harder
    DISAGREEING_SOLVES = "disagreeing solves"  # the independent check does not reach the same answer
    WRONG_ANSWER = "wrong answer"  # disagrees with the answer the problem came with
    TOO_LONG = "too long"
    DUPLICATE = "duplicate"
    CONTAMINATED = "contaminated"  # (nearly) repeats an eval question
    TEACHER_ERROR = "teacher error"  # the endpoint rejected the request (HTTP 400/413/422)


def generated_problem_id(seed_id: str, flow: str, round_: int, index: int, question: str) -> str:
    """The id of a problem a flow wrote from a seed: the same for every teacher."""
    return stable_id(seed_id, flow, round_, index, question)


def flow_quarantine(seed: dict, flow: str, round_: int, index: int, field_: str | None, reason: Reason,
                    detail: str, *, question: str | None = None, reply: str | None = None) -> dict:
    """A quarantine row for something a flow rejected; ``raw`` keeps enough to trace it.

    ``question`` is the candidate's question, ``reply`` the teacher's text it was judged on.
    """
    raw = {"seed_id": seed["id"], "flow": flow, "round": round_, "index": index, "detail": detail,
           "question": question, "reply": reply}
    return quarantine_row(STAGE, f"{seed['source']}:{seed['id']}", index, field_, str(reason),
                          json.dumps(raw, ensure_ascii=False))


@dataclass
class SeedOutput:
    """What a backend made of its seeds: problem rows kept, quarantine rows, and per flow
    ``candidates``, ``kept`` and each reason (``by_flow``), plus the teacher usage per flow.

    ``by_flow`` lets the manifest say what each flow yielded without re-parsing rows.
    """

    problems: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    by_flow: dict[str, Counter] = field(default_factory=dict)
    usage: dict[str, TeacherUsage] = field(default_factory=dict)

    @property
    def candidates(self) -> int:
        """Every candidate counted, kept or quarantined."""
        return sum(c["candidates"] for c in self.by_flow.values())

    def keep(self, flow: str, row: dict) -> None:
        """Count ``row`` as a problem ``flow`` produced and kept."""
        self.problems.append(row)
        self.by_flow.setdefault(flow, Counter()).update(candidates=1, kept=1)

    def reject(self, flow: str, row: dict) -> None:
        """Count quarantine ``row`` against ``flow``, under its reason."""
        self.quarantined.append(row)
        self.by_flow.setdefault(flow, Counter()).update({"candidates": 1, row["reason"]: 1})

    def add(self, other: "SeedOutput") -> "SeedOutput":
        """Merge ``other``'s rows, counts and usage into this one (in place)."""
        self.problems += other.problems
        self.quarantined += other.quarantined
        for flow, counts in other.by_flow.items():
            self.by_flow.setdefault(flow, Counter()).update(counts)
        merge_usage(self.usage, other.usage)
        return self


class SeedBackend(Protocol):
    """Anything that turns one seed row into a SeedOutput (see ``orca_math.generate.backend.BACKENDS``)."""

    teacher_model: str

    async def expand(self, seed: dict) -> SeedOutput: ...
