"""The promotion gate: a new model is used downstream only if it is at least as good as the current
one on the evaluation and beats the length baseline; otherwise it is registered as rejected with the
figures. ``latest_model`` serves the newest promoted model. Through ``_train`` (with a stand-in for the
trainer): the decision is committed with the models row, and the model id includes the training
code's version."""

import json
from pathlib import Path

import dagster as dg
import pytest

import assets.training as training_assets
from resources import TrainingResource, WarehouseResource
from training import artifacts
from training.code_version import code_version
from training.config import RMRunConfig
from warehouse.promotion import decide
from warehouse.registry import latest_model, promotion
from warehouse.schema import ModelRow, PromotionRow


def _rm(auc=None, length_auc=None):
    return {"eval_labels": {"auc": auc, "length_auc": length_auc}} if auc is not None or length_auc else {}


def _incumbent(model_id="rm-old", **metrics):
    return {"model_id": model_id, "metrics": _rm(**metrics)}


# ---------------------------------------------------------------- the rule


def test_a_reward_model_at_least_as_good_as_the_current_one_and_above_the_baseline_is_promoted():
    d = decide("rm-new", "reward", _rm(0.70, 0.60), _incumbent(auc=0.70, length_auc=0.60))
    assert d.promoted and (d.metric, d.candidate, d.incumbent, d.baseline) == ("eval_labels.auc", 0.70, 0.70, 0.60)
    assert d.incumbent_id == "rm-old" and "≥ current 0.7" in d.reason


def test_a_worse_reward_model_is_rejected_with_the_figures():
    d = decide("rm-new", "reward", _rm(0.65, 0.60), _incumbent(auc=0.70))
    assert not d.promoted and (d.candidate, d.incumbent, d.baseline) == (0.65, 0.70, 0.60)
    assert "0.65 < 0.7 of the current model rm-old" in d.reason


def test_a_model_that_does_not_beat_the_length_baseline_is_rejected_unless_it_is_the_first():
    d = decide("rm-new", "reward", _rm(0.60, 0.62), _incumbent(auc=0.55))
    assert not d.promoted and "does not beat the length baseline 0.62" in d.reason
    first = decide("rm-new", "reward", _rm(0.60, 0.62), None)  # else nothing downstream could run
    assert first.promoted and first.reason.startswith("first reward model: promoted although")
    assert not decide("rm-new", "reward", _rm(0.60, 0.62), None, bootstrap=False).promoted


def test_no_evaluation_metrics_means_no_evidence_and_promotion():
    d = decide("judge-1", "judge", {"train_loss": 0.3}, _incumbent())
    assert d.promoted and "no evaluation metrics" in d.reason and d.metric == "eval.auc"
    j = decide("judge-2", "judge", {"eval": {"auc": 0.8, "length_auc": 0.6}}, {"model_id": "judge-1", "metrics": {}})
    assert j.promoted and "current model has no figure" in j.reason


def test_policies_are_promoted_unless_their_own_metrics_say_otherwise():
    assert decide("sft-1", "sft", {"train_loss": 1.0}, None).reason.startswith("no promotion metric for kind 'sft'")
    fell = decide("grpo-1", "grpo", {"before": {"reward_mean": 0.4}, "after": {"reward_mean": 0.3}}, None)
    assert not fell.promoted and "fell during training: 0.4 → 0.3" in fell.reason
    assert decide("grpo-2", "grpo", {"before": {"reward_mean": 0.4}, "after": {"reward_mean": 0.5}}, None).promoted


# ---------------------------------------------------------------- the registry


def _model(wh, model_id, kind="reward", decision: bool | None = None):
    events = [ModelRow(model_id=model_id, kind=kind, base="b", hyperparams={}, input_snapshots={}, metrics={},
                       artifact_path="/x")]
    if decision is not None:
        events.append(PromotionRow(model_id=model_id, kind=kind, promoted=decision, reason="r"))
    wh.append(events, asset_key=kind)


def test_latest_model_is_the_newest_promoted_and_models_without_a_decision_count_as_promoted(wh):
    _model(wh, "rm-legacy")  # registered before the gate existed
    assert latest_model(wh, "reward")["model_id"] == "rm-legacy" and promotion(wh, "rm-legacy") is None
    _model(wh, "rm-rejected", decision=False)
    assert latest_model(wh, "reward")["model_id"] == "rm-legacy"
    assert latest_model(wh, "reward", promoted_only=False)["model_id"] == "rm-rejected"
    _model(wh, "rm-good", decision=True)
    assert latest_model(wh, "reward")["model_id"] == "rm-good"
    wh.append([PromotionRow(model_id="rm-good", kind="reward", promoted=False, reason="demoted by hand")])
    assert latest_model(wh, "reward")["model_id"] == "rm-legacy"  # a correction is a new row with the same key


# ---------------------------------------------------------------- through _train


class FakeTrainer(dg.ConfigurableResource):
    """Stands in for the Pipes client: writes a complete artifact with the given metrics."""

    metrics: str = "{}"

    def run(self, *, context, command, extras):
        out = json.loads(Path(extras["config"]).read_text(encoding="utf-8"))["output_dir"]
        artifacts.finalize(artifacts.partial_dir(out), out, {"kind": "reward", "metrics": json.loads(self.metrics)})


class FakeRMConfig(dg.Config):
    chosen: str = "好"


@dg.asset
def fake_reward_model(context: dg.AssetExecutionContext, config: FakeRMConfig, warehouse: WarehouseResource,
                      training: TrainingResource, pipes_client: FakeTrainer) -> dg.MaterializeResult:
    cfg = RMRunConfig(base_model="base", output_dir="-", train_files=["-"])
    return training_assets._train(context, warehouse, training, pipes_client, kind="reward", module="training.rm",
                                  cfg=cfg, base_id="base", snapshot=0,
                                  data_files={"train": [{"prompt": "p", "chosen": config.chosen, "rejected": "差"}]})


@pytest.fixture
def train(zhufu_home):
    def run(chosen: str, auc: float):
        res = dg.materialize([fake_reward_model], resources={
            "warehouse": WarehouseResource(), "training": TrainingResource(model_store=str(zhufu_home / "models")),
            "pipes_client": FakeTrainer(metrics=json.dumps(_rm(auc, 0.6)))},
            run_config={"ops": {"fake_reward_model": {"config": {"chosen": chosen}}}})
        return res.asset_materializations_for_node("fake_reward_model")[0].metadata

    return run


def test_train_commits_the_decision_with_the_model_and_serves_only_promoted_models(wh, train):
    a = train("a", 0.70)
    assert a["promoted"].value is True
    worse = train("b", 0.65)
    b_id = worse["model_id"].value
    assert worse["promoted"].value is False and "0.65 < 0.7" in worse["promotion"].value
    assert worse["rows_added"].value == 1 and worse["promotions_rows_added"].value == 1  # one snapshot
    assert latest_model(wh, "reward")["model_id"] == a["model_id"].value
    p = promotion(wh, b_id)
    assert (p["promoted"], p["candidate"], p["incumbent"], p["baseline"], p["incumbent_id"]) == (
        False, 0.65, 0.70, 0.6, a["model_id"].value)

    better = train("c", 0.75)
    assert latest_model(wh, "reward")["model_id"] == better["model_id"].value
    again = train("b", 0.65)  # registered already: its decision stands, nothing new is written
    assert again["model_id"].value == b_id and "promoted" not in again and again["rows_added"].value == 0
    assert wh.count("promotions") == 3


def test_the_model_id_changes_with_the_training_code(wh, train, monkeypatch, tmp_path):
    first = train("a", 0.70)["model_id"].value
    assert train("a", 0.70)["model_id"].value == first  # same code, data and settings: same model
    monkeypatch.setattr(training_assets, "code_version", lambda: "fixed-trainer")
    assert train("a", 0.70)["model_id"].value != first

    pkg = tmp_path / "training"
    pkg.mkdir()
    (pkg / "rm.py").write_text("LOSS = 'bt'\n")
    before = code_version(pkg)
    (pkg / "rm.py").write_text("LOSS = 'bt'  # fixed\n")
    code_version.cache_clear()
    assert code_version(pkg) != before and len(before) == 16
