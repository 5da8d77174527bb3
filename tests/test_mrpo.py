"""MRPO training mode on a tiny real model: the replay buffer (group winners, earlier steps only), the cold
start on the reflection memory, and GRPO with memory replay leaving an ``mrpo`` artifact."""

import torch

from training import artifacts
from training.config import GRPORunConfig, RMRunConfig
from training.data import write_jsonl
from training.replay import ReplayBuffer, Trajectory
from training.reporting import Reporter


def test_the_buffer_keeps_group_winners_and_samples_only_earlier_steps():
    buf = ReplayBuffer(capacity=8, min_advantage=0.5)
    prompt_ids = torch.tensor([[0, 5, 6], [0, 5, 6], [7, 8, 9], [7, 8, 9]])
    prompt_mask = torch.tensor([[0, 1, 1], [0, 1, 1], [1, 1, 1], [1, 1, 1]])
    completion_ids = torch.tensor([[11, 12, 0], [13, 0, 0], [14, 15, 16], [17, 0, 0]])
    completion_mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 0]])
    advantages = torch.tensor([0.9, -0.9, 0.1, -0.1])  # group 2's winner is below min_advantage
    assert buf.add_group_winners(prompt_ids, prompt_mask, completion_ids, completion_mask, advantages, 2, step=3) == 1
    (t,) = buf.items
    assert t.prompt_ids == (5, 6) and t.completion_ids == (11, 12) and t.step == 3 and t.source == "rollout"
    buf.add(Trajectory((1,), (2,), -1, None, "memory"))
    assert buf.sample(10, before_step=3) == [buf.items[1]]  # step 3's own rollouts are not replayed at step 3
    assert len(buf.sample(10, before_step=4)) == 2 and buf.sample(10, before_step=-1) == []
    for i in range(10):
        buf.add(Trajectory((1,), (2,), 10 + i, 1.0, "rollout"))
    assert len(buf) == 8 and min(x.step for x in buf.items) == 12  # the newest are kept


def test_grpo_with_a_cold_start_and_memory_replay_writes_an_mrpo_artifact(tmp_path, tiny_model_dir):
    from training import grpo, rm

    pairs = [{"prompt": f"给朋友写一句生日祝福{i}", "chosen": "愿你岁岁平安，笑口常开。", "rejected": "生日快乐"}
             for i in range(4)]
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": p["prompt"]} for p in pairs])
    write_jsonl(tmp_path / "memory.jsonl", [{"prompt": p["prompt"], "response": p["chosen"]} for p in pairs[:2]])
    with Reporter() as r:
        rm.train(RMRunConfig(base_model=str(tiny_model_dir), output_dir=str(tmp_path / "rm"), engine="fast",
                             train_files=[str(tmp_path / "pairs.jsonl")], max_steps=1, batch_size=2), r)
        cfg = GRPORunConfig(base_model=str(tiny_model_dir), output_dir=str(tmp_path / "mrpo"),
                            prompts_file=str(tmp_path / "prompts.jsonl"), reward_model=str(tmp_path / "rm"),
                            max_steps=3, batch_size=4, num_generations=2, max_completion_length=8, logging_steps=1,
                            memory_file=str(tmp_path / "memory.jsonl"), cold_start_steps=2, replay_weight=0.5,
                            replay_batch=2, replay_min_advantage=-10.0, generation="generate")
        m = grpo.train(cfg, r)
    assert artifacts.is_complete(tmp_path / "mrpo") and artifacts.read_manifest(tmp_path / "mrpo")["kind"] == "mrpo"
    mrpo = m["mrpo"]
    assert mrpo["memory"] == 2 and len(mrpo["cold_start_losses"]) == 2
    assert mrpo["replay_added"] == {"rollout": 6, "memory": 2}  # every group's winner (2 groups × 3 steps)
    assert mrpo["replay_nll_last"] is not None
