"""ONNX Runtime backend: the CPU execution provider by default, any installed provider on request.

The built ``InferenceSession`` counts as the engine (its creation, which runs ORT's graph optimizations, is the build
time). Threads are pinned (``intra_op_threads``, default 1) and recorded, because ORT's default of "all cores" makes
numbers depend on the runner's core count and on whatever else the machine is doing.

With a GPU execution provider first in ``providers`` (CUDA, TensorRT, TensorRT-RTX; the onnxruntime-gpu package) the
backend is a GPU backend like the torch one: inputs and outputs stay in device memory (bound once, so a step times
the inference and not the host-device copies, as trtexec's GPU compute time does), the baseline key names the GPU,
telemetry judges its clocks, and a case that looks regressed is confirmed in a fresh process. ``fp32`` turns the CUDA
provider's TF32 math off and ``tf32`` turns it on, so each precision means what it says (ORT's own default is on).
A provider takes options as a one-key mapping, ``providers: [{CUDAExecutionProvider: {cudnn_conv_algo_search:
HEURISTIC}}]``; they are recorded with every result.

On a GPU provider each case's session is built for the case's own shapes, as TensorRT builds an engine for its
profile: the model's named dynamic dimensions are pinned (ORT's free-dimension overrides) to the sizes the case
feeds. With the shapes known, ORT folds the shape arithmetic that a dynamic-batch export carries (Shape, Gather,
Slice, Concat), which it would otherwise run on the CPU between GPU kernels, waiting for the device each time. The
CUDA provider then replays each inference as one captured CUDA graph (its ``enable_cuda_graph``), as the torch
backend's ``graphs`` mode does, so the host's scheduling no longer sits in every kernel launch; where ORT cannot
capture the graph (nodes left on the CPU) the session runs without it and the build record says why. What each of
the two did to the timings is measured in docs/evidence/gpu-gate-h200-fresh-process.md. A captured graph replays on
the addresses it was captured with, so every runner of a session shares one set of device buffers, and a new runner
copies its inputs into them.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from harness.attribution import ort_trace
from harness.attribution.record import LayerProfile
from harness.backends.base import BackendBase, BackendContext, BuildInfo, RunnerBase, check_options
from harness.backends.ort_providers import (
    CUDA_PROVIDERS,
    DeviceIO,
    case_dims,
    device_of,
    graph_requested_by_default,
    provider_entries,
    with_cuda_options,
    without_cuda_graph,
)
from harness.core.errors import CaseSkipped, HarnessError
from harness.core.fsio import atomic_write_bytes
from harness.core.messages import condensed
from harness.models.inputs import rejected_inputs
from harness.models.sources import PreparedModel
from harness.suite.backend_options import BACKEND_OPTIONS
from harness.suite.schema import Case

OPTIONS = BACKEND_OPTIONS["onnxruntime"]  # the suite's table of this backend's options and their types
GRAPH_OPTIMIZATION = ("disable", "basic", "extended", "all")
PROFILE_WARMUP = 3  # inferences of the profiling session left out of its profile: first-run allocations, thread spin-up


def _graph_nodes(model: Any) -> list[ort_trace.GraphNode]:
    """The graph's nodes; one without a name is called ``<op_type>_<index>``, as harness.attribution.names does."""
    return [
        ort_trace.GraphNode(node.name or f"{node.op_type}_{index}", node.op_type, tuple(node.input), tuple(node.output))
        for index, node in enumerate(model.graph.node)
    ]


def _profiling_session(setup: _ProfiledSession, scratch: Path) -> tuple[Any, Path | None]:
    """A session like the measured one that profiles and saves its optimized graph; where the graph cannot be saved
    (execution providers that compile subgraphs, models past protobuf's 2 GB), one that only profiles."""
    import onnxruntime as ort

    def session(save_to: Path | None) -> Any:
        options = setup.options()
        options.enable_profiling = True
        options.profile_file_prefix = str(scratch / "ort_profile")
        if save_to is not None:
            options.optimized_model_filepath = str(save_to)
        return ort.InferenceSession(str(setup.model_path), options, providers=setup.providers)

    optimized = scratch / "optimized.onnx"
    try:
        return session(optimized), optimized
    except Exception:  # saving the graph failed: a profile without the mapping is still worth taking
        pass
    try:
        return session(None), None
    except Exception as exc:
        raise HarnessError(f"onnxruntime could not open a profiling session: {condensed(exc)}") from None


def _origins(model_path: Path, optimized: Path | None) -> dict[str, tuple[str, ...]] | None:
    """Optimized node -> the model's nodes it runs (:func:`harness.attribution.ort_trace.node_origins`), or None."""
    if optimized is None or not optimized.is_file():
        return None
    import onnx

    return ort_trace.node_origins(
        _graph_nodes(onnx.load(str(model_path), load_external_data=False)),
        _graph_nodes(onnx.load(str(optimized), load_external_data=False)),
    )


def create(options: dict[str, Any], context: BackendContext) -> OnnxRuntimeBackend:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise HarnessError("backend 'onnxruntime' needs the onnxruntime package: pip install onnxruntime") from None
    check_options("onnxruntime", options, OPTIONS)
    return OnnxRuntimeBackend(context, **options)


class OnnxRuntimeBackend(BackendBase):
    name = "onnxruntime"
    # fp16 and int8 run the recipe's typed model for real (int8 through ORT's Q/DQ -> integer kernel fusion; fp16
    # where the EP has fp16 kernels, elsewhere through the Casts ORT inserts: slower on most CPUs, a true result).
    precisions = frozenset({"fp32", "fp16", "int8"})
    precision_notes = MappingProxyType(
        {
            "bf16": "onnxruntime's CPU execution provider has no bf16 kernels for Conv/Gemm; bf16 runs on TensorRT",
            "fp8": "onnxruntime has no fp8 compute kernels: an fp8 Q/DQ model would run dequantized in fp32, so a "
            "speed number would be meaningless; fp8 runs on TensorRT (Hopper or newer)",
            "tf32": "tf32 is a GPU math mode (TensorRT, PyTorch); onnxruntime's CPU provider has no such setting",
        }
    )

    def __init__(
        self,
        context: BackendContext | None = None,
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        providers: list[Any] | None = None,
        graph_optimization: str = "all",
    ) -> None:
        import onnxruntime as ort

        super().__init__(context)
        self._ort = ort
        self.provider_options = provider_entries(providers)
        self.providers = [name for name, _ in self.provider_options]
        # The first provider is the one ORT gives every node it can run: a GPU one makes this a GPU backend.
        self.uses_gpu = self.providers[0] in CUDA_PROVIDERS
        if self.uses_gpu:
            self.precisions = frozenset({*self.precisions, "tf32"})
        missing = [p for p in self.providers if p not in ort.get_available_providers()]
        if missing:
            raise HarnessError(
                f"backend 'onnxruntime': provider(s) {missing} are not installed here "
                f"(available: {ort.get_available_providers()}); install the matching onnxruntime "
                "package or change 'providers'"
            )
        if graph_optimization not in GRAPH_OPTIMIZATION:
            raise HarnessError(f"backend 'onnxruntime': graph_optimization must be one of {GRAPH_OPTIMIZATION}")
        if intra_op_threads < 0 or inter_op_threads < 0:
            raise HarnessError("backend 'onnxruntime': thread counts must be >= 0 (0 lets ORT choose)")
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        self.graph_optimization = graph_optimization

    def version(self) -> str:
        return str(self._ort.__version__)

    def settings(self) -> dict[str, Any]:
        return {
            "providers": self.providers,
            **({"provider_options": dict(self.provider_options)} if any(o for _, o in self.provider_options) else {}),
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "graph_optimization": self.graph_optimization,
        }

    def build(self, model: PreparedModel, case: Case) -> OnnxRuntimeEngine:
        if case.precision not in self.precisions:
            reason = self.precision_notes.get(case.precision, f"it runs {sorted(self.precisions)}")
            raise CaseSkipped(f"onnxruntime cannot run {case.precision}: {reason}")
        providers = self._case_providers(case)
        dims = case_dims(model, case) if self.uses_gpu else {}
        options = partial(self._session_options, dims)
        details: dict[str, Any] = {"static_dims": dims} if dims else {}
        start = time.perf_counter()
        try:
            try:
                session = self._ort.InferenceSession(str(model.path), options(), providers=providers)
            except Exception as exc:
                if not graph_requested_by_default(providers, self.provider_options):
                    raise
                # ORT refuses a graph it cannot capture whole (nodes on the CPU): run without, and say so.
                providers = without_cuda_graph(providers)
                details["cuda_graph_note"] = f"not captured: {condensed(exc)}"
                session = self._ort.InferenceSession(str(model.path), options(), providers=providers)
        except Exception as exc:
            raise HarnessError(f"{case.id}: onnxruntime could not load {model.path.name}: {condensed(exc)}") from None
        build_ms = (time.perf_counter() - start) * 1e3
        if self.uses_gpu:
            details["cuda_graph"] = any(o.get("enable_cuda_graph") == "1" for _, o in providers)
        if self.providers[0] not in session.get_providers():
            # ORT logs a provider that fails to load (a missing cuDNN, a driver too old) and runs on the next one: the
            # numbers would be the CPU's under the GPU's baseline key.
            raise HarnessError(
                f"{case.id}: onnxruntime could not start {self.providers[0]} (the session runs on "
                f"{session.get_providers()}); check that the CUDA and cuDNN libraries onnxruntime-gpu needs are on "
                "the loader path (onnxruntime.preload_dlls() or LD_LIBRARY_PATH)"
            )
        build = BuildInfo(build_time_ms=build_ms, engine_bytes=model.path.stat().st_size, details=details)
        # The profiler times nodes one by one: a replayed graph would show as one.
        profiled = _ProfiledSession(model.path, options, without_cuda_graph(providers), self._trace_path(case))
        device = device_of(self.provider_options[0]) if self.uses_gpu else None
        return OnnxRuntimeEngine(
            session, build, lambda exc: rejected_inputs(model, case, self.name, exc), profiled, device
        )

    def _case_providers(self, case: Case) -> list[tuple[str, dict[str, str]]]:
        """The providers with their options for this case: the CUDA provider replays a CUDA graph unless the suite
        says otherwise, and computes fp32 in FP32 and tf32 in TF32 (its ``use_tf32``, on by default in ORT, would
        otherwise make an fp32 case a tf32 one)."""
        tf32 = "1" if case.precision == "tf32" else "0"
        return with_cuda_options(self.provider_options, {"enable_cuda_graph": "1"}, {"use_tf32": tf32})

    def _session_options(self, dims: dict[str, int] | None = None) -> Any:
        """The options of every session of this backend: the measured one and the profiled one, so the profiler
        watches the same fusions and thread counts that were timed; ``dims`` pins named dynamic dimensions."""
        ort = self._ort
        options = ort.SessionOptions()
        for name, size in (dims or {}).items():
            options.add_free_dimension_override_by_name(name, size)
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.graph_optimization]
        # Fatal only: the zoo models trigger harmless unused-initializer warnings, and a failed run is reported as
        # one line naming the inputs fed (rejected_inputs), not as ORT's own log line on the terminal.
        options.log_severity_level = 4
        return options

    def _trace_path(self, case: Case) -> Path | None:
        """Where the case's profiler trace is kept (``<artifact_dir>/<case>/ort_profile.json``), or None."""
        folder = self.context.artifact_dir
        return None if folder is None else folder / re.sub(r"[^A-Za-z0-9_.-]+", "_", case.id) / "ort_profile.json"


@dataclass(frozen=True)
class _ProfiledSession:
    """What a profiling pass needs to open a session of its own like the measured one."""

    model_path: Path
    options: Callable[[], Any]
    providers: list[tuple[str, dict[str, str]]]
    keep_trace: Path | None  # where the raw trace is kept as a case artifact; None: it is removed once read


class OnnxRuntimeEngine:
    def __init__(
        self,
        session: Any,
        build: BuildInfo,
        explain: Callable[[BaseException], str] | None = None,
        profiled: _ProfiledSession | None = None,
        device: tuple[str, int] | None = None,
    ) -> None:
        self.session = session
        self.build = build
        self.explain = explain  # turns a failed run into one line naming the inputs fed and the suite key
        self.profiled = profiled
        # inputs and outputs on the device (e.g. ("cuda", 0)) shared by the session's runners; None: host memory
        self.device_io = DeviceIO(session, device) if device is not None else None

    def runner(self, feeds: dict[str, np.ndarray]) -> OnnxRuntimeRunner:
        return OnnxRuntimeRunner(self.session, feeds, self.explain, self.profiled, self.device_io)


class OnnxRuntimeRunner(RunnerBase):
    def __init__(
        self,
        session: Any,
        feeds: dict[str, np.ndarray],
        explain: Callable[[BaseException], str] | None = None,
        profiled: _ProfiledSession | None = None,
        device_io: DeviceIO | None = None,
    ) -> None:
        self.session = session
        self.explain = explain
        self.feeds = {name: np.ascontiguousarray(value) for name, value in feeds.items()}
        self.profiled = profiled
        self.device_io = device_io
        self.output_names = [o.name for o in session.get_outputs()]
        # Bind inputs once so each step times inference, not the copy of numpy arrays into ORT values; on a GPU
        # provider both sides live in device memory (the session's, shared by its runners), so no step copies.
        if device_io is not None:
            self.binding = device_io.bind(self.feeds)
            return
        self.binding = session.io_binding()
        for name, value in self.feeds.items():
            self.binding.bind_cpu_input(name, value)
        for name in self.output_names:
            self.binding.bind_output(name)

    def step(self) -> None:
        self._run()

    def outputs(self) -> dict[str, np.ndarray]:
        self._run()
        return dict(zip(self.output_names, self.binding.copy_outputs_to_cpu(), strict=True))

    def _run(self) -> None:
        try:
            self.session.run_with_iobinding(self.binding)
        except Exception as exc:  # ORT's own error types: an input the model rejects, a kernel failing
            if self.explain is None:
                raise
            raise HarnessError(self.explain(exc)) from None

    def profile(self, iterations: int) -> LayerProfile | None:
        """ORT's session profiler over ``iterations`` inferences of a second session with the measured one's options
        (so the same fusions run), its nodes mapped back to the model's nodes through the optimized graph it saves.
        """
        if self.profiled is None:
            return None
        setup = self.profiled
        with tempfile.TemporaryDirectory(prefix="harness-ort-profile-") as scratch:
            session, optimized = _profiling_session(setup, Path(scratch))
            device_io = DeviceIO(session, self.device_io.device) if self.device_io is not None else None
            runner = OnnxRuntimeRunner(session, self.feeds, self.explain, device_io=device_io)
            try:
                for _ in range(PROFILE_WARMUP + max(1, iterations)):
                    runner.step()
            finally:
                runner.close()
                trace = Path(session.end_profiling())
            origins = _origins(setup.model_path, optimized)
            profile = ort_trace.profile_from_trace(ort_trace.read_trace(trace), origins, skip_runs=PROFILE_WARMUP)
            if setup.keep_trace is not None:
                atomic_write_bytes(setup.keep_trace, trace.read_bytes())
        if origins is None:
            note = "node names as ONNX Runtime ran them: its optimized graph could not be saved to map fused nodes"
            profile = replace(profile, notes=(*profile.notes, note))
        if self.device_io is not None:
            # ORT's profiler times a GPU node on the host, from its launch to its return: kernels queued behind it
            # are counted where the stream waits, so shares are rough where the torch backend's are kernel times.
            note = "node times as ONNX Runtime's profiler takes them on the host, not the GPU's kernel times"
            profile = replace(profile, notes=(*profile.notes, note))
        return profile

    def close(self) -> None:
        if self.device_io is None:  # the session's shared device binding outlives its runners
            self.binding.clear_binding_inputs()
            self.binding.clear_binding_outputs()
