"""Model artifacts: trained into ``<dir>.partial`` and renamed only when complete, so a killed run
never leaves something that looks like a model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from training import distributed

MANIFEST = "zhufu_manifest.json"


def partial_dir(output_dir: str | Path) -> Path:
    """``<dir>.partial``, emptied. Under torchrun rank 0 prepares it and the other ranks wait for that
    (so none writes into a directory about to be deleted); only rank 0 finalizes."""
    out = Path(output_dir)
    tmp = out.with_name(out.name + ".partial")
    if distributed.is_main():
        if tmp.exists():
            shutil.rmtree(tmp)  # leftovers of a killed run
        tmp.mkdir(parents=True)
    distributed.barrier()
    return tmp


def finalize(tmp: Path, output_dir: str | Path, manifest: dict[str, Any]) -> Path:
    out = Path(output_dir)
    if not distributed.is_main():
        raise RuntimeError("only rank 0 writes the artifact")
    (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def is_complete(output_dir: str | Path) -> bool:
    return (Path(output_dir) / MANIFEST).is_file()


def read_manifest(output_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(output_dir) / MANIFEST).read_text(encoding="utf-8"))


ADAPTER_DIR = "adapter"


def save_adapter(peft_model, artifact_tmp: Path) -> Path:
    """The LoRA adapter alone (``adapter/``, a few MB) beside the merged weights: what a warm start ships."""
    out = Path(artifact_tmp) / ADAPTER_DIR
    peft_model.save_pretrained(out, safe_serialization=True)
    return out
