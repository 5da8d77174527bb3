"""bench.judge_ensemble: runs' kept margins are scored like one judge, and averaged; the judge keeps
its evaluation margins in the order the ensemble reads them."""

import json

import pytest

from bench import judge_ensemble
from training.data import write_jsonl

LABELS = [{"query": f"需求{i}", "response": "祝你快乐" * (1 + i % 4), "label": i % 2} for i in range(8)]
PAIRS = [{"conversations": [{"from": "human", "value": f"需求{i}"}],
          "chosen": {"from": "gpt", "value": "愿你前程似锦，万事顺意" + "！" * i},
          "rejected": {"from": "gpt", "value": "祝你生日快乐，天天开心" + "。" * (3 - i)}} for i in range(4)]


@pytest.fixture
def dev(tmp_path):
    write_jsonl(tmp_path / "evaluation_dev.jsonl", LABELS)
    (tmp_path / "reward_pairs_dev.json").write_text(json.dumps(PAIRS, ensure_ascii=False), encoding="utf-8")
    return tmp_path


def _run(path, labels, chosen, rejected):
    path.write_text(json.dumps({"v": {"eval": {"scores": {"labels": labels, "chosen": chosen, "rejected": rejected}}}}))
    return str(path)


def test_two_runs_that_err_on_different_items_are_right_on_every_item_together(dev, tmp_path):
    y = [r["label"] for r in LABELS]
    # each run ranks one positive below every negative, a different one; their mean ranks all correctly
    a = [2.0 * t for t in y]
    a[1] = -1.0
    b = [2.0 * t for t in y]
    b[3] = -1.0
    runs = [_run(tmp_path / "a.json", a, [1, 1, -0.5, 1], [0] * 4), _run(tmp_path / "b.json", b, [1, -0.5, 1, 1], [0] * 4)]
    out = tmp_path / "table.json"
    assert judge_ensemble.main([*runs, "--data", str(dev), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["judge"] for r in rows] == ["a:v", "b:v", "mean of 2 margins"]
    assert rows[0]["auc"] < 1 and rows[1]["auc"] < 1 and rows[2]["auc"] == 1.0
    assert (rows[0]["pair_acc"], rows[1]["pair_acc"], rows[2]["pair_acc"]) == (0.75, 0.75, 1.0)


def test_a_run_scored_on_other_items_is_refused_by_name(dev, tmp_path):
    run = _run(tmp_path / "short.json", [0.0] * 5, [1] * 4, [0] * 4)
    with pytest.raises(SystemExit, match="labels: 5 scores for 8 items"):
        judge_ensemble.main([run, "--data", str(dev)])
    (tmp_path / "old.json").write_text(json.dumps({"v": {"eval": {"auc": 0.9}}}))
    with pytest.raises(SystemExit, match="no per-item scores"):
        judge_ensemble.main([str(tmp_path / "old.json"), "--data", str(dev)])


def test_the_judge_keeps_its_evaluation_margins_in_the_order_the_ensemble_reads(tiny_model_dir, tmp_path):
    from training import judge
    from training.config import JudgeRunConfig

    labels = [{"prompt": r["query"], "response": r["response"], "label": r["label"]} for r in LABELS]
    pairs = [{"prompt": f"需求{i}", "chosen": p["chosen"]["value"], "rejected": p["rejected"]["value"]}
             for i, p in enumerate(PAIRS)]
    write_jsonl(tmp_path / "labels.jsonl", labels)
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    cfg = JudgeRunConfig(base_model=str(tiny_model_dir), output_dir=str(tmp_path / "j"), train_file="unused",
                         eval_labels_file=str(tmp_path / "labels.jsonl"), eval_pairs_file=str(tmp_path / "pairs.jsonl"),
                         eval_principles=["真诚"], rule_eval=False, keep_scores=True)
    m = judge.MarginModel.load(str(tiny_model_dir))
    out = judge.evaluate(m, cfg)
    kept = out["eval"]["scores"]
    assert [len(kept[k]) for k in ("labels", "chosen", "rejected")] == [8, 4, 4]
    assert "scores" not in out["no_principles"]  # only the evaluation principles' margins are kept
    direct = m.score(["真诚"], [p["prompt"] for p in pairs], [p["chosen"] for p in pairs])
    assert kept["chosen"] == pytest.approx([float(x) for x in direct], abs=1e-3)


def test_runs_on_different_scales_are_averaged_as_z_scores_with_weights(dev, tmp_path):
    y = [r["label"] for r in LABELS]
    judge = _run(tmp_path / "j.json", [t - 0.5 for t in y], [1, 1, -1, 1], [0] * 4)  # wrong on pair 2
    # a log-likelihood-like run, 100x the scale, right on pair 2 only
    lik = _run(tmp_path / "l.json", [100.0 * t for t in y], [0, 0, 300, 0], [100] * 4)
    out = tmp_path / "table.json"
    assert judge_ensemble.main([judge, f"{lik}:v", "--data", str(dev), "--standardize", "--weights", "1", "0.2",
                                "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert rows[-1]["judge"] == "weighted mean of 2 z-scores"
    assert rows[-1]["pair_acc"] == 0.75  # the small weight keeps the judge's order where it is confident...
    assert judge_ensemble.mean_scores([{"labels": [0, 2], "chosen": [0], "rejected": [0]},
                                       {"labels": [4, 0], "chosen": [2], "rejected": [0]}], [3, 1])["labels"] == [1, 1.5]
    with pytest.raises(SystemExit, match="2 weights for 1 runs"):
        judge_ensemble.main([judge, "--data", str(dev), "--weights", "1", "2"])


def test_the_likelihood_judge_scores_each_response_by_its_own_tokens(tiny_model_dir, dev, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from bench import likelihood_judge

    lik = likelihood_judge.Likelihood(str(tiny_model_dir), batch_size=3, device="cpu")
    prompts, responses = ["需求甲", "需求乙"], ["愿你前程似锦", "祝你快乐"]
    total, count = lik.score(prompts, responses)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
    for p, r, t, n in zip(prompts, responses, total, count, strict=True):
        head, tail = lik._split(p, r)
        ids = torch.tensor([head + tail])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
        expect = logp[len(head) - 1:].gather(-1, ids[0, len(head):, None]).sum().item()
        assert n == len(tail) and abs(t - expect) < 1e-3  # batched with padding = one row alone
    out = tmp_path / "lik.json"
    assert likelihood_judge.main(["--model", str(tiny_model_dir), "--reference", str(tiny_model_dir),
                                  "--data", str(dev), "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert set(results) == {"likelihood_sum", "likelihood_mean", "likelihood_implicit_reward",
                            "likelihood_reference_mean"}
    assert set(results["likelihood_implicit_reward"]["eval"]["scores"]["labels"]) == {0.0}  # a model against itself
    assert judge_ensemble.main([f"{out}:likelihood_mean", "--data", str(dev)]) == 0
