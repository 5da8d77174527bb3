"""A newly promoted judge model changes GRPO's judge reward: reward_signal_sensor asks for a new policy,
as it does for a new reward model or new principles. A rejected judge does not; a policy trained with
the newest judge settles the request."""

import json

import dagster as dg

from resources import WarehouseResource
from sensors.retraining import RetrainingPolicy, reward_signal_sensor
from warehouse.schema import ModelRow, PromotionRow


def _model(wh, model_id, kind, promoted: bool | None = None, **hyper):
    events = [ModelRow(model_id=model_id, kind=kind, base="b", hyperparams=hyper, input_snapshots={"train": 1},
                       metrics={}, artifact_path="/x")]
    if promoted is not None:
        events.append(PromotionRow(model_id=model_id, kind=kind, promoted=promoted, reason="r"))
    wh.append(events, asset_key=kind)


def _tick(cursor=None):
    return reward_signal_sensor(dg.build_sensor_context(cursor=cursor, resources={
        "warehouse": WarehouseResource(), "retraining": RetrainingPolicy()}))


def _requests(result) -> list[dg.RunRequest]:
    return [] if isinstance(result, dg.SkipReason) else list(result.run_requests)


def test_a_newly_promoted_judge_model_requests_grpo_retraining(wh):
    _model(wh, "rm-1", "reward")
    _model(wh, "judge-1", "judge", promoted=True)
    _model(wh, "grpo-1", "grpo", reward="weighted", reward_model_id="rm-1", judge_model_id="judge-1")
    quiet = _tick()
    assert _requests(quiet) == []  # the newest policy trained with the newest judge
    _model(wh, "judge-2", "judge", promoted=False)  # rejected by the gate: not what the judge reward runs on
    quiet = _tick(quiet.cursor)
    assert _requests(quiet) == []

    _model(wh, "judge-3", "judge", promoted=True)
    landed = _tick(quiet.cursor)
    (req,) = _requests(landed)  # before: no request, the judge was not a reward signal
    assert "new judge model judge-3" in req.tags["zhufu/trigger"] and "judge-3" in req.run_key
    assert json.loads(landed.cursor)["pending"]["target"]["judge_model_id"] == "judge-3"
    assert _requests(_tick(landed.cursor)) == []  # in flight: not requested twice
    assert len(_requests(_tick())) == 1  # also found without a cursor (the newest policy used judge-1)

    _model(wh, "grpo-2", "grpo", reward="weighted", reward_model_id="rm-1", judge_model_id="judge-3")
    settled = _tick(landed.cursor)
    assert _requests(settled) == [] and "pending" not in json.loads(settled.cursor)


def test_a_cursor_written_before_judges_were_tracked_does_not_request_a_policy(wh):
    _model(wh, "rm-1", "reward")
    _model(wh, "judge-1", "judge")
    _model(wh, "grpo-1", "grpo", reward="weighted", reward_model_id="rm-1", judge_model_id="judge-1")
    old = json.dumps({"done": {"reward_model_id": "rm-1", "principles_id": None}})
    assert _requests(_tick(old)) == []
    _model(wh, "judge-2", "judge")
    assert len(_requests(_tick(old))) == 1
