"""Ingestion assets: prompts (one partition per batch) and the seed data they are judged against."""


from collections import Counter
from collections.abc import Callable, Sequence

import dagster as dg

from assets.ingest_metadata import human_label_metadata, preference_pair_metadata
from assets.partitions import prompt_batches
from resources.datasets import DatasetsResource
from resources.readers import IngestError, Parsed
from resources.warehouse import WarehouseResource, markdown_preview
from warehouse.schema import Event, PromptMembershipRow

GROUP = "ingest"


def _read(read: Callable[[], Parsed]) -> Parsed:
    """Read an input; a file that cannot be read fails the run with a message naming it."""
    try:
        return read()
    except IngestError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


def _record(context: dg.AssetExecutionContext, warehouse: WarehouseResource, parsed: Parsed,
            main_table: str, extra: Sequence[Event] = (), metadata: dict | None = None) -> dg.MaterializeResult:
    reasons = Counter(q.reason.split(" of ")[0].split(" (")[0] for q in parsed.quarantined)
    context.log.info(f"read {len(parsed.rows)} rows for {main_table} ({len(parsed.quarantined)} quarantined); "
                     "committing them as one snapshot")
    if parsed.quarantined:
        context.log.warning(f"{len(parsed.quarantined)} items quarantined: {dict(reasons)}")
    metadata = {
        "quarantined": dg.MetadataValue.int(len(parsed.quarantined)),
        "quarantine_reasons": dg.MetadataValue.json(dict(reasons)),
        "quarantine_preview": dg.MetadataValue.md(markdown_preview(parsed.quarantined)),
        **(metadata or {}),
    }
    return warehouse.record(context, [*parsed.rows, *extra, *parsed.quarantined], main_table=main_table,
                            metadata=metadata)


@dg.asset(
    group_name=GROUP,
    partitions_def=prompt_batches,
    code_version="2",
    kinds={"duckdb", "parquet"},
    description="User greeting requests, one partition per batch (built-in sample, paper files, inbox files). "
    "Bad lines go to `quarantine` with file, line and reason. A prompt is stored once (`prompts`, keyed by its "
    "text; `batch` = the batch that first brought it); every batch that contains it gets a `prompt_memberships` "
    "row, so a batch's prompts — the `batch_prompts` view, which the partitioned Path A assets read — include "
    "those first seen in another batch.",
)
def prompts(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, datasets: DatasetsResource
) -> dg.MaterializeResult:
    parsed = _read(lambda: datasets.prompt_batch(context.partition_key))
    # A prompt file may name its writing scenario per line (`"scenario": "couplet"`); default greeting.
    parsed.rows = [p.model_copy(update={"scenario": str(p.meta["scenario"])}) if p.meta.get("scenario") else p
                   for p in parsed.rows]
    members = [PromptMembershipRow(prompt_id=p.event_id(), batch=context.partition_key, source_ref=p.source_ref)
               for p in parsed.rows]
    return _record(context, warehouse, parsed, "prompts", members, {"batch_prompts": len(members)})


@dg.asset(group_name=GROUP, code_version="1", kinds={"duckdb", "parquet"},
          description="Instruction/response pairs for SFT: the built-in good greetings and the paper's sft.json.")
def seed_sft_examples(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, datasets: DatasetsResource
) -> dg.MaterializeResult:
    return _record(context, warehouse, _read(datasets.sft_examples), "seed_sft_examples")


@dg.asset(group_name=GROUP, code_version="1", kinds={"duckdb", "parquet"},
          description="Published preference pairs (prompt, chosen, rejected): built-in good-vs-bad and the paper's.")
def seed_preference_pairs(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, datasets: DatasetsResource
) -> dg.MaterializeResult:
    parsed = _read(datasets.preference_pairs)
    return _record(context, warehouse, parsed, "seed_preference_pairs", metadata=preference_pair_metadata(parsed.rows))


@dg.asset(group_name=GROUP, code_version="1", kinds={"duckdb", "parquet"},
          description="Human-labelled (prompt, response, 0/1) examples: the built-in sample and the paper's evaluation set.")
def human_labels(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, datasets: DatasetsResource
) -> dg.MaterializeResult:
    parsed = _read(datasets.human_labels)
    return _record(context, warehouse, parsed, "human_labels", metadata=human_label_metadata(parsed.rows))
