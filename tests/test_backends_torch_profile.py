"""The PyTorch profile pass: torch.profiler ranges per module (harness.backends.torch.profile_module) made into a layer
profile whose nodes are those of the harness's own ONNX export (harness.attribution.torch_trace).

The trace -> record step runs on the CPU here; the backend's ``TorchRunner.profile`` needs a GPU (marked ``gpu``)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import onnx
import pytest
from gpu_check import CUDA_REASON

from harness.attribution.torch_trace import ITERATION, ROOT, ModuleCall, Span, module_label, profile_from_spans
from harness.backends.base import BackendContext, get_backend
from harness.core.errors import HarnessError
from harness.models.factories import load_torch_factory
from harness.models.inputs import generate_inputs
from harness.models.sources import prepare
from harness.suite.load import load_suite

torch = pytest.importorskip("torch")
from harness.backends.torch import profile_module  # noqa: E402  (needs torch at call time only)

NO_KERNEL = {"Constant", "Shape", "Gather", "Unsqueeze", "Concat", "Identity"}
NETS = """
import torch

class Block(torch.nn.Module):
    def __init__(self, channels, width):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, width, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(width)
        self.relu = torch.nn.ReLU()
        self.back = torch.nn.Conv2d(width, channels, 1) if width != channels else torch.nn.Identity()

    def forward(self, x):
        return self.back(self.relu(self.bn(self.conv(x))))

class Net(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.layer1 = torch.nn.Sequential(Block(16, 16), Block(16, width))
        self.head = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.layer1(x))
        return self.head(x.mean((2, 3)))

def net(width=16):
    torch.manual_seed(0)
    return Net(width).eval(), {"images": torch.randn(1, 3, 32, 32)}

def wide():
    return net(128)
"""


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread, as the ONNX Runtime tests pin: on a shared 2-core machine more threads only add noise."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def suite(tmp_path):
    (tmp_path / "profiled_nets.py").write_text(NETS)
    path = tmp_path / "suite.yaml"
    path.write_text(
        textwrap.dedent("""
        suite: s
        models:
          - {name: net, torch: 'profiled_nets:net'}
          - {name: wide, torch: 'profiled_nets:wide'}
        """)
    )
    return load_suite(path)


def cpu_profile(case, cache: Path, iterations: int = 10):
    model = prepare(case.model, cache)
    nodes = [node.name for node in onnx.load(str(model.path)).graph.node]
    net, examples = load_torch_factory(case.model.location, case.model.suite_file)
    with torch.inference_mode():
        profile = profile_module(torch, net, list(examples.values()), iterations, nodes, on_device=False)
    return profile, model


def test_modules_name_the_nodes_of_the_harness_export(suite, tmp_path):
    profile, model = cpu_profile(suite.cases()[0], tmp_path / "cache")
    assert profile.source == "torch" and profile.iterations == 10
    exported = {node.name: node.op_type for node in onnx.load(str(model.path)).graph.node}
    covered = {node for layer in profile.layers for node in layer.nodes}
    assert covered <= set(exported)
    assert {name for name, op in exported.items() if op not in NO_KERNEL} <= covered
    by_name = {layer.name: layer for layer in profile.layers}
    conv = by_name["layer1.0.conv"]
    assert conv.nodes == ("/layer1/layer1.0/conv/Conv",) and conv.kind == "Conv2d"
    assert conv.signature == "Conv2d(1x16x32x32)" and conv.precision == "fp32"
    # The export folded the BatchNorm into that Conv: the BatchNorm module's time goes to the same node.
    assert by_name["layer1.0.bn"].nodes == conv.nodes
    assert by_name[ROOT].nodes == ("/Add", "/ReduceMean", "/Relu")
    assert by_name["layer1.0.relu"].nodes == ("/layer1/layer1.0/relu/Relu",)
    assert "layer1" not in by_name or by_name["layer1"].nodes == (), "a container takes no sibling's nodes"


def test_module_times_add_up_within_the_inference(suite, tmp_path):
    profile, _ = cpu_profile(suite.cases()[0], tmp_path / "cache", iterations=20)
    assert profile.end_to_end_ms is not None and profile.end_to_end_ms > 0
    assert all(layer.time_ms >= 0 for layer in profile.layers)
    assert profile.total_ms <= 1.05 * profile.end_to_end_ms


def test_the_widened_block_is_the_slowest(suite, tmp_path):
    profile, _ = cpu_profile(suite.cases()[1], tmp_path / "cache", iterations=10)
    assert profile.layers[0].name == "layer1.1.conv", [(layer.name, layer.time_ms) for layer in profile.layers]


def test_torch_and_onnxruntime_profiles_of_one_factory_share_node_names(suite, tmp_path):
    case = suite.cases()[0]
    torch_profile, model = cpu_profile(case, tmp_path / "cache")
    ort = get_backend("onnxruntime", {"intra_op_threads": 1}, BackendContext(tmp_path / "cache"))
    runner = ort.build(model, case).runner(generate_inputs(model, case))
    try:
        ort_profile = runner.profile(3)
    finally:
        runner.close()
    assert ort_profile is not None
    torch_nodes = {node for layer in torch_profile.layers for node in layer.nodes}
    ort_nodes = {node for layer in ort_profile.layers for node in layer.nodes}
    assert ort_nodes and ort_nodes <= torch_nodes


# -- the trace -> record step on synthetic spans ---------------------------------------------------------------------
def spans_of_one_inference(start: float, conv_us: float, kernel_us: float = 0.0) -> list[Span]:
    """<model> [ block [ conv [aten::conv2d] ] [aten::add] ]"""
    block, conv = module_label("block", "Block"), module_label("block.conv", "Conv2d")
    return [
        Span(ITERATION, start, start + conv_us + 60),
        Span(module_label("", "Net"), start + 1, start + conv_us + 50),
        Span(block, start + 2, start + conv_us + 40),
        Span(conv, start + 3, start + 3 + conv_us),
        Span("aten::conv2d", start + 4, start + 2 + conv_us, kernel_us),
        Span("aten::add", start + 5 + conv_us, start + 10 + conv_us, kernel_us / 10),
    ]


def test_cpu_self_times_leave_the_submodules_out():
    spans = spans_of_one_inference(0, 100) + spans_of_one_inference(1000, 300) + spans_of_one_inference(2000, 200)
    profile = profile_from_spans(spans, calls={"block.conv": ModuleCall("Conv2d", "1x3x8x8", "float16")})
    by_name = {layer.name: layer for layer in profile.layers}
    assert by_name["block.conv"].time_ms == pytest.approx(0.2) and by_name["block.conv"].precision == "fp16"
    assert by_name["block"].time_ms == pytest.approx(0.038), "its range less its conv's"
    assert by_name[ROOT].time_ms == pytest.approx(0.011)
    assert profile.end_to_end_ms == pytest.approx(0.26) and profile.iterations == 3
    assert by_name["block.conv"].nodes == () and "no ONNX export" in profile.notes[0]


def test_device_times_go_to_the_innermost_module_that_launched_the_kernels():
    spans = spans_of_one_inference(0, 100, kernel_us=80) + spans_of_one_inference(1000, 100, kernel_us=90)
    nodes = ["/block/conv/Conv", "/block/Add", "/Relu"]
    profile = profile_from_spans(spans, nodes, on_device=True)
    by_name = {layer.name: layer for layer in profile.layers}
    assert by_name["block.conv"].time_ms == pytest.approx(0.08) and by_name["block.conv"].nodes == ("/block/conv/Conv",)
    assert by_name["block"].time_ms == pytest.approx(0.008) and by_name["block"].nodes == ("/block/Add",)
    assert ROOT not in by_name, "no kernel of its own on the GPU: no layer"
    assert profile.end_to_end_ms == pytest.approx(0.088)


def test_a_profile_without_inferences_is_a_one_line_error():
    with pytest.raises(HarnessError, match="holds no inference"):
        profile_from_spans([Span("aten::add", 0, 1)])


# -- on a GPU --------------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(CUDA_REASON is not None, reason=f"the torch backend's profile pass needs a CUDA GPU: {CUDA_REASON}")
@pytest.mark.parametrize("mode", ["graphs", "eager"])
def test_the_torch_backend_profiles_kernel_time_per_module_on_the_gpu(tmp_path, mode):
    (tmp_path / "profiled_nets.py").write_text(NETS)
    suite = tmp_path / "gpu.yaml"  # batch 64: at batch 1 an H200 runs every one of these convolutions in ~10 us
    suite.write_text(
        "suite: s\nbatch_sizes: [64]\nmodels:\n"
        "  - {name: net, torch: 'profiled_nets:net'}\n  - {name: wide, torch: 'profiled_nets:wide'}\n"
    )
    profiles = {}
    for case in load_suite(suite).cases():
        model = prepare(case.model, tmp_path / "cache")
        engine = get_backend("torch", {"mode": mode}).build(model, case)
        runner = engine.runner(generate_inputs(model, case))
        try:
            runner.step()
            profiles[case.model.name] = runner.profile(20)
            runner.step()  # the runner still runs after its profile pass
        finally:
            runner.close()
    wide = profiles["wide"]
    table = [(layer.name, layer.time_ms) for layer in wide.layers]
    assert wide.layers[0].name == "layer1.1.conv", table
    assert wide.layers[0].nodes == ("/layer1/layer1.1/conv/Conv",)
    assert wide.end_to_end_ms is not None and 0 < wide.total_ms <= 1.01 * wide.end_to_end_ms
    before = {layer.name: layer.time_ms for layer in profiles["net"].layers}
    assert wide.layers[0].time_ms > 2 * before["layer1.1.conv"], (table, before)
