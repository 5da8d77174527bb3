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
    instance = dg.DagsterInstance.ephemeral()
    lines: list[str] = []
    with DemoProgress(instance, ["first", "second", "third"], poll_s=0.05, out=lambda m, **_: lines.append(m)):
        assert dg.materialize([first, second], instance=instance).success
    assert len(lines) == 2 and lines[0].startswith("\n[demo] 1/3 assets · first done")
    assert "left" in lines[1] and lines[1].startswith("\n[demo] 2/3 assets · second done")
