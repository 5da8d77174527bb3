"""Grounded-Theory criteria workflow (Writer-R1): open → axial → selective coding, with saturation.

* open coding — an agent reads a contrasted sample (one request, a better and a worse response)
  and names up to 3 concepts: why the better one is better, each with a quote as evidence;
  batches of samples run until a batch adds no new concept (saturation) or the budget ends;
* axial coding — concepts are embedded, stored in LanceDB and linked to neighbours above a
  similarity threshold (connected components, at most ``max_dimensions``); an agent names each
  group as a dimension, and groups it gives the same name are merged;
* selective coding — per dimension an agent writes criteria: a name, a description and what
  scores 1, 3 and 5 look like (2 and 4 are stated as "between" those: fewer tokens for small models).

Weights are not asked of the model: a dimension weighs its share of the contrasted samples whose
concepts fall in it (how often the contrast turned on it), split evenly over its criteria.

Small models write poor content even inside valid JSON, so every answer passes content checks
(Chinese text, no degenerate repetition, no echoed instructions); what fails is returned with its
reason. When naming or criteria writing fails, a deterministic fallback builds the dimension or
criterion from the coded concepts themselves, marked ``source="fallback"``. Prompts are this
project's own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, Field

from agents.common import Runtime
from agents.scenarios import scenario_name
from agents.text_checks import clean, content_problem
from resources.llm.types import ChatRequest, ChatResult, Sampling
from warehouse.ids import content_id

AGENT_VERSION = "gt-v1"
# Greedy; the schemas' caps keep answers inside these budgets on CPU (see agents/debate.py). SmolLM2
# spends ~2-3 tokens per Chinese character inside JSON strings.
OPEN_SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=128, seed=0)
NAME_SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=80, seed=0)
SELECTIVE_SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=160, seed=0)


# ---------------------------------------------------------------- schemas


class Concept(BaseModel):
    concept: str = Field(min_length=1, max_length=10, description="较好作品胜出的原因，一个短语")
    evidence: str = Field(min_length=1, max_length=12, description="从较好作品中原样摘抄的证据")


class OpenCodes(BaseModel):
    concepts: list[Concept] = Field(min_length=1, max_length=2)


class DimensionName(BaseModel):
    dimension: str = Field(min_length=1, max_length=8, description="维度名称")
    description: str = Field(min_length=1, max_length=24, description="这个维度考察什么")


class CriterionDraft(BaseModel):
    criterion: str = Field(min_length=1, max_length=10, description="标准名称")
    description: str = Field(min_length=1, max_length=24, description="标准要求什么")
    score5: str = Field(min_length=1, max_length=16, description="5分的样子")
    score3: str = Field(min_length=1, max_length=16, description="3分的样子")
    score1: str = Field(min_length=1, max_length=16, description="1分的样子")


class SelectiveCodes(BaseModel):
    criteria: list[CriterionDraft] = Field(min_length=1, max_length=1)


# ---------------------------------------------------------------- prompts

_OPEN_SYSTEM = (
    "你在用扎根理论的“开放编码”研究中文创意写作。给你同一个写作要求下的两件作品：较好的和较差的。"
    "请找出较好的作品为什么更好，提炼成1到2个概念。每个概念是一个简短的中文短语（例如“细节具体”“对仗工整”），"
    "并从较好的作品里原样摘抄几个字作为证据。不要评价长度，不要照抄题目。用JSON回答。"
)
_AXIAL_SYSTEM = (
    "你在用扎根理论的“主轴编码”研究中文创意写作。下面是一组意思相近的概念，它们来自对优劣作品的比较。"
    "请为这一组概念起一个概括性的维度名称（2到6个字），并用一句话说明这个维度考察什么。用JSON回答。"
)
_SELECTIVE_SYSTEM = (
    "你在用扎根理论的“选择编码”为中文创意写作制定评分标准。给你一个评价维度和归入它的概念，"
    "请写出1条可以直接用来打分的标准：标准名称、要求，以及5分、3分、1分的作品分别是什么样子。"
    "标准要具体、可判断，不要以篇幅长短为标准。用JSON回答。"
)


@dataclass(frozen=True)
class Sample:
    """A contrasted sample: one request, a better and a worse response."""

    prompt: str
    better: str
    worse: str
    source: str = ""
    better_note: str | None = None  # a human's memo on why the better one is good, when the data has one

    @property
    def sample_id(self) -> str:
        return content_id("gt-sample", self.prompt, self.better, self.worse)


def _budget(sampling: Sampling, max_new_tokens: int | None) -> Sampling:
    return sampling.model_copy(update={"max_new_tokens": max_new_tokens}) if max_new_tokens else sampling


def open_requests(scenario: str, samples: Sequence[Sample], batch_index: int,
                  max_new_tokens: int | None = None) -> list[ChatRequest]:
    task = scenario_name(scenario)
    return [ChatRequest(messages=[{"role": "system", "content": _OPEN_SYSTEM}, {"role": "user", "content": (
        f"【任务类型】{task}\n【写作要求】{s.prompt}\n【较好的作品】{s.better}\n【较差的作品】{s.worse}")}],
        sampling=_budget(OPEN_SAMPLING, max_new_tokens), item=f"open-{scenario}-{batch_index}-{i}") for i, s in enumerate(samples)]


def axial_request(scenario: str, concepts: Sequence[tuple[str, str]], index: int,
                  max_new_tokens: int | None = None) -> ChatRequest:
    lines = "\n".join(f"- {c}（证据：{e}）" for c, e in concepts[:8])
    return ChatRequest(messages=[{"role": "system", "content": _AXIAL_SYSTEM}, {"role": "user", "content": (
        f"【任务类型】{scenario_name(scenario)}\n【概念】\n{lines}")}], sampling=_budget(NAME_SAMPLING, max_new_tokens),
        item=f"axial-{scenario}-{index}")


def selective_request(scenario: str, dimension: str, description: str, concepts: Sequence[str], index: int,
                      max_new_tokens: int | None = None) -> ChatRequest:
    lines = "、".join(concepts[:8])
    return ChatRequest(messages=[{"role": "system", "content": _SELECTIVE_SYSTEM}, {"role": "user", "content": (
        f"【任务类型】{scenario_name(scenario)}\n【维度】{dimension}：{description}\n【概念】{lines}")}],
        sampling=_budget(SELECTIVE_SAMPLING, max_new_tokens), item=f"selective-{scenario}-{index}")


# ---------------------------------------------------------------- content checks (agents/text_checks.py)


def evidence_side(evidence: str, sample: Sample) -> str | None:
    e = clean(evidence)
    if not e:
        return None
    if e in sample.better:
        return "better"
    if e in sample.worse:
        return "worse"
    return None


# ---------------------------------------------------------------- open coding + saturation


class _Embedder(Protocol):
    model_id: str

    def passages(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class Code:
    """One open-coding outcome: a concept (status ok) or why a sample's answer gave none. ``source``:
    agent, or note — the sample's human memo split into phrases, when the agent gave no usable concept."""

    sample: Sample
    batch_index: int
    concept_index: int
    concept: str
    evidence: str
    evidence_side: str | None
    is_new: bool
    status: str
    error: str | None
    llm_call_id: str | None
    source: str = "agent"

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class CurvePoint:
    batch_index: int
    samples: int
    concepts: int
    new_concepts: int
    total_concepts: int
    saturated: bool
    stop_reason: str | None = None


@dataclass
class OpenCoding:
    codes: list[Code] = field(default_factory=list)
    curve: list[CurvePoint] = field(default_factory=list)

    def concepts(self) -> list[Code]:
        return [c for c in self.codes if c.ok]


def parse_codes(result: ChatResult, sample: Sample, batch_index: int) -> list[Code]:
    """Concepts of one answer that pass the content checks; a failed answer or check is a Code with
    status invalid / error / rejected and the reason."""
    def failed(status: str, error: str, i: int = 0, concept: str = "", evidence: str = "") -> Code:
        return Code(sample, batch_index, i, concept, evidence, None, False, status, error, result.request_key)

    if not result.ok or not result.parsed:
        return [failed(result.status if result.status != "ok" else "invalid", result.error or "no parsed output")]
    out = []
    for i, c in enumerate(result.parsed.get("concepts") or []):
        concept, evidence = clean(str(c.get("concept", ""))), clean(str(c.get("evidence", "")))
        problem = content_problem(concept)
        if problem is None and concept in sample.prompt and len(concept) > 4:
            problem = "copies the request instead of naming a concept"
        if problem is None and (concept in sample.better or concept in sample.worse) and len(concept) > 4:
            problem = "copies a response instead of naming a concept"
        if problem is None and concept == evidence and concept in sample.better:
            problem = "the concept is only its quoted evidence, not a reason"
        if problem:
            out.append(failed("rejected", problem, i, concept, evidence))
            continue
        out.append(Code(sample, batch_index, i, concept, evidence, evidence_side(evidence, sample), False, "ok", None,
                        result.request_key))
    return out or [failed("rejected", "no concepts in the answer")]


_NOTE_SPLIT = re.compile(r"[，,、；;。（）()：:！!？?]")


def note_codes(sample: Sample, batch_index: int, start: int, max_concepts: int = 3) -> list[Code]:
    """The fallback concepts of a sample: phrases of its human memo (2–10 characters, content checks)."""
    if not sample.better_note:
        return []
    out = []
    for phrase in _NOTE_SPLIT.split(sample.better_note):
        p = clean(phrase)
        if 2 <= len(p) <= 10 and content_problem(p) is None and all(p != c.concept for c in out):
            out.append(Code(sample, batch_index, start + len(out), p, "", None, False, "ok", None, None, "note"))
        if len(out) >= max_concepts:
            break
    return out


def open_code(runtime: Runtime, embedder: _Embedder, samples: dict[str, Sequence[Sample]], *,
              batch_size: int, max_batches: int, novelty_threshold: float,
              note_fallback: bool = True, max_new_tokens: int | None = None) -> dict[str, OpenCoding]:
    """Open coding of every scenario, batch by batch (one model call per round for all scenarios),
    until a scenario's batch adds no new concept (saturated), ``max_batches`` is reached or its
    samples run out. A concept is new unless it equals, or has cosine similarity ≥
    ``novelty_threshold`` to, an earlier concept of its scenario. A sample whose answer gives no
    usable concept is coded from its memo (``note_codes``) when it has one and ``note_fallback``."""
    out = {sc: OpenCoding() for sc in samples}
    known: dict[str, tuple[set[str], list[np.ndarray]]] = {sc: (set(), []) for sc in samples}
    active = [sc for sc in samples if samples[sc]]
    for b in range(max_batches):
        batches = {sc: list(samples[sc][b * batch_size : (b + 1) * batch_size]) for sc in active}
        for sc in [sc for sc in active if not batches[sc]]:
            out[sc].curve[-1].stop_reason = "no_samples"
            active.remove(sc)
        if not active:
            break
        reqs = [(sc, s, r) for sc in active for s, r in zip(batches[sc], open_requests(sc, batches[sc], b, max_new_tokens), strict=True)]
        results = runtime.structured([r for _, _, r in reqs], OpenCodes)
        for sc in list(active):
            codes: list[Code] = []
            for (rsc, sample, _), res in zip(reqs, results, strict=True):
                if rsc != sc:
                    continue
                got = parse_codes(res, sample, b)
                codes += got
                if note_fallback and not any(c.ok for c in got):
                    codes += note_codes(sample, b, len(got))
            usable = [c for c in codes if c.ok]
            vecs = embedder.passages([c.concept for c in usable]) if usable else []
            texts, kv = known[sc]
            new = 0
            for c, v in zip(usable, vecs, strict=True):
                sim = max((float(v @ k) for k in kv), default=-1.0)
                c.is_new = c.concept not in texts and sim < novelty_threshold
                new += c.is_new
                texts.add(c.concept)
                kv.append(v)
            out[sc].codes += codes
            # a batch whose answers were all unusable says nothing about saturation: keep coding
            saturated = b > 0 and bool(usable) and new == 0
            out[sc].curve.append(CurvePoint(b, len(batches[sc]), len(usable), new,
                                            sum(x.is_new for x in out[sc].concepts()), saturated,
                                            "saturated" if saturated else None))
            if saturated:
                active.remove(sc)
    for sc, oc in out.items():
        if oc.curve and oc.curve[-1].stop_reason is None:
            more = len(samples[sc]) > len(oc.curve) * batch_size
            oc.curve[-1].stop_reason = "max_batches" if more else "no_samples"
    return out


# ---------------------------------------------------------------- axial coding


class _Store(Protocol):
    def write(self, name: str, rows: list[dict[str, Any]], vectors: np.ndarray) -> int: ...

    def search(self, name: str, vector: np.ndarray, k: int, *, version: int | None = None) -> list[dict[str, Any]]: ...

    def rows(self, name: str, columns: list[str]) -> list[dict[str, Any]] | None: ...

    def version(self, name: str) -> int | None: ...


@dataclass
class Group:
    index: int
    members: list[Code]
    dimension: str = ""
    description: str = ""
    source: str = "agent"
    error: str | None = None
    llm_call_id: str | None = None

    @property
    def support(self) -> int:
        return len({c.sample.sample_id for c in self.members})

    def central(self, vectors: dict[int, np.ndarray]) -> Code:
        """The member most similar to the others (the first on ties)."""
        if len(self.members) == 1:
            return self.members[0]
        vs = np.stack([vectors[id(c)] for c in self.members])
        sims = (vs @ vs.T).sum(axis=1)
        return self.members[int(np.argmax(sims))]


def _central_concepts(codes: Sequence[Code]) -> list[Code]:
    """Distinct concepts (first occurrence) in order."""
    seen, out = set(), []
    for c in codes:
        if c.concept not in seen:
            seen.add(c.concept)
            out.append(c)
    return out


def cluster(store: _Store, table: str, codes: Sequence[Code], vecs: np.ndarray, *, link_threshold: float,
            max_groups: int, k: int = 8) -> tuple[list[list[int]], int]:
    """Connected components of "neighbour in LanceDB with cosine similarity ≥ ``link_threshold``";
    more than ``max_groups`` components: the smallest merges into the one with the nearest centroid.
    Returns groups (indices into ``codes``, in first-member order) and the table's Lance version."""
    rows = [{"i": i, "concept": c.concept} for i, c in enumerate(codes)]
    # The same concepts as the table holds: search that version (a re-run writes no new Lance version).
    stored = store.rows(table, ["i", "concept"])
    version = store.version(table) if stored == rows else store.write(table, rows, vecs)
    parent = list(range(len(codes)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, v in enumerate(vecs):
        for hit in store.search(table, v, min(k, len(codes)), version=version):
            j = int(hit["i"])
            if j != i and 1.0 - float(hit["_distance"]) >= link_threshold:
                parent[find(j)] = find(i)
    comps: dict[int, list[int]] = {}
    for i in range(len(codes)):
        comps.setdefault(find(i), []).append(i)
    groups = sorted(comps.values(), key=lambda g: g[0])
    while len(groups) > max(1, max_groups):
        smallest = min(range(len(groups)), key=lambda g: (len(groups[g]), -groups[g][0]))
        cents = [vecs[g].mean(axis=0) for g in groups]
        target = max((g for g in range(len(groups)) if g != smallest),
                     key=lambda g: float(cents[g] @ cents[smallest]))
        groups[target] = sorted(groups[target] + groups[smallest])
        groups.pop(smallest)
    return groups, version


def name_groups(runtime: Runtime, groups: dict[str, list[Group]], vectors: dict[int, np.ndarray],
                max_new_tokens: int | None = None) -> dict[str, list[Group]]:
    """The naming agent (one batched call for every scenario's groups of two or more distinct
    concepts; a group of one concept is named by it, ``source="concept"``), then merging: groups of a
    scenario given the same name become one; a group whose answer fails a check is named after its
    most central concept (``source="fallback"``)."""
    for gs in groups.values():
        for g in gs:
            if len(_central_concepts(g.members)) == 1:
                g.dimension, g.source = g.members[0].concept, "concept"
                g.description = "单一概念：" + g.members[0].concept
    flat = [(sc, g) for sc, gs in groups.items() for g in gs if g.source != "concept"]
    reqs = [axial_request(sc, [(c.concept, c.evidence) for c in _central_concepts(g.members)], g.index,
                          max_new_tokens) for sc, g in flat]
    results = runtime.structured(reqs, DimensionName) if reqs else []
    for (_, g), r in zip(flat, results, strict=True):
        g.llm_call_id = r.request_key
        if not r.ok or not r.parsed:
            problem = r.error or "no parsed output"
        else:
            problem = content_problem(r.parsed["dimension"]) or content_problem(r.parsed["description"], min_cjk=3)
        if problem is None:
            g.dimension, g.description = clean(r.parsed["dimension"]), clean(r.parsed["description"])
        else:
            c = g.central(vectors)
            g.dimension, g.source, g.error = c.concept, "fallback", f"naming failed: {problem}"
            g.description = "归纳自概念：" + "、".join(x.concept for x in _central_concepts(g.members)[:4])
    out: dict[str, list[Group]] = {}
    for sc, gs in groups.items():
        merged: dict[str, Group] = {}
        for g in gs:
            if g.dimension in merged:
                merged[g.dimension].members += g.members
            else:
                merged[g.dimension] = g
        out[sc] = list(merged.values())
    return out


# ---------------------------------------------------------------- selective coding


@dataclass
class CriterionOut:
    dimension: Group
    name: str
    description: str
    rubric: list[str]
    weight: float
    source: str
    error: str | None
    evidence: list[str]
    concepts: list[str]
    llm_call_id: str | None


def rubric_from(score5: str, score3: str, score1: str) -> list[str]:
    return [score1, "介于1分与3分之间", score3, "介于3分与5分之间", score5]


def fallback_criterion(g: Group, vectors: dict[int, np.ndarray]) -> tuple[str, str, list[str]]:
    c = g.central(vectors)
    quote = f"，如“{c.evidence}”" if c.evidence else ""
    return (c.concept[:10], f"作品在“{g.dimension}”上做到：{c.concept}",
            rubric_from(f"充分做到“{c.concept}”{quote}", f"部分做到“{c.concept}”", f"完全没有做到“{c.concept}”"))


def selective_code(runtime: Runtime, groups: dict[str, list[Group]], vectors: dict[int, np.ndarray],
                   max_criteria: int, max_new_tokens: int | None = None) -> dict[str, list[CriterionOut]]:
    """Criteria for every scenario's dimensions (one batched call); weights from support (module doc)."""
    flat = [(sc, g) for sc, gs in groups.items() for g in gs]
    reqs = [selective_request(sc, g.dimension, g.description, [c.concept for c in _central_concepts(g.members)],
                              g.index, max_new_tokens) for sc, g in flat]
    results = runtime.structured(reqs, SelectiveCodes) if reqs else []
    totals = {sc: sum(g.support for g in gs) or 1 for sc, gs in groups.items()}
    out: dict[str, list[CriterionOut]] = {sc: [] for sc in groups}
    for (sc, g), r in zip(flat, results, strict=True):
        drafts, problems = [], []
        for d in (r.parsed or {}).get("criteria", [])[:max_criteria] if r.ok else []:
            texts = (d["criterion"], d["description"], d["score5"], d["score3"], d["score1"])
            problem = next((p for p in (content_problem(t) for t in texts) if p), None)
            if problem is None and len({clean(t) for t in texts[2:]}) < 3:
                problem = "rubric levels are not distinct"
            if problem:
                problems.append(problem)
            else:
                drafts.append(tuple(clean(t) for t in texts))
        error = None if drafts else f"criteria writing failed: {'; '.join(problems) or r.error or 'no parsed output'}"
        names: set[str] = set()
        drafts = [d for d in drafts if not (d[0] in names or names.add(d[0]))]  # drop repeated names
        evidence = [c.evidence for c in g.members if c.evidence_side == "better"][:5]
        concepts = [c.concept for c in _central_concepts(g.members)]
        dim_weight = g.support / totals[sc]
        if drafts:
            for name, desc, s5, s3, s1 in drafts:
                out[sc].append(CriterionOut(g, name, desc, rubric_from(s5, s3, s1), dim_weight / len(drafts), "agent",
                                            None, evidence, concepts, r.request_key))
        else:
            name, desc, rubric = fallback_criterion(g, vectors)
            out[sc].append(CriterionOut(g, name, desc, rubric, dim_weight, "fallback", error, evidence, concepts,
                                        r.request_key))
    return out


# ---------------------------------------------------------------- the workflow


@dataclass(frozen=True)
class WorkflowConfig:
    batch_size: int = 2
    max_batches: int = 1
    novelty_threshold: float = 0.93
    link_threshold: float = 0.9
    max_dimensions: int = 2
    max_criteria: int = 1
    note_fallback: bool = True
    # generation budgets (tokens); None = the agents' defaults (128 / 80 / 160)
    open_tokens: int | None = None
    name_tokens: int | None = None
    selective_tokens: int | None = None


@dataclass
class Workflow:
    scenario: str
    coding: OpenCoding
    groups: list[Group]
    criteria: list[CriterionOut]
    index_version: int | None


def run_all(runtime: Runtime, embedder: _Embedder, store: _Store, samples: dict[str, Sequence[Sample]],
            config: WorkflowConfig, *, table: Callable[[str], str]) -> dict[str, Workflow]:
    """The whole workflow for every scenario, each stage one batched model call for all of them.
    Deterministic given its inputs (greedy agents, cached calls): a re-run is answered from the call log."""
    coding = open_code(runtime, embedder, samples, batch_size=config.batch_size, max_batches=config.max_batches,
                       novelty_threshold=config.novelty_threshold, note_fallback=config.note_fallback,
                       max_new_tokens=config.open_tokens)
    out: dict[str, Workflow] = {}
    vectors: dict[int, np.ndarray] = {}
    for sc, oc in coding.items():
        concepts = oc.concepts()
        out[sc] = Workflow(sc, oc, [], [], None)
        if not concepts:
            continue
        vecs = embedder.passages([c.concept for c in concepts])
        vectors.update({id(c): v for c, v in zip(concepts, vecs, strict=True)})
        idx, out[sc].index_version = cluster(store, table(sc), concepts, vecs, link_threshold=config.link_threshold,
                                             max_groups=config.max_dimensions)
        out[sc].groups = [Group(i, [concepts[j] for j in g]) for i, g in enumerate(idx)]
    named = name_groups(runtime, {sc: w.groups for sc, w in out.items() if w.groups}, vectors, config.name_tokens)
    for sc, groups in named.items():
        out[sc].groups = groups
    for sc, crits in selective_code(runtime, named, vectors, config.max_criteria, config.selective_tokens).items():
        out[sc].criteria = crits
    return out
