"""Running a TensorRT engine on the GPU, trtexec style, through :mod:`harness.machine.cuda`.

Per iteration, on one stream: optional host-to-device copies of the inputs, the inference (a CUDA-graph replay by
default, else ``execute_async_v3``), optional device-to-host copies, with CUDA events around each part. ``step``
returns the GPU compute time, the enqueue time (host time to issue the work) and, when transfers are included, the
H2D and D2H times, all in ms; measure.py records host latency around it. Every iteration's event timestamps are
kept, so the run can be written in trtexec's ``--exportTimes`` format next to our results.

After measuring, a separate pass on a second execution context collects per-layer times through ``IProfiler`` (CUDA
graphs and the profiler do not mix, and the profiler must not slow the measured loop), and the engine inspector's
JSON (trtexec's ``--exportLayerInfo``) is saved with it.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.attribution import trt_files
from harness.attribution.record import LayerProfile
from harness.backends.base import RunnerBase
from harness.backends.trtexec import write_profile, write_times
from harness.core.errors import HarnessError
from harness.core.fsio import atomic_write_text
from harness.machine import cuda
from harness.trt import compat as trt_compat
from harness.trt.engine import BuiltEngine
from harness.trt.log import tensorrt_log

if TYPE_CHECKING:
    import tensorrt as trt
else:
    trt = trt_compat.module_proxy

LAYER_PROFILE_ITERATIONS = 20


def deserialize(engine: BuiltEngine) -> trt.ICudaEngine:
    """The runtime engine, deserialized once per built engine (trials create several runners)."""
    if engine.cuda_engine is not None:
        cached: trt.ICudaEngine = engine.cuda_engine
        return cached
    runtime = trt.Runtime(tensorrt_log().logger)
    cuda_engine = runtime.deserialize_cuda_engine(engine.plan)
    if cuda_engine is None:
        raise HarnessError(
            f"{engine.case_id}: {engine.api.label} could not load the engine on this GPU (TensorRT-RTX does "
            "not run on compute capability 9.x; full TensorRT needs the GPU it was built for); see the log above"
        )
    engine.cuda_engine = cuda_engine
    engine.runtime = runtime  # the runtime must outlive its engines
    engine.build.details["device_memory_bytes"] = engine.api.device_memory_bytes(cuda_engine)
    return cuda_engine


class TensorRTRunner(RunnerBase):
    def __init__(self, engine: BuiltEngine, feeds: dict[str, np.ndarray]) -> None:
        cuda.require()
        self.engine = engine
        options = engine.run
        self.transfers = options.transfers
        self.cuda_engine = deserialize(engine)
        self.stream = cuda.Stream()
        self.runtime_cache: Any = None
        self.builtin_graphs: str | None = None
        self.context = self._context(graphs=options.cuda_graph, main=True)
        self.inputs: dict[str, tuple[cuda.PinnedBuffer, cuda.DeviceBuffer]] = {}
        self.outputs_: dict[str, tuple[cuda.PinnedBuffer, cuda.DeviceBuffer]] = {}
        self._bind(self.context, feeds)
        for host, device in self.inputs.values():  # inputs live on the device unless transfers are timed
            device.copy_from_host(host, self.stream)
        self.context.execute_async_v3(self.stream.handle)  # first enqueue finishes shape-dependent set-up
        self.stream.synchronize()
        self.graph: cuda.Graph | None = None
        self.graph_note = "off (cuda_graph: false)"
        if self.builtin_graphs:
            self.graph_note = self.builtin_graphs  # the library captures and replays graphs itself
        elif options.cuda_graph:
            self._capture()
        self.events = [cuda.Event() for _ in range(4)]  # start, compute start, compute end, end
        self.origin = cuda.Event()
        self.origin.record(self.stream)
        self.origin_host_ns = time.perf_counter_ns()
        self.trace: list[dict[str, float]] = []

    # -- set-up ----------------------------------------------------------------------------------------------
    def _context(self, graphs: bool = False, main: bool = False) -> trt.IExecutionContext:
        """An execution context on profile 0. TensorRT-RTX contexts come from a runtime config, with its built-in
        CUDA graphs when ``graphs`` and, for the ``main`` context, its JIT-kernel runtime cache loaded from the
        engine cache folder (saved back on close), so kernels compiled in one run are reused by the next."""
        cache_bytes = self._runtime_cache_bytes() if main else None
        context, runtime_cache, note = trt_compat.execution_context(trt, self.cuda_engine, graphs, cache_bytes)
        if main:
            self.runtime_cache, self.builtin_graphs = runtime_cache, note
        if context is None:
            raise HarnessError(f"{self.engine.case_id}: could not create an execution context (out of GPU memory?)")
        context.set_optimization_profile_async(0, self.stream.handle)
        return context

    def _runtime_cache_bytes(self) -> bytes | None:
        options = self.engine.run
        return None if options.runtime_cache is None else options.runtime_cache.read_timing(options.runtime_cache_label)

    def _save_runtime_cache(self) -> None:
        options = self.engine.run
        if self.runtime_cache is not None and options.runtime_cache is not None:
            data = bytes(memoryview(self.runtime_cache.serialize()))
            options.runtime_cache.write_timing(options.runtime_cache_label, data)

    def _bind(self, context: trt.IExecutionContext, feeds: dict[str, np.ndarray]) -> None:
        """Set input shapes, then allocate every I/O tensor at its now known shape and set its address."""
        engine = self.cuda_engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        is_input = {n: engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        for name in names:
            if is_input[name]:
                if name not in feeds:
                    raise HarnessError(f"{self.engine.case_id}: no data for engine input '{name}'")
                if not context.set_input_shape(name, trt.Dims(list(feeds[name].shape))):
                    raise HarnessError(
                        f"{self.engine.case_id}: input '{name}' shape {feeds[name].shape} is outside the engine's "
                        f"optimization profile {engine.get_tensor_profile_shape(name, 0)}"
                    )
        for name in names:
            try:
                dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            except TypeError:  # bf16 / fp8 / fp4 have no numpy type
                raise HarnessError(
                    f"{self.engine.case_id}: engine tensor '{name}' is {engine.get_tensor_dtype(name)}, which numpy "
                    "cannot hold; keep the model's inputs and outputs in fp32 or fp16 (the recipes' default)"
                ) from None
            dims = context.get_tensor_shape(name)
            shape = tuple(dims[i] for i in range(len(dims)))
            if is_input[name]:
                host = cuda.PinnedBuffer.like(np.ascontiguousarray(feeds[name], dtype=dtype))
            else:
                host = cuda.PinnedBuffer(shape, dtype)
            device = cuda.DeviceBuffer(host.nbytes)
            context.set_tensor_address(name, device.ptr)
            (self.inputs if is_input[name] else self.outputs_)[name] = (host, device)

    def _capture(self) -> None:
        """Capture one inference as a CUDA graph (trtexec 11's default); fall back to plain enqueue with a note
        when the engine cannot be captured (data-dependent shapes, some plugins)."""
        graph = cuda.Graph()
        try:
            with graph.capture(self.stream):
                self.context.execute_async_v3(self.stream.handle)
            graph.launch(self.stream)
            self.stream.synchronize()
        except cuda.CudaError as exc:
            graph.close()
            self.graph_note = f"off (capture failed: {exc})"
            return
        self.graph = graph
        self.graph_note = "on"

    # -- the timed iteration ----------------------------------------------------------------------------------
    def _enqueue(self) -> None:
        if self.graph is not None:
            self.graph.launch(self.stream)
        else:
            self.context.execute_async_v3(self.stream.handle)

    def step(self) -> dict[str, float]:
        """One inference; returns GPU compute and enqueue times (and H2D/D2H with ``transfers``), in ms.

        Host latency, measured around this call, also covers reading the event times afterwards: two or four
        cudaEventElapsedTime calls, about a microsecond each.
        """
        start, compute_start, compute_end, end = self.events
        t0 = time.perf_counter_ns()
        if self.transfers:
            start.record(self.stream)
            for host, device in self.inputs.values():
                device.copy_from_host(host, self.stream)
        compute_start.record(self.stream)
        self._enqueue()
        compute_end.record(self.stream)
        if self.transfers:
            for host, device in self.outputs_.values():
                device.copy_to_host(host, self.stream)
            end.record(self.stream)
        t1 = time.perf_counter_ns()
        (end if self.transfers else compute_end).synchronize()
        timings = {"gpu_compute_ms": cuda.elapsed_ms(compute_start, compute_end), "enqueue_ms": (t1 - t0) / 1e6}
        if self.transfers:
            timings["h2d_ms"] = cuda.elapsed_ms(start, compute_start)
            timings["d2h_ms"] = cuda.elapsed_ms(compute_end, end)
        first = start if self.transfers else compute_start
        self._trace(t0, t1, cuda.elapsed_ms(self.origin, first), timings)
        return timings

    def _trace(self, t0: int, t1: int, begin_ms: float, timings: dict[str, float]) -> None:
        """One ``--exportTimes`` entry: host times from perf_counter, GPU times from the events, both in ms since the
        runner started."""
        h2d, compute, d2h = timings.get("h2d_ms", 0.0), timings["gpu_compute_ms"], timings.get("d2h_ms", 0.0)
        self.trace.append(
            {
                "startEnqMs": (t0 - self.origin_host_ns) / 1e6,
                "endEnqMs": (t1 - self.origin_host_ns) / 1e6,
                "startH2dMs": begin_ms,
                "endH2dMs": begin_ms + h2d,
                "startComputeMs": begin_ms + h2d,
                "endComputeMs": begin_ms + h2d + compute,
                "startD2hMs": begin_ms + h2d + compute,
                "endD2hMs": begin_ms + h2d + compute + d2h,
                "h2dMs": h2d,
                "computeMs": compute,
                "d2hMs": d2h,
                "latencyMs": h2d + compute + d2h,
                "endToEndMs": h2d + compute + d2h,
            }
        )

    def outputs(self) -> dict[str, np.ndarray]:
        for host, device in self.inputs.values():
            device.copy_from_host(host, self.stream)
        self._enqueue()
        for host, device in self.outputs_.values():
            device.copy_to_host(host, self.stream)
        self.stream.synchronize()
        return {name: host.array.copy() for name, (host, _) in self.outputs_.items()}

    # -- after measuring: layer profile, inspector, trtexec-format files ---------------------------------------
    def _layer_samples(self, iterations: int) -> tuple[dict[str, list[float]], list[float]]:
        """Per-layer GPU times (ms, one per inference, layers in execution order) from IProfiler on a second
        context without CUDA graphs (they exclude profiling), and each profiled inference's GPU time."""
        times: dict[str, list[float]] = {}

        class Profiler(trt.IProfiler):
            def __init__(self) -> None:
                trt.IProfiler.__init__(self)

            def report_layer_time(self, layer_name: str, ms: float) -> None:
                times.setdefault(layer_name, []).append(ms)

        context = self._context()
        context.profiler = Profiler()
        for name in self.inputs:
            context.set_input_shape(name, self.context.get_tensor_shape(name))
        for name, (_, device) in {**self.inputs, **self.outputs_}.items():
            context.set_tensor_address(name, device.ptr)
        _, start, end, _ = self.events
        inferences = []
        for _ in range(iterations):
            start.record(self.stream)
            context.execute_async_v3(self.stream.handle)
            end.record(self.stream)
            self.stream.synchronize()
            inferences.append(cuda.elapsed_ms(start, end))
        return times, inferences

    def layer_profile(self, iterations: int = LAYER_PROFILE_ITERATIONS) -> list[dict[str, Any]]:
        """Per-layer times in trtexec's ``--exportProfile`` form."""
        times, _ = self._layer_samples(iterations)
        total = sum(sum(v) for v in times.values()) or 1.0
        return [
            {
                "name": name,
                "timeMs": sum(samples),
                "averageMs": sum(samples) / len(samples),
                "medianMs": statistics.median(samples),
                "percentage": 100.0 * sum(samples) / total,
                "count": len(samples),
            }
            for name, samples in times.items()
        ]

    def profile(self, iterations: int) -> LayerProfile | None:
        """Per-layer times over ``iterations`` inferences (IProfiler: median and half-IQR of each layer) joined with
        the engine inspector's JSON by layer name: the ONNX nodes from each layer's ``Metadata`` (TensorRT 8.6+,
        detailed verbosity) or its name, precision, tactic. The inspector's JSON is optional: an engine built with
        less verbosity, or a release whose inspector fails, still gives times per layer name."""
        times, inferences = self._layer_samples(iterations)
        if not times:
            return None
        total = sum(sum(samples) for samples in times.values()) or 1.0
        rows = [
            trt_files.ProfileRow(
                name=name,
                total_ms=sum(samples),
                average_ms=sum(samples) / len(samples),
                median_ms=statistics.median(samples),
                percentage=100.0 * sum(samples) / total,
            )
            for name, samples in times.items()
        ]
        try:
            info = trt_files.parse_layer_info(self.inspector_json(), f"{self.engine.case_id}: the inspector's JSON")
        except (HarnessError, AttributeError, RuntimeError, TypeError):  # no inspector, or one this parser cannot read
            info = None
        return trt_files.layer_profile(
            rows,
            info,
            source="tensorrt",
            iterations=iterations,
            latencies_ms=inferences,
            spreads={name: trt_files.half_iqr(samples) for name, samples in times.items()},
        )

    def inspector_json(self) -> dict[str, Any]:
        inspector = self.cuda_engine.create_engine_inspector()
        inspector.execution_context = self.context
        text = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
        try:
            parsed: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError:
            parsed = {"raw": text}
        return parsed

    def write_artifacts(self) -> None:
        """Once per engine: trtexec-format times, per-layer profile and layer info under the artifact folder."""
        engine, options = self.engine, self.engine.run
        folder = options.artifact_dir
        if folder is None or not self.trace or engine.artifacts_written:
            return
        engine.artifacts_written = True
        case_dir = folder / re.sub(r"[^A-Za-z0-9_.-]+", "_", engine.case_id)
        write_times(case_dir / "times.json", self.trace)
        files = {"times": str(case_dir / "times.json")}
        if options.layer_profile:
            layers = self.layer_profile()
            write_profile(case_dir / "profile.json", layers, LAYER_PROFILE_ITERATIONS)
            files["profile"] = str(case_dir / "profile.json")
        atomic_write_text(case_dir / "layer_info.json", json.dumps(self.inspector_json(), indent=1) + "\n")
        files["layer_info"] = str(case_dir / "layer_info.json")
        engine.build.details["artifacts"] = files
        engine.build.details["cuda_graph"] = self.graph_note

    def close(self) -> None:
        try:
            self.write_artifacts()
            self._save_runtime_cache()
        finally:
            if self.graph is not None:
                self.graph.close()
            for event in [*self.events, self.origin]:
                event.close()
            for host, device in [*self.inputs.values(), *self.outputs_.values()]:
                device.close()
                host.close()
            self.stream.close()
