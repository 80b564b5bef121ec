"""Every prompt the AgentInstruct flows send to the teacher, in one place and versioned.

The version that goes into each row's provenance is ``PROMPT_VERSION``: a human label plus a
hash of the prompt texts, so two datasets built with different wording can never claim the same
version. Changing any text below changes the hash; bump ``PROMPT_LABEL`` too, so people can talk
about it (``tests/test_generate_parsing.py`` pins the hash to the label).

Reply formats are strict and line-based (``LABEL: text``) so they parse the same way whether the
teacher is GPT-4-Turbo, a small self-hosted model or a procedural generator.
"""

from __future__ import annotations

import hashlib

PROMPT_LABEL = "agent-instruct-v1"

# -- Flow 1: Ask Me Anything -------------------------------------------------------------------

ASK_ME_ANYTHING_SYSTEM = """\
You create new math word problems from an existing one.

First rewrite the given problem and its answer as a STATEMENT: a short story that states every \
number of the problem, including the answer, and asks nothing. Then, for each number in the \
statement, write one new QUESTION: the statement with that number removed (replaced by "some" \
or a similar word) followed by a question that asks for exactly that number. Every question must \
be solvable from its own text alone, and its ANSWER must be the number it asks for.

Reply in exactly this format and nothing else:
STATEMENT: <the statement>
QUESTION 1: <first new problem>
ANSWER 1: <the number it asks for>
QUESTION 2: <second new problem>
ANSWER 2: <the number it asks for>
(one QUESTION/ANSWER pair per number, numbered from 1)

Example.
Problem: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips \
in May. How many clips did Natalia sell altogether in April and May?
Answer: 72

STATEMENT: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips \
in May. Natalia sold 72 clips altogether in April and May.
QUESTION 1: Natalia sold clips to some of her friends in April, and then she sold half as many \
clips in May. Natalia sold 72 clips altogether in April and May. How many clips did she sell in April?
ANSWER 1: 48
QUESTION 2: Natalia sold clips to 48 of her friends in April, and then she sold some clips in May. \
Natalia sold 72 clips altogether in April and May. What is the ratio of the clips she sold in May \
to the clips she sold in April?
ANSWER 2: 0.5
QUESTION 3: Natalia sold clips to 48 of her friends in April, and then she sold half as many \
clips in May. How many clips did Natalia sell altogether in April and May?
ANSWER 3: 72"""

ASK_ME_ANYTHING_TASK = "Problem: {question}\nAnswer: {answer}"

# -- Flow 2: Suggester + Editor ----------------------------------------------------------------

SUGGESTER_SYSTEM = """\
You are the Suggester. You read a math word problem and propose several ways to make it harder: \
more steps, more quantities, rates, fractions or percentages, conditions that must be combined. \
Do not write the new problem and do not solve anything.

Reply with a numbered list of 2 to 4 suggestions and nothing else:
1. <suggestion>
2. <suggestion>"""

EDITOR_SYSTEM = """\
You are the Editor. You read a math word problem and the Suggester's ideas for making it harder, \
then rewrite the problem using those ideas. The new problem must be self-contained, consistent, \
and have exactly one numerical answer. Do not solve it.

Reply with exactly one line and nothing else:
PROBLEM: <the new, harder problem>"""

# Both agents see the same task message: the Suggester reads it, the Editor reads it plus the
# Suggester's reply.
SUGGESTER_EDITOR_TASK = "Problem: {question}"

# -- Flow 3: Solve and verify ------------------------------------------------------------------

SOLVER_SYSTEM = """\
You are an expert math teacher. Solve the math word problem step by step, explaining each step \
briefly. End with a final line of the form
#### <number>
holding only the final numerical answer. If the problem cannot be solved because information is \
missing or contradictory, reply with exactly: UNSOLVABLE"""

# A different wording for the second solve: with a deterministic teacher the same prompt would
# only repeat the first answer, which checks nothing.
VERIFIER_SYSTEM = """\
You check math word problems by solving them yourself, independently and from scratch. Work \
carefully step by step and double-check every calculation. End with a final line of the form
#### <number>
holding only the final numerical answer. If the problem cannot be solved because information is \
missing or contradictory, reply with exactly: UNSOLVABLE"""

SOLVE_TASK = "{question}"

# Reply markers the parsers look for (kept next to the prompts that ask for them).
STATEMENT_LABEL = "STATEMENT"
QUESTION_LABEL = "QUESTION"
ANSWER_LABEL = "ANSWER"
PROBLEM_LABEL = "PROBLEM"
UNSOLVABLE_MARK = "UNSOLVABLE"

ALL_PROMPTS: dict[str, str] = {
    "ask_me_anything.system": ASK_ME_ANYTHING_SYSTEM,
    "ask_me_anything.task": ASK_ME_ANYTHING_TASK,
    "suggester.system": SUGGESTER_SYSTEM,
    "editor.system": EDITOR_SYSTEM,
    "suggester_editor.task": SUGGESTER_EDITOR_TASK,
    "solver.system": SOLVER_SYSTEM,
    "verifier.system": VERIFIER_SYSTEM,
    "solve.task": SOLVE_TASK,
}


def prompts_hash() -> str:
    """Hash of every prompt text above (8 hex chars)."""
    h = hashlib.sha256()
    for key in sorted(ALL_PROMPTS):
        h.update(f"{key}\x1f{ALL_PROMPTS[key]}\x1e".encode())
    return h.hexdigest()[:8]


PROMPT_VERSION = f"{PROMPT_LABEL}@{prompts_hash()}"
