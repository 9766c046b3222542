"""PyTorch backend: runs a suite model given as ``torch: package.module:factory`` natively on an NVIDIA GPU.

This is the framework side of the framework-versus-engine comparison: the same factory is exported to ONNX for
the ONNX-based backends (harness.models.sources.prepare_torch) and run here as PyTorch code.

Options (suite ``backends: {torch: {...}}`` or ``--backend-option``):

- ``mode``: ``graphs`` (default: the module is captured once into a CUDA graph and each inference is one graph
  replay, the closest PyTorch gets to an engine's enqueue), ``eager`` (one Python forward per inference) or
  ``compile`` (``torch.compile`` with ``compile_mode``; compiled once per input shape and dtype, at runner start);
- ``compile_mode``: ``default``, ``reduce-overhead``, ``max-autotune`` or ``max-autotune-no-cudagraphs``;
- ``device``: CUDA device index (default 0).

Precisions: ``fp32`` (TF32 off in matmul and cuDNN: true fp32), ``tf32`` (TF32 allowed in both), ``fp16`` and
``bf16`` (weights and floating inputs cast; integer inputs such as token ids stay as they are).

Timing: every inference is bracketed by CUDA events on the runner's stream (harness.machine.cuda.Timer when cuda-python
is
installed, torch.cuda.Event otherwise); ``step`` returns ``gpu_compute_ms`` (GPU time between the events) and
``enqueue_ms`` (host time to submit the work). The host latency measured around ``step`` by harness.measure.loop minus
``gpu_compute_ms`` is the host overhead per inference.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from harness.attribution import torch_trace
from harness.attribution.record import LayerProfile
from harness.backends.base import BackendBase, BackendContext, BuildInfo, RunnerBase, check_options
from harness.core.errors import CaseSkipped, HarnessError
from harness.machine import cuda
from harness.models.factories import load_torch_factory
from harness.models.sources import PreparedModel
from harness.suite.backend_options import BACKEND_OPTIONS
from harness.suite.schema import Case

OPTIONS = BACKEND_OPTIONS["torch"]  # the suite's table of this backend's options and their types
MODES = ("graphs", "eager", "compile")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
PRIME_ITERATIONS = 3  # first calls pick cuDNN algorithms, fill the caching allocator, compile: kept out of timing
PROFILE_WARMUP = 2  # eager calls before the profiled ones: the hooks' first calls, cuDNN's choice for eager shapes
# The most inferences one profile pass takes, whatever the session asks: torch.profiler turns every recorded operator
# into a Python event afterwards, so the pass's cost grows with the model's operator count times the iterations
# (docs/evidence/attribution.md has figures), while kernel times on a GPU vary little between inferences and 20
# give each module a median and a spread.
PROFILE_MAX_ITERATIONS = 20


def create(options: dict[str, Any], context: BackendContext) -> TorchBackend:
    check_options("torch", options, OPTIONS)
    return TorchBackend(context, **options)


class TorchBackend(BackendBase):
    name = "torch"
    precisions = frozenset({"fp32", "tf32", "fp16", "bf16"})
    takes_typed_models = False  # precision is the module's dtype here: the session skips the ONNX recipes
    uses_gpu = True  # the baseline key names the GPU, and telemetry judges clocks and throttling

    def __init__(
        self,
        context: BackendContext | None = None,
        mode: str = "graphs",
        compile_mode: str = "default",
        device: int = 0,
    ) -> None:
        super().__init__(context)
        if mode not in MODES:
            raise HarnessError(f"backend 'torch': mode must be one of {', '.join(MODES)}, got '{mode}'")
        if compile_mode not in COMPILE_MODES:
            raise HarnessError(f"backend 'torch': compile_mode must be one of {', '.join(COMPILE_MODES)}")
        if device < 0:
            raise HarnessError("backend 'torch': device must be a CUDA device index >= 0")
        self.mode = mode
        self.compile_mode = compile_mode
        self.device = device
        try:
            import torch
        except ImportError:
            self._torch = None
        else:
            self._torch = torch

    def unavailable(self) -> str | None:
        """Why cases cannot run here (a skip reason), or None."""
        torch = self._torch
        if torch is None:
            return "PyTorch is not installed: pip install torch (a CUDA build, on a machine with an NVIDIA GPU)"
        if not torch.cuda.is_available():
            return f"no CUDA GPU: torch {torch.__version__} sees no CUDA device (the torch backend runs on a GPU)"
        if self.device >= torch.cuda.device_count():
            return f"no CUDA device {self.device}: torch sees {torch.cuda.device_count()}"
        return None

    def version(self) -> str:
        return str(self._torch.__version__) if self._torch is not None else "unavailable"

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "device": self.device}
        if self.mode == "compile":
            out["compile_mode"] = self.compile_mode
        torch = self._torch
        if torch is not None:
            out["cuda"] = torch.version.cuda
            out["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        return out

    def build(self, model: PreparedModel, case: Case) -> TorchEngine:
        reason = self.unavailable()
        if reason:
            raise CaseSkipped(reason)
        if case.model.source != "torch":
            raise CaseSkipped(
                f"the torch backend runs models given as 'torch: package.module:factory'; "
                f"'{case.model.name}' is an ONNX model ({case.model.source})"
            )
        if case.precision not in self.precisions:
            raise CaseSkipped(f"torch backend runs {sorted(self.precisions)}, not {case.precision}")
        torch = self._torch
        assert torch is not None
        if case.precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise CaseSkipped("this GPU has no bf16 support")
        start = time.perf_counter()
        net, examples = load_torch_factory(case.model.location, case.model.suite_file)
        dtype = _dtype(torch, case.precision)
        device = torch.device("cuda", self.device)
        net = net.to(device=device, dtype=dtype).eval()
        fn = net
        if self.mode == "compile":
            fn = torch.compile(net, mode=self.compile_mode, dynamic=False, fullgraph=False)
        torch.cuda.synchronize(device)
        build_ms = (time.perf_counter() - start) * 1e3
        weight_bytes = sum(p.numel() * p.element_size() for p in net.parameters())
        weight_bytes += sum(b.numel() * b.element_size() for b in net.buffers())
        details = {"mode": self.mode, "dtype": str(dtype).removeprefix("torch."), "weight_bytes": weight_bytes}
        build = BuildInfo(build_time_ms=build_ms, details=details)
        return TorchEngine(
            torch, fn, list(examples), dtype, device, case.precision, self.mode, build, module=net, onnx_path=model.path
        )


def _dtype(torch: Any, precision: str) -> Any:
    return {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


class TorchEngine:
    def __init__(
        self,
        torch: Any,
        fn: Any,
        input_names: list[str],
        dtype: Any,
        device: Any,
        precision: str,
        mode: str,
        build: BuildInfo,
        module: Any = None,
        onnx_path: Path | None = None,
    ) -> None:
        self.torch = torch
        self.fn = fn
        self.input_names = input_names
        self.dtype = dtype
        self.device = device
        self.precision = precision
        self.mode = mode
        self.build = build
        # cuDNN times its algorithms once per process and shape (False: its heuristics choose). Either way an H200
        # process kept its own level (docs/evidence/gpu-gate-h200.md); benchmarking picks the faster algorithms.
        self.cudnn_benchmark = True
        self.module = fn if module is None else module  # the eager module the profile pass runs (fn may be compiled)
        self.onnx_path = onnx_path  # the harness's ONNX export of the same factory: node names for profiles

    def runner(self, feeds: dict[str, np.ndarray]) -> TorchRunner:
        return TorchRunner(self, feeds)


class _TorchTimer:
    """CUDA-event timer on a torch stream, used when cuda-python is not installed (same interface as cuda.Timer)."""

    def __init__(self, torch: Any, stream: Any) -> None:
        self.stream = stream
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        self._start.record(self.stream)

    def stop(self) -> None:
        self._end.record(self.stream)

    def elapsed_ms(self) -> float:
        self._end.synchronize()
        return float(self._start.elapsed_time(self._end))

    def close(self) -> None:
        pass


def _timer(torch: Any, stream: Any) -> Any:
    if cuda.available() is None:
        return cuda.Timer(stream.cuda_stream)
    return _TorchTimer(torch, stream)


def _raw_launcher(graph: Any, stream: Any) -> Any:
    """A callable that launches the captured graph's executable directly through cuda-python (cudaGraphLaunch),
    or None to keep ``graph.replay()``. ``replay`` adds a few microseconds of bookkeeping per call (random-number
    offsets for graphs that draw random numbers, which inference graphs do not); the GPU work is the same."""
    if graph is None or not hasattr(graph, "raw_cuda_graph_exec"):
        return None
    if cuda.available() is not None:
        return None
    launcher = cuda.Graph.wrap(graph.raw_cuda_graph_exec())
    handle = stream.cuda_stream
    return lambda: launcher.launch(handle)


class TorchRunner(RunnerBase):
    """One module bound to one set of inputs on its own CUDA stream, with precision flags set for its lifetime."""

    def __init__(self, engine: TorchEngine, feeds: dict[str, np.ndarray]) -> None:
        torch = engine.torch
        self.engine = engine
        self.torch = torch
        missing = [n for n in engine.input_names if n not in feeds]
        if missing:
            raise HarnessError(f"torch runner: inputs {missing} have no data (the ONNX export named {list(feeds)})")
        self.inputs = []
        for name in engine.input_names:
            tensor = torch.from_numpy(np.ascontiguousarray(feeds[name])).to(engine.device)
            if tensor.is_floating_point():
                tensor = tensor.to(engine.dtype)
            self.inputs.append(tensor)
        tf32 = engine.precision == "tf32"
        backends = torch.backends
        self._saved_flags = (backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32, backends.cudnn.benchmark)
        backends.cuda.matmul.allow_tf32 = tf32
        backends.cudnn.allow_tf32 = tf32
        backends.cudnn.benchmark = engine.cudnn_benchmark
        self.stream = torch.cuda.Stream(engine.device)
        self._saved_stream = torch.cuda.current_stream(engine.device)
        torch.cuda.set_stream(self.stream)
        self.stream.wait_stream(self._saved_stream)  # the inputs were copied on the previous stream
        self._inference = torch.inference_mode()
        self._inference.__enter__()
        self.graph = None
        self.timer: Any = None  # set once primed; close() may run before that
        self.output: Any = None
        try:
            for _ in range(PRIME_ITERATIONS):
                self.output = engine.fn(*self.inputs)
            self.stream.synchronize()
            if engine.mode == "graphs":
                self.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.graph, stream=self.stream):
                    self.output = engine.fn(*self.inputs)
                self.graph.replay()
                self.stream.synchronize()
        except BaseException:
            self.close()
            raise
        self.timer = _timer(torch, self.stream)
        self._launch = self.graph.replay if self.graph is not None else None
        self._launcher = _raw_launcher(self.graph, self.stream)
        if self._launcher is not None:
            self._launch = self._launcher

    def _enqueue(self) -> None:
        if self._launch is not None:
            self._launch()
        else:
            self.output = self.engine.fn(*self.inputs)

    def step(self) -> dict[str, float]:
        t0 = time.perf_counter_ns()
        self.timer.start()
        self._enqueue()
        self.timer.stop()
        enqueue_ms = (time.perf_counter_ns() - t0) / 1e6
        return {"gpu_compute_ms": self.timer.elapsed_ms(), "enqueue_ms": enqueue_ms}

    def outputs(self) -> dict[str, np.ndarray]:
        self._enqueue()
        self.stream.synchronize()
        out = self.output
        if isinstance(out, dict):
            items = list(out.items())
        elif isinstance(out, (tuple, list)):
            items = [(f"output{i}", t) for i, t in enumerate(out)]
        else:
            items = [("output", out)]
        return {name: t.detach().float().cpu().numpy() for name, t in items}

    def profile(self, iterations: int) -> LayerProfile:
        """``torch.profiler`` over ``iterations`` (at most :data:`PROFILE_MAX_ITERATIONS`) eager inferences of the
        module (CUDA kernel time per module), in a pass after the timed ones. Eager, whatever the mode: a CUDA graph
        replay or a compiled graph hides the module boundaries; the kernels are the same ones in eager and graph mode
        (compile fuses its own)."""
        engine = self.engine
        self.stream.synchronize()
        nodes = _export_nodes(engine.onnx_path)
        count = min(iterations, PROFILE_MAX_ITERATIONS)
        profile = profile_module(self.torch, engine.module, self.inputs, count, nodes, on_device=True)
        if engine.mode == "compile":
            note = "profiled eagerly: torch.compile's fused kernels are not those timed"
            profile = LayerProfile.of(
                profile.source,
                profile.layers,
                iterations=profile.iterations,
                end_to_end_ms=profile.end_to_end_ms,
                notes=(*profile.notes, note),
            )
        return profile

    def close(self) -> None:
        torch = self.torch
        if self.timer is not None:
            self.timer.close()
            self.timer = None
        self.graph = self._launch = self._launcher = None
        if self._inference is not None:
            self._inference.__exit__(None, None, None)
            self._inference = None
        torch.cuda.set_stream(self._saved_stream)
        backends = torch.backends
        backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32, backends.cudnn.benchmark = self._saved_flags


def _export_nodes(path: Path | None) -> list[str] | None:
    if path is None or not path.is_file():
        return None
    import onnx

    return [node.name for node in onnx.load(str(path), load_external_data=False).graph.node]


def profile_module(
    torch: Any, module: Any, inputs: Sequence[Any], iterations: int, onnx_nodes: Sequence[str] | None, on_device: bool
) -> LayerProfile:
    """Per-module times of ``module(*inputs)`` over ``iterations`` calls with ``torch.profiler``: CUDA kernel time
    when ``on_device`` (the module and inputs on a GPU), else CPU time.

    Module boundaries come from forward hooks that open a ``record_function`` range per module
    (:func:`harness.attribution.torch_trace.module_label`): the profiler's own ``with_modules`` records module
    hierarchy only for TorchScript, and ``with_stack`` gives Python frames, not module paths."""
    from torch.profiler import ProfilerActivity, profile, record_function

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_device else [])
    with _module_ranges(torch, module) as calls:
        for _ in range(PROFILE_WARMUP):
            module(*inputs)
        _synchronize(torch, on_device)
        with profile(activities=activities) as prof:
            for _ in range(max(1, iterations)):
                with record_function(torch_trace.ITERATION):
                    module(*inputs)
                _synchronize(torch, on_device)
    spans = [
        torch_trace.Span(
            event.name,
            event.time_range.start,
            event.time_range.end,
            float(event.self_device_time_total) if on_device else 0.0,
        )
        for event in prof.events()
        if event.device_type == torch.autograd.DeviceType.CPU
    ]
    return torch_trace.profile_from_spans(spans, onnx_nodes, on_device, calls)


def _synchronize(torch: Any, on_device: bool) -> None:
    if on_device:
        torch.cuda.synchronize()


@contextmanager
def _module_ranges(torch: Any, root: Any) -> Iterator[dict[str, torch_trace.ModuleCall]]:
    """A profiler range around every module's forward, for as long as the context lasts; yields what each module's
    first call was given (class, input shapes, dtype)."""
    from torch.profiler import record_function

    calls: dict[str, torch_trace.ModuleCall] = {}
    open_ranges: list[Any] = []
    handles = []

    def opener(path: str, kind: str) -> Any:
        label = torch_trace.module_label(path, kind)

        def pre_hook(module: Any, args: tuple[Any, ...]) -> None:
            if path not in calls:
                tensors = [a for a in args if isinstance(a, torch.Tensor)]
                shapes = ", ".join("x".join(str(d) for d in t.shape) for t in tensors)
                dtype = str(tensors[0].dtype).removeprefix("torch.") if tensors else ""
                calls[path] = torch_trace.ModuleCall(kind, shapes, dtype)
            span = record_function(label)
            span.__enter__()
            open_ranges.append(span)

        return pre_hook

    def closer(module: Any, args: tuple[Any, ...], output: Any) -> None:
        open_ranges.pop().__exit__(None, None, None)

    try:
        for path, child in root.named_modules():
            handles.append(child.register_forward_pre_hook(opener(path, type(child).__name__)))
            handles.append(child.register_forward_hook(closer))
        yield calls
    finally:
        for handle in handles:
            handle.remove()
        while open_ranges:  # a forward that raised left its ranges open
            open_ranges.pop().__exit__(None, None, None)
