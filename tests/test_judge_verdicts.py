"""The LLM judge's verdict parsing, against the shapes real teachers reply in.

A verdict that cannot be read without guessing is no verdict: the item comes back with
``correct=None`` and an error, and the judge stage quarantines it.
"""

from __future__ import annotations

import pytest

from orca_math.judge import JudgeConfig, JudgeItem, judge_items_sync, parse_verdict
from orca_math.teacher import TeacherClient, TeacherConfig
from orca_math.teacher.scripted import ScriptedEndpoint

READABLE = [
    # GPT-4-class chat models: markdown
    ("Error Analysis: The setter's answer is 72 and the student's is 72. They match.\n\n**Final Verdict: Correct**", True),
    ("Error Analysis: 27 vs 72.\n\n**Final Verdict:** Incorrect", False),
    ("### Error Analysis\nThe student wrote 27, the setter 72.\n\n### Final Verdict\n**Incorrect**", False),
    ("**Final Verdict:**\n\nCorrect", True),
    ("> Final Verdict: `Correct`", True),
    ("| Final Verdict: | Incorrect |", False),
    ("- **Final verdict**: *incorrect*", False),
    # trailing punctuation and check marks
    ("Final Verdict: Correct.", True),
    ("Final Verdict: Incorrect!", False),
    ("Final Verdict: Correct \u2705", True),
    ("Final Verdict: INCORRECT \u274c", False),
    # math models box everything
    ("Final Verdict: $\\boxed{\\text{Correct}}$", True),
    ("Final Verdict: \\(\\textbf{Incorrect}\\)", False),
    # the verdict restated: the same verdict twice is still one verdict
    ("Final Verdict: Correct\n\nTo summarize, the answers match.\nFinal Verdict: Correct", True),
    ("**Final Verdict: Incorrect**\n\nFinal Verdict: Incorrect.", False),
    # the format line echoed back before the real verdict
    ("Use the format:\nFinal Verdict: Correct/Incorrect\n\nError Analysis: 72 = 72.\nFinal Verdict: Correct", True),
]

UNREADABLE = [
    "I'm sorry, but I can't help with that request.",  # a refusal
    "As an AI language model, I cannot evaluate student work.",
    "The student's answer is correct.",  # a verdict, but not in the asked format
    "Verdict: Correct",  # not the "Final Verdict" asked for
    "Final Verdict: Correct/Incorrect",  # the format line alone
    "Final Verdict: Partially correct",
    "Final Verdict: Not correct",
    "Final Verdict: Correct, but the units are missing",
    "Final Verdict: The student is correct",
    "Final Verdict: Correct\nFinal Verdict: Incorrect",  # restated, and contradicting itself
    "**Final Verdict: Correct** ... on reflection, **Final Verdict: Incorrect**",
    "Final Verdict:",
    "",
]


@pytest.mark.parametrize("reply,verdict", READABLE)
def test_verdicts_in_the_shapes_models_write_them_are_read(reply, verdict):
    assert parse_verdict(reply) is verdict


@pytest.mark.parametrize("reply", UNREADABLE)
def test_ambiguous_or_missing_verdicts_are_not_guessed(reply):
    assert parse_verdict(reply) is None


@pytest.mark.parametrize("reply", [
    "I'm sorry, but I can't help with that request.",
    "Final Verdict: Correct\nFinal Verdict: Incorrect",
    "Final Verdict: Correct/Incorrect",
])
def test_a_teacher_that_never_gives_a_readable_verdict_leaves_the_item_unjudged(reply):
    with ScriptedEndpoint(reply=lambda body: reply) as ep:
        teacher = TeacherClient(TeacherConfig(base_url=ep.base_url, model="scripted", api_key_env=None,
                                              max_retries=1, timeout_s=2), stage="judge")
        [v] = judge_items_sync([JudgeItem("How many clips?", "72", "So 72 clips.")],
                               JudgeConfig(method="llm", llm_attempts=2), teacher)
        assert ep.hits == 2
    assert v.correct is None and v.method == "llm"
    assert "no parseable 'Final Verdict" in v.error and repr(reply)[-30:] in v.error  # the reply, for the quarantine
