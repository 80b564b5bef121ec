"""The three AgentInstruct flows against AutoGen's replay client (scripted replies) and, for
teacher failures, against a scripted OpenAI-compatible endpoint through the real teacher client."""

from __future__ import annotations

import asyncio
import json

import pytest
from autogen_ext.models.replay import ReplayChatCompletionClient

from orca_math.common.contract import Flow, Reason
from orca_math.common.records import to_table
from orca_math.common.schema import PROBLEM, QUARANTINE
from orca_math.generate import prompts
from orca_math.generate.backend import AgentInstructBackend, TeacherSolveBackend, build_backend
from orca_math.generate.clients import autogen_model_client
from orca_math.generate.config import GenerateConfig, SolveConfig, SolveStageConfig, SuggesterEditorConfig
from orca_math.generate.flows import (
    Candidate,
    ask_me_anything,
    problem_row,
    solve_and_verify,
    suggester_editor,
)
from orca_math.teacher import TeacherConfig, TeacherError
from orca_math.teacher.scripted import Fault, ScriptedEndpoint
from orca_math.world.teacher import ProceduralBackend, ProceduralSolveBackend

SEED_ROW = {
    "id": "seed-1",
    "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                "How many clips did Natalia sell altogether in April and May?",
    "reference_solution": "48/2 = 24\n48+24 = 72\n#### 72",
    "reference_answer": "72",
    "source": "gsm8k-train",
    "provenance": {"origin": "train.jsonl:0", "seed_id": None, "flow": "seed", "round": None,
                   "teacher_model": None, "prompt_version": None},
}

AMA_REPLY = """STATEMENT: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. Natalia sold 72 clips altogether.
QUESTION 1: Natalia sold clips to some of her friends in April, and then she sold half as many clips in May. She sold 72 clips altogether. How many clips did she sell in April?
ANSWER 1: 48
QUESTION 2: Natalia sold 48 clips in April and some clips in May, 72 clips altogether. How many clips did she sell in May?
ANSWER 2: twenty-four
QUESTION 3: Natalia sold 48 clips in April and half as many in May. How many clips did she sell altogether?
"""


def replay(*replies):
    """A factory handing out one shared replay client (flows call it once per agent group)."""
    client = ReplayChatCompletionClient(list(replies))
    return client, (lambda: client)


def run(coro):
    return asyncio.run(coro)


def reasons(rows):
    return [r["reason"] for r in rows]


def test_ask_me_anything_turns_good_pairs_into_candidates_and_quarantines_the_rest():
    client, make = replay(AMA_REPLY)
    out = run(ask_me_anything(SEED_ROW, make))
    assert [(c.flow, c.round, c.index, c.expected_answer) for c in out.candidates] == [(Flow.ASK_ME_ANYTHING, 1, 1, "48")]
    assert out.candidates[0].question.endswith("How many clips did she sell in April?")
    assert reasons(out.quarantined) == [Reason.PARSE_FAILURE, Reason.PARSE_FAILURE]
    assert [q["field"] for q in out.quarantined] == ["answer", "answer"]
    assert json.loads(out.quarantined[0]["raw"])["seed_id"] == "seed-1"
    # The agent asked with the seed and its answer, under the versioned system prompt.
    sent = client.create_calls[0]["messages"]
    assert sent[0].content == prompts.ASK_ME_ANYTHING_SYSTEM
    assert "Answer: 72" in sent[1].content
    assert out.usage.requests == 1 and out.usage.completion_tokens > 0
    to_table(out.quarantined, QUARANTINE)  # rows fit the quarantine schema


def test_ask_me_anything_nonsense_reply_is_one_parse_failure():
    _, make = replay("clips clips clips 48 the the")
    out = run(ask_me_anything(SEED_ROW, make))
    assert out.candidates == []
    assert reasons(out.quarantined) == [Reason.PARSE_FAILURE]
    assert out.quarantined[0]["field"] == "statement"


def test_suggester_editor_runs_rounds_on_the_previous_rounds_problem():
    client, make = replay("1. add a price per clip\n2. ask for money", "PROBLEM: Harder problem one?",
                          "1. add a third month", "PROBLEM: Harder problem two?")
    out = run(suggester_editor(SEED_ROW, make, SuggesterEditorConfig(rounds=2)))
    assert [(c.question, c.round) for c in out.candidates] == [("Harder problem two?", 2)]
    assert out.quarantined == []
    # Round 2 starts from round 1's problem; the Editor saw the Suggester's ideas.
    round2_suggester = client.create_calls[2]["messages"]
    assert round2_suggester[0].content == prompts.SUGGESTER_SYSTEM
    assert "Harder problem one?" in round2_suggester[-1].content
    round1_editor = client.create_calls[1]["messages"]
    assert round1_editor[0].content == prompts.EDITOR_SYSTEM
    assert any("add a price per clip" in m.content for m in round1_editor)
    assert out.usage.requests == 4


def test_suggester_editor_keep_all_rounds_keeps_every_rounds_problem():
    _, make = replay("1. a", "PROBLEM: one?", "1. b", "PROBLEM: two?")
    out = run(suggester_editor(SEED_ROW, make, SuggesterEditorConfig(rounds=2, keep_all_rounds=True)))
    assert [(c.question, c.round, c.index) for c in out.candidates] == [("one?", 1, 0), ("two?", 2, 1)]


def test_suggester_editor_malformed_editor_stops_the_flow_and_keeps_the_last_good_round():
    client, make = replay("1. a", "PROBLEM: one?", "1. b", "Here you go: a much harder problem.")
    out = run(suggester_editor(SEED_ROW, make, SuggesterEditorConfig(rounds=3)))
    assert [(c.question, c.round) for c in out.candidates] == [("one?", 1)]
    assert reasons(out.quarantined) == [Reason.PARSE_FAILURE]
    raw = json.loads(out.quarantined[0]["raw"])
    assert raw["round"] == 2 and "EDITOR:" in raw["reply"]
    assert len(client.create_calls) == 4  # round 3 never ran


def test_suggester_editor_malformed_suggester_is_a_parse_failure_without_asking_the_editor():
    client, make = replay("make it harder", "PROBLEM: one?")
    out = run(suggester_editor(SEED_ROW, make, SuggesterEditorConfig(rounds=1)))
    assert out.candidates == [] and len(client.create_calls) == 1
    assert [(q["reason"], q["field"]) for q in out.quarantined] == [(Reason.PARSE_FAILURE, "suggestions")]


def candidate(question="How many?", expected=None, flow=Flow.ASK_ME_ANYTHING):
    return Candidate(SEED_ROW, question, flow, 1, 1, expected_answer=expected)


@pytest.mark.parametrize("replies, cfg, reason", [
    (["48/2 = 24\n#### 24", "half of 48 is 24\n#### 24.0"], SolveConfig(), None),
    (["UNSOLVABLE"], SolveConfig(), Reason.UNSOLVABLE),
    (["it is 24"], SolveConfig(), Reason.PARSE_FAILURE),
    (["x" * 1800 + "\n#### 24"], SolveConfig(), Reason.TOO_LONG),
    (["#### 25"], SolveConfig(), Reason.WRONG_ANSWER),
    (["#### 24", "#### 23"], SolveConfig(), Reason.DISAGREEING_SOLVES),
    (["#### 24", "I cannot tell"], SolveConfig(), Reason.DISAGREEING_SOLVES),
    (["#### 24"], SolveConfig(verify=False), None),
    (["#### 25"], SolveConfig(check_expected_answer=False, verify=False), None),
])
def test_solve_and_verify_keeps_only_checked_solutions(replies, cfg, reason):
    client, make = replay(*replies)
    out = run(solve_and_verify(candidate(expected="24"), make, cfg))
    assert len(client.create_calls) == len(replies)  # cheaper checks stop before the second solve
    if reason is None:
        assert out.quarantined is None and out.solution.text.endswith("#### " + out.solution.answer)
    else:
        assert out.solution is None and out.quarantined["reason"] == reason
    assert out.usage.requests == len(replies)


def test_second_solve_uses_the_verifier_prompt():
    client, make = replay("#### 24", "#### 24")
    run(solve_and_verify(candidate(), make))
    systems = [call["messages"][0].content for call in client.create_calls]
    assert systems == [prompts.SOLVER_SYSTEM, prompts.VERIFIER_SYSTEM]


def test_problem_rows_carry_provenance_and_fit_the_schema():
    client, make = replay("#### 24", "#### 24")
    c = candidate(expected="24")
    solved = run(solve_and_verify(c, make))
    row = problem_row(c, solved.solution, "teacher-x")
    assert row["provenance"] == {"origin": "train.jsonl:0", "seed_id": "seed-1", "flow": Flow.ASK_ME_ANYTHING,
                                 "round": 1, "teacher_model": "teacher-x", "prompt_version": prompts.PROMPT_VERSION}
    assert row["reference_answer"] == "24" and row["source"] == "agent-instruct"
    seed = Candidate(SEED_ROW, SEED_ROW["question"], Flow.SEED, 0, 0, solution=SEED_ROW["reference_solution"])
    seed_row = problem_row(seed, None, "teacher-x")
    assert seed_row["id"] == "seed-1" and seed_row["provenance"]["teacher_model"] is None
    to_table([row, seed_row], PROBLEM)


# --- Teacher failures, through the real teacher client on a scripted endpoint ----------------

def endpoint_client(ep: ScriptedEndpoint, max_retries: int = 0):
    """The production client stack on ``ep``; build it inside the event loop that uses it."""
    cfg = TeacherConfig(base_url=ep.base_url, model="scripted", api_key_env=None, max_retries=max_retries,
                        max_in_flight=4)
    shared = autogen_model_client(cfg)
    return lambda: shared


def test_agents_share_the_teacher_clients_in_flight_bound_and_usage():
    async def scenario(ep):
        cfg = TeacherConfig(base_url=ep.base_url, model="scripted", api_key_env=None, max_in_flight=3)
        shared = autogen_model_client(cfg, stage="solve")
        results = await asyncio.gather(*(solve_and_verify(candidate(), lambda: shared) for _ in range(6)))
        return shared, results

    with ScriptedEndpoint(reply=lambda body: "#### 24", delay_s=0.1) as ep:
        shared, results = run(scenario(ep))
    assert ep.max_concurrent == 3 and ep.hits == 12  # two solves per candidate, never more than 3 at once
    assert sum(r.usage.requests for r in results) == shared.teacher.usage()["solve"].requests == 12


def test_rejected_request_quarantines_as_teacher_error():
    async def scenario(ep):
        make = endpoint_client(ep)
        ep.push(Fault.status(400))
        ama = await ask_me_anything(SEED_ROW, make)
        ep.push(Fault.status(400))
        se = await suggester_editor(SEED_ROW, make, SuggesterEditorConfig(rounds=2))
        ep.push(Fault.status(422))
        solved = await solve_and_verify(candidate(), make)
        return ama, se, solved

    with ScriptedEndpoint(reply=lambda body: "#### 24") as ep:
        ama, se, solved = run(scenario(ep))
    assert reasons(ama.quarantined) == [Reason.TEACHER_ERROR] and ama.usage.rejected_requests == 1
    assert reasons(se.quarantined) == [Reason.TEACHER_ERROR] and se.candidates == []
    assert solved.quarantined["reason"] == Reason.TEACHER_ERROR


@pytest.mark.parametrize("flow", ["ask_me_anything", "suggester_editor"])
def test_endpoint_down_fails_the_flow_with_the_original_error(flow):
    async def scenario(ep):
        make = endpoint_client(ep)
        ep.push(Fault.status(503))
        if flow == "ask_me_anything":
            await ask_me_anything(SEED_ROW, make)
        else:
            await suggester_editor(SEED_ROW, make, SuggesterEditorConfig(rounds=1))

    with ScriptedEndpoint(reply=lambda body: "#### 24") as ep:
        with pytest.raises(TeacherError) as err:
            run(scenario(ep))
    assert err.value.kind == "server_error" and err.value.status == 503


def test_backend_accounts_for_every_candidate_of_a_seed():
    """Ask Me Anything + Suggester/Editor + solving on one seed: counts add up per flow."""
    def reply(body):
        system = body["messages"][0]["content"]
        if system == prompts.ASK_ME_ANYTHING_SYSTEM:
            # Question 2 repeats the seed: an exact duplicate, quarantined without a solve.
            return (f"STATEMENT: s\nQUESTION 1: New question about clips?\nANSWER 1: 48\n"
                    f"QUESTION 2: {SEED_ROW['question']}\nANSWER 2: 72\nQUESTION 3: q?\nANSWER 3: lots")
        if system == prompts.SUGGESTER_SYSTEM:
            return "1. harder"
        if system == prompts.EDITOR_SYSTEM:
            return "PROBLEM: A harder clips question?"
        return "#### 48"

    async def scenario(ep):
        cfg = GenerateConfig(teacher=TeacherConfig(base_url=ep.base_url, model="scripted", api_key_env=None))
        return await AgentInstructBackend(cfg, endpoint_client(ep)).expand(SEED_ROW)

    with ScriptedEndpoint(reply=reply) as ep:
        out = run(scenario(ep))
    by_flow = {f: dict(c) for f, c in out.by_flow.items()}
    assert by_flow == {
        Flow.SEED: {"candidates": 1, "kept": 1},
        Flow.ASK_ME_ANYTHING: {"candidates": 3, "kept": 1, "parse failure": 1, "duplicate": 1},
        Flow.SUGGESTER_EDITOR: {"candidates": 1, "kept": 1},
    }
    assert out.candidates == len(out.problems) + len(out.quarantined) == 5
    assert out.usage[Flow.ASK_ME_ANYTHING].requests == 1
    assert out.usage[Flow.SUGGESTER_EDITOR].requests == 4
    assert out.usage["solve_and_verify"].requests == 4  # two candidates, two solves each; the seed has a solution
    assert ep.hits == 9


def test_a_seed_without_solution_gets_the_teachers_only_if_it_matches_gold():
    seed = {**SEED_ROW, "reference_solution": None}

    async def scenario(ep):
        cfg = GenerateConfig(teacher=TeacherConfig(base_url=ep.base_url, model="scripted", api_key_env=None),
                             ask_me_anything={"enabled": False}, suggester_editor={"enabled": False})
        backend = AgentInstructBackend(cfg, endpoint_client(ep))
        right = await backend.expand(seed)
        ep.reply = lambda body: "24 + 48 = 73\n#### 73"
        wrong = await backend.expand(seed)
        return right, wrong

    with ScriptedEndpoint(reply=lambda body: "48 + 24 = 72\n#### 72") as ep:
        right, wrong = run(scenario(ep))
    assert [p["reference_solution"] for p in right.problems] == ["48 + 24 = 72\n#### 72"]
    assert right.problems[0]["id"] == "seed-1" and right.problems[0]["provenance"]["teacher_model"] == "scripted"
    assert wrong.problems == [] and reasons(wrong.quarantined) == [Reason.WRONG_ANSWER]


def test_the_backend_is_chosen_by_teacher_kind_and_stage():
    procedural = {"teacher": {"kind": "procedural"}}
    assert isinstance(build_backend(GenerateConfig()), AgentInstructBackend)
    assert isinstance(build_backend(SolveStageConfig()), TeacherSolveBackend)
    assert isinstance(build_backend(GenerateConfig.model_validate(procedural)), ProceduralBackend)
    assert isinstance(build_backend(SolveStageConfig.model_validate(procedural)), ProceduralSolveBackend)
