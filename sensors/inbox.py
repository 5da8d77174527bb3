"""inbox_sensor: each new or changed prompt file in the inbox becomes a partition and a run.

Only complete files are ingested:
  * write a file under a ``.part`` name and rename it when done (``week1.txt.part`` ->
    ``week1.txt``): ``.part`` and hidden files are never read;
  * and a file is ingested only once its size and mtime are unchanged since the previous tick
    (about 30 s), which also covers a file copied straight into the inbox: seen on one tick,
    ingested on a later one once it has stopped changing.

The cursor holds the signature (size and mtime) of every ingested file, so a file is ingested once
and again only if it changes, and of every file waiting for its stability check. Standing batches
(the built-in sample, the paper's prompt files) are registered on the first tick.
"""

import json
from pathlib import Path

import dagster as dg

from assets.ingest import prompts
from assets.partitions import prompt_batches
from resources.datasets import DatasetsResource


def _signature(path: Path) -> str | None:
    try:
        st = path.stat()
    except OSError:  # removed or renamed since the listing
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


def _load_cursor(cursor: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """(ingested, waiting): partition key -> signature. An older cursor is a flat ingested map."""
    data = json.loads(cursor) if cursor else {}
    if set(data) <= {"ingested", "waiting"}:
        return dict(data.get("ingested", {})), dict(data.get("waiting", {}))
    return data, {}


@dg.sensor(
    asset_selection=[prompts],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers a prompt_batches partition per new inbox file (txt, jsonl, parquet) and materializes "
    "it once the file is complete: its size and mtime unchanged since the previous tick. Write large files "
    "as NAME.part and rename them when done (.part and hidden files are ignored).",
)
def inbox_sensor(context: dg.SensorEvaluationContext, datasets: DatasetsResource) -> dg.SensorResult:
    ingested, waiting = _load_cursor(context.cursor)
    known = set(context.instance.get_dynamic_partitions(prompt_batches.name))
    current = {key: sig for key, path in datasets.inbox_files().items() if (sig := _signature(path))}
    standing = [b for b in datasets.standing_batches() if b not in known]

    changed = {k: sig for k, sig in current.items() if ingested.get(k) != sig}
    ready = sorted(k for k, sig in changed.items() if waiting.get(k) == sig)  # stable since the last tick
    still_changing = {k: sig for k, sig in changed.items() if k not in ready}

    to_add = sorted({*standing, *(k for k in ready if k not in known)})
    run_requests = [
        dg.RunRequest(partition_key=k, run_key=f"{k}@{current[k]}") for k in ready
    ] + [dg.RunRequest(partition_key=k, run_key=f"{k}@standing") for k in standing]
    if ready:
        context.log.info(f"new or changed inbox files: {ready}")
    if still_changing:
        context.log.info(f"waiting for inbox files to stop changing: {sorted(still_changing)}")
    cursor = {"ingested": {**ingested, **{k: current[k] for k in ready}}, "waiting": still_changing}
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[prompt_batches.build_add_request(to_add)] if to_add else [],
        cursor=json.dumps(cursor, sort_keys=True),
    )
