"""Fused kernels for training forward/backward passes of small Llama-family models.

At SmolLM2's width (576) the matrix products are cheap and the many element-wise kernels of
transformers' eager modules are a large part of a step: its RMSNorm alone is about six kernels
each way, in fp32. Options (``bench/RESULTS.md`` measures each):

- ``fused_norm``: every ``*RMSNorm`` module calls ``torch.nn.functional.rms_norm`` — one fused
  kernel forward and one backward on CUDA in recent torch; no new dependency.
- ``liger``: Liger Kernel's Triton RMSNorm, rotary embedding and SwiGLU (an optional
  dependency; its kernels compile on first use).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.config import Kernels


def _rms_norm_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(hidden_states, (hidden_states.shape[-1],), self.weight.to(hidden_states.dtype),
                      self.variance_epsilon)


def fuse_rms_norms(model: torch.nn.Module) -> int:
    """Point each RMSNorm module's forward at the fused op; returns how many."""
    n = 0
    for module in model.modules():
        if type(module).__name__.endswith("RMSNorm") and hasattr(module, "variance_epsilon"):
            module.forward = _rms_norm_forward.__get__(module)
            n += 1
    return n


def apply(model: torch.nn.Module, kernels: Kernels) -> str:
    """Patch ``model`` in place; returns what was applied. ``auto``: fused_norm on CUDA (measured
    faster, bench/RESULTS.md), transformers' modules elsewhere."""
    if kernels == "auto":
        kernels = "fused_norm" if torch.cuda.is_available() else "transformers"
    if kernels == "transformers":
        return "transformers"
    if kernels == "fused_norm":
        return f"fused_norm ({fuse_rms_norms(model)} norms)"
    if kernels == "liger":
        try:
            from liger_kernel.transformers import _apply_liger_kernel_to_instance
        except ImportError as e:
            raise RuntimeError("kernels='liger' needs the liger-kernel package (pip install liger-kernel)") from e
        _apply_liger_kernel_to_instance(model=model, rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                        fused_linear_cross_entropy=False)
        return "liger"
    raise ValueError(f"unknown kernels {kernels!r}")
