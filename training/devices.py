"""Device and precision choices shared by every trainer: bf16 on CUDA, fp32 on CPU."""

from __future__ import annotations

import torch


def has_cuda() -> bool:
    return torch.cuda.is_available()


def dtype() -> torch.dtype:
    return torch.bfloat16 if has_cuda() else torch.float32


def device() -> str:
    return "cuda" if has_cuda() else "cpu"


def gpu_count() -> int:
    return torch.cuda.device_count() if has_cuda() else 0


def describe() -> str:
    if has_cuda():
        return f"{torch.cuda.get_device_name()} x{gpu_count()}"
    return f"cpu ({torch.get_num_threads()} threads)"


def peak_memory_gb() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if has_cuda() else None
