"""bench.embedding_judge: a score head on frozen multilingual-e5 embeddings learns the training pairs' preference,
is scored like a judge, and is added to a judge run's kept margins."""

import json

from bench import embedding_judge
from training.data import write_jsonl

GOOD = ["愿你前程似锦，万事顺意", "福如东海，寿比南山", "祝您新春吉祥，阖家幸福", "愿你岁岁平安，年年有余"]
BAD = ["你好你好你好你好你好", "随便写点什么吧好的", "这个那个这个那个啊", "嗯嗯嗯嗯嗯嗯嗯嗯嗯"]


def _pairs(n: int) -> list[dict]:
    return [{"conversations": [{"from": "human", "value": f"写一句祝福语{i}"}],
             "chosen": {"from": "gpt", "value": GOOD[i % 4]}, "rejected": {"from": "gpt", "value": BAD[(i + 1) % 4]}}
            for i in range(n)]


def test_a_head_on_e5_embeddings_learns_the_preference_and_joins_a_judge_run(tmp_path):
    (tmp_path / "reward_pairs_train.json").write_text(json.dumps(_pairs(32), ensure_ascii=False), encoding="utf-8")
    (tmp_path / "reward_pairs_dev.json").write_text(json.dumps(_pairs(4), ensure_ascii=False), encoding="utf-8")
    write_jsonl(tmp_path / "evaluation_dev.jsonl", [{"query": "写一句祝福语", "response": t, "label": int(t in GOOD)}
                                                    for t in GOOD + BAD])
    run = tmp_path / "judge.json"  # a judge run that ranks the dev sets backwards
    run.write_text(json.dumps({"v": {"eval": {"scores": {"labels": [0.0] * 4 + [1.0] * 4, "chosen": [0.0] * 4,
                                                         "rejected": [1.0] * 4}}}}))
    out = tmp_path / "e5.json"
    assert embedding_judge.main(["--data", str(tmp_path), "--hidden", "0", "--seeds", "1", "--epochs", "30",
                                 "--judge", f"{run}:v", "--out", str(out)]) == 0
    m = json.loads(out.read_text())["metrics"]
    assert m["e5 head h0 s0"]["pair_acc"] == 1.0 and m["e5 head h0 s0"]["auc"] == 1.0
    assert m["judge:v"]["pair_acc"] == 0.0
    assert "judge:v + e5 h0" in m  # equal weights on z-scores: scored, whichever side wins
