"""The promotion gate compares a candidate with the current model only on the same evaluation set:
every registered model records which items its figures are on (``metrics.eval_sets``), and figures
from different sets refuse promotion with a reason naming both sets."""

import json

import dagster as dg
import pytest

import assets.training as training_assets
from resources import TrainingResource, WarehouseResource
from tests.test_promotion import FakeTrainer  # the Pipes stand-in both promotion tests use
from training.config import RMRunConfig
from warehouse.promotion import decide, eval_set_identity
from warehouse.registry import get_model, latest_model, promotion

LABELS_A = [{"prompt": "新年祝福", "response": "新年快乐", "label": 0},
            {"prompt": "新年祝福", "response": "愿你新岁平安顺遂", "label": 1}]
LABELS_B = [*LABELS_A, {"prompt": "生日祝福", "response": "生日快乐", "label": 0}]


def _metrics(auc, eval_set=None, length_auc=0.6):
    m = {"eval_labels": {"auc": auc, "length_auc": length_auc}}
    return {**m, "eval_sets": {"eval_labels": eval_set}} if eval_set else m


def test_the_eval_set_identity_is_the_items_not_their_order():
    a = eval_set_identity(LABELS_A)
    assert a == eval_set_identity(list(reversed(LABELS_A))) and a["n"] == 2
    assert eval_set_identity(LABELS_B)["id"] != a["id"]
    assert eval_set_identity([{**LABELS_A[0], "label": 1}, LABELS_A[1]])["id"] != a["id"]  # a corrected label


def test_figures_on_another_evaluation_set_refuse_promotion_naming_both_sets():
    a, b = eval_set_identity(LABELS_A), eval_set_identity(LABELS_B)
    incumbent = {"model_id": "rm-old", "metrics": _metrics(0.70, a)}
    d = decide("rm-new", "reward", _metrics(0.90, b), incumbent)
    assert not d.promoted and d.reason.startswith("not comparable")
    assert a["id"] in d.reason and b["id"] in d.reason and "(n=3)" in d.reason and "rm-old" in d.reason
    assert (d.candidate, d.incumbent) == (0.90, 0.70)
    judge = decide("judge-new", "judge", {"eval": {"auc": 0.9, "length_auc": 0.6}, "eval_sets": {"eval_labels": b}},
                   {"model_id": "judge-old", "metrics": {"eval": {"auc": 0.7}, "eval_sets": {"eval_labels": a}}})
    assert not judge.promoted and judge.reason.startswith("not comparable")

    same = decide("rm-new", "reward", _metrics(0.72, a), incumbent)
    assert same.promoted and f"on the same evaluation set {a['id']}" in same.reason
    assert not decide("rm-new", "reward", _metrics(0.65, a), incumbent).promoted  # same set: compared as before
    legacy = decide("rm-new", "reward", _metrics(0.72, a), {"model_id": "rm-old", "metrics": _metrics(0.70)})
    assert legacy.promoted and "evaluation set is not recorded" in legacy.reason


class FakeRMConfig(dg.Config):
    labels: str = "a"


@dg.asset
def fake_reward_model(context: dg.AssetExecutionContext, config: FakeRMConfig, warehouse: WarehouseResource,
                      training: TrainingResource, pipes_client: FakeTrainer) -> dg.MaterializeResult:
    cfg = RMRunConfig(base_model="base", output_dir="-", train_files=["-"])
    labels = LABELS_A if config.labels == "a" else LABELS_B
    return training_assets._train(context, warehouse, training, pipes_client, kind="reward", module="training.rm",
                                  cfg=cfg, base_id="base", snapshot=0,
                                  data_files={"train": [{"prompt": "p", "chosen": "好", "rejected": "差"}],
                                              "eval_labels": labels})


@pytest.fixture
def train(zhufu_home):
    def run(labels: str, auc: float):
        res = dg.materialize([fake_reward_model], resources={
            "warehouse": WarehouseResource(), "training": TrainingResource(model_store=str(zhufu_home / "models")),
            "pipes_client": FakeTrainer(metrics=json.dumps(_metrics(auc)))},
            run_config={"ops": {"fake_reward_model": {"config": {"labels": labels}}}})
        return res.asset_materializations_for_node("fake_reward_model")[0].metadata

    return run


def test_a_model_evaluated_on_another_set_than_the_current_one_is_registered_refused(wh, train):
    first = train("a", 0.70)
    first_id = first["model_id"].value
    assert first["promoted"].value is True
    assert get_model(wh, first_id)["metrics"]["eval_sets"] == {"eval_labels": eval_set_identity(LABELS_A)}

    better_elsewhere = train("b", 0.90)  # a higher AUC, but on three items instead of two
    assert better_elsewhere["promoted"].value is False
    assert better_elsewhere["promotion"].value.startswith("not comparable")
    assert latest_model(wh, "reward")["model_id"] == first_id
    p = promotion(wh, better_elsewhere["model_id"].value)
    assert (p["promoted"], p["candidate"], p["incumbent"], p["incumbent_id"]) == (False, 0.90, 0.70, first_id)
