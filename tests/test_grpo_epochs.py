"""GRPO with ``max_steps=-1`` trains ``num_epochs`` passes over the prompts (the production profile's
setting), not TRL's default of three epochs — also in micro-batches. A tiny real model; a constant reward stands in for
the reward model, so the test measures only the schedule."""

import pytest

from training import artifacts, grpo
from training.config import GRPORunConfig
from training.data import write_jsonl
from training.reporting import Reporter

PROMPTS = [{"prompt": f"给朋友写一句生日祝福{i}"} for i in range(4)]


def _constant_reward(prompts, completions, **kwargs):
    return [float(len(c[0]["content"]) % 2) for c in completions]


@pytest.mark.parametrize(("num_epochs", "micro"), [(1.0, 0), (2.0, 0), (2.0, 2)])
def test_grpo_with_max_steps_minus_one_trains_num_epochs(tmp_path, tiny_model_dir, monkeypatch, num_epochs, micro):
    monkeypatch.setattr(grpo, "reward_functions", lambda cfg: ([_constant_reward], [1.0]))
    write_jsonl(tmp_path / "prompts.jsonl", PROMPTS)
    cfg = GRPORunConfig(base_model=str(tiny_model_dir), output_dir=str(tmp_path / "grpo"),
                        prompts_file=str(tmp_path / "prompts.jsonl"), max_steps=-1, num_epochs=num_epochs,
                        batch_size=4, num_generations=2, max_completion_length=4, logging_steps=1,
                        generation="generate", repetition_weight=0.0, micro_batch_size=micro)
    with Reporter() as r:
        m = grpo.train(cfg, r)
    per_epoch = len(PROMPTS) * cfg.num_generations // cfg.batch_size  # completions per epoch / per step
    assert m["steps"] == per_epoch * num_epochs  # before the fix: TRL's 3 epochs whatever num_epochs said
    # micro-batches (gradient accumulation) split a step's training pass, not its batch: the same optimizer steps
    assert artifacts.is_complete(tmp_path / "grpo")
