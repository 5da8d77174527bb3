"""File exports of warehouse data in the formats trainers read."""

from __future__ import annotations

import json
from pathlib import Path

from warehouse.store import Warehouse


def export_preference_pairs_trl(wh: Warehouse, path: str | Path, *, as_of: int | None = None) -> int:
    """``preference_pairs_latest`` as TRL conversational JSONL (prompt / chosen / rejected).

    Written to a temporary file and renamed, so a reader never sees half a file.
    Returns the number of pairs written.
    """
    df = wh.sql(
        "SELECT pp.id, p.text AS prompt, pp.chosen, pp.rejected FROM preference_pairs_latest pp "
        "JOIN prompts p ON p.id = pp.prompt_id ORDER BY pp.id",
        as_of=as_of,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in df.iter_rows(named=True):
            f.write(json.dumps({
                "id": row["id"],
                "prompt": [{"role": "user", "content": row["prompt"]}],
                "chosen": [{"role": "assistant", "content": row["chosen"]}],
                "rejected": [{"role": "assistant", "content": row["rejected"]}],
            }, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return df.height
