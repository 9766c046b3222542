"""The backend protocol: ``build(model, case) -> Engine``, ``engine.runner(feeds) -> Runner``, ``runner.step()``.

A backend turns a prepared ONNX model into an engine (for ONNX Runtime the built session counts as the engine) and
an engine into a runner bound to one set of inputs. The measurement loop only ever calls :meth:`Runner.step`, so
every backend is timed the same way. Backends are registered by name with an import path, and imported only when
chosen, so their heavy libraries stay optional.

Every capability a caller needs is declared on :class:`Backend` and :class:`Runner`; :class:`BackendBase` and
:class:`RunnerBase` give the defaults, so a caller reads an attribute instead of asking whether it exists. Where a
backend keeps files (engine caches, per-case artifacts) comes in a :class:`BackendContext` at creation.
"""

from __future__ import annotations

import difflib
import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from harness.attribution.record import LayerProfile
from harness.core.errors import HarnessError
from harness.core.measurement import Measurement
from harness.models.sources import PreparedModel
from harness.suite.schema import Case, MeasureSpec


@dataclass
class BuildInfo:
    """What building the engine cost: recorded per case and gated like any other metric."""

    build_time_ms: float
    engine_bytes: int | None = None
    cache_hit: bool = False
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BackendContext:
    """The run's folders, given to a backend when it is created (a backend never learns them later).

    ``cache_dir``: what outlives the run (built engines, timing and runtime caches, scratch files), shared by runs
    on one machine. ``artifact_dir``: where per-case files go (trtexec-format times, layer profiles); None writes
    none, as outside a session.
    """

    cache_dir: Path = Path(".harness-cache")
    artifact_dir: Path | None = None


class Runner(Protocol):
    """One engine bound to one set of inputs, ready to be timed."""

    def step(self) -> dict[str, float] | None:
        """Run one inference and wait for it. Return extra per-iteration timings in ms (e.g. ``gpu_compute_ms``)
        that the backend measured itself, or None; host latency is measured around this call by the caller."""

    def outputs(self) -> dict[str, np.ndarray]:
        """Run once and return the outputs by name, for accuracy checks."""

    def close(self) -> None:
        """Release what the runner holds (device buffers, streams)."""

    def measure(self, spec: MeasureSpec, batch_size: int) -> Measurement | None:
        """One trial timed by the backend's own tool (trtexec runs its loop itself), or None: the caller times
        :meth:`step` in harness.measure.loop."""

    def profile(self, iterations: int) -> LayerProfile | None:
        """Per-layer times over ``iterations`` inferences, in a pass of its own after the gated trials (profilers
        slow what they watch), or None where the backend has no profiler."""


class RunnerBase(ABC):
    """A runner's defaults: the caller times :meth:`step` (``measure`` returns None), and ``close`` has nothing to
    release."""

    @abstractmethod
    def step(self) -> dict[str, float] | None: ...

    @abstractmethod
    def outputs(self) -> dict[str, np.ndarray]: ...

    def close(self) -> None:
        return None

    def measure(self, spec: MeasureSpec, batch_size: int) -> Measurement | None:
        return None

    def profile(self, iterations: int) -> LayerProfile | None:
        return None


class Engine(Protocol):
    build: BuildInfo

    def runner(self, feeds: dict[str, np.ndarray]) -> Runner: ...


class Backend(Protocol):
    name: str
    precisions: frozenset[str]  # precisions this backend can execute
    precision_notes: Mapping[str, str]  # precision -> why this backend cannot run it (the skip reason)
    uses_gpu: bool  # timings wait for a GPU: the baseline key names it, telemetry judges its clocks
    # True: the precision stage hands ``build`` the recipe's typed ONNX model; False: the fp32 model, and the backend
    # applies the precision itself (PyTorch dtypes, TensorRT's legacy builder flags).
    takes_typed_models: bool
    context: BackendContext

    def version(self) -> str: ...

    def settings(self) -> dict[str, Any]:
        """Settings that change performance (threads, providers, ...), recorded with every result."""

    def unavailable(self) -> str | None:
        """Why no case can run on this machine (e.g. no CUDA GPU), or None. The session asks before preparing the
        model, so a skipped case costs no export or quantization."""

    def build(self, model: PreparedModel, case: Case) -> Engine: ...


class BackendBase(ABC):
    """A backend's defaults: fp32 only, on the CPU, built from the recipe's typed model, always available here, no
    settings, the default folders."""

    name: str = ""
    precisions: frozenset[str] = frozenset({"fp32"})
    precision_notes: Mapping[str, str] = MappingProxyType({})
    uses_gpu: bool = False
    takes_typed_models: bool = True
    context: BackendContext = BackendContext()

    def __init__(self, context: BackendContext | None = None) -> None:
        self.context = context or BackendContext()

    @abstractmethod
    def version(self) -> str: ...

    def settings(self) -> dict[str, Any]:
        return {}

    def unavailable(self) -> str | None:
        return None

    @abstractmethod
    def build(self, model: PreparedModel, case: Case) -> Engine: ...


# name -> "module:factory". The factory takes the backend options (dict) and a BackendContext and returns a Backend,
# or raises HarnessError naming the extra to install.
REGISTRY: dict[str, str] = {
    "onnxruntime": "harness.backends.onnxruntime:create",
    "tensorrt": "harness.trt.backend:create",
    "trtexec": "harness.backends.trtexec:create",
    "torch": "harness.backends.torch:create",
}


def get_backend(name: str, options: dict[str, Any] | None = None, context: BackendContext | None = None) -> Backend:
    """The backend ``name``, created with ``options`` and the run's folders (default: ``.harness-cache``, no
    artifacts)."""
    if name not in REGISTRY:
        near = difflib.get_close_matches(name, list(REGISTRY), n=1)
        hint = f"did you mean '{near[0]}'?" if near else f"choose one of {', '.join(sorted(REGISTRY))}"
        raise HarnessError(f"unknown backend '{name}'; {hint}")
    module_name, factory = REGISTRY[name].split(":")
    module = importlib.import_module(module_name)
    backend: Backend = getattr(module, factory)(dict(options or {}), context or BackendContext())
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
