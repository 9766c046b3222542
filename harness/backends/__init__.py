"""Inference backends behind one protocol; see :mod:`harness.backends.base`."""

from harness.backends.base import Backend, Engine, Runner, available_backends, get_backend

__all__ = ["Backend", "Engine", "Runner", "available_backends", "get_backend"]
