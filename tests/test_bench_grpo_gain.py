"""The GPU bench refuses a run whose stages read an artifact nobody builds, before it trains anything."""

from bench import grpo_gain
from training import artifacts


def _complete(path):
    path.mkdir(parents=True)
    (path / artifacts.MANIFEST).write_text("{}")


def test_a_stage_whose_input_is_neither_built_nor_requested_is_named(tmp_path):
    for name in ("sft", "judge", "evaluator"):
        _complete(tmp_path / name)
    assert grpo_gain.missing_inputs(["eval"], tmp_path) == [f"eval needs {tmp_path / 'rm'}"]
    assert grpo_gain.missing_inputs(["rm", "eval"], tmp_path) == []  # built earlier in the same run
    assert grpo_gain.missing_inputs(["grpo_mrpo_judge"], tmp_path) == [f"grpo_mrpo_judge needs {tmp_path / 'memory.jsonl'}"]
    (tmp_path / "memory.jsonl").write_text("")
    assert grpo_gain.missing_inputs(["grpo_mrpo_judge", "reflect_eval"], tmp_path) == []
    assert grpo_gain.missing_inputs(["reflect_eval"], tmp_path, reflect_writer="grpo_judge_s0") == [
        f"reflect_eval needs {tmp_path / 'grpo_judge_s0'}"]
    assert grpo_gain.missing_inputs(["grpo_judge"], tmp_path) == []
    assert grpo_gain.missing_inputs(["grpo_judge"], tmp_path, judge_ensemble=True) == [
        f"grpo_judge needs {tmp_path / 'judge2'}"]  # and asking once leaves the next call's needs as they were
    assert grpo_gain.missing_inputs(["grpo_judge"], tmp_path) == []


def test_a_judge_started_from_the_sft_policy_needs_it_and_the_referee_does_not(tmp_path):
    assert grpo_gain.missing_inputs(["judge", "judge_b"], tmp_path, judge_init="sft") == [
        f"judge needs {tmp_path / 'sft'}"]
    assert grpo_gain.missing_inputs(["sft", "judge", "judge2"], tmp_path, judge_init="sft") == []
    assert grpo_gain.missing_inputs(["judge"], tmp_path) == []


def test_agreement_of_the_acceptance_test_with_the_evaluator():
    same = grpo_gain.agreement([0.1, -0.2, 0.3, -0.1], [0.5, -1.0, 1.2, -0.3])
    assert same["n"] == 4 and same["pearson"] > 0.9 and same["sign"] == 1.0
    opposite = grpo_gain.agreement([0.1, 0.2, -0.3], [-0.5, -1.0, 0.4])
    assert opposite["pearson"] < 0 and opposite["sign"] == 0.0
