"""The generate/solve pipeline: committed parts, resume after SIGKILL, Ray Data end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from orca_math.common.config import load_stage_config
from orca_math.common.contract import Flow, SeedOutput
from orca_math.common.records import read_parquet
from orca_math.common.schema import PROBLEM, QUARANTINE
from orca_math.generate.config import ExecutionConfig, GenerateConfig, SolveStageConfig
from orca_math.generate.parts import PartStore, PartStoreError
from orca_math.generate.prompts import PROMPT_VERSION
from orca_math.generate.scripted import ScriptedTeacher
from orca_math.seeds import read_problems
from orca_math.teacher import TeacherConfig
from orca_math.teacher.scripted import ScriptedEndpoint

REPO = Path(__file__).resolve().parents[1]


def seed_rows(n: int, start: int = 0) -> list[dict]:
    return read_problems("gsm8k-train", limit=start + n).rows[start:]


def one_kept(seed: dict) -> SeedOutput:
    out = SeedOutput()
    out.keep(Flow.SEED, seed)
    return out


# --- Parts: the resume state (no Ray) ---------------------------------------------------------

def test_committed_parts_name_their_seeds_and_leftovers_of_a_crash_are_removed(tmp_path, gsm8k_dir):
    store = PartStore(tmp_path / "parts")
    seeds = seed_rows(4)
    store.commit(seeds[:2], one_kept(seeds[0]).add(one_kept(seeds[1])))
    (tmp_path / "parts" / ".tmp-crashed").mkdir()
    (tmp_path / "parts" / ".tmp-crashed" / "problems.parquet").write_bytes(b"half a file")
    assert store.remove_incomplete() == 1
    assert store.committed_seeds() == {s["id"]: store.part_dirs()[0].name for s in seeds[:2]}
    content = store.read_all()
    assert [p["id"] for p in content.problems] == [s["id"] for s in seeds[:2]]
    assert content.candidates == 2 and content.parts == 1


def test_a_seed_in_two_parts_refuses_to_resume(tmp_path, gsm8k_dir):
    store = PartStore(tmp_path / "parts")
    seeds = seed_rows(3)
    store.commit(seeds[:2], SeedOutput())
    store.commit(seeds[1:], SeedOutput())
    with pytest.raises(PartStoreError, match="is also in"):
        store.committed_seeds()


def test_a_smaller_limit_keeps_parts_past_it_and_redoes_a_part_it_cuts(tmp_path, gsm8k_dir):
    store = PartStore(tmp_path / "parts")
    seeds = seed_rows(6)
    first, cut, past = store.commit(seeds[:2], SeedOutput()), store.commit(seeds[2:4], SeedOutput()), \
        store.commit(seeds[4:], SeedOutput())
    wanted = {s["id"] for s in seeds[:3]}
    assert store.committed_seeds(wanted) == {s["id"]: first.name for s in seeds[:2]}
    assert not cut.exists() and past.exists()  # seed 3 is done again; seeds 5-6 wait for a larger limit
    assert store.read_all({first.name}).parts == 1


def test_execution_and_endpoint_plumbing_leave_the_identity_and_limit_resumes():
    base = GenerateConfig()
    assert base.identity() == base.model_copy(update={
        "execution": ExecutionConfig(workers=4),
        "teacher": base.teacher.model_copy(update={"base_url": "http://elsewhere/v1", "max_in_flight": 1})}).identity()
    assert base.identity() != base.model_copy(update={
        "teacher": base.teacher.model_copy(update={"model": "another-teacher"})}).identity()
    assert GenerateConfig.resumable_fields == SolveStageConfig.resumable_fields == {"limit"}


def test_generate_config_takes_the_shared_teacher_section_and_flags_win(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("teacher: {base_url: 'http://a/v1', model: m1, max_tokens: 99}\n"
                        "generate: {teacher: {model: m2}, suggester_editor: {rounds: 3}}\n")
    cfg = load_stage_config(GenerateConfig, cfg_file, "generate", {"teacher.base_url": "http://b/v1"})
    assert (cfg.teacher.base_url, cfg.teacher.model, cfg.teacher.max_tokens) == ("http://b/v1", "m2", 99)
    assert cfg.suggester_editor.rounds == 3
    assert load_stage_config(GenerateConfig, "default", "generate") == GenerateConfig()


def test_final_pass_dedups_and_decontaminates_committed_parts_and_counts_by_flow(tmp_path, gsm8k_dir):
    """All seeds committed: no Ray, only the final pass (what a resumed run ends with)."""
    from orca_math.common.manifest import RunManifest
    from orca_math.common.runner import StageContext
    from orca_math.generate.flows import Candidate, problem_row
    from orca_math.generate.parsing import Solution
    from orca_math.generate.stage import generate_stage

    seeds = seed_rows(3)
    seeds[2]["provenance"] = {**seeds[2]["provenance"], "flow": Flow.ASK_ME_ANYTHING}  # a seed made by an older run
    seeds_file = tmp_path / "seeds.jsonl"
    seeds_file.write_text("\n".join(json.dumps(
        {k: s[k] for k in ("id", "question", "reference_answer", "reference_solution", "provenance")}) for s in seeds))
    test_question = read_problems(str(gsm8k_dir / "test.jsonl"), limit=1).rows[0]["question"]
    cfg = GenerateConfig(seeds=str(seeds_file), teacher=TeacherConfig(model="t"))
    store = PartStore(tmp_path / "out" / "parts")
    read = read_problems(str(seeds_file)).rows
    out = SeedOutput()
    for s in read:
        out.keep(Flow.SEED, problem_row(Candidate(s, s["question"], Flow.SEED, 0, 0, solution=s["reference_solution"]), None, "t"))
    sol = Solution("#### 1", "1")
    generated = [(read[1]["question"], Flow.ASK_ME_ANYTHING), (test_question, Flow.SUGGESTER_EDITOR),
                 ("A brand new problem about 3 kites and 4 strings?", Flow.ASK_ME_ANYTHING)]
    for i, (q, flow) in enumerate(generated):
        out.keep(flow, problem_row(Candidate(read[0], q, flow, 1, i), sol, "t"))
    store.commit(read, out)

    out_dir = tmp_path / "out"  # the stage resuming (the runner would clear a folder it has no entry for)
    summary = generate_stage(cfg, out_dir, progress=False).run(
        StageContext("generate", out_dir, resume=True, manifest=RunManifest(out_dir / "manifest.json")))
    assert summary["seeds_this_run"] == 0 and summary["seeds_resumed"] == 3
    assert (summary["candidates"], summary["kept"], summary["quarantined"]) == (6, 4, 2)
    assert (summary["removed_duplicates"], summary["removed_contaminated"]) == (1, 1)
    assert summary["contaminated_by_eval_set"] == {"gsm8k-test": 1}
    assert summary["by_flow"] == {
        Flow.SEED: {"candidates": 3, "kept": 3},
        Flow.ASK_ME_ANYTHING: {"candidates": 2, "kept": 1, "duplicate": 1},
        Flow.SUGGESTER_EDITOR: {"candidates": 1, "kept": 0, "contaminated": 1},
    }
    problems = read_parquet(out_dir / "problems", PROBLEM)
    assert {p["question"] for p in problems} == {s["question"] for s in read} | {generated[2][0]}


# --- On Ray, against a scripted OpenAI-compatible endpoint --------------------------------------

def scripted_config(base_url: str, limit: int, **execution) -> GenerateConfig:
    teacher = TeacherConfig(base_url=base_url, model="scripted", api_key_env=None, max_retries=1, max_in_flight=16)
    return GenerateConfig(seeds="gsm8k-train", limit=limit, teacher=teacher,
                          execution=ExecutionConfig(**{"seeds_per_part": 3, "num_cpus_per_worker": 0.25, **execution}))


def read_outputs(out: Path) -> tuple[list[dict], list[dict], dict]:
    problems = sorted(read_parquet(out / "problems", PROBLEM), key=lambda p: p["id"])
    quarantined = sorted(read_parquet(out / "quarantine" / "candidates.parquet", QUARANTINE),
                         key=lambda q: (q["source"], q["stage"], q["row"] or 0, q["raw"]))
    manifest = json.loads((out / "manifest.json").read_text())["stages"]["generate"]
    return problems, quarantined, manifest


def seeds_covered(problems: list[dict], quarantined: list[dict]) -> Counter:
    """Rows per seed: kept rows name it in provenance, quarantined rows in their source."""
    c = Counter((p["provenance"]["seed_id"] or p["id"]) for p in problems)
    c.update(q["source"].rsplit(":", 1)[1] for q in quarantined if q["stage"] == "generate")
    return c


@pytest.mark.slow
def test_generate_on_ray_accounts_for_every_candidate_and_a_rerun_is_free(ray_local, tmp_path, gsm8k_dir):
    from orca_math.generate.stage import run_generate

    with ScriptedEndpoint(reply=ScriptedTeacher()) as ep:
        cfg = scripted_config(ep.base_url, limit=9)
        summary = run_generate(cfg, tmp_path / "out", progress=False)
        hits = ep.hits
        problems, quarantined, manifest = read_outputs(tmp_path / "out")

        assert summary["status"] == "done" and summary == manifest
        assert manifest["seeds_in"] == 9 and manifest["parts"] == 3
        assert manifest["candidates"] == manifest["kept"] + manifest["quarantined"] > 9
        assert (manifest["kept"], manifest["quarantined"]) == (len(problems), len(quarantined))
        assert sum(manifest["quarantine_reasons"].values()) == len(quarantined)
        assert {"parse failure", "disagreeing solves"} <= set(manifest["quarantine_reasons"])
        for flow, counts in manifest["by_flow"].items():
            assert counts["candidates"] == sum(v for k, v in counts.items() if k != "candidates"), flow
        usage = manifest["teacher_usage"]
        assert set(usage) == {Flow.ASK_ME_ANYTHING, Flow.SUGGESTER_EDITOR, "solve_and_verify"}
        assert sum(u["requests"] for u in usage.values()) == hits
        assert usage[Flow.ASK_ME_ANYTHING]["requests"] == 9 and usage[Flow.ASK_ME_ANYTHING]["completion_tokens"] > 0

        seeds = {s["id"] for s in seed_rows(9)}
        assert set(seeds_covered(problems, quarantined)) == seeds  # every seed left a trace
        generated = [p for p in problems if p["provenance"]["flow"] != Flow.SEED]
        assert generated and all(p["provenance"]["seed_id"] in seeds and p["provenance"]["teacher_model"] == "scripted"
                                 and p["provenance"]["prompt_version"] == PROMPT_VERSION for p in generated)
        # The last round that succeeded (round 1 only when round 2's reply was malformed).
        rounds = Counter(p["provenance"]["round"] for p in generated if p["provenance"]["flow"] == Flow.SUGGESTER_EDITOR)
        assert set(rounds) <= {1, 2} and rounds[2] > 0
        assert all(p["reference_solution"].endswith(f"#### {p['reference_answer']}") for p in problems)

        # The stage is done: a rerun is skipped, sends no request and leaves the outputs as they were.
        again = run_generate(cfg, tmp_path / "out", progress=False)
        assert ep.hits == hits and again == summary
        assert read_outputs(tmp_path / "out") == (problems, quarantined, manifest)


@pytest.mark.slow
def test_a_larger_limit_asks_the_teacher_for_the_new_seeds_only(ray_local, tmp_path, gsm8k_dir):
    from orca_math.generate import prompts
    from orca_math.generate.stage import run_generate

    seeds = seed_rows(8)
    asked: list[str] = []  # the seeds Ask Me Anything (one request per seed) was asked about

    with ScriptedEndpoint(reply=ScriptedTeacher()) as ep:
        teacher = ep.reply

        def counting(body):
            messages = body["messages"]
            if messages[0]["content"] == prompts.ASK_ME_ANYTHING_SYSTEM:
                asked.extend(s["id"] for s in seeds if f"Problem: {s['question']}\n" in messages[1]["content"])
            return teacher(body)

        ep.reply = counting
        first = run_generate(scripted_config(ep.base_url, limit=4), tmp_path / "out", progress=False)
        assert sorted(asked) == sorted(s["id"] for s in seeds[:4])
        parts_before = set(PartStore(tmp_path / "out" / "parts").part_dirs())
        asked.clear()
        more = run_generate(scripted_config(ep.base_url, limit=8), tmp_path / "out", progress=False)
        asked_resumed = list(asked)
        run_generate(scripted_config(ep.base_url, limit=8), tmp_path / "clean", progress=False)

    assert sorted(asked_resumed) == sorted(s["id"] for s in seeds[4:])  # the resumed run: only the 4 new seeds
    assert parts_before <= set(PartStore(tmp_path / "out" / "parts").part_dirs())
    assert (first["seeds_this_run"], more["seeds_this_run"], more["seeds_resumed"]) == (4, 4, 4)
    assert read_outputs(tmp_path / "out")[:2] == read_outputs(tmp_path / "clean")[:2]


@pytest.mark.slow
def test_endpoint_outage_fails_the_run_without_losing_seeds_and_a_rerun_completes(ray_local, tmp_path, gsm8k_dir):
    from orca_math.generate.stage import run_generate

    with ScriptedEndpoint(reply=ScriptedTeacher()) as ep:
        cfg = scripted_config(ep.base_url, limit=6, seeds_per_part=2, parts_in_flight_per_worker=1)
        cfg = cfg.model_copy(update={"teacher": cfg.teacher.model_copy(update={"max_retries": 0})})
        healthy = ep.reply
        calls = {"n": 0}

        def outage_after_30(body):  # the endpoint dies for good after 30 requests
            calls["n"] += 1
            if calls["n"] > 30:
                raise ConnectionError("endpoint down")
            return healthy(body)

        ep.reply = outage_after_30
        with pytest.raises(Exception) as failed:
            run_generate(cfg, tmp_path / "out", progress=False)
        assert "APIConnectionError" in str(failed.value)  # the openai client's error, through Ray Data
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())["stages"]["generate"]
        assert manifest["status"] == "failed"
        done_before = PartStore(tmp_path / "out" / "parts").committed_seeds()
        assert len(done_before) < 6

        ep.reply = healthy
        resumed = run_generate(cfg, tmp_path / "out", progress=False)
        run_generate(cfg, tmp_path / "clean", progress=False)
    assert resumed["status"] == "done" and resumed["seeds_resumed"] == len(done_before)
    assert read_outputs(tmp_path / "out")[:2] == read_outputs(tmp_path / "clean")[:2]


def _kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL the job and everything it started (its local Ray included): one session, by pid."""
    pids = subprocess.run(["ps", "-o", "pid=", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


@pytest.mark.slow
def test_generate_killed_mid_run_resumes_to_the_same_result_as_an_uninterrupted_run(ray_local, tmp_path, gsm8k_dir):
    from orca_math.generate.stage import run_generate

    n = 8
    # Slow replies and one seed per part: parts commit one by one while the job is killed.
    with ScriptedEndpoint(reply=ScriptedTeacher(delay_s=0.15)) as ep:
        killed = tmp_path / "killed"
        cmd = [sys.executable, "-m", "orca_math.cli", "generate", "--seeds", "gsm8k-train", "--limit", str(n),
               "--teacher-url", ep.base_url, "--teacher-model", "scripted", "--max-in-flight", "4",
               "--config", str(tmp_path / "job.yaml"), "--out", str(killed), "--no-progress"]
        (tmp_path / "job.yaml").write_text(
            "teacher: {api_key_env: null, max_retries: 1}\n"
            "generate: {execution: {seeds_per_part: 1, parts_in_flight_per_worker: 1, num_cpus_per_worker: 0.25}}\n")
        proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={**os.environ, "RAY_ADDRESS": "local"})  # its own Ray, killed with it
        parts = PartStore(killed / "parts")
        deadline = time.time() + 240
        try:
            while len(parts.part_dirs()) < 2:
                assert proc.poll() is None, "the job ended before it could be killed"
                assert time.time() < deadline, "no part committed in time"
                time.sleep(0.1)
        finally:
            _kill_session(proc)
        committed_before = {p.name for p in parts.part_dirs()}
        assert 2 <= len(committed_before) < n, "the job was not killed mid-run"
        assert not (killed / "manifest.json").exists() or \
            json.loads((killed / "manifest.json").read_text())["stages"]["generate"]["status"] == "running"

        cfg = load_stage_config(GenerateConfig, tmp_path / "job.yaml", "generate", {
            "seeds": "gsm8k-train", "limit": n, "teacher.base_url": ep.base_url, "teacher.model": "scripted"})
        resumed = run_generate(cfg, killed, progress=False)
        ep.reply.delay_s = 0.0
        run_generate(cfg, tmp_path / "clean", progress=False)

    assert resumed["seeds_resumed"] == len(committed_before) and resumed["seeds_this_run"] == n - len(committed_before)
    assert committed_before <= {p.name for p in parts.part_dirs()}  # committed parts were kept, not redone
    owners = parts.committed_seeds()
    assert sorted(owners) == sorted(s["id"] for s in seed_rows(n))  # each seed in exactly one part
    resumed_out, clean_out = read_outputs(killed), read_outputs(tmp_path / "clean")
    assert resumed_out[0] == clean_out[0]  # identical problems
    assert resumed_out[1] == clean_out[1]  # identical quarantine
    for key in ("seeds_in", "candidates", "kept", "quarantined", "quarantine_reasons", "by_flow", "teacher_usage",
                "removed_duplicates", "removed_contaminated"):
        assert resumed_out[2][key] == clean_out[2][key], key
    assert len({p["id"] for p in resumed_out[0]}) == len(resumed_out[0])  # nothing produced twice


@pytest.mark.slow
def test_solve_keeps_teacher_solutions_that_match_gold(ray_local, tmp_path, gsm8k_dir):
    from orca_math.generate.scripted import answer_of
    from orca_math.generate.stage import run_solve

    problems = seed_rows(6)
    # Give half the problems the answer the scripted teacher will find.
    rows = [{"question": p["question"], "reference_answer": str(answer_of(p["question"])) if i % 2 == 0 else "-1",
             "id": p["id"]} for i, p in enumerate(problems)]
    data = tmp_path / "problems.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    teacher = ScriptedTeacher(unsolvable=0.0, too_long=0.0)
    with ScriptedEndpoint(reply=teacher) as ep:
        cfg = SolveStageConfig(data=str(data), teacher=TeacherConfig(base_url=ep.base_url, model="scripted",
                                                                     api_key_env=None, max_retries=1),
                               execution=ExecutionConfig(seeds_per_part=4, num_cpus_per_worker=0.25))
        summary = run_solve(cfg, tmp_path / "out", progress=False)
        assert ep.hits == 6  # one solve each (verify is off by default for solve)
    kept = read_parquet(tmp_path / "out" / "problems", PROBLEM)
    assert sorted(p["id"] for p in kept) == sorted(r["id"] for r in rows[::2])
    assert all(p["provenance"]["teacher_model"] == "scripted" and p["reference_solution"].startswith("Step 1")
               for p in kept)
    assert summary["quarantine_reasons"] == {"wrong answer": 3}
    assert summary["seeds_in"] == 7 and summary["seeds_unreadable"] == 1
    assert len(read_parquet(tmp_path / "out" / "quarantine" / "seeds.parquet", QUARANTINE)) == 1
