"""Preferences from judged practice: DPO pairs and KTO examples, as pure functions over records.

Orca-Math's rules: for each problem, positives are the student's correct samples plus the
teacher's solution (always a positive); negatives are its wrong samples (with
``check_calculations``, also its right answers reached through a false written step). A problem
with no negative (every sample right) borrows negatives from other problems' negative sets (the
paper takes one from each of 4 other problems), so the student still learns from it.

Everything is per problem, so a round can be built one problem at a time on any worker:

1. :func:`practiced_problem`: one problem's rows (its problem row, samples and their judgments)
   -> its right and wrong completions, and the samples set aside with a reason.
2. :func:`donor_pool`: the problems whose negatives can be borrowed, at most ``cfg.donor_pool``
   of them, chosen by :func:`donor_rank` (a hash), so the choice depends neither on the order
   the problems arrive in nor on how they are split among workers.
3. :func:`problem_preferences`: one problem's pairs and examples, drawn with that problem's own
   random generator (:func:`problem_rng`); the same problem gives the same rows wherever it runs.

:func:`build_preferences` chains the three over a whole round held in memory; the prefs stage
chains them on Ray Data (``stage.py``).
"""

from __future__ import annotations

import heapq
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from orca_math.common.prompts import render_prompt
from orca_math.common.records import RowCountError, quarantine_row
from orca_math.common.schema import stable_id
from orca_math.judge.calculations import false_calculations
from orca_math.prefs.config import PreferenceConfig

# The sample fields a quarantined sample keeps for a human to look at.
SAMPLE_FIELDS = ("sample_id", "problem_id", "sample_index", "text")
# The per-problem counts the report sums (plus ``correct=<k>``, one per problem, for the histogram).
REPORT_COUNTS = ("problems", "pairs", "kto_examples", "negatives_borrowed", "problems_borrowing",
                 "problems_without_pairs", "problems_mastered_skipped", "samples_used", "samples_quarantined",
                 "lucky_samples")


@dataclass
class Preferences:
    """Training data (one problem's, or a round's): DPO pairs, KTO examples, quarantined samples
    and the counts the report sums (see :func:`round_report`)."""

    pairs: list[dict] = field(default_factory=list)
    kto_examples: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def add(self, other: "Preferences") -> None:
        self.pairs += other.pairs
        self.kto_examples += other.kto_examples
        self.quarantined += other.quarantined
        self.counts.update(other.counts)

    @property
    def report(self) -> dict:
        return round_report(self.counts)


def practiced_problem(problem_id: str, problems: list[dict], samples: list[dict],
                      judgments: list[dict]) -> dict | None:
    """One problem's samples sorted into right and wrong; None when it has no samples.

    ``problems``: its problem rows (``id``, ``question``, ``reference_solution``; none when the
    samples name an unknown problem); ``samples`` and ``judgments``: its samples and their
    verdicts (a judgment belongs to the problem it names). A sample is used or quarantined
    ("unknown problem", "not judged", "empty completion"). Returns ``problem_id``, ``question``
    and ``reference_solution`` (None when unknown), ``positives`` and ``negatives`` (texts, in
    sample order) and ``quarantined``.
    """
    if not samples:
        return None
    # Rows come in no set order (parts, shuffles): sorted, the same inputs give the same record.
    problem = min(problems, key=lambda p: (p["question"], p.get("reference_solution") or ""), default=None)
    verdict = {j["sample_id"]: j["correct"] for j in sorted(judgments, key=lambda j: (j["sample_id"], j["correct"]))}
    rec = {"problem_id": problem_id, "question": problem and problem["question"],
           "reference_solution": problem and problem.get("reference_solution"),
           "positives": [], "negatives": [], "quarantined": []}
    for s in sorted(samples, key=lambda s: (s.get("sample_index") or 0, s["sample_id"], s["text"])):
        reason = field_ = None
        if problem is None:
            reason, field_ = "unknown problem", "problem_id"
        elif s["sample_id"] not in verdict:
            reason, field_ = "not judged", "sample_id"
        elif not s["text"].strip():
            reason, field_ = "empty completion", "text"
        if reason:
            raw = {k: s[k] for k in SAMPLE_FIELDS if k in s}
            rec["quarantined"].append(quarantine_row("prefs", "samples", None, field_, reason, raw))
        else:
            rec["positives" if verdict[s["sample_id"]] else "negatives"].append(s["text"])
    return rec


def donor_rank(problem_id: str, cfg: PreferenceConfig, round_k: int) -> str:
    """Where a problem stands in line to lend its negatives: a hash, the same wherever it is computed."""
    return stable_id("donor", cfg.seed, round_k, problem_id)


def donor_pool(donors: Iterable[dict], size: int) -> list[dict]:
    """The ``size`` donors ranked first, in rank order. A donor: ``rank``, ``problem_id``, ``negatives``.

    Taking the first ``size`` of the first ``size`` of parts gives the same pool as over the
    whole, so workers can each keep their part's first and the driver merge them.
    """
    return heapq.nsmallest(size, donors, key=lambda d: (d["rank"], d["problem_id"]))


def donors(practiced: Iterable[dict], cfg: PreferenceConfig, round_k: int) -> Iterable[dict]:
    """Every practiced problem with a negative, as a donor (see :func:`donor_pool`)."""
    for rec in practiced:
        if rec["question"] is not None and rec["negatives"]:
            yield {"rank": donor_rank(rec["problem_id"], cfg, round_k), "problem_id": rec["problem_id"],
                   "negatives": rec["negatives"]}


def problem_rng(problem_id: str, cfg: PreferenceConfig, round_k: int) -> random.Random:
    """The generator for one problem's draws (capping, borrowing): seeded by the problem, not by
    the order problems come in, so a problem's rows do not depend on the others."""
    return random.Random(int(stable_id("prefs", cfg.seed, round_k, problem_id), 16))


def _pick(items: Sequence, k: int | None, rng: random.Random) -> Sequence:
    return items if k is None or len(items) <= k else rng.sample(items, k)


def _repeats(keys: list[tuple]) -> list[tuple]:
    """For each row's id parts, how often they came before, as one more id part (none the first
    time), so a repeated row keeps its own id. Every right sample is a positive, and a small student
    writes the teacher's solution word for word for most problems it solves: those repeats stay
    rows (the demo's M3 was 0.9 points lower with one row per text, docs/demo-results.md)."""
    seen: Counter = Counter()
    out = []
    for key in keys:
        out.append((seen[key],) if seen[key] else ())
        seen[key] += 1
    return out


def problem_preferences(rec: dict, pool: Sequence[dict], cfg: PreferenceConfig, round_k: int = 1) -> Preferences:
    """One practiced problem's (:func:`practiced_problem`) DPO pairs, KTO examples and counts.

    ``pool``: the donors (:func:`donor_pool`) a problem with no negative borrows from.
    """
    out = Preferences(quarantined=rec["quarantined"], counts=Counter(samples_quarantined=len(rec["quarantined"])))
    pid, right, wrong = rec["problem_id"], rec["positives"], rec["negatives"]
    if rec["question"] is None or not right + wrong:
        return out
    out.counts.update({"problems": 1, "samples_used": len(right) + len(wrong), f"correct={len(right)}": 1})
    if cfg.check_calculations:
        # The right answer through a false step ("21 / 2 = 7 ... #### 7") would teach the false step.
        lucky = [bool(false_calculations(t)) for t in right]
        right, wrong = [t for t, x in zip(right, lucky) if not x], wrong + [t for t, x in zip(right, lucky) if x]
        out.counts["lucky_samples"] += sum(lucky)
    if cfg.skip_mastered and not wrong:
        out.counts["problems_mastered_skipped"] += 1
        return out
    rng = problem_rng(pid, cfg, round_k)
    positives = [(t, "student") for t in right]
    if cfg.teacher_positive and (rec["reference_solution"] or "").strip():
        positives.append((rec["reference_solution"], "teacher"))
    positives = _pick(positives, cfg.max_positives_per_problem, rng)
    negatives = [(t, "student") for t in wrong]
    if not negatives and cfg.borrow_negatives:
        # A problem that borrows has no negative of its own, so it is never in the pool.
        for d in _pick(pool, cfg.borrow_negatives, rng):
            negatives.append((rng.choice(d["negatives"]), "borrowed"))
        if negatives:
            out.counts.update(problems_borrowing=1, negatives_borrowed=len(negatives))
    prompt = render_prompt(rec["question"], cfg.prompt_template)
    both = [(c, cs, r, rs) for c, cs in positives for r, rs in negatives if c != r]
    pairs = [
        {"pair_id": stable_id("pair", round_k, pid, c, r, *n), "problem_id": pid, "prompt": prompt,
         "chosen": c, "rejected": r, "chosen_source": cs, "rejected_source": rs, "round": round_k}
        for (c, cs, r, rs), n in zip(both, _repeats([(c, r) for c, _, r, _ in both]))
    ]
    out.pairs = list(_pick(pairs, cfg.max_pairs_per_problem, rng))
    examples = [(t, s, True) for t, s in positives] + [(t, s, False) for t, s in negatives]
    out.kto_examples = [
        {"example_id": stable_id("kto", round_k, pid, text, label, *n), "problem_id": pid, "prompt": prompt,
         "completion": text, "label": label, "source": source, "round": round_k}
        for (text, source, label), n in zip(examples, _repeats([(t, label) for t, _, label in examples]))
    ]
    out.counts.update(pairs=len(out.pairs), kto_examples=len(out.kto_examples),
                      problems_without_pairs=int(not out.pairs))
    return out


def round_report(counts: Counter) -> dict:
    """The report of a round from its summed per-problem counts: problems by number of correct
    samples, pairs built, negatives borrowed, samples used and quarantined."""
    hist = {int(k.split("=")[1]): n for k, n in counts.items() if k.startswith("correct=") and n}
    report = {k: counts[k] for k in REPORT_COUNTS}
    report["correct_histogram"] = {str(k): hist[k] for k in sorted(hist)}
    return report


def build_preferences(problems: list[dict], samples: list[dict], judgments: list[dict],
                      cfg: PreferenceConfig, round_k: int = 1) -> Preferences:
    """A whole round in memory: DPO pairs and KTO examples from problems, samples and judgments.

    The same functions, so the same rows, as the prefs stage (which runs them on Ray Data);
    every sample is used or quarantined.
    """
    rows: dict[str, tuple[list, list, list]] = defaultdict(lambda: ([], [], []))
    for p in problems:
        rows[p["id"]][0].append(p)
    for s in samples:
        rows[s["problem_id"]][1].append(s)
    for j in judgments:
        rows[j["problem_id"]][2].append(j)
    practiced = [rec for pid in sorted(rows) if (rec := practiced_problem(pid, *rows[pid]))]
    pool = donor_pool(donors(practiced, cfg, round_k), cfg.donor_pool)
    out = Preferences()
    for rec in practiced:
        out.add(problem_preferences(rec, pool, cfg, round_k))
    used, quarantined = out.counts["samples_used"], len(out.quarantined)
    if used + quarantined != len(samples):
        raise RowCountError(f"samples in ({len(samples)}) != used ({used}) + quarantined ({quarantined})")
    return out
