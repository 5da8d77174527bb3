"""GRPO with TRL's GRPOTrainer: reward = reward model | judge | a weighted sum.

    python -m training.grpo --config run.json

KL to the reference policy (``beta``), n rollouts per prompt (``num_generations``). Logs reward,
KL, mean completion length and clipped ratio (TRL's names). Generation: vLLM when importable on
CUDA (``use_vllm``); otherwise, on CUDA, the CUDA-graph sampler (``training/graph_sampler.py``)
for Llama-family models, or transformers' plain or paged (continuous batching) generate.
MRPO (Writer-R1): ``memory_file`` (the reflection memory) for a cold start (``cold_start_steps``)
and memory replay (``replay_weight``: training/replay.py); the artifact's kind is then ``mrpo``.
"""

from __future__ import annotations

import importlib.util
import shutil
import time

import torch

from training import artifacts, devices, distributed, kernels, replay
from training.config import GRPORunConfig
from training.data import assistant, prompt_records, read_jsonl, user
from training.generation import generate
from training.reporting import Reporter, ReporterCallback, run_cli


def judge_call_log(cfg: GRPORunConfig):
    """The judge reward's call log: the warehouse's ``llm_calls`` when ``cfg.call_log`` names one (the
    ``grpo_policy`` asset sets it), so its calls are recorded there and repeated ones answered from it;
    else None (an in-memory runtime, as when the library runs standalone)."""
    c = cfg.call_log
    if c is None:
        return None
    from pathlib import Path

    from resources.llm.calllog import CallLog
    from warehouse import Warehouse, WarehouseConfig

    env = WarehouseConfig.from_env()  # a location with a password comes from the environment only
    lock_dir = Path(c.lock_dir) if c.lock_dir else env.lock_dir if c.catalog is None else None
    location = WarehouseConfig.at(c.catalog or env.catalog, c.data_path or env.data_path, lock_dir)
    return CallLog(Warehouse(location), run_id=c.run_id, asset_key=c.asset_key, flush_every=c.flush_every)


def judge_runtimes(funcs: list) -> list:
    """The LLM runtimes behind the judge and criteria rewards among ``funcs`` (shaped or not), each once: the two
    rewards share one runtime, whose calls are flushed and counted once."""
    from training.rewards import CriteriaReward, JudgeReward

    found = [f.runtime for f in (getattr(g, "func", g) for g in funcs) if isinstance(f, JudgeReward | CriteriaReward)]
    return list({id(rt): rt for rt in found}.values())


def reward_functions(cfg: GRPORunConfig) -> tuple[list, list[float]]:
    from training.rewards import CriteriaReward, JudgeReward, LengthNeutral, RewardModelReward

    def shaped(func):
        if not (cfg.length_neutral or cfg.normalize_rewards):
            return func
        return LengthNeutral(func, length=cfg.length_neutral, scale=cfg.normalize_rewards)

    runtimes: list = []

    def runtime_of(model: str):
        from resources.llm.local import LocalBackend
        from resources.llm.runtime import LLMRuntime

        return LLMRuntime(LocalBackend(model, batch_size=64, progress=False), judge_call_log(cfg))

    def judge_runtime():
        """One judge model in memory for the judge and the criteria rewards (the same model reads both)."""
        if not runtimes:
            runtimes.append(runtime_of(cfg.judge_model or cfg.base_model))
        return runtimes[0]

    funcs, weights = [], []
    if cfg.reward in ("reward_model", "weighted"):
        if not cfg.reward_model:
            raise ValueError("reward 'reward_model' needs reward_model (a reward-model artifact path)")
        funcs.append(shaped(RewardModelReward(cfg.reward_model)))
        weights.append(cfg.reward_weights.get("reward_model", 1.0))
    if cfg.reward in ("judge", "weighted"):
        if not cfg.judge_principles:
            raise ValueError("reward 'judge' needs judge_principles (an S_D)")
        judges = [judge_runtime(), *(runtime_of(m) for m in cfg.judge_ensemble)]
        for i, rt in enumerate(judges):  # an ensemble's members share the judge's weight
            name = "judge_reward" + (f"_{i}" if i else "")
            funcs.append(shaped(JudgeReward(rt, cfg.judge_principles, margin=cfg.judge_margin, name=name)))
            weights.append(cfg.reward_weights.get("judge", 1.0) / len(judges))
    if cfg.reward == "criteria" or (cfg.reward == "weighted" and cfg.criteria):
        if not cfg.criteria:
            raise ValueError("reward 'criteria' needs criteria (active criteria_latest rows of one scenario)")
        funcs.append(shaped(CriteriaReward(judge_runtime(), cfg.criteria)))
        weights.append(cfg.reward_weights.get("criteria", 1.0))
    if cfg.novelty_weight:
        from training.rewards import BatchNovelty

        funcs.append(shaped(BatchNovelty()))
        weights.append(cfg.novelty_weight)
    if cfg.repetition_weight:
        from training.rewards import RepetitionPenalty

        rep = RepetitionPenalty()
        if cfg.length_neutral and cfg.repetition_length_neutral:  # repeats cost, not the length that makes them likely
            rep = LengthNeutral(rep, scale=False)
        funcs.append(rep)
        weights.append(cfg.repetition_weight)
    return funcs, weights


def use_vllm(cfg: GRPORunConfig) -> bool:
    if cfg.use_vllm is not None:
        return cfg.use_vllm
    return devices.has_cuda() and importlib.util.find_spec("vllm") is not None


def generation_mode(cfg: GRPORunConfig, model, vllm: bool) -> str:
    from training.graph_sampler import unsupported_reason

    if vllm:
        return "vllm"
    if cfg.generation != "auto":
        return cfg.generation
    # measured fastest first (bench/RESULTS.md): graph sampler, then plain generate (paged was 3× slower)
    if devices.has_cuda() and cfg.lora is None and unsupported_reason(model) is None:
        return "graph"
    return "generate"


def trainer_class():
    """GRPOTrainer whose rollouts come from the graph sampler when ``graph_sampling`` is set."""
    from trl import GRPOTrainer

    from training.graph_sampler import GraphSampler, Sampling

    class Trainer(GRPOTrainer):
        graph_sampling = False
        graph_rollouts = 0  # batches the graph sampler produced (the rest fell back to TRL's path)
        _sampler = None
        replay = None  # training.replay.ReplayBuffer: MRPO's memory replay (None = plain GRPO)
        replay_weight = 0.0
        replay_batch = 4
        greedy_rollouts = 0  # the first N completions of each prompt's group are decoded greedily

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            if self.replay is not None and self.model.training:
                self.replay.add_group_winners(out["prompt_ids"], out["prompt_mask"], out["completion_ids"],
                                              out["completion_mask"], out["advantages"], self.num_generations,
                                              step=self.state.global_step)
            return out

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if self.replay is None or not self.replay_weight:
                return loss
            batch = self.replay.sample(self.replay_batch, before_step=self.state.global_step)  # earlier steps only
            self._metrics["train"]["replay/buffer"].append(float(len(self.replay)))
            if not batch:
                return loss
            r = replay.nll(model, batch, self.processing_class.pad_token_id)
            self._metrics["train"]["replay/nll"].append(r.item())
            return loss + self.replay_weight * r

        def _sampler_usable(self, images, multimodal_fields) -> bool:
            plain = (not self.use_vllm and not self.use_transformers_continuous_batching and not images
                     and not multimodal_fields and not self.args.generation_kwargs)
            same_dist = (self.min_p in (None, 0.0) and self.repetition_penalty in (None, 1.0))
            return self.graph_sampling and plain and same_dist

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
            if not self._sampler_usable(images, multimodal_fields):
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                     has_tool_images)
            if self._sampler is None:
                self._sampler = GraphSampler(
                    self.accelerator.unwrap_model(self.model_wrapped), eos_token_ids=self.eos_token_ids,
                    pad_token_id=self._tokenizer.pad_token_id,
                    sampling=Sampling(temperature=self.temperature, top_k=self.top_k or 0, top_p=self.top_p or 1.0))
            self.graph_rollouts += 1
            # TRL repeats each prompt num_generations times in a row, so a group is a run of equal prompts
            greedy = [i % num_generations < self.greedy_rollouts for i in range(len(prompt_ids))]
            return self._sampler.generate(prompt_ids, self.max_completion_length, greedy=greedy), None

    return Trainer


def quick_eval(model, tok, prompts: list[str], score, max_new_tokens: int) -> dict:
    outs = generate("", prompts, model=model, tokenizer=tok, max_new_tokens=max_new_tokens, batch_size=64)
    s = score(prompts, outs)
    return {"reward_mean": round(sum(s) / len(s), 4), "mean_chars": round(sum(map(len, outs)) / len(outs), 1),
            "sample": outs[:3]}


def train(cfg: GRPORunConfig, reporter: Reporter) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from training.sft import peft_config

    prompts = read_jsonl(cfg.prompts_file, required=("prompt",))
    eval_prompts = [r["prompt"] for r in read_jsonl(cfg.eval_prompts_file, ("prompt",))][: cfg.max_eval_prompts] \
        if cfg.eval_prompts_file else []
    tmp = artifacts.partial_dir(cfg.output_dir)
    torch.manual_seed(cfg.seed)
    tok = AutoTokenizer.from_pretrained(cfg.base_model)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    # fp32 weights (bf16 autocast on CUDA through bf16=True): GRPO's small updates are rounded away
    # in plain bf16 weights (measured, bench/RESULTS.md)
    model = AutoModelForCausalLM.from_pretrained(cfg.base_model, dtype=torch.float32)
    applied = kernels.apply(model, cfg.kernels)  # the policy: rollouts and training passes
    mrpo = bool(cfg.memory_file or cfg.replay_weight)
    memory = replay.memory_trajectories(tok, read_jsonl(cfg.memory_file, ("prompt", "response")), cfg.max_length) \
        if cfg.memory_file else []
    cold = replay.cold_start(model.to(devices.device()), memory, steps=cfg.cold_start_steps, batch_size=cfg.replay_batch,
                             learning_rate=cfg.cold_start_lr, pad_id=tok.pad_token_id, seed=cfg.seed) if memory else []
    if cold:
        reporter.info(f"cold start: {len(cold)} SFT steps on {len(memory)} remembered revisions, loss "
                      f"{cold[0]:.3f} -> {cold[-1]:.3f}")
    vllm = use_vllm(cfg)
    mode = generation_mode(cfg, model, vllm)
    paged = mode == "paged"
    if cfg.greedy_rollouts and mode != "graph":
        raise ValueError(f"greedy_rollouts={cfg.greedy_rollouts} needs the graph sampler (generation='graph', "
                         f"a Llama-family model without LoRA); rollouts here come from {mode!r}")
    if cfg.greedy_rollouts >= cfg.num_generations:  # a group of identical greedy completions has no advantage
        raise ValueError(f"greedy_rollouts={cfg.greedy_rollouts} leaves no sampled completion in groups of "
                         f"{cfg.num_generations}")
    funcs, weights = reward_functions(cfg)
    # the batch is global: under torchrun each rank generates and trains on its share, in micro-batches if asked
    share = cfg.batch_size // distributed.world_size()
    micro = min(cfg.micro_batch_size or share, share)  # more than a rank's share: the share at once
    if share % micro:
        raise ValueError(f"micro_batch_size={micro} does not divide this rank's share of the batch ({share})")
    args = GRPOConfig(output_dir=str(tmp / "trainer"), per_device_train_batch_size=micro,
                      gradient_accumulation_steps=share // micro,
                      num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_length,
                      learning_rate=cfg.learning_rate, beta=cfg.beta, max_steps=cfg.max_steps,
                      num_train_epochs=cfg.num_epochs,  # what max_steps=-1 trains (TRL's default: 3 epochs)
                      logging_steps=cfg.logging_steps, bf16=devices.has_cuda(), save_strategy="no", report_to=[],
                      temperature=cfg.temperature, seed=cfg.seed, reward_weights=weights, use_vllm=vllm,
                      vllm_mode="colocate", use_transformers_paged=paged, use_cpu=not devices.has_cuda(),
                      gradient_checkpointing=cfg.gradient_checkpointing, log_completions=False,
                      # every trained weight is reached each step: no extra autograd walk per step under DDP
                      ddp_find_unused_parameters=False)
    trainer = trainer_class()(model=model, reward_funcs=funcs, args=args,
                          train_dataset=Dataset.from_list(prompt_records(prompts)), processing_class=tok,
                          peft_config=peft_config(cfg), callbacks=[ReporterCallback(reporter)])
    trainer.graph_sampling = mode == "graph"
    trainer.greedy_rollouts = cfg.greedy_rollouts
    if cfg.replay_weight:
        trainer.replay = replay.ReplayBuffer(cfg.replay_capacity, cfg.replay_min_advantage, cfg.seed)
        trainer.replay_weight, trainer.replay_batch = cfg.replay_weight, cfg.replay_batch
        for t in memory:
            trainer.replay.add(t)
    score = getattr(funcs[0], "func", funcs[0]) if funcs else None  # the raw reward, not its GRPO shaping

    def score_texts(ps, outs):
        return score([user(p) for p in ps], [assistant(o) for o in outs])

    evaluating = bool(eval_prompts) and distributed.is_main()
    before = quick_eval(trainer.model, tok, eval_prompts, score_texts, cfg.max_completion_length) if evaluating else None
    reporter.info(f"GRPO on {len(prompts)} prompts, reward={cfg.reward}, generation={mode}, {devices.describe()}")
    if devices.has_cuda():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    try:
        out = trainer.train()
        if devices.has_cuda():
            torch.cuda.synchronize()
        train_s = time.time() - t0
        after = quick_eval(trainer.model, tok, eval_prompts, score_texts, cfg.max_completion_length) \
            if evaluating else None
    finally:  # the judge's recorded calls reach the warehouse even when training fails
        for rt in judge_runtimes(funcs):
            rt.calls.flush()
    if not distributed.is_main():
        return {"steps": out.global_step, "train_s": round(train_s, 2), "rank": distributed.rank()}  # rank 0 saves
    model = trainer.model.merge_and_unload() if cfg.lora is not None else trainer.model
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    shutil.rmtree(tmp / "trainer", ignore_errors=True)
    logs = [h for h in trainer.state.log_history if "reward" in h]
    metrics = {"steps": out.global_step, "train_s": round(train_s, 2), "s_per_step": round(train_s / max(out.global_step, 1), 3),
               "completions_per_s": round(out.global_step * cfg.batch_size / train_s, 2),
               "generation": mode, "graph_rollouts": trainer.graph_rollouts,
               "greedy_rollouts": cfg.greedy_rollouts, "kernels": applied,
               "reward_first": logs[0].get("reward") if logs else None, "reward_last": logs[-1].get("reward") if logs else None,
               "kl_last": logs[-1].get("kl") if logs else None,
               "repetition_length_neutral": bool(cfg.repetition_weight and cfg.length_neutral and cfg.repetition_length_neutral),
               "completion_length_last": logs[-1].get("completions/mean_length") if logs else None,
               "clipped_ratio_last": logs[-1].get("completions/clipped_ratio") if logs else None,
               "before": before, "after": after, "device": devices.describe(), "peak_mem_gb": devices.peak_memory_gb()}
    if mrpo:
        metrics["mrpo"] = {"memory": len(memory), "cold_start_losses": [round(x, 4) for x in cold],
                           "replay_added": dict(trainer.replay.added) if trainer.replay else None,
                           "replay_nll_last": logs[-1].get("replay/nll") if logs else None}
    if judges := judge_runtimes(funcs):
        metrics["judge_calls"] = {k: sum(getattr(rt.stats, k) for rt in judges)
                                  for k in ("requests", "cache_hits", "model_calls")}
    artifacts.finalize(tmp, cfg.output_dir, {"kind": "mrpo" if mrpo else "grpo", "config": cfg.model_dump(), "metrics": metrics,
                                             "log_history": reporter.history})
    return metrics


def main(argv: list[str] | None = None) -> int:
    return run_cli("training.grpo", __doc__, GRPORunConfig, train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
