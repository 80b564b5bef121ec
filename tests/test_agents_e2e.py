"""End to end: ``orca-math generate`` on 8 GSM8K seeds against the real self-hosted teacher
(the tiny model on Ray Serve + vLLM CPU). Its replies are nonsense: the run must still finish and
account for every candidate."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from orca_math.common.records import read_parquet
from orca_math.common.schema import PROBLEM, QUARANTINE
from orca_math.generate.contract import Reason
from orca_math.teacher.scripted import free_port
from orca_math.teacher.serve_teacher import TeacherServeConfig, served_model_id

pytestmark = pytest.mark.slow

# The Ask Me Anything prompt (with its worked example) is ~600 tiny-tokenizer tokens.
CPU_TEACHER = TeacherServeConfig(accelerator="cpu", max_model_len=1024, readiness_timeout_s=300)


def test_generate_on_8_gsm8k_seeds_against_the_self_hosted_tiny_teacher(ray_local, tiny_model, tmp_path, gsm8k_dir,
                                                                       capsys):
    from ray import serve

    from orca_math.cli import main
    from orca_math.teacher.serve_teacher import start_teacher, stop_teacher

    out = tmp_path / "generated"
    try:
        base_url = start_teacher(str(tiny_model), CPU_TEACHER, port=free_port())
        rc = main(["generate", "--config", "tiny", "--seeds", "gsm8k-train", "--limit", "8",
                   "--teacher-url", base_url, "--teacher-model", served_model_id(str(tiny_model), CPU_TEACHER),
                   "--out", str(out), "--no-progress"])
    finally:
        stop_teacher()
        serve.shutdown()  # give the CPUs back to later tests
    assert rc == 0
    printed = capsys.readouterr().out
    assert "generate: 8 seeds ->" in printed

    m = json.loads((out / "manifest.json").read_text())["stages"]["generate"]
    problems = read_parquet(out / "problems", PROBLEM)
    quarantined = read_parquet(out / "quarantine" / "candidates.parquet", QUARANTINE)
    assert m["status"] == "done" and m["seeds_in"] == 8 and m["seeds_done"] == 8
    assert m["candidates"] == m["kept"] + m["quarantined"] == len(problems) + len(quarantined)
    assert m["quarantine_reasons"] == dict(Counter(q["reason"] for q in quarantined))
    assert set(m["quarantine_reasons"]) <= set(Reason)
    # Nonsense replies: Ask Me Anything and round 1 of Suggester+Editor fail to parse on every seed.
    assert m["by_flow"]["ask_me_anything"]["candidates"] >= 8
    assert m["by_flow"]["suggester_editor"]["candidates"] >= 8
    assert m["quarantine_reasons"]["parse failure"] >= 16
    # The seeds carry their GSM8K solutions, so they are the kept rows unless found contaminated.
    assert m["by_flow"]["seed"]["candidates"] == 8
    usage = m["teacher_usage"]
    assert usage["ask_me_anything"]["requests"] == 8 and usage["suggester_editor"]["requests"] >= 8
    assert all(u["completion_tokens"] > 0 for u in usage.values() if u["requests"])
    assert m["teacher_model"] == tiny_model.name
    # Every seed left a trace: its own row or quarantine rows from its flows.
    traced = {p["provenance"]["seed_id"] or p["id"] for p in problems}
    traced |= {q["source"].rsplit(":", 1)[1] for q in quarantined if q["stage"] == "generate"}
    assert len(traced) == 8
