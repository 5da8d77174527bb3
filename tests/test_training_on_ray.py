"""Training as Ray jobs: with ZHUFU_RAY_ADDRESS set, the training assets submit their trainer to a real
local Ray head (token authentication on) through dagster-ray's Pipes client, and the model, its
metrics and its registry row come back as with a local subprocess; the token stays out of Dagster's
event log and of the job's environment."""

import dagster as dg
import pytest

from assets import ingest, training
from assets.partitions import prompt_batches
from resources import (
    DatasetsResource,
    EmbedderResource,
    LLMResource,
    TrainingResource,
    VectorStoreResource,
    WarehouseResource,
)
from resources.launch import is_ray, pipes_client_from_env
from tests.remote_servers import ray_head
from training import artifacts

pytest.importorskip("dagster_ray")

ASSETS = dg.load_assets_from_modules([ingest, training])


@pytest.fixture(scope="module")
def ray_cluster():
    with ray_head() as head:
        yield head


def test_sft_trains_as_a_ray_job_and_registers_the_model(ray_cluster, zhufu_home, tmp_path, tiny_model_dir,
                                                           monkeypatch):
    from ray.job_submission import JobStatus, JobSubmissionClient

    monkeypatch.setenv("ZHUFU_RAY_ADDRESS", ray_cluster["address"])
    monkeypatch.setenv("ZHUFU_RAY_TOKEN", ray_cluster["token"])
    client = pipes_client_from_env()
    assert is_ray(client)
    warehouse = WarehouseResource()
    resources = {"warehouse": warehouse, "datasets": DatasetsResource(inbox_dir=str(tmp_path / "inbox")),
                 "llm": LLMResource(warehouse=warehouse, model=str(tiny_model_dir), batch_size=8),
                 "embedder": EmbedderResource(), "vectors": VectorStoreResource(),
                 "training": TrainingResource(base_model=str(tiny_model_dir)), "pipes_client": client}
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(prompt_batches.name, ["builtin"])

    def run(keys, partition=None, config=None):
        return dg.materialize(ASSETS, selection=[dg.AssetKey(k) for k in keys], resources=resources,
                              instance=instance, partition_key=partition,
                              run_config={"ops": {k: {"config": v} for k, v in (config or {}).items()}})

    run(["seed_sft_examples", "seed_preference_pairs", "human_labels"])
    result = run(["sft_model"], config={"sft_model": {"max_steps": 1, "batch_size": 2, "max_length": 256}})
    meta = result.asset_materializations_for_node("sft_model")[0].metadata
    path = warehouse.get().sql("SELECT artifact_path FROM models WHERE model_id = ?", [meta["model_id"].value]).item()
    assert artifacts.is_complete(path)
    assert meta["pipes_metric_messages"].value >= 1  # the trainer's metrics came back from the Ray job

    jobs = JobSubmissionClient(ray_cluster["address"], headers={"Authorization": f"Bearer {ray_cluster['token']}"})
    ran = [j for j in jobs.list_jobs() if "training.sft" in (j.entrypoint or "")]
    assert len(ran) == 1 and ran[0].status == JobStatus.SUCCEEDED
    assert ray_cluster["token"] not in str(ran[0].runtime_env)
    logged = [str(e.dagster_event or e.user_message) for e in instance.all_logs(result.run_id)]
    assert logged and not any(ray_cluster["token"] in text for text in logged)


def test_the_ray_head_refuses_calls_without_its_token(ray_cluster):
    from ray.job_submission import JobSubmissionClient

    with pytest.raises(Exception, match="(?i)401|unauthori|auth"):
        JobSubmissionClient(ray_cluster["address"]).list_jobs()
