"""The trained judge and its calibration.

judge_model: a principle-conditioned 是/否 judge fine-tuned from the base model on human
judgements that are not evaluation data, plus every recorded adversarial negative (greetings the
Generator planted flaws in that fooled an earlier judge). judge_calibration: the decision threshold
on P(是) for each judging agent, fitted on the calibration split of the human labels and stored as
an event, so every label downstream says which threshold made it.
"""


import random
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from agents import judge as path_a_judge
from agents import judging, labeler, principles, retrieval
from agents.common import Item
from agents.judging import FOREIGN_PRINCIPLES, pair_rows, rule_row, vary
from agents.principles import Example
from assets.ingest import human_labels, seed_preference_pairs
from assets.pools import LLM_RETRY, MODEL_POOL
from resources import EmbedderResource, LLMResource, TrainingResource, VectorStoreResource, WarehouseResource
from training.config import JudgeRunConfig, LoRA
from training.metrics import auc
from warehouse.ids import content_id
from warehouse.registry import latest_model
from warehouse.schema import CalibrationRow

GROUP = "judges"
# Evaluation data: never training data for a judge, a reward model or a policy.
EVAL_SOURCES = ("igniting-eval-dev", "igniting-pairs-dev")


def labelled_splits(warehouse: WarehouseResource, source: str | None = None, seed: int = 0):
    """(train, calibration, evaluation) splits of the human labels, fixed by a hash of each id."""
    df = warehouse.get().sql(
        "SELECT id, prompt, response, label FROM human_labels_latest WHERE ? IS NULL OR source = ? ORDER BY id",
        [source, source])
    examples = [Example(r["id"], r["prompt"], r["response"], int(r["label"])) for r in df.iter_rows(named=True)]
    return principles.split_examples(examples, seed)


def evaluation_texts(warehouse: WarehouseResource, seed: int = 0) -> set[str]:
    """Every response that evaluates something: the evaluation split and the evaluation sources."""
    _, _, evaluation = labelled_splits(warehouse, None, seed)
    wh = warehouse.get()
    texts = {e.response for e in evaluation}
    texts |= set(wh.sql("SELECT response FROM human_labels_latest WHERE list_contains(?, source)",
                        [list(EVAL_SOURCES)])["response"].to_list())
    pairs = wh.sql("SELECT chosen, rejected FROM seed_preference_pairs_latest WHERE list_contains(?, source)",
                   [list(EVAL_SOURCES)])
    return texts | set(pairs["chosen"].to_list()) | set(pairs["rejected"].to_list())


def principle_pool(warehouse: WarehouseResource) -> list[list[str]]:
    """Principle lists the judge may be asked to read: the built-in ones and every recorded S_D."""
    pool = [list(principles.INITIAL_S_D), list(path_a_judge.PRINCIPLES)]
    for s_d in warehouse.get().sql("SELECT DISTINCT s_d FROM judge_principles_latest")["s_d"].to_list():
        if list(s_d) not in pool:
            pool.append(list(s_d))
    return pool


def judge_training_rows(warehouse: WarehouseResource, *, seed: int = 0, max_pairs: int = 0,
                        snapshot: int | None = None, rule_share: float = 0.0,
                        rule_kind: str = "length") -> list[dict]:
    """Human judgements that are not evaluation data (labels of the training split; seed pairs as
    chosen → 是 / rejected → 否, kept together for the pairwise term), rows whose principles carry a
    checkable rule (``agents.judging.pair_rows``: the principle text decides their label) and the
    adversarial negatives."""
    wh = warehouse.get()
    banned = evaluation_texts(warehouse, seed)
    rng = random.Random(seed)
    pool = principle_pool(warehouse)
    train, _, _ = labelled_splits(warehouse, None, seed)
    train = [e for e in train if e.response not in banned]
    rows = [{"prompt": e.prompt, "response": e.response, "label": e.label, "source": "human_labels",
             "principles": vary(pool, rng)} for e in train]
    goods = [e.response for e in train if e.label == 1]
    for e in train:
        if e.label == 1 and rule_share and rng.random() < rule_share:
            row = rule_row(e.prompt, e.response, goods[rng.randrange(len(goods))], pool, rng, rule_kind)
            rows += [row] if row else []
    pairs = wh.sql("SELECT id, prompt, chosen, rejected FROM seed_preference_pairs_latest "
                   "WHERE NOT list_contains(?, source) ORDER BY id", [list(EVAL_SOURCES)], as_of=snapshot).to_dicts()
    pairs = [p for p in pairs if p["chosen"] not in banned and p["rejected"] not in banned]
    if max_pairs:
        pairs = pairs[:max_pairs]
    rows += pair_rows(pairs, pool, rng, rule_share=rule_share, rule_kind=rule_kind)
    adv = wh.sql("SELECT prompt, greeting FROM adversarial_examples_latest WHERE fooled ORDER BY id",
                 as_of=snapshot).to_dicts()
    rows += [{"prompt": a["prompt"], "response": a["greeting"], "label": 0, "source": "adversarial",
              "principles": vary(pool, rng)} for a in adv]
    return rows


def judge_eval_files(warehouse: WarehouseResource, seed: int = 0, max_labels: int = 0) -> dict[str, list[dict]]:
    _, _, evaluation = labelled_splits(warehouse, None, seed)
    labels = [{"prompt": e.prompt, "response": e.response, "label": e.label}
              for e in principles.balanced_head(evaluation, max_labels)]
    pairs = warehouse.get().sql("SELECT prompt, chosen, rejected FROM seed_preference_pairs_latest "
                                "WHERE source = 'igniting-pairs-dev' ORDER BY id").to_dicts()
    return {**({"eval_labels": labels} if labels else {}), **({"eval_pairs": pairs} if pairs else {})}


# ---------------------------------------------------------------- the judge in use


def judge_model_id(warehouse: WarehouseResource, llm: LLMResource, use_judge_model: bool = True) -> str | None:
    """The judge to score with: the newest trained judge on the local backends; a configured
    OpenAI-compatible endpoint is used as it is."""
    if not use_judge_model or llm.backend == "openai":
        return None
    m = latest_model(warehouse.get(), "judge")
    return m["model_id"] if m else None


def judge_runtime(context, warehouse: WarehouseResource, llm: LLMResource, use_judge_model: bool = True):
    return llm.runtime(context, model=judge_model_id(warehouse, llm, use_judge_model))


def current_calibration(warehouse: WarehouseResource, evaluator: str, model: str, prompt_version: str,
                        principles_id: str | None = None) -> dict[str, Any] | None:
    df = warehouse.get().sql(
        "SELECT id, threshold, n, accuracy, auc FROM calibrations_latest WHERE evaluator = ? AND model = ? "
        "AND prompt_version = ? AND coalesce(principles_id, '') = coalesce(?, '') ORDER BY created_at DESC LIMIT 1",
        [evaluator, model, prompt_version, principles_id])
    return df.row(0, named=True) if df.height else None


def threshold_for(context, warehouse: WarehouseResource, evaluator: str, model: str, prompt_version: str,
                  principles_id: str | None = None) -> tuple[float, str | None]:
    cal = current_calibration(warehouse, evaluator, model, prompt_version, principles_id)
    if cal is None:
        context.log.warning(f"no calibration for {evaluator} on {model}: threshold {judging.DEFAULT_THRESHOLD} "
                            "(materialize judge_calibration)")
        return judging.DEFAULT_THRESHOLD, None
    return float(cal["threshold"]), cal["id"]


# ---------------------------------------------------------------- assets


class JudgeModelConfig(dg.Config):
    base_model: str | None = Field(default=None, description="default: the training resource's base model")
    init_from: Literal["base", "sft"] = Field(
        default="base", description="sft: fine-tune the newest promoted sft_model instead of the base (materialize "
        "sft_model first; no warm start). Measured on the paper's data (bench/RESULTS.md, 2026-11-29): length-matched "
        "dev pair accuracy 0.903–0.917 over three seeds against 0.889 from the base in the same call, AUC level — "
        "suggestive, not established, so not the default")
    warm_start: bool = Field(default=True, description="start from the shipped judge warm start (the embedded model "
                             "with a LoRA adapter trained on the paper's training pairs on a GPU, "
                             "resources/warm_start/) when the base is the embedded default")
    num_epochs: float = 1.0
    max_steps: int = Field(default=-1, description="-1: num_epochs over the data")
    batch_size: int = 64
    learning_rate: float = 5e-5
    pairwise_weight: float = Field(default=1.0, description="Bradley–Terry term on the seed pairs")
    lora: bool = Field(default=False, description="train LoRA adapters (merged into the artifact): a few small-batch "
                       "steps on a warm start then nudge it instead of overwriting it (measured in the demo: two "
                       "full-weight CPU steps at 5e-5 took the warm judge from AUC 1.0 to scores ≈ 0 for every item)")
    lora_r: int = 16
    max_length: int = 1024
    max_pairs: int = Field(default=0, description="seed pairs used (0 = all)")
    max_eval_labels: int = Field(default=0, description="evaluation items for the reported AUC (0 = all)")
    rule_share: float = Field(default=0.5, description="share of good greetings that get one more training row "
                              "whose principles include a checkable rule (``rule_kind``), labelled by whether the "
                              "greeting keeps it: the rows that make the principle text matter. With length rules, "
                              "the paper-data judge follows a length principle it is shown (AUC 0.998 with the rule, "
                              "0.49 without) at a cost of ≤ 0.002 AUC; word rules taught nothing at 135M "
                              "(bench/RESULTS.md)")
    rule_kind: Literal["word", "length"] = Field(default="length", description="the checkable rule of those rows: a "
                                                 "must-have / must-not word, or an at-most / at-least character count")
    rule_eval: bool = Field(default=True, description="also measure principle following (good greetings under a "
                            "checkable rule of each kind they keep or break)")
    principle_ablations: bool = Field(default=True, description="also evaluate with empty / shuffled / foreign "
                                      "principles (does the principle text matter?)")
    seed: int = 0


def train_judge(context, warehouse: WarehouseResource, training: TrainingResource, pipes_client,
                config: JudgeModelConfig, *, base_id: str, base_path: str, lineage: dict[str, Any],
                principles_id: str | None, s_d: list[str]) -> dg.MaterializeResult:
    from assets.training import _train  # the training launcher (imports this module's neighbours)

    snap = warehouse.get().current_snapshot()
    rows = judge_training_rows(warehouse, seed=config.seed, max_pairs=config.max_pairs, snapshot=snap,
                               rule_share=config.rule_share, rule_kind=config.rule_kind)
    if not rows:
        raise dg.Failure("no human judgements to train a judge on: materialize human_labels / seed_preference_pairs")
    cfg = JudgeRunConfig(base_model=base_path, output_dir="-", train_file="-", eval_principles=s_d,
                         foreign_principles=FOREIGN_PRINCIPLES, num_epochs=config.num_epochs,
                         max_steps=config.max_steps, batch_size=config.batch_size,
                         learning_rate=config.learning_rate, pairwise_weight=config.pairwise_weight,
                         max_length=config.max_length, seed=config.seed, logging_steps=1,
                         principle_ablations=config.principle_ablations, rule_eval=config.rule_eval,
                         lora=LoRA(r=config.lora_r, alpha=2 * config.lora_r) if config.lora else None)
    sources: dict[str, int] = {}
    for r in rows:
        sources[r["source"]] = sources.get(r["source"], 0) + 1
    return _train(context, warehouse, training, pipes_client, kind="judge", module="training.judge", cfg=cfg,
                  base_id=base_id, data_files={"train": rows, **judge_eval_files(warehouse, config.seed,
                                                                                 config.max_eval_labels)},
                  snapshot=snap, lineage={**lineage, "principles_id": principles_id},
                  extra_metadata={"training_rows_by_source": dg.MetadataValue.json(sources)})


@dg.asset(pool=MODEL_POOL, group_name=GROUP, deps=[human_labels, seed_preference_pairs], kinds={"pytorch"}, code_version="1",
          description="A principle-conditioned 是/否 judge fine-tuned from the base model on human judgements that "
          "are not evaluation data (training-split labels; seed pairs chosen → 是, rejected → 否 with a "
          "pairwise term) and every recorded adversarial negative, with varied principle lists in the prompt. "
          "Reports AUC / pair accuracy beside length, and with empty, shuffled and foreign principles.")
def judge_model(context: dg.AssetExecutionContext, config: JudgeModelConfig, warehouse: WarehouseResource,
                training: TrainingResource, pipes_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    if config.init_from == "sft":
        sft = latest_model(warehouse.get(), "sft")
        if sft is None:
            raise dg.Failure("judge_model init_from='sft': no promoted sft_model is registered; materialize sft_model")
        base, path, warm = sft["model_id"], sft["artifact_path"], {"init_from": "sft"}
    else:
        base, warm = training.start_from("judge", config.base_model, config.warm_start)
        path = training.resolve(base)
    return train_judge(context, warehouse, training, pipes_client, config, base_id=base, base_path=path,
                       lineage={"round": 0, **warm}, principles_id=None, s_d=list(principles.INITIAL_S_D))


class CalibrationConfig(dg.Config):
    max_items: int = Field(default=0, description="calibration-split items (0 = all; fewer keep both labels)")
    use_judge_model: bool = Field(default=True, description="score with the newest trained judge (local backends)")
    path_a: bool = Field(default=True, description="also calibrate Path A (runs its debate on these items)")
    k_search: int = 8
    k_final: int = 3
    seed: int = 0


def calibration_row(evaluator: str, model: str, prompt_version: str, principles_id: str | None,
                    items: list[Example], scores: list[float | None], snapshot: int) -> CalibrationRow:
    cal = judging.calibrate(scores, [e.label for e in items])
    kept = [(s, e.label) for s, e in zip(scores, items, strict=True) if s is not None]
    return CalibrationRow(evaluator=evaluator, model=model, prompt_version=prompt_version,
                          principles_id=principles_id, calibration_set=content_id(sorted(e.item_id for e in items)),
                          source="human_labels/calibration-split", snapshot=snapshot, n=cal.n,
                          threshold=cal.threshold, accuracy=round(cal.accuracy, 4),
                          auc=auc([s for s, _ in kept], [y for _, y in kept]) if kept else None,
                          positive_rate=round(cal.positive_rate, 4),
                          human_positive_rate=round(cal.human_positive_rate, 4))


def path_a_items(warehouse: WarehouseResource, embedder: EmbedderResource, vectors: VectorStoreResource,
                 examples: list[Example], k_search: int, k_final: int) -> list[Item]:
    """Labelled examples as Path A items, with exemplars retrieved (never the answer itself)."""
    from assets.path_a import EXEMPLAR_TABLE, current_index_version

    found = retrieval.retrieve(embedder.get(), vectors.get(), EXEMPLAR_TABLE, [e.prompt for e in examples],
                               k_search=k_search, k_final=k_final, version=current_index_version(warehouse),
                               exclude=[{e.response} for e in examples])
    return [Item(item_id=e.item_id, prompt=e.prompt, response=e.response, exemplars=tuple(f.texts))
            for e, f in zip(examples, found, strict=True)]


@dg.asset(pool=MODEL_POOL, retry_policy=LLM_RETRY, group_name=GROUP, deps=[human_labels, judge_model, dg.AssetKey("judge_principles"),
                                  dg.AssetKey("exemplar_index")], kinds={"duckdb"}, code_version="1",
          description="Decision thresholds on P(是) for Path B's judge (the chosen S_D) and Path A's judge and "
          "reflect stages, fitted on the calibration split of the human labels (never the evaluation split): "
          "the threshold that best reproduces the human labels. Each is an event with its set and snapshot.")
def judge_calibration(context: dg.AssetExecutionContext, config: CalibrationConfig, warehouse: WarehouseResource,
                      llm: LLMResource, embedder: EmbedderResource,
                      vectors: VectorStoreResource) -> dg.MaterializeResult:
    from assets.path_b import chosen_principles

    _, calib, _ = labelled_splits(warehouse, None, config.seed)
    calib = principles.balanced_head(calib, config.max_items)
    if not calib:
        raise dg.Failure("no human labels to calibrate on: materialize human_labels")
    snap = warehouse.get().current_snapshot()
    judge_rt = judge_runtime(context, warehouse, llm, config.use_judge_model)
    pid, s_d = chosen_principles(warehouse, None)
    pairs = [(e.prompt, e.response) for e in calib]
    rows = [calibration_row("path_b/judge", judge_rt.model_id, principles.PROMPT_VERSION, pid, calib,
                            principles.probabilities(principles.detect(judge_rt, pairs, s_d, tag="calibrate")), snap)]
    if config.path_a:
        items = path_a_items(warehouse, embedder, vectors, calib, config.k_search, config.k_final)
        agents_rt = llm.runtime(context)
        pos, neg = labeler.debate_points(agents_rt, items)
        scores = labeler.score(judge_rt, items, pos, neg)
        rows.append(calibration_row("path_a/judge", judge_rt.model_id, path_a_judge.PROMPT_VERSION, None, calib,
                                    [s.judge for s in scores], snap))
        rows.append(calibration_row("path_a/reflect", judge_rt.model_id, path_a_judge.REFLECT_VERSION, None, calib,
                                    [s.final for s in scores], snap))
    table = "\n".join(f"| {r.evaluator} | {r.n} | {r.threshold:.4f} | {r.accuracy} | {r.auc} | {r.positive_rate} | "
                      f"{r.human_positive_rate} |" for r in rows)
    return warehouse.record(context, rows, main_table="calibrations", metadata={
        "judge_model": judge_rt.model_id, "items": len(calib),
        "calibrations": dg.MetadataValue.md("| evaluator | n | threshold | accuracy | AUC | positive rate | human rate |"
                                            "\n|---|---|---|---|---|---|---|\n" + table),
        **judge_rt.stats.as_metadata()})
