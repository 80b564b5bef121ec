"""Programs to text: the question a student reads and the step-by-step solution ending in ``#### N``.

Pronouns: a sentence says "she" or "her" instead of "Mia" only when the previous sentence was
about Mia alone (no second person, no distractor in between), so a pronoun never has two candidates.
"""

from __future__ import annotations

from orca_math.world.program import Program, ProgramError, State
from orca_math.world.steps import DISTRACTORS, KINDS, evaluate, singular, states
from orca_math.world.vocab import ITEMS


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _fill(template: str, fields: dict, where: str) -> str:
    try:
        return template.lstrip("@").format(**fields)
    except (KeyError, IndexError) as e:
        raise ProgramError(f"{where}: template {template!r} needs {e}") from e


def _fields(program: Program, i: int, sts: list[State], values: list[int] | None, same_owner: bool) -> dict:
    """Everything a template of step ``i`` may name, from the state it reads (or creates, for a source)."""
    step = program.steps[i]
    kind = KINDS[step.kind]
    base = sts[i - 1] if i else sts[i]
    pron = base.pron
    who = pron[0] if same_owner and pron else base.owner
    plural = base.plural
    fields: dict[str, object] = {
        "owner": base.owner, "Owner": _cap(base.owner), "who": who, "Who": _cap(who),
        "obj": pron[1] if pron else "", "poss": pron[2] if pron else "", "Poss": _cap(pron[2]) if pron else "",
        "s": "" if plural else "s", "has": "have" if plural else "has", "does": "do" if plural else "does",
        "item": base.item, "items": base.items,
        "containers": base.container, "container": singular(base.container) if base.container else "",
        "partner": base.partner or "", "Partner": base.partner or "",
        "units": base.items if base.unit == "count" else "dollars",
    }
    fields.update(step.givens)
    fields.update(step.words)
    if "other" in step.words:
        fields["Other"] = step.words["other"]
    fields.update(kind.extra_fields(step, base, program.steps[i - 1] if i else None))
    if values is not None:
        fields["y"] = values[i]
        if i >= 1:
            fields["x"] = values[i - 1]
            fields.update(kind.partial(step.givens, values[i - 1]))
        if i >= 2:
            fields["x2"] = values[i - 2]
    return fields


def _pick(templates: tuple[str, ...], index: int, where: str) -> str:
    if not 0 <= index < len(templates):
        raise ProgramError(f"{where}: phrasing {index} out of range ({len(templates)} templates)")
    return templates[index]


def _distractor_sentence(program: Program, d) -> str:
    template, _, _ = _pick(DISTRACTORS, d.template, "distractor")
    fields = {"owner": program.steps[0].words.get("owner", "Sam"), "n": d.number, **d.words}
    if "other_item" in d.words:
        fields["other_items"] = ITEMS[d.words["other_item"]].many
    return _cap(_fill(template, fields, "distractor"))


def render_question(program: Program) -> str:
    """The word problem: one sentence per step (distractors in between), then the question."""
    sts = states(program)
    sentences: list[str] = []
    subject: str | None = None  # whose pronoun the next sentence may use
    last = len(program.steps) - 1
    for i, step in enumerate(program.steps):
        kind = KINDS[step.kind]
        before = sts[i - 1] if i else None
        where = f"step {i} ({step.kind})"
        if not (i == last and kind.silent_when_last):
            template = _pick(kind.sentence_templates(before), step.phrasing, where)
            if template.startswith("@") and before is not None and before.pron is None:
                raise ProgramError(f"{where}: phrasing {step.phrasing} needs a person, not {before.owner!r}")
            same = before is not None and subject == before.owner
            fields = _fields(program, i, sts, None, same)
            if not same and before is not None and before.pron is not None:
                # A pronoun whose person was not the last one talked about could point at two
                # people ("Hugo has a quarter of Jack's money. His uncle ..."): use the name.
                fields["Poss"] = f"{before.owner}'s"
                if not any(f in template for f in ("{Poss}", "{Who}", "{who}")):
                    fields["obj"] = before.owner
            sentences.append(_fill(template, fields, where))
            # After a sentence with a second person ("... to Leo", "Her uncle ..."), names again.
            subject = None if "{other}" in template.lower() or "{giver}" in template else sts[i].owner
        for d in program.distractors:
            if d.after == i:
                sentences.append(_distractor_sentence(program, d))
                subject = None
    question = _pick(KINDS[program.steps[last].kind].question_templates(sts[last - 1] if last else None),
                     program.steps[last].asking, f"step {last} question")
    sentences.append(_fill(question, _fields(program, last, sts, None, False), f"step {last} question"))
    return " ".join(sentences)


def render_solution(program: Program) -> str:
    """The step-by-step solution: one ``a op b = c`` line per operation, then ``#### answer``."""
    sts = states(program)
    values = evaluate(program)
    lines: list[str] = []
    for i, step in enumerate(program.steps):
        fields = _fields(program, i, sts, values, False)
        for template in KINDS[step.kind].solution:
            lines.append(_cap(_fill(template, fields, f"step {i} ({step.kind}) solution")))
    lines.append(f"#### {values[-1]}")
    return "\n".join(lines)
