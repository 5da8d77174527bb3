"""One process per GPU under ``torchrun``: which rank this is, and the few collectives the trainers use.

``torchrun --nproc_per_node N -m training.<kind>`` (what ``TrainingResource.command`` runs with more
than one visible GPU) sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. :func:`init` binds each rank
to its own GPU (``torch.cuda.set_device``, so every ``"cuda"`` in the trainers means that rank's GPU)
and joins the process group (NCCL on CUDA, gloo on CPU, which the tests use). Only rank 0 reports
over Pipes and writes the artifact (:mod:`training.artifacts`). Without torchrun nothing changes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def init() -> None:
    if world_size() <= 1 or active():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def shutdown() -> None:
    if active():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def shard(items: Sequence) -> list:
    """This rank's share of a global batch (every rank draws the same batch from the same seed)."""
    return list(items[rank()::world_size()])


def command(module: str, config_path: str | Path, *, ranks: int | None, python: str | None = None) -> list[str]:
    """``python -m <module> --config <path>``; under ``torchrun`` with ``ranks`` ranks unless ``ranks`` is None."""
    torchrun = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"] if ranks else []
    return [python or sys.executable, *torchrun, "-m", module, "--config", str(config_path)]


def average_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """Mean of every rank's gradients, in one flat all-reduce (the loss is a mean over each rank's
    equal share of the batch, so the mean of the ranks' gradients is the whole batch's)."""
    if not active():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view_as(g))
        offset += g.numel()
