"""MRPO inference mode (reflections): rounds as events, acceptance only on a higher criteria total (and, when
asked, a higher overall judgement), the
draft never overwritten, the score-based critique when the writer's is unusable, lessons from other
chains through a real LanceDB memory, and a re-run that resumes without repeating a call — with a
scripted writer/judge double (control flow; what the embedded model does is in bench/ and the demo)."""

import dagster as dg
import pytest

from agents import criteria as crit
from agents import reflection as rf
from assets import criteria as criteria_assets
from assets import ingest, judging
from assets import reflections as reflection_assets
from resources.llm.types import Generation
from tests.test_criteria import ScriptedGT, scripted_runner
from warehouse.ids import content_id

ASSETS = dg.load_assets_from_modules([ingest, judging, criteria_assets, reflection_assets])
DETAIL = "外婆"  # what the scripted judge rewards


class ScriptedReflect(ScriptedGT):
    """Drafts are plain; a critique is usable for couplets only (the others fall back to the scores); a
    revision adds the rewarded detail, or returns the draft unchanged once it has it."""

    def generate(self, requests):
        out = []
        for r in requests:
            if r.schema_name is not None:
                out += super().generate([r])
                continue
            self.calls += 1
            system = r.messages[0]["content"] if len(r.messages) > 1 else ""
            user = r.messages[-1]["content"]
            if "写作教练" in system:
                text = "请写进外婆的一个具体细节，比如她做的菜。" if "对联" in system else "ok"
            elif "作者" in system:
                draft = user.split("【初稿】")[1].split("\n")[0]
                text = draft if DETAIL in draft else f"改写后：{DETAIL}的饭菜最香，{draft}"
            else:
                text = "祝你一切顺利，万事如意。"
            out.append(Generation(text=text, tokens_in=5, tokens_out=5))
        return out


@pytest.fixture
def setup(zhufu_home, monkeypatch):
    backend = ScriptedReflect()
    run, wh = scripted_runner(monkeypatch, backend, ASSETS)
    run(["scenario_samples", "seed_preference_pairs", "human_labels", "criteria"])
    return run, wh, backend


def _config(rounds):
    return {"reflections": {"rounds": rounds, "prompts_per_scenario": 2, "use_judge_model": False}}


def test_rounds_are_events_accepted_only_when_better_and_drafts_are_never_overwritten(setup):
    run, wh, _ = setup
    run(["reflections"], _config(3))
    rows = wh.sql("SELECT * FROM reflections_latest ORDER BY chain_id, round").to_dicts()
    assert {r["scenario"] for r in rows} == {"greeting", "couplet", "poem"}
    first = [r for r in rows if r["round"] == 1]
    assert len(first) == 6 and all(r["accepted"] and r["gain"] > 0 and DETAIL in r["revision"] for r in first)
    assert all(r["accept_by"] == "criteria" and r["draft_overall"] is None for r in first)  # the default asks no more
    assert all(not r["revision"].startswith("改写后") for r in first)  # the answer's label is cleaned off
    assert all(r["draft"] == "祝你一切顺利，万事如意。" for r in first)  # round 1's draft stays as it was
    by_chain = {}
    for r in rows:
        by_chain.setdefault(r["chain_id"], []).append(r)
    for chain in by_chain.values():
        for a, b in zip(chain, chain[1:], strict=False):
            assert b["draft"] == (a["revision"] if a["accepted"] else a["draft"])
    # an unchanged revision is recorded as invalid, not accepted; two in a row end the chain (rounds 2 and 3)
    later = [r for r in rows if r["round"] > 1]
    assert later and all(r["revision_status"] == "invalid" and not r["accepted"] for r in later)
    assert max(r["round"] for r in rows) == 3
    # couplets: the writer's critique; the others: the critique the criteria's rubric gives
    assert {r["critique_source"] for r in first if r["scenario"] == "couplet"} == {"agent"}
    fallback = [r for r in first if r["scenario"] != "couplet"]
    assert all(r["critique_source"] == "scores" and r["critique_error"] and "应做到" in r["critique"] for r in fallback)
    # round 2 learnt from other chains of its scenario (accepted revisions in the LanceDB memory)
    own = {r["id"]: r["chain_id"] for r in rows}
    second = [r for r in rows if r["round"] == 2]
    assert any(r["memory_ids"] for r in second)
    assert all(own[m] != r["chain_id"] for r in second for m in r["memory_ids"])
    assert wh.sql("SELECT rows FROM vector_indexes_latest WHERE index_name = 'reflection_memory'")["rows"][0] == 6


def test_a_rerun_resumes_after_the_recorded_rounds_and_repeats_no_call(setup):
    run, wh, backend = setup
    run(["reflections"], _config(1))
    assert wh.sql("SELECT max(round) AS r, count(*) AS n FROM reflections_latest").row(0) == (1, 6)
    calls = backend.calls
    run(["reflections"], _config(2))  # one more round: only its calls are new
    assert wh.sql("SELECT max(round) AS r, count(*) AS n FROM reflections_latest").row(0) == (2, 12)
    new = backend.calls - calls
    assert 0 < new <= 6 * 2 + 6 * 2  # round 2: draft scores + critique + revision (+ revision scores)
    calls, n = backend.calls, wh.count("reflections")
    run(["reflections"], _config(2))
    assert backend.calls == calls and wh.count("reflections") == n


class OverallDisagrees(ScriptedReflect):
    """The judge's overall question (all criteria in one prompt) prefers the plain draft to the revision
    that the per-criterion scores reward."""

    def score(self, requests):
        out = []
        for r in requests:
            user = r.messages[-1]["content"]
            if "【祝福语】" not in user:
                out += super().score([r])
                continue
            self.calls += 1
            plain = DETAIL not in user.split("【祝福语】")[1].split("\n")[0]
            out.append(Generation(text="", tokens_in=5, tokens_out=0,
                                  label_logprobs=(-0.2, -1.8) if plain else (-1.8, -0.2)))
        return out


@pytest.mark.parametrize("accept_by", ["both", "overall"])
def test_a_revision_the_overall_judgement_scores_lower_is_not_kept_when_acceptance_asks_for_it(
        zhufu_home, monkeypatch, accept_by):
    run, wh = scripted_runner(monkeypatch, OverallDisagrees(), ASSETS)
    run(["scenario_samples", "seed_preference_pairs", "human_labels", "criteria"])
    run(["reflections"], {"reflections": {**_config(1)["reflections"], "accept_by": accept_by}})
    rows = wh.sql("SELECT * FROM reflections_latest").to_dicts()
    assert len(rows) == 6 and all(r["accept_by"] == accept_by for r in rows)
    assert all(r["gain"] > 0 for r in rows)  # the criteria total rose ...
    assert all(r["revision_overall"] < r["draft_overall"] and not r["accepted"] for r in rows)  # ... the overall fell


def test_chain_ids_under_the_default_settings_are_the_ids_from_before_they_were_settings():
    models = ("writer", "critic", "judge")
    before = {k: v for k, v in rf.Settings().__dict__.items() if k not in ("accept_by", "revisions")}
    old_id = content_id("reflection-chain", rf.AGENT_VERSION, "greeting", "题", "稿", *models, "v1", before)
    assert rf.chain_id("greeting", "题", "稿", models, "v1", rf.Settings()) == old_id  # a resumed run finds its rounds
    assert rf.chain_id("greeting", "题", "稿", models, "v1", rf.Settings(accept_by="both")) != old_id
    assert rf.chain_id("greeting", "题", "稿", models, "v1", rf.Settings(revisions=4)) != old_id


def test_weakest_criteria_and_revision_cleaning():
    cs = [crit.Criterion("greeting", "d", name, name, ("差", "", "", "", f"{name}满分"), w)
          for name, w in (("a", 0.5), ("b", 0.3), ("c", 0.2))]
    score = crit.CriteriaScore(per_criterion={"a": 0.9, "b": 0.2, "c": None}, total=0.6, scored=2)
    assert [c.name for c, _ in rf.weakest(cs, score)] == ["b", "a"]
    assert rf.critique_from_scores(rf.weakest(cs, score)[:1]) == "「b」不足，应做到：b满分。"
    assert rf.clean_revision("修改后：愿你平安喜乐。", "祝你快乐") == ("愿你平安喜乐。", None)
    assert rf.clean_revision("“愿你平安喜乐”\n\n说明：……", "祝你快乐")[0] == "愿你平安喜乐"
    assert rf.clean_revision("祝你快乐", "祝你快乐") == (None, "the draft unchanged")
    assert rf.clean_revision("ok", "祝你快乐")[0] is None
    assert rf.clean_revision("愿" * 5 + "你好" * 200, "祝你快乐")[0] is None
    draft = "新店开业，愿生意兴隆，财源广进。"
    assert "repeats itself" in rf.clean_revision("新店开业，愿你如春风般活力，如春风般活力，如春风般活力。", draft)[1]
    assert rf.critique_problem("祝贺！\n新店开业，愿生意兴隆，财源广进", draft).startswith("copies the draft")
    assert rf.critique_problem("你的修改意见：加细节", draft).startswith("echoes")
    assert rf.critique_problem("加一个具体的细节。再写一句。加一个具体的细节。", draft).startswith("repeats")
    assert rf.critique_problem("写出店里最有特色的一道菜，让祝福更具体。", draft) is None


class OneOfThreeRevisionsHelps(ScriptedReflect):
    """Only the third revision sampled per round adds the rewarded detail; the other two are plain rewrites."""

    def generate(self, requests):
        out = []
        for r in requests:
            if r.schema_name is None and "作者" in (r.messages[0]["content"] if len(r.messages) > 1 else ""):
                self.calls += 1
                draft = r.messages[-1]["content"].split("【初稿】")[1].split("\n")[0]
                text = {"-1": "祝你身体健康，心想事成。", "-2": f"{DETAIL}的饭菜最香，{draft}"}.get(
                    r.item[-2:], "祝你万事如意，天天开心。")
                out.append(Generation(text=text, tokens_in=5, tokens_out=5))
            else:
                out += super().generate([r])
        return out


def test_the_best_of_several_revisions_is_the_rounds_revision_and_every_sample_is_a_recorded_call(
        zhufu_home, monkeypatch):
    run, wh = scripted_runner(monkeypatch, OneOfThreeRevisionsHelps(), ASSETS)
    run(["scenario_samples", "seed_preference_pairs", "human_labels", "criteria"])
    run(["reflections"], {"reflections": {**_config(1)["reflections"], "revisions": 3}})
    rows = wh.sql("SELECT * FROM reflections_latest").to_dicts()
    assert len(rows) == 6 and all(r["revisions_sampled"] == 3 for r in rows)
    assert all(DETAIL in r["revision"] and r["accepted"] for r in rows)  # the sample the judge scores highest
    assert all(len(r["llm_call_ids"]) == 1 + 3 for r in rows)  # the critique and all three revisions
    logged = set(wh.sql("SELECT request_key FROM llm_calls_latest")["request_key"])
    assert all(set(r["llm_call_ids"]) <= logged for r in rows)


def _reward_round(reward, revisions=3):
    from agents.principles import INITIAL_S_D
    from resources.llm.runtime import LLMRuntime

    rt = LLMRuntime(OneOfThreeRevisionsHelps())
    chain = rf.Chain(chain_id="c0", scenario="greeting", prompt="给外婆的生日祝福", draft="祝外婆生日快乐。")
    settings = rf.Settings(accept_by="reward", revisions=revisions)
    criteria = {"greeting": crit.principles_as_criteria("greeting", INITIAL_S_D)}
    [event] = rf.run_round(rt, rt, rt, [chain], criteria, rf.NoMemory(), settings, reward=reward)
    return event, chain


def test_acceptance_by_a_reward_model_keeps_the_sample_it_prefers_beyond_its_length():
    # samples: 祝你万事如意，天天开心。(12) · 祝你身体健康，心想事成。(12) · 外婆的饭菜最香，<draft> (16); the draft 8.
    # A reward paying 0.1 a character plus 0.3 for 心想事成: raw, the longest sample wins (1.6 against 1.5);
    # with the length trend of the draft and its samples taken out, 心想事成 does and beats the draft by 0.3.
    event, chain = _reward_round(lambda ps, rs: [0.1 * len(r) + (0.3 if "心想事成" in r else 0.0) for r in rs])
    assert event.revision == "祝你身体健康，心想事成。" and event.accepted
    assert event.reward_gain == pytest.approx(0.3) and chain.draft == event.revision
    # a reward that pays for length alone never prefers a revision over its draft
    event, chain = _reward_round(lambda ps, rs: [0.1 * len(r) for r in rs])
    assert event.reward_gain == pytest.approx(0.0, abs=1e-9) and not event.accepted
    assert chain.draft == "祝外婆生日快乐。"
    with pytest.raises(ValueError, match="reward"):
        _reward_round(None)


def test_acceptance_by_a_reward_model_that_is_not_registered_fails_naming_it(zhufu_home, monkeypatch):
    run, _ = scripted_runner(monkeypatch, ScriptedReflect(), ASSETS)
    run(["scenario_samples", "seed_preference_pairs", "human_labels", "criteria"])
    with pytest.raises(Exception, match="needs a registered reward model"):
        run(["reflections"], {"reflections": {**_config(1)["reflections"], "accept_by": "reward"}})
