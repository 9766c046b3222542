"""harness.attribution.names: TensorRT layer names, layer metadata and PyTorch module paths to ONNX nodes."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from harness.attribution.names import (
    REFORMAT,
    OnnxGraph,
    fused_parts,
    layer_kind,
    layer_nodes,
    metadata_nodes,
    module_path,
    nodes_of_module,
)

EXPORTS = Path(__file__).parent / "data" / "tensorrt-exports"


def test_metadata_of_tensorrt_10_and_11_names_every_fused_node() -> None:
    # the layer of a fused Conv+ReLU as the engine inspector prints it (entries separated by the unit separator)
    metadata = "[ONNX Layer: /backbone/conv1/Conv]\x1f[ONNX Layer: /backbone/relu/Relu]"
    assert metadata_nodes(metadata) == ("/backbone/conv1/Conv", "/backbone/relu/Relu")
    # TensorRT 8.6 separated them with the record separator; names may hold brackets
    assert metadata_nodes("[ONNX Layer: a[0]]\x1e[ONNX Layer: b]") == ("a[0]", "b")
    assert metadata_nodes("[ONNX Layer: a][ONNX Layer: b]") == ("a", "b")
    assert metadata_nodes("") == () and metadata_nodes(None) == ()
    # metadata wins over the layer's own name (a Myelin kernel name says nothing)
    assert layer_nodes("__myl_AddRelu_myl3_0", metadata) == ("/backbone/conv1/Conv", "/backbone/relu/Relu")


def test_the_fused_names_of_the_real_mobilenet_engine() -> None:
    layers = json.loads((EXPORTS / "mobilenet.qat.engine.graph.json").read_text())["Layers"]
    names = {layer["Name"] for layer in layers}
    conv = "features.0.0.weight + QuantizeLinear_8 + Conv_12 + PWN(Clip_16)"
    assert conv in names
    assert layer_nodes(conv) == ("Clip_16", "Conv_12", "QuantizeLinear_8")
    gemm = next(name for name in names if name.startswith("classifier.1.weight"))
    assert layer_nodes(gemm) == ("Gemm_864", "QuantizeLinear_860")  # TensorRT's (Unnamed Layer* n) dropped
    assert layer_nodes("QuantizeLinear_2") == ("QuantizeLinear_2",)
    copied = "copied_squeeze_after_(Unnamed Layer* 850) [ElementWise]"
    assert copied in names and layer_nodes(copied) == ()
    reformat = "Reformatting CopyNode for Input Tensor 0 to GlobalAveragePool_843"
    assert reformat in names
    assert layer_nodes(reformat) == ("GlobalAveragePool_843",) and layer_kind(reformat) == REFORMAT
    assert layer_kind(conv) is None


def test_nested_pointwise_and_reformats_of_fused_layers() -> None:
    assert [p.name for p in fused_parts("PWN(PWN(Sigmoid_5), Mul_6)")] == ["Sigmoid_5", "Mul_6"]
    assert layer_nodes("Conv_3 + PWN(PWN(Sigmoid_5, Mul_6), Add_7)") == ("Add_7", "Conv_3", "Mul_6", "Sigmoid_5")
    # a reformat in front of a fused layer belongs to that layer's nodes (the form trtexec printed for ResNet-18)
    name = "Reformatting CopyNode for Input Tensor 0 to resnetv15_conv0_fwd + resnetv15_batchnorm0_fwd"
    assert layer_nodes(name) == ("resnetv15_batchnorm0_fwd", "resnetv15_conv0_fwd")
    assert layer_kind("Reformatting CopyNode for Output Tensor 0 to conv1_pool") == REFORMAT
    assert layer_nodes("Reformatting CopyNode for Output Tensor 0 to conv1_pool") == ("conv1_pool",)
    assert layer_nodes("DequantizeLinear_5_dequantize_scale_node + Conv_6") == ("Conv_6", "DequantizeLinear_5")
    assert layer_nodes("[trainStation1]") == () and layer_kind("[trainStation1]") == "Myelin"


def chain() -> onnx.ModelProto:
    """x → Conv_0 → Relu_1 → MatMul_2 → Add_3 → Softmax_4 → y, with weights as initializers."""
    w = helper.make_tensor("conv.weight", TensorProto.FLOAT, [2, 2, 1, 1], [1.0] * 4)
    m = helper.make_tensor("fc.weight", TensorProto.FLOAT, [2, 2], [1.0] * 4)
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight"], ["t0"], name="Conv_0"),
        helper.make_node("Relu", ["t0"], ["t1"], name="Relu_1"),
        helper.make_node("MatMul", ["t1", "fc.weight"], ["t2"], name="MatMul_2"),
        helper.make_node("Add", ["t2", "t1"], ["t3"], name="Add_3"),
        helper.make_node("Softmax", ["t3"], ["y"]),  # no name: called Softmax_4
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 2])],
        [w, m],
    )
    return helper.make_model(graph)


def test_a_foreign_node_covers_the_nodes_between_its_ends_with_the_graph() -> None:
    graph = OnnxGraph.from_model(chain())
    name = "{ForeignNode[Relu_1...Softmax_4]}"
    assert layer_nodes(name, graph=graph) == ("Add_3", "MatMul_2", "Relu_1", "Softmax_4")
    assert layer_nodes(name) == ("Relu_1", "Softmax_4")  # without the graph only the ends are known
    # ends named by their output tensors stand for the nodes producing them
    assert layer_nodes("{ForeignNode[t0...t2]}", graph=graph) == ("Conv_0", "MatMul_2", "Relu_1")


def test_the_graph_drops_parameters_and_maps_tensors_to_their_producer() -> None:
    graph = OnnxGraph.from_model(chain())
    assert layer_nodes("conv.weight + Conv_0 + PWN(Relu_1)", graph=graph) == ("Conv_0", "Relu_1")
    assert layer_nodes("Reformatting CopyNode for Output Tensor 0 to t3", graph=graph) == ("Add_3",)
    assert layer_nodes("(Unnamed Layer* 7) [Shuffle] + MatMul_2", graph=graph) == ("MatMul_2",)
    assert graph.nodes[-1] == "Softmax_4"


def test_module_paths_of_the_harness_torch_export() -> None:
    torch = pytest.importorskip("torch")

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.relu = torch.nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.relu(self.conv(x)) + x

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.layer1 = torch.nn.Sequential(Block(), Block())
            self.head = torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.layer1(self.stem(x)).mean((2, 3)))

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter announces its removal on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(Net(), torch.randn(1, 3, 8, 8), buffer, dynamo=False, opset_version=17)
    names = [node.name for node in onnx.load_from_string(buffer.getvalue()).graph.node]

    assert "/layer1/layer1.1/conv/Conv" in names
    assert module_path("/layer1/layer1.1/conv/Conv") == "layer1.1.conv"
    assert module_path("/layer1/layer1.0/Add") == "layer1.0"
    assert module_path("/head/Gemm") == "head"
    assert module_path("Conv_12") is None
    assert nodes_of_module("layer1.1", names) == (
        "/layer1/layer1.1/conv/Conv",
        "/layer1/layer1.1/relu/Relu",
        "/layer1/layer1.1/Add",
    )
    assert nodes_of_module("layer1.1.conv", names) == ("/layer1/layer1.1/conv/Conv",)
    assert nodes_of_module("stem", names) == ("/stem/Conv",)
    assert set(nodes_of_module("", names)) == {n for n in names if module_path(n) is not None}
