"""A built TensorRT engine as the builder (:mod:`harness.trt.backend`) hands it to the runner
(:mod:`harness.trt.runner`): the serialized plan, its build facts, and how to run it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.backends.base import BuildInfo
from harness.backends.engine_cache import EngineCache
from harness.trt.compat import TrtApi


@dataclass(frozen=True)
class RunOptions:
    """How a runner drives an engine: the backend's run-time options and the run's folders."""

    cuda_graph: bool = True  # replay one captured inference per iteration (trtexec 11's default)
    transfers: bool = False  # time host-to-device and device-to-host copies in every iteration
    layer_profile: bool = True  # per-layer times through IProfiler, in a separate pass after measuring
    artifact_dir: Path | None = None  # trtexec-format files per case go under it; None writes none
    # TensorRT-RTX compiles kernels just in time; its runtime cache keeps them for the next run, under this label
    # in the engine cache folder (None: not kept).
    runtime_cache: EngineCache | None = None
    runtime_cache_label: str = ""


@dataclass
class BuiltEngine:
    """A serialized engine and its build facts; deserialized on a GPU when the first runner needs it."""

    api: TrtApi
    case_id: str
    plan: bytes
    build: BuildInfo
    run: RunOptions = field(default_factory=RunOptions)
    # Set by the runner, once per built engine (trials create several runners): the runtime must outlive the engine
    # it deserialized.
    runtime: Any = None
    cuda_engine: Any = None
    artifacts_written: bool = False  # the trtexec-format files of the first runner's trial
