"""Run configurations for ``python -m training.sft|rm|grpo --config run.json``.

One pydantic model per trainer; the Dagster assets write these files, and so can a person.
Defaults are the small CPU settings of the embedded demo; full runs are configurations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from warehouse.config import redact_location

# Choices shared with the Dagster asset configs (assets/training.py)
Kernels = Literal["auto", "transformers", "fused_norm", "liger"]
RMEngine = Literal["trl", "fast"]
Reward = Literal["reward_model", "judge", "weighted", "criteria"]
Generation = Literal["auto", "graph", "generate", "paged"]


class LoRA(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_model: str = Field(description="HF model id or local path")
    output_dir: str = Field(description="the artifact directory; written only once training completes")
    seed: int = 0
    learning_rate: float = 2e-5
    batch_size: int = 8
    max_steps: int = Field(default=-1, description="-1: train num_epochs")
    num_epochs: float = 1.0
    max_length: int = 256
    logging_steps: int = 1
    lora: LoRA | None = Field(default=None, description="train LoRA adapters (merged into the artifact) instead of all weights")
    gradient_checkpointing: bool = False
    kernels: Kernels = Field(
        default="auto", description="fused_norm = torch's fused RMSNorm; liger = Liger Kernel's Triton "
        "RMSNorm/RoPE/SwiGLU (optional dependency); auto = fused_norm on CUDA (training/kernels.py)")

    @classmethod
    def load(cls, path: str | Path):
        return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))

    def dump(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.model_dump_json(indent=1), encoding="utf-8")
        return path


class SFTRunConfig(RunConfig):
    train_file: str = Field(description="JSONL of {prompt, response}")
    learning_rate: float = 5e-5


class RMRunConfig(RunConfig):
    train_files: list[str] = Field(description="JSONL files of {prompt, chosen, rejected}")
    eval_pairs_file: str | None = Field(default=None, description="held-out pairs for pair accuracy")
    eval_labels_file: str | None = Field(default=None, description="JSONL of {prompt, response, label} for AUC")
    engine: RMEngine = Field(
        default="trl", description="trl: RewardTrainer; fast: packed (or length-bucketed) Bradley-Terry loop")
    max_train_pairs: int = Field(default=0, description="0 = all")
    packing: bool | None = Field(default=None, description="fast engine: one padding-free row per batch, the "
                                 "shared prompt computed once per pair (training/packing.py); off: length-bucketed "
                                 "padded rows; None: on with CUDA (its varlen kernel), off on CPU")
    micro_batch_size: int = Field(default=0, ge=0, description="fast engine: pairs per forward/backward on each "
                                  "rank, gradients accumulated over the rank's share of the batch (0 = the whole "
                                  "share at once); a bigger batch than memory holds, the same update")
    compile: bool = Field(default=False, description="fast engine: torch.compile each decoder layer (one graph, "
                          "shared by all layers; costs compile time up front)")
    shard_optimizer: bool = Field(default=False, description="fast engine, bf16_master, under torchrun: each rank keeps "
                                  "the fp32 master copies and AdamW moments of its share of the parameters only "
                                  "(ZeRO stage 1; the same update, the optimizer's memory divided by the ranks)")
    precision: Literal["auto", "amp", "bf16_master"] = Field(
        default="auto", description="fast engine on CUDA: amp = fp32 weights under bf16 autocast; bf16_master = bf16 "
        "weights with fp32 master copies in the optimizer (auto); CPU: fp32")


class JudgeRunConfig(RunConfig):
    """A principle-conditioned 是/否 judge (training/judge.py)."""

    train_file: str = Field(description="JSONL of {prompt, response, label, principles?, pair?}")
    eval_labels_file: str | None = Field(default=None, description="JSONL of {prompt, response, label} for AUC")
    eval_pairs_file: str | None = Field(default=None, description="JSONL of {prompt, chosen, rejected}")
    eval_principles: list[str] = Field(default_factory=list, description="principles the evaluation prompts carry")
    foreign_principles: list[str] = Field(default_factory=list,
                                          description="ablation: principles of another task in the prompt")
    principle_ablations: bool = True
    rule_eval: bool = Field(default=True, description="principle following: the evaluation's good greetings under a "
                            "checkable rule they keep or break, scored with and without the rule")
    eval_before: bool = Field(default=False, description="also evaluate the untrained model (zero-shot)")
    keep_scores: bool = Field(default=False, description="keep every evaluation item's margin in the metrics "
                              "(to ensemble runs afterwards)")
    learning_rate: float = 5e-5
    batch_size: int = 64
    max_length: int = Field(default=1024, description="tokens; principles in Chinese take ~450, never cut the greeting")
    pairwise_weight: float = Field(default=1.0, description="weight of the Bradley–Terry term on paired rows")
    warmup_steps: int = 10
    decay: bool = Field(default=True, description="linear decay of the learning rate to 0")
    ema_decay: float = Field(default=0.0, ge=0.0, lt=1.0,
                             description="evaluate and save an exponential moving average of the trained weights "
                             "(0 = off; 0.995 ≈ the last 200 steps): steadier than the last step's weights")
    logging_steps: int = 10


class CallLogConfig(BaseModel):
    """Where GRPO's judge reward records its calls (the warehouse's ``llm_calls``) and answers repeated
    (prompt, completion) pairs from. ``catalog`` / ``data_path`` None: ``$ZHUFU_CATALOG`` /
    ``$ZHUFU_DATA_PATH``, else the embedded warehouse under ``$ZHUFU_HOME``. A location that carries a
    password is refused here: it reaches the training process through those environment variables."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # no location echoed in an error
    run_id: str = Field(description="the run the calls are recorded under (the Dagster run)")
    asset_key: str = Field(default="grpo_policy", description="the calls' snapshots are '<asset_key>/llm_calls'")
    catalog: str | None = Field(default=None, description="DuckLake catalog (never one with a password)")
    data_path: str | None = Field(default=None, description="Parquet data path (never one with a password)")
    lock_dir: str | None = Field(default=None, description="write-lock directory of an embedded catalog; None: "
                                 "the environment's warehouse's when catalog is None, else none (a remote catalog)")
    flush_every: int = Field(default=16, description="checkpoint the call log every N calls")

    @field_validator("catalog", "data_path")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is not None and redact_location(value) != value:
            raise ValueError("a location with a password is not written to a run config: leave it None and "
                             "set ZHUFU_CATALOG / ZHUFU_DATA_PATH in the training process's environment")
        return value


class GRPORunConfig(RunConfig):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # call_log's refused location unechoed
    prompts_file: str = Field(description="JSONL of {prompt}")
    reward: Reward = "reward_model"
    reward_model: str | None = Field(default=None, description="path of a reward-model artifact")
    judge_principles: list[str] = Field(default_factory=list, description="S_D for the judge reward")
    judge_model: str | None = Field(default=None, description="model the judge runs on (default: the base model)")
    judge_ensemble: list[str] = Field(
        default_factory=list, description="further judge models (e.g. the judge recipe under other seeds): the judge "
        "reward is the mean of every judge's shaped reward, which one judge's quirks cannot move alone (reward-model "
        "ensembles against over-optimisation: Coste et al. 2023, arXiv:2310.02743)")
    call_log: CallLogConfig | None = Field(
        default=None, description="record the judge reward's calls in this warehouse's llm_calls and answer repeated "
        "ones from it (set by the grpo_policy asset); None: an in-memory runtime, nothing recorded")
    criteria: list[dict[str, Any]] = Field(
        default_factory=list, description="Writer-R1 criteria (active criteria_latest rows of one scenario) for the "
        "criteria reward; with reward 'weighted' they join the reward model and the judge")
    reward_weights: dict[str, float] = Field(
        default_factory=lambda: {"reward_model": 1.0, "judge": 1.0, "criteria": 1.0})
    repetition_weight: float = Field(default=1.0, description="weight of the repetition penalty (minus 1 and the share "
                                     "of characters in repeated phrases, for a completion that repeats a phrase); 0 = off")
    novelty_weight: float = Field(default=0.0, description="weight of the batch-novelty reward (share of a "
                                  "completion's character bigrams that no other prompt's completion in the batch "
                                  "uses; shaped like the other rewards); 0 = off")
    judge_margin: bool = Field(default=True, description="judge reward = log P(是)/P(否) instead of P(是), which "
                               "saturates at 1 once the policy is good")
    length_neutral: bool = Field(default=True, description="remove each reward's within-prompt linear trend on "
                                 "completion length (GRPO cannot buy reward with length)")
    repetition_length_neutral: bool = Field(
        default=True, description="with length_neutral, remove the repetition penalty's length trend too: longer "
        "completions repeat more often, so a plain penalty also pays for being short (at T 0.7 policies came out "
        "10-15 characters shorter; bench/RESULTS.md)")
    normalize_rewards: bool = Field(default=True, description="divide each reward by its first batch's within-prompt "
                                    "standard deviation, so weights compare rewards of different units")
    num_generations: int = 4
    micro_batch_size: int = Field(default=0, ge=0, description="completions per forward/backward on each rank "
                                  "(TRL's gradient accumulation; 0 = the rank's whole share at once); the rollouts "
                                  "of the whole batch are still generated, scored and normalised together")
    max_completion_length: int = 128
    # T 0.7 and β 0.04 met every clause of issue 11's policy bar for both rewards, two seeds each, with the
    # length-neutral repetition penalty (bench/RESULTS.md, 2026-11-26): at T 1.0 the rollouts rarely show the
    # repeats that greedy decoding produces, so the penalty never saw them.
    temperature: float = Field(default=0.7, description="rollout sampling temperature")
    beta: float = Field(default=0.04, description="KL coefficient to the reference policy")
    greedy_rollouts: int = Field(
        default=0, ge=0, description="completions of each prompt's group decoded greedily instead of sampled (graph "
        "sampler only): policies are evaluated greedily, and greedy decoding falls into the phrase loops that "
        "sampled rollouts rarely show, so only a greedy rollout lets the repetition penalty see them")
    learning_rate: float = Field(default=5e-6, description="with fp32 master weights, 5e-6 moves a 135M policy in "
                                 "60 steps of 64 completions; 1e-6 hardly did (bench/RESULTS.md)")
    max_steps: int = Field(default=40, description="-1: num_epochs passes over the prompts")
    batch_size: int = Field(default=64, description="completions per step (prompts × num_generations)")
    use_vllm: bool | None = Field(default=None, description="None: when vllm is importable and CUDA is present")
    generation: Generation = Field(
        default="auto", description="rollouts when not on vLLM: graph = static KV cache + CUDA-graph decode steps "
        "(Llama family; eager on CPU), generate = transformers' generate, paged = its continuous batching; "
        "auto = graph on CUDA where supported, else generate")
    eval_prompts_file: str | None = None
    max_eval_prompts: int = 64
    # MRPO (training/replay.py): the reflection memory as cold-start data and a replay buffer
    memory_file: str | None = Field(default=None, description="JSONL of {prompt, response}: the reflection memory's "
                                    "accepted revisions, for the cold start and as the replay buffer's first entries")
    cold_start_steps: int = Field(default=0, description="SFT steps on the memory before GRPO (0 = none)")
    cold_start_lr: float = Field(default=1e-5, description="the cold start's learning rate")
    replay_weight: float = Field(default=0.0, description="weight of the replay NLL term added to the GRPO loss "
                                 "(0 = plain GRPO)")
    replay_batch: int = Field(default=4, description="replayed trajectories per optimizer step")
    replay_capacity: int = Field(default=256, description="the buffer keeps its newest entries")
    replay_min_advantage: float = Field(default=0.5, description="a group winner enters the buffer at this "
                                        "advantage or more")
