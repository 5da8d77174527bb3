"""Retraining sensors: the label data moves, the models follow.

``preference_data_sensor`` reads the warehouse change feed of ``preference_pairs`` since the newest
reward model's training snapshot and asks for a new reward model when enough new pairs have arrived
or the verdicts' label balance has moved. ``reward_signal_sensor`` asks for a new GRPO policy when a
new (promoted) reward model, new judge principles or a new promoted judge model land — each changes
the reward GRPO trains on.

Both run with the run-config profile ``RetrainingPolicy.profile`` (``production`` by default; see
``sensors/run_profiles.py``), never the asset configs' demo-sized defaults. The cursor keeps the
requested target as *pending* until its run succeeds or its model is registered: a failed (or
canceled, or lost) run is requested again under a new run key, up to ``max_attempts`` times until
new evidence arrives; while a run is in flight the same target is never requested twice.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from assets.path_b import chosen_principles
from assets.policy_eval import PolicyEvaluationConfig, policy_evaluation
from assets.training import GRPOPolicyConfig, RewardModelConfig, grpo_policy, reward_model
from resources import WarehouseResource
from sensors.run_profiles import Profile, load_profile
from warehouse.registry import latest_model
from warehouse.store import Warehouse

REWARD_MODEL_ASSETS = [reward_model.key.to_user_string()]
GRPO_ASSETS = [grpo_policy.key.to_user_string(), policy_evaluation.key.to_user_string()]
PROFILE_SCHEMAS = {"reward_model": RewardModelConfig, "grpo_policy": GRPOPolicyConfig,
                   "policy_evaluation": PolicyEvaluationConfig}
RETRAIN_TAG = "zhufu/retrain"  # the run key, on the run: how a later tick finds the run's outcome

reward_model_job = dg.define_asset_job("reward_model_job", selection=[reward_model],
                                       description="Retrain the reward model on the current preference pairs.")
grpo_job = dg.define_asset_job("grpo_job", selection=[grpo_policy, policy_evaluation],
                               description="Retrain the GRPO policy and evaluate it.")


class RetrainingPolicy(dg.ConfigurableResource):
    min_new_pairs: int = Field(default=50, description="new preference pairs that trigger reward-model retraining")
    balance_delta: float = Field(default=0.1, description="move in the share of label-1 verdicts that triggers it")
    profile: str = Field(default="production", description="run-config profile of the retraining runs: a built-in "
                         "name (sensors/profiles/) or the path of a JSON/YAML file {assets: {asset: config}}")
    max_attempts: int = Field(default=3, description="runs per target before giving up until new evidence arrives")
    lost_after_s: float = Field(default=3600.0, description="a requested run not seen after this long is retried")

    def load_profile(self) -> Profile:
        return load_profile(self.profile, PROFILE_SCHEMAS)


def label_balance(wh: Warehouse, as_of: int | None = None) -> float | None:
    """Share of final (reflect-stage) verdicts labelled 1."""
    df = wh.sql("SELECT avg(label) AS b FROM verdicts_latest WHERE stage = 'reflect' AND label IS NOT NULL",
                as_of=as_of)
    return None if df["b"][0] is None else float(df["b"][0])


# ---------------------------------------------------------------- pending requests


def _state(cursor: str | None) -> dict[str, Any]:
    """``{"done": target, "pending": {...}}``; a cursor of the earlier format is a done target."""
    if not cursor:
        return {}
    value = json.loads(cursor)
    return value if isinstance(value, dict) and ("done" in value or "pending" in value) else {"done": value}


def _run_status(context: dg.SensorEvaluationContext, run_key: str) -> dg.DagsterRunStatus | None:
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:  # a context built without an instance
        return None
    runs = instance.get_runs(filters=dg.RunsFilter(tags={RETRAIN_TAG: run_key}), limit=1)
    return runs[0].status if runs else None


def _outcome(context: dg.SensorEvaluationContext, policy: RetrainingPolicy, pending: dict[str, Any], *,
             registered: bool) -> Literal["succeeded", "failed", "waiting"]:
    """How the pending request ended: its model is registered or its run succeeded; its run failed, was
    canceled or never appeared; or it is still queued or running."""
    if registered:
        return "succeeded"
    status = _run_status(context, pending["run_key"])
    if status == dg.DagsterRunStatus.SUCCESS:
        return "succeeded"
    if status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        return "failed"
    if status is None and time.time() - pending["requested_at"] > policy.lost_after_s:
        return "failed"
    return "waiting"


def _request(policy: RetrainingPolicy, *, job: str, assets: list[str], target: Any, label: str, attempt: int,
             reason: str, done: Any) -> dg.SensorResult:
    """A run request for ``target`` (attempt ``attempt``) and the cursor that keeps it pending."""
    profile = policy.load_profile()
    run_key = f"{job}@{label}" + (f"#attempt-{attempt}" if attempt > 1 else "")
    tags = {"zhufu/trigger": reason, RETRAIN_TAG: run_key, "zhufu/attempt": str(attempt), **profile.tags()}
    pending = {"target": target, "run_key": run_key, "attempt": attempt, "requested_at": time.time()}
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=run_key, run_config=profile.run_config(assets),
                                                       tags=tags)],
                           cursor=json.dumps({"done": done, "pending": pending}))


def _settle(context: dg.SensorEvaluationContext, policy: RetrainingPolicy, state: dict[str, Any], *,
            registered: bool, new_evidence: bool) -> tuple[str, Any]:
    """What to do about the pending request: ("go", done) — nothing pending any more, evaluate the
    trigger; ("wait" | "gave_up", message); ("retry", attempt)."""
    pending = state.get("pending")
    if not pending:
        return "go", state.get("done")
    outcome = _outcome(context, policy, pending, registered=registered)
    if outcome == "succeeded":
        return "go", pending["target"]
    if outcome == "waiting":
        return "wait", f"waiting for run {pending['run_key']}"
    if new_evidence:
        return "retry", 1
    if pending["attempt"] >= policy.max_attempts:
        return "gave_up", (f"{pending['run_key']} failed; gave up after {pending['attempt']} attempts until new "
                           "evidence arrives")
    return "retry", pending["attempt"] + 1


# ---------------------------------------------------------------- reward model


def _new_pairs(wh: Warehouse, since: int, now: int) -> int:
    if since >= now:
        return 0
    changes = wh.changes("preference_pairs", since + 1, now)
    return changes.filter(changes["change_type"] == "insert").height if changes.height else 0


@dg.sensor(job=reward_model_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Reward-model retraining when ≥ N new preference pairs arrived or the label balance moved.")
def preference_data_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource,
                           retraining: RetrainingPolicy) -> dg.SensorResult | dg.SkipReason:
    wh = warehouse.get()
    now = wh.current_snapshot()
    rm = latest_model(wh, "reward", promoted_only=False)  # a rejected model was trained on that data too
    trained_at = int(rm["input_snapshots"].get("train", 0)) if rm else 0
    state = _state(context.cursor)
    pending = state.get("pending")
    action, value = _settle(context, retraining, state,
                            registered=bool(pending) and trained_at >= int(pending["target"]),
                            new_evidence=bool(pending) and _new_pairs(wh, int(pending["target"]), now) > 0)
    if action == "wait":
        return dg.SkipReason(value)
    if action == "gave_up":
        return dg.SensorResult(skip_reason=value, cursor=context.cursor)
    done = int(state.get("done") or 0)
    if action == "retry":
        reason = f"attempt {value}: {pending['run_key']} did not succeed"
        context.log.warning(f"requesting reward-model retraining again: {reason}")
        return _request(retraining, job="reward_model", assets=REWARD_MODEL_ASSETS, target=now,
                        label=f"snapshot-{now}", attempt=value, reason=reason, done=done)
    done = max(done, int(value or 0))
    since = max(trained_at, done)
    if since >= now:
        return dg.SensorResult(skip_reason=f"no snapshot after {since}", cursor=json.dumps({"done": done}))
    new_pairs = _new_pairs(wh, since, now)
    before, after = (label_balance(wh, as_of=since) if since else None), label_balance(wh)
    moved = abs(after - before) if before is not None and after is not None else 0.0
    reason = (f"{new_pairs} new pairs since snapshot {since}" if new_pairs >= retraining.min_new_pairs
              else f"label balance moved {before:.2f} → {after:.2f}" if moved > retraining.balance_delta else None)
    if reason is None:
        return dg.SensorResult(
            skip_reason=f"{new_pairs} new pairs (< {retraining.min_new_pairs}), balance moved {moved:.2f} "
            f"(≤ {retraining.balance_delta}) since snapshot {since}", cursor=json.dumps({"done": done}))
    context.log.info(f"requesting reward-model retraining: {reason}")
    return _request(retraining, job="reward_model", assets=REWARD_MODEL_ASSETS, target=now, label=f"snapshot-{now}",
                    attempt=1, reason=reason, done=done)


# ---------------------------------------------------------------- GRPO policy


def _trained_on(grpo: dict[str, Any] | None, current: dict[str, Any]) -> dict[str, Any]:
    """The reward signals a policy was trained on (a policy without the judge ignores principles and
    the judge model: for those it counts as trained on the current ones)."""
    if grpo is None:
        return {}
    hp = grpo["hyperparams"]
    return {"reward_model_id": hp.get("reward_model_id"), "principles_id": hp.get("principles_id",
                                                                                  current["principles_id"]),
            "judge_model_id": hp.get("judge_model_id", current["judge_model_id"])}


@dg.sensor(job=grpo_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="GRPO retraining when a new reward model, new judge principles or a new judge model land.")
def reward_signal_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource,
                         retraining: RetrainingPolicy) -> dg.SensorResult | dg.SkipReason:
    wh = warehouse.get()
    rm = latest_model(wh, "reward")  # the promoted one: what grpo_policy trains with
    try:
        pid, _ = chosen_principles(warehouse, None)
    except dg.Failure:
        pid = None
    judge = latest_model(wh, "judge")  # the promoted one: what grpo_policy's judge reward runs on
    current = {"reward_model_id": rm["model_id"] if rm else None, "principles_id": pid,
               "judge_model_id": judge["model_id"] if judge else None}
    if not any(current.values()):
        return dg.SkipReason("no reward model, no judge principles and no judge model yet")
    newest = latest_model(wh, "grpo", promoted_only=False)  # a rejected policy was trained too
    used = newest["hyperparams"] if newest else {}
    state = _state(context.cursor)
    pending = state.get("pending")
    # a signal the policy does not use (principles without the judge) does not tell it apart
    registered = bool(pending) and newest is not None and all(used.get(k, v) == v for k, v in pending["target"].items()
                                                              if v)
    action, value = _settle(context, retraining, state, registered=registered,
                            new_evidence=bool(pending) and current != pending["target"])
    if action == "wait":
        return dg.SkipReason(value)
    if action == "gave_up":
        return dg.SensorResult(skip_reason=value, cursor=context.cursor)
    # the run key names every signal: a new judge alone is a new target, never deduplicated away
    label = f"{current['reward_model_id']}:{pid}" + (f":{current['judge_model_id']}" if current["judge_model_id"] else "")
    if action == "retry":
        reason = f"attempt {value}: {pending['run_key']} did not succeed"
        context.log.warning(f"requesting GRPO retraining again: {reason}")
        return _request(retraining, job="grpo", assets=GRPO_ASSETS, target=current, label=label, attempt=value,
                        reason=reason, done=state.get("done"))
    # first tick: the newest policy's signals; a cursor written before a signal existed: that signal too
    seen = {**_trained_on(newest, current), **(value or {})}
    landed = [k for k, v in current.items() if v and v != seen.get(k) and v != used.get(k)]
    if not landed:
        return dg.SensorResult(skip_reason="the newest policy already uses the newest reward signals",
                               cursor=json.dumps({"done": current}))
    reason = ", ".join(f"new {k.removesuffix('_id').replace('_', ' ')} {current[k]}" for k in landed)
    context.log.info(f"requesting GRPO retraining: {reason}")
    return _request(retraining, job="grpo", assets=GRPO_ASSETS, target=current, label=label, attempt=1,
                    reason=reason, done=seen)
