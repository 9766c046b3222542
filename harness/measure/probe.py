"""The speed probe: a fixed CPU workload timed beside every trial of a CPU backend, to measure the runner itself.

On a virtual machine the host can slow a guest down for seconds at a time (another tenant on the sibling hardware
thread, a lower clock, cache and memory-bandwidth pressure) with no trace inside the guest: the process keeps its full
CPU share and its CPU time per inference grows with its wall time, so neither tells a slower host from slower code.
On the 2-core development VM such episodes made unchanged cases 11-35% slower for a few seconds. A workload whose
cost never changes, timed right before and after each trial, slows down with them: the gate (harness.judge.gate) takes a
change that the probe shows too for the runner's, not the code's.

The workload is a small convolution stack run by ONNX Runtime on one thread, the same kind of arithmetic and memory
traffic as the CNN cases, a few milliseconds per probe. Its value is a per-trial time in ms; only ratios of it
between runs on one machine mean anything.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

REPEATS = 9  # probe runs per reading (about 5 ms); the median resists a preempted run
PROBE_IR_VERSION = 8


def probe_model() -> Any:
    """The probe workload as an ONNX model: four 3x3 convolutions (32 channels, 28 x 28) with ReLU, seeded weights."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    channels, size, layers = 32, 28, 4
    nodes, initializers, previous = [], [], "x"
    for i in range(layers):
        weight = rng.standard_normal((channels, channels, 3, 3)).astype(np.float32) * 0.05
        initializers.append(numpy_helper.from_array(weight, f"w{i}"))
        nodes.append(helper.make_node("Conv", [previous, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        previous = f"r{i}"
    shape = [1, channels, size, size]
    graph = helper.make_graph(
        nodes,
        "speed_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT, shape)],
        initializers,
    )
    # IR version 8 (onnx 1.10), not the installed onnx's newest: an onnxruntime older than onnx refuses newer IR
    # versions (onnxruntime 1.30 next to onnx 1.23 did), and the probe must load wherever the cases do.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=PROBE_IR_VERSION)


@lru_cache(maxsize=1)
def _session() -> tuple[Any, dict[str, np.ndarray]]:
    import onnxruntime as ort

    model = probe_model()
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    feeds = {"x": np.random.default_rng(1).random(shape, dtype=np.float32)}
    session.run(None, feeds)  # first-run allocations stay out of the readings
    return session, feeds


def probe_ms() -> float:
    """One reading: the median time of :data:`REPEATS` runs of the probe workload, ms."""
    import time

    session, feeds = _session()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter_ns()
        session.run(None, feeds)
        times.append((time.perf_counter_ns() - start) / 1e6)
    return float(np.median(times))
