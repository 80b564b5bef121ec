"""What the pipeline runs for one seed: the backend seam between the pipeline and a teacher.

A backend has ``teacher_model`` and ``async expand(seed) -> SeedOutput``; the pipeline (Ray Data,
commits, resume, dedup) knows nothing else about it. Two backends drive AutoGen agents on an
OpenAI-compatible endpoint: :class:`AgentInstructBackend` (``generate``: the three flows) and
:class:`TeacherSolveBackend` (``solve``: solutions only). Another teacher (e.g. a procedural one
that writes problems from programs) plugs in by returning the same SeedOutput from
:func:`build_backend`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from orca_math.agents.clients import BoundedChatClient, TeacherUsage, merge_usage
from orca_math.agents.config import GenerateConfig, SolveStageConfig
from orca_math.agents.flows import (
    ASK_ME_ANYTHING,
    EXISTING,
    SEED,
    SOLVE_AND_VERIFY,
    SUGGESTER_EDITOR,
    Candidate,
    ClientFactory,
    FlowResult,
    ask_me_anything,
    candidate_quarantine,
    problem_row,
    solve_and_verify,
    suggester_editor,
)
from orca_math.agents.tally import FlowTally
from orca_math.seeds.dedup import DUPLICATE, normalize_question


@dataclass
class SeedOutput(FlowTally):
    """Everything one seed produced: a FlowTally (kept rows, quarantine, counts per flow) plus the
    teacher usage it cost."""

    usage: dict[str, TeacherUsage] = field(default_factory=dict)

    def add(self, other: FlowTally) -> "SeedOutput":
        """Merge ``other`` into this one (in place)."""
        super().add(other)
        if isinstance(other, SeedOutput):
            merge_usage(self.usage, other.usage)
        return self


class SeedBackend(Protocol):
    """Anything that turns one seed row into a SeedOutput."""

    teacher_model: str

    async def expand(self, seed: dict) -> SeedOutput: ...


async def close_backend(backend: SeedBackend) -> None:
    """Release what a backend holds (its teacher connections), if it holds anything."""
    close = getattr(backend, "aclose", None)
    if close is not None:
        await close()


async def solve_candidates(out: SeedOutput, candidates: list[Candidate], make_client: ClientFactory,
                           cfg, teacher_model: str) -> None:
    """Run solve-and-verify on every candidate at once; kept rows and rejections go into ``out``."""
    results = await asyncio.gather(*(solve_and_verify(c, make_client, cfg) for c in candidates))
    usage = TeacherUsage()
    for c, r in zip(candidates, results):
        usage.add(r.usage)
        if r.quarantined is not None:
            out.reject(c.flow, r.quarantined)
        else:
            out.keep(c.flow, problem_row(c, r.solution, teacher_model))
    merge_usage(out.usage, {SOLVE_AND_VERIFY: usage})


class AgentInstructBackend:
    """``generate``: Ask Me Anything and Suggester+Editor on a seed, then solve-and-verify."""

    def __init__(self, cfg: GenerateConfig, make_client: ClientFactory):
        self.cfg = cfg
        self.make_client = make_client
        self.teacher_model = cfg.teacher.model

    async def expand(self, seed: dict) -> SeedOutput:
        out = SeedOutput()
        flows = []
        if self.cfg.ask_me_anything.enabled:
            flows.append((ASK_ME_ANYTHING, ask_me_anything(seed, self.make_client)))
        if self.cfg.suggester_editor.enabled:
            flows.append((SUGGESTER_EDITOR, suggester_editor(seed, self.make_client, self.cfg.suggester_editor)))
        results: list[FlowResult] = await asyncio.gather(*(coro for _, coro in flows))

        candidates = []
        if self.cfg.include_seeds:
            candidates.append(Candidate(seed, seed["question"], SEED, 0, 0, expected_answer=seed["reference_answer"],
                                        solution=seed.get("reference_solution")))
        for (flow, _), result in zip(flows, results):
            out.usage[flow] = result.usage
            for row in result.quarantined:
                out.reject(flow, row)
            candidates += result.candidates

        # Exact repeats within one seed (Ask Me Anything often re-asks the seed itself) skip the
        # teacher; near duplicates across the whole set are removed in the final pass.
        seen = {normalize_question(seed["question"]): seed["id"]}
        unique = []
        for c in candidates:
            key = normalize_question(c.question)
            if c.flow != SEED and key in seen:
                out.reject(c.flow, candidate_quarantine(c, "question", DUPLICATE,
                                                        f"same question as {seen[key]} (exact, same seed)"))
                continue
            seen.setdefault(key, c.id)
            unique.append(c)
        await solve_candidates(out, unique, self.make_client, self.cfg.solve, self.teacher_model)
        return out

    async def aclose(self) -> None:
        """Close the teacher client the factory hands out."""
        await self.make_client().close()


class TeacherSolveBackend:
    """``solve``: a teacher solution for an existing problem, checked like generated ones."""

    def __init__(self, cfg: SolveStageConfig, make_client: ClientFactory):
        self.cfg = cfg
        self.make_client = make_client
        self.teacher_model = cfg.teacher.model

    async def expand(self, problem: dict) -> SeedOutput:
        out = SeedOutput()
        candidate = Candidate(problem, problem["question"], EXISTING, 0, 0, expected_answer=problem["reference_answer"])
        await solve_candidates(out, [candidate], self.make_client, self.cfg.solve, self.teacher_model)
        return out

    async def aclose(self) -> None:
        """Close the teacher client the factory hands out."""
        await self.make_client().close()


def build_backend(cfg: GenerateConfig | SolveStageConfig) -> SeedBackend:
    """The backend for a stage config, talking to ``cfg.teacher``.

    Call it inside the event loop that will run the flows (the HTTP pool binds to it). This is
    the place a non-endpoint teacher (``teacher: {kind: procedural}``) is selected.
    """
    from orca_math.teacher import autogen_model_client
    from orca_math.world.teacher import ProceduralBackend, ProceduralSolveBackend, ProceduralTeacherConfig

    if isinstance(cfg.teacher, ProceduralTeacherConfig):
        return ProceduralBackend(cfg) if isinstance(cfg, GenerateConfig) else ProceduralSolveBackend(cfg)
    shared = BoundedChatClient(autogen_model_client(cfg.teacher), cfg.teacher.max_in_flight)

    def make_client() -> BoundedChatClient:
        return shared

    if isinstance(cfg, GenerateConfig):
        return AgentInstructBackend(cfg, make_client)
    return TeacherSolveBackend(cfg, make_client)
