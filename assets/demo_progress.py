"""``make demo``'s progress line: assets done of all, elapsed, and an estimate of what is left.

A thread reads the Dagster instance's event log (the runs the demo started, their STEP_SUCCESS and
STEP_FAILURE events) every few seconds and prints one line whenever an asset finishes. The estimate
weighs the assets still to run by reference durations (``REFERENCE_S``: one fresh-clone demo on the
2-core dev machine, bench/RESULTS.md), scaled by how fast this machine has been on the assets done so far —
shrunk towards the reference speed while little has run, since the first assets are one-second ones whose
elapsed time is mostly Dagster starting up (a fresh clone's first line said 54 minutes left of a 9-minute demo).
"""

from __future__ import annotations

import threading
import time

import dagster as dg

# seconds per asset in a fresh-clone demo on the 2-core dev machine (2026-11-27); assets not listed count 1 s
REFERENCE_S = {
    "criteria": 40, "judge_model": 34, "sft_model": 24, "criteria_scores": 9, "judge_principles": 24,
    "reflections": 44, "judge_agreement": 5, "judge_calibration": 36, "labeler_agreement": 34, "candidates": 10,
    "judge_scores": 4, "debate_arguments": 46, "verdicts": 14, "evaluator_model": 24, "reward_model": 23,
    "grpo_policy": 25, "mrpo_policy": 25, "policy_evaluation": 80, "exemplar_index": 3, "warehouse_maintenance": 1,
}
PRIOR_S = 30.0  # reference seconds' worth of belief that this machine runs at the reference speed


def _fmt(s: float) -> str:
    s = max(0, round(s))
    return f"{s // 60}m{s % 60:02d}s"


class DemoProgress:
    """``with DemoProgress(instance, planned): ...`` — ``planned``: every (asset, partition) step to run."""

    def __init__(self, instance: dg.DagsterInstance, planned: list[str], poll_s: float = 3.0, out=print):
        self.instance, self.planned, self.poll_s, self.out = instance, planned, poll_s, out
        self.t0 = time.time()
        self.done: list[str] = []
        self.seen: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DemoProgress:
        # an ephemeral instance keeps its runs in one in-memory SQLite database: a second thread reading it
        # takes table locks that fail the run's own writes ("database table is locked: runs"), so there the
        # lines come only at the end
        if not self.instance.is_ephemeral:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._poll()

    def eta_s(self) -> float | None:
        ref_done = sum(REFERENCE_S.get(a, 1) for a in self.done)
        if not ref_done:
            return None
        left = list(self.planned)
        for a in self.done:
            if a in left:
                left.remove(a)
        # this machine against the reference, as if PRIOR_S reference seconds had already run at speed 1
        speed = (time.time() - self.t0 + PRIOR_S) / (ref_done + PRIOR_S)
        return speed * sum(REFERENCE_S.get(a, 1) for a in left)

    def _poll(self) -> None:
        runs = self.instance.get_run_records(dg.RunsFilter(created_after=_utc(self.t0 - 1)))
        for rec in runs:
            events = self.instance.all_logs(rec.dagster_run.run_id, of_type={dg.DagsterEventType.STEP_SUCCESS,
                                                                             dg.DagsterEventType.STEP_FAILURE})
            for e in events:
                key = (rec.dagster_run.run_id, e.step_key or "")
                if key in self.seen or not e.step_key:
                    continue
                self.seen.add(key)
                self.done.append(e.step_key)
                ok = e.dagster_event.event_type == dg.DagsterEventType.STEP_SUCCESS
                eta = self.eta_s()
                # a leading newline: a model's progress bar may have left the cursor mid-line
                self.out(f"\n[demo] {len(self.done)}/{len(self.planned)} assets · {e.step_key} "
                         f"{'done' if ok else 'FAILED'} · {_fmt(time.time() - self.t0)} elapsed"
                         + (f" · about {_fmt(eta)} left" if eta is not None and len(self.done) < len(self.planned)
                            else ""), flush=True)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self._poll()
            except Exception as exc:  # a progress line is never worth failing the demo for
                self.out(f"[demo] progress unavailable: {exc}", flush=True)
                return


def _utc(ts: float):
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC)
