"""The procedural world: programs, their text, their solutions, and train/test sets that never meet.

Answers are never taken on trust from the code under test: every solution's arithmetic is
re-done here from the text (a regex and Python's own arithmetic), and hand-written programs
are checked against answers worked out by hand.
"""

from __future__ import annotations

import argparse
import random
import re
from collections import Counter, defaultdict

import pytest
from world_checks import recompute  # tests/ is on sys.path

from orca_math.common.config import ConfigError, load_stage_config
from orca_math.common.records import read_parquet, write_parquet
from orca_math.common.schema import PROBLEM
from orca_math.judge.answers import is_correct
from orca_math.world.config import WorldConfig
from orca_math.world.core import (
    SPLIT_OFFSETS,
    add_distractor,
    find_leaks,
    generate_problems,
    is_heldout,
    program_from_row,
    program_seed,
    random_program,
    scale_numbers,
    words_and_numbers,
)
from orca_math.world.program import Program, ProgramError, Step
from orca_math.world.render import render_question, render_solution
from orca_math.world.solve import solution_errors
from orca_math.world.steps import KINDS, arithmetic_steps, evaluate, states


@pytest.fixture(scope="module")
def train_rows():
    return generate_problems("train", 1500, WorldConfig(distractor_rate=0.3)).rows


@pytest.fixture(scope="module")
def test_rows():
    return generate_problems("test", 300, WorldConfig(distractor_rate=0.3)).rows


def test_every_solution_redone_from_its_text_reaches_the_reference_answer(train_rows):
    for r in train_rows:
        answer = recompute(r["reference_solution"])
        assert r["reference_solution"].endswith(f"#### {answer}")
        assert r["reference_answer"] == str(answer) and answer >= 0
        assert is_correct(r["reference_solution"], r["reference_answer"])


def test_hand_written_counting_program_reads_and_solves_as_worked_out_by_hand():
    program = Program((
        Step("have", {"n": 12}, {"owner": "Mia", "item": "apple"}),
        Step("gain", {"b": 5}, {"giver": "aunt"}),
        Step("times", {"k": 2}, {"other": "Leo"}),
        Step("together"),
    ))
    assert render_question(program) == (
        "Mia has 12 apples. She then gets 5 more apples. Leo has twice as many apples as Mia has now. "
        "How many apples do Mia and Leo have together?"
    )
    assert render_solution(program) == (
        "Mia has 12 + 5 = 17 apples now.\nLeo has 2 * 17 = 34 apples.\nTogether they have 17 + 34 = 51 apples.\n#### 51"
    )
    assert evaluate(program) == [12, 17, 34, 51]


def test_hand_written_shopping_program_with_discount_and_change():
    program = Program((
        Step("buy", {"n": 3, "p": 4}, {"owner": "Ava", "item": "pie", "store": "bakery"}),
        Step("percent_off", {"p": 25}, {"store": "bakery"}),
        Step("change", {"bill": 20}),
    ))
    assert render_question(program) == (
        "Ava buys 3 pies that cost $4 each. The bakery gives her a 25% discount. She pays with a $20 bill. "
        "How much change does Ava get?"
    )
    assert render_solution(program) == (
        "Ava pays 3 * 4 = 12 dollars.\nThe discount is 12 * 25 / 100 = 3 dollars.\nSo Ava pays 12 - 3 = 9 dollars.\n"
        "Ava gets 20 - 9 = 11 dollars in change.\n#### 11"
    )


def test_division_that_is_not_exact_is_refused():
    program = Program((Step("have", {"n": 13}, {"owner": "Mia", "item": "apple"}),
                       Step("share", {"k": 4}, {"group": "friend", "groups": "friends"})))
    with pytest.raises(ProgramError, match="not a non-negative whole number"):
        evaluate(program)


def test_a_step_that_cannot_follow_is_refused():
    program = Program((Step("wallet", {"n": 20}, {"owner": "Mia"}), Step("pack", {"k": 2})))
    with pytest.raises(ProgramError, match="cannot follow"):
        states(program)


def test_pronouns_never_point_at_two_people():
    program = Program((
        Step("earn_rate", {"r": 32, "h": 8}, {"owner": "Jack"}),
        Step("fraction", {"k": 4}, {"other": "Hugo"}, phrasing=1),
        Step("earn_more", {"b": 60}, {"giver": "uncle"}, phrasing=2),
        Step("spend", {"b": 4}, {"purchase": "a kite"}),
    ))
    assert render_question(program) == (
        "Jack earns $32 an hour and works 8 hours. Hugo has a quarter the amount of money that Jack has. "
        "Hugo's uncle gives him $60. Hugo spends $4 on a kite. How much money does Hugo have left?"
    )
    each = Program((Step("buy", {"n": 3, "p": 4}, {"owner": "Ava", "item": "pie", "store": "shop"}),
                    Step("split_bill", {"k": 2}, {"group": "friend", "groups": "friends"}),
                    Step("percent_off", {"p": 50}, {"store": "shop"}, phrasing=0)))  # "gives her": no "her" here
    with pytest.raises(ProgramError, match="needs a person"):
        render_question(each)


def test_drawn_programs_have_one_to_four_steps_and_small_whole_values():
    cfg = WorldConfig()
    steps = Counter()
    for i in range(400):
        p = random_program(random.Random(i), cfg)
        steps[arithmetic_steps(p)] += 1
        assert all(2 <= v <= cfg.max_value for v in evaluate(p)[1:])
    assert set(steps) == {1, 2, 3, 4}


def test_every_phrasing_of_every_kind_is_used(train_rows):
    used_sentences, used_questions = defaultdict(set), defaultdict(set)
    for r in train_rows:
        p = program_from_row(r)
        sts = states(p)
        for i, s in enumerate(p.steps):
            unit = sts[i - 1].unit if i else None
            used_sentences[(s.kind, unit)].add(s.phrasing)
        used_questions[p.steps[-1].kind].add(p.steps[-1].asking)
    for (kind, unit), used in used_sentences.items():
        before = None if unit is None else states(Program((Step("have" if unit == "count" else "wallet",
                                                                 {"n": 4}, {"owner": "Mia", "item": "apple"}),)))[0]
        assert used == set(range(len(KINDS[kind].sentence_templates(before)))), (kind, unit, used)
    assert {k for k, _ in used_sentences} == set(KINDS)
    for kind, used in used_questions.items():
        assert len(used) >= min(2, len(KINDS[kind].questions)), kind


def test_names_items_and_wording_vary(train_rows):
    questions = [r["question"] for r in train_rows]
    first_words = Counter(q.split()[0] for q in questions)
    assert len(first_words) >= 50  # names (and "There", "Every", "At")
    items = {w for r in train_rows for s in program_from_row(r).steps for k, w in s.words.items() if k in ("item", "new_item")}
    assert len(items) >= 20
    assert len(set(questions)) == len(questions)


def test_same_seed_gives_the_same_problems_and_another_seed_others():
    cfg = WorldConfig()
    a = generate_problems("train", 50, cfg, seed=7).rows
    b = generate_problems("train", 50, cfg, seed=7).rows
    c = generate_problems("train", 50, cfg, seed=8).rows
    assert a == b
    assert len({r["question"] for r in a} & {r["question"] for r in c}) < 5


def test_seed_ranges_of_train_and_test_are_disjoint():
    last_train = program_seed("train", 10**8 - 1, 10**7 - 1)
    first_test = program_seed("test", 0, 0)
    assert last_train < first_test == SPLIT_OFFSETS["test"]
    with pytest.raises(ValueError):
        program_seed("train", 0, 10**7)


def test_no_test_question_appears_in_training_data_exactly_or_normalized(train_rows, test_rows):
    train_q = [r["question"] for r in train_rows]
    test_q = [r["question"] for r in test_rows]
    assert find_leaks(train_q, test_q) == []
    # An independent normalization: letters and digits only.
    squash = lambda q: re.sub(r"[^a-z0-9]", "", q.lower())  # noqa: E731
    assert not {squash(q) for q in train_q} & {squash(q) for q in test_q}
    assert all(is_heldout(q) for q in test_q) and not any(is_heldout(q) for q in train_q)
    assert not {r["id"] for r in train_rows} & {r["id"] for r in test_rows}


def test_find_leaks_catches_a_recased_repunctuated_copy(test_rows):
    q = test_rows[0]["question"]
    leaked = q.upper().replace(".", " !")
    assert words_and_numbers(leaked) == words_and_numbers(q)
    assert find_leaks(["something else", leaked], [q, test_rows[1]["question"]]) == [q]


def test_rows_fit_the_problem_schema_and_round_trip_through_parquet(tmp_path, test_rows):
    path = write_parquet(test_rows[:20], PROBLEM, tmp_path / "w.parquet")
    back = read_parquet(path, PROBLEM)
    assert back == test_rows[:20]
    r = back[0]
    assert r["source"] == "world-test"
    assert r["provenance"]["flow"] == "procedural" and r["provenance"]["teacher_model"] == "procedural"
    assert render_question(program_from_row(r)) == r["question"]


def test_program_json_round_trips_and_foreign_rows_are_refused():
    p = random_program(random.Random(3), WorldConfig(distractor_rate=1.0))
    assert Program.from_json(p.to_json()) == p
    with pytest.raises(ProgramError, match="not a world problem"):
        program_from_row({"question": "q", "provenance": {"origin": "gsm8k/train.jsonl:3"}})
    with pytest.raises(ProgramError, match="world version"):
        Program.from_json(p.to_json().replace("world-v1", "world-v0"))


def test_scaling_multiplies_every_value_and_keeps_divisions_exact():
    for i in range(100):
        p = random_program(random.Random(i), WorldConfig())
        assert evaluate(scale_numbers(p, 3)) == [3 * v for v in evaluate(p)]
        assert solution_errors(scale_numbers(p, 3), render_solution(scale_numbers(p, 3))) == []


def test_a_distractor_adds_a_sentence_and_leaves_the_answer():
    p = random_program(random.Random(5), WorldConfig(distractor_rate=0.0))
    d = add_distractor(random.Random(1), p)
    assert evaluate(d) == evaluate(p)
    assert len(render_question(d)) > len(render_question(p))
    assert str(d.distractors[0].number) in render_question(d)


def test_solution_check_catches_wrong_arithmetic_and_wrong_answers():
    p = Program((Step("have", {"n": 12}, {"owner": "Mia", "item": "apple"}), Step("gain", {"b": 5}, {"giver": "aunt"})))
    good = render_solution(p)
    assert solution_errors(p, good) == []
    assert any("wrong arithmetic" in e for e in solution_errors(p, good.replace("= 17", "= 18")))
    assert any("recomputed 17" in e for e in solution_errors(p, good.replace("#### 17", "#### 18")))


def test_world_config_loads_from_presets_and_rejects_bad_values(tmp_path):
    tiny = load_stage_config(WorldConfig, "tiny", "world")
    demo = load_stage_config(WorldConfig, "demo", "world")
    assert tiny.n_test == 50 and demo.n_test >= 500
    bad = tmp_path / "w.yaml"
    bad.write_text("world:\n  min_steps: 3\n  max_steps: 2\n")
    with pytest.raises(ConfigError, match="min_steps"):
        load_stage_config(WorldConfig, bad, "world")
    bad.write_text("world:\n  kinds: [have, teleport]\n")
    with pytest.raises(ConfigError, match="teleport"):
        load_stage_config(WorldConfig, bad, "world")


def test_restricting_kinds_restricts_programs():
    cfg = WorldConfig(kinds=["have", "gain", "lose"], min_steps=2, max_steps=3)
    for i in range(50):
        assert {s.kind for s in random_program(random.Random(i), cfg).steps} <= {"have", "gain", "lose"}


def test_cli_world_writes_the_split_and_a_manifest(tmp_path):
    import orca_math.cli
    from orca_math.common.manifest import RunManifest
    from orca_math.world import cli

    assert orca_math.cli.COMMAND_MODULES.count("orca_math.world.cli") == 1
    parser = argparse.ArgumentParser()
    cli.add_command(parser.add_subparsers())
    out = tmp_path / "world" / "test.parquet"
    args = parser.parse_args(["world", "--split", "test", "--n", "30", "--seed", "2", "--out", str(out)])
    assert args.func(args) == 0
    rows = read_parquet(out, PROBLEM)
    assert len(rows) == 30 and all(r["source"] == "world-test" for r in rows)
    assert rows == generate_problems("test", 30, WorldConfig(seed=2)).rows
    entry = RunManifest(out.parent / "manifest.json").get("world-test")
    assert entry["status"] == "done" and entry["rows_out"] == 30 and entry["config"]["seed"] == 2


def test_the_recipes_world_stage_draws_both_splits_at_once_on_ray_and_the_same_rows(tmp_path, ray_local):
    from orca_math.world.stage import write_world

    cfg = WorldConfig(seed=3, n_train=60, n_test=20)
    paths = {split: tmp_path / f"{split}.parquet" for split in ("train", "test")}
    fields = write_world(cfg, paths)
    assert fields["rows_out"] == fields["rows_in"] == 80
    for split, n in (("train", 60), ("test", 20)):
        assert read_parquet(paths[split], PROBLEM) == generate_problems(split, n, cfg).rows
