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


class GradientAverager:
    """Averages gradients over the ranks while backward still runs, as DDP's reducer does, for the loops that
    own their backward (the fast reward-model engine, the judge). Parameters are grouped into buckets of about
    ``bucket_mb`` in reverse order — the order backward produces their gradients; a bucket's all-reduce starts
    once each of its gradients is accumulated (a hook per parameter), always in bucket order, so every rank
    issues the same collectives in the same order. :meth:`finish` (before the optimizer step) waits for them and
    writes the means back. With gradient accumulation, set ``armed`` False for every backward but the step's last
    (the hooks then wait for the accumulated gradients).
    A parameter backward never reaches is reduced (as zeros) in :meth:`finish` and holds back the buckets after
    its own, costing overlap, not correctness. Without torchrun it does nothing."""

    def __init__(self, params: Sequence[torch.nn.Parameter], bucket_mb: float = 64.0):
        self.on = active()
        self.buckets: list[list[torch.nn.Parameter]] = []
        self._hooks: list = []
        if not self.on:
            return
        params = [p for p in params if p.requires_grad]
        bucket: list[torch.nn.Parameter] = []
        size = 0
        for p in reversed(params):
            bucket.append(p)
            size += p.numel() * p.element_size()
            if size >= bucket_mb * 2**20:
                self.buckets.append(bucket)
                bucket, size = [], 0
        if bucket:
            self.buckets.append(bucket)
        self._where = {id(p): i for i, b in enumerate(self.buckets) for p in b}
        self.armed = True
        self._reset()
        self._hooks = [p.register_post_accumulate_grad_hook(self._ready) for p in params]

    def _reset(self) -> None:
        self._left = [len(b) for b in self.buckets]
        self._launched: list[tuple[torch.Tensor, object]] = []

    def _ready(self, p: torch.nn.Parameter) -> None:
        if not self.armed:
            return
        self._left[self._where[id(p)]] -= 1
        while len(self._launched) < len(self.buckets) and self._left[len(self._launched)] == 0:
            self._launch()

    def _launch(self) -> None:
        bucket = self.buckets[len(self._launched)]
        # a parameter this step did not reach has no gradient: it takes part as zeros and keeps None
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in bucket])
        flat.div_(world_size())  # sum of the shares of the mean; NCCL's AVG is not in gloo
        self._launched.append((flat, dist.all_reduce(flat, async_op=True)))

    def finish(self) -> None:
        """Wait for every bucket's all-reduce and write the averaged gradients back."""
        if not self.on:
            return
        while len(self._launched) < len(self.buckets):
            self._launch()
        for (flat, work), bucket in zip(self._launched, self.buckets, strict=True):
            work.wait()
            offset = 0
            for p in bucket:
                n = p.numel()
                if p.grad is not None:
                    p.grad.copy_(flat[offset: offset + n].view_as(p.grad))
                offset += n
        self._reset()

    def close(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
