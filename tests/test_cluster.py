"""cluster.yaml passes Ray's own cluster-config checks, and the GPU recipe fits the cluster it names."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER_YAML = REPO / "cluster.yaml"
MISTRAL_YAML = REPO / "configs/orca_math_mistral7b.yaml"
BUILTIN = {"CPU", "GPU", "memory", "object_store_memory"}


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


@pytest.fixture(scope="module")
def recipe():
    from orca_math.run.config import StageConfigs

    return StageConfigs.load(MISTRAL_YAML)


def _custom(resources: dict) -> dict:
    return {k: v for k, v in resources.items() if k not in BUILTIN}


def test_cluster_yaml_passes_rays_schema_and_launcher_checks(cluster):
    """What `ray up` runs before it calls the cloud: defaults filled in, then the JSON schema."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(cluster))
    validate_config(prepared)
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] in prepared["available_node_types"]
    # prepare_config put the shared setup commands in front of the per-role ones.
    assert prepared["worker_setup_commands"][: len(cluster["setup_commands"])] == cluster["setup_commands"]


def test_cluster_yaml_with_a_typo_fails_the_schema(cluster):
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    bad = copy.deepcopy(cluster)
    bad["available_node_types"]["gpu_sampler"]["min_worker"] = 1  # not a field
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(bad))


def test_head_and_two_autoscaled_gpu_worker_types(cluster):
    types = cluster["available_node_types"]
    head = types[cluster["head_node_type"]]
    assert not head["resources"].get("GPU") and not _custom(head["resources"])
    workers = {name: t for name, t in types.items() if name != cluster["head_node_type"]}
    advertised = {name: _custom(t["resources"]) for name, t in workers.items()}
    assert sorted(k for res in advertised.values() for k in res) == ["sampler", "trainer"]
    for name, t in workers.items():
        assert t["resources"]["GPU"] > 0, name
        assert 0 <= t["min_workers"] < t["max_workers"], name
    assert sum(t["min_workers"] for t in workers.values()) <= cluster["max_workers"]


def test_every_node_installs_the_project_with_the_gpu_extra(cluster):
    assert "." in cluster["file_mounts"].values()  # the repo itself is synced
    setup = " && ".join(cluster["setup_commands"])
    assert 'pip install -e ".[gpu]"' in setup
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("vllm") for dep in extras["gpu"])
    assert any(dep.startswith("deepspeed") for dep in extras["gpu"])  # the recipe trains with ZeRO-3


def test_mistral_recipe_is_the_papers(recipe):
    run = recipe.run
    assert run.student == "mistralai/Mistral-7B-v0.1"
    assert run.generate and run.rounds == 2 and run.preference_algo == "kto"
    assert type(recipe.pref_train).__name__ == "KTOTrainConfig"
    assert (recipe.practice.decoding.n, recipe.practice.decoding.temperature, recipe.practice.decoding.top_p) == (4, 0.7, 0.95)
    assert recipe.prefs.teacher_positive and recipe.prefs.borrow_negatives == 4
    assert (recipe.eval.decoding.n, recipe.eval.decoding.temperature) == (1, 0.0)
    assert recipe.sft.learning_rate == 1e-6 and recipe.sft.lr_scheduler == "constant" and recipe.sft.epochs == 1
    assert not recipe.sft.packing
    # An OpenAI-compatible teacher whose key comes from the environment only.
    assert recipe.teacher.base_url.startswith("https://") and recipe.teacher.api_key_env == "OPENAI_API_KEY"
    assert "sk-" not in MISTRAL_YAML.read_text()
    assert recipe.generate.teacher == recipe.teacher  # AgentInstruct uses the same endpoint
    assert recipe.generate.solve.max_solution_chars == 1800 and recipe.generate.suggester_editor.rounds == 2


def test_mistral_recipe_frees_the_gpu_samplers_for_the_llm_judge_and_everything_for_training(recipe):
    from orca_math.run.recipe import recipe as stages_of

    frees = {s.name: s.frees for s in stages_of(recipe, Path("RUN"))}
    # Hours of teacher calls: the sampler GPUs must not idle through them.
    assert frees["judge-1"] == frees["judge-2"] == ("gpu_engines",)
    # Ray Train's workers need the engine hosts' GPUs and the judge's CPUs.
    assert frees["sft"] == frees["kto-1"] == frees["kto-2"] == ("engines", "judge")
    # A round's shuffle needs the hosts' CPUs.
    assert frees["prefs-1"] == frees["prefs-2"] == ("engines",)
    assert not any(frees[n] for n in frees if n.startswith(("eval-", "practice-", "generate", "seeds")))


def test_mistral_recipe_runs_on_gpus_in_bf16_with_zero3(recipe, tmp_path):
    from orca_math.common.sampling.vllm_sampler import engine_kwargs
    from orca_math.train.trainers import trl_kwargs

    for engine in (recipe.eval.engine, recipe.practice.engine):
        kw = engine_kwargs(engine.model_copy(update={"model": "m"}))
        assert kw["dtype"] == "bfloat16" and kw["tensor_parallel_size"] == 1  # 7B fits one 48 GB GPU
    for algo, cfg in (("sft", recipe.sft), ("kto", recipe.pref_train)):
        assert cfg.scaling.use_gpu and cfg.scaling.num_workers == 8
        kw = trl_kwargs(algo, cfg, tmp_path)
        assert kw["bf16"] and kw["gradient_checkpointing"] and not kw["use_cpu"]
        zero = kw["deepspeed"]["zero_optimization"]
        assert zero["stage"] == 3 and zero["stage3_gather_16bit_weights_on_model_save"]


def _fits(request: dict[str, float], node: dict[str, float]) -> int:
    """How many copies of ``request`` one node of resources ``node`` holds."""
    return min(math.floor(node.get(k, 0) / v) for k, v in request.items() if v > 0)


def test_mistral_recipe_requests_only_what_the_cluster_advertises(recipe, cluster):
    types = {n: t for n, t in cluster["available_node_types"].items() if n != cluster["head_node_type"]}

    def capacity(request: dict[str, float]) -> tuple[set[str], int]:
        """Node types that can hold ``request`` and how many copies all of them together can."""
        fit = {n: _fits(request, t["resources"]) for n, t in types.items()}
        return {n for n, k in fit.items() if k}, sum(k * types[n]["max_workers"] for n, k in fit.items())

    for stage, engine in (("eval", recipe.eval.engine), ("practice", recipe.practice.engine)):
        per_engine = {"CPU": 1, "GPU": engine.tensor_parallel_size, **engine.resources}
        where, most = capacity(per_engine)
        assert where == {"gpu_sampler"}, stage
        assert engine.concurrency <= most, f"{stage}: {engine.concurrency} engines, room for {most}"
    for stage, cfg in (("sft", recipe.sft), ("kto", recipe.pref_train)):
        where, most = capacity(cfg.scaling.resources_per_worker)
        assert where == {"gpu_trainer"}, stage
        # PACK: the 8 workers fit on one trainer node, where ZeRO-3 talks over NVLink.
        assert _fits(cfg.scaling.resources_per_worker, types["gpu_trainer"]["resources"]) >= cfg.scaling.num_workers
    # CPU-only work never asks for GPU-node resources: it runs on the head.
    assert recipe.serve.judge.num_cpus <= cluster["available_node_types"]["head"]["resources"]["CPU"]
