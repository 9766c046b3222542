"""harness.attribution.trt_files: trtexec's profile, layer-information, times and metadata files into a LayerProfile.

The MobileNet files are real exports of TensorRT 8.x (tests/data/tensorrt-exports/NOTICE.md); the 10.x and 11.x
layer-information documents are written here in the shapes those releases' engine inspectors give.
"""

from __future__ import annotations

import io
import json
import stat
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import pytest

from harness.attribution.diff import diff_profiles
from harness.attribution.names import REFORMAT
from harness.attribution.trt_files import (
    ProfileRow,
    layer_profile,
    median_latency,
    parse_layer_info,
    parse_layer_info_text,
    parse_profile,
    profile_from_files,
    read_layer_info,
    read_metadata,
    read_profile,
    read_times,
)
from harness.core.errors import HarnessError

EXPORTS = Path(__file__).parent / "data" / "tensorrt-exports"
PROFILE = EXPORTS / "mobilenet.qat.engine.profile.json"
GRAPH = EXPORTS / "mobilenet.qat.engine.graph.json"
TIMES = EXPORTS / "mobilenet.qat.engine.timing.json"
METADATA = EXPORTS / "mobilenet.qat.engine.profile.metadata.json"
SLOWED = "features.6.conv.1.0.weight + QuantizeLinear_267 + Conv_271 + PWN(Clip_275)"


def test_the_real_tensorrt_8_files_parse() -> None:
    count, rows = read_profile(PROFILE)
    assert count == 6610 and len(rows) == 73
    assert rows[0].name == "QuantizeLinear_2" and rows[0].median_ms == pytest.approx(0.004544)
    info = read_layer_info(GRAPH)
    assert len(info.layers) == 73 and info.detailed
    assert info.io_tensors == ("input1", "1179")
    assert len(read_times(TIMES)) == 200
    assert median_latency(read_metadata(METADATA)) == pytest.approx(0.351196)


def test_the_real_files_join_into_a_profile_with_nodes_precision_and_tactics() -> None:
    profile = profile_from_files(PROFILE, GRAPH, times=TIMES)
    assert profile.source == "trtexec" and profile.iterations == 6610
    assert profile.total_ms == pytest.approx(0.468768, rel=1e-6)
    layers = {layer.name: layer for layer in profile.layers}
    conv = layers["features.0.0.weight + QuantizeLinear_8 + Conv_12 + PWN(Clip_16)"]
    assert conv.nodes == ("Clip_16", "Conv_12", "QuantizeLinear_8")
    assert conv.kind == "Convolution" and conv.precision == "int8"
    assert conv.tactic == "volta_int8x4_icudnn_int8x4_128x32_relu_xregs_medium_c32_nn_v1"
    assert conv.signature == "Convolution(1x3x224x224)->(1x32x112x112)"
    quantize = layers["QuantizeLinear_2"]
    assert quantize.kind == REFORMAT and quantize.precision == "fp32->int8" and quantize.tactic is None
    assert layers["Reformatting CopyNode for Input Tensor 0 to GlobalAveragePool_843"].nodes == (
        "GlobalAveragePool_843",
    )
    # each layer's spread is its share of the end-to-end half-IQR (a layer that took no time has none)
    assert all(layer.spread_ms > 0 for layer in profile.layers if layer.time_ms > 0)
    assert layers["copied_squeeze_after_(Unnamed Layer* 850) [ElementWise]"].nodes == ()
    assert profile.notes == ("no layer Metadata (TensorRT before 8.6): ONNX nodes read from the layer names",)
    # the profile's layers come slowest first, as the record keeps them
    assert profile.layers[0].time_ms == max(layer.time_ms for layer in profile.layers)


def slowed_copy(tmp_path: Path, name: str, factor: float) -> Path:
    """The real profile with one layer ``factor`` times slower (a regression of that layer alone)."""
    data: list[dict[str, Any]] = json.loads(PROFILE.read_text())
    for row in data[1:]:
        if row["name"] == name:
            for key in ("timeMs", "averageMs", "medianMs"):
                row[key] *= factor
    path = tmp_path / "slowed.profile.json"
    path.write_text(json.dumps(data))
    return path


def test_a_copy_with_one_layer_slowed_diffs_with_that_layer_first(tmp_path: Path) -> None:
    baseline = profile_from_files(PROFILE, GRAPH)
    current = profile_from_files(slowed_copy(tmp_path, SLOWED, 4.0), GRAPH)
    diff = diff_profiles(baseline, current)
    first = diff.groups[0]
    assert first.label == SLOWED and first.change == "slower" and first.above_noise
    assert first.nodes == ("Clip_275", "Conv_271", "QuantizeLinear_267")
    assert diff.share(first) == pytest.approx(1.0)
    assert not any(group.above_noise for group in diff.groups[1:])
    assert diff.where().startswith(f"where: {SLOWED} +0.014 ms (100% of the change)")


def test_a_and_a_of_the_real_files_has_nothing_above_the_noise() -> None:
    diff = diff_profiles(profile_from_files(PROFILE, GRAPH), profile_from_files(PROFILE, GRAPH))
    assert diff.where() == ""
    assert len(diff.groups) == 72  # the reformat in front of GlobalAveragePool_843 is in that node's group


def layer(name: str, kind: str, shapes: tuple[list[int], list[int]], fmt: str, **extra: Any) -> dict[str, Any]:
    return {
        "Name": name,
        "LayerType": kind,
        "Inputs": [{"Name": f"{name}:in", "Location": "Device", "Dimensions": shapes[0], "Format/Datatype": fmt}],
        "Outputs": [{"Name": f"{name}:out", "Location": "Device", "Dimensions": shapes[1], "Format/Datatype": fmt}],
        **extra,
    }


def tensorrt_10_layer_info() -> dict[str, Any]:
    """A 10.x ``--exportLayerInfo`` document (detailed): ``Metadata`` per layer, ``Bindings`` as names."""
    fmt = "Channel major FP16 format where channel % 8 == 0"
    return {
        "Layers": [
            layer(
                "/stem/Conv + /stem/act/Relu",
                "CaskConvolution",
                ([1, 3, 224, 224], [1, 64, 112, 112]),
                fmt,
                ParameterType="Convolution",
                TacticName="sm90_xmma_fprop_implicit_gemm_f16f16_f16f16_f16_nhwckrsc_nhwc",
                TacticValue="0x2a4f1b0c9d3e8f71",
                StreamId=0,
                Metadata="[ONNX Layer: /stem/Conv]\x1f[ONNX Layer: /stem/act/Relu]",
            ),
            layer(
                "__myl_MulAddRelu_myl0_1",
                "kgen",
                ([1, 64, 112, 112], [1, 64, 112, 112]),
                "Half",
                TacticName="__myl_MulAddRelu_0x8c1e",
                StreamId=0,
                Metadata="[ONNX Layer: /block/Mul]\x1f[ONNX Layer: /block/Add]\x1f[ONNX Layer: /block/Relu]",
            ),
            layer(
                "Reformatting CopyNode for Output Tensor 0 to /head/Gemm",
                "Reformat",
                ([1, 1000], [1, 1000]),
                "Row major linear FP32",
                StreamId=0,
                Metadata="",
            ),
        ],
        "Bindings": ["images", "logits"],
    }


def tensorrt_11_layer_info() -> dict[str, Any]:
    """An 11.x document: ``I/O Tensors`` as objects, tensors with ``Format`` and ``DataType`` apart."""
    return {
        "ProfilingVerbosity": "DETAILED",
        "Layers": [
            {
                "Name": "{ForeignNode[/encoder/layer.0/attention/MatMul.../encoder/layer.0/output/Add]}",
                "LayerType": "Myelin",
                "Inputs": [{"Name": "hidden", "Dimensions": [1, 128, 768], "Format": "LINEAR", "DataType": "BF16"}],
                "Outputs": [{"Name": "out", "Dimensions": [1, 128, 768], "Format": "LINEAR", "DataType": "BF16"}],
                "TacticName": "",
                "Metadata": (
                    "[ONNX Layer: /encoder/layer.0/attention/MatMul]\x1f[ONNX Layer: /encoder/layer.0/attention/"
                    "Softmax]\x1f[ONNX Layer: /encoder/layer.0/output/Add]"
                ),
            }
        ],
        "I/O Tensors": [
            {"Name": "hidden", "IOMode": "INPUT", "DataType": "BF16", "Dimensions": [1, 128, 768]},
            {"Name": "out", "IOMode": "OUTPUT", "DataType": "BF16", "Dimensions": [1, 128, 768]},
        ],
        "Engine Metadata": {"Multi-Device": "Disabled"},
    }


def rows_for(names: list[str], ms: float = 0.1) -> list[dict[str, Any]]:
    return [{"count": 100}] + [
        {"name": n, "timeMs": ms * 100, "averageMs": ms, "medianMs": ms, "percentage": 100 / len(names)} for n in names
    ]


def test_a_tensorrt_10_document_maps_layers_to_onnx_nodes_through_metadata() -> None:
    info = parse_layer_info(tensorrt_10_layer_info(), "layers.json")
    assert info.io_tensors == ("images", "logits")
    count, rows = parse_profile(rows_for([layer.name for layer in info.layers]), "profile.json")
    profile = layer_profile(rows, info, source="tensorrt", iterations=count)
    layers = {layer.name: layer for layer in profile.layers}
    assert layers["/stem/Conv + /stem/act/Relu"].nodes == ("/stem/Conv", "/stem/act/Relu")
    assert layers["/stem/Conv + /stem/act/Relu"].precision == "fp16"
    assert layers["/stem/Conv + /stem/act/Relu"].tactic.startswith("sm90_xmma_fprop")  # type: ignore[union-attr]
    assert layers["__myl_MulAddRelu_myl0_1"].nodes == ("/block/Add", "/block/Mul", "/block/Relu")
    assert layers["__myl_MulAddRelu_myl0_1"].precision == "fp16"
    reformat = layers["Reformatting CopyNode for Output Tensor 0 to /head/Gemm"]
    assert reformat.nodes == ("/head/Gemm",) and reformat.kind == REFORMAT  # empty Metadata: from the name
    assert profile.notes == ("no per-inference times: layer spreads unknown, only the noise floor applies",)


def test_a_tensorrt_11_document_maps_a_foreign_node_to_all_its_nodes() -> None:
    info = parse_layer_info(tensorrt_11_layer_info(), "layers.json")
    assert info.io_tensors == ("hidden", "out")
    (only,) = info.layers
    _, rows = parse_profile(rows_for([only.name], 0.8), "profile.json")
    (layer,) = layer_profile(rows, info).layers
    assert layer.nodes == (
        "/encoder/layer.0/attention/MatMul",
        "/encoder/layer.0/attention/Softmax",
        "/encoder/layer.0/output/Add",
    )
    assert layer.precision == "bf16" and layer.tactic is None and layer.kind == "Myelin"
    assert layer.signature == "Myelin(1x128x768)->(1x128x768)"


def test_layer_information_below_detailed_verbosity_is_names_only() -> None:
    info = parse_layer_info({"Layers": ["Conv_0 + Relu_1", "Gemm_2"], "Bindings": ["x", "y"]}, "layers.json")
    assert not info.detailed
    _, rows = parse_profile(rows_for(["Conv_0 + Relu_1", "Gemm_2"]), "profile.json")
    profile = layer_profile(rows, info, latencies_ms=[0.3, 0.31, 0.29, 0.3, 0.32])
    assert {layer.nodes for layer in profile.layers} == {("Conv_0", "Relu_1"), ("Gemm_2",)}
    assert profile.end_to_end_ms == pytest.approx(0.3)
    assert profile.notes[0].startswith("no detailed layer information (build with --profilingVerbosity=detailed)")


@pytest.mark.parametrize(
    ("text", "reader", "message"),
    [
        (None, read_profile, "no such file; run trtexec with --exportProfile=<file>"),
        ("[{", read_profile, "not valid JSON (line 1)"),
        ('{"Layers": []}', read_profile, 'expected [{"count": N}, {layer}, ...] as trtexec --exportProfile writes'),
        ('[{"count": 1}, {"name": "Conv_0"}]', read_profile, "layer 'Conv_0' has no 'averageMs' number"),
        ('[{"count": 1}, {"timeMs": 1}]', read_profile, "entry 1 has no layer 'name'"),
        ("[]", read_layer_info, "expected an object with a 'Layers' list"),
        ('{"Layers": [{"LayerType": "Conv"}]}', read_layer_info, "layer 0: a layer should be a name or an object"),
        (
            '{"Layers": [{"Name": "c", "Inputs": [{"Dimensions": ["1"]}]}]}',
            read_layer_info,
            "'Dimensions' that are not integers",
        ),
        ("[V] Layers:\nnothing here\n", read_layer_info, "no 'Layers:' with 'Name: ...' lines"),
        ('[{"computeMs": 1}]', read_times, "an inference has no 'latencyMs' number"),
        ("[]", read_metadata, "expected an object (a TREx *.metadata.json file)"),
    ],
)
def test_unreadable_files_are_one_line_errors_naming_the_file(
    tmp_path: Path, text: str | None, reader: Any, message: str
) -> None:
    path = tmp_path / "export.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(HarnessError) as error:
        reader(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value)
    assert "\n" not in str(error.value)


# -- the profiles the TensorRT and trtexec runners take (stand-ins of tests/test_trt_runner.py and a fake trtexec) --


@pytest.fixture
def trt_fakes(monkeypatch: pytest.MonkeyPatch) -> Any:
    from test_trt_runner import FakeCuda, fake_trt

    from harness.trt import runner as tensorrt_runner

    cuda = FakeCuda()
    monkeypatch.setattr(tensorrt_runner, "cuda", cuda)
    monkeypatch.setattr(tensorrt_runner, "trt", fake_trt(cuda.clock))
    monkeypatch.setattr(tensorrt_runner, "tensorrt_log", lambda: types.SimpleNamespace(logger=None))
    return cuda


def test_the_tensorrt_runner_profiles_layers_in_a_pass_of_its_own(trt_fakes: Any, tmp_path: Path) -> None:
    from test_trt_runner import FEEDS, fake_engine

    from harness.trt.runner import TensorRTRunner

    runner = TensorRTRunner(fake_engine(tmp_path), FEEDS)
    trt_fakes.clock.calls.clear()
    profile = runner.profile(7)
    assert profile is not None
    # a second context without the CUDA graph: every profiled inference is a plain enqueue, waited for
    assert trt_fakes.clock.calls.count("enqueue") == 7 and "graph.launch" not in trt_fakes.clock.calls
    assert profile.source == "tensorrt" and profile.iterations == 7
    assert [(layer.name, layer.time_ms, layer.nodes) for layer in profile.layers] == [
        ("conv", 1.5, ("conv",)),
        ("fc", 0.5, ("fc",)),
    ]
    assert profile.end_to_end_ms == 2.0  # CUDA events around each profiled inference
    assert profile.notes[0].startswith("no detailed layer information")
    assert runner.trace == []  # the gated iterations' trace is not touched
    runner.close()


def test_the_tensorrt_runner_maps_layers_through_the_inspectors_metadata(trt_fakes: Any, tmp_path: Path) -> None:
    from test_trt_runner import FEEDS, fake_engine

    from harness.trt.runner import TensorRTRunner

    runner = TensorRTRunner(fake_engine(tmp_path), FEEDS)
    detailed = {
        "Layers": [
            layer(
                "conv",
                "CaskConvolution",
                ([4, 4], [4, 4]),
                "Half",
                TacticName="sm90_conv",
                Metadata=("[ONNX Layer: /features/conv/Conv]\x1f[ONNX Layer: /features/act/Relu]"),
            ),
            layer("fc", "CaskGemm", ([4, 4], [4, 2]), "Row major linear FP32", Metadata="[ONNX Layer: /head/Gemm]"),
        ],
        "Bindings": ["x", "y"],
    }
    runner.inspector_json = lambda: detailed  # type: ignore[method-assign]
    profile = runner.profile(5)
    assert profile is not None and profile.notes == ()
    conv, fc = profile.layers
    assert conv.nodes == ("/features/act/Relu", "/features/conv/Conv") and conv.precision == "fp16"
    assert conv.tactic == "sm90_conv" and fc.nodes == ("/head/Gemm",) and fc.precision == "fp32"
    assert conv.spread_ms == 0.0  # the stand-in reports the same time every inference
    runner.close()


FAKE_TRTEXEC = r"""
import json, os, sys
args = sys.argv[1:]
open(os.environ["FAKE_TRTEXEC_LOG"], "a").write(json.dumps(args) + "\n")
print("&&&& RUNNING TensorRT.trtexec [TensorRT v101300] # trtexec " + " ".join(args))
opts = dict(a[2:].split("=", 1) if "=" in a else (a[2:], "") for a in args if a.startswith("--"))
if "help" in opts:
    sys.exit(0)
n = int(opts["iterations"])
rows = [{"startComputeMs": i, "computeMs": 0.3 + 0.01 * (i % 3), "latencyMs": 0.3 + 0.01 * (i % 3)} for i in range(n)]
open(opts["exportTimes"], "w").write(json.dumps(rows))
profile = [{"count": n}, {"name": "/conv/Conv + /relu/Relu", "timeMs": 0.2 * n, "averageMs": 0.2, "medianMs": 0.2,
           "percentage": 80}, {"name": "/head/Gemm", "timeMs": 0.05 * n, "averageMs": 0.05, "medianMs": 0.05,
           "percentage": 20}]
open(opts["exportProfile"], "w").write(json.dumps(profile))
layers = [{"Name": "/conv/Conv + /relu/Relu", "LayerType": "CaskConvolution", "Inputs": [], "Outputs": [],
           "TacticName": "sm90_xmma_fprop", "Metadata": "[ONNX Layer: /conv/Conv]\x1f[ONNX Layer: /relu/Relu]"},
          {"Name": "/head/Gemm", "LayerType": "CaskGemm", "Inputs": [], "Outputs": [],
           "Metadata": "[ONNX Layer: /head/Gemm]"}]
open(opts["exportLayerInfo"], "w").write(json.dumps({"Layers": layers, "Bindings": ["x", "y"]}))
"""


def test_the_trtexec_runner_profiles_in_a_separate_trtexec_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.backends.base import BackendContext, BuildInfo, get_backend
    from harness.backends.trtexec import TrtexecEngine, TrtexecOptions

    binary = tmp_path / "trtexec"
    binary.write_text(f"#!{sys.executable}\n{FAKE_TRTEXEC}")
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "trtexec.log"
    monkeypatch.setenv("FAKE_TRTEXEC_LOG", str(log))
    context = BackendContext(tmp_path / "cache", tmp_path / "artifacts")
    backend = get_backend("trtexec", {"binary": str(binary)}, context)
    case = types.SimpleNamespace(id="net-fp16-b1", precision="fp16")
    engine = TrtexecEngine(
        backend,  # type: ignore[arg-type]
        case,  # type: ignore[arg-type]
        tmp_path / "net.engine",
        {"x": ((1, 4), (1, 4), (1, 4))},
        TrtexecOptions(),
        BuildInfo(build_time_ms=1.0, engine_bytes=1),
    )

    profile = engine.runner({}).profile(12)

    (call,) = [json.loads(line) for line in log.read_text().splitlines() if "--help" not in line]
    assert "--separateProfileRun" in call and "--iterations=12" in call
    assert "--profilingVerbosity=detailed" in call
    folder = tmp_path / "artifacts" / "net-fp16-b1" / "profile"
    assert f"--exportProfile={folder / 'profile.json'}" in call
    assert f"--exportLayerInfo={folder / 'layer_info.json'}" in call
    assert profile is not None and profile.source == "trtexec" and profile.iterations == 12
    conv, gemm = profile.layers
    assert conv.nodes == ("/conv/Conv", "/relu/Relu") and conv.tactic == "sm90_xmma_fprop"
    assert gemm.nodes == ("/head/Gemm",)
    assert profile.end_to_end_ms == pytest.approx(0.31)
    assert conv.spread_ms > gemm.spread_ms > 0  # their shares of the timed pass's half-IQR


# -- a real engine not in shared/: TensorRT-RTX's layer information, printed by its verbose build on this CPU ---------
RTX_LAYERS = EXPORTS / "rtx.resnet-block.layers.txt"


def test_tensorrt_rtx_layer_information_text_maps_to_onnx_nodes() -> None:
    info = read_layer_info(RTX_LAYERS)
    assert info.io_tensors == ("input.1", "17") and info.detailed
    by_name = {layer.name: layer for layer in info.layers}
    assert len(by_name) == 7
    fused = by_name["__myl_CorrAdd_myl0_2"]
    assert fused.kind == "runtime_fusion" and fused.precision == "fp32"
    assert fused.signature == "runtime_fusion(1x8x32x32,1x8x32x32)->(1x8x32x32)"
    rows = [ProfileRow(layer.name, 0.0, 0.01 * (i + 1), 0.01 * (i + 1), 0.0) for i, layer in enumerate(info.layers)]
    profile = layer_profile(rows, info, source="tensorrt")
    nodes = {layer.name: layer.nodes for layer in profile.layers}
    assert nodes["__myl_CorrAdd_myl0_2"] == (
        "/layer1/layer1.0/Add",
        "/layer1/layer1.0/act/Relu",
        "/layer1/layer1.0/conv/Conv",
    )
    assert nodes["/stem/Conv_myl0_1"] == ("/stem/Conv",)
    assert nodes["__myl_AddMoveMean_myl0_4"] == ("/ReduceMean", "/layer1/layer1.1/Add")
    assert nodes["__myl_Move_myl0_0"] == ()  # a layout move of Myelin's own, no ONNX node
    assert by_name["/stem/Conv_myl0_1"].tactic == "__myelin_CASK_STUB"


def test_tensorrt_rtx_layers_with_one_slowed_diff_with_that_layer_first() -> None:
    info = read_layer_info(RTX_LAYERS)
    times = {layer.name: 0.02 + 0.01 * i for i, layer in enumerate(info.layers)}

    def profile(slowed: str | None) -> Any:
        rows = [
            ProfileRow(name, 0.0, ms * (3 if name == slowed else 1), ms * (3 if name == slowed else 1), 0.0)
            for name, ms in times.items()
        ]
        return layer_profile(rows, info, source="tensorrt", iterations=100)

    diff = diff_profiles(profile(None), profile("/layer1/layer1.1/conv/Conv_myl0_3"))
    first = diff.groups[0]
    assert first.current_layers == ("/layer1/layer1.1/conv/Conv_myl0_3",) and first.change == "slower"
    assert first.nodes == ("/layer1/layer1.1/act/Relu", "/layer1/layer1.1/conv/Conv")
    assert diff.where() == "where: /layer1/layer1.1/conv/Conv_myl0_3 +0.10 ms (100% of the change)"
    # the Gemm runs as two Myelin kernels: one group of both
    head = next(g for g in diff.groups if g.nodes == ("/head/Gemm",))
    assert set(head.current_layers) == {"__myl_ReshMulSum_myl0_5", "__myl_Add_myl0_6"}


def rtx_build_log() -> str:
    """The verbose log of TensorRT-RTX building the network of the committed layer information (this CPU suffices)."""
    torch = pytest.importorskip("torch")
    from harness.trt import compat

    try:
        trt = compat.find("tensorrt-rtx").module
    except HarnessError as exc:
        pytest.skip(str(exc))

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(8, 8, 3, padding=1)
            self.act = torch.nn.ReLU()

        def forward(self, x: Any) -> Any:
            return self.act(self.conv(x)) + x

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.layer1 = torch.nn.Sequential(Block(), Block())
            self.head = torch.nn.Linear(8, 4)

        def forward(self, x: Any) -> Any:
            return self.head(self.layer1(self.stem(x)).mean((2, 3)))

    torch.manual_seed(0)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter announces its removal on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(Net().eval(), torch.randn(1, 3, 32, 32), buffer, dynamo=False, opset_version=17)
    messages: list[str] = []

    class Capture(trt.ILogger):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, message: str) -> None:
            messages.append(message)

    logger = Capture()
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(buffer.getvalue())
    config = builder.create_builder_config()
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    config.num_compute_capabilities = 1
    config.set_compute_capability(trt.ComputeCapability.SM89, 0)
    assert builder.build_serialized_network(network, config) is not None
    return "\n".join(messages)


def test_a_tensorrt_rtx_build_here_prints_the_committed_layer_information() -> None:
    live = parse_layer_info_text(rtx_build_log(), "build log")
    committed = read_layer_info(RTX_LAYERS)
    assert [(layer.name, layer.metadata) for layer in live.layers] == [
        (layer.name, layer.metadata) for layer in committed.layers
    ]
