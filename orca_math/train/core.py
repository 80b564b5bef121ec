"""Pure builders of TRL training rows, with bad rows quarantined before they reach TRL.

- SFT: problems -> ``{prompt, completion}`` (prompt = the student's template around the question,
  completion = the teacher's solution). TRL's prompt/completion format gives loss on the
  completion tokens only.
- DPO: preference pairs -> ``{prompt, chosen, rejected}``.
- KTO: KTO examples -> ``{prompt, completion, label}``, shuffled: TRL's KTO reads them in order and
  estimates its KL term from neighbours in a batch, so examples of one problem must not cluster.

Preference ``prompt`` fields are used verbatim: they are the exact text the student saw when it
sampled (the practice stage renders them with the same template).

A row that would crash or silently vanish inside TRL (empty completion, prompt or sequence over
the token budget, chosen == rejected) is quarantined here with its file, row, field and reason.
Token counts come from a ``TokenCounter`` (the model's tokenizer), so these functions stay pure.

Your own data, in the dataset formats TRL documents (``trl_records``): SFT ``{prompt, completion}``
or ``{messages}`` (the last assistant turn is the completion), preference ``{prompt, chosen,
rejected}`` or ``{chosen, rejected}`` (the prompt is their shared prefix, as TRL's
``extract_prompt`` finds it), unpaired preference ``{prompt, completion, label}``; each as text
or as conversational ``[{role, content}, ...]`` turns, rendered with the model's chat template
(TRL's ``apply_chat_template``, through a ``ChatRenderer``). They become the project's records
(``pair_id``, ``problem_id``, ``example_id``... filled from the row's own ids or its content), so
the builders above check them like the project's own.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterable, Literal, Sequence

from orca_math.common.prompts import render_prompt
from orca_math.common.records import RecordError, StageOutput, parse_rows, quarantine_row
from orca_math.common.schema import stable_id

TokenCounter = Callable[[Sequence[str]], list[int]]
# A TRL example whose fields are conversational turns -> the same example as text (TRL's
# ``maybe_apply_chat_template`` with the model's tokenizer); ValueError when the template refuses it.
ChatRenderer = Callable[[dict[str, Any]], dict[str, str]]
Algo = Literal["sft", "dpo", "kto", "rft"]

EMPTY_PROMPT = "empty prompt"
EMPTY_COMPLETION = "empty completion"
PROMPT_TOO_LONG = "prompt over max_prompt_length tokens"
SEQUENCE_TOO_LONG = "prompt + completion over max_length tokens"
CHOSEN_EQUALS_REJECTED = "chosen == rejected"
NOT_A_POSITIVE = "label is false: rejection-sampling fine-tuning trains on positives only"

SFT_COLUMNS = ("prompt", "completion")
DPO_COLUMNS = ("prompt", "chosen", "rejected")
KTO_COLUMNS = ("prompt", "completion", "label")


def tokenizer_counter(tokenizer) -> TokenCounter:
    """Token counts as TRL will see them: special tokens included, plus the EOS TRL appends."""

    def count(texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) + 1 for ids in tokenizer(list(texts))["input_ids"]]

    return count


def chat_renderer(tokenizer) -> ChatRenderer:
    """Conversational TRL examples rendered with ``tokenizer``'s chat template, exactly as TRL renders them."""
    from jinja2 import TemplateError
    from trl.data_utils import maybe_apply_chat_template

    def render(example: dict[str, Any]) -> dict[str, str]:
        try:
            return maybe_apply_chat_template(example, tokenizer)
        except TemplateError as e:
            raise ValueError(f"the chat template refused it: {e}") from e

    return render


def _blank(text: object) -> bool:
    return not isinstance(text, str) or not text.strip()


class _LengthCheck:
    """Batch token counting for (prompt, completions...) rows, done once for the whole input."""

    def __init__(self, count: TokenCounter, prompts: list[str], completions: list[list[str]]):
        self.prompt_len = count(prompts)
        flat = [p + c for p, cs in zip(prompts, completions) for c in cs]
        lens = iter(count(flat))
        self.seq_len = [[next(lens) for _ in cs] for cs in completions]


def _in_input_order(out: StageOutput, items: Sequence[tuple[str, int, dict]]) -> StageOutput:
    position = {(source, row): k for k, (source, row, _) in enumerate(items)}
    out.quarantined.sort(key=lambda q: position.get((q["source"], q["row"]), len(position)))
    return out.check_counts()


def _checked(
    stage: str,
    items: list[tuple[str, int, dict]],
    prompt_of: Callable[[dict], str],
    completions_of: Callable[[dict], dict[str, str]],
    count: TokenCounter,
    max_prompt_length: int,
    max_length: int,
) -> tuple[StageOutput, list[tuple[dict, str, dict[str, str]]]]:
    """Quarantine empty/too-long rows; return the survivors as (record, prompt, completions)."""
    out = StageOutput(rows_in=len(items))
    candidates = []
    for source, i, rec in items:
        prompt, comps = prompt_of(rec), completions_of(rec)
        if _blank(prompt):
            out.quarantined.append(quarantine_row(stage, source, i, "prompt", EMPTY_PROMPT, rec))
            continue
        empty = next((field for field, text in comps.items() if _blank(text)), None)
        if empty is not None:
            out.quarantined.append(quarantine_row(stage, source, i, empty, EMPTY_COMPLETION, rec))
            continue
        candidates.append((source, i, rec, prompt, comps))
    lengths = _LengthCheck(count, [c[3] for c in candidates], [list(c[4].values()) for c in candidates])
    kept = []
    for (source, i, rec, prompt, comps), p_len, seq_lens in zip(candidates, lengths.prompt_len, lengths.seq_len):
        if p_len > max_prompt_length:
            out.quarantined.append(quarantine_row(stage, source, i, "prompt", PROMPT_TOO_LONG, rec))
            continue
        too_long = next((field for field, n in zip(comps, seq_lens) if n > max_length), None)
        if too_long is not None:
            out.quarantined.append(quarantine_row(stage, source, i, too_long, SEQUENCE_TOO_LONG, rec))
            continue
        kept.append((rec, prompt, comps))
    return out, kept


def sft_rows(
    problems: Sequence[tuple[str, int, dict]],
    template: str,
    count: TokenCounter,
    max_prompt_length: int,
    max_length: int,
    stage: str = "sft",
) -> StageOutput:
    """Problem records (with their source file and row) -> TRL prompt/completion rows.

    The completion is the problem's ``reference_solution`` (the teacher's step-by-step answer).
    """
    problems = list(problems)
    out, kept = _checked(
        stage, problems,
        prompt_of=lambda p: render_prompt(p["question"], template) if not _blank(p.get("question")) else "",
        completions_of=lambda p: {"reference_solution": p.get("reference_solution")},
        count=count, max_prompt_length=max_prompt_length, max_length=max_length,
    )
    out.rows = [{"id": p["id"], "prompt": prompt, "completion": c["reference_solution"]} for p, prompt, c in kept]
    return _in_input_order(out, problems)


def dpo_rows(
    pairs: Sequence[tuple[str, int, dict]],
    count: TokenCounter,
    max_prompt_length: int,
    max_length: int,
    stage: str = "dpo",
) -> StageOutput:
    """Preference-pair records -> TRL ``{prompt, chosen, rejected}`` rows; identical pairs quarantined."""
    items = list(pairs)
    same = StageOutput()
    distinct = []
    for source, i, rec in items:
        chosen, rejected = rec.get("chosen"), rec.get("rejected")
        if not _blank(chosen) and not _blank(rejected) and chosen.strip() == rejected.strip():
            same.quarantined.append(quarantine_row(stage, source, i, "rejected", CHOSEN_EQUALS_REJECTED, rec))
        else:
            distinct.append((source, i, rec))
    out, kept = _checked(
        stage, distinct,
        prompt_of=lambda r: r.get("prompt"),
        completions_of=lambda r: {"chosen": r.get("chosen"), "rejected": r.get("rejected")},
        count=count, max_prompt_length=max_prompt_length, max_length=max_length,
    )
    out.rows_in = len(items)
    out.quarantined = same.quarantined + out.quarantined
    out.rows = [{"id": r["pair_id"], "prompt": prompt, "chosen": c["chosen"], "rejected": c["rejected"]}
                for r, prompt, c in kept]
    return _in_input_order(out, items)


def kto_rows(
    examples: Sequence[tuple[str, int, dict]],
    count: TokenCounter,
    max_prompt_length: int,
    max_length: int,
    seed: int = 0,
    stage: str = "kto",
) -> StageOutput:
    """KTO-example records -> TRL ``{prompt, completion, label}`` rows, in a seeded shuffled order."""
    examples = list(examples)
    out, kept = _checked(
        stage, examples,
        prompt_of=lambda r: r.get("prompt"),
        completions_of=lambda r: {"completion": r.get("completion")},
        count=count, max_prompt_length=max_prompt_length, max_length=max_length,
    )
    rows = [{"id": r["example_id"], "prompt": prompt, "completion": c["completion"], "label": bool(r["label"])}
            for r, prompt, c in kept]
    random.Random(seed).shuffle(rows)
    out.rows = rows
    return _in_input_order(out, examples)


def rft_rows(
    examples: Sequence[tuple[str, int, dict]],
    count: TokenCounter,
    max_prompt_length: int,
    max_length: int,
    seed: int = 0,
    stage: str = "rft",
) -> StageOutput:
    """Positive KTO-example records (the student's correct samples, the teacher's solution) -> TRL
    ``{prompt, completion}`` SFT rows, shuffled: rejection-sampling fine-tuning. A negative is quarantined."""
    examples = list(examples)
    out = kto_rows([e for e in examples if e[2].get("label")], count, max_prompt_length, max_length,
                   seed=seed, stage=stage)
    out.rows_in = len(examples)
    out.quarantined += [quarantine_row(stage, source, i, "label", NOT_A_POSITIVE, ex)
                        for source, i, ex in examples if not ex.get("label")]
    return _in_input_order(out, examples)


def trl_columns(rows: list[dict], columns: Sequence[str]) -> dict[str, list]:
    """Column-major dict of just the columns a TRL trainer reads (ids stay behind)."""
    return {c: [r[c] for r in rows] for c in columns}


# The column that says a file is in the project's own format (the stage reads those as it always did).
PROJECT_FORMAT_KEY: dict[str, str] = {"sft": "question", "dpo": "pair_id", "kto": "example_id", "rft": "example_id"}
# What each algo reads in TRL's formats, for the error a row missing a field gets.
TRL_FORMATS: dict[str, str] = {
    "sft": "prompt + completion, or messages",
    "dpo": "prompt + chosen + rejected, or chosen + rejected (implicit prompt)",
    "kto": "prompt + completion + label",
    "rft": "prompt + completion + label",
}
DATASET_SOURCE = "dataset"  # chosen_source / rejected_source / source of a row from your own data


def is_project_format(keys: Iterable[str], algo: Algo) -> bool:
    """Whether rows with these columns are the project's own records for ``algo`` (problems,
    preference pairs, KTO examples) rather than one of TRL's dataset formats."""
    return PROJECT_FORMAT_KEY[algo] in set(keys)


def _is_turns(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value)


def _field(row: dict, name: str, source: str, index: int, algo: Algo) -> str | list[dict]:
    """A text or conversational field of a TRL row, or RecordError naming it."""
    if name not in row or row[name] is None:
        raise RecordError(source, index, name, f"field is missing ({algo} reads {TRL_FORMATS[algo]})")
    value = row[name]
    if not isinstance(value, str) and not _is_turns(value):
        raise RecordError(source, index, name, "must be text or a non-empty list of {role, content} messages")
    return value


def _same_kind(row: dict, names: Sequence[str], source: str, index: int) -> bool:
    """True when the fields are all conversational, False when all text; RecordError when mixed."""
    conversational = [isinstance(row[n], list) for n in names]
    if any(conversational) and not all(conversational):
        text = names[conversational.index(False)]
        raise RecordError(source, index, text, f"is text but {', '.join(n for n in names if n != text)} are messages:"
                          " use one kind for the whole row")
    return all(conversational)


def _rendered(example: dict, render: ChatRenderer, source: str, index: int, field: str) -> dict[str, str]:
    try:
        return render(example)
    except (KeyError, ValueError, TypeError, IndexError) as e:
        raise RecordError(source, index, field, f"cannot render with the model's chat template: {e}") from e


def _own_id(row: dict, *names: str) -> str | None:
    return next((row[n] for n in names if isinstance(row.get(n), str) and row[n]), None)


def _round(row: dict) -> int | None:
    value = row.get("round")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def trl_record(row: Any, algo: Algo, source: str, index: int, dataset: str, render: ChatRenderer) -> dict:
    """One row of a TRL-format dataset -> the project's record for ``algo``, or RecordError naming the field.

    sft -> ``{id, prompt, completion}``; dpo -> a preference pair; kto and rft -> a KTO example.
    Ids the row carries (``id``, ``pair_id``, ``example_id``, ``problem_id``) are kept; missing ones are
    hashed from ``dataset`` and the row's text, so a rerun gives the same ids.
    """
    if not isinstance(row, dict):
        raise RecordError(source, index, None, f"row must be an object, got {type(row).__name__}")
    if algo == "sft":
        if "messages" in row and "prompt" not in row:
            messages = _field(row, "messages", source, index, algo)
            if not isinstance(messages, list) or messages[-1]["role"] != "assistant" or len(messages) < 2:
                raise RecordError(source, index, "messages", "must be messages ending in an assistant turn "
                                  "(the completion) after at least one other turn (the prompt)")
            example = {"prompt": messages[:-1], "completion": messages[-1:]}
        else:
            example = {n: _field(row, n, source, index, algo) for n in ("prompt", "completion")}
        if _same_kind(example, ["prompt", "completion"], source, index):
            example = _rendered(example, render, source, index, "messages" if "messages" in row else "prompt")
        prompt, completion = example["prompt"], example["completion"]
        return {"id": _own_id(row, "id") or stable_id(dataset, prompt, completion),
                "prompt": prompt, "completion": completion}
    if algo == "dpo":
        example = {n: _field(row, n, source, index, algo) for n in ("chosen", "rejected")}
        for n in ("chosen", "rejected"):
            if isinstance(example[n], str) and not example[n].strip():
                raise RecordError(source, index, n, "is empty")
        if "prompt" in row and row["prompt"] is not None:
            example["prompt"] = _field(row, "prompt", source, index, algo)
        from trl.data_utils import maybe_extract_prompt  # TRL's rule for an implicit prompt

        example = maybe_extract_prompt(example)
        if _same_kind(example, ["prompt", "chosen", "rejected"], source, index):
            example = _rendered(example, render, source, index, "prompt")
        prompt, chosen, rejected = example["prompt"], example["chosen"], example["rejected"]
        problem_id = _own_id(row, "problem_id") or stable_id(dataset, prompt)
        return {"pair_id": _own_id(row, "pair_id", "id") or stable_id(dataset, prompt, chosen, rejected),
                "problem_id": problem_id, "prompt": prompt, "chosen": chosen, "rejected": rejected,
                "chosen_source": DATASET_SOURCE, "rejected_source": DATASET_SOURCE, "round": _round(row)}
    example = {n: _field(row, n, source, index, algo) for n in ("prompt", "completion")}
    label = row.get("label")
    if not isinstance(label, bool):
        raise RecordError(source, index, "label", "field is missing" if label is None else
                          f"must be true or false, got {label!r}"[:80])
    if _same_kind(example, ["prompt", "completion"], source, index):
        example = _rendered(example, render, source, index, "prompt")
    prompt, completion = example["prompt"], example["completion"]
    return {"example_id": _own_id(row, "example_id", "id") or stable_id(dataset, prompt, completion, label),
            "problem_id": _own_id(row, "problem_id") or stable_id(dataset, prompt),
            "prompt": prompt, "completion": completion, "label": label, "source": DATASET_SOURCE,
            "round": _round(row)}


def trl_records(rows: Iterable[tuple[str, int, Any, str | None]], algo: Algo, dataset: str, render: ChatRenderer,
                stage: str, limit: int | None = None) -> StageOutput:
    """(file, row, raw row, read error) of a TRL-format dataset -> ``rows`` of (file, row, record)
    for the builders above; unreadable or malformed rows quarantined with file, row, field and reason."""
    out = StageOutput()
    out.rows = [(source, i, record) for source, i, _, record in parse_rows(
        rows, lambda row, source, i: trl_record(row, algo, source, i, dataset, render), out, stage, limit)]
    return out.check_counts()


def prompt_completion_rows(
    items: Sequence[tuple[str, int, dict]],
    count: TokenCounter,
    max_prompt_length: int,
    max_length: int,
    stage: str = "sft",
) -> StageOutput:
    """``{id, prompt, completion}`` records (your own SFT data, rendered) -> TRL prompt/completion rows."""
    items = list(items)
    out, kept = _checked(
        stage, items,
        prompt_of=lambda r: r.get("prompt"),
        completions_of=lambda r: {"completion": r.get("completion")},
        count=count, max_prompt_length=max_prompt_length, max_length=max_length,
    )
    out.rows = [{"id": r["id"], "prompt": prompt, "completion": c["completion"]} for r, prompt, c in kept]
    return _in_input_order(out, items)
