"""TrainingResource: where models live and how a training process is launched.

Training runs out of process through Dagster Pipes (``PipesSubprocessClient`` by default), so a
GPU job moves to Kubernetes or Ray by swapping the ``pipes_client`` resource. With more than one
visible GPU the command is ``torchrun``: one rank per GPU (``training/distributed.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from resources.model_store import EMBEDDED_MODEL, ModelStore, warm_starts
from warehouse.config import zhufu_home


class TrainingResource(dg.ConfigurableResource):
    model_store: str | None = Field(default=None, description="model store directory (default $ZHUFU_HOME/models)")
    base_model: str = Field(default=EMBEDDED_MODEL, description="base checkpoint: store name, path or hub id")
    python: str | None = Field(default=None, description="interpreter for training processes (default: this one)")
    launcher: Literal["auto", "python", "torchrun"] = Field(
        default="auto", description="auto: torchrun with one rank per GPU when more than one GPU is visible")
    gpus: int | None = Field(default=None, description="torchrun ranks (default: every visible GPU)")

    def store(self) -> ModelStore:
        return ModelStore(self.model_store)

    def resolve(self, model: str | None = None) -> str:
        return self.store().resolve(model or self.base_model)

    def start_from(self, kind: str, base: str | None, warm_start: bool) -> tuple[str, dict]:
        """(model id to train from, lineage): the shipped ``kind`` warm start (the embedded model with
        its GPU-trained adapter merged, ``training.warm_start``) when asked for, the base is the
        embedded default and the adapter ships; else the base itself."""
        base = base or self.base_model
        shipped = warm_starts().get(kind) if warm_start and base in (EMBEDDED_MODEL, "embedded", "default") else None
        if shipped is None:
            return base, {}
        return f"{EMBEDDED_MODEL}+{kind}", {"warm_start": kind, "warm_start_commit": shipped.get("commit"),
                                           "warm_start_built_at": shipped.get("built_at")}

    def run_dir(self, asset: str, run_id: str) -> Path:
        path = zhufu_home() / "training" / asset / run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def artifact_dir(self, model_id: str) -> Path:
        return self.store().root / model_id

    def command(self, module: str, config_path: Path) -> list[str]:
        import torch

        from training import distributed

        launcher = self.launcher
        if launcher == "auto":
            launcher = "torchrun" if torch.cuda.device_count() > 1 else "python"
        ranks = (self.gpus or max(1, torch.cuda.device_count())) if launcher == "torchrun" else None
        return distributed.command(module, config_path, ranks=ranks, python=self.python)
