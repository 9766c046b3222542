"""Whether this machine can run the GPU tests, and why not: one reason for every GPU-marked test's skip."""

from __future__ import annotations


def cuda_reason() -> str | None:
    """None where torch sees a CUDA GPU; else why not, for the skip's reason."""
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    return None if torch.cuda.is_available() else "no CUDA GPU"


CUDA_REASON = cuda_reason()
