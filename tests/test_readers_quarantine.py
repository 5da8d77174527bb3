"""Bad input goes to quarantine with file, line and reason; unreadable files fail naming the file."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources.readers import (
    IngestError,
    read_builtin_greetings,
    read_labels_jsonl,
    read_pairs_json,
    read_prompts,
    read_sft_json,
)


def _reasons(parsed):
    return {(q.location, q.reason.split(" (")[0]) for q in parsed.quarantined}


def test_txt_prompts_quarantine_empty_long_duplicate_and_invalid_utf8(tmp_path):
    f = tmp_path / "batch.txt"
    f.write_bytes(
        "生日祝福\n"
        "   \n"
        "".encode() + ("长" * 2001).encode() + b"\n"
        + "生日祝福\n".encode()
        + b"\xff\xfe bad\n"
        + "新年祝福\n".encode()
    )
    parsed = read_prompts(f, source="inbox", batch="b")
    assert [r.text for r in parsed.rows] == ["生日祝福", "新年祝福"]
    assert _reasons(parsed) == {
        ("line 2", "empty prompt"),
        ("line 3", "prompt too long"),
        ("line 4", "duplicate of line 1"),
        ("line 5", "invalid UTF-8 at byte 0 of the line"),
    }
    assert all(q.source_file == str(f) and q.target_table == "prompts" for q in parsed.quarantined)
    assert parsed.rows[1].source_ref == "batch.txt:line 6"


def test_jsonl_prompts_quarantine_broken_lines_and_missing_fields(tmp_path):
    f = tmp_path / "batch.jsonl"
    f.write_text(
        "\n".join([
            json.dumps({"query": "教师节祝福", "style": "温暖"}, ensure_ascii=False),
            '{"query": "broken',
            json.dumps({"occasion": "春节"}, ensure_ascii=False),
            json.dumps(["not", "an", "object"]),
            json.dumps({"query": 42}),
            json.dumps({"prompt": [{"role": "user", "content": "端午祝福"}]}, ensure_ascii=False),
        ]) + "\n",
        encoding="utf-8",
    )
    parsed = read_prompts(f, source="inbox", batch="b")
    assert [r.text for r in parsed.rows] == ["教师节祝福", "端午祝福"]
    assert parsed.rows[0].meta == {"style": "温暖"}
    reasons = dict(_reasons(parsed))
    assert reasons["line 2"].startswith("invalid JSON")
    assert reasons["line 3"] == "missing field 'query'"
    assert reasons["line 4"] == "expected a JSON object, got list"
    assert reasons["line 5"] == "field 'query' is int, not text"


def test_parquet_prompts_and_a_parquet_without_a_prompt_column(tmp_path):
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"query": ["乔迁之喜", "", "乔迁之喜"]}), good)
    parsed = read_prompts(good, source="inbox", batch="b")
    assert [r.text for r in parsed.rows] == ["乔迁之喜"]
    assert _reasons(parsed) == {("row 1", "empty query"), ("row 2", "duplicate of row 0")}
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"other": ["x"]}), bad)
    with pytest.raises(IngestError, match="bad.parquet: no prompt column"):
        read_prompts(bad, source="inbox", batch="b")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.txt", None, "cannot read .*missing.txt"),
        ("garbage.parquet", b"not parquet at all", "cannot read .*garbage.parquet as Parquet"),
        ("prompts.csv", b"a,b", "unsupported prompt file type '.csv'"),
    ],
)
def test_unreadable_prompt_files_fail_naming_the_file(tmp_path, name, content, message):
    f = tmp_path / name
    if content is not None:
        f.write_bytes(content)
    with pytest.raises(IngestError, match=message):
        read_prompts(f, source="inbox", batch="b")


def test_broken_json_documents_fail_with_file_and_line(tmp_path):
    f = tmp_path / "sft.json"
    f.write_text('[\n {"instruction": "a", "output": "b"},\n {"instruction": \n', encoding="utf-8")
    with pytest.raises(IngestError, match=r"sft.json: invalid JSON at line 4"):
        read_sft_json(f, source="t")
    g = tmp_path / "pairs.json"
    g.write_bytes(b'[{"conversations": []}]\n\xff')
    with pytest.raises(IngestError, match=r"pairs.json: invalid UTF-8 at byte \d+ \(line 2\)"):
        read_pairs_json(g, source="t")


def test_sft_and_pairs_items_are_validated(tmp_path):
    sft = tmp_path / "sft.json"
    sft.write_text(json.dumps([
        {"instruction": "写生日祝福", "input": "", "output": "生日快乐"},
        {"instruction": "写生日祝福", "output": ""},
        "just a string",
    ], ensure_ascii=False), encoding="utf-8")
    parsed = read_sft_json(sft, source="t")
    assert len(parsed.rows) == 1 and _reasons(parsed) == {
        ("item 1", "empty output"), ("item 2", "expected an object with instruction/output")}
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([
        {"conversations": [{"from": "human", "value": "恭喜"}], "chosen": {"from": "gpt", "value": "甲"},
         "rejected": {"from": "gpt", "value": "乙"}},
        {"conversations": [{"from": "human", "value": "恭喜"}], "chosen": {"from": "gpt", "value": "甲"},
         "rejected": {"from": "gpt", "value": "甲"}},
        {"conversations": [], "chosen": {"value": "x"}, "rejected": {"value": "y"}},
    ], ensure_ascii=False), encoding="utf-8")
    parsed = read_pairs_json(pairs, source="t")
    assert len(parsed.rows) == 1
    assert _reasons(parsed) == {("item 1", "chosen equals rejected"),
                                ("item 2", "missing field 'conversations[human]'")}


def test_labels_must_be_zero_or_one(tmp_path):
    f = tmp_path / "eval.jsonl"
    f.write_text("\n".join(json.dumps(o, ensure_ascii=False) for o in [
        {"query": "q", "response": "r", "label": 1},
        {"query": "q2", "response": "r", "label": 2},
        {"query": "q3", "response": "r", "label": True},
        {"query": "q4", "label": 0},
    ]), encoding="utf-8")
    parsed = read_labels_jsonl(f, source="t")
    assert len(parsed.rows) == 1
    assert _reasons(parsed) == {("line 2", "label must be 0 or 1, got 2"),
                                ("line 3", "label must be 0 or 1, got True"),
                                ("line 4", "missing field 'response'")}


def test_builtin_sample_is_large_varied_and_clean():
    prompts = read_prompts(
        __import__("resources.readers").readers.SAMPLE_DIR / "prompts.jsonl", source="builtin", batch="builtin")
    assert len(prompts.rows) >= 60 and not prompts.quarantined
    assert len({r.meta["occasion"] for r in prompts.rows}) >= 20
    g = read_builtin_greetings()
    assert not g.labels.quarantined
    assert {r.label for r in g.labels.rows} == {0, 1}
    assert len(g.sft.rows) >= 36 and len(g.pairs.rows) >= 10


def test_paper_formats_parse(paper_data):
    assert len(read_prompts(paper_data / "queries.txt", source="q", batch="q").rows) > 5000
    assert len(read_prompts(paper_data / "grpo" / "test.parquet", source="g", batch="g").rows) > 500
    assert len(read_sft_json(paper_data / "sft.json", source="s").rows) == 4000
    assert len(read_pairs_json(paper_data / "reward_pairs_dev.json", source="p").rows) > 700
    labels = read_labels_jsonl(paper_data / "evaluation_dev.jsonl", source="e")
    assert len(labels.rows) + len(labels.quarantined) == 1000
