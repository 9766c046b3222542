"""Where the spread between processes of an ONNX export on ONNX Runtime's CUDA provider lies, kernel by kernel.

    python3 benchmarks/perf/ort_kernel_spread.py --processes 6 --out kernels.json [--env NAME=VALUE ...]

Each process (``--child``) builds the GPU suite's cases with the harness's onnxruntime backend on the CUDA provider,
as ``harness calibrate`` does (shapes pinned, one CUDA graph per inference, device buffers shared), and for each
case reads: the host latency of ``--steps`` inferences after 300 warm-ups (median), the GPU speed probe before and
after (benchmarks/perf/gpu_spread.py's :func:`gpu_probe_ms`), and the GPU kernels of ``--profiled`` more inferences
as CUPTI records them through ``torch.profiler`` (CUPTI sees every kernel of the process, ONNX Runtime's included,
also those replayed from a CUDA graph). The driver prints, per case, each process's host median, kernel time per
inference and probe, then the kernels whose time per inference moves most between processes and whether the
processes ran the same kernels at all (a kernel picked by a per-process heuristic shows as a name one process has
and another lacks).

Needs onnxruntime-gpu, PyTorch with CUDA, and the CUDA libraries on the loader path (gpu_evidence.sh's ort stages
set them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gpu_spread import gpu_probe_ms, spread  # noqa: E402  (a sibling script, not a package)

SUITE = "benchmarks/suites/gpu-torch.yaml"
CASES = ("torch-bert-base-fp16-b8", "torch-resnet50-fp16-b1")


def child(out: str, cases: list[str], steps: int, profiled: int, cache: str) -> None:
    import torch  # first: onnxruntime-gpu loads the CUDA libraries torch's wheels bring

    from harness.core.results import CaseResult
    from harness.run.config import RunConfig
    from harness.run.session import HarnessSession
    from harness.suite.load import load_suite

    session = HarnessSession(
        RunConfig(
            backend="onnxruntime",
            backend_options={"providers": ["CUDAExecutionProvider"]},
            cache_dir=Path(cache),
        )
    )
    record: dict[str, Any] = {"pid": os.getpid(), "cases": {}}
    for case in (c for c in load_suite(SUITE).cases() if c.id in cases):
        result = CaseResult(id=case.id, params={})
        engine, feeds = session.build_case(case, session.backend_for(case.suite), result)
        runner = session.open_runner(case, engine, feeds, slowdown=1.0)
        try:
            before = gpu_probe_ms()
            for _ in range(300):
                runner.step()
            host = []
            for _ in range(steps):
                start = time.perf_counter()
                runner.step()
                host.append((time.perf_counter() - start) * 1e3)
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                for _ in range(profiled):
                    runner.step()
                torch.cuda.synchronize()
            after = gpu_probe_ms()
        finally:
            runner.close()
        kernels: dict[str, float] = {}
        for event in prof.events():
            if event.device_type == torch.autograd.DeviceType.CUDA:
                kernels[event.name] = kernels.get(event.name, 0.0) + event.time_range.elapsed_us() / 1e3 / profiled
        record["cases"][case.id] = {
            "host_ms": float(np.median(host)),
            "host_p99_ms": float(np.percentile(host, 99)),
            "kernel_ms": sum(kernels.values()),
            "probe_ms": (before + after) / 2,
            "kernels": kernels,
            "build": result.build,
        }
    Path(out).write_text(json.dumps(record, default=str))


def analyse(runs: list[dict[str, Any]], top: int) -> list[str]:
    lines = []
    for case in sorted({c for r in runs for c in r["cases"]}):
        rows = [(r["pid"], r["cases"][case]) for r in runs if case in r["cases"]]
        lines.append(f"{case}: {len(rows)} processes")
        for pid, c in rows:
            lines.append(
                f"  pid {pid}: host p50 {c['host_ms']:.4f} ms (p99 {c['host_p99_ms']:.4f}), kernels "
                f"{c['kernel_ms']:.4f} ms/inference in {len(c['kernels'])} kernel names, probe {c['probe_ms']:.4f} ms"
            )
        host = [c["host_ms"] for _, c in rows]
        kern = [c["kernel_ms"] for _, c in rows]
        probe = [c["probe_ms"] for _, c in rows]
        lines.append(
            f"  spread (max-min)/median: host {spread(host):.2%}, kernels {spread(kern):.2%}, probe {spread(probe):.2%}"
        )
        if len(rows) > 2:
            lines.append(
                f"  corr(host, kernels) {np.corrcoef(host, kern)[0, 1]:+.2f}  corr(host, probe) "
                f"{np.corrcoef(host, probe)[0, 1]:+.2f}"
            )
        names = [set(c["kernels"]) for _, c in rows]
        common = set.intersection(*names)
        only = sorted(set.union(*names) - common)
        lines.append(f"  kernel names common to all: {len(common)}; in some processes only: {len(only)}")
        for name in only[:top]:
            where = [pid for pid, c in rows if name in c["kernels"]]
            times = [c["kernels"][name] for _, c in rows if name in c["kernels"]]
            lines.append(f"    {name[:110]}  in pids {where}  {float(np.mean(times)):.4f} ms/inference")
        ranges = []
        for name in common:
            t = [c["kernels"][name] for _, c in rows]
            ranges.append((max(t) - min(t), name, t))
        ranges.sort(reverse=True)
        lines.append("  common kernels moving most between processes (ms/inference per process):")
        for span, name, t in ranges[:top]:
            lines.append(f"    {span:.4f}  {name[:90]}  [{', '.join(f'{x:.4f}' for x in t)}]")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--cases", action="append", default=None)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--profiled", type=int, default=50)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="set in every process")
    parser.add_argument("--cache", default=".harness-cache")
    parser.add_argument("--out", default="ort-kernel-spread.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--from-json", help="print the analysis of a saved run")
    args = parser.parse_args()
    cases = args.cases or list(CASES)
    if args.child:
        child(args.child, cases, args.steps, args.profiled, args.cache)
        return 0
    if args.from_json:
        print("\n".join(analyse(json.loads(Path(args.from_json).read_text())["runs"], args.top)))
        return 0
    env = {**os.environ, **dict(e.split("=", 1) for e in args.env)}
    runs = []
    for p in range(args.processes):
        part = Path(f"{args.out}.{p}")
        command = [sys.executable, __file__, "--child", str(part), "--steps", str(args.steps), "--profiled",
                   str(args.profiled), "--cache", args.cache, *(f"--cases={c}" for c in cases)]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not part.exists():
            print(f"process {p}: exit {done.returncode}\n{done.stderr[-2000:]}", flush=True)
            continue
        runs.append(json.loads(part.read_text()))
        part.unlink()
        print(f"process {p}: {time.perf_counter() - started:.0f} s", flush=True)
        Path(args.out).write_text(json.dumps({"env": args.env, "runs": runs}))
    print("\n".join(analyse(runs, args.top)))
    return 0 if runs else 1


if __name__ == "__main__":
    sys.exit(main())
