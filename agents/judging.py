"""The principle-conditioned 是/否 judge that every judging agent shares.

One prompt format — evaluation principles, the user's request, the greeting, optional reference
material (exemplars, debate points) — and one score: the model's own probability of answering 是
rather than 否, read from a single forward pass (``LLMRuntime.score``). A label is that score
against a threshold calibrated on human-labelled data (``calibrate``), never the raw argmax, so a
judge that says 是 to everything still ranks greetings and still yields both labels.

The trained judge (``training/judge.py``) is fine-tuned on exactly these messages, so the same
text is scored at training and at use. The wording below is this project's own.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from agents.common import Runtime
from resources.llm.types import ChatRequest, ChatResult, Sampling
from training.metrics import similar_lengths

PROMPT_VERSION = "yesno-v1"
LABELS = ("是", "否")
SCORE_SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=1, seed=0)

_SYSTEM = "你是祝福语评审员，负责判断一条祝福语是否优秀。"
_WITH_PRINCIPLES = "请依据下面的评价原则作判断：\n{rules}"
_NO_PRINCIPLES = "请凭你对好祝福语的理解作判断：贴合需求、真诚具体、语言自然、有新意、得体。"
_QUESTION = "这条祝福语是否优秀？只回答“是”或“否”。"


# Principles of another task, for the ablation "does the principle text matter?"
FOREIGN_PRINCIPLES = ["上下联字数相等、词性相对、平仄相对。", "横批概括全联主旨。", "不得出现重字。"]


def vary(pool: Sequence[Sequence[str]], rng: random.Random, empty_share: float = 0.1) -> list[str]:
    """A principle list for one training row: a shuffled subset of one pool entry (sometimes none),
    so a trained judge learns to read principles rather than one fixed prompt."""
    if rng.random() < empty_share or not pool:
        return []
    rules = list(rng.choice(pool))
    return rng.sample(rules, rng.randint(max(1, len(rules) // 2), len(rules)))


# ---------------------------------------------------------------- rows the trained judge learns from

# Checkable principles: whether a greeting keeps them is decided by its text alone, so a training row
# can carry one whose verdict flips the label. Without such rows every label is the same whatever
# principles are shown, and a judge rightly learns to ignore them (measured, bench/RESULTS.md).
_MUST_HAVE = "祝福语中必须出现“{w}”。"
_MUST_NOT = "祝福语中不得出现“{w}”。"
_PUNCT = set("，。！？、；：,.!?;: \n“”‘’\"'（）()…—～~")


@dataclass(frozen=True)
class CheckableRule:
    text: str
    word: str
    satisfied: bool


def _spans(text: str, n: int) -> list[str]:
    return [text[i : i + n] for i in range(len(text) - n + 1) if not any(c in _PUNCT or c.isascii() for c in text[i : i + n])]


RULE_KINDS = ("word", "length")
_AT_MOST = "祝福语不超过{n}字。"
_AT_LEAST = "祝福语不少于{n}字。"
LENGTH_LIMITS = (20, 30, 40, 50, 60, 70, 80, 100)


def length_rule(response: str, rng: random.Random) -> CheckableRule | None:
    """An at-most / at-least character-count rule for ``response``, its limit at least a fifth (and 6
    characters) away from the greeting's length so the verdict is never a matter of counting one
    character. Length is what a small judge perceives best (length alone has AUC 0.95 on the paper's
    dev set), so this is the easiest principle whose text decides the label: if a judge cannot learn
    to follow it, it follows none."""
    n_chars = len(response.strip())
    limits = [n for n in LENGTH_LIMITS if abs(n_chars - n) >= max(6, 0.2 * n)]
    if not limits:
        return None
    n = rng.choice(limits)
    at_most = rng.random() < 0.5
    kept = n_chars <= n if at_most else n_chars >= n
    return CheckableRule((_AT_MOST if at_most else _AT_LEAST).format(n=n), str(n), kept)


def checkable_rule(response: str, other: str, rng: random.Random, kind: str = "word") -> CheckableRule | None:
    """A rule whose verdict the text alone decides. ``word``: a must-have / must-not word rule, the
    word taken from the response itself or (absent from it) from ``other``, each half the time, so
    neither the word nor the rule's polarity alone tells whether the rule is kept — the judge has to
    read both. ``length``: ``length_rule``."""
    if kind == "length":
        return length_rule(response, rng)
    if kind != "word":
        raise ValueError(f"unknown rule kind {kind!r}; expected one of {RULE_KINDS}")
    n = rng.choice((2, 3))
    present = rng.random() < 0.5
    pool = _spans(response, n) if present else [w for w in _spans(other, n) if w not in response]
    if not pool:
        return None
    word = rng.choice(pool)
    must_have = rng.random() < 0.5
    return CheckableRule((_MUST_HAVE if must_have else _MUST_NOT).format(w=word), word, present == must_have)


def with_rule(principles: Sequence[str], rule: str, rng: random.Random) -> list[str]:
    out = list(principles)
    out.insert(rng.randint(0, len(out)), rule)
    return out


def pair_rows(pairs: Sequence[dict], pool: Sequence[Sequence[str]], rng: random.Random, *,
              rule_share: float = 0.25, rule_kind: str = "word", source: str = "pairs",
              matched_repeat: int = 0) -> list[dict]:
    """Judge training rows from {id?, prompt, chosen, rejected}: chosen → 1, rejected → 0, kept together
    (``pair``) for the pairwise term, each with a varied principle list; and, for ``rule_share`` of
    the pairs, one more row: the chosen greeting under principles that include a checkable rule,
    labelled by whether the greeting keeps it (standalone, so the pairwise term never sees it).
    ``matched_repeat``: a pair of similar lengths (``similar_lengths``) appears that many more times, each
    copy under fresh principles — the pairs length cannot decide are ~8% of the paper's, and the ones a
    judge must learn to read."""
    rows: list[dict] = []
    texts = [p["chosen"] for p in pairs]
    for i, p in enumerate(pairs):
        if not str(p["chosen"]).strip() or not str(p["rejected"]).strip():
            continue
        key = str(p.get("id") or f"p{i}")
        copies = 1 + (matched_repeat if similar_lengths(len(p["chosen"]), len(p["rejected"])) else 0)
        for c in range(copies):
            for text, label in ((p["chosen"], 1), (p["rejected"], 0)):
                rows.append({"prompt": p["prompt"], "response": text, "label": label, "pair": key if c == 0 else
                             f"{key}#{c}", "source": source, "principles": vary(pool, rng)})
        if rule_share and rng.random() < rule_share:
            row = rule_row(p["prompt"], p["chosen"], texts[rng.randrange(len(texts))], pool, rng, rule_kind)
            rows += [row] if row else []
    return rows


DEGRADATIONS = ("repeat", "shuffle", "cut")
_CLAUSE_END = set("，。！？；\n")


def degrade(text: str, rng: random.Random) -> tuple[str, str] | None:
    """A good greeting spoiled in a way any reader sees at once — (kind, text), or None if too short:
    one clause said three times (the repetition GRPO drifts into), the characters shuffled (the word
    salad an untrained 135M policy writes), or cut off mid-clause (a completion that hit its token budget).
    The paper's rejected greetings are all fluent, so without these a judge never sees such text."""
    text = text.strip()
    if len(text) < 8:
        return None
    clauses, cur = [], ""
    for ch in text:
        cur += ch
        if ch in _CLAUSE_END:
            clauses.append(cur)
            cur = ""
    clauses += [cur] if cur else []
    kind = rng.choice(DEGRADATIONS)
    if kind == "repeat" and len(clauses) >= 2:
        i = rng.randrange(len(clauses))
        out = "".join(clauses[:i] + [clauses[i]] * 3 + clauses[i + 1:])
    elif kind == "shuffle" or len(clauses) < 2:
        kind, chars = "shuffle", list(text)
        rng.shuffle(chars)
        out = "".join(chars)
    else:
        cut = rng.randrange(len(text) // 3, 2 * len(text) // 3)
        while cut > 1 and text[cut - 1] in _CLAUSE_END:  # end mid-clause, not at a natural stop
            cut -= 1
        out = text[:cut]
    return (kind, out) if out != text else None


def degraded_rows(goods: Sequence[dict], pool: Sequence[Sequence[str]], rng: random.Random,
                  share: float) -> list[dict]:
    """Negatives for ``share`` of the good {prompt, response} rows: their degraded copies, label 0."""
    rows = []
    for g in goods:
        if rng.random() < share and (d := degrade(str(g["response"]), rng)):
            rows.append({"prompt": g["prompt"], "response": d[1], "label": 0, "source": f"degraded:{d[0]}",
                         "principles": vary(pool, rng)})
    return rows


def rule_row(prompt: str, good: str, other: str, pool: Sequence[Sequence[str]], rng: random.Random,
             kind: str = "word") -> dict | None:
    """A good greeting under varied principles plus one checkable rule, labelled by whether it keeps it."""
    rule = checkable_rule(good, other, rng, kind)
    if rule is None:
        return None
    return {"prompt": prompt, "response": good, "label": int(rule.satisfied), "source": f"rule:{kind}",
            "principles": with_rule(vary(pool, rng, empty_share=0.0), rule.text, rng)}


def rule_eval_rows(labelled: Sequence[dict], principles: Sequence[str], seed: int = 0,
                   kind: str = "word") -> list[dict]:
    """The principle-following test: every good greeting of ``labelled`` under ``principles`` plus one
    checkable rule of ``kind``, labelled by whether it keeps the rule (about half do). A judge that
    ignores the principles scores these at chance."""
    rng = random.Random(seed)
    good = [r for r in labelled if int(r["label"]) == 1]
    rows = []
    for r in good:
        rule = checkable_rule(r["response"], good[rng.randrange(len(good))]["response"], rng, kind)
        if rule is not None:
            rows.append({"prompt": r["prompt"], "response": r["response"], "label": int(rule.satisfied),
                         "rule": rule.text, "principles": with_rule(principles, rule.text, rng)})
    return rows


def numbered(rules: Sequence[str]) -> str:
    return "\n".join(f"{i + 1}. {r}" for i, r in enumerate(rules))


def judge_messages(principles: Sequence[str], prompt: str, response: str,
                   context: str | None = None) -> list[dict[str, str]]:
    """The chat the judge answers with 是 or 否 (also the trained judge's training input)."""
    system = _SYSTEM + (_WITH_PRINCIPLES.format(rules=numbered(principles)) if principles else _NO_PRINCIPLES)
    user = f"【用户需求】{prompt}\n【祝福语】{response}"
    if context:
        user += f"\n{context}"
    return [{"role": "system", "content": system}, {"role": "user", "content": f"{user}\n{_QUESTION}"}]


def score_requests(items: Sequence[tuple[str, str]], principles: Sequence[str], *, tag: str,
                   contexts: Sequence[str | None] | None = None) -> list[ChatRequest]:
    contexts = contexts if contexts is not None else [None] * len(items)
    return [ChatRequest(messages=judge_messages(principles, p, r, c), sampling=SCORE_SAMPLING, item=f"{tag}-{i}")
            for i, ((p, r), c) in enumerate(zip(items, contexts, strict=True))]


def score(runtime: Runtime, items: Sequence[tuple[str, str]], principles: Sequence[str], *, tag: str = "judge",
          contexts: Sequence[str | None] | None = None) -> list[ChatResult]:
    """P(是) per (request, greeting): ``.parsed["p"]`` when ``.ok``."""
    return runtime.score(score_requests(items, principles, tag=tag, contexts=contexts), LABELS)


def probability(result: ChatResult) -> float | None:
    return float(result.parsed["p"]) if result.ok and result.parsed else None


# ---------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """The decision threshold on P(是) that best reproduces the human labels of a calibration set."""

    threshold: float
    n: int
    accuracy: float
    positive_rate: float
    human_positive_rate: float

    def label(self, p: float | None) -> int | None:
        return None if p is None else int(p >= self.threshold)

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT_THRESHOLD = 0.5


def calibrate(scores: Sequence[float | None], labels: Sequence[int]) -> Calibration:
    """Threshold maximising accuracy on (score, human label) pairs; among equally accurate thresholds
    the one whose positive rate is nearest the human rate (then the middle of the gap between two
    scores, so it does not sit on a calibration item). Unscored items are left out."""
    pairs = sorted((s, int(y)) for s, y in zip(scores, labels, strict=True) if s is not None)
    n = len(pairs)
    if not n:
        return Calibration(DEFAULT_THRESHOLD, 0, 0.0, 0.0, 0.0)
    human = sum(y for _, y in pairs) / n
    values = [s for s, _ in pairs]
    # candidate cuts: below everything, between consecutive distinct scores, above everything
    cuts = [values[0] - 1e-6] + [(a + b) / 2 for a, b in zip(values, values[1:], strict=False) if b > a] \
        + [values[-1] + 1e-6]
    best: tuple[float, float, float] | None = None
    for t in cuts:
        pred = [int(s >= t) for s in values]
        acc = sum(int(p == y) for p, (_, y) in zip(pred, pairs, strict=True)) / n
        rate = sum(pred) / n
        key = (acc, -abs(rate - human))
        if best is None or key > (best[1], -abs(best[2] - human)):
            best = (t, acc, rate)
    t, acc, rate = best  # type: ignore[misc]
    return Calibration(threshold=float(t), n=n, accuracy=acc, positive_rate=rate, human_positive_rate=human)
