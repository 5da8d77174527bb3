"""Retraining sensors: the label data moves, the models follow.

``preference_data_sensor`` reads the warehouse change feed of ``preference_pairs`` since the newest
reward model's training snapshot (or its own last request) and asks for a new reward model when
enough new pairs have arrived or the verdicts' label balance has moved. ``reward_signal_sensor``
asks for a new GRPO policy when a new reward model or new judge principles land.
"""


import json

import dagster as dg
from pydantic import Field

from assets.path_b import chosen_principles
from assets.policy_eval import policy_evaluation
from assets.training import grpo_policy, reward_model
from resources import WarehouseResource
from warehouse.registry import latest_model
from warehouse.store import Warehouse

reward_model_job = dg.define_asset_job("reward_model_job", selection=[reward_model],
                                       description="Retrain the reward model on the current preference pairs.")
grpo_job = dg.define_asset_job("grpo_job", selection=[grpo_policy, policy_evaluation],
                               description="Retrain the GRPO policy and evaluate it.")


class RetrainingPolicy(dg.ConfigurableResource):
    min_new_pairs: int = Field(default=50, description="new preference pairs that trigger reward-model retraining")
    balance_delta: float = Field(default=0.1, description="move in the share of label-1 verdicts that triggers it")


def label_balance(wh: Warehouse, as_of: int | None = None) -> float | None:
    """Share of final (reflect-stage) verdicts labelled 1."""
    df = wh.sql("SELECT avg(label) AS b FROM verdicts_latest WHERE stage = 'reflect' AND label IS NOT NULL",
                as_of=as_of)
    return None if df["b"][0] is None else float(df["b"][0])


@dg.sensor(job=reward_model_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Reward-model retraining when ≥ N new preference pairs arrived or the label balance moved.")
def preference_data_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource,
                           retraining: RetrainingPolicy) -> dg.SensorResult | dg.SkipReason:
    wh = warehouse.get()
    now = wh.current_snapshot()
    rm = latest_model(wh, "reward")
    trained_at = int(rm["input_snapshots"].get("train", 0)) if rm else 0
    since = max(trained_at, int(context.cursor or 0))
    if since >= now:
        return dg.SkipReason(f"no snapshot after {since}")
    changes = wh.changes("preference_pairs", since + 1, now)
    new_pairs = changes.filter(changes["change_type"] == "insert").height if changes.height else 0
    before, after = (label_balance(wh, as_of=since) if since else None), label_balance(wh)
    moved = abs(after - before) if before is not None and after is not None else 0.0
    reason = (f"{new_pairs} new pairs since snapshot {since}" if new_pairs >= retraining.min_new_pairs
              else f"label balance moved {before:.2f} → {after:.2f}" if moved > retraining.balance_delta else None)
    if reason is None:
        return dg.SkipReason(f"{new_pairs} new pairs (< {retraining.min_new_pairs}), balance moved {moved:.2f} "
                             f"(≤ {retraining.balance_delta}) since snapshot {since}")
    context.log.info(f"requesting reward-model retraining: {reason}")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"reward_model@snapshot-{now}",
                                                       tags={"zhufu/trigger": reason})], cursor=str(now))


@dg.sensor(job=grpo_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="GRPO retraining when a new reward model or new judge principles land.")
def reward_signal_sensor(context: dg.SensorEvaluationContext,
                         warehouse: WarehouseResource) -> dg.SensorResult | dg.SkipReason:
    wh = warehouse.get()
    rm = latest_model(wh, "reward")
    try:
        pid, _ = chosen_principles(warehouse, None)
    except dg.Failure:
        pid = None
    current = {"reward_model_id": rm["model_id"] if rm else None, "principles_id": pid}
    if not any(current.values()):
        return dg.SkipReason("no reward model and no judge principles yet")
    seen = json.loads(context.cursor) if context.cursor else None
    if seen is None:  # first tick: compare with what the newest policy was trained on
        grpo = latest_model(wh, "grpo")
        hp = grpo["hyperparams"] if grpo else {}
        seen = {"reward_model_id": hp.get("reward_model_id"), "principles_id": hp.get("principles_id", pid)} \
            if grpo else {}
    landed = [k for k, v in current.items() if v and v != seen.get(k)]
    if not landed:
        return dg.SensorResult(skip_reason="the newest policy already uses the newest reward signals",
                               cursor=json.dumps(current))
    reason = ", ".join(f"new {k.removesuffix('_id').replace('_', ' ')} {current[k]}" for k in landed)
    context.log.info(f"requesting GRPO retraining: {reason}")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"grpo@{current['reward_model_id']}:{pid}",
                                                       tags={"zhufu/trigger": reason})], cursor=json.dumps(current))
