"""Training on several ranks (torchrun, one rank per GPU; gloo on CPU here): each rank takes its share
of every batch and the gradients are averaged, so two ranks train the same weights as one process on
the whole batch; only rank 0 writes the artifact."""

import json
import os
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from resources.training import TrainingResource
from training import artifacts, distributed
from training.config import JudgeRunConfig, RMRunConfig

PAIRS = [("给老师写一句教师节祝福", "老师，您批改作业的红笔写满了耐心，节日快乐。", "节日快乐"),
         ("给妈妈写一句生日祝福", "妈妈，愿您的笑容像清晨的阳光，生日快乐！", "生日快乐生日快乐"),
         ("给朋友写新年祝福", "新的一年，愿你的计划都有回音，平安喜乐。", "新年好"),
         ("给同事写升职祝福", "恭喜升职！你熬过的夜都写进了这份肯定里。", "恭喜"),
         ("给爷爷写重阳祝福", "爷爷，愿您腿脚利索，每天都能去公园下棋。", "重阳快乐"),
         ("给同学写毕业祝福", "毕业快乐，愿你在新城市也找到爱吃的那家面馆。", "毕业快乐毕业快乐"),
         ("给邻居写中秋祝福", "中秋快乐，谢谢您帮我收了一年的快递。", "中秋好"),
         ("给医生写感谢祝福", "谢谢您深夜还守在病房，愿您也被好好照顾。", "谢谢医生")]


def _run(module: str, config, ranks: int) -> subprocess.CompletedProcess:
    command = distributed.command(module, config.dump(config.output_dir + ".json"), ranks=ranks if ranks > 1 else None)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    env.pop("DAGSTER_PIPES_CONTEXT", None)
    done = subprocess.run(command, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _weights(path) -> dict[str, torch.Tensor]:
    return load_file(str(next(p for p in path.glob("*.safetensors"))))


def _mean_diff(a, b) -> float:
    wa, wb = _weights(a), _weights(b)
    keys = wa.keys() & wb.keys()
    return sum((wa[k].float() - wb[k].float()).abs().sum().item() for k in keys) / sum(wa[k].numel() for k in keys)


def _max_diff(a, b) -> float:
    """The largest difference between the weights two checkpoints share."""
    wa, wb = _weights(a), _weights(b)
    return max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa.keys() & wb.keys())


@pytest.fixture
def pairs_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}, ensure_ascii=False) + "\n"
                            for p, c, r in PAIRS), encoding="utf-8")
    return path


def test_two_ranks_train_the_reward_model_one_process_trains(tmp_path, tiny_model_dir, pairs_file):
    cfg = dict(base_model=str(tiny_model_dir), train_files=[str(pairs_file)], engine="fast", batch_size=8,
               max_steps=3, learning_rate=1e-3, logging_steps=1)
    one = RMRunConfig(output_dir=str(tmp_path / "rm1"), **cfg)
    two = RMRunConfig(output_dir=str(tmp_path / "rm2"), **cfg)
    _run("training.rm", one, 1)
    _run("training.rm", two, 2)
    assert artifacts.is_complete(one.output_dir) and artifacts.is_complete(two.output_dir)
    assert artifacts.read_manifest(two.output_dir)["metrics"]["ranks"] == 2
    assert not (tmp_path / "rm2.partial").exists()  # rank 0 finalized; no rank left a second copy
    assert _weights(tmp_path / "rm1").keys() == _weights(tmp_path / "rm2").keys()
    assert _max_diff(tmp_path / "rm1", tmp_path / "rm2") < 1e-4
    assert _max_diff(tmp_path / "rm1", tiny_model_dir) > 1e-3  # and training did move them


def test_micro_batches_on_two_ranks_accumulate_the_update_of_the_whole_batch(tmp_path, tiny_model_dir, pairs_file):
    cfg = dict(base_model=str(tiny_model_dir), train_files=[str(pairs_file)], engine="fast", batch_size=8,
               max_steps=3, learning_rate=1e-3, logging_steps=1)
    _run("training.rm", RMRunConfig(output_dir=str(tmp_path / "rm1"), **cfg), 1)
    _run("training.rm", RMRunConfig(output_dir=str(tmp_path / "rm2m"), micro_batch_size=2, **cfg), 2)
    assert _max_diff(tmp_path / "rm1", tmp_path / "rm2m") < 1e-4  # 2 ranks x 2 chunks of 2 = one batch of 8


def test_two_ranks_train_the_judge_one_process_trains(tmp_path, tiny_model_dir):
    rows = [{"prompt": p, "response": resp, "label": label, "pair": i}
            for i, (p, c, r) in enumerate(PAIRS) for resp, label in ((c, 1), (r, 0))]
    train = tmp_path / "judge.jsonl"
    train.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    cfg = dict(base_model=str(tiny_model_dir), train_file=str(train), batch_size=8, max_steps=2,
               learning_rate=1e-3, pairwise_weight=1.0, rule_eval=False, principle_ablations=False)
    _run("training.judge", JudgeRunConfig(output_dir=str(tmp_path / "j1"), **cfg), 1)
    _run("training.judge", JudgeRunConfig(output_dir=str(tmp_path / "j2"), **cfg), 2)
    assert artifacts.is_complete(tmp_path / "j2")
    # the padded widths differ between a batch of 8 and its halves, so float noise differs, and Adam turns
    # noise on near-zero gradients into whole steps: compare the ranks' difference with the update itself
    assert _mean_diff(tmp_path / "j1", tmp_path / "j2") < 0.2 * _mean_diff(tmp_path / "j1", tiny_model_dir)


def test_more_than_one_gpu_launches_one_rank_per_gpu(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    command = TrainingResource().command("training.rm", tmp_path / "c.json")
    assert command[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert TrainingResource(gpus=1, launcher="torchrun").command("training.rm", tmp_path / "c.json")[4] == \
        "--nproc_per_node=1"


AVERAGER_WORKER = '''
import json, sys, torch
from training import distributed

distributed.init()
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.Tanh(),
                            torch.nn.Linear(8, 1))
unused = torch.nn.Parameter(torch.ones(3))  # never reached by the loss: keeps no gradient
params = [unused, *model.parameters()]  # first here, so its bucket is the last: it holds back no other
averager = distributed.GradientAverager(params, bucket_mb=float(sys.argv[2]))
x = torch.linspace(-1, 1, 32).reshape(8, 4)
out = {}
for step in range(2):  # the hooks re-arm after finish(): a second step averages again
    mine = distributed.shard(list(range(8)))
    loss = model(x[mine] * (step + 1)).pow(2).mean()
    loss.backward()
    out["launched_in_backward"] = len(averager._launched)
    averager.finish()
    out[f"grads_{step}"] = [p.grad.tolist() if p.grad is not None else None for p in params]
    for p in params:
        p.grad = None
out["buckets"] = len(averager.buckets)
averager.close()
if distributed.rank() == 0:
    open(sys.argv[1], "w").write(json.dumps(out))
distributed.shutdown()
'''


@pytest.mark.parametrize("bucket_mb", [1e-6, float("inf")])
def test_gradients_averaged_in_buckets_during_backward_equal_the_whole_batchs(tmp_path, bucket_mb):
    script = tmp_path / "worker.py"
    script.write_text(AVERAGER_WORKER, encoding="utf-8")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*distributed.command("x", "y", ranks=2)[:5], str(script), str(tmp_path / "two.json"),
                           str(bucket_mb)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads((tmp_path / "two.json").read_text())
    # one process, the whole batch: the reference gradients
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.Tanh(),
                                torch.nn.Linear(8, 1))
    x = torch.linspace(-1, 1, 32).reshape(8, 4)
    for step in range(2):
        model.zero_grad(set_to_none=True)
        model(x * (step + 1)).pow(2).mean().backward()
        for p, g in zip(model.parameters(), two[f"grads_{step}"][1:], strict=True):
            assert torch.allclose(p.grad, torch.tensor(g), atol=1e-6)
        assert two[f"grads_{step}"][0] is None  # the unused parameter keeps no gradient
    if bucket_mb < 1:
        assert two["buckets"] == 7  # one parameter a bucket
        assert two["launched_in_backward"] == 6  # every reached bucket started before backward returned
    else:
        assert two["buckets"] == 1 and two["launched_in_backward"] == 0


def test_an_optimizer_sharded_over_two_ranks_makes_the_same_update_with_half_the_state(tmp_path, tiny_model_dir,
                                                                                       pairs_file):
    cfg = dict(base_model=str(tiny_model_dir), train_files=[str(pairs_file)], engine="fast", batch_size=8,
               max_steps=3, learning_rate=1e-3, logging_steps=1, precision="bf16_master")
    _run("training.rm", RMRunConfig(output_dir=str(tmp_path / "full"), **cfg), 2)
    _run("training.rm", RMRunConfig(output_dir=str(tmp_path / "shard"), shard_optimizer=True, **cfg), 2)
    assert _max_diff(tmp_path / "full", tmp_path / "shard") < 1e-6  # AdamW is per parameter: who computes it is moot
    assert _max_diff(tmp_path / "full", tiny_model_dir) > 1e-3
    full, shard = (artifacts.read_manifest(tmp_path / d)["metrics"]["optimizer_state_gb"] for d in ("full", "shard"))
    # rank 0 keeps only its parameters' fp32 copies and moments (here the tiny model's embedding, most of it)
    assert 0 < shard < full


def test_parameters_are_shared_out_so_every_rank_owns_about_as_much():
    from training.precision import _balanced_owners

    layer = [2048 * 2048] * 4 + [2048 * 8192] * 3 + [2048] * 2  # one SmolLM2-1.7B decoder layer's matrices
    sizes = [49152 * 2048] + layer * 24 + [2048]
    for ranks in (2, 4, 8):
        owner = _balanced_owners(sizes, ranks)
        load = [sum(s for s, o in zip(sizes, owner, strict=True) if o == r) for r in range(ranks)]
        assert max(load) < 1.05 * sum(sizes) / ranks
    assert _balanced_owners(sizes, 2) == _balanced_owners(sizes, 2)  # the same on every rank
