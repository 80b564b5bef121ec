"""The judge's pure parts: exact verdicts, the LLM judge against a scripted teacher, request parsing."""

from __future__ import annotations

import json

import pytest
from fastapi import HTTPException

from orca_math.judge import JudgeConfig, JudgeItem, judge_items_sync, parse_verdict
from orca_math.judge.core import JUDGE_SYSTEM_PROMPT
from orca_math.judge.serve_judge import parse_judge_request
from orca_math.teacher import TeacherClient, TeacherConfig
from orca_math.teacher.scripted import Fault, ScriptedEndpoint

# (reference, candidate, correct, extracted): what a student might write, and the label it deserves.
LABELLED = [
    ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "48 + 24 = 72\n#### 72", True, "72"),
    ("#### 72", "So she sold 72 clips altogether.", True, "72"),
    ("72", "The answer is 72.", True, "72"),
    ("72", "The answer is $72.00", True, "72"),
    ("1000", "Total: $1,000", True, "1000"),
    ("0.75", "The final answer is 3/4", True, "3/4"),
    ("1/3", "About 0.333333 of the pie", True, "0.333333"),  # rounded to 6 places, as math-verify rounds
    ("18", "\\boxed{18}", True, "18"),
    ("72", "The answer is 73.", False, "73"),
    ("72", "#### 27\nlet me check 72", False, "27"),
    ("72", "I don't know.", False, None),
    ("-5", "The temperature is 5 degrees", False, "5"),
    ("\\sqrt{8}", "\\boxed{2\\sqrt{2}}", True, "2\\sqrt{2}"),
]


@pytest.mark.parametrize("reference,candidate,correct,extracted", LABELLED)
def test_exact_verdicts_match_the_labels(reference, candidate, correct, extracted):
    [v] = judge_items_sync([JudgeItem("q", reference, candidate)], JudgeConfig(method="exact"))
    assert (v.correct, v.method, v.extracted, v.error) == (correct, "exact", extracted, None)


@pytest.mark.parametrize("reply,verdict", [
    ("Error Analysis: both are 72.\nFinal Verdict: Correct", True),
    ("Error Analysis: 27 vs 72.\nFinal Verdict: Incorrect", False),
    ("**Final Verdict:** **Correct**", True),
    ("final verdict: incorrect.", False),
    ("Final Verdict: Correct/Incorrect", None),  # the format line echoed back
    ("Final Verdict: Partially correct", None),
    ("The student is correct.", None),
    ("Final Verdict: Correct\nFinal Verdict: Incorrect", None),  # contradicts itself
    ("", None),
])
def test_verdict_parsing_is_strict(reply, verdict):
    assert parse_verdict(reply) is verdict


def _verdict_from_student(body: dict) -> str:
    """A scripted teacher that checks the way GPT-4 is asked to: is the student's answer 72?"""
    user = body["messages"][-1]["content"]
    student = user.split("Student answer:", 1)[1]
    verdict = "Correct" if "72" in student else "Incorrect"
    return f"Error Analysis: compared with the setter's 72.\nFinal Verdict: {verdict}"


@pytest.fixture
def teacher_ep():
    with ScriptedEndpoint(reply=_verdict_from_student) as ep:
        yield ep


def _teacher(ep: ScriptedEndpoint) -> TeacherClient:
    return TeacherClient(TeacherConfig(base_url=ep.base_url, model="scripted", api_key_env=None,
                                       max_retries=1, timeout_s=2), stage="judge")


def test_llm_judge_sends_the_orca_math_prompt_and_uses_the_verdict(teacher_ep):
    items = [JudgeItem("How many clips?", "#### 72", "so 72"), JudgeItem("How many clips?", "#### 72", "so 27")]
    teacher = _teacher(teacher_ep)
    verdicts = judge_items_sync(items, JudgeConfig(method="llm"), teacher)
    assert [(v.correct, v.method, v.extracted) for v in verdicts] == [(True, "llm", "72"), (False, "llm", "27")]
    assert all(v.prompt_tokens > 0 and v.completion_tokens > 0 for v in verdicts)
    sent = teacher_ep.requests[0]["messages"]
    assert sent[0] == {"role": "system", "content": JUDGE_SYSTEM_PROMPT}
    assert "Problem Setter's answer: #### 72" in sent[1]["content"] and "How many clips?" in sent[1]["content"]
    assert teacher.usage()["judge"].requests == 2


def test_unparseable_replies_are_retried_then_reported_never_guessed():
    replies = iter(["I think it's right.", "Looks good!", "Final Verdict: Correct"])
    with ScriptedEndpoint(reply=lambda body: next(replies)) as ep:
        [v] = judge_items_sync([JudgeItem("q", "72", "72")], JudgeConfig(method="llm", llm_attempts=2), _teacher(ep))
        assert ep.hits == 2
        assert ep.requests[1]["temperature"] == JudgeConfig().retry_temperature  # re-asked, not repeated greedily
    assert v.correct is None and v.method == "llm"
    assert "no parseable 'Final Verdict" in v.error and "Looks good!" in v.error


def test_an_unparseable_first_reply_can_be_fixed_by_a_retry():
    replies = iter(["hmm", "Final Verdict: Incorrect"])
    with ScriptedEndpoint(reply=lambda body: next(replies)) as ep:
        [v] = judge_items_sync([JudgeItem("q", "72", "72")], JudgeConfig(method="llm"), _teacher(ep))
    assert (v.correct, v.error) == (False, None)


def test_a_failing_teacher_marks_nothing_judged(teacher_ep):
    teacher_ep.push(*[Fault.status(500)] * 10)
    items = [JudgeItem("q", "72", "72"), JudgeItem("q", "72", "27")]
    verdicts = judge_items_sync(items, JudgeConfig(method="llm"), _teacher(teacher_ep))
    assert [v.correct for v in verdicts] == [None, None]
    assert all("server_error HTTP 500" in v.error for v in verdicts)


def test_exact_then_llm_asks_the_teacher_only_when_no_answer_can_be_extracted(teacher_ep):
    items = [
        JudgeItem("q", "72", "The answer is 72"),             # exact decides: correct
        JudgeItem("q", "72", "The answer is 27"),             # exact decides: wrong
        JudgeItem("q", "72", "seventy-two clips in all"),     # no number: the teacher decides
    ]
    verdicts = judge_items_sync(items, JudgeConfig(method="exact_then_llm"), _teacher(teacher_ep))
    assert [(v.correct, v.method) for v in verdicts] == [(True, "exact"), (False, "exact"), (False, "llm")]
    assert teacher_ep.hits == 1 and "seventy-two" in teacher_ep.requests[0]["messages"][1]["content"]


def test_a_symbolic_answer_goes_to_the_teacher_under_exact_then_llm_and_is_wrong_under_exact(teacher_ep):
    items = [JudgeItem("q", "72", "So she has 3x + 72 clips."),  # ends in the gold, equals no number
             JudgeItem("q", "72", "The answer is 72")]
    exact = judge_items_sync(items, JudgeConfig(method="exact"))
    assert [(v.correct, v.method, v.extracted) for v in exact] == [(False, "exact", None), (True, "exact", "72")]
    verdicts = judge_items_sync(items, JudgeConfig(method="exact_then_llm"), _teacher(teacher_ep))
    assert [v.method for v in verdicts] == ["llm", "exact"]
    assert teacher_ep.hits == 1 and "3x + 72" in teacher_ep.requests[0]["messages"][1]["content"]


def test_llm_method_without_a_teacher_is_an_error_up_front():
    with pytest.raises(ValueError, match="needs a teacher"):
        judge_items_sync([JudgeItem("q", "1", "1")], JudgeConfig(method="llm"))


def _body(obj) -> bytes:
    return json.dumps(obj).encode()


def test_request_parsing_accepts_items_in_order():
    items = parse_judge_request(_body({"items": [{"question": "a", "reference": "1", "candidate": "x"},
                                                 {"question": "b", "reference": "2", "candidate": "y"}]}), 10)
    assert [i.question for i in items] == ["a", "b"]


@pytest.mark.parametrize("body,status,names", [
    (b"{not json", 400, "body"),
    (_body([1, 2]), 422, "body"),
    (_body({}), 422, "items"),
    (_body({"items": {}}), 422, "items"),
    (_body({"items": [], "extra": 1}), 422, "extra"),
    (_body({"items": [{"question": "q", "reference": "1"}]}), 422, "items[0].candidate"),
    (_body({"items": [{"question": "q", "reference": "1", "candidate": "1"},
                      {"question": "q", "reference": 1, "candidate": "1"}]}), 422, "items[1].reference"),
    (_body({"items": [{"question": "q", "reference": "1", "candidate": "1", "candiate": "1"}]}), 422, "items[0].candiate"),
    (_body({"items": ["x"]}), 422, "items[0]"),
    (_body({"items": [{"question": "q", "reference": "1", "candidate": "1"}] * 11}), 413, "items"),
])
def test_bad_requests_get_4xx_naming_the_field(body, status, names):
    with pytest.raises(HTTPException) as err:
        parse_judge_request(body, max_items=10)
    assert err.value.status_code == status
    assert err.value.detail.startswith(names + ":"), err.value.detail
