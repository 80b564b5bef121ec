"""What the pipeline runs for one seed: the backends, and the registry that picks one by teacher kind.

A backend (:class:`~orca_math.common.contract.SeedBackend`) has ``teacher_model`` and
``async expand(seed) -> SeedOutput``; the pipeline (Ray Data, commits, resume, dedup) knows
nothing else about it. Two backends drive AutoGen agents on an OpenAI-compatible endpoint:
:class:`AgentInstructBackend` (``generate``: the three flows) and :class:`TeacherSolveBackend`
(``solve``: solutions only). The symbolic world teacher's two (``orca_math/world/teacher.py``)
honour the same contract; :data:`BACKENDS` names all four.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from orca_math.common.contract import Flow, Reason, SeedBackend, SeedOutput
from orca_math.generate.clients import autogen_model_client
from orca_math.generate.config import GenerateConfig, SolveStageConfig
from orca_math.generate.flows import (
    Candidate,
    ClientFactory,
    FlowResult,
    ask_me_anything,
    candidate_quarantine,
    problem_row,
    solve_and_verify,
    suggester_editor,
)
from orca_math.seeds.dedup import normalize_question
from orca_math.teacher.client import TeacherUsage, merge_usage
from orca_math.world.teacher import ProceduralBackend, ProceduralSolveBackend


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
    merge_usage(out.usage, {Flow.SOLVE_AND_VERIFY: usage})


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
            flows.append((Flow.ASK_ME_ANYTHING, ask_me_anything(seed, self.make_client)))
        if self.cfg.suggester_editor.enabled:
            flows.append((Flow.SUGGESTER_EDITOR,
                          suggester_editor(seed, self.make_client, self.cfg.suggester_editor)))
        results: list[FlowResult] = await asyncio.gather(*(coro for _, coro in flows))

        candidates = []
        if self.cfg.include_seeds:
            candidates.append(Candidate(seed, seed["question"], Flow.SEED, 0, 0,
                                        expected_answer=seed["reference_answer"],
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
            if c.flow != Flow.SEED and key in seen:
                out.reject(c.flow, candidate_quarantine(c, "question", Reason.DUPLICATE,
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
        candidate = Candidate(problem, problem["question"], Flow.EXISTING, 0, 0,
                              expected_answer=problem["reference_answer"])
        await solve_candidates(out, [candidate], self.make_client, self.cfg.solve, self.teacher_model)
        return out

    async def aclose(self) -> None:
        """Close the teacher client the factory hands out."""
        await self.make_client().close()


def stage_of(cfg: GenerateConfig | SolveStageConfig) -> str:
    """``generate`` or ``solve``: the stage a config is for."""
    return "generate" if isinstance(cfg, GenerateConfig) else "solve"


def endpoint_client_factory(cfg: GenerateConfig | SolveStageConfig) -> ClientFactory:
    """One AutoGen model client on the teacher endpoint for every flow of this worker (so one
    in-flight bound), its usage counted under the stage's name."""
    shared = autogen_model_client(cfg.teacher, stage=stage_of(cfg))
    return lambda: shared


# (teacher kind, stage) -> the backend that runs it. A new teacher plugs in here: a config in
# orca_math/teacher/config.py's AnyTeacherConfig, a backend that returns the generation contract.
BACKENDS: dict[tuple[str, str], Callable[..., SeedBackend]] = {
    ("endpoint", "generate"): lambda cfg: AgentInstructBackend(cfg, endpoint_client_factory(cfg)),
    ("endpoint", "solve"): lambda cfg: TeacherSolveBackend(cfg, endpoint_client_factory(cfg)),
    ("procedural", "generate"): ProceduralBackend,
    ("procedural", "solve"): ProceduralSolveBackend,
}


def build_backend(cfg: GenerateConfig | SolveStageConfig) -> SeedBackend:
    """The backend for a stage config, by ``cfg.teacher.kind`` (see :data:`BACKENDS`).

    Call it inside the event loop that will run the flows (the HTTP pool binds to it).
    """
    return BACKENDS[(cfg.teacher.kind, stage_of(cfg))](cfg)
