"""What the end-to-end tests share: the benchmark test module and a pytest run whose folders stay in the test's dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.models.sources import zoo_dir
from harness.trt import compat as trt_compat

# The module `pytest benchmarks` collects (benchmarks/test_benchmarks.py), for pytester projects.
BENCH_MODULE = "def test_case(harness_case, harness_check):\n    harness_check(harness_case)\n"


def isolated_args(root: Path) -> list[str]:
    """Baselines, reports and the cache under ``root``, so no test writes into the repository."""
    return ["--baseline-dir", str(root / "baselines"), "--report-dir", str(root / "reports"),
            "--harness-cache", str(root / "cache")]  # fmt: skip


def run_suite(pytester: pytest.Pytester, *args: str, in_process: bool = True) -> pytest.RunResult:
    """pytest on the project's suite.yaml with the harness folders isolated: in this process, or in a new one where a
    run imports torch (pytester's in-process runs forget the modules a run imported, and torch cannot be imported a
    second time into one process: "function '_has_torch_function' already has a docstring")."""
    root = pytester.path
    run = pytester.runpytest if in_process else pytester.runpytest_subprocess
    return run("--suite", str(root / "suite.yaml"), *isolated_args(root), *args)


def two_model_project(pytester: pytest.Pytester, tolerance: str) -> Path:
    """The bench module and suite.yaml with two models at batch 1 and 2: ``net`` (a local copy of the zoo's squeezenet,
    which a test may replace) and ``other`` (the zoo's own), at the suite-wide ``tolerance``."""
    pytester.makepyfile(test_bench=BENCH_MODULE)
    shutil.copy(zoo_dir() / "light_squeezenet.onnx", pytester.path / "net.onnx")
    (pytester.path / "suite.yaml").write_text(
        "suite: demo\n"
        "models:\n"
        "  - name: net\n    path: net.onnx\n"
        "  - name: other\n    onnx_zoo: light_squeezenet\n"
        "batch_sizes: [1, 2]\n"
        f"tolerance: {tolerance}\n"
    )
    return pytester.path


def model_project(pytester: pytest.Pytester, models: Path, suite: str) -> Path:
    """A pytester project running ``suite`` on copies of the ONNX files in ``models``."""
    pytester.makepyfile(test_bench=BENCH_MODULE)
    for file in models.glob("*.onnx"):
        shutil.copy(file, pytester.path / file.name)
    (pytester.path / "suite.yaml").write_text(suite)
    return pytester.path


def cases(root: Path) -> dict[str, dict]:
    """The cases of ``root``'s last run (reports/results.json), by id."""
    data = json.loads((root / "reports" / "results.json").read_text())
    return {c["id"]: c for c in data["cases"]}


def tensorrt_missing() -> str | None:
    """Why no TensorRT (or TensorRT-RTX) can be loaded here, or None: the skip reason of the engine-build tests."""
    try:
        trt_compat.find("auto")
    except HarnessError as exc:
        return str(exc)
    return None
