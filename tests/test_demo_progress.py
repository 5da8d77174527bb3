"""make demo's progress line: one line per finished asset, with an estimate of what is left."""

import dagster as dg

from assets.demo_progress import DemoProgress


@dg.asset
def first() -> int:
    return 1


@dg.asset
def second(first: int) -> int:
    return first + 1


def test_each_finished_asset_prints_a_line_with_what_is_left():
    # a file-backed instance, as make demo's DAGSTER_HOME: the progress thread reads while the run writes
    with dg.instance_for_test() as instance:
        lines: list[str] = []
        with DemoProgress(instance, ["first", "second", "third"], poll_s=0.05, out=lambda m, **_: lines.append(m)):
            assert dg.materialize([first, second], instance=instance).success
    assert len(lines) == 2 and lines[0].startswith("\n[demo] 1/3 assets · first done")
    assert "left" in lines[1] and lines[1].startswith("\n[demo] 2/3 assets · second done")


def test_an_in_memory_instance_is_read_only_after_the_runs():
    # polling an ephemeral instance from a thread made the run's own writes fail ("database table is locked")
    instance = dg.DagsterInstance.ephemeral()
    lines: list[str] = []
    with DemoProgress(instance, ["first", "second"], poll_s=0.001, out=lambda m, **_: lines.append(m)) as progress:
        for _ in range(3):
            assert dg.materialize([first, second], instance=instance).success
        assert not progress._thread.is_alive()
    assert len(lines) == 6


def test_the_first_estimate_is_not_blown_up_by_start_up_time(monkeypatch):
    import assets.demo_progress as dp

    progress = DemoProgress(dg.DagsterInstance.ephemeral(), ["human_labels", "criteria", "policy_evaluation"])
    monkeypatch.setattr(dp.time, "time", lambda: progress.t0 + 6.0)  # 6 s of start-up before a 1 s asset
    progress.done = ["human_labels"]
    reference_left = dp.REFERENCE_S["criteria"] + dp.REFERENCE_S["policy_evaluation"]
    assert reference_left < progress.eta_s() < 1.3 * reference_left  # not 6x the reference
    monkeypatch.setattr(dp.time, "time", lambda: progress.t0 + 300.0)  # criteria took far longer: believe it
    progress.done = ["human_labels", "criteria"]
    assert progress.eta_s() > 3 * dp.REFERENCE_S["policy_evaluation"]
