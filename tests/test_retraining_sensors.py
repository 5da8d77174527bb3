"""Retraining sensors on a real warehouse: enough new pairs (from the change feed) or a moved label
balance ask for a reward model; a new reward model or new judge principles ask for a policy. Runs
use the run-config profile (not the demo defaults); a failed run is requested again, a successful
one is not, and a target in flight is never requested twice."""

import json
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from resources import WarehouseResource
from sensors.retraining import (
    RETRAIN_TAG,
    RetrainingPolicy,
    _outcome,
    _state,
    preference_data_sensor,
    reward_signal_sensor,
)
from sensors.run_profiles import ProfileError, load_profile
from warehouse.ids import content_id
from warehouse.schema import JudgePrincipleRow, ModelRow, PreferencePairRow, VerdictRow

PRODUCTION = json.loads(Path(load_profile("production").source).read_text(encoding="utf-8"))


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


def _requests(result) -> list[dg.RunRequest]:
    return [] if isinstance(result, dg.SkipReason) else list(result.run_requests)


def _pref_tick(cursor=None, min_new_pairs=3, balance_delta=0.2, instance=None, **policy):
    ctx = dg.build_sensor_context(cursor=cursor, instance=instance, resources={
        "warehouse": WarehouseResource(), "retraining": RetrainingPolicy(min_new_pairs=min_new_pairs,
                                                                          balance_delta=balance_delta, **policy)})
    return preference_data_sensor(ctx)


def _signal_tick(cursor=None, instance=None, **policy):
    return reward_signal_sensor(dg.build_sensor_context(cursor=cursor, instance=instance, resources={
        "warehouse": WarehouseResource(), "retraining": RetrainingPolicy(**policy)}))


def _run(instance, request: dg.RunRequest, status: dg.DagsterRunStatus) -> None:
    """The run the daemon would have launched for ``request``, ended with ``status``."""
    instance.add_run(dg.DagsterRun(job_name="j", run_id=str(uuid.uuid4()), status=status, tags=request.tags))


def test_preference_data_sensor_counts_new_pairs_since_the_reward_model(wh):
    _pairs(wh, 0, 2)
    _verdicts(wh, [1, 0], "a")
    assert _requests(_pref_tick()) == []  # 2 new pairs < 3, balance unchanged
    _pairs(wh, 2, 2)
    fired = _pref_tick()
    assert len(fired.run_requests) == 1 and "4 new pairs" in fired.run_requests[0].tags["zhufu/trigger"]
    assert _requests(_pref_tick(fired.cursor)) == []  # requested already at this snapshot

    _model(wh, "rm-1", "reward", wh.current_snapshot())  # trained on everything so far
    _pairs(wh, 4, 1)
    assert _requests(_pref_tick()) == []  # 1 new pair since the reward model
    _verdicts(wh, [1, 1, 1, 1, 1, 1], "b")  # balance 0.5 → 0.875
    moved = _pref_tick()
    assert len(moved.run_requests) == 1 and "label balance moved" in moved.run_requests[0].tags["zhufu/trigger"]


def test_reward_signal_sensor_asks_for_a_policy_when_signals_land(wh):
    assert _requests(_signal_tick()) == []
    _model(wh, "rm-1", "reward", 1)
    first = _signal_tick()
    assert len(first.run_requests) == 1 and "rm-1" in first.run_requests[0].tags["zhufu/trigger"]
    _model(wh, "grpo-1", "grpo", 2, reward_model_id="rm-1")
    assert _requests(_signal_tick()) == []  # the newest policy already uses rm-1
    quiet = _signal_tick(first.cursor)  # the pending request is settled by grpo-1's registration
    assert _requests(quiet) == []
    wh.append([JudgePrincipleRow(loop_id="L", iteration=0, s_g=["g"], s_d=["d"], suggestions=[], heldout_accuracy=0.7,
                                 model="m", prompt_version="v")], asset_key="judge_principles")
    landed = _signal_tick(quiet.cursor)
    assert len(landed.run_requests) == 1 and "principles" in landed.run_requests[0].tags["zhufu/trigger"]
    _model(wh, "grpo-2", "grpo", 3, reward_model_id="rm-1", principles_id=json.loads(landed.cursor)["pending"][
        "target"]["principles_id"])
    _model(wh, "rm-2", "reward", 3)
    assert "rm-2" in _signal_tick(landed.cursor).run_requests[0].tags["zhufu/trigger"]


# ---------------------------------------------------------------- the run-config profile


def test_retraining_runs_carry_the_production_profile_not_the_demo_defaults(wh):
    _pairs(wh, 0, 4)
    req = _pref_tick().run_requests[0]
    rm_cfg = req.run_config["ops"]["reward_model"]["config"]
    assert rm_cfg == PRODUCTION["assets"]["reward_model"] and rm_cfg["max_steps"] == -1  # whole epochs, not 8 steps
    assert set(req.run_config["ops"]) == {"reward_model"}  # the job refuses config for ops it lacks
    assert req.tags["zhufu/profile"] == "production"
    assert req.tags["zhufu/profile_version"] == content_id(PRODUCTION, length=12)

    _model(wh, "rm-1", "reward", 1)
    g = _signal_tick().run_requests[0]
    assert set(g.run_config["ops"]) == {"grpo_policy", "policy_evaluation"}
    assert g.run_config["ops"]["grpo_policy"]["config"]["max_steps"] == -1
    assert g.run_config["ops"]["grpo_policy"]["config"]["learning_rate"] == 3e-7


def test_the_production_profile_is_valid_run_config_for_both_jobs(zhufu_home):
    from definitions import defs

    profile = load_profile("production")
    for job, names in (("reward_model_job", ["reward_model"]), ("grpo_job", ["grpo_policy", "policy_evaluation"])):
        dg.validate_run_config(defs.resolve_job_def(job), profile.run_config(names))


def test_a_profile_of_the_users_own_is_used_and_versioned_by_content(wh, tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("assets:\n  reward_model: {max_steps: -1, batch_size: 64}\n", encoding="utf-8")
    _pairs(wh, 0, 4)
    req = _pref_tick(profile=str(path)).run_requests[0]
    assert req.run_config == {"ops": {"reward_model": {"config": {"max_steps": -1, "batch_size": 64}}}}
    assert req.tags["zhufu/profile"] == "big"
    v1 = req.tags["zhufu/profile_version"]
    path.write_text("assets:\n  reward_model: {max_steps: -1, batch_size: 32}\n", encoding="utf-8")
    assert load_profile(str(path)).version != v1


@pytest.mark.parametrize(("text", "says"), [
    ("assets:\n  reward_model: {max_stpes: -1}\n", "no option max_stpes"),
    ("assets:\n  reward_modle: {}\n", "unknown asset 'reward_modle'"),
    ("assets:\n  reward_model: {batch_size: many}\n", "batch_size"),
    ("[1, 2", "big.yaml"),
])
def test_a_bad_profile_fails_the_tick_naming_the_problem(wh, tmp_path, text, says):
    path = tmp_path / "big.yaml"
    path.write_text(text, encoding="utf-8")
    _pairs(wh, 0, 4)
    with pytest.raises(ProfileError, match=says):
        _pref_tick(profile=str(path))
    with pytest.raises(ProfileError, match="no such built-in profile"):
        _pref_tick(profile="nightly")


# ---------------------------------------------------------------- the cursor: retried on failure, never doubled


def test_a_failed_reward_model_run_is_requested_again_a_successful_one_is_not(wh):
    instance = dg.DagsterInstance.ephemeral()
    _pairs(wh, 0, 4)
    first = _pref_tick(instance=instance)
    (r1,) = first.run_requests
    assert r1.tags[RETRAIN_TAG] == r1.run_key  # how a later tick finds the run
    assert _requests(_pref_tick(first.cursor, instance=instance)) == []  # same state twice: one request
    _run(instance, r1, dg.DagsterRunStatus.STARTED)
    assert _requests(_pref_tick(first.cursor, instance=instance)) == []  # in flight

    _run(instance, r1, dg.DagsterRunStatus.FAILURE)
    again = _pref_tick(first.cursor, instance=instance)
    (r2,) = again.run_requests  # the failure is retried, under a new run key
    assert r2.run_key != r1.run_key and r2.tags["zhufu/attempt"] == "2"
    assert r2.run_config == r1.run_config
    assert _requests(_pref_tick(again.cursor, instance=instance)) == []

    _run(instance, r2, dg.DagsterRunStatus.SUCCESS)
    done = _pref_tick(again.cursor, instance=instance)
    assert _requests(done) == [] and "pending" not in json.loads(done.cursor)
    assert _requests(_pref_tick(done.cursor, instance=instance)) == []  # not again
    _pairs(wh, 4, 3)
    assert len(_requests(_pref_tick(done.cursor, instance=instance))) == 1  # new data: a new target


def test_a_registered_model_settles_the_request_and_failures_stop_after_max_attempts(wh):
    instance = dg.DagsterInstance.ephemeral()
    _pairs(wh, 0, 4)
    tick = _pref_tick(instance=instance, max_attempts=2)
    _run(instance, tick.run_requests[0], dg.DagsterRunStatus.FAILURE)
    tick = _pref_tick(tick.cursor, instance=instance, max_attempts=2)
    _run(instance, tick.run_requests[0], dg.DagsterRunStatus.CANCELED)
    gave_up = _pref_tick(tick.cursor, instance=instance, max_attempts=2)
    assert _requests(gave_up) == [] and "gave up after 2 attempts" in gave_up.skip_reason.skip_message
    assert _requests(_pref_tick(gave_up.cursor, instance=instance, max_attempts=2)) == []
    _pairs(wh, 4, 1)  # new evidence: try again
    retry = _pref_tick(gave_up.cursor, instance=instance, max_attempts=2)
    assert retry.run_requests[0].tags["zhufu/attempt"] == "1"

    # a reward model trained on the target (here registered by hand, not by the sensor's run) settles it
    target = json.loads(retry.cursor)["pending"]["target"]
    _model(wh, "rm-1", "reward", target)
    settled = _pref_tick(retry.cursor, instance=instance)
    assert _requests(settled) == [] and json.loads(settled.cursor) == {"done": target}


def test_a_request_whose_run_never_appears_is_retried():
    ctx = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral())
    policy = RetrainingPolicy(lost_after_s=60)
    fresh = {"run_key": "k", "requested_at": time.time()}
    assert _outcome(ctx, policy, fresh, registered=False) == "waiting"
    assert _outcome(ctx, policy, {**fresh, "requested_at": fresh["requested_at"] - 120}, registered=False) == "failed"


def test_a_failed_policy_run_is_requested_again_and_a_successful_one_is_not(wh):
    instance = dg.DagsterInstance.ephemeral()
    _model(wh, "rm-1", "reward", 1)
    first = _signal_tick(instance=instance)
    (g1,) = first.run_requests
    assert _requests(_signal_tick(first.cursor, instance=instance)) == []  # same state twice: one request
    _run(instance, g1, dg.DagsterRunStatus.FAILURE)
    again = _signal_tick(first.cursor, instance=instance)
    (g2,) = again.run_requests
    assert g2.run_key != g1.run_key and "rm-1" in g2.run_key
    _run(instance, g2, dg.DagsterRunStatus.SUCCESS)
    done = _signal_tick(again.cursor, instance=instance)
    assert _requests(done) == [] and _requests(_signal_tick(done.cursor, instance=instance)) == []


def test_a_cursor_of_the_earlier_format_still_reads():
    assert _state("12") == {"done": 12}
    assert _state('{"reward_model_id": "rm-1", "principles_id": null}') == {
        "done": {"reward_model_id": "rm-1", "principles_id": None}}
