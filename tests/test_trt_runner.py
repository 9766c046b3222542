"""The TensorRT run path. On a machine with TensorRT and a supported GPU the ``gpu`` tests run engines for real; here
(no GPU, no full TensorRT) the runner's logic is driven through stand-ins for CUDA and the TensorRT runtime that
record every call, so the order of operations, the timings it reports and the files it writes are still checked."""

from __future__ import annotations

import json
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from harness.backends.base import BuildInfo
from harness.backends.trtexec import read_layer_info, read_profile, read_times
from harness.core.errors import HarnessError
from harness.trt import runner as tensorrt_runner
from harness.trt.engine import BuiltEngine, RunOptions

pytest_plugins = ["pytester"]


# -- stand-ins ---------------------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[str] = []


class FakeCuda:
    """Just enough of harness.machine.cuda: each recorded event takes the stream's current time; work advances it."""

    class CudaError(HarnessError):
        pass

    def __init__(self, capture_fails: bool = False) -> None:
        self.clock = Clock()
        self.capture_fails = capture_fails
        clock, cuda = self.clock, self

        class Stream:
            handle = 7

            def synchronize(self) -> None:
                clock.calls.append("sync")

            def close(self) -> None:
                clock.calls.append("stream.close")

        class Event:
            def __init__(self) -> None:
                self.at = 0.0

            def record(self, stream: object) -> None:
                self.at = clock.now

            def synchronize(self) -> None:
                pass

            def close(self) -> None:
                pass

        class PinnedBuffer:
            def __init__(self, shape: tuple[int, ...], dtype: object) -> None:
                self.array = np.zeros(shape, dtype=dtype)
                self.nbytes = self.array.nbytes

            @classmethod
            def like(cls, array: np.ndarray) -> PinnedBuffer:
                pinned = cls(array.shape, array.dtype)
                pinned.array[...] = array
                return pinned

            def close(self) -> None:
                pass

        class DeviceBuffer:
            count = 0

            def __init__(self, nbytes: int) -> None:
                DeviceBuffer.count += 1
                self.ptr = 0x1000 * DeviceBuffer.count
                self.nbytes = nbytes

            def copy_from_host(self, host: PinnedBuffer, stream: object) -> None:
                clock.calls.append("h2d")
                clock.now += 0.25

            def copy_to_host(self, host: PinnedBuffer, stream: object) -> None:
                clock.calls.append("d2h")
                host.array[...] = 1.5
                clock.now += 0.125

            def close(self) -> None:
                pass

        class Graph:
            def __init__(self) -> None:
                self.captured = False

            @contextmanager
            def capture(self, stream: object):
                clock.calls.append("capture")
                if cuda.capture_fails:
                    raise cuda.CudaError("cudaStreamBeginCapture failed: operation not permitted")
                yield self
                self.captured = True

            def launch(self, stream: object) -> None:
                clock.calls.append("graph.launch")
                clock.now += 2.0

            def close(self) -> None:
                clock.calls.append("graph.close")

        self.Stream, self.Event, self.PinnedBuffer, self.DeviceBuffer, self.Graph = (
            Stream,
            Event,
            PinnedBuffer,
            DeviceBuffer,
            Graph,
        )

    def require(self) -> None:
        pass

    def elapsed_ms(self, start: object, end: object) -> float:
        return end.at - start.at  # type: ignore[attr-defined]


def fake_trt(clock: Clock) -> types.SimpleNamespace:
    """A TensorRT runtime for a one-input (x: [batch, 4]) one-output (y: [batch, 2]) engine with two layers."""

    class IProfiler:
        def __init__(self) -> None:
            pass

    class Context:
        def __init__(self) -> None:
            self.shapes: dict[str, list[int]] = {}
            self.addresses: dict[str, int] = {}
            self.profiler: IProfiler | None = None

        def set_optimization_profile_async(self, index: int, stream: int) -> None:
            clock.calls.append(f"profile{index}")

        def set_input_shape(self, name: str, dims: object) -> bool:
            self.shapes[name] = list(dims)  # type: ignore[call-overload]
            return self.shapes[name][0] <= 8  # the profile's max batch

        def get_tensor_shape(self, name: str) -> list[int]:
            return self.shapes["x"] if name == "x" else [self.shapes["x"][0], 2]

        def set_tensor_address(self, name: str, ptr: int) -> None:
            self.addresses[name] = ptr

        def execute_async_v3(self, stream: int) -> bool:
            clock.calls.append("enqueue")
            clock.now += 2.0
            if self.profiler is not None:
                self.profiler.report_layer_time("conv", 1.5)  # type: ignore[attr-defined]
                self.profiler.report_layer_time("fc", 0.5)  # type: ignore[attr-defined]
            return True

    class Inspector:
        execution_context: Context | None = None

        def get_engine_information(self, fmt: str) -> str:
            return json.dumps({"Layers": ["conv", "fc"], "Bindings": ["x", "y"]})

    class Engine:
        num_io_tensors = 2
        device_memory_size_v2 = 123456

        def get_tensor_name(self, i: int) -> str:
            return ["x", "y"][i]

        def get_tensor_mode(self, name: str) -> str:
            return "INPUT" if name == "x" else "OUTPUT"

        def get_tensor_dtype(self, name: str) -> str:
            return "float32"

        def get_tensor_profile_shape(self, name: str, index: int) -> list[list[int]]:
            return [[1, 4], [4, 4], [8, 4]]

        def create_execution_context(self) -> Context:
            return Context()

        def create_engine_inspector(self) -> Inspector:
            return Inspector()

    class Runtime:
        def __init__(self, logger: object) -> None:
            pass

        def deserialize_cuda_engine(self, plan: bytes) -> Engine | None:
            return Engine() if plan == b"good-plan" else None

    return types.SimpleNamespace(
        Runtime=Runtime,
        IProfiler=IProfiler,
        TensorIOMode=types.SimpleNamespace(INPUT="INPUT"),
        Dims=lambda shape: list(shape),
        nptype=lambda dtype: np.float32,
        LayerInformationFormat=types.SimpleNamespace(JSON="json"),
    )


def fake_engine(tmp_path: Path, plan: bytes = b"good-plan", **options: object) -> BuiltEngine:
    """A built engine as the backend hands it over, with a stand-in for the TensorRT API facts the runner reads."""
    api = types.SimpleNamespace(
        label="tensorrt-10.13.0.35", device_memory_bytes=lambda engine: int(engine.device_memory_size_v2)
    )
    run = RunOptions(**{"artifact_dir": tmp_path / "artifacts", **options})  # type: ignore[arg-type]
    build = BuildInfo(build_time_ms=1.0, engine_bytes=len(plan), details={"device_memory_bytes": None})
    return BuiltEngine(api, "net-fp32-b4", plan, build, run)  # type: ignore[arg-type]


@pytest.fixture
def fakes(monkeypatch):
    def install(capture_fails: bool = False) -> FakeCuda:
        cuda = FakeCuda(capture_fails)
        monkeypatch.setattr(tensorrt_runner, "cuda", cuda)
        monkeypatch.setattr(tensorrt_runner, "trt", fake_trt(cuda.clock))
        monkeypatch.setattr(tensorrt_runner, "tensorrt_log", lambda: types.SimpleNamespace(logger=None))
        return cuda

    return install


FEEDS = {"x": np.arange(16, dtype=np.float32).reshape(4, 4)}


def test_runner_binds_captures_a_graph_and_times_each_iteration(fakes, tmp_path):
    cuda = fakes()
    engine = fake_engine(tmp_path)
    runner = tensorrt_runner.TensorRTRunner(engine, FEEDS)
    # set-up: inputs copied once, one plain enqueue, then the capture of one enqueue and a first replay
    assert cuda.clock.calls[:6] == ["profile0", "h2d", "enqueue", "sync", "capture", "enqueue"]
    assert runner.graph_note == "on"
    assert runner.context.shapes == {"x": [4, 4]}
    assert set(runner.context.addresses) == {"x", "y"}
    assert engine.build.details["device_memory_bytes"] == 123456
    cuda.clock.calls.clear()
    timings = [runner.step() for _ in range(3)]
    assert cuda.clock.calls == ["graph.launch"] * 3  # no copies: data stays on the device
    assert all(t["gpu_compute_ms"] == 2.0 for t in timings)
    assert all(t["enqueue_ms"] >= 0 for t in timings) and "h2d_ms" not in timings[0]
    outputs = runner.outputs()
    assert outputs["y"].shape == (4, 2) and float(outputs["y"][0, 0]) == 1.5
    runner.close()

    folder = tmp_path / "artifacts" / "net-fp32-b4"
    times = read_times(folder / "times.json")
    assert times.gpu_compute_ms == [2.0, 2.0, 2.0]
    count, layers = read_profile(folder / "profile.json")
    assert count == tensorrt_runner.LAYER_PROFILE_ITERATIONS
    assert [(layer["name"], layer["averageMs"], layer["percentage"]) for layer in layers] == [
        ("conv", 1.5, 75.0),
        ("fc", 0.5, 25.0),
    ]
    assert read_layer_info(folder / "layer_info.json")["Layers"] == ["conv", "fc"]
    assert engine.build.details["cuda_graph"] == "on"
    assert set(engine.build.details["artifacts"]) == {"times", "profile", "layer_info"}


def test_transfers_are_timed_separately(fakes, tmp_path):
    cuda = fakes()
    runner = tensorrt_runner.TensorRTRunner(fake_engine(tmp_path, transfers=True, cuda_graph=False), FEEDS)
    assert runner.graph_note.startswith("off")
    cuda.clock.calls.clear()
    timing = runner.step()
    assert cuda.clock.calls == ["h2d", "enqueue", "d2h"]
    assert timing == {"gpu_compute_ms": 2.0, "enqueue_ms": timing["enqueue_ms"], "h2d_ms": 0.25, "d2h_ms": 0.125}
    trace = runner.trace[-1]
    assert trace["latencyMs"] == pytest.approx(2.375) and trace["h2dMs"] == 0.25
    runner.close()


def test_an_engine_that_cannot_be_captured_falls_back_to_enqueue(fakes, tmp_path):
    cuda = fakes(capture_fails=True)
    runner = tensorrt_runner.TensorRTRunner(fake_engine(tmp_path), FEEDS)
    assert runner.graph is None
    assert "capture failed: cudaStreamBeginCapture failed" in runner.graph_note
    cuda.clock.calls.clear()
    runner.step()
    assert cuda.clock.calls == ["enqueue"]
    runner.close()


def test_a_shape_outside_the_profile_and_an_unloadable_engine_are_clear_errors(fakes, tmp_path):
    fakes()
    with pytest.raises(HarnessError, match="outside the engine's optimization profile"):
        tensorrt_runner.TensorRTRunner(fake_engine(tmp_path), {"x": np.zeros((16, 4), np.float32)})
    with pytest.raises(HarnessError, match="could not load the engine on this GPU"):
        tensorrt_runner.TensorRTRunner(fake_engine(tmp_path, plan=b"other"), FEEDS)


# -- for real, where TensorRT runs ---------------------------------------------------------------------------------
def _gpu_reason() -> str | None:
    from harness.machine import cuda
    from harness.trt import compat as trt_compat

    reason = cuda.available()
    if reason:
        return reason
    try:
        api = trt_compat.find("auto")
    except HarnessError as exc:
        return str(exc)
    if api.flavour == trt_compat.TENSORRT_RTX:
        info = cuda.device_info(0)
        if info["compute_capability"].startswith("9."):
            return f"TensorRT-RTX does not run on compute capability {info['compute_capability']} ({info['name']})"
    return None


@pytest.mark.gpu
def test_suite_runs_on_the_gpu_with_trtexec_style_files(pytester):
    reason = _gpu_reason()
    if reason:
        pytest.skip(f"needs TensorRT and a GPU it runs on: {reason}")
    pytester.makepyfile(test_bench="def test_case(harness_case, harness_check):\n    harness_check(harness_case)\n")
    suite = pytester.path / "suite.yaml"
    suite.write_text(
        "suite: trt-gpu\nmodels:\n  - name: squeezenet\n    onnx_zoo: light_squeezenet\n"
        "precisions: [fp32, fp16]\nbatch_sizes: [1, 8]\n"
        "measure: {warmup_ms: 50, min_duration_ms: 200, min_iterations: 20, trials: 2}\n"
    )
    root = pytester.path
    pytester.runpytest_subprocess(
        "-p", "harness.pytest_plugin", "--backend", "tensorrt", "--suite", str(suite),
        "--baseline-dir", str(root / "b"), "--report-dir", str(root / "r"), "--harness-cache", str(root / "c"),
    ).assert_outcomes(passed=4)  # fmt: skip
    results = json.loads((root / "r" / "results.json").read_text())
    for case in results["cases"]:
        assert case["stats"]["gpu_compute_ms"]["median"] > 0
        assert case["build"]["device_memory_bytes"] > 0
        folder = root / "r" / "artifacts" / case["id"]
        assert read_times(folder / "times.json").gpu_compute_ms
        assert read_profile(folder / "profile.json")[1]
        assert read_layer_info(folder / "layer_info.json")["Layers"]


def test_enqueue_bound_and_transfer_bound_runs_are_flagged_like_trtexec():
    from harness.core.measurement import Measurement

    def run(**extra: list[float]) -> list[str]:
        m = Measurement(batch_size=1, latency_ms=[1.0] * 20, wall_ms=20.0, warmup_iterations=1, warmup_ms=1.0)
        m.extra_ms = dict(extra)
        return [w.split(":")[0] for w in m.warnings()]

    assert run(gpu_compute_ms=[1.0] * 20, enqueue_ms=[0.1] * 20, h2d_ms=[0.2] * 20, d2h_ms=[0.2] * 20) == []
    assert run(gpu_compute_ms=[0.05] * 20, enqueue_ms=[0.06] * 20) == ["enqueue-bound"]
    assert run(gpu_compute_ms=[0.5] * 20, h2d_ms=[0.7] * 20, d2h_ms=[0.1] * 20) == ["transfer-bound"]
    assert run(enqueue_ms=[5.0] * 20) == []  # nothing to compare with without GPU times


def test_tensorrt_rtx_contexts_use_built_in_graphs_and_keep_the_runtime_cache(fakes, tmp_path, monkeypatch):
    from harness.backends.engine_cache import EngineCache

    cuda = fakes()
    module = tensorrt_runner.trt
    made: list[object] = []

    class RuntimeCache:
        def __init__(self) -> None:
            self.loaded = b""

        def deserialize(self, blob: bytes) -> bool:
            self.loaded = bytes(blob)
            return True

        def serialize(self) -> bytes:
            return self.loaded + b"+jit"

    class RuntimeConfig:
        cuda_graph_strategy = "DISABLED"
        cache: RuntimeCache | None = None

        def create_runtime_cache(self) -> RuntimeCache:
            return RuntimeCache()

        def set_runtime_cache(self, cache: RuntimeCache) -> bool:
            self.cache = cache
            return True

    engine_class = type(module.Runtime(None).deserialize_cuda_engine(b"good-plan"))
    plain = engine_class.create_execution_context

    def create_execution_context(self, config=None):
        made.append(config)
        return plain(self)

    monkeypatch.setattr(engine_class, "create_runtime_config", lambda self: RuntimeConfig(), raising=False)
    monkeypatch.setattr(engine_class, "create_execution_context", create_execution_context)
    monkeypatch.setattr(
        module, "CudaGraphStrategy", types.SimpleNamespace(WHOLE_GRAPH_CAPTURE="WHOLE_GRAPH_CAPTURE"), raising=False
    )
    cache = EngineCache(tmp_path / "cache")
    label = "runtime-tensorrt-10.13.0.35-RTX 5090 sm12.0"
    cache.write_timing(label, b"earlier")

    engine = fake_engine(tmp_path, runtime_cache=cache, runtime_cache_label=label)
    runner = tensorrt_runner.TensorRTRunner(engine, FEEDS)
    assert runner.graph is None and runner.graph_note == "on (TensorRT-RTX built-in CUDA graphs)"
    assert "capture" not in cuda.clock.calls  # the library captures, not the runner
    assert made[0].cuda_graph_strategy == "WHOLE_GRAPH_CAPTURE" and made[0].cache.loaded == b"earlier"
    runner.step()
    runner.close()
    assert made[1].cuda_graph_strategy == "DISABLED"  # the per-layer profiling context runs without graphs
    assert cache.read_timing(label) == b"earlier+jit"  # kernels compiled this run are kept for the next
