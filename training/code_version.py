"""The version of the training code: a hash of this package's source files.

Model ids include it, so a fix to a trainer gives new ids and retrains instead of silently
registering the artifact the old code wrote.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


@functools.cache
def code_version(root: Path = PACKAGE_DIR) -> str:
    """16 hex chars over every ``*.py`` under ``root`` (relative path and bytes). Computed once per
    process; Dagster's default executor runs each step in a fresh process, so edits are seen."""
    h = hashlib.blake2b(digest_size=8)
    for path in sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()
