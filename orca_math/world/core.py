"""Random world problems: programs drawn from a seed, train/held-out splits, and problem rows.

Two guarantees keep the held-out set honest:

- **Disjoint seeds**: problem ``i`` of split ``s`` with seed ``S`` is drawn from its own RNG seeded
  with ``SPLIT_OFFSETS[s] + S * SEED_STRIDE + i``; the train and test ranges never meet.
- **Disjoint questions**: a question belongs to the held-out split when the hash of its
  normalized text falls in bucket 0 of ``HOLDOUT_BUCKETS``; each split keeps only its own
  questions, and the teacher quarantines any generated question that hashes into the held-out
  bucket. So no test question can appear in any training data, exactly or after normalization,
  whatever the sizes and seeds (``find_leaks`` checks it on real sets).
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Iterable, Literal

from orca_math.common.records import StageOutput, quarantine_row
from orca_math.common.schema import empty_provenance, stable_id
from orca_math.world.config import WorldConfig
from orca_math.world.program import WORLD_VERSION, Distractor, Program, ProgramError, State, Step
from orca_math.world.render import render_question
from orca_math.world.solve import solution_errors, solve
from orca_math.world.steps import (
    DISTRACTORS,
    KINDS,
    SOURCES,
    DrawContext,
    StepKind,
    arithmetic_steps,
    evaluate,
    new_item,
    states,
)
from orca_math.world.vocab import GIVERS, STORES

Split = Literal["train", "test"]
SPLIT_OFFSETS: dict[str, int] = {"train": 0, "test": 10**15}
SEED_STRIDE = 10**7  # problems per (split, seed) before two seeds' ranges would meet
HOLDOUT_BUCKETS = 16  # 1 in 16 normalized questions is reserved for the held-out split
ORIGIN_PREFIX = "world:"  # provenance.origin of a world row is this + the program's JSON


def program_seed(split: str, seed: int, index: int) -> int:
    """The RNG seed of problem ``index``; the ranges of the two splits are disjoint."""
    if split not in SPLIT_OFFSETS:
        raise ValueError(f"split must be one of {sorted(SPLIT_OFFSETS)}, got {split!r}")
    if not 0 <= seed < 10**8 or not 0 <= index < SEED_STRIDE:
        raise ValueError(f"seed {seed} / index {index} out of range")
    return SPLIT_OFFSETS[split] + seed * SEED_STRIDE + index


_NON_WORD = re.compile(r"[^a-z0-9]+")


def words_and_numbers(question: str) -> str:
    """Lowercase words and numbers only: 'Mia has $12.' and 'mia has 12' are the same question."""
    return _NON_WORD.sub(" ", question.lower()).strip()


def is_heldout(question: str) -> bool:
    """Whether a question is reserved for the held-out split (by the hash of its normalized text)."""
    digest = hashlib.sha1(words_and_numbers(question).encode()).digest()
    return int.from_bytes(digest[:8], "big") % HOLDOUT_BUCKETS == 0


def find_leaks(train_questions: Iterable[str], test_questions: Iterable[str]) -> list[str]:
    """Test questions that appear in the training questions, exactly or after normalization."""
    exact, normalized = set(), set()
    for q in train_questions:
        exact.add(q)
        normalized.add(words_and_numbers(q))
    return [q for q in test_questions if q in exact or words_and_numbers(q) in normalized]


# --------------------------------------------------------------------------- drawing programs


def used_words(program: Program) -> frozenset[str]:
    """Every word the program already uses, so new people and items are new."""
    words = {w for s in program.steps for w in s.words.values()}
    words |= {w for d in program.distractors for w in d.words.values()}
    return frozenset(words)


def named_store(program: Program) -> str | None:
    """The store the problem already mentions, if any (a later discount or distractor reuses it)."""
    for words in [s.words for s in program.steps] + [d.words for d in program.distractors]:
        if "store" in words:
            return words["store"]
    return None


def draw_step(rng: random.Random, kind: StepKind, program: Program, max_value: int) -> Step | None:
    """One step of ``kind`` appended to ``program``, or None when no numbers fit."""
    state: State | None = states(program)[-1] if program.steps else None
    x = evaluate(program)[-1] if program.steps else None
    ctx = DrawContext(used_words(program), max_value, program.steps[-1].kind if program.steps else None,
                      named_store(program))
    drawn = kind.draw(rng, state, x, ctx)
    if drawn is None or any(w is None for w in drawn[1].values()):
        return None
    givens, words = drawn
    sentences = kind.sentence_templates(state)
    # "@" phrasings use pronouns (her, their): only for a person or a group, never "each friend".
    usable = [i for i, t in enumerate(sentences) if not t.startswith("@") or state is None or state.pron is not None]
    step = Step(kind.name, givens, words, rng.choice(usable), rng.randrange(len(kind.question_templates(state))))
    try:
        values = evaluate(program.with_steps(program.steps + (step,)))
    except ProgramError:
        return None
    # Results of 0 or 1 make "1 apples"; they are never needed, so they are never drawn.
    return step if values[-1] >= 2 and max(values) <= max_value else None


def append_random_step(rng: random.Random, program: Program, max_value: int, kinds: Iterable[str] | None = None) -> Program | None:
    """``program`` with one more step of a random kind that fits, or None if none fits."""
    state = states(program)[-1]
    allowed = set(kinds) if kinds is not None else set(KINDS)
    candidates = [k for k in KINDS.values() if not k.source and k.name in allowed and k.applies(state)]
    # Weighted order without replacement (Efraimidis-Spirakis): try likelier kinds first.
    candidates.sort(key=lambda k: rng.random() ** (1.0 / k.weight), reverse=True)
    for k in candidates:
        step = draw_step(rng, k, program, max_value)
        if step is not None:
            return program.with_steps(program.steps + (step,))
    return None


def add_distractor(rng: random.Random, program: Program) -> Program | None:
    """``program`` with one more irrelevant sentence (a kind it does not have yet), or None."""
    have = {d.template for d in program.distractors}
    free = [t for t in range(len(DISTRACTORS)) if t not in have]
    rng.shuffle(free)
    for t in free:
        template, lo, hi = DISTRACTORS[t]
        words: dict[str, str] = {}
        if "{store}" in template:
            words["store"] = named_store(program) or rng.choice(STORES)
        if "{giver}" in template:
            words["giver"] = rng.choice(GIVERS)
        if "{other_items}" in template:
            item = new_item(rng, used_words(program))
            if item is None:
                continue
            words["other_item"] = item
        d = Distractor(rng.randrange(len(program.steps)), t, words, rng.randint(lo, hi))
        return Program(program.steps, program.distractors + (d,))
    return None


def scale_numbers(program: Program, factor: int) -> Program:
    """Every amount times ``factor``; counts per group, rates of change, percents stay.

    Every step is linear in its scaled givens, so every value of the program, the answer
    included, is multiplied by exactly ``factor`` and all divisions stay exact.
    """
    steps = tuple(
        Step(s.kind, {k: v * factor if k in KINDS[s.kind].scaled else v for k, v in s.givens.items()},
             s.words, s.phrasing, s.asking)
        for s in program.steps
    )
    return program.with_steps(steps)


def random_program(rng: random.Random, cfg: WorldConfig) -> Program:
    """A program with between ``min_steps`` and ``max_steps`` arithmetic steps."""
    allowed = set(cfg.kinds) if cfg.kinds else set(KINDS)
    sources = [k for k in SOURCES if k.name in allowed]
    if not sources:
        raise ValueError(f"kinds {sorted(allowed)} include no source kind ({[k.name for k in SOURCES]})")
    for _ in range(200):
        target = rng.randint(cfg.min_steps, cfg.max_steps)
        source = rng.choice(sources)
        step = draw_step(rng, source, Program(()), cfg.max_value)
        if step is None:
            continue
        program = Program((step,))
        while arithmetic_steps(program) < target:
            longer = append_random_step(rng, program, cfg.max_value, allowed)
            if longer is None:
                break
            program = longer
        if arithmetic_steps(program) == target:
            if rng.random() < cfg.distractor_rate:
                program = add_distractor(rng, program) or program
            return program
    raise ProgramError(f"could not draw a {cfg.min_steps}-{cfg.max_steps} step program from kinds {sorted(allowed)}")


# ------------------------------------------------------------------------------ problem rows


def program_from_row(row: dict) -> Program:
    """The program behind a world problem row (from its provenance); ProgramError otherwise."""
    origin = ((row.get("provenance") or {}).get("origin")) or ""
    if not origin.startswith(ORIGIN_PREFIX):
        raise ProgramError(f"not a world problem: provenance.origin {origin[:60]!r} does not start with {ORIGIN_PREFIX!r}")
    return Program.from_json(origin[len(ORIGIN_PREFIX):])


def problem_row(
    program: Program,
    source: str,
    *,
    flow: str = "procedural",
    seed_id: str | None = None,
    round: int = 0,
    prompt_version: str = WORLD_VERSION,
    question: str | None = None,
    solution: str | None = None,
) -> dict:
    """A PROBLEM-schema row; the program rides along in ``provenance.origin`` so flows can edit it."""
    question = question if question is not None else render_question(program)
    solution = solution if solution is not None else solve(program)
    return {
        "id": stable_id(source, question),
        "question": question,
        "reference_solution": solution,
        "reference_answer": str(evaluate(program)[-1]),
        "source": source,
        "provenance": empty_provenance(
            origin=ORIGIN_PREFIX + program.to_json(), seed_id=seed_id, flow=flow, round=round,
            teacher_model="procedural", prompt_version=prompt_version,
        ),
    }


def generate_problems(split: Split, n: int, cfg: WorldConfig, seed: int | None = None) -> StageOutput:
    """``n`` distinct problems of ``split`` as rows with source ``world-<split>``.

    Draws that land in the other split's bucket, or repeat an earlier question, are skipped
    (they never become rows). A row whose solution fails the independent check is quarantined,
    so ``rows_in == rows_out + quarantined`` still holds.
    """
    seed = cfg.seed if seed is None else seed
    source = f"world-{split}"
    out = StageOutput()
    seen: set[str] = set()
    index = 0
    limit = SEED_STRIDE
    while out.rows_in < n:
        if index >= limit:
            raise ProgramError(f"only {out.rows_in} distinct {split} problems in {limit} draws; widen the world")
        rng = random.Random(program_seed(split, seed, index))
        index += 1
        program = random_program(rng, cfg)
        question = render_question(program)
        key = words_and_numbers(question)
        if is_heldout(question) != (split == "test") or key in seen:
            continue
        seen.add(key)
        out.rows_in += 1
        solution = solve(program)
        errors = solution_errors(program, solution)
        if errors:
            out.quarantined.append(quarantine_row("world", source, index - 1, "reference_solution", "disagreeing solves",
                                                  {"question": question, "solution": solution, "errors": errors}))
            continue
        out.rows.append(problem_row(program, source, question=question, solution=solution))
    return out.check_counts()
