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
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

from orca_math.common.prompts import render_prompt
from orca_math.common.records import StageOutput, quarantine_row

TokenCounter = Callable[[Sequence[str]], list[int]]

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
