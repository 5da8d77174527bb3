"""Writing scenarios (task types) and their built-in sample, written by this project.

Greetings (祝福语) are the original task: their prompts and labels come from ``prompts.jsonl`` /
``greetings.jsonl`` and the paper's data. The other scenarios (对联, 短诗) ship a few prompts and a
good and a flawed response for most of them, for the criteria workflow and its agreement check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from agents.scenarios import GREETING, SCENARIOS, scenario_name  # noqa: F401 (re-exported)
from resources.readers import SAMPLE_DIR, normalize
from warehouse.schema import PromptRow, QuarantineRow, ScenarioExampleRow

SAMPLE_BATCH = "builtin-scenarios"
SOURCE = "builtin-scenarios"


@dataclass
class ScenarioSample:
    prompts: list[PromptRow] = field(default_factory=list)
    examples: list[ScenarioExampleRow] = field(default_factory=list)
    quarantined: list[QuarantineRow] = field(default_factory=list)


def _jsonl(path: Path, out: ScenarioSample, target: str) -> list[tuple[str, dict]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
        except ValueError as exc:
            out.quarantined.append(QuarantineRow(source_file=str(path), location=f"line {n}", reason=str(exc)[:200],
                                                 item=line[:300], target_table=target))
            continue
        rows.append((f"{path.name}:line {n}", obj))
    return rows


def read_scenario_sample(prompts_path: Path = SAMPLE_DIR / "scenario_prompts.jsonl",
                         examples_path: Path = SAMPLE_DIR / "scenario_examples.jsonl") -> ScenarioSample:
    out = ScenarioSample()
    queries: dict[str, tuple[str, str]] = {}
    for ref, obj in _jsonl(prompts_path, out, PromptRow.TABLE):
        text, scenario = normalize(str(obj.get("query") or "")), str(obj.get("scenario") or "")
        if not text or not scenario:
            out.quarantined.append(QuarantineRow(source_file=str(prompts_path), location=ref.split(":", 1)[1],
                                                 reason="missing query or scenario", item=json.dumps(obj, ensure_ascii=False)[:300],
                                                 target_table=PromptRow.TABLE))
            continue
        queries[str(obj.get("id"))] = (scenario, text)
        out.prompts.append(PromptRow(text=text, source=SOURCE, source_ref=ref, batch=SAMPLE_BATCH, scenario=scenario,
                                     meta={"id": obj.get("id")}))
    for ref, obj in _jsonl(examples_path, out, ScenarioExampleRow.TABLE):
        found = queries.get(str(obj.get("prompt_id")))
        response = normalize(str(obj.get("response") or ""))
        quality = obj.get("quality")
        if found is None or not response or quality not in ("good", "bad"):
            out.quarantined.append(QuarantineRow(
                source_file=str(examples_path), location=ref.split(":", 1)[1],
                reason="unknown prompt_id, empty response or quality not good/bad",
                item=json.dumps(obj, ensure_ascii=False)[:300], target_table=ScenarioExampleRow.TABLE))
            continue
        scenario, prompt = found
        out.examples.append(ScenarioExampleRow(scenario=scenario, prompt=prompt, response=response,
                                               label=int(quality == "good"), note=obj.get("note"), source=SOURCE,
                                               source_ref=ref))
    return out
