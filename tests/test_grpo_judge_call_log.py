"""GRPO's judge reward records its calls in the warehouse's ``llm_calls`` and answers repeated
(prompt, completion) pairs from it when the ``grpo_policy`` asset launches the run (issue 12,
Runtime); standalone (no call log configured) it keeps its in-memory behaviour; a catalog password
never reaches the run config file."""

import json

import pytest
from pydantic import ValidationError

from training.config import CallLogConfig, GRPORunConfig
from training.data import write_jsonl

PRINCIPLES = ["祝福要紧扣对象和场合，语言自然真诚。"]
PROMPTS = ["给妈妈写一句生日祝福", "给老师写一句教师节祝福"]
COMPLETIONS = ["祝妈妈生日快乐，身体健康！", "祝您生日快乐", "老师辛苦了，节日快乐！", "谢谢老师"]
PASSWORD = "PLANTED-pa55word"


def _cfg(tmp_path, model, call_log=None) -> GRPORunConfig:
    write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": p} for p in PROMPTS])
    return GRPORunConfig(base_model=str(model), output_dir=str(tmp_path / "grpo"), prompts_file=str(tmp_path / "prompts.jsonl"),
                         reward="judge", judge_principles=PRINCIPLES, repetition_weight=0.0, call_log=call_log)


def _judge(funcs):
    from training.rewards import JudgeReward

    (judge,) = [getattr(f, "func", f) for f in funcs if isinstance(getattr(f, "func", f), JudgeReward)]
    return judge


def _calls(wh, run_id=None, asset_key="grpo_policy/llm_calls") -> int:
    """Rows of ``llm_calls`` recorded under GRPO's asset key (and this run)."""
    where, params = "asset_key = ?", [asset_key]
    if run_id is not None:
        where, params = where + " AND run_id = ?", [*params, run_id]
    return int(wh.sql(f"SELECT count(*) AS n FROM llm_calls WHERE {where}", params)["n"][0])


def test_the_judge_reward_records_its_calls_and_answers_repeats_from_the_warehouse(wh, tmp_path, tiny_model_dir):
    from training.grpo import reward_functions

    loc = wh.config
    log = CallLogConfig(run_id="run-1", catalog=loc.catalog, data_path=loc.data_path, lock_dir=str(loc.lock_dir))
    prompts = [PROMPTS[0], PROMPTS[0], PROMPTS[1], PROMPTS[1]]
    judge = _judge(reward_functions(_cfg(tmp_path, tiny_model_dir, log))[0])
    first = judge(prompts, COMPLETIONS)
    assert judge.runtime.stats.model_calls == 4 and _calls(wh, run_id="run-1") == 4
    again = judge(prompts, COMPLETIONS)  # the next GRPO step repeats every pair: no model call, no new row
    assert again == first and judge.runtime.stats.cache_hits == 4 and judge.runtime.stats.model_calls == 4
    assert _calls(wh) == 4

    # a re-run (a fresh training process) is answered from the warehouse
    rerun = _judge(reward_functions(_cfg(tmp_path, tiny_model_dir, log.model_copy(update={"run_id": "run-2"})))[0])
    assert rerun(prompts, COMPLETIONS) == first
    assert rerun.runtime.stats.model_calls == 0 and rerun.runtime.stats.cache_hits == 4 and _calls(wh) == 4


def test_standalone_the_judge_reward_keeps_no_log(zhufu_home, tmp_path, tiny_model_dir):
    from training.grpo import reward_functions

    judge = _judge(reward_functions(_cfg(tmp_path, tiny_model_dir))[0])
    assert judge.runtime.calls.warehouse is None
    judge(PROMPTS, COMPLETIONS[:2])
    assert judge.runtime.stats.model_calls == 2
    assert not (zhufu_home / "lake").exists()  # no warehouse was made


def test_a_judge_ensemble_averages_every_judges_reward_each_logged_apart(zhufu_home, tmp_path, tiny_model_dir):
    import shutil

    from training.grpo import reward_functions
    from training.rewards import JudgeReward

    other = tmp_path / "judge_2"  # a second judge: another path, so its calls are keyed apart
    shutil.copytree(tiny_model_dir, other)
    cfg = _cfg(tmp_path, tiny_model_dir).model_copy(update={"judge_ensemble": [str(other)]})
    funcs, weights = reward_functions(cfg)
    judges = [getattr(f, "func", f) for f in funcs if isinstance(getattr(f, "func", f), JudgeReward)]
    assert [j.runtime.model_id for j in judges] == [str(tiny_model_dir), str(other)]
    assert [f.__name__ for f in funcs] == ["judge_reward", "judge_reward_1"] and weights == [0.5, 0.5]
    prompts = [PROMPTS[0], PROMPTS[0], PROMPTS[1], PROMPTS[1]]
    assert judges[0](prompts, COMPLETIONS) == judges[1](prompts, COMPLETIONS)  # same weights, same scores
    assert all(j.runtime.stats.model_calls == 4 for j in judges)  # each judge scored, none answered for the other


@pytest.mark.parametrize("location", [f"postgres:dbname=zhufu host=db user=zhufu password={PASSWORD}",
                                      f"postgres:postgresql://zhufu:{PASSWORD}@db:5432/zhufu"])
def test_a_location_with_a_password_is_refused_and_not_echoed(location, tmp_path):
    with pytest.raises(ValidationError) as err:
        GRPORunConfig(base_model="m", output_dir="o", prompts_file="p", call_log={"run_id": "r", "catalog": location})
    assert PASSWORD not in str(err.value) and "ZHUFU_CATALOG" in str(err.value)
    with pytest.raises(ValidationError) as err:
        CallLogConfig(run_id="r", data_path=f"s3://key:{PASSWORD}@bucket/zhufu/")
    assert PASSWORD not in str(err.value)


class TrainInProcess:
    """A Pipes client that runs the trainer in this process with the environment it was handed, and
    keeps the run config file and that environment for the test."""

    def __init__(self, monkeypatch):
        self.monkeypatch, self.configs, self.envs = monkeypatch, [], []

    def run(self, *, context, command, extras, env=None):
        from training import grpo

        self.configs.append(open(extras["config"], encoding="utf-8").read())
        self.envs.append(dict(env or {}))
        with self.monkeypatch.context() as m:
            for k, v in (env or {}).items():
                m.setenv(k, v)
            assert grpo.main(["--config", extras["config"]]) == 0


def test_grpo_policy_logs_judge_calls_without_writing_the_catalog_password(zhufu_home, tmp_path, tiny_model_dir,
                                                                          monkeypatch):
    import dagster as dg

    from assets.training import grpo_policy
    from resources import TrainingResource, WarehouseResource
    from warehouse.schema import JudgePrincipleRow, PromptRow

    # an embedded catalog whose location carries a password (no database server here): it must reach
    # the trainer through its environment, never through the config file
    secret_dir = tmp_path / f"password={PASSWORD}"
    secret_dir.mkdir()
    warehouse = WarehouseResource(catalog=f"sqlite:{secret_dir / 'catalog.sqlite'}", data_path=str(tmp_path / "data") + "/")
    wh = warehouse.get()
    wh.append([PromptRow(text=p, source="test", source_ref=f"t:{i}", batch="builtin") for i, p in enumerate(PROMPTS)])
    wh.append([JudgePrincipleRow(loop_id="loop", iteration=0, s_g=[], s_d=PRINCIPLES, suggestions=[], model="m",
                                 prompt_version="v")])
    client = TrainInProcess(monkeypatch)
    resources = {"warehouse": warehouse, "training": TrainingResource(base_model=str(tiny_model_dir)),
                 "pipes_client": client}
    config = {"reward": "judge", "max_steps": 1, "batch_size": 2, "num_generations": 2, "max_completion_length": 8,
              "heldout_fraction": 0.0}
    run = {"ops": {"grpo_policy": {"config": config}}}
    result = dg.materialize([grpo_policy], resources=resources, run_config=run)

    assert len(client.configs) == 1 and PASSWORD not in client.configs[0]
    log = json.loads(client.configs[0])["call_log"]
    assert log["catalog"] is None and log["run_id"] == result.run_id and log["asset_key"] == "grpo_policy"
    assert client.envs[0]["ZHUFU_CATALOG"] == warehouse.warehouse_config().catalog
    assert _calls(wh, run_id=result.run_id) >= 1  # the judge's calls, in the asset's warehouse
    model_id = result.asset_materializations_for_node("grpo_policy")[0].metadata["model_id"].value
    assert "judge_calls" in str(wh.sql("SELECT metrics FROM models WHERE model_id = ?", [model_id])["metrics"][0])

    again = dg.materialize([grpo_policy], resources=resources, run_config=run)  # another run id, same model
    assert again.asset_materializations_for_node("grpo_policy")[0].metadata["model_id"].value == model_id
    assert len(client.configs) == 1  # already trained: not launched again
