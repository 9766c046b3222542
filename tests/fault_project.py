"""A tiny benchmark project on disk for the fault and concurrency tests: an ONNX model built from code, a suite
file, the bench module, and pytest / ``harness`` run as real subprocesses with the harness folders under it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH_MODULE = "def test_case(harness_case, harness_check):\n    harness_check(harness_case)\n"
# A measuring budget of milliseconds: these tests check what survives a fault, not the numbers.
FAST = ["--warmup-ms", "1", "--min-duration-ms", "4", "--min-iterations", "3", "--trials", "1", "--no-confirm"]
SUITE = """suite: faults
models:
  - name: mlp
    path: mlp.onnx
  - name: mlp2
    path: mlp.onnx
batch_sizes: [1, 2]
backends:
  onnxruntime: {intra_op_threads: 1}
"""


def write_mlp(path: Path, width: int = 8) -> None:
    """y = relu(x @ W) with a dynamic batch: the smallest model that runs through every stage of the harness."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((width, width)).astype("float32"), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what every onnxruntime of the supported range loads
    onnx.save(model, str(path))


def make_project(root: Path, suite: str = SUITE) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "test_bench.py").write_text(BENCH_MODULE)
    write_mlp(root / "mlp.onnx")
    (root / "suite.yaml").write_text(suite)
    return root


def folders(root: Path) -> list[str]:
    return ["--baseline-dir", str(root / "baselines"), "--report-dir", str(root / "reports"),
            "--harness-cache", str(root / "cache")]  # fmt: skip


def env_with(extra_path: Path | None = None, **variables: str) -> dict[str, str]:
    env = {**os.environ, **variables}
    if extra_path is not None:  # where an injected fault plugin (-p NAME) is imported from
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    return env


def pytest_args(root: Path, *args: str) -> list[str]:
    """The benchmark run of ``root`` (its suite, its folders, the tiny budget) followed by ``args``."""
    return [sys.executable, "-m", "pytest", str(root / "test_bench.py"), "--suite", str(root / "suite.yaml"),
            *folders(root), *FAST, "-p", "no:cacheprovider", "-q", *args]  # fmt: skip


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 240) -> tuple[int, str, str]:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def harness(*args: str, cwd: Path) -> tuple[int, str, str]:
    return run([sys.executable, "-m", "harness.cli", *args], cwd)
