"""attribution/ort_trace.py: ONNX Runtime's profiler trace -> LayerProfile, and ORT's fused nodes -> the model's nodes.

The graphs below are the ones ORT 1.2x-1.3x writes with ``optimized_model_filepath`` for Conv-BN-ReLU blocks at each
optimization level (tests/test_backends_onnxruntime_profile.py checks the same against a real session)."""

from __future__ import annotations

import json

import pytest

from harness.attribution.ort_trace import GraphNode, node_origins, profile_from_trace, read_trace
from harness.core.errors import HarnessError


def n(name: str, op: str, inputs: str, outputs: str) -> GraphNode:
    return GraphNode(name, op, tuple(inputs.split()), tuple(outputs.split()))


# x -> Conv_0 -> BN_1 -> Relu_2 -> Conv_3 -> Add_4(+x) -> Relu_5 -> y
MODEL = [
    n("Conv_0", "Conv", "x w0 b0", "c0"),
    n("BN_1", "BatchNormalization", "c0 s b m v", "n1"),
    n("Relu_2", "Relu", "n1", "r2"),
    n("Conv_3", "Conv", "r2 w3 b3", "c3"),
    n("Add_4", "Add", "c3 x", "a4"),
    n("Relu_5", "Relu", "a4", "y"),
]


def test_basic_level_conv_bn_keeps_the_conv_name_and_writes_the_bn_output():
    optimized = [
        n("Conv_0", "Conv", "x W B", "n1"),
        n("Relu_2", "Relu", "n1", "r2"),
        n("Conv_3", "Conv", "r2 w3 b3", "c3"),
        n("Add_4", "Add", "c3 x", "a4"),
        n("Relu_5", "Relu", "a4", "y"),
    ]
    origins = node_origins(MODEL, optimized)
    assert origins["Conv_0"] == ("BN_1", "Conv_0")
    assert origins["Relu_2"] == ("Relu_2",) and origins["Add_4"] == ("Add_4",)


def test_extended_level_fused_conv_writes_the_activation_output():
    optimized = [
        n("Conv_0", "FusedConv", "x W B", "r2"),
        n("Conv_3", "Conv", "r2 w3 b3", "c3"),
        n("Add_4", "Add", "c3 x", "a4"),
        n("Relu_5", "Relu", "a4", "y"),
    ]
    assert node_origins(MODEL, optimized)["Conv_0"] == ("BN_1", "Conv_0", "Relu_2")


def test_nchwc_convs_are_named_after_their_tensor_and_reorders_implement_nothing():
    optimized = [
        n("ReorderInput", "ReorderInput", "x", "t0"),
        n("r2_nchwc", "Conv", "t0 W B", "t1"),
        n("c3_nchwc", "Conv", "t1 w3 b3", "t3"),
        n("ReorderOutput", "ReorderOutput", "t3", "c3"),
        n("Add_4", "Add", "c3 x", "a4"),
        n("Relu_5", "Relu", "a4", "y"),
    ]
    origins = node_origins(MODEL, optimized)
    assert origins["r2_nchwc"] == ("BN_1", "Conv_0", "Relu_2"), "the chain reaches the name through the BN"
    assert origins["c3_nchwc"] == ("Conv_3",)
    assert origins["ReorderInput"] == origins["ReorderOutput"] == ()


def test_a_fused_residual_add_follows_its_single_reader_input_not_the_shortcut():
    # NCHWc's Conv with a Sum input: c3 (one reader) vanished into c3_nchwc; x is also read by Conv_0.
    model = [
        n("Conv_0", "Conv", "x w0 b0", "c0"),
        n("Conv_3", "Conv", "c0 w3 b3", "c3"),
        n("Add_4", "Add", "x c3", "a4"),
    ]
    optimized = [
        n("ReorderInput", "ReorderInput", "x", "t0"),
        n("c0_nchwc", "Conv", "t0 w0 b0", "t1"),
        n("c3_nchwc", "Conv", "t1 w3 b3 t0", "t3"),
        n("ReorderOutput", "ReorderOutput", "t3", "a4"),
    ]
    origins = node_origins(model, optimized)
    assert origins["c3_nchwc"] == ("Add_4", "Conv_3") and origins["c0_nchwc"] == ("Conv_0",)


def test_a_qdq_node_unit_is_its_input_dequantizations_the_node_and_its_output_quantization():
    model = [
        n("x_Q", "QuantizeLinear", "x s z", "xq"),
        n("x_DQ", "DequantizeLinear", "xq s z", "xd"),
        n("w1_DQ", "DequantizeLinear", "w1q ws wz", "w1"),
        n("conv1", "Conv", "xd w1", "c1"),
        n("c1_Q", "QuantizeLinear", "c1 s z", "c1q"),
        n("c1_DQ", "DequantizeLinear", "c1q s z", "c1d"),
        n("w2_DQ", "DequantizeLinear", "w2q ws wz", "w2"),
        n("conv2", "Conv", "c1d w2", "c2"),
        n("c2_Q", "QuantizeLinear", "c2 s z", "c2q"),
        n("c2_DQ", "DequantizeLinear", "c2q s z", "y"),
    ]
    optimized = [  # ORT's QDQ fusion, its NHWC layout transformer renaming tensors after the nodes
        n("x_Q", "QuantizeLinear", "x s z", "t0"),
        n("Transpose", "Transpose", "t0", "t1"),
        n("conv1_token_1", "QLinearConv", "t1 s z w1q ws wz s z", "conv1"),
        n("conv2_token_2", "QLinearConv", "conv1 s z w2q ws wz s z", "conv2"),
        n("Transpose_token_3", "Transpose", "conv2", "t4"),
        n("c2_DQ", "DequantizeLinear", "t4 s z", "y"),
    ]
    origins = node_origins(model, optimized)
    assert origins["conv1_token_1"] == ("c1_Q", "conv1", "w1_DQ", "x_DQ")
    assert origins["conv2_token_2"] == ("c1_DQ", "c2_Q", "conv2", "w2_DQ")
    assert origins["Transpose"] == origins["Transpose_token_3"] == ()


def test_a_duplicated_dequantization_computes_the_same_model_node():
    model = [n("a_DQ", "DequantizeLinear", "aq s z", "a"), n("f", "Relu", "a", "b"), n("g", "Sigmoid", "a", "c")]
    optimized = [
        n("a_DQ", "DequantizeLinear", "aq s z", "a"),
        n("a_DQ/duplicated", "DequantizeLinear", "aq s z", "a/duplicated"),
        n("f", "Relu", "a", "b"),
        n("g", "Sigmoid", "a/duplicated", "c"),
    ]
    origins = node_origins(model, optimized)
    assert origins["a_DQ"] == origins["a_DQ/duplicated"] == ("a_DQ",)


def event(name: str, ts: int, dur: int, cat: str = "Node", **args) -> dict:
    return {"cat": cat, "name": name, "ts": ts, "dur": dur, "ph": "X", "args": args}


def run(ts: int, conv_us: int, relu_us: int | None = 5) -> list[dict]:
    shapes = [{"float": [1, 3, 8, 8]}, {"float": [4, 3, 3, 3]}, {"float": [4]}]
    out = [event("Conv_0_kernel_time", ts + 1, conv_us, op_name="FusedConv", input_type_shape=shapes)]
    out.append(event("Conv_0_fence_before", ts + 1, 0))  # older ORT releases: fences are not kernel time
    if relu_us is not None:
        out.append(event("Relu_5_kernel_time", ts + 2 + conv_us, relu_us, op_name="Relu"))
    return [*out, event("model_run", ts, conv_us + 20, cat="Session")]


def test_times_are_medians_per_inference_after_the_warm_up_runs():
    events = run(0, 5000) + run(10_000, 100) + run(20_000, 110) + run(30_000, 120) + run(40_000, 400, relu_us=None)
    profile = profile_from_trace(events, {"Conv_0": ("BN_1", "Conv_0", "Relu_2")}, skip_runs=1)
    assert profile.source == "onnxruntime" and profile.iterations == 4
    conv, relu = profile.layers  # slowest first
    assert conv.name == "Conv_0" and conv.nodes == ("BN_1", "Conv_0", "Relu_2") and conv.kind == "FusedConv"
    assert conv.time_ms == pytest.approx(0.110), "the 5 ms warm-up run is left out, the median is nearest-rank"
    assert conv.spread_ms == pytest.approx((0.120 - 0.100) / 2)
    assert conv.signature == "FusedConv(1x3x8x8, 4x3x3x3, 4)" and conv.precision == "fp32"
    assert relu.time_ms == pytest.approx(0.005) and relu.nodes == (), "not in the origins: no model node"
    assert relu.spread_ms == pytest.approx(0.0025), "the run without it counts 0 ms"
    assert profile.end_to_end_ms == pytest.approx(0.130)


def test_without_origins_each_node_stands_for_its_own_name():
    profile = profile_from_trace(run(0, 100))
    assert [layer.nodes for layer in profile.layers] == [("Conv_0",), ("Relu_5",)]


def test_a_trace_without_inferences_or_not_a_trace_is_a_one_line_error(tmp_path):
    with pytest.raises(HarnessError, match=r"no inference .*after the warm-up"):
        profile_from_trace(run(0, 100), skip_runs=1)
    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    with pytest.raises(HarnessError, match=r"p\.json: not a readable ONNX Runtime profile .*; profile the case again"):
        read_trace(bad)
    bad.write_text(json.dumps({"traceEvents": []}))
    with pytest.raises(HarnessError, match="a JSON list of trace events"):
        read_trace(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(run(0, 100)))
    assert profile_from_trace(read_trace(good)).iterations == 1
