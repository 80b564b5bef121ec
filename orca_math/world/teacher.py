"""The symbolic teacher: the three AgentInstruct flows of Orca-Math, run on world programs.

Where the LLM teacher (``orca_math/generate/``) reads a seed's text, this one reads the seed's
program (``provenance.origin``) and does the same jobs exactly:

1. **Ask Me Anything** (:func:`ask_me_anything`): the seed's statement holds one intermediate
   quantity per step before the last; one new problem per intermediate quantity asks for it.
2. **Suggester + Editor** (:func:`suggest`, :func:`apply_suggestions`, :func:`suggester_editor`):
   the Suggester proposes concrete ways to make the problem harder -- one more step, larger
   numbers, a distractor sentence -- without writing the problem; the Editor applies them.
   Each round works on the previous round's output, and each output is strictly harder.
3. **Solve** (:func:`orca_math.world.solve.solve`): the step-by-step solution ending in
   ``#### N``, kept only if it survives the independent check (``solution_errors``).

:func:`expand_seed` runs them on one seed row and returns what the LLM backend returns, the
generation contract's :class:`~orca_math.common.contract.SeedOutput`: problem rows, quarantine rows
with :class:`~orca_math.common.contract.Reason` s, and per-flow counts. :class:`ProceduralBackend` is
a :class:`~orca_math.common.contract.SeedBackend`, so the ``generate`` pipeline (Ray Data, resume,
dedup) runs it like the LLM teacher when ``teacher: {kind: procedural}``.
Randomness is drawn per (seed, flow) from ``teacher.seed``: outputs do not depend on batching.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Literal

from orca_math.common.contract import (
    GENERATED_SOURCE,
    STAGE,
    Flow,
    Reason,
    SeedOutput,
    flow_quarantine,
    generated_problem_id,
)
from orca_math.common.records import quarantine_row
from orca_math.common.schema import empty_provenance, stable_id
from orca_math.judge.answers import is_correct
from orca_math.teacher.config import ProceduralTeacherConfig
from orca_math.world.core import (
    ORIGIN_PREFIX,
    add_distractor,
    append_random_step,
    is_heldout,
    program_from_row,
    scale_numbers,
    words_and_numbers,
)
from orca_math.world.program import Program, ProgramError
from orca_math.world.render import render_question
from orca_math.world.solve import solution_errors, solve
from orca_math.world.steps import KINDS, arithmetic_steps, evaluate, states

PROMPT_VERSION = "procedural-v1"

Edit = Literal["add_step", "larger_numbers", "distractor"]


@dataclass(frozen=True)
class FlowSettings:
    """The flow knobs the LLM pipeline's ``generate:`` config also has (see :meth:`from_generate_config`)."""

    ask_me_anything: bool = True
    suggester_editor_rounds: int = 2  # 0: flow off (paper: 2)
    keep_all_rounds: bool = False  # paper: only the last round's problem
    include_seeds: bool = False
    max_solution_chars: int = 1800

    @classmethod
    def from_generate_config(cls, cfg) -> "FlowSettings":
        """Read an ``orca_math.generate.config.GenerateConfig``."""
        se = cfg.suggester_editor
        return cls(ask_me_anything=cfg.ask_me_anything.enabled, suggester_editor_rounds=se.rounds if se.enabled else 0,
                   keep_all_rounds=se.keep_all_rounds, include_seeds=cfg.include_seeds,
                   max_solution_chars=cfg.solve.max_solution_chars)


# --------------------------------------------------------------------------- Ask Me Anything


def intermediate_steps(program: Program) -> list[int]:
    """Indices of the steps whose results are computed on the way to the answer."""
    return [i for i, s in enumerate(program.steps[:-1]) if KINDS[s.kind].ops > 0]


def ask_me_anything(program: Program) -> list[tuple[int, Program]]:
    """One new problem per intermediate quantity of ``program``, asking for it: (step, problem)."""
    return [(i, program.truncated(i)) for i in intermediate_steps(program)]


# ------------------------------------------------------------------------ Suggester + Editor


@dataclass(frozen=True)
class Suggestion:
    """One concrete way to make a problem harder; ``text`` says it the way a Suggester would."""

    edit: Edit
    text: str
    extended: Program | None = None  # add_step: the program with the new step
    with_distractor: Program | None = None  # distractor: the program with the new sentence
    factor: int = 1  # larger_numbers


def difficulty(program: Program) -> tuple[int, int, int]:
    """(arithmetic steps, largest quantity, distractor sentences): harder means larger."""
    return arithmetic_steps(program), max(evaluate(program)), len(program.distractors)


def is_harder(new: Program, old: Program) -> bool:
    """Strictly harder: no measure of :func:`difficulty` went down and at least one went up."""
    a, b = difficulty(new), difficulty(old)
    return all(x >= y for x, y in zip(a, b)) and a != b


def _scale_factors(program: Program, cfg: ProceduralTeacherConfig) -> list[int]:
    top = max(evaluate(program))
    return [m for m in range(2, cfg.max_scale + 1) if top * m <= cfg.max_value]


def suggest(program: Program, rng: random.Random, cfg: ProceduralTeacherConfig) -> list[Suggestion]:
    """The Suggester: up to ``suggestions_per_round`` distinct edits that fit this problem."""
    options: list[Suggestion] = []
    if arithmetic_steps(program) < cfg.max_steps:
        extended = append_random_step(rng, program, cfg.max_value)
        if extended is not None:
            new = extended.steps[-1]
            options.append(Suggestion("add_step", f"Take it one step further ({new.kind}) and ask for that result.",
                                      extended=extended))
    factors = _scale_factors(program, cfg)
    if factors:
        m = rng.choice(factors)
        options.append(Suggestion("larger_numbers", f"Use larger numbers: multiply the amounts by {m}.", factor=m))
    with_distractor = add_distractor(rng, program)
    if with_distractor is not None:
        options.append(Suggestion("distractor", "Add a sentence with a number that is not needed.",
                                  with_distractor=with_distractor))
    rng.shuffle(options)
    return options[: cfg.suggestions_per_round]


def apply_suggestions(program: Program, suggestions: list[Suggestion], cfg: ProceduralTeacherConfig) -> Program:
    """The Editor: the problem rewritten with every suggestion that still fits.

    Order matters: the new step and the distractor first (both were drawn on this very program),
    then scaling, which multiplies every value including the new step's, so it stays exact;
    if the new step made the old factor too large, the largest factor that fits is used.
    """
    edited = program
    for s in suggestions:
        if s.edit == "add_step" and s.extended is not None:
            edited = Program(s.extended.steps, edited.distractors)
    for s in suggestions:
        if s.edit == "distractor" and s.with_distractor is not None:
            edited = Program(edited.steps, s.with_distractor.distractors)
    for s in suggestions:
        if s.edit == "larger_numbers":
            fits = [m for m in _scale_factors(edited, cfg) if m <= s.factor]
            if fits:
                edited = scale_numbers(edited, fits[-1])
    return edited


def suggester_editor(program: Program, rng: random.Random, cfg: ProceduralTeacherConfig,
                     rounds: int) -> tuple[list[tuple[int, list[Suggestion], Program]], int | None]:
    """``rounds`` Suggester -> Editor exchanges, each on the previous output.

    Returns (round, suggestions, edited program) per round that produced a harder problem, and the
    round where the Suggester ran out of edits (None if every round succeeded).
    """
    produced = []
    current = program
    for r in range(1, rounds + 1):
        suggestions = suggest(current, rng, cfg)
        edited = apply_suggestions(current, suggestions, cfg)
        if not suggestions or not is_harder(edited, current):
            return produced, r
        produced.append((r, suggestions, edited))
        current = edited
    return produced, None


# ----------------------------------------------------------------------------- one seed, all flows


def _rng(cfg: ProceduralTeacherConfig, seed: dict, flow: str) -> random.Random:
    return random.Random(int(stable_id(cfg.seed, seed["id"], flow), 16))


def generated_row(program: Program, seed: dict, flow: str, round_: int, index: int, question: str, solution: str,
                  cfg: ProceduralTeacherConfig) -> dict:
    """A problem row for a generated problem: its own program in ``provenance.origin``."""
    return {
        "id": generated_problem_id(seed["id"], flow, round_, index, question),
        "question": question,
        "reference_solution": solution,
        "reference_answer": str(evaluate(program)[-1]),
        "source": GENERATED_SOURCE,
        "provenance": empty_provenance(origin=ORIGIN_PREFIX + program.to_json(), seed_id=seed["id"], flow=flow,
                                       round=round_, teacher_model=cfg.model, prompt_version=PROMPT_VERSION),
    }


def expand_seed(seed: dict, cfg: ProceduralTeacherConfig, flows: FlowSettings = FlowSettings()) -> SeedOutput:
    """Every flow on one seed row, then Solve and its checks on every candidate.

    Checks, in order: the solution passes the independent recomputation (``disagreeing
    solves``), fits ``max_solution_chars`` (``too long``), does not hash into the world's held-out
    bucket (``contaminated``: it could be a test question), and is not an exact repeat of the
    seed or an earlier candidate (``duplicate``). A seed without a program is one
    ``parse failure``; a Suggester with nothing left to suggest is ``unsolvable`` for that round.
    """
    out = SeedOutput()
    flow_names = [f for f, on in ((Flow.ASK_ME_ANYTHING, flows.ask_me_anything),
                                  (Flow.SUGGESTER_EDITOR, flows.suggester_editor_rounds > 0)) if on]
    try:
        program = program_from_row(seed)
        states(program)
        evaluate(program)
    except ProgramError as e:
        flow = Flow.SEED if flows.include_seeds else (flow_names[0] if flow_names else Flow.SEED)
        out.reject(flow, flow_quarantine(seed, flow, 0, 0, "provenance.origin", Reason.PARSE_FAILURE, str(e),
                                         question=seed.get("question")))
        return out

    # (flow, round, index, program)
    candidates: list[tuple[str, int, int, Program]] = []
    if flows.include_seeds:
        candidates.append((Flow.SEED, 0, 0, program))
    if flows.ask_me_anything:
        candidates += [(Flow.ASK_ME_ANYTHING, 1, i, p) for i, p in ask_me_anything(program)]
    if flows.suggester_editor_rounds > 0:
        produced, stuck = suggester_editor(program, _rng(cfg, seed, Flow.SUGGESTER_EDITOR), cfg, flows.suggester_editor_rounds)
        rounds = produced if flows.keep_all_rounds else produced[-1:]
        candidates += [(Flow.SUGGESTER_EDITOR, r, r - 1, p) for r, _, p in rounds]
        if stuck is not None:
            out.reject(Flow.SUGGESTER_EDITOR, flow_quarantine(
                seed, Flow.SUGGESTER_EDITOR, stuck, stuck - 1, "question", Reason.UNSOLVABLE,
                "no edit makes this problem harder within the limits", question=seed["question"]))

    seen = {words_and_numbers(seed["question"]): seed["id"]}
    for flow, round_, index, p in candidates:
        if flow == Flow.SEED:
            _keep_seed(out, seed, p, flows)
            continue
        question = render_question(p)
        solution = solve(p)
        errors = solution_errors(p, solution)
        key = words_and_numbers(question)
        if errors:
            reason, field_, detail = Reason.DISAGREEING_SOLVES, "reference_answer", "; ".join(errors)
        elif len(solution) > flows.max_solution_chars:
            reason, field_, detail = Reason.TOO_LONG, "reference_solution", f"{len(solution)} chars > {flows.max_solution_chars}"
        elif is_heldout(question):
            reason, field_, detail = Reason.CONTAMINATED, "question", "hashes into the world's held-out bucket"
        elif key in seen:
            reason, field_, detail = Reason.DUPLICATE, "question", f"same question as {seen[key]} (exact, same seed)"
        else:
            row = generated_row(p, seed, flow, round_, index, question, solution, cfg)
            seen[key] = row["id"]
            out.keep(flow, row)
            continue
        out.reject(flow, flow_quarantine(seed, flow, round_, index, field_, reason, detail,
                                         question=question, reply=solution))
    return out


def _keep_seed(out: SeedOutput, seed: dict, program: Program, flows: FlowSettings) -> None:
    """A seed is kept as it is when its answer is its program's; missing solutions are written."""
    solution = seed.get("reference_solution") or solve(program)
    errors = solution_errors(program, solution)
    if errors or not is_correct(solution, seed["reference_answer"]):
        detail = "; ".join(errors) or f"reference answer {seed['reference_answer']} is not the program's"
        out.reject(Flow.SEED, flow_quarantine(seed, Flow.SEED, 0, 0, "reference_answer", Reason.WRONG_ANSWER, detail,
                                              question=seed["question"], reply=solution))
    elif len(solution) > flows.max_solution_chars:
        out.reject(Flow.SEED, flow_quarantine(seed, Flow.SEED, 0, 0, "reference_solution", Reason.TOO_LONG,
                                              f"{len(solution)} chars > {flows.max_solution_chars}",
                                              question=seed["question"], reply=solution))
    else:
        # Counted under flow "seed", so the generate pipeline's dedup can find its flow from the row.
        prov = {**(seed.get("provenance") or {}), "flow": Flow.SEED}
        out.keep(Flow.SEED, {**seed, "reference_solution": solution, "provenance": empty_provenance(**prov)})


def solve_problem(problem: dict, cfg: ProceduralTeacherConfig, max_solution_chars: int = 1800) -> SeedOutput:
    """``solve`` for one existing world problem: its solution, kept only if it reaches its answer."""
    out = SeedOutput()
    try:
        program = program_from_row(problem)
        solution = solve(program)
    except ProgramError as e:
        out.reject(Flow.EXISTING, flow_quarantine(problem, Flow.EXISTING, 0, 0, "provenance.origin", Reason.PARSE_FAILURE,
                                                  str(e), question=problem.get("question")))
        return out
    errors = solution_errors(program, solution)
    if errors or not is_correct(solution, problem["reference_answer"]):
        detail = "; ".join(errors) or f"solution says {evaluate(program)[-1]}, expected {problem['reference_answer']}"
        out.reject(Flow.EXISTING, flow_quarantine(problem, Flow.EXISTING, 0, 0, "reference_answer", Reason.WRONG_ANSWER,
                                                  detail, question=problem["question"], reply=solution))
    elif len(solution) > max_solution_chars:
        out.reject(Flow.EXISTING, flow_quarantine(problem, Flow.EXISTING, 0, 0, "reference_solution", Reason.TOO_LONG,
                                                  f"{len(solution)} chars > {max_solution_chars}",
                                                  question=problem["question"], reply=solution))
    else:
        prov = empty_provenance(**(problem.get("provenance") or {}))
        prov.update(teacher_model=cfg.model, prompt_version=PROMPT_VERSION)
        out.keep(Flow.EXISTING, {**problem, "reference_solution": solution,
                                 "reference_answer": str(evaluate(program)[-1]), "provenance": prov})
    return out


class ProceduralBackend:
    """The :class:`~orca_math.common.contract.SeedBackend` of ``generate`` for ``teacher: {kind: procedural}``."""

    def __init__(self, cfg):
        self.teacher: ProceduralTeacherConfig = cfg.teacher
        self.flows = FlowSettings.from_generate_config(cfg)
        self.teacher_model = self.teacher.model

    async def expand(self, seed: dict) -> SeedOutput:
        """Every flow on the seed (:func:`expand_seed`)."""
        return expand_seed(seed, self.teacher, self.flows)


class ProceduralSolveBackend:
    """The :class:`~orca_math.common.contract.SeedBackend` of ``solve``: world problems get their program's solution."""

    def __init__(self, cfg):
        self.teacher: ProceduralTeacherConfig = cfg.teacher
        self.max_solution_chars = cfg.solve.max_solution_chars
        self.teacher_model = self.teacher.model

    async def expand(self, problem: dict) -> SeedOutput:
        """The problem's checked solution (:func:`solve_problem`)."""
        return solve_problem(problem, self.teacher, self.max_solution_chars)


def teach_seeds(seeds: list[dict], cfg: ProceduralTeacherConfig, flows: FlowSettings = FlowSettings()) -> tuple[SeedOutput, int]:
    """:func:`expand_seed` over a whole seed set, then exact duplicates across seeds removed.

    The ``generate`` pipeline does this last pass itself (with near duplicates, over committed
    parts); this is the same in one process, for a seed set in memory. Returns the merged result
    and how many duplicates were removed.
    """
    total = SeedOutput()
    for seed in seeds:
        total.add(expand_seed(seed, cfg, flows))
    seen = {words_and_numbers(s["question"]): s["id"] for s in seeds}
    kept, removed = [], 0
    for i, p in enumerate(total.problems):
        flow = p["provenance"]["flow"] if p["provenance"]["seed_id"] else Flow.SEED
        key = words_and_numbers(p["question"])
        if flow != Flow.SEED and key in seen:
            detail = json.dumps({"id": p["id"], "question": p["question"], "duplicate_of": seen[key], "match": "exact"})
            total.quarantined.append(quarantine_row(STAGE, f"{p['source']}:{p['id']}", i, "question", Reason.DUPLICATE, detail))
            total.by_flow[flow].update({"kept": -1, Reason.DUPLICATE: 1})
            removed += 1
            continue
        seen.setdefault(key, p["id"])
        kept.append(p)
    total.problems = kept
    return total, removed
