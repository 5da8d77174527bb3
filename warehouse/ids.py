"""Deterministic ids: a content hash, so the same event always gets the same id."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def content_id(*parts: Any, length: int = 24) -> str:
    """Hex digest (``length`` chars) of the canonical JSON of ``parts``."""
    return hashlib.blake2b(canonical_json(list(parts)).encode("utf-8"), digest_size=16).hexdigest()[:length]
