"""A scripted AgentInstruct teacher: well-formed (and, on purpose, some malformed) replies to the
flows' prompts, decided only by the request's content.

Plug it into ``orca_math.teacher.scripted.ScriptedEndpoint(reply=ScriptedTeacher())`` to run the
real pipeline (HTTP, AutoGen, Ray Data) deterministically and fast: the resume test, the bench
and dry runs use it. Being a pure function of the request, a rerun, a resumed run and an
uninterrupted run get the same replies in any order.

"Solving" is a hash: a question's answer is ``answer_of(question)``; Ask Me Anything writes
that number as each question's ANSWER, so kept problems are consistent, and the fault rates
below pick (by hash) which items come out malformed, unsolvable, too long or disagreeing.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

from orca_math.generate import prompts

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _fraction(text: str, salt: str) -> float:
    """A stable number in [0, 1) for (text, salt)."""
    return int(hashlib.sha256(f"{salt}\x1f{text}".encode()).hexdigest()[:8], 16) / 2**32


def answer_of(question: str) -> int:
    """The scripted teacher's answer to any question."""
    return int(_fraction(question, "answer") * 1000)


@dataclass
class ScriptedTeacher:
    """``reply(body) -> text`` for ScriptedEndpoint; rates are fractions of requests (by hash)."""

    malformed_ask_me_anything: float = 0.1
    bad_item: float = 0.1  # Ask Me Anything pairs with a non-numeric ANSWER
    wrong_answer: float = 0.05  # ANSWER that is not what the solver will find
    malformed_editor: float = 0.1
    unsolvable: float = 0.05
    too_long: float = 0.05
    disagree: float = 0.1
    delay_s: float = 0.0  # fixed latency per request (bench)
    max_questions: int = 3

    def __call__(self, body: dict[str, Any]) -> str:
        if self.delay_s:
            time.sleep(self.delay_s)
        messages = body.get("messages", [])
        system = messages[0].get("content", "") if messages else ""
        task = messages[1].get("content", "") if len(messages) > 1 else ""
        if system == prompts.ASK_ME_ANYTHING_SYSTEM:
            return self.ask_me_anything(task)
        if system == prompts.SUGGESTER_SYSTEM:
            return "1. Add a second quantity that changes over time.\n2. Ask for a total over several days."
        if system == prompts.EDITOR_SYSTEM:
            return self.editor(task)
        if system in (prompts.SOLVER_SYSTEM, prompts.VERIFIER_SYSTEM):
            return self.solve(task, verifier=system == prompts.VERIFIER_SYSTEM)
        return "I do not know this prompt."

    def ask_me_anything(self, task: str) -> str:
        m = re.match(r"Problem: (.*)\nAnswer: (.*)", task, re.S)
        if m is None or _fraction(task, "malformed") < self.malformed_ask_me_anything:
            return "Here are some new problems: how many apples, and how many pears?"
        question, answer = m.group(1).strip(), m.group(2).strip()
        lines = [f"STATEMENT: {question} The answer is {answer}."]
        numbers = list(dict.fromkeys(_NUMBER.findall(question)))[: self.max_questions] or [answer]
        for k, n in enumerate(numbers, start=1):
            new = f"{question.replace(n, 'some', 1)} Given that the answer is {answer}, find the hidden number #{k}."
            value: Any = answer_of(new)
            if _fraction(new, "bad_item") < self.bad_item:
                value = "many"
            elif _fraction(new, "wrong") < self.wrong_answer:
                value = value + 3
            lines += [f"QUESTION {k}: {new}", f"ANSWER {k}: {value}"]
        return "\n".join(lines)

    def editor(self, task: str) -> str:
        question = task.removeprefix("Problem: ").strip()
        if _fraction(question, "malformed_editor") < self.malformed_editor:
            return "Sure! The harder problem is about more apples."
        twist = int(_fraction(question, "twist") * 90) + 10
        return f"PROBLEM: {question} Then it happens again {twist} more times; how many in total?"

    def solve(self, question: str, verifier: bool) -> str:
        if _fraction(question, "unsolvable") < self.unsolvable:
            return prompts.UNSOLVABLE_MARK
        answer = answer_of(question)
        if verifier and _fraction(question, "disagree") < self.disagree:
            answer += 1
        steps = "Step 1: read the problem.\nStep 2: compute carefully."
        if _fraction(question, "too_long") < self.too_long:
            steps += "\n" + "And check it once more. " * 100
        return f"{steps}\n#### {answer}"
