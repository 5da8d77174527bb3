"""Reads of the model registry (``models``): the newest complete model of a kind, lineage."""

from __future__ import annotations

import json
from typing import Any

from warehouse.store import Warehouse

_COLUMNS = ("model_id, kind, base, hyperparams, input_snapshots, metrics, artifact_path, created_at")
_JSON = ("hyperparams", "input_snapshots", "metrics")


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.loads(v) if k in _JSON and isinstance(v, str) else v for k, v in row.items()}


def latest_model(wh: Warehouse, kind: str) -> dict[str, Any] | None:
    """The newest registered model of ``kind`` (sft | reward | grpo), or None."""
    df = wh.sql(f"SELECT {_COLUMNS} FROM models_latest WHERE kind = ? ORDER BY created_at DESC LIMIT 1", [kind])
    return _decode(df.row(0, named=True)) if df.height else None


def get_model(wh: Warehouse, model_id: str) -> dict[str, Any] | None:
    df = wh.sql(f"SELECT {_COLUMNS} FROM models_latest WHERE model_id = ?", [model_id])
    return _decode(df.row(0, named=True)) if df.height else None
