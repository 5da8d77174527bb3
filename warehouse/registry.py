"""Reads of the model registry (``models``, gated by ``promotions``): the model of a kind in use, lineage."""

from __future__ import annotations

import json
from typing import Any

from warehouse.store import Warehouse

_COLUMNS = ("model_id", "kind", "base", "hyperparams", "input_snapshots", "metrics", "artifact_path", "created_at")
_JSON = ("hyperparams", "input_snapshots", "metrics")
_SELECT = ", ".join(f"m.{c}" for c in _COLUMNS)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.loads(v) if k in _JSON and isinstance(v, str) else v for k, v in row.items()}


def latest_model(wh: Warehouse, kind: str, *, promoted_only: bool = True) -> dict[str, Any] | None:
    """The newest promoted model of ``kind`` (sft | reward | judge | grpo), or None: the one used downstream.

    A model without a ``promotions`` row (registered before the gate existed) counts as promoted.
    ``promoted_only=False``: the newest registered, rejected or not (what was last trained)."""
    gate = "AND coalesce(p.promoted, true)" if promoted_only else ""
    df = wh.sql(f"SELECT {_SELECT} FROM models_latest m LEFT JOIN promotions_latest p ON p.model_id = m.model_id "
                f"WHERE m.kind = ? {gate} ORDER BY m.created_at DESC, m.model_id LIMIT 1", [kind])
    return _decode(df.row(0, named=True)) if df.height else None


def get_model(wh: Warehouse, model_id: str) -> dict[str, Any] | None:
    df = wh.sql(f"SELECT {_SELECT} FROM models_latest m WHERE model_id = ?", [model_id])
    return _decode(df.row(0, named=True)) if df.height else None


def promotion(wh: Warehouse, model_id: str) -> dict[str, Any] | None:
    """The current promotion decision of a model (None: none recorded, so it counts as promoted)."""
    df = wh.sql("SELECT model_id, kind, promoted, reason, metric, candidate, incumbent, baseline, incumbent_id, "
                "created_at FROM promotions_latest WHERE model_id = ?", [model_id])
    return df.row(0, named=True) if df.height else None
