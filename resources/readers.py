"""Parsers for every input format zhufu ingests. Pure functions: files in, rows out.

Item-level problems (empty or over-long text, invalid UTF-8 on a line, broken JSON lines,
missing fields, duplicates) become ``QuarantineRow``s naming the file, the line (or item) and
the reason. A file that cannot be read at all raises ``IngestError`` naming it.

Formats (the Igniting paper's published data, and this project's inbox):
  queries ``.txt``        one request per line
  SFT ``.json``           [{"instruction", "input", "output"}]
  pairs ``.json``         [{"conversations": [{"from", "value"}], "chosen": {…}, "rejected": {…}}]
  labelled ``.jsonl``     {"query", "response", "label"}
  GRPO ``.parquet``       column ``prompt`` = [{"role", "content"}]
  inbox ``.txt|.jsonl|.parquet``   text, or a ``query`` / ``prompt`` / ``text`` field or column
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import pyarrow.parquet as pq

from warehouse.schema import (
    Event,
    HumanLabelRow,
    PromptRow,
    QuarantineRow,
    SeedPairRow,
    SeedSftRow,
)

MAX_PROMPT_CHARS = 2000
MAX_RESPONSE_CHARS = 8000
TEXT_FIELDS = ("query", "prompt", "text", "instruction")
_ITEM_PREVIEW = 300

R = TypeVar("R", bound=Event)


class IngestError(RuntimeError):
    """An input file that cannot be read at all; the message names it."""


@dataclass
class Parsed(Generic[R]):
    rows: list[R] = field(default_factory=list)
    quarantined: list[QuarantineRow] = field(default_factory=list)


def normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


class _Collector(Generic[R]):
    """Validates items of one file and sorts them into rows and quarantine."""

    def __init__(self, path: Path, target: str, max_chars: int = MAX_PROMPT_CHARS):
        self.path, self.target, self.max_chars = path, target, max_chars
        self.out: Parsed[R] = Parsed()
        self._seen: dict[tuple[str, ...], str] = {}

    def reject(self, where: str, reason: str, item: Any) -> None:
        raw = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False, default=str)
        self.out.quarantined.append(
            QuarantineRow(
                source_file=str(self.path),
                location=where,
                reason=reason,
                item=raw[:_ITEM_PREVIEW],
                target_table=self.target,
            )
        )

    def text(self, where: str, value: Any, name: str, item: Any, max_chars: int | None = None) -> str | None:
        """The normalized text of a field, or None after quarantining why it is unusable."""
        if value is None:
            self.reject(where, f"missing field {name!r}", item)
            return None
        if not isinstance(value, str):
            self.reject(where, f"field {name!r} is {type(value).__name__}, not text", item)
            return None
        text = normalize(value)
        limit = max_chars or self.max_chars
        if not text:
            self.reject(where, f"empty {name}", item)
            return None
        if len(text) > limit:
            self.reject(where, f"{name} too long ({len(text)} chars > {limit})", item)
            return None
        return text

    def unique(self, where: str, key: tuple[str, ...], item: Any) -> bool:
        first = self._seen.get(key)
        if first is not None:
            self.reject(where, f"duplicate of {first}", item)
            return False
        self._seen[key] = where
        return True


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise IngestError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _lines(path: Path, col: _Collector) -> Iterator[tuple[int, str]]:
    """(line number, decoded line) of every line; lines with invalid UTF-8 are quarantined."""
    data = _read_bytes(path)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    pieces = data.split(b"\n")
    if pieces and pieces[-1] == b"":  # the file's final newline ends a line; it starts none
        pieces.pop()
    for n, raw in enumerate(pieces, start=1):
        raw = raw.rstrip(b"\r")
        try:
            yield n, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            col.reject(f"line {n}", f"invalid UTF-8 at byte {exc.start} of the line", raw.decode("utf-8", "replace"))


def _json_document(path: Path) -> Any:
    data = _read_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise IngestError(f"{path}: invalid UTF-8 at byte {exc.start} (line {line})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    try:
        return pq.read_table(path).to_pylist()
    except (OSError, ValueError) as exc:
        raise IngestError(f"cannot read {path} as Parquet: {exc}") from exc


def _first_text_field(obj: dict[str, Any]) -> tuple[str, Any]:
    for name in TEXT_FIELDS:
        if name in obj:
            value = obj[name]
            if isinstance(value, list):  # chat format: [{"role", "content"}]
                users = [m.get("content") for m in value if isinstance(m, dict) and m.get("role") == "user"]
                value = users[-1] if users else None
            return name, value
    return "query", None


# ------------------------------------------------------------------ prompts


def _prompt(col: _Collector[PromptRow], where: str, value: Any, name: str, item: Any,
            source: str, batch: str, meta: dict[str, Any] | None = None) -> None:
    text = col.text(where, value, name, item)
    if text is not None and col.unique(where, (text,), item):
        col.out.rows.append(
            PromptRow(text=text, source=source, source_ref=f"{col.path.name}:{where}", batch=batch, meta=meta or {})
        )


def read_prompts(path: str | Path, *, source: str, batch: str) -> Parsed[PromptRow]:
    """Prompts from ``.txt`` (a line each), ``.jsonl`` or ``.parquet`` (a text field/column)."""
    path = Path(path)
    col: _Collector[PromptRow] = _Collector(path, PromptRow.TABLE)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        for n, line in _lines(path, col):
            _prompt(col, f"line {n}", line, "prompt", line, source, batch)
    elif suffix == ".jsonl":
        for n, line in _lines(path, col):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                col.reject(f"line {n}", f"invalid JSON: {exc.msg} at column {exc.colno}", line)
                continue
            if not isinstance(obj, dict):
                col.reject(f"line {n}", f"expected a JSON object, got {type(obj).__name__}", line)
                continue
            name, value = _first_text_field(obj)
            meta = {k: v for k, v in obj.items() if k not in TEXT_FIELDS}
            _prompt(col, f"line {n}", value, name, obj, source, batch, meta)
    elif suffix == ".parquet":
        for i, obj in enumerate(_parquet_rows(path)):
            name, value = _first_text_field(obj)
            if i == 0 and value is None and not any(f in obj for f in TEXT_FIELDS):
                raise IngestError(f"{path}: no prompt column (expected one of {', '.join(TEXT_FIELDS)})")
            _prompt(col, f"row {i}", value, name, obj, source, batch)
    else:
        raise IngestError(f"{path}: unsupported prompt file type {suffix!r} (use .txt, .jsonl or .parquet)")
    return col.out


# ------------------------------------------------------------------ seed data


def _json_items(path: Path) -> list[Any]:
    doc = _json_document(path)
    if not isinstance(doc, list):
        raise IngestError(f"{path}: expected a JSON array of items, got {type(doc).__name__}")
    return doc


def read_sft_json(path: str | Path, *, source: str) -> Parsed[SeedSftRow]:
    path = Path(path)
    col: _Collector[SeedSftRow] = _Collector(path, SeedSftRow.TABLE)
    for i, item in enumerate(_json_items(path)):
        where = f"item {i}"
        if not isinstance(item, dict):
            col.reject(where, "expected an object with instruction/output", item)
            continue
        instruction = item.get("instruction")
        extra = item.get("input") or ""
        if isinstance(instruction, str) and isinstance(extra, str) and extra.strip():
            instruction = f"{instruction}\n{extra}"
        prompt = col.text(where, instruction, "instruction", item)
        response = prompt and col.text(where, item.get("output"), "output", item, MAX_RESPONSE_CHARS)
        if prompt and response and col.unique(where, (prompt, response), item):
            col.out.rows.append(SeedSftRow(prompt=prompt, response=response, source=source,
                                           source_ref=f"{path.name}:{where}"))
    return col.out


def _turn_text(turn: Any) -> Any:
    return turn.get("value") if isinstance(turn, dict) else turn


def read_pairs_json(path: str | Path, *, source: str) -> Parsed[SeedPairRow]:
    path = Path(path)
    col: _Collector[SeedPairRow] = _Collector(path, SeedPairRow.TABLE)
    for i, item in enumerate(_json_items(path)):
        where = f"item {i}"
        if not isinstance(item, dict):
            col.reject(where, "expected an object with conversations/chosen/rejected", item)
            continue
        convo = item.get("conversations")
        humans = [t for t in convo if isinstance(t, dict) and t.get("from") == "human"] if isinstance(convo, list) else []
        prompt = col.text(where, _turn_text(humans[-1]) if humans else None, "conversations[human]", item)
        chosen = prompt and col.text(where, _turn_text(item.get("chosen")), "chosen", item, MAX_RESPONSE_CHARS)
        rejected = chosen and col.text(where, _turn_text(item.get("rejected")), "rejected", item, MAX_RESPONSE_CHARS)
        if not (prompt and chosen and rejected):
            continue
        if chosen == rejected:
            col.reject(where, "chosen equals rejected", item)
            continue
        if col.unique(where, (prompt, chosen, rejected), item):
            col.out.rows.append(SeedPairRow(prompt=prompt, chosen=chosen, rejected=rejected, source=source,
                                            source_ref=f"{path.name}:{where}"))
    return col.out


def read_labels_jsonl(path: str | Path, *, source: str) -> Parsed[HumanLabelRow]:
    path = Path(path)
    col: _Collector[HumanLabelRow] = _Collector(path, HumanLabelRow.TABLE)
    for n, line in _lines(path, col):
        if not line.strip():
            continue
        where = f"line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            col.reject(where, f"invalid JSON: {exc.msg} at column {exc.colno}", line)
            continue
        if not isinstance(obj, dict):
            col.reject(where, f"expected a JSON object, got {type(obj).__name__}", line)
            continue
        prompt = col.text(where, obj.get("query"), "query", obj)
        response = prompt and col.text(where, obj.get("response"), "response", obj, MAX_RESPONSE_CHARS)
        if not (prompt and response):
            continue
        label = obj.get("label")
        if label not in (0, 1) or isinstance(label, bool):
            col.reject(where, f"label must be 0 or 1, got {label!r}", obj)
            continue
        if col.unique(where, (prompt, response), obj):
            col.out.rows.append(HumanLabelRow(prompt=prompt, response=response, label=int(label), source=source,
                                              source_ref=f"{path.name}:{where}", note=obj.get("note")))
    return col.out


# ------------------------------------------------------------------ the built-in sample

SAMPLE_DIR = Path(__file__).parent / "sample"


@dataclass
class BuiltinGreetings:
    sft: Parsed[SeedSftRow]
    labels: Parsed[HumanLabelRow]
    pairs: Parsed[SeedPairRow]


def read_builtin_greetings(
    prompts_path: str | Path = SAMPLE_DIR / "prompts.jsonl",
    greetings_path: str | Path = SAMPLE_DIR / "greetings.jsonl",
) -> BuiltinGreetings:
    """This project's own greetings for its sample prompts: good ones are SFT examples, every one
    is a labelled example (good = 1), and each good/bad pair on one prompt is a preference pair."""
    prompts_path, greetings_path = Path(prompts_path), Path(greetings_path)
    queries = {r.meta.get("id"): r.text for r in read_prompts(prompts_path, source="builtin", batch="builtin").rows}
    sft: _Collector[SeedSftRow] = _Collector(greetings_path, SeedSftRow.TABLE, MAX_RESPONSE_CHARS)
    labels: _Collector[HumanLabelRow] = _Collector(greetings_path, HumanLabelRow.TABLE, MAX_RESPONSE_CHARS)
    pairs: _Collector[SeedPairRow] = _Collector(greetings_path, SeedPairRow.TABLE, MAX_RESPONSE_CHARS)
    by_prompt: dict[str, dict[str, list[str]]] = {}
    for n, line in _lines(greetings_path, labels):
        where = f"line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            labels.reject(where, f"invalid JSON: {exc.msg} at column {exc.colno}", line)
            continue
        prompt = queries.get(obj.get("prompt_id"))
        if prompt is None:
            labels.reject(where, f"unknown prompt_id {obj.get('prompt_id')!r}", obj)
            continue
        greeting = labels.text(where, obj.get("greeting"), "greeting", obj)
        quality = obj.get("quality")
        if greeting is None:
            continue
        if quality not in ("good", "bad"):
            labels.reject(where, f"quality must be 'good' or 'bad', got {quality!r}", obj)
            continue
        ref = f"{greetings_path.name}:{where}"
        labels.out.rows.append(HumanLabelRow(prompt=prompt, response=greeting, label=int(quality == "good"),
                                             source="builtin", source_ref=ref, note=obj.get("note")))
        if quality == "good":
            sft.out.rows.append(SeedSftRow(prompt=prompt, response=greeting, source="builtin", source_ref=ref))
        by_prompt.setdefault(prompt, {"good": [], "bad": []})[quality].append(greeting)
    for prompt, texts in by_prompt.items():
        for chosen in texts["good"]:
            for rejected in texts["bad"]:
                pairs.out.rows.append(SeedPairRow(prompt=prompt, chosen=chosen, rejected=rejected, source="builtin",
                                                  source_ref=f"{greetings_path.name}"))
    return BuiltinGreetings(sft=sft.out, labels=labels.out, pairs=pairs.out)
