"""The judge on a real local Ray Serve: HTTP, auth, limits, handle + Ray Data, LLM mode, autoscaling."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from orca_math.judge import JudgeConfig, JudgeServeConfig
from orca_math.teacher import TeacherConfig
from orca_math.teacher.scripted import ScriptedEndpoint, free_port

pytestmark = pytest.mark.slow

ITEMS = [
    {"question": "How many clips?", "reference": "#### 72", "candidate": "48 + 24 = 72\n#### 72"},
    {"question": "How many clips?", "reference": "#### 72", "candidate": "The answer is 73."},
    {"question": "How many clips?", "reference": "72", "candidate": "I don't know."},
    {"question": "What part?", "reference": "0.75", "candidate": "The final answer is 3/4"},
]
EXPECTED = [(True, "72"), (False, "73"), (False, None), (True, "3/4")]

# Small replicas so several judge apps fit next to each other on the 2-CPU test Ray.
SMALL = dict(num_cpus=0.25, max_replicas=1, max_items_per_request=50, max_request_bytes=64 * 1024,
             readiness_timeout_s=90)


def _replicas_running(app: str) -> int:
    from ray import serve

    status = serve.status().applications.get(app)
    if status is None or "Judge" not in status.deployments:
        return 0
    states = status.deployments["Judge"].replica_states
    return sum(n for state, n in states.items() if str(getattr(state, "value", state)) == "RUNNING")


@pytest.fixture(scope="module")
def serve_port(ray_local):
    from ray import serve

    port = free_port()
    yield port
    serve.shutdown()  # give the CPUs back to later test modules


@pytest.fixture(scope="module")
def judge_url(serve_port):
    from orca_math.judge.serve_judge import start_judge

    url = start_judge(JudgeConfig(method="exact"), JudgeServeConfig(**SMALL), port=serve_port)
    assert url == f"http://127.0.0.1:{serve_port}/v1"
    return url


def test_http_judge_returns_verdicts_in_order(judge_url):
    r = httpx.post(f"{judge_url}/judge", json={"items": ITEMS}, timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert [(v["correct"], v["extracted"]) for v in body["verdicts"]] == EXPECTED
    assert {v["method"] for v in body["verdicts"]} == {"exact"}
    assert body["errors"] == 0 and body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0}


def test_many_concurrent_small_requests_each_get_their_own_verdicts(judge_url):
    """Items of different requests share @serve.batch batches; answers must not get mixed up."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> tuple[int, str | None]:
        item = {"question": "q", "reference": str(i), "candidate": f"#### {i}"}
        [v] = httpx.post(f"{judge_url}/judge", json={"items": [item]}, timeout=30).json()["verdicts"]
        return i, v["extracted"] if v["correct"] else None

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(64)))
    assert results == [(i, str(i)) for i in range(64)]


def test_malformed_requests_get_4xx_naming_the_field(judge_url):
    bad = httpx.post(f"{judge_url}/judge", json={"items": [{"question": "q", "reference": "1"}]}, timeout=30)
    assert bad.status_code == 422 and bad.json()["detail"].startswith("items[0].candidate:")
    wrong_type = httpx.post(f"{judge_url}/judge", json={"items": [ITEMS[0], {**ITEMS[0], "reference": 7}]}, timeout=30)
    assert wrong_type.status_code == 422 and wrong_type.json()["detail"].startswith("items[1].reference:")
    not_json = httpx.post(f"{judge_url}/judge", content=b"{oops", timeout=30)
    assert not_json.status_code == 400 and not_json.json()["detail"].startswith("body:")


def test_oversized_batches_are_refused_with_413(judge_url):
    too_many = httpx.post(f"{judge_url}/judge", json={"items": [ITEMS[0]] * 51}, timeout=30)
    assert too_many.status_code == 413 and "at most 50" in too_many.json()["detail"]
    too_big = httpx.post(f"{judge_url}/judge", json={"items": [{**ITEMS[0], "candidate": "x" * 70_000}]}, timeout=30)
    assert too_big.status_code == 413 and too_big.json()["detail"].startswith("body:")
    # The replica is still there and serving.
    assert httpx.post(f"{judge_url}/judge", json={"items": ITEMS[:1]}, timeout=30).status_code == 200


def test_handle_call_without_http(judge_url):
    from orca_math.judge.serve_judge import judge_batch_via_handle, judge_handle

    verdicts = judge_batch_via_handle(judge_handle(), [{**item, "sample_id": "ignored"} for item in ITEMS])
    assert [(v["correct"], v["extracted"]) for v in verdicts] == EXPECTED
    assert all(v["error"] is None and v["prompt_tokens"] == 0 for v in verdicts)


def test_a_second_app_on_another_port_reports_where_serve_really_listens(serve_port, judge_url):
    """Serve has one HTTP port per Ray instance: asking for another must not return a dead URL."""
    from orca_math.judge.serve_judge import start_judge, stop_judge

    url = start_judge(JudgeConfig(), JudgeServeConfig(**SMALL, route_prefix="/other"), port=free_port(),
                      app_name="orca-judge-other")
    try:
        assert url == f"http://127.0.0.1:{serve_port}/other/v1"
        assert httpx.post(f"{url}/judge", json={"items": ITEMS[:1]}, timeout=30).json()["verdicts"][0]["correct"]
    finally:
        stop_judge("orca-judge-other")


def test_bearer_token_is_required_on_every_route_when_set(serve_port, monkeypatch):
    from orca_math.judge.serve_judge import start_judge, stop_judge

    monkeypatch.setenv("ORCA_TEST_JUDGE_TOKEN", "s3cret-token")
    cfg = JudgeServeConfig(**SMALL, auth_token_env="ORCA_TEST_JUDGE_TOKEN", route_prefix="/secure")
    url = start_judge(JudgeConfig(), cfg, port=serve_port, app_name="orca-judge-secure")
    try:
        for method, path, kwargs in [("POST", "/judge", {"json": {"items": ITEMS}}), ("GET", "/health", {})]:
            assert httpx.request(method, url + path, timeout=30, **kwargs).status_code == 401
            wrong = httpx.request(method, url + path, headers={"Authorization": "Bearer nope"}, timeout=30, **kwargs)
            assert wrong.status_code == 401 and "s3cret" not in wrong.text
            ok = httpx.request(method, url + path, headers={"Authorization": "Bearer s3cret-token"}, timeout=30, **kwargs)
            assert ok.status_code == 200
    finally:
        stop_judge("orca-judge-secure")


def _scripted_verdict(body: dict) -> str:
    student = body["messages"][-1]["content"].split("Student answer:", 1)[1]
    if "garbled" in student:
        return "I am not sure what to say."
    return "Error Analysis: ...\nFinal Verdict: " + ("Correct" if "72" in student else "Incorrect")


def test_llm_mode_through_serve_uses_the_teacher_and_reports_unjudged_items(serve_port):
    from orca_math.judge.serve_judge import start_judge, stop_judge

    with ScriptedEndpoint(reply=_scripted_verdict) as teacher:
        teacher_cfg = TeacherConfig(base_url=teacher.base_url, model="scripted", api_key_env=None, max_retries=1, timeout_s=5)
        url = start_judge(JudgeConfig(method="llm", llm_attempts=2), JudgeServeConfig(**SMALL, route_prefix="/llm"),
                          teacher_cfg, port=serve_port, app_name="orca-judge-llm")
        try:
            items = [{"question": "q", "reference": "72", "candidate": c} for c in ("so 72", "so 27", "garbled")]
            body = httpx.post(f"{url}/judge", json={"items": items}, timeout=60).json()
        finally:
            stop_judge("orca-judge-llm")
        hits = teacher.hits
    verdicts = body["verdicts"]
    assert [(v["correct"], v["method"]) for v in verdicts] == [(True, "llm"), (False, "llm"), (None, "llm")]
    assert verdicts[2]["error"] and "Final Verdict" in verdicts[2]["error"]
    assert body["errors"] == 1 and hits == 4  # one call each, plus one retry for the garbled one
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0


def test_judge_scales_up_under_load_and_back_down(serve_port):
    """Each request holds a replica ~0.4 s (a slow teacher); 6 clients push it past 1 ongoing request."""
    from orca_math.judge.serve_judge import start_judge, stop_judge

    app = "orca-judge-autoscale"
    cfg = JudgeServeConfig(min_replicas=1, max_replicas=2, target_ongoing_requests=1, upscale_delay_s=1,
                           downscale_delay_s=5, num_cpus=0.25, max_ongoing_requests=8, route_prefix="/scale",
                           readiness_timeout_s=90)
    with ScriptedEndpoint(reply=lambda body: "Final Verdict: Correct", delay_s=0.4) as teacher:
        teacher_cfg = TeacherConfig(base_url=teacher.base_url, model="scripted", api_key_env=None, timeout_s=10)
        url = start_judge(JudgeConfig(method="llm"), cfg, teacher_cfg, port=serve_port, app_name=app)
        stop_load = threading.Event()

        def client() -> None:
            item = {"question": "q", "reference": "1", "candidate": "1"}
            with httpx.Client(timeout=30) as http:
                while not stop_load.is_set():
                    http.post(f"{url}/judge", json={"items": [item]})

        threads = [threading.Thread(target=client, daemon=True) for _ in range(6)]
        try:
            assert _replicas_running(app) == 1
            for t in threads:
                t.start()
            peak, deadline = 1, time.monotonic() + 60
            while time.monotonic() < deadline and peak < 2:
                time.sleep(1)
                peak = max(peak, _replicas_running(app))
            stop_load.set()
            for t in threads:
                t.join(timeout=35)
            assert peak == 2, "judge did not scale up under load within 60 s"

            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and _replicas_running(app) > 1:
                time.sleep(1)
            assert _replicas_running(app) == 1, "judge did not scale back down within 90 s of idling"
        finally:
            stop_load.set()
            stop_judge(app)
