"""The shared 是/否 judge: scores from one forward pass (local and OpenAI-compatible backends),
cached like any call, and thresholds calibrated on human labels that yield both labels."""

import math
import random

import pytest

from agents import judging
from agents.principles import INITIAL_S_D, Example, balanced_head
from resources.llm.local import LocalBackend
from resources.llm.openai_backend import OpenAIBackend
from resources.llm.runtime import LLMRuntime
from tests.fake_openai_server import FakeOpenAI
from training.metrics import paired_comparison, repeat_rate, repeated_share, wilson_interval


def test_calibration_gives_both_labels_on_a_mixed_set_even_when_every_score_is_high():
    # a judge that says 是 to everything still ranks: the threshold goes where the labels split
    scores = [0.97, 0.96, 0.95, 0.93, 0.92, 0.91, 0.90]
    labels = [1, 1, 1, 1, 0, 0, 0]
    cal = judging.calibrate(scores, labels)
    assert 0.92 < cal.threshold < 0.93
    assert cal.accuracy == 1.0 and cal.positive_rate == pytest.approx(4 / 7)
    assert {cal.label(s) for s in scores} == {0, 1}
    assert cal.label(None) is None


def test_a_small_sample_of_a_mostly_good_split_keeps_both_labels_in_order():
    split = [Example(f"i{k}", "p", f"r{k}", int(k not in (6, 9))) for k in range(12)]  # 2 flawed of 12
    head = balanced_head(split, 6)
    assert [e.item_id for e in head] == ["i0", "i1", "i2", "i3", "i6", "i9"]
    assert [e.item_id for e in balanced_head(split, 3)] == ["i0", "i1", "i6"]
    assert balanced_head(split, 0) == split and balanced_head(split, 50) == split
    only_good = [e for e in split if e.label == 1]
    assert balanced_head(only_good, 4) == only_good[:4]


def test_calibration_ignores_unscored_items_and_handles_none():
    assert judging.calibrate([None, None], [1, 0]).n == 0
    cal = judging.calibrate([0.2, None, 0.8], [0, 1, 1])
    assert cal.n == 2 and cal.label(0.8) == 1 and cal.label(0.2) == 0


def _direct(model, tok, messages, labels=("是", "否")):
    import torch

    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    with torch.inference_mode():
        logits = model(torch.tensor([list(ids)])).logits[0, -1].float()
    logp = torch.log_softmax(logits, -1)
    a, b = (tok.encode(x, add_special_tokens=False)[0] for x in labels)
    return logp[a].item(), logp[b].item()


def test_local_scores_equal_a_direct_forward_with_and_without_the_shared_prefix(tiny_model_dir):
    backend = LocalBackend(str(tiny_model_dir), batch_size=2, progress=False)
    rt = LLMRuntime(backend)
    items = [("给外婆写生日祝福", "外婆生日快乐"), ("中秋祝福 简短", "月圆人团圆"), ("给老师", "谢谢您，老师！" * 3)]
    shared = rt.score(judging.score_requests(items, INITIAL_S_D, tag="t"))   # 3 requests, one system prompt
    alone = [rt.score(judging.score_requests([it], INITIAL_S_D, tag="u"))[0] for it in items]  # no sharing
    model, tok = backend.load()
    for (p, r), a, b in zip(items, shared, alone, strict=True):
        direct = _direct(model, tok, judging.judge_messages(INITIAL_S_D, p, r))
        assert a.ok and a.parsed["logprobs"] == pytest.approx(list(direct), abs=1e-4)
        assert b.parsed["logprobs"] == pytest.approx(list(direct), abs=1e-4)
        assert a.parsed["p"] == pytest.approx(1 / (1 + math.exp(-(direct[0] - direct[1]))), abs=1e-4)


def test_scores_are_cached_in_the_call_log(wh, tiny_model_dir):
    from resources.llm.calllog import CallLog

    backend = LocalBackend(str(tiny_model_dir), batch_size=4, progress=False)
    reqs = judging.score_requests([("需求", "祝福一"), ("需求", "祝福二")], INITIAL_S_D, tag="c")
    first = LLMRuntime(backend, CallLog(wh, run_id="r1", asset_key="a"))
    a = first.score(reqs)
    second = LLMRuntime(backend, CallLog(wh, run_id="r2", asset_key="a"))
    b = second.score(reqs)
    assert second.stats.model_calls == 0 and second.stats.cache_hits == 2
    assert [x.parsed["p"] for x in a] == [x.parsed["p"] for x in b]
    row = wh.sql("SELECT request FROM llm_calls LIMIT 1")["request"][0]
    assert "score_labels" in row  # the log says it was a score, not a generation


def test_openai_backend_scores_from_the_endpoints_top_logprobs():
    with FakeOpenAI() as server:
        rt = LLMRuntime(OpenAIBackend("judge", base_url=server.base_url, api_key="k"))
        good, bad = rt.score(judging.score_requests([("需求", "【好】祝福"), ("需求", "一般的祝福")], [], tag="o"))
    assert good.ok and bad.ok
    assert good.parsed["p"] > 0.9 > 0.1 > bad.parsed["p"]


def test_repetition_and_pairwise_comparison_metrics():
    assert repeated_share("如星辰般闪耀，如星辰般闪耀，如星辰般闪耀") > 0.5
    assert repeated_share("外婆，八十岁生日快乐！小时候您摇着蒲扇") == 0.0
    assert repeat_rate(["如星辰般闪耀，如星辰般闪耀", "月圆人团圆"]) == 0.5
    lo, hi = wilson_interval(70, 100)
    assert 0.6 < lo < 0.7 < hi < 0.8
    cmp = paired_comparison([2.0, 3.0, 1.0, 2.0], [1.0, 1.0, 1.0, 0.0], [10, 10, 10, 30], [10, 10, 10, 10])
    assert cmp["win_rate"] == pytest.approx(3.5 / 4) and cmp["len_matched_n"] == 3
    assert cmp["gain"] == pytest.approx(1.25) and cmp["gain_se"] is not None


def test_a_checkable_rule_is_kept_or_broken_by_the_greetings_text():
    rng = random.Random(0)
    good, other = "祝妈妈生日快乐，身体健康，万事如意！", "愿老师桃李满天下，春风化雨润心田。"
    rules = [r for r in (judging.checkable_rule(good, other, rng) for _ in range(200)) if r]
    for r in rules:
        must_have = "必须出现" in r.text
        assert r.word in r.text and r.satisfied == ((r.word in good) == must_have)
    # both verdicts under both polarities: neither the word nor the polarity alone gives the label away
    kinds = {("必须出现" in r.text, r.satisfied) for r in rules}
    assert kinds == {(True, True), (True, False), (False, True), (False, False)}


def test_pair_rows_keep_pairs_together_and_add_standalone_rule_rows_labelled_by_the_rule():
    pairs = [{"id": f"p{i}", "prompt": f"需求{i}", "chosen": f"祝你前程似锦第{i}年，万事顺意！",
              "rejected": "生日快乐"} for i in range(40)]
    rows = judging.pair_rows(pairs, [["原则一", "原则二", "原则三"]], random.Random(1), rule_share=0.5)
    paired = [r for r in rows if r.get("pair")]
    assert len(paired) == 80 and {r["label"] for r in paired} == {0, 1}
    rules = [r for r in rows if r["source"] == "rule:word"]
    assert rules and all("pair" not in r for r in rules)  # the pairwise term never sees a rule row
    for r in rules:
        rule = next(p for p in r["principles"] if p.startswith("祝福语中"))
        word = rule.split("“")[1].split("”")[0]
        assert r["label"] == int((word in r["response"]) == ("必须出现" in rule))
    assert {r["label"] for r in rules} == {0, 1}


def test_pair_rows_repeat_only_pairs_of_similar_length_as_whole_pairs_under_their_own_keys():
    pairs = [{"id": "long", "prompt": "需求", "chosen": "祝你前程似锦，万事顺意，岁岁平安！", "rejected": "生日快乐"},
             {"id": "even", "prompt": "需求", "chosen": "愿你前程似锦，万事顺意！", "rejected": "祝你生日快乐，天天开心！"}]
    rows = judging.pair_rows(pairs, [["原则一", "原则二"]], random.Random(0), rule_share=0.0, matched_repeat=2)
    keys = {}
    for r in rows:
        keys.setdefault(r["pair"], []).append(r["label"])
    assert sorted(keys) == ["even", "even#1", "even#2", "long"]
    assert all(sorted(v) == [0, 1] for v in keys.values())  # each copy is a whole pair for the pairwise term


def test_rule_eval_rows_use_only_good_greetings_under_the_given_principles():
    labelled = [{"prompt": "p", "response": f"愿你平安喜乐第{i}天，岁岁无忧！", "label": i % 2} for i in range(20)]
    rows = judging.rule_eval_rows(labelled, ["原则甲"], seed=3)
    assert rows and all(r["response"] in {x["response"] for x in labelled if x["label"] == 1} for r in rows)
    assert all("原则甲" in r["principles"] and r["rule"] in r["principles"] for r in rows)
    assert rows == judging.rule_eval_rows(labelled, ["原则甲"], seed=3)  # reproducible


def test_length_rules_are_decided_by_the_greetings_length_and_never_borderline():
    rng = random.Random(0)
    texts = ["愿你平安喜乐，岁岁无忧！" * k for k in (1, 2, 3, 5, 8)]
    rules = [r for t in texts for _ in range(40) if (r := judging.length_rule(t, rng))]
    assert rules
    for t, r in ((t, judging.length_rule(t, random.Random(i))) for i, t in enumerate(texts * 20)):
        if r is None:
            continue
        n, chars = int(r.word), len(t)
        assert abs(chars - n) >= max(6, 0.2 * n)
        assert r.satisfied == (chars <= n if "不超过" in r.text else chars >= n)
    assert {(("不超过" in r.text), r.satisfied) for r in rules} == {(True, True), (True, False), (False, True),
                                                                   (False, False)}


def test_rule_rows_of_either_kind_carry_their_rule_and_its_kind():
    pairs = [{"id": f"p{i}", "prompt": f"需求{i}", "chosen": "祝你前程似锦，万事顺意，" * (1 + i % 5),
              "rejected": "生日快乐"} for i in range(60)]
    rows = judging.pair_rows(pairs, [["原则一", "原则二"]], random.Random(2), rule_share=1.0, rule_kind="length")
    rules = [r for r in rows if r["source"] == "rule:length"]
    assert rules and {r["label"] for r in rules} == {0, 1}
    assert all(any(p.startswith("祝福语不") for p in r["principles"]) for r in rules)
    with pytest.raises(ValueError, match="unknown rule kind"):
        judging.checkable_rule("祝你前程似锦，万事顺意", "x", random.Random(0), "rhyme")
    evals = judging.rule_eval_rows([{"prompt": "p", "response": r["response"], "label": 1} for r in rules],
                                   ["原则甲"], kind="length")
    assert evals and all(r["rule"].startswith("祝福语不") for r in evals)


def test_an_optimizer_edit_adopts_a_suggestion_and_never_an_echo_of_the_answer_format():
    from agents.principles import MAX_RULES, RuleEdit, apply_edit

    rules, sugg = ["规则甲", "规则乙"], ["重复的句子应判为不合格", "称呼要与对象相符"]
    assert apply_edit(rules, RuleEdit(action="add", suggestion=2, rule="称呼必须与收信人的身份相符"), sugg) == \
        ["规则甲", "规则乙", "称呼必须与收信人的身份相符"]
    # the embedded model often writes "action 为 add" as the rule: the Reflector's wording is used instead
    assert apply_edit(rules, RuleEdit(action="add", suggestion=1, rule="action 为 add"), sugg)[-1] == sugg[0]
    assert apply_edit(rules, RuleEdit(action="replace", suggestion=1, index=2), sugg) == ["规则甲", sugg[0]]
    assert apply_edit(rules, RuleEdit(action="keep"), sugg) == rules
    for bad in (RuleEdit(action="replace", suggestion=1, index=3), RuleEdit(action="add", suggestion=3)):
        assert apply_edit(rules, bad, sugg) is None
    assert apply_edit(["规则甲", sugg[0]], RuleEdit(action="add", suggestion=1), sugg) is None  # already a rule
    assert apply_edit([f"规则{i}" for i in range(MAX_RULES)], RuleEdit(action="add", suggestion=1), sugg) is None
