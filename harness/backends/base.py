"""The backend protocol: ``build(model, case) -> Engine``, ``engine.runner(feeds) -> Runner``, ``runner.step()``.

A backend turns a prepared ONNX model into an engine (for ONNX Runtime the built session counts as the engine) and
an engine into a runner bound to one set of inputs. The measurement loop only ever calls :meth:`Runner.step`, so
every backend is timed the same way. Backends are registered by name with an import path, and imported only when
chosen, so their heavy libraries stay optional.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from harness.core.errors import HarnessError
from harness.models.prepare import PreparedModel
from harness.suite.schema import Case


@dataclass
class BuildInfo:
    """What building the engine cost: recorded per case and gated like any other metric."""

    build_time_ms: float
    engine_bytes: int | None = None
    cache_hit: bool = False
    details: dict[str, Any] = field(default_factory=dict)


class Runner(Protocol):
    """One engine bound to one set of inputs, ready to be timed."""

    def step(self) -> dict[str, float] | None:
        """Run one inference and wait for it. Return extra per-iteration timings in ms (e.g. ``gpu_compute_ms``)
        that the backend measured itself, or None; host latency is measured around this call by the caller."""

    def outputs(self) -> dict[str, np.ndarray]:
        """Run once and return the outputs by name, for accuracy checks."""

    def close(self) -> None:
        """Release what the runner holds (device buffers, streams)."""


class Engine(Protocol):
    build: BuildInfo

    def runner(self, feeds: dict[str, np.ndarray]) -> Runner: ...


class Backend(Protocol):
    name: str
    precisions: frozenset[str]  # precisions this backend can execute

    def version(self) -> str: ...

    def settings(self) -> dict[str, Any]:
        """Settings that change performance (threads, providers, ...), recorded with every result."""

    def build(self, model: PreparedModel, case: Case) -> Engine: ...

    # Optional: ``unavailable() -> str | None``, why no case can run on this machine (e.g. no CUDA GPU). The session
    # asks before preparing the model, so a skipped case costs no export or quantization.


# name -> "module:factory". The factory takes the backend options (dict) and returns a Backend, or raises
# HarnessError naming the extra to install.
REGISTRY: dict[str, str] = {
    "onnxruntime": "harness.backends.onnxruntime:create",
    "tensorrt": "harness.trt.backend:create",
    "trtexec": "harness.backends.trtexec:create",
    "torch": "harness.backends.torch:create",
}


def get_backend(name: str, options: dict[str, Any] | None = None) -> Backend:
    if name not in REGISTRY:
        near = difflib.get_close_matches(name, list(REGISTRY), n=1)
        hint = f"did you mean '{near[0]}'?" if near else f"choose one of {', '.join(sorted(REGISTRY))}"
        raise HarnessError(f"unknown backend '{name}'; {hint}")
    module_name, factory = REGISTRY[name].split(":")
    module = importlib.import_module(module_name)
    backend: Backend = getattr(module, factory)(dict(options or {}))
    return backend


def available_backends() -> dict[str, str | None]:
    """Backend name -> None when it can be created here, else the reason it cannot."""
    out: dict[str, str | None] = {}
    for name in REGISTRY:
        try:
            get_backend(name)
            out[name] = None
        except HarnessError as exc:
            out[name] = str(exc)
    return out


def check_options(backend: str, options: dict[str, Any], allowed: dict[str, type | tuple[type, ...]]) -> None:
    """Refuse unknown or mistyped backend options with a one-line message."""
    import difflib

    for key, value in options.items():
        if key not in allowed:
            near = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"known options: {', '.join(allowed) or 'none'}"
            raise HarnessError(f"backend '{backend}': unknown option '{key}'; {hint}")
        if not isinstance(value, allowed[key]) or (isinstance(value, bool) and allowed[key] is int):
            raise HarnessError(
                f"backend '{backend}': option '{key}' has the wrong type ({type(value).__name__}); "
                "fix it in the suite's backends section or in --backend-option"
            )
