"""The CUDA side of the TensorRT runner on a real GPU, where no TensorRT engine can run (not collected by pytest).

TensorRT's runtime is replaced by a stand-in whose ``execute_async_v3`` enqueues real GPU work on the stream it is
given (four memsets and a device-to-device copy of one 16 MiB input); everything else is the real thing:
``harness.trt.runner`` with ``harness.machine.cuda`` (device and pinned buffers, copies, events, CUDA-graph
capture and replay) and ``harness.measure.loop``. It checks, with CUDA graphs on and off and with transfers included:

- the outputs come back (the copy makes the output equal to the input);
- the runner's GPU time against a bare CUDA-event loop around the same work;
- enqueue time and host latency with and without a graph; H2D/D2H times of 16 MiB;
- the trtexec-format files (times, per-layer profile, layer info) are written and read back.

    PYTHONPATH=. python3 benchmarks/perf/trt_runner_cuda.py --out reports/trt_runner_cuda.json
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.backends.base import BuildInfo  # noqa: E402
from harness.backends.trtexec import read_layer_info, read_profile, read_times  # noqa: E402
from harness.core.stats import summarize  # noqa: E402
from harness.machine import cuda  # noqa: E402
from harness.measure.loop import measure  # noqa: E402
from harness.suite.schema import MeasureSpec  # noqa: E402
from harness.trt import runner as tensorrt_runner  # noqa: E402
from harness.trt.engine import BuiltEngine, RunOptions  # noqa: E402

ELEMENTS = 4 * 1024 * 1024  # one input row of float32: 16 MiB


class StandInContext:
    """An execution context whose inference is real GPU work on the given stream."""

    def __init__(self) -> None:
        self.shapes: dict[str, list[int]] = {}
        self.addresses: dict[str, int] = {}
        self.profiler: Any = None

    def set_optimization_profile_async(self, index: int, stream: int) -> bool:
        return True

    def set_input_shape(self, name: str, dims: list[int]) -> bool:
        self.shapes[name] = list(dims)
        return True

    def get_tensor_shape(self, name: str) -> list[int]:
        return self.shapes["x"]

    def set_tensor_address(self, name: str, ptr: int) -> None:
        self.addresses[name] = ptr

    def execute_async_v3(self, stream: int) -> bool:
        rt = cuda.runtime()
        nbytes = int(np.prod(self.shapes["x"])) * 4
        for value in (1, 2, 3, 4):
            cuda.check(rt.cudaMemsetAsync(self.addresses["y"], value, nbytes, stream), "cudaMemsetAsync")
        kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        cuda.check(rt.cudaMemcpyAsync(self.addresses["y"], self.addresses["x"], nbytes, kind, stream), "D2D")
        if self.profiler is not None:
            self.profiler.report_layer_time("memsets", 0.04)
            self.profiler.report_layer_time("copy", 0.02)
        return True


class StandInEngine:
    num_io_tensors = 2
    device_memory_size_v2 = 4096

    def get_tensor_name(self, i: int) -> str:
        return ["x", "y"][i]

    def get_tensor_mode(self, name: str) -> str:
        return "INPUT" if name == "x" else "OUTPUT"

    def get_tensor_dtype(self, name: str) -> str:
        return "float32"

    def get_tensor_profile_shape(self, name: str, index: int) -> list[list[int]]:
        return [[1, ELEMENTS], [1, ELEMENTS], [1, ELEMENTS]]

    def create_execution_context(self) -> StandInContext:
        return StandInContext()

    def create_engine_inspector(self) -> Any:
        return types.SimpleNamespace(
            execution_context=None,
            get_engine_information=lambda fmt: json.dumps({"Layers": ["memsets", "copy"], "Bindings": ["x", "y"]}),
        )


def install_stand_in() -> None:
    class IProfiler:
        def __init__(self) -> None:
            pass

    runtime = types.SimpleNamespace(deserialize_cuda_engine=lambda plan: StandInEngine())
    tensorrt_runner.trt = types.SimpleNamespace(  # type: ignore[assignment]
        Runtime=lambda logger: runtime,
        IProfiler=IProfiler,
        TensorIOMode=types.SimpleNamespace(INPUT="INPUT"),
        Dims=lambda shape: list(shape),
        nptype=lambda dtype: np.float32,
        LayerInformationFormat=types.SimpleNamespace(JSON="json"),
    )
    tensorrt_runner.tensorrt_log = lambda: types.SimpleNamespace(logger=None)  # type: ignore[assignment]


def run(out: Path, graph: bool, transfers: bool, name: str) -> dict[str, Any]:
    engine = BuiltEngine(
        api=types.SimpleNamespace(label="stand-in", device_memory_bytes=lambda engine: 4096),  # type: ignore[arg-type]
        case_id=name,
        plan=b"plan",
        build=BuildInfo(build_time_ms=1.0, engine_bytes=4, details={}),
        run=RunOptions(cuda_graph=graph, transfers=transfers, layer_profile=True, artifact_dir=out / "artifacts"),
    )
    feeds = {"x": np.random.default_rng(0).random((1, ELEMENTS), dtype=np.float32)}
    runner = tensorrt_runner.TensorRTRunner(engine, feeds)
    m = measure(runner, MeasureSpec(warmup_ms=100, min_duration_ms=500, min_iterations=200), 1)
    outputs_ok = bool(np.array_equal(runner.outputs()["y"], feeds["x"]))
    runner.close()
    folder = out / "artifacts" / name
    return {
        "cuda_graph": runner.graph_note,
        "iterations": m.iterations,
        "outputs_equal_input": outputs_ok,
        "host_latency_median_ms": summarize(m.latency_ms)["median"],
        **{f"{k}_median": summarize(v)["median"] for k, v in m.extra_ms.items()},
        "times_rows": len(read_times(folder / "times.json").gpu_compute_ms),
        "profile_layers": [layer["name"] for layer in read_profile(folder / "profile.json")[1]],
        "layer_info_layers": read_layer_info(folder / "layer_info.json")["Layers"],
    }


def bare_event_loop_ms(iterations: int = 500) -> float:
    """The same work timed by a plain loop of two events around it."""
    stream = cuda.Stream()
    context = StandInContext()
    x, y = cuda.DeviceBuffer(ELEMENTS * 4), cuda.DeviceBuffer(ELEMENTS * 4)
    context.shapes["x"] = [1, ELEMENTS]
    context.addresses = {"x": x.ptr, "y": y.ptr}
    start, end = cuda.Event(), cuda.Event()
    for _ in range(50):
        context.execute_async_v3(stream.handle)
    stream.synchronize()
    times = []
    for _ in range(iterations):
        start.record(stream)
        context.execute_async_v3(stream.handle)
        end.record(stream)
        end.synchronize()
        times.append(cuda.elapsed_ms(start, end))
    return float(summarize(times)["median"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/trt_runner_cuda.json"))
    args = parser.parse_args()
    reason = cuda.available()
    if reason:
        print(f"needs a CUDA GPU: {reason}", file=sys.stderr)
        return 2
    install_stand_in()
    out = args.out.parent
    report = {
        "device": cuda.device_info(0),
        "bare_event_loop_gpu_ms": bare_event_loop_ms(),
        "graph": run(out, graph=True, transfers=False, name="graph"),
        "no_graph": run(out, graph=False, transfers=False, name="no-graph"),
        "graph_with_transfers": run(out, graph=True, transfers=True, name="graph-transfers"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
