"""LLMResource in Dagster: configured by EnvVar, accounting as metadata, the key nowhere in the run."""

import dagster as dg
from pydantic import BaseModel

from resources import LLMResource, WarehouseResource
from resources.llm import ChatRequest
from tests.fake_openai_server import FakeOpenAI

SECRET = "sk-live-DO-NOT-LEAK-42"


class Verdict(BaseModel):
    label: int
    reason: str


@dg.asset
def judged(context: dg.AssetExecutionContext, llm: LLMResource) -> dg.MaterializeResult:
    rt = llm.runtime(context)
    reqs = [ChatRequest(messages=[{"role": "user", "content": f"评价第{i}句 ok"}], item=f"c{i}") for i in range(3)]
    reqs.append(ChatRequest(messages=[{"role": "user", "content": "评价 [401]"}], item="bad"))
    results = rt.structured(reqs, Verdict)
    context.log.info(f"results: {[r.status for r in results]} errors: {[r.error for r in results if not r.ok]}")
    return dg.MaterializeResult(metadata=rt.stats.as_metadata())


def test_llm_resource_accounts_calls_and_never_leaks_the_key(zhufu_home, monkeypatch):
    monkeypatch.setenv("ZHUFU_TEST_KEY", SECRET)
    with FakeOpenAI() as server:
        resources = {"llm": LLMResource(warehouse=WarehouseResource(), backend="openai", model="judge",
                                        base_url=server.base_url, api_key=dg.EnvVar("ZHUFU_TEST_KEY"),
                                        price_input_per_m=1.0, price_output_per_m=2.0, max_attempts=2)}
        instance = dg.DagsterInstance.ephemeral()
        first = dg.materialize([judged], resources=resources, instance=instance)
        second = dg.materialize([judged], resources=resources, instance=instance)
    meta1 = first.asset_materializations_for_node("judged")[0].metadata
    meta2 = second.asset_materializations_for_node("judged")[0].metadata
    assert meta1["llm_model_calls"].value == 4 and meta1["llm_ok"].value == 3 and meta1["llm_errors"].value == 1
    assert meta1["llm_tokens_in"].value == 33 and meta1["llm_cost_usd"].value > 0
    # the second run re-asks only the failed call
    assert meta2["llm_cache_hits"].value == 3 and meta2["llm_model_calls"].value == 1
    assert all(h == f"Bearer {SECRET}" for h in server.auth_headers)

    logs = "\n".join(str(e.dagster_event or e.user_message) + e.user_message
                     for e in instance.all_logs(first.run_id) + instance.all_logs(second.run_id))
    assert "results:" in logs and SECRET not in logs
    assert SECRET not in str(instance.get_run_by_id(first.run_id).run_config)
    wh = WarehouseResource().get()
    assert SECRET not in wh.sql("SELECT * FROM llm_calls").write_csv()
