"""Fidelity of the harness's GPU timing, on a real GPU (not collected by pytest; run it as a script).

1. GPU time of a workload of known cost (chains of fp16 matrix products, FLOPs known), as the harness reports it
   (torch backend runner -> harness.measure.loop, CUDA events through harness.machine.cuda) against a bare CUDA-event
   loop around
   the same work written with torch.cuda.Event alone, in alternating rounds so that clock and temperature drift hit
   both alike. Target: within 1 %.
2. Host overhead per inference, with and without CUDA graphs: median host latency measured by harness.measure.loop
   minus median GPU time, and the median enqueue time (host time to submit one inference). Target with graphs:
   <= 5 us.
3. Between-run spread of a suite: given two or more results.json files of the same suite on the same machine,
   the relative spread of each case's median GPU time and median latency (``--spread A.json B.json``).

    PYTHONPATH=. python3 benchmarks/perf/gpu_fidelity.py --out reports/fidelity.json
    PYTHONPATH=. python3 benchmarks/perf/gpu_fidelity.py --spread run1/results.json run2/results.json
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.backends.base import get_backend  # noqa: E402
from harness.measure.loop import measure  # noqa: E402
from harness.suite.load import load_suite  # noqa: E402
from harness.suite.schema import MeasureSpec  # noqa: E402

SPEC = MeasureSpec(warmup_ms=300, min_duration_ms=1500, min_iterations=200)
BARE_ITERATIONS = 400
ROUNDS = 5  # alternating harness / bare rounds per workload
ROUND_SPEC = MeasureSpec(warmup_ms=100, min_duration_ms=400, min_iterations=60)
ROUND_BARE_ITERATIONS = 100


# -- workloads of known cost -----------------------------------------------------------------------------------------
def gemm_chain(n: int, count: int) -> Any:
    """``count`` products of [n, n] x [n, n]: 2 n^3 count FLOPs per inference (batch dimension = rows = n)."""
    import torch

    class Chain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(n, n) / n**0.5)  # keeps values O(1) in fp16

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for _ in range(count):
                x = x @ self.w
            return x

    return Chain(), {"x": torch.randn(1, n)}


def gemm_small() -> Any:
    return gemm_chain(2048, 8)


def gemm_large() -> Any:
    return gemm_chain(8192, 4)


WORKLOADS = {"gemm_small": (2048, 8), "gemm_large": (8192, 4)}


def _cases(tmp: Path) -> dict[str, Any]:
    """Cases for this script's factories and the zoo's, through the suite loader (as a user would give them)."""
    suite = tmp / "fidelity.yaml"
    suite.write_text(
        textwrap.dedent(
            """
            suite: fidelity
            models:
              - {name: gemm_small, torch: 'benchmarks.perf.gpu_fidelity:gemm_small', batch_sizes: [2048]}
              - {name: gemm_large, torch: 'benchmarks.perf.gpu_fidelity:gemm_large', batch_sizes: [8192]}
              - {name: encoder_tiny, torch: 'benchmarks.models.torch_zoo:encoder_tiny', batch_sizes: [1]}
              - {name: resnet50, torch: 'benchmarks.models.torch_zoo:resnet50', batch_sizes: [1]}
            precisions: [fp16]
            """
        )
    )
    return {c.model.name: c for c in load_suite(suite).cases()}


def _feeds(name: str, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    if name in WORKLOADS:
        n = WORKLOADS[name][0]
        return {"x": rng.standard_normal((batch, n)).astype(np.float32)}
    if name == "encoder_tiny":
        return {"tokens": rng.integers(0, 100, (batch, 16)).astype(np.int64)}
    return {"images": rng.random((batch, 3, 224, 224), dtype=np.float32)}


class HarnessSide:
    """The torch backend's runner for one case, measured by harness.measure.loop (CUDA events through
    harness.machine.cuda)."""

    def __init__(self, case: Any, mode: str, spec: MeasureSpec = SPEC) -> None:
        engine = get_backend("torch", {"mode": mode}).build(None, case)  # type: ignore[arg-type]
        self.case, self.spec = case, spec
        self.runner = engine.runner(_feeds(case.model.name, case.batch_size))

    def run(self) -> dict[str, Any]:
        m = measure(self.runner, self.spec, self.case.batch_size, uses_gpu=True)
        return {
            "gpu_ms": float(np.median(m.extra_ms["gpu_compute_ms"])),
            "latency_ms": float(np.median(m.latency_ms)),
            "enqueue_ms": float(np.median(m.extra_ms["enqueue_ms"])),
            "telemetry_flagged": bool(m.telemetry.get("flagged")),
            "sm_clock_mhz": (m.telemetry.get("sm_clock_mhz") or {}).get("median", 0.0),
        }

    def close(self) -> None:
        self.runner.close()


class BareSide:
    """The same work in a plain torch.cuda.Event loop: no harness code involved."""

    def __init__(self, case: Any, mode: str) -> None:
        import torch

        from harness.models.factories import load_torch_factory

        self.torch = torch
        net, _ = load_torch_factory(case.model.location, case.model.suite_file)
        self.net = net.cuda().half()
        x = [torch.from_numpy(v).cuda() for v in _feeds(case.model.name, case.batch_size).values()]
        self.x = [t.half() if t.is_floating_point() else t for t in x]
        self.stream = torch.cuda.Stream()
        self.stream.wait_stream(torch.cuda.current_stream())
        self.run_once = lambda: self.net(*self.x)
        with torch.inference_mode(), torch.cuda.stream(self.stream):
            for _ in range(5):
                self.run_once()
            if mode == "graphs":
                self.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.graph, stream=self.stream):
                    self.net(*self.x)
                self.run_once = self.graph.replay
        self.stream.synchronize()

    def run(self, iterations: int = BARE_ITERATIONS) -> float:
        torch = self.torch
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        with torch.inference_mode(), torch.cuda.stream(self.stream):
            for _ in range(50):
                self.run_once()
            for _ in range(iterations):
                start.record(self.stream)
                self.run_once()
                end.record(self.stream)
                end.synchronize()
                times.append(start.elapsed_time(end))
        return float(np.median(times))


def known_cost(cases: dict[str, Any], rounds: int = ROUNDS) -> list[dict[str, Any]]:
    """Harness and bare loop in alternating rounds, so clock and temperature drift hit both alike."""
    rows = []
    for name in ("gemm_small", "gemm_large"):
        n, count = WORKLOADS[name]
        flops = 2.0 * n**3 * count
        for mode in ("graphs", "eager"):
            harness_side = HarnessSide(cases[name], mode, ROUND_SPEC)
            bare_side = BareSide(cases[name], mode)
            h_ms, b_ms, flagged = [], [], False
            try:
                for _ in range(rounds):
                    h = harness_side.run()
                    h_ms.append(h["gpu_ms"])
                    flagged |= h["telemetry_flagged"]
                    b_ms.append(bare_side.run(ROUND_BARE_ITERATIONS))
            finally:
                harness_side.close()
            h_med, b_med = float(np.median(h_ms)), float(np.median(b_ms))
            row = {
                "workload": f"{name} ({count} x {n}^3 fp16 matmuls, {flops / 1e9:.0f} GFLOP)",
                "mode": mode,
                "rounds": rounds,
                "harness_gpu_ms": h_med,
                "bare_gpu_ms": b_med,
                "difference_pct": 100 * (h_med - b_med) / b_med,
                "harness_round_spread_pct": 100 * (max(h_ms) - min(h_ms)) / h_med,
                "bare_round_spread_pct": 100 * (max(b_ms) - min(b_ms)) / b_med,
                "tflops": flops / (h_med / 1e3) / 1e12,
                "telemetry_flagged": flagged,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def launch_costs() -> list[dict[str, Any]]:
    """Host cost of the calls one timed inference makes (us per call), on a one-kernel graph."""
    import time

    import torch

    from harness.machine import cuda

    x = torch.zeros(1, device="cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(stream):
        x.add_(1)
        with torch.cuda.graph(graph, stream=stream):
            x.add_(1)
    raw = cuda.Graph.wrap(graph.raw_cuda_graph_exec())
    timer = cuda.Timer(stream.cuda_stream)
    event = torch.cuda.Event(enable_timing=True)
    calls = {
        "torch CUDAGraph.replay()": graph.replay,
        "harness.machine.cuda Graph.launch() of the same graph": lambda: raw.launch(stream.cuda_stream),
        "harness.machine.cuda Timer.start() (cudaEventRecord)": timer.start,
        "torch.cuda.Event.record()": lambda: event.record(stream),
        "time.perf_counter_ns()": time.perf_counter_ns,
    }
    rows = []
    with torch.cuda.stream(stream):
        for label, call in calls.items():
            per_call = []
            for _ in range(30):
                t0 = time.perf_counter_ns()
                for _ in range(100):
                    call()
                per_call.append((time.perf_counter_ns() - t0) / 100 / 1e3)
                stream.synchronize()
            rows.append({"call": label, "us_per_call": float(np.median(per_call))})
            print(json.dumps(rows[-1]), flush=True)
    timer.close()
    return rows


def fidelity(tmp: Path) -> dict[str, Any]:
    cases = _cases(tmp)
    out: dict[str, Any] = {"known_cost": known_cost(cases), "host_overhead": [], "launch_costs": launch_costs()}
    for name in ("encoder_tiny", "resnet50", "gemm_small"):
        for mode in ("graphs", "eager"):
            side = HarnessSide(cases[name], mode)
            try:
                h = side.run()
            finally:
                side.close()
            row = {
                "model": f"{name} b{cases[name].batch_size} fp16",
                "mode": mode,
                "gpu_ms": h["gpu_ms"],
                "latency_ms": h["latency_ms"],
                "host_overhead_us": 1e3 * (h["latency_ms"] - h["gpu_ms"]),
                "enqueue_us": 1e3 * h["enqueue_ms"],
            }
            out["host_overhead"].append(row)
            print(json.dumps(row), flush=True)
    return out


def enqueue_probe() -> list[dict[str, Any]]:
    """Host time of one CUDA-graph launch (us, GPU idle before each) against the graph's node count, with and
    without the telemetry sampler running: what the suite's enqueue times grow with."""
    import time

    import torch

    from harness.machine import cuda
    from harness.machine.telemetry import Sampler
    from harness.models.factories import load_torch_factory

    rows = []
    for factory, batch in (("resnet50", 1), ("resnet50", 8), ("resnet50", 32), ("bert_base", 1), ("bert_base", 32)):
        net, examples = load_torch_factory(f"benchmarks.models.torch_zoo:{factory}")
        net = net.cuda().half()
        (example,) = examples.values()
        x = example.repeat(batch, *([1] * (example.dim() - 1))).cuda()
        x = x.half() if x.is_floating_point() else x
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode(), torch.cuda.stream(stream):
            for _ in range(3):
                net(x)
            kept = True
            try:
                graph = torch.cuda.CUDAGraph(keep_graph=True)
            except TypeError:  # torch without keep_graph: no node count
                graph, kept = torch.cuda.CUDAGraph(), False
            with torch.cuda.graph(graph, stream=stream):
                net(x)
            nodes = -1
            if kept:
                nodes = cuda.check(cuda.runtime().cudaGraphGetNodes(graph.raw_cuda_graph(), 0), "cudaGraphGetNodes")[1]
                graph.instantiate()

            def launch_us(graph: Any = graph, stream: Any = stream, reps: int = 60) -> float:
                times = []
                for _ in range(reps):
                    stream.synchronize()
                    t0 = time.perf_counter_ns()
                    graph.replay()
                    times.append((time.perf_counter_ns() - t0) / 1e3)
                stream.synchronize()
                return float(np.median(times))

            launch_us(reps=10)
            quiet = launch_us()
            with Sampler():
                sampled = launch_us()
        row = {
            "model": f"{factory} b{batch} fp16",
            "graph_nodes": int(nodes),
            "launch_us": quiet,
            "launch_us_sampler_on": sampled,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        torch.cuda.empty_cache()
    return rows


# -- between-run spread ----------------------------------------------------------------------------------------------
def spread(paths: list[Path]) -> dict[str, Any]:
    runs = [json.loads(p.read_text()) for p in paths]
    per_case: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for case in run["cases"]:
            if case.get("status") not in ("passed", "failed") or not case.get("metrics"):  # failed: e.g. accuracy
                continue
            entry = per_case.setdefault(case["id"], {"latency_median_ms": [], "gpu_compute_median_ms": []})
            entry["latency_median_ms"].append(case["metrics"]["latency_median_ms"])
            if "gpu_compute_ms" in case.get("stats", {}):
                entry["gpu_compute_median_ms"].append(case["stats"]["gpu_compute_ms"]["median"])
    rows = []
    for case_id, series in per_case.items():
        row: dict[str, Any] = {"case": case_id}
        for name, values in series.items():
            if len(values) == len(runs) and len(values) > 1:
                row[f"{name}_spread_pct"] = 100 * (max(values) - min(values)) / float(np.mean(values))
        rows.append(row)
    summary: dict[str, Any] = {"runs": [str(p) for p in paths], "cases": rows}
    for key in ("latency_median_ms_spread_pct", "gpu_compute_median_ms_spread_pct"):
        values = [r[key] for r in rows if key in r]
        if values:
            summary[key] = {"median": float(np.median(values)), "max": float(np.max(values)), "cases": len(values)}
    return summary


def _table(result: dict[str, Any]) -> str:
    lines = []
    if "known_cost" in result:
        lines.append("known-cost workload: harness GPU time vs bare CUDA-event loop")
        lines.append(
            f"{'workload':<52} {'mode':<7} {'harness ms':>10} {'bare ms':>9} {'diff':>8} {'spread h/b':>12} "
            f"{'TFLOP/s':>8}"
        )
        for r in result["known_cost"]:
            spread_hb = f"{r['harness_round_spread_pct']:.1f}/{r['bare_round_spread_pct']:.1f}%"
            lines.append(
                f"{r['workload']:<52} {r['mode']:<7} {r['harness_gpu_ms']:>10.4f} {r['bare_gpu_ms']:>9.4f} "
                f"{r['difference_pct']:>+7.2f}% {spread_hb:>12} {r['tflops']:>8.1f}"
            )
        lines.append("host cost of the calls in one timed inference")
        for r in result.get("launch_costs", []):
            lines.append(f"  {r['call']:<48} {r['us_per_call']:>6.2f} us")
        lines.append("host overhead per inference (median host latency - median GPU time) and enqueue time")
        head = f"{'model':<24} {'mode':<7} {'GPU ms':>8} {'latency ms':>10} {'overhead us':>11} {'enqueue us':>10}"
        lines.append(head)
        for r in result["host_overhead"]:
            lines.append(
                f"{r['model']:<24} {r['mode']:<7} {r['gpu_ms']:>8.4f} {r['latency_ms']:>10.4f} "
                f"{r['host_overhead_us']:>11.1f} {r['enqueue_us']:>10.1f}"
            )
    if "enqueue_probe" in result:
        lines.append("CUDA-graph launch time against graph size (GPU idle before each launch)")
        for r in result["enqueue_probe"]:
            lines.append(
                f"  {r['model']:<20} {r['graph_nodes']:>5} nodes  {r['launch_us']:>7.1f} us  "
                f"({r['launch_us_sampler_on']:.1f} us with the telemetry sampler running)"
            )
    if "spread" in result:
        s = result["spread"]
        for key in ("gpu_compute_median_ms_spread_pct", "latency_median_ms_spread_pct"):
            if key in s:
                lines.append(
                    f"between-run spread of {key.removesuffix('_spread_pct')} over {s[key]['cases']} cases and "
                    f"{len(s['runs'])} runs: median {s[key]['median']:.2f}%, max {s[key]['max']:.2f}%"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--spread", type=Path, nargs="+", metavar="RESULTS", help="only compute between-run spread")
    parser.add_argument("--probe", action="store_true", help="only the launch time against graph size")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    if args.spread:
        result["spread"] = spread(args.spread)
    else:
        import tempfile

        import torch

        if not torch.cuda.is_available():
            print("no CUDA GPU: the fidelity benchmark needs one", file=sys.stderr)
            return 2
        result["device"] = torch.cuda.get_device_name(0)
        result["torch"] = torch.__version__
        if args.probe:
            result["enqueue_probe"] = enqueue_probe()
        else:
            with tempfile.TemporaryDirectory() as tmp:
                result.update(fidelity(Path(tmp)))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
