"""The run folder: what may be one, the relative --out refused under `ray job submit`, model folders
copied off a network filesystem to node-local scratch once, and the node types a config asks for."""

from __future__ import annotations

from pathlib import Path

import pytest

from orca_math.common import storage
from orca_math.common.storage import StorageError, check_run_folder, custom_requests, filesystem_type, local_model

REPO = Path(__file__).resolve().parents[1]


def test_a_relative_out_under_ray_job_submit_is_refused_saying_why(monkeypatch):
    check_run_folder("runs/x")  # a laptop: fine
    monkeypatch.setenv(storage.RAY_JOB_ENV, "{}")
    with pytest.raises(StorageError, match=r"--out runs/x is relative: under `ray job submit` it would land in "
                                           r"the job's copy of its working dir on the head node"):
        check_run_folder("runs/x")
    check_run_folder("/mnt/shared/runs/x")


def test_a_cloud_uri_is_not_a_run_folder():
    with pytest.raises(StorageError, match=r"cloud URIs are not a run folder; mount the bucket"):
        check_run_folder("s3://bucket/runs/x")


def test_the_command_ends_in_one_line_before_anything_starts(monkeypatch, capsys):
    from orca_math.cli import main

    monkeypatch.setenv(storage.RAY_JOB_ENV, "{}")
    assert main(["run", "--config", "tiny", "--out", "runs/x"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("orca-math run failed: StorageError: --out runs/x is relative")
    assert not Path("runs/x").exists()


def test_filesystem_type_reads_the_mount_table():
    assert filesystem_type("/proc/self") == "proc"
    assert filesystem_type("/") != ""


def test_a_model_on_a_network_filesystem_is_copied_to_scratch_once(tmp_path, monkeypatch):
    model = tmp_path / "models" / "M1"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"x" * 100)
    monkeypatch.setenv(storage.SCRATCH_ENV, str(tmp_path / "scratch"))
    assert local_model(str(model)) == str(model)  # a local disk: loaded where it is
    monkeypatch.setattr(storage, "NETWORK_FS", (filesystem_type(tmp_path),))  # this filesystem counts as NFS
    local = Path(local_model(str(model)))
    assert local.parent == tmp_path / "scratch" / "models" and (local / "model.safetensors").read_bytes() == b"x" * 100
    assert local_model(str(model)) == str(local)  # the same files: the same copy
    (model / "model.safetensors").write_bytes(b"y" * 101)
    assert local_model(str(model)) != str(local)  # new weights: a new copy
    assert local_model("mistralai/Mistral-7B-v0.1") == "mistralai/Mistral-7B-v0.1"


def test_the_7b_preset_asks_for_the_sampler_and_trainer_node_types():
    from orca_math.run.config import StageConfigs

    cfgs = StageConfigs.load(REPO / "configs/orca_math_mistral7b.yaml")
    found = custom_requests([cfgs.eval, cfgs.practice, cfgs.sft, cfgs.pref_train])
    assert found == [{"sampler": 1.0}, {"trainer": 1.0}]
