"""The symbolic teacher: Ask Me Anything, Suggester+Editor and Solve on world programs.

Answers are re-done here from each solution's text; "harder" is measured here from the text
too (arithmetic lines, largest intermediate result, sentences), not only by the teacher's own
``difficulty``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re

import pytest
from world_checks import EQUATION, recompute  # tests/ is on sys.path

from orca_math.common.contract import Flow, Reason
from orca_math.common.records import to_table
from orca_math.common.schema import PROBLEM, stable_id
from orca_math.world.config import WorldConfig
from orca_math.world.core import (
    add_distractor,
    append_random_step,
    find_leaks,
    generate_problems,
    is_heldout,
    problem_row,
    program_from_row,
)
from orca_math.world.program import Program, Step
from orca_math.world.render import render_question
from orca_math.world.solve import expected_answer
from orca_math.world.steps import evaluate
from orca_math.world.teacher import (
    PROMPT_VERSION,
    FlowSettings,
    ProceduralTeacherConfig,
    Suggestion,
    apply_suggestions,
    ask_me_anything,
    expand_seed,
    is_harder,
    solve_problem,
    teach_seeds,
)

TEACHER = ProceduralTeacherConfig()
ALL_ROUNDS = FlowSettings(keep_all_rounds=True)


@pytest.fixture(scope="module")
def seeds():
    return generate_problems("train", 150, WorldConfig(min_steps=2, distractor_rate=0.2)).rows


def apples_seed() -> dict:
    program = Program((
        Step("have", {"n": 12}, {"owner": "Mia", "item": "apple"}),
        Step("gain", {"b": 5}, {"giver": "aunt"}),
        Step("times", {"k": 2}, {"other": "Leo"}),
        Step("together"),
    ))
    return problem_row(program, "world-train")


def text_difficulty(row: dict) -> tuple[int, int, int]:
    """(arithmetic lines, largest result, sentences), read from the text alone."""
    results = [int(r) for _, r in EQUATION.findall(row["reference_solution"])]
    return len(results), max(results), len(re.findall(r"[.?](?:\s|$)", row["question"]))


def strictly_greater(a: tuple, b: tuple) -> bool:
    return all(x >= y for x, y in zip(a, b)) and a != b


def rows_of(result, flow: str) -> list[dict]:
    return [r for r in result.problems if r["provenance"]["flow"] == flow]


# ---------------------------------------------------------------------------- Ask Me Anything


def test_ask_me_anything_asks_for_each_intermediate_quantity_of_a_hand_written_seed():
    seed = apples_seed()
    out = expand_seed(seed, TEACHER, FlowSettings(suggester_editor_rounds=0))
    assert out.by_flow[Flow.ASK_ME_ANYTHING]["candidates"] == 2  # 12 + 5 = 17 and 2 * 17 = 34 come before 51
    questions = {q: a for q, a in [(r["question"], r["reference_answer"]) for r in out.problems]}
    expected = {
        "Mia has 12 apples. She then gets 5 more apples. How many apples does Mia have now?": "17",
        "Mia has 12 apples. She then gets 5 more apples. Leo has twice as many apples as Mia has now. "
        "How many apples does Leo have?": "34",
    }
    # Either may be held out (then it is quarantined as contaminated), never wrong.
    assert questions.items() <= expected.items()
    assert len(questions) + out.by_flow[Flow.ASK_ME_ANYTHING][Reason.CONTAMINATED] == 2


def test_ask_me_anything_makes_one_correct_problem_per_intermediate_quantity(seeds):
    for seed in seeds:
        program = program_from_row(seed)
        values = evaluate(program)
        out = expand_seed(seed, TEACHER, FlowSettings(suggester_editor_rounds=0))
        made = ask_me_anything(program)
        # One per step before the last that computes something (stated amounts are not asked for).
        assert [i for i, _ in made] == [i for i in range(len(values) - 1) if i > 0 or program.steps[0].kind not in ("have", "wallet")]
        counts = out.by_flow.get(Flow.ASK_ME_ANYTHING, {})
        assert counts.get("candidates", 0) == len(made)
        for row in rows_of(out, Flow.ASK_ME_ANYTHING):
            asked = program_from_row(row)
            step = len(asked.steps) - 1
            assert asked.steps == program.steps[: step + 1]
            assert recompute(row["reference_solution"]) == values[step] == int(row["reference_answer"])
            assert row["question"] != seed["question"]


def test_a_one_step_seed_has_nothing_to_ask():
    row = problem_row(Program((Step("buy", {"n": 3, "p": 4}, {"owner": "Ava", "item": "pie", "store": "shop"}),)), "world-train")
    out = expand_seed(row, TEACHER, FlowSettings(suggester_editor_rounds=0))
    assert out.problems == [] and out.quarantined == [] and out.candidates == 0


# ------------------------------------------------------------------------- Suggester + Editor


def test_every_suggester_editor_round_is_strictly_harder_than_the_one_before_and_still_correct(seeds):
    rounds_seen = set()
    for seed in seeds:
        out = expand_seed(seed, TEACHER, ALL_ROUNDS)
        previous_row, previous_program = seed, program_from_row(seed)
        for row in sorted(rows_of(out, Flow.SUGGESTER_EDITOR), key=lambda r: r["provenance"]["round"]):
            program = program_from_row(row)
            rounds_seen.add(row["provenance"]["round"])
            assert recompute(row["reference_solution"]) == int(row["reference_answer"]) == expected_answer(program)
            assert strictly_greater(text_difficulty(row), text_difficulty(previous_row)), (previous_row["question"], row["question"])
            assert is_harder(program, previous_program)
            # Built on the previous round: its steps come first, in the same order.
            assert [s.kind for s in program.steps[: len(previous_program.steps)]] == [s.kind for s in previous_program.steps]
            previous_row, previous_program = row, program
    assert rounds_seen == {1, 2}


def test_only_the_last_round_is_kept_by_default_as_in_the_paper(seeds):
    out = expand_seed(seeds[0], TEACHER, FlowSettings())
    assert [r["provenance"]["round"] for r in rows_of(out, Flow.SUGGESTER_EDITOR)] in ([2], [])


def test_add_a_step_asks_one_step_further():
    seed = program_from_row(apples_seed())
    extended = append_random_step(random.Random(0), seed, 10000)
    edited = apply_suggestions(seed, [Suggestion("add_step", "", extended=extended)], TEACHER)
    assert len(edited.steps) == len(seed.steps) + 1 and evaluate(edited)[:-1] == evaluate(seed)


def test_larger_numbers_multiply_every_quantity():
    seed = program_from_row(apples_seed())
    edited = apply_suggestions(seed, [Suggestion("larger_numbers", "", factor=3)], TEACHER)
    assert evaluate(edited) == [3 * v for v in evaluate(seed)] and is_harder(edited, seed)
    assert "36 apples" in render_question(edited)


def test_a_distractor_adds_a_sentence_but_not_to_the_answer():
    seed = program_from_row(apples_seed())
    edited = apply_suggestions(seed, [Suggestion("distractor", "", with_distractor=add_distractor(random.Random(0), seed))], TEACHER)
    assert evaluate(edited) == evaluate(seed) and is_harder(edited, seed)
    assert render_question(edited).count(".") == render_question(seed).count(".") + 1


def test_the_editor_shrinks_a_scale_factor_that_no_longer_fits_after_a_new_step():
    seed = program_from_row(apples_seed())  # largest value 51
    cfg = ProceduralTeacherConfig(max_value=160)
    extended = Program(seed.steps + (Step("sell", {"p": 2}),), ())  # 51 * 2 = 102
    edited = apply_suggestions(seed, [Suggestion("larger_numbers", "", factor=3), Suggestion("add_step", "", extended=extended)], cfg)
    assert max(evaluate(edited)) <= 160 and evaluate(edited)[-1] == 102  # factor 3 (306) did not fit; none did


def test_a_suggester_with_nothing_left_to_suggest_is_quarantined_as_unsolvable():
    program = Program((Step("buy", {"n": 3, "p": 8}, {"owner": "Ava", "item": "pie", "store": "shop"}),))
    while (more := add_distractor(random.Random(len(program.distractors)), program)) is not None:
        program = more  # every distractor kind used
    cfg = ProceduralTeacherConfig(max_steps=1, max_value=24)  # no more steps, no room to scale
    out = expand_seed(problem_row(program, "world-train"), cfg, FlowSettings())
    assert [q["reason"] for q in out.quarantined] == [Reason.UNSOLVABLE]
    assert out.by_flow[Flow.SUGGESTER_EDITOR] == {"candidates": 1, Reason.UNSOLVABLE: 1}


# ------------------------------------------------------------------- rows, counts, contracts


def test_generated_rows_carry_the_flow_round_teacher_and_prompt_version(seeds):
    out = expand_seed(seeds[3], TEACHER, ALL_ROUNDS)
    assert out.problems
    for row in out.problems:
        prov = row["provenance"]
        assert prov["flow"] in (Flow.ASK_ME_ANYTHING, Flow.SUGGESTER_EDITOR)
        assert prov["round"] >= 1 and prov["seed_id"] == seeds[3]["id"]
        assert prov["teacher_model"] == "procedural" and prov["prompt_version"] == PROMPT_VERSION
        assert row["source"] == "agent-instruct"
        assert render_question(program_from_row(row)) == row["question"]
    to_table(out.problems, PROBLEM)  # fits the schema


def test_every_candidate_is_kept_or_quarantined_and_per_flow_counts_match(seeds):
    out, duplicates = teach_seeds(seeds, TEACHER, ALL_ROUNDS)
    assert out.candidates == len(out.problems) + len(out.quarantined)
    for flow in (Flow.ASK_ME_ANYTHING, Flow.SUGGESTER_EDITOR):
        assert out.by_flow[flow]["kept"] == len(rows_of(out, flow))
        rejected = sum(v for k, v in out.by_flow[flow].items() if k not in ("candidates", "kept"))
        assert out.by_flow[flow]["candidates"] == out.by_flow[flow]["kept"] + rejected
    assert len({r["id"] for r in out.problems}) == len(out.problems)


def test_no_generated_problem_is_a_held_out_question(seeds):
    out, _ = teach_seeds(seeds, TEACHER, ALL_ROUNDS)
    test_questions = [r["question"] for r in generate_problems("test", 300, WorldConfig()).rows]
    assert find_leaks([r["question"] for r in out.problems], test_questions) == []
    assert not any(is_heldout(r["question"]) for r in out.problems)
    contaminated = [json.loads(q["raw"]) for q in out.quarantined if q["reason"] == Reason.CONTAMINATED]
    assert contaminated and all(is_heldout(c["question"]) for c in contaminated)


def test_a_seed_without_a_program_is_one_parse_failure():
    gsm8k_like = {"id": "g1", "question": "Natalia sold clips to 48 of her friends...", "reference_answer": "72",
                  "source": "gsm8k-train", "provenance": {"origin": "gsm8k/train.jsonl:0", "flow": "seed"}}
    out = expand_seed(gsm8k_like, TEACHER, FlowSettings())
    assert out.problems == [] and [q["reason"] for q in out.quarantined] == [Reason.PARSE_FAILURE]
    assert out.candidates == 1


def test_the_teacher_is_deterministic_and_independent_of_seed_order(seeds):
    a, _ = teach_seeds(seeds[:40], TEACHER, ALL_ROUNDS)
    b, _ = teach_seeds(list(reversed(seeds[:40])), TEACHER, ALL_ROUNDS)
    assert sorted(r["id"] for r in a.problems) == sorted(r["id"] for r in b.problems)
    other, _ = teach_seeds(seeds[:40], ProceduralTeacherConfig(seed=1), ALL_ROUNDS)
    assert {r["id"] for r in other.problems} != {r["id"] for r in a.problems}


def test_seeds_can_be_kept_alongside_what_they_produced(seeds):
    out = expand_seed(seeds[0], TEACHER, FlowSettings(include_seeds=True))
    assert out.by_flow["seed"] == {"candidates": 1, "kept": 1}
    assert out.problems[0]["id"] == seeds[0]["id"]


def test_solve_keeps_a_world_problem_with_its_answer_and_rejects_a_wrong_reference(seeds):
    kept = solve_problem({**seeds[0], "reference_solution": None}, TEACHER)
    assert len(kept.problems) == 1 and kept.problems[0]["reference_solution"] == seeds[0]["reference_solution"]
    assert kept.problems[0]["provenance"]["teacher_model"] == "procedural"
    wrong = solve_problem({**seeds[0], "reference_answer": str(int(seeds[0]["reference_answer"]) + 1)}, TEACHER)
    assert [q["reason"] for q in wrong.quarantined] == [Reason.WRONG_ANSWER]


def test_generate_with_the_demo_config_runs_the_procedural_teacher_with_the_sections_settings():
    from orca_math.cli import build_parser
    from orca_math.common.config import config_from_args, load_stage_config
    from orca_math.generate.backend import build_backend
    from orca_math.generate.config import GenerateConfig
    from orca_math.world.teacher import ProceduralBackend

    args = build_parser().parse_args(["generate", "--config", "demo", "--seeds", "s.parquet", "--out", "o",
                                      "--set", "generate.suggester_editor.keep_all_rounds=true"])
    cfg = load_stage_config(GenerateConfig, config_from_args(args), "generate")
    assert isinstance(cfg.teacher, ProceduralTeacherConfig) and cfg.teacher.max_value == 40  # the demo's teacher
    assert isinstance(build_backend(cfg), ProceduralBackend) and cfg.suggester_editor.keep_all_rounds


# -------------------------------------------------- the seam with the LLM pipeline (orca_math/generate)


def test_generated_rows_take_their_ids_from_seed_flow_round_index_and_question():
    seed = apples_seed()
    row = expand_seed(seed, TEACHER, FlowSettings(suggester_editor_rounds=0)).problems[0]
    prov = row["provenance"]
    assert row["id"] == stable_id(seed["id"], prov["flow"], prov["round"], 2 if row["reference_answer"] == "34" else 1,
                                  row["question"])


def test_a_teacher_section_selects_the_procedural_or_the_endpoint_teacher():
    from pydantic import BaseModel

    from orca_math.teacher.config import AnyTeacherConfig, TeacherConfig

    class Section(BaseModel):  # what `generate.teacher` is: TeacherConfig | ProceduralTeacherConfig by `kind`
        teacher: AnyTeacherConfig = TeacherConfig()

    assert isinstance(Section.model_validate({"teacher": {"kind": "procedural"}}).teacher, ProceduralTeacherConfig)
    assert isinstance(Section.model_validate({"teacher": {"base_url": "http://x/v1"}}).teacher, TeacherConfig)
    assert isinstance(Section.model_validate({"teacher": {}}).teacher, TeacherConfig)


def test_an_endpoint_teacher_may_name_its_kind():
    from pydantic import BaseModel, ValidationError

    from orca_math.teacher.config import AnyTeacherConfig, TeacherConfig

    class Section(BaseModel):
        teacher: AnyTeacherConfig = TeacherConfig()

    named = Section.model_validate({"teacher": {"kind": "endpoint", "model": "m"}}).teacher
    assert named == TeacherConfig(model="m") and named.kind == "endpoint"
    with pytest.raises(ValidationError, match="procedurall"):
        Section.model_validate({"teacher": {"kind": "procedurall"}})


def test_config_files_name_their_teacher_kind():
    from orca_math.teacher.config import TeacherConfig, load_teacher_config

    assert isinstance(load_teacher_config("demo"), ProceduralTeacherConfig)
    assert isinstance(load_teacher_config("tiny"), TeacherConfig)


def test_the_procedural_backend_runs_in_the_generate_pipelines_batch_runner(seeds):
    pipeline = pytest.importorskip("orca_math.generate.stage")
    from orca_math.generate.config import GenerateConfig
    from orca_math.world.teacher import ProceduralBackend

    cfg = GenerateConfig.model_construct(teacher=TEACHER)
    backend = ProceduralBackend(cfg)
    total = asyncio.run(pipeline.run_seed_batch(backend, seeds[:10]))
    assert total.candidates == len(total.problems) + len(total.quarantined) > 10
    assert {"seed", Flow.ASK_ME_ANYTHING, Flow.SUGGESTER_EDITOR} <= set(total.by_flow)  # include_seeds defaults on there
    to_table(total.problems, PROBLEM)
