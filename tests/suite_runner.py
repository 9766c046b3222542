"""What the end-to-end tests share: the benchmark test module and a pytest run whose folders stay in the test's dir."""

from __future__ import annotations

from pathlib import Path

import pytest

# The module `pytest benchmarks` collects (benchmarks/test_benchmarks.py), for pytester projects.
BENCH_MODULE = "def test_case(harness_case, harness_check):\n    harness_check(harness_case)\n"


def isolated_args(root: Path) -> list[str]:
    """Baselines, reports and the cache under ``root``, so no test writes into the repository."""
    return ["--baseline-dir", str(root / "baselines"), "--report-dir", str(root / "reports"),
            "--harness-cache", str(root / "cache")]  # fmt: skip


def run_suite(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in-process on the project's suite.yaml with the harness folders isolated."""
    root = pytester.path
    return pytester.runpytest("--suite", str(root / "suite.yaml"), *isolated_args(root), *args)
