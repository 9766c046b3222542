"""Where the spread between processes on a GPU comes from: fresh processes measure the same cases the way the gate
does, and each candidate source is either varied inside a process or recorded beside every trial.

    python3 benchmarks/perf/gpu_spread.py --processes 8 --out spread.json

Each process (``--child``) builds the GPU suite's ResNet-50 class at fp16 batch 1 and BERT-base class at fp16
batch 8 with the harness's torch backend (CUDA-graph mode) and measures trials with harness.measure.loop, as long as
one of a gate's 3 trials of the suite's settings. Conditions:

- ``resnet`` / ``bert``: as the gate runs them today (cuDNN benchmark mode: algorithms timed once per process);
- ``resnet-heuristic``: cuDNN's heuristic algorithm choice instead of timing (the same engine);
- ``resnet-twin``: a second copy of the ResNet weights, built after a random-sized allocation, so its memory lies
  elsewhere (memory placement, same algorithms);
- ``resnet-reshuffled`` / ``bert-reshuffled``: every runner lays its memory out afresh (:func:`_ballast`), the others
  keep the allocator's layout from one runner to the next;

and every trial records the NVML SM clock, power and temperature, the GPU compute time (CUDA events) next to the
host latency, and a GPU speed probe (:func:`gpu_probe_ms`) before and after. The trials run early (right
after the model is loaded) and again late (after every other condition), so the first seconds after loading show.

The driver prints, per condition, the spread between processes of the per-process median (host latency, GPU time,
both divided by the probe) against the spread between the trials of one process, and the correlation of the
process medians with the probe and the SM clock.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

TRIALS = 6  # a gate's 3 trials and their confirmation
REPEATS = 9  # probe replays per reading; the median resists an interrupted one
GPU_MATMUL = 2048  # fp16 matmuls of GPU_MATMUL^3 (17 GFLOP each): the tensor cores at the SM clock
GPU_MATMULS = 8
GPU_COPY_BYTES = 64 * 2**20  # device-to-device copies: HBM bandwidth at the memory clock
GPU_COPIES = 4


@lru_cache(maxsize=4)
def _gpu_workload(device: int) -> tuple[Any, Any, Any, Any]:
    """The GPU probe captured once into a CUDA graph (no launch overhead in the reading) on its own stream, and
    the two timing events."""
    import torch

    dev = torch.device("cuda", device)
    generator = torch.Generator(device=dev).manual_seed(0)
    a = torch.rand((GPU_MATMUL, GPU_MATMUL), device=dev, dtype=torch.float16, generator=generator)
    b = torch.rand((GPU_MATMUL, GPU_MATMUL), device=dev, dtype=torch.float16, generator=generator)
    c = torch.empty_like(a)
    src = torch.empty(GPU_COPY_BYTES, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    stream = torch.cuda.Stream(dev)
    stream.wait_stream(torch.cuda.current_stream(dev))

    def work() -> None:
        for _ in range(GPU_MATMULS):
            torch.matmul(a, b, out=c)
        for _ in range(GPU_COPIES):
            dst.copy_(src)

    with torch.cuda.stream(stream):
        work()  # cuBLAS picks and loads its kernel outside the capture
    stream.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        work()
    graph.keep = (a, b, c, src, dst)  # the graph's buffers live as long as the graph
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    return graph, stream, start, end


def gpu_probe_ms(device: int = 0) -> float:
    """One GPU reading: the median GPU time (CUDA events) of :data:`REPEATS` replays of a fixed workload, ms.

    The GPU counterpart of :func:`probe_ms`: eight 2048^3 fp16 matmuls and four 64 MiB device-to-device copies
    (about 0.3 ms on an H200), so a GPU that runs at a lower SM or memory clock than at the baseline shows in the
    reading as it shows in the cases. Needs PyTorch with CUDA (harness.backends.torch's requirement)."""
    import torch

    graph, stream, start, end = _gpu_workload(device)
    times = []
    with torch.cuda.stream(stream):
        for _ in range(REPEATS):
            start.record(stream)
            graph.replay()
            end.record(stream)
            end.synchronize()
            times.append(start.elapsed_time(end))
    return float(np.median(times))


SPEC = {"warmup_ms": 200.0, "min_duration_ms": 500.0, "min_iterations": 50, "trials": 3}


def _engine(torch, location: str, batch: int):
    from harness.backends.base import BuildInfo
    from harness.backends.torch import TorchEngine
    from harness.models.factories import load_torch_factory

    net, examples = load_torch_factory(location)
    device = torch.device("cuda", 0)
    net = net.to(device=device, dtype=torch.float16).eval()
    feeds = {}
    for name, t in examples.items():
        arr = t.numpy()
        feeds[name] = np.repeat(arr, batch, axis=0)
    engine = TorchEngine(torch, net, list(examples), torch.float16, device, "fp16", "graphs", BuildInfo(0.0, {}))
    return engine, feeds


def _ballast(torch: Any) -> Any:
    """Return the caching allocator's free blocks to the driver and hold 2-256 MiB (2 MiB pages) of fresh device
    memory, so the next runner's inputs, activations and graph land elsewhere than the previous runner's (the
    re-randomised layout of C. Curtsinger, E. D. Berger (2013), STABILIZER, ASPLOS)."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    return torch.empty(2 * 2**20 * random.randint(1, 128), dtype=torch.uint8, device="cuda")


def child(out: str, names: list[str], phases: list[str]) -> None:
    started = time.perf_counter()
    import torch

    from harness.measure.loop import measure
    from harness.measure.trials import trial_spec
    from harness.suite.schema import MeasureSpec

    spec = MeasureSpec(**SPEC)
    resnet, resnet_feeds = _engine(torch, "benchmarks.models.torch_zoo:resnet50", 1)
    bert, bert_feeds = _engine(torch, "benchmarks.models.torch_zoo:bert_base", 8)
    ballast = torch.empty(random.randint(1, 64) * 2**20, dtype=torch.uint8, device="cuda")  # moves the twin
    twin, _ = _engine(torch, "benchmarks.models.torch_zoo:resnet50", 1)
    del ballast
    all_conditions = {  # engine, feeds, batch, cuDNN benchmark mode, memory re-placed per runner
        "resnet": (resnet, resnet_feeds, 1, True, False),
        "resnet-heuristic": (resnet, resnet_feeds, 1, False, False),
        "resnet-twin": (twin, resnet_feeds, 1, True, False),
        "bert": (bert, bert_feeds, 8, True, False),
        "resnet-reshuffled": (resnet, resnet_feeds, 1, True, True),
        "bert-reshuffled": (bert, bert_feeds, 8, True, True),
    }
    conditions = {name: all_conditions[name] for name in names}
    load_s = time.perf_counter() - started
    trials: dict[str, list[dict]] = {name: [] for name in conditions}
    for phase in phases:
        for name, (engine, feeds, batch, bench, reshuffle) in conditions.items():
            engine.cudnn_benchmark = bench
            for i in range(TRIALS):
                before = gpu_probe_ms()
                ballast = _ballast(torch) if reshuffle else None
                runner = engine.runner(feeds)
                # where this runner's memory landed: its input and the ballast held aside (0 without re-placing)
                input_ptr = runner.inputs[0].data_ptr()
                ballast_mib = ballast.numel() / 2**20 if ballast is not None else 0.0
                try:
                    m = measure(runner, trial_spec(spec, i % spec.trials), batch, uses_gpu=True)
                finally:
                    runner.close()
                    del ballast
                after = gpu_probe_ms()
                tel = m.telemetry
                trials[name].append(
                    {
                        "phase": phase,
                        "t_s": time.perf_counter() - started,
                        "host_ms": float(np.median(m.latency_ms)),
                        "gpu_ms": float(np.median(m.extra_ms["gpu_compute_ms"])),
                        "throughput_sps": m.throughput_sps,
                        "probe_ms": (before + after) / 2,
                        "sm_clock_mhz": tel.get("sm_clock_mhz", {}).get("median"),
                        "power_w": tel.get("power_w", {}).get("median"),
                        "temperature_c": tel.get("temperature_c", {}).get("median"),
                        "reasons": tel.get("clock_event_reasons"),
                        "input_ptr": input_ptr,
                        "ballast_mib": ballast_mib,
                    }
                )
    weights = {"resnet": next(resnet.fn.parameters()).data_ptr(), "bert": next(bert.fn.parameters()).data_ptr()}
    record = {"pid": os.getpid(), "load_s": load_s, "weight_ptr": weights, "trials": trials}
    Path(out).write_text(json.dumps(record))


def spread(values: list[float]) -> float:
    """(max - min) / median; 0 where the median is 0 (nothing was recorded)."""
    median = float(np.median(values))
    return (max(values) - min(values)) / median if median else 0.0


def analyse(runs: list[dict]) -> dict:
    out: dict = {}
    for name in runs[0]["trials"]:
        rows: dict = {}
        for key in ("host_ms", "gpu_ms", "host/probe", "gpu/probe", "throughput_sps"):
            per_process, within = [], []
            for run in runs:
                ts = run["trials"][name]
                if "/" in key:
                    metric = key.split("/")[0] + "_ms"
                    vals = [t[metric] / t["probe_ms"] for t in ts]
                else:
                    vals = [t[key] for t in ts]
                per_process.append(float(np.median(vals)))
                within.append(spread(vals[:TRIALS]))
            rows[key] = {
                "between_processes": spread(per_process),
                "between_cv": float(np.std(per_process, ddof=1) / np.mean(per_process)),
                "within_process_median": float(np.median(within)),
                "per_process": per_process,
            }
        gpu = [float(np.median([t["gpu_ms"] for t in r["trials"][name]])) for r in runs]
        probe = [float(np.median([t["probe_ms"] for t in r["trials"][name]])) for r in runs]
        clock = [float(np.median([t["sm_clock_mhz"] or 0 for t in r["trials"][name]])) for r in runs]
        early = [
            float(np.median([t["gpu_ms"] for t in r["trials"][name] if t["phase"] == "early"]))
            / float(np.median([t["gpu_ms"] for t in r["trials"][name] if t["phase"] == "late"]))
            - 1
            for r in runs
            if any(t["phase"] == "late" for t in r["trials"][name])
        ]
        rows["corr_gpu_probe"] = float(np.corrcoef(gpu, probe)[0, 1])
        rows["corr_gpu_clock"] = float(np.corrcoef(gpu, clock)[0, 1]) if np.std(clock) > 0 else None
        rows["early_vs_late_gpu"] = early
        out[name] = rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--out", default="gpu-spread.json")
    parser.add_argument(
        "--conditions",
        default="resnet,resnet-heuristic,resnet-twin,bert",
        help="comma-separated, of resnet, resnet-heuristic, resnet-twin, bert, resnet-reshuffled, bert-reshuffled",
    )
    parser.add_argument("--phases", default="early,late", help="early (right after loading), late (after the rest)")
    parser.add_argument("--child", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.conditions.split(","), args.phases.split(","))
        return
    runs = []
    for i in range(args.processes):
        path = Path(f"{args.out}.{i}")
        forwarded = ["--conditions", args.conditions, "--phases", args.phases]
        subprocess.run([sys.executable, __file__, "--child", str(path), *forwarded], check=True)
        runs.append(json.loads(path.read_text()))
        path.unlink()
        print(f"process {i + 1}/{args.processes} done", flush=True)
    figures = analyse(runs)
    Path(args.out).write_text(json.dumps({"figures": figures, "runs": runs}, indent=1))
    for name, rows in figures.items():
        print(f"\n{name}:")
        for key in ("host_ms", "gpu_ms", "host/probe", "gpu/probe", "throughput_sps"):
            r = rows[key]
            print(
                f"  {key:15s} between processes {r['between_processes']:6.2%} (cv {r['between_cv']:.2%}), "
                f"within one {r['within_process_median']:6.2%}; per process "
                + " ".join(f"{v:.4g}" for v in r["per_process"])
            )
        print(
            f"  corr(gpu, probe) {rows['corr_gpu_probe']:+.2f}  corr(gpu, sm clock) {rows['corr_gpu_clock']}  "
            "early/late gpu " + " ".join(f"{v:+.2%}" for v in rows["early_vs_late_gpu"])
        )


if __name__ == "__main__":
    main()
