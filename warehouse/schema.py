"""Row schemas of every event table, and the DuckDB DDL derived from them.

Each table row is ``id`` + ``key`` + the event's own fields + provenance:

* ``key`` — hash of the entity the event is about (``KEY_FIELDS``). Corrections share the key
  of what they correct; ``<table>_latest`` views keep the newest row per key.
* ``id``  — hash of the whole content. Appending an event whose id is stored is a no-op, so
  re-running an asset never duplicates rows.
* provenance — run, asset, partition, code version and time of the write, filled by the writer.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Sequence
from typing import Any, ClassVar, Union

from pydantic import BaseModel, ConfigDict, Field

from warehouse.ids import content_id


class Provenance(BaseModel):
    run_id: str
    asset_key: str
    partition_key: str | None = None
    code_version: str | None = None
    created_at: dt.datetime


class Event(BaseModel):
    """Base of every table row. Subclasses set ``TABLE`` and ``KEY_FIELDS``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    TABLE: ClassVar[str]
    KEY_FIELDS: ClassVar[tuple[str, ...]]
    # Fields that make an event distinct; empty = all fields. Prompts, for example, are the
    # same event whichever file they came from.
    ID_FIELDS: ClassVar[tuple[str, ...]] = ()

    def event_key(self) -> str:
        return content_id(self.TABLE, *[getattr(self, f) for f in self.KEY_FIELDS])

    def event_id(self, dump: dict[str, Any] | None = None) -> str:
        """``dump``: this event's ``model_dump(mode="json")`` when the caller has it already."""
        if self.ID_FIELDS:
            return content_id(self.TABLE, "id", *[getattr(self, f) for f in self.ID_FIELDS])
        return content_id(self.TABLE, self.model_dump(mode="json") if dump is None else dump)

    def row(self, prov: Provenance | dict[str, Any]) -> dict[str, Any]:
        """The table row: id, key, the event's fields and ``prov`` (or its ``model_dump()``, made once per commit).
        The fields are dumped once and hashed from that dump — the same id as ``event_id()``."""
        data = self.model_dump(mode="json")
        prov_row = prov.model_dump() if isinstance(prov, Provenance) else prov
        return {"id": self.event_id(data), "key": self.event_key(), **data, **prov_row}


# ---------------------------------------------------------------- ingestion


class PromptRow(Event):
    TABLE: ClassVar[str] = "prompts"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("text",)
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("text",)
    text: str
    source: str = Field(description="builtin | igniting-queries | igniting-grpo | inbox:<file> …")
    source_ref: str = Field(description="file:line (or row) the prompt came from")
    batch: str = Field(description="the prompt batch (Dagster partition)")
    meta: dict[str, Any] = Field(default_factory=dict)
    # Not an id field: the same request text is one prompt whatever its scenario; rows written before
    # migration 14 have NULL here, read as "greeting" (``coalesce(scenario, 'greeting')``).
    scenario: str = Field(default="greeting", description="writing task: greeting (祝福语) | couplet (对联) | poem (短诗) …")


class PromptMembershipRow(Event):
    """A prompt belongs to a batch. ``prompts`` keeps one row per text — its ``batch`` is the batch
    that first brought it — so a batch that repeats a known prompt is recorded here, one row per
    (prompt, batch). The ``batch_prompts`` view is every batch's prompts."""

    TABLE: ClassVar[str] = "prompt_memberships"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("prompt_id", "batch")
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("prompt_id", "batch")
    prompt_id: str = Field(description="prompts.id")
    batch: str = Field(description="the prompt batch (Dagster partition) that contains it")
    source_ref: str = Field(description="file:line (or row) of the prompt in that batch")


class SeedSftRow(Event):
    TABLE: ClassVar[str] = "seed_sft_examples"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("prompt", "response")
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("prompt", "response")
    prompt: str
    response: str
    source: str
    source_ref: str


class SeedPairRow(Event):
    TABLE: ClassVar[str] = "seed_preference_pairs"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("prompt", "chosen", "rejected")
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("prompt", "chosen", "rejected")
    prompt: str
    chosen: str
    rejected: str
    source: str
    source_ref: str


class HumanLabelRow(Event):
    TABLE: ClassVar[str] = "human_labels"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("prompt", "response")
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("prompt", "response", "label")
    prompt: str
    response: str
    label: int = Field(ge=0, le=1)
    source: str
    source_ref: str
    note: str | None = None


class QuarantineRow(Event):
    TABLE: ClassVar[str] = "quarantine"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("source_file", "location", "reason")
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("source_file", "location", "reason", "item")
    source_file: str
    location: str = Field(description="line N / row N / item N")
    reason: str
    item: str = Field(description="the offending input, truncated")
    target_table: str


# ---------------------------------------------------------------- LLM runtime


class LLMCallRow(Event):
    TABLE: ClassVar[str] = "llm_calls"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("request_key",)
    request_key: str = Field(description="hash of backend, model, messages, sampling params, schema")
    backend: str
    model: str
    request: dict[str, Any]
    response: str | None = None
    parsed: dict[str, Any] | None = None
    status: str = Field(description="ok | failed")
    error: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: float | None = None


# ---------------------------------------------------------------- Path A


class CandidateRow(Event):
    TABLE: ClassVar[str] = "candidates"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("prompt_id", "policy_model", "sample_index", "seed")
    prompt_id: str
    text: str
    policy_model: str
    prompt_version: str
    sample_index: int
    temperature: float
    seed: int = Field(description="the run's seed + sample_index; the request was sampled with "
                      "resources.llm.types.request_seed(seed, prompt_id), so no two prompts share sampling noise")
    llm_call_id: str | None = None


class RetrievalRow(Event):
    TABLE: ClassVar[str] = "retrievals"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("prompt_id", "index_version")
    prompt_id: str
    exemplar_ids: list[str]
    exemplar_texts: list[str]
    scores: list[float]
    k_search: int
    k_final: int
    index_version: str


class DebateArgumentRow(Event):
    TABLE: ClassVar[str] = "debate_arguments"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("candidate_id", "side", "agent_version")
    candidate_id: str
    side: str = Field(description="positive | negative")
    points: list[dict[str, Any]] = Field(description="[{dimension, point, evidence}]")
    status: str = Field(description="ok | invalid | error (then points is empty and error says why)")
    error: str | None = None
    agent_version: str
    llm_call_id: str | None = None


class VerdictRow(Event):
    TABLE: ClassVar[str] = "verdicts"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("candidate_id", "stage")
    candidate_id: str
    stage: str = Field(description="judge | reflect")
    label: int | None = Field(default=None, description="0/1; NULL when the model output failed to parse")
    reason: str
    changed: bool | None = None
    agent_version: str
    llm_call_id: str | None = None
    score: float | None = Field(default=None, description="the judging model's P(是) (label = score >= threshold)")
    threshold: float | None = None
    calibration_id: str | None = Field(default=None, description="calibrations.id of the threshold")


class PreferencePairRow(Event):
    TABLE: ClassVar[str] = "preference_pairs"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("prompt_id", "chosen_candidate_id", "rejected_candidate_id")
    prompt_id: str
    chosen_candidate_id: str
    rejected_candidate_id: str
    chosen: str
    rejected: str
    pairing_policy: str
    evidence_ids: list[str]
    policy_model: str | None = Field(default=None, description="the policy that wrote both candidates")


# ---------------------------------------------------------------- Path B


class JudgePrincipleRow(Event):
    TABLE: ClassVar[str] = "judge_principles"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("loop_id", "iteration")
    loop_id: str
    iteration: int
    s_g: list[str] = Field(description="bad-writing strategies for the Generator (≤ 10)")
    s_d: list[str] = Field(description="evaluation principles for the Detector (≤ 10)")
    suggestions: list[dict[str, Any]]
    heldout_accuracy: float | None = None
    detector_errors: int = 0
    model: str
    prompt_version: str
    heldout_auc: float | None = None
    threshold: float | None = Field(default=None, description="the Detector's P(是) threshold this iteration")
    judge_model: str | None = Field(default=None, description="the judge that scored this iteration")


class JudgeScoreRow(Event):
    TABLE: ClassVar[str] = "judge_scores"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("candidate_id", "principles_id")
    candidate_id: str
    principles_id: str
    label: int | None = None
    score: float | None = Field(default=None, description="the judge's P(是) (label = score >= threshold)")
    reason: str
    llm_call_id: str | None = None
    threshold: float | None = None
    calibration_id: str | None = None
    judge_model: str | None = None


class CalibrationRow(Event):
    """A judge's decision threshold on P(是), fitted to human labels that are not evaluation data."""

    TABLE: ClassVar[str] = "calibrations"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("evaluator", "model", "prompt_version", "principles_id",
                                             "calibration_set")
    evaluator: str = Field(description="path_a/judge | path_a/reflect | path_b/judge")
    model: str
    prompt_version: str
    principles_id: str | None = None
    calibration_set: str = Field(description="hash of the human-label ids it was fitted on")
    source: str = Field(description="which labels: builtin | igniting-eval-dev … and the split")
    snapshot: int = Field(description="warehouse snapshot the labels were read at")
    n: int
    threshold: float
    accuracy: float
    auc: float | None = None
    positive_rate: float
    human_positive_rate: float


class AdversarialExampleRow(Event):
    """A greeting the Generator wrote to be subtly bad, and whether it fooled the judge: those that
    did are labelled negatives in the next judge's training data (adversarial training)."""

    TABLE: ClassVar[str] = "adversarial_examples"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("loop_id", "iteration", "prompt", "greeting")
    loop_id: str
    iteration: int
    prompt: str
    greeting: str
    flaws: str
    detector_model: str
    score: float | None = None
    threshold: float | None = None
    fooled: bool


# ---------------------------------------------------------------- Writer-R1 / MRPO


class ScenarioExampleRow(Event):
    """A labelled response of a non-greeting scenario (the built-in sample, written by this project).
    Greetings keep their labels in ``human_labels``; these stay out of the greeting judges' data."""

    TABLE: ClassVar[str] = "scenario_examples"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("scenario", "prompt", "response")
    scenario: str
    prompt: str
    response: str
    label: int = Field(ge=0, le=1, description="1 = good, 0 = flawed")
    note: str | None = None
    source: str
    source_ref: str


class OpenCodeRow(Event):
    """Open coding: one concept an agent extracted from one contrasted sample (better vs worse), with
    the quoted evidence; or, with ``status`` != ok, the agent answer that yielded no usable concept."""

    TABLE: ClassVar[str] = "gt_open_codes"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("workflow_id", "sample_id", "concept_index")
    scenario: str
    workflow_id: str = Field(description="hash of the workflow's inputs and settings (one per scenario and run set-up)")
    batch_index: int = Field(description="the open-coding batch (saturation curve step)")
    sample_id: str = Field(description="hash of (prompt, better, worse)")
    concept_index: int
    concept: str
    evidence: str = Field(description="quoted from the better (or worse) text")
    evidence_side: str | None = Field(default=None, description="better | worse | NULL when the quote is in neither")
    is_new: bool = Field(description="not a near-duplicate of an earlier concept of this workflow")
    status: str = Field(description="ok | rejected (parsed, failed a content check) | invalid | error")
    error: str | None = None
    model: str
    agent_version: str
    llm_call_id: str | None = None
    source: str = Field(default="agent", description="agent | note (a phrase of the sample's human memo: the "
                        "fallback when the agent's answer gave no usable concept)")


class AxialGroupRow(Event):
    """Axial coding: a group of concepts (embedding clusters in LanceDB) named as one dimension."""

    TABLE: ClassVar[str] = "gt_axial_groups"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("workflow_id", "group_index")
    scenario: str
    workflow_id: str
    group_index: int
    dimension: str
    description: str
    concepts: list[str]
    concept_ids: list[str] = Field(description="gt_open_codes.id")
    support: int = Field(description="contrasted samples whose concepts fall in the group")
    source: str = Field(description="agent | fallback (the group's most central concept, when naming failed)")
    error: str | None = None
    model: str
    agent_version: str
    embedder: str
    index_version: int | None = Field(default=None, description="Lance version of the clustered concept table")
    llm_call_id: str | None = None


class SaturationRow(Event):
    """One point of the saturation curve: after open-coding batch N, how many concepts were new."""

    TABLE: ClassVar[str] = "gt_saturation"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("workflow_id", "batch_index")
    scenario: str
    workflow_id: str
    batch_index: int
    samples: int
    concepts: int = Field(description="usable concepts this batch")
    new_concepts: int
    total_concepts: int = Field(description="distinct concepts so far")
    saturated: bool
    stop_reason: str | None = Field(default=None, description="on the last batch: saturated | max_batches | no_samples")


class CriterionRow(Event):
    """Selective coding: one criterion of a scenario's dimension → criterion hierarchy.

    A version is a row set; ``criteria_latest WHERE active`` is the current set: a new version writes
    its criteria and retires (``active`` false, weight 0) every current criterion it does not keep."""

    TABLE: ClassVar[str] = "criteria"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("task_type", "dimension", "criterion")
    task_type: str = Field(description="the scenario")
    dimension: str
    criterion: str
    weight: float = Field(description="within the scenario; the active weights sum to 1")
    parent: str | None = Field(default=None, description="the dimension's axial group (gt_axial_groups.id)")
    evidence: list[str] = Field(default_factory=list)
    version: str | None = None
    workflow_id: str | None = None
    description: str | None = None
    rubric: list[str] | None = Field(default=None, description="what scores 1, 2, 3, 4, 5 look like")
    dimension_weight: float | None = None
    source: str | None = Field(default=None, description="agent | fallback (built from the coded concepts)")
    active: bool | None = None
    supersedes: str | None = Field(default=None, description="the version that was current before this one")
    concepts: list[str] | None = None
    model: str | None = None
    agent_version: str | None = None
    error: str | None = None
    llm_call_id: str | None = None


class CriteriaScoreRow(Event):
    """A response scored against one criterion: P(是) for "meets the rubric's level 4 or better"."""

    TABLE: ClassVar[str] = "criteria_scores"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("criterion_id", "response_id", "model", "prompt_version")
    scenario: str
    criteria_version: str
    criterion_id: str = Field(description="criteria.id")
    criterion: str
    response_id: str = Field(description="hash of (prompt, response)")
    prompt: str
    response: str
    score: float | None = None
    weight: float
    status: str
    error: str | None = None
    model: str
    prompt_version: str
    llm_call_id: str | None = None


class CriteriaTotalRow(Event):
    """The weighted criteria total of a response (sum of weight × score over the scored criteria,
    divided by their weight): the Writer-R1 reward."""

    TABLE: ClassVar[str] = "criteria_totals"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("criteria_version", "response_id", "model", "prompt_version")
    scenario: str
    criteria_version: str
    response_id: str
    prompt: str
    response: str
    total: float | None = None
    per_criterion: dict[str, Any] = Field(description="criterion -> score")
    scored: int
    criteria: int
    label: int | None = Field(default=None, description="the human label, when the response has one")
    label_source: str | None = None
    model: str
    prompt_version: str


class ReflectionRow(Event):
    """MRPO inference mode: one reflection round of one chain (a prompt and its current draft) —
    the draft's criteria scores, the critique, the revision and its scores. A revision that scores
    higher is the next round's draft (``accepted``); the draft itself is never overwritten."""

    TABLE: ClassVar[str] = "reflections"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("chain_id", "round")
    chain_id: str = Field(description="hash of (scenario, prompt, first draft, writer, judge, criteria version, settings)")
    round: int = Field(ge=1)
    scenario: str
    prompt: str
    draft: str
    draft_id: str = Field(description="hash of (prompt, draft)")
    draft_total: float | None = None
    draft_scores: dict[str, Any] = Field(description="criterion -> P(是)")
    weakest: list[str] = Field(description="the criteria the critique addresses (lowest P(是))")
    critique: str
    critique_source: str = Field(description="agent | scores (the writer's critique was unusable: the weak "
                                 "criteria and their level-5 rubric)")
    critique_error: str | None = None
    revision: str | None = None
    revision_id: str | None = None
    revision_status: str = Field(description="ok | invalid (unusable text, reason in revision_error) | error")
    revision_error: str | None = None
    revision_total: float | None = None
    revision_scores: dict[str, Any] | None = None
    gain: float | None = Field(default=None, description="revision_total - draft_total")
    accepted: bool
    memory_ids: list[str] = Field(default_factory=list, description="remembered lessons shown to the writer")
    memory_version: int | None = Field(default=None, description="the LanceDB memory table's version searched")
    criteria_version: str
    writer_model: str = Field(description="drafts and revises (the policy: the newest SFT model by default)")
    critic_model: str = Field(description="writes the critiques (the llm resource's model)")
    judge_model: str
    agent_version: str
    llm_call_ids: list[str] = Field(default_factory=list)
    accept_by: str | None = Field(default="criteria", description="what had to rise for the revision to be accepted: "
                                  "criteria (the total) | overall (the judge's P(是) with all criteria in one prompt) "
                                  "| both | reward (a reward model's length-neutral score); NULL in rows from before "
                                  "migration 18 (criteria)")
    draft_overall: float | None = Field(default=None, description="the judge's P(是) for the draft, all criteria at once")
    revision_overall: float | None = None
    revisions_sampled: int | None = Field(default=None, description="revisions sampled this round; `revision` is the "
                                          "best by the acceptance score (NULL in rows from before migration 21: one)")
    draft_reward: float | None = Field(default=None, description="accept_by = reward: the reward model's score of the "
                                       "draft less the round's within-chain length trend (agents/reflection.py)")
    revision_reward: float | None = None
    reward_model: str | None = Field(default=None, description="accept_by = reward: the reward model's id")


# ---------------------------------------------------------------- training and bookkeeping


class ModelRow(Event):
    TABLE: ClassVar[str] = "models"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("model_id",)
    model_id: str
    kind: str = Field(description="sft | reward | grpo | mrpo | converted")
    base: str
    hyperparams: dict[str, Any]
    input_snapshots: dict[str, Any] = Field(description="table -> warehouse snapshot id it was trained on")
    metrics: dict[str, Any]
    artifact_path: str


class MaterializationRow(Event):
    """One row per asset materialization, so every materialization is one DuckLake snapshot.

    Run, asset and partition are in the provenance columns; ``write_token`` makes each row new.
    """

    TABLE: ClassVar[str] = "materializations"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("write_token",)
    write_token: str
    rows_added: dict[str, int]


class VectorIndexRow(Event):
    """A LanceDB table version written by a run, recorded beside that run's warehouse snapshot."""

    TABLE: ClassVar[str] = "vector_indexes"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("index_name",)
    index_name: str
    lance_version: int
    uri: str
    embedder: str
    rows: int


class AgreementRow(Event):
    """How well an automatic labeller agrees with human labels, beside the length baseline."""

    TABLE: ClassVar[str] = "agreement_metrics"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("evaluator", "variant", "subset", "eval_set")
    evaluator: str = Field(description="path_a | path_b")
    variant: str = Field(description="judge | reflect | no_positive | … | iteration-N")
    subset: str = Field(description="all | band_30_49")
    eval_set: str = Field(description="hash of the evaluated human-label ids")
    model: str
    n: int
    parse_failures: int
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    kappa: float | None = None
    spearman: float | None = None
    positive_rate: float | None = None
    length_accuracy: float | None = None
    length_kappa: float | None = None
    length_auc: float | None = None
    auc: float | None = Field(default=None, description="of the labeller's continuous score (P(是))")


class PolicyEvaluationRow(Event):
    """A policy's greetings for held-out prompts, scored by the reward model and the judge."""

    TABLE: ClassVar[str] = "policy_evaluations"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("model_id", "eval_set", "reward_model_id", "principles_id")
    model_id: str = Field(description="models.model_id, or the base model's name")
    model_kind: str = Field(description="base | sft | grpo(<reward>) | mrpo(<reward>)")
    eval_set: str = Field(description="hash of the held-out prompt ids")
    reward_model_id: str | None = None
    principles_id: str | None = None
    n: int
    reward_mean: float | None = None
    rm_excellence_rate: float | None = Field(default=None, description="share above the RM's labelled-set threshold")
    judge_excellence_rate: float | None = None
    judge_parse_failures: int = 0
    mean_chars: float
    distinct_1: float | None = None
    distinct_2: float | None = None
    self_bleu: float | None = None
    samples: list[str]
    reward_se: float | None = None
    judge_score_mean: float | None = Field(default=None, description="mean P(是) of the judge model")
    judge_score_se: float | None = None
    evaluator_model_id: str | None = Field(default=None, description="the independent reward model")
    evaluator_mean: float | None = None
    evaluator_se: float | None = None
    evaluator_gain_vs_sft: float | None = None
    evaluator_gain_vs_sft_se: float | None = None
    length_explained_gain: float | None = Field(default=None, description="of the evaluator gain, what length explains")
    win_rate_vs_sft: float | None = Field(default=None, description="pairwise, judge in both orders")
    win_rate_ci: list[float] | None = None
    win_rate_len_matched: float | None = None
    repeat_rate: float | None = Field(default=None, description="outputs with a repeated phrase of >= 4 chars")


class PromotionRow(Event):
    """Whether a newly trained model replaced the one used downstream, with the figures compared.

    ``registry.latest_model`` serves the newest promoted model; a model with no row here (an older
    warehouse) counts as promoted. A correction (promote by hand) is a new row with the same key."""

    TABLE: ClassVar[str] = "promotions"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("model_id",)
    model_id: str
    kind: str
    promoted: bool
    reason: str
    metric: str | None = Field(default=None, description="e.g. eval_labels.auc; NULL when none was compared")
    candidate: float | None = None
    incumbent: float | None = None
    baseline: float | None = Field(default=None, description="the length baseline on the same evaluation")
    incumbent_id: str | None = Field(default=None, description="the promoted model it was compared with")


EVENT_MODELS: tuple[type[Event], ...] = (
    PromptRow,
    PromptMembershipRow,
    SeedSftRow,
    SeedPairRow,
    HumanLabelRow,
    QuarantineRow,
    LLMCallRow,
    CandidateRow,
    RetrievalRow,
    DebateArgumentRow,
    VerdictRow,
    PreferencePairRow,
    JudgePrincipleRow,
    JudgeScoreRow,
    CriterionRow,
    ModelRow,
    MaterializationRow,
    VectorIndexRow,
    AgreementRow,
    PolicyEvaluationRow,
    PromotionRow,
    CalibrationRow,
    AdversarialExampleRow,
    ScenarioExampleRow,
    OpenCodeRow,
    AxialGroupRow,
    SaturationRow,
    CriteriaScoreRow,
    CriteriaTotalRow,
    ReflectionRow,
)
MODELS_BY_TABLE: dict[str, type[Event]] = {m.TABLE: m for m in EVENT_MODELS}


# ---------------------------------------------------------------- DDL


def _duck_type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _duck_type(args[0])
    if origin is list:
        (inner,) = typing.get_args(annotation)
        return "JSON" if typing.get_origin(inner) is dict or inner is dict else f"{_duck_type(inner)}[]"
    if origin is dict or annotation is dict or annotation is Any:
        return "JSON"
    return {
        str: "VARCHAR",
        int: "BIGINT",
        float: "DOUBLE",
        bool: "BOOLEAN",
        dt.datetime: "TIMESTAMP WITH TIME ZONE",
    }[annotation]


def table_columns(model: type[Event]) -> list[tuple[str, str]]:
    """(name, DuckDB type) of every column of ``model``'s table, in order."""
    cols = [("id", "VARCHAR"), ("key", "VARCHAR")]
    cols += [(n, _duck_type(f.annotation)) for n, f in model.model_fields.items()]
    cols += [(n, _duck_type(f.annotation)) for n, f in Provenance.model_fields.items()]
    return cols


def create_table_sql(model: type[Event]) -> str:
    cols = ",\n  ".join(f"{name} {typ}" for name, typ in table_columns(model))
    return f"CREATE TABLE IF NOT EXISTS {model.TABLE} (\n  {cols}\n)"


# "Newest row per key": the latest created_at; between rows of one commit, the smallest id.
NEWEST_PER_KEY = "QUALIFY row_number() OVER (PARTITION BY key ORDER BY created_at DESC, id) = 1"


def latest_view_sql(model: type[Event]) -> str:
    """The ``_latest`` view that recomputes the newest row per key on every read (migrations 2–12)."""
    return f"CREATE OR REPLACE VIEW {model.TABLE}_latest AS SELECT * FROM {model.TABLE} {NEWEST_PER_KEY}"


def projection_table(table: str) -> str:
    """The current-state projection of ``table``: its newest row per key, kept up to date by every
    commit in the same snapshot (``warehouse.store``), so it is right at every snapshot too."""
    return f"{table}_current"


# A projection's key as two integers (keys are 24-hex-digit content hashes, ``Event.event_key``): ``key_hash`` the
# first 15 digits, ``key_lo`` the other 9 — together the whole key. A commit finds the rows a batch supersedes by
# reading these narrow columns and the timestamp only, never the projection's key or id strings (issue 15).
def hex_digits_sql(column: str, start: int) -> str:
    """15 hex digits of ``column`` from position ``start`` (1-based) as a BIGINT (60 bits: never negative)."""
    return f"CAST(('0x' || substr({column}, {start}, 15)) AS BIGINT)"


KEY_HASH = "key_hash"
KEY_HASH_SQL = hex_digits_sql("key", 1)
KEY_LO = "key_lo"
KEY_LO_SQL = hex_digits_sql("key", 16)
KEY_DIGITS = 24  # the length of keys and ids (content_id), for which the two integers are the string itself
PROJECTION_INTERNAL = (KEY_HASH, KEY_LO)


# Every raw table's event ids as two integers (ids are 24-hex-digit content hashes, ``Event.event_id``), kept beside
# it in ``<table>_ids`` by every commit: a commit drops events already stored by an anti-join over these narrow
# columns instead of over every id string of the table (issue 15, the largest O(rows) term of a commit at 2 M rows).
ID_HASH, ID_LO = "id_hash", "id_lo"
ID_HASH_SQL = hex_digits_sql("id", 1)
ID_LO_SQL = hex_digits_sql("id", 16)


def id_index_table(table: str) -> str:
    return f"{table}_ids"


def id_index_sql(model: type[Event]) -> str:
    """``<table>_ids`` built from the table's rows (migration 20; a table created later starts empty with it)."""
    return (f"CREATE TABLE IF NOT EXISTS {id_index_table(model.TABLE)} AS "
            f"SELECT {ID_HASH_SQL} AS {ID_HASH}, {ID_LO_SQL} AS {ID_LO} FROM {model.TABLE}")


def superseded_table(table: str) -> str:
    """The row ids of ``<table>_current`` that a later row of their key has replaced (migration 22): a commit
    appends here instead of deleting from the projection, ``<table>_latest`` leaves them out, and the
    maintenance job deletes them from the projection and empties this table (``warehouse.maintenance``).
    A DELETE by row id opened every file of the projection — DuckLake does not prune by row id — and grew
    with the table on every commit that corrected something (bench/RESULTS.md, issue 15)."""
    return f"{table}_superseded"


def superseded_sql(table: str) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {superseded_table(table)} "
            f"(rid BIGINT, {KEY_HASH} BIGINT, {KEY_LO} BIGINT)")


def live_projection_sql(table: str, alias: str = "p", at: str = "") -> str:
    """``FROM`` clause of the projection's live rows (those no later row superseded), optionally ``AT (…)``."""
    return (f"{projection_table(table)} AS {alias} {at} ANTI JOIN {superseded_table(table)} AS _s {at} "
            f"ON {alias}.rowid = _s.rid")


def projection_view_sql(table: str, internal: Sequence[str] = PROJECTION_INTERNAL, superseded: bool = True) -> str:
    """``<table>_latest`` over its projection: the projection's live rows (without those in ``<table>_superseded``,
    where it exists) without its ``internal`` columns (those it has: a projection built before migration 17 or 19
    lacks some)."""
    source = live_projection_sql(table) if superseded else f"{projection_table(table)} p"
    cols = f"p.* EXCLUDE ({', '.join(internal)})" if internal else "p.*"
    return f"CREATE OR REPLACE VIEW {table}_latest AS SELECT {cols} FROM {source}"


def projection_sql(model: type[Event]) -> list[str]:
    """Build ``model``'s projection from its table and point ``<table>_latest`` at it (migration 13; the key's
    integer columns since migrations 17 and 19, which add them to projections built before; the superseded rows'
    table since migration 22)."""
    t, proj = model.TABLE, projection_table(model.TABLE)
    return [f"CREATE OR REPLACE TABLE {proj} AS SELECT *, {KEY_HASH_SQL} AS {KEY_HASH}, {KEY_LO_SQL} AS {KEY_LO} "
            f"FROM {t} {NEWEST_PER_KEY}",
            superseded_sql(t),
            projection_view_sql(t)]
