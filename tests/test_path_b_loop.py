"""The adversarial principle loop's control flow, with a scripted LLM double, through the real asset."""

import dagster as dg
import pytest

import resources.llm_resource as llm_resource
from agents.principles import INITIAL_S_D, MAX_RULES
from assets import ingest, judging, path_b
from resources import (
    DatasetsResource,
    EmbedderResource,
    LLMResource,
    TrainingResource,
    VectorStoreResource,
    WarehouseResource,
)
from tests.scripted_backend import ScriptedPathB
from warehouse.schema import HumanLabelRow

ASSETS = dg.load_assets_from_modules([ingest, judging, path_b])


def _labels():
    rows = []
    for i in range(40):
        kind = ("GOOD", "BAD", "TRICKY")[i % 3]
        rows.append(HumanLabelRow(prompt=f"需求{i}", response=f"{kind} 祝福{i}", label=int(kind == "GOOD"),
                                  source="test", source_ref=f"t:{i}"))
    return rows


@pytest.fixture
def setup(zhufu_home, monkeypatch):
    warehouse = WarehouseResource()
    warehouse.get().append(_labels(), asset_key="human_labels")

    def run(backend, **config):
        monkeypatch.setitem(llm_resource._BACKENDS, ("local", "scripted", None, 16), backend)
        resources = {"warehouse": warehouse, "datasets": DatasetsResource(),
                     "llm": LLMResource(warehouse=warehouse, model="scripted"), "training": TrainingResource(),
                     "pipes_client": dg.PipesSubprocessClient(), "embedder": EmbedderResource(),
                     "vectors": VectorStoreResource()}
        cfg = {"iterations": 3, "patience": 5, "heldout_size": 0, "retrain_judge": False, **config}
        return dg.materialize(ASSETS, selection=[dg.AssetKey("judge_principles")], resources=resources,
                              run_config={"ops": {"judge_principles": {"config": cfg}}}, raise_on_error=False)

    return run, warehouse.get()


def _iterations(wh):
    return wh.sql("SELECT iteration, s_d, heldout_accuracy, heldout_auc, threshold, detector_errors "
                  "FROM judge_principles_latest ORDER BY iteration").rows(named=True)


def test_s_d_changes_only_after_detector_errors_and_the_best_held_out_s_d_is_chosen(setup):
    run, wh = setup
    result = run(ScriptedPathB())
    assert result.success
    its = _iterations(wh)
    assert [i["iteration"] for i in its] == [0, 1, 2, 3]
    assert its[0]["s_d"] == INITIAL_S_D
    assert all(i["detector_errors"] > 0 for i in its[1:])
    assert "识破BAD" in its[1]["s_d"]            # changed after errors
    assert its[2]["s_d"] == ["全部判1", *its[1]["s_d"][1:]]  # a harmful edit of rule 1...
    assert its[3]["s_d"] == its[2]["s_d"]        # ...and an edit of a rule that does not exist was refused
    assert all(len(i["s_d"]) <= MAX_RULES for i in its)
    aucs = [i["heldout_auc"] for i in its]
    assert aucs[1] > aucs[0] and aucs[2] < aucs[1]
    assert all(i["threshold"] is not None for i in its)  # each iteration's S_D calibrated on the train split
    meta = result.asset_materializations_for_node("judge_principles")[0].metadata
    assert meta["best_iteration"].value == 1      # best held-out, not the last
    pid, s_d = path_b.chosen_principles(WarehouseResource(), None)
    assert "识破BAD" in s_d and pid == meta["best_principles_id"].value


def test_no_errors_means_s_d_never_changes(setup, monkeypatch):
    run, wh = setup
    backend = ScriptedPathB()

    def perfect(r):  # a detector that is always right: nothing to reflect on
        return int(r.messages[-1]["content"].split("【祝福语】")[-1].startswith("GOOD"))

    monkeypatch.setattr(backend, "detect", perfect)
    assert run(backend, patience=5).success
    its = _iterations(wh)
    assert all(i["s_d"] == INITIAL_S_D and i["detector_errors"] == 0 for i in its)
    assert not any(item.startswith("reflect-") or item.startswith("optimize-S_D") for item in backend.items)


def test_a_crash_mid_iteration_resumes_from_recorded_iterations(setup):
    run, wh = setup
    crashed = run(ScriptedPathB(crash_on="optimize-S_D-2"))
    assert not crashed.success
    assert [i["iteration"] for i in _iterations(wh)] == [0, 1]
    resumed_backend = ScriptedPathB()
    assert run(resumed_backend).success
    assert [i["iteration"] for i in _iterations(wh)] == [0, 1, 2, 3]
    # iterations 0 and 1 were not recomputed; iteration 2's finished calls came from the call log
    assert not any(x.startswith(("gen-1-", "it0-", "it1-", "detect-2", "reflect-2")) for x in resumed_backend.items)
    assert "optimize-S_D-2" in resumed_backend.items
    assert wh.sql("SELECT count(*) AS n FROM judge_principles")["n"][0] == 4


def test_a_judge_retrained_after_an_iteration_scores_the_next_one():
    from agents import principles
    from agents.principles import Example
    from resources.llm import LLMRuntime

    examples = [Example(f"e{i}", f"需求{i}", f"{('GOOD', 'BAD', 'TRICKY')[i % 3]} 祝福{i}", int(i % 3 == 0))
                for i in range(12)]
    first, second = ScriptedPathB(), ScriptedPathB()
    agents_rt, judge_rt, next_judge = LLMRuntime(ScriptedPathB()), LLMRuntime(first), LLMRuntime(second)
    seen = []

    def on_iteration(it):
        seen.append((it.iteration, it.judge_model, [a["fooled"] for a in it.adversarial]))
        return next_judge if it.iteration == 0 else None

    history = principles.run_loop(agents_rt, examples[:8], examples[8:], principles.LoopConfig(iterations=1, patience=5),
                                  on_iteration=on_iteration, judge=judge_rt)
    assert [h.iteration for h in history] == [0, 1]
    assert any(x.startswith("detect-1") for x in second.items)      # iteration 1 was judged by the new judge
    assert not any(x.startswith("detect-1") for x in first.items)
    assert seen[1][2]  # the planted greetings of iteration 1 are returned with their `fooled` flag
