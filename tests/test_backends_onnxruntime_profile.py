"""ONNX Runtime's profile pass (``OnnxRuntimeRunner.profile``): a real conv net exported from torch, profiled at every
graph-optimization level, its fused nodes mapped back to the exported model's nodes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

from harness.backends.base import BackendContext, get_backend
from harness.models.inputs import generate_inputs
from harness.models.sources import prepare
from harness.suite.load import load_suite

torch = pytest.importorskip("torch")

ALWAYS_FOLDED = {"Constant", "Shape", "Gather", "Unsqueeze", "Concat", "Identity"}  # shape arithmetic, no kernels


class Block(torch.nn.Module):
    """Conv 3x3 (``width`` channels) - BatchNorm - ReLU, and a 1x1 conv back to ``out`` channels when they differ."""

    def __init__(self, channels: int, out: int, width: int | None = None) -> None:
        super().__init__()
        width = width or out
        self.conv = torch.nn.Conv2d(channels, width, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(width)
        self.relu = torch.nn.ReLU()
        self.back = torch.nn.Conv2d(width, out, 1) if width != out else torch.nn.Identity()

    def forward(self, x):
        return self.back(self.relu(self.bn(self.conv(x))))


class ResNetlet(torch.nn.Module):
    """Conv-BN-ReLU blocks and a residual Add; ``wide`` makes layer2's convolution 4x wider."""

    def __init__(self, wide: bool = False) -> None:
        super().__init__()
        self.stem = Block(3, 16)
        self.layer1 = Block(16, 16)
        self.layer2 = Block(16, 16, 64 if wide else 16)
        self.head = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.layer2(self.layer1(x)))
        return self.head(x.mean((2, 3)))


def export(path: Path, wide: bool = False) -> Path:
    torch.manual_seed(0)
    net = ResNetlet(wide).eval()
    for module in net.modules():  # non-trivial statistics, so folding BatchNorm changes the weights
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    with warnings.catch_warnings():  # the TorchScript exporter announces its removal on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            (torch.randn(1, 3, 32, 32),),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return path


def profile(tmp_path: Path, model_file: Path, iterations: int = 20, artifacts: bool = False, **options):
    suite = tmp_path / f"{model_file.stem}.yaml"
    suite.write_text(f"suite: s\nmodels:\n  - {{name: {model_file.stem}, path: {model_file}}}\n")
    case = load_suite(suite).cases()[0]
    context = BackendContext(tmp_path / "cache", tmp_path / "artifacts" if artifacts else None)
    backend = get_backend("onnxruntime", {"intra_op_threads": 1, **options}, context)
    model = prepare(case.model, tmp_path / "cache")
    runner = backend.build(model, case).runner(generate_inputs(model, case))
    try:
        return runner.profile(iterations), case
    finally:
        runner.close()


def compute_nodes(path: Path) -> set[str]:
    return {node.name for node in onnx.load(str(path)).graph.node if node.op_type not in ALWAYS_FOLDED}


@pytest.mark.parametrize("level", ["disable", "basic", "extended", "all"])
def test_every_node_with_compute_is_covered_once_at_every_optimization_level(tmp_path, level):
    model = export(tmp_path / "net.onnx")
    result, _ = profile(tmp_path, model, graph_optimization=level)
    assert result.source == "onnxruntime" and result.iterations == 20
    covered = [node for layer in result.layers for node in layer.nodes]
    assert len(covered) == len(set(covered)), "a model node is claimed by two profiled nodes"
    assert compute_nodes(model) <= set(covered)
    # What the profile names are the exported model's nodes, not ORT's "<tensor>_nchwc" names.
    assert set(covered) <= {node.name for node in onnx.load(str(model)).graph.node}


def test_fused_convolutions_carry_their_activation(tmp_path):
    model = export(tmp_path / "net.onnx")
    result, _ = profile(tmp_path, model, graph_optimization="all")
    by_node = {node: layer for layer in result.layers for node in layer.nodes}
    stem = by_node["/stem/conv/Conv"]
    assert by_node["/stem/relu/Relu"] is stem, "the NCHWc conv computes the block's ReLU too"
    assert stem.kind == "Conv" and stem.precision == "fp32"
    assert stem.signature is not None and stem.signature.startswith("Conv(1x3x32x32")
    layouts = [layer for layer in result.layers if layer.kind in {"ReorderInput", "ReorderOutput"}]
    assert layouts and all(layer.nodes == () for layer in layouts), "ORT's layout nodes implement no model node"


def test_a_residual_add_goes_with_the_convolution_that_feeds_it(tmp_path):
    # NCHWc adds the shortcut inside the convolution that writes the Add's other input (its "Sum" input), and the
    # ReLU after the Add with it; the shortcut's producer (the stem) is read by two nodes and fused with neither.
    model = export(tmp_path / "wide.onnx", wide=True)
    result, _ = profile(tmp_path, model, iterations=3, graph_optimization="all")
    by_node = {node: layer for layer in result.layers for node in layer.nodes}
    assert by_node["/Add"] is by_node["/Relu"] is by_node["/layer2/back/Conv"]
    assert by_node["/stem/conv/Conv"].nodes == ("/stem/conv/Conv", "/stem/relu/Relu")


def test_layer_times_add_up_to_no_more_than_the_inference(tmp_path):
    model = export(tmp_path / "net.onnx")
    result, _ = profile(tmp_path, model, iterations=40)
    assert result.end_to_end_ms is not None and result.end_to_end_ms > 0
    assert all(layer.time_ms >= 0 and layer.spread_ms >= 0 for layer in result.layers)
    # Medians of parts need not add up to the median of the whole exactly; the gaps between nodes keep it below.
    assert 0.3 * result.end_to_end_ms < result.total_ms <= 1.05 * result.end_to_end_ms


def test_the_widened_convolution_is_the_slowest_layer(tmp_path):
    model = export(tmp_path / "wide.onnx", wide=True)
    result, _ = profile(tmp_path, model, iterations=30)
    slowest = result.layers[0]
    assert "/layer2/conv/Conv" in slowest.nodes, [(layer.name, layer.nodes, layer.time_ms) for layer in result.layers]
    assert result.share(slowest) > 0.3


def test_the_trace_is_kept_as_a_case_artifact_and_nothing_is_left_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = export(tmp_path / "net.onnx")
    result, case = profile(tmp_path, model, iterations=5, artifacts=True)
    trace = tmp_path / "artifacts" / case.id / "ort_profile.json"
    assert trace.is_file() and '"model_run"' in trace.read_text()
    left = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in {".json", ".onnx"}]
    assert sorted(left) == sorted([trace, model]), "a trace or an optimized model left outside the artifact folder"
    assert result.iterations == 5


def test_the_profile_pass_leaves_the_measured_session_as_it_was(tmp_path):
    model = export(tmp_path / "net.onnx")
    suite = tmp_path / "s.yaml"
    suite.write_text(f"suite: s\nmodels:\n  - {{name: net, path: {model}}}\n")
    case = load_suite(suite).cases()[0]
    backend = get_backend("onnxruntime", {"intra_op_threads": 1}, BackendContext(tmp_path / "cache"))
    prepared = prepare(case.model, tmp_path / "cache")
    runner = backend.build(prepared, case).runner(generate_inputs(prepared, case))
    before = runner.outputs()["y"]
    assert runner.profile(3) is not None
    np.testing.assert_array_equal(runner.outputs()["y"], before)
    runner.close()


def test_an_int8_qdq_model_maps_each_quantized_convolution_to_its_node_unit(tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter([{"x": rng.standard_normal((1, 3, 32, 32), dtype=np.float32)} for _ in range(2)])

        def get_next(self):
            return next(self.batches, None)

    quantized = tmp_path / "int8.onnx"
    quantize_static(
        str(export(tmp_path / "net.onnx", wide=True)), str(quantized), Reader(), quant_format=QuantFormat.QDQ
    )
    result, _ = profile(tmp_path, quantized, iterations=3)
    covered = [node for layer in result.layers for node in layer.nodes]
    assert compute_nodes(quantized) <= set(covered)
    by_node = {node: layer for layer in result.layers for node in layer.nodes}
    unit = by_node["/layer2/conv/Conv"]
    assert unit.kind == "QLinearConv" and unit.precision == "int8"
    # The Q after the conv belongs to it (QLinearConv writes int8), the DQ after that to the next conv.
    assert "/layer2/relu/Relu_output_0_QuantizeLinear" in unit.nodes
    assert by_node["/layer2/relu/Relu_output_0_DequantizeLinear"] is by_node["/layer2/back/Conv"]


def test_without_the_optimized_graph_nodes_keep_the_names_ort_ran_and_a_note_says_so(tmp_path, monkeypatch):
    import onnxruntime

    real = onnxruntime.InferenceSession

    def refusing_to_save(path, options=None, **kwargs):  # as a provider that compiles subgraphs refuses
        if options is not None and options.optimized_model_filepath:
            raise RuntimeError("Unable to serialize model as it contains compiled nodes")
        return real(path, options, **kwargs)

    model = export(tmp_path / "net.onnx")
    suite = tmp_path / "s.yaml"
    suite.write_text(f"suite: s\nmodels:\n  - {{name: net, path: {model}}}\n")
    case = load_suite(suite).cases()[0]
    backend = get_backend("onnxruntime", {"intra_op_threads": 1}, BackendContext(tmp_path / "cache"))
    prepared = prepare(case.model, tmp_path / "cache")
    runner = backend.build(prepared, case).runner(generate_inputs(prepared, case))
    monkeypatch.setattr(onnxruntime, "InferenceSession", refusing_to_save)
    try:
        result = runner.profile(3)
    finally:
        runner.close()
    assert result is not None and "could not be saved" in result.notes[-1]
    assert all(layer.nodes == (layer.name,) for layer in result.layers)
