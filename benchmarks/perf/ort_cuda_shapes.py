"""ONNX Runtime's CUDA provider on an ONNX model, three ways, each in fresh processes: the model's dynamic dimensions
left dynamic (``dynamic``), pinned by free-dimension overrides (``static``), and pinned with each inference replayed
as one captured CUDA graph (``graph``, what the harness's onnxruntime backend does on a CUDA provider). Prints the
median, 90th and 99th percentile latency of each process, so the spread within a process and between processes can
be read side by side (docs/evidence/gpu-gate-h200-fresh-process.md).

    python benchmarks/perf/ort_cuda_shapes.py MODEL.onnx --batch 8 [--processes 3] [--iterations 1500]

Needs onnxruntime-gpu and a CUDA GPU. Integer inputs get token ids 0..999, float inputs uniform [0, 1); every other
dynamic dimension than the leading one is given by --dim NAME=SIZE (e.g. --dim sequence=128).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time


def measure(model: str, mode: str, batch: int, dims: dict[str, int], iterations: int) -> str:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    inputs = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).get_inputs()
    sizes = {str(d): dims.get(str(d), batch) for i in inputs for d in i.shape if not isinstance(d, int)}
    if mode != "dynamic":
        for name, size in sizes.items():
            options.add_free_dimension_override_by_name(name, size)
    cuda = {"cudnn_conv_algo_search": "HEURISTIC", "enable_cuda_graph": "1" if mode == "graph" else "0"}
    session = ort.InferenceSession(model, options, providers=[("CUDAExecutionProvider", cuda)])
    binding, kept = session.io_binding(), []
    rng = np.random.default_rng(0)
    for info in inputs:
        shape = [d if isinstance(d, int) else sizes[str(d)] for d in info.shape]
        value = rng.integers(0, 1000, shape) if "int" in info.type else rng.random(shape, dtype=np.float32)
        on_device = ort.OrtValue.ortvalue_from_numpy(value.astype(np.int64 if "int" in info.type else np.float32),
                                                      "cuda", 0)  # fmt: skip
        kept.append(on_device)
        binding.bind_ortvalue_input(info.name, on_device)
    for output in session.get_outputs():
        binding.bind_output(output.name, "cuda", 0)
    for _ in range(200):
        session.run_with_iobinding(binding)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        session.run_with_iobinding(binding)
        times.append((time.perf_counter() - start) * 1e3)
    p50, p90, p99 = np.percentile(times, [50, 90, 99])
    return f"{mode:8s} p50 {p50:.3f} ms  p90 {p90:.3f} ms  p99 {p99:.3f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE")
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--mode", choices=("dynamic", "static", "graph"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    dims = {name: int(size) for name, size in (d.split("=", 1) for d in args.dim)}
    if args.mode:  # one process's measurement
        print(measure(args.model, args.mode, args.batch, dims, args.iterations), flush=True)
        return 0
    for mode in ("dynamic", "static", "graph"):
        for _ in range(args.processes):
            command = [sys.executable, __file__, args.model, "--batch", str(args.batch), "--mode", mode,
                       "--iterations", str(args.iterations), *(f"--dim={d}" for d in args.dim)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            lines = (done.stdout or done.stderr).strip().splitlines()
            print(lines[-1] if lines else f"{mode}: no output (exit {done.returncode})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
