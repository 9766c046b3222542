"""Inference backends behind one protocol; see :mod:`harness.backends.base`."""

from harness.backends.base import (
    Backend,
    BackendBase,
    BackendContext,
    Engine,
    Runner,
    RunnerBase,
    available_backends,
    get_backend,
)

__all__ = [
    "Backend",
    "BackendBase",
    "BackendContext",
    "Engine",
    "Runner",
    "RunnerBase",
    "available_backends",
    "get_backend",
]
