"""inbox_sensor: each new or changed prompt file in the inbox becomes a partition and a run.

The cursor maps partition key -> file signature (size and mtime), so a file is ingested once,
and again only if it changes. Standing batches (the built-in sample, the paper's prompt files)
are registered on the first tick.
"""


import json

import dagster as dg

from assets.ingest import prompts
from assets.partitions import prompt_batches
from resources.datasets import DatasetsResource


def _signature(path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


@dg.sensor(
    asset_selection=[prompts],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers a prompt_batches partition per new inbox file (txt, jsonl, parquet) and materializes it.",
)
def inbox_sensor(context: dg.SensorEvaluationContext, datasets: DatasetsResource) -> dg.SensorResult:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(prompt_batches.name))
    current = {key: _signature(path) for key, path in datasets.inbox_files().items()}
    standing = [b for b in datasets.standing_batches() if b not in known]

    new_or_changed = sorted(k for k, sig in current.items() if seen.get(k) != sig)
    to_add = sorted({*standing, *(k for k in new_or_changed if k not in known)})
    run_requests = [
        dg.RunRequest(partition_key=k, run_key=f"{k}@{current[k]}") for k in new_or_changed
    ] + [dg.RunRequest(partition_key=k, run_key=f"{k}@standing") for k in standing]
    if new_or_changed:
        context.log.info(f"new or changed inbox files: {new_or_changed}")
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[prompt_batches.build_add_request(to_add)] if to_add else [],
        cursor=json.dumps({**seen, **current}, sort_keys=True),
    )
