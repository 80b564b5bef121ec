"""The three AgentInstruct flows of Orca-Math, built on AutoGen agentchat.

1. :func:`ask_me_anything`: one agent turns a seed and its answer into a statement, then writes
   one new question per number in it, each asking for that number.
2. :func:`suggester_editor`: a Suggester proposes ways to make a problem harder, an Editor
   rewrites it from the problem and the Suggester's message; each round on the previous round's
   problem. The exchange is an explicit two-agent conversation rather than a RoundRobinGroupChat:
   with two fixed turns the team adds nothing but its runtime (measured: ~3 ms CPU per round vs
   ~0.3 ms), which caps how many requests one worker keeps in flight.
3. :func:`solve_and_verify`: a Solver writes a step-by-step solution ending in ``#### <answer>``;
   it is kept only if it is short enough, reaches the expected answer when there is one, and a
   second, independent Verifier solve agrees.

A generation flow returns :class:`FlowResult` -- candidates (parsed problems) and quarantine rows
for replies that produced none, each with a :class:`~orca_math.common.contract.Reason` of the generation
contract (``orca_math/common/contract.py``) -- plus the teacher usage it spent. Every flow
takes a zero-argument ``make_client`` returning an ``autogen_core`` ChatCompletionClient, so tests
script it with ``ReplayChatCompletionClient`` and production points it at the teacher endpoint.

A request the endpoint *rejects* (HTTP 400/413/422) quarantines its candidate as ``teacher
error``; any other failure (endpoint down, timeouts after retries) propagates, so the batch is not
committed and a rerun redoes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import TaskResult
from autogen_agentchat.messages import TextMessage
from autogen_core.models import ChatCompletionClient

from orca_math.common.contract import GENERATED_SOURCE, Flow, Reason, flow_quarantine, generated_problem_id
from orca_math.common.schema import empty_provenance
from orca_math.generate import prompts
from orca_math.generate.clients import MeteredChatClient
from orca_math.generate.config import SolveConfig, SuggesterEditorConfig
from orca_math.generate.parsing import (
    ReplyParseError,
    Solution,
    Unsolvable,
    parse_ask_me_anything,
    parse_edited_problem,
    parse_solution,
    parse_suggestions,
)
from orca_math.judge.answers import is_correct
from orca_math.teacher.client import TeacherUsage

ClientFactory = Callable[[], ChatCompletionClient]


@dataclass
class Candidate:
    """A problem some flow produced for a seed, not yet solved and checked."""

    seed: dict
    question: str
    flow: str
    round: int
    index: int  # position among this flow's outputs for this seed
    expected_answer: str | None = None  # the answer it was written for, when there is one
    solution: str | None = None  # a trusted solution that needs no teacher (seeds with one)

    @property
    def id(self) -> str:
        if self.flow in (Flow.SEED, Flow.EXISTING):
            return self.seed["id"]
        return generated_problem_id(self.seed["id"], self.flow, self.round, self.index, self.question)


@dataclass
class FlowResult:
    """What a generation flow returns for one seed."""

    candidates: list[Candidate] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    usage: TeacherUsage = field(default_factory=TeacherUsage)


@dataclass
class SolveResult:
    """What solve-and-verify returns for one candidate: a solution or a quarantine row."""

    solution: Solution | None = None
    quarantined: dict | None = None
    usage: TeacherUsage = field(default_factory=TeacherUsage)


def candidate_quarantine(c: Candidate, field_: str | None, reason: Reason, detail: str, text: str | None = None) -> dict:
    """A quarantine row for a candidate that failed a check; ``text`` is the reply it was judged on."""
    return flow_quarantine(c.seed, c.flow, c.round, c.index, field_, reason, detail, question=c.question, reply=text)


def _last_text(result: TaskResult, source: str) -> str:
    """Text of the last message ``source`` produced ('' when it produced none)."""
    for m in reversed(result.messages):
        if isinstance(m, TextMessage) and m.source == source:
            return m.content
    return ""


async def ask_me_anything(seed: dict, make_client: ClientFactory) -> FlowResult:
    """Flow 1 on one seed: new questions, one per number of the seed's statement."""
    out = FlowResult()
    client = MeteredChatClient(make_client(), out.usage)
    agent = AssistantAgent("ask_me_anything", client, system_message=prompts.ASK_ME_ANYTHING_SYSTEM)
    task = prompts.ASK_ME_ANYTHING_TASK.format(question=seed["question"], answer=seed["reference_answer"])
    try:
        result = await agent.run(task=task)
    except Exception as e:
        rejected = client.raise_unless_rejected(e)
        out.quarantined.append(flow_quarantine(seed, Flow.ASK_ME_ANYTHING, 1, 0, None, Reason.TEACHER_ERROR, str(rejected)))
        return out
    reply = _last_text(result, agent.name)
    try:
        parsed = parse_ask_me_anything(reply)
    except ReplyParseError as e:
        out.quarantined.append(flow_quarantine(seed, Flow.ASK_ME_ANYTHING, 1, 0, e.field, Reason.PARSE_FAILURE, e.detail,
                                               reply=reply))
        return out
    for q in parsed.questions:
        out.candidates.append(Candidate(seed, q.question, Flow.ASK_ME_ANYTHING, 1, q.number, expected_answer=q.answer))
    for r in parsed.rejected:
        out.quarantined.append(flow_quarantine(seed, Flow.ASK_ME_ANYTHING, 1, r.number or 0, r.field, Reason.PARSE_FAILURE,
                                               r.detail, reply=r.raw))
    return out


async def suggest_and_edit(client: ChatCompletionClient, question: str) -> tuple[str, str | None]:
    """One Suggester -> Editor exchange on ``question``: (suggester's reply, editor's reply).

    The Editor reads the problem and the Suggester's message, as in a two-member group chat.
    The Editor is not asked when the suggestions do not parse (returns None for its reply).
    """
    suggester = AssistantAgent("suggester", client, system_message=prompts.SUGGESTER_SYSTEM)
    editor = AssistantAgent("editor", client, system_message=prompts.EDITOR_SYSTEM)
    task = TextMessage(content=prompts.SUGGESTER_EDITOR_TASK.format(question=question), source="user")
    suggested = await suggester.run(task=task)
    suggestions = _last_text(suggested, suggester.name)
    try:
        parse_suggestions(suggestions)
    except ReplyParseError:
        return suggestions, None
    edited = await editor.run(task=[task, suggested.messages[-1]])
    return suggestions, _last_text(edited, editor.name)


async def suggester_editor(seed: dict, make_client: ClientFactory,
                           cfg: SuggesterEditorConfig = SuggesterEditorConfig()) -> FlowResult:
    """Flow 2 on one seed: ``cfg.rounds`` Suggester -> Editor exchanges, each harder than the last.

    A round whose replies do not parse is quarantined and ends the flow for this seed (later
    rounds would have nothing to build on). Candidates: every round's problem with
    ``keep_all_rounds``, else the problem of the last round that succeeded.
    """
    out = FlowResult()
    question = seed["question"]
    produced: list[Candidate] = []
    for round_ in range(1, cfg.rounds + 1):
        client = MeteredChatClient(make_client(), out.usage)
        try:
            suggestions, edited = await suggest_and_edit(client, question)
        except Exception as e:
            rejected = client.raise_unless_rejected(e)
            out.quarantined.append(flow_quarantine(seed, Flow.SUGGESTER_EDITOR, round_, round_ - 1, None,
                                                   Reason.TEACHER_ERROR, str(rejected), question=question))
            break
        try:
            parse_suggestions(suggestions)
            question = parse_edited_problem(edited or "")
        except ReplyParseError as e:
            text = f"SUGGESTER:\n{suggestions}\n\nEDITOR:\n{edited}"
            out.quarantined.append(flow_quarantine(seed, Flow.SUGGESTER_EDITOR, round_, round_ - 1, e.field,
                                                   Reason.PARSE_FAILURE, e.detail, reply=text))
            break
        produced.append(Candidate(seed, question, Flow.SUGGESTER_EDITOR, round_, round_ - 1))
    out.candidates = produced if cfg.keep_all_rounds else produced[-1:]
    return out


async def _solve_once(client: MeteredChatClient, name: str, system: str, question: str) -> str:
    agent = AssistantAgent(name, client, system_message=system)
    result = await agent.run(task=prompts.SOLVE_TASK.format(question=question))
    return _last_text(result, name)


async def solve_and_verify(candidate: Candidate, make_client: ClientFactory,
                           cfg: SolveConfig = SolveConfig()) -> SolveResult:
    """Flow 3 on one candidate: a checked teacher solution, or the reason there is none.

    Checks, cheapest first: the solution parses (else ``unsolvable`` / ``parse failure``), is at
    most ``max_solution_chars`` long (``too long``), reaches the expected answer when there is one
    (``wrong answer``), and a second solve by a differently prompted Verifier agrees
    (``disagreeing solves``).
    """
    out = SolveResult()
    if candidate.solution is not None:
        return out  # trusted solution (a seed that has one): nothing to ask the teacher
    solver_client = MeteredChatClient(make_client(), out.usage)
    try:
        reply = await _solve_once(solver_client, "solver", prompts.SOLVER_SYSTEM, candidate.question)
    except Exception as e:
        rejected = solver_client.raise_unless_rejected(e)
        out.quarantined = candidate_quarantine(candidate, None, Reason.TEACHER_ERROR, str(rejected))
        return out
    try:
        solution = parse_solution(reply)
    except Unsolvable:
        out.quarantined = candidate_quarantine(candidate, "reference_solution", Reason.UNSOLVABLE,
                                               "solver said UNSOLVABLE", reply)
        return out
    except ReplyParseError as e:
        out.quarantined = candidate_quarantine(candidate, e.field, Reason.PARSE_FAILURE, e.detail, reply)
        return out
    if len(solution.text) > cfg.max_solution_chars:
        out.quarantined = candidate_quarantine(
            candidate, "reference_solution", Reason.TOO_LONG,
            f"{len(solution.text)} chars > {cfg.max_solution_chars}", solution.text)
        return out
    if cfg.check_expected_answer and candidate.expected_answer is not None \
            and not is_correct(solution.text, candidate.expected_answer):
        out.quarantined = candidate_quarantine(
            candidate, "reference_answer", Reason.WRONG_ANSWER,
            f"solution says {solution.answer}, expected {candidate.expected_answer}", solution.text)
        return out
    if cfg.verify:
        extra = {"temperature": cfg.verify_temperature} if cfg.verify_temperature is not None else None
        verifier_client = MeteredChatClient(make_client(), out.usage, extra_create_args=extra)
        try:
            check = await _solve_once(verifier_client, "verifier", prompts.VERIFIER_SYSTEM, candidate.question)
        except Exception as e:
            rejected = verifier_client.raise_unless_rejected(e)
            out.quarantined = candidate_quarantine(candidate, None, Reason.TEACHER_ERROR, str(rejected))
            return out
        if not is_correct(check, solution.answer):
            out.quarantined = candidate_quarantine(
                candidate, "reference_answer", Reason.DISAGREEING_SOLVES,
                f"first solve says {solution.answer}, second solve does not agree",
                f"FIRST:\n{solution.text}\n\nSECOND:\n{check}")
            return out
    out.solution = solution
    return out


def problem_row(c: Candidate, solution: Solution | None, teacher_model: str | None) -> dict:
    """The problem-schema row for a candidate that passed (``solution=None``: its trusted one)."""
    seed_prov = c.seed.get("provenance") or {}
    if c.flow in (Flow.SEED, Flow.EXISTING):  # the problem keeps its identity; only the solution may change
        prov = empty_provenance(**seed_prov)
        if solution is not None:
            prov.update(teacher_model=teacher_model, prompt_version=prompts.PROMPT_VERSION)
        return {**c.seed,
                "reference_solution": solution.text if solution else c.solution,
                "reference_answer": solution.answer if solution else c.seed["reference_answer"],
                "provenance": prov}
    assert solution is not None, "generated problems always carry a teacher solution"
    return {
        "id": c.id,
        "question": c.question,
        "reference_solution": solution.text,
        "reference_answer": solution.answer,
        "source": GENERATED_SOURCE,
        "provenance": empty_provenance(origin=seed_prov.get("origin"), seed_id=c.seed["id"], flow=c.flow,
                                       round=c.round, teacher_model=teacher_model,
                                       prompt_version=prompts.PROMPT_VERSION),
    }
