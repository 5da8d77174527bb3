"""Training: SFT → reward model → GRPO policy → policy evaluation, with the model registry.

Each training asset exports its inputs from one pinned warehouse snapshot to JSONL, writes a run
config, and launches ``python -m training.<kind>`` through Dagster Pipes; logs and metrics stream
back. A ``models`` row is written only once the artifact is complete. The model id is a hash of
the base, the hyper-parameters and the training data, so re-materializing unchanged inputs
retrains nothing.
"""


import hashlib
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from agents.principles import balanced_head
from assets.ingest import human_labels, prompts, seed_preference_pairs, seed_sft_examples
from assets.judging import EVAL_SOURCES, evaluation_texts, judge_model, labelled_splits
from assets.path_a import preference_pairs
from assets.path_b import chosen_principles, judge_principles
from assets.plots import line_plot, markdown_image
from assets.pools import MODEL_POOL
from resources import TrainingResource, WarehouseResource
from resources.launch import launch
from training import artifacts
from training.code_version import code_version
from training.config import (
    CallLogConfig,
    Generation,
    GRPORunConfig,
    JudgeRunConfig,
    Kernels,
    LoRA,
    Reward,
    RMEngine,
    RMRunConfig,
    RunConfig,
    SFTRunConfig,
)
from training.data import write_jsonl
from training.metrics import markdown_table
from warehouse.ids import content_id
from warehouse.promotion import eval_set_identity, promotion_for
from warehouse.registry import get_model, latest_model
from warehouse.schema import ModelRow

GROUP = "training"


def heldout(key: str, fraction: float) -> bool:
    """A stable split by id: the same prompt or pair is always on the same side."""
    return int(hashlib.blake2b(key.encode(), digest_size=4).hexdigest(), 16) % 10_000 < fraction * 10_000


# Prompt batches that only ever evaluate policies (the paper's GRPO test split).
EVAL_BATCHES = ("igniting-grpo-test",)


def policy_prompts(warehouse: WarehouseResource, heldout_fraction: float, evaluation: bool,
                   snapshot: int | None = None) -> list[dict]:
    """GRPO's training prompts (``evaluation=False``) or the held-out ones policies are compared on:
    a fixed hash share of every batch plus every prompt that any evaluation batch contains, never both.
    A prompt is stored once, under the batch that first brought it (``prompts.batch``), so membership
    is read from ``batch_prompts``: a test prompt also in a train batch ingested earlier never trains."""
    marks = ", ".join("?" for _ in EVAL_BATCHES)
    df = warehouse.get().sql(f"""
        SELECT id, text, batch,
               id IN (SELECT prompt_id FROM batch_prompts WHERE batch IN ({marks})) AS in_eval_batch
        FROM prompts_latest ORDER BY id""", list(EVAL_BATCHES), as_of=snapshot)
    return [{k: v for k, v in r.items() if k != "in_eval_batch"} for r in df.to_dicts()
            if (heldout(r["id"], heldout_fraction) or r["in_eval_batch"]) == evaluation]


def _fetch(warehouse: WarehouseResource, snapshot: int, sql: str, params: list | None = None) -> list[dict]:
    return warehouse.get().sql(sql, params, as_of=snapshot).to_dicts()


def _train(context: dg.AssetExecutionContext, warehouse: WarehouseResource, training: TrainingResource,
           pipes_client: dg.PipesSubprocessClient, *, kind: str, module: str, cfg: RunConfig, base_id: str,
           data_files: dict[str, list[dict]], snapshot: int, lineage: dict[str, Any] | None = None,
           extra_metadata: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> dg.MaterializeResult:
    """Export, launch through Pipes (unless this exact model exists), register, report. ``env``: secret
    variables for the training process (``resources.launch``)."""
    hyper = cfg.model_dump(exclude={"base_model", "output_dir", "train_file", "train_files", "eval_pairs_file",
                                    "eval_labels_file", "prompts_file", "eval_prompts_file", "reward_model",
                                    "call_log"})  # where GRPO's judge calls are logged: not the model
    model_id = f"{kind}-" + content_id(kind, base_id, hyper, lineage or {},
                                       {name: content_id(rows) for name, rows in data_files.items()},
                                       code_version(), length=16)  # a fix to the trainers retrains
    out = training.artifact_dir(model_id)
    run_dir = training.run_dir(context.asset_key.to_user_string(), context.run_id)
    files = {name: run_dir / f"{name}.jsonl" for name in data_files}
    for name, rows in data_files.items():
        write_jsonl(files[name], rows)
    cfg = cfg.model_copy(update={"output_dir": str(out), **_file_fields(cfg, files)})
    streamed: list[dict] = []
    if artifacts.is_complete(out):
        context.log.info(f"{model_id} already trained at {out}: registering it without retraining")
    else:
        config_path = cfg.dump(run_dir / "config.json")
        command = training.command(module, config_path)
        context.log.info(f"launching {' '.join(command)}")
        invocation = launch(pipes_client, context, command, extras={"model_id": model_id, "config": str(config_path)},
                            env=env)
        # the metrics the trainer streamed over Pipes (training/reporting.py), step by step
        streamed = [m for m in (invocation.get_custom_messages() if hasattr(invocation, "get_custom_messages")
                                else []) if isinstance(m, dict) and "step" in m]
        if not artifacts.is_complete(out):
            raise dg.Failure(f"{module} exited without a complete artifact at {out}")
    manifest = artifacts.read_manifest(out)
    # which items every evaluation figure is on: the promotion gate compares figures of one set only
    metrics = {**manifest["metrics"], "eval_sets": {name: eval_set_identity(rows) for name, rows in data_files.items()
                                                    if name.startswith("eval")}}
    if registered := get_model(warehouse.get(), model_id):  # the same event again: nothing new to store
        row = ModelRow(**{k: registered[k] for k in ("model_id", "kind", "base", "hyperparams", "input_snapshots",
                                                     "metrics", "artifact_path")})
    else:
        row = ModelRow(model_id=model_id, kind=kind, base=base_id, hyperparams={**hyper, **(lineage or {})},
                       input_snapshots={t: snapshot for t in data_files}, metrics=metrics, artifact_path=str(out))
    # the learning curve as streamed over Pipes; the artifact's own log when it was trained earlier
    curve = [h for h in (streamed or manifest.get("log_history", [])) if "loss" in h or "reward" in h]
    meta = {"model_id": model_id, "artifact_path": dg.MetadataValue.path(str(out)), "base": base_id,
            "pipes_metric_messages": len(streamed),
            "input_snapshot": snapshot, **{f"{k}_rows": len(v) for k, v in data_files.items()},
            **{k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
            "metrics": dg.MetadataValue.json(metrics)}
    if curve:
        meta["training_log"] = dg.MetadataValue.md(_log_table(curve))
        meta["training_curves"] = dg.MetadataValue.md(markdown_image(_curves_png(curve), "training curves"))
    meta.update(extra_metadata or {})
    # Decided now and committed with the models row, so the model is never visible undecided.
    promotion = None if registered else promotion_for(warehouse.get(), model_id, kind, metrics)
    if promotion is not None:
        (context.log.info if promotion.promoted else context.log.warning)(
            f"{model_id} {'promoted' if promotion.promoted else 'rejected'}: {promotion.reason}")
        meta.update({"promoted": promotion.promoted, "promotion": promotion.reason})
    meta["training_code_version"] = code_version()
    return warehouse.record(context, [row, *([promotion] if promotion else [])], main_table="models", metadata=meta)


def _curves_png(rows: list[dict]) -> bytes:
    """Loss (and for GRPO reward, KL, completion length) against the step: the run's learning curves."""
    keys = [k for k in ("loss", "pairwise_loss", "reward", "kl", "accuracy") if any(r.get(k) is not None for r in rows)]
    steps = [r.get("step", i) for i, r in enumerate(rows)]
    return line_plot({k: (steps, [r.get(k) for r in rows]) for k in keys}, xlabel="step", ylabel="value")


def _file_fields(cfg: RunConfig, files: dict) -> dict[str, Any]:
    update: dict[str, Any] = {}
    for name, path in files.items():
        if name == "train" and isinstance(cfg, (SFTRunConfig, JudgeRunConfig)):
            update["train_file"] = str(path)
        elif name == "train" and isinstance(cfg, RMRunConfig):
            update["train_files"] = [str(path)]
        elif name == "train":
            update["prompts_file"] = str(path)
        elif name == "eval_pairs":
            update["eval_pairs_file"] = str(path)
        elif name == "eval_labels":
            update["eval_labels_file"] = str(path)
        elif name == "eval_prompts":
            update["eval_prompts_file"] = str(path)
        elif name == "memory":
            update["memory_file"] = str(path)
    return update


def _log_table(rows: list[dict], limit: int = 20) -> str:
    keys = [k for k in ("step", "loss", "accuracy", "reward", "kl", "completions/mean_length",
                        "completions/clipped_ratio", "learning_rate") if any(k in r for r in rows)]
    return markdown_table(rows[:: max(1, len(rows) // limit)], keys,
                          fmt=lambda v: f"{v:.4g}" if isinstance(v, float) else "" if v is None else str(v))


class TrainConfig(dg.Config):
    base_model: str | None = Field(default=None, description="default: the training resource's base model")
    max_steps: int = Field(default=8, description="-1: num_epochs over the data (full runs); small on CPU")
    num_epochs: float = 1.0
    batch_size: int = 8
    learning_rate: float | None = Field(default=None, description="default: the trainer's")
    max_length: int = 256
    lora: bool = Field(default=False, description="LoRA adapters (merged into the artifact)")
    lora_r: int = 16
    seed: int = 0
    kernels: Kernels = Field(
        default="auto", description="auto: torch's fused RMSNorm on CUDA, transformers' modules on CPU")

    def common(self) -> dict[str, Any]:
        d = {"max_steps": self.max_steps, "num_epochs": self.num_epochs, "batch_size": self.batch_size,
             "max_length": self.max_length, "seed": self.seed, "kernels": self.kernels, "lora": LoRA(r=self.lora_r, alpha=2 * self.lora_r)
             if self.lora else None}
        if self.learning_rate is not None:
            d["learning_rate"] = self.learning_rate
        return d


# ---------------------------------------------------------------- SFT


class SFTModelConfig(TrainConfig):
    warm_start: bool = Field(default=True, description="start from the shipped SFT warm start (the embedded model "
                             "with a LoRA adapter trained on the paper's sft.json on a GPU, resources/warm_start/) "
                             "when the base is the embedded default")
    source: str | None = Field(default=None, description="only seed SFT examples from this source")
    max_examples: int = Field(default=0, description="0 = all")


@dg.asset(pool=MODEL_POOL, group_name=GROUP, deps=[seed_sft_examples], kinds={"pytorch"}, code_version="1",
          description="The policy after supervised fine-tuning (TRL SFTTrainer) on the seed SFT examples.")
def sft_model(context: dg.AssetExecutionContext, config: SFTModelConfig, warehouse: WarehouseResource,
              training: TrainingResource, pipes_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    snap = warehouse.get().current_snapshot()
    rows = _fetch(warehouse, snap, "SELECT prompt, response FROM seed_sft_examples_latest "
                  "WHERE ? IS NULL OR source = ? ORDER BY id", [config.source, config.source])
    if config.max_examples:
        rows = rows[: config.max_examples]
    if not rows:
        raise dg.Failure("no SFT examples: materialize seed_sft_examples")
    base, lineage = training.start_from("sft", config.base_model, config.warm_start)
    cfg = SFTRunConfig(base_model=training.resolve(base), output_dir="-", train_file="-", **config.common())
    return _train(context, warehouse, training, pipes_client, kind="sft", module="training.sft", cfg=cfg,
                  base_id=base, data_files={"train": rows}, snapshot=snap, lineage=lineage)


# ---------------------------------------------------------------- reward model


class RewardModelConfig(TrainConfig):
    engine: RMEngine = Field(default="trl", description="trl: RewardTrainer; fast: zhufu's packed "
                                           "loop (6–7.7× the plain-TRL anchor on an H100, bench/RESULTS.md)")
    packing: bool | None = Field(default=None, description="fast engine: packed prefix-shared rows (None: on CUDA)")
    micro_batch_size: int = Field(default=0, ge=0, description="fast engine: pairs per forward/backward on each GPU, "
                                  "gradients accumulated over the batch (0 = the whole batch at once)")
    shard_optimizer: bool = Field(default=False, description="fast engine on several GPUs: each keeps the fp32 master "
                                  "weights and AdamW moments of its share of the parameters only (ZeRO-1)")
    data: Literal["both", "pipeline", "seed"] = Field(
        default="both", description="pipeline: Path A's preference_pairs; seed: the seed pairs")
    heldout_fraction: float = Field(default=0.1, description="pairs kept out of training for pair accuracy")
    max_train_pairs: int = Field(default=0, description="0 = all")
    max_eval_labels: int = Field(default=200, description="labelled evaluation items for AUC (0 = all)")


def _reward_data(warehouse: WarehouseResource, snap: int, config: RewardModelConfig, half: int) -> dict[str, list]:
    """Pairs for a reward model: never evaluation data; ``half`` 0 or 1 of a fixed hash split, so the
    policy's training reward and the evaluator that judges the policy never share a pair."""
    banned = evaluation_texts(warehouse)
    pairs: list[dict] = []
    if config.data in ("both", "pipeline"):
        pairs += _fetch(warehouse, snap, "SELECT pp.id, p.text AS prompt, pp.chosen, pp.rejected "
                        "FROM preference_pairs_latest pp JOIN prompts p ON p.id = pp.prompt_id ORDER BY pp.id")
    if config.data in ("both", "seed"):
        pairs += _fetch(warehouse, snap, "SELECT id, prompt, chosen, rejected FROM seed_preference_pairs_latest "
                        "WHERE NOT list_contains(?, source) ORDER BY id", [list(EVAL_SOURCES)])
    pairs = [r for r in pairs if r["chosen"] not in banned and r["rejected"] not in banned
             and heldout(f"evaluator:{r['id']}", 0.5) == bool(half)]
    keep = ("prompt", "chosen", "rejected")
    train = [{k: r[k] for k in keep} for r in pairs if not heldout(r["id"], config.heldout_fraction)]
    evals = [{k: r[k] for k in keep} for r in pairs if heldout(r["id"], config.heldout_fraction)]
    # evaluation pairs of the paper (never trained on) report pair accuracy when present
    evals += _fetch(warehouse, snap, "SELECT prompt, chosen, rejected FROM seed_preference_pairs_latest "
                    "WHERE source = 'igniting-pairs-dev' ORDER BY id")
    _, _, evaluation = labelled_splits(warehouse, None, 0)
    labels = [{"prompt": e.prompt, "response": e.response, "label": e.label}
              for e in balanced_head(evaluation, config.max_eval_labels)]
    return {"train": train, **({"eval_pairs": evals} if evals else {}), **({"eval_labels": labels} if labels else {})}


def _reward(context, config: RewardModelConfig, warehouse: WarehouseResource, training: TrainingResource,
            pipes_client, kind: str, half: int) -> dg.MaterializeResult:
    snap = warehouse.get().current_snapshot()
    data = _reward_data(warehouse, snap, config, half)
    if not data["train"]:
        raise dg.Failure("no preference pairs: materialize preference_pairs or seed_preference_pairs")
    base = config.base_model or training.base_model
    cfg = RMRunConfig(base_model=training.resolve(base), output_dir="-", train_files=["-"], engine=config.engine,
                      packing=config.packing, micro_batch_size=config.micro_batch_size,
                      shard_optimizer=config.shard_optimizer, max_train_pairs=config.max_train_pairs, **config.common())
    return _train(context, warehouse, training, pipes_client, kind=kind, module="training.rm", cfg=cfg,
                  base_id=base, data_files=data, snapshot=snap, lineage={"pair_half": half})


@dg.asset(pool=MODEL_POOL, group_name=GROUP, deps=[preference_pairs, seed_preference_pairs, human_labels], kinds={"pytorch"},
          code_version="2",
          description="Bradley–Terry reward model (GRPO's training reward) on one half of the preference pairs "
          "(never evaluation data); pair accuracy (all and length-matched) and AUC on labelled items (all and "
          "30–49 chars), each beside the length baseline.")
def reward_model(context: dg.AssetExecutionContext, config: RewardModelConfig, warehouse: WarehouseResource,
                 training: TrainingResource, pipes_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    return _reward(context, config, warehouse, training, pipes_client, "reward", 0)


@dg.asset(pool=MODEL_POOL, group_name="evaluation", deps=[preference_pairs, seed_preference_pairs, human_labels], kinds={"pytorch"},
          code_version="2",
          description="The independent evaluator: a reward model trained like reward_model on the *other* half of "
          "the pairs, so policies are never judged by the reward they were trained on.")
def evaluator_model(context: dg.AssetExecutionContext, config: RewardModelConfig, warehouse: WarehouseResource,
                    training: TrainingResource, pipes_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    return _reward(context, config, warehouse, training, pipes_client, "evaluator", 1)


# ---------------------------------------------------------------- GRPO


class GRPOPolicyConfig(TrainConfig):
    reward: Reward = "reward_model"
    reward_model_weight: float = 1.0
    judge_weight: float = 1.0
    criteria_weight: float = 1.0
    scenario: str = Field(default="greeting", description="whose current criteria the criteria reward reads")
    principles_id: str | None = Field(default=None, description="S_D for the judge (default: best of newest loop)")
    max_steps: int = 2
    batch_size: int = Field(default=4, description="completions per step (prompts × num_generations)")
    micro_batch_size: int = Field(default=0, ge=0, description="completions per forward/backward on each GPU "
                                  "(gradient accumulation; 0 = the whole batch at once)")
    num_generations: int = 2
    max_completion_length: int = 48
    beta: float = Field(default=0.04, description="KL coefficient (training.config.GRPORunConfig: why)")
    temperature: float = Field(default=0.7, description="rollout sampling temperature")
    max_prompts: int = Field(default=64, description="training prompts (0 = all)")
    heldout_fraction: float = Field(default=0.1, description="prompts kept for policy_evaluation")
    use_vllm: bool | None = None
    generation: Generation = Field(
        default="auto", description="rollouts without vLLM: graph = CUDA-graph sampler (auto on CUDA), generate, paged")


@dg.asset(pool=MODEL_POOL, group_name=GROUP, kinds={"pytorch"}, code_version="1",
          deps=[sft_model, reward_model, judge_principles, judge_model, prompts, dg.AssetKey("criteria")],
          description="GRPO from the newest SFT model (TRL GRPOTrainer), reward = reward model | judge | Writer-R1 "
          "criteria (the scenario's current criteria_latest set) | weighted sum, KL to the reference; reward, KL, "
          "completion length and clipping logged.")
def grpo_policy(context: dg.AssetExecutionContext, config: GRPOPolicyConfig, warehouse: WarehouseResource,
                training: TrainingResource, pipes_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    return _launch_grpo(context, config, warehouse, training, pipes_client)


def _launch_grpo(context: dg.AssetExecutionContext, config: GRPOPolicyConfig, warehouse: WarehouseResource,
                 training: TrainingResource, pipes_client: dg.PipesSubprocessClient, *, kind: str = "grpo",
                 memory: list[dict] | None = None, extra: dict[str, Any] | None = None,
                 extra_lineage: dict[str, Any] | None = None) -> dg.MaterializeResult:
    """GRPO (or, with ``memory``, MRPO) from the newest SFT model, launched through Pipes and registered."""
    wh = warehouse.get()
    snap = wh.current_snapshot()
    sft = latest_model(wh, "sft")
    base_id, base_path = (sft["model_id"], sft["artifact_path"]) if sft else (training.base_model, training.resolve())
    lineage: dict[str, Any] = {"reward": config.reward}
    kwargs: dict[str, Any] = {}
    secret: dict[str, str] = {}  # variables the training process gets through its environment only
    if config.reward in ("reward_model", "weighted"):
        rm = latest_model(wh, "reward")
        if rm is None:
            raise dg.Failure("reward 'reward_model' needs a trained reward model: materialize reward_model")
        lineage["reward_model_id"] = rm["model_id"]
        kwargs["reward_model"] = rm["artifact_path"]
    if config.reward in ("judge", "weighted"):
        pid, s_d = chosen_principles(warehouse, config.principles_id)
        lineage["principles_id"] = pid
        kwargs["judge_principles"] = s_d
    if config.reward == "criteria":
        from assets.criteria import current_criteria

        rows = current_criteria(warehouse, config.scenario)
        if not rows:
            raise dg.Failure(f"reward 'criteria' needs criteria for scenario {config.scenario!r}: materialize criteria")
        keep = ("id", "task_type", "dimension", "criterion", "description", "rubric", "weight")
        kwargs["criteria"] = [{k: r.get(k) for k in keep} for r in rows]
        lineage["criteria"] = {"scenario": config.scenario, "version": rows[0].get("version"), "n": len(rows)}
    if config.reward in ("judge", "weighted", "criteria"):
        judge = latest_model(wh, "judge")  # the trained judge, else the base model (never the policy in training)
        kwargs["judge_model"] = judge["artifact_path"] if judge else training.resolve()
        lineage["judge_model_id"] = judge["model_id"] if judge else training.base_model
        # The judge's calls go to this warehouse's llm_calls (and repeated ones are answered from it).
        # A catalog or data path with a password is not written to the run config file: it reaches
        # the training process through its environment.
        loc = warehouse.warehouse_config()
        secret = {var: value for var, value in (("ZHUFU_CATALOG", loc.catalog), ("ZHUFU_DATA_PATH", loc.data_path))
                  if loc.redact(value) != value}
        kwargs["call_log"] = CallLogConfig(
            run_id=context.run_id, asset_key=context.asset_key.to_user_string(),
            catalog=None if "ZHUFU_CATALOG" in secret else loc.catalog,
            data_path=None if "ZHUFU_DATA_PATH" in secret else loc.data_path,
            lock_dir=str(loc.lock_dir) if loc.lock_dir else None)
    train = [{"prompt": r["text"]} for r in policy_prompts(warehouse, config.heldout_fraction, False, snap)]
    if config.max_prompts:
        train = train[: config.max_prompts]
    if not train:
        raise dg.Failure("no prompts: materialize prompts")
    cfg = GRPORunConfig(base_model=base_path, output_dir="-", prompts_file="-", reward=config.reward,
                        reward_weights={"reward_model": config.reward_model_weight, "judge": config.judge_weight,
                                        "criteria": config.criteria_weight},
                        num_generations=config.num_generations, max_completion_length=config.max_completion_length,
                        micro_batch_size=config.micro_batch_size, beta=config.beta, temperature=config.temperature,
                        use_vllm=config.use_vllm,
                        generation=config.generation, **config.common(),
                        **kwargs, **(extra or {}))
    lineage.update(extra_lineage or {})
    data_files = {"train": train, **({"memory": memory} if memory is not None else {})}
    return _train(context, warehouse, training, pipes_client, kind=kind, module="training.grpo", cfg=cfg,
                  base_id=base_id, data_files=data_files, snapshot=snap, lineage=lineage, env=secret)


# ---------------------------------------------------------------- MRPO


class MRPOPolicyConfig(GRPOPolicyConfig):
    reward: Reward = Field(default="criteria", description="MRPO trains on the Writer-R1 criteria by default")
    cold_start_steps: int = Field(default=0, description="SFT steps on the reflection memory before GRPO; off by "
                                  "default: 20 steps at 1e-5 collapsed the policy onto one template on an H200, replay "
                                  "alone kept its diversity (bench/RESULTS.md, issue 13)")
    cold_start_lr: float = 1e-5
    replay_weight: float = Field(default=0.1, description="weight of the replay NLL term (training/replay.py)")
    replay_batch: int = 4
    replay_min_advantage: float = 0.5


@dg.asset(pool=MODEL_POOL, group_name=GROUP, kinds={"pytorch"}, code_version="1",
          deps=[sft_model, reward_model, judge_principles, judge_model, prompts, dg.AssetKey("criteria"),
                dg.AssetKey("reflections")],
          description="MRPO training mode (Writer-R1): from the newest SFT model, an optional cold start (SFT, off by "
          "default) on the reflection memory — the accepted revisions in `reflections` of the reward's scenario — then GRPO (reward: the "
          "scenario's criteria by default) with memory replay: each step's group winners (advantage ≥ "
          "replay_min_advantage) and the memory go into a buffer, and every step adds replay_weight × the NLL of "
          "a few trajectories from *earlier* steps to the GRPO loss (self-imitation; training/replay.py says why "
          "not importance weights). Registered as kind `mrpo` with the criteria version and the memory snapshot "
          "in its lineage; `policy_evaluation` compares it with SFT and GRPO.")
def mrpo_policy(context: dg.AssetExecutionContext, config: MRPOPolicyConfig, warehouse: WarehouseResource,
                training: TrainingResource, pipes_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    wh = warehouse.get()
    memory = wh.sql("SELECT prompt, revision AS response FROM reflections_latest WHERE accepted AND scenario = ? "
                    "ORDER BY id", [config.scenario]).to_dicts()
    if not memory:
        context.log.warning(f"no accepted revisions for {config.scenario!r} in reflections: no cold start, the replay "
                            "buffer starts empty")
    index = wh.sql("SELECT lance_version FROM vector_indexes_latest WHERE index_name = 'reflection_memory'")
    extra = {"cold_start_steps": config.cold_start_steps, "cold_start_lr": config.cold_start_lr,
             "replay_weight": config.replay_weight, "replay_batch": config.replay_batch,
             "replay_min_advantage": config.replay_min_advantage}
    lineage = {"memory": {"scenario": config.scenario, "revisions": len(memory), "snapshot": wh.current_snapshot(),
                          "lance_version": index["lance_version"][0] if index.height else None}}
    return _launch_grpo(context, config, warehouse, training, pipes_client, kind="mrpo", memory=memory or None,
                        extra=extra, extra_lineage=lineage)
