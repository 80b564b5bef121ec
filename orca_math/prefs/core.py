"""Preferences from judged practice: DPO pairs and KTO examples, as pure functions over records.

Orca-Math's rules: for each problem, positives are the student's correct samples plus the
teacher's solution (always a positive); negatives are its wrong samples. A problem with no
negative (every sample right) borrows negatives from other problems' negative sets (the paper
takes one from each of 4 other problems), so the student still learns from it.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from orca_math.common.prompts import render_prompt
from orca_math.common.records import RowCountError, quarantine_row
from orca_math.common.schema import stable_id
from orca_math.prefs.config import PreferenceConfig


@dataclass
class Preferences:
    """One round's training data: DPO pairs, KTO examples, quarantined samples and the report."""

    pairs: list[dict]
    kto_examples: list[dict]
    quarantined: list[dict]
    report: dict


def _pick(items: Sequence, k: int | None, rng: random.Random) -> Sequence:
    return items if k is None or len(items) <= k else rng.sample(items, k)


class _Without(Sequence):
    """``items`` less the one at ``skip`` (None: none), without copying: each borrowing problem
    draws from every other problem's negatives, and a copy per problem made that quadratic."""

    def __init__(self, items: list, skip: int | None):
        self.items, self.skip = items, skip

    def __len__(self) -> int:
        return len(self.items) - (self.skip is not None)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.items[i + (self.skip is not None and i >= self.skip)]


def build_preferences(problems: list[dict], samples: list[dict], judgments: list[dict],
                      cfg: PreferenceConfig, round_k: int = 1) -> Preferences:
    """DPO pairs and KTO examples from problems, their samples and the samples' judgments.

    Every sample is used or quarantined ("not judged", "unknown problem", "empty completion").
    The report holds problems by number of correct samples, pairs built and negatives borrowed.
    """
    by_id = {p["id"]: p for p in problems}
    verdict = {j["sample_id"]: j for j in judgments}
    pos: dict[str, list[tuple[str, str]]] = defaultdict(list)  # problem -> [(text, source)]
    neg: dict[str, list[str]] = defaultdict(list)
    n_samples: Counter = Counter()
    quarantined: list[dict] = []
    for i, s in enumerate(samples):
        reason = field = None
        if s["problem_id"] not in by_id:
            reason, field = "unknown problem", "problem_id"
        elif s["sample_id"] not in verdict:
            reason, field = "not judged", "sample_id"
        elif not s["text"].strip():
            reason, field = "empty completion", "text"
        if reason:
            quarantined.append(quarantine_row("prefs", "samples", i, field, reason, s))
            continue
        n_samples[s["problem_id"]] += 1
        if verdict[s["sample_id"]]["correct"]:
            pos[s["problem_id"]].append((s["text"], "student"))
        else:
            neg[s["problem_id"]].append(s["text"])

    rng = random.Random(cfg.seed)
    practiced = [p for p in problems if n_samples[p["id"]]]
    report = {"problems": len(practiced), "correct_histogram": {}, "pairs": 0, "kto_examples": 0,
              "negatives_borrowed": 0, "problems_borrowing": 0, "problems_without_pairs": 0,
              "problems_mastered_skipped": 0}
    hist: Counter = Counter()
    pairs, examples = [], []
    negative_pool = sorted(pid for pid in neg if neg[pid])
    pool_index = {pid: i for i, pid in enumerate(negative_pool)}
    for p in practiced:
        pid = p["id"]
        hist[len(pos[pid])] += 1
        if cfg.skip_mastered and not neg[pid]:
            report["problems_mastered_skipped"] += 1
            continue
        positives = list(pos[pid])
        if cfg.teacher_positive and (p.get("reference_solution") or "").strip():
            positives.append((p["reference_solution"], "teacher"))
        positives = _pick(positives, cfg.max_positives_per_problem, rng)
        negatives = [(t, "student") for t in neg[pid]]
        if not negatives and cfg.borrow_negatives:
            donors = _Without(negative_pool, pool_index.get(pid))  # the sorted pool, less this problem
            for d in _pick(donors, cfg.borrow_negatives, rng):
                negatives.append((rng.choice(neg[d]), "borrowed"))
            if negatives:
                report["problems_borrowing"] += 1
                report["negatives_borrowed"] += len(negatives)
        prompt = render_prompt(p["question"], cfg.prompt_template)
        problem_pairs = [
            {"pair_id": stable_id("pair", round_k, pid, c, r), "problem_id": pid, "prompt": prompt,
             "chosen": c, "rejected": r, "chosen_source": cs, "rejected_source": rs, "round": round_k}
            for c, cs in positives for r, rs in negatives if c != r
        ]
        problem_pairs = _pick(problem_pairs, cfg.max_pairs_per_problem, rng)
        if not problem_pairs:
            report["problems_without_pairs"] += 1
        pairs += problem_pairs
        for text, source, label in [(t, s, True) for t, s in positives] + [(t, s, False) for t, s in negatives]:
            examples.append({"example_id": stable_id("kto", round_k, pid, text, label), "problem_id": pid,
                             "prompt": prompt, "completion": text, "label": label, "source": source,
                             "round": round_k})
    used = sum(n_samples.values())
    report.update(correct_histogram={str(k): hist[k] for k in sorted(hist)}, pairs=len(pairs),
                  kto_examples=len(examples), samples_used=used, samples_quarantined=len(quarantined))
    if used + len(quarantined) != len(samples):
        raise RowCountError(f"samples in ({len(samples)}) != used ({used}) + quarantined ({len(quarantined)})")
    return Preferences(pairs, examples, quarantined, report)
