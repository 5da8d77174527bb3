"""bench.compare_policies: any two policies of an eval JSON, prompt by prompt, with length beside the gain."""

import json

import pytest

from bench.compare_policies import compare


def _eval_json(tmp_path):
    per = {"mrpo": {"chars": [50, 60, 55, 40], "evaluator": [2.0, 3.0, 2.5, 1.0]},
           "grpo": {"chars": [50, 58, 50, 42], "evaluator": [1.0, 2.0, 2.5, 1.5]}}
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"rows": [], "per_prompt": per}))
    return path


def test_compare_two_policies_prompt_by_prompt(tmp_path):
    c = compare(_eval_json(tmp_path), "mrpo", "grpo")
    assert c["n"] == 4 and c["gain"] == pytest.approx(0.375)  # (1 + 1 + 0 - 0.5) / 4
    assert c["win_rate"] == pytest.approx(0.625)  # two wins, one tie, one loss
    assert "explained_by_length" in c and c["len_matched_n"] == 4


def test_compare_names_what_is_missing(tmp_path):
    with pytest.raises(SystemExit, match="no policy 'sft'"):
        compare(_eval_json(tmp_path), "sft", "grpo")
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"rows": []}))
    with pytest.raises(SystemExit, match="no per_prompt"):
        compare(old, "a", "b")
