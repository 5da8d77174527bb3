"""Writer-R1 criteria: the scenario sample, each Grounded-Theory stage's events, saturation, fallbacks,
versioning, scores, agreement and the GRPO reward — with a scripted LLM double and a fake embedder
(control flow only; what the embedded model writes is measured in bench/ and the demo)."""

import hashlib
import json

import dagster as dg
import numpy as np
import pytest

import resources.embeddings as embeddings
import resources.llm_resource as llm_resource
from agents import criteria as crit
from agents import grounded_theory as gt
from assets import criteria as criteria_assets
from assets import ingest, judging
from resources import (
    DatasetsResource,
    EmbedderResource,
    LLMResource,
    TrainingResource,
    VectorStoreResource,
    WarehouseResource,
)
from resources.llm.runtime import LLMRuntime
from resources.llm.types import ChatRequest, Generation
from resources.scenarios import read_scenario_sample
from training.rewards import CriteriaReward

ASSETS = dg.load_assets_from_modules([ingest, judging, criteria_assets])


class FakeEmbedder:
    """Equal texts get equal vectors; different texts nearly orthogonal ones (64 random dimensions)."""

    model_id = "fake-embedder"

    def passages(self, texts):
        vs = [np.random.default_rng(int(hashlib.md5(t.encode()).hexdigest()[:8], 16)).normal(size=64) for t in texts]
        return np.asarray([v / np.linalg.norm(v) for v in vs], dtype=np.float32).reshape(len(texts), 64)

    queries = passages


class ScriptedGT:
    """Open coding: a new concept in batches 0 and 1, a repeat from batch 2 on (greetings and poems), and
    degenerate text for couplets. Naming: a proper name for greetings, garbage otherwise. Criteria: a
    proper criterion. Scoring: P(是) high when the response is one the sample labels good."""

    name = "scripted"
    model_id = "scripted-gt"
    constrains_output = True

    def __init__(self):
        self.calls = 0
        self.good = {e.response for e in read_scenario_sample().examples if e.label == 1}

    def _answer(self, r: ChatRequest) -> dict:
        user = r.messages[-1]["content"]
        if r.schema_name == "OpenCodes":
            _, scenario, batch, _ = r.item.split("-")
            if scenario == "couplet":
                return {"concepts": [{"concept": "1.1.1.1", "evidence": "1.1.1"}]}
            better = user.split("【较好的作品】")[1].split("\n")[0]
            concept = ["细节具体", "情感真挚"][int(batch)] if int(batch) < 2 else "细节具体"
            return {"concepts": [{"concept": concept, "evidence": better[:4]}]}
        if r.schema_name == "DimensionName":
            if "祝福语" in user:
                first = user.split("【概念】\n- ")[1].split("（")[0]
                return {"dimension": first[:4] + "类", "description": "作品内容是否具体真挚"}
            return {"dimension": "1", "description": "1"}
        if r.schema_name == "SelectiveCodes":
            first = user.split("【概念】")[1].split("、")[0].strip()
            return {"criteria": [{"criterion": first, "description": "写出对象独有的细节", "score5": "细节鲜活独特",
                                  "score3": "有细节但普通", "score1": "全是套话"}]}
        raise AssertionError(r.schema_name)

    def generate(self, requests):
        self.calls += len(requests)
        return [Generation(text=json.dumps(self._answer(r), ensure_ascii=False), tokens_in=5, tokens_out=5)
                for r in requests]

    def score(self, requests):
        self.calls += len(requests)
        out = []
        for r in requests:
            response = r.messages[-1]["content"].split("【作品】")[1].rsplit("\n", 1)[0]
            yes = response in self.good or "外婆" in response
            out.append(Generation(text="", tokens_in=5, tokens_out=0, label_logprobs=(-0.2, -1.8) if yes else (-1.8, -0.2)))
        return out


def scripted_runner(monkeypatch, backend, assets):
    """``run(keys, config)`` materializing ``assets`` with ``backend`` as the llm (model "scripted") and the
    fake embedder; and the warehouse."""
    warehouse = WarehouseResource()
    monkeypatch.setitem(embeddings._EMBEDDERS, "multilingual-e5-small", FakeEmbedder())
    monkeypatch.setitem(llm_resource._BACKENDS, ("local", "scripted", None, 16), backend)
    resources = {"warehouse": warehouse, "datasets": DatasetsResource(),
                 "llm": LLMResource(warehouse=warehouse, model="scripted"), "embedder": EmbedderResource(),
                 "vectors": VectorStoreResource(), "training": TrainingResource(),
                 "pipes_client": dg.PipesSubprocessClient()}

    def run(keys, config=None):
        res = dg.materialize(assets, selection=[dg.AssetKey(k) for k in keys], resources=resources,
                             run_config={"ops": {k: {"config": c} for k, c in (config or {}).items()}})
        assert res.success
        return res

    return run, warehouse.get()


@pytest.fixture
def setup(zhufu_home, monkeypatch):
    backend = ScriptedGT()
    run, wh = scripted_runner(monkeypatch, backend, ASSETS)
    run(["scenario_samples", "seed_preference_pairs", "human_labels"])
    return run, wh, backend


def test_the_sample_has_three_scenarios_with_good_and_flawed_examples(setup):
    _, wh, _ = setup
    by = wh.sql("SELECT scenario, label, count(*) AS n FROM scenario_examples_latest GROUP BY ALL ORDER BY ALL").rows()
    assert by == [("couplet", 0, 5), ("couplet", 1, 5), ("poem", 0, 5), ("poem", 1, 5)]
    scen = dict(wh.sql("SELECT coalesce(scenario, 'greeting') AS s, count(*) FROM prompts_latest GROUP BY 1").rows())
    assert scen == {"couplet": 8, "poem": 8}  # the greeting batch is not ingested here
    assert read_scenario_sample().quarantined == []


def test_each_stage_writes_its_events_and_a_rerun_makes_no_new_calls(setup):
    run, wh, backend = setup
    run(["criteria"])
    for table in ("gt_open_codes", "gt_saturation", "gt_axial_groups", "criteria", "vector_indexes"):
        assert wh.sql(f"SELECT count(*) AS n FROM {table}_latest")["n"][0] > 0, table
    calls, counts = backend.calls, {t: wh.count(t) for t in ("gt_open_codes", "criteria", "gt_axial_groups")}
    run(["criteria"])
    assert backend.calls == calls  # answered from the call log
    assert {t: wh.count(t) for t in counts} == counts  # same events: nothing new


def test_saturation_stops_the_loop_and_the_curve_is_stored(setup):
    run, wh, _ = setup
    run(["criteria"], {"criteria": {"scenarios": ["greeting"], "max_batches": 6, "batch_size": 2}})
    curve = wh.sql("SELECT batch_index, new_concepts, total_concepts, saturated, stop_reason FROM gt_saturation_latest "
                   "ORDER BY batch_index").rows()
    assert curve == [(0, 1, 1, False, None), (1, 1, 2, False, None), (2, 0, 2, True, "saturated")]


def test_batches_of_only_unusable_answers_never_count_as_saturation(setup):
    run, wh, _ = setup  # the scripted couplet coder answers nothing usable; without memos nothing is coded
    run(["criteria"], {"criteria": {"scenarios": ["couplet"], "max_batches": 3, "batch_size": 1,
                                    "note_fallback": False}})
    curve = wh.sql("SELECT batch_index, total_concepts, saturated, stop_reason FROM gt_saturation_latest "
                   "WHERE scenario = 'couplet' ORDER BY batch_index").rows()
    assert [c[0] for c in curve] == [0, 1, 2] and not any(c[2] for c in curve)
    assert curve[-1][1] == 0 and curve[-1][3] in ("max_batches", "no_samples")


def test_malformed_answers_are_recorded_and_fallbacks_still_give_a_hierarchy(setup):
    run, wh, _ = setup
    run(["criteria"], {"criteria": {"max_batches": 2, "link_threshold": -1.0}})  # one group of several concepts
    bad = wh.sql("SELECT status, error FROM gt_open_codes_latest WHERE scenario = 'couplet' AND source = 'agent'").rows()
    assert bad and all(s == "rejected" and "Chinese" in e for s, e in bad)
    assert wh.sql("SELECT count(*) AS n FROM gt_open_codes_latest WHERE scenario = 'couplet' AND source = 'note' "
                  "AND status = 'ok'")["n"][0] > 0  # coded from the examples' memos instead
    groups = dict(wh.sql("SELECT scenario, list(DISTINCT source) FROM gt_axial_groups_latest GROUP BY 1").rows())
    assert groups["greeting"] == ["agent"] and groups["poem"] == ["fallback"]
    crits = wh.sql("SELECT task_type, dimension, criterion, weight, rubric FROM criteria_latest WHERE active").to_dicts()
    assert {c["task_type"] for c in crits} == {"greeting", "couplet", "poem"}
    for sc in ("greeting", "couplet", "poem"):
        assert sum(c["weight"] for c in crits if c["task_type"] == sc) == pytest.approx(1.0)
    assert all(len(c["rubric"]) == 5 for c in crits)


def test_a_new_version_retires_the_criteria_it_drops_and_an_old_one_can_return(setup):
    run, wh, _ = setup

    def active():
        return wh.sql("SELECT version, supersedes, dimension, criterion FROM criteria_latest WHERE active "
                      "AND task_type = 'greeting' ORDER BY criterion").rows()

    two = {"criteria": {"scenarios": ["greeting"], "max_batches": 2}}
    run(["criteria"], two)
    a = active()
    # two groups of one concept each: named by their concept, no naming call
    assert [(d, c) for _, _, d, c in a] == [("情感真挚", "情感真挚"), ("细节具体", "细节具体")]
    run(["criteria"], {"criteria": {**two["criteria"], "max_dimensions": 1}})
    b = active()
    assert [(d, c) for _, _, d, c in b] == [("细节具体类", "细节具体")] and b[0][1] == a[0][0]
    retired = wh.sql("SELECT criterion, weight FROM criteria_latest WHERE NOT active ORDER BY criterion").rows()
    assert retired == [("情感真挚", 0.0), ("细节具体", 0.0)]
    run(["criteria"], two)  # back to A's settings: A's set is current again, superseding B
    again = active()
    assert [(v, d, c) for v, _, d, c in again] == [(v, d, c) for v, _, d, c in a] and again[0][1] == b[0][0]


def test_scores_totals_agreement_and_the_reward(setup):
    run, wh, backend = setup
    run(["criteria", "criteria_scores", "criteria_agreement"],
        {"criteria_scores": {"use_judge_model": False}, "criteria_agreement": {"use_judge_model": False}})
    totals = wh.sql("SELECT scenario, total, label FROM criteria_totals_latest").to_dicts()
    assert {t["scenario"] for t in totals} == {"greeting", "couplet", "poem"}
    assert all(0.0 <= t["total"] <= 1.0 for t in totals)
    per = wh.sql("SELECT count(*) AS n FROM criteria_scores_latest WHERE score IS NOT NULL")["n"][0]
    assert per >= len(totals)
    variants = set(wh.sql("SELECT variant FROM agreement_metrics_latest WHERE evaluator = 'criteria'")["variant"])
    assert {"greeting:auto", "greeting:hand_principles", "poem:auto", "couplet:auto"} <= variants
    auc = wh.sql("SELECT auc, length_auc FROM agreement_metrics_latest WHERE variant = 'poem:auto' AND subset = 'all'")
    assert auc["auc"][0] == 1.0 and auc["length_auc"][0] is not None  # the scripted judge knows the good poems

    rows = wh.sql("SELECT * FROM criteria_latest WHERE active AND task_type = 'poem'").to_dicts()
    reward = CriteriaReward(LLMRuntime(backend), rows)
    good = next(e for e in read_scenario_sample().examples if e.label == 1 and e.scenario == "poem")
    r = reward([good.prompt, good.prompt], [good.response, "随便写的"])
    assert r[0] > 0.5 > r[1] and len(reward.last_per_criterion) == 2


def test_weighted_total_skips_failed_criteria_and_weighs_the_rest():
    assert crit.weighted_total([1.0, None, 0.0], [0.5, 0.3, 0.2]) == pytest.approx(0.5 / 0.7)
    assert crit.weighted_total([None], [1.0]) is None
    hand = crit.principles_as_criteria("greeting", ["a", "b"])
    assert [c.weight for c in hand] == [0.5, 0.5] and hand[0].rubric == ()


def test_content_checks_catch_what_small_models_write():
    assert gt.content_problem("1.1.1.1") and gt.content_problem("好好好好好") and gt.content_problem("概念")  # re-exported
    assert gt.content_problem("细节具体") is None
    s = gt.Sample("需求", "外婆八十大寿快乐", "生日快乐", better_note="用蒲扇等童年细节唤起温情，祝愿落在吃、睡上")
    codes = gt.note_codes(s, 0, 0)  # phrases of 2-10 characters; the 12-character one is left out
    assert [(c.concept, c.source) for c in codes] == [("祝愿落在吃", "note"), ("睡上", "note")]


def test_migration_14_evolves_a_warehouse_written_before_it(wh, monkeypatch):
    import warehouse.store as store
    from warehouse.migrations import MIGRATIONS
    from warehouse.schema import CriterionRow, PromptRow

    with monkeypatch.context() as old_code:
        # the warehouse at migration 13 (the id index of migration 20 too: today's commit reads it)
        old_code.setattr(store, "MIGRATIONS", MIGRATIONS[:13] + tuple(m for m in MIGRATIONS if m.version == 20))
        wh.append([PromptRow(text="旧的需求", source="t", source_ref="a", batch="b")])
    wh._migrated = False
    assert 14 in wh.migrate()
    assert wh.sql("SELECT coalesce(scenario, 'greeting') AS s FROM prompts_latest")["s"].to_list() == ["greeting"]
    wh.append([PromptRow(text="新的需求", source="t", source_ref="b", batch="b", scenario="poem"),
               CriterionRow(task_type="poem", dimension="意象", criterion="意象新颖", weight=1.0, version="v", active=True,
                            rubric=["1", "2", "3", "4", "5"])])
    assert wh.sql("SELECT scenario FROM prompts_latest WHERE text = '新的需求'")["scenario"].to_list() == ["poem"]
    assert wh.sql("SELECT rubric FROM criteria_latest WHERE active")["rubric"].to_list() == [["1", "2", "3", "4", "5"]]
