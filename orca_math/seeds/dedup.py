"""Deduplication and decontamination of problem sets, as pure functions over problem rows.

Dedup: exact duplicates after normalization (case, unicode, spacing, punctuation, thousands
separators), then near duplicates: MinHash LSH over word shingles proposes pairs and the exact
shingle Jaccard decides. In math, the numbers are the problem: by default two questions are near
duplicates only if they also state the same numbers, so "same story, new numbers" (a legitimate
variant, and what Ask Me Anything produces on purpose) is kept.

Decontamination against eval sets (GSM8K test at least), a superset of the Orca-Math paper's
check: for each problem, the ``tfidf_neighbors`` nearest eval questions by TF-IDF cosine; it is
contaminated when its unigram Jaccard with any of them is >= ``unigram_jaccard`` (paper: 0.5).
Also flagged: any shared run of ``ngram_words`` words with an eval question (catches an eval
question pasted inside a longer text, which dilutes Jaccard), and exact normalized matches.

Every removed row is quarantined with reason ``duplicate`` or ``contaminated`` and says what it
matched, so ``rows_in == rows_out + rows_quarantined`` and a human can check the call.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field

from orca_math.common.contract import Reason
from orca_math.common.records import StageOutput, quarantine_row
from orca_math.judge.answers import normalize_number
from orca_math.seeds.config import DecontamConfig, DedupConfig

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_NON_WORD = re.compile(r"[^\w./]+|(?<!\d)[./]|[./](?!\d)")
_NUMBER = re.compile(r"-?\d+(?:[.,/]\d+)*")


def normalize_question(text: str) -> str:
    """Lower-case, NFKC, no thousands separators, punctuation -> spaces (decimals/fractions kept)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _THOUSANDS.sub("", text)
    return " ".join(_NON_WORD.sub(" ", text).split())


def shingles(tokens: Sequence[str], n: int) -> set[str]:
    """Word n-grams (the whole text as one shingle when it is shorter than n)."""
    if len(tokens) <= n:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def jaccard(a: set, b: set) -> float:
    """|a & b| / |a | b| (0 for two empty sets)."""
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


def question_numbers(text: str) -> tuple[str, ...]:
    """The numbers a question states, normalized and sorted ('1,000' and '1000' are equal)."""
    found = (normalize_number(m.group(0)) for m in _NUMBER.finditer(_THOUSANDS.sub("", text)))
    return tuple(sorted(n for n in found if n is not None))


def _quarantine(stage: str, problem: dict, index: int, reason: Reason, detail: dict) -> dict:
    raw = {"id": problem.get("id"), "question": problem.get("question"), **detail}
    return quarantine_row(stage, f"{problem.get('source')}:{problem.get('id')}", index, "question", str(reason), raw)


def deduplicate(problems: Sequence[dict], cfg: DedupConfig = DedupConfig(),
                reference: Iterable[dict] = (), stage: str = "dedup") -> StageOutput:
    """Keep the first of every group of (near-)duplicate questions, in input order.

    ``reference`` rows (e.g. the seeds a set was generated from) count as already kept: a problem
    that repeats one of them is removed, but they are not part of the output.
    """
    from datasketch import MinHash, MinHashLSH

    out = StageOutput(rows_in=len(problems))
    exact: dict[str, str] = {}
    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm) if cfg.near_duplicates else None
    kept_info: dict[str, tuple[set[str], tuple[str, ...]]] = {}

    def signature(text: str):
        tokens = normalize_question(text).split()
        sh = shingles(tokens, cfg.shingle_words)
        m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed)
        m.update_batch(s.encode() for s in sh)
        return sh, m

    def remember(key: str, text: str) -> None:
        exact.setdefault(normalize_question(text), key)
        if lsh is not None:
            sh, m = signature(text)
            kept_info[key] = (sh, question_numbers(text))
            lsh.insert(key, m)

    for j, ref in enumerate(reference):
        remember(f"reference:{ref.get('id', j)}", ref["question"])

    for i, p in enumerate(problems):
        norm = normalize_question(p["question"])
        if norm in exact:
            out.quarantined.append(_quarantine(stage, p, i, Reason.DUPLICATE,
                                               {"duplicate_of": exact[norm], "match": "exact", "jaccard": 1.0}))
            continue
        if lsh is not None:
            sh, m = signature(p["question"])
            numbers = question_numbers(p["question"])
            best: tuple[float, str] | None = None
            for key in lsh.query(m):
                other_sh, other_numbers = kept_info[key]
                if cfg.same_numbers and other_numbers != numbers:
                    continue
                score = jaccard(sh, other_sh)
                if score >= cfg.threshold and (best is None or score > best[0]):
                    best = (score, key)
            if best is not None:
                out.quarantined.append(_quarantine(stage, p, i, Reason.DUPLICATE,
                                                   {"duplicate_of": best[1], "match": "near", "jaccard": round(best[0], 4)}))
                continue
            kept_info[p["id"]] = (sh, numbers)
            lsh.insert(p["id"], m)
        exact[norm] = p["id"]
        out.rows.append(p)
    return out.check_counts()


def load_eval_sets(specs: Sequence[str]) -> dict[str, list[dict]]:
    """Read every eval set named in the config (problem rows, keyed by the spec as given)."""
    from orca_math.seeds.readers import read_problems

    return {spec: read_problems(spec, stage="decontam").rows for spec in specs}


@dataclass
class DecontamOutput(StageOutput):
    """StageOutput plus how many problems each eval set removed."""

    removed_by_eval_set: dict[str, int] = dataclass_field(default_factory=dict)


def decontaminate(problems: Sequence[dict], eval_sets: dict[str, Sequence[dict]],
                  cfg: DecontamConfig = DecontamConfig(), stage: str = "decontam") -> DecontamOutput:
    """Remove problems that repeat or nearly repeat a question of any eval set (see module doc)."""
    out = DecontamOutput(rows_in=len(problems), removed_by_eval_set={name: 0 for name in eval_sets})
    evals = [(name, e) for name, rows in eval_sets.items() for e in rows]
    if not problems or not evals:
        out.rows = list(problems)
        return out.check_counts()

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.neighbors import NearestNeighbors

    eval_norm = [normalize_question(e["question"]) for _, e in evals]
    eval_unigrams = [set(t.split()) for t in eval_norm]
    eval_exact = {t: k for k, t in enumerate(eval_norm)}
    eval_ngrams: dict[str, int] = {}
    if cfg.ngram_words:
        for k, t in enumerate(eval_norm):
            tokens = t.split()
            for i in range(len(tokens) - cfg.ngram_words + 1):
                eval_ngrams.setdefault(" ".join(tokens[i : i + cfg.ngram_words]), k)

    vectorizer = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b")
    eval_matrix = vectorizer.fit_transform(eval_norm)
    index = NearestNeighbors(n_neighbors=min(cfg.tfidf_neighbors, len(evals)), metric="cosine", algorithm="brute")
    index.fit(eval_matrix)
    problem_norm = [normalize_question(p["question"]) for p in problems]
    distances, neighbours = index.kneighbors(vectorizer.transform(problem_norm))

    for i, (p, norm) in enumerate(zip(problems, problem_norm)):
        hit: dict | None = None
        if norm in eval_exact:
            hit = {"match": "exact", "eval": eval_exact[norm], "unigram_jaccard": 1.0}
        if hit is None:
            unigrams = set(norm.split())
            for dist, k in zip(distances[i], neighbours[i]):
                score = jaccard(unigrams, eval_unigrams[k])
                if score >= cfg.unigram_jaccard and (hit is None or score > hit["unigram_jaccard"]):
                    hit = {"match": "tfidf+unigram_jaccard", "eval": int(k), "unigram_jaccard": round(score, 4),
                           "tfidf_cosine": round(1.0 - float(dist), 4)}
        if hit is None and eval_ngrams:
            tokens = norm.split()
            for j in range(len(tokens) - cfg.ngram_words + 1):
                k = eval_ngrams.get(" ".join(tokens[j : j + cfg.ngram_words]))
                if k is not None:
                    hit = {"match": f"{cfg.ngram_words}-gram", "eval": k,
                           "unigram_jaccard": round(jaccard(set(tokens), eval_unigrams[k]), 4)}
                    break
        if hit is None:
            out.rows.append(p)
            continue
        name, e = evals[hit.pop("eval")]
        out.removed_by_eval_set[name] += 1
        out.quarantined.append(_quarantine(stage, p, i, Reason.CONTAMINATED,
                                           {"eval_set": name, "eval_id": e["id"], "eval_question": e["question"], **hit}))
    return out.check_counts()
