"""Where a confirmation is measured: a new process for GPU backends (every one of them: torch, TensorRT, trtexec),
this process for CPU ones, unless --confirm-in says otherwise; how many processes a baseline comes from; a new
process that fails is one line for the caller."""

from __future__ import annotations

import pytest

from harness.backends.base import get_backend
from harness.backends.torch import TorchBackend
from harness.backends.trtexec import TrtexecBackend
from harness.core.errors import HarnessError
from harness.run import fresh
from harness.run.config import RunConfig
from harness.suite.load import load_suite
from harness.trt.backend import TensorRTBackend


@pytest.mark.parametrize(
    ("confirm_in", "uses_gpu", "expected"),
    [
        ("auto", True, True),
        ("auto", False, False),
        ("same-process", True, False),
        ("fresh-process", False, True),
    ],
)
def test_where_a_confirmation_is_measured(confirm_in, uses_gpu, expected):
    assert fresh.confirms_in_fresh_process(RunConfig(confirm_in=confirm_in), uses_gpu) is expected


@pytest.mark.parametrize("backend", [TensorRTBackend, TrtexecBackend, TorchBackend])
def test_every_gpu_backend_confirms_in_a_new_process_by_default(backend):
    # the declared capability is what the session reads (the TensorRT ones cannot be created on this machine)
    assert backend.uses_gpu and fresh.confirms_in_fresh_process(RunConfig(), backend.uses_gpu)
    assert not fresh.confirms_in_fresh_process(RunConfig(), get_backend("onnxruntime").uses_gpu)


@pytest.mark.parametrize(
    ("asked", "uses_gpu", "expected"),
    [(None, True, fresh.BASELINE_PROCESSES), (None, False, 1), (1, True, 1), (5, False, 5)],
)
def test_how_many_processes_a_baseline_comes_from(asked, uses_gpu, expected):
    assert fresh.baseline_processes(RunConfig(baseline_processes=asked), uses_gpu) == expected
    assert fresh.BASELINE_PROCESSES == 3  # the smallest count that met the targets in every H200 calibration


def test_a_new_process_that_cannot_measure_is_one_line_naming_why(tmp_path):
    suite = tmp_path / "suite.yaml"
    (tmp_path / "net.onnx").write_bytes(b"not an onnx model")
    suite.write_text("suite: s\nmodels:\n  - {name: net, path: net.onnx}\nbatch_sizes: [1]\n")
    (case,) = load_suite(suite).cases()
    config = RunConfig(cache_dir=tmp_path / "cache", report_dir=tmp_path / "reports")
    with pytest.raises(HarnessError) as caught:
        fresh.measure_in_fresh_process(config, case)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("net-fp32-b1: ")
