"""Path B: the adversarially optimized, principle-guided judge.

Four agents around two rule sets:
  * S_G — bad-writing strategies: how to write a greeting that looks fine but is subtly flawed;
  * S_D — evaluation principles: what the Detector checks to tell good greetings from bad.

One iteration: the Generator plants flaws (following S_G) in greetings for sampled requests; the
Detector — the shared 是/否 judge (``agents.judging``) reading S_D — scores those and real labelled
examples, its threshold calibrated on the training split's human labels; for planted flaws it
caught, an agent suggests how S_G could hide them better; the Reflector explains each Detector
error against the ground truth and suggests a change to S_D; the Optimizer turns each set's
suggestions into one edit of it — adopt suggestion j as a new rule or in place of rule k (in its own
words or the Reflector's), or keep the set (at most ``MAX_RULES`` rules). An edit rather than a
rewrite: a whole rule set in Chinese did not fit the Optimizer's answer budget on the embedded model
(every rewrite was cut off, so S_D never changed), and an edit keeps what was not criticised. S_D
changes only when the Detector erred. Planted
greetings that fooled the Detector are returned as adversarial negatives (the caller may train the
next judge on them and hand back its runtime). The run keeps every iteration; the judge uses the
S_D with the best held-out AUC, not simply the last one.

The initial strategies below are this project's own writing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from pydantic import BaseModel, Field

from agents import judging
from agents.common import Runtime
from resources.llm.types import ChatRequest, ChatResult, Sampling
from training.metrics import auc
from warehouse.ids import content_id

PROMPT_VERSION = f"principles-v2-{judging.PROMPT_VERSION}"
MAX_RULES = 10

INITIAL_S_G = [
    "把几句常见套话（万事如意、心想事成、身体健康）堆在一起，看上去喜庆但没有任何针对性。",
    "忽略用户给出的具体细节（名字、年龄、经历），写成对谁都适用的通用祝福。",
    "语气与对象错位：给长辈或领导写得过于随意，给朋友写得像公文。",
    "悄悄夹带一句请求或推销，让祝福变得有目的。",
    "使用看似文雅但含义不吉利或有歧义的词语、谐音。",
    "篇幅不符合要求：要简短时写成长段，要长文时一句带过。",
]
INITIAL_S_D = [
    "祝福是否紧扣用户需求中的场合、对象和细节，而不是放之四海皆准的套话。",
    "语言是否自然流畅，有没有错别字、病句或生硬拼接。",
    "情感是否真诚、分寸是否得当，语气是否与双方关系相称。",
    "是否有新意：具体的画面、比喻或细节，而不是成语堆砌。",
    "是否触犯文化禁忌（不吉利的字词或谐音），是否夹带请求、推销或负面内容。",
    "长度和风格是否符合用户的要求。",
    "判断时不要因为篇幅长就给高分：长而空泛同样不合格。",
]


class FlawedGreeting(BaseModel):
    greeting: str = Field(min_length=1, max_length=80)
    flaws: str = Field(min_length=1, max_length=40, description="埋下了什么缺陷")


class Reflection(BaseModel):
    analysis: str = Field(min_length=1, max_length=60, description="检测员为什么判错")
    suggestion: str = Field(min_length=1, max_length=40, description="对评价原则的修改建议")


class RuleEdit(BaseModel):
    action: Literal["add", "replace", "keep"] = Field(description="新增一条、替换一条，或保持不变")
    suggestion: int = Field(default=1, description="采纳第几条修改建议（从 1 开始）")
    index: int | None = Field(default=None, description="replace 时要替换的规则编号（从 1 开始）")
    rule: str = Field(default="", max_length=60, description="把采纳的建议改写成的新规则，一句话；可留空")


_SCHEMA_WORDS = ("action", "index", "suggestion", "rule", "add", "replace", "keep")


def _usable(rule: str) -> bool:
    """A rule worth keeping: a Chinese sentence, not an echo of the answer format (the embedded 135M model,
    asked to write the rule, often copies "action 为 add")."""
    cjk = sum("\u4e00" <= ch <= "\u9fff" for ch in rule)
    return len(rule) >= 4 and cjk >= 0.6 * len(rule) and not any(w in rule.lower() for w in _SCHEMA_WORDS)


def apply_edit(rules: list[str], edit: RuleEdit, suggestions: list[str]) -> list[str] | None:
    """The rule set after ``edit``, or None when the edit is unusable (no such suggestion or rule, a set
    already at ``MAX_RULES``, a rule it already has). The new rule is the Optimizer's wording when that is
    usable, else the adopted suggestion as the Reflector wrote it."""
    if edit.action == "keep":
        return list(rules)
    if not 1 <= edit.suggestion <= len(suggestions):
        return None
    new = edit.rule.strip() if _usable(edit.rule.strip()) else suggestions[edit.suggestion - 1].strip()
    if not new or new in rules:
        return None
    if edit.action == "add":
        return [*rules, new] if len(rules) < MAX_RULES else None
    if edit.index is None or not 1 <= edit.index <= len(rules):
        return None
    return [*rules[: edit.index - 1], new, *rules[edit.index:]]


SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=256, seed=0)
EDIT_SAMPLING = SAMPLING.model_copy(update={"max_new_tokens": 96})  # one rule of ≤ 60 characters plus its JSON


def _numbered(rules: list[str]) -> str:
    return "\n".join(f"{i + 1}. {r}" for i, r in enumerate(rules))


def generator_requests(prompts: list[str], s_g: list[str], iteration: int) -> list[ChatRequest]:
    system = ("你在为祝福语评审员出考题。请按照下面的“写坏策略”，为用户需求写一条乍看不错、细看有缺陷的祝福语，"
              "缺陷要隐蔽，不能一眼看穿；然后说明你埋下了什么缺陷。用JSON回答。\n写坏策略：\n" + _numbered(s_g))
    return [ChatRequest(messages=[{"role": "system", "content": system}, {"role": "user", "content": f"用户需求：{p}"}],
                        sampling=SAMPLING.model_copy(update={"seed": iteration}), item=f"gen-{iteration}-{i}")
            for i, p in enumerate(prompts)]


def detect(runtime: Runtime, items: list[tuple[str, str]], s_d: list[str], *, tag: str = "detect") -> list[ChatResult]:
    """The Detector: P(是) for (request, greeting) pairs under principles ``s_d`` (``.parsed["p"]``)."""
    return judging.score(runtime, items, s_d, tag=tag)


def probabilities(results: list[ChatResult]) -> list[float | None]:
    return [judging.probability(r) for r in results]


def hider_requests(caught: list[dict], s_g: list[str], iteration: int) -> list[ChatRequest]:
    """For planted flaws the Detector caught: how could the Generator have hidden them better?"""
    system = ("你负责改进“写坏策略”。下面这条刻意写坏的祝福语被评审员识破了。请分析它为什么被识破，"
              "并提出一条让缺陷藏得更隐蔽的策略修改建议。用JSON回答。\n当前写坏策略：\n" + _numbered(s_g))
    return [ChatRequest(messages=[{"role": "system", "content": system}, {"role": "user", "content": (
        f"【用户需求】{c['prompt']}\n【祝福语】{c['response']}\n【埋下的缺陷】{c['planted']}")}],
        sampling=SAMPLING, item=f"hide-{iteration}-{i}") for i, c in enumerate(caught)]


def reflector_requests(errors: list[dict], s_d: list[str], iteration: int) -> list[ChatRequest]:
    system = ("你负责复盘评审员的错误。已知正确答案，请分析评审员为什么判错，并提出一条对评价原则的具体修改建议，"
              "让以后不再犯同类错误。用JSON回答。\n当前评价原则：\n" + _numbered(s_d))
    return [ChatRequest(messages=[{"role": "system", "content": system}, {"role": "user", "content": (
        f"【用户需求】{e['prompt']}\n【祝福语】{e['response']}\n【评审员判断】{e['pred']}（理由：{e['reason']}）\n"
        f"【正确答案】{e['truth']}（1=优秀，0=不合格）")}], sampling=SAMPLING, item=f"reflect-{iteration}-{i}")
        for i, e in enumerate(errors)]


def optimizer_request(kind: Literal["S_G", "S_D"], rules: list[str], suggestions: list[str], iteration: int) -> ChatRequest:
    what = "写坏策略（用来出隐蔽的考题）" if kind == "S_G" else "评价原则（用来判断祝福语是否优秀）"
    system = (f"你负责修订一组{what}。请从修改建议中选出最有价值的一条（suggestion 为它的编号），对现有规则只做"
              f"一处修改：把它作为新规则加入（action 为 add），或用它替换一条已被它取代的规则（action 为 replace，"
              f"index 为那条规则的编号）；如果建议都不合理，就保持不变（action 为 keep）。可以把建议改写成一句更具体"
              f"的规则（rule），也可以留空。规则最多 {MAX_RULES} 条。用JSON回答。")
    user = f"现有规则：\n{_numbered(rules)}\n修改建议：\n{_numbered(suggestions)}"
    return ChatRequest(messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                       sampling=EDIT_SAMPLING, item=f"optimize-{kind}-{iteration}")


# ---------------------------------------------------------------- the loop


@dataclass(frozen=True)
class Example:
    item_id: str
    prompt: str
    response: str
    label: int


@dataclass(frozen=True)
class LoopConfig:
    iterations: int = 3
    generated_per_iteration: int = 4
    real_per_iteration: int = 8
    patience: int = 2  # stop when held-out AUC has not improved for this many iterations
    seed: int = 0
    max_hider_calls: int = 2  # S_G suggestions per iteration (generation is the slow part on a CPU)


@dataclass
class Iteration:
    iteration: int
    s_g: list[str]
    s_d: list[str]
    suggestions: list[dict] = field(default_factory=list)
    heldout_accuracy: float | None = None
    detector_errors: int = 0
    heldout_auc: float | None = None
    threshold: float | None = None
    judge_model: str | None = None
    adversarial: list[dict] = field(default_factory=list)  # planted greetings with their score and `fooled`


def evaluate(runtime: Runtime, train: list[Example], heldout: list[Example], s_d: list[str],
             tag: str) -> tuple[float, float | None, float | None]:
    """(threshold calibrated on the training split, held-out accuracy at it, held-out AUC)."""
    cal = judging.calibrate(probabilities(detect(runtime, [(e.prompt, e.response) for e in train], s_d,
                                                 tag=f"{tag}-calibrate")), [e.label for e in train])
    if not heldout:
        return cal.threshold, None, None
    ps = probabilities(detect(runtime, [(e.prompt, e.response) for e in heldout], s_d, tag=f"{tag}-heldout"))
    acc = sum(1 for e, p in zip(heldout, ps, strict=True) if cal.label(p) == e.label) / len(heldout)
    return cal.threshold, acc, auc([0.0 if p is None else p for p in ps], [e.label for e in heldout])


def split_examples(examples: list[Example], seed: int = 0) -> tuple[list[Example], list[Example], list[Example]]:
    """A fixed hash split: 40% train (the loop), 30% held-out (choosing the best S_D), 30% evaluation
    (agreement with humans, never seen by the loop)."""
    train, heldout, evaluation = [], [], []
    for e in sorted(examples, key=lambda e: e.item_id):
        bucket = int(content_id("split", seed, e.item_id)[:8], 16) % 10
        (train if bucket < 4 else heldout if bucket < 7 else evaluation).append(e)
    return train, heldout, evaluation


T = TypeVar("T")


def balanced_head(examples: list[T], n: int, label: Callable[[T], int] = lambda e: e.label) -> list[T]:
    """The first ``n`` examples with both labels kept: alternate good and flawed ones (in their order)
    until one kind runs out, then fill with the other. A small calibration or evaluation sample cut from a
    mostly-good split (the built-in one is ~80% good) would otherwise hold one flawed item or none, and a
    threshold fitted on it calls everything good. ``n`` <= 0 or >= len keeps everything; ``label`` reads an
    item's label (``Example.label`` by default; rows as dicts pass ``lambda r: r["label"]``)."""
    if n <= 0 or n >= len(examples):
        return list(examples)
    pos = [e for e in examples if label(e) == 1]
    neg = [e for e in examples if label(e) != 1]
    take_neg = min(len(neg), max(n // 2, n - len(pos)))
    keep = {id(e) for e in pos[: n - take_neg] + neg[:take_neg]}
    return [e for e in examples if id(e) in keep]


def loop_id(model: str, train: list[Example], heldout: list[Example], config: LoopConfig) -> str:
    return content_id(PROMPT_VERSION, model, sorted(e.item_id for e in train), sorted(e.item_id for e in heldout),
                      config.generated_per_iteration, config.real_per_iteration, config.seed, INITIAL_S_G, INITIAL_S_D)


def _merge(runtime: Runtime, updates: dict[str, tuple[list[str], list[str]]], iteration: int) -> dict[str, list[str]]:
    """The Optimizer edits each rule set ({"S_D": (rules, suggestions), ...}) in one batched call;
    an unusable edit keeps the rules as they were."""
    kinds = [k for k, (_, sugg) in updates.items() if sugg]
    results = runtime.structured([optimizer_request(k, updates[k][0], updates[k][1], iteration)  # type: ignore[arg-type]
                                  for k in kinds], RuleEdit) if kinds else []
    out = {k: rules for k, (rules, _) in updates.items()}
    for k, res in zip(kinds, results, strict=True):
        edit = RuleEdit.model_validate(res.parsed) if res.ok else None
        if edit is not None and (new := apply_edit(out[k], edit, updates[k][1])) is not None:
            out[k] = new
    return out


def run_one(runtime: Runtime, judge: Runtime, prev: Iteration, train: list[Example], heldout: list[Example],
            config: LoopConfig) -> Iteration:
    """Iteration ``prev.iteration + 1``: deterministic given its inputs, so a re-run after a crash
    is answered from the call log. ``runtime`` writes (Generator, Reflector, Optimizer); ``judge``
    scores (Detector)."""
    i = prev.iteration + 1
    rng = random.Random(f"{config.seed}-{i}")
    gen_prompts = [e.prompt for e in rng.sample(train, min(config.generated_per_iteration, len(train)))]
    real = rng.sample(train, min(config.real_per_iteration, len(train)))
    generated = runtime.structured(generator_requests(gen_prompts, prev.s_g, i), FlawedGreeting)
    cases = [{"prompt": p, "response": g.parsed["greeting"], "truth": 0, "planted": g.parsed["flaws"]}
             for p, g in zip(gen_prompts, generated, strict=True) if g.ok]
    cases += [{"prompt": e.prompt, "response": e.response, "truth": e.label, "planted": None} for e in real]
    threshold = prev.threshold if prev.threshold is not None else judging.DEFAULT_THRESHOLD
    ps = probabilities(detect(judge, [(c["prompt"], c["response"]) for c in cases], prev.s_d, tag=f"detect-{i}"))
    errors, caught, adversarial = [], [], []
    for c, p in zip(cases, ps, strict=True):
        if p is None:
            continue
        pred = int(p >= threshold)
        if c["planted"]:
            adversarial.append({"prompt": c["prompt"], "greeting": c["response"], "flaws": c["planted"],
                                "score": p, "threshold": threshold, "fooled": pred == 1})
        if pred != c["truth"]:
            errors.append({**c, "pred": pred, "reason": f"P(是)={p:.2f}，阈值 {threshold:.2f}"})
        elif c["planted"]:
            caught.append(c)
    # Reflector (on the Detector's errors) and Hider (on caught plants) answer in one batch: on a CPU
    # a batch of a few costs about what one answer does.
    reflect = reflector_requests(errors, prev.s_d, i) if errors else []
    hide = hider_requests(caught[: config.max_hider_calls], prev.s_g, i) if caught and config.max_hider_calls else []
    answers = runtime.structured(reflect + hide, Reflection) if reflect or hide else []
    reflections, hints = answers[: len(reflect)], answers[len(reflect):]
    d_suggestions = [r.parsed["suggestion"].strip() for r in reflections if r.ok and r.parsed["suggestion"].strip()]
    g_suggestions = [r.parsed["suggestion"].strip() for r in hints if r.ok and r.parsed["suggestion"].strip()]
    merged = _merge(runtime, {"S_D": (prev.s_d, d_suggestions), "S_G": (prev.s_g, g_suggestions)}, i)
    s_d, s_g = merged["S_D"], merged["S_G"]
    suggestions = [{"to": "S_D", "text": s} for s in d_suggestions] + [{"to": "S_G", "text": s} for s in g_suggestions]
    t, acc, heldout_auc = evaluate(judge, train, heldout, s_d, f"it{i}")
    return Iteration(i, s_g, s_d, suggestions, acc, len(errors), heldout_auc, t, judge.model_id, adversarial)


def first_iteration(judge: Runtime, train: list[Example], heldout: list[Example]) -> Iteration:
    t, acc, heldout_auc = evaluate(judge, train, heldout, INITIAL_S_D, "it0")
    return Iteration(0, list(INITIAL_S_G), list(INITIAL_S_D), heldout_accuracy=acc, heldout_auc=heldout_auc,
                     threshold=t, judge_model=judge.model_id)


def run_loop(runtime: Runtime, train: list[Example], heldout: list[Example], config: LoopConfig,
             done: list[Iteration] | None = None,
             on_iteration: Callable[[Iteration], Runtime | None] | None = None,
             judge: Runtime | None = None) -> list[Iteration]:
    """Run (or resume, from the recorded ``done`` iterations) the adversarial loop. ``on_iteration``
    sees each finished iteration and may return the runtime of a retrained judge for the next one."""
    judge = judge or runtime
    history = sorted(done or [], key=lambda it: it.iteration)
    if not history:
        history.append(first_iteration(judge, train, heldout))
        if on_iteration:
            judge = on_iteration(history[-1]) or judge
    while history[-1].iteration < config.iterations and not _stalled(history, config.patience):
        it = run_one(runtime, judge, history[-1], train, heldout, config)
        history.append(it)
        if on_iteration:
            judge = on_iteration(it) or judge
    return history


def _quality(h: Iteration) -> tuple[float, float]:
    return (h.heldout_auc if h.heldout_auc is not None else -1.0, h.heldout_accuracy or 0.0)


def _stalled(history: list[Iteration], patience: int) -> bool:
    scores = [_quality(h) for h in history]
    best_at = max(range(len(scores)), key=lambda k: (scores[k], -k))
    return len(scores) - 1 - best_at >= patience


def best(history: list[Iteration]) -> Iteration:
    """The iteration whose S_D scored best on the held-out split (AUC, then accuracy; earliest on ties)."""
    return max(history, key=lambda h: (_quality(h), -h.iteration))
