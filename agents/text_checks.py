"""Is a model's answer usable Chinese content? Checks shared by the agents (Grounded-Theory coding,
reflection critiques and revisions): enough Chinese characters, not an echo of our prompts' words,
not degenerate repetition — what a small model writes when it cannot answer."""

from __future__ import annotations

import re

from agents.scenarios import SCENARIOS

_CJK = re.compile(r"[\u4e00-\u9fff]")
_STRIP = " \t\n\r\"'“”‘’「」『』【】[]()（）:：,，。.!！?？;；、-—*#"
# Words of the instructions and schema that a model may echo instead of answering.
_ECHOES = ("概念", "证据", "维度名称", "标准名称", "较好的作品", "较差的作品", "写作要求", "任务类型", "短语",
           "原样摘抄", "5分的样子", "3分的样子", "1分的样子", "这个维度考察什么", "标准要求什么",
           *SCENARIOS.values())
_PUNCT = re.compile(r"[\s，,。.、；;：:！!？?“”\"'/]")


def clean(text: str) -> str:
    return text.strip().strip(_STRIP).strip()


def content_problem(text: str, *, min_cjk: int = 2) -> str | None:
    """Why ``text`` is not a usable piece of Chinese content, or None when it is."""
    t = clean(text)
    if len(_CJK.findall(t)) < min_cjk:
        return f"fewer than {min_cjk} Chinese characters: {t[:20]!r}"
    if t in _ECHOES:
        return f"echoes the instructions: {t!r}"
    counts = {c: t.count(c) for c in set(t)}
    if len(t) >= 4 and max(counts.values()) / len(t) > 0.5:
        return f"degenerate repetition: {t[:20]!r}"
    if len(t) >= 6 and len(set(t)) <= 2:
        return f"degenerate repetition: {t[:20]!r}"
    bare = _PUNCT.sub("", t)
    for n in range(2, len(bare) // 2 + 1):  # one phrase said twice or more (爷爷奶奶，爷爷奶奶)
        if len(bare) % n == 0 and bare[:n] * (len(bare) // n) == bare:
            return f"degenerate repetition: {t[:20]!r}"
    return None
