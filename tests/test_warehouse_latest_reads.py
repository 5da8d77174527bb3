"""``Warehouse.sql`` reads ``<table>_latest`` from the bare projection while nothing is superseded
(``warehouse.latest_reads``), and answers exactly what the lake's view answers in every state: before any
correction, after one (by this handle or another), after maintenance folded it, sandboxed or not."""

from __future__ import annotations

import datetime as dt

from warehouse import Warehouse
from warehouse.latest_reads import tables_read
from warehouse.maintenance import MaintenancePolicy, maintain
from warehouse.schema import VerdictRow


def _verdict(candidate: str, label: int, reason: str = "r") -> VerdictRow:
    return VerdictRow(candidate_id=candidate, stage="judge", label=label, reason=reason, agent_version="1")


def _rows(wh, view: str, **kw) -> list[tuple]:
    return sorted(wh.sql(f"SELECT * FROM {view}", **kw).rows())


def _anti_join(wh, **kw) -> bool:
    """Whether a label count over ``verdicts_latest`` through ``wh.sql`` runs the superseded-row join."""
    plan = wh.sql("EXPLAIN SELECT label, count(*) FROM verdicts_latest GROUP BY label", **kw)
    return "ANTI" in " ".join(str(v) for row in plan.rows() for v in row)


def test_the_names_a_query_reads():
    assert tables_read("SELECT * FROM verdicts_latest v JOIN Candidates_Latest c USING (candidate_id)") == [
        "candidates", "verdicts"]
    assert tables_read("SELECT * FROM verdicts_current") == [] and tables_read("SELECT 1 AS x_latest") == []


def test_latest_skips_the_superseded_join_only_while_nothing_is_superseded(wh):
    wh.append([_verdict("a", 0), _verdict("b", 1)])
    assert not _anti_join(wh)
    assert _rows(wh, "verdicts_latest") == _rows(wh, "lake.verdicts_latest")  # the lake's own view

    wh.append([_verdict("a", 1, "改判")])  # supersedes a's first row
    assert _anti_join(wh)
    latest = _rows(wh, "verdicts_latest")
    assert latest == _rows(wh, "lake.verdicts_latest") and len(latest) == 2
    assert {r[0] for r in wh.sql("SELECT label FROM verdicts_latest WHERE candidate_id = 'a'").rows()} == {1}

    maintain(wh, MaintenancePolicy(snapshot_retention=dt.timedelta(days=1)))  # folds the superseded row
    assert wh.count("verdicts_superseded") == 0 and not _anti_join(wh)
    assert _rows(wh, "verdicts_latest") == latest
    # no shadow outlives its read: the temp catalog is empty between reads
    assert wh.sql("SELECT count(*) AS n FROM duckdb_views() WHERE temporary AND NOT internal")["n"][0] == 0


def test_a_correction_committed_by_another_handle_is_seen_by_the_next_read(wh):
    wh.append([_verdict("a", 0), _verdict("b", 1)])
    assert len(_rows(wh, "verdicts_latest")) == 2  # this handle's cursor has checked: nothing superseded
    Warehouse(wh.config).append([_verdict("a", 1, "改判"), _verdict("b", 0, "改判")])
    latest = wh.sql("SELECT candidate_id, label FROM verdicts_latest ORDER BY candidate_id").rows()
    assert latest == [("a", 1), ("b", 0)]


def test_sandboxed_and_time_travel_reads_answer_as_the_lake_view(wh):
    first = wh.append([_verdict("a", 0), _verdict("b", 1)]).snapshot_id
    wh.append([_verdict("a", 1, "改判")])
    assert _rows(wh, "verdicts_latest", sandboxed=True) == _rows(wh, "lake.verdicts_latest")
    assert len(_rows(wh, "verdicts_latest", as_of=first)) == 2
    assert _rows(wh, "verdicts_latest", as_of=first) == _rows(wh, "lake.verdicts_latest", as_of=first)


def test_a_fold_alone_puts_latest_back_on_the_bare_projection(wh):
    from warehouse.maintenance import fold

    wh.append([_verdict("a", 0), _verdict("b", 1)])
    wh.append([_verdict("a", 1, "改判")])
    latest = _rows(wh, "verdicts_latest")
    assert _anti_join(wh) and fold(wh) == {"verdicts": 1}
    assert not _anti_join(wh) and _rows(wh, "verdicts_latest") == latest == _rows(wh, "lake.verdicts_latest")
