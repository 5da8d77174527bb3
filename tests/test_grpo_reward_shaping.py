"""GRPO's reward shaping: a reward cannot be bought with length, rewards of different units share a
scale, repeating a phrase costs, and a phrase other prompts' completions use pays less (training/rewards.py)."""

import pytest

from training.rewards import BatchNovelty, LengthNeutral, RepetitionPenalty, within_group_slope


def _batch():
    prompts = ["写给妈妈"] * 4 + ["写给老师"] * 4
    completions = ["祝您健康", "祝您健康快乐长寿", "愿您平安喜乐", "愿您平安喜乐岁岁年年",
                   "谢谢老师", "谢谢老师的教诲之恩", "师恩难忘", "师恩难忘永记心间"]
    return prompts, completions


def test_a_reward_that_pays_only_for_length_gives_no_within_prompt_differences():
    prompts, completions = _batch()
    shaped = LengthNeutral(lambda p, c, **_: [3.0 * len(x) for x in c], scale=False)
    out = shaped(prompts, completions)
    for g in (out[:4], out[4:]):
        assert max(g) - min(g) < 1e-9
    assert abs(shaped.last_slope - 3.0) < 1e-9


def test_quality_survives_once_the_length_trend_is_removed():
    prompts, completions = _batch()
    quality = [0, 1, 2, 0, 2, 0, 1, 0]  # not a function of length within either prompt
    shaped = LengthNeutral(lambda p, c, **_: [q + 0.5 * len(x) for q, x in zip(quality, c, strict=True)], scale=False)
    out = shaped(prompts, completions)
    best = [max(range(4), key=lambda i: out[i]), 4 + max(range(4), key=lambda i: out[4 + i])]
    assert best == [2, 4]


def test_rewards_in_different_units_are_put_on_one_scale_fixed_after_the_first_batch():
    prompts, completions = _batch()
    quality = [0.0, 1.0, 2.0, 0.5, 2.0, 0.0, 1.0, 0.5]
    logits = LengthNeutral(lambda p, c, **_: [40.0 * q for q in quality], length=False)
    probs = LengthNeutral(lambda p, c, **_: [0.01 * q for q in quality], length=False)
    a, b = logits(prompts, completions), probs(prompts, completions)
    assert all(abs(x - y) < 1e-9 for x, y in zip(a, b, strict=True))
    unit = logits.unit
    logits(prompts, completions)  # the unit stays: the logged reward curve keeps its meaning
    assert logits.unit == unit


def test_a_first_call_without_groups_leaves_the_unit_to_the_first_grouped_batch():
    shaped = LengthNeutral(lambda p, c, **_: [float(len(x)) for x in c])
    shaped(["a", "b"], ["祝您健康", "谢谢"])  # one completion per prompt: no within-prompt spread
    assert shaped.unit is None
    prompts, completions = _batch()
    shaped(prompts, completions)
    assert shaped.unit is not None and shaped.unit > 0


def test_within_group_slope_ignores_differences_between_prompts():
    # the long prompt's completions are all longer and better: that is not a within-prompt trend
    values, lengths = [1.0, 1.0, 9.0, 9.0], [10, 20, 80, 90]
    assert within_group_slope(values, lengths, {"a": [0, 1], "b": [2, 3]}) == 0.0


def test_repeating_a_phrase_costs_at_least_one_unit():
    pen = RepetitionPenalty()(["p", "p"], ["如星辰般闪耀，如星辰般闪耀", "愿你前程似锦，万事顺意"])
    assert pen[0] <= -1.0 and pen[1] == 0.0


def test_novelty_pays_for_bigrams_no_other_prompt_uses_and_ignores_the_own_group():
    prompts = ["写给妈妈", "写给妈妈", "写给老师", "写给老师"]
    completions = ["前程似锦", "春风化雨", "前程似锦", "桃李满园"]
    out = BatchNovelty()(prompts, completions)
    assert out[0] == 0.0 and out[2] == 0.0  # both use a stock phrase another prompt's rollout uses
    assert out[1] == 1.0 and out[3] == 1.0
    # the same prompt's rollouts sharing a phrase is not penalised (they are each other's baseline)
    same = BatchNovelty()(["写给妈妈"] * 2 + ["写给老师"], ["前程似锦", "前程似锦啊", "桃李满园"])
    assert same[:2] == [1.0, 1.0]


def test_novelty_is_a_share_and_empty_completions_score_zero():
    out = BatchNovelty()(["a", "b"], ["祝您健康快乐", "祝您平安"])
    assert abs(out[0] - 4 / 5) < 1e-9  # of 祝您 您健 健康 康快 快乐 only 祝您 is used by the other prompt
    assert abs(out[1] - 2 / 3) < 1e-9
    assert BatchNovelty()(["a", "b"], ["", "祝您"]) == [0.0, 1.0]


def test_the_novelty_reward_joins_grpo_only_when_weighted(monkeypatch):
    import training.rewards as rewards
    from training.config import GRPORunConfig
    from training.grpo import reward_functions

    monkeypatch.setattr(rewards, "RewardModelReward", lambda path: (lambda p, c, **_: [0.0] * len(c)))
    cfg = dict(base_model="m", output_dir="o", prompts_file="p.jsonl", reward="reward_model", reward_model="rm")
    funcs, weights = reward_functions(GRPORunConfig(**cfg))
    assert not any(isinstance(getattr(f, "func", f), BatchNovelty) for f in funcs)
    funcs, weights = reward_functions(GRPORunConfig(**cfg, novelty_weight=0.5))
    novelty = [(f, w) for f, w in zip(funcs, weights, strict=True) if isinstance(getattr(f, "func", f), BatchNovelty)]
    assert len(novelty) == 1 and novelty[0][1] == 0.5 and isinstance(novelty[0][0], LengthNeutral)


def test_the_penalty_charges_every_completion_the_eval_metric_calls_repetitive():
    from training.metrics import repeat_rate, repeated_share

    text = "祝你：好\n祝你：好"  # the repeated phrase holds a colon: repeat_rate counts it, repeated_share does not
    assert repeat_rate([text]) == 1.0 and repeated_share(text) == 0.0
    assert RepetitionPenalty()(["p"], [text]) == [-1.0]


def test_a_length_neutral_repetition_penalty_does_not_pay_for_being_short(monkeypatch):
    import training.grpo as grpo
    import training.rewards as rewards
    from training.config import GRPORunConfig

    monkeypatch.setattr(rewards, "RewardModelReward", lambda path: (lambda p, c, **_: [0.0] * len(c)))
    cfg = GRPORunConfig(base_model="m", output_dir="o", prompts_file="p.jsonl", reward="reward_model", reward_model="rm")
    funcs, _ = grpo.reward_functions(cfg.model_copy(update={"repetition_length_neutral": False}))
    assert isinstance(funcs[-1], RepetitionPenalty)
    funcs, _ = grpo.reward_functions(cfg)  # the default
    pen = funcs[-1]
    assert isinstance(pen, LengthNeutral) and isinstance(pen.func, RepetitionPenalty) and not pen.scale
    # the longer completions repeat; at equal length, the repeating one still pays
    prompts = ["写给妈妈"] * 4
    completions = ["祝您健康", "愿您平安", "祝您健康长寿，祝您健康长寿", "愿您平安喜乐，岁岁年年长寿"]
    out = pen(prompts, completions)
    assert out[2] < out[3]
    raw = RepetitionPenalty()(prompts, completions)
    assert sum(out[:2]) / 2 < sum(raw[:2]) / 2  # short ones are no longer better off merely for being short
    assert abs(within_group_slope(out, [len(c) for c in completions], {"a": [0, 1, 2, 3]})) < 1e-9
    # without length neutralisation of the rewards, the penalty stays plain as well
    assert isinstance(grpo.reward_functions(cfg.model_copy(update={"length_neutral": False}))[0][-1], RepetitionPenalty)


def test_the_criteria_reward_joins_grpo_and_shares_the_judges_model(monkeypatch, tiny_model_dir):
    import training.rewards as rewards
    from training.config import GRPORunConfig
    from training.grpo import judge_runtimes, reward_functions

    monkeypatch.setattr(rewards, "RewardModelReward", lambda path: (lambda p, c, **_: [0.0] * len(c)))
    criterion = {"id": "c1", "task_type": "greeting", "dimension": "具体", "criterion": "细节具体",
                 "description": "写出对象和场合的具体细节", "rubric": ["1 空泛", "3 有细节", "5 细节生动"], "weight": 1.0}
    base = dict(base_model=str(tiny_model_dir), output_dir="o", prompts_file="p.jsonl")
    with pytest.raises(ValueError, match="criteria"):
        reward_functions(GRPORunConfig(**base, reward="criteria"))
    funcs, weights = reward_functions(GRPORunConfig(**base, reward="criteria", criteria=[criterion],
                                                    reward_weights={"criteria": 0.5}))
    crit = [(f, w) for f, w in zip(funcs, weights, strict=True) if isinstance(f.func, rewards.CriteriaReward)]
    assert len(crit) == 1 and crit[0][1] == 0.5 and len(judge_runtimes(funcs)) == 1
    scores = crit[0][0].func(["同事升职"] * 2, ["恭喜升职！", "祝你在新岗位上带领团队再创佳绩。"])
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)
    funcs, _ = reward_functions(GRPORunConfig(**base, reward="weighted", reward_model="rm", judge_principles=["真诚"],
                                              criteria=[criterion]))
    readers = [f.func.runtime for f in funcs if isinstance(f.func, rewards.JudgeReward | rewards.CriteriaReward)]
    assert len(readers) == 2 and readers[0] is readers[1]  # judge and criteria read with one model in memory
    assert judge_runtimes(funcs) == [readers[0]]  # flushed and counted once
