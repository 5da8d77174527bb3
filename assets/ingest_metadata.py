"""What the UI shows for the seed data: where the labels and pairs stand against the length baseline.

DESIGN.md: the seed data is strongly length-biased, so the first thing worth seeing after an ingest
is how far length alone separates the labels (and the chosen from the rejected answers).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import mean, median

import dagster as dg

from assets.plots import histogram, markdown_image
from training.metrics import auc
from warehouse.schema import HumanLabelRow, SeedPairRow


def _length_table(groups: dict[str, Sequence[int]], key: str) -> dg.TableMetadataValue:
    total = sum(len(v) for v in groups.values()) or 1
    schema = dg.TableSchema(columns=[
        dg.TableColumn(key, "string"), dg.TableColumn("rows", "int"), dg.TableColumn("share", "float"),
        dg.TableColumn("mean_chars", "float"), dg.TableColumn("median_chars", "float"),
    ])
    records = [dg.TableRecord({key: name, "rows": len(v), "share": round(len(v) / total, 3),
                               "mean_chars": round(mean(v), 1), "median_chars": float(median(v))})
               for name, v in groups.items() if v]
    return dg.MetadataValue.table(records=records, schema=schema)


def human_label_metadata(rows: Sequence[HumanLabelRow]) -> dict[str, dg.MetadataValue]:
    """Label balance per label, the response-length histogram by label and the length-only AUC."""
    groups = {"excellent (1)": [len(r.response) for r in rows if r.label == 1],
              "not excellent (0)": [len(r.response) for r in rows if r.label == 0]}
    png = histogram(groups, xlabel="response length (characters)")
    length_auc = auc([len(r.response) for r in rows], [r.label for r in rows])
    return {
        "label_balance": _length_table(groups, "label"),
        "length_by_label": dg.MetadataValue.md(markdown_image(png, "response length by label")),
        "length_only_auc": dg.MetadataValue.float(round(length_auc, 3) if length_auc is not None else float("nan")),
    }


def preference_pair_metadata(rows: Sequence[SeedPairRow]) -> dict[str, dg.MetadataValue]:
    """Chosen vs rejected lengths, and how often "the longer answer wins" is right."""
    groups = {"chosen": [len(r.chosen) for r in rows], "rejected": [len(r.rejected) for r in rows]}
    png = histogram(groups, xlabel="answer length (characters)")
    longer = [r for r in rows if len(r.chosen) != len(r.rejected)]
    wins = sum(len(r.chosen) > len(r.rejected) for r in longer) / len(longer) if longer else float("nan")
    return {
        "length_by_side": _length_table(groups, "side"),
        "length_histogram": dg.MetadataValue.md(markdown_image(png, "chosen vs rejected length")),
        "longer_wins_rate": dg.MetadataValue.float(round(wins, 3)),
    }
