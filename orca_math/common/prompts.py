"""The student's prompt format, shared by SFT, practice sampling and evaluation.

Orca-Math trains and evaluates with ``USER:\\n{question}\\n\\nASSISTANT:\\n``; the same format is
the tiny model's chat template so ``apply_chat_template`` and the raw template agree.
"""

from __future__ import annotations

DEFAULT_PROMPT_TEMPLATE = "USER:\n{question}\n\nASSISTANT:\n"

# Stop sequences: a base model that finished its answer tends to invent the next turn.
DEFAULT_STOP = ["\nUSER:", "USER:\n"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}USER:\n{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'assistant' %}ASSISTANT:\n{{ message['content'] }}{{ eos_token }}\n\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:\n{% endif %}"
)


def render_prompt(question: str, template: str = DEFAULT_PROMPT_TEMPLATE) -> str:
    """The prompt the student sees for ``question``."""
    return template.replace("{question}", question)


def prompt_rows(problems: list[dict], template: str = DEFAULT_PROMPT_TEMPLATE) -> list[dict]:
    """One ``{problem_id, prompt}`` row per problem: what the samplers take."""
    return [{"problem_id": p["id"], "prompt": render_prompt(p["question"], template)} for p in problems]
