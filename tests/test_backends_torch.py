"""The ``torch:`` model source (factory -> ONNX export, cached) and the PyTorch backend (GPU cases marked ``gpu``)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from gpu_check import CUDA_REASON
from suite_runner import BENCH_MODULE

from harness.backends.base import get_backend
from harness.core.errors import CaseSkipped, HarnessError, SuiteError
from harness.models.factories import load_torch_factory
from harness.models.inputs import generate_inputs
from harness.models.sources import check_sources, prepare
from harness.suite.load import load_suite

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]


gpu = pytest.mark.skipif(CUDA_REASON is not None, reason=f"needs torch with a CUDA GPU: {CUDA_REASON}")


def write_suite(folder: Path, body: str, name: str = "suite.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


# -- the suite key ---------------------------------------------------------------------------------------------------
def test_torch_source_is_validated_without_importing_torch(tmp_path):
    bad = write_suite(tmp_path, "suite: s\nmodels:\n  - {name: m, torch: 'benchmarks/models/torch_zoo.py'}\n")
    with pytest.raises(SuiteError, match=r"models\[0\]\.torch: expected 'package.module:factory'"):
        load_suite(bad)
    missing = write_suite(tmp_path, "suite: s\nmodels:\n  - {name: m, torch: 'nowhere.zoo:net'}\n")
    with pytest.raises(SuiteError, match=r"line 3: models\[0\]\.torch: module 'nowhere\.zoo' not found on the Pyth"):
        check_sources(load_suite(missing))
    two = write_suite(tmp_path, "suite: s\nmodels:\n  - {name: m, torch: 'a:b', onnx_zoo: light_squeezenet}\n")
    with pytest.raises(SuiteError, match="give exactly one model source"):
        load_suite(two)


def test_module_above_the_suite_file_is_found(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "nets.py").write_text("def net():\n    raise RuntimeError('not called at validation')\n")
    (tmp_path / "suites").mkdir()
    before = list(sys.path)
    suite = load_suite(write_suite(tmp_path / "suites", "suite: s\nmodels:\n  - {name: m, torch: 'pkg.nets:net'}\n"))
    check_sources(suite)
    assert suite.models[0].source == "torch" and suite.models[0].location == "pkg.nets:net"
    assert sys.path == before, "checking a suite leaves the import path as it was"
    assert "pkg.nets" not in sys.modules, "checking a suite imports no factory"


# -- export ----------------------------------------------------------------------------------------------------------
torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")


@pytest.fixture
def tiny_suite(tmp_path):
    return load_suite(
        write_suite(
            tmp_path,
            """
            suite: tiny
            models:
              - {name: enc, torch: 'benchmarks.models.torch_zoo:encoder_tiny'}
              - {name: cnn, torch: 'benchmarks.models.torch_zoo:resnet_tiny'}
            batch_sizes: [3]
            """,
        )
    )


def test_factory_is_exported_with_a_dynamic_batch_and_matches_torch(tiny_suite, tmp_path):
    import onnxruntime as ort

    for case in tiny_suite.cases():
        model = prepare(case.model, tmp_path / "cache")
        assert model.inputs[0].shape[0] == "batch" and model.fixed_batch is None
        feeds = generate_inputs(model, case)
        (name,) = feeds
        assert feeds[name].shape[0] == 3
        session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
        (onnx_out,) = session.run(None, feeds)
        net, _ = load_torch_factory(case.model.location)  # same seed: the same weights as the export
        with torch.inference_mode():
            torch_out = net(torch.from_numpy(feeds[name])).numpy()
        np.testing.assert_allclose(onnx_out, torch_out, rtol=1e-3, atol=1e-4)


def test_export_is_cached(tiny_suite, tmp_path):
    spec = tiny_suite.models[0]
    first = prepare(spec, tmp_path / "cache")
    stamp = first.path.stat().st_mtime_ns
    again = prepare(spec, tmp_path / "cache")
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp and again.sha256 == first.sha256


def test_factory_mistakes_are_one_line_errors(tmp_path, monkeypatch):
    (tmp_path / "badzoo.py").write_text(
        "import torch\n"
        "def not_a_pair():\n    return torch.nn.Linear(2, 2)\n"
        "def bad_inputs():\n    return torch.nn.Linear(2, 2), 'x'\n"
        "def broken():\n    raise ValueError('weights file missing')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(HarnessError, match=r"must return \(torch.nn.Module, example inputs\)"):
        load_torch_factory("badzoo:not_a_pair")
    with pytest.raises(HarnessError, match="example inputs must be a tensor"):
        load_torch_factory("badzoo:bad_inputs")
    with pytest.raises(HarnessError, match="failed: ValueError: weights file missing"):
        load_torch_factory("badzoo:broken")
    with pytest.raises(HarnessError, match="has no function 'nope'"):
        load_torch_factory("badzoo:nope")


def test_factory_above_the_suite_file_is_exported_and_the_import_path_restored(tmp_path):
    (tmp_path / "above_pkg").mkdir()
    (tmp_path / "above_pkg" / "__init__.py").write_text("")
    (tmp_path / "above_pkg" / "tiny.py").write_text(
        "import torch\ndef net():\n    return torch.nn.Linear(3, 2), torch.zeros(1, 3)\n"
    )
    (tmp_path / "suites").mkdir()
    suite = load_suite(
        write_suite(tmp_path / "suites", "suite: s\nmodels:\n  - {name: m, torch: 'above_pkg.tiny:net'}\n")
    )
    before = list(sys.path)
    try:
        model = prepare(suite.models[0], tmp_path / "cache")
        net, _ = load_torch_factory(suite.models[0].location, suite.models[0].suite_file)
    finally:
        for name in ("above_pkg.tiny", "above_pkg"):
            sys.modules.pop(name, None)
    assert model.inputs[0].shape == ("batch", 3) and isinstance(net, torch.nn.Linear)
    assert sys.path == before


def test_weights_come_from_a_local_file(tmp_path):
    from benchmarks.models import torch_zoo

    net, _ = torch_zoo.encoder_tiny()
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(0.5)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    loaded, _ = torch_zoo.encoder_tiny(weights=str(tmp_path / "w.pt"))
    assert all(bool((p == 0.5).all()) for p in loaded.parameters())


# -- the backend -----------------------------------------------------------------------------------------------------
def test_backend_options_are_checked():
    with pytest.raises(HarnessError, match="mode must be one of graphs, eager, compile"):
        get_backend("torch", {"mode": "fast"})
    with pytest.raises(HarnessError, match="unknown option 'mod'; did you mean 'mode'"):
        get_backend("torch", {"mod": "eager"})
    backend = get_backend("torch", {"mode": "compile", "compile_mode": "max-autotune"})
    assert backend.uses_gpu and backend.settings()["compile_mode"] == "max-autotune"
    assert backend.version() == torch.__version__


def test_without_a_gpu_cases_skip_with_the_reason(tiny_suite, tmp_path):
    if CUDA_REASON is None:
        pytest.skip("this machine has a CUDA GPU")
    case = tiny_suite.cases()[0]
    model = prepare(case.model, tmp_path / "cache")
    with pytest.raises(CaseSkipped, match="no CUDA GPU"):
        get_backend("torch").build(model, case)


def test_cpu_machine_end_to_end(pytester):
    """The GPU suite on a CPU machine: torch cases skip with the reason; ONNX Runtime runs the exported models with
    telemetry recorded as unavailable (or, on a GPU machine, sampled)."""
    pytester.makepyfile(test_bench=BENCH_MODULE)
    write_suite(
        pytester.path,
        """
        suite: gpu-tiny
        models:
          - {name: enc, torch: 'benchmarks.models.torch_zoo:encoder_tiny'}
        precisions: [fp32, fp16]
        batch_sizes: [1, 2]
        measure: {warmup_ms: 10, min_duration_ms: 50, min_iterations: 5}
        """,
    )
    common = ["--suite", "suite.yaml", "--baseline-dir", "b", "--harness-cache", "c", "-p", "no:cacheprovider"]
    pytester.syspathinsert(str(ROOT))
    outcome = pytester.runpytest(*common, "--report-dir", "r-torch", "--backend", "torch", "-rs")
    if CUDA_REASON is not None:
        outcome.assert_outcomes(skipped=4)
        outcome.stdout.fnmatch_lines(["*SKIPPED*no CUDA GPU*"])
        data = json.loads((pytester.path / "r-torch" / "results.json").read_text())
        assert {c["status"] for c in data["cases"]} == {"skipped"}
        assert all("no CUDA GPU" in c["message"] for c in data["cases"])
        assert data["environment"]["telemetry"]["status"] in ("unavailable", "ok")  # ok: NVML without CUDA
    outcome = pytester.runpytest(*common, "--report-dir", "r-ort", "--backend", "onnxruntime", "-rs")
    data = json.loads((pytester.path / "r-ort" / "results.json").read_text())
    ran = [c for c in data["cases"] if c["status"] == "passed"]
    assert [c["id"] for c in ran][:2] == ["enc-fp32-b1", "enc-fp32-b2"]
    for case in ran:
        expected = "unavailable" if CUDA_REASON is not None else "ok"
        assert case["telemetry"]["status"] == expected
        assert not case["telemetry"].get("flagged")  # a CPU backend is never flagged for the GPU's clocks


# -- on a GPU --------------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("mode", ["eager", "graphs", "compile"])
@pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16", "bf16"])
def test_modes_and_precisions_on_the_gpu(tiny_suite, tmp_path, mode, precision):
    from dataclasses import replace

    if mode == "compile" and precision in ("tf32", "bf16"):
        pytest.skip("compile is checked at fp32 and fp16 to keep the GPU run short")
    case = replace(tiny_suite.cases()[1], precision=precision)  # the CNN
    model = prepare(case.model, tmp_path / "cache")
    feeds = generate_inputs(model, case)
    engine = get_backend("torch", {"mode": mode}).build(model, case)
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    runner = engine.runner(feeds)
    try:
        assert torch.backends.cudnn.allow_tf32 == (precision == "tf32")
        timings = [runner.step() for _ in range(20)]
        out = runner.outputs()["output"]
    finally:
        runner.close()
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == flags  # restored
    gpu_ms = np.array([t["gpu_compute_ms"] for t in timings])
    assert (gpu_ms > 0).all() and all(t["enqueue_ms"] > 0 for t in timings)
    net, _ = load_torch_factory(case.model.location)
    with torch.inference_mode():
        ref = net.double()(torch.from_numpy(feeds["images"]).double()).numpy()
    error = np.linalg.norm(out - ref) / np.linalg.norm(ref)
    assert error < {"fp32": 1e-5, "tf32": 5e-3, "fp16": 5e-3, "bf16": 3e-2}[precision]


@pytest.mark.gpu
@gpu
def test_gpu_time_tracks_the_work(tmp_path):
    """Eight times the matmuls take about eight times the GPU time (events bracket the right work)."""
    (tmp_path / "mm.py").write_text(
        "import torch\n"
        "class MM(torch.nn.Module):\n"
        "    def __init__(self, n):\n"
        "        super().__init__()\n"
        "        self.n = n\n"
        "        self.w = torch.nn.Parameter(torch.randn(4096, 4096) / 64)  # keeps values finite in fp16\n"
        "    def forward(self, x):\n"
        "        for _ in range(self.n):\n            x = x @ self.w\n"
        "        return x\n"
        "def one():\n    return MM(1), {'x': torch.randn(1, 4096)}\n"
        "def eight():\n    return MM(8), {'x': torch.randn(1, 4096)}\n"
    )
    suite = load_suite(
        write_suite(
            tmp_path,
            """
            suite: mm
            models:
              - {name: one, torch: 'mm:one'}
              - {name: eight, torch: 'mm:eight'}
            precisions: [fp16]
            batch_sizes: [2048]
            """,
        )
    )
    medians = []
    for case in suite.cases():
        model = prepare(case.model, tmp_path / "cache")
        runner = get_backend("torch", {"mode": "graphs"}).build(model, case).runner(generate_inputs(model, case))
        try:
            medians.append(float(np.median([runner.step()["gpu_compute_ms"] for _ in range(30)])))
        finally:
            runner.close()
    assert medians[1] / medians[0] == pytest.approx(8, rel=0.2)
