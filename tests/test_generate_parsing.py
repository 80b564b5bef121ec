"""The teacher-reply parsers and the prompt version: strict formats, clear reasons."""

from __future__ import annotations

import pytest

from orca_math.generate import prompts
from orca_math.generate.parsing import (
    ReplyParseError,
    Unsolvable,
    parse_answer_text,
    parse_ask_me_anything,
    parse_edited_problem,
    parse_solution,
    parse_suggestions,
)

# Changing a prompt text changes the hash; bump PROMPT_LABEL and record the new pair here.
PINNED_PROMPT_VERSIONS = {"agent-instruct-v1": "0c76f4b2"}


def test_prompt_version_is_label_plus_hash_of_all_prompt_texts():
    assert prompts.PROMPT_VERSION == f"{prompts.PROMPT_LABEL}@{prompts.prompts_hash()}"
    assert PINNED_PROMPT_VERSIONS.get(prompts.PROMPT_LABEL) == prompts.prompts_hash(), (
        "prompt texts changed without a new PROMPT_LABEL: bump it and pin the new hash")


def test_ask_me_anything_reply_yields_one_question_per_numbered_pair():
    reply = (
        "STATEMENT: Tom has 3 apples and buys 4 more, so he has 7.\n"
        "QUESTION 1: Tom has some apples and buys 4 more, so he has 7. How many did he have?\n"
        "ANSWER 1: 3\n"
        "**Question 2:** Tom has 3 apples and buys some more, so he has 7. How many did he buy?\n"
        "**Answer 2:** 4 apples\n"
    )
    parsed = parse_ask_me_anything(reply)
    assert parsed.statement.startswith("Tom has 3 apples")
    assert [(q.number, q.answer) for q in parsed.questions] == [(1, "3"), (2, "4")]
    assert parsed.questions[1].question.endswith("How many did he buy?")
    assert parsed.rejected == []


def test_ask_me_anything_bad_pairs_are_rejected_one_by_one():
    reply = (
        "STATEMENT: s\n"
        "QUESTION 1: good one?\nANSWER 1: $1,200\n"
        "QUESTION 2: no answer?\n"
        "QUESTION 3: words?\nANSWER 3: many\n"
        "ANSWER 4: 5\n"
        "QUESTION 5: twice?\nANSWER 5: 1\nQUESTION 5: again?\nANSWER 5: 2\n"
        "QUESTION 6: two numbers?\nANSWER 6: 3 or 4\n"
    )
    parsed = parse_ask_me_anything(reply)
    assert [(q.number, q.answer) for q in parsed.questions] == [(1, "1200")]
    assert {r.number: r.field for r in parsed.rejected} == {2: "answer", 3: "answer", 4: "question", 5: "question",
                                                           6: "answer"}


@pytest.mark.parametrize("reply, field", [
    ("", "statement"),
    ("Sure, here are new problems about apples.", "statement"),
    ("STATEMENT: only a statement", "question"),
    ("STATEMENT: a\nSTATEMENT: b\nQUESTION 1: q\nANSWER 1: 1", "statement"),
])
def test_ask_me_anything_reply_without_the_format_is_a_parse_error(reply, field):
    with pytest.raises(ReplyParseError) as e:
        parse_ask_me_anything(reply)
    assert e.value.field == field


def test_suggestions_and_edited_problem():
    assert parse_suggestions("Ideas:\n1. add a rate\n2) add a second day\n- ask for a total") == [
        "add a rate", "add a second day", "ask for a total"]
    with pytest.raises(ReplyParseError):
        parse_suggestions("make it harder somehow")
    assert parse_edited_problem("PROBLEM: A train leaves at 3 pm.\nHow far has it gone by 5 pm?") == (
        "A train leaves at 3 pm.\nHow far has it gone by 5 pm?")
    for bad in ("Here is a harder problem: ...", "PROBLEM:", "PROBLEM: a\nPROBLEM: b"):
        with pytest.raises(ReplyParseError):
            parse_edited_problem(bad)


def test_solution_ends_at_its_final_answer_line():
    s = parse_solution("48 / 2 = 24 in May.\n48 + 24 = 72.\n#### 72 clips\nUSER: next question")
    assert s.answer == "72"
    assert s.text == "48 / 2 = 24 in May.\n48 + 24 = 72.\n#### 72"


def test_solution_without_final_line_is_a_parse_error_and_unsolvable_is_its_own_outcome():
    with pytest.raises(ReplyParseError) as e:
        parse_solution("The answer is 72.")
    assert e.value.field == "reference_solution"
    with pytest.raises(ReplyParseError):
        parse_solution("work\n#### seventy-two")
    with pytest.raises(Unsolvable):
        parse_solution("UNSOLVABLE")


@pytest.mark.parametrize("text, value", [("72", "72"), ("$1,000.50", "1000.5"), ("0.5", "0.5"), ("3/4", "3/4"),
                                         ("-4 degrees", "-4")])
def test_answer_text_accepts_one_number_with_units(text, value):
    assert parse_answer_text(text) == value
