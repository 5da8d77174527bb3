"""Retraining sensors on a real warehouse: enough new pairs (from the change feed) or a moved label
balance ask for a reward model; a new reward model or new judge principles ask for a policy."""

import dagster as dg

from resources import WarehouseResource
from sensors.retraining import RetrainingPolicy, preference_data_sensor, reward_signal_sensor
from warehouse.schema import JudgePrincipleRow, ModelRow, PreferencePairRow, VerdictRow


def _pairs(wh, start, n):
    wh.append([PreferencePairRow(prompt_id=f"p{i}", chosen_candidate_id=f"c{i}", rejected_candidate_id=f"r{i}",
                                 chosen="好", rejected="差", pairing_policy="all", evidence_ids=[])
               for i in range(start, start + n)], asset_key="preference_pairs")


def _verdicts(wh, labels, tag):
    wh.append([VerdictRow(candidate_id=f"{tag}{i}", stage="reflect", label=x, reason="r", agent_version="v")
               for i, x in enumerate(labels)], asset_key="verdicts")


def _model(wh, model_id, kind, snapshot, **hyper):
    wh.append([ModelRow(model_id=model_id, kind=kind, base="b", hyperparams=hyper, input_snapshots={"train": snapshot},
                        metrics={}, artifact_path="/x")], asset_key=kind)


def _pref_tick(cursor=None, min_new_pairs=3, balance_delta=0.2):
    ctx = dg.build_sensor_context(cursor=cursor, resources={
        "warehouse": WarehouseResource(), "retraining": RetrainingPolicy(min_new_pairs=min_new_pairs,
                                                                          balance_delta=balance_delta)})
    return preference_data_sensor(ctx)


def test_preference_data_sensor_counts_new_pairs_since_the_reward_model(wh):
    _pairs(wh, 0, 2)
    _verdicts(wh, [1, 0], "a")
    assert isinstance(_pref_tick(), dg.SkipReason)  # 2 new pairs < 3, balance unchanged
    _pairs(wh, 2, 2)
    fired = _pref_tick()
    assert len(fired.run_requests) == 1 and "4 new pairs" in fired.run_requests[0].tags["zhufu/trigger"]
    assert isinstance(_pref_tick(fired.cursor), dg.SkipReason)  # requested already at this snapshot

    _model(wh, "rm-1", "reward", wh.current_snapshot())  # trained on everything so far
    _pairs(wh, 4, 1)
    assert isinstance(_pref_tick(), dg.SkipReason)  # 1 new pair since the reward model
    _verdicts(wh, [1, 1, 1, 1, 1, 1], "b")  # balance 0.5 → 0.875
    moved = _pref_tick()
    assert len(moved.run_requests) == 1 and "label balance moved" in moved.run_requests[0].tags["zhufu/trigger"]


def test_reward_signal_sensor_asks_for_a_policy_when_signals_land(wh):
    def tick(cursor=None):
        return reward_signal_sensor(dg.build_sensor_context(cursor=cursor,
                                                            resources={"warehouse": WarehouseResource()}))

    assert isinstance(tick(), dg.SkipReason)
    _model(wh, "rm-1", "reward", 1)
    first = tick()
    assert len(first.run_requests) == 1 and "rm-1" in first.run_requests[0].tags["zhufu/trigger"]
    _model(wh, "grpo-1", "grpo", 2, reward_model_id="rm-1")
    assert tick().run_requests == []  # the newest policy already uses rm-1
    quiet = tick(first.cursor)
    assert quiet.run_requests == []
    wh.append([JudgePrincipleRow(loop_id="L", iteration=0, s_g=["g"], s_d=["d"], suggestions=[], heldout_accuracy=0.7,
                                 model="m", prompt_version="v")], asset_key="judge_principles")
    landed = tick(quiet.cursor)
    assert len(landed.run_requests) == 1 and "principles" in landed.run_requests[0].tags["zhufu/trigger"]
    _model(wh, "rm-2", "reward", 3)
    assert "rm-2" in tick(landed.cursor).run_requests[0].tags["zhufu/trigger"]
