"""A world problem as a small program: a chain of typed steps, each one arithmetic operation.

A :class:`Program` is plain data (kinds, numbers, word choices, phrasing indices), serializable
to a few hundred bytes of JSON. What a step *means* (its arithmetic, its words) lives in
``steps.py``; how it reads lives there too, rendered by ``render.py``. Keeping the program as
data is what lets the symbolic teacher edit problems (add a step, scale numbers, add a
distractor) and recompute their answers exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

# Goes into every row's provenance; bump it when a template, a table in vocab.py, or the
# meaning of a step changes, because old programs would then render different text.
WORLD_VERSION = "world-v1"


class ProgramError(ValueError):
    """A program that cannot be evaluated or rendered (bad kind, inexact division, ...)."""


@dataclass(frozen=True)
class Step:
    """One step: a kind from ``steps.KINDS``, its numbers, its words, and how it is phrased."""

    kind: str
    givens: dict[str, int] = field(default_factory=dict)  # numbers stated in the problem
    words: dict[str, str] = field(default_factory=dict)  # names, items, ... picked for this step
    phrasing: int = 0  # index into the kind's sentence templates
    asking: int = 0  # index into the kind's question templates


@dataclass(frozen=True)
class Distractor:
    """A sentence with a number that the answer does not depend on."""

    after: int  # inserted after the sentence of step ``after``
    template: int
    words: dict[str, str] = field(default_factory=dict)
    number: int = 0


@dataclass(frozen=True)
class Program:
    """A word problem: steps in order (the first is a source), optional distractors.

    The question asks for the result of the last step.
    """

    steps: tuple[Step, ...]
    distractors: tuple[Distractor, ...] = ()

    def truncated(self, last: int) -> "Program":
        """The program that stops at step ``last`` and asks for its result."""
        if not 0 <= last < len(self.steps):
            raise ProgramError(f"step {last} out of range (program has {len(self.steps)} steps)")
        return Program(self.steps[: last + 1], tuple(d for d in self.distractors if d.after <= last))

    def with_steps(self, steps: tuple[Step, ...]) -> "Program":
        """Same distractors, other steps."""
        return replace(self, steps=steps)

    def to_json(self) -> str:
        """Compact JSON; ``Program.from_json`` reads it back exactly."""
        blob = {
            "v": WORLD_VERSION,
            "steps": [[s.kind, s.givens, s.words, s.phrasing, s.asking] for s in self.steps],
            "distractors": [[d.after, d.template, d.words, d.number] for d in self.distractors],
        }
        return json.dumps(blob, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Program":
        """Parse ``to_json`` output; ProgramError when it is not a program of this world version."""
        try:
            blob = json.loads(text)
            if blob.get("v") != WORLD_VERSION:
                raise ProgramError(f"world version {blob.get('v')!r}, this code reads {WORLD_VERSION!r}")
            steps = tuple(
                Step(str(k), {str(a): int(b) for a, b in g.items()}, {str(a): str(b) for a, b in w.items()}, int(p), int(q))
                for k, g, w, p, q in blob["steps"]
            )
            distractors = tuple(
                Distractor(int(a), int(t), {str(x): str(y) for x, y in w.items()}, int(n))
                for a, t, w, n in blob["distractors"]
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            if isinstance(e, ProgramError):
                raise
            raise ProgramError(f"not a world program: {e}") from e
        if not steps:
            raise ProgramError("a program needs at least one step")
        return cls(steps, distractors)


@dataclass(frozen=True)
class State:
    """What the running quantity is after a step: its unit, whose it is, what it counts."""

    unit: str  # "count" or "money"
    role: str  # "has" for counts; "funds" (money owned) or "cost" (money to pay)
    owner: str  # "Mia", "Mia and Ava", "each friend"
    plural: bool = False  # verb agreement: "Mia and Ava have"
    pron: tuple[str, str, str] | None = None  # (subject, object, possessive) standing for the owner
    item: str = ""  # singular noun of what is counted
    items: str = ""  # its plural
    container: str = ""  # plural noun they can be packed in; "" when they cannot
    partner: str | None = None  # the person the owner was just compared with (for "together")
    each: bool = False  # the owner is "each friend": sharing again would read badly
