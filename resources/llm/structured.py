"""Tolerant JSON extraction and schema validation of model output."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
# strict=False admits raw control characters inside strings, which small models do emit.
_DECODER = json.JSONDecoder(strict=False)


class OutputError(ValueError):
    """Model output that is not valid JSON for the schema; the message says why."""


def extract_json(text: str) -> Any:
    """The first JSON object in ``text``: tolerates code fences, prose around it and trailing commas."""
    if text is None or not text.strip():
        raise OutputError("empty output")
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for chunk in candidates:
        start = chunk.find("{")
        while start != -1:
            try:
                value, _ = _DECODER.raw_decode(chunk[start:])
                return value
            except json.JSONDecodeError:
                pass
            end = chunk.rfind("}")
            if end > start:
                try:
                    return json.loads(_TRAILING_COMMA.sub(r"\1", chunk[start : end + 1]), strict=False)
                except json.JSONDecodeError:
                    pass
            start = chunk.find("{", start + 1)
    snippet = text.strip()[:80].replace("\n", " ")
    raise OutputError(f"no JSON object found in output: {snippet!r}")


def parse_output(text: str, schema: type[BaseModel]) -> BaseModel:
    value = extract_json(text)
    try:
        return schema.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise OutputError(f"schema {schema.__name__}: {where}: {first['msg']} ({exc.error_count()} errors)") from exc


def schema_for(model: type[BaseModel]) -> dict[str, Any]:
    """A self-contained JSON schema (definitions inlined) for constrained decoding and response_format."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node and node["$ref"].startswith("#/$defs/"):
                return inline(defs[node["$ref"].split("/")[-1]])
            return {k: inline(v) for k, v in node.items() if k != "title"}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(schema)


def repair_prompt(bad_output: str, error: str) -> str:
    return (
        f"你上一次的输出无法解析（{error}）。请只输出一个符合要求的 JSON 对象，"
        "不要输出任何解释、代码块标记或其他文字。\n上一次的输出：\n" + (bad_output or "")[:2000]
    )
