"""ONNX Runtime on a GPU execution provider: ``providers`` entries with options, what a CUDA provider makes of the
backend (a GPU backend: device-resident inputs and outputs shared by a session's runners, the case's shapes pinned,
one CUDA graph per inference unless ORT cannot capture it, the GPU in the baseline key, fp32 without TF32), and a
suite of an exported torch network run end to end on the CUDA provider, recorded, rerun A/A and slowed, the slowed
case confirmed in a fresh process. The last needs onnxruntime-gpu with a CUDA GPU and is skipped with the reason
elsewhere (benchmarks/perf/gpu_evidence.sh OUT ort-gpu runs it; docs/evidence/gpu-gate-h200-fresh-process.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from suite_runner import BENCH_MODULE, cases, run_suite

from harness.backends.base import BackendContext, get_backend
from harness.backends.ort_providers import provider_entries
from harness.core.errors import HarnessError
from harness.models.sources import prepare
from harness.suite.load import load_suite

pytest_plugins = ["pytester"]

CUDA_EP = "CUDAExecutionProvider"
CUDA_EP_REASON = None if CUDA_EP in ort.get_available_providers() else "onnxruntime has no CUDA provider here"


def test_providers_are_names_or_one_mapping_of_a_name_to_its_options():
    assert provider_entries(None) == [("CPUExecutionProvider", {})]
    entries = provider_entries(
        [
            {CUDA_EP: {"device_id": 1, "cudnn_conv_algo_search": "HEURISTIC", "do_copy_in_default_stream": True}},
            "CPUExecutionProvider",
        ]
    )
    assert entries == [
        (CUDA_EP, {"device_id": "1", "cudnn_conv_algo_search": "HEURISTIC", "do_copy_in_default_stream": "1"}),
        ("CPUExecutionProvider", {}),
    ]


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({CUDA_EP: "HEURISTIC"}, "must be a mapping"),
        ({CUDA_EP: {}, "CPUExecutionProvider": {}}, "must be a provider's name or one mapping"),
        (3, "must be a provider's name or one mapping"),
    ],
)
def test_a_malformed_providers_entry_is_refused_with_an_example(entry, says):
    with pytest.raises(HarnessError, match=says) as error:
        provider_entries([entry])
    assert "e.g." in str(error.value) and "\n" not in str(error.value)


@pytest.fixture
def cuda_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime lists the CUDA provider, so the backend's choices for one can be read on a CPU-only install."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA_EP, "CPUExecutionProvider"])


def _suite_case(tmp_path: Path, precision: str):
    """The one case of a suite on a small MLP whose input is ``[batch, 16]``, at batch 2."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), f"w{i}") for i in range(2)]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w0"], ["h"], name="fc0"),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "w1"], ["y"], name="fc1"),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 16])],
        weights,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "mlp.onnx")
    (tmp_path / "s.yaml").write_text(
        f"suite: s\nmodels:\n  - name: m\n    path: mlp.onnx\nprecisions: [{precision}]\nbatch_sizes: [2]\n"
    )
    return load_suite(tmp_path / "s.yaml").cases()[0]


def test_a_cuda_provider_first_makes_a_gpu_backend_whose_fp32_is_fp32(cuda_listed, tmp_path):
    backend = get_backend(
        "onnxruntime",
        {"providers": [{CUDA_EP: {"device_id": 1, "cudnn_conv_algo_search": "HEURISTIC"}}, "CPUExecutionProvider"]},
        BackendContext(),
    )
    assert backend.uses_gpu and "tf32" in backend.precisions
    assert backend.settings()["provider_options"] == {
        CUDA_EP: {"device_id": "1", "cudnn_conv_algo_search": "HEURISTIC"},
        "CPUExecutionProvider": {},
    }
    fp32 = dict(backend._case_providers(_suite_case(tmp_path, "fp32")))
    tf32 = dict(backend._case_providers(_suite_case(tmp_path, "tf32")))
    assert fp32[CUDA_EP] == {
        "device_id": "1",
        "cudnn_conv_algo_search": "HEURISTIC",
        "enable_cuda_graph": "1",  # the backend's default: one graph replay per inference
        "use_tf32": "0",
    }
    assert tf32[CUDA_EP]["use_tf32"] == "1" and tf32["CPUExecutionProvider"] == {}
    off = get_backend("onnxruntime", {"providers": [{CUDA_EP: {"enable_cuda_graph": 0}}]}, BackendContext())
    assert dict(off._case_providers(_suite_case(tmp_path, "fp32")))[CUDA_EP]["enable_cuda_graph"] == "0"


class _SessionOnCuda:
    """A CPU session that says it runs on the CUDA provider, refusing (like ORT) a CUDA graph it cannot capture."""

    calls: ClassVar[list[dict[str, str]]] = []

    def __init__(self, path, options, providers) -> None:
        cuda = dict(providers)[CUDA_EP]
        type(self).calls.append(cuda)
        if cuda.get("enable_cuda_graph") == "1":
            raise RuntimeError("This session cannot use the graph capture feature as requested by the user")
        self._real = _REAL_SESSION(path, options, ["CPUExecutionProvider"])

    def get_providers(self) -> list[str]:
        return [CUDA_EP, "CPUExecutionProvider"]

    def __getattr__(self, name):
        return getattr(self._real, name)


_REAL_SESSION = ort.InferenceSession


def test_a_graph_ort_cannot_capture_is_built_without_and_the_record_says_why(cuda_listed, monkeypatch, tmp_path):
    monkeypatch.setattr(ort, "InferenceSession", _SessionOnCuda)
    _SessionOnCuda.calls = []
    backend = get_backend("onnxruntime", {"providers": [CUDA_EP]}, BackendContext())
    case = _suite_case(tmp_path, "fp32")
    engine = backend.build(prepare(case.model, tmp_path / "cache"), case)
    assert [c["enable_cuda_graph"] for c in _SessionOnCuda.calls] == ["1", "0"]
    details = engine.build.details
    assert details["cuda_graph"] is False and "cannot use the graph capture" in details["cuda_graph_note"]
    assert details["static_dims"] == {"batch": 2}, "the case's batch pins the model's dynamic batch"
    # the profile pass never asks for a graph: it times nodes one by one
    assert dict(engine.profiled.providers)[CUDA_EP]["enable_cuda_graph"] == "0"


def test_a_graph_the_suite_asked_for_is_not_silently_dropped(cuda_listed, monkeypatch, tmp_path):
    monkeypatch.setattr(ort, "InferenceSession", _SessionOnCuda)
    backend = get_backend("onnxruntime", {"providers": [{CUDA_EP: {"enable_cuda_graph": 1}}]}, BackendContext())
    case = _suite_case(tmp_path, "fp32")
    with pytest.raises(HarnessError, match=r"could not load .*graph capture"):
        backend.build(prepare(case.model, tmp_path / "cache"), case)


def test_runners_of_one_session_share_its_device_buffers(tmp_path):
    """A captured graph replays on fixed addresses: a second runner writes its inputs into the first one's buffers
    (shown on ORT's CPU device, which takes the same OrtValue calls)."""
    from harness.backends.onnxruntime import OnnxRuntimeRunner
    from harness.backends.ort_providers import DeviceIO

    case = _suite_case(tmp_path, "fp32")
    model = prepare(case.model, tmp_path / "cache")
    session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    io = DeviceIO(session, ("cpu", 0))
    rng = np.random.default_rng(0)
    first, second = (rng.random((2, 16), dtype=np.float32) for _ in range(2))
    out_first = OnnxRuntimeRunner(session, {name: first}, device_io=io).outputs()
    held = io.inputs[name]
    out_second = OnnxRuntimeRunner(session, {name: second}, device_io=io).outputs()
    assert io.inputs[name] is held, "the second runner reused the first one's buffer"
    expected = session.run(None, {name: second})[0]
    assert np.allclose(next(iter(out_second.values())), expected)
    assert not np.allclose(next(iter(out_first.values())), expected)
    with pytest.raises(HarnessError, match="a GPU session runs one shape per case"):
        OnnxRuntimeRunner(session, {name: rng.random((4, 16), dtype=np.float32)}, device_io=io)


def test_the_cpu_provider_first_stays_a_cpu_backend(cuda_listed):
    backend = get_backend("onnxruntime", {"providers": ["CPUExecutionProvider", CUDA_EP]}, BackendContext())
    assert not backend.uses_gpu and "tf32" not in backend.precisions
    assert "provider_options" not in backend.settings()


def test_a_cuda_provider_that_fails_to_start_is_refused_not_timed_on_the_cpu(cuda_listed, monkeypatch, tmp_path):
    """ORT logs a provider it cannot load and runs the session on the CPU; the case must not be timed there."""
    real = ort.InferenceSession
    monkeypatch.setattr(
        ort, "InferenceSession", lambda path, options, providers: real(path, options, ["CPUExecutionProvider"])
    )
    backend = get_backend("onnxruntime", {"providers": [CUDA_EP]}, BackendContext())
    case = _suite_case(tmp_path, "fp32")
    model = prepare(case.model, tmp_path / "cache")
    with pytest.raises(HarnessError, match=r"could not start CUDAExecutionProvider \(the session runs on \['CPU"):
        backend.build(model, case)


@pytest.mark.skipif(CUDA_EP_REASON is None, reason="onnxruntime has the CUDA provider here")
def test_a_cuda_provider_missing_here_is_one_line_naming_the_package(pytester):
    pytester.makepyfile(test_bench=BENCH_MODULE)
    (pytester.path / "suite.yaml").write_text(
        "suite: s\nmodels:\n  - name: m\n    onnx_zoo: light_squeezenet\n"
        f"backends:\n  onnxruntime: {{providers: [{CUDA_EP}]}}\n"
    )
    outcome = run_suite(pytester, "-p", "harness.pytest_plugin")
    assert outcome.ret != 0
    text = outcome.stdout.str() + outcome.stderr.str()
    assert "provider(s) ['CUDAExecutionProvider'] are not installed here" in text
    assert "install the matching onnxruntime package" in text and "Traceback" not in text


# -- on a GPU -------------------------------------------------------------------------------------------------------
NETS = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def net():
    torch.manual_seed(0)
    return Net().eval(), {"x": torch.rand(1, 3, 96, 96)}
"""
GPU_SUITE = (
    "suite: ort-gpu\n"
    "models:\n  - name: net\n    torch: nets:net\n"
    "precisions: [fp32, tf32, fp16]\n"
    "batch_sizes: [8]\n"
    "tolerance: 10%\n"
    f"backends:\n  onnxruntime: {{providers: [{CUDA_EP}]}}\n"
)
FAST = ["--warmup-ms", "100", "--min-duration-ms", "300", "--min-iterations", "20", "--trials", "3", "--no-profile"]


@pytest.mark.gpu
@pytest.mark.skipif(CUDA_EP_REASON is not None, reason=f"needs onnxruntime-gpu with a CUDA GPU: {CUDA_EP_REASON}")
def test_an_exported_network_on_the_cuda_provider_is_gated_like_a_gpu_case(pytester, monkeypatch):
    pytester.makepyfile(test_bench=BENCH_MODULE)
    (pytester.path / "nets.py").write_text(NETS)
    (pytester.path / "suite.yaml").write_text(GPU_SUITE)
    monkeypatch.syspath_prepend(str(pytester.path))
    args = ["-p", "harness.pytest_plugin", "--backend", "onnxruntime", *FAST]

    run_suite(pytester, *args, "--update-baselines", in_process=False).assert_outcomes(passed=3)
    recorded = cases(pytester.path)
    env = json.loads((pytester.path / "reports" / "results.json").read_text())["environment"]
    assert env["uses_gpu"] and env["gpus"], "the baseline key names the GPU"
    assert env["backend"]["settings"]["providers"] == [CUDA_EP]
    for case in recorded.values():  # pinned to the case's batch, ORT captured each inference as one CUDA graph
        assert case["build"]["static_dims"] == {"batch": 8} and case["build"]["cuda_graph"] is True, case["build"]
    # The fp32 case is the reference (computed without TF32); a tf32 case that ran the same math would match it to
    # the bit, so an error above zero says TF32 was on for it and off for the reference.
    for case_id in ("net-tf32-b8", "net-fp16-b8"):
        assert recorded[case_id]["accuracy"]["passed"], recorded[case_id]["accuracy"]
    assert recorded["net-tf32-b8"]["accuracy"]["outputs"]["output"]["max_abs_error"] > 0

    run_suite(pytester, *args, in_process=False).assert_outcomes(passed=3)  # A/A: baselines of another process

    slowed = run_suite(
        pytester, *args, "--simulate-slowdown", "1.3", "--slowdown-cases", "net-fp32-b8", in_process=False
    )
    slowed.assert_outcomes(passed=2, failed=1)
    case = cases(pytester.path)["net-fp32-b8"]
    assert case["verdict"] == "regressed"
    assert case["measure"]["confirmation"]["process"] == "fresh"
