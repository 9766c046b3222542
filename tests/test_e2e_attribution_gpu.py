"""Where a regression went on a GPU, end to end through pytest on the PyTorch backend: a small convolutional network
written as a ``torch:`` factory is recorded as the baseline, then one of its blocks is made heavier (a 3x3 convolution
becomes 7x7); the run fails the case and the attribution (torch.profiler's CUDA kernel times per module, named by the
nodes of the harness's own ONNX export) puts most of the change on that block, while an A/A rerun names no group.
Needs torch with a CUDA GPU; skipped with the reason elsewhere (docs/evidence/attribution.md; benchmarks/perf/
gpu_evidence.sh OUT attribution runs it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from gpu_check import CUDA_REASON
from suite_runner import BENCH_MODULE, cases, run_suite

pytest_plugins = ["pytester"]


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(CUDA_REASON is not None, reason=f"needs torch with a CUDA GPU: {CUDA_REASON}"),
]

FAST = ["--warmup-ms", "100", "--min-duration-ms", "300", "--min-iterations", "20", "--trials", "3"]
# The factory reads the heavy block's kernel from the environment when it is called, so one project holds both
# versions; every module keeps its path, so every unchanged node keeps its export name.
NETS = """
import os

import torch
from torch import nn


def block(channels: int, kernel: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, channels, kernel, padding=kernel // 2), nn.ReLU())


class Net(nn.Module):
    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU())
        self.block1, self.block2, self.block3 = block(64, 3), block(64, kernel), block(64, 3)
        self.head = nn.Conv2d(64, 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block3(self.block2(self.block1(self.stem(x)))))


def net():
    torch.manual_seed(0)
    kernel = int(os.environ.get("HEAVY_KERNEL", "3"))
    return Net(kernel).eval(), {"x": torch.rand(1, 3, 96, 96)}
"""
SUITE = (
    "suite: gpu-demo\n"
    "models:\n  - name: net\n    torch: nets:net\n"
    "precisions: [fp32]\n"
    "batch_sizes: [32]\n"
    "tolerance: 10%\n"
    "backends:\n  torch: {mode: graphs}\n"
)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    pytester.makepyfile(test_bench=BENCH_MODULE)
    (pytester.path / "nets.py").write_text(NETS)
    (pytester.path / "suite.yaml").write_text(SUITE)
    monkeypatch.syspath_prepend(str(pytester.path))
    monkeypatch.setenv("HEAVY_KERNEL", "3")
    run(pytester, "--update-baselines").assert_outcomes(passed=1)
    return pytester.path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # each version is exported into its own cache folder, so the heavy one is not served the light one's export
    cache = pytester.path / f"cache-k{os.environ.get('HEAVY_KERNEL', '3')}"
    # -p: the plugin by name too, for a checkout used through PYTHONPATH without an install (a GPU machine's copy)
    plugin = ["-p", "harness.pytest_plugin"]
    return run_suite(
        pytester, *plugin, "--backend", "torch", *FAST, *args, "--harness-cache", str(cache), in_process=False
    )


def delta(group: dict[str, Any]) -> float:
    return float(group["current_ms"] - group["baseline_ms"])


def test_a_heavier_block_is_regressed_and_the_change_is_put_on_it(pytester, project, monkeypatch):
    monkeypatch.setenv("HEAVY_KERNEL", "7")
    outcome = run(pytester)
    outcome.assert_outcomes(failed=1)
    case = cases(project)["net-fp32-b32"]
    assert case["verdict"] == "regressed"
    assert case["profile"]["source"] == "torch"

    groups = case["attribution"]["groups"]
    on_block = sum(delta(g) for g in groups if any("/block2/" in n for n in g.get("nodes", ())))
    assert on_block / sum(delta(g) for g in groups) >= 0.7
    top = groups[0]
    assert any("/block2/" in n for n in top["nodes"]) and top["above_noise"]
    first_line = case["message"].splitlines()[0]
    assert f"where: {top['label']}" in first_line


def test_an_a_a_rerun_names_no_group(pytester, project):
    run(pytester).assert_outcomes(passed=1)
    case = cases(project)["net-fp32-b32"]
    assert case["attribution"]["groups"], "the rerun was profiled and diffed against the baseline's profile"
    assert not [(g["label"], delta(g), g["noise_ms"]) for g in case["attribution"]["groups"] if g["above_noise"]]
    assert "where:" not in case["message"]
